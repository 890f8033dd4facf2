/* deny-syscalls ERRNO NAMES PROGRAM [ARGS...]
 *
 * Run PROGRAM with the syscalls in NAMES (comma-separated: io_uring, ptrace, or a
 * number) refused with ERRNO (EPERM or ENOSYS) by a seccomp filter: the way Docker's
 * default profile (EPERM) or podman's (ENOSYS) refuses io_uring in a container, or a
 * sandbox refuses ptrace. "io_uring" stands for io_uring_setup, _enter and _register. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_DENY 16

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: deny-syscalls EPERM|ENOSYS NAMES PROGRAM [ARGS...]\n");
        return 64;
    }
    unsigned int err = strcmp(argv[1], "ENOSYS") == 0 ? ENOSYS : EPERM;
    long nrs[MAX_DENY];
    int n = 0;
    char *names = strdup(argv[2]);
    for (char *tok = strtok(names, ","); tok && n < MAX_DENY - 3; tok = strtok(NULL, ",")) {
        if (strcmp(tok, "io_uring") == 0) {
            nrs[n++] = __NR_io_uring_setup;
            nrs[n++] = __NR_io_uring_enter;
            nrs[n++] = __NR_io_uring_register;
        } else if (strcmp(tok, "ptrace") == 0) {
            nrs[n++] = __NR_ptrace;
        } else {
            nrs[n++] = strtol(tok, NULL, 0);
        }
    }
    struct sock_filter filter[2 * MAX_DENY + 3];
    int k = 0;
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                               offsetof(struct seccomp_data, nr));
    for (int i = 0; i < n; i++) {
        /* equal: fall through to the deny return right after; else skip it */
        filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], 0, 1);
        filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                   SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA));
    }
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = (unsigned short)k, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("deny-syscalls: seccomp");
        return 65;
    }
    execvp(argv[3], argv + 3);
    perror("deny-syscalls: exec");
    return 66;
}
