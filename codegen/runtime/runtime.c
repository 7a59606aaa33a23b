/* archc's C runtime: a spin-then-sleep thread pool for generated code, and the run lock. */
#define _POSIX_C_SOURCE 200809L

#include "runtime.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* How long an idle thread spins before sleeping: it covers the gaps between a network's back-to-back
   parallel_for calls (and between runs of a tight loop) without burning a core between inferences. */
#define SPIN_NS 300000
/* Spinners look at the clock only every so many pauses, so the clock costs nothing next to the wait. */
#define SPINS_PER_CLOCK 64
/* Past this much spinning, spinners also yield the core at each clock check: with more threads than free
   cores, the thread they wait for may be queued behind them on the same core. Before it, they spin flat
   out, for the back-to-back calls where wake-up latency matters most. */
#define YIELD_AFTER_NS 20000
/* Past this many indices per thread they are claimed in chunks, so the claim counter stops being the
   bottleneck, while ~this many chunks per thread still balance uneven tasks. */
#define CHUNKS_PER_THREAD 32
/* More threads than any machine archc targets has cores: a larger request is a mistake, and would
   spawn threads until the system refuses. */
#define MAX_THREADS 1024
/* Hot atomics get lines of their own; 128 rather than 64 keeps adjacent-line prefetchers from
   pairing them up. */
#define LINE 128
/* Most home ranges a job's indices are split into (see run_tasks). */
#define HOMES 16

/* A job's state word packs its generation (high half) with the number of threads inside it (low half).
   The caller holds a reference while it claims work, and threads enter only while the count is positive,
   so once it drops to zero the job is closed for good: every index has been claimed and finished, and no
   late thread can enter and read job fields that the next parallel_for is rewriting. */
#define GEN(s) ((uint32_t)((s) >> 32))
#define REFS(s) ((uint32_t)(s))

static struct {
    /* Serializes parallel_for callers and worker management; what follows up to job_state is written
       only under it, and the job fields only while no job is open. */
    pthread_mutex_t lock;
    archc_task fn;
    void *ctx;
    int64_t count, chunk;
    uint32_t gen;
    int spawned;
    pthread_t *workers;
    int capacity;

    _Alignas(LINE) _Atomic uint64_t job_state;
    /* The job's indices in `ranges` home ranges, each with its claim counter. */
    int ranges;
    struct {
        _Alignas(LINE) _Atomic int64_t next;
    } home[HOMES];

    /* Sleeping: workers wait on `wake` for a new job, the caller on `done` for the last helper. */
    _Alignas(LINE) pthread_mutex_t sleep_lock;
    pthread_cond_t wake, done;
    _Atomic int sleepers;
    _Atomic bool caller_waiting;
    /* Workers whose id is at least this exit. */
    _Atomic int limit;
    /* Threads wanted, the caller included. */
    _Atomic int target;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .sleep_lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .target = 1,
};

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

/* Set on workers, and on the caller while it runs tasks: a parallel_for from inside a task runs inline
   instead of waiting on a pool that is busy with its parent. */
static _Thread_local bool in_pool;

/* Eases a spinning core: frees the pipeline for a hyperthread sibling and saves power. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    /* `yield` is a no-op on most cores; `isb` stalls a few dozen cycles, as Rust's spin_loop does. */
    __asm__ __volatile__("isb" ::: "memory");
#endif
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Called every SPINS_PER_CLOCK pauses of a spin that began at `start`; false once it should end in sleep. */
static bool keep_spinning(int64_t start)
{
    int64_t spun = now_ns() - start;
    if (spun > YIELD_AFTER_NS)
        sched_yield();
    return spun < SPIN_NS;
}

/* Claims indices of the open job until none are left; the caller (`id` 0) and every worker (`id` its
   index + 1) run this. A thread claims from its home range first, then from the others' in turn. Matrix
   products (and their panel packing) order their tasks by pixel tiles, so a thread's home range covers
   the same pixels in consecutive products and it reads much of what it wrote from its own L2; with one
   shared counter, tasks fell to threads at random. Measured at 2 threads against one counter (paired
   ratios): MobileNet V2 0.98, ShuffleNet V2 0.98-0.99, ResNet-18 0.99. */
