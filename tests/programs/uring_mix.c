/*
 * uring-mix: submits a known mix of io_uring opcodes, so that a test can
 * derive the exact per-opcode counts from the command line alone.
 *
 *   uring-mix [OPTIONS] DIR FILE
 *
 * DIR is created if missing (mkdir) and receives scratch entries; FILE is a
 * readable regular file of at least 4096 bytes. SQEs, by where they go:
 *
 *   main ring (created first, no flags), submitted by the main thread:
 *     --nops N      N x NOP
 *     --reads R     R x READ (4096 bytes at offset (i*4096) mod size) on FILE,
 *                   opened with openat(2) and closed with close(2) around them
 *     --statx S     S x STATX(AT_FDCWD, FILE)
 *     --fail        READ on fd -1 (EBADF), OPENAT of DIR/missing (ENOENT), and
 *                   one SQE with opcode 0xf0, rejected at submission (EINVAL),
 *                   each submitted alone
 *   SQPOLL ring (--sqpoll K, K >= 1): K x NOP, then K x WRITE of 512 bytes to
 *                   DIR/sqpoll.out (opened with openat(2)); the SQ thread takes them
 *   --children C:   child i (1..C, fork(2), one at a time) creates its own ring:
 *                   i x MKDIRAT DIR/c<i>-<j>, then i x UNLINKAT(AT_REMOVEDIR) of
 *                   them, then 1 x FSYNC of DIR/c<i>.f (opened with openat(2))
 *   --threads T:    thread t (1..T, one at a time) creates its own ring: t+1 x NOP
 *   --forever       repeat all of the above until killed (for a background load)
 *
 * Every SQE is waited for before the next group. Exit status 0, or 1 with a
 * message if a step fails in a way the options did not ask for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static long nops, reads, nstatx, sqpoll, children, threads;
static int fail, forever;
static const char *dir, *file;

static void die(const char *what, int err) {
    fprintf(stderr, "uring-mix: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring_sqe *sqe_of(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe)
        die("io_uring_get_sqe", EBUSY);
    return sqe;
}

/* Submit what is queued, reap `n` completions; expected_err 0 = all must succeed. */
static void run(struct io_uring *ring, unsigned n, int expected_err, const char *what) {
    int ret = io_uring_submit(ring);
    if (ret < 0)
        die(what, -ret);
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_cqe *cqe;
        ret = io_uring_wait_cqe(ring, &cqe);
        if (ret < 0)
            die(what, -ret);
        int res = cqe->res;
        io_uring_cqe_seen(ring, cqe);
        if (expected_err ? res != -expected_err : res < 0)
            die(what, res < 0 ? -res : EPROTO);
    }
}

static void init(struct io_uring *ring, unsigned entries, unsigned flags) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    p.sq_thread_idle = 100;
    int ret = io_uring_queue_init_params(entries, ring, &p);
    if (ret < 0)
        die("io_uring_queue_init", -ret);
}

static void nop_batch(struct io_uring *ring, long count) {
    while (count > 0) {
        long k = count < 16 ? count : 16;
        for (long i = 0; i < k; i++)
            io_uring_prep_nop(sqe_of(ring));
        run(ring, (unsigned)k, 0, "NOP");
        count -= k;
    }
}

static void main_ring(void) {
    struct io_uring ring;
    init(&ring, 32, 0);
    nop_batch(&ring, nops);
    if (reads > 0) {
        int fd = openat(AT_FDCWD, file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die(file, errno);
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size < 4096)
            die("FILE must hold at least 4096 bytes", EINVAL);
        static char buf[16][4096];
        long blocks = st.st_size / 4096;
        for (long done = 0; done < reads;) {
            long k = reads - done < 16 ? reads - done : 16;
            for (long i = 0; i < k; i++)
                io_uring_prep_read(sqe_of(&ring), fd, buf[i], 4096,
                                   (unsigned long long)((done + i) % blocks) * 4096);
            run(&ring, (unsigned)k, 0, "READ");
            done += k;
        }
        close(fd);
    }
    static struct statx stx[16];
    for (long done = 0; done < nstatx;) {
        long k = nstatx - done < 16 ? nstatx - done : 16;
        for (long i = 0; i < k; i++)
            io_uring_prep_statx(sqe_of(&ring), AT_FDCWD, file, 0, STATX_BASIC_STATS, &stx[i]);
        run(&ring, (unsigned)k, 0, "STATX");
        done += k;
    }
    if (fail) {
        static char b[4096];
        char missing[4096];
        snprintf(missing, sizeof missing, "%s/missing", dir);
        io_uring_prep_read(sqe_of(&ring), -1, b, sizeof b, 0);
        run(&ring, 1, EBADF, "READ on a bad fd");
        io_uring_prep_openat(sqe_of(&ring), AT_FDCWD, missing, O_RDONLY, 0);
        run(&ring, 1, ENOENT, "OPENAT of a missing file");
        struct io_uring_sqe *sqe = sqe_of(&ring);
        io_uring_prep_nop(sqe);
        sqe->opcode = 0xf0;
        run(&ring, 1, EINVAL, "an unknown opcode");
    }
    io_uring_queue_exit(&ring);
}

