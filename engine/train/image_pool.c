/* image_pool.c: see image_pool.h. */
#include "image_pool.h"

#include <stdlib.h>
#include <string.h>

int image_pool_init(image_pool *p, int cap, size_t isz)
{
    memset(p, 0, sizeof *p);
    p->cap = cap;
    p->isz = isz;
    if (cap > 0) {
        p->img = malloc((size_t)cap * isz * sizeof(float));
        if (!p->img)
            return -1;
    }
    return 0;
}

void image_pool_free(image_pool *p)
{
    free(p->img);
    memset(p, 0, sizeof *p);
}

void image_pool_query(image_pool *p, float *in, int n, nn_rng *r)
{
    if (p->cap <= 0)
        return;
    for (int i = 0; i < n; i++) {
        float *x = in + (size_t)i * p->isz;
        if (p->num < p->cap) {
            memcpy(p->img + (size_t)p->num * p->isz, x, p->isz * sizeof(float));
            p->num++;
        } else if (nn_rng_uniform(r) < 0.5f) {
            int k = (int)(nn_rng_u64(r) % (uint64_t)p->cap);
            float *slot = p->img + (size_t)k * p->isz;
            for (size_t j = 0; j < p->isz; j++) {
                float t = slot[j];
                slot[j] = x[j];
                x[j] = t;
            }
        }
    }
}
