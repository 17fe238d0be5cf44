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
    "g_a2t", "d_t", "g_t2a", "d_a", "cyc", "sup_syn", "sup_real", "kd_s2r", "kd_r2s", "seg",
};
_Static_assert(sizeof loss_names / sizeof loss_names[0] == TL_COUNT, "loss name table");

const char *train_loss_name(train_loss l) { return (unsigned)l < TL_COUNT ? loss_names[l] : "?"; }

struct trainer {
    train_config c;
    const nn_backend *be;
    const train_slices *tgt, *ast;
    int nseg;
    segmentor *seg[2];
    generator *g_a2t, *g_t2a;
    discriminator *d_t, *d_a;
    nn_adam *opt_seg[2], *opt_g_a2t, *opt_g_t2a, *opt_d_t, *opt_d_a;
    image_pool pool_t, pool_a;
    nn_rng rng;
    nn_ctx *ctx;
    int iter, total;
    int finetune_switched;
    train_progress prog;
    float *xt, *xa, *tmp;          /* host batches [2B, S, S] (joint uses 2B) */
    int32_t *yt, *ya;
    uint8_t *u8;                   /* one slice of labels, for prep_augment */
    int stop_after;                /* tests: end an mkd iteration after this step (2..6; 0 = all) */
};

static int uses_gan(train_method m) { return train_method_is_mkd(m) && m != TM_MKD_NO_IAM; }

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
    for (size_t i = 0; i < ss; i++) u8[i] = (uint8_t)sl[i];
    prep_aug a = {c->aug_flip, c->aug_flip, c->aug_rot_deg, 1.0 - c->aug_scale, 1.0 + c->aug_scale};
    if (prep_augment(&a, r, img, u8, s->size, s->size, -1.0f)) return -1;
    for (size_t i = 0; i < ss; i++) lab[i] = u8[i];
    return 0;
}

