/* Per-thread scratch memory for generated kernels: padded planes, im2col blocks, gathered features. */
#define _DEFAULT_SOURCE /* madvise */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime.h"

static _Thread_local void *buffer;
static _Thread_local int64_t size;

/* Frees a thread's buffer when the thread ends (pool workers joined by set_threads or unloading). */
static pthread_key_t owner;
static pthread_once_t owner_once = PTHREAD_ONCE_INIT;

static void release(void *p) { free(p); }

static void make_owner(void) {
    if (pthread_key_create(&owner, release) != 0) {
        abort();
    }
}

/* The key's destructor lives in this library: once it is unloaded, threads that outlive it (the
   application's) must not call it, so their last buffer is left to the process. */
__attribute__((destructor)) static void forget_owner(void) {
    if (pthread_once(&owner_once, make_owner) == 0) {
        pthread_key_delete(owner);
    }
}

/* Returns at least `bytes` bytes, 64-byte aligned, owned by the calling thread and reused by its next
   call: a kernel task asks once and is done with it before the thread runs another task. The buffer only
   grows, so a network's steady state allocates nothing. */
void *archc_scratch(int64_t bytes) {
    if (bytes > size) {
        pthread_once(&owner_once, make_owner);
        int64_t rounded = (bytes + 4095) / 4096 * 4096;
        free(buffer);
        buffer = aligned_alloc(64, (size_t)rounded);
        if (buffer == NULL) {
            abort();
        }
        size = rounded;
        pthread_setspecific(owner, buffer);
    }
    return buffer;
}

/* Returns `bytes` bytes of zeroed memory aligned to 2 MB and advised for transparent huge pages:
   weights and activations streamed on every run then take one TLB entry per 2 MB rather than per
   4 KB. Aborts when the system has no memory left. */
void *archc_huge_alloc(int64_t bytes) {
    const int64_t huge = 2 << 20;
    int64_t length = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, (size_t)length);
    if (p == NULL) {
        abort();
    }
#ifdef MADV_HUGEPAGE
    madvise(p, (size_t)length, MADV_HUGEPAGE);
#endif
    memset(p, 0, (size_t)length);
    return p;
}
