/* A child blocked in read() is killed: its call never returns. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int p[2];
    if (pipe(p)) return 1;
    pid_t c = fork();
    if (c == 0) {
        char b;
        close(p[1]);
        read(p[0], &b, 1);
        _exit(0);
    }
    usleep(200000);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    return 0;
}
