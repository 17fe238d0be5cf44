/* trainer_score.c: what the alignment module is measured by and the fixed alignments.
 *
 *   - the paired (oracle) assistant images and their check against the assistant slices;
 *   - histmatch: a monotone mapping of the assistant's intensity quantiles onto the target's;
 *   - the translation score on held-out assistant slices: the label score (Dice of the CT
 *     segmentor, S_real for mkd, on T(x^a) against y^a: the segmentation score CycleGAN's
 *     authors use for translation) and, with oracle renderings, the fidelity (mean absolute
 *     difference of T(x^a) and the oracle image, in normalised units). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer_internal.h"
#include "mkd_err.h"

static int same_slices(const train_slices *a, const train_slices *b)
{
    return a && b && a->n == b->n && a->size == b->size &&
           !memcmp(a->lab, b->lab, (size_t)a->n * a->size * a->size * sizeof(int32_t));
}

int trainer_set_oracle(trainer *t, const train_slices *oracle, char *err, size_t errlen)
{
    if (t->iam != TI_ORACLE || t->c.method == TM_BASELINE) {
        mkd_seterr(err, errlen, "paired renderings are used only with iam oracle (this run: %s)",
                   train_iam_name(t->iam));
        return -1;
    }
    if (!same_slices(oracle, t->ast)) {
        mkd_seterr(
            err, errlen,
            "the paired renderings do not match the assistant slices (slice count, size or labels "
            "differ: give the --paired-ct volumes of the same assistant volumes, in the same "
            "order)");
        return -1;
    }
    t->pair = oracle;
    return 0;
}

int trainer_set_score_set(trainer *t, const train_slices *assistant, const train_slices *oracle,
                          char *err, size_t errlen)
{
    if (!assistant || assistant->n < 1 || assistant->size != t->c.size) {
        mkd_seterr(err, errlen,
                   "the score set needs labelled assistant slices of the config's size");
        return -1;
    }
    if (oracle && !same_slices(oracle, assistant)) {
        mkd_seterr(err, errlen, "the score set's paired renderings do not match its slices");
        return -1;
    }
    if (t->iam == TI_ORACLE && !oracle) {
        mkd_seterr(
            err, errlen,
            "iam oracle scores its translation on paired renderings: give them for the score set");
        return -1;
    }
    t->sc = assistant;
    t->sc_oracle = oracle;
    return 0;
}

int trainer_scores(const trainer *t, const train_score **out)
{
    *out = t->scores;
    return t->nscores;
}

/* ---- histmatch ---------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* HIST_QUANTILES quantiles of about 200000 evenly strided values of s */
static int quantiles(const train_slices *s, float *q)
{
    size_t n = (size_t)s->n * s->size * s->size, stride = n / 200000 + 1,
           m = (n + stride - 1) / stride;
    float *v = malloc(m * sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0, k = 0; i < n; i += stride)
        v[k++] = s->img[i];
    qsort(v, m, sizeof *v, cmp_float);
    for (int i = 0; i < HIST_QUANTILES; i++)
        q[i] = v[(size_t)((double)i / (HIST_QUANTILES - 1) * (double)(m - 1))];
    free(v);
    return 0;
}

void trainer_histmatch_apply(const hist_map *m, const float *in, float *out, size_t n)
{
    const float *a = m->q_from, *b = m->q_to;
    const int Q = HIST_QUANTILES;
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        int lo = 0, hi = Q; /* lo: first quantile >= x */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (a[mid] < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        int up = lo; /* up: first quantile > x */
        while (up < Q && a[up] == x)
            up++;
        if (up > lo) { /* x is a (tied) quantile: the mean of its targets */
            double s = 0;
            for (int k = lo; k < up; k++)
                s += b[k];
            out[i] = (float)(s / (up - lo));
        } else if (lo == 0) {
            out[i] = b[0];
        } else if (lo == Q) {
            out[i] = b[Q - 1];
        } else {
            float f = (x - a[lo - 1]) / (a[lo] - a[lo - 1]);
            out[i] = b[lo - 1] + f * (b[lo] - b[lo - 1]);
        }
    }
}

int trainer_histmatch_init(trainer *t, char *err, size_t errlen)
{
    const train_slices *a = t->ast;
    size_t n = (size_t)a->n * a->size * a->size;
    t->hm.n = a->n;
    t->hm.size = a->size;
    t->hm.img = malloc(n * sizeof(float));
    t->hm.lab = malloc(n * sizeof(int32_t));
    if (!t->hm.img || !t->hm.lab || quantiles(a, t->hmap.q_from) ||
        quantiles(t->tgt, t->hmap.q_to)) {
        mkd_seterr(err, errlen, "out of memory for the histogram-matched slices");
        return -1;
    }
    memcpy(t->hm.lab, a->lab, n * sizeof(int32_t));
    trainer_histmatch_apply(&t->hmap, a->img, t->hm.img, n);
    return 0;
}

/* ---- the translation score ---------------------------------------------------------------- */

/* T(x) of n slices at img into out (host): the alignment module's view of assistant images. */
static int translate(trainer *t, const float *img, const float *oracle, int n, float *out,
                     char *err, size_t errlen)
{
    const int S = t->c.size;
    const size_t cnt = (size_t)n * S * S;
    if (t->g_a2t) {
        nn_scope sc = nn_ctx_scope(t->ctx);
        nn_tensor *x = nn_tensor_from(t->ctx, n, 1, S, S, img);
        nn_tensor *y = x ? generator_forward(t->g_a2t, t->ctx, x) : NULL;
        int bad = !y || nn_tensor_read(y, out);
        nn_ctx_scope_end(t->ctx, sc, NULL);
        if (bad) {
            mkd_seterr(err, errlen, "%s",
                       nn_ctx_error(t->ctx) ? nn_ctx_error(t->ctx) : "translation failed");
            return -1;
        }
    } else if (t->iam == TI_ORACLE) {
        memcpy(out, oracle, cnt * sizeof(float));
    } else if (t->iam == TI_HISTMATCH) {
        trainer_histmatch_apply(&t->hmap, img, out, cnt);
    } else {
        memcpy(out, img, cnt * sizeof(float));
    }
    return 0;
}

