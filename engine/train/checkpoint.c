/* checkpoint.c: trainer checkpoints and model files (safetensors). See train.h.
 *
 * Checkpoint tensors: "<net>.<param>" for every parameter and buffer of every network
 * (net = s_syn, s_real, seg, g_a2t, g_t2a, d_t, d_a), "adam.<net>.<param>.m|v|step" for
 * every parameter with Adam state, "pool.t" and "pool.a" (the stored fakes), "rng" (4 x u64
 * as I64), "state" ([iteration, finetune_switched]); joint-dsbn adds "seg_a.<param>" (the
 * assistant's BatchNorm). Metadata: mkdseg.kind = checkpoint, mkdseg.config = the config JSON,
 * mkdseg.translation = the translation scores so far (JSON array). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_pool.h"
#include "nn_backend.h"
#include "safetensors.h"
#include "train.h"
#include "trainer_internal.h"
#include "mkd_err.h"

/* host copies that must live until the writer has written */
typedef struct {
    void **p;
    int n, cap;
} keep;
static void *keep_alloc(keep *k, size_t bytes)
{
    if (k->n == k->cap) {
        int nc = k->cap ? 2 * k->cap : 64;
        void **np = realloc(k->p, (size_t)nc * sizeof *np);
        if (!np)
            return NULL;
        k->p = np;
        k->cap = nc;
    }
    void *b = malloc(bytes ? bytes : 1);
    if (b)
        k->p[k->n++] = b;
    return b;
}
static void keep_free(keep *k)
{
    for (int i = 0; i < k->n; i++)
        free(k->p[i]);
    free(k->p);
}

static int add_net(const nn_backend *be, st_writer *w, keep *k, const char *prefix, nn_params *p,
                   int with_adam, char *err, size_t errlen)
{
    char name[256];
    for (int i = 0; i < nn_params_count(p); i++) {
        nn_param *q = nn_params_at(p, i);
        size_t n = nn_numel(&q->t);
        float *h = keep_alloc(k, n * sizeof(float));
        if (!h) {
            mkd_seterr(err, errlen, "out of memory");
            return -1;
        }
        nn_tensor_read(&q->t, h);
        int64_t shape[4] = {q->t.n, q->t.c, q->t.h, q->t.w};
        snprintf(name, sizeof name, "%s.%s", prefix, q->name);
        if (st_writer_add(w, name, ST_F32, 4, shape, h, err, errlen))
            return -1;
        if (!with_adam || !q->adam_m)
            continue;
        for (int mv = 0; mv < 2; mv++) {
            float *a = keep_alloc(k, n * sizeof(float));
            if (!a) {
                mkd_seterr(err, errlen, "out of memory");
                return -1;
            }
            be->mem_download(a, mv ? q->adam_v : q->adam_m, n * sizeof(float));
            snprintf(name, sizeof name, "adam.%s.%s.%c", prefix, q->name, mv ? 'v' : 'm');
            if (st_writer_add(w, name, ST_F32, 4, shape, a, err, errlen))
                return -1;
        }
        int64_t *st = keep_alloc(k, sizeof(int64_t)), one = 1;
        if (!st) {
            mkd_seterr(err, errlen, "out of memory");
            return -1;
        }
        *st = q->adam_step;
        snprintf(name, sizeof name, "adam.%s.%s.step", prefix, q->name);
        if (st_writer_add(w, name, ST_I64, 1, &one, st, err, errlen))
            return -1;
    }
    return 0;
}

static int load_net(const nn_backend *be, st_file *f, const char *prefix, nn_params *p,
                    int with_adam, char *err, size_t errlen)
{
    char name[256];
    for (int i = 0; i < nn_params_count(p); i++) {
        nn_param *q = nn_params_at(p, i);
        size_t n = nn_numel(&q->t);
        snprintf(name, sizeof name, "%s.%s", prefix, q->name);
        const st_tensor *t = st_get(f, name);
        if (!t || t->dtype != ST_F32 || (size_t)t->numel != n) {
            mkd_seterr(err, errlen, "%s: %s", name, t ? "has the wrong shape or type" : "missing");
            return -1;
        }
        nn_tensor_write(&q->t, t->data);
        if (!with_adam)
            continue;
        snprintf(name, sizeof name, "adam.%s.%s.m", prefix, q->name);
        const st_tensor *m = st_get(f, name);
        snprintf(name, sizeof name, "adam.%s.%s.v", prefix, q->name);
        const st_tensor *v = st_get(f, name);
        snprintf(name, sizeof name, "adam.%s.%s.step", prefix, q->name);
        const st_tensor *s = st_get(f, name);
        if (!m && !v && !s)
            continue;
        if (!m || !v || !s || (size_t)m->numel != n || (size_t)v->numel != n ||
            m->dtype != ST_F32 || v->dtype != ST_F32 || s->dtype != ST_I64 || s->numel != 1) {
            mkd_seterr(err, errlen, "adam state of %s.%s is incomplete or malformed", prefix,
                       q->name);
            return -1;
        }
        if (trainer_param_set_adam(be, q, m->data, v->data, *(const int64_t *)s->data, n)) {
            mkd_seterr(err, errlen, "out of memory restoring adam state");
            return -1;
        }
    }
    return 0;
}

