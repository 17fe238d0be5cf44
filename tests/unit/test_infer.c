/* test_infer.c: model files, ensemble inference and the segment/eval commands, on models whose
 * output is known by construction (all weights zero, so the logits are the head's biases). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infer.h"
#include "safetensors.h"

static char dir[256];

static void setup(void)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/infer.XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    nn_set_threads(1);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(infer, .init = setup, .fini = teardown);

/* A model file whose member k predicts logits bias[k][c] at every pixel. */
static void write_const_model(const char *path, int members, const float bias[2][VOL_NCLASSES],
                              const char *drop)
{
    char err[256];
    st_writer *w = st_writer_new();
    segmentor *s[2] = {0};
    float *bufs[2][512] = {{0}};
    const char *names[2] = {members == 2 ? "s_syn" : "seg", "s_real"};
    for (int k = 0; k < members; k++) {
        s[k] = segmentor_new(nn_backend_cpu(), 2, VOL_NCLASSES, 1, err, sizeof err);
        cr_assert_not_null(s[k], "%s", err);
        nn_tensor_write(s[k]->head_b, bias[k]);
        for (int i = 0; i < nn_params_count(s[k]->params); i++) {
            nn_param *q = nn_params_at(s[k]->params, i);
            char name[200];
            snprintf(name, sizeof name, "%s.%s", names[k], q->name);
            if (drop && !strcmp(name, drop))
                continue;
            bufs[k][i] = malloc(nn_numel(&q->t) * sizeof(float));
            nn_tensor_read(&q->t, bufs[k][i]);
            int64_t shape[4] = {q->t.n, q->t.c, q->t.h, q->t.w};
            cr_assert_eq(st_writer_add(w, name, ST_F32, 4, shape, bufs[k][i], err, sizeof err), 0,
                         "%s", err);
        }
    }
    prep_norm pn;
    prep_norm_default(&pn, PREP_CT);
    char norm[256];
    prep_norm_to_string(&pn, norm, sizeof norm);
    st_writer_meta(w, "mkdseg.kind", "model");
    st_writer_meta(w, "mkdseg.members", members == 2 ? "s_syn,s_real" : "seg");
    st_writer_meta(w, "mkdseg.arch", "{\"segmentor\":{\"width\":2,\"classes\":8,\"in_ch\":1}}");
    st_writer_meta(w, "mkdseg.method", "test");
    st_writer_meta(w, "mkdseg.prep.norm", norm);
    st_writer_meta(w, "mkdseg.prep.spacing", "0");
    st_writer_meta(w, "mkdseg.prep.size", "32");
    cr_assert_eq(st_writer_write(w, path, err, sizeof err), 0, "%s", err);
    st_writer_free(w);
    for (int k = 0; k < members; k++) {
        for (int i = 0; i < 512; i++)
            free(bufs[k][i]);
        segmentor_free(s[k]);
    }
}

