/* generator.c: CycleGAN's ResNet generator (G_a2t, G_t2a), layer for layer the Generator of
 * tests/golden/torch_models.py. */
#include "models_internal.h"

#include <stdio.h>
#include <stdlib.h>

static nn_tensor *inorm(nn_ctx *ctx, nn_tensor *x)
{
    return nn_instance_norm(ctx, x, NULL, NULL, MODELS_NORM_EPS);
}

/* relu(inorm(x)) as one op */
static nn_tensor *inorm_relu(nn_ctx *ctx, nn_tensor *x)
{
    return nn_instance_norm_relu(ctx, x, NULL, NULL, MODELS_NORM_EPS);
}

static int add_conv(nn_params *p, const char *prefix, int n, int c, int k, int bias_n,
                    nn_tensor **w, nn_tensor **b, char *err, size_t errlen)
{
    if (!(*w = models_add(p, prefix, "weight", NN_PARAM, n, c, k, k, err, errlen)) ||
        !(*b = models_add(p, prefix, "bias", NN_PARAM, bias_n, 1, 1, 1, err, errlen)))
        return -1;
    return 0;
}

generator *generator_new(const nn_backend *be, int ngf, int n_blocks, int in_ch, int out_ch,
                         char *err, size_t errlen)
{
    generator *g = NULL;
    char name[48];
    if (ngf < 1 || ngf > 1024 || n_blocks < 0 || n_blocks > 256 || in_ch < 1 || in_ch > 64 ||
        out_ch < 1 || out_ch > 64) {
        snprintf(err, errlen, "generator: bad sizes (ngf %d, blocks %d, in %d, out %d)", ngf,
                 n_blocks, in_ch, out_ch);
        return NULL;
    }
    if (!(g = calloc(1, sizeof *g)) ||
        !(g->blocks = calloc(n_blocks ? (size_t)n_blocks : 1, sizeof *g->blocks))) {
        snprintf(err, errlen, "generator: out of memory");
        goto fail;
    }
    g->ngf = ngf;
    g->n_blocks = n_blocks;
    g->in_ch = in_ch;
    g->out_ch = out_ch;
    if (!(g->params = nn_params_new(be, err, errlen)))
        goto fail;
    nn_params *p = g->params;
    int d = 4 * ngf;
    if (add_conv(p, "stem", ngf, in_ch, 7, ngf, &g->stem_w, &g->stem_b, err, errlen) ||
        add_conv(p, "down0", 2 * ngf, ngf, 3, 2 * ngf, &g->down_w[0], &g->down_b[0], err, errlen) ||
        add_conv(p, "down1", d, 2 * ngf, 3, d, &g->down_w[1], &g->down_b[1], err, errlen))
        goto fail;
    for (int i = 0; i < n_blocks; i++) {
        snprintf(name, sizeof name, "blocks.%d.conv1", i);
        if (add_conv(p, name, d, d, 3, d, &g->blocks[i].w1, &g->blocks[i].b1, err, errlen))
            goto fail;
        snprintf(name, sizeof name, "blocks.%d.conv2", i);
        if (add_conv(p, name, d, d, 3, d, &g->blocks[i].w2, &g->blocks[i].b2, err, errlen))
            goto fail;
    }
    /* transposed weights are stored [in, out, k, k] as PyTorch does */
    if (add_conv(p, "up0", d, 2 * ngf, 3, 2 * ngf, &g->up_w[0], &g->up_b[0], err, errlen) ||
        add_conv(p, "up1", 2 * ngf, ngf, 3, ngf, &g->up_w[1], &g->up_b[1], err, errlen) ||
        add_conv(p, "head", out_ch, ngf, 7, out_ch, &g->head_w, &g->head_b, err, errlen))
        goto fail;
    return g;
fail:
    generator_free(g);
    return NULL;
}

void generator_free(generator *g)
{
    if (!g)
        return;
    nn_params_free(g->params);
    free(g->blocks);
    free(g);
}

int generator_init(generator *g, nn_rng *r)
{
    if (!g || !r)
        return -1;
    models_init_conv(g->stem_w, g->stem_b, r);
    for (int i = 0; i < 2; i++)
        models_init_conv(g->down_w[i], g->down_b[i], r);
    for (int i = 0; i < g->n_blocks; i++) {
        models_init_conv(g->blocks[i].w1, g->blocks[i].b1, r);
        models_init_conv(g->blocks[i].w2, g->blocks[i].b2, r);
    }
    for (int i = 0; i < 2; i++)
        models_init_conv(g->up_w[i], g->up_b[i], r);
    models_init_conv(g->head_w, g->head_b, r);
    return 0;
}

nn_tensor *generator_forward(generator *g, nn_ctx *ctx, nn_tensor *x)
{
    if (!x)
        return nn_ctx_fail(ctx, "generator: no input");
    if (x->c != g->in_ch || x->h % 4 || x->w % 4 || x->h < 8 || x->w < 8)
        return nn_ctx_fail(ctx,
                           "generator: input [%d, %d, %d, %d] needs %d channels and H, W "
                           "multiples of 4, at least 8",
                           x->n, x->c, x->h, x->w, g->in_ch);
    /* [N, ngf, H, W] */
    nn_tensor *h =
        nn_conv2d(ctx, nn_pad_reflect(ctx, x, 3, 3, 3, 3), g->stem_w, g->stem_b, 1, 0, 1);
    h = inorm_relu(ctx, h);
    /* [N, 2ngf, H/2, W/2], then [N, 4ngf, H/4, W/4] */
    for (int i = 0; i < 2; i++)
        h = inorm_relu(ctx, nn_conv2d(ctx, h, g->down_w[i], g->down_b[i], 2, 1, 1));
    for (int i = 0; i < g->n_blocks; i++) {
        const models_genblock *b = &g->blocks[i];
        nn_tensor *r = nn_conv2d(ctx, nn_pad_reflect(ctx, h, 1, 1, 1, 1), b->w1, b->b1, 1, 0, 1);
        r = inorm_relu(ctx, r);
        r = nn_conv2d(ctx, nn_pad_reflect(ctx, r, 1, 1, 1, 1), b->w2, b->b2, 1, 0, 1);
        h = nn_add(ctx, h, inorm(ctx, r));
    }
    /* [N, 2ngf, H/2, W/2], then [N, ngf, H, W] */
    for (int i = 0; i < 2; i++)
        h = inorm_relu(ctx, nn_conv_transpose2d(ctx, h, g->up_w[i], g->up_b[i], 2, 1, 1));
    h = nn_conv2d(ctx, nn_pad_reflect(ctx, h, 3, 3, 3, 3), g->head_w, g->head_b, 1, 0, 1);
    return nn_tanh(ctx, h); /* [N, out_ch, H, W] */
}

double generator_flops(const generator *g, int n, int h, int w, int train)
{
    int f = g->ngf, d = 4 * g->ngf;
    double t = models_conv_flops(n, g->in_ch, f, 7, h, w);
    t += models_conv_flops(n, f, 2 * f, 3, h / 2, w / 2);
    t += models_conv_flops(n, 2 * f, d, 3, h / 4, w / 4);
    t += 2.0 * g->n_blocks * models_conv_flops(n, d, d, 3, h / 4, w / 4);
    t += models_conv_flops(n, d, 2 * f, 3, h / 4, w / 4); /* transposed: input size */
    t += models_conv_flops(n, 2 * f, f, 3, h / 2, w / 2);
    t += models_conv_flops(n, f, g->out_ch, 7, h, w);
    if (!train)
        return t;
    return 3 * t - models_conv_flops(n, g->in_ch, f, 7, h, w);
}
