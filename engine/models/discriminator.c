/* discriminator.c: CycleGAN's 70x70 PatchGAN (D_t, D_a), layer for layer the Discriminator
 * of tests/golden/torch_models.py. */
#include "models_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* conv{i}: output channels (times ndf, except the last) and stride */
static const int disc_mult[DISCRIMINATOR_CONVS] = {1, 2, 4, 8, 0};
static const int disc_stride[DISCRIMINATOR_CONVS] = {2, 2, 2, 1, 1};

static int disc_cout(const discriminator *d, int i) { return i == 4 ? 1 : disc_mult[i] * d->ndf; }
static int disc_cin(const discriminator *d, int i) { return i == 0 ? d->in_ch : disc_mult[i - 1] * d->ndf; }

discriminator *discriminator_new(const nn_backend *be, int ndf, int in_ch, char *err,
                                 size_t errlen)
{
    discriminator *d = NULL;
    char name[16];
    if (ndf < 1 || ndf > 1024 || in_ch < 1 || in_ch > 64) {
        snprintf(err, errlen, "discriminator: bad sizes (ndf %d, in_ch %d)", ndf, in_ch);
        return NULL;
    }
    if (!(d = calloc(1, sizeof *d))) {
        snprintf(err, errlen, "discriminator: out of memory");
        return NULL;
    }
    d->ndf = ndf;
    d->in_ch = in_ch;
    if (!(d->params = nn_params_new(be, err, errlen)))
        goto fail;
    for (int i = 0; i < DISCRIMINATOR_CONVS; i++) {
        int co = disc_cout(d, i);
        snprintf(name, sizeof name, "conv%d", i);
        if (!(d->w[i] = models_add(d->params, name, "weight", NN_PARAM, co, disc_cin(d, i), 4, 4,
                                   err, errlen)) ||
            !(d->b[i] = models_add(d->params, name, "bias", NN_PARAM, co, 1, 1, 1, err, errlen)))
            goto fail;
    }
    return d;
fail:
    discriminator_free(d);
    return NULL;
}

void discriminator_free(discriminator *d)
{
    if (!d)
        return;
    nn_params_free(d->params);
    free(d);
}

int discriminator_init(discriminator *d, nn_rng *r)
{
    if (!d || !r)
        return -1;
    for (int i = 0; i < DISCRIMINATOR_CONVS; i++)
        models_init_conv(d->w[i], d->b[i], r);
    return 0;
}

nn_tensor *discriminator_forward(discriminator *d, nn_ctx *ctx, nn_tensor *x)
{
    if (!x)
        return nn_ctx_fail(ctx, "discriminator: no input");
    if (x->c != d->in_ch || x->h % 8 || x->w % 8 || x->h < 32 || x->w < 32)
        return nn_ctx_fail(ctx, "discriminator: input [%d, %d, %d, %d] needs %d channels and "
                           "H, W multiples of 8, at least 32", x->n, x->c, x->h, x->w, d->in_ch);
    /* [N, ndf, H/2], [N, 2ndf, H/4], [N, 4ndf, H/8], [N, 8ndf, H/8-1], [N, 1, H/8-2] */
    nn_tensor *h = x;
    for (int i = 0; i < DISCRIMINATOR_CONVS; i++) {
        h = nn_conv2d(ctx, h, d->w[i], d->b[i], disc_stride[i], 1, 1);
        if (i == DISCRIMINATOR_CONVS - 1)
            break;
        if (i > 0)
            h = nn_instance_norm(ctx, h, NULL, NULL, MODELS_NORM_EPS);
        h = nn_leaky_relu(ctx, h, MODELS_LEAKY_SLOPE);
    }
    return h;
}

double discriminator_flops(const discriminator *d, int n, int h, int w, int train)
{
    double t = 0, first = 0;
    for (int i = 0; i < DISCRIMINATOR_CONVS; i++) {
        h = (h + 2 - 4) / disc_stride[i] + 1;
        w = (w + 2 - 4) / disc_stride[i] + 1;
        double f = models_conv_flops(n, disc_cin(d, i), disc_cout(d, i), 4, h, w);
        if (i == 0)
            first = f;
        t += f;
    }
    return train ? 3 * t - first : t;
}
