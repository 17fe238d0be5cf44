/* cpu_conv_wino.c: Winograd F(2x2, 3x3) convolutions (3x3 kernel, stride 1) on NCHW, AVX2.
 *
 * oneDNN 2.6 has no Winograd kernel for AVX2 machines, and its direct jit:avx2 kernels reach
 * 50-65% of the FP32 peak on the networks' 3x3 convolutions (docs/benchmarks.md). F(2x2, 3x3)
 * computes each 2x2 output tile from a 4x4 input tile with 16 multiplies per input and output
 * channel pair instead of 36 (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016): the input tiles are transformed, V = B^T d B, the weights, U = G g G^T,
 * and for each of the 16 transformed positions the channel sums M = U V are one matrix
 * product (output channels x input channels x tiles); the outputs are Y = A^T M A. It reads
 * and writes NCHW directly, so it also saves the reorders around a oneDNN call.
 *
 * The three passes of training share that machinery: the data gradient is this forward
 * convolution of the output gradient, padded by 2 - pad, with the flipped kernel whose input
 * and output channels are swapped (the caller builds it); the weight gradient is the adjoint
 * of the forward: dM = A dY A^T per tile, dU = sum over tiles of dM V (a matrix product
 * reducing over the tiles) and dg = G^T dU G. Rounding differs from a direct convolution's
 * by a few units in the last place of the sums (the transforms add and subtract inputs before
 * multiplying; G has halves, which are exact); tests/unit/test_nn_conv_direct.c holds every
 * pass to a double-precision reference.
 *
 * Each image has TH x TW tiles of 2x2 outputs (a partial tile at an odd edge reads zeros and
 * writes only its valid outputs); they are processed 8 at a time (one per vector lane), runs
 * of 8 side by side in a row first (tile_order), in chunks of Tc tiles, one chunk at a time per thread, so that a chunk's transformed inputs
 * and products stay in the core's L2 cache. Whether a shape runs here or on oneDNN is the
 * timed per-shape choice of cpu_conv.c. */
#include "cpu.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#define WXI 16                   /* transformed values per tile: 4x4 */
#define CHUNK_BYTES (128u << 10) /* a thread's transformed inputs and products per chunk (L2) */

int cpu_wino_ok(int transposed, int N, int IC, int H, int W, int OC, int KH, int KW, int stride,
                int dil, int pad)
{
    if (transposed || KH != 3 || KW != 3 || stride != 1 || dil != 1 || pad < 0 || pad > 1)
        return 0;
    /* narrow layers stay on the other paths: the transforms cost about as much as the products */
    if (IC < 4 || OC < 4)
        return 0;
    /* the 32-bit gather offsets: every padded plane of input and output gradient */
    const int64_t OH = (int64_t)H + 2 * pad - 2, OW = (int64_t)W + 2 * pad - 2;
    const int64_t Hp = OH + 6, Wp = OW + 6, C = IC > OC ? IC : OC;
    return OH >= 1 && OW >= 1 && (int64_t)N * C * Hp * Wp < INT32_MAX / 2;
}

/* ---- the plan: tiles, chunks and the scratch layout ---------------------------------- */

typedef struct {
    int N, C, H, W, pad, O, OH, OW;
    int TH, TW, T; /* tiles per image in rows and columns; all images' tiles */
    int Hp, Wp;    /* the padded input plane: Hp = 2 TH + 2, Wp = 2 TW + 2 */
    int Tc, nchunk, nthr;
    int Tpad; /* T rounded up to a multiple of 8 (offset arrays) */
} wplan;

