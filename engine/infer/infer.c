/* infer.c: see infer.h. Shapes: a slice [h][w] on its own grid, resampled to [rh][rw] at the
 * model spacing; tiles [T][T]; probabilities [K][rh][rw] accumulated with Gaussian weights. */
#include "infer.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "safetensors.h"
#include "mkd_err.h"
#include "mkd_env.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void infer_model_free(infer_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < INFER_MAX_MEMBERS; i++)
        segmentor_free(m->seg[i]);
    free(m);
}

infer_model *infer_model_load(const char *path, const nn_backend *be, char *err, size_t errlen)
{
    st_file *f = NULL;
    json_t *arch = NULL;
    infer_model *m = NULL;
    char e2[300];
    if (st_open(path, 0, &f, e2, sizeof e2)) {
        mkd_seterr(err, errlen, "model %s: %s", path, e2);
        return NULL;
    }
    const char *kind = st_meta(f, "mkdseg.kind"), *members = st_meta(f, "mkdseg.members"),
               *arch_s = st_meta(f, "mkdseg.arch"), *norm_s = st_meta(f, "mkdseg.prep.norm"),
               *sp_s = st_meta(f, "mkdseg.prep.spacing"), *size_s = st_meta(f, "mkdseg.prep.size"),
               *method = st_meta(f, "mkdseg.method");
    if (!kind || strcmp(kind, "model")) {
        mkd_seterr(err, errlen, "model %s: not an mkdseg model file (mkdseg.kind is not 'model')",
                   path);
        goto fail;
    }
    if (!members || !arch_s || !norm_s || !sp_s || !size_s) {
        mkd_seterr(err, errlen, "model %s: metadata lacks %s", path,
                   !members  ? "mkdseg.members"
                   : !arch_s ? "mkdseg.arch"
                   : !norm_s ? "mkdseg.prep.norm"
                   : !sp_s   ? "mkdseg.prep.spacing"
                             : "mkdseg.prep.size");
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        mkd_seterr(err, errlen, "out of memory");
        goto fail;
    }
    m->be = be;
    snprintf(m->method, sizeof m->method, "%s", method ? method : "unknown");
    if (!strcmp(members, "seg")) {
        m->members = 1;
        strcpy(m->member_name[0], "seg");
    } else if (!strcmp(members, "s_syn,s_real")) {
        m->members = 2;
        strcpy(m->member_name[0], "s_syn");
        strcpy(m->member_name[1], "s_real");
    } else {
        mkd_seterr(err, errlen, "model %s: unknown members '%s'", path, members);
        goto fail;
    }
    arch = json_loads(arch_s, 0, NULL);
    json_t *sg = json_object_get(arch, "segmentor");
    json_int_t width = json_integer_value(json_object_get(sg, "width")),
               classes = json_integer_value(json_object_get(sg, "classes")),
               in_ch = json_integer_value(json_object_get(sg, "in_ch"));
    if (!sg || width < 1 || width > 256 || classes < 2 || classes > 64 || in_ch != 1) {
        mkd_seterr(err, errlen, "model %s: mkdseg.arch is malformed", path);
        goto fail;
    }
    m->classes = (int)classes;
    if (prep_norm_from_string(&m->norm, norm_s, e2, sizeof e2)) {
        mkd_seterr(err, errlen, "model %s: %s", path, e2);
        goto fail;
    }
    char *end;
    m->spacing = strtod(sp_s, &end);
    if (*end || !(m->spacing >= 0 && m->spacing < 100)) {
        mkd_seterr(err, errlen, "model %s: bad mkdseg.prep.spacing", path);
        goto fail;
    }
    long sz = strtol(size_s, &end, 10);
    if (*end || sz < 16 || sz > 2048 || sz % 16) {
        mkd_seterr(err, errlen, "model %s: bad mkdseg.prep.size", path);
        goto fail;
    }
    m->size = (int)sz;
    for (int k = 0; k < m->members; k++) {
        m->seg[k] = segmentor_new(be, (int)width, (int)classes, 1, e2, sizeof e2);
        if (!m->seg[k]) {
            mkd_seterr(err, errlen, "model %s: %s", path, e2);
            goto fail;
        }
        nn_params *p = m->seg[k]->params;
        for (int i = 0; i < nn_params_count(p); i++) {
            nn_param *q = nn_params_at(p, i);
            char name[200];
            snprintf(name, sizeof name, "%s.%s", m->member_name[k], q->name);
            const st_tensor *t = st_get(f, name);
            if (!t || t->dtype != ST_F32 || (size_t)t->numel != nn_numel(&q->t)) {
                mkd_seterr(err, errlen, "model %s: tensor %s %s", path, name,
                           t ? "has the wrong shape or type" : "is missing");
                goto fail;
            }
            for (int64_t j = 0; j < t->numel; j++)
                if (!isfinite(((const float *)t->data)[j])) {
                    mkd_seterr(err, errlen, "model %s: tensor %s holds non-finite values", path,
                               name);
                    goto fail;
                }
            nn_tensor_write(&q->t, t->data);
        }
    }
    json_decref(arch);
    st_close(f);
    return m;
fail:
    json_decref(arch);
    st_close(f);
    infer_model_free(m);
    return NULL;
}

