/* image_pool.h (internal to engine/train): CycleGAN's history of generated images.
 * The discriminators see, for each new fake, either that fake or (once the pool is full,
 * with probability 1/2) a stored earlier one, which it then replaces. Host memory. */
#ifndef MKD_IMAGE_POOL_H
#define MKD_IMAGE_POOL_H

#include <stddef.h>

#include "nn.h"

typedef struct {
    int cap;    /* pool size (0: the pool passes images through) */
    int num;    /* images stored */
    size_t isz; /* floats per image */
    float *img; /* [cap, isz] */
} image_pool;

int image_pool_init(image_pool *p, int cap, size_t isz);
void image_pool_free(image_pool *p);
/* Replaces in[n*isz] by what the discriminator should see, in place. */
void image_pool_query(image_pool *p, float *in, int n, nn_rng *r);

#endif
