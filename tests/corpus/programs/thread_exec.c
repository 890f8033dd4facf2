/* A non-leader thread calls execve: strace prints "superseded by execve". */
#include <pthread.h>
#include <unistd.h>
static void *run(void *arg) {
    (void)arg;
    char *argv[] = {"/bin/true", NULL};
    execv(argv[0], argv);
    return NULL;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, run, NULL);
    pthread_join(t, NULL);
    return 1;
}
