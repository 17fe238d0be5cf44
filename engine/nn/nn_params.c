/* nn_params.c: named parameter/buffer registries, initialisers, Adam and LR schedules. */
#include "nn_backend.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nn_params {
    const nn_backend *be;
    nn_param **v;
    int n, cap;
};

nn_params *nn_params_new(const nn_backend *be, char *err, size_t errlen)
{
    nn_params *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "nn_params_new: out of memory");
        return NULL;
    }
    p->be = be ? be : nn_backend_cpu();
    return p;
}

void nn_params_free(nn_params *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        nn_param *q = p->v[i];
        p->be->mem_free(q->t.data);
        p->be->mem_free(q->t.grad);
        p->be->mem_free(q->adam_m);
        p->be->mem_free(q->adam_v);
        free(q);
    }
    free(p->v);
    free(p);
}

nn_tensor *nn_param_add(nn_params *p, const char *name, nn_param_kind kind, int n, int c, int h,
                        int w, char *err, size_t errlen)
{
    nn_param *q = NULL;
    if (!name || strlen(name) >= sizeof q->name) {
        snprintf(err, errlen, "nn_param_add: name missing or longer than %zu", sizeof q->name - 1);
        return NULL;
    }
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) {
        snprintf(err, errlen, "nn_param_add: %s: bad shape [%d,%d,%d,%d]", name, n, c, h, w);
        return NULL;
    }
    if (nn_params_find(p, name)) {
        snprintf(err, errlen, "nn_param_add: duplicate name %s", name);
        return NULL;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        nn_param **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v)
            goto oom;
        p->v = v;
        p->cap = cap;
    }
    q = calloc(1, sizeof *q);
    if (!q)
        goto oom;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->kind = kind;
    q->t.n = n;
    q->t.c = c;
    q->t.h = h;
    q->t.w = w;
    q->t.dtype = NN_F32;
    q->t.param = q;
    q->t.be = p->be;
    size_t bytes = nn_numel(&q->t) * 4;
    q->t.data = p->be->mem_alloc(bytes);
    if (!q->t.data)
        goto oom;
    p->be->mem_zero(q->t.data, bytes);
    if (kind == NN_PARAM) {
        q->t.grad = p->be->mem_alloc(bytes);
        if (!q->t.grad)
            goto oom;
        q->t.requires_grad = 1;
    }
    p->v[p->n++] = q;
    return &q->t;
oom:
    if (q) {
        p->be->mem_free(q->t.data);
        free(q);
    }
    snprintf(err, errlen, "nn_param_add: out of memory");
    return NULL;
}

int nn_params_count(const nn_params *p) { return p->n; }

nn_param *nn_params_at(nn_params *p, int i) { return i >= 0 && i < p->n ? p->v[i] : NULL; }

nn_param *nn_params_find(nn_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->v[i]->name, name))
            return p->v[i];
    return NULL;
}

size_t nn_params_numel(const nn_params *p, nn_param_kind kind)
{
    size_t s = 0;
    for (int i = 0; i < p->n; i++)
        if (p->v[i]->kind == kind)
            s += nn_numel(&p->v[i]->t);
    return s;
}

void nn_param_set_frozen(nn_param *q, int frozen)
{
    if (q->kind != NN_PARAM)
        return;
    q->frozen = frozen != 0;
    q->t.requires_grad = !q->frozen;
}

void nn_params_set_frozen(nn_params *p, int frozen)
{
    for (int i = 0; i < p->n; i++)
        nn_param_set_frozen(p->v[i], frozen);
}

void nn_params_zero_grad(nn_params *p)
{
    for (int i = 0; i < p->n; i++) {
        nn_param *q = p->v[i];
        if (q->kind == NN_PARAM)
            q->t.grad_valid = 0; /* lazily: an invalid gradient means zeros */
    }
}

/* ---- initialisers: computed on the host, then written through the tensor's backend -- */

static float *host_of(const nn_tensor *t) { return malloc(nn_numel(t) * sizeof(float) + 1); }

