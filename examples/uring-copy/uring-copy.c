/*
 * uring-copy -- the reference target of syscall-gate.
 *
 * A small tree copier whose system calls are known by construction: every
 * io_uring_enter(2) it makes is one the program chose to make (no liburing,
 * rings are set up and mmap'ed by hand), every metadata call resolves the way
 * the selected mode says, and README.md gives the exact scenario syscall
 * counts as formulas of the copied tree.  Keep README.md in step with this
 * file: the formulas are a contract other tests rely on.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/io_uring.h>

#define PROG "uring-copy"
#define DENTS_BUF (64 * 1024)
#define MAX_BATCH 256u
#define MAX_CHUNK (64ull * 1024 * 1024)
#define MAX_THREADS 64u
#define QUEUE_CAP 16u

/* ------------------------------------------------------------------ */
/* options                                                             */

static struct options {
	unsigned batch;
	uint64_t chunk;
	bool wait_separately;
	bool path_based;
	unsigned extra_statx;
	unsigned threads;
	bool legacy_io;
	bool sqpoll;
	bool register_ring;
	bool defer_taskrun;
	bool direct_fallocate;
	bool uring_fallocate;
	bool corrupt;
	int exit_code;
} opt = {
	.batch = 8,
	.chunk = 131072,
	.threads = 1,
};

/* ------------------------------------------------------------------ */
/* errors                                                              */

static pthread_mutex_t die_lock = PTHREAD_MUTEX_INITIALIZER;

/* Print "uring-copy: WHAT: strerror(err)" and exit with CODE.  Safe to call
 * from any thread: the first caller wins, later callers block until exit. */
static void __attribute__((noreturn)) die_code(int code, const char *what, int err)
{
	pthread_mutex_lock(&die_lock);
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(code);
}

static void __attribute__((noreturn)) die(const char *what, int err)
{
	die_code(1, what, err);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("malloc", ENOMEM);
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xmalloc(n);
	memcpy(p, s, n);
	return p;
}

/* "a" + "/" + "b" (no doubled slash when a already ends in '/'). */
static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	bool slash = la > 0 && a[la - 1] == '/';
	char *r = xmalloc(la + lb + 2);
	memcpy(r, a, la);
	if (!slash)
		r[la++] = '/';
	memcpy(r + la, b, lb + 1);
	return r;
}

/* Absolute form of PATH: PATH itself when it starts with '/', otherwise
 * getcwd() + "/" + PATH (one getcwd syscall; no canonicalisation, so no
 * readlink/stat calls). */
static char *make_abs(const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	char *cwd = getcwd(NULL, 0);
	if (!cwd)
		die("getcwd", errno);
	char *r = join(cwd, path);
	free(cwd);
	return r;
}

/* ------------------------------------------------------------------ */
/* metadata                                                            */

struct meta {
	uid_t uid;
	gid_t gid;
	mode_t mode;
	struct timespec times[2]; /* atime, mtime */
	uint64_t size;
};

static void meta_from_statx(struct meta *m, const struct statx *st)
{
	m->uid = st->stx_uid;
	m->gid = st->stx_gid;
	m->mode = st->stx_mode;
	m->times[0].tv_sec = st->stx_atime.tv_sec;
	m->times[0].tv_nsec = st->stx_atime.tv_nsec;
	m->times[1].tv_sec = st->stx_mtime.tv_sec;
	m->times[1].tv_nsec = st->stx_mtime.tv_nsec;
	m->size = st->stx_size;
}

/*
 * Ownership, permission bits and timestamps of a copied regular file or
 * directory.  Good mode: fchown(fd), fchmod(fd), utimensat(fd, NULL, ts, 0)
 * (futimens).  --path-based: fchownat/fchmodat/utimensat on AT_FDCWD + the
 * absolute path.  chown first: it may clear set-id bits, chmod restores them.
 */