static wplan plan(int N, int C, int H, int W, int pad, int O, int threads, int min_tc)
{
    wplan p = {N, C, H, W, pad, O, H + 2 * pad - 2, W + 2 * pad - 2, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    p.TH = (p.OH + 1) / 2;
    p.TW = (p.OW + 1) / 2;
    p.T = N * p.TH * p.TW;
    p.Hp = 2 * p.TH + 2;
    p.Wp = 2 * p.TW + 2;
    p.Tpad = (p.T + 7) & ~7;
    int tc = (int)(CHUNK_BYTES / (WXI * sizeof(float) * (size_t)(C + O)));
    tc = tc / 24 * 24; /* whole register blocks of the product */
    if (tc < min_tc)
        tc = min_tc;
    if (tc > 960)
        tc = 960;
    if (tc > p.Tpad)
        tc = p.Tpad;
    p.Tc = tc;
    p.nchunk = (p.T + tc - 1) / tc;
    p.nthr = threads < p.nchunk ? threads : p.nchunk;
    if (p.nthr < 1)
        p.nthr = 1;
    return p;
}

/* scratch, in floats: [xp] [U or dU] [offsets] [per thread: V chunk, M chunk, (dU)] */
typedef struct {
    size_t xp, u, off, per_thr, total;
} wlayout;

static wlayout layout(const wplan *p, int need_xp, int pass)
{
    wlayout l;
    l.xp = need_xp ? (size_t)p->N * p->C * p->Hp * p->Wp : 0;
    l.u = pass == 2 ? 0 : (size_t)WXI * p->O * p->C; /* U; the weight gradient's dU is per thread */
    l.off = 3 * (size_t)p->Tpad;                     /* tile_order's three arrays */
    l.per_thr = (size_t)WXI * p->Tc * (p->C + p->O) + (pass == 2 ? (size_t)WXI * p->O * p->C : 0);
    /* each part starts on a cache line */
    l.xp = (l.xp + 15) & ~(size_t)15;
    l.u = (l.u + 15) & ~(size_t)15;
    l.off = (l.off + 15) & ~(size_t)15;
    l.per_thr = (l.per_thr + 15) & ~(size_t)15;
    l.total = l.xp + l.u + l.off + l.per_thr * (size_t)p->nthr;
    return l;
}

static int needs_pad(const wplan *p) { return p->pad || p->Hp != p->H || p->Wp != p->W; }

size_t cpu_wino_scratch(int pass, int N, int C, int H, int W, int pad, int O, int threads)
{
    const wplan p = plan(N, C, H, W, pad, O, threads, pass == 2 ? 96 : 24);
    const wlayout l = layout(&p, needs_pad(&p), pass);
    /* the weight gradient's output gradient, padded to whole tiles when a side is odd */
    size_t extra =
        pass == 2 && ((p.OH | p.OW) & 1) ? (size_t)N * O * (2 * p.TH) * (2 * p.TW) + 16 : 0;
    return (l.total + extra) * sizeof(float) + 64;
}

/* planes [H][W] into [DH][DW], each plane's top-left at (off, off), zeros around
 * (H + off <= DH, W + off <= DW): the input padded for its tiles, or an output gradient with an
 * odd side padded to whole tiles */
static void pad_planes(const float *x, int planes, int H, int W, int off, float *d, int DH, int DW,
                       int threads)
{
    const size_t plane = (size_t)DH * DW;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int i = 0; i < planes; i++) {
        float *di = d + (size_t)i * plane;
        const float *s = x + (size_t)i * H * W;
        memset(di, 0, plane * sizeof(float));
        for (int r = 0; r < H; r++)
            memcpy(di + (size_t)(r + off) * DW + off, s + (size_t)r * W, (size_t)W * sizeof(float));
    }
}

/* per tile: its second output row and column exist (odd edges); on the first tile of a group
 * of 8: the 8 are side by side in one row of tiles (row loads), and all their outputs exist */
enum { E_ROW1 = 1, E_COL1 = 2, G_ROW = 4, G_WHOLE = 8 };

/* The tiles in the order they are processed: first each row of tiles' whole runs of 8 side by
 * side (groups read and written as rows), then the rest, gathered 8 at a time (a row of 9
 * tiles has 8 in a run and 1 gathered). in_off[t]: tile t's top-left in the padded input
 * (channel 0); out_off[t]: its top-left in a [N, chans, RH, RW] output or output gradient
 * (channel 0); edge[t]: the bits above. The entries past T repeat tile 0 (valid addresses for
 * the gathers; their lanes are masked). The order does not change any tile's arithmetic. */
static void tile_order(const wplan *p, int RH, int RW, int chans, int *in_off, int *out_off,
                       int *edge)
{
    const int runs = p->TW / 8;
    int t = 0;
#define PUT(n_, ty_, tx_)                                                                          \
    do {                                                                                           \
        in_off[t] = ((n_)*p->C * p->Hp + 2 * (ty_)) * p->Wp + 2 * (tx_);                           \
        out_off[t] = ((n_)*chans * RH + 2 * (ty_)) * RW + 2 * (tx_);                               \
        edge[t] = (2 * (ty_) + 1 < p->OH ? E_ROW1 : 0) | (2 * (tx_) + 1 < p->OW ? E_COL1 : 0);     \
        t++;                                                                                       \
    } while (0)
    for (int n = 0; n < p->N; n++)
        for (int ty = 0; ty < p->TH; ty++)
            for (int r = 0; r < runs; r++) {
                for (int j = 0; j < 8; j++)
                    PUT(n, ty, 8 * r + j);
                const int last = edge[t - 1];
                edge[t - 8] |= G_ROW | ((last & E_ROW1) && (last & E_COL1) ? G_WHOLE : 0);
            }
    for (int n = 0; n < p->N; n++)
        for (int ty = 0; ty < p->TH; ty++)
            for (int tx = 8 * runs; tx < p->TW; tx++)
                PUT(n, ty, tx);
#undef PUT
    for (; t < p->Tpad; t++) {
        in_off[t] = in_off[0];
        out_off[t] = out_off[0];
        edge[t] = 0;
    }
}