static void run_tasks(int id)
{
    archc_task fn = pool.fn;
    void *ctx = pool.ctx;
    int64_t count = pool.count, chunk = pool.chunk;
    int ranges = pool.ranges;
    for (int k = 0; k < ranges; k++) {
        int r = (id + k) % ranges;
        int64_t last = (r + 1) * count / ranges;
        for (;;) {
            int64_t i = atomic_fetch_add_explicit(&pool.home[r].next, chunk, memory_order_relaxed);
            if (i >= last)
                break;
            int64_t end = last - i > chunk ? i + chunk : last;
            for (; i < end; i++)
                fn(ctx, i);
        }
    }
}

/* Sleeps until a job newer than `last` is published; false when this worker must exit instead. */
static bool sleep_until_job(int id, uint32_t last, uint64_t *s)
{
    bool stop;
    pthread_mutex_lock(&pool.sleep_lock);
    /* Sequentially consistent with publish(): either it sees this sleeper or this sees its job. */
    atomic_fetch_add(&pool.sleepers, 1);
    while (!(stop = id >= atomic_load(&pool.limit)) && GEN(*s = atomic_load(&pool.job_state)) == last)
        pthread_cond_wait(&pool.wake, &pool.sleep_lock);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.sleep_lock);
    return !stop;
}

/* Waits, spinning first, for a job newer than `last`; false when this worker must exit instead. */
static bool await_job(int id, uint32_t last, uint64_t *s)
{
    int64_t start = now_ns();
    for (unsigned k = 1;; k++) {
        *s = atomic_load_explicit(&pool.job_state, memory_order_relaxed);
        if (GEN(*s) != last)
            return true;
        cpu_relax();
        if (k % SPINS_PER_CLOCK == 0) {
            if (id >= atomic_load_explicit(&pool.limit, memory_order_relaxed))
                return false;
            if (!keep_spinning(start))
                return sleep_until_job(id, last, s);
        }
    }
}

/* Drops a worker's reference to the open job, waking the caller if this was the last one it sleeps on. */
static void leave_job(void)
{
    /* Release publishes this thread's task writes to the caller; sequential consistency pairs the
       decrement with the caller's caller_waiting store in wait_for_helpers(). */
    uint64_t prev = atomic_fetch_sub(&pool.job_state, 1);
    if (REFS(prev) == 1 && atomic_load(&pool.caller_waiting)) {
        pthread_mutex_lock(&pool.sleep_lock);
        pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.sleep_lock);
    }
}