static void phantom(const char *img, const char *lab)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s phantom --modality ct --seed 5 --shape 40,36,12 --image %s --label %s 2>/dev/null",
             getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg", img, lab);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(infer, ensemble_averages_probabilities_and_members_can_be_chosen)
{
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/two.safetensors", dir);
    /* member 0 is confident in class 1, member 1 mildly prefers class 2: the mean of the two
     * probability maps still favours class 1; each member alone gives its own class */
    float bias[2][VOL_NCLASSES] = {{0, 3, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 0, 0, 0, 0, 0}};
    write_const_model(path, 2, bias, NULL);
    infer_model *m = infer_model_load(path, nn_backend_cpu(), err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_expect_eq(m->members, 2);
    cr_expect_eq(m->size, 32);
    char img[300], lab[300];
    snprintf(img, sizeof img, "%s/p_image.nii.gz", dir);
    snprintf(lab, sizeof lab, "%s/p_label.nii.gz", dir);
    phantom(img, lab);
    vol_t v = {0};
    cr_assert_eq(vol_read(img, NULL, &v, err, sizeof err), 0, "%s", err);
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    uint8_t *cls = malloc(n);
    int expect[3] = {1, 1, 2};
    for (int member = -1; member <= 1; member++) {
        infer_opts o = {member, member == -1, 0.5};
        memset(cls, 255, n);
        cr_assert_eq(infer_volume(m, &v, &o, cls, NULL, err, sizeof err), 0, "%s", err);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += cls[i] != expect[member + 1];
        cr_expect_eq(bad, 0, "member %d: %zu voxels are not class %d", member, bad,
                     expect[member + 1]);
    }
    infer_opts o3 = {2, 0, 0.5};
    cr_expect_eq(infer_volume(m, &v, &o3, cls, NULL, err, sizeof err), -1);
    free(cls);
    vol_free(&v);
    infer_model_free(m);
}

/* The Jensen-Shannon divergence in bits, written out from its definition (natural logs). */
static double js_bits(const double *p, const double *q, int K)
{
    double kl_p = 0, kl_q = 0;
    for (int c = 0; c < K; c++) {
        double m = (p[c] + q[c]) / 2;
        if (p[c] > 0)
            kl_p += p[c] * log(p[c] / m);
        if (q[c] > 0)
            kl_q += q[c] * log(q[c] / m);
    }
    return (kl_p + kl_q) / 2 / log(2.0);
}

static void softmax_of(const float *b, double *p)
{
    double z = 0;
    for (int c = 0; c < VOL_NCLASSES; c++)
        z += exp(b[c]);
    for (int c = 0; c < VOL_NCLASSES; c++)
        p[c] = exp(b[c]) / z;
}

Test(infer, js_divergence_known_values)
{
    float a[2] = {1, 0}, b[2] = {0, 1}, h[2] = {0.5f, 0.5f};
    cr_expect_float_eq(infer_js_divergence(a, b, 2, 1), 1.0f, 1e-6);
    cr_expect_float_eq(infer_js_divergence(a, a, 2, 1), 0.0f, 1e-6);
    double pa[2] = {1, 0}, ph[2] = {0.5, 0.5};
    cr_expect_float_eq(infer_js_divergence(a, h, 2, 1), (float)js_bits(pa, ph, 2), 1e-6);
    /* strided reads: the classes of one pixel lie `stride` apart */
    float sa[4] = {1, 9, 0, 9}, sb[4] = {0, 9, 1, 9};
    cr_expect_float_eq(infer_js_divergence(sa, sb, 2, 2), 1.0f, 1e-6);
}

/* Members with constant outputs: every voxel's disagreement is the divergence of the two
 * members' softmax(bias), whatever the tiling, flips and resampling; one member or one chosen
 * member gives zeros; identical members give zeros. */
Test(infer, disagreement_map_is_the_members_js_divergence)
{
    char path[300], err[256], img[300], lab[300];
    snprintf(img, sizeof img, "%s/p_image.nii.gz", dir);
    snprintf(lab, sizeof lab, "%s/p_label.nii.gz", dir);
    phantom(img, lab);
    vol_t v = {0};
    cr_assert_eq(vol_read(img, NULL, &v, err, sizeof err), 0, "%s", err);
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    uint8_t *cls = malloc(n), *cls0 = malloc(n);
    float *dis = malloc(sizeof(float) * n);
    float cases[3][2][VOL_NCLASSES] = {{{0, 3, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 0, 0, 0, 0, 0}},
                                       {{0, 0, 0, 0, 0, 0, 4, 0}, {5, 0, 0, 0, 0, 0, 0, 0}},
                                       {{0, 2, 1, 0, 0, 0, 0, 0}, {0, 2, 1, 0, 0, 0, 0, 0}}};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/two%d.safetensors", dir, k);
        write_const_model(path, 2, cases[k], NULL);
        infer_model *m = infer_model_load(path, nn_backend_cpu(), err, sizeof err);
        cr_assert_not_null(m, "%s", err);
        double p[VOL_NCLASSES], q[VOL_NCLASSES];
        softmax_of(cases[k][0], p);
        softmax_of(cases[k][1], q);
        double expect = js_bits(p, q, VOL_NCLASSES);
        for (int tta = 0; tta <= 1; tta++) {
            infer_opts o = {-1, tta, 0.5};
            for (size_t i = 0; i < n; i++)
                dis[i] = -1;
            cr_assert_eq(infer_volume_ex(m, &v, &o, cls, dis, NULL, err, sizeof err), 0, "%s", err);
            cr_assert_eq(infer_volume(m, &v, &o, cls0, NULL, err, sizeof err), 0, "%s", err);
            size_t bad = 0, badc = 0;
            for (size_t i = 0; i < n; i++) {
                bad += fabs(dis[i] - expect) > 1e-4;
                badc += cls[i] != cls0[i];
            }
            cr_expect_eq(bad, 0, "case %d tta %d: %zu voxels differ from %.6f (first %.6f)", k, tta,
                         bad, expect, dis[0]);
            cr_expect_eq(badc, 0, "case %d: the ensemble's classes changed in %zu voxels", k, badc);
        }
        infer_opts o0 = {0, 0, 0.5};
        cr_assert_eq(infer_volume_ex(m, &v, &o0, cls, dis, NULL, err, sizeof err), 0, "%s", err);
        size_t nz = 0;
        for (size_t i = 0; i < n; i++)
            nz += dis[i] != 0;
        cr_expect_eq(nz, 0, "one chosen member: the map is zeros");
        infer_model_free(m);
    }
    free(cls), free(cls0), free(dis);
    vol_free(&v);
}

