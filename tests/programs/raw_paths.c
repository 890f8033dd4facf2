/* raw_paths MODE DIR: known path-taking calls, for traces taken with -e raw=...
 *   fdcwd: 4 openat(AT_FDCWD, ...) (one via open(2)), nothing else that takes a path.
 *   dirfd: the same, then openat(dirfd, "f", O_CREAT) and fstatat(dirfd, "", AT_EMPTY_PATH).
 * Linked statically so that no dynamic loader adds opens of its own. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    int d = open(argv[2], O_RDONLY | O_DIRECTORY);
    if (d < 0)
        return 1;
    for (int i = 0; i < 3; i++) {
        int f = openat(AT_FDCWD, argv[2], O_RDONLY | O_DIRECTORY);
        if (f < 0)
            return 1;
        close(f);
    }
    if (strcmp(argv[1], "dirfd") == 0) {
        int g = openat(d, "f", O_WRONLY | O_CREAT, 0644);
        if (g < 0)
            return 1;
        close(g);
        struct stat st;
        if (fstatat(d, "", &st, AT_EMPTY_PATH) != 0)
            return 1;
    }
    close(d);
    return 0;
}
