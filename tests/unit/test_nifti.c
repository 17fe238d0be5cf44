/* test_nifti.c: NIfTI reading/writing, geometry and label tables (engine/io).
 * Round trips are checked by Debian's nibabel through tests/nibabel/vol_helper.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vol.h"

#define PY "/usr/bin/python3"

static char *mktmp(void)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    char *t = malloc(512);
    snprintf(t, 512, "%s/nifti.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(t));
    return t;
}

static void rmtree(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

static float *read_f32(const char *path, int64_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    float *x = malloc((size_t)n * sizeof *x);
    cr_assert_eq(fread(x, sizeof *x, (size_t)n, f), (size_t)n);
    fclose(f);
    return x;
}

/* Every datatype and orientation case written by nibabel: our reader gives nibabel's data and
 * affine; what we write back (same type, and an MM-WHS label map) has the input's geometry
 * according to nibabel. */
Test(nifti_roundtrip, nibabel_cases, .timeout = 60)
{
    char *d = mktmp();
    char cmd[1024], path[1024], err[512];
    snprintf(cmd, sizeof cmd, PY " tests/nibabel/vol_helper.py gen '%s'", d);
    cr_assert_eq(system(cmd), 0, "helper gen failed");
    snprintf(path, sizeof path, "%s/manifest.txt", d);
    FILE *m = fopen(path, "r");
    cr_assert_not_null(m);
    char line[4096];
    int ncases = 0;
    while (fgets(line, sizeof line, m)) {
        char name[128], file[256], src[16], axc[8];
        int code, sax, off = 0;
        double aff[16];
        cr_assert_eq(
            sscanf(line, "%127s %255s %d %15s %7s %d%n", name, file, &code, src, axc, &sax, &off),
            6);
        char *p = line + off;
        for (int i = 0; i < 16; i++)
            aff[i] = strtod(p, &p);
        snprintf(path, sizeof path, "%s/%s", d, file);
        vol_t v;
        cr_assert_eq(vol_read(path, NULL, &v, err, sizeof err), 0, "%s: %s", name, err);
        cr_assert_eq(v.hdr.datatype, code, "%s", name);
        cr_assert_str_eq(vol_affine_src_name(v.geom.affine_src), src, "%s", name);
        int64_t n = v.geom.nx * v.geom.ny * v.geom.nz;
        cr_assert_eq(n, 7 * 6 * 5, "%s", name);
        snprintf(path, sizeof path, "%s/in_%s.f32", d, name);
        float *ref = read_f32(path, n);
        for (int64_t i = 0; i < n; i++)
            cr_assert_eq(v.data[i], ref[i], "%s voxel %lld: %g != %g", name, (long long)i,
                         v.data[i], ref[i]);
        free(ref);
        if (v.geom.affine_src != VOL_AFFINE_PIXDIM) { /* nibabel centres pixdim-only affines */
            for (int i = 0; i < 16; i++)
                cr_assert(fabs(v.geom.affine[i / 4][i % 4] - aff[i]) < 1e-6,
                          "%s affine[%d]: %.9g vs %.9g", name, i, v.geom.affine[i / 4][i % 4],
                          aff[i]);
            char o[4];
            vol_geom_orientation(&v.geom, o);
            cr_assert_str_eq(o, axc, "%s orientation", name);
            cr_assert_eq(vol_geom_slicing_axis(&v.geom), sax, "%s slicing axis", name);
        }
        int scaled = strstr(name, "scaled") != NULL;
        snprintf(path, sizeof path, "%s/out_%s.nii.gz", d, name);
        cr_assert_eq(
            vol_write(path, &v.geom, v.data, scaled ? VOL_DT_FLOAT32 : code, err, sizeof err), 0,
            "%s: %s", name, err);
        uint8_t *cls = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++)
            cls[i] = (uint8_t)(i % VOL_NCLASSES);
        snprintf(path, sizeof path, "%s/lab_%s.nii.gz", d, name);
        cr_assert_eq(vol_write_labels(path, &v.geom, cls, VOL_LABELS_MMWHS, err, sizeof err), 0,
                     "%s", err);
        /* our own reader gets the labels and the geometry back bit for bit */
        vol_t l;
        cr_assert_eq(vol_read(path, NULL, &l, err, sizeof err), 0, "%s", err);
        uint8_t *back = malloc((size_t)n);
        cr_assert_eq(vol_labels_to_classes(l.data, n, VOL_LABELS_MMWHS, back, err, sizeof err), 0,
                     "%s", err);
        cr_assert_eq(memcmp(back, cls, (size_t)n), 0);
        for (int i = 0; i < 16; i++)
            cr_assert_eq(l.geom.affine[i / 4][i % 4], v.geom.affine[i / 4][i % 4],
                         "%s affine[%d] %.17g != %.17g", name, i, l.geom.affine[i / 4][i % 4],
                         v.geom.affine[i / 4][i % 4]);
        cr_assert_eq(l.geom.qform_code, v.geom.qform_code);
        cr_assert_eq(l.geom.sform_code, v.geom.sform_code);
        cr_assert_eq(l.geom.nifti_version, v.geom.nifti_version);
        free(back);
        free(cls);
        vol_free(&l);
        vol_free(&v);
        ncases++;
    }
    fclose(m);
    cr_assert_geq(ncases, 20);
    snprintf(cmd, sizeof cmd, PY " tests/nibabel/vol_helper.py check '%s'", d);
    cr_assert_eq(system(cmd), 0, "nibabel found differences (see the lines above)");
    rmtree(d);
    free(d);
}

