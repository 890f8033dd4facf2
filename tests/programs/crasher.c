/* crasher SRC DST: stat SRC (so the trace has scenario work), then die of SIGSEGV. */
#include <stdio.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    struct stat st;
    if (argc > 1)
        stat(argv[1], &st);
    fflush(stdout);
    *(volatile int *)0 = 1;
    return 0;
}
