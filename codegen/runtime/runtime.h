/* archc's C runtime: the thread pool and the run lock that generated network code calls. */
#ifndef ARCHC_RUNTIME_H
#define ARCHC_RUNTIME_H

#include <stdint.h>

/* Hidden even without -fvisibility=hidden: every network library carries its own pool, and two loaded
   into one process must not bind to each other's. */
#if defined(__GNUC__)
#define ARCHC_HIDDEN __attribute__((visibility("hidden")))
#else
#define ARCHC_HIDDEN
#endif

/* One unit of parallel work: called once for each index of a parallel_for. */
typedef void (*archc_task)(void *ctx, int64_t index);

/* Runs fn(ctx, i) for every i in [0, count), spread over the pool's threads, the calling one included;
   returns when all are done, with their writes visible to the caller. With one thread, a count of 1, or
   when called from inside a task, runs them in order on the calling thread. Calls from several threads
   at once are safe: they take turns. */
ARCHC_HIDDEN void archc_parallel_for(archc_task fn, void *ctx, int64_t count);

/* Sets the number of threads, the caller counting as one; n < 1 means 1, n > 1024 means 1024. Workers
   are created at the next parallel_for that needs them. Lowering the count joins the extra workers at
   once, or, when a parallel_for is in progress, at the next one. */
ARCHC_HIDDEN void archc_set_threads(int n);

/* The number of threads set (lowered when the system refused to create more). */
ARCHC_HIDDEN int archc_threads(void);

/* Serializes whole network runs, so concurrent calls to a generated <name>_run are safe. */
ARCHC_HIDDEN void archc_lock(void);
ARCHC_HIDDEN void archc_unlock(void);

/* Lifetime: idle workers spin for up to 0.3 ms, then sleep. Unloading the library (dlclose) or exiting
   the process joins them, unless a parallel_for is running at that moment. A fork() child starts with
   no workers and creates them as needed. */

/* Scratch memory of at least `bytes` bytes, 64-byte aligned, owned by the calling thread and valid until
   its next call (see scratch.c). */
ARCHC_HIDDEN void *archc_scratch(int64_t bytes);

/* Zeroed memory of `bytes` bytes, 2 MB aligned and advised for transparent huge pages (see scratch.c);
   released with free(). */
ARCHC_HIDDEN void *archc_huge_alloc(int64_t bytes);

#endif