/* Files written by other software (nibabel's own test data). */
Test(nifti_real, nibabel_test_data)
{
    char err[512];
    vol_t v;
    const char *dir = "/usr/lib/python3/dist-packages/nibabel/tests/data";
    char p[512];
    snprintf(p, sizeof p, "%s/anatomical.nii", dir); /* big-endian int16, sform code 2 */
    cr_assert_eq(vol_read(p, NULL, &v, err, sizeof err), 0, "%s", err);
    cr_assert_eq(v.geom.nx, 33);
    cr_assert_eq(v.geom.ny, 41);
    cr_assert_eq(v.geom.nz, 25);
    cr_assert(v.hdr.byteswapped);
    cr_assert_eq(v.geom.affine_src, VOL_AFFINE_SFORM);
    char o[4];
    vol_geom_orientation(&v.geom, o);
    cr_assert_str_eq(o, "LAS");
    vol_free(&v);
    snprintf(p, sizeof p, "%s/standard.nii.gz", dir);
    cr_assert_eq(vol_read(p, NULL, &v, err, sizeof err), 0, "%s", err);
    cr_assert_eq(v.geom.nx * v.geom.ny * v.geom.nz, 4 * 5 * 7);
    cr_assert(v.hdr.compressed);
    vol_free(&v);
    snprintf(p, sizeof p, "%s/example_nifti2.nii.gz", dir);
    cr_assert_eq(vol_read(p, NULL, &v, err, sizeof err), -1);
    cr_assert(strstr(err, "4-D image with 2 volumes"), "%s", err);
    snprintf(p, sizeof p, "%s/resampled_anat_moved.nii", dir);
    cr_assert_eq(vol_read(p, NULL, &v, err, sizeof err), -1);
    cr_assert(strstr(err, "NaN"), "%s", err);
}

static void expect_error(const char *file, const char *msg)
{
    char err[512] = "";
    vol_t v;
    char p[256];
    snprintf(p, sizeof p, "tests/data/%s", file);
    cr_assert_eq(vol_read(p, NULL, &v, err, sizeof err), -1, "%s was accepted", file);
    cr_assert_null(v.data);
    cr_assert(strstr(err, msg), "%s: error '%s' lacks '%s'", file, err, msg);
}

