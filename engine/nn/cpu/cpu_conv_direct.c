/* cpu_conv_direct.c: direct AVX2 kernels for the narrow convolutions oneDNN 2.6 runs slowly.
 *
 * A convolution with one input or one output channel (the generator's 7x7 convolutions from
 * and to the image, the discriminator's last 4x4 to one channel) cannot fill oneDNN's
 * 8-channel blocks: its jit:avx2 kernels run them at 2-4 GFLOP/s, where these row kernels
 * vectorise along the image row instead of the channels: the forward keeps up to 24-64 outputs
 * of a row of up to 4 output channels in registers over every input channel and tap, so that
 * each input vector loaded serves all of them. Only stride 1, dilation 1, pad <= kernel - 1, kernel
 * width <= 8; the caller (cpu_conv.c) checks cpu_direct_conv_ok. Both gradients of a strided
 * convolution from one input channel also run here (the weight gradient on column phases, the
 * data gradient on output phases, below), and so
 * does the weight gradient of the discriminator's multi-channel 4x4 convolutions (stride 1 and
 * 2), where a register-tiled kernel on NCHW beats oneDNN's jit:avx2 one and its reorders
 * (0.82-0.95 of its time per layer: `make build/conv_rate`, docs/benchmarks.md). The forward and
 * data gradient of stride-1 convolutions of a few channels (NARROW_MAX) are offered to the
 * timed choice too; on an AVX-512 CPU the forward and the stride-1 weight gradient run on the
 * 16-wide twins in cpu_conv_direct512.c, which win there on the segmentors' 8- and 16-channel
 * 64x64 levels and the generators' 7x7 convolutions (docs/benchmarks.md).
 *
 * Shapes (NCHW): x [N, C, Hp, Wp] already zero-padded, w [O, C, KH, KW], y [N, O, OH, OW]
 * with OH = Hp - KH + 1, OW = Wp - KW + 1. The backward data pass is a forward pass of the
 * padded output gradient with the flipped, transposed kernel. */
#include "cpu.h"

#include <immintrin.h>
#include <string.h>

#define WG_MR 3 /* output channels per weight-gradient tile */
#define WG_K 4  /* the tiled weight gradient's kernel: 4x4 (cpu_direct_wgrad_tiled) */
/* the most channels of a multi-channel stride-1 convolution offered to the timed choice */
#define NARROW_MAX 32

int cpu_direct_conv_ok(int transposed, int IC, int OC, int KH, int KW, int stride, int dil, int pad,
                       int pass)
{
    if (transposed || dil != 1 || KW > 8 || pad < 0 || pad > KH - 1 || pad > KW - 1)
        return 0;
    if (stride == 1 && (IC == 1 || OC == 1))
        return 1;
    /* a few channels at stride 1 (the segmentors' top levels, 8 and 16 channels at 64x64):
     * the forward and data gradient on the row kernels, the weight gradient on AVX-512 only
     * (cpu_conv_direct512.c; the AVX2 row kernel does one FMA per load there) */
    if (stride == 1 && IC <= NARROW_MAX && OC <= NARROW_MAX && (pass < 2 || cpu_isa_avx512()))
        return 1;
    /* strided, from a one-channel input (the discriminator's first convolution): the weight
     * gradient through the column phases, the data gradient through the output phases */
    if (pass >= 1 && IC == 1 && stride <= 4)
        return 1;
    return pass == 2 && cpu_direct_wgrad_tiled(IC, OC, KH, KW, stride);
}

int cpu_direct_wgrad_tiled(int IC, int OC, int KH, int KW, int stride)
{
    /* the weight gradient of multi-channel 4x4 convolutions (the discriminator's): the tiled
     * kernel below against oneDNN's jit:avx2 weight gradient (docs/benchmarks.md) */
    return KH == WG_K && KW == WG_K && stride <= 2 && IC >= 8 && OC >= 8;
}