/* the networks of a trainer with their checkpoint prefixes */
static int nets(trainer *t, const char **prefix, nn_params **p)
{
    int k = 0;
    if (trainer_members(t) == 2) {
        prefix[k] = "s_syn";
        p[k++] = trainer_segmentor(t, 0)->params;
        prefix[k] = "s_real";
        p[k++] = trainer_segmentor(t, 1)->params;
    } else {
        prefix[k] = "seg";
        p[k++] = trainer_segmentor(t, 0)->params;
    }
    if (trainer_segmentor_assistant(t)) {
        prefix[k] = "seg_a";
        p[k++] = trainer_segmentor_assistant(t)->params;
    }
    if (trainer_g_a2t(t)) {
        prefix[k] = "g_a2t";
        p[k++] = trainer_g_a2t(t)->params;
        prefix[k] = "g_t2a";
        p[k++] = trainer_g_t2a(t)->params;
        prefix[k] = "d_t";
        p[k++] = trainer_d_t(t)->params;
        prefix[k] = "d_a";
        p[k++] = trainer_d_a(t)->params;
    }
    return k;
}

int trainer_save_checkpoint(trainer *t, const char *path, char *err, size_t errlen)
{
    keep k = {0};
    int rc = -1;
    st_writer *w = st_writer_new();
    char *cfg = train_config_to_json(trainer_config(t)), *scores = NULL;
    if (!w || !cfg) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    const char *prefix[6];
    nn_params *p[6];
    int n = nets(t, prefix, p);
    for (int i = 0; i < n; i++)
        if (add_net(trainer_backend(t), w, &k, prefix[i], p[i], 1, err, errlen))
            goto done;
    image_pool *pools[2];
    trainer_pools(t, &pools[0], &pools[1]);
    for (int i = 0; i < 2; i++) {
        if (!pools[i] || !pools[i]->img)
            continue;
        int64_t shape[2] = {pools[i]->num, (int64_t)pools[i]->isz};
        if (st_writer_add(w, i ? "pool.a" : "pool.t", ST_F32, 2, shape, pools[i]->img, err, errlen))
            goto done;
    }
    int64_t *rs = keep_alloc(&k, 6 * sizeof(int64_t));
    if (!rs) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    const nn_rng *r = trainer_rng(t);
    memcpy(rs, r->s, 4 * sizeof(int64_t));
    int64_t four = 4, two = 2;
    if (st_writer_add(w, "rng", ST_I64, 1, &four, rs, err, errlen))
        goto done;
    rs[4] = trainer_iter(t);
    rs[5] = trainer_finetune_switched(t);
    if (st_writer_add(w, "state", ST_I64, 1, &two, rs + 4, err, errlen))
        goto done;
    st_writer_meta(w, "mkdseg.kind", "checkpoint");
    st_writer_meta(w, "mkdseg.config", cfg);
    if (!(scores = trainer_scores_json(t))) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    st_writer_meta(w, "mkdseg.translation", scores);
    rc = st_writer_write(w, path, err, errlen);
done:
    free(scores);
    free(cfg);
    st_writer_free(w);
    keep_free(&k);
    return rc;
}

/* Settings that may differ between the run that wrote a checkpoint and the one resuming. */
static const char *const resumable[] = {"threads", "iters", "epochs", "checkpoint_every"};