/* lanes of the 8 tiles from t that exist (t + lane < T) */
static inline __m256 live_lanes(int t, int T)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(T - t), lane));
}

/* ---- transforms ---------------------------------------------------------------------- */

/* the even and the odd elements of a[0..8) b[0..8) */
static inline __m256 evens(__m256 a, __m256 b)
{
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}
static inline __m256 odds(__m256 a, __m256 b)
{
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/* the 4x4 inputs d of 8 tiles: gathered at the tiles' offsets from xc (row pitch Wp), or,
 * when the 8 are side by side in one row of tiles (row: 1), read as rows xc[2j .. 2j + 4) */
static inline void in_load(const float *xc, __m256i off, int row, int Wp, __m256 d[4][4])
{
    if (row) {
        const float *x0 = xc + _mm256_extract_epi32(off, 0);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const float *xr = x0 + (size_t)r * Wp;
            const __m256 a = _mm256_loadu_ps(xr), b = _mm256_loadu_ps(xr + 8);
            const __m256 a2 = _mm256_loadu_ps(xr + 2), b2 = _mm256_loadu_ps(xr + 10);
            d[r][0] = evens(a, b);
            d[r][1] = odds(a, b);
            d[r][2] = evens(a2, b2);
            d[r][3] = odds(a2, b2);
        }
        return;
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            d[r][c] = _mm256_i32gather_ps(xc + r * Wp + c, off, 4);
}

/* V = B^T d B for 8 tiles of one channel, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1];
 * v[16] in position order (4 i + j); the lanes of tiles past the end zeroed */
static inline void in_transform(const float *xc, __m256i off, int row, int Wp, __m256 live,
                                __m256 v[WXI])
{
    __m256 d[4][4];
    in_load(xc, off, row, Wp, d);
    __m256 t[4][4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        t[0][c] = _mm256_sub_ps(d[0][c], d[2][c]);
        t[1][c] = _mm256_add_ps(d[1][c], d[2][c]);
        t[2][c] = _mm256_sub_ps(d[2][c], d[1][c]);
        t[3][c] = _mm256_sub_ps(d[1][c], d[3][c]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        v[4 * i + 0] = _mm256_and_ps(_mm256_sub_ps(t[i][0], t[i][2]), live);
        v[4 * i + 1] = _mm256_and_ps(_mm256_add_ps(t[i][1], t[i][2]), live);
        v[4 * i + 2] = _mm256_and_ps(_mm256_sub_ps(t[i][2], t[i][1]), live);
        v[4 * i + 3] = _mm256_and_ps(_mm256_sub_ps(t[i][1], t[i][3]), live);
    }
}

/* U = G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]: g [3][3] -> u[16] */
static void w_transform(const float *g, float u[WXI])
{
    float r[4][3];
#pragma GCC unroll 16
    for (int c = 0; c < 3; c++) {
        r[0][c] = g[c];
        r[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
        r[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
        r[3][c] = g[6 + c];
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = r[i][0];
        u[4 * i + 1] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
        u[4 * i + 2] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
        u[4 * i + 3] = r[i][2];
    }
}

/* u[k * upitch + c] = (G g_c G^T)[k] for the C kernels g_c = w[c * 9 ..] of one output
 * channel: 8 kernels at a time (gathered), then one by one */
static void w_transform_row(const float *w, int C, float *u, size_t upitch)
{
    const __m256i idx = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
    const __m256 h = _mm256_set1_ps(0.5f);
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 g[9];
#pragma GCC unroll 9
        for (int k = 0; k < 9; k++)
            g[k] = _mm256_i32gather_ps(w + (size_t)c * 9 + k, idx, 4);
        __m256 r[4][3];
#pragma GCC unroll 3
        for (int q = 0; q < 3; q++) {
            r[0][q] = g[q];
            r[1][q] = _mm256_mul_ps(h, _mm256_add_ps(_mm256_add_ps(g[q], g[3 + q]), g[6 + q]));
            r[2][q] = _mm256_mul_ps(h, _mm256_add_ps(_mm256_sub_ps(g[q], g[3 + q]), g[6 + q]));
            r[3][q] = g[6 + q];
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            float *ui = u + (size_t)(4 * i) * upitch + c;
            _mm256_storeu_ps(ui, r[i][0]);
            _mm256_storeu_ps(
                ui + upitch,
                _mm256_mul_ps(h, _mm256_add_ps(_mm256_add_ps(r[i][0], r[i][1]), r[i][2])));
            _mm256_storeu_ps(
                ui + 2 * upitch,
                _mm256_mul_ps(h, _mm256_add_ps(_mm256_sub_ps(r[i][0], r[i][1]), r[i][2])));
            _mm256_storeu_ps(ui + 3 * upitch, r[i][2]);
        }
    }
    for (; c < C; c++) {
        float uu[WXI];
        w_transform(w + (size_t)c * 9, uu);
        for (int k = 0; k < WXI; k++)
            u[(size_t)k * upitch + c] = uu[k];
    }
}

/* dg = G^T dU G: u[16] -> g [3][3] (the adjoint of w_transform) */
static void w_transform_adj(const float *u, float *g)
{
    float r[3][4];
#pragma GCC unroll 16
    for (int c = 0; c < 4; c++) {
        const float u0 = u[c], u1 = u[4 + c], u2 = u[8 + c], u3 = u[12 + c];
        r[0][c] = u0 + 0.5f * (u1 + u2);
        r[1][c] = 0.5f * (u1 - u2);
        r[2][c] = 0.5f * (u1 + u2) + u3;
    }
#pragma GCC unroll 16
    for (int i = 0; i < 3; i++) {
        g[3 * i + 0] = r[i][0] + 0.5f * (r[i][1] + r[i][2]);
        g[3 * i + 1] = 0.5f * (r[i][1] - r[i][2]);
        g[3 * i + 2] = 0.5f * (r[i][1] + r[i][2]) + r[i][3];
    }
}

/* ---- the products -------------------------------------------------------------------- */

/* M[o][t..] += sum_c U[o][c] V[c][t..] for MR output channels and NV vectors of 8 tiles:
 * U rows of C (pitch C), V and M rows of Tc tiles. Overwrites M. */
static inline __attribute__((always_inline)) void
gemm_fwd_blk(const int MR, const int NV, const float *U, int C, const float *V, int Tc, float *M)
{
    __m256 acc[4][3];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            acc[i][j] = _mm256_setzero_ps();
    for (int c = 0; c < C; c++) {
        __m256 vv[3];
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            vv[j] = _mm256_loadu_ps(V + (size_t)c * Tc + 8 * j);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            const __m256 u = _mm256_broadcast_ss(U + (size_t)i * C + c);
#pragma GCC unroll 16
            for (int j = 0; j < NV; j++)
                acc[i][j] = _mm256_fmadd_ps(u, vv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            _mm256_storeu_ps(M + (size_t)i * Tc + 8 * j, acc[i][j]);
}

#define GEMM_FWD_CASE(mr, nv)                                                                      \
    case (mr)*4 + (nv):                                                                            \
        gemm_fwd_blk(mr, nv, U, C, V, Tc, M);                                                      \
        break

static void gemm_fwd_any(int mr, int nv, const float *U, int C, const float *V, int Tc, float *M)
{
    switch (mr * 4 + nv) {
        GEMM_FWD_CASE(1, 1);
        GEMM_FWD_CASE(1, 2);
        GEMM_FWD_CASE(1, 3);
        GEMM_FWD_CASE(2, 1);
        GEMM_FWD_CASE(2, 2);
        GEMM_FWD_CASE(2, 3);
        GEMM_FWD_CASE(3, 1);
        GEMM_FWD_CASE(3, 2);
        GEMM_FWD_CASE(3, 3);
        GEMM_FWD_CASE(4, 1);
        GEMM_FWD_CASE(4, 2);
        GEMM_FWD_CASE(4, 3);
    }
}

/* one position's product for a chunk of nt tiles (nt <= Tc, rounded up to 8) */
static void gemm_fwd(const float *U, int O, int C, const float *V, int Tc, int nt, float *M)
{
    const int nt8 = (nt + 7) / 8;
    for (int j0 = 0; j0 < nt8; j0 += 3) {
        const int nv = nt8 - j0 < 3 ? nt8 - j0 : 3;
        int o = 0;
        if (nv == 3)
            for (; o + 4 <= O; o += 4)
                gemm_fwd_blk(4, 3, U + (size_t)o * C, C, V + 8 * j0, Tc,
                             M + (size_t)o * Tc + 8 * j0);
        for (; o + 4 <= O; o += 4)
            gemm_fwd_any(4, nv, U + (size_t)o * C, C, V + 8 * j0, Tc, M + (size_t)o * Tc + 8 * j0);
        if (o < O)
            gemm_fwd_any(O - o, nv, U + (size_t)o * C, C, V + 8 * j0, Tc,
                         M + (size_t)o * Tc + 8 * j0);
    }
}

/* The same product on AVX-512, 16 tiles to a vector (cpu_isa_avx512): every output is the same
 * chain of fused multiply-adds over the input channels as in gemm_fwd_blk, lane for lane, so
 * the result is bit-identical to the AVX2 kernel's. 8 x 3 accumulators (8 output channels, 48
 * tiles) leave 4 of the 32 vector registers for V and the broadcast. */
#define AVX512 __attribute__((target("avx512f")))

static inline __attribute__((always_inline)) AVX512 void
gemm_fwd_blk16(const int MR, const int NV, const float *U, int C, const float *V, int Tc, float *M)
{
    __m512 acc[8][3];
#pragma GCC unroll 24
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 24
        for (int j = 0; j < NV; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < C; c++) {
        __m512 vv[3];
#pragma GCC unroll 24
        for (int j = 0; j < NV; j++)
            vv[j] = _mm512_loadu_ps(V + (size_t)c * Tc + 16 * j);
#pragma GCC unroll 24
        for (int i = 0; i < MR; i++) {
            const __m512 u = _mm512_set1_ps(U[(size_t)i * C + c]);
#pragma GCC unroll 24
            for (int j = 0; j < NV; j++)
                acc[i][j] = _mm512_fmadd_ps(u, vv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 24
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 24
        for (int j = 0; j < NV; j++)
            _mm512_storeu_ps(M + (size_t)i * Tc + 16 * j, acc[i][j]);
}

#define GEMM_FWD16_CASE(mr, nv)                                                                    \
    case (mr)*4 + (nv):                                                                            \
        gemm_fwd_blk16(mr, nv, U, C, V, Tc, M);                                                    \
        break
#define GEMM_FWD16_ROW(mr)                                                                         \
    GEMM_FWD16_CASE(mr, 1);                                                                        \
    GEMM_FWD16_CASE(mr, 2);                                                                        \
    GEMM_FWD16_CASE(mr, 3)

static AVX512 void gemm_fwd16_any(int mr, int nv, const float *U, int C, const float *V, int Tc,
                                  float *M)
{
    switch (mr * 4 + nv) {
        GEMM_FWD16_ROW(1);
        GEMM_FWD16_ROW(2);
        GEMM_FWD16_ROW(3);
        GEMM_FWD16_ROW(4);
        GEMM_FWD16_ROW(5);
        GEMM_FWD16_ROW(6);
        GEMM_FWD16_ROW(7);
        GEMM_FWD16_ROW(8);
    }
}

/* gemm_fwd on AVX-512: whole vectors of 16 tiles here, an odd vector of 8 by gemm_fwd */
static AVX512 void gemm_fwd16(const float *U, int O, int C, const float *V, int Tc, int nt,
                              float *M)
{
    const int nt8 = (nt + 7) / 8, nt16 = nt8 / 2;
    for (int j0 = 0; j0 < nt16; j0 += 3) {
        const int nv = nt16 - j0 < 3 ? nt16 - j0 : 3;
        int o = 0;
        if (nv == 3)
            for (; o + 8 <= O; o += 8)
                gemm_fwd_blk16(8, 3, U + (size_t)o * C, C, V + 16 * j0, Tc,
                               M + (size_t)o * Tc + 16 * j0);
        for (; o < O; o += 8)
            gemm_fwd16_any(O - o < 8 ? O - o : 8, nv, U + (size_t)o * C, C, V + 16 * j0, Tc,
                           M + (size_t)o * Tc + 16 * j0);
    }
    if (nt8 & 1)
        gemm_fwd(U, O, C, V + 16 * nt16, Tc, 8, M + 16 * nt16);
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* dU[o][c] += sum_t dM[o][t] V[c][t] for MR output and NR input channels over nt8 vectors of
 * tiles: dM and V rows of Tc, dU rows of C */
static inline __attribute__((always_inline)) void gemm_wgt_blk(const int MR, const int NR,
                                                               const float *dM, const float *V,
                                                               int Tc, int nt8, float *dU, int C)
{
    __m256 acc[4][3];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 16
        for (int j = 0; j < NR; j++)
            acc[i][j] = _mm256_setzero_ps();
    for (int k = 0; k < nt8; k++) {
        __m256 vv[3];
#pragma GCC unroll 16
        for (int j = 0; j < NR; j++)
            vv[j] = _mm256_loadu_ps(V + (size_t)j * Tc + 8 * k);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            const __m256 m = _mm256_loadu_ps(dM + (size_t)i * Tc + 8 * k);
#pragma GCC unroll 16
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm256_fmadd_ps(m, vv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 16
        for (int j = 0; j < NR; j++)
            dU[(size_t)i * C + j] += hsum8(acc[i][j]);
}

#define GEMM_WGT_CASE(mr, nr)                                                                      \
    case (mr)*4 + (nr):                                                                            \
        gemm_wgt_blk(mr, nr, dM, V, Tc, nt8, dU, C);                                               \
        break

static void gemm_wgt_any(int mr, int nr, const float *dM, const float *V, int Tc, int nt8,
                         float *dU, int C)
{
    switch (mr * 4 + nr) {
        GEMM_WGT_CASE(1, 1);
        GEMM_WGT_CASE(1, 2);
        GEMM_WGT_CASE(1, 3);
        GEMM_WGT_CASE(2, 1);
        GEMM_WGT_CASE(2, 2);
        GEMM_WGT_CASE(2, 3);
        GEMM_WGT_CASE(3, 1);
        GEMM_WGT_CASE(3, 2);
        GEMM_WGT_CASE(3, 3);
        GEMM_WGT_CASE(4, 1);
        GEMM_WGT_CASE(4, 2);
        GEMM_WGT_CASE(4, 3);
    }
}

/* one position's weight-gradient product over a chunk: dU [O][C] += dM [O][Tc] V[C][Tc]^T */
static void gemm_wgt(const float *dM, int O, const float *V, int C, int Tc, int nt, float *dU)
{
    const int nt8 = (nt + 7) / 8;
    for (int o = 0; o < O; o += 4) {
        const int mr = O - o < 4 ? O - o : 4;
        for (int c = 0; c < C; c += 3) {
            const int nr = C - c < 3 ? C - c : 3;
            const float *m = dM + (size_t)o * Tc, *v = V + (size_t)c * Tc;
            float *u = dU + (size_t)o * C + c;
            if (mr == 4 && nr == 3)
                gemm_wgt_blk(4, 3, m, v, Tc, nt8, u, C);
            else
                gemm_wgt_any(mr, nr, m, v, Tc, nt8, u, C);
        }
    }
}

/* ---- the passes ---------------------------------------------------------------------- */

static float *align64(void *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* the chunk of nt tiles from t0 of every input channel into V [16][C][Tc] */
static void transform_inputs(const wplan *p, const float *xp, const int *in_off, const int *edge,
                             int t0, int nt, float *V)
{
    const size_t plane = (size_t)p->Hp * p->Wp, pos = (size_t)p->C * p->Tc;
    for (int tt = 0; tt < nt; tt += 8) {
        const __m256i off = _mm256_loadu_si256((const __m256i *)(in_off + t0 + tt));
        const __m256 live = live_lanes(t0 + tt, p->T);
        const int row = edge[t0 + tt] & G_ROW;
        for (int c = 0; c < p->C; c++) {
            __m256 v[WXI];
            in_transform(xp + c * plane, off, row, p->Wp, live, v);
            float *d = V + (size_t)c * p->Tc + tt;
#pragma GCC unroll 16
            for (int x = 0; x < WXI; x++)
                _mm256_storeu_ps(d + x * pos, v[x]);
        }
    }
}

/* Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], for the chunk of nt tiles from t0 of every output
 * channel (M [16][O][Tc]), plus the bias, into y [N, O, OH, OW]: 8 tiles side by side in a row
 * of tiles as two rows of 16 outputs, others output by output (partial tiles at odd edges) */
static void out_transform(const wplan *p, const float *M, int t0, int nt, const int *out_off,
                          const int *edge, const float *b, float *y)
{
    const size_t pos = (size_t)p->O * p->Tc, oplane = (size_t)p->OH * p->OW;
    for (int tt = 0; tt < nt; tt += 8) {
        const int t = t0 + tt;
        const int whole = edge[t] & G_WHOLE; /* side by side, and all 2 x 16 outputs exist */
        const int lanes = nt - tt < 8 ? nt - tt : 8;
        for (int o = 0; o < p->O; o++) {
            const float *m = M + (size_t)o * p->Tc + tt;
            __m256 mv[WXI];
#pragma GCC unroll 16
            for (int k = 0; k < WXI; k++)
                mv[k] = _mm256_loadu_ps(m + k * pos);
            __m256 s[2][4];
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                s[0][c] = _mm256_add_ps(_mm256_add_ps(mv[c], mv[4 + c]), mv[8 + c]);
                s[1][c] = _mm256_sub_ps(_mm256_sub_ps(mv[4 + c], mv[8 + c]), mv[12 + c]);
            }
            const __m256 bias = _mm256_set1_ps(b ? b[o] : 0.0f);
            __m256 e[2], f[2]; /* the tiles' left and right outputs of each row */
#pragma GCC unroll 2
            for (int q = 0; q < 2; q++) {
                e[q] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[q][0], s[q][1]), s[q][2]), bias);
                f[q] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[q][1], s[q][2]), s[q][3]), bias);
            }
            float *yo = y + o * oplane;
            if (whole) {
                float *y0 = yo + out_off[t];
#pragma GCC unroll 2
                for (int q = 0; q < 2; q++) {
                    const __m256 lo = _mm256_unpacklo_ps(e[q], f[q]),
                                 hi = _mm256_unpackhi_ps(e[q], f[q]);
                    _mm256_storeu_ps(y0 + (size_t)q * p->OW, _mm256_permute2f128_ps(lo, hi, 0x20));
                    _mm256_storeu_ps(y0 + (size_t)q * p->OW + 8,
                                     _mm256_permute2f128_ps(lo, hi, 0x31));
                }
                continue;
            }
            float out[4][8];
            _mm256_storeu_ps(out[0], e[0]);
            _mm256_storeu_ps(out[1], f[0]);
            _mm256_storeu_ps(out[2], e[1]);
            _mm256_storeu_ps(out[3], f[1]);
            for (int j = 0; j < lanes; j++) {
                const int tj = t + j, row1 = edge[tj] & E_ROW1, col1 = edge[tj] & E_COL1;
                float *yj = yo + out_off[tj];
                yj[0] = out[0][j];
                if (col1)
                    yj[1] = out[1][j];
                if (row1) {
                    yj[p->OW] = out[2][j];
                    if (col1)
                        yj[p->OW + 1] = out[3][j];
                }
            }
        }
    }
}

void cpu_wino_fwd(const float *x, int N, int C, int H, int W, int pad, const float *w, int O,
                  const float *b, float *y, void *scratch, int threads)
{
    const wplan p = plan(N, C, H, W, pad, O, threads, 24);
    const int need_xp = needs_pad(&p);
    const wlayout l = layout(&p, need_xp, 0);
    const int wide = cpu_isa_avx512();
    float *base = align64(scratch);
    float *xp = need_xp ? base : (float *)x, *U = base + l.xp;
    int *in_off = (int *)(U + l.u), *out_off = in_off + p.Tpad, *edge = out_off + p.Tpad;
    float *thr = U + l.u + l.off;
    if (need_xp)
        pad_planes(x, N * C, H, W, pad, xp, p.Hp, p.Wp, p.nthr);
    tile_order(&p, p.OH, p.OW, O, in_off, out_off, edge);
    /* U [16][O][C] */
#pragma omp parallel for schedule(static) num_threads(p.nthr)
    for (int o = 0; o < O; o++)
        w_transform_row(w + (size_t)o * C * 9, C, U + (size_t)o * C, (size_t)O * C);
#pragma omp parallel num_threads(p.nthr)
    {
        float *V = thr + (size_t)omp_get_thread_num() * l.per_thr;
        float *M = V + (size_t)WXI * p.Tc * C;
#pragma omp for schedule(static, 1)
        for (int ch = 0; ch < p.nchunk; ch++) {
            const int t0 = ch * p.Tc, nt = p.T - t0 < p.Tc ? p.T - t0 : p.Tc;
            transform_inputs(&p, xp, in_off, edge, t0, nt, V);
#pragma GCC unroll 16
            for (int k = 0; k < WXI; k++)
                (wide ? gemm_fwd16 : gemm_fwd)(U + (size_t)k * O * C, O, C,
                                               V + (size_t)k * C * p.Tc, p.Tc, nt,
                                               M + (size_t)k * O * p.Tc);
            out_transform(&p, M, t0, nt, out_off, edge, b, y);
        }
    }
}

void cpu_wino_bwd_weights(const float *x, int N, int C, int H, int W, int pad, const float *gy,
                          int O, float *gw, void *scratch, int threads)
{
    const wplan p = plan(N, C, H, W, pad, O, threads, 96);
    const int need_xp = needs_pad(&p);
    const wlayout l = layout(&p, need_xp, 2);
    float *base = align64(scratch);
    float *xp = need_xp ? base : (float *)x;
    int *in_off = (int *)(base + l.xp), *g_off = in_off + p.Tpad, *edge = g_off + p.Tpad;
    float *thr = base + l.xp + l.off;
    const size_t acc_at = (size_t)WXI * p.Tc * (C + O); /* a thread's dU in its scratch */
    const int RH = 2 * p.TH, RW = 2 * p.TW;
    const float *g = gy;
    if ((p.OH | p.OW) & 1) { /* a partial tile: the gradient padded with zeros to whole tiles */
        float *gp = thr + l.per_thr * (size_t)p.nthr;
        pad_planes(gy, N * O, p.OH, p.OW, 0, gp, RH, RW, p.nthr);
        g = gp;
    }
    if (need_xp)
        pad_planes(x, N * C, H, W, pad, xp, p.Hp, p.Wp, p.nthr);
    tile_order(&p, RH, RW, O, in_off, g_off, edge);
    const size_t gplane = (size_t)RH * RW;
    int team = 1;
#pragma omp parallel num_threads(p.nthr)
    {
        const int id = omp_get_thread_num();
        if (id == 0) /* fewer than asked inside another team: only those sums exist */
            team = omp_get_num_threads();
        float *V = thr + (size_t)id * l.per_thr;
        float *M = V + (size_t)WXI * p.Tc * C;
        float *acc = V + acc_at;
        memset(acc, 0, (size_t)WXI * O * C * sizeof(float));
#pragma omp for schedule(static, 1)
        for (int ch = 0; ch < p.nchunk; ch++) {
            const int t0 = ch * p.Tc, nt = p.T - t0 < p.Tc ? p.T - t0 : p.Tc;
            transform_inputs(&p, xp, in_off, edge, t0, nt, V);
            /* dM = A dY A^T per tile, A = [1 0; 1 1; 1 -1; 0 -1], into M [16][O][Tc] */
            const size_t pos = (size_t)O * p.Tc;
            for (int tt = 0; tt < nt; tt += 8) {
                const __m256i off = _mm256_loadu_si256((const __m256i *)(g_off + t0 + tt));
                const __m256 live = live_lanes(t0 + tt, p.T);
                const int row = edge[t0 + tt] & G_ROW;
                for (int o = 0; o < O; o++) {
                    const float *go = g + o * gplane;
                    __m256 y00, y01, y10, y11;
                    if (row) { /* two rows of 16 gradients */
                        const float *g0 = go + g_off[t0 + tt];
                        const __m256 a = _mm256_loadu_ps(g0), bb = _mm256_loadu_ps(g0 + 8);
                        const __m256 c = _mm256_loadu_ps(g0 + RW), d = _mm256_loadu_ps(g0 + RW + 8);
                        y00 = evens(a, bb);
                        y01 = odds(a, bb);
                        y10 = evens(c, d);
                        y11 = odds(c, d);
                    } else {
                        y00 = _mm256_and_ps(_mm256_i32gather_ps(go, off, 4), live);
                        y01 = _mm256_and_ps(_mm256_i32gather_ps(go + 1, off, 4), live);
                        y10 = _mm256_and_ps(_mm256_i32gather_ps(go + RW, off, 4), live);
                        y11 = _mm256_and_ps(_mm256_i32gather_ps(go + RW + 1, off, 4), live);
                    }
                    __m256 r[4][2] = {{y00, y01},
                                      {_mm256_add_ps(y00, y10), _mm256_add_ps(y01, y11)},
                                      {_mm256_sub_ps(y00, y10), _mm256_sub_ps(y01, y11)},
                                      {_mm256_sub_ps(_mm256_setzero_ps(), y10),
                                       _mm256_sub_ps(_mm256_setzero_ps(), y11)}};
                    float *d = M + (size_t)o * p.Tc + tt;
#pragma GCC unroll 16
                    for (int i = 0; i < 4; i++) {
                        const __m256 a = r[i][0], bb = r[i][1];
                        _mm256_storeu_ps(d + (4 * i + 0) * pos, a);
                        _mm256_storeu_ps(d + (4 * i + 1) * pos, _mm256_add_ps(a, bb));
                        _mm256_storeu_ps(d + (4 * i + 2) * pos, _mm256_sub_ps(a, bb));
                        _mm256_storeu_ps(d + (4 * i + 3) * pos,
                                         _mm256_sub_ps(_mm256_setzero_ps(), bb));
                    }
                }
            }
#pragma GCC unroll 16
            for (int k = 0; k < WXI; k++)
                gemm_wgt(M + (size_t)k * O * p.Tc, O, V + (size_t)k * C * p.Tc, C, p.Tc, nt,
                         acc + (size_t)k * O * C);
        }
    }
    /* the threads' sums (in thread order: the same result for a given thread count) */
    float *sum = thr + acc_at;
    for (int id = 1; id < team; id++) {
        const float *a = thr + (size_t)id * l.per_thr + acc_at;
        for (size_t i = 0; i < (size_t)WXI * O * C; i++)
            sum[i] += a[i];
    }
#pragma omp parallel for schedule(static) num_threads(p.nthr)
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            float u[WXI];
#pragma GCC unroll 16
            for (int k = 0; k < WXI; k++)
                u[k] = sum[((size_t)k * O + o) * C + c];
            w_transform_adj(u, gw + ((size_t)o * C + c) * 9);
        }
}