static void set_meta(int fd, const char *path, const struct meta *m)
{
	if (opt.path_based) {
		if (fchownat(AT_FDCWD, path, m->uid, m->gid, 0) < 0)
			die(path, errno);
		/* raw syscall: glibc may route fchmodat() to fchmodat2 */
		if (syscall(SYS_fchmodat, AT_FDCWD, path, (unsigned long)(m->mode & 07777)) < 0)
			die(path, errno);
		if (utimensat(AT_FDCWD, path, m->times, 0) < 0)
			die(path, errno);
	} else {
		if (fchown(fd, m->uid, m->gid) < 0)
			die(path, errno);
		if (fchmod(fd, m->mode & 07777) < 0)
			die(path, errno);
		if (futimens(fd, m->times) < 0) /* = utimensat(fd, NULL, ts, 0) */
			die(path, errno);
	}
}

/* ------------------------------------------------------------------ */
/* io_uring, by hand                                                   */

struct ring {
	int fd;             /* ring fd */
	int enter_fd;       /* fd passed to io_uring_enter (registered index with --register-ring) */
	unsigned enter_xflags; /* IORING_ENTER_REGISTERED_RING or 0 */
	unsigned entries;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_flags, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned local_tail;
	void *sq_ptr, *cq_ptr;
	size_t sq_len, cq_len, sqes_len;
};

static void ring_setup(struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	memset(r, 0, sizeof *r);

	unsigned entries = 8;
	while (entries < opt.batch)
		entries <<= 1;
	if (opt.sqpoll) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = 2000;
	}
	if (opt.defer_taskrun)
		p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;

	long fd = syscall(__NR_io_uring_setup, (unsigned long)entries, &p);
	if (fd < 0)
		die_code(2, "io_uring_setup", errno);
	r->fd = (int)fd;
	r->enter_fd = (int)fd;
	r->entries = p.sq_entries;

	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
	if (single) {
		if (r->cq_len > r->sq_len)
			r->sq_len = r->cq_len;
		r->cq_len = r->sq_len;
	}
	r->sq_ptr = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 r->fd, IORING_OFF_SQ_RING);
	if (r->sq_ptr == MAP_FAILED)
		die("mmap (io_uring SQ ring)", errno);
	if (single) {
		r->cq_ptr = r->sq_ptr;
	} else {
		r->cq_ptr = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (r->cq_ptr == MAP_FAILED)
			die("mmap (io_uring CQ ring)", errno);
	}
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		die("mmap (io_uring SQEs)", errno);

	char *sq = r->sq_ptr, *cq = r->cq_ptr;
	r->sq_head = (unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_flags = (unsigned *)(sq + p.sq_off.flags);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	r->local_tail = *r->sq_tail;

	if (opt.register_ring) {
		struct io_uring_rsrc_update upd;
		memset(&upd, 0, sizeof upd);
		upd.offset = -1U; /* let the kernel pick a slot */
		upd.data = (uint64_t)r->fd;
		long ret = syscall(__NR_io_uring_register, (unsigned long)r->fd,
				   (unsigned long)IORING_REGISTER_RING_FDS, &upd, 1ul);
		if (ret < 0)
			die("io_uring_register", errno);
		if (ret != 1)
			die("io_uring_register", EIO);
		r->enter_fd = (int)upd.offset;
		r->enter_xflags = IORING_ENTER_REGISTERED_RING;
	}
}

static void ring_teardown(struct ring *r)
{
	munmap(r->sqes, r->sqes_len);
	if (r->cq_ptr != r->sq_ptr)
		munmap(r->cq_ptr, r->cq_len);
	munmap(r->sq_ptr, r->sq_len);
	close(r->fd); /* also drops the registered-ring slot's reference at exit */
}

/* One io_uring_enter call (plus one more per EINTR retry: an interrupted
 * call submitted nothing, so the retry is the same call again). */
static unsigned ring_enter(struct ring *r, unsigned to_submit, unsigned min_complete,
			   unsigned flags)
{
	for (;;) {
		long ret = syscall(__NR_io_uring_enter, (unsigned long)r->enter_fd,
				   (unsigned long)to_submit, (unsigned long)min_complete,
				   (unsigned long)(flags | r->enter_xflags), (void *)NULL,
				   (unsigned long)0);
		if (ret >= 0)
			return (unsigned)ret;
		if (errno == EINTR)
			continue;
		die("io_uring_enter", errno);
	}
}