Test(infer, broken_model_files_are_refused_with_reasons)
{
    char path[300], err[256];
    float bias[2][VOL_NCLASSES] = {{0}};
    snprintf(path, sizeof path, "%s/drop.safetensors", dir);
    write_const_model(path, 1, bias, "seg.head.bias");
    cr_expect_null(infer_model_load(path, nn_backend_cpu(), err, sizeof err));
    cr_expect(strstr(err, "seg.head.bias") && strstr(err, "missing"), "%s", err);

    /* a safetensors file that is not an mkdseg model */
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    st_writer *w = st_writer_new();
    float x[2] = {1, 2};
    int64_t sh[1] = {2};
    st_writer_add(w, "x", ST_F32, 1, sh, x, err, sizeof err);
    cr_assert_eq(st_writer_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    cr_expect_null(infer_model_load(path, nn_backend_cpu(), err, sizeof err));
    cr_expect(strstr(err, "not an mkdseg model"), "%s", err);

    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    cr_expect_null(infer_model_load(path, nn_backend_cpu(), err, sizeof err));
    cr_expect(strstr(err, "cannot open"), "%s", err);
}

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(infer, segment_keeps_geometry_and_eval_reports_the_known_dice)
{
    const char *bin = getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg";
    char path[300], img[300], lab[300], out[300], cmd[2048], err[256];
    snprintf(path, sizeof path, "%s/lv.safetensors", dir);
    float bias[2][VOL_NCLASSES] = {{0, 0, 0, 4, 0, 0, 0, 0}}; /* LV (class 3) everywhere */
    write_const_model(path, 1, bias, NULL);
    snprintf(img, sizeof img, "%s/p_image.nii.gz", dir);
    snprintf(lab, sizeof lab, "%s/p_label.nii.gz", dir);
    snprintf(out, sizeof out, "%s/seg.nii.gz", dir);
    phantom(img, lab);

    snprintf(cmd, sizeof cmd, "%s segment --model %s --in %s --out %s --threads 1 >/dev/null", bin,
             path, img, out);
    cr_assert_eq(run(cmd), 0, "%s", cmd);
    vol_t a = {0}, b = {0}, t = {0};
    cr_assert_eq(vol_read(img, NULL, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_read(out, NULL, &b, err, sizeof err), 0, "%s", err);
    cr_expect_eq(b.hdr.datatype, VOL_DT_INT16);
    cr_expect(a.geom.nx == b.geom.nx && a.geom.ny == b.geom.ny && a.geom.nz == b.geom.nz);
    cr_expect_eq(a.geom.sform_code, b.geom.sform_code);
    cr_expect_eq(a.geom.qform_code, b.geom.qform_code);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            cr_expect_float_eq(a.geom.affine[r][c], b.geom.affine[r][c], 1e-6);
    size_t n = (size_t)(a.geom.nx * a.geom.ny * a.geom.nz);
    for (size_t i = 0; i < n; i++)
        if (b.data[i] != 500.0f) {
            cr_expect(0, "voxel %zu is %g, not LV's code 500", i, b.data[i]);
            break;
        }

    /* the Dice eval must report, from the ground truth alone */
    cr_assert_eq(vol_read(lab, NULL, &t, err, sizeof err), 0, "%s", err);
    uint8_t *truth = malloc(n);
    cr_assert_eq(vol_labels_to_classes(t.data, (int64_t)n, VOL_LABELS_AUTO, truth, err, sizeof err),
                 0, "%s", err);
    double nlv = 0;
    int present[VOL_NCLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        nlv += truth[i] == 3;
        present[truth[i]] = 1;
    }
    double expect_lv = 2 * nlv / ((double)n + nlv), expect_mean = expect_lv;
    for (int c = 1; c < VOL_NCLASSES; c++)
        if (c != 3 && !present[c])
            expect_mean += 1.0; /* absent in both: Dice 1 */
    expect_mean /= 7.0;
    cr_assert_gt(nlv, 0, "phantom has no LV");

    char jpath[300];
    snprintf(jpath, sizeof jpath, "%s/eval.json", dir);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --images %s --labels %s --json --threads 1 > %s",
             bin, path, img, lab, jpath);
    cr_assert_eq(run(cmd), 0, "%s", cmd);
    json_error_t je;
    json_t *j = json_load_file(jpath, 0, &je);
    cr_assert_not_null(j, "%s", je.text);
    json_t *mean = json_object_get(j, "mean");
    cr_expect_float_eq(json_real_value(json_object_get(
                           json_object_get(json_object_get(mean, "structures"), "LV"), "dice")),
                       expect_lv, 1e-4);
    cr_expect_float_eq(json_real_value(json_object_get(mean, "dice")), expect_mean, 1e-4);
    json_decref(j);

    /* the CI floor: above the mean fails, below passes */
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s --images %s --labels %s --min-mean-dice %.4f --threads 1 "
             ">/dev/null 2>&1",
             bin, path, img, lab, expect_mean + 0.01);
    cr_expect_eq(run(cmd), 1);
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s --images %s --labels %s --min-mean-dice %.4f --threads 1 "
             ">/dev/null 2>&1",
             bin, path, img, lab, expect_mean - 0.01);
    cr_expect_eq(run(cmd), 0);
    /* bad usage */
    snprintf(cmd, sizeof cmd, "%s segment --model %s --in %s/missing.nii.gz --out %s 2>/dev/null",
             bin, path, dir, out);
    cr_expect_eq(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s segment --in x 2>/dev/null", bin);
    cr_expect_eq(run(cmd), 2);
    free(truth);
    vol_free(&a);
    vol_free(&b);
    vol_free(&t);
}

