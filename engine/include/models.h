/* models.h: the three networks of the method (docs/method.md "Networks"), built on nn.h.
 *
 *   segmentor      residual U-Net, 5 levels, widths w..16w, BatchNorm      (S_syn, S_real)
 *   generator      CycleGAN ResNet generator, InstanceNorm, tanh output    (G_a2t, G_t2a)
 *   discriminator  CycleGAN 70x70 PatchGAN, InstanceNorm, LeakyReLU 0.2     (D_t, D_a)
 *
 * The exact layer order, parameter names and initialisation are those of the PyTorch twins in
 * tests/golden/torch_models.py (its docstring is the specification); the C code follows it
 * one-to-one, and tests/unit/test_models.c checks outputs, losses, every parameter gradient
 * and five Adam steps against reference data that script produces.
 *
 * Ownership: each network owns an nn_params registry (`params`) holding its parameters and
 * buffers under PyTorch state_dict names ("enc0.conv1.weight", "enc0.bn1.running_mean", ...),
 * in state_dict order; the struct's tensor pointers point into it. A network may be called any
 * number of times per context (the tape keeps references to the parameters); its forward
 * allocates activations only from the context's arena.
 *
 * Constructors return NULL with a message in err on bad sizes or out of memory; parameters
 * start zero until *_init (CycleGAN's init) or a load. Forward functions return NULL with the
 * error recorded in the context (nn.h's sticky error).
 *
 * Not in nn.h and so not here: PyTorch's int64 BatchNorm2d.num_batches_tracked buffer (a
 * safetensors writer that wants strict PyTorch loading must add it; it is not used by the
 * computation since momentum is fixed at 0.1).
 */
#ifndef MKDSEG_MODELS_H
#define MKDSEG_MODELS_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MODELS_BN_MOMENTUM 0.1f
#define MODELS_NORM_EPS 1e-5f
#define MODELS_LEAKY_SLOPE 0.2f
#define MODELS_INIT_STD 0.02f

/* ---- segmentor ---------------------------------------------------------------------- */

/* BatchNorm2d: gamma/beta are parameters, rmean/rvar buffers; all [C, 1, 1, 1]. */
typedef struct {
    nn_tensor *gamma, *beta, *rmean, *rvar;
} models_bn;

/* ResBlock(cin, cout): relu(bn2(conv2(relu(bn1(conv1 x)))) + skip_bn(skip x)). */
typedef struct {
    int cin, cout;
    nn_tensor *conv1; /* [cout, cin, 3, 3]  */
    models_bn bn1;
    nn_tensor *conv2; /* [cout, cout, 3, 3] */
    models_bn bn2;
    nn_tensor *skip; /* [cout, cin, 1, 1]  */
    models_bn skip_bn;
} models_resblock;

#define SEGMENTOR_LEVELS 5

typedef struct {
    int width, classes, in_ch;
    nn_params *params;                         /* owned */
    models_resblock enc[SEGMENTOR_LEVELS];     /* enc0..enc4 */
    nn_tensor *up_w[SEGMENTOR_LEVELS - 1];     /* up{l}: [c(l+1), c(l), 2, 2] (transposed) */
    nn_tensor *up_b[SEGMENTOR_LEVELS - 1];     /* [c(l), 1, 1, 1] */
    models_resblock dec[SEGMENTOR_LEVELS - 1]; /* dec{l}: ResBlock(2 c(l), c(l)) */
    nn_tensor *head_w;                         /* [classes, width, 1, 1] */
    nn_tensor *head_b;                         /* [classes, 1, 1, 1] */
} segmentor;

/* A segmentor with level widths width * (1, 2, 4, 8, 16), `classes` output channels and
 * `in_ch` input channels, its memory on backend be. Parameters zero, running_var 1. */
segmentor *segmentor_new(const nn_backend *be, int width, int classes, int in_ch, char *err,
                         size_t errlen);
void segmentor_free(segmentor *s);
/* PyTorch's default initialisation (torch_models.init_segmentor): every conv and transposed
 * conv weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = size(1)*kh*kw as
 * stored, BN gamma 1, beta 0, running mean 0 / var 1. Not CycleGAN's N(0, 0.02): with 0.02 the
 * transposed convolutions start so small that the decoder ignores the deep, context-carrying
 * path, and on the phantom a width-8 U-Net learnt only the myocardium (the one structure
 * intensity separates) in 800 iterations, where the default init reached a loss of 0.43 vs
 * 0.95 (tests/golden/torch_models.py, same data, PyTorch). Returns 0 or -1. */
int segmentor_init(segmentor *s, nn_rng *r);
/* How a segmentor's BatchNorm layers normalise in segmentor_forward. */
typedef enum {
    SEGMENTOR_BN_RUNNING = 0, /* the running statistics (evaluation) */
    SEGMENTOR_BN_TRAIN = 1,   /* batch statistics, and the running ones follow them */
    SEGMENTOR_BN_BATCH = 2,   /* batch statistics, running ones left untouched (a segmentor held
                               * fixed while gradients pass through it: the trainer's step 2) */
} segmentor_bn;
/* Logits [N, classes, H, W] of x [N, in_ch, H, W], H and W multiples of 16. */
nn_tensor *segmentor_forward(segmentor *s, nn_ctx *ctx, nn_tensor *x, segmentor_bn bn);
/* Eval-mode logits [N, classes, H, W] of x [N, in_ch, H, W], equal to
 * segmentor_forward(s, ctx, x, SEGMENTOR_BN_RUNNING), with memory bounded by one sample: on the CPU samples run
 * one at a time (on a device backend the batch runs at once) and each residual block in an
 * nn_ctx scope, so only the U-Net's skip tensors of the
 * current sample and the result stay in ctx's arena. Runs in no_grad mode whatever ctx's
 * setting (restored after); for gradients use segmentor_forward. NULL on error (in ctx). */