/* lanes [0, n) of an 8-float vector, n in 1..8 */
static __m256i lane_mask(int n)
{
    static const int m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

/* MR output channels x NV vectors of 8 outputs of one output row, summed over every input
 * channel and kernel tap with the accumulators in registers: x at (n, 0, oh, ow) of the padded
 * input (channel pitch cp, row pitch Wp), w at (o, 0, 0, 0) (output-channel pitch wo), y at
 * (n, o, oh, ow) (output-channel pitch yo); with tail, the last vector holds only m's lanes.
 * Each input vector loaded serves MR output channels. */
static inline __attribute__((always_inline)) void
fwd_blk(const int MR, const int NV, const int tail, __m256i m, const float *x, int C, size_t cp,
        int Wp, const float *w, size_t wo, int KH, int KW, const float *b, float *y, size_t yo)
{
    __m256 acc[12];
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            acc[i * NV + j] = _mm256_set1_ps(b ? b[i] : 0.0f);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++) {
            const float *xr = x + c * cp + (size_t)kh * Wp;
            const float *wr = w + ((size_t)c * KH + kh) * KW;
            for (int kw = 0; kw < KW; kw++) {
                __m256 xv[8];
#pragma GCC unroll 8
                for (int j = 0; j < NV; j++)
                    xv[j] = tail && j == NV - 1 ? _mm256_maskload_ps(xr + kw + 8 * j, m)
                                                : _mm256_loadu_ps(xr + kw + 8 * j);
#pragma GCC unroll 4
                for (int i = 0; i < MR; i++) {
                    const __m256 u = _mm256_broadcast_ss(wr + i * wo + kw);
#pragma GCC unroll 8
                    for (int j = 0; j < NV; j++)
                        acc[i * NV + j] = _mm256_fmadd_ps(u, xv[j], acc[i * NV + j]);
                }
            }
        }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) {
            float *yv = y + i * yo + 8 * j;
            if (tail && j == NV - 1)
                _mm256_maskstore_ps(yv, m, acc[i * NV + j]);
            else
                _mm256_storeu_ps(yv, acc[i * NV + j]);
        }
}

#define FWD_CASE(mr, nv)                                                                           \
    case (mr)*32 + (nv)*2:                                                                         \
        fwd_blk(mr, nv, 0, m, x, C, cp, Wp, w, wo, KH, KW, b, y, yo);                              \
        break;                                                                                     \
    case (mr)*32 + (nv)*2 + 1:                                                                     \
        fwd_blk(mr, nv, 1, m, x, C, cp, Wp, w, wo, KH, KW, b, y, yo);                              \
        break

static void fwd_any(int mr, int nv, int tail, __m256i m, const float *x, int C, size_t cp, int Wp,
                    const float *w, size_t wo, int KH, int KW, const float *b, float *y, size_t yo)
{
    switch (mr * 32 + nv * 2 + tail) {
        FWD_CASE(4, 1);
        FWD_CASE(4, 2);
        FWD_CASE(4, 3);
        FWD_CASE(2, 1);
        FWD_CASE(2, 2);
        FWD_CASE(2, 3);
        FWD_CASE(2, 4);
        FWD_CASE(2, 5);
        FWD_CASE(2, 6);
        FWD_CASE(1, 1);
        FWD_CASE(1, 2);
        FWD_CASE(1, 3);
        FWD_CASE(1, 4);
        FWD_CASE(1, 5);
        FWD_CASE(1, 6);
        FWD_CASE(1, 7);
        FWD_CASE(1, 8);
    }
}

void cpu_direct_conv_fwd(const float *x, int N, int C, int Hp, int Wp, const float *w, int O,
                         int KH, int KW, const float *b, float *y)
{
    if (cpu_isa_avx512()) {
        cpu_direct512_conv_fwd(x, N, C, Hp, Wp, w, O, KH, KW, b, y);
        return;
    }
    const int OH = Hp - KH + 1, OW = Wp - KW + 1;
    const long rows = (long)N * OH;
    const size_t cp = (size_t)Hp * Wp, wo = (size_t)C * KH * KW, yo = (size_t)OH * OW;
    const int nvec = (OW + 7) / 8;
    const __m256i m = lane_mask(OW - 8 * (nvec - 1));
    /* one output row of every output channel per task: blocks of 4, 2 or 1 output channels
     * by 3, 6 or 8 vectors of the row (12 or 8 accumulators) */
#pragma omp parallel for schedule(static)
    for (long t = 0; t < rows; t++) {
        const int n = (int)(t / OH), oh = (int)(t % OH);
        for (int o = 0; o < O;) {
            const int mr = O - o >= 4   ? 4
                           : O - o >= 2 ? 2
                                        : 1,
                      nvmax = mr == 4   ? 3
                              : mr == 2 ? 6
                                        : 8;
            for (int v = 0; v < nvec; v += nvmax) {
                const int nv = nvec - v < nvmax ? nvec - v : nvmax;
                const int tail = v + nv == nvec && (OW & 7);
                fwd_any(mr, nv, tail, m, x + (size_t)n * C * cp + (size_t)oh * Wp + 8 * v, C, cp,
                        Wp, w + (size_t)o * wo, wo, KH, KW, b ? b + o : NULL,
                        y + ((size_t)n * O + o) * yo + (size_t)oh * OW + 8 * v, yo);
            }
            o += mr;
        }
    }
}