static struct io_uring_sqe *ring_sqe(struct ring *r)
{
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	if (r->local_tail - head >= r->entries)
		die("io_uring SQ ring full", EBUSY); /* cannot happen: groups <= entries */
	unsigned idx = r->local_tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof *sqe);
	r->sq_array[idx] = idx;
	r->local_tail++;
	return sqe;
}

/*
 * Make the K SQEs prepared with ring_sqe() visible to the kernel, submit them
 * and wait until K completions are in the CQ ring, using exactly the calls the
 * mode prescribes:
 *   default:           io_uring_enter(fd, K, K, GETEVENTS)             (1 call)
 *   --wait-separately: io_uring_enter(fd, K, 0, 0);
 *                      io_uring_enter(fd, 0, K, GETEVENTS)             (2 calls)
 *   --sqpoll:          [io_uring_enter(fd, K, 0, SQ_WAKEUP) only if the SQ
 *                      ring has IORING_SQ_NEED_WAKEUP];
 *                      io_uring_enter(fd, 0, K, GETEVENTS)             (1 + W calls)
 * A short submission (kernel consumed fewer than asked, never seen for valid
 * READ/WRITE/FALLOCATE SQEs) is completed by submitting the rest again, one
 * more call each time.
 */
static void ring_submit_wait(struct ring *r, unsigned k)
{
	__atomic_store_n(r->sq_tail, r->local_tail, __ATOMIC_RELEASE);
	if (opt.sqpoll) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
			ring_enter(r, k, 0, IORING_ENTER_SQ_WAKEUP);
		ring_enter(r, 0, k, IORING_ENTER_GETEVENTS);
		return;
	}
	unsigned left = k;
	while (left > 0) {
		unsigned got = opt.wait_separately ? ring_enter(r, left, 0, 0)
						   : ring_enter(r, left, k, IORING_ENTER_GETEVENTS);
		if (got == 0 || got > left)
			die("io_uring_enter: unexpected submit count", EIO);
		left -= got;
	}
	if (opt.wait_separately)
		ring_enter(r, 0, k, IORING_ENTER_GETEVENTS);
}

/* Reap exactly K CQEs; res[user_data] = cqe->res.  After ring_submit_wait the
 * K completions are already there; the extra wait below only runs if a wait
 * was cut short by a signal (it would be one more io_uring_enter call). */
static void ring_reap(struct ring *r, unsigned k, int32_t *res)
{
	unsigned got = 0;
	while (got < k) {
		unsigned head = *r->cq_head;
		unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
		if (head == tail) {
			ring_enter(r, 0, k - got, IORING_ENTER_GETEVENTS);
			continue;
		}
		while (head != tail && got < k) {
			const struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
			if (c->user_data >= k)
				die("io_uring: unexpected completion", EIO);
			res[c->user_data] = c->res;
			head++;
			got++;
		}
		__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
	}
}

static void prep_rw(struct io_uring_sqe *sqe, int op, int fd, void *buf, uint64_t len,
		    uint64_t off, uint64_t user_data)
{
	sqe->opcode = (uint8_t)op;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)buf;
	sqe->len = (uint32_t)len;
	sqe->off = off;
	sqe->user_data = user_data;
}

/* ------------------------------------------------------------------ */
/* copying one regular file                                            */

struct job {
	int sfd, dfd;
	struct meta m;
	char *dpath;  /* destination path (absolute in --path-based / --extra-statx) */
	bool corrupt; /* flip a byte of this file's copy (--corrupt) */
};

struct copier {
	bool has_ring;
	struct ring ring;
	char *buf; /* batch * chunk bytes (chunk bytes with --legacy-io) */
	int32_t res[MAX_BATCH];
	uint64_t len[MAX_BATCH];
};

static void copier_init(struct copier *cp)
{
	memset(cp, 0, sizeof *cp);
	size_t bytes = opt.legacy_io ? opt.chunk : (size_t)opt.batch * opt.chunk;
	void *p = NULL;
	int err = posix_memalign(&p, 4096, bytes);
	if (err)
		die("posix_memalign", err);
	cp->buf = p;
	if (!opt.legacy_io) {
		ring_setup(&cp->ring);
		cp->has_ring = true;
	}
}

