/* The ceiling of archc's 1x1-convolution micro-kernel on this core, in plain C: the 4x3 tile
   (4 output channels by 3 vectors of 8 pixels, 12 accumulators) that `archc tune` picks for
   ShuffleNet V2 1.5x's 14x14 layers, over packed panels of the input ([k][24] floats per
   pixel tile) and weights packed [k][4] per channel tile, the accumulators starting at the
   bias and stored through ReLU, every channel tile under each pixel tile as the packed sweep
   walks them. No pixel tails, no packing, no tasks: what is left is the inner loop and the
   per-tile epilogue, so the GFLOP/s it prints bound what a layer of that shape reaches in
   archc's NCHW kernels. BENCHMARKS.md (session 16) has the numbers.

       cc -O2 -mavx2 -mfma bench/ceiling/gemm_tile.c -o /tmp/gemm_tile
       /tmp/gemm_tile K M N     # reduction, output channels (of 4), pixels (of 24)
*/
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROWS 4
#define COLS 24

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The core's peak: 10 independent multiply-add chains on operands the compiler cannot see. */
static double peak_gflops(void)
{
    long n = 100000000;
    const long runs = n;
    double t = now();
    __asm__ volatile("vxorps %%ymm14, %%ymm14, %%ymm14\n vxorps %%ymm15, %%ymm15, %%ymm15\n"
                     "1:\n"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n"
                     "dec %0\n jnz 1b\n"
                     : "+r"(n)
                     :
                     : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm14", "xmm15");
    return runs * 10.0 * 16 / (now() - t) / 1e9;
}

#define FMA_ROW(r, w)                                                                              \
    do {                                                                                           \
        __m256 b = _mm256_broadcast_ss((w) + (r));                                                 \
        a##r##0 = _mm256_fmadd_ps(b, x0, a##r##0);                                                 \
        a##r##1 = _mm256_fmadd_ps(b, x1, a##r##1);                                                 \
        a##r##2 = _mm256_fmadd_ps(b, x2, a##r##2);                                                 \
    } while (0)

#define STORE_ROW(r)                                                                               \
    do {                                                                                           \
        _mm256_storeu_ps(out[r] + p0, _mm256_max_ps(a##r##0, zero));                               \
        _mm256_storeu_ps(out[r] + p0 + 8, _mm256_max_ps(a##r##1, zero));                           \
        _mm256_storeu_ps(out[r] + p0 + 16, _mm256_max_ps(a##r##2, zero));                          \
    } while (0)

/* out[r][p0 .. p0 + 24) = relu(bias[r] + sum_k w[k][r] panel[k][0 .. 24)) for r < 4. */
__attribute__((noinline)) static void tile(int k, const float *panel, const float *w, const float *bias,
                                           float **out, long p0)
{
    __m256 a00 = _mm256_broadcast_ss(bias), a01 = a00, a02 = a00;
    __m256 a10 = _mm256_broadcast_ss(bias + 1), a11 = a10, a12 = a10;
    __m256 a20 = _mm256_broadcast_ss(bias + 2), a21 = a20, a22 = a20;
    __m256 a30 = _mm256_broadcast_ss(bias + 3), a31 = a30, a32 = a30;
    for (int j = 0; j < k; j++) {
        const float *x = panel + (long)j * COLS, *wj = w + (long)j * ROWS;
        /* archc's tiles prefetch their weights 4 KB ahead, once per step. */
        _mm_prefetch((const char *)wj + 4096, _MM_HINT_T0);
        __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8), x2 = _mm256_loadu_ps(x + 16);
        FMA_ROW(0, wj);
        FMA_ROW(1, wj);
        FMA_ROW(2, wj);
        FMA_ROW(3, wj);
    }
    __m256 zero = _mm256_setzero_ps();
    STORE_ROW(0);
    STORE_ROW(1);
    STORE_ROW(2);
    STORE_ROW(3);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s K M N (M a multiple of %d, N of %d)\n", argv[0], ROWS, COLS);
        return 2;
    }
    long k = atol(argv[1]), m = atol(argv[2]), n = atol(argv[3]);
    if (k < 1 || m < ROWS || m % ROWS || n < COLS || n % COLS) {
        fprintf(stderr, "K must be positive, M a multiple of %d, N of %d\n", ROWS, COLS);
        return 2;
    }
    float *panels = aligned_alloc(64, sizeof(float) * k * n);
    float *weights = aligned_alloc(64, sizeof(float) * k * m);
    float *bias = aligned_alloc(64, sizeof(float) * m);
    float *y = aligned_alloc(64, sizeof(float) * m * n);
    float **rows = malloc(sizeof(float *) * m);
    if (!panels || !weights || !bias || !y || !rows) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    for (long i = 0; i < k * n; i++)
        panels[i] = 1e-3f * (float)(i % 7);
    for (long i = 0; i < k * m; i++)
        weights[i] = 1e-3f * (float)(i % 5);
    for (long i = 0; i < m; i++) {
        bias[i] = 0.5f;
        rows[i] = y + i * n;
    }
    double peak = peak_gflops(), best = 1e30;
    for (int run = 0; run < 200; run++) {
        double t = now();
        for (long pt = 0; pt < n / COLS; pt++)
            for (long mt = 0; mt < m / ROWS; mt++)
                tile((int)k, panels + pt * k * COLS, weights + mt * k * ROWS, bias + mt * ROWS,
                     rows + mt * ROWS, pt * COLS);
        t = now() - t;
        best = t < best ? t : best;
    }
    double gflops = 2.0 * k * m * n / best / 1e9;
    printf("K %ld, M %ld, N %ld: %.1f GFLOP/s, %.0f%% of the FMA peak (%.1f GFLOP/s)\n", k, m, n, gflops,
           100 * gflops / peak, peak);
    return 0;
}