int trainer_load_checkpoint(trainer *t, const char *path, char *err, size_t errlen)
{
    st_file *f = NULL;
    json_t *a = NULL, *b = NULL;
    char *mine = NULL;
    int rc = -1;
    if (st_open(path, 0, &f, err, errlen))
        return -1;
    const char *kind = st_meta(f, "mkdseg.kind"), *cfg = st_meta(f, "mkdseg.config");
    if (!kind || strcmp(kind, "checkpoint") || !cfg) {
        mkd_seterr(err, errlen, "%s is not an mkdseg checkpoint", path);
        goto done;
    }
    mine = train_config_to_json(trainer_config(t));
    a = json_loads(cfg, 0, NULL);
    b = mine ? json_loads(mine, 0, NULL) : NULL;
    if (!a || !b) {
        mkd_seterr(err, errlen, "checkpoint config is not JSON");
        goto done;
    }
    for (size_t i = 0; i < sizeof resumable / sizeof resumable[0]; i++) {
        json_object_del(a, resumable[i]);
        json_object_del(b, resumable[i]);
    }
    if (!json_equal(a, b)) {
        mkd_seterr(err, errlen, "checkpoint %s was written with different settings", path);
        goto done;
    }
    const char *prefix[6];
    nn_params *p[6];
    int n = nets(t, prefix, p);
    for (int i = 0; i < n; i++)
        if (load_net(trainer_backend(t), f, prefix[i], p[i], 1, err, errlen))
            goto done;
    image_pool *pools[2];
    trainer_pools(t, &pools[0], &pools[1]);
    for (int i = 0; i < 2; i++) {
        if (!pools[i] || !pools[i]->img)
            continue;
        const st_tensor *pt = st_get(f, i ? "pool.a" : "pool.t");
        if (!pt || pt->dtype != ST_F32 || pt->ndim != 2 || pt->shape[1] != (int64_t)pools[i]->isz ||
            pt->shape[0] > pools[i]->cap) {
            mkd_seterr(err, errlen, "checkpoint image pool %s is missing or malformed",
                       i ? "pool.a" : "pool.t");
            goto done;
        }
        pools[i]->num = (int)pt->shape[0];
        memcpy(pools[i]->img, pt->data, pt->nbytes);
    }
    const st_tensor *rt = st_get(f, "rng"), *stt = st_get(f, "state");
    if (!rt || rt->dtype != ST_I64 || rt->numel != 4 || !stt || stt->dtype != ST_I64 ||
        stt->numel != 2) {
        mkd_seterr(err, errlen, "checkpoint rng/state missing");
        goto done;
    }
    nn_rng r;
    memcpy(r.s, rt->data, sizeof r.s);
    const int64_t *sv = stt->data;
    trainer_restore_state(t, &r, (int)sv[0], (int)sv[1]);
    const char *scores = st_meta(f, "mkdseg.translation");
    if (scores && trainer_scores_from_json(t, scores)) {
        mkd_seterr(err, errlen, "checkpoint translation scores are malformed");
        goto done;
    }
    rc = 0;
done:
    json_decref(a);
    json_decref(b);
    free(mine);
    st_close(f);
    return rc;
}

static const char *const mmwhs_names =
    "[\"background\",\"MYO\",\"LA\",\"LV\",\"RA\",\"RV\",\"AA\",\"PA\"]";
static const char *const mmwhs_values = "[0,205,420,500,550,600,820,850]";

int trainer_save_model(trainer *t, const char *path, const char *const *kv, int nkv, char *err,
                       size_t errlen)
{
    keep k = {0};
    int rc = -1;
    char *cfg = train_config_to_json(trainer_config(t)), *scores = NULL;
    st_writer *w = st_writer_new();
    if (!w || !cfg) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    const train_config *c = trainer_config(t);
    int members = trainer_members(t);
    const char *names[2] = {members == 2 ? "s_syn" : "seg", "s_real"};
    for (int i = 0; i < members; i++)
        if (add_net(trainer_backend(t), w, &k, names[i], trainer_segmentor(t, i)->params, 0, err,
                    errlen))
            goto done;
    char arch[256], iters[32];
    snprintf(
        arch, sizeof arch,
        "{\"segmentor\":{\"width\":%d,\"classes\":%d,\"in_ch\":1,\"levels\":5,\"norm\":\"batch\"}}",
        c->seg_width, c->classes);
    snprintf(iters, sizeof iters, "%d", trainer_iter(t));
    st_writer_meta(w, "mkdseg.kind", "model");
    st_writer_meta(w, "mkdseg.format", "1");
    st_writer_meta(w, "mkdseg.members", members == 2 ? "s_syn,s_real" : "seg");
    st_writer_meta(w, "mkdseg.arch", arch);
    st_writer_meta(w, "mkdseg.method", train_method_name(c->method));
    st_writer_meta(w, "mkdseg.config", cfg);
    st_writer_meta(w, "mkdseg.iterations", iters);
    st_writer_meta(w, "mkdseg.label_names", mmwhs_names);
    st_writer_meta(w, "mkdseg.label_values", mmwhs_values);
    const train_score *sc;
    if (trainer_scores(t, &sc) > 0) {
        if (!(scores = trainer_scores_json(t))) {
            mkd_seterr(err, errlen, "out of memory");
            goto done;
        }
        st_writer_meta(w, "mkdseg.translation", scores);
    }
    for (int i = 0; i + 1 < 2 * nkv; i += 2)
        st_writer_meta(w, kv[i], kv[i + 1]);
    rc = st_writer_write(w, path, err, errlen);
done:
    free(scores);
    free(cfg);
    st_writer_free(w);
    keep_free(&k);
    return rc;
}