static void copier_fini(struct copier *cp)
{
	if (cp->has_ring)
		ring_teardown(&cp->ring);
	free(cp->buf);
}

/* Finish a short READ or WRITE (res bytes of len done) by resubmitting the
 * remainder alone.  Never happens for local regular files; each round would
 * be one more group of size 1. */
static void ring_finish_short(struct copier *cp, int op, int fd, char *buf, uint64_t len,
			      uint64_t off, uint64_t done, const char *path)
{
	while (done < len) {
		struct io_uring_sqe *sqe = ring_sqe(&cp->ring);
		prep_rw(sqe, op, fd, buf + done, len - done, off + done, 0);
		ring_submit_wait(&cp->ring, 1);
		ring_reap(&cp->ring, 1, cp->res);
		if (cp->res[0] < 0)
			die(path, -cp->res[0]);
		if (cp->res[0] == 0) /* file shrank under us / device full */
			die(path, op == IORING_OP_READ ? EIO : ENOSPC);
		done += (uint64_t)cp->res[0];
	}
}

static void ring_copy(struct copier *cp, const struct job *j, unsigned char *first_byte)
{
	struct ring *r = &cp->ring;
	const uint64_t C = opt.chunk, S = j->m.size;
	const uint64_t n = (S + C - 1) / C;

	if (opt.uring_fallocate && S > 0) {
		struct io_uring_sqe *sqe = ring_sqe(r);
		sqe->opcode = IORING_OP_FALLOCATE;
		sqe->fd = j->dfd;
		sqe->off = 0;     /* offset */
		sqe->addr = S;    /* length */
		sqe->len = 0;     /* mode */
		sqe->user_data = 0;
		ring_submit_wait(r, 1);
		ring_reap(r, 1, cp->res);
		if (cp->res[0] < 0)
			die(j->dpath, -cp->res[0]);
	}

	for (uint64_t g = 0; g < n; g += opt.batch) {
		unsigned k = (unsigned)(n - g < opt.batch ? n - g : opt.batch);

		for (unsigned i = 0; i < k; i++) {
			uint64_t off = (g + i) * C;
			cp->len[i] = S - off < C ? S - off : C;
			prep_rw(ring_sqe(r), IORING_OP_READ, j->sfd, cp->buf + i * C, cp->len[i],
				off, i);
		}
		ring_submit_wait(r, k);
		ring_reap(r, k, cp->res);
		for (unsigned i = 0; i < k; i++) {
			if (cp->res[i] < 0)
				die(j->dpath, -cp->res[i]);
			if (cp->res[i] == 0)
				die(j->dpath, EIO); /* source shrank */
			if ((uint64_t)cp->res[i] < cp->len[i])
				ring_finish_short(cp, IORING_OP_READ, j->sfd, cp->buf + i * C,
						  cp->len[i], (g + i) * C, (uint64_t)cp->res[i],
						  j->dpath);
		}
		if (g == 0)
			*first_byte = (unsigned char)cp->buf[0];

		for (unsigned i = 0; i < k; i++)
			prep_rw(ring_sqe(r), IORING_OP_WRITE, j->dfd, cp->buf + i * C, cp->len[i],
				(g + i) * C, i);
		ring_submit_wait(r, k);
		ring_reap(r, k, cp->res);
		for (unsigned i = 0; i < k; i++) {
			if (cp->res[i] < 0)
				die(j->dpath, -cp->res[i]);
			if ((uint64_t)cp->res[i] < cp->len[i])
				ring_finish_short(cp, IORING_OP_WRITE, j->dfd, cp->buf + i * C,
						  cp->len[i], (g + i) * C, (uint64_t)cp->res[i],
						  j->dpath);
		}
	}
}

/* --legacy-io: read(sfd, buf, C) until it returns 0, write(dfd, buf, got). */
static void legacy_copy(struct copier *cp, const struct job *j, unsigned char *first_byte)
{
	bool first = true;
	for (;;) {
		ssize_t got = read(j->sfd, cp->buf, opt.chunk);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			die(j->dpath, errno);
		}
		if (got == 0)
			break;
		if (first)
			*first_byte = (unsigned char)cp->buf[0];
		first = false;
		ssize_t done = 0;
		while (done < got) {
			ssize_t w = write(j->dfd, cp->buf + done, (size_t)(got - done));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				die(j->dpath, errno);
			}
			done += w;
		}
	}
}

