/* cpu_conv_gemm.c: convolutions as matrix products (im2col + oneDNN's dnnl_sgemm) on NCHW.
 *
 * For one image the convolution is y [O, P] = w [O, C K] x col [C K, P], where K = KH KW
 * taps, P = OH OW output pixels and col holds, in row (c, kh, kw), input channel c shifted by
 * the tap at every output pixel (zero where the tap falls in the padding). The data gradient
 * is col' = w^T gy scattered back onto the input (col2im), the weight gradient gw = gy col^T
 * summed over the images. A 1x1 stride-1 convolution without padding needs no col: it is x.
 *
 * Where it pays: layers whose products are large in every dimension (the full-size
 * discriminator's 4x4 layers: O 128-512, C K 1024-4096, P 961-4096), where oneDNN's sgemm
 * runs near the core's peak and oneDNN 2.6's direct jit:avx2 weight gradient does not
 * (docs/benchmarks.md). Whether it runs is the per-shape timed choice of cpu_conv_pick.c.
 *
 * col is built a block of output rows at a time (at most GEMM_COL_BYTES), so that it stays in
 * the outer caches however large the image; the products then run per block: the forward and
 * data gradient write their columns of y or col', the weight gradient sums over blocks
 * (sgemm's beta = 1). sgemm runs on the calling thread's OpenMP team, as oneDNN's primitives
 * do, and the col loops share out their rows over the same team.
 *
 * A transposed convolution is the adjoint of a convolution, so its three passes are these
 * three with the roles exchanged (cpu_conv.c maps them): its forward is the data gradient of
 * the convolution from its output to its input, its data gradient that convolution's
 * forward, its weight gradient that convolution's weight gradient with x and gy swapped; its
 * IOHW weights are the convolution's OIHW ones. */
#include "cpu.h"

#include <oneapi/dnnl/dnnl.h>
#include <string.h>

#define GEMM_COL_BYTES (4u << 20)

int cpu_gemm_ok(int IC, int OC, int KH, int KW, int dil)
{
    /* products of at least 8 rows by 8 terms: below that the call and col overheads are all
     * there is, and the timed choice would only spend time rejecting them (from 8 terms it
     * wins: an 8 -> 8 1x1 convolution on 4 x 64 x 64 runs 0.08 ms here against oneDNN's 0.22,
     * whose reorders are most of its time) */
    return dil == 1 && OC >= 8 && IC * KH * KW >= 8;
}

/* no col: a 1x1 stride-1 convolution without padding reads x (and writes gx) as it is */
static int no_col(const cpu_gemm_geom *g)
{
    return g->KH == 1 && g->KW == 1 && g->stride == 1 && g->pad == 0;
}

/* output rows per block of col */
static int block_rows(const cpu_gemm_geom *g)
{
    const size_t row = (size_t)g->C * g->KH * g->KW * g->OW * sizeof(float);
    const size_t r = GEMM_COL_BYTES / (row ? row : 1);
    return no_col(g) ? g->OH : r < 1 ? 1 : r > (size_t)g->OH ? g->OH : (int)r;
}

size_t cpu_gemm_scratch(const cpu_gemm_geom *g)
{
    return no_col(g) ? 0 : (size_t)g->C * g->KH * g->KW * block_rows(g) * g->OW;
}

/* the output columns whose tap kw lands inside an input row: ow in [lo, hi) */
static void tap_range(const cpu_gemm_geom *g, int kw, int *lo, int *hi)
{
    const int s = g->stride;
    int l = (g->pad - kw + s - 1) / s, h = (g->W + g->pad - kw + s - 1) / s;
    l = l < 0 ? 0 : l > g->OW ? g->OW : l;
    *lo = l;
    *hi = h > g->OW ? g->OW : h < l ? l : h;
}

/* col [C K, nr OW] of x [C, H, W] for output rows oh0 .. oh0 + nr - 1 */
static void im2col(const cpu_gemm_geom *g, const float *x, int oh0, int nr, float *col)
{
    const int K = g->KH * g->KW, rows = g->C * K, s = g->stride;
    const size_t pc = (size_t)nr * g->OW;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const int c = r / K, kh = r % K / g->KW, kw = r % g->KW;
        const float *xc = x + (size_t)c * g->H * g->W;
        float *o = col + (size_t)r * pc;
        int lo, hi;
        tap_range(g, kw, &lo, &hi);
        for (int i = 0; i < nr; i++, o += g->OW) {
            const int ih = (oh0 + i) * s + kh - g->pad;
            if (ih < 0 || ih >= g->H) {
                memset(o, 0, (size_t)g->OW * sizeof(float));
                continue;
            }
            const float *xr = xc + (size_t)ih * g->W + kw - g->pad;
            memset(o, 0, (size_t)lo * sizeof(float));
            if (s == 1)
                memcpy(o + lo, xr + lo, (size_t)(hi - lo) * sizeof(float));
            else
                for (int ow = lo; ow < hi; ow++)
                    o[ow] = xr[(size_t)ow * s];
            memset(o + hi, 0, (size_t)(g->OW - hi) * sizeof(float));
        }
    }
}

/* gx [C, H, W] += col [C K, nr OW] for output rows oh0 .. (the adjoint of im2col); each
 * thread owns whole input channels, so no two write the same element */