/* For one output phase (input rows r, r + s, ...) of a strided convolution's data gradient:
 * the first tap q = (r + p) mod s, the number of taps n = ceil((K - q) / s) and the row offset
 * c = floor((r + p) / s): gx[s a + r] = sum_i w[q + s i] gy[a + c - i], i < n. */
static void phase_taps(int r, int s, int p, int K, int *q, int *n, int *c)
{
    *q = (r + p) % s;
    *n = (K - *q + s - 1) / s;
    *c = (r + p) / s;
}

/* the zero border around gy: a phase reads at most 2 ceil(K / s) + 2 rows or columns past the
 * gradient's edges (its offset c <= (s - 1 + p) / s <= K / s + 1, and it covers up to
 * ceil(H / s) rows where gy has at least (H + 2 p - K) / s + 1) */
static int phase_border(int KH, int KW, int s)
{
    const int K = KH > KW ? KH : KW;
    return 2 * ((K + s - 1) / s) + 2;
}

size_t cpu_direct_bwd_data_strided_size(int N, int O, int OH, int OW, int KH, int KW, int stride,
                                        int H, int W)
{
    const int E = phase_border(KH, KW, stride);
    const int A = (H + stride - 1) / stride, B = (W + stride - 1) / stride;
    return (size_t)N * O * (OH + 2 * E) * (OW + 2 * E) + (size_t)N * A * B +
           (size_t)O * (KH / stride + 1) * (KW / stride + 1) + 64;
}

void cpu_direct_conv_bwd_data_strided(const float *gy, int N, int O, int OH, int OW, const float *w,
                                      int KH, int KW, int stride, int pad, float *gx, int H, int W,
                                      float *scratch)
{
    /* gy zero-padded by E on every side; each of the stride x stride output phases of gx is a
     * stride-1 correlation of it with a sub-kernel of the flipped taps of that phase, run on
     * the forward kernels (one output channel, blocks of 8 vectors of a row) */
    const int s = stride, E = phase_border(KH, KW, s);
    const int Hg = OH + 2 * E, Wg = OW + 2 * E;
    const size_t cp = (size_t)Hg * Wg;
    float *gp = scratch, *ph = gp + (size_t)N * O * cp;
    const int Amax = (H + s - 1) / s, Bmax = (W + s - 1) / s;
    float *wsub = ph + (size_t)N * Amax * Bmax;
    cpu_direct_pad_to(gy, N, O, OH, OW, E, E, 1, Wg, gp);
    for (int r = 0; r < s; r++)
        for (int t = 0; t < s; t++) {
            int qr, nr, cr, qt, nt, ct;
            phase_taps(r, s, pad, KH, &qr, &nr, &cr);
            phase_taps(t, s, pad, KW, &qt, &nt, &ct);
            const int A = (H - r + s - 1) / s, B = (W - t + s - 1) / s;
            if (A <= 0 || B <= 0)
                continue;
            /* wsub[o][j][l] = w[o][0][qr + s (nr - 1 - j)][qt + s (nt - 1 - l)] */
            for (int o = 0; o < O; o++)
                for (int j = 0; j < nr; j++)
                    for (int l = 0; l < nt; l++)
                        wsub[((size_t)o * nr + j) * nt + l] =
                            w[((size_t)o * KH + qr + s * (nr - 1 - j)) * KW + qt +
                              s * (nt - 1 - l)];
            const int R0 = E + cr - (nr - 1), C0 = E + ct - (nt - 1);
            const int nvec = (B + 7) / 8;
            const __m256i m = lane_mask(B - 8 * (nvec - 1));
#pragma omp parallel for schedule(static)
            for (long ta = 0; ta < (long)N * A; ta++) {
                const int n = (int)(ta / A), a = (int)(ta % A);
                const float *x0 = gp + (size_t)n * O * cp + (size_t)(R0 + a) * Wg + C0;
                float *y0 = ph + ((size_t)n * A + a) * B;
                for (int v = 0; v < nvec; v += 8) {
                    const int nv = nvec - v < 8 ? nvec - v : 8;
                    const int tail = v + nv == nvec && (B & 7);
                    fwd_any(1, nv, tail, m, x0 + 8 * v, O, cp, Wg, wsub, 0, nr, nt, NULL,
                            y0 + 8 * v, 0);
                }
                float *gr = gx + ((size_t)n * H + (size_t)s * a + r) * W + t;
                for (int b = 0; b < B; b++)
                    gr[(size_t)s * b] = y0[b];
            }
        }
}

