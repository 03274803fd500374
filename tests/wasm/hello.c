#include <stdio.h>

int main(void) {
    puts("hello from wasm");
    return 0;
}