static int sample_batch(trainer *t, const train_slices *s, int n, float *img, int32_t *lab)
{
    const size_t ss = (size_t)s->size * s->size;
    for (int b = 0; b < n; b++) {
        int idx = (int)(nn_rng_u64(&t->rng) % (uint64_t)s->n);
        if (sample_slice(&t->c, s, idx, &t->rng, img + b * ss, lab + b * ss, t->u8)) return -1;
    }
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* Freeze every network but `keep` and `keep2` (nn_params registries or NULL). Call before
 * the forward pass: the tape records whether a parameter requires a gradient when it is used. */
static void train_only(trainer *t, nn_params *keep, nn_params *keep2)
{
    nn_params *all[6] = {
        t->seg[0] ? t->seg[0]->params : NULL, t->seg[1] ? t->seg[1]->params : NULL,
        t->g_a2t ? t->g_a2t->params : NULL,   t->g_t2a ? t->g_t2a->params : NULL,
        t->d_t ? t->d_t->params : NULL,       t->d_a ? t->d_a->params : NULL,
    };
    for (int i = 0; i < 6; i++)
        if (all[i]) nn_params_set_frozen(all[i], all[i] != keep && all[i] != keep2);
}

/* Zero the gradients of `net`, backpropagate `loss`, take one Adam step. */
static int update(trainer *t, nn_params *net, nn_adam *opt, nn_tensor *loss, char *err, size_t errlen)
{
    if (!loss) { mkd_seterr(err, errlen, "%s", nn_ctx_error(t->ctx) ? nn_ctx_error(t->ctx) : "forward failed"); return -1; }
    nn_params_zero_grad(net);
    if (nn_backward(t->ctx, loss, err, errlen)) return -1;
    return nn_adam_step(opt, err, errlen);
}

#define CHECK(x)                                                                          \
    do {                                                                                  \
        if (!(x)) {                                                                       \
            mkd_seterr(err, errlen, "%s", nn_ctx_error(t->ctx) ? nn_ctx_error(t->ctx) : #x);  \
            return -1;                                                                    \
        }                                                                                 \
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

static int step_mkd(trainer *t, char *err, size_t errlen)
{
    const train_config *c = &t->c;
    const int B = c->batch, S = c->size;
    nn_ctx *ctx = t->ctx;
    nn_tensor *L[TL_COUNT] = {0};
    const int iam = uses_gan(c->method);

    /* 1. a batch of each modality */
    if (sample_batch(t, t->tgt, B, t->xt, t->yt) || sample_batch(t, t->ast, B, t->xa, t->ya)) {
        mkd_seterr(err, errlen, "out of memory");
        return -1;
    }
    nn_tensor *xt = nn_tensor_from(ctx, B, 1, S, S, t->xt), *xa = nn_tensor_from(ctx, B, 1, S, S, t->xa);
    nn_tensor *yt = nn_labels_from(ctx, B, S, S, t->yt), *ya = nn_labels_from(ctx, B, S, S, t->ya);
    CHECK(xt && xa && yt && ya);
    nn_tensor *x_syn = xa;   /* what S_syn and S_real see as the assistant's images */

    if (iam) {
        /* 2. G_a2t by L_gan^{a->t} + L_sup^syn; S_syn, G_t2a, D_t fixed, gradients pass through */
        train_only(t, t->g_a2t->params, NULL);
        nn_tensor *fake_t = generator_forward(t->g_a2t, ctx, xa);
        nn_tensor *adv = nn_loss_lsgan(ctx, discriminator_forward(t->d_t, ctx, fake_t), 1.0f);
        nn_tensor *cyc_a = nn_loss_l1(ctx, generator_forward(t->g_t2a, ctx, fake_t), xa);
        int prev = nn_ctx_set_grad_enabled(ctx, 0);
        nn_tensor *fake_a0 = generator_forward(t->g_t2a, ctx, xt);
        nn_ctx_set_grad_enabled(ctx, prev);
        nn_tensor *cyc_t = nn_loss_l1(ctx, generator_forward(t->g_a2t, ctx, fake_a0), xt);
        /* S_syn is fixed: batch statistics, its running statistics untouched */
        nn_tensor *sup = segmentor_loss(ctx, segmentor_forward(t->seg[0], ctx, fake_t,
                                                               SEGMENTOR_BN_BATCH), ya);
        nn_tensor *cyc = sum2(ctx, cyc_a, cyc_t);
        nn_tensor *loss = sum2(ctx, wsum(ctx, adv, c->lambda_cyc, cyc), sup);
        CHECK(loss);
        L[TL_G_A2T] = loss;
        L[TL_CYC] = cyc;
        if (update(t, t->g_a2t->params, t->opt_g_a2t, loss, err, errlen)) return -1;
        if (t->stop_after == 2) return read_losses(t, L);
        CHECK(nn_tensor_read(fake_t, t->tmp) == 0);

        /* 3. D_t on real target images and (pooled) synthetic ones */
        image_pool_query(&t->pool_t, t->tmp, B, &t->rng);
        train_only(t, t->d_t->params, NULL);
        nn_tensor *fk = nn_tensor_from(ctx, B, 1, S, S, t->tmp);
        nn_tensor *ld = nn_scale(ctx, sum2(ctx, nn_loss_lsgan(ctx, discriminator_forward(t->d_t, ctx, xt), 1.0f),
                                           nn_loss_lsgan(ctx, discriminator_forward(t->d_t, ctx, fk), 0.0f)), 0.5f);
        CHECK(ld);
        L[TL_D_T] = ld;
        if (update(t, t->d_t->params, t->opt_d_t, ld, err, errlen)) return -1;
        if (t->stop_after == 3) return read_losses(t, L);

        /* 4. G_t2a by L_gan^{t->a} (with the updated G_a2t) */
        train_only(t, t->g_t2a->params, NULL);
        nn_tensor *fake_a = generator_forward(t->g_t2a, ctx, xt);
        nn_tensor *adv_a = nn_loss_lsgan(ctx, discriminator_forward(t->d_a, ctx, fake_a), 1.0f);
        nn_tensor *cyc_t2 = nn_loss_l1(ctx, generator_forward(t->g_a2t, ctx, fake_a), xt);
        prev = nn_ctx_set_grad_enabled(ctx, 0);
        x_syn = generator_forward(t->g_a2t, ctx, xa);   /* G_a2t is final for this iteration */
        nn_ctx_set_grad_enabled(ctx, prev);
        nn_tensor *cyc_a2 = nn_loss_l1(ctx, generator_forward(t->g_t2a, ctx, x_syn), xa);
        nn_tensor *lg = wsum(ctx, adv_a, c->lambda_cyc, sum2(ctx, cyc_a2, cyc_t2));
        CHECK(lg && x_syn);
        L[TL_G_T2A] = lg;
        if (update(t, t->g_t2a->params, t->opt_g_t2a, lg, err, errlen)) return -1;
        if (t->stop_after == 4) return read_losses(t, L);
        CHECK(nn_tensor_read(fake_a, t->tmp) == 0);

        /* 5. D_a on real assistant images and (pooled) synthetic ones */
        image_pool_query(&t->pool_a, t->tmp, B, &t->rng);
        train_only(t, t->d_a->params, NULL);
        nn_tensor *fa = nn_tensor_from(ctx, B, 1, S, S, t->tmp);
        nn_tensor *lda = nn_scale(ctx, sum2(ctx, nn_loss_lsgan(ctx, discriminator_forward(t->d_a, ctx, xa), 1.0f),
                                            nn_loss_lsgan(ctx, discriminator_forward(t->d_a, ctx, fa), 0.0f)), 0.5f);
        CHECK(lda);
        L[TL_D_A] = lda;
        if (update(t, t->d_a->params, t->opt_d_a, lda, err, errlen)) return -1;
        if (t->stop_after == 5) return read_losses(t, L);
    }

    /* 6. the segmentors: S_syn by L_sup^syn + lambda_kd2 L_kd^{r->s}, then S_real by
     *    L_sup^real + lambda_kd1 L_kd^{s->r}. Distillation targets are detached. */
    segmentor *ss = t->seg[0], *sr = t->seg[1];
    train_only(t, ss->params, sr->params);
    const segmentor_bn as_mode = c->bn_target_stats ? SEGMENTOR_BN_BATCH : SEGMENTOR_BN_TRAIN;
    nn_tensor *z_syn_as = segmentor_forward(ss, ctx, x_syn, as_mode);
    nn_tensor *z_syn_t = segmentor_forward(ss, ctx, xt, SEGMENTOR_BN_TRAIN);
    nn_tensor *z_real_t = segmentor_forward(sr, ctx, xt, SEGMENTOR_BN_TRAIN);
    nn_tensor *z_real_as = segmentor_forward(sr, ctx, x_syn, as_mode);
    nn_tensor *sup_syn = segmentor_loss(ctx, z_syn_as, ya);
    nn_tensor *sup_real = segmentor_loss(ctx, z_real_t, yt);
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
    if (update(t, ss->params, t->opt_seg[0], seg_syn, err, errlen)) return -1;
    if (t->stop_after == 6) return read_losses(t, L);
    if (update(t, sr->params, t->opt_seg[1], seg_real, err, errlen)) return -1;
    return read_losses(t, L);
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
    } else if (c->method == TM_JOINT) {
        /* one batch of B target and B assistant slices */
        bad = sample_batch(t, t->tgt, B, t->xt, t->yt) || sample_batch(t, t->ast, B, t->xt + B * ss, t->yt + B * ss);
        n = 2 * B;
    } else { /* finetune: assistant first, then target with a fresh optimiser */
        int pre = (int)lrintf(c->finetune_pretrain * (float)t->total);
        if (t->iter < pre) {
            bad = sample_batch(t, t->ast, B, t->xt, t->yt);
        } else {
            if (!t->finetune_switched) {
                trainer_params_reset_adam(t->be, t->seg[0]->params);
                t->finetune_switched = 1;
            }
            bad = sample_batch(t, t->tgt, B, t->xt, t->yt);
        }
    }
    if (bad) { mkd_seterr(err, errlen, "out of memory"); return -1; }
    train_only(t, t->seg[0]->params, NULL);
    nn_tensor *x = nn_tensor_from(ctx, n, 1, S, S, t->xt);
    nn_tensor *y = nn_labels_from(ctx, n, S, S, t->yt);
    nn_tensor *loss = segmentor_loss(ctx, segmentor_forward(t->seg[0], ctx, x, SEGMENTOR_BN_TRAIN), y);
    CHECK(loss);
    if (update(t, t->seg[0]->params, t->opt_seg[0], loss, err, errlen)) return -1;
    t->prog.loss[TL_SEG] = nn_scalar(loss);     /* after the update: one wait a step */
    return 0;
}

int trainer_step(trainer *t, char *err, size_t errlen)
{
    nn_ctx_reset(t->ctx);
    int ipe = t->c.iters_per_epoch > 0 ? t->c.iters_per_epoch : 1;
    int epoch = t->iter / ipe;
    float lr = nn_lr_step_decay(t->c.lr_seg, epoch, t->c.seg_decay_every, t->c.seg_decay);
    for (int i = 0; i < t->nseg; i++) nn_adam_set_lr(t->opt_seg[i], lr);
    for (int i = 0; i < TL_COUNT; i++) t->prog.loss[i] = NAN;
    int rc = train_method_is_mkd(t->c.method) ? step_mkd(t, err, errlen) : step_single(t, err, errlen);
    if (rc) return -1;
    t->iter++;
    t->prog.iter = t->iter;
    t->prog.epoch = epoch;
    t->prog.lr_seg = lr;
    return 0;
}

/* ---- construction ------------------------------------------------------------------------ */

trainer *trainer_new(const train_config *cfg, const nn_backend *be, const train_slices *target,
                     const train_slices *assistant, char *err, size_t errlen)
{
    if (train_config_validate(cfg, err, errlen)) return NULL;
    const train_config *c = cfg;
    if (!target || target->n < 1) { mkd_seterr(err, errlen, "training needs at least one labelled target slice"); return NULL; }
    if (c->method != TM_BASELINE && (!assistant || assistant->n < 1)) {
        mkd_seterr(err, errlen, "method %s needs labelled assistant-modality slices", train_method_name(c->method));
        return NULL;
    }
    if (target->size != c->size || (assistant && assistant->n && assistant->size != c->size)) {
        mkd_seterr(err, errlen, "slices are %d pixels but the config's size is %d", target->size, c->size);
        return NULL;
    }
    trainer *t = calloc(1, sizeof *t);
    if (!t) { mkd_seterr(err, errlen, "out of memory"); return NULL; }
    t->c = *c;
    t->be = be;
    t->tgt = target;
    t->ast = assistant;
    t->total = train_config_total_iters(c);
    t->prog.total = t->total;
    nn_rng_seed(&t->rng, c->seed);
    /* each network's initial weights from its own stream, so adding one doesn't shift others */
    nn_rng init;
    const size_t ss = (size_t)c->size * c->size;

    t->ctx = nn_ctx_new(be, 0, err, errlen);
    if (!t->ctx) goto fail;
    t->nseg = train_method_is_mkd(c->method) ? 2 : 1;
    nn_adam_cfg seg_ac = {c->lr_seg, c->seg_beta1, c->beta2, 1e-8f, 0.0f};
    nn_adam_cfg gan_ac = {c->lr_gan, c->gan_beta1, c->beta2, 1e-8f, 0.0f};
    for (int i = 0; i < t->nseg; i++) {
        t->seg[i] = segmentor_new(be, c->seg_width, c->classes, 1, err, errlen);
        if (!t->seg[i]) goto fail;
        nn_rng_seed(&init, c->seed * 1000003ULL + 11 + (uint64_t)i);
        if (segmentor_init(t->seg[i], &init)) { mkd_seterr(err, errlen, "segmentor init failed"); goto fail; }
        t->opt_seg[i] = nn_adam_new(t->seg[i]->params, seg_ac, err, errlen);
        if (!t->opt_seg[i]) goto fail;
    }
    if (uses_gan(c->method)) {
        t->g_a2t = generator_new(be, c->ngf, c->ngen_blocks, 1, 1, err, errlen);
        t->g_t2a = t->g_a2t ? generator_new(be, c->ngf, c->ngen_blocks, 1, 1, err, errlen) : NULL;
        t->d_t = t->g_t2a ? discriminator_new(be, c->ndf, 1, err, errlen) : NULL;
        t->d_a = t->d_t ? discriminator_new(be, c->ndf, 1, err, errlen) : NULL;
        if (!t->d_a) goto fail;
        nn_rng_seed(&init, c->seed * 1000003ULL + 21);
        if (generator_init(t->g_a2t, &init)) goto initfail;
        nn_rng_seed(&init, c->seed * 1000003ULL + 22);
        if (generator_init(t->g_t2a, &init)) goto initfail;
        nn_rng_seed(&init, c->seed * 1000003ULL + 23);
        if (discriminator_init(t->d_t, &init)) goto initfail;
        nn_rng_seed(&init, c->seed * 1000003ULL + 24);
        if (discriminator_init(t->d_a, &init)) goto initfail;
        if (!(t->opt_g_a2t = nn_adam_new(t->g_a2t->params, gan_ac, err, errlen))) goto fail;
        if (!(t->opt_g_t2a = nn_adam_new(t->g_t2a->params, gan_ac, err, errlen))) goto fail;
        if (!(t->opt_d_t = nn_adam_new(t->d_t->params, gan_ac, err, errlen))) goto fail;
        if (!(t->opt_d_a = nn_adam_new(t->d_a->params, gan_ac, err, errlen))) goto fail;
        if (image_pool_init(&t->pool_t, c->pool_size, ss) || image_pool_init(&t->pool_a, c->pool_size, ss)) {
            mkd_seterr(err, errlen, "out of memory for the image pools");
            goto fail;
        }
    }
    t->xt = malloc(2 * (size_t)c->batch * ss * sizeof(float));
    t->xa = malloc((size_t)c->batch * ss * sizeof(float));
    t->tmp = malloc((size_t)c->batch * ss * sizeof(float));
    t->yt = malloc(2 * (size_t)c->batch * ss * sizeof(int32_t));
    t->ya = malloc((size_t)c->batch * ss * sizeof(int32_t));
    t->u8 = malloc(ss);
    if (!t->xt || !t->xa || !t->tmp || !t->yt || !t->ya || !t->u8) { mkd_seterr(err, errlen, "out of memory"); goto fail; }
    for (int i = 0; i < TL_COUNT; i++) t->prog.loss[i] = NAN;
    return t;
initfail:
    mkd_seterr(err, errlen, "network initialisation failed");
fail:
    trainer_free(t);
    return NULL;
}

void trainer_free(trainer *t)
{
    if (!t) return;
    for (int i = 0; i < 2; i++) {
        nn_adam_free(t->opt_seg[i]);
        segmentor_free(t->seg[i]);
    }
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
    free(t->xt); free(t->xa); free(t->tmp); free(t->yt); free(t->ya); free(t->u8);
    free(t);
}

const train_progress *trainer_progress(const trainer *t) { return &t->prog; }
int trainer_iter(const trainer *t) { return t->iter; }
const train_config *trainer_config(const trainer *t) { return &t->c; }
int trainer_members(const trainer *t) { return t->nseg; }
segmentor *trainer_segmentor(trainer *t, int m) { return m >= 0 && m < t->nseg ? t->seg[m] : NULL; }
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

int trainer_run(trainer *t, train_progress_fn cb, void *user, const char *ckpt_path, char *err, size_t errlen)
{
    double t0 = now_s();
    int start = t->iter;
    int every = t->c.checkpoint_every > 0 ? t->c.checkpoint_every : t->c.iters_per_epoch;
    while (t->iter < t->total) {
        if (trainer_step(t, err, errlen)) return -1;
        double el = now_s() - t0;
        t->prog.iters_per_s = (double)(t->iter - start) / (el > 1e-9 ? el : 1e-9);
        t->prog.eta_s = (double)(t->total - t->iter) / (t->prog.iters_per_s > 0 ? t->prog.iters_per_s : 1);
        if (ckpt_path && every > 0 && (t->iter % every == 0 || t->iter == t->total))
            if (trainer_save_checkpoint(t, ckpt_path, err, errlen)) return -1;
        if (cb && cb(&t->prog, user)) {
            if (ckpt_path && trainer_save_checkpoint(t, ckpt_path, err, errlen)) return -1;
            return 1;
        }
    }
    return 0;
}

/* ---- for checkpoint.c -------------------------------------------------------------------- */
const nn_backend *trainer_backend(const trainer *t) { return t->be; }
void trainer_pools(trainer *t, image_pool **pool_t, image_pool **pool_a)
{
    *pool_t = uses_gan(t->c.method) ? &t->pool_t : NULL;
    *pool_a = uses_gan(t->c.method) ? &t->pool_a : NULL;
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

int trainer_param_set_adam(const nn_backend *be, nn_param *q, const float *m, const float *v, int64_t step, size_t n)
{
    size_t bytes = n * sizeof(float);
    if (!q->adam_m) {
        q->adam_m = be->mem_alloc(bytes);
        q->adam_v = be->mem_alloc(bytes);
        if (!q->adam_m || !q->adam_v) return -1;
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
