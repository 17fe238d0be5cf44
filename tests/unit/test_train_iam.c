/* test_train_iam.c: the alignment module's settings and what the trainer reports about it —
 * every loss term apart, the seg-feedback warm-up, the oracle / identity / histmatch / frozen
 * alignment modules, joint-dsbn, the discriminator's depth and the translation scores. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../engine/train/trainer_internal.h"
#include "safetensors.h"
#include "train.h"
#include "../lib/ttrain.h"

#define S TTRAIN_S

/* the same slices (labels) with other images: the assistant's anatomy in another contrast */
static train_slices repaint(const train_slices *a, float contrast, int seed)
{
    train_slices s = ttrain_slices(a->n, seed, contrast);
    memcpy(s.lab, a->lab, sizeof(int32_t) * a->n * S * S);
    nn_rng r;
    nn_rng_seed(&r, (uint64_t)seed);
    for (size_t i = 0; i < (size_t)a->n * S * S; i++) {
        int l = a->lab[i];
        s.img[i] = contrast * (l == 1 ? 0.8f : l == 2 ? 0.2f : -0.6f) + 0.05f * nn_rng_normal(&r);
    }
    return s;
}

static train_config tiny(train_method m)
{
    train_config c;
    train_config_default(&c);
    c.method = m;
    c.size = S;
    c.batch = 2;
    c.seg_width = 2;
    c.ngf = 2;
    c.ngen_blocks = 1;
    c.ndf = 2;
    c.classes = 3;
    c.iters_per_epoch = 4;
    c.iters = 8;
    c.pool_size = 3;
    c.seed = 7;
    c.threads = 1;
    return c;
}

static trainer *make(const train_config *c, const train_slices *tg, const train_slices *as)
{
    char err[256];
    nn_set_threads(1);
    trainer *t = trainer_new(c, nn_backend_cpu(), tg, as, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    return t;
}

static void step(trainer *t)
{
    char err[256];
    cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
}

static float loss(trainer *t, train_loss l) { return trainer_progress(t)->loss[l]; }

static void near(float a, float b, const char *what)
{
    cr_expect(fabsf(a - b) <= 1e-4f * (1 + fabsf(b)), "%s: %.7g vs %.7g", what, a, b);
}

Test(train_iam, every_gan_term_is_reported_and_they_add_up)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f);
    train_config c = tiny(TM_MKD);
    c.lambda_idt = 0.5f;
    trainer *t = make(&c, &tg, &as);
    step(t);
    const train_loss all[] = {TL_G_A2T,     TL_D_T,      TL_G_T2A,    TL_D_A,      TL_CYC,
                              TL_SUP_SYN,   TL_SUP_REAL, TL_KD_S2R,   TL_KD_R2S,   TL_G_A2T_ADV,
                              TL_G_T2A_ADV, TL_CYC_A,    TL_CYC_T,    TL_IDT_A2T,  TL_IDT_T2A,
                              TL_G_A2T_SEG, TL_D_T_REAL, TL_D_T_FAKE, TL_D_A_REAL, TL_D_A_FAKE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cr_expect(isfinite(loss(t, all[i])), "%s is %f", train_loss_name(all[i]), loss(t, all[i]));
    cr_expect(isnan(loss(t, TL_SEG)));
    near(loss(t, TL_CYC), loss(t, TL_CYC_A) + loss(t, TL_CYC_T), "cyc = cyc_a + cyc_t");
    near(loss(t, TL_D_T), 0.5f * (loss(t, TL_D_T_REAL) + loss(t, TL_D_T_FAKE)), "d_t");
    near(loss(t, TL_D_A), 0.5f * (loss(t, TL_D_A_REAL) + loss(t, TL_D_A_FAKE)), "d_a");
    near(loss(t, TL_G_A2T),
         loss(t, TL_G_A2T_ADV) + 10 * loss(t, TL_CYC) + 0.5f * 10 * loss(t, TL_IDT_A2T) +
             loss(t, TL_G_A2T_SEG),
         "g_a2t total");
    /* the names reach the progress consumers (job events, train.log) */
    cr_expect_str_eq(train_loss_name(TL_D_T_FAKE), "d_t_fake");
    cr_expect_str_eq(train_loss_name(TL_G_A2T_SEG), "g_a2t_seg");
    cr_expect_str_eq(train_loss_name(TL_SCORE_MAE), "score_mae");
    trainer_free(t);
    /* without the identity loss its terms are not computed */
    c.lambda_idt = 0;
    t = make(&c, &tg, &as);
    step(t);
    cr_expect(isnan(loss(t, TL_IDT_A2T)) && isnan(loss(t, TL_IDT_T2A)));
    near(loss(t, TL_G_A2T), loss(t, TL_G_A2T_ADV) + 10 * loss(t, TL_CYC) + loss(t, TL_G_A2T_SEG),
         "g_a2t total");
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
}

