/* cpu_conv_direct512.c: the AVX-512 twins of cpu_conv_direct.c's stride-1 row kernels, for the
 * narrow convolutions of the experiment-scale networks (8 and 16 channels at 64x64, the
 * generators' 7x7 convolutions from and to one channel), where oneDNN's blocked kernels and
 * Winograd's transforms leave most of an AVX-512 core idle.
 *
 * Forward: as fwd_blk of cpu_conv_direct.c, MR output channels x NV vectors of 16 outputs of
 * one output row stay in registers over every input channel and tap, so each input vector
 * loaded serves MR output channels and each weight broadcast NV vectors (8 x 3, 4 x 4, 2 x 8
 * or 1 x 8 accumulators of the 32 registers). The backward data pass is the same kernel on the
 * padded output gradient with the flipped kernel (cpu_conv.c).
 *
 * Weight gradient: gw[o][c][kh][kw] = sum over n, oh, ow of gy[n][o][oh][ow] xpad[n][c][oh +
 * kh][ow + kw]. A task is one input channel, a tile of MR output channels and a tile of KR
 * kernel rows; it walks the padded input rows r once, loading the KW shifted vectors of row r
 * and, for each kernel row kh of its tile, the MR output-gradient vectors of row r - kh, and
 * keeps the MR x KR x KW sums (at most 24) in registers over every image and row. Reading the
 * input row once for KR kernel rows is what lets a one-output-channel layer (the generator's
 * last 7x7) do more than one FMA per load. Output-gradient rows outside the image read a
 * zero row instead, so the inner loop has no branch.
 *
 * Shapes as in cpu_conv_direct.c: x [N, C, Hp, Wp] zero-padded, w [O, C, KH, KW], y [N, O, OH,
 * OW], OH = Hp - KH + 1, OW = Wp - KW + 1, KW <= 8. The caller checks cpu_isa_avx512. */
#include "cpu.h"

#include <immintrin.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))

/* ---- forward ------------------------------------------------------------------------- */

static inline __attribute__((always_inline)) AVX512 void
fwd16(const int MR, const int NV, const int tail, __mmask16 m, const float *x, int C, size_t cp,
      int Wp, const float *w, size_t wo, int KH, int KW, const float *b, float *y, size_t yo)
{
    __m512 acc[24];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            acc[i * NV + j] = _mm512_set1_ps(b ? b[i] : 0.0f);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++) {
            const float *xr = x + c * cp + (size_t)kh * Wp;
            const float *wr = w + ((size_t)c * KH + kh) * KW;
            for (int kw = 0; kw < KW; kw++) {
                __m512 xv[8];
#pragma GCC unroll 8
                for (int j = 0; j < NV; j++)
                    xv[j] = tail && j == NV - 1 ? _mm512_maskz_loadu_ps(m, xr + kw + 16 * j)
                                                : _mm512_loadu_ps(xr + kw + 16 * j);
#pragma GCC unroll 8
                for (int i = 0; i < MR; i++) {
                    const __m512 u = _mm512_set1_ps(wr[i * wo + kw]);
#pragma GCC unroll 8
                    for (int j = 0; j < NV; j++)
                        acc[i * NV + j] = _mm512_fmadd_ps(u, xv[j], acc[i * NV + j]);
                }
            }
        }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) {
            float *yv = y + i * yo + 16 * j;
            if (tail && j == NV - 1)
                _mm512_mask_storeu_ps(yv, m, acc[i * NV + j]);
            else
                _mm512_storeu_ps(yv, acc[i * NV + j]);
        }
}

#define FWD16_CASE(mr, nv)                                                                         \
    case (mr)*32 + (nv)*2:                                                                         \
        fwd16(mr, nv, 0, m, x, C, cp, Wp, w, wo, KH, KW, b, y, yo);                                \
        break;                                                                                     \
    case (mr)*32 + (nv)*2 + 1:                                                                     \
        fwd16(mr, nv, 1, m, x, C, cp, Wp, w, wo, KH, KW, b, y, yo);                                \
        break