/* Everything that happens to a regular file after its two fds are open. */
static void copy_file(struct copier *cp, struct job *j)
{
	unsigned char first_byte = 0;

	if (opt.direct_fallocate && j->m.size > 0)
		if (fallocate(j->dfd, 0, 0, (off_t)j->m.size) < 0)
			die(j->dpath, errno);

	if (opt.legacy_io)
		legacy_copy(cp, j, &first_byte);
	else
		ring_copy(cp, j, &first_byte);

	if (j->corrupt) {
		/* --corrupt: flip every bit of byte 0 of the copy; times are
		 * restored afterwards, so only a content check can see it. */
		unsigned char b = (unsigned char)~first_byte;
		if (pwrite(j->dfd, &b, 1, 0) != 1)
			die(j->dpath, errno ? errno : EIO);
	}

	set_meta(j->dfd, j->dpath, &j->m);

	for (unsigned e = 0; e < opt.extra_statx; e++) {
		struct statx st;
		if (statx(AT_FDCWD, j->dpath, 0, STATX_BASIC_STATS, &st) < 0)
			die(j->dpath, errno);
	}

	close(j->sfd);
	close(j->dfd);
	free(j->dpath);
	j->dpath = NULL;
}

/* ------------------------------------------------------------------ */
/* --threads N: workers with their own rings                           */

struct worker {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	struct job q[QUEUE_CAP];
	unsigned head, tail; /* tail - head = queued jobs */
	bool done;
};

static struct worker *workers;
static unsigned next_worker;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct copier cp;
	copier_init(&cp); /* this worker's own ring: one io_uring_setup each */
	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (w->head == w->tail && !w->done)
			pthread_cond_wait(&w->not_empty, &w->mu);
		if (w->head == w->tail) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		struct job j = w->q[w->head % QUEUE_CAP];
		w->head++;
		pthread_cond_signal(&w->not_full);
		pthread_mutex_unlock(&w->mu);
		copy_file(&cp, &j);
	}
	copier_fini(&cp);
	return NULL;
}

static void workers_start(void)
{
	workers = xmalloc(opt.threads * sizeof *workers);
	for (unsigned i = 0; i < opt.threads; i++) {
		struct worker *w = &workers[i];
		memset(w, 0, sizeof *w);
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->not_empty, NULL);
		pthread_cond_init(&w->not_full, NULL);
		int err = pthread_create(&w->th, NULL, worker_main, w);
		if (err)
			die("pthread_create", err);
	}
}

/* Round-robin in walk order: file i goes to worker i mod N. */
static void workers_push(const struct job *j)
{
	struct worker *w = &workers[next_worker++ % opt.threads];
	pthread_mutex_lock(&w->mu);
	while (w->tail - w->head >= QUEUE_CAP)
		pthread_cond_wait(&w->not_full, &w->mu);
	w->q[w->tail % QUEUE_CAP] = *j;
	w->tail++;
	pthread_cond_signal(&w->not_empty);
	pthread_mutex_unlock(&w->mu);
}

static void workers_join(void)
{
	for (unsigned i = 0; i < opt.threads; i++) {
		struct worker *w = &workers[i];
		pthread_mutex_lock(&w->mu);
		w->done = true;
		pthread_cond_signal(&w->not_empty);
		pthread_mutex_unlock(&w->mu);
	}
	for (unsigned i = 0; i < opt.threads; i++) {
		int err = pthread_join(workers[i].th, NULL);
		if (err)
			die("pthread_join", err);
	}
}

/* Directory metadata deferred until the workers joined (threads mode). */
struct deferred_dir {
	int dfd;
	char *dpath;
	struct meta m;
};
static struct deferred_dir *deferred;
static size_t n_deferred, cap_deferred;

static void defer_dir(int dfd, const char *dpath, const struct meta *m)
{
	if (n_deferred == cap_deferred) {
		cap_deferred = cap_deferred ? 2 * cap_deferred : 16;
		struct deferred_dir *nd = realloc(deferred, cap_deferred * sizeof *nd);
		if (!nd)
			die("realloc", ENOMEM);
		deferred = nd;
	}
	deferred[n_deferred].dfd = dfd;
	deferred[n_deferred].dpath = xstrdup(dpath);
	deferred[n_deferred].m = *m;
	n_deferred++;
}

