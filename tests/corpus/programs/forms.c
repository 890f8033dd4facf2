#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char buf[4];
    getpid();
    open("/nonexistent/corpus", O_RDONLY);
    int fd = open("/dev/null", O_RDONLY);
    read(fd, buf, 4);
    close(fd);
    write(1, "a \"q\", (p) = 1\n", 15);
    syscall(500);
    return 0;
}