#define FWD16_ROW8(mr)                                                                             \
    FWD16_CASE(mr, 1);                                                                             \
    FWD16_CASE(mr, 2);                                                                             \
    FWD16_CASE(mr, 3);                                                                             \
    FWD16_CASE(mr, 4);                                                                             \
    FWD16_CASE(mr, 5);                                                                             \
    FWD16_CASE(mr, 6);                                                                             \
    FWD16_CASE(mr, 7);                                                                             \
    FWD16_CASE(mr, 8)

static AVX512 void fwd16_any(int mr, int nv, int tail, __mmask16 m, const float *x, int C,
                             size_t cp, int Wp, const float *w, size_t wo, int KH, int KW,
                             const float *b, float *y, size_t yo)
{
    switch (mr * 32 + nv * 2 + tail) {
        FWD16_CASE(8, 1);
        FWD16_CASE(8, 2);
        FWD16_CASE(8, 3);
        FWD16_CASE(4, 1);
        FWD16_CASE(4, 2);
        FWD16_CASE(4, 3);
        FWD16_CASE(4, 4);
        FWD16_ROW8(2);
        FWD16_ROW8(1);
    }
}

/* output channels per register block and the most row vectors with it */
static void fwd16_block(int left, int nvec, int *mr, int *nvmax)
{
    if (left >= 8 && nvec <= 3)
        *mr = 8, *nvmax = 3;
    else if (left >= 4)
        *mr = 4, *nvmax = 4;
    else if (left >= 2)
        *mr = 2, *nvmax = 8;
    else
        *mr = 1, *nvmax = 8;
}

AVX512 void cpu_direct512_conv_fwd(const float *x, int N, int C, int Hp, int Wp, const float *w,
                                   int O, int KH, int KW, const float *b, float *y)
{
    const int OH = Hp - KH + 1, OW = Wp - KW + 1;
    const long rows = (long)N * OH;
    const size_t cp = (size_t)Hp * Wp, wo = (size_t)C * KH * KW, yo = (size_t)OH * OW;
    const int nvec = (OW + 15) / 16;
    const __mmask16 m = (__mmask16)((1u << (OW - 16 * (nvec - 1))) - 1u);
    /* one output row of every output channel per task */
#pragma omp parallel for schedule(static)
    for (long t = 0; t < rows; t++) {
        const int n = (int)(t / OH), oh = (int)(t % OH);
        for (int o = 0; o < O;) {
            int mr, nvmax;
            fwd16_block(O - o, nvec, &mr, &nvmax);
            for (int v = 0; v < nvec; v += nvmax) {
                const int nv = nvec - v < nvmax ? nvec - v : nvmax;
                const int tail = v + nv == nvec && (OW & 15);
                fwd16_any(mr, nv, tail, m, x + (size_t)n * C * cp + (size_t)oh * Wp + 16 * v, C, cp,
                          Wp, w + (size_t)o * wo, wo, KH, KW, b ? b + o : NULL,
                          y + ((size_t)n * O + o) * yo + (size_t)oh * OW + 16 * v, yo);
            }
            o += mr;
        }
    }
}

/* ---- weight gradient ----------------------------------------------------------------- */

#define WG16_ACC 24 /* accumulators of a task: MR x KR x KW */

static AVX512 float hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }

/* One task's sums over the rows of one image: x the input channel's padded plane (row pitch
 * Wp), g[i] the output-gradient plane of the tile's output channel i (row pitch OW), rows kh0 ..
 * kh0 + KR - 1 of the kernel. For padded input row r the tile's kernel row kh0 + k meets output
 * row r - kh0 - k; one outside [0, OH) reads `zero`. */