/* ------------------------------------------------------------------ */
/* the walk                                                            */

static struct copier main_copier; /* threads == 1 */
static bool corrupt_pending;

/* getdents64 with a 64 KiB buffer until it returns 0; names in kernel order
 * without "." and "..". */
static char **read_names(int fd, const char *path, size_t *count)
{
	char *buf = xmalloc(DENTS_BUF);
	char **names = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		long got = syscall(SYS_getdents64, (unsigned long)fd, buf, (unsigned long)DENTS_BUF);
		if (got < 0)
			die(path, errno);
		if (got == 0)
			break;
		for (long pos = 0; pos < got;) {
			unsigned short reclen;
			memcpy(&reclen, buf + pos + 16, sizeof reclen); /* d_reclen */
			const char *name = buf + pos + 19;                /* d_name */
			pos += reclen;
			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 32;
				char **nn = realloc(names, cap * sizeof *nn);
				if (!nn)
					die("realloc", ENOMEM);
				names = nn;
			}
			names[n++] = xstrdup(name);
		}
	}
	free(buf);
	*count = n;
	return names;
}

/* openat, dirfd-relative in good mode, AT_FDCWD + absolute path in --path-based. */
static int open_at(int dirfd, const char *name, const char *path, int flags, mode_t mode)
{
	int fd = opt.path_based ? openat(AT_FDCWD, path, flags, mode)
				: openat(dirfd, name, flags, mode);
	if (fd < 0)
		die(path, errno);
	return fd;
}

static void copy_dir(int sdir, int ddir, const char *spath, const char *dpath);

