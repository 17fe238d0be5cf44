/* test_phantom.c: the synthetic thorax: determinism, labels, contrast, geometry, variation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phantom.h"

static void small(phantom_opts *o, prep_modality m, uint64_t seed)
{
    phantom_default(o, m, seed);
    if (m == PREP_CT)
        o->shape[0] = 48, o->shape[1] = 48, o->shape[2] = 40;
    else
        o->shape[0] = 40, o->shape[1] = 40, o->shape[2] = 20;
}

static void gen_full(prep_modality m, uint64_t seed, phantom_vol *p, int full)
{
    phantom_opts o;
    char err[256];
    if (full)
        phantom_default(&o, m, seed);
    else
        small(&o, m, seed);
    cr_assert_eq(phantom_generate(&o, p, err, sizeof err), 0, "%s", err);
}

static void gen(prep_modality m, uint64_t seed, phantom_vol *p) { gen_full(m, seed, p, 0); }

static int64_t nvox(const phantom_vol *p) { return p->geom.nx * p->geom.ny * p->geom.nz; }

Test(phantom_gen, deterministic_per_seed)
{
    for (int m = 0; m < 2; m++) {
        phantom_vol a, b, c;
        gen((prep_modality)m, 7, &a);
        gen((prep_modality)m, 7, &b);
        gen((prep_modality)m, 8, &c);
        int64_t n = nvox(&a);
        cr_assert_eq(memcmp(a.image, b.image, (size_t)n * sizeof(float)), 0);
        cr_assert_eq(memcmp(a.label, b.label, (size_t)n), 0);
        cr_assert_neq(memcmp(a.label, c.label, (size_t)n), 0);
        phantom_free(&a), phantom_free(&b), phantom_free(&c);
    }
}

/* mean intensity per class and the LV centroid in world coordinates */
static void stats(const phantom_vol *p, double mean[8], int64_t cnt[8], double lvc[3])
{
    double s[8] = {0};
    memset(cnt, 0, 8 * sizeof *cnt);
    lvc[0] = lvc[1] = lvc[2] = 0;
    int64_t idx = 0;
    for (int64_t k = 0; k < p->geom.nz; k++)
        for (int64_t j = 0; j < p->geom.ny; j++)
            for (int64_t i = 0; i < p->geom.nx; i++, idx++) {
                int c = p->label[idx];
                s[c] += p->image[idx];
                cnt[c]++;
                if (c == 3)
                    for (int r = 0; r < 3; r++)
                        lvc[r] += p->geom.affine[r][0] * i + p->geom.affine[r][1] * j +
                                  p->geom.affine[r][2] * k + p->geom.affine[r][3];
            }
    for (int c = 0; c < 8; c++)
        mean[c] = cnt[c] ? s[c] / cnt[c] : NAN;
    for (int r = 0; r < 3; r++)
        lvc[r] /= (double)(cnt[3] ? cnt[3] : 1);
}

Test(phantom_gen, ct_contrast_and_labels)
{
    double lv_prev[3] = {0};
    for (uint64_t seed = 1; seed <= 3; seed++) {
        phantom_vol p;
        gen_full(PREP_CT, seed, &p, 1); /* default size: small grids blur the thin structures */
        double mean[8], lvc[3];
        int64_t cnt[8];
        stats(&p, mean, cnt, lvc);
        for (int c = 1; c < 8; c++)
            cr_assert_gt(cnt[c], 50, "seed %llu: class %d has %lld voxels",
                         (unsigned long long)seed, c, (long long)cnt[c]);
        double lo = 1e9, hi = -1e9;
        for (int c = 2; c < 8; c++) {
            lo = fmin(lo, mean[c]);
            hi = fmax(hi, mean[c]);
        }
        /* six blood pools nearly equal (HU-like, contrast-enhanced), myocardium darker */
        cr_assert(lo > 150 && hi < 550, "blood pool means %g..%g", lo, hi);
        cr_assert_lt(hi - lo, 0.3 * hi, "blood pools differ too much: %g..%g", lo, hi);
        cr_assert_lt(mean[1], lo - 40, "myocardium %g not darker than blood %g", mean[1], lo);
        float mn = 1e9f, mx = -1e9f;
        for (int64_t i = 0; i < nvox(&p); i++)
            mn = fminf(mn, p.image[i]), mx = fmaxf(mx, p.image[i]);
        cr_assert(mn >= -1024 && mn < -800, "air/lung minimum %g", mn);
        cr_assert(mx <= 3071 && mx > 300, "max %g", mx);
        char o[4];
        vol_geom_orientation(&p.geom, o);
        cr_assert_str_eq(o, "LPS");
        cr_assert_eq(vol_geom_slicing_axis(&p.geom), 2);
        if (seed > 1) /* subjects differ in heart position */
            cr_assert_gt(fabs(lvc[0] - lv_prev[0]) + fabs(lvc[1] - lv_prev[1]) +
                             fabs(lvc[2] - lv_prev[2]),
                         1.0);
        memcpy(lv_prev, lvc, sizeof lvc);
        phantom_free(&p);
    }
}

