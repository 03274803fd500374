#include <stdio.h>
#include <stdlib.h>

int main(void) {
    puts("exiting with 3");
    exit(3);
}
