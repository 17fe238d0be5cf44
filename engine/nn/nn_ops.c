/* nn_ops.c: the op front-ends. Each checks its inputs' shapes, allocates its output from
 * the arena, builds a node and hands it to the backend; the node goes on the tape when
 * gradients are enabled and a differentiable input requires one. */
#include "nn_backend.h"
#include "nn_internal.h"

#include <string.h>

/* Run node `tmpl` producing `out`. diffmask: bit k set when input k is differentiable. */
static nn_tensor *run(nn_ctx *ctx, const nn_node *tmpl, nn_tensor *out, unsigned diffmask)
{
    if (!out)
        return NULL;
    nn_node *nd = nn_ctx_meta(ctx, sizeof *nd);
    if (!nd)
        return NULL;
    *nd = *tmpl;
    nd->out = out;
    nd->recorded = 0;
    if (nn_ctx_grad_enabled(ctx))
        for (int k = 0; k < nd->nin; k++)
            if ((diffmask >> k & 1u) && nd->in[k] && nd->in[k]->requires_grad)
                nd->recorded = 1;
    if (nn_run_node(ctx, nd, 0))
        return NULL;
    if (nd->recorded) {
        if (nn_tape_push(ctx, nd))
            return NULL;
        out->requires_grad = 1;
        out->node = nd;
    }
    return out;
}

/* Common checks: no earlier error, non-NULL float inputs. */
static int bad_in(nn_ctx *ctx, const char *op, nn_tensor *x)
{
    if (nn_ctx_error(ctx))
        return 1;
    if (!x) {
        nn_ctx_fail(ctx, "%s: NULL input", op);
        return 1;
    }
    if (x->dtype != NN_F32) {
        nn_ctx_fail(ctx, "%s: input must be float32", op);
        return 1;
    }
    return 0;
}