Test(train_iam, seg_feedback_warms_up_then_ramps)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f);
    train_config c = tiny(TM_MKD);
    c.seg_g_warmup = 2;
    c.seg_g_ramp = 4;
    c.lambda_seg_g = 2.0f;
    trainer *t = make(&c, &tg, &as);
    for (int it = 0; it < 4; it++) {
        step(t);
        float base = loss(t, TL_G_A2T_ADV) + 10 * loss(t, TL_CYC);
        if (it < 2) {
            cr_expect(isnan(loss(t, TL_G_A2T_SEG)), "iteration %d: feedback during the warm-up",
                      it);
            near(loss(t, TL_G_A2T), base, "warm-up total");
        } else {
            float w = 2.0f * (float)(it - 2 + 1) / 4.0f; /* 0.5, then 1.0 */
            near(loss(t, TL_G_A2T), base + w * loss(t, TL_G_A2T_SEG), "ramped total");
        }
    }
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
}

/* The oracle path feeds S_syn the paired images with the assistant's augmentation: oracle
 * images equal to the assistant's give exactly identity's losses; other images do not. */
Test(train_iam, oracle_uses_the_paired_images_with_the_same_augmentation)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f);
    train_slices same = ttrain_copy(&as), other = repaint(&as, 1.0f, 9),
                 wrong = ttrain_slices(6, 3, 1.0f);
    char err[256];
    train_config ci = tiny(TM_MKD);
    ci.iam = TI_IDENTITY;
    train_config co = ci;
    co.iam = TI_ORACLE;
    enum { N = 4 };
    float li[N][TL_COUNT];
    trainer *t = make(&ci, &tg, &as);
    cr_expect_null(trainer_g_a2t(t), "identity trains no generator");
    for (int i = 0; i < N; i++) {
        step(t);
        memcpy(li[i], trainer_progress(t)->loss, sizeof li[i]);
    }
    trainer_free(t);

    t = make(&co, &tg, &as);
    cr_expect_null(trainer_g_a2t(t));
    cr_expect_eq(trainer_step(t, err, sizeof err), -1,
                 "oracle without paired renderings must fail");
    cr_expect(strstr(err, "paired"), "%s", err);
    cr_expect_eq(trainer_set_oracle(t, &wrong, err, sizeof err), -1, "mismatched labels accepted");
    cr_assert_eq(trainer_set_oracle(t, &same, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < N; i++) {
        step(t);
        for (int k = 0; k < TL_SCORE_DICE; k++)
            cr_expect(li[i][k] == loss(t, k) || (isnan(li[i][k]) && isnan(loss(t, k))),
                      "iteration %d %s: %g vs %g", i, train_loss_name(k), li[i][k], loss(t, k));
    }
    trainer_free(t);

    t = make(&co, &tg, &as);
    cr_assert_eq(trainer_set_oracle(t, &other, err, sizeof err), 0, "%s", err);
    step(t);
    cr_expect_neq(loss(t, TL_SUP_SYN), li[0][TL_SUP_SYN], "the oracle images were not used");
    cr_expect_eq(loss(t, TL_SUP_REAL), li[0][TL_SUP_REAL], "the target batch must not change");
    trainer_free(t);

    /* oracle renderings are refused where the alignment module is not the oracle */
    t = make(&ci, &tg, &as);
    cr_expect_eq(trainer_set_oracle(t, &same, err, sizeof err), -1);
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
    ttrain_free(&same);
    ttrain_free(&other);
    ttrain_free(&wrong);
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* histmatch: the mapped assistant intensities have the target's distribution (deciles checked
 * against a sort of the target's values) and keep the assistant's order */
Test(train_iam, histmatch_maps_the_assistant_distribution_onto_the_target)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -2.0f);
    train_config c = tiny(TM_JOINT);
    c.iam = TI_HISTMATCH;
    trainer *t = make(&c, &tg, &as);
    size_t n = (size_t)as.n * S * S, m = (size_t)tg.n * S * S;
    float *a = malloc(n * sizeof *a), *b = malloc(m * sizeof *b);
    memcpy(a, t->hm.img, n * sizeof *a);
    memcpy(b, tg.img, m * sizeof *b);
    qsort(a, n, sizeof *a, cmpf);
    qsort(b, m, sizeof *b, cmpf);
    for (int d = 1; d < 10; d++) {
        float qa = a[(size_t)(d / 10.0 * (n - 1))], qb = b[(size_t)(d / 10.0 * (m - 1))];
        cr_expect(fabsf(qa - qb) < 0.05f, "decile %d: mapped %g, target %g", d, qa, qb);
    }
    for (size_t i = 0; i < 2000; i++) {
        size_t j = (i * 7919) % n, k = (i * 104729) % n;
        if (as.img[j] < as.img[k])
            cr_expect_leq(t->hm.img[j], t->hm.img[k], "not monotone");
    }
    cr_expect_eq(memcmp(t->hm.lab, as.lab, n * sizeof(int32_t)), 0);
    step(t);
    cr_expect(isfinite(loss(t, TL_SEG)));
    free(a);
    free(b);
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
}

