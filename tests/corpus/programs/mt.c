/* Threads that block in each other's pipes so strace splits their calls. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int pipes[4][2];
static const char *dir;

static void *worker(void *arg) {
    long id = (long)arg;
    char path[4096], buf[64];
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof path, "%s/f%ld", dir, id);
        int fd = open(path, O_RDWR | O_CREAT, 0644);
        if (fd >= 0) {
            if (write(fd, "x", 1) < 0) perror("write");
            close(fd);
        }
        snprintf(path, sizeof path, "%s/missing-%ld-%d", dir, id, i);
        if (open(path, O_RDONLY) >= 0) abort();
        struct stat st;
        stat(dir, &st);
        /* ping-pong: write to the next thread, read from ours */
        if (write(pipes[(id + 1) % 4][1], "p", 1) != 1) abort();
        if (read(pipes[id][0], buf, 1) != 1) abort();
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    dir = argc > 1 ? argv[1] : "/tmp";
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pipe(pipes[i])) abort();
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}