static inline __attribute__((always_inline)) AVX512 void
wg16_image(const int MR, const int KR, const int KW, const float *x, int Wp, const float *const *g,
           int OH, int OW, int kh0, const float *zero, __m512 *part)
{
    /* local accumulators: part is memory that the loads below might alias (__m512 is a
     * may-alias type), so sums kept there would be stored and reloaded at every step */
    if (MR * KR * KW > WG16_ACC) /* instantiated by the table's macros; wg16_tile never picks it */
        return;
    __m512 acc[WG16_ACC];
#pragma GCC unroll 24
    for (int j = 0; j < MR * KR * KW; j++)
        acc[j] = part[j];
    const int nfull = OW / 16, tail = OW & 15;
    const __mmask16 m = (__mmask16)((1u << tail) - 1u);
    const int r0 = kh0, r1 = kh0 + KR - 1 + OH; /* padded rows that meet some output row */
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * Wp;
        const float *gr[8][3];
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
            for (int k = 0; k < KR; k++) {
                const int oh = r - kh0 - k;
                gr[i][k] = oh >= 0 && oh < OH ? g[i] + (size_t)oh * OW : zero;
            }
        for (int v = 0; v <= nfull; v++) {
            if (v == nfull && !tail)
                break;
            const int off = 16 * v;
            const __mmask16 mv = v == nfull ? m : (__mmask16)0xffff;
            __m512 xv[8];
#pragma GCC unroll 8
            for (int kw = 0; kw < KW; kw++)
                xv[kw] = _mm512_maskz_loadu_ps(mv, xr + off + kw);
#pragma GCC unroll 8
            for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
                for (int k = 0; k < KR; k++) {
                    const __m512 gv = _mm512_maskz_loadu_ps(mv, gr[i][k] + off);
#pragma GCC unroll 8
                    for (int kw = 0; kw < KW; kw++)
                        acc[(i * KR + k) * KW + kw] =
                            _mm512_fmadd_ps(gv, xv[kw], acc[(i * KR + k) * KW + kw]);
                }
        }
    }
#pragma GCC unroll 24
    for (int j = 0; j < MR * KR * KW; j++)
        part[j] = acc[j];
}

/* the register tile for kernel width KW: MR output channels x KR kernel rows */
static void wg16_tile(int O, int KH, int KW, int *mr, int *kr)
{
    const int per = WG16_ACC / KW; /* MR x KR */
    int M = O < per ? O : per;
    if (M > 8)
        M = 8;
    int K = per / M;
    K = K > 3 ? 3 : K < 1 ? 1 : K;
    *mr = M;
    *kr = K > KH ? KH : K;
}

typedef void (*wg16_fn)(const float *, int, const float *const *, int, int, int, const float *,
                        __m512 *);

#define WG16_DEF(MR, KR, KW)                                                                       \
    static AVX512 void wg16_##MR##_##KR##_##KW(const float *x, int Wp, const float *const *g,      \
                                               int OH, int OW, int kh0, const float *zero,         \
                                               __m512 *acc)                                        \
    {                                                                                              \
        wg16_image(MR, KR, KW, x, Wp, g, OH, OW, kh0, zero, acc);                                  \
    }

/* the tiles wg16_tile picks, and their edges (fewer channels or rows left) */
#define WG16_KW(KW, MR)                                                                            \
    WG16_DEF(MR, 1, KW)                                                                            \
    WG16_DEF(MR, 2, KW)                                                                            \
    WG16_DEF(MR, 3, KW)
#define WG16_ALL_MR(KW)                                                                            \
    WG16_KW(KW, 1)                                                                                 \
    WG16_KW(KW, 2)                                                                                 \
    WG16_KW(KW, 3)                                                                                 \
    WG16_KW(KW, 4)                                                                                 \
    WG16_KW(KW, 5)                                                                                 \
    WG16_KW(KW, 6)                                                                                 \
    WG16_KW(KW, 7)                                                                                 \
    WG16_KW(KW, 8)