nn_tensor *segmentor_infer(segmentor *s, nn_ctx *ctx, nn_tensor *x);
/* Domain-specific BatchNorm: points every convolution, transposed convolution and head
 * tensor of dst at src's (the same sizes), so dst computes with src's convolutions and its
 * own BatchNorm parameters and statistics; gradients through dst reach src's tensors. dst's
 * own convolution tensors stay in its registry unused (they never receive a gradient, so
 * Adam leaves them). 0, or -1 when the sizes differ. */
int segmentor_share_convs(segmentor *dst, const segmentor *src);
/* The segmentor loss of docs/method.md Eq. 6: cross-entropy + soft Dice (all classes,
 * smooth 1) of logits [N, K, H, W] against labels [N, 1, H, W]. */
nn_tensor *segmentor_loss(nn_ctx *ctx, nn_tensor *logits, nn_tensor *labels);

/* ---- generator ---------------------------------------------------------------------- */

typedef struct {
    nn_tensor *w1, *b1; /* conv1 [dim, dim, 3, 3], [dim, 1, 1, 1] */
    nn_tensor *w2, *b2; /* conv2 */
} models_genblock;

typedef struct {
    int ngf, n_blocks, in_ch, out_ch;
    nn_params *params;                /* owned */
    nn_tensor *stem_w, *stem_b;       /* [ngf, in_ch, 7, 7] */
    nn_tensor *down_w[2], *down_b[2]; /* [2ngf, ngf, 3, 3], [4ngf, 2ngf, 3, 3] */
    models_genblock *blocks;          /* n_blocks, owned */
    nn_tensor *up_w[2], *up_b[2];     /* transposed: [4ngf, 2ngf, 3, 3], [2ngf, ngf, 3, 3] */
    nn_tensor *head_w, *head_b;       /* [out_ch, ngf, 7, 7] */
} generator;

/* CycleGAN ResnetGenerator(in_ch, out_ch, ngf, n_blocks), InstanceNorm without affine. */
generator *generator_new(const nn_backend *be, int ngf, int n_blocks, int in_ch, int out_ch,
                         char *err, size_t errlen);
void generator_free(generator *g);
int generator_init(generator *g, nn_rng *r);
/* tanh image [N, out_ch, H, W] of x [N, in_ch, H, W]; H, W multiples of 4, H/4 >= 2. */
nn_tensor *generator_forward(generator *g, nn_ctx *ctx, nn_tensor *x);

/* ---- discriminator ------------------------------------------------------------------ */

#define DISCRIMINATOR_CONVS 5 /* the most convolutions (n_layers 3) */

typedef struct {
    int ndf, in_ch;
    int n_layers;                      /* stride-2 convolutions, 1..3 */
    int nconv;                         /* n_layers + 2 */
    nn_params *params;                 /* owned */
    nn_tensor *w[DISCRIMINATOR_CONVS]; /* conv0..conv{nconv-1}, 4x4 */
    nn_tensor *b[DISCRIMINATOR_CONVS];
} discriminator;

/* CycleGAN NLayerDiscriminator(in_ch, ndf, n_layers 3), InstanceNorm without affine. */
discriminator *discriminator_new(const nn_backend *be, int ndf, int in_ch, char *err,
                                 size_t errlen);
/* The same with n_layers 1..3 stride-2 convolutions (receptive field 16, 34 or 70 pixels):
 * conv0 (ndf, stride 2), conv1..conv{n-1} (ndf x 2^i, stride 2), conv{n} (ndf x 2^n,
 * stride 1), conv{n+1} (1, stride 1), as NLayerDiscriminator(n_layers = n). */
discriminator *discriminator_new_layers(const nn_backend *be, int ndf, int in_ch, int n_layers,
                                        char *err, size_t errlen);
void discriminator_free(discriminator *d);
int discriminator_init(discriminator *d, nn_rng *r);
/* Patch scores [N, 1, H/2^n - 2, W/2^n - 2] of x [N, in_ch, H, W] (n = n_layers; H, W
 * multiples of 2^n, H/2^n >= 4; for n = 3 multiples of 8, >= 32). */
nn_tensor *discriminator_forward(discriminator *d, nn_ctx *ctx, nn_tensor *x);

/* ---- shared helpers ----------------------------------------------------------------- */

/* Set the parameter or buffer `name` of registry p from host data[numel]; numel must equal
 * the tensor's element count. 0, or -1 with a message. */
int models_param_set(nn_params *p, const char *name, const float *data, size_t numel, char *err,
                     size_t errlen);

/* Multiply-add FLOPs (2 per MAC) of the network's convolutions for an input [n, ., h, w]:
 * forward only (train = 0), or a training step's forward + backward (train = 1: 3x forward
 * minus the first layer's data gradient), the count tests/golden/torch_models.py makes. */
double segmentor_flops(const segmentor *s, int n, int h, int w, int train);
double generator_flops(const generator *g, int n, int h, int w, int train);
double discriminator_flops(const discriminator *d, int n, int h, int w, int train);

#ifdef __cplusplus
}
#endif
#endif
