/* Forms: an unknown syscall number, a deleted file's fd (-y "(deleted)"),
   a path with spaces, quotes, <, >, commas, parentheses and " = ". */
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    syscall(500, 1, 2, 3);
    snprintf(path, sizeof path, "%s/we ird \"q\" <a>, (b) = 3 \\", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    unlink(path);
    write(fd, "a = b) = 7\n\"", 12);
    fsync(fd);
    close(fd);
    return 0;
}