/* frozen: a GAN-only phase of iam_pretrain iterations that trains no segmentor, then the
 * segmentors train on the frozen translation and the GAN no longer moves */
Test(train_iam, frozen_trains_the_gan_first_then_only_the_segmentors)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f);
    train_config c = tiny(TM_MKD);
    c.iam = TI_FROZEN;
    c.iam_pretrain = 3;
    c.iters = 2;
    trainer *t = make(&c, &tg, &as);
    cr_expect_eq(trainer_progress(t)->total, 5);
    size_t n;
    float *g = ttrain_snap(trainer_g_a2t(t)->params, &n),
          *d = ttrain_snap(trainer_d_t(t)->params, &n);
    float *s0 = ttrain_snap(trainer_segmentor(t, 0)->params, &n),
          *s1 = ttrain_snap(trainer_segmentor(t, 1)->params, &n);
    for (int it = 0; it < 5; it++) {
        step(t);
        int gan = it < 3;
        cr_expect_eq(ttrain_moved(trainer_g_a2t(t)->params, &g), gan, "iteration %d: G_a2t", it);
        cr_expect_eq(ttrain_moved(trainer_d_t(t)->params, &d), gan, "iteration %d: D_t", it);
        cr_expect_eq(ttrain_moved(trainer_segmentor(t, 0)->params, &s0), !gan,
                     "iteration %d: S_syn", it);
        cr_expect_eq(ttrain_moved(trainer_segmentor(t, 1)->params, &s1), !gan,
                     "iteration %d: S_real", it);
        cr_expect_eq(isnan(loss(t, TL_G_A2T_SEG)), 1, "iteration %d: frozen has no seg feedback",
                     it);
    }
    free(g);
    free(d);
    free(s0);
    free(s1);
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
}

/* joint@frozen: the same GAN-only phase, then one segmentor on the target slices and the frozen
 * translation of the assistant's; plain joint has no GAN at all */
