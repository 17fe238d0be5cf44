/* segmentor.c: the residual U-Net segmentor (S_syn and S_real), layer for layer the
 * Segmentor of tests/golden/torch_models.py.
 *
 * segmentor_infer bounds inference memory with nn.h's scopes (nn_ctx_scope /
 * nn_ctx_scope_end): one scope per residual block and per sample. */
#include "models_internal.h"

#include <stdio.h>
#include <stdlib.h>

static int resblock_add(nn_params *p, const char *prefix, int cin, int cout, models_resblock *rb,
                        char *err, size_t errlen)
{
    char sub[64];
    rb->cin = cin;
    rb->cout = cout;
#define SUB(s) (snprintf(sub, sizeof sub, "%s.%s", prefix, s), sub)
    if (!(rb->conv1 =
              models_add(p, SUB("conv1"), "weight", NN_PARAM, cout, cin, 3, 3, err, errlen)) ||
        models_add_bn(p, SUB("bn1"), cout, &rb->bn1, err, errlen) ||
        !(rb->conv2 =
              models_add(p, SUB("conv2"), "weight", NN_PARAM, cout, cout, 3, 3, err, errlen)) ||
        models_add_bn(p, SUB("bn2"), cout, &rb->bn2, err, errlen) ||
        !(rb->skip =
              models_add(p, SUB("skip"), "weight", NN_PARAM, cout, cin, 1, 1, err, errlen)) ||
        models_add_bn(p, SUB("skip_bn"), cout, &rb->skip_bn, err, errlen))
        return -1;
#undef SUB
    return 0;
}

/* PyTorch's default BatchNorm2d state: gamma 1, beta 0, running mean 0, running var 1. */
static void bn_init_default(models_bn *bn)
{
    nn_init_const(bn->gamma, 1.0f);
    nn_init_const(bn->beta, 0.0f);
    nn_init_const(bn->rmean, 0.0f);
    nn_init_const(bn->rvar, 1.0f);
}

static void resblock_init(models_resblock *rb, nn_rng *r)
{
    nn_init_torch_conv(rb->conv1, NULL, r);
    bn_init_default(&rb->bn1);
    nn_init_torch_conv(rb->conv2, NULL, r);
    bn_init_default(&rb->bn2);
    nn_init_torch_conv(rb->skip, NULL, r);
    bn_init_default(&rb->skip_bn);
}

/* conv (no bias) then eval-mode BN then act, as one fused op (nn_conv2d_bn_act: BN folded
 * into the weights when nothing is recorded, the exact composition otherwise) */
static nn_tensor *conv_bn_eval(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, int pad,
                               const models_bn *bn, nn_act act)
{
    return nn_conv2d_bn_act(ctx, x, w, NULL, 1, pad, 1, bn->gamma, bn->beta, bn->rmean, bn->rvar,
                            MODELS_NORM_EPS, act, 0.0f);
}

/* x [N, cin, H, W] -> [N, cout, H, W] */
static nn_tensor *resblock_forward(nn_ctx *ctx, const models_resblock *rb, nn_tensor *x,
                                   segmentor_bn bn)
{
    if (bn == SEGMENTOR_BN_RUNNING) {
        nn_tensor *h = conv_bn_eval(ctx, x, rb->conv1, 1, &rb->bn1, NN_ACT_RELU);
        h = conv_bn_eval(ctx, h, rb->conv2, 1, &rb->bn2, NN_ACT_NONE);
        nn_tensor *s = conv_bn_eval(ctx, x, rb->skip, 0, &rb->skip_bn, NN_ACT_NONE);
        return nn_add_relu(ctx, h, s);
    }
    nn_tensor *h = nn_conv2d(ctx, x, rb->conv1, NULL, 1, 1, 1);
    h = models_bn_relu_forward(ctx, h, &rb->bn1, bn);
    h = models_bn_forward(ctx, nn_conv2d(ctx, h, rb->conv2, NULL, 1, 1, 1), &rb->bn2, bn);
    nn_tensor *s = nn_conv2d(ctx, x, rb->skip, NULL, 1, 0, 1);
    s = models_bn_forward(ctx, s, &rb->skip_bn, bn);
    return nn_add_relu(ctx, h, s);
}

