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
   returns when all are done, with their writes visible. With one thread, or count 1, or when called from
   inside a task, runs them in order on the calling thread. */
ARCHC_HIDDEN void archc_parallel_for(archc_task fn, void *ctx, int64_t count);

/* Sets the number of threads, the caller counting as one; n < 1 means 1. Workers are created at the next
   parallel_for that needs them; lowering the count joins the extra ones now, or at the next parallel_for
   when a run is in progress. */
ARCHC_HIDDEN void archc_set_threads(int n);

/* The number of threads set (lowered when the system refused to create more). */
ARCHC_HIDDEN int archc_threads(void);

/* Serializes whole network runs, so concurrent calls to a generated <name>_run are safe. */
ARCHC_HIDDEN void archc_lock(void);
ARCHC_HIDDEN void archc_unlock(void);

#endif
