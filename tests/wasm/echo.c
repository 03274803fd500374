/* Prints its argv (one per line, argv[0] too) and then the environment variables it was given. */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    return 0;
}
