/* Large buffers that the kernel may back with 2 MiB pages. */
#include "flx_core.h"

#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HUGE_BYTES ((size_t)2 << 20)

void *flx_alloc_large(size_t bytes)
{
    if (bytes < 2 * HUGE_BYTES) return malloc(bytes ? bytes : 1);
    /* Whole 2 MiB pages: weight and activation matrices are streamed row by
     * row with large strides, and with 4 KiB pages the GEMM packing and the
     * first touch of every page cost TLB misses and page faults. */
    size_t rounded = (bytes + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(HUGE_BYTES, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, rounded, MADV_HUGEPAGE);   /* advisory; THP may be off */
#endif
    return p;
}
