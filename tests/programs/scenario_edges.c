/* scenario_edges SRC: calls on the scenario that a collector can miss or invent.
 * SRC holds a.txt whose content is "a<b". By construction, these touch SRC:
 *   chdir(SRC), truncate("a.txt"), statfs(SRC/a.txt), openat(AT_FDCWD, "a.txt"),
 *   read(fd, "a<b") (data with '<'), close(fd)                      -> 6 scenario calls
 * and these do not: openat("/dev/null"), write(null, "log: 3<SRC/a.txt> done") (data
 * that looks like a -y decoration), close(null), chdir("/").
 * Linked statically so that no dynamic loader adds calls of its own. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    char path[4096], msg[4200];
    snprintf(path, sizeof path, "%s/a.txt", argv[1]);
    if (chdir(argv[1]) != 0 || truncate("a.txt", 3) != 0)
        return 1;
    struct statfs fs;
    if (statfs(path, &fs) != 0)
        return 1;
    int fd = open("a.txt", O_RDONLY);
    char buf[3];
    if (fd < 0 || read(fd, buf, 3) != 3 || close(fd) != 0)
        return 1;
    int null = open("/dev/null", O_WRONLY);
    int n = snprintf(msg, sizeof msg, "log: 3<%s> done", path);
    if (null < 0 || write(null, msg, (size_t)n) != n || close(null) != 0)
        return 1;
    return chdir("/") == 0 ? 0 : 1;
}