static float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* one task of the weight gradient: the KW taps of kernel row kh from input channel c to output
 * channel o, summed over every image and output pixel (KW a constant in each instance, so the
 * accumulators stay in registers) */
static inline __attribute__((always_inline)) void wgrad_row(const int KW, const float *x, int N,
                                                            int C, size_t phase, int Wq, int stride,
                                                            const float *gy, int O, int OH, int OW,
                                                            int o, int c, int kh, const size_t *off,
                                                            float *dst)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int k = 0; k < KW; k++)
        acc[k] = _mm256_setzero_ps();
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++) {
            const float *g = gy + (((size_t)n * O + o) * OH + oh) * OW;
            const float *xr =
                x + ((size_t)n * C + c) * stride * phase + (size_t)(stride * oh + kh) * Wq;
            int ow = 0;
            for (; ow + 8 <= OW; ow += 8) {
                const __m256 gv = _mm256_loadu_ps(g + ow);
#pragma GCC unroll 8
                for (int k = 0; k < KW; k++)
                    acc[k] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(xr + off[k] + ow), acc[k]);
            }
            if (ow < OW) {
                const __m256i m = lane_mask(OW - ow);
                const __m256 gv = _mm256_maskload_ps(g + ow, m);
#pragma GCC unroll 8
                for (int k = 0; k < KW; k++)
                    acc[k] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(xr + off[k] + ow, m), acc[k]);
            }
        }
#pragma GCC unroll 8
    for (int k = 0; k < KW; k++)
        dst[k] = hsum(acc[k]);
}

#define WGRAD_CASE(kw)                                                                             \
    case kw:                                                                                       \
        wgrad_row(kw, x, N, C, phase, Wq, stride, gy, O, OH, OW, o, c, kh, off, dst);              \
        break

void cpu_direct_conv_bwd_weights(const float *x, int N, int C, int Hp, int Wq, int stride,
                                 const float *gy, int O, int OH, int OW, int KH, int KW, float *gw,
                                 float *gb)
{
    /* x holds `stride` column phases per channel: x[n][c][p][h][j] = xpad[n][c][h][stride j + p],
     * so the taps of output column ow are contiguous in ow: xpad[s oh + kh][s ow + kw] =
     * phase kw % s, row s oh + kh, column ow + kw / s. */
    const long tasks = (long)O * C * KH;
    const size_t phase = (size_t)Hp * Wq;
    size_t off[8];
    for (int k = 0; k < KW; k++)
        off[k] = (size_t)(k % stride) * phase + (size_t)(k / stride);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; t++) {
        const int o = (int)(t / ((long)C * KH)), c = (int)(t / KH % C), kh = (int)(t % KH);
        float *dst = gw + (((size_t)o * C + c) * KH + kh) * KW;
        switch (KW) {
            WGRAD_CASE(1);
            WGRAD_CASE(2);
            WGRAD_CASE(3);
            WGRAD_CASE(4);
            WGRAD_CASE(5);
            WGRAD_CASE(6);
            WGRAD_CASE(7);
            WGRAD_CASE(8);
        }
    }
    if (gb)
        cpu_direct_bias_grad(gy, N, O, (size_t)OH * OW, gb);
}

void cpu_direct_bias_grad(const float *gy, int N, int O, size_t plane, float *gb)
{
    for (int o = 0; o < O; o++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            const float *g = gy + ((size_t)n * O + o) * plane;
            /* in double, reordered across vector lanes: a serial chain of double adds would
             * take longer than the weight gradient it goes with */
#pragma omp simd reduction(+ : s)
            for (size_t i = 0; i < plane; i++)
                s += g[i];
        }
        gb[o] = (float)s;
    }
}

