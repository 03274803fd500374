/* Never ends, but sleeps 100 ms at a time: a task that runs for ever without taking a core, and
   stops within a tick of being cancelled (berth checks between its sleeps). */
#include <time.h>

int main(void) {
    struct timespec pause = {0, 100 * 1000 * 1000};
    for (;;) nanosleep(&pause, NULL);
}