WG16_ALL_MR(1)
WG16_ALL_MR(2)
WG16_ALL_MR(3)
WG16_KW(4, 1)
WG16_KW(4, 2)
WG16_KW(4, 3)
WG16_KW(4, 4)
WG16_KW(4, 5)
WG16_KW(4, 6)
WG16_KW(5, 1)
WG16_KW(5, 2)
WG16_KW(5, 3)
WG16_KW(5, 4)
WG16_KW(6, 1)
WG16_KW(6, 2)
WG16_KW(6, 3)
WG16_KW(6, 4)
WG16_KW(7, 1)
WG16_KW(7, 2)
WG16_KW(7, 3)
WG16_KW(8, 1)
WG16_KW(8, 2)
WG16_KW(8, 3)

#define WG16_REF(MR, KR, KW) [MR - 1][KR - 1][KW - 1] = wg16_##MR##_##KR##_##KW
#define WG16_REFS(KW, MR) WG16_REF(MR, 1, KW), WG16_REF(MR, 2, KW), WG16_REF(MR, 3, KW)
#define WG16_REFS_ALL(KW)                                                                          \
    WG16_REFS(KW, 1), WG16_REFS(KW, 2), WG16_REFS(KW, 3), WG16_REFS(KW, 4), WG16_REFS(KW, 5),      \
        WG16_REFS(KW, 6), WG16_REFS(KW, 7), WG16_REFS(KW, 8)

static const wg16_fn wg16_table[8][3][8] = {
    WG16_REFS_ALL(1), WG16_REFS_ALL(2), WG16_REFS_ALL(3), WG16_REFS(4, 1), WG16_REFS(4, 2),
    WG16_REFS(4, 3),  WG16_REFS(4, 4),  WG16_REFS(4, 5),  WG16_REFS(4, 6), WG16_REFS(5, 1),
    WG16_REFS(5, 2),  WG16_REFS(5, 3),  WG16_REFS(5, 4),  WG16_REFS(6, 1), WG16_REFS(6, 2),
    WG16_REFS(6, 3),  WG16_REFS(6, 4),  WG16_REFS(7, 1),  WG16_REFS(7, 2), WG16_REFS(7, 3),
    WG16_REFS(8, 1),  WG16_REFS(8, 2),  WG16_REFS(8, 3),
};

AVX512 void cpu_direct512_conv_bwd_weights(const float *x, int N, int C, int Hp, int Wp,
                                           const float *gy, int O, int OH, int OW, int KH, int KW,
                                           const float *zero, float *gw, float *gb)
{
    int MR, KR;
    wg16_tile(O, KH, KW, &MR, &KR);
    const int otiles = (O + MR - 1) / MR, ktiles = (KH + KR - 1) / KR;
    const long tasks = (long)C * otiles * ktiles;
    const size_t cp = (size_t)Hp * Wp, yo = (size_t)OH * OW;
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < tasks; t++) {
        const int c = (int)(t / ((long)otiles * ktiles)), ot = (int)(t / ktiles % otiles),
                  kt = (int)(t % ktiles);
        const int o0 = ot * MR, mr = O - o0 < MR ? O - o0 : MR;
        const int kh0 = kt * KR, kr = KH - kh0 < KR ? KH - kh0 : KR;
        const wg16_fn f = wg16_table[mr - 1][kr - 1][KW - 1];
        __m512 acc[WG16_ACC];
        for (int j = 0; j < WG16_ACC; j++)
            acc[j] = _mm512_setzero_ps();
        for (int n = 0; n < N; n++) {
            const float *g[8];
            for (int i = 0; i < mr; i++)
                g[i] = gy + ((size_t)n * O + o0 + i) * yo;
            f(x + ((size_t)n * C + c) * cp, Wp, g, OH, OW, kh0, zero, acc);
        }
        for (int i = 0; i < mr; i++)
            for (int k = 0; k < kr; k++)
                for (int kw = 0; kw < KW; kw++)
                    gw[(((size_t)(o0 + i) * C + c) * KH + kh0 + k) * KW + kw] =
                        hsum16(acc[(i * kr + k) * KW + kw]);
    }
    if (gb)
        cpu_direct_bias_grad(gy, N, O, yo, gb);
}