/* Enters the job in state `s` if it is still open, and helps with it. */
static void join_job(int id, uint64_t s)
{
    uint32_t gen = GEN(s);
    while (REFS(s) > 0 && GEN(s) == gen) {
        /* Acquire pairs with publish(): the job fields and the reset claim counter are visible. */
        if (atomic_compare_exchange_weak_explicit(&pool.job_state, &s, s + 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
            run_tasks(id);
            leave_job();
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    in_pool = true;
    /* One behind the current generation, so a job published before this thread got going is joined. */
    uint32_t last = GEN(atomic_load_explicit(&pool.job_state, memory_order_relaxed)) - 1;
    uint64_t s;
    while (await_job(id, last, &s)) {
        last = GEN(s);
        join_job(id + 1, s);
    }
    return NULL;
}

/* Joins the workers from `keep` on; under pool.lock, with no job open. */
static void stop_workers(int keep)
{
    atomic_store(&pool.limit, keep);
    /* Under sleep_lock so no worker is between checking the limit and waiting. */
    pthread_mutex_lock(&pool.sleep_lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_lock);
    for (int i = keep; i < pool.spawned; i++)
        pthread_join(pool.workers[i], NULL);
    pool.spawned = keep;
}

static bool reserve_workers(int n)
{
    if (n <= pool.capacity)
        return true;
    pthread_t *grown = realloc(pool.workers, (size_t)n * sizeof *grown);
    if (!grown)
        return false;
    pool.workers = grown;
    pool.capacity = n;
    return true;
}

/* Starts workers up to `want`; under pool.lock, with no job open. When the system refuses, the pool
   settles for what it got, rather than retrying at every call. */
static void spawn_workers(int want)
{
    if (!reserve_workers(want))
        want = pool.capacity;
    atomic_store(&pool.limit, want);
    /* Workers inherit a full signal mask, so signals go to the application's own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; pool.spawned < want; pool.spawned++) {
        void *id = (void *)(intptr_t)pool.spawned;
        if (pthread_create(&pool.workers[pool.spawned], NULL, worker_main, id) != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool.spawned < want) {
        atomic_store(&pool.limit, pool.spawned);
        atomic_store(&pool.target, pool.spawned + 1);
    }
}

/* Brings the workers to the number set; under pool.lock. Returns the threads available, caller included. */
static int reconcile_workers(void)
{
    int want = atomic_load(&pool.target) - 1;
    if (want < pool.spawned)
        stop_workers(want);
    else if (want > pool.spawned)
        spawn_workers(want);
    return pool.spawned + 1;
}

static void publish(archc_task fn, void *ctx, int64_t count, int threads)
{
    int64_t chunk = count / ((int64_t)threads * CHUNKS_PER_THREAD);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.count = count;
    pool.chunk = chunk > 1 ? chunk : 1;
    pool.ranges = threads < HOMES ? threads : HOMES;
    for (int r = 0; r < pool.ranges; r++)
        atomic_store_explicit(&pool.home[r].next, r * count / pool.ranges, memory_order_relaxed);
    pool.gen++;
    /* Opens the job holding the caller's reference. Sequential consistency releases the fields above and
       pairs with sleep_until_job()'s sleeper count. */
    atomic_store(&pool.job_state, (uint64_t)pool.gen << 32 | 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.sleep_lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep_lock);
    }
}

/* Waits, spinning first, until no helper is inside the job. */
static void wait_for_helpers(void)
{
    int64_t start = now_ns();
    for (unsigned k = 1; REFS(atomic_load_explicit(&pool.job_state, memory_order_acquire)) != 0; k++) {
        cpu_relax();
        if (k % SPINS_PER_CLOCK == 0 && !keep_spinning(start)) {
            pthread_mutex_lock(&pool.sleep_lock);
            atomic_store(&pool.caller_waiting, true);
            while (REFS(atomic_load(&pool.job_state)) != 0)
                pthread_cond_wait(&pool.done, &pool.sleep_lock);
            atomic_store(&pool.caller_waiting, false);
            pthread_mutex_unlock(&pool.sleep_lock);
            return;
        }
    }
}

static void run_serially(archc_task fn, void *ctx, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        fn(ctx, i);
}

void archc_parallel_for(archc_task fn, void *ctx, int64_t count)
{
    if (count <= 1 || in_pool) {
        run_serially(fn, ctx, count);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    int threads = reconcile_workers();
    if (threads == 1) {
        pthread_mutex_unlock(&pool.lock);
        run_serially(fn, ctx, count);
        return;
    }
    publish(fn, ctx, count, threads);
    in_pool = true;
    run_tasks(0);
    in_pool = false;
    /* Acquire-release: if the caller is last out, it sees the helpers' writes; otherwise
       wait_for_helpers() acquires them. */
    if (REFS(atomic_fetch_sub(&pool.job_state, 1)) != 1)
        wait_for_helpers();
    pthread_mutex_unlock(&pool.lock);
}

void archc_set_threads(int n)
{
    int workers = n < 1 ? 0 : n > MAX_THREADS ? MAX_THREADS - 1 : n - 1;
    atomic_store(&pool.target, workers + 1);
    /* Extra workers are joined now unless a run holds the pool; then the next parallel_for does it. */
    if (in_pool || pthread_mutex_trylock(&pool.lock) != 0)
        return;
    if (pool.spawned > workers)
        stop_workers(workers);
    pthread_mutex_unlock(&pool.lock);
}

int archc_threads(void)
{
    return atomic_load(&pool.target);
}

void archc_lock(void)
{
    pthread_mutex_lock(&run_lock);
}

void archc_unlock(void)
{
    pthread_mutex_unlock(&run_lock);
}

/* In a fork child only the forking thread exists: the workers are gone, and locks that they or other
   threads held would stay locked forever. (Forking from inside a task is not supported.) */
static void reset_in_child(void)
{
    pool.spawned = 0;
    atomic_store(&pool.sleepers, 0);
    atomic_store(&pool.caller_waiting, false);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_mutex_init(&pool.sleep_lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pthread_mutex_init(&run_lock, NULL);
}

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, reset_in_child);
}

/* Workers run this library's code, so they must be gone before dlclose unmaps it (a spinning one
   would crash). Skipped when a run is in progress or exit() is called from a task: then the threads
   cannot be joined safely and are left behind. */
__attribute__((destructor)) static void stop_pool_on_unload(void)
{
    if (in_pool || pthread_mutex_trylock(&pool.lock) != 0)
        return;
    stop_workers(0);
    free(pool.workers);
    pool.workers = NULL;
    pool.capacity = 0;
    pthread_mutex_unlock(&pool.lock);
}