void nn_init_uniform(nn_tensor *t, float lo, float hi, nn_rng *r)
{
    float *d = host_of(t);
    if (!d)
        return;
    for (size_t i = 0, n = nn_numel(t); i < n; i++)
        d[i] = lo + (hi - lo) * nn_rng_uniform(r);
    nn_tensor_write(t, d);
    free(d);
}

void nn_init_normal(nn_tensor *t, float mean, float std, nn_rng *r)
{
    float *d = host_of(t);
    if (!d)
        return;
    for (size_t i = 0, n = nn_numel(t); i < n; i++)
        d[i] = mean + std * nn_rng_normal(r);
    nn_tensor_write(t, d);
    free(d);
}

void nn_init_const(nn_tensor *t, float v)
{
    float *d = host_of(t);
    if (!d)
        return;
    for (size_t i = 0, n = nn_numel(t); i < n; i++)
        d[i] = v;
    nn_tensor_write(t, d);
    free(d);
}

void nn_init_torch_conv(nn_tensor *w, nn_tensor *b, nn_rng *r)
{
    int fan_in = w->c * w->h * w->w;
    float bound = 1.0f / sqrtf((float)fan_in);
    nn_init_uniform(w, -bound, bound, r);
    if (b)
        nn_init_uniform(b, -bound, bound, r);
}

/* ---- Adam ---------------------------------------------------------------------------- */

struct nn_adam {
    nn_params *p;
    nn_adam_cfg cfg;
    nn_param **work;
};

nn_adam *nn_adam_new(nn_params *p, nn_adam_cfg cfg, char *err, size_t errlen)
{
    nn_adam *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "nn_adam_new: out of memory");
        return NULL;
    }
    o->p = p;
    o->cfg = cfg;
    return o;
}

void nn_adam_free(nn_adam *o)
{
    if (!o)
        return;
    free(o->work);
    free(o);
}

void nn_adam_set_lr(nn_adam *o, float lr) { o->cfg.lr = lr; }
float nn_adam_lr(const nn_adam *o) { return o->cfg.lr; }

int nn_adam_step(nn_adam *o, char *err, size_t errlen)
{
    nn_params *p = o->p;
    const nn_backend *be = p->be;
    int nq = 0;
    free(o->work);
    o->work = malloc((size_t)(p->n ? p->n : 1) * sizeof *o->work);
    if (!o->work)
        goto oom;
    for (int i = 0; i < p->n; i++) {
        nn_param *q = p->v[i];
        if (q->kind != NN_PARAM || q->frozen || !q->ever_grad)
            continue;
        size_t bytes = nn_numel(&q->t) * 4;
        if (!q->t.grad_valid) { /* zero_grad'ed lazily: the gradient is zero */
            be->mem_zero(q->t.grad, bytes);
            q->t.grad_valid = 1;
        }
        if (!q->adam_m) {
            q->adam_m = be->mem_alloc(bytes);
            q->adam_v = be->mem_alloc(bytes);
            if (!q->adam_m || !q->adam_v)
                goto oom;
            be->mem_zero(q->adam_m, bytes);
            be->mem_zero(q->adam_v, bytes);
        }
        q->adam_step++;
        o->work[nq++] = q;
    }
    nn_threads_apply();
    if (nq && be->adam_step(o->work, nq, &o->cfg)) {
        snprintf(err, errlen, "nn_adam_step: backend failed");
        return -1;
    }
    return 0;
oom:
    snprintf(err, errlen, "nn_adam_step: out of memory");
    return -1;
}

/* ---- schedules ----------------------------------------------------------------------- */

float nn_lr_step_decay(float base, int epoch, int every, float gamma)
{
    if (every < 1 || epoch < 0)
        return base;
    return base * powf(gamma, (float)(epoch / every));
}

float nn_lr_linear_decay(float base, int epoch, int n_const, int n_decay)
{
    int over = epoch + 1 - n_const;
    if (over < 0)
        over = 0;
    float f = 1.0f - (float)over / (float)(n_decay + 1);
    return base * (f > 0 ? f : 0);
}
