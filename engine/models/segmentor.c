/* segmentor.c: the residual U-Net segmentor (S_syn and S_real), layer for layer the
 * Segmentor of tests/golden/torch_models.py.
 *
 * NEED from nn.h (worked around here): a way to release arena memory inside a no_grad
 * forward, e.g. `size_t nn_ctx_mark(ctx)` and `nn_tensor *nn_ctx_release(ctx, mark, keep)`
 * (drop everything allocated after mark, moving `keep` down to it). Without it a forward
 * pass keeps every activation until nn_ctx_reset, which is right for training but makes
 * inference memory the sum of all activations (363 MB at 1x1x256x256, w=32) where PyTorch
 * frees as it goes. segmentor_infer works around it with a second, per-block scratch
 * context whose block outputs are copied into the caller's context (nn_scale by 1). */
#include "models_internal.h"

#include <stdio.h>
#include <stdlib.h>

static int resblock_add(nn_params *p, const char *prefix, int cin, int cout,
                        models_resblock *rb, char *err, size_t errlen)
{
    char sub[64];
    rb->cin = cin;
    rb->cout = cout;
#define SUB(s) (snprintf(sub, sizeof sub, "%s.%s", prefix, s), sub)
    if (!(rb->conv1 = models_add(p, SUB("conv1"), "weight", NN_PARAM, cout, cin, 3, 3, err, errlen)) ||
        models_add_bn(p, SUB("bn1"), cout, &rb->bn1, err, errlen) ||
        !(rb->conv2 = models_add(p, SUB("conv2"), "weight", NN_PARAM, cout, cout, 3, 3, err, errlen)) ||
        models_add_bn(p, SUB("bn2"), cout, &rb->bn2, err, errlen) ||
        !(rb->skip = models_add(p, SUB("skip"), "weight", NN_PARAM, cout, cin, 1, 1, err, errlen)) ||
        models_add_bn(p, SUB("skip_bn"), cout, &rb->skip_bn, err, errlen))
        return -1;
#undef SUB
    return 0;
}

static void resblock_init(models_resblock *rb, nn_rng *r)
{
    models_init_conv(rb->conv1, NULL, r);
    models_init_bn(&rb->bn1, r);
    models_init_conv(rb->conv2, NULL, r);
    models_init_bn(&rb->bn2, r);
    models_init_conv(rb->skip, NULL, r);
    models_init_bn(&rb->skip_bn, r);
}

/* x [N, cin, H, W] -> [N, cout, H, W] */
static nn_tensor *resblock_forward(nn_ctx *ctx, const models_resblock *rb, nn_tensor *x,
                                   int training)
{
    nn_tensor *h = nn_conv2d(ctx, x, rb->conv1, NULL, 1, 1, 1);
    h = nn_relu(ctx, models_bn_forward(ctx, h, &rb->bn1, training));
    h = models_bn_forward(ctx, nn_conv2d(ctx, h, rb->conv2, NULL, 1, 1, 1), &rb->bn2, training);
    nn_tensor *s = nn_conv2d(ctx, x, rb->skip, NULL, 1, 0, 1);
    s = models_bn_forward(ctx, s, &rb->skip_bn, training);
    return nn_relu(ctx, nn_add(ctx, h, s));
}

static double resblock_flops(const models_resblock *rb, int n, int h, int w)
{
    return models_conv_flops(n, rb->cin, rb->cout, 3, h, w) +
           models_conv_flops(n, rb->cout, rb->cout, 3, h, w) +
           models_conv_flops(n, rb->cin, rb->cout, 1, h, w);
}

segmentor *segmentor_new(const nn_backend *be, int width, int classes, int in_ch,
                         char *err, size_t errlen)
{
    segmentor *s = NULL;
    char name[32];
    if (width < 1 || width > 4096 || classes < 1 || classes > 4096 || in_ch < 1 || in_ch > 4096) {
        snprintf(err, errlen, "segmentor: bad sizes (width %d, classes %d, in_ch %d)", width,
                 classes, in_ch);
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s))) {
        snprintf(err, errlen, "segmentor: out of memory");
        return NULL;
    }
    s->width = width;
    s->classes = classes;
    s->in_ch = in_ch;
    if (!(s->params = nn_params_new(be, err, errlen)))
        goto fail;
    /* state_dict order: enc0..enc4, then up3, dec3, ..., up0, dec0, head */
    for (int l = 0; l < SEGMENTOR_LEVELS; l++) {
        int cin = l == 0 ? in_ch : width << (l - 1);
        snprintf(name, sizeof name, "enc%d", l);
        if (resblock_add(s->params, name, cin, width << l, &s->enc[l], err, errlen))
            goto fail;
    }
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        int c = width << l;
        snprintf(name, sizeof name, "up%d", l);
        if (!(s->up_w[l] = models_add(s->params, name, "weight", NN_PARAM, 2 * c, c, 2, 2, err, errlen)) ||
            !(s->up_b[l] = models_add(s->params, name, "bias", NN_PARAM, c, 1, 1, 1, err, errlen)))
            goto fail;
        snprintf(name, sizeof name, "dec%d", l);
        if (resblock_add(s->params, name, 2 * c, c, &s->dec[l], err, errlen))
            goto fail;
    }
    if (!(s->head_w = models_add(s->params, "head", "weight", NN_PARAM, classes, width, 1, 1, err, errlen)) ||
        !(s->head_b = models_add(s->params, "head", "bias", NN_PARAM, classes, 1, 1, 1, err, errlen)))
        goto fail;
    return s;
