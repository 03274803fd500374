/* Compiles to the wasm `unreachable` instruction. */
#include <stdio.h>

int main(void) {
    puts("about to trap");
    fflush(stdout);
    __builtin_trap();
}
