/* Per-thread scratch memory for generated kernels: padded planes, im2col blocks, gathered features. */
#include <stdint.h>
#include <stdlib.h>

#include "runtime.h"

/* Returns at least `bytes` bytes, 64-byte aligned, owned by the calling thread and reused by its next
   call: a kernel task asks once and is done with it before the thread runs another task. The buffer only
   grows, so a network's steady state allocates nothing. */
void *archc_scratch(int64_t bytes) {
    static _Thread_local void *buffer;
    static _Thread_local int64_t size;
    if (bytes > size) {
        int64_t rounded = (bytes + 4095) / 4096 * 4096;
        free(buffer);
        buffer = aligned_alloc(64, (size_t)rounded);
        if (buffer == NULL) {
            abort();
        }
        size = rounded;
    }
    return buffer;
}
