/* Threads that sleep and read forever: a target to attach to and detach from. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>
static int p[2];
static void *t(void *a) {
    (void)a;
    char b;
    for (;;) { read(p[0], &b, 1); }
    return NULL;
}
int main(void) {
    pthread_t th[3];
    if (pipe(p)) return 1;
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, t, NULL);
    for (;;) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        write(p[1], "x", 1);
    }
}
