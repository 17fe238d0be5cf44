/* ttrain.c: see ttrain.h. */
#include "ttrain.h"

#include <stdlib.h>
#include <string.h>

train_slices ttrain_slices(int n, int seed, float contrast)
{
    const int S = TTRAIN_S;
    train_slices s = {n, S, malloc(sizeof(float) * n * S * S), malloc(sizeof(int32_t) * n * S * S)};
    nn_rng r;
    nn_rng_seed(&r, (uint64_t)seed);
    for (int k = 0; k < n; k++) {
        float cy = 8 + 16 * nn_rng_uniform(&r), cx = 8 + 16 * nn_rng_uniform(&r),
              rad = 4 + 3 * nn_rng_uniform(&r);
        int qy = (int)(4 + 20 * nn_rng_uniform(&r)), qx = (int)(4 + 20 * nn_rng_uniform(&r));
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                size_t o = (size_t)k * S * S + i * S + j;
                int lab = 0;
                if (i >= qy && i < qy + 6 && j >= qx && j < qx + 6)
                    lab = 2;
                if ((i - cy) * (i - cy) + (j - cx) * (j - cx) < rad * rad)
                    lab = 1;
                float v = lab == 1 ? 0.8f : lab == 2 ? 0.2f : -0.6f;
                s.img[o] = contrast * v + 0.05f * nn_rng_normal(&r);
                s.lab[o] = lab;
            }
    }
    return s;
}

train_slices ttrain_copy(const train_slices *a)
{
    size_t n = (size_t)a->n * a->size * a->size;
    train_slices s = {a->n, a->size, malloc(sizeof(float) * n), malloc(sizeof(int32_t) * n)};
    memcpy(s.img, a->img, sizeof(float) * n);
    memcpy(s.lab, a->lab, sizeof(int32_t) * n);
    return s;
}

void ttrain_free(train_slices *s)
{
    free(s->img);
    free(s->lab);
    s->img = NULL;
    s->lab = NULL;
}

float *ttrain_snap_kind(nn_params *p, size_t *n, nn_param_kind kind)
{
    size_t tot = nn_params_numel(p, kind), off = 0;
    float *h = malloc(sizeof(float) * (tot ? tot : 1));
    for (int i = 0; i < nn_params_count(p); i++) {
        nn_param *q = nn_params_at(p, i);
        if (q->kind != kind)
            continue;
        nn_tensor_read(&q->t, h + off);
        off += nn_numel(&q->t);
    }
    *n = tot;
    return h;
}

float *ttrain_snap(nn_params *p, size_t *n) { return ttrain_snap_kind(p, n, NN_PARAM); }

int ttrain_moved(nn_params *p, float **before)
{
    size_t n;
    float *now = ttrain_snap(p, &n);
    int c = memcmp(now, *before, n * sizeof(float)) != 0;
    free(*before);
    *before = now;
    return c;
}