/* Probabilities of n tiles [n][T][T] -> out [n][K][T][T], the chosen members averaged; with
 * split (both members of a two-member model) out [n][2][K][T][T] keeps each member's own
 * probabilities instead, so they can be accumulated separately. tmp has room for one member's
 * output. */
static int run_tiles(const infer_model *m, nn_ctx *ctx, const float *tiles, int n, int member,
                     int split, float *out, float *tmp, char *err, size_t errlen)
{
    const int T = m->size, K = m->classes;
    const size_t tt = (size_t)T * T, per = (size_t)n * K * tt;
    int used = 0;
    for (int k = 0; k < m->members; k++) {
        if (member >= 0 && member != k)
            continue;
        nn_ctx_reset(ctx);
        nn_tensor *x = nn_tensor_from(ctx, n, 1, T, T, tiles);
        nn_tensor *p = nn_softmax(ctx, segmentor_infer(m->seg[k], ctx, x));
        if (!p) {
            mkd_seterr(err, errlen, "inference: %s",
                       nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "forward failed");
            return -1;
        }
        nn_tensor_read(p, used || split ? tmp : out);
        if (split)
            for (int i = 0; i < n; i++)
                memcpy(out + ((size_t)i * 2 + k) * K * tt, tmp + (size_t)i * K * tt,
                       sizeof(float) * K * tt);
        else if (used)
            for (size_t i = 0; i < per; i++)
                out[i] += tmp[i];
        used++;
    }
    if (used > 1 && !split)
        for (size_t i = 0; i < per; i++)
            out[i] /= (float)used;
    return 0;
}

float infer_js_divergence(const float *p, const float *q, int K, size_t stride)
{
    /* single precision is plenty for a map shown and averaged; classes where both members put
     * (almost) no mass add nothing and are skipped */
    float js = 0;
    for (int c = 0; c < K; c++) {
        float a = p[(size_t)c * stride], b = q[(size_t)c * stride], mid = 0.5f * (a + b);
        if (mid < 1e-12f)
            continue;
        if (a > 0)
            js += a * log2f(a / mid);
        if (b > 0)
            js += b * log2f(b / mid);
    }
    js *= 0.5f;
    return js < 0 ? 0.0f : js > 1 ? 1.0f : js;
}

/* One slice's probabilities bk ([K][np], or [2][K][np] when split) -> class indices lb and,
 * when split, the members' Jensen-Shannon divergence dis; the split ensemble is the mean of
 * the two members' maps. */
