/* cpu_conv_direct.c: direct AVX2 kernels for the narrow convolutions oneDNN 2.6 runs slowly.
 *
 * A convolution with one input or one output channel (the generator's 7x7 convolutions from
 * and to the image, the discriminator's last 4x4 to one channel) cannot fill oneDNN's
 * 8-channel blocks: its jit:avx2 kernels run them at 2-4 GFLOP/s, where these row kernels,
 * which vectorise along the image row instead of the channels, keep the output row in
 * registers across a whole kernel row. Only stride 1, dilation 1, pad <= kernel - 1, kernel
 * width <= 8; the caller (cpu_conv.c) checks cpu_direct_conv_ok. The weight gradient of a
 * strided convolution from one input channel also runs here (column phases, below).
 *
 * Shapes (NCHW): x [N, C, Hp, Wp] already zero-padded, w [O, C, KH, KW], y [N, O, OH, OW]
 * with OH = Hp - KH + 1, OW = Wp - KW + 1. The backward data pass is a forward pass of the
 * padded output gradient with the flipped, transposed kernel. */
#include "cpu.h"

#include <immintrin.h>
#include <string.h>

int cpu_direct_conv_ok(int transposed, int IC, int OC, int KH, int KW, int stride, int dil, int pad,
                       int weights_only)
{
    if (transposed || dil != 1 || KW > 8 || pad < 0 || pad > KH - 1 || pad > KW - 1)
        return 0;
    if (stride == 1)
        return IC == 1 || OC == 1;
    /* strided: only the weight gradient from a one-channel input (the discriminator's first
     * convolution), through the column phases */
    return weights_only && IC == 1 && stride <= 4;
}

/* lanes [0, n) of an 8-float vector, n in 1..8 */
static __m256i lane_mask(int n)
{
    static const int m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

/* yr[0..OW) += sum_kw wk[kw] * xr[kw .. kw + OW) */
static void row_fma(float *yr, const float *xr, const float *wk, int KW, int OW)
{
    __m256 wv[8];
    for (int k = 0; k < KW; k++)
        wv[k] = _mm256_broadcast_ss(wk + k);
    int ow = 0;
    for (; ow + 16 <= OW; ow += 16) {
        __m256 a0 = _mm256_loadu_ps(yr + ow), a1 = _mm256_loadu_ps(yr + ow + 8);
        for (int k = 0; k < KW; k++) {
            a0 = _mm256_fmadd_ps(wv[k], _mm256_loadu_ps(xr + ow + k), a0);
            a1 = _mm256_fmadd_ps(wv[k], _mm256_loadu_ps(xr + ow + 8 + k), a1);
        }
        _mm256_storeu_ps(yr + ow, a0);
        _mm256_storeu_ps(yr + ow + 8, a1);
    }
    for (; ow + 8 <= OW; ow += 8) {
        __m256 a = _mm256_loadu_ps(yr + ow);
        for (int k = 0; k < KW; k++)
            a = _mm256_fmadd_ps(wv[k], _mm256_loadu_ps(xr + ow + k), a);
        _mm256_storeu_ps(yr + ow, a);
    }
    if (ow < OW) {
        __m256i m = lane_mask(OW - ow);
        __m256 a = _mm256_maskload_ps(yr + ow, m);
        for (int k = 0; k < KW; k++)
            a = _mm256_fmadd_ps(wv[k], _mm256_maskload_ps(xr + ow + k, m), a);
        _mm256_maskstore_ps(yr + ow, m, a);
    }
}

void cpu_direct_conv_fwd(const float *x, int N, int C, int Hp, int Wp, const float *w, int O,
                         int KH, int KW, const float *b, float *y)
{
    const int OH = Hp - KH + 1, OW = Wp - KW + 1;
    const long rows = (long)N * O * OH;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < rows; t++) {
        const int n = (int)(t / ((long)O * OH)), o = (int)(t / OH % O), oh = (int)(t % OH);
        float *yr = y + t * OW;
        const float bv = b ? b[o] : 0.0f;
        for (int i = 0; i < OW; i++)
            yr[i] = bv;
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < KH; kh++)
                row_fma(yr, x + (((size_t)n * C + c) * Hp + oh + kh) * Wp,
                        w + (((size_t)o * C + c) * KH + kh) * KW, KW, OW);
    }
}

static float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void cpu_direct_conv_bwd_weights(const float *x, int N, int C, int Hp, int Wq, int stride,
                                 const float *gy, int O, int OH, int OW, int KH, int KW,
                                 float *gw, float *gb)
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
        __m256 acc[8];
        for (int k = 0; k < KW; k++)
            acc[k] = _mm256_setzero_ps();
        for (int n = 0; n < N; n++)
            for (int oh = 0; oh < OH; oh++) {
                const float *g = gy + (((size_t)n * O + o) * OH + oh) * OW;
                const float *xr = x + ((size_t)n * C + c) * stride * phase + (size_t)(stride * oh + kh) * Wq;
                int ow = 0;
                for (; ow + 8 <= OW; ow += 8) {
                    __m256 gv = _mm256_loadu_ps(g + ow);
                    for (int k = 0; k < KW; k++)
                        acc[k] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(xr + off[k] + ow), acc[k]);
                }
                if (ow < OW) {
                    __m256i m = lane_mask(OW - ow);
                    __m256 gv = _mm256_maskload_ps(g + ow, m);
                    for (int k = 0; k < KW; k++)
                        acc[k] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(xr + off[k] + ow, m), acc[k]);
                }
            }
        float *dst = gw + (((size_t)o * C + c) * KH + kh) * KW;
        for (int k = 0; k < KW; k++)
            dst[k] = hsum(acc[k]);
    }
    if (gb) {
        const size_t plane = (size_t)OH * OW;
        for (int o = 0; o < O; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) {
                const float *g = gy + ((size_t)n * O + o) * plane;
                for (size_t i = 0; i < plane; i++)
                    s += g[i];
            }
            gb[o] = (float)s;
        }
    }
}

void cpu_direct_pad(const float *x, int N, int C, int H, int W, int ph, int pw, int stride, float *xp)
{
    /* xp [N, C, stride, Hp, Wq]: phase p holds the padded columns p, p + stride, ... */
    const int Hp = H + 2 * ph, Wp = W + 2 * pw, Wq = (Wp + stride - 1) / stride;
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
            for (int w = 0; w < W; w++) {
                const int col = w + pw;
                d[((size_t)(col % stride) * Hp + h + ph) * Wq + col / stride] = r[w];
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
