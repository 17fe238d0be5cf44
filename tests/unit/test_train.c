/* test_train.c: the trainer on tiny synthetic slices — which networks each step of
 * Algorithm 1 moves, losses decreasing for every method, determinism, resume. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../engine/train/trainer_internal.h"
#include "dataset.h"
#include "train.h"
#include "../lib/ttrain.h"

#define S TTRAIN_S

/* Slices of a small phantom volume (`mkdseg phantom`), through the dataset pipeline, with
 * labels folded to 3 classes (background, myocardium, any blood pool or vessel) so the tiny
 * networks of these tests have something learnable in a few iterations. */
static train_slices phantom_slices(const char *mod, int seed)
{
    char dir[256], img[320], lab[320], cmd[1024], err[256];
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/trainph.XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(img, sizeof img, "%s/i.nii.gz", dir);
    snprintf(lab, sizeof lab, "%s/l.nii.gz", dir);
    snprintf(
        cmd, sizeof cmd,
        "%s phantom --modality %s --seed %d --shape 40,40,12 --image %s --label %s 2>/dev/null",
        getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg", mod, seed, img,
        lab);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    train_slices s = {0};
    dataset_opts o = {.spacing = 0, .size = S, .empty_every = 0, .seed = 1};
    prep_norm_default(&o.norm, !strcmp(mod, "ct") ? PREP_CT : PREP_MR);
    cr_assert_eq(dataset_add_files(&s, &o, img, lab, 0, err, sizeof err), 0, "%s", err);
    cr_assert_geq(s.n, 2);
    for (size_t i = 0; i < (size_t)s.n * S * S; i++)
        s.lab[i] = s.lab[i] == 1 ? 1 : s.lab[i] ? 2 : 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
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

static int changedk(nn_params *p, const float *before, size_t n, nn_param_kind kind)
{
    size_t m;
    float *now = ttrain_snap_kind(p, &m, kind);
    int c = m != n || memcmp(now, before, n * sizeof(float)) != 0;
    free(now);
    return c;
}

static int changed(nn_params *p, const float *before, size_t n)
{
    return changedk(p, before, n, NN_PARAM);
}

Test(train, each_step_of_algorithm_1_moves_only_its_network)
{
    nn_set_threads(1);
    train_slices tg = phantom_slices("ct", 11), as = phantom_slices("mr", 12);
    train_config c = tiny(TM_MKD);
    char err[256];
    for (int stop = 2; stop <= 7; stop++) {
        trainer *t = trainer_new(&c, nn_backend_cpu(), &tg, &as, err, sizeof err);
        cr_assert_not_null(t, "%s", err);
        /* one warm-up iteration so every network has Adam state and the pools hold images */
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
        nn_params *nets[6] = {trainer_segmentor(t, 0)->params, trainer_segmentor(t, 1)->params,
                              trainer_g_a2t(t)->params,        trainer_d_t(t)->params,
                              trainer_g_t2a(t)->params,        trainer_d_a(t)->params};
        /* network i is updated by Algorithm 1 step: S_syn 6, S_real 7, G_a2t 2, D_t 3, G_t2a 4, D_a 5 */
        const int step_of[6] = {6, 7, 2, 3, 4, 5};
        const char *names[6] = {"S_syn", "S_real", "G_a2t", "D_t", "G_t2a", "D_a"};
        float *b[6];
        size_t n[6];
        for (int i = 0; i < 6; i++)
            b[i] = ttrain_snap(nets[i], &n[i]);
        size_t nbuf;
        float *bn = ttrain_snap_kind(nets[0], &nbuf, NN_BUFFER);
        trainer_set_stop_after(t, stop == 7 ? 0 : stop);
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
        /* S_syn is fixed in step 2: its BatchNorm statistics as well as its weights */
        cr_expect_eq(changedk(nets[0], bn, nbuf, NN_BUFFER), stop >= 6,
                     "after step %d S_syn's BN statistics %s", stop,
                     stop >= 6 ? "did not move" : "moved");
        free(bn);
        for (int i = 0; i < 6; i++) {
            int expect = step_of[i] <= stop;
            cr_expect_eq(changed(nets[i], b[i], n[i]), expect, "after step %d, %s %s", stop,
                         names[i], expect ? "did not change" : "changed");
            free(b[i]);
        }
        trainer_free(t);
    }
    ttrain_free(&tg);
    ttrain_free(&as);
}

static void run_losses(train_config *c, const train_slices *tg, const train_slices *as, int n,
                       float *out, int li)
{
    char err[256];
    trainer *t = trainer_new(c, nn_backend_cpu(), tg, as, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
        out[i] = trainer_progress(t)->loss[li];
        cr_assert(isfinite(out[i]), "iteration %d: loss %s is %f", i, train_loss_name(li), out[i]);
    }
    trainer_free(t);
}

Test(train, every_method_lowers_its_loss, .timeout = 240)
{
    nn_set_threads(1);
    train_slices tg = phantom_slices("ct", 13), as = phantom_slices("mr", 14);
    enum { N = 30 };
    for (int m = 0; m < TM_COUNT; m++) {
        train_config c = tiny((train_method)m);
        c.iters = N;
        c.lr_seg = 3e-3f;
        c.aug_rot_deg = 0;
        c.aug_scale = 0;
        c.finetune_pretrain = 0.2f;
        float l[N];
        int li = train_method_is_mkd((train_method)m) ? TL_SUP_REAL : TL_SEG;
        run_losses(&c, &tg, &as, N, l, li);
        float first = (l[0] + l[1] + l[2] + l[3]) / 4,
              last = (l[N - 1] + l[N - 2] + l[N - 3] + l[N - 4]) / 4;
        if (m == TM_FINETUNE)
            first = (l[6] + l[7] + l[8] + l[9]) / 4; /* after the switch to target */
        cr_expect_lt(last, first * 0.9f, "%s: loss %s went %f -> %f",
                     train_method_name((train_method)m), train_loss_name(li), first, last);
    }
    ttrain_free(&tg);
    ttrain_free(&as);
}

Test(train, same_seed_same_losses_and_resume_equals_uninterrupted, .timeout = 120)
{
    nn_set_threads(1);
    train_slices tg = ttrain_slices(6, 5, 1.0f), as = ttrain_slices(6, 6, -1.0f);
    train_config c = tiny(TM_MKD);
    c.iters = 6;
    char err[256], path[256];
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(path, sizeof path, "%s/ckpt-%d.safetensors", base ? base : "/tmp", (int)getpid());

    float a[6][TL_COUNT], b[6][TL_COUNT];
    trainer *t = trainer_new(&c, nn_backend_cpu(), &tg, &as, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
        memcpy(a[i], trainer_progress(t)->loss, sizeof a[i]);
        if (i == 2)
            cr_assert_eq(trainer_save_checkpoint(t, path, err, sizeof err), 0, "%s", err);
    }
    trainer_free(t);

    /* the same run again: identical losses */
    t = trainer_new(&c, nn_backend_cpu(), &tg, &as, err, sizeof err);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
        cr_expect_eq(memcmp(a[i], trainer_progress(t)->loss, sizeof a[i]), 0,
                     "iteration %d differs", i);
    }
    trainer_free(t);

    /* a fresh trainer resumed from the checkpoint after iteration 3 continues identically */
    t = trainer_new(&c, nn_backend_cpu(), &tg, &as, err, sizeof err);
    cr_assert_eq(trainer_load_checkpoint(t, path, err, sizeof err), 0, "%s", err);
    cr_expect_eq(trainer_iter(t), 3);
    for (int i = 3; i < 6; i++) {
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
        memcpy(b[i], trainer_progress(t)->loss, sizeof b[i]);
        for (int k = 0; k < TL_COUNT; k++)
            cr_expect(a[i][k] == b[i][k] || (isnan(a[i][k]) && isnan(b[i][k])),
                      "iteration %d loss %s: %.9g vs %.9g", i, train_loss_name(k), a[i][k],
                      b[i][k]);
    }
    trainer_free(t);

    /* a checkpoint of other settings is refused */
    train_config c2 = c;
    c2.lambda_kd1 = 0.25f;
    t = trainer_new(&c2, nn_backend_cpu(), &tg, &as, err, sizeof err);
    cr_expect_eq(trainer_load_checkpoint(t, path, err, sizeof err), -1);
    cr_expect(strstr(err, "different settings"), "%s", err);
    trainer_free(t);
    unlink(path);
    ttrain_free(&tg);
    ttrain_free(&as);
}

