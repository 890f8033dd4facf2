/* SIGSTOP/SIGCONT during nanosleep: the kernel resumes it via restart_syscall.
   Handled signals interrupt read() (ERESTARTSYS, restarted with SA_RESTART,
   EINTR without) and pause() (ERESTARTNOHAND). */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static void on_sig(int s) { (void)s; }
int main(void) {
    pid_t c = fork();
    if (c == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sig;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR1, &sa, NULL);
        sa.sa_flags = 0;
        sigaction(SIGUSR2, &sa, NULL);
        struct timespec ts = {0, 600000000};
        nanosleep(&ts, NULL);
        int p[2];
        if (pipe(p)) _exit(1);
        char b;
        read(p[0], &b, 1);
        pause();
        _exit(0);
    }
    usleep(200000);
    kill(c, SIGSTOP);
    usleep(100000);
    kill(c, SIGCONT);
    usleep(700000);
    kill(c, SIGUSR1);
    usleep(100000);
    kill(c, SIGUSR2);
    usleep(100000);
    kill(c, SIGUSR1);
    waitpid(c, NULL, 0);
    return 0;
}