static void copy_entry(int sdir, int ddir, const char *name, const char *spath,
		       const char *dpath)
{
	struct statx st;
	int r = opt.path_based
			? statx(AT_FDCWD, spath, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st)
			: statx(sdir, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st);
	if (r < 0)
		die(spath, errno);
	struct meta m;
	meta_from_statx(&m, &st);

	switch (st.stx_mode & S_IFMT) {
	case S_IFREG: {
		struct job j;
		j.sfd = open_at(sdir, name, spath, O_RDONLY | O_CLOEXEC, 0);
		j.dfd = open_at(ddir, name, dpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		j.m = m;
		j.dpath = xstrdup(dpath);
		j.corrupt = false;
		if (corrupt_pending && m.size > 0) {
			j.corrupt = true;
			corrupt_pending = false;
		}
		if (opt.threads > 1)
			workers_push(&j);
		else
			copy_file(&main_copier, &j);
		break;
	}
	case S_IFDIR: {
		int mr = opt.path_based ? mkdirat(AT_FDCWD, dpath, 0700) : mkdirat(ddir, name, 0700);
		if (mr < 0 && errno != EEXIST)
			die(dpath, errno);
		int csfd = open_at(sdir, name, spath, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		int cdfd = open_at(ddir, name, dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		copy_dir(csfd, cdfd, spath, dpath);
		if (opt.threads > 1) {
			close(csfd);
			defer_dir(cdfd, dpath, &m); /* cdfd closed after the metadata */
		} else {
			set_meta(cdfd, dpath, &m);
			close(csfd);
			close(cdfd);
		}
		break;
	}
	case S_IFLNK: {
		char target[PATH_MAX + 1];
		ssize_t len = opt.path_based ? readlinkat(AT_FDCWD, spath, target, PATH_MAX)
					     : readlinkat(sdir, name, target, PATH_MAX);
		if (len < 0)
			die(spath, errno);
		if (len >= PATH_MAX)
			die(spath, ENAMETOOLONG);
		target[len] = '\0';
		int atfd = opt.path_based ? AT_FDCWD : ddir;
		const char *at = opt.path_based ? dpath : name;
		if (symlinkat(target, atfd, at) < 0)
			die(dpath, errno);
		if (fchownat(atfd, at, m.uid, m.gid, AT_SYMLINK_NOFOLLOW) < 0)
			die(dpath, errno);
		if (utimensat(atfd, at, m.times, AT_SYMLINK_NOFOLLOW) < 0)
			die(dpath, errno);
		break;
	}
	default:
		fprintf(stderr, PROG ": %s: skipping special file\n", spath);
		break;
	}
}

static void copy_dir(int sdir, int ddir, const char *spath, const char *dpath)
{
	size_t n;
	char **names = read_names(sdir, spath, &n);
	for (size_t i = 0; i < n; i++) {
		char *sp = join(spath, names[i]);
		char *dp = join(dpath, names[i]);
		copy_entry(sdir, ddir, names[i], sp, dp);
		free(sp);
		free(dp);
		free(names[i]);
	}
	free(names);
}

/* ------------------------------------------------------------------ */
/* command line                                                        */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [OPTIONS] SRC DST\n"
		"Copy the tree under SRC into DST through io_uring (see README.md).\n"
		"  --batch N            SQEs per io_uring_enter group (1..256, default 8)\n"
		"  --chunk BYTES        bytes per READ/WRITE (multiple of 4096, <= 64 MiB,\n"
		"                       default 131072)\n"
		"  --wait-separately    submit-only enter, then wait-only enter, per group\n"
		"  --path-based         AT_FDCWD + absolute paths for every open/metadata call\n"
		"  --extra-statx N      N extra statx(AT_FDCWD, dst path) per regular file\n"
		"  --threads N          N worker threads, one ring each (1..64, default 1)\n"
		"  --legacy-io          read(2)/write(2) instead of io_uring\n"
		"  --sqpoll             IORING_SETUP_SQPOLL ring (sq_thread_idle 2000 ms)\n"
		"  --register-ring      IORING_REGISTER_RING_FDS + IORING_ENTER_REGISTERED_RING\n"
		"  --defer-taskrun      IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN\n"
		"  --direct-fallocate   fallocate(2) each non-empty destination file\n"
		"  --uring-fallocate    IORING_OP_FALLOCATE for each non-empty destination file\n"
		"  --corrupt            flip byte 0 of the first non-empty file copied\n"
		"  --exit-code N        exit with N (0..255) after a successful copy\n"
		"  --help               this text\n");
}

static void __attribute__((noreturn)) bad_arg(const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(EINVAL));
	fprintf(stderr, "usage: " PROG " [OPTIONS] SRC DST (" PROG " --help lists the options)\n");
	exit(1);
}

static unsigned long long parse_num(const char *name, const char *s, unsigned long long lo,
				    unsigned long long hi)
{
	char what[256];
	snprintf(what, sizeof what, "%.64s %.128s", name, s);
	if (s[0] < '0' || s[0] > '9')
		bad_arg(what);
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < lo || v > hi)
		bad_arg(what);
	return v;
}

enum {
	O_BATCH = 256, O_CHUNK, O_WAITSEP, O_PATHBASED, O_EXTRASTATX, O_THREADS, O_LEGACY,
	O_SQPOLL, O_REGRING, O_DEFER, O_DFALLOC, O_UFALLOC, O_CORRUPT, O_EXITCODE, O_HELP,
};