static double resblock_flops(const models_resblock *rb, int n, int h, int w)
{
    return models_conv_flops(n, rb->cin, rb->cout, 3, h, w) +
           models_conv_flops(n, rb->cout, rb->cout, 3, h, w) +
           models_conv_flops(n, rb->cin, rb->cout, 1, h, w);
}

segmentor *segmentor_new(const nn_backend *be, int width, int classes, int in_ch, char *err,
                         size_t errlen)
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
        if (!(s->up_w[l] =
                  models_add(s->params, name, "weight", NN_PARAM, 2 * c, c, 2, 2, err, errlen)) ||
            !(s->up_b[l] = models_add(s->params, name, "bias", NN_PARAM, c, 1, 1, 1, err, errlen)))
            goto fail;
        snprintf(name, sizeof name, "dec%d", l);
        if (resblock_add(s->params, name, 2 * c, c, &s->dec[l], err, errlen))
            goto fail;
    }
    if (!(s->head_w = models_add(s->params, "head", "weight", NN_PARAM, classes, width, 1, 1, err,
                                 errlen)) ||
        !(s->head_b =
              models_add(s->params, "head", "bias", NN_PARAM, classes, 1, 1, 1, err, errlen)))
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
        nn_init_torch_conv(s->up_w[l], s->up_b[l], r);
        resblock_init(&s->dec[l], r);
    }
    nn_init_torch_conv(s->head_w, s->head_b, r);
    return 0;
}

static void resblock_share(models_resblock *d, const models_resblock *s)
{
    d->conv1 = s->conv1;
    d->conv2 = s->conv2;
    d->skip = s->skip;
}

int segmentor_share_convs(segmentor *dst, const segmentor *src)
{
    if (!dst || !src || dst->width != src->width || dst->classes != src->classes ||
        dst->in_ch != src->in_ch)
        return -1;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++)
        resblock_share(&dst->enc[l], &src->enc[l]);
    for (int l = 0; l < SEGMENTOR_LEVELS - 1; l++) {
        dst->up_w[l] = src->up_w[l];
        dst->up_b[l] = src->up_b[l];
        resblock_share(&dst->dec[l], &src->dec[l]);
    }
    dst->head_w = src->head_w;
    dst->head_b = src->head_b;
    return 0;
}

nn_tensor *segmentor_forward(segmentor *s, nn_ctx *ctx, nn_tensor *x, segmentor_bn bn)
{
    nn_tensor *e[SEGMENTOR_LEVELS];
    if (!x)
        return nn_ctx_fail(ctx, "segmentor: no input");
    if (x->c != s->in_ch || x->h % 16 || x->w % 16 || x->h < 16 || x->w < 16)
        return nn_ctx_fail(ctx,
                           "segmentor: input [%d, %d, %d, %d] needs %d channels and H, W "
                           "multiples of 16",
                           x->n, x->c, x->h, x->w, s->in_ch);
    /* encoder: e[l] [N, w<<l, H>>l, W>>l] */
    nn_tensor *h = x;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++) {
        if (l > 0)
            h = nn_max_pool2d(ctx, h, 2, 2);
        h = e[l] = resblock_forward(ctx, &s->enc[l], h, bn);
    }
    /* decoder: d [N, w<<l, H>>l, W>>l] = dec{l}(cat(e[l], up{l}(d))) */
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        nn_tensor *u = nn_conv_transpose2d(ctx, h, s->up_w[l], s->up_b[l], 2, 0, 0);
        h = resblock_forward(ctx, &s->dec[l], nn_concat2(ctx, e[l], u), bn);
    }
    return nn_conv2d(ctx, h, s->head_w, s->head_b, 1, 0, 1); /* [N, classes, H, W] */
}

/* Eval-mode logits [1, classes, H, W] of one sample x [1, in_ch, H, W]. Each residual block
 * runs in an nn_ctx scope: its activations are freed as soon as it ends, and only its
 * output (a U-Net skip tensor) stays. */
