/* models_internal.h: helpers shared by the files of engine/models/ (not part of the public API). */
#ifndef MKDSEG_MODELS_INTERNAL_H
#define MKDSEG_MODELS_INTERNAL_H

#include "models.h"

/* Register "<prefix>.<suffix>" in p (see nn_param_add). NULL with a message on error. */
nn_tensor *models_add(nn_params *p, const char *prefix, const char *suffix, nn_param_kind kind,
                      int n, int c, int h, int w, char *err, size_t errlen);
/* Register a BatchNorm2d(c) under prefix: weight, bias (params), running_mean, running_var
 * (buffers; running_var set to 1), in state_dict order. 0 or -1. */
int models_add_bn(nn_params *p, const char *prefix, int c, models_bn *bn, char *err, size_t errlen);
/* CycleGAN init of one conv of the generator or discriminator (weight N(0, 0.02), bias 0
 * when b != NULL). */
void models_init_conv(nn_tensor *w, nn_tensor *b, nn_rng *r);
/* BatchNorm2d forward with the models' momentum and eps. */
nn_tensor *models_bn_forward(nn_ctx *ctx, nn_tensor *x, const models_bn *bn, segmentor_bn mode);
/* nn_relu(models_bn_forward(...)) as one op */
nn_tensor *models_bn_relu_forward(nn_ctx *ctx, nn_tensor *x, const models_bn *bn,
                                  segmentor_bn mode);
/* 2 * MACs of a convolution with a k x k kernel producing [n, cout, oh, ow] (for a transposed
 * convolution pass the input size as oh, ow: each input pixel scatters cout*k*k products). */
double models_conv_flops(int n, int cin, int cout, int k, int oh, int ow);

#endif
