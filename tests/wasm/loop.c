/* Spins forever; the volatile counter keeps the optimiser from removing the loop. */
int main(void) {
    volatile unsigned long n = 0;
    for (;;) n++;
}