/* With several threads the CPU runs slices side by side, one per thread (infer.c): every slice
 * must be segmented exactly once, into its own voxels, and the result must not depend on the
 * thread count. A trained two-member model (tests/data/mkd_ensemble.safetensors, so each slice's
 * labels differ), 21 slices (not a multiple of 2 or 4), with flips and the disagreement map:
 * labels and map at 2, 3 and 4 threads equal one thread's bit for bit. */
Test(infer, slices_side_by_side_equal_one_thread)
{
    char err[256], img[300], lab[300], cmd[1024];
    snprintf(img, sizeof img, "%s/s_image.nii.gz", dir);
    snprintf(lab, sizeof lab, "%s/s_label.nii.gz", dir);
    snprintf(cmd, sizeof cmd,
             "%s phantom --modality ct --seed 9 --shape 96,88,21 --image %s --label %s 2>/dev/null",
             getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg", img, lab);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    vol_t v = {0};
    cr_assert_eq(vol_read(img, NULL, &v, err, sizeof err), 0, "%s", err);
    infer_model *m = infer_model_load("tests/data/mkd_ensemble.safetensors", nn_backend_cpu(), err,
                                      sizeof err);
    cr_assert_not_null(m, "%s", err);
    const size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    uint8_t *c1 = malloc(n), *cn = malloc(n);
    float *d1 = malloc(n * sizeof(float)), *dn = malloc(n * sizeof(float));
    infer_opts o = {-1, 1, 0.5};
    nn_set_threads(1);
    cr_assert_eq(infer_volume_ex(m, &v, &o, c1, d1, NULL, err, sizeof err), 0, "%s", err);
    size_t fg = 0;
    for (size_t i = 0; i < n; i++)
        fg += c1[i] != 0;
    cr_assert_gt(fg, n / 50, "the model segments the phantom (%zu foreground voxels)", fg);
    for (int t = 2; t <= 4; t++) {
        nn_set_threads(t);
        memset(cn, 0xee, n);
        for (size_t i = 0; i < n; i++)
            dn[i] = -1.0f;
        cr_assert_eq(infer_volume_ex(m, &v, &o, cn, dn, NULL, err, sizeof err), 0, "%s", err);
        size_t badc = 0, badd = 0;
        for (size_t i = 0; i < n; i++) {
            badc += cn[i] != c1[i];
            badd += memcmp(&dn[i], &d1[i], sizeof(float)) != 0;
        }
        cr_expect_eq(badc, 0, "%d threads: %zu labels differ from one thread's", t, badc);
        cr_expect_eq(badd, 0, "%d threads: %zu disagreement values differ", t, badd);
    }
    nn_set_threads(1);
    infer_model_free(m);
    free(c1), free(cn), free(d1), free(dn);
    vol_free(&v);
}