Test(train, bad_inputs_are_refused)
{
    train_slices tg = ttrain_slices(2, 5, 1.0f);
    train_config c = tiny(TM_MKD);
    char err[256];
    cr_expect_null(trainer_new(&c, nn_backend_cpu(), &tg, NULL, err, sizeof err));
    cr_expect(strstr(err, "assistant"), "%s", err);
    c.method = TM_BASELINE;
    c.size = 64;
    cr_expect_null(trainer_new(&c, nn_backend_cpu(), &tg, NULL, err, sizeof err));
    cr_expect(strstr(err, "pixels"), "%s", err);
    ttrain_free(&tg);
}

/* bn_target_stats: with 1, the segmentors' running statistics after an iteration come from the
 * real target batches only, so two trainers that differ only in their assistant images end
 * the segmentor step with the same running statistics; with 0 the translated assistant
 * batches move them too. */
static float *bn_after_one_iteration(int bn_target_stats, float assistant_contrast, size_t *n,
                                     int member)
{
    nn_set_threads(1);
    train_slices tg = ttrain_slices(6, 3, 1.0f), as = ttrain_slices(6, 4, assistant_contrast);
    train_config c = tiny(TM_MKD);
    c.bn_target_stats = bn_target_stats;
    char err[256];
    trainer *t = trainer_new(&c, nn_backend_cpu(), &tg, &as, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    trainer_set_stop_after(t, 6); /* after S_syn's update: S_real has run its forwards */
    cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
    float *b = ttrain_snap_kind(trainer_segmentor(t, member)->params, n, NN_BUFFER);
    trainer_free(t);
    ttrain_free(&tg);
    ttrain_free(&as);
    return b;
}

Test(train, bn_target_stats_keeps_running_statistics_on_the_target)
{
    for (int member = 0; member < 2; member++) {
        size_t n1, n2, n3, n4;
        float *a = bn_after_one_iteration(1, -1.0f, &n1, member),
              *b = bn_after_one_iteration(1, -3.0f, &n2, member);
        cr_assert_eq(n1, n2);
        cr_expect(
            memcmp(a, b, n1 * sizeof(float)) == 0,
            "member %d: with bn_target_stats the assistant images moved the running statistics",
            member);
        float *c = bn_after_one_iteration(0, -1.0f, &n3, member),
              *d = bn_after_one_iteration(0, -3.0f, &n4, member);
        cr_expect(memcmp(c, d, n3 * sizeof(float)) != 0,
                  "member %d: without bn_target_stats the assistant images should move them",
                  member);
        free(a);
        free(b);
        free(c);
        free(d);
    }
}