static void parse_args(int argc, char **argv, const char **src, const char **dst)
{
	static const struct option longopts[] = {
		{"batch", required_argument, NULL, O_BATCH},
		{"chunk", required_argument, NULL, O_CHUNK},
		{"wait-separately", no_argument, NULL, O_WAITSEP},
		{"path-based", no_argument, NULL, O_PATHBASED},
		{"extra-statx", required_argument, NULL, O_EXTRASTATX},
		{"threads", required_argument, NULL, O_THREADS},
		{"legacy-io", no_argument, NULL, O_LEGACY},
		{"sqpoll", no_argument, NULL, O_SQPOLL},
		{"register-ring", no_argument, NULL, O_REGRING},
		{"defer-taskrun", no_argument, NULL, O_DEFER},
		{"direct-fallocate", no_argument, NULL, O_DFALLOC},
		{"uring-fallocate", no_argument, NULL, O_UFALLOC},
		{"corrupt", no_argument, NULL, O_CORRUPT},
		{"exit-code", required_argument, NULL, O_EXITCODE},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case O_BATCH:
			opt.batch = (unsigned)parse_num("--batch", optarg, 1, MAX_BATCH);
			break;
		case O_CHUNK:
			opt.chunk = parse_num("--chunk", optarg, 4096, MAX_CHUNK);
			if (opt.chunk % 4096)
				bad_arg("--chunk (not a multiple of 4096)");
			break;
		case O_WAITSEP: opt.wait_separately = true; break;
		case O_PATHBASED: opt.path_based = true; break;
		case O_EXTRASTATX:
			opt.extra_statx = (unsigned)parse_num("--extra-statx", optarg, 0, 1000000);
			break;
		case O_THREADS:
			opt.threads = (unsigned)parse_num("--threads", optarg, 1, MAX_THREADS);
			break;
		case O_LEGACY: opt.legacy_io = true; break;
		case O_SQPOLL: opt.sqpoll = true; break;
		case O_REGRING: opt.register_ring = true; break;
		case O_DEFER: opt.defer_taskrun = true; break;
		case O_DFALLOC: opt.direct_fallocate = true; break;
		case O_UFALLOC: opt.uring_fallocate = true; break;
		case O_CORRUPT: opt.corrupt = true; break;
		case O_EXITCODE:
			opt.exit_code = (int)parse_num("--exit-code", optarg, 0, 255);
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		case ':':
			bad_arg(argv[optind - 1]); /* missing value */
		default:
			bad_arg(argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		bad_arg("expected SRC DST");
	*src = argv[optind];
	*dst = argv[optind + 1];

	if (opt.legacy_io && (opt.sqpoll || opt.register_ring || opt.defer_taskrun ||
			      opt.wait_separately || opt.uring_fallocate))
		bad_arg("--legacy-io with an io_uring option");
	if (opt.sqpoll && opt.wait_separately)
		bad_arg("--sqpoll with --wait-separately");
	if (opt.direct_fallocate && opt.uring_fallocate)
		bad_arg("--direct-fallocate with --uring-fallocate");
	/* --sqpoll --defer-taskrun is left to the kernel: io_uring_setup fails
	 * with EINVAL and the program exits 2. */
}

int main(int argc, char **argv)
{
	const char *src_arg, *dst_arg;
	parse_args(argc, argv, &src_arg, &dst_arg);
	corrupt_pending = opt.corrupt;

	bool need_abs = opt.path_based || opt.extra_statx > 0;
	char *sroot = need_abs ? make_abs(src_arg) : xstrdup(src_arg);
	char *droot = need_abs ? make_abs(dst_arg) : xstrdup(dst_arg);

	/* 1. roots */
	struct statx st;
	int sfd, dfd;
	if (opt.path_based) {
		sfd = openat(AT_FDCWD, sroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0)
			die(sroot, errno);
		if (statx(AT_FDCWD, sroot, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) < 0)
			die(sroot, errno);
	} else {
		sfd = openat(AT_FDCWD, src_arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0)
			die(sroot, errno);
		if (statx(sfd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) < 0)
			die(sroot, errno);
	}
	if (mkdirat(AT_FDCWD, opt.path_based ? droot : dst_arg, 0700) < 0 && errno != EEXIST)
		die(droot, errno);
	dfd = openat(AT_FDCWD, opt.path_based ? droot : dst_arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		die(droot, errno);
	struct meta root_meta;
	meta_from_statx(&root_meta, &st);

	/* 2. ring(s) */
	if (opt.threads > 1)
		workers_start();
	else
		copier_init(&main_copier);

	/* 3. walk */
	copy_dir(sfd, dfd, sroot, droot);

	if (opt.threads > 1) {
		workers_join();
		for (size_t i = 0; i < n_deferred; i++) {
			set_meta(deferred[i].dfd, deferred[i].dpath, &deferred[i].m);
			close(deferred[i].dfd);
			free(deferred[i].dpath);
		}
		free(deferred);
		free(workers);
	}

	/* 4./6. destination root */
	set_meta(dfd, droot, &root_meta);
	close(sfd);
	close(dfd);

	if (opt.threads == 1)
		copier_fini(&main_copier);
	free(sroot);
	free(droot);
	return opt.exit_code;
}