static void finish_slice(const float *bk, int K, int split, int64_t np, uint8_t *lb, float *dis)
{
    const size_t st = (size_t)np;
    for (int64_t i = 0; i < np; i++) {
        int best = 0;
        float bv = -1.0f;
        for (int c = 0; c < K; c++) {
            float v = split ? 0.5f * (bk[c * st + i] + bk[(K + c) * st + i]) : bk[c * st + i];
            if (v > bv) {
                bv = v;
                best = c;
            }
        }
        lb[i] = (uint8_t)best;
        if (split)
            dis[i] = infer_js_divergence(bk + i, bk + K * st + i, K, st);
    }
}

static void flip(float *x, int C, int T, int lr, int ud)
{
    for (int c = 0; c < C; c++) {
        float *p = x + (size_t)c * T * T;
        if (lr)
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T / 2; j++) {
                    float t = p[i * T + j];
                    p[i * T + j] = p[i * T + T - 1 - j];
                    p[i * T + T - 1 - j] = t;
                }
        if (ud)
            for (int i = 0; i < T / 2; i++)
                for (int j = 0; j < T; j++) {
                    float t = p[i * T + j];
                    p[i * T + j] = p[(T - 1 - i) * T + j];
                    p[(T - 1 - i) * T + j] = t;
                }
    }
}

#define MAX_TILES 64

int infer_volume(const infer_model *m, const vol_t *image, const infer_opts *o, uint8_t *cls,
                 infer_timing *timing, char *err, size_t errlen)
{
    return infer_volume_ex(m, image, o, cls, NULL, timing, err, errlen);
}

/* What every slice of one volume's inference shares (infer_volume_ex sets it up). */
typedef struct {
    const infer_model *m;
    const vol_t *image;
    const infer_opts *o;
    uint8_t *cls;
    float *disagree;
    vol_slice_frame f;
    prep_norm_stats st;
    int64_t rw, rh, py[MAX_TILES], px[MAX_TILES];
    int ny, nx, ntile, passes, split, KK, SB;
} slice_job;

/* Slices first, first + step, ... (each call SB slices at a time) into j->cls (and
 * j->disagree): the buffers and the context are this call's own, so workers on different
 * slices run side by side (they write different voxels). */
