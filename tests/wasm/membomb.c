/* Allocates (and touches) 1 MiB blocks until malloc gives up, then aborts like a real program would.
 * Each block is linked to the previous one so the compiler cannot drop the allocations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block {
    struct block *next;
    char data[(1 << 20) - sizeof(struct block *)];
};

int main(void) {
    struct block *head = NULL;
    size_t total = 0;
    for (;;) {
        struct block *b = malloc(sizeof *b);
        if (!b) {
            fprintf(stderr, "malloc failed after %zu MiB\n", total >> 20);
            abort();
        }
        memset(b->data, 1, sizeof b->data);
        b->next = head;
        head = b;
        total += sizeof *b;
    }
}