/* ---- the weight gradient of multi-channel convolutions ---------------------------------
 * gw[o][c][kh][kw] = sum over n, oh, ow of gy[n][o][oh][ow] xpad[n][c][s oh + kh][s ow + kw].
 * One task is a tile of WG_MR = 3 output channels and one input channel; tasks run in blocks of
 * input channels, every tile through one block before the next. A task's rows are taken in
 * chunks that fit the L1 cache together (the tile's output-gradient rows, the input rows they
 * touch), and each chunk is read once per kernel row kh; the 3 x KW sums of one kh stay in
 * registers over a chunk (KW = 4: 12 accumulators, 3 output-gradient vectors and 1 input
 * vector, the 16 AVX2 registers) and in a small per-task array between chunks. Each vector step
 * does 3 KW FMAs for 3 + KW loads (Zen 1 issues one 256-bit load and one 256-bit FMA a cycle).
 * The output gradient is packed by cpu_direct_pack_tiles: a tile's three rows lie next to each
 * other (planes 16 KB apart, as a 64x64 image's are, would share L1 sets) and are zero-padded
 * to OWp, a multiple of 8, so there are no masked tails: the extra input lanes read multiply
 * zeros (the caller pads x to Wq >= OWp + (KW - 1) / stride so that they stay inside it). */