Test(phantom_gen, mr_contrast)
{
    phantom_vol p;
    gen_full(PREP_MR, 3, &p, 1);
    double mean[8], lvc[3];
    int64_t cnt[8];
    stats(&p, mean, cnt, lvc);
    for (int c = 1; c < 8; c++)
        cr_assert_gt(cnt[c], 5, "class %d has %lld voxels", c, (long long)cnt[c]);
    /* bSSFP: bright blood, dark myocardium; all values >= 0 (Rician magnitude) */
    cr_assert_gt(mean[3], 1.6 * mean[1], "LV %g vs MYO %g", mean[3], mean[1]);
    cr_assert_gt(mean[3], 0.0);
    for (int64_t i = 0; i < nvox(&p); i++)
        cr_assert_geq(p.image[i], 0.0f);
    double sp[3];
    vol_geom_spacing(&p.geom, sp);
    cr_assert_gt(sp[2], 3.0); /* thick MR slices */
    cr_assert_eq(vol_geom_slicing_axis(&p.geom), 2);
    phantom_free(&p);
}

/* The paired rendering: the same labels and grid as the subject's own rendering, the other
 * modality's contrast (CT: HU with blood far above myocardium and air near -1000), and noise
 * of its own; the subject's own rendering is unchanged by the option. */
Test(phantom_gen, paired_rendering_keeps_the_anatomy_and_changes_the_contrast)
{
    phantom_opts o;
    char err[256];
    phantom_vol mr, ct, mr2;
    phantom_default(&o, PREP_MR, 5);
    cr_assert_eq(phantom_generate(&o, &mr, err, sizeof err), 0, "%s", err);
    o.paired = 1;
    cr_assert_eq(phantom_generate(&o, &ct, err, sizeof err), 0, "%s", err);
    o.paired = 0;
    cr_assert_eq(phantom_generate(&o, &mr2, err, sizeof err), 0, "%s", err);
    int64_t n = nvox(&mr);
    cr_assert_eq(nvox(&ct), n);
    cr_assert_eq(memcmp(mr.label, ct.label, (size_t)n), 0, "paired labels differ");
    cr_assert_eq(memcmp(mr.image, mr2.image, (size_t)n * sizeof(float)), 0, "MR changed");
    cr_assert_eq(memcmp(&mr.geom, &ct.geom, sizeof mr.geom), 0, "paired grid differs");
    double mm[8], mc[8], lvc[3];
    int64_t cnt[8];
    stats(&mr, mm, cnt, lvc);
    stats(&ct, mc, cnt, lvc);
    cr_assert(mc[3] > 150 && mc[3] < 550, "paired CT LV %g HU", mc[3]);
    cr_assert_lt(mc[1], mc[3] - 40, "paired CT myocardium %g vs LV %g", mc[1], mc[3]);
    float mn = 1e9f;
    for (int64_t i = 0; i < n; i++)
        mn = fminf(mn, ct.image[i]);
    cr_assert(mn >= -1024 && mn < -800, "paired CT minimum %g", mn);
    /* the MR's background is near 0 and its blood a few hundred units: not HU */
    cr_assert_gt(fabs(mm[0] - mc[0]), 100.0, "background MR %g vs CT %g", mm[0], mc[0]);
    phantom_free(&mr), phantom_free(&ct), phantom_free(&mr2);
}

/* the written pair as nibabel sees it: same geometry, MM-WHS label values, orientation */
Test(phantom_gen, nibabel_reads_output, .timeout = 60)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    char d[512], img[600], lab[600], cmd[2000], err[256];
    snprintf(d, sizeof d, "%s/phantom.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(d));
    const char *orient[2] = {"LPS", "RAS"};
    for (int m = 0; m < 2; m++) {
        phantom_vol p;
        gen((prep_modality)m, 11, &p);
        snprintf(img, sizeof img, "%s/img%d.nii.gz", d, m);
        snprintf(lab, sizeof lab, "%s/lab%d.nii.gz", d, m);
        cr_assert_eq(phantom_write(&p, (prep_modality)m, img, lab, err, sizeof err), 0, "%s", err);
        vol_t v;
        cr_assert_eq(vol_read(img, NULL, &v, err, sizeof err), 0, "%s", err);
        vol_geom lg;
        uint8_t *cls;
        cr_assert_eq(vol_read_labels(lab, NULL, VOL_LABELS_AUTO, &lg, &cls, err, sizeof err), 0,
                     "%s", err);
        cr_assert_eq(memcmp(cls, p.label, (size_t)nvox(&p)), 0);
        cr_assert_eq(vol_geom_same(&v.geom, &lg, 1e-9, err, sizeof err), 0, "%s", err);
        lg.affine[1][3] += 0.5;
        cr_assert_eq(vol_geom_same(&v.geom, &lg, 1e-3, err, sizeof err), -1);
        cr_assert(strstr(err, "affines differ at [1][3]"), "%s", err);
        free(cls);
        vol_free(&v);
        phantom_free(&p);
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 tests/nibabel/vol_helper.py phantom '%s' '%s' %s", img, lab,
                 orient[m]);
        cr_assert_eq(system(cmd), 0, "nibabel check failed for modality %d", m);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

Test(phantom_gen, bad_options)
{
    phantom_opts o;
    phantom_vol p;
    char err[256];
    phantom_default(&o, PREP_CT, 1);
    o.shape[1] = 0;
    cr_assert_eq(phantom_generate(&o, &p, err, sizeof err), -1);
    cr_assert(strstr(err, "shape"));
}