static nn_tensor *infer_one(segmentor *s, nn_ctx *ctx, nn_tensor *x)
{
    nn_tensor *e[SEGMENTOR_LEVELS];
    nn_tensor *h = x;
    for (int l = 0; l < SEGMENTOR_LEVELS; l++) {
        nn_scope sc = nn_ctx_scope(ctx);
        nn_tensor *in = l ? nn_max_pool2d(ctx, h, 2, 2) : h;
        h = e[l] =
            nn_ctx_scope_end(ctx, sc, resblock_forward(ctx, &s->enc[l], in, SEGMENTOR_BN_RUNNING));
        if (!h)
            return NULL;
    }
    for (int l = SEGMENTOR_LEVELS - 2; l >= 0; l--) {
        nn_scope sc = nn_ctx_scope(ctx);
        nn_tensor *u = nn_conv_transpose2d(ctx, h, s->up_w[l], s->up_b[l], 2, 0, 0);
        h = nn_ctx_scope_end(
            ctx, sc,
            resblock_forward(ctx, &s->dec[l], nn_concat2(ctx, e[l], u), SEGMENTOR_BN_RUNNING));
        if (!h)
            return NULL;
    }
    return nn_conv2d(ctx, h, s->head_w, s->head_b, 1, 0, 1);
}

nn_tensor *segmentor_infer(segmentor *s, nn_ctx *ctx, nn_tensor *x)
{
    if (!x)
        return nn_ctx_fail(ctx, "segmentor: no input");
    if (x->dtype != NN_F32 || x->c != s->in_ch || x->h % 16 || x->w % 16 || x->h < 16 || x->w < 16)
        return nn_ctx_fail(ctx,
                           "segmentor: input [%d, %d, %d, %d] needs float32, %d channels "
                           "and H, W multiples of 16",
                           x->n, x->c, x->h, x->w, s->in_ch);
    int was = nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *out = NULL;
    /* batch 1, or a device backend (memory is not the constraint there; batch 1 would leave
     * most of a GPU idle): the whole batch in one pass */
    if (x->n == 1 || nn_backend_is_device(nn_ctx_backend(ctx))) {
        nn_scope sc = nn_ctx_scope(ctx);
        out = nn_ctx_scope_end(ctx, sc, infer_one(s, ctx, x));
        nn_ctx_set_grad_enabled(ctx, was);
        return out;
    }
    /* one sample at a time (eval-mode BN makes samples independent), so the working set and
     * the backend's per-call temporaries stay those of batch 1; logits staged on the host */
    size_t per_in = (size_t)x->c * x->h * x->w, per_out = (size_t)s->classes * x->h * x->w;
    float *host = malloc(per_out * (size_t)x->n * sizeof *host);
    if (!host) {
        nn_ctx_set_grad_enabled(ctx, was);
        return nn_ctx_fail(ctx, "segmentor: out of memory");
    }
    int i;
    for (i = 0; i < x->n; i++) {
        nn_tensor v = *x; /* a view of sample i: no history, no gradient */
        v.n = 1;
        v.data = nn_f32(x) + (size_t)i * per_in;
        v.blk = NULL; /* the view is of x's NCHW data */
        v.grad = NULL;
        v.grad_valid = 0;
        v.requires_grad = 0;
        v.node = NULL;
        v.param = NULL;
        nn_scope sc = nn_ctx_scope(ctx);
        nn_tensor *y = infer_one(s, ctx, &v);
        int bad = !y || nn_tensor_read(y, host + (size_t)i * per_out);
        nn_ctx_scope_end(ctx, sc, NULL);
        if (bad)
            break;
    }
    if (i == x->n)
        out = nn_tensor_from(ctx, x->n, s->classes, x->h, x->w, host);
    else if (!nn_ctx_error(ctx))
        nn_ctx_fail(ctx, "segmentor: inference failed");
    free(host);
    nn_ctx_set_grad_enabled(ctx, was);
    return out;
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