Test(train_iam, joint_frozen_trains_one_segmentor_on_the_frozen_translation)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f);
    train_config c = tiny(TM_JOINT);
    trainer *plain = make(&c, &tg, &as);
    cr_expect_null(trainer_g_a2t(plain), "joint's default iam trains no generator");
    trainer_free(plain);
    c.iam = TI_FROZEN;
    c.iam_pretrain = 3;
    c.iters = 2;
    trainer *t = make(&c, &tg, &as);
    cr_expect_eq(trainer_members(t), 1);
    cr_expect_eq(trainer_progress(t)->total, 5);
    size_t n;
    float *g = ttrain_snap(trainer_g_a2t(t)->params, &n),
          *d = ttrain_snap(trainer_d_a(t)->params, &n);
    float *s0 = ttrain_snap(trainer_segmentor(t, 0)->params, &n);
    for (int it = 0; it < 5; it++) {
        step(t);
        int gan = it < 3;
        cr_expect_eq(ttrain_moved(trainer_g_a2t(t)->params, &g), gan, "iteration %d: G_a2t", it);
        cr_expect_eq(ttrain_moved(trainer_d_a(t)->params, &d), gan, "iteration %d: D_a", it);
        cr_expect_eq(ttrain_moved(trainer_segmentor(t, 0)->params, &s0), !gan, "iteration %d: S",
                     it);
        cr_expect_eq(isnan(loss(t, TL_SEG)), gan, "iteration %d: the segmentor's loss", it);
        cr_expect_eq(isnan(loss(t, TL_CYC)), !gan, "iteration %d: the cycle loss", it);
    }
    free(g);
    free(d);
    free(s0);
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
}

/* joint-dsbn: one set of convolutions, two sets of BatchNorm; each set's running statistics
 * follow its own modality; the model file holds one segmentor with the target's */