static int run_slices(const slice_job *j, int64_t first, int64_t step, double *t_net,
                      double *t_post, char *err, size_t errlen)
{
    const infer_model *m = j->m;
    const vol_geom *g = &j->image->geom;
    const vol_slice_frame *fp = &j->f;
    const infer_opts *o = j->o;
    const int T = m->size, K = m->classes, KK = j->KK, SB = j->SB, ntile = j->ntile;
    const int nx = j->nx, ny = j->ny, split = j->split;
    const int64_t rw = j->rw, rh = j->rh;
    const int64_t *py = j->py, *px = j->px;
    size_t tt = (size_t)T * T, nsl = (size_t)(fp->w * fp->h), nrs = (size_t)(rw * rh);
    float *sl = malloc(sizeof(float) * nsl * SB), *rs = malloc(sizeof(float) * nrs * SB);
    float *tiles = malloc(sizeof(float) * ntile * tt * SB),
          *probs = malloc(sizeof(float) * ntile * KK * tt * SB);
    float *ptmp = malloc(sizeof(float) * ntile * K * tt * SB);
    float *acc = malloc(sizeof(float) * KK * nrs * SB), *wsum = malloc(sizeof(float) * nrs * SB);
    float *gw = malloc(sizeof(float) * tt), *back = malloc(sizeof(float) * KK * nsl * SB);
    uint8_t *lab = malloc(nsl * SB);
    float *dis = malloc(sizeof(float) * nsl * SB);
    nn_ctx *ctx = nn_ctx_new(m->be, 0, err, errlen);
    int rc = -1;
    if (!ctx)
        goto done;
    if (!sl || !rs || !tiles || !probs || !ptmp || !acc || !wsum || !gw || !back || !lab || !dis) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    nn_ctx_set_grad_enabled(ctx, 0);
    prep_gaussian_weights(T, gw);
    for (int64_t s0 = first; s0 < fp->nslices; s0 += step) {
        const int nb = fp->nslices - s0 < SB ? (int)(fp->nslices - s0) : SB;
#pragma omp parallel for if (nb > 1) schedule(static, 1)
        for (int q = 0; q < nb; q++) {
            float *slj = sl + nsl * q, *rsj = rs + nrs * q;
            prep_slice_get(g, fp, j->image->data, s0 + q, slj);
            prep_norm_apply(&m->norm, &j->st, slj, fp->h * fp->w);
            prep_resize_linear(slj, 1, fp->h, fp->w, rsj, rh, rw);
            memset(acc + KK * nrs * q, 0, sizeof(float) * KK * nrs);
            memset(wsum + nrs * q, 0, sizeof(float) * nrs);
        }
        for (int pass = 0; pass < j->passes; pass++) {
            int lr = pass == 1, ud = pass == 2;
            for (int q = 0; q < nb; q++)
                for (int a = 0; a < ny; a++)
                    for (int b = 0; b < nx; b++) {
                        float *tile = tiles + ((size_t)q * ntile + a * nx + b) * tt;
                        prep_tile_get(rs + nrs * q, rh, rw, py[a], px[b], T, -1.0f, tile);
                        flip(tile, 1, T, lr, ud);
                    }
            /* a short last group runs at the full group size (the spare tiles hold -1, the
             * background value): the device keeps the shapes it has tuned algorithms for */
            for (size_t i = (size_t)nb * ntile * tt; i < (size_t)SB * ntile * tt; i++)
                tiles[i] = -1.0f;
            double tn = now_s();
            if (run_tiles(m, ctx, tiles, SB * ntile, o->member, split, probs, ptmp, err, errlen))
                goto done;
            *t_net += now_s() - tn;
            for (int q = 0; q < nb; q++)
                for (int i = 0; i < ntile; i++) {
                    float *p = probs + ((size_t)q * ntile + i) * KK * tt;
                    flip(p, KK, T, lr, ud);
                    prep_tile_accumulate(acc + KK * nrs * q, wsum + nrs * q, KK, rh, rw, py[i / nx],
                                         px[i % nx], T, p, gw);
                }
        }
        double tp = now_s();
#pragma omp parallel for if (nb > 1) schedule(static, 1)
        for (int q = 0; q < nb; q++) {
            float *accj = acc + KK * nrs * q, *wsj = wsum + nrs * q, *bk = back + KK * nsl * q;
            uint8_t *lb = lab + nsl * q;
            for (int64_t c = 0; c < KK; c++)
                for (int64_t i = 0; i < rh * rw; i++)
                    accj[c * rh * rw + i] /= wsj[i] > 0 ? wsj[i] : 1.0f;
            prep_resize_linear(accj, KK, rh, rw, bk, fp->h, fp->w);
            finish_slice(bk, K, split, fp->h * fp->w, lb, dis + nsl * q);
            prep_slice_put_u8(g, fp, j->cls, s0 + q, lb);
            if (split)
                prep_slice_put(g, fp, j->disagree, s0 + q, dis + nsl * q);
        }
        *t_post += now_s() - tp;
    }
    rc = 0;
done:
    nn_ctx_free(ctx);
    free(sl);
    free(rs);
    free(tiles);
    free(probs);
    free(ptmp);
    free(acc);
    free(wsum);
    free(gw);
    free(back);
    free(lab);
    free(dis);
    return rc;
}

