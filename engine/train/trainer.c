/* trainer.c: online mutual training (docs/method.md Algorithm 1) and the baseline methods.
 * See train.h for the contract. Shapes: B = config batch, S = config size; images
 * [B, 1, S, S], labels [B, 1, S, S] int32, segmentor logits [B, K, S, S]. */
#include "train.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_pool.h"
#include "prep.h"
#include "safetensors.h"
#include "trainer_internal.h"
#include "mkd_err.h"

static const char *const loss_names[] = {
    "g_a2t",    "d_t",      "g_t2a",    "d_a",        "cyc",       "sup_syn",
    "sup_real", "kd_s2r",   "kd_r2s",   "seg",        "g_a2t_adv", "g_t2a_adv",
    "cyc_a",    "cyc_t",    "idt_a2t",  "idt_t2a",    "g_a2t_seg", "d_t_real",
    "d_t_fake", "d_a_real", "d_a_fake", "score_dice", "score_mae",
};
_Static_assert(sizeof loss_names / sizeof loss_names[0] == TL_COUNT, "loss name table");

const char *train_loss_name(train_loss l) { return (unsigned)l < TL_COUNT ? loss_names[l] : "?"; }

train_iam trainer_effective_iam(const train_config *c)
{
    return c->method == TM_MKD_NO_IAM ? TI_IDENTITY : c->iam;
}

/* mkd's methods train a CycleGAN (online, or first and then frozen); joint trains one only with
 * iam frozen (its default iam, cyclegan, has no generator: joint sees the raw assistant images) */
int trainer_uses_gan(const train_config *c)
{
    train_iam m = trainer_effective_iam(c);
    if (c->method == TM_JOINT)
        return m == TI_FROZEN;
    return train_method_is_mkd(c->method) && (m == TI_CYCLEGAN || m == TI_FROZEN);
}

/* 1 when the assistant's images are replaced by paired ones (oracle or histmatch) */
static int uses_pair(const train_config *c)
{
    train_iam m = trainer_effective_iam(c);
    return c->method != TM_BASELINE && (m == TI_ORACLE || m == TI_HISTMATCH);
}

/* ---- sampling and augmentation ----------------------------------------------------------- */

/* One augmented copy of slice idx of set s into img[S*S], lab[S*S]: prep_augment (random
 * flips with probability aug_flip per axis, a rotation within aug_rot_deg and a scaling within
 * aug_scale about the centre; outside the slice -1, the normalised minimum, and background),
 * drawn from the trainer's stream. u8 is scratch for S*S labels. */
static int sample_slice(const train_config *c, const train_slices *s, int idx, nn_rng *r,
                        float *img, int32_t *lab, uint8_t *u8)
{
    const size_t ss = (size_t)s->size * s->size;
    memcpy(img, s->img + (size_t)idx * ss, ss * sizeof(float));
    const int32_t *sl = s->lab + (size_t)idx * ss;
    for (size_t i = 0; i < ss; i++)
        u8[i] = (uint8_t)sl[i];
    prep_aug a = {c->aug_flip, c->aug_flip, c->aug_rot_deg, 1.0 - c->aug_scale, 1.0 + c->aug_scale};
    if (prep_augment(&a, r, img, u8, s->size, s->size, -1.0f))
        return -1;
    for (size_t i = 0; i < ss; i++)
        lab[i] = u8[i];
    return 0;
}

/* n augmented slices of s; with pair (same slices in the target modality), the same slices
 * of pair with the same augmentation into pimg (the stream is replayed for them). */
static int sample_pairs(trainer *t, const train_slices *s, const train_slices *pair, int n,
                        float *img, int32_t *lab, float *pimg)
{
    const size_t ss = (size_t)s->size * s->size;
    for (int b = 0; b < n; b++) {
        int idx = (int)(nn_rng_u64(&t->rng) % (uint64_t)s->n);
        nn_rng r0 = t->rng;
        if (sample_slice(&t->c, s, idx, &t->rng, img + b * ss, lab + b * ss, t->u8))
            return -1;
        if (!pair)
            continue;
        nn_rng r1 = t->rng;
        t->rng = r0;
        if (sample_slice(&t->c, pair, idx, &t->rng, pimg + b * ss, t->yp, t->u8))
            return -1;
        t->rng = r1;
    }
    return 0;
}

static int sample_batch(trainer *t, const train_slices *s, int n, float *img, int32_t *lab)
{
    return sample_pairs(t, s, NULL, n, img, lab, NULL);
}

