/* Writes argv[1] bytes of 'x' to stdout, 64 KiB at a time, then exits 0. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static char buf[65536];
    long left = argc > 1 ? atol(argv[1]) : 0;
    memset(buf, 'x', sizeof buf);
    while (left > 0) {
        long n = left < (long)sizeof buf ? left : (long)sizeof buf;
        ssize_t written = write(1, buf, (size_t)n);
        if (written <= 0) return 1;
        left -= written;
    }
    return 0;
}