int infer_volume_ex(const infer_model *m, const vol_t *image, const infer_opts *o, uint8_t *cls,
                    float *disagree, infer_timing *timing, char *err, size_t errlen)
{
    const vol_geom *g = &image->geom;
    const int T = m->size;
    infer_opts dflt = {-1, 0, 0.5};
    if (!o)
        o = &dflt;
    if (o->member >= m->members) {
        mkd_seterr(err, errlen, "model has %d member(s); member %d does not exist", m->members,
                   o->member);
        return -1;
    }
    slice_job *j = calloc(1, sizeof *j);
    if (!j) {
        mkd_seterr(err, errlen, "out of memory");
        return -1;
    }
    *j = (slice_job){.m = m, .image = image, .o = o, .cls = cls, .disagree = disagree};
    double t0 = now_s(), t_net = 0, t_post = 0;
    int rc = -1;
    vol_geom_slice_frame(g, &j->f);
    const vol_slice_frame *fp = &j->f;
    if (prep_norm_fit(&m->norm, image->data, g->nx * g->ny * g->nz, &j->st, err, errlen))
        goto done;
    double tsu = m->spacing > 0 ? m->spacing : fp->du, tsv = m->spacing > 0 ? m->spacing : fp->dv;
    j->rw = prep_resampled_size(fp->w, fp->du, tsu);
    j->rh = prep_resampled_size(fp->h, fp->dv, tsv);
    j->ny = prep_tile_positions(j->rh, T, o->overlap, j->py, MAX_TILES);
    j->nx = prep_tile_positions(j->rw, T, o->overlap, j->px, MAX_TILES);
    if (j->ny > MAX_TILES || j->nx > MAX_TILES || (int64_t)j->ny * j->nx > 1024) {
        mkd_seterr(err, errlen,
                   "slice of %lldx%lld pixels at the model spacing needs too many tiles",
                   (long long)j->rh, (long long)j->rw);
        goto done;
    }
    j->ntile = j->ny * j->nx;
    j->passes = o->tta ? 3 : 1;
    /* the disagreement needs each member's probabilities accumulated on their own: KK channels */
    j->split = disagree && m->members == 2 && o->member < 0;
    j->KK = j->split ? 2 * m->classes : m->classes;
    /* Slices per network call: the CPU takes one slice at a time (memory of one slice);
     * a GPU backend takes several, so each call fills the device (a 256x256 tile alone
     * leaves most of an H100 idle), and the slices' preparation and post-processing run
     * in parallel on the host. MKDSEG_INFER_TILES caps the tiles per call (default 16). */
    j->SB = 1;
    if (nn_backend_is_device(m->be)) {
        int cap = (int)mkd_env_pos(MKD_ENV_INFER_TILES);
        j->SB = cap / j->ntile > 1 ? cap / j->ntile : 1;
        if (j->SB > fp->nslices)
            j->SB = fp->nslices > 0 ? (int)fp->nslices : 1;
    }
    /* On the CPU with several threads, slices run side by side, one per thread, each op of a
     * slice on one thread: a slice's network call is a few tiles through small layers, where
     * a team of threads per op spends its time waking and waiting (a 512x512x300 CT took 10.5 s
     * at one thread and 15 s at two with the team inside each op: docs/benchmarks.md). */
    const int nthr = nn_get_threads();
    const int par = !nn_backend_is_device(m->be) && nthr > 1 && fp->nslices > 1
                        ? (fp->nslices < nthr ? (int)fp->nslices : nthr)
                        : 1;
    if (par == 1) {
        rc = run_slices(j, 0, j->SB, &t_net, &t_post, err, errlen);
    } else {
        int failed = 0;
#pragma omp parallel num_threads(par)
        {
            char e[256] = "";
            double tn = 0, tp = 0;
            nn_set_thread_threads(1);
            const int id = omp_get_thread_num(), n = omp_get_num_threads();
            const int bad = run_slices(j, id, n, &tn, &tp, e, sizeof e) != 0;
            nn_set_thread_threads(0);
#pragma omp critical(infer_join)
            {
                /* the timings: the slowest worker's, as if one after the other per worker */
                t_net = tn > t_net ? tn : t_net;
                t_post = tp > t_post ? tp : t_post;
                if (bad && !failed) {
                    failed = 1;
                    mkd_seterr(err, errlen, "%s", e);
                }
            }
        }
        rc = failed ? -1 : 0;
    }
    if (rc == 0 && disagree && !j->split)
        memset(disagree, 0, sizeof(float) * (size_t)(g->nx * g->ny * g->nz));
done:
    if (timing) {
        timing->total_s = now_s() - t0;
        timing->net_s = t_net;
        timing->post_s = t_post;
        timing->prep_s = timing->total_s - t_net - t_post;
    }
    free(j);
    return rc;
}