Test(train_iam, joint_dsbn_shares_convolutions_and_keeps_batchnorm_apart)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -3.0f);
    train_config c = tiny(TM_JOINT_DSBN);
    char err[256], path[256];
    trainer *t = make(&c, &tg, &as);
    segmentor *s = trainer_segmentor(t, 0), *a = trainer_segmentor_assistant(t);
    cr_assert_not_null(a);
    cr_expect_eq(trainer_members(t), 1);
    cr_expect_eq(s->enc[2].conv1, a->enc[2].conv1);
    cr_expect_eq(s->head_w, a->head_w);
    cr_expect_neq(s->enc[2].bn1.gamma, a->enc[2].bn1.gamma);
    for (int i = 0; i < 3; i++)
        step(t);
    cr_expect(isfinite(loss(t, TL_SEG)));
    float ms[2], ma[2], gs[2], ga[2];
    nn_tensor_read(s->enc[0].bn1.rmean, ms);
    nn_tensor_read(a->enc[0].bn1.rmean, ma);
    nn_tensor_read(s->enc[0].bn1.gamma, gs);
    nn_tensor_read(a->enc[0].bn1.gamma, ga);
    cr_expect(ms[0] != ma[0] && gs[0] != ga[0], "BatchNorm not domain-specific: %g %g / %g %g",
              ms[0], ma[0], gs[0], ga[0]);
    /* the assistant's contrast does not reach the target's statistics */
    train_slices as2 = ttrain_slices(6, 2, -1.0f);
    trainer *t2 = make(&c, &tg, &as2);
    for (int i = 0; i < 1; i++)
        step(t2);
    trainer *t3 = make(&c, &tg, &as);
    step(t3);
    float m2[2], m3[2];
    nn_tensor_read(trainer_segmentor(t2, 0)->enc[0].bn1.rmean, m2);
    nn_tensor_read(trainer_segmentor(t3, 0)->enc[0].bn1.rmean, m3);
    cr_expect(m2[0] == m3[0], "the assistant moved the target's running mean: %g vs %g", m2[0],
              m3[0]);
    trainer_free(t2);
    trainer_free(t3);
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(path, sizeof path, "%s/dsbn-%d.safetensors", base ? base : "/tmp", (int)getpid());
    cr_assert_eq(trainer_save_model(t, path, NULL, 0, err, sizeof err), 0, "%s", err);
    st_file *f;
    cr_assert_eq(st_open(path, 0, &f, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(st_meta(f, "mkdseg.members"), "seg");
    const st_tensor *rm = st_get(f, "seg.enc0.bn1.running_mean");
    cr_assert_not_null(rm);
    cr_expect_eq(((const float *)rm->data)[0], ms[0]);
    cr_expect_null(st_get(f, "seg_a.enc0.bn1.running_mean"));
    st_close(f);
    /* a checkpoint carries both BatchNorm sets */
    cr_assert_eq(trainer_save_checkpoint(t, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st_open(path, 0, &f, err, sizeof err), 0, "%s", err);
    cr_expect_not_null(st_get(f, "seg_a.enc0.bn1.running_mean"));
    st_close(f);
    unlink(path);
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
    ttrain_free(&as2);
}

Test(train_iam, discriminator_depth_sets_the_patch_grid)
{
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    const int want[4] = {0, 30, 14, 6}; /* 64 / 2^n - 2 */
    for (int n = 1; n <= 3; n++) {
        discriminator *d = discriminator_new_layers(nn_backend_cpu(), 2, 1, n, err, sizeof err);
        cr_assert_not_null(d, "%s", err);
        nn_rng r;
        nn_rng_seed(&r, 3);
        discriminator_init(d, &r);
        cr_expect_eq(nn_params_count(d->params), 2 * (n + 2));
        nn_tensor *x = nn_tensor_zeros(ctx, 1, 1, 64, 64);
        nn_tensor *y = discriminator_forward(d, ctx, x);
        cr_assert_not_null(y, "%s", nn_ctx_error(ctx));
        cr_expect(y->h == want[n] && y->w == want[n] && y->c == 1, "n_layers %d: %dx%d", n, y->h,
                  y->w);
        discriminator_free(d);
        nn_ctx_reset(ctx);
    }
    cr_expect_null(discriminator_new_layers(nn_backend_cpu(), 2, 1, 4, err, sizeof err));
    nn_ctx_free(ctx);
    /* the trainer builds the configured depth */
    train_slices tg = ttrain_slices(4, 1, 1.0f), as = ttrain_slices(4, 2, -1.0f);
    train_config c = tiny(TM_MKD);
    c.disc_layers = 2;
    trainer *t = make(&c, &tg, &as);
    cr_expect_eq(trainer_d_t(t)->n_layers, 2);
    step(t);
    cr_expect(isfinite(loss(t, TL_D_T)));
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
}

/* the translation scores: on schedule, the fidelity an independent MAE of the images the
 * alignment module shows, the label score a Dice in [0, 1]; kept in the model file and across
 * a resume */
Test(train_iam, translation_scores_on_schedule_in_the_model_and_the_checkpoint)
{
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f),
                 sc = ttrain_slices(5, 4, -1.0f);
    train_slices sco = repaint(&sc, 1.0f, 5), ao = repaint(&as, 1.0f, 6);
    char err[256], path[256];
    train_config c = tiny(TM_MKD);
    c.iam = TI_IDENTITY;
    c.score_every = 2;
    c.iters = 5;
    trainer *t = make(&c, &tg, &as);
    cr_assert_eq(trainer_set_score_set(t, &sc, &sco, err, sizeof err), 0, "%s", err);
    double mae = 0;
    for (size_t i = 0; i < (size_t)sc.n * S * S; i++)
        mae += fabs((double)sc.img[i] - sco.img[i]);
    mae /= (double)sc.n * S * S;
    cr_assert_eq(trainer_run(t, NULL, NULL, NULL, err, sizeof err), 0, "%s", err);
    const train_score *s;
    int n = trainer_scores(t, &s);
    cr_assert_eq(n, 3);
    cr_expect(s[0].iter == 2 && s[1].iter == 4 && s[2].iter == 5);
    for (int i = 0; i < n; i++) {
        cr_expect(s[i].dice >= 0 && s[i].dice <= 1, "dice %g", s[i].dice);
        cr_expect(fabs(s[i].mae - mae) < 1e-4, "identity's fidelity %g, want %g", s[i].mae, mae);
    }
    cr_expect_eq(loss(t, TL_SCORE_DICE), s[2].dice);
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(path, sizeof path, "%s/score-%d.safetensors", base ? base : "/tmp", (int)getpid());
    cr_assert_eq(trainer_save_model(t, path, NULL, 0, err, sizeof err), 0, "%s", err);
    st_file *f;
    cr_assert_eq(st_open(path, 0, &f, err, sizeof err), 0, "%s", err);
    json_t *j = json_loads(st_meta(f, "mkdseg.translation"), 0, NULL);
    cr_assert(json_is_array(j) && json_array_size(j) == 3);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(j, 1), "iter")), 4);
    cr_expect(fabs(json_real_value(json_object_get(json_array_get(j, 1), "fidelity_mae")) - mae) <
              1e-4);
    json_decref(j);
    st_close(f);
    trainer_free(t);

    /* the oracle's fidelity is 0; a resumed run keeps the scores before the checkpoint */
    c.iam = TI_ORACLE;
    c.iters = 4;
    t = make(&c, &tg, &as);
    cr_assert_eq(trainer_set_oracle(t, &ao, err, sizeof err), 0, "%s", err);
    cr_expect_eq(trainer_set_score_set(t, &sc, NULL, err, sizeof err), -1,
                 "oracle scores need renderings");
    cr_assert_eq(trainer_set_score_set(t, &sc, &sco, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 2; i++)
        step(t);
    cr_assert_eq(trainer_save_checkpoint(t, path, err, sizeof err), 0, "%s", err);
    trainer_free(t);
    t = make(&c, &tg, &as);
    cr_assert_eq(trainer_set_oracle(t, &ao, err, sizeof err), 0, "%s", err);
    cr_assert_eq(trainer_set_score_set(t, &sc, &sco, err, sizeof err), 0, "%s", err);
    cr_assert_eq(trainer_load_checkpoint(t, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(trainer_run(t, NULL, NULL, NULL, err, sizeof err), 0, "%s", err);
    n = trainer_scores(t, &s);
    cr_assert_eq(n, 2);
    cr_expect(s[0].iter == 2 && s[1].iter == 4);
    cr_expect(s[0].mae == 0 && s[1].mae == 0, "oracle fidelity %g %g", s[0].mae, s[1].mae);
    trainer_free(t);
    unlink(path);
    ttrain_free(&tg);
    ttrain_free(&as);
    ttrain_free(&sc);
    ttrain_free(&sco);
    ttrain_free(&ao);
}

Test(train_iam, settings_parse_and_bad_combinations_are_refused)
{
    train_config c;
    train_config_default(&c);
    cr_expect_eq(c.iam, TI_CYCLEGAN);
    cr_expect_eq(c.disc_layers, 3);
    cr_expect_float_eq(c.lambda_seg_g, 1.0f, 0);
    cr_expect_float_eq(c.lambda_idt, 0.0f, 0);
    char err[256];
    const char *field;
    json_t *o = json_pack("{s:s,s:s,s:i,s:f}", "method", "joint-dsbn", "iam", "histmatch",
                          "score_every", 100, "lambda_idt", 0.5);
    cr_assert_eq(train_config_from_json(&c, o, err, sizeof err, &field), 0, "%s", err);
    json_decref(o);
    cr_expect_eq(c.method, TM_JOINT_DSBN);
    cr_expect_eq(c.iam, TI_HISTMATCH);
    cr_expect_eq(c.score_every, 100);
    char *s = train_config_to_json(&c);
    cr_expect(strstr(s, "\"iam\":\"histmatch\"") && strstr(s, "\"method\":\"joint-dsbn\""), "%s",
              s);
    free(s);
    o = json_pack("{s:s}", "iam", "perfect");
    cr_expect_eq(train_config_from_json(&c, o, err, sizeof err, &field), -1);
    cr_expect_str_eq(field, "iam");
    json_decref(o);
    o = json_pack("{s:i}", "iam", 1);
    cr_expect_eq(train_config_from_json(&c, o, err, sizeof err, &field), -1);
    json_decref(o);
    train_config_default(&c);
    c.method = TM_MKD_NO_IAM;
    c.iam = TI_ORACLE;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), -1);
    c.method = TM_FINETUNE;
    c.iam = TI_FROZEN;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), -1);
    cr_expect(strstr(err, "frozen"), "%s", err);
    c.method = TM_JOINT;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), 0, "%s", err);
    c.method = TM_MKD;
    c.size = 32;
    c.disc_layers = 3;
    c.iam = TI_CYCLEGAN;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), 0, "%s", err);
}