static inline __attribute__((always_inline)) void wg_rows(const int KW, const float *g, int rows,
                                                          int OWp, const float *x, size_t xrow,
                                                          const size_t *off, __m256 *part)
{
    __m256 acc[WG_MR][4];
#pragma GCC unroll 4
    for (int i = 0; i < WG_MR; i++)
#pragma GCC unroll 4
        for (int k = 0; k < KW; k++)
            acc[i][k] = part[i * KW + k];
    for (int r = 0; r < rows; r++) {
        const float *gr = g + (size_t)r * WG_MR * OWp, *xr = x + r * xrow;
        for (int v = 0; v < OWp; v += 8) {
            __m256 gv[WG_MR];
#pragma GCC unroll 4
            for (int i = 0; i < WG_MR; i++)
                gv[i] = _mm256_loadu_ps(gr + i * OWp + v);
#pragma GCC unroll 4
            for (int k = 0; k < KW; k++) {
                const __m256 xv = _mm256_loadu_ps(xr + off[k] + v);
#pragma GCC unroll 4
                for (int i = 0; i < WG_MR; i++)
                    acc[i][k] = _mm256_fmadd_ps(gv[i], xv, acc[i][k]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < WG_MR; i++)
#pragma GCC unroll 4
        for (int k = 0; k < KW; k++)
            part[i * KW + k] = acc[i][k];
}

size_t cpu_direct_pack_size(int N, int O, int OH, int OWp)
{
    return (size_t)N * ((O + WG_MR - 1) / WG_MR) * WG_MR * OH * OWp;
}

void cpu_direct_pack_tiles(const float *gy, int N, int O, int OH, int OW, int OWp, float *gp)
{
    const int tiles = (O + WG_MR - 1) / WG_MR;
#pragma omp parallel for schedule(static) if ((long)N * O * OH * OWp > 65536)
    for (long r = 0; r < (long)N * tiles * OH; r++) {
        const int n = (int)(r / ((long)tiles * OH)), t = (int)(r / OH % tiles), oh = (int)(r % OH);
        float *d = gp + r * WG_MR * OWp;
        for (int i = 0; i < WG_MR; i++, d += OWp) {
            const int o = t * WG_MR + i;
            if (o >= O) {
                memset(d, 0, (size_t)OWp * sizeof(float));
                continue;
            }
            memcpy(d, gy + (((size_t)n * O + o) * OH + oh) * OW, (size_t)OW * sizeof(float));
            memset(d + OW, 0, (size_t)(OWp - OW) * sizeof(float));
        }
    }
}

void cpu_direct_conv_bwd_weights_mc(const float *x, int N, int C, int Hp, int Wq, int stride,
                                    const float *gp, int O, int OH, int OWp, int KH, int KW,
                                    float *gw)
{
    const size_t phase = (size_t)Hp * Wq;
    size_t off[4];
    for (int k = 0; k < KW; k++)
        off[k] = (size_t)(k % stride) * phase + (size_t)(k / stride);
    /* rows per chunk: about 16 KB of output-gradient and input rows */
    const size_t row_bytes = ((size_t)WG_MR * OWp + (size_t)stride * stride * Wq) * sizeof(float);
    int R = (int)(16384 / row_bytes);
    R = R < 1 ? 1 : R > OH ? OH : R;
    const int tiles = (O + WG_MR - 1) / WG_MR;
    const size_t tile_rows = (size_t)OH * WG_MR * OWp; /* floats of one tile of one image */
    /* input channels in blocks of about 256 KB (half of Zen 1's L2) that every tile visits in
     * turn, so that x is read from memory once, not once per tile */
    int CB = (int)((256u << 10) / ((size_t)N * stride * phase * sizeof(float)));
    CB = CB < 1 ? 1 : CB > C ? C : CB;
    const long tasks = (long)((C + CB - 1) / CB) * tiles * CB;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; t++) {
        const int blk = (int)(t / ((long)tiles * CB)), tile = (int)(t / CB % tiles);
        const int c = blk * CB + (int)(t % CB);
        if (c >= C)
            continue;
        const int o0 = tile * WG_MR, MR = O - o0 < WG_MR ? O - o0 : WG_MR;
        __m256 part[WG_K][WG_MR * WG_K];
        for (int kh = 0; kh < KH; kh++)
            for (int j = 0; j < WG_MR * KW; j++)
                part[kh][j] = _mm256_setzero_ps();
        for (int n = 0; n < N; n++) {
            const float *g = gp + ((size_t)n * tiles + tile) * tile_rows;
            const float *xc = x + ((size_t)n * C + c) * stride * phase;
            for (int oh = 0; oh < OH; oh += R) {
                const int rows = OH - oh < R ? OH - oh : R;
                for (int kh = 0; kh < KH; kh++)
                    wg_rows(WG_K, g + (size_t)oh * WG_MR * OWp, rows, OWp,
                            xc + (size_t)(stride * oh + kh) * Wq, (size_t)stride * Wq, off,
                            part[kh]);
            }
        }
        for (int i = 0; i < MR; i++)
            for (int kh = 0; kh < KH; kh++)
                for (int k = 0; k < KW; k++)
                    gw[(((size_t)(o0 + i) * C + c) * KH + kh) * KW + k] =
                        hsum(part[kh][i * KW + k]);
    }
}

void cpu_direct_pad_to(const float *x, int N, int C, int H, int W, int ph, int pw, int stride,
                       int Wq, float *xp)
{
    /* xp [N, C, stride, Hp, Wq]: phase p holds the padded columns p, p + stride, ... */
    const int Hp = H + 2 * ph, Wp = W + 2 * pw;
    const size_t per = (size_t)stride * Hp * Wq;
#pragma omp parallel for schedule(static) if ((long)N * C * Hp * Wp > 65536)
    for (long nc = 0; nc < (long)N * C; nc++) {
        float *d = xp + nc * per;
        const float *s = x + nc * H * W;
        memset(d, 0, per * sizeof *d);
        for (int h = 0; h < H; h++) {
            const float *r = s + (size_t)h * W;
            if (stride == 1) {
                memcpy(d + (size_t)(h + ph) * Wq + pw, r, (size_t)W * sizeof *r);
                continue;
            }
            for (int p = 0; p < stride; p++) {
                /* phase p, entry j: padded column j stride + p, input column j stride + p - pw */
                float *dr = d + ((size_t)p * Hp + h + ph) * Wq;
                int j = pw > p ? (pw - p + stride - 1) / stride : 0;
                for (int w = j * stride + p - pw; w < W && j < Wq; j++, w += stride)
                    dr[j] = r[w];
            }
        }
    }
}

void cpu_direct_flip_weights(const float *w, int O, int C, int KH, int KW, float *wf)
{
    /* wf [C, O, KH, KW]: wf[c][o][kh][kw] = w[o][c][KH-1-kh][KW-1-kw] */
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++)
                    wf[(((size_t)c * O + o) * KH + kh) * KW + kw] =
                        w[(((size_t)o * C + c) * KH + (KH - 1 - kh)) * KW + (KW - 1 - kw)];
}
