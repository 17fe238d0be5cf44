/* discriminator.c: CycleGAN's 70x70 PatchGAN (D_t, D_a), layer for layer the Discriminator
 * of tests/golden/torch_models.py. */
#include "models_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* conv{i}: output channels ndf x 2^i (the last: 1); stride 2 for the first n_layers */
static int disc_stride(const discriminator *d, int i) { return i < d->n_layers ? 2 : 1; }
static int disc_cout(const discriminator *d, int i) { return i == d->nconv - 1 ? 1 : d->ndf << i; }
static int disc_cin(const discriminator *d, int i) { return i == 0 ? d->in_ch : d->ndf << (i - 1); }

discriminator *discriminator_new_layers(const nn_backend *be, int ndf, int in_ch, int n_layers,
                                        char *err, size_t errlen)
{
    discriminator *d = NULL;
    char name[16];
    if (ndf < 1 || ndf > 1024 || in_ch < 1 || in_ch > 64 || n_layers < 1 || n_layers > 3) {
        snprintf(err, errlen, "discriminator: bad sizes (ndf %d, in_ch %d, n_layers %d)", ndf,
                 in_ch, n_layers);
        return NULL;
    }
    if (!(d = calloc(1, sizeof *d))) {
        snprintf(err, errlen, "discriminator: out of memory");
        return NULL;
    }
    d->ndf = ndf;
    d->in_ch = in_ch;
    d->n_layers = n_layers;
    d->nconv = n_layers + 2;
    if (!(d->params = nn_params_new(be, err, errlen)))
        goto fail;
    for (int i = 0; i < d->nconv; i++) {
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

discriminator *discriminator_new(const nn_backend *be, int ndf, int in_ch, char *err, size_t errlen)
{
    return discriminator_new_layers(be, ndf, in_ch, 3, err, errlen);
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
    for (int i = 0; i < d->nconv; i++)
        models_init_conv(d->w[i], d->b[i], r);
    return 0;
}

nn_tensor *discriminator_forward(discriminator *d, nn_ctx *ctx, nn_tensor *x)
{
    const int f = 1 << d->n_layers;
    if (!x)
        return nn_ctx_fail(ctx, "discriminator: no input");
    if (x->c != d->in_ch || x->h % f || x->w % f || x->h < 4 * f || x->w < 4 * f ||
        (d->n_layers == 3 && (x->h < 32 || x->w < 32)))
        return nn_ctx_fail(ctx,
                           "discriminator: input [%d, %d, %d, %d] needs %d channels and "
                           "H, W multiples of %d, at least %d",
                           x->n, x->c, x->h, x->w, d->in_ch, f, d->n_layers == 3 ? 32 : 4 * f);
    /* n = 3: [N, ndf, H/2], [N, 2ndf, H/4], [N, 4ndf, H/8], [N, 8ndf, H/8-1], [N, 1, H/8-2] */
    nn_tensor *h = x;
    for (int i = 0; i < d->nconv; i++) {
        h = nn_conv2d(ctx, h, d->w[i], d->b[i], disc_stride(d, i), 1, 1);
        if (i == d->nconv - 1)
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
    for (int i = 0; i < d->nconv; i++) {
        h = (h + 2 - 4) / disc_stride(d, i) + 1;
        w = (w + 2 - 4) / disc_stride(d, i) + 1;
        double f = models_conv_flops(n, disc_cin(d, i), disc_cout(d, i), 4, h, w);
        if (i == 0)
            first = f;
        t += f;
    }
    return train ? 3 * t - first : t;
}