/* Adds the class counts of the segmentor's argmax on n translated slices to inter/psum/gsum. */
static int count_chunk(trainer *t, segmentor *s, const float *x, const int32_t *lab, int n,
                       int32_t *pred, double *inter, double *psum, double *gsum, char *err,
                       size_t errlen)
{
    const int S = t->c.size, K = t->c.classes;
    nn_scope sc = nn_ctx_scope(t->ctx);
    nn_tensor *xt = nn_tensor_from(t->ctx, n, 1, S, S, x);
    nn_tensor *z = xt ? segmentor_infer(s, t->ctx, xt) : NULL;
    int bad = !z || nn_argmax_channels(t->ctx, z, pred);
    nn_ctx_scope_end(t->ctx, sc, NULL);
    if (bad) {
        mkd_seterr(err, errlen, "%s",
                   nn_ctx_error(t->ctx) ? nn_ctx_error(t->ctx) : "scoring failed");
        return -1;
    }
    for (size_t i = 0; i < (size_t)n * S * S; i++) {
        int p = pred[i], g = lab[i];
        if (p < 0 || p >= K || g < 0 || g >= K)
            continue;
        psum[p]++;
        gsum[g]++;
        if (p == g)
            inter[p]++;
    }
    return 0;
}

static int add_score(trainer *t, float dice, float mae)
{
    if (t->nscores == t->capscores) {
        int nc = t->capscores ? 2 * t->capscores : 16;
        train_score *p = realloc(t->scores, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        t->scores = p;
        t->capscores = nc;
    }
    t->scores[t->nscores++] = (train_score){t->iter, dice, mae};
    t->prog.loss[TL_SCORE_DICE] = dice;
    t->prog.loss[TL_SCORE_MAE] = mae;
    return 0;
}

int trainer_score_now(trainer *t, char *err, size_t errlen)
{
    const int S = t->c.size, K = t->c.classes, B = t->c.batch > 0 ? t->c.batch : 1;
    const size_t ss = (size_t)S * S;
    segmentor *s = t->nseg == 2 ? t->seg[1] : t->seg[0];
    double *acc = calloc(3 * (size_t)K, sizeof *acc), mae = 0;
    float *x = malloc((size_t)B * ss * sizeof *x);
    int32_t *pred = malloc((size_t)B * ss * sizeof *pred);
    int rc = -1;
    if (!acc || !x || !pred) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    nn_ctx_reset(t->ctx);
    for (int i = 0; i < t->sc->n; i += B) {
        int n = t->sc->n - i < B ? t->sc->n - i : B;
        const float *img = t->sc->img + (size_t)i * ss,
                    *orc = t->sc_oracle ? t->sc_oracle->img + (size_t)i * ss : NULL;
        if (translate(t, img, orc, n, x, err, errlen) ||
            count_chunk(t, s, x, t->sc->lab + (size_t)i * ss, n, pred, acc, acc + K, acc + 2 * K,
                        err, errlen))
            goto done;
        for (size_t k = 0; orc && k < (size_t)n * ss; k++)
            mae += fabs((double)x[k] - (double)orc[k]);
    }
    /* Dice per foreground class pooled over the score set, mean over classes present */
    double dsum = 0;
    int dn = 0;
    for (int k = 1; k < K; k++)
        if (acc[K + k] + acc[2 * K + k] > 0) {
            dsum += 2 * acc[k] / (acc[K + k] + acc[2 * K + k]);
            dn++;
        }
    float mae_f = t->sc_oracle ? (float)(mae / ((double)t->sc->n * ss)) : NAN;
    if (add_score(t, dn ? (float)(dsum / dn) : NAN, mae_f)) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    free(acc);
    free(x);
    free(pred);
    return rc;
}

/* ---- the scores as JSON (model metadata, checkpoints) ------------------------------------- */

static json_t *num_or_null(float v) { return isnan(v) ? json_null() : json_real(v); }

char *trainer_scores_json(const trainer *t)
{
    json_t *a = json_array();
    for (int i = 0; i < t->nscores; i++)
        json_array_append_new(a, json_pack("{s:i,s:o,s:o}", "iter", t->scores[i].iter, "label_dice",
                                           num_or_null(t->scores[i].dice), "fidelity_mae",
                                           num_or_null(t->scores[i].mae)));
    char *s = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(a);
    return s;
}

int trainer_scores_from_json(trainer *t, const char *text)
{
    json_t *a = json_loads(text, 0, NULL);
    if (!json_is_array(a)) {
        json_decref(a);
        return -1;
    }
    t->nscores = 0;
    size_t i;
    json_t *v;
    int rc = 0, it = t->iter;
    json_array_foreach (a, i, v) {
        json_t *d = json_object_get(v, "label_dice"), *m = json_object_get(v, "fidelity_mae");
        t->iter = (int)json_integer_value(json_object_get(v, "iter"));
        if (add_score(t, json_is_number(d) ? (float)json_number_value(d) : NAN,
                      json_is_number(m) ? (float)json_number_value(m) : NAN)) {
            rc = -1;
            break;
        }
    }
    t->iter = it;
    json_decref(a);
    return rc;
}