Test(nifti_malformed, huge_claim_gz) { expect_error("huge_claim.nii.gz", "above the voxel limit"); }
Test(nifti_malformed, huge_claim) { expect_error("huge_claim.nii", "above the voxel limit"); }
Test(nifti_malformed, truncated) { expect_error("truncated.nii", "file is truncated"); }
Test(nifti_malformed, truncated_gz) { expect_error("truncated.nii.gz", "data ends early"); }
Test(nifti_malformed, corrupt_gz) { expect_error("corrupt.nii.gz", "corrupt compressed data"); }
Test(nifti_malformed, nan) { expect_error("nan.nii", "NaN value at voxel (1,2,3)"); }
Test(nifti_malformed, inf_after_scaling) { expect_error("inf_scaled.nii", "infinite value"); }
Test(nifti_malformed, four_d) { expect_error("4d.nii.gz", "4-D image with 3 volumes"); }
Test(nifti_malformed, bad_datatype) { expect_error("bad_datatype.nii", "unsupported datatype 32"); }
Test(nifti_malformed, unknown_datatype)
{
    expect_error("unknown_datatype.nii", "unsupported datatype 9999");
}
Test(nifti_malformed, not_nifti) { expect_error("not_nifti.nii", "not a NIfTI file"); }
Test(nifti_malformed, not_nifti_gz) { expect_error("not_nifti.nii.gz", "not a NIfTI file"); }
Test(nifti_malformed, zero_dim) { expect_error("zero_dim.nii", "invalid dimension dim[2]=0"); }
Test(nifti_malformed, negative_dim)
{
    expect_error("negative_dim.nii", "invalid dimension dim[2]=-4");
}
Test(nifti_malformed, empty) { expect_error("empty.nii", "not a NIfTI file"); }
Test(nifti_malformed, nan_affine) { expect_error("nan_affine.nii", "affine is not finite"); }
Test(nifti_malformed, huge_offset) { expect_error("huge_offset.nii", "vox_offset=1e+12"); }
Test(nifti_malformed, missing) { expect_error("does_not_exist.nii.gz", "cannot open"); }
Test(nifti_malformed, bad_name) { expect_error("make_edge_cases.py", "file name must end in"); }

Test(nifti_malformed, voxel_limit_option)
{
    char err[512];
    vol_t v;
    vol_read_opts o = {.max_voxels = 63};
    cr_assert_eq(vol_read("tests/data/4d_one.nii", &o, &v, err, sizeof err), -1);
    cr_assert(strstr(err, "more than 63 voxels"), "%s", err);
    o.max_voxels = 64; /* 4x4x4x1: one volume of a 4-D file is fine */
    cr_assert_eq(vol_read("tests/data/4d_one.nii", &o, &v, err, sizeof err), 0, "%s", err);
    cr_assert_eq(v.geom.nz, 4);
    cr_assert_eq(v.vmin, 1.0f);
    vol_free(&v);
}

Test(nifti_labels, mmwhs_table)
{
    const float codes[] = {0, 205, 420, 500, 550, 600, 820, 850};
    uint8_t cls[8];
    char err[256];
    cr_assert_eq(vol_labels_to_classes(codes, 8, VOL_LABELS_AUTO, cls, err, sizeof err), 0, "%s",
                 err);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(cls[i], i);
    const float idx[] = {0, 7, 3, 1};
    cr_assert_eq(vol_labels_to_classes(idx, 4, VOL_LABELS_AUTO, cls, err, sizeof err), 0);
    cr_assert_eq(cls[1], 7);
    const float bad[] = {0, 205, 421, 421, 500, 3.5f, 1000};
    cr_assert_eq(vol_labels_to_classes(bad, 7, VOL_LABELS_MMWHS, cls, err, sizeof err), -1);
    cr_assert(strstr(err, "421 (2 voxels)"), "%s", err);
    cr_assert(strstr(err, "3.5 (1 voxels)"), "%s", err);
    cr_assert(strstr(err, "1000 (1 voxels)"), "%s", err);
    cr_assert(strstr(err, "4 voxels in all"), "%s", err);
    cr_assert_eq(vol_labels_to_classes(codes, 8, VOL_LABELS_INDEX, cls, err, sizeof err), -1);
}