static void col2im(const cpu_gemm_geom *g, const float *col, int oh0, int nr, float *gx)
{
    const int K = g->KH * g->KW, s = g->stride;
    const size_t pc = (size_t)nr * g->OW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < g->C; c++)
        for (int t = 0; t < K; t++) {
            const int kh = t / g->KW, kw = t % g->KW;
            const float *o = col + ((size_t)c * K + t) * pc;
            float *gc = gx + (size_t)c * g->H * g->W;
            int lo, hi;
            tap_range(g, kw, &lo, &hi);
            for (int i = 0; i < nr; i++, o += g->OW) {
                const int ih = (oh0 + i) * s + kh - g->pad;
                if (ih < 0 || ih >= g->H)
                    continue;
                float *gr = gc + (size_t)ih * g->W + kw - g->pad;
                if (s == 1) {
#pragma omp simd
                    for (int ow = lo; ow < hi; ow++)
                        gr[ow] += o[ow];
                } else
                    for (int ow = lo; ow < hi; ow++)
                        gr[(size_t)ow * s] += o[ow];
            }
        }
}

/* the col of image xn for output rows oh0 .. oh0 + nr - 1: built in scratch, or xn itself */
static const float *block_col(const cpu_gemm_geom *g, const float *xn, int oh0, int nr,
                              float *scratch)
{
    if (no_col(g))
        return xn;
    im2col(g, xn, oh0, nr, scratch);
    return scratch;
}

/* y[c] (one image's [C, plane]) = b[c] */
static void fill_bias(float *y, int C, size_t plane, const float *b)
{
#pragma omp parallel for schedule(static) if ((size_t)C * plane > 65536)
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < plane; i++)
            y[(size_t)c * plane + i] = b[c];
}

void cpu_gemm_conv_fwd(const cpu_gemm_geom *g, const float *x, const float *w, const float *b,
                       float *y, float *scratch)
{
    const int CK = g->C * g->KH * g->KW, br = block_rows(g);
    const size_t P = (size_t)g->OH * g->OW;
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + (size_t)n * g->C * g->H * g->W;
        float *yn = y + (size_t)n * g->O * P;
        if (b)
            fill_bias(yn, g->O, P, b);
        for (int oh0 = 0; oh0 < g->OH; oh0 += br) {
            const int nr = g->OH - oh0 < br ? g->OH - oh0 : br;
            const dnnl_dim_t pc = (dnnl_dim_t)nr * g->OW;
            const float *col = block_col(g, xn, oh0, nr, scratch);
            dnnl_sgemm('N', 'N', g->O, pc, CK, 1.0f, w, CK, col, pc, b ? 1.0f : 0.0f,
                       yn + (size_t)oh0 * g->OW, (dnnl_dim_t)P);
        }
    }
}

void cpu_gemm_conv_bwd_data(const cpu_gemm_geom *g, const float *gy, const float *w, const float *b,
                            float *gx, float *scratch)
{
    const int CK = g->C * g->KH * g->KW, br = block_rows(g);
    const size_t P = (size_t)g->OH * g->OW, plane = (size_t)g->H * g->W;
    for (int n = 0; n < g->N; n++) {
        const float *gyn = gy + (size_t)n * g->O * P;
        float *gxn = gx + (size_t)n * g->C * plane;
        if (no_col(g)) { /* gx = w^T gy directly */
            if (b)
                fill_bias(gxn, g->C, plane, b);
            dnnl_sgemm('T', 'N', CK, (dnnl_dim_t)P, g->O, 1.0f, w, CK, gyn, (dnnl_dim_t)P,
                       b ? 1.0f : 0.0f, gxn, (dnnl_dim_t)P);
            continue;
        }
        if (b)
            fill_bias(gxn, g->C, plane, b);
        else
            memset(gxn, 0, (size_t)g->C * plane * sizeof(float));
        for (int oh0 = 0; oh0 < g->OH; oh0 += br) {
            const int nr = g->OH - oh0 < br ? g->OH - oh0 : br;
            const dnnl_dim_t pc = (dnnl_dim_t)nr * g->OW;
            dnnl_sgemm('T', 'N', CK, pc, g->O, 1.0f, w, CK, gyn + (size_t)oh0 * g->OW,
                       (dnnl_dim_t)P, 0.0f, scratch, pc);
            col2im(g, scratch, oh0, nr, gxn);
        }
    }
}

void cpu_gemm_conv_bwd_weights(const cpu_gemm_geom *g, const float *x, const float *gy, float *gw,
                               float *scratch)
{
    const int CK = g->C * g->KH * g->KW, br = block_rows(g);
    const size_t P = (size_t)g->OH * g->OW;
    float beta = 0.0f; /* the first product overwrites gw, the rest add to it */
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + (size_t)n * g->C * g->H * g->W;
        const float *gyn = gy + (size_t)n * g->O * P;
        for (int oh0 = 0; oh0 < g->OH; oh0 += br, beta = 1.0f) {
            const int nr = g->OH - oh0 < br ? g->OH - oh0 : br;
            const dnnl_dim_t pc = (dnnl_dim_t)nr * g->OW;
            const float *col = block_col(g, xn, oh0, nr, scratch);
            dnnl_sgemm('N', 'T', g->O, CK, pc, 1.0f, gyn + (size_t)oh0 * g->OW, (dnnl_dim_t)P, col,
                       pc, beta, gw, CK);
        }
    }
}
