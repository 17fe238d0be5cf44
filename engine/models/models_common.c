/* models_common.c: helpers shared by the three networks (parameter naming, loading). */
#include "models_internal.h"

#include <stdio.h>
#include <string.h>

nn_tensor *models_add(nn_params *p, const char *prefix, const char *suffix, nn_param_kind kind,
                      int n, int c, int h, int w, char *err, size_t errlen)
{
    char name[96];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    if (len < 0 || (size_t)len >= sizeof name) {
        snprintf(err, errlen, "models: parameter name %s.%s too long", prefix, suffix);
        return NULL;
    }
    return nn_param_add(p, name, kind, n, c, h, w, err, errlen);
}

int models_add_bn(nn_params *p, const char *prefix, int c, models_bn *bn, char *err, size_t errlen)
{
    if (!(bn->gamma = models_add(p, prefix, "weight", NN_PARAM, c, 1, 1, 1, err, errlen)) ||
        !(bn->beta = models_add(p, prefix, "bias", NN_PARAM, c, 1, 1, 1, err, errlen)) ||
        !(bn->rmean = models_add(p, prefix, "running_mean", NN_BUFFER, c, 1, 1, 1, err, errlen)) ||
        !(bn->rvar = models_add(p, prefix, "running_var", NN_BUFFER, c, 1, 1, 1, err, errlen)))
        return -1;
    nn_init_const(bn->rvar, 1.0f);
    return 0;
}

void models_init_conv(nn_tensor *w, nn_tensor *b, nn_rng *r)
{
    nn_init_normal(w, 0.0f, MODELS_INIT_STD, r);
    if (b)
        nn_init_const(b, 0.0f);
}

static nn_tensor *bn_forward(nn_ctx *ctx, nn_tensor *x, const models_bn *bn, segmentor_bn mode,
                             int relu)
{
    /* SEGMENTOR_BN_BATCH: batch statistics with momentum 0, so the running ones stay */
    return (relu ? nn_batch_norm_relu : nn_batch_norm)(
        ctx, x, bn->gamma, bn->beta, bn->rmean, bn->rvar, mode != SEGMENTOR_BN_RUNNING,
        mode == SEGMENTOR_BN_BATCH ? 0.0f : MODELS_BN_MOMENTUM, MODELS_NORM_EPS);
}

nn_tensor *models_bn_forward(nn_ctx *ctx, nn_tensor *x, const models_bn *bn, segmentor_bn mode)
{
    return bn_forward(ctx, x, bn, mode, 0);
}

nn_tensor *models_bn_relu_forward(nn_ctx *ctx, nn_tensor *x, const models_bn *bn, segmentor_bn mode)
{
    return bn_forward(ctx, x, bn, mode, 1);
}

int models_param_set(nn_params *p, const char *name, const float *data, size_t numel, char *err,
                     size_t errlen)
{
    nn_param *q = nn_params_find(p, name);
    if (!q) {
        snprintf(err, errlen, "models: no parameter or buffer named %s", name);
        return -1;
    }
    if (nn_numel(&q->t) != numel) {
        snprintf(err, errlen, "models: %s has %zu elements, given %zu", name, nn_numel(&q->t),
                 numel);
        return -1;
    }
    if (nn_tensor_write(&q->t, data)) {
        snprintf(err, errlen, "models: cannot write %s", name);
        return -1;
    }
    return 0;
}

double models_conv_flops(int n, int cin, int cout, int k, int oh, int ow)
{
    return 2.0 * n * (double)cin * cout * k * k * oh * ow;
}