Test(nifti_geom, init_and_slice_frame)
{
    /* LPS CT-like grid: i toward L, j toward P, k toward S */
    double a[4][4] = {{-0.5, 0, 0, 100}, {0, -0.5, 0, 80}, {0, 0, 2.0, -50}, {0, 0, 0, 1}};
    vol_geom g;
    char err[128], o[4];
    cr_assert_eq(vol_geom_init(&g, 10, 12, 5, a, err, sizeof err), 0);
    vol_geom_orientation(&g, o);
    cr_assert_str_eq(o, "LPS");
    vol_slice_frame f;
    vol_geom_slice_frame(&g, &f);
    cr_assert_eq(f.slice_axis, 2);
    cr_assert_eq(f.u_axis, 0);
    cr_assert_eq(f.u_flip, 0); /* already runs toward the left */
    cr_assert_eq(f.v_flip, 0);
    cr_assert_float_eq(f.ds, 2.0, 1e-12);
    /* the qform written from the affine reproduces it */
    g.sform_code = 0;
    vol_geom_update(&g);
    cr_assert_eq(g.affine_src, VOL_AFFINE_QFORM);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            cr_assert_float_eq(g.affine[r][c], a[r][c], 1e-9);
    /* coronal stack in RAS: i toward R, j toward S, k toward A */
    double b[4][4] = {{1, 0, 0, 0}, {0, 0, 3, 0}, {0, 1.5, 0, 0}, {0, 0, 0, 1}};
    cr_assert_eq(vol_geom_init(&g, 8, 9, 10, b, err, sizeof err), 0);
    vol_geom_slice_frame(&g, &f);
    cr_assert_eq(f.slice_axis, 1);
    cr_assert_eq(f.u_axis, 0);
    cr_assert_eq(f.u_flip, 1);
    cr_assert_eq(f.v_axis, 2);
    cr_assert_eq(f.v_flip, 1);
    cr_assert_eq(f.w, 8);
    cr_assert_eq(f.h, 10);
    cr_assert_eq(f.nslices, 9);
    cr_assert_float_eq(f.dv, 3.0, 1e-12);
    double s[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 1}};
    cr_assert_eq(vol_geom_init(&g, 8, 9, 10, s, err, sizeof err), -1);
}

/* `mkdseg info` and `mkdseg phantom` through the binary (MKDSEG_TEST_BIN, else build/mkdseg). */
static const char *bin(void)
{
    const char *b = getenv("MKDSEG_TEST_BIN");
    return b && *b ? b : "build/mkdseg";
}

static int run_capture(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(nifti_cli, info_and_phantom, .timeout = 60)
{
    if (access(bin(), X_OK) != 0)
        cr_skip_test("no mkdseg binary at %s", bin());
    char *d = mktmp();
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd,
             "%s phantom --modality ct --seed 5 --shape 24,20,12 --image %s/i.nii.gz --label "
             "%s/l.nii.gz 2>&1",
             bin(), d, d);
    cr_assert_eq(run_capture(cmd, out, sizeof out), 0, "%s", out);
    { /* written files get the mode open(O_CREAT, 0666) would give, not mkstemp's 0600 */
        mode_t um = umask(022);
        umask(um);
        char f[1100];
        struct stat st;
        snprintf(f, sizeof f, "%s/i.nii.gz", d);
        cr_assert_eq(stat(f, &st), 0);
        cr_expect_eq(st.st_mode & 0777, 0666 & ~um, "mode %o, umask %o", st.st_mode & 0777, um);
    }
    snprintf(cmd, sizeof cmd, "%s info --json %s/i.nii.gz", bin(), d);
    cr_assert_eq(run_capture(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"dims\":[24,20,12]"), "%s", out);
    cr_assert(strstr(out, "\"orientation\":\"LPS\""), "%s", out);
    cr_assert(strstr(out, "\"affine_source\":\"sform\""), "%s", out);
    cr_assert(strstr(out, "\"slicing_axis\":2"), "%s", out);
    cr_assert(strstr(out, "\"datatype\":\"int16\""), "%s", out);
    snprintf(cmd, sizeof cmd, "%s info %s/l.nii.gz", bin(), d);
    cr_assert_eq(run_capture(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "orientation:   LPS"), "%s", out);
    cr_assert(strstr(out, "intensity:     0 .. 850"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s info tests/data/truncated.nii.gz 2>&1", bin());
    cr_assert_eq(run_capture(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "data ends early"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s info 2>&1", bin());
    cr_assert_eq(run_capture(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s phantom --modality xx --seed 1 --image %s/x.nii 2>&1", bin(), d);
    cr_assert_eq(run_capture(cmd, out, sizeof out), 2);
    rmtree(d);
    free(d);
}
