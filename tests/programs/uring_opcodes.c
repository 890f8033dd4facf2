/*
 * uring-opcodes N: on one ring, submits one SQE for each opcode number
 * 0..N-1 in turn (all fields zero but the opcode, fd -1, user_data = the
 * number), each alone, waiting up to 100 ms for its completion. Every one
 * fails or does nothing (fd -1, NULL addresses, zero lengths); the point is
 * the name the kernel's tracepoints print for each number.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: uring-opcodes N\n");
        return 1;
    }
    int n = atoi(argv[1]);
    struct io_uring ring;
    int ret = io_uring_queue_init(8, &ring, 0);
    if (ret < 0) {
        fprintf(stderr, "uring-opcodes: io_uring_queue_init: %s\n", strerror(-ret));
        return 2;
    }
    for (int op = 0; op < n && op < 256; op++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        if (!sqe) {
            fprintf(stderr, "uring-opcodes: no free SQE\n");
            return 1;
        }
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = (unsigned char)op;
        sqe->fd = -1;
        sqe->user_data = (unsigned long long)op;
        if (io_uring_submit(&ring) != 1) {
            fprintf(stderr, "uring-opcodes: opcode %d was not submitted\n", op);
            return 1;
        }
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 100 * 1000 * 1000};
        if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0)
            io_uring_cqe_seen(&ring, cqe);
    }
    io_uring_queue_exit(&ring);
    return 0;
}
