/* test_nrrd.c: NRRD label maps (engine/io/nrrd_write.c) and 4-D volume selection
 * (vol_read_opts.has_volume). NRRD files are decoded by teem's unu and compared with their
 * NIfTI twin read by nibabel (tests/nibabel/nrrd_helper.py): same voxels, same world positions.
 * 4-D files are written by nibabel. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vol.h"

#define PY "/usr/bin/python3"

static char tmpdir[512];

static void mk(void)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/nrrd.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (tmpdir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
}

TestSuite(nrrd, .init = mk, .fini = rm);

/* An affine: rotation about z by deg, then axis signs and voxel sizes, plus an offset. */
static void affine(double deg, const double sign_size[3], double A[4][4])
{
    double t = deg * M_PI / 180.0, c = cos(t), s = sin(t);
    double R[3][3] = {{c, -s, 0}, {s, c, 0}, {0, 0, 1}};
    memset(A, 0, 16 * sizeof(double));
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++)
            A[r][k] = R[r][k] * sign_size[k];
    A[0][3] = -101.25, A[1][3] = 37.5, A[2][3] = -12.0;
    A[3][3] = 1.0;
}

/* Writes labels as x.nrrd and x.nii.gz with geometry g and checks them with unu and nibabel. */
static void roundtrip(const char *name, const vol_geom *g, vol_label_mode mode)
{
    int64_t n = g->nx * g->ny * g->nz;
    uint8_t *cls = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        cls[i] = (uint8_t)((i * 7 + i / g->nx) % VOL_NCLASSES);
    char nrrd[700], nii[700], cmd[2000], err[512];
    snprintf(nrrd, sizeof nrrd, "%s/%s.nrrd", tmpdir, name);
    snprintf(nii, sizeof nii, "%s/%s.nii.gz", tmpdir, name);
    cr_assert_eq(vol_write_labels(nrrd, g, cls, mode, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_write_labels(nii, g, cls, mode, err, sizeof err), 0, "%s", err);
    free(cls);
    FILE *f = fopen(nrrd, "rb");
    char head[16] = {0};
    cr_assert(f && fread(head, 1, 8, f) == 8);
    fclose(f);
    cr_assert_str_eq(head, "NRRD0004", "%s: the label writer picks NRRD by the name", name);
    snprintf(cmd, sizeof cmd, PY " tests/nibabel/nrrd_helper.py check '%s' '%s'", nrrd, nii);
    cr_assert_eq(system(cmd), 0, "%s: unu and nibabel disagree (see above)", name);
}

Test(nrrd, unu_and_nibabel_agree, .timeout = 60)
{
    static const struct {
        const char *name;
        double deg, ss[3];
        vol_label_mode mode;
    } cases[] = {
        {"ras_index", 0, {0.8, 0.9, 2.5}, VOL_LABELS_INDEX},
        {"lps_mmwhs", 0, {-0.7, -0.7, 1.25}, VOL_LABELS_MMWHS},
        {"oblique_index", 23, {-0.8, 1.1, 2.0}, VOL_LABELS_INDEX},
        {"oblique_mmwhs", -41, {0.6, -0.9, -3.0}, VOL_LABELS_MMWHS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double A[4][4];
        affine(cases[i].deg, cases[i].ss, A);
        vol_geom g;
        char err[256];
        cr_assert_eq(vol_geom_init(&g, 9, 7, 5, A, err, sizeof err), 0, "%s", err);
        roundtrip(cases[i].name, &g, cases[i].mode);
    }
}

Test(nrrd, refuses_what_it_cannot_write)
{
    double A[4][4];
    static const double ss[3] = {1, 1, 1};
    affine(0, ss, A);
    vol_geom g;
    char err[256], path[700];
    cr_assert_eq(vol_geom_init(&g, 2, 2, 2, A, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/bad.nrrd", tmpdir);
    uint8_t d[8] = {0};
    cr_assert_eq(vol_write_nrrd(path, &g, d, 1536 /* float128 */, err, sizeof err), -1);
    cr_assert(strstr(err, "datatype"), "%s", err);
    cr_assert(vol_path_is_nrrd("a/B.NRRD") && !vol_path_is_nrrd("a.nii.gz") &&
              !vol_path_is_nrrd("nrrd"));
}

/* A 4-D file of three volumes: refused without a choice, volume 1 read exactly (nibabel's
 * data, the file's affine), an index past the end refused; a 4-D file of one volume reads. */
Test(nrrd, four_d_volume_choice, .timeout = 60)
{
    char cmd[800], path[700], err[512];
    snprintf(cmd, sizeof cmd, PY " tests/nibabel/nrrd_helper.py gen4d '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/four.nii.gz", tmpdir);
    vol_t v;
    cr_assert_eq(vol_read(path, NULL, &v, err, sizeof err), -1);
    cr_assert(strstr(err, "3 volumes") && strstr(err, "0..2"), "%s", err);
    vol_read_opts o = {.has_volume = 1, .volume = 3};
    cr_assert_eq(vol_read(path, &o, &v, err, sizeof err), -1);
    cr_assert(strstr(err, "volume 3 does not exist"), "%s", err);
    o.volume = 1;
    cr_assert_eq(vol_read(path, &o, &v, err, sizeof err), 0, "%s", err);
    cr_assert(v.geom.nx == 7 && v.geom.ny == 6 && v.geom.nz == 5);
    char ref[700];
    snprintf(ref, sizeof ref, "%s/four_v1.f32", tmpdir);
    FILE *f = fopen(ref, "rb");
    float want[210];
    cr_assert(f && fread(want, sizeof want[0], 210, f) == 210);
    fclose(f);
    for (int i = 0; i < 210; i++)
        cr_assert_eq(v.data[i], want[i], "voxel %d: %g, nibabel %g", i, v.data[i], want[i]);
    /* the oblique affine of the helper: rotation 17 degrees about z of diag(-0.8, 0.9, 2.5) */
    double t = 17.0 * M_PI / 180.0;
    cr_assert(fabs(v.geom.affine[0][0] - cos(t) * -0.8) < 1e-5 &&
              fabs(v.geom.affine[1][3] - 37.5) < 1e-5);
    vol_free(&v);
    /* the voxel limit bounds the volume read, not the whole file (630 voxels, 210 a volume) */
    vol_read_opts lim = {.max_voxels = 300};
    cr_assert_eq(vol_read(path, &lim, &v, err, sizeof err), -1);
    cr_assert(strstr(err, "voxel limit"), "%s", err);
    lim.has_volume = 1, lim.volume = 2;
    cr_assert_eq(vol_read(path, &lim, &v, err, sizeof err), 0, "%s", err);
    /* the helper: voxel 0 of volume k is (k * 210) * 7 + 100 k = 1570 k */
    cr_assert(want[0] == 1570.0f && v.data[0] == 3140.0f, "volume 2 voxel 0: %g", v.data[0]);
    vol_free(&v);
    lim.max_voxels = 200;
    cr_assert_eq(vol_read(path, &lim, &v, err, sizeof err), -1, "210 voxels > 200");
    snprintf(path, sizeof path, "%s/one4d.nii.gz", tmpdir);
    cr_assert_eq(vol_read(path, NULL, &v, err, sizeof err), 0, "a 4-D file of one volume: %s", err);
    vol_free(&v);
}
