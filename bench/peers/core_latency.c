/* Prints the round trip, in ns, of a cache line between the first two CPUs this process may run on:
   two threads, one pinned to each, hand a counter back and forth. The two vCPUs of these machines
   sit at times on nearby cores (about 100 ns) and at times on distant ones (about 500 ns), and
   two-thread timings follow: bench/peers/peers.py records it beside them. Exits 1, printing
   nothing, where fewer than two CPUs are allowed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define ROUND_TRIPS 20000

static _Alignas(128) _Atomic long turn;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Answers each odd value of `turn` with the next even one. */
static void *answer(void *cpu)
{
    pin((int)(long)cpu);
    for (long i = 0; i < ROUND_TRIPS; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(void)
{
    cpu_set_t allowed;
    int cpus[2], found = 0;
    sched_getaffinity(0, sizeof allowed, &allowed);
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[found++] = c;
    if (found < 2)
        return 1;
    pin(cpus[0]);
    pthread_t other;
    if (pthread_create(&other, NULL, answer, (void *)(long)cpus[1]) != 0)
        return 1;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < ROUND_TRIPS; i++) {
        atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(other, NULL);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    printf("%.0f\n", ns / ROUND_TRIPS);
    return 0;
}
