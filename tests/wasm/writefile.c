/* Writes argv[2] into the file argv[1]; on failure says why on stderr and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fputs(argv[2], f);
    fclose(f);
    puts("written");
    return 0;
}