static int same_shape(const nn_tensor *a, const nn_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

#define SHAPE(t) (t)->n, (t)->c, (t)->h, (t)->w

static nn_node node0(nn_op op, int nin)
{
    nn_node nd;
    memset(&nd, 0, sizeof nd);
    nd.op = op;
    nd.nin = nin;
    return nd;
}

static int check_affine(nn_ctx *ctx, const char *op, nn_tensor *x, nn_tensor *g, nn_tensor *b);

/* ---- convolutions -------------------------------------------------------------------- */

nn_tensor *nn_conv2d(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, nn_tensor *b, int stride, int pad,
                     int dilation)
{
    if (bad_in(ctx, "conv2d", x) || bad_in(ctx, "conv2d", w))
        return NULL;
    if (b && bad_in(ctx, "conv2d", b))
        return NULL;
    if (stride < 1 || pad < 0 || dilation < 1)
        return nn_ctx_fail(ctx, "conv2d: bad stride/pad/dilation %d/%d/%d", stride, pad, dilation);
    if (w->c != x->c)
        return nn_ctx_fail(ctx,
                           "conv2d: x [%d,%d,%d,%d] has %d channels, weight "
                           "[%d,%d,%d,%d] wants %d",
                           SHAPE(x), x->c, SHAPE(w), w->c);
    if (b && (int)nn_numel(b) != w->n)
        return nn_ctx_fail(ctx, "conv2d: bias has %zu elements, want %d", nn_numel(b), w->n);
    int oh = (x->h + 2 * pad - dilation * (w->h - 1) - 1) / stride + 1;
    int ow = (x->w + 2 * pad - dilation * (w->w - 1) - 1) / stride + 1;
    if (x->h + 2 * pad < dilation * (w->h - 1) + 1 || x->w + 2 * pad < dilation * (w->w - 1) + 1)
        return nn_ctx_fail(ctx, "conv2d: input [%d,%d,%d,%d] smaller than the kernel", SHAPE(x));
    nn_node nd = node0(NN_OP_CONV2D, 3);
    nd.in[0] = x;
    nd.in[1] = w;
    nd.in[2] = b;
    nd.i[0] = stride;
    nd.i[1] = pad;
    nd.i[2] = dilation;
    return run(ctx, &nd, nn_tensor_new(ctx, x->n, w->n, oh, ow), 7);
}

nn_tensor *nn_conv_transpose2d(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, nn_tensor *b, int stride,
                               int pad, int out_pad)
{
    if (bad_in(ctx, "conv_transpose2d", x) || bad_in(ctx, "conv_transpose2d", w))
        return NULL;
    if (b && bad_in(ctx, "conv_transpose2d", b))
        return NULL;
    if (stride < 1 || pad < 0 || out_pad < 0 || out_pad >= stride)
        return nn_ctx_fail(ctx, "conv_transpose2d: bad stride/pad/out_pad %d/%d/%d", stride, pad,
                           out_pad);
    if (w->n != x->c)
        return nn_ctx_fail(ctx,
                           "conv_transpose2d: x [%d,%d,%d,%d] has %d channels, weight "
                           "[%d,%d,%d,%d] wants %d",
                           SHAPE(x), x->c, SHAPE(w), w->n);
    if (b && (int)nn_numel(b) != w->c)
        return nn_ctx_fail(ctx, "conv_transpose2d: bias has %zu elements, want %d", nn_numel(b),
                           w->c);
    int oh = (x->h - 1) * stride - 2 * pad + w->h + out_pad;
    int ow = (x->w - 1) * stride - 2 * pad + w->w + out_pad;
    if (oh < 1 || ow < 1)
        return nn_ctx_fail(ctx, "conv_transpose2d: empty output");
    nn_node nd = node0(NN_OP_CONV_T2D, 3);
    nd.in[0] = x;
    nd.in[1] = w;
    nd.in[2] = b;
    nd.i[0] = stride;
    nd.i[1] = pad;
    nd.i[2] = out_pad;
    return run(ctx, &nd, nn_tensor_new(ctx, x->n, w->c, oh, ow), 7);
}

nn_tensor *nn_conv2d_bn_act(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, nn_tensor *b, int stride,
                            int pad, int dilation, nn_tensor *gamma, nn_tensor *beta,
                            nn_tensor *rmean, nn_tensor *rvar, float eps, nn_act act, float slope)
{
    if ((unsigned)act > NN_ACT_SIGMOID)
        return nn_ctx_fail(ctx, "conv2d_bn_act: bad activation %d", (int)act);
    if (!rmean && (gamma || beta || rvar))
        return nn_ctx_fail(ctx, "conv2d_bn_act: gamma/beta/rvar given without rmean");
    nn_tensor *ins[5] = {x, w, b, gamma, beta};
    int need = 0;
    for (int k = 0; k < 5; k++)
        need |= ins[k] && ins[k]->requires_grad;
    if (need && nn_ctx_grad_enabled(ctx)) { /* the composition, recorded */
        nn_tensor *y = nn_conv2d(ctx, x, w, b, stride, pad, dilation);
        if (rmean)
            y = nn_batch_norm(ctx, y, gamma, beta, rmean, rvar, 0, 0.0f, eps);
        switch (act) {
        case NN_ACT_RELU:
            return nn_relu(ctx, y);
        case NN_ACT_LEAKY_RELU:
            return nn_leaky_relu(ctx, y, slope);
        case NN_ACT_TANH:
            return nn_tanh(ctx, y);
        case NN_ACT_SIGMOID:
            return nn_sigmoid(ctx, y);
        case NN_ACT_NONE:
            break;
        }
        return y;
    }
    if (bad_in(ctx, "conv2d_bn_act", x) || bad_in(ctx, "conv2d_bn_act", w))
        return NULL;
    if (b && bad_in(ctx, "conv2d_bn_act", b))
        return NULL;
    if (stride < 1 || pad < 0 || dilation < 1)
        return nn_ctx_fail(ctx, "conv2d_bn_act: bad stride/pad/dilation");
    if (w->c != x->c)
        return nn_ctx_fail(ctx, "conv2d_bn_act: x has %d channels, weight wants %d", x->c, w->c);
    if (b && (int)nn_numel(b) != w->n)
        return nn_ctx_fail(ctx, "conv2d_bn_act: bias needs %d elements", w->n);
    if (rmean) {
        if (bad_in(ctx, "conv2d_bn_act", rmean) || bad_in(ctx, "conv2d_bn_act", rvar) ||
            (int)nn_numel(rmean) != w->n || (int)nn_numel(rvar) != w->n)
            return nn_ctx_fail(ctx, "conv2d_bn_act: running stats need %d elements", w->n);
        nn_tensor shape = {.n = 1, .c = w->n, .h = 1, .w = 1};
        if (check_affine(ctx, "conv2d_bn_act", &shape, gamma, beta))
            return NULL;
    }
    if (x->h + 2 * pad < dilation * (w->h - 1) + 1 || x->w + 2 * pad < dilation * (w->w - 1) + 1)
        return nn_ctx_fail(ctx, "conv2d_bn_act: input smaller than the kernel");
    int oh = (x->h + 2 * pad - dilation * (w->h - 1) - 1) / stride + 1;
    int ow = (x->w + 2 * pad - dilation * (w->w - 1) - 1) / stride + 1;
    nn_node nd = node0(NN_OP_CONV2D_FUSED, 7);
    nn_tensor *in[7] = {x, w, b, gamma, beta, rmean, rvar};
    for (int k = 0; k < 7; k++)
        nd.in[k] = in[k];
    nd.i[0] = stride;
    nd.i[1] = pad;
    nd.i[2] = dilation;
    nd.i[3] = (int)act;
    nd.f[0] = eps;
    nd.f[1] = slope;
    return run(ctx, &nd, nn_tensor_new(ctx, x->n, w->n, oh, ow), 0);
}

/* ---- padding ------------------------------------------------------------------------- */

static nn_tensor *pad_op(nn_ctx *ctx, nn_op op, nn_tensor *x, int l, int r, int t, int bo)
{
    const char *name = nn_op_name(op);
    if (bad_in(ctx, name, x))
        return NULL;
    if (l < 0 || r < 0 || t < 0 || bo < 0)
        return nn_ctx_fail(ctx, "%s: negative padding", name);
    if (op == NN_OP_PAD_REFLECT && (l >= x->w || r >= x->w || t >= x->h || bo >= x->h))
        return nn_ctx_fail(ctx, "%s: padding %d,%d,%d,%d too large for [%d,%d,%d,%d]", name, l, r,
                           t, bo, SHAPE(x));
    nn_node nd = node0(op, 1);
    nd.in[0] = x;
    nd.i[0] = l;
    nd.i[1] = r;
    nd.i[2] = t;
    nd.i[3] = bo;
    return run(ctx, &nd, nn_tensor_new(ctx, x->n, x->c, x->h + t + bo, x->w + l + r), 1);
}

nn_tensor *nn_pad_reflect(nn_ctx *ctx, nn_tensor *x, int left, int right, int top, int bottom)
{
    return pad_op(ctx, NN_OP_PAD_REFLECT, x, left, right, top, bottom);
}

nn_tensor *nn_pad_zero(nn_ctx *ctx, nn_tensor *x, int left, int right, int top, int bottom)
{
    return pad_op(ctx, NN_OP_PAD_ZERO, x, left, right, top, bottom);
}

/* ---- norms --------------------------------------------------------------------------- */

static int check_affine(nn_ctx *ctx, const char *op, nn_tensor *x, nn_tensor *g, nn_tensor *b)
{
    if ((g == NULL) != (b == NULL)) {
        nn_ctx_fail(ctx, "%s: gamma and beta must both be given or both be NULL", op);
        return -1;
    }
    if (g && (bad_in(ctx, op, g) || bad_in(ctx, op, b)))
        return -1;
    if (g && ((int)nn_numel(g) != x->c || (int)nn_numel(b) != x->c)) {
        nn_ctx_fail(ctx, "%s: gamma/beta need %d elements", op, x->c);
        return -1;
    }
    return 0;
}

/* i[1]: a ReLU applied to the output (the _relu variants) */
static nn_tensor *instance_norm(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                                float eps, int relu)
{
    if (bad_in(ctx, "instance_norm", x) || check_affine(ctx, "instance_norm", x, gamma, beta))
        return NULL;
    nn_node nd = node0(NN_OP_INSTANCE_NORM, 3);
    nd.in[0] = x;
    nd.in[1] = gamma;
    nd.in[2] = beta;
    nd.i[1] = relu;
    nd.f[0] = eps;
    return run(ctx, &nd, nn_tensor_new(ctx, SHAPE(x)), 7);
}

nn_tensor *nn_instance_norm(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta, float eps)
{
    return instance_norm(ctx, x, gamma, beta, eps, 0);
}

nn_tensor *nn_instance_norm_relu(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                                 float eps)
{
    return instance_norm(ctx, x, gamma, beta, eps, 1);
}

static nn_tensor *batch_norm(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                             nn_tensor *rmean, nn_tensor *rvar, int training, float momentum,
                             float eps, int relu)
{
    if (bad_in(ctx, "batch_norm", x) || check_affine(ctx, "batch_norm", x, gamma, beta) ||
        bad_in(ctx, "batch_norm", rmean) || bad_in(ctx, "batch_norm", rvar))
        return NULL;
    if ((int)nn_numel(rmean) != x->c || (int)nn_numel(rvar) != x->c)
        return nn_ctx_fail(ctx, "batch_norm: running stats need %d elements", x->c);
    if (training && (size_t)x->n * x->h * x->w < 2)
        return nn_ctx_fail(ctx, "batch_norm: training needs more than one value per channel");
    nn_node nd = node0(NN_OP_BATCH_NORM, 5);
    nd.in[0] = x;
    nd.in[1] = gamma;
    nd.in[2] = beta;
    nd.in[3] = rmean;
    nd.in[4] = rvar;
    nd.i[0] = training != 0;
    nd.i[1] = relu;
    nd.f[0] = momentum;
    nd.f[1] = eps;
    return run(ctx, &nd, nn_tensor_new(ctx, SHAPE(x)), 7);
}

nn_tensor *nn_batch_norm(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                         nn_tensor *rmean, nn_tensor *rvar, int training, float momentum, float eps)
{
    return batch_norm(ctx, x, gamma, beta, rmean, rvar, training, momentum, eps, 0);
}

nn_tensor *nn_batch_norm_relu(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                              nn_tensor *rmean, nn_tensor *rvar, int training, float momentum,
                              float eps)
{
    return batch_norm(ctx, x, gamma, beta, rmean, rvar, training, momentum, eps, 1);
}

/* ---- elementwise --------------------------------------------------------------------- */

static nn_tensor *unary(nn_ctx *ctx, nn_op op, nn_tensor *x, float f0)
{
    if (bad_in(ctx, nn_op_name(op), x))
        return NULL;
    nn_node nd = node0(op, 1);
    nd.in[0] = x;
    nd.f[0] = f0;
    return run(ctx, &nd, nn_tensor_new(ctx, SHAPE(x)), 1);
}

nn_tensor *nn_relu(nn_ctx *ctx, nn_tensor *x) { return unary(ctx, NN_OP_RELU, x, 0); }
nn_tensor *nn_tanh(nn_ctx *ctx, nn_tensor *x) { return unary(ctx, NN_OP_TANH, x, 0); }
nn_tensor *nn_sigmoid(nn_ctx *ctx, nn_tensor *x) { return unary(ctx, NN_OP_SIGMOID, x, 0); }
nn_tensor *nn_softmax(nn_ctx *ctx, nn_tensor *x) { return unary(ctx, NN_OP_SOFTMAX, x, 0); }
nn_tensor *nn_leaky_relu(nn_ctx *ctx, nn_tensor *x, float slope)
{
    return unary(ctx, NN_OP_LEAKY_RELU, x, slope);
}
nn_tensor *nn_scale(nn_ctx *ctx, nn_tensor *x, float alpha)
{
    return unary(ctx, NN_OP_SCALE, x, alpha);
}

/* i[0]: a ReLU applied to the sum (nn_add_relu) */
static nn_tensor *add(nn_ctx *ctx, nn_tensor *a, nn_tensor *b, int relu)
{
    if (bad_in(ctx, "add", a) || bad_in(ctx, "add", b))
        return NULL;
    if (!same_shape(a, b))
        return nn_ctx_fail(ctx, "add: shapes [%d,%d,%d,%d] and [%d,%d,%d,%d] differ", SHAPE(a),
                           SHAPE(b));
    nn_node nd = node0(NN_OP_ADD, 2);
    nd.in[0] = a;
    nd.in[1] = b;
    nd.i[0] = relu;
    return run(ctx, &nd, nn_tensor_new(ctx, SHAPE(a)), 3);
}

nn_tensor *nn_add(nn_ctx *ctx, nn_tensor *a, nn_tensor *b) { return add(ctx, a, b, 0); }

nn_tensor *nn_add_relu(nn_ctx *ctx, nn_tensor *a, nn_tensor *b) { return add(ctx, a, b, 1); }

nn_tensor *nn_max_pool2d(nn_ctx *ctx, nn_tensor *x, int k, int s)
{
    if (bad_in(ctx, "max_pool2d", x))
        return NULL;
    if (k < 1 || s < 1 || k > x->h || k > x->w)
        return nn_ctx_fail(ctx, "max_pool2d: bad window %d/%d for [%d,%d,%d,%d]", k, s, SHAPE(x));
    nn_node nd = node0(NN_OP_MAX_POOL, 1);
    nd.in[0] = x;
    nd.i[0] = k;
    nd.i[1] = s;
    return run(ctx, &nd, nn_tensor_new(ctx, x->n, x->c, (x->h - k) / s + 1, (x->w - k) / s + 1), 1);
}

nn_tensor *nn_concat(nn_ctx *ctx, nn_tensor **xs, int k)
{
    if (nn_ctx_error(ctx))
        return NULL;
    if (k < 1 || k > NN_MAX_IN)
        return nn_ctx_fail(ctx, "concat: %d inputs (1..%d)", k, NN_MAX_IN);
    int c = 0;
    nn_node nd = node0(NN_OP_CONCAT, k);
    for (int i = 0; i < k; i++) {
        if (bad_in(ctx, "concat", xs[i]))
            return NULL;
        if (xs[i]->n != xs[0]->n || xs[i]->h != xs[0]->h || xs[i]->w != xs[0]->w)
            return nn_ctx_fail(ctx, "concat: [%d,%d,%d,%d] and [%d,%d,%d,%d] differ in N/H/W",
                               SHAPE(xs[0]), SHAPE(xs[i]));
        nd.in[i] = xs[i];
        c += xs[i]->c;
    }
    return run(ctx, &nd, nn_tensor_new(ctx, xs[0]->n, c, xs[0]->h, xs[0]->w), 0xffu);
}

static nn_tensor *resize(nn_ctx *ctx, nn_op op, nn_tensor *x, int oh, int ow)
{
    if (bad_in(ctx, nn_op_name(op), x))
        return NULL;
    if (oh < 1 || ow < 1)
        return nn_ctx_fail(ctx, "%s: bad size %dx%d", nn_op_name(op), oh, ow);
    nn_node nd = node0(op, 1);
    nd.in[0] = x;
    return run(ctx, &nd, nn_tensor_new(ctx, x->n, x->c, oh, ow), 1);
}

nn_tensor *nn_resize_bilinear(nn_ctx *ctx, nn_tensor *x, int oh, int ow)
{
    return resize(ctx, NN_OP_RESIZE_BILINEAR, x, oh, ow);
}

nn_tensor *nn_resize_nearest(nn_ctx *ctx, nn_tensor *x, int oh, int ow)
{
    return resize(ctx, NN_OP_RESIZE_NEAREST, x, oh, ow);
}

/* ---- losses -------------------------------------------------------------------------- */

static int check_labels(nn_ctx *ctx, const char *op, nn_tensor *x, nn_tensor *y)
{
    if (nn_ctx_error(ctx))
        return -1;
    if (!y || y->dtype != NN_I32) {
        nn_ctx_fail(ctx, "%s: labels must be an int32 tensor", op);
        return -1;
    }
    if (y->n != x->n || y->c != 1 || y->h != x->h || y->w != x->w) {
        nn_ctx_fail(ctx, "%s: labels [%d,%d,%d,%d] do not fit [%d,%d,%d,%d]", op, SHAPE(y),
                    SHAPE(x));
        return -1;
    }
    return 0;
}

nn_tensor *nn_loss_cross_entropy(nn_ctx *ctx, nn_tensor *logits, nn_tensor *labels,
                                 nn_tensor *weights)
{
    if (bad_in(ctx, "loss_cross_entropy", logits) ||
        check_labels(ctx, "loss_cross_entropy", logits, labels))
        return NULL;
    if (weights &&
        (bad_in(ctx, "loss_cross_entropy", weights) || (int)nn_numel(weights) != logits->c))
        return nn_ctx_fail(ctx, "loss_cross_entropy: weights need %d elements", logits->c);
    nn_node nd = node0(NN_OP_LOSS_CE, 3);
    nd.in[0] = logits;
    nd.in[1] = labels;
    nd.in[2] = weights;
    return run(ctx, &nd, nn_tensor_new(ctx, 1, 1, 1, 1), 1);
}

nn_tensor *nn_loss_dice(nn_ctx *ctx, nn_tensor *probs, nn_tensor *labels, int first_class,
                        float smooth)
{
    if (bad_in(ctx, "loss_dice", probs) || check_labels(ctx, "loss_dice", probs, labels))
        return NULL;
    if (first_class < 0 || first_class >= probs->c)
        return nn_ctx_fail(ctx, "loss_dice: first_class %d out of 0..%d", first_class,
                           probs->c - 1);
    nn_node nd = node0(NN_OP_LOSS_DICE, 2);
    nd.in[0] = probs;
    nd.in[1] = labels;
    nd.i[0] = first_class;
    nd.f[0] = smooth;
    return run(ctx, &nd, nn_tensor_new(ctx, 1, 1, 1, 1), 1);
}

nn_tensor *nn_loss_kd(nn_ctx *ctx, nn_tensor *target, nn_tensor *probs)
{
    if (bad_in(ctx, "loss_kd", target) || bad_in(ctx, "loss_kd", probs))
        return NULL;
    if (!same_shape(target, probs))
        return nn_ctx_fail(ctx, "loss_kd: shapes [%d,%d,%d,%d] and [%d,%d,%d,%d] differ",
                           SHAPE(target), SHAPE(probs));
    nn_node nd = node0(NN_OP_LOSS_KD, 2);
    nd.in[0] = target;
    nd.in[1] = probs;
    return run(ctx, &nd, nn_tensor_new(ctx, 1, 1, 1, 1), 2);
}

nn_tensor *nn_loss_l1(nn_ctx *ctx, nn_tensor *a, nn_tensor *b)
{
    if (bad_in(ctx, "loss_l1", a) || bad_in(ctx, "loss_l1", b))
        return NULL;
    if (!same_shape(a, b))
        return nn_ctx_fail(ctx, "loss_l1: shapes [%d,%d,%d,%d] and [%d,%d,%d,%d] differ", SHAPE(a),
                           SHAPE(b));
    nn_node nd = node0(NN_OP_LOSS_L1, 2);
    nd.in[0] = a;
    nd.in[1] = b;
    return run(ctx, &nd, nn_tensor_new(ctx, 1, 1, 1, 1), 3);
}

nn_tensor *nn_loss_lsgan(nn_ctx *ctx, nn_tensor *x, float target)
{
    if (bad_in(ctx, "loss_lsgan", x))
        return NULL;
    nn_node nd = node0(NN_OP_LOSS_LSGAN, 1);
    nd.in[0] = x;
    nd.f[0] = target;
    return run(ctx, &nd, nn_tensor_new(ctx, 1, 1, 1, 1), 1);
}

int nn_argmax_channels(nn_ctx *ctx, const nn_tensor *x, int32_t *out)
{
    if (!x || x->dtype != NN_F32) {
        nn_ctx_fail(ctx, "argmax: bad input");
        return -1;
    }
    return nn_ctx_backend(ctx)->argmax(ctx, x, out);
}