/* n assistant slices; where the alignment module pairs them, the paired images replace them */
static int sample_assistant(trainer *t, int n, float *img, int32_t *lab)
{
    if (!uses_pair(&t->c))
        return sample_batch(t, t->ast, n, img, lab);
    if (sample_pairs(t, t->ast, t->pair, n, img, lab, t->xp))
        return -1;
    memcpy(img, t->xp, (size_t)n * t->ast->size * t->ast->size * sizeof(float));
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* Freeze every network but `keep` and `keep2` (nn_params registries or NULL). Call before
 * the forward pass: the tape records whether a parameter requires a gradient when it is used. */
static void train_only(trainer *t, nn_params *keep, nn_params *keep2)
{
    nn_params *all[7] = {
        t->seg[0] ? t->seg[0]->params : NULL, t->seg[1] ? t->seg[1]->params : NULL,
        t->g_a2t ? t->g_a2t->params : NULL,   t->g_t2a ? t->g_t2a->params : NULL,
        t->d_t ? t->d_t->params : NULL,       t->d_a ? t->d_a->params : NULL,
        t->seg_a ? t->seg_a->params : NULL,
    };
    for (int i = 0; i < 7; i++)
        if (all[i])
            nn_params_set_frozen(all[i], all[i] != keep && all[i] != keep2);
}

/* Zero the gradients of `net`, backpropagate `loss`, take one Adam step. */
static int update(trainer *t, nn_params *net, nn_adam *opt, nn_tensor *loss, char *err,
                  size_t errlen)
{
    if (!loss) {
        mkd_seterr(err, errlen, "%s",
                   nn_ctx_error(t->ctx) ? nn_ctx_error(t->ctx) : "forward failed");
        return -1;
    }
    nn_params_zero_grad(net);
    if (nn_backward(t->ctx, loss, err, errlen))
        return -1;
    return nn_adam_step(opt, err, errlen);
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            mkd_seterr(err, errlen, "%s", nn_ctx_error(t->ctx) ? nn_ctx_error(t->ctx) : #x);       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static nn_tensor *sum2(nn_ctx *ctx, nn_tensor *a, nn_tensor *b) { return nn_add(ctx, a, b); }
static nn_tensor *wsum(nn_ctx *ctx, nn_tensor *a, float w, nn_tensor *b)
{
    return nn_add(ctx, a, nn_scale(ctx, b, w));
}

/* ---- one iteration of mkd (Algorithm 1) -------------------------------------------------- */
/* The losses of a step are read back once, at its end (or at a test hook's early return):
 * reading one waits for the device, so reading each as it is made would drain the GPU's
 * queue up to nine times an iteration. Their values stay in the step's arena. */
static int read_losses(trainer *t, nn_tensor **lt)
{
    for (int k = 0; k < TL_COUNT; k++)
        if (lt[k])
            t->prog.loss[k] = nn_scalar(lt[k]);
    return 0;
}

/* The weight of the segmentation feedback into G_a2t at iteration it: 0 for the first
 * seg_g_warmup iterations, then ramped linearly to lambda_seg_g over seg_g_ramp. */
static float seg_feedback_weight(const train_config *c, int it)
{
    if (it < c->seg_g_warmup)
        return 0.0f;
    if (c->seg_g_ramp <= 0)
        return c->lambda_seg_g;
    float f = (float)(it - c->seg_g_warmup + 1) / (float)c->seg_g_ramp;
    return c->lambda_seg_g * (f < 1.0f ? f : 1.0f);
}

/* The batches of one mkd iteration on the device. */
typedef struct {
    nn_tensor *xt, *xa, *yt, *ya;
} mkd_batch;

/* B target and B assistant slices (the assistant's replaced where the IAM pairs them) on the
 * device. 0 or -1. */
static int sample_gan_batch(trainer *t, mkd_batch *m, char *err, size_t errlen)
{
    const int B = t->c.batch, S = t->c.size;
    nn_ctx *ctx = t->ctx;
    if (sample_batch(t, t->tgt, B, t->xt, t->yt) || sample_assistant(t, B, t->xa, t->ya)) {
        mkd_seterr(err, errlen, "out of memory");
        return -1;
    }
    *m = (mkd_batch){nn_tensor_from(ctx, B, 1, S, S, t->xt), nn_tensor_from(ctx, B, 1, S, S, t->xa),
                     nn_labels_from(ctx, B, S, S, t->yt), nn_labels_from(ctx, B, S, S, t->ya)};
    CHECK(m->xt && m->xa && m->yt && m->ya);
    return 0;
}

/* Step 2: G_a2t by L_adv^t + lambda_cyc (L_cyc^a + L_cyc^t) [+ identity] [+ w L_sup^syn];
 * every other network fixed, gradients pass through. *fake: G_a2t(x^a) before the update. */
static int step_g_a2t(trainer *t, const mkd_batch *m, float wseg, nn_tensor **L, nn_tensor **fake,
                      char *err, size_t errlen)
{
    const train_config *c = &t->c;
    nn_ctx *ctx = t->ctx;
    train_only(t, t->g_a2t->params, NULL);
    nn_tensor *fake_t = generator_forward(t->g_a2t, ctx, m->xa);
    nn_tensor *adv = nn_loss_lsgan(ctx, discriminator_forward(t->d_t, ctx, fake_t), 1.0f);
    nn_tensor *cyc_a = nn_loss_l1(ctx, generator_forward(t->g_t2a, ctx, fake_t), m->xa);
    int prev = nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *fake_a0 = generator_forward(t->g_t2a, ctx, m->xt);
    nn_ctx_set_grad_enabled(ctx, prev);
    nn_tensor *cyc_t = nn_loss_l1(ctx, generator_forward(t->g_a2t, ctx, fake_a0), m->xt);
    nn_tensor *cyc = sum2(ctx, cyc_a, cyc_t);
    nn_tensor *loss = wsum(ctx, adv, c->lambda_cyc, cyc);
    if (c->lambda_idt > 0) {
        L[TL_IDT_A2T] = nn_loss_l1(ctx, generator_forward(t->g_a2t, ctx, m->xt), m->xt);
        loss = wsum(ctx, loss, c->lambda_idt * c->lambda_cyc, L[TL_IDT_A2T]);
    }
    if (wseg > 0) {
        /* S_syn is fixed: batch statistics, its running statistics untouched */
        nn_tensor *sup = segmentor_loss(
            ctx, segmentor_forward(t->seg[0], ctx, fake_t, SEGMENTOR_BN_BATCH), m->ya);
        loss = wseg == 1.0f ? sum2(ctx, loss, sup) : wsum(ctx, loss, wseg, sup);
        L[TL_G_A2T_SEG] = sup;
    }
    CHECK(loss);
    L[TL_G_A2T] = loss;
    L[TL_G_A2T_ADV] = adv;
    L[TL_CYC] = cyc;
    L[TL_CYC_A] = cyc_a;
    L[TL_CYC_T] = cyc_t;
    *fake = fake_t;
    return update(t, t->g_a2t->params, t->opt_g_a2t, loss, err, errlen);
}

/* Steps 3 and 5: a discriminator by ½[(D(real) - 1)^2 + D(f)^2], f = fakes through the pool. */
static int step_disc(trainer *t, discriminator *d, nn_adam *opt, image_pool *pool, nn_tensor *real,
                     nn_tensor *fake, nn_tensor **L, int which, char *err, size_t errlen)
{
    const int B = t->c.batch, S = t->c.size;
    nn_ctx *ctx = t->ctx;
    CHECK(nn_tensor_read(fake, t->tmp) == 0);
    image_pool_query(pool, t->tmp, B, &t->rng);
    train_only(t, d->params, NULL);
    nn_tensor *fk = nn_tensor_from(ctx, B, 1, S, S, t->tmp);
    nn_tensor *lr = nn_loss_lsgan(ctx, discriminator_forward(d, ctx, real), 1.0f);
    nn_tensor *lf = nn_loss_lsgan(ctx, discriminator_forward(d, ctx, fk), 0.0f);
    nn_tensor *ld = nn_scale(ctx, sum2(ctx, lr, lf), 0.5f);
    CHECK(ld);
    L[which ? TL_D_A : TL_D_T] = ld;
    L[which ? TL_D_A_REAL : TL_D_T_REAL] = lr;
    L[which ? TL_D_A_FAKE : TL_D_T_FAKE] = lf;
    return update(t, d->params, opt, ld, err, errlen);
}

/* Step 4: G_t2a by L_adv^a + lambda_cyc (L_cyc^a + L_cyc^t) [+ identity], recomputed with the
 * updated G_a2t. *x_syn: G_a2t(x^a) with G_a2t final for this iteration; *fake: G_t2a(x^t). */
static int step_g_t2a(trainer *t, const mkd_batch *m, nn_tensor **L, nn_tensor **x_syn,
                      nn_tensor **fake, char *err, size_t errlen)
{
    const train_config *c = &t->c;
    nn_ctx *ctx = t->ctx;
    train_only(t, t->g_t2a->params, NULL);
    nn_tensor *fake_a = generator_forward(t->g_t2a, ctx, m->xt);
    nn_tensor *adv_a = nn_loss_lsgan(ctx, discriminator_forward(t->d_a, ctx, fake_a), 1.0f);
    nn_tensor *cyc_t2 = nn_loss_l1(ctx, generator_forward(t->g_a2t, ctx, fake_a), m->xt);
    int prev = nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *xs = generator_forward(t->g_a2t, ctx, m->xa);
    nn_ctx_set_grad_enabled(ctx, prev);
    nn_tensor *cyc_a2 = nn_loss_l1(ctx, generator_forward(t->g_t2a, ctx, xs), m->xa);
    nn_tensor *lg = wsum(ctx, adv_a, c->lambda_cyc, sum2(ctx, cyc_a2, cyc_t2));
    if (c->lambda_idt > 0) {
        L[TL_IDT_T2A] = nn_loss_l1(ctx, generator_forward(t->g_t2a, ctx, m->xa), m->xa);
        lg = wsum(ctx, lg, c->lambda_idt * c->lambda_cyc, L[TL_IDT_T2A]);
    }
    CHECK(lg && xs);
    L[TL_G_T2A] = lg;
    L[TL_G_T2A_ADV] = adv_a;
    *x_syn = xs;
    *fake = fake_a;
    return update(t, t->g_t2a->params, t->opt_g_t2a, lg, err, errlen);
}

/* Steps 2-5. Returns 1 when a test hook ended the iteration, 0, or -1. */
static int steps_gan(trainer *t, const mkd_batch *m, float wseg, nn_tensor **L, nn_tensor **x_syn,
                     char *err, size_t errlen)
{
    nn_tensor *fake_t, *fake_a;
    if (step_g_a2t(t, m, wseg, L, &fake_t, err, errlen))
        return -1;
    if (t->stop_after == 2)
        return 1;
    if (step_disc(t, t->d_t, t->opt_d_t, &t->pool_t, m->xt, fake_t, L, 0, err, errlen))
        return -1;
    if (t->stop_after == 3)
        return 1;
    if (step_g_t2a(t, m, L, x_syn, &fake_a, err, errlen))
        return -1;
    if (t->stop_after == 4)
        return 1;
    if (step_disc(t, t->d_a, t->opt_d_a, &t->pool_a, m->xa, fake_a, L, 1, err, errlen))
        return -1;
    return t->stop_after == 5;
}

/* Step 6: S_syn by L_sup^syn + lambda_kd2 L_kd^{r->s}, then S_real by L_sup^real +
 * lambda_kd1 L_kd^{s->r}. Distillation targets are detached. */
static int step_segmentors(trainer *t, const mkd_batch *m, nn_tensor *x_syn, nn_tensor **L,
                           char *err, size_t errlen)
{
    const train_config *c = &t->c;
    nn_ctx *ctx = t->ctx;
    segmentor *ss = t->seg[0], *sr = t->seg[1];
    train_only(t, ss->params, sr->params);
    const segmentor_bn as_mode = c->bn_target_stats ? SEGMENTOR_BN_BATCH : SEGMENTOR_BN_TRAIN;
    nn_tensor *z_syn_as = segmentor_forward(ss, ctx, x_syn, as_mode);
    nn_tensor *z_syn_t = segmentor_forward(ss, ctx, m->xt, SEGMENTOR_BN_TRAIN);
    nn_tensor *z_real_t = segmentor_forward(sr, ctx, m->xt, SEGMENTOR_BN_TRAIN);
    nn_tensor *z_real_as = segmentor_forward(sr, ctx, x_syn, as_mode);
    nn_tensor *sup_syn = segmentor_loss(ctx, z_syn_as, m->ya);
    nn_tensor *sup_real = segmentor_loss(ctx, z_real_t, m->yt);
    nn_tensor *kd_s2r = nn_loss_kd(ctx, nn_softmax(ctx, z_syn_as), nn_softmax(ctx, z_real_as));
    nn_tensor *kd_r2s = nn_loss_kd(ctx, nn_softmax(ctx, z_real_t), nn_softmax(ctx, z_syn_t));
    CHECK(sup_syn && sup_real && kd_s2r && kd_r2s);
    float l2 = c->method == TM_MKD_NO_KD_R2S ? 0.0f : c->lambda_kd2;
    float l1 = c->method == TM_MKD_NO_KD_S2R ? 0.0f : c->lambda_kd1;
    nn_tensor *seg_syn = l2 > 0 ? wsum(ctx, sup_syn, l2, kd_r2s) : sup_syn;
    nn_tensor *seg_real = l1 > 0 ? wsum(ctx, sup_real, l1, kd_s2r) : sup_real;
    CHECK(seg_syn && seg_real);
    L[TL_SUP_SYN] = sup_syn;
    L[TL_SUP_REAL] = sup_real;
    L[TL_KD_S2R] = kd_s2r;
    L[TL_KD_R2S] = kd_r2s;
    if (update(t, ss->params, t->opt_seg[0], seg_syn, err, errlen))
        return -1;
    if (t->stop_after == 6)
        return 0;
    return update(t, sr->params, t->opt_seg[1], seg_real, err, errlen);
}

/* One mkd iteration. The alignment module decides what S_syn and S_real see as the
 * assistant's images: G_a2t(x^a) after its update (cyclegan), the frozen G_a2t(x^a) (frozen,
 * after its GAN-only phase, which trains no segmentor), the paired images (oracle,
 * histmatch) or x^a itself (identity). */
static int step_mkd(trainer *t, char *err, size_t errlen)
{
    const train_config *c = &t->c;
    nn_ctx *ctx = t->ctx;
    nn_tensor *L[TL_COUNT] = {0};
    mkd_batch m;
    if (sample_gan_batch(t, &m, err, errlen))
        return -1;
    nn_tensor *x_syn = m.xa;
    if (trainer_uses_gan(c)) {
        int frozen = t->iam == TI_FROZEN;
        if (!frozen || t->iter < c->iam_pretrain) {
            float w = frozen ? 0.0f : seg_feedback_weight(c, t->iter);
            int r = steps_gan(t, &m, w, L, &x_syn, err, errlen);
            if (r < 0)
                return -1;
            if (r > 0 || frozen)
                return read_losses(t, L);
        } else {
            int prev = nn_ctx_set_grad_enabled(ctx, 0);
            x_syn = generator_forward(t->g_a2t, ctx, m.xa);
            nn_ctx_set_grad_enabled(ctx, prev);
            CHECK(x_syn);
        }
    }
    if (step_segmentors(t, &m, x_syn, L, err, errlen))
        return -1;
    return read_losses(t, L);
}

/* joint-dsbn: the target half of the batch through seg[0] (the target's BatchNorm), the
 * assistant half through seg_a (the same convolutions, the assistant's BatchNorm); the loss
 * is the mean of the two halves' losses; both registries step. */
static int step_dsbn(trainer *t, char *err, size_t errlen)
{
    const int B = t->c.batch, S = t->c.size;
    const size_t ss = (size_t)S * S;
    nn_ctx *ctx = t->ctx;
    train_only(t, t->seg[0]->params, t->seg_a->params);
    nn_tensor *xt = nn_tensor_from(ctx, B, 1, S, S, t->xt),
              *xa = nn_tensor_from(ctx, B, 1, S, S, t->xt + B * ss);
    nn_tensor *yt = nn_labels_from(ctx, B, S, S, t->yt),
              *ya = nn_labels_from(ctx, B, S, S, t->yt + B * ss);
    nn_tensor *lt =
        segmentor_loss(ctx, segmentor_forward(t->seg[0], ctx, xt, SEGMENTOR_BN_TRAIN), yt);
    nn_tensor *la =
        segmentor_loss(ctx, segmentor_forward(t->seg_a, ctx, xa, SEGMENTOR_BN_TRAIN), ya);
    nn_tensor *loss = nn_scale(ctx, sum2(ctx, lt, la), 0.5f);
    CHECK(loss);
    nn_params_zero_grad(t->seg[0]->params);
    nn_params_zero_grad(t->seg_a->params);
    if (nn_backward(ctx, loss, err, errlen) || nn_adam_step(t->opt_seg[0], err, errlen) ||
        nn_adam_step(t->opt_seg_a, err, errlen))
        return -1;
    t->prog.loss[TL_SEG] = nn_scalar(loss);
    return 0;
}

/* joint with iam frozen: the CycleGAN trains alone for iam_pretrain iterations (no segmentation
 * feedback, no segmentor step), then the assistant half of joint's batch is the frozen
 * G_a2t(x^a), a fixed translation of the assistant's images. Returns 1 when the iteration was a
 * GAN-only one (its losses read), 0 with t->xt / t->yt holding the 2B-slice batch, or -1. */
static int joint_frozen_batch(trainer *t, char *err, size_t errlen)
{
    const int B = t->c.batch, S = t->c.size;
    const size_t ss = (size_t)S * S;
    nn_ctx *ctx = t->ctx;
    nn_tensor *L[TL_COUNT] = {0};
    mkd_batch m;
    if (sample_gan_batch(t, &m, err, errlen))
        return -1;
    if (t->iter < t->c.iam_pretrain) {
        nn_tensor *x_syn;
        if (steps_gan(t, &m, 0.0f, L, &x_syn, err, errlen) < 0)
            return -1;
        return read_losses(t, L) ? -1 : 1;
    }
    int prev = nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *x_syn = generator_forward(t->g_a2t, ctx, m.xa);
    nn_ctx_set_grad_enabled(ctx, prev);
    CHECK(x_syn && nn_tensor_read(x_syn, t->xt + B * ss) == 0);
    memcpy(t->yt + B * ss, t->ya, (size_t)B * ss * sizeof(int32_t));
    return 0;
}

/* ---- one iteration of the single-segmentor methods --------------------------------------- */
static int step_single(trainer *t, char *err, size_t errlen)
{
    const train_config *c = &t->c;
    const int B = c->batch, S = c->size;
    const size_t ss = (size_t)S * S;
    nn_ctx *ctx = t->ctx;
    int n = B;
    int bad = 0;
    if (c->method == TM_BASELINE) {
        bad = sample_batch(t, t->tgt, B, t->xt, t->yt);
    } else if (trainer_uses_gan(c)) { /* joint@frozen */
        int r = joint_frozen_batch(t, err, errlen);
        if (r)
            return r < 0 ? -1 : 0;
        n = 2 * B;
    } else if (c->method == TM_JOINT || c->method == TM_JOINT_DSBN) {
        /* one batch of B target and B assistant slices */
        bad = sample_batch(t, t->tgt, B, t->xt, t->yt) ||
              sample_assistant(t, B, t->xt + B * ss, t->yt + B * ss);
        n = 2 * B;
    } else { /* finetune: assistant first, then target with a fresh optimiser */
        int pre = (int)lrintf(c->finetune_pretrain * (float)t->total);
        if (t->iter < pre) {
            bad = sample_assistant(t, B, t->xt, t->yt);
        } else {
            if (!t->finetune_switched) {
                trainer_params_reset_adam(t->be, t->seg[0]->params);
                t->finetune_switched = 1;
            }
            bad = sample_batch(t, t->tgt, B, t->xt, t->yt);
        }
    }
    if (bad) {
        mkd_seterr(err, errlen, "out of memory");
        return -1;
    }
    if (c->method == TM_JOINT_DSBN)
        return step_dsbn(t, err, errlen);
    train_only(t, t->seg[0]->params, NULL);
    nn_tensor *x = nn_tensor_from(ctx, n, 1, S, S, t->xt);
    nn_tensor *y = nn_labels_from(ctx, n, S, S, t->yt);
    nn_tensor *loss =
        segmentor_loss(ctx, segmentor_forward(t->seg[0], ctx, x, SEGMENTOR_BN_TRAIN), y);
    CHECK(loss);
    if (update(t, t->seg[0]->params, t->opt_seg[0], loss, err, errlen))
        return -1;
    t->prog.loss[TL_SEG] = nn_scalar(loss); /* after the update: one wait a step */
    return 0;
}

/* The iteration the segmentors are at: frozen's GAN-only phase does not count. */
static int seg_iter(const trainer *t)
{
    if (trainer_uses_gan(&t->c) && t->iam == TI_FROZEN)
        return t->iter > t->c.iam_pretrain ? t->iter - t->c.iam_pretrain : 0;
    return t->iter;
}

int trainer_step(trainer *t, char *err, size_t errlen)
{
    if (uses_pair(&t->c) && !t->pair) {
        mkd_seterr(err, errlen,
                   "iam %s needs the assistant's paired renderings in the target modality "
                   "(phantom data only: mkdseg phantom --paired-ct)",
                   train_iam_name(t->iam));
        return -1;
    }
    nn_ctx_reset(t->ctx);
    int ipe = t->c.iters_per_epoch > 0 ? t->c.iters_per_epoch : 1;
    int epoch = seg_iter(t) / ipe;
    float lr = nn_lr_step_decay(t->c.lr_seg, epoch, t->c.seg_decay_every, t->c.seg_decay);
    for (int i = 0; i < t->nseg; i++)
        nn_adam_set_lr(t->opt_seg[i], lr);
    if (t->opt_seg_a)
        nn_adam_set_lr(t->opt_seg_a, lr);
    for (int i = 0; i < TL_SCORE_DICE; i++)
        t->prog.loss[i] = NAN; /* scores stay the latest */
    const double flops0 = nn_ctx_flops(t->ctx);
    int rc =
        train_method_is_mkd(t->c.method) ? step_mkd(t, err, errlen) : step_single(t, err, errlen);
    if (rc)
        return -1;
    t->prog.gflop_per_iter = (nn_ctx_flops(t->ctx) - flops0) * 1e-9;
    t->iter++;
    t->prog.iter = t->iter;
    t->prog.epoch = epoch;
    t->prog.lr_seg = lr;
    if (t->sc && t->c.score_every > 0 && (t->iter % t->c.score_every == 0 || t->iter == t->total))
        return trainer_score_now(t, err, errlen);
    return 0;
}

/* ---- construction ------------------------------------------------------------------------ */

/* The four networks of the alignment module, their optimisers and pools. 0 or -1. */
static int new_gan(trainer *t, char *err, size_t errlen)
{
    const train_config *c = &t->c;
    const nn_backend *be = t->be;
    const size_t ss = (size_t)c->size * c->size;
    nn_adam_cfg gan_ac = {c->lr_gan, c->gan_beta1, c->beta2, 1e-8f, 0.0f};
    nn_adam_cfg d_ac = gan_ac;
    if (c->lr_disc > 0)
        d_ac.lr = c->lr_disc;
    nn_rng init;
    t->g_a2t = generator_new(be, c->ngf, c->ngen_blocks, 1, 1, err, errlen);
    t->g_t2a = t->g_a2t ? generator_new(be, c->ngf, c->ngen_blocks, 1, 1, err, errlen) : NULL;
    t->d_t = t->g_t2a ? discriminator_new_layers(be, c->ndf, 1, c->disc_layers, err, errlen) : NULL;
    t->d_a = t->d_t ? discriminator_new_layers(be, c->ndf, 1, c->disc_layers, err, errlen) : NULL;
    if (!t->d_a)
        return -1;
    /* each network's initial weights from its own stream, so adding one doesn't shift others */
    nn_rng_seed(&init, c->seed * 1000003ULL + 21);
    int bad = generator_init(t->g_a2t, &init);
    nn_rng_seed(&init, c->seed * 1000003ULL + 22);
    bad |= generator_init(t->g_t2a, &init);
    nn_rng_seed(&init, c->seed * 1000003ULL + 23);
    bad |= discriminator_init(t->d_t, &init);
    nn_rng_seed(&init, c->seed * 1000003ULL + 24);
    bad |= discriminator_init(t->d_a, &init);
    if (bad) {
        mkd_seterr(err, errlen, "network initialisation failed");
        return -1;
    }
    if (!(t->opt_g_a2t = nn_adam_new(t->g_a2t->params, gan_ac, err, errlen)) ||
        !(t->opt_g_t2a = nn_adam_new(t->g_t2a->params, gan_ac, err, errlen)) ||
        !(t->opt_d_t = nn_adam_new(t->d_t->params, d_ac, err, errlen)) ||
        !(t->opt_d_a = nn_adam_new(t->d_a->params, d_ac, err, errlen)))
        return -1;
    if (image_pool_init(&t->pool_t, c->pool_size, ss) ||
        image_pool_init(&t->pool_a, c->pool_size, ss)) {
        mkd_seterr(err, errlen, "out of memory for the image pools");
        return -1;
    }
    return 0;
}

/* The segmentors (and joint-dsbn's assistant BatchNorm) with their optimisers. 0 or -1. */
static int new_segmentors(trainer *t, char *err, size_t errlen)
{
    const train_config *c = &t->c;
    nn_adam_cfg seg_ac = {c->lr_seg, c->seg_beta1, c->beta2, 1e-8f, 0.0f};
    nn_rng init;
    t->nseg = train_method_is_mkd(c->method) ? 2 : 1;
    for (int i = 0; i < t->nseg; i++) {
        t->seg[i] = segmentor_new(t->be, c->seg_width, c->classes, 1, err, errlen);
        if (!t->seg[i])
            return -1;
        nn_rng_seed(&init, c->seed * 1000003ULL + 11 + (uint64_t)i);
        if (segmentor_init(t->seg[i], &init)) {
            mkd_seterr(err, errlen, "segmentor init failed");
            return -1;
        }
        t->opt_seg[i] = nn_adam_new(t->seg[i]->params, seg_ac, err, errlen);
        if (!t->opt_seg[i])
            return -1;
    }
    if (c->method != TM_JOINT_DSBN)
        return 0;
    /* initialised like seg[0] (BatchNorm gamma 1, beta 0, statistics 0 / 1), then its
     * convolutions replaced by seg[0]'s */
    t->seg_a = segmentor_new(t->be, c->seg_width, c->classes, 1, err, errlen);
    if (!t->seg_a)
        return -1;
    nn_rng_seed(&init, c->seed * 1000003ULL + 11);
    if (segmentor_init(t->seg_a, &init) || segmentor_share_convs(t->seg_a, t->seg[0])) {
        mkd_seterr(err, errlen, "segmentor init failed");
        return -1;
    }
    t->opt_seg_a = nn_adam_new(t->seg_a->params, seg_ac, err, errlen);
    return t->opt_seg_a ? 0 : -1;
}

trainer *trainer_new(const train_config *cfg, const nn_backend *be, const train_slices *target,
                     const train_slices *assistant, char *err, size_t errlen)
{
    if (train_config_validate(cfg, err, errlen))
        return NULL;
    const train_config *c = cfg;
    if (!target || target->n < 1) {
        mkd_seterr(err, errlen, "training needs at least one labelled target slice");
        return NULL;
    }
    if (c->method != TM_BASELINE && (!assistant || assistant->n < 1)) {
        mkd_seterr(err, errlen, "method %s needs labelled assistant-modality slices",
                   train_method_name(c->method));
        return NULL;
    }
    if (target->size != c->size || (assistant && assistant->n && assistant->size != c->size)) {
        mkd_seterr(err, errlen, "slices are %d pixels but the config's size is %d", target->size,
                   c->size);
        return NULL;
    }
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        mkd_seterr(err, errlen, "out of memory");
        return NULL;
    }
    t->c = *c;
    t->iam = trainer_effective_iam(c);
    t->be = be;
    t->tgt = target;
    t->ast = assistant;
    t->total = train_config_total_iters(c);
    if (trainer_uses_gan(c) && t->iam == TI_FROZEN)
        t->total += c->iam_pretrain;
    t->prog.total = t->total;
    nn_rng_seed(&t->rng, c->seed);
    const size_t ss = (size_t)c->size * c->size;
    if (!(t->ctx = nn_ctx_new(be, 0, err, errlen)) || new_segmentors(t, err, errlen))
        goto fail;
    if (trainer_uses_gan(c) && new_gan(t, err, errlen))
        goto fail;
    t->xt = malloc(2 * (size_t)c->batch * ss * sizeof(float));
    t->xa = malloc((size_t)c->batch * ss * sizeof(float));
    t->xp = malloc((size_t)c->batch * ss * sizeof(float));
    t->tmp = malloc((size_t)c->batch * ss * sizeof(float));
    t->yt = malloc(2 * (size_t)c->batch * ss * sizeof(int32_t));
    t->ya = malloc((size_t)c->batch * ss * sizeof(int32_t));
    t->yp = malloc(ss * sizeof(int32_t));
    t->u8 = malloc(ss);
    if (!t->xt || !t->xa || !t->xp || !t->tmp || !t->yt || !t->ya || !t->yp || !t->u8) {
        mkd_seterr(err, errlen, "out of memory");
        goto fail;
    }
    if (t->iam == TI_HISTMATCH && c->method != TM_BASELINE) {
        if (trainer_histmatch_init(t, err, errlen))
            goto fail;
        t->pair = &t->hm;
    }
    for (int i = 0; i < TL_COUNT; i++)
        t->prog.loss[i] = NAN;
    return t;
fail:
    trainer_free(t);
    return NULL;
}

void trainer_free(trainer *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++) {
        nn_adam_free(t->opt_seg[i]);
        segmentor_free(t->seg[i]);
    }
    nn_adam_free(t->opt_seg_a);
    segmentor_free(t->seg_a);
    nn_adam_free(t->opt_g_a2t);
    nn_adam_free(t->opt_g_t2a);
    nn_adam_free(t->opt_d_t);
    nn_adam_free(t->opt_d_a);
    generator_free(t->g_a2t);
    generator_free(t->g_t2a);
    discriminator_free(t->d_t);
    discriminator_free(t->d_a);
    image_pool_free(&t->pool_t);
    image_pool_free(&t->pool_a);
    nn_ctx_free(t->ctx);
    free(t->xt);
    free(t->xa);
    free(t->xp);
    free(t->tmp);
    free(t->yt);
    free(t->ya);
    free(t->yp);
    free(t->u8);
    free(t->hm.img);
    free(t->hm.lab);
    free(t->scores);
    free(t);
}

const train_progress *trainer_progress(const trainer *t) { return &t->prog; }
int trainer_iter(const trainer *t) { return t->iter; }
const train_config *trainer_config(const trainer *t) { return &t->c; }
int trainer_members(const trainer *t) { return t->nseg; }
segmentor *trainer_segmentor(trainer *t, int m) { return m >= 0 && m < t->nseg ? t->seg[m] : NULL; }
segmentor *trainer_segmentor_assistant(trainer *t) { return t->seg_a; }
generator *trainer_g_a2t(trainer *t) { return t->g_a2t; }
generator *trainer_g_t2a(trainer *t) { return t->g_t2a; }
discriminator *trainer_d_t(trainer *t) { return t->d_t; }
discriminator *trainer_d_a(trainer *t) { return t->d_a; }

/* ---- the loop ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int trainer_run(trainer *t, train_progress_fn cb, void *user, const char *ckpt_path, char *err,
                size_t errlen)
{
    double t0 = now_s();
    int start = t->iter;
    int every = t->c.checkpoint_every > 0 ? t->c.checkpoint_every : t->c.iters_per_epoch;
    while (t->iter < t->total) {
        if (trainer_step(t, err, errlen))
            return -1;
        double el = now_s() - t0;
        t->prog.iters_per_s = (double)(t->iter - start) / (el > 1e-9 ? el : 1e-9);
        t->prog.eta_s =
            (double)(t->total - t->iter) / (t->prog.iters_per_s > 0 ? t->prog.iters_per_s : 1);
        if (ckpt_path && every > 0 && (t->iter % every == 0 || t->iter == t->total))
            if (trainer_save_checkpoint(t, ckpt_path, err, errlen))
                return -1;
        if (cb && cb(&t->prog, user)) {
            if (ckpt_path && trainer_save_checkpoint(t, ckpt_path, err, errlen))
                return -1;
            return 1;
        }
    }
    return 0;
}

/* ---- for checkpoint.c -------------------------------------------------------------------- */
const nn_backend *trainer_backend(const trainer *t) { return t->be; }
void trainer_pools(trainer *t, image_pool **pool_t, image_pool **pool_a)
{
    *pool_t = trainer_uses_gan(&t->c) ? &t->pool_t : NULL;
    *pool_a = trainer_uses_gan(&t->c) ? &t->pool_a : NULL;
}
const nn_rng *trainer_rng(const trainer *t) { return &t->rng; }
int trainer_finetune_switched(const trainer *t) { return t->finetune_switched; }
void trainer_set_stop_after(trainer *t, int step) { t->stop_after = step; }
void trainer_restore_state(trainer *t, const nn_rng *r, int iter, int finetune_switched)
{
    t->rng = *r;
    t->iter = iter;
    t->prog.iter = iter;
    t->finetune_switched = finetune_switched;
}

int trainer_param_set_adam(const nn_backend *be, nn_param *q, const float *m, const float *v,
                           int64_t step, size_t n)
{
    size_t bytes = n * sizeof(float);
    if (!q->adam_m) {
        q->adam_m = be->mem_alloc(bytes);
        q->adam_v = be->mem_alloc(bytes);
        if (!q->adam_m || !q->adam_v)
            return -1;
    }
    be->mem_upload(q->adam_m, m, bytes);
    be->mem_upload(q->adam_v, v, bytes);
    q->adam_step = step;
    q->ever_grad = 1;
    return 0;
}

void trainer_params_reset_adam(const nn_backend *be, nn_params *p)
{
    for (int i = 0; i < nn_params_count(p); i++) {
        nn_param *q = nn_params_at(p, i);
        if (q->adam_m) {
            be->mem_zero(q->adam_m, nn_numel(&q->t) * sizeof(float));
            be->mem_zero(q->adam_v, nn_numel(&q->t) * sizeof(float));
        }
        q->adam_step = 0;
    }
}