fail:
    segmentor_free(s);
    return NULL;
}

void segmentor_free(segmentor *s)
{
    if (!s)
        return;
    nn_params_free(s->params);
    free(s);
}

int segmentor_init(segmentor *s, nn_rng *r)
{
    if (!s || !r)
        return -1;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++)
        resblock_init(&s->enc[l], r);
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        models_init_conv(s->up_w[l], s->up_b[l], r);
        resblock_init(&s->dec[l], r);
    }
    models_init_conv(s->head_w, s->head_b, r);
    return 0;
}

nn_tensor *segmentor_forward(segmentor *s, nn_ctx *ctx, nn_tensor *x, int training)
{
    nn_tensor *e[SEGMENTOR_LEVELS];
    if (!x)
        return nn_ctx_fail(ctx, "segmentor: no input");
    if (x->c != s->in_ch || x->h % 16 || x->w % 16 || x->h < 16 || x->w < 16)
        return nn_ctx_fail(ctx, "segmentor: input [%d, %d, %d, %d] needs %d channels and H, W "
                           "multiples of 16", x->n, x->c, x->h, x->w, s->in_ch);
    /* encoder: e[l] [N, w<<l, H>>l, W>>l] */
    nn_tensor *h = x;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++) {
        if (l > 0)
            h = nn_max_pool2d(ctx, h, 2, 2);
        h = e[l] = resblock_forward(ctx, &s->enc[l], h, training);
    }
    /* decoder: d [N, w<<l, H>>l, W>>l] = dec{l}(cat(e[l], up{l}(d))) */
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        nn_tensor *u = nn_conv_transpose2d(ctx, h, s->up_w[l], s->up_b[l], 2, 0, 0);
        h = resblock_forward(ctx, &s->dec[l], nn_concat2(ctx, e[l], u), training);
    }
    return nn_conv2d(ctx, h, s->head_w, s->head_b, 1, 0, 1);   /* [N, classes, H, W] */
}

/* Move t (an output in scratch) into ctx, then reset scratch. NULL (error recorded in ctx)
 * when the block failed. */
static nn_tensor *keep_and_reset(nn_ctx *ctx, nn_ctx *scratch, nn_tensor *t)
{
    nn_tensor *out = NULL;
    if (!t)
        nn_ctx_fail(ctx, "segmentor: %s", nn_ctx_error(scratch) ? nn_ctx_error(scratch) : "failed");
    else
        out = nn_scale(ctx, t, 1.0f);
    nn_ctx_reset(scratch);
    return out;
}

nn_tensor *segmentor_infer(segmentor *s, nn_ctx *ctx, nn_ctx *scratch, nn_tensor *x)
{
    nn_tensor *e[SEGMENTOR_LEVELS];
    if (!scratch)
        return segmentor_forward(s, ctx, x, 0);
    if (nn_ctx_grad_enabled(ctx) || nn_ctx_grad_enabled(scratch))
        return nn_ctx_fail(ctx, "segmentor_infer: gradients must be disabled in both contexts");
    if (!x)
        return nn_ctx_fail(ctx, "segmentor: no input");
    if (x->c != s->in_ch || x->h % 16 || x->w % 16 || x->h < 16 || x->w < 16)
        return nn_ctx_fail(ctx, "segmentor: input [%d, %d, %d, %d] needs %d channels and H, W "
                           "multiples of 16", x->n, x->c, x->h, x->w, s->in_ch);
    nn_ctx_reset(scratch);
    /* in ctx: e[l] [N, w<<l, H>>l, W>>l]; in scratch: everything inside one block */
    nn_tensor *h = x;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++) {
        nn_tensor *in = l ? nn_max_pool2d(scratch, h, 2, 2) : h;
        h = e[l] = keep_and_reset(ctx, scratch, resblock_forward(scratch, &s->enc[l], in, 0));
        if (!h)
            return NULL;
    }
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        nn_tensor *u = nn_conv_transpose2d(scratch, h, s->up_w[l], s->up_b[l], 2, 0, 0);
        h = nn_concat2(scratch, e[l], u);
        h = keep_and_reset(ctx, scratch, resblock_forward(scratch, &s->dec[l], h, 0));
        if (!h)
            return NULL;
    }
    return nn_conv2d(ctx, h, s->head_w, s->head_b, 1, 0, 1);   /* [N, classes, H, W] */
}

nn_tensor *segmentor_loss(nn_ctx *ctx, nn_tensor *logits, nn_tensor *labels)
{
    nn_tensor *ce = nn_loss_cross_entropy(ctx, logits, labels, NULL);
    nn_tensor *dice = nn_loss_dice(ctx, nn_softmax(ctx, logits), labels, 0, 1.0f);
    return nn_add(ctx, ce, dice);
}

double segmentor_flops(const segmentor *s, int n, int h, int w, int train)
{
    double f = 0;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++)
        f += resblock_flops(&s->enc[l], n, h >> l, w >> l);
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        int c = s->width << l;
        f += models_conv_flops(n, 2 * c, c, 2, h >> (l + 1), w >> (l + 1));
        f += resblock_flops(&s->dec[l], n, h >> l, w >> l);
    }
    f += models_conv_flops(n, s->width, s->classes, 1, h, w);
    if (!train)
        return f;
    return 3 * f - models_conv_flops(n, s->in_ch, s->width, 3, h, w);
}