static void sqpoll_ring(void) {
    struct io_uring ring;
    init(&ring, 32, IORING_SETUP_SQPOLL);
    nop_batch(&ring, sqpoll);
    char path[4096];
    snprintf(path, sizeof path, "%s/sqpoll.out", dir);
    int fd = openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path, errno);
    static char b[512];
    for (long done = 0; done < sqpoll;) {
        long k = sqpoll - done < 16 ? sqpoll - done : 16;
        for (long i = 0; i < k; i++)
            io_uring_prep_write(sqe_of(&ring), fd, b, sizeof b,
                                (unsigned long long)(done + i) * sizeof b);
        run(&ring, (unsigned)k, 0, "WRITE");
        done += k;
    }
    close(fd);
    io_uring_queue_exit(&ring);
}

static void child(long i) {
    struct io_uring ring;
    init(&ring, 16, 0);
    char path[4096];
    for (int pass = 0; pass < 2; pass++) {
        for (long j = 1; j <= i; j++) {
            snprintf(path, sizeof path, "%s/c%ld-%ld", dir, i, j);
            /* the kernel copies the path at prep time: one group of one */
            if (pass == 0)
                io_uring_prep_mkdirat(sqe_of(&ring), AT_FDCWD, path, 0755);
            else
                io_uring_prep_unlinkat(sqe_of(&ring), AT_FDCWD, path, AT_REMOVEDIR);
            run(&ring, 1, 0, pass == 0 ? "MKDIRAT" : "UNLINKAT");
        }
    }
    snprintf(path, sizeof path, "%s/c%ld.f", dir, i);
    int fd = openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path, errno);
    io_uring_prep_fsync(sqe_of(&ring), fd, 0);
    run(&ring, 1, 0, "FSYNC");
    close(fd);
    io_uring_queue_exit(&ring);
}

static void *thread_main(void *arg) {
    long t = (long)arg;
    struct io_uring ring;
    init(&ring, 16, 0);
    nop_batch(&ring, t + 1);
    io_uring_queue_exit(&ring);
    return NULL;
}

static long number(const char *opt, const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 100000) {
        fprintf(stderr, "uring-mix: %s %s: Invalid argument\n", opt, s);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--fail")) fail = 1;
        else if (!strcmp(o, "--forever")) forever = 1;
        else if (i + 1 >= argc) { fprintf(stderr, "uring-mix: %s needs a value\n", o); return 1; }
        else if (!strcmp(o, "--nops")) nops = number(o, argv[++i]);
        else if (!strcmp(o, "--reads")) reads = number(o, argv[++i]);
        else if (!strcmp(o, "--statx")) nstatx = number(o, argv[++i]);
        else if (!strcmp(o, "--sqpoll")) sqpoll = number(o, argv[++i]);
        else if (!strcmp(o, "--children")) children = number(o, argv[++i]);
        else if (!strcmp(o, "--threads")) threads = number(o, argv[++i]);
        else { fprintf(stderr, "uring-mix: unknown option %s\n", o); return 1; }
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: uring-mix [OPTIONS] DIR FILE\n");
        return 1;
    }
    dir = argv[i];
    file = argv[i + 1];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        die(dir, errno);
    do {
        main_ring();
        if (sqpoll > 0)
            sqpoll_ring();
        for (long c = 1; c <= children; c++) {
            pid_t pid = fork();
            if (pid < 0)
                die("fork", errno);
            if (pid == 0) {
                child(c);
                _exit(0);
            }
            int status;
            if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
                die("a child failed", ECHILD);
        }
        for (long t = 1; t <= threads; t++) {
            pthread_t th;
            int err = pthread_create(&th, NULL, thread_main, (void *)t);
            if (err)
                die("pthread_create", err);
            pthread_join(th, NULL);
        }
    } while (forever);
    return 0;
}
