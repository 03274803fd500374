/* Prints a line every 100 ms for a second, flushing each, so a reader sees them one by one. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec pause = {0, 100 * 1000 * 1000};
    for (int i = 0; i < 10; i++) {
        printf("tick %d\n", i);
        fflush(stdout);
        nanosleep(&pause, NULL);
    }
    return 0;
}
