/* test_dicom.c: DICOM series input (engine/io/dicom_*), against an independent writer and an
 * independent reader: pydicom writes each series from a numpy phantom
 * (tests/tools/dicom_series.py: shuffled file names and InstanceNumbers, rescale, int16 and
 * uint16), dcm2niix converts it, and mkdseg's volume must match dcm2niix's NIfTI in world space:
 * the same voxel grid up to a permutation/flip of the array axes, affine within 1e-4 mm, every
 * voxel equal. Malformed inputs are refused with their specific code. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicom.h"

#define PY "/usr/bin/python3"
#define GEN "tests/tools/dicom_series.py"

static char tmpdir[512];

static void setup(void)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/dicom.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(dicom, .init = setup, .fini = teardown, .timeout = 120);

/* Writes a series with the generator; out is a path under tmpdir. */
static void gen(const char *out, const char *args)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, PY " " GEN " '%s' %s > /dev/null", out, args);
    cr_assert_eq(system(cmd), 0, "generator failed: %s", cmd);
}

/* dcm2niix's NIfTI of the series in folder dir. */
static void oracle(const char *dir, vol_t *ref)
{
    char cmd[4096], out[600], err[512];
    snprintf(out, sizeof out, "%s/ref", tmpdir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && dcm2niix -z n -b n -f ref -o '%s' '%s' > '%s/dcm2niix.log' 2>&1",
             out, out, dir, tmpdir);
    cr_assert_eq(system(cmd), 0, "dcm2niix failed");
    snprintf(out, sizeof out, "%s/ref/ref.nii", tmpdir);
    cr_assert_eq(vol_read(out, NULL, ref, err, sizeof err), 0, "%s", err);
}

/* Checks that v and ref are the same grid in world space and hold the same voxels. */
static void same_in_world(const vol_t *v, const vol_t *ref)
{
    const double(*A)[4] = v->geom.affine, (*R)[4] = ref->geom.affine;
    int64_t dm[3] = {v->geom.nx, v->geom.ny, v->geom.nz},
            dr[3] = {ref->geom.nx, ref->geom.ny, ref->geom.nz};
    /* the reference axis (and direction) each of mkdseg's array axes runs along */
    int ax[3], sg[3];
    for (int c = 0; c < 3; c++) {
        double best = 0;
        ax[c] = -1;
        for (int d = 0; d < 3; d++) {
            double dotp = 0, na = 0, nr = 0;
            for (int r = 0; r < 3; r++)
                dotp += A[r][c] * R[r][d], na += A[r][c] * A[r][c], nr += R[r][d] * R[r][d];
            double cosv = dotp / sqrt(na * nr);
            if (fabs(cosv) > best)
                best = fabs(cosv), ax[c] = d, sg[c] = cosv > 0 ? 1 : -1;
        }
        cr_assert_gt(best, 1 - 1e-6,
                     "axis %d of mkdseg's grid is parallel to no axis of dcm2niix's", c);
        cr_assert_eq(dm[c], dr[ax[c]], "axis %d: %lld voxels, dcm2niix %lld", c, (long long)dm[c],
                     (long long)dr[ax[c]]);
        for (int r = 0; r < 3; r++)
            cr_assert(fabs(A[r][c] - sg[c] * R[r][ax[c]]) < 1e-4,
                      "affine column %d differs from dcm2niix by %g mm", c,
                      A[r][c] - sg[c] * R[r][ax[c]]);
    }
    /* voxel (0,0,0) of mkdseg's grid: where it lies in dcm2niix's */
    int64_t o[3];
    for (int c = 0; c < 3; c++)
        o[ax[c]] = sg[c] > 0 ? 0 : dr[ax[c]] - 1;
    for (int r = 0; r < 3; r++) {
        double w = R[r][3];
        for (int d = 0; d < 3; d++)
            w += R[r][d] * (double)o[d];
        cr_assert(fabs(A[r][3] - w) < 1e-4, "origin differs from dcm2niix by %g mm on axis %d",
                  A[r][3] - w, r);
    }
    int64_t diff = 0;
    for (int64_t k = 0; k < dm[2]; k++)
        for (int64_t j = 0; j < dm[1]; j++)
            for (int64_t i = 0; i < dm[0]; i++) {
                int64_t idx[3] = {i, j, k}, q[3];
                for (int c = 0; c < 3; c++)
                    q[ax[c]] = sg[c] > 0 ? idx[c] : dr[ax[c]] - 1 - idx[c];
                float a = v->data[(k * dm[1] + j) * dm[0] + i],
                      b = ref->data[(q[2] * dr[1] + q[1]) * dr[0] + q[0]];
                diff += a != b;
            }
    cr_assert_eq(diff, 0, "%lld voxels differ from dcm2niix", (long long)diff);
}

/* One series: written, zipped, read by mkdseg from the zip and from the folder, checked
 * against dcm2niix. */
static void check_series(const char *args)
{
    char dir[600], zip[600], cmd[4096], err[768];
    snprintf(dir, sizeof dir, "%s/series", tmpdir);
    snprintf(zip, sizeof zip, "%s/series.zip", tmpdir);
    gen(dir, args);
    snprintf(cmd, sizeof cmd, "cd '%s' && zip -q -r ../series.zip .", dir);
    cr_assert_eq(system(cmd), 0);
    vol_t ref, v, vd;
    oracle(dir, &ref);
    dicom_meta m;
    dicom_code code;
    cr_assert_eq(dicom_read(zip, NULL, 1, &v, &m, &code, err, sizeof err), 0, "%s: %s", args, err);
    cr_assert_eq(code, DICOM_OK);
    same_in_world(&v, &ref);
    cr_assert_eq(m.nslices, (int)v.geom.nz);
    cr_assert_eq(m.slices[0].ipp[0] * -1, v.geom.affine[0][3],
                 "the first slice is the affine's origin (LPS->RAS)");
    /* the folder reads the same */
    cr_assert_eq(vol_read_any(dir, NULL, &vd, err, sizeof err), 0, "%s", err);
    cr_assert_eq(
        memcmp(vd.data, v.data, (size_t)(v.geom.nx * v.geom.ny * v.geom.nz) * sizeof(float)), 0);
    dicom_meta_free(&m);
    vol_free(&v);
    vol_free(&vd);
    vol_free(&ref);
}

Test(dicom, axial_head_first_int16_rescaled)
{
    check_series("--orient axial-hf --dtype int16 --slope 0.5 --intercept -1024");
}
Test(dicom, axial_feet_first_uint16) { check_series("--orient axial-ff --dtype uint16 --seed 2"); }
Test(dicom, coronal_int16)
{
    check_series("--orient coronal --dtype int16 --slope 2 --intercept -1000 --seed 3");
}
Test(dicom, sagittal_uint16_rescaled)
{
    check_series("--orient sagittal --dtype uint16 --slope 1.25 --intercept 10 --seed 4");
}
Test(dicom, oblique_int16)
{
    check_series("--orient oblique --dtype int16 --slope 1 --intercept -1024 --seed 5");
}
Test(dicom, oblique_uint16_mr)
{
    check_series("--orient oblique --dtype uint16 --modality MR --seed 6 --shape 16,18,9");
}
Test(dicom, enhanced_multiframe_axial)
{
    check_series("--enhanced --orient axial-hf --slope 0.5 --intercept -1024 --seed 7");
}
Test(dicom, enhanced_multiframe_oblique)
{
    check_series("--enhanced --orient oblique --dtype uint16 --seed 8");
}

/* The slices come out in position order whatever InstanceNumber says, and the metadata that
 * `mkdseg info` prints is what was written. */
Test(dicom, metadata_and_order)
{
    char zip[600], err[768];
    snprintf(zip, sizeof zip, "%s/s.zip", tmpdir);
    gen(zip, "--orient axial-ff --seed 9 --shape 10,8,6");
    vol_t v;
    dicom_meta m;
    cr_assert_eq(dicom_read(zip, NULL, 0, &v, &m, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_null(v.data, "with_pixels = 0 decodes nothing");
    cr_assert_str_eq(m.modality, "CT");
    cr_assert_eq(m.rows, 8);
    cr_assert_eq(m.cols, 10);
    cr_assert_eq(m.nslices, 6);
    cr_assert_float_eq(m.slice_step, 2.5, 1e-9);
    cr_assert(strstr(m.slice_order, "does not follow") != NULL, "%s", m.slice_order);
    for (int k = 1; k < m.nslices; k++) /* feet-first: the normal is -z in LPS, positions descend */
        cr_assert_lt(m.slices[k].ipp[2], m.slices[k - 1].ipp[2]);
    dicom_meta_free(&m);
}

static void refused(const char *args, dicom_code want, const char *needle)
{
    char zip[600], err[768] = "";
    snprintf(zip, sizeof zip, "%s/bad.zip", tmpdir);
    gen(zip, args);
    vol_t v;
    dicom_code code = DICOM_OK;
    cr_assert_eq(dicom_read(zip, NULL, 1, &v, NULL, &code, err, sizeof err), -1, "%s was read",
                 args);
    cr_assert_eq(code, want, "%s: code %s (%s), expected %s", args, dicom_code_name(code), err,
                 dicom_code_name(want));
    cr_assert(strstr(err, needle) != NULL, "%s: '%s' lacks '%s'", args, err, needle);
    cr_assert(strstr(err, tmpdir) == NULL, "the message names a server path: %s", err);
    cr_assert_null(v.data);
}

Test(dicom, refuses_several_series)
{
    refused("--defect two-series", DICOM_E_SEVERAL_SERIES, "2 series");
}
Test(dicom, refuses_missing_slice)
{
    refused("--defect drop-slice", DICOM_E_SPACING, "not uniform");
}
Test(dicom, refuses_gantry_tilt) { refused("--defect tilt", DICOM_E_TILT, "tilted by 9.09"); }
Test(dicom, refuses_missing_pixels)
{
    refused("--defect no-pixels", DICOM_E_NO_PIXELS, "no PixelData");
}
Test(dicom, refuses_one_slice) { refused("--defect one-slice", DICOM_E_ONE_SLICE, "one slice"); }
Test(dicom, refuses_duplicate_positions)
{
    refused("--defect duplicate", DICOM_E_DUPLICATE, "same position");
}
Test(dicom, refuses_jpeg2000) { refused("--defect jpeg2000", DICOM_E_COMPRESSION, "JPEG 2000"); }
Test(dicom, refuses_truncated_file) { refused("--defect truncate", DICOM_E_CORRUPT, "truncated"); }
Test(dicom, refuses_path_traversal)
{
    refused("--zip-defect traversal", DICOM_E_ZIP_UNSAFE, "'..'");
}
Test(dicom, refuses_many_empty_entries)
{
    refused("--zip-defect empties", DICOM_E_ZIP_UNSAFE, "entries");
}
Test(dicom, refuses_zip_bomb) { refused("--zip-defect bomb", DICOM_E_ZIP_UNSAFE, "zip bomb"); }
Test(dicom, refuses_truncated_zip)
{
    refused("--zip-defect truncated-zip", DICOM_E_ARCHIVE, "zip");
}
Test(dicom, refuses_zip_without_dicom)
{
    refused("--zip-defect not-dicom", DICOM_E_NOT_DICOM, "no DICOM file");
}

/* The limit on voxels holds for DICOM as for NIfTI. */
Test(dicom, voxel_limit)
{
    char zip[600], err[768];
    snprintf(zip, sizeof zip, "%s/s.zip", tmpdir);
    gen(zip, "--shape 10,8,6");
    vol_read_opts o = {.max_voxels = 10 * 8 * 6 - 1};
    vol_t v;
    dicom_code code;
    cr_assert_eq(dicom_read(zip, &o, 1, &v, NULL, &code, err, sizeof err), -1);
    cr_assert_eq(code, DICOM_E_TOO_LARGE, "%s", err);
}

/* A SEG of a known class map (the phantom's own labels on a series pydicom wrote from the
 * phantom's image): dciodvfy finds no error, and pydicom + nibabel place every frame on the
 * label map written for the same input (tests/tools/seg_check.py). */
static void check_seg(const char *orient)
{
    char img[600], lab[600], zip[600], seg[600], nii[600], cmd[4096], err[768];
    snprintf(img, sizeof img, "%s/ph.nii.gz", tmpdir);
    snprintf(lab, sizeof lab, "%s/ph_label.nii.gz", tmpdir);
    snprintf(zip, sizeof zip, "%s/ph.zip", tmpdir);
    snprintf(seg, sizeof seg, "%s/seg.dcm", tmpdir);
    snprintf(nii, sizeof nii, "%s/seg.nii.gz", tmpdir);
    snprintf(
        cmd, sizeof cmd,
        "%s phantom --modality ct --seed 4 --shape 40,36,12 --image '%s' --label '%s' > /dev/null",
        getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg", img, lab);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char args[1400];
    snprintf(args, sizeof args, "--from-nifti '%s' --intercept -1024 --orient %s", img, orient);
    gen(zip, args);
    vol_t v;
    vol_geom lg;
    uint8_t *truth = NULL;
    cr_assert_eq(dicom_read(zip, NULL, 1, &v, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_read_labels(lab, NULL, VOL_LABELS_AUTO, &lg, &truth, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(lg.nx * lg.ny * lg.nz, v.geom.nx * v.geom.ny * v.geom.nz);
    /* the generator stores slice k of the NIfTI as the k-th position along the normal */
    cr_assert_eq(vol_write_labels(nii, &v.geom, truth, VOL_LABELS_INDEX, err, sizeof err), 0, "%s",
                 err);
    char uids[2][65];
    cr_assert_eq(dicom_seg_write(zip, truth, seg, uids, err, sizeof err), 0, "%s", err);
    cr_assert_gt(strlen(uids[0]), 10);
    snprintf(cmd, sizeof cmd,
             "dciodvfy '%s' > '%s/dciodvfy.txt' 2>&1; ! grep -q '^Error' '%s/dciodvfy.txt'", seg,
             tmpdir, tmpdir);
    cr_assert_eq(system(cmd), 0, "dciodvfy reports errors (see %s/dciodvfy.txt)", tmpdir);
    snprintf(cmd, sizeof cmd, PY " tests/tools/seg_check.py '%s' '%s' '%s' > '%s/check.json'", seg,
             zip, nii, tmpdir);
    cr_assert_eq(system(cmd), 0, "seg_check.py failed");
    free(truth);
    vol_free(&v);
}

Test(dicom, seg_axial_valid_and_placed) { check_seg("axial-hf"); }
Test(dicom, seg_oblique_valid_and_placed) { check_seg("oblique"); }

/* A class map without any structure has no segment to write: refused, no file. */
Test(dicom, seg_needs_a_structure)
{
    char zip[600], seg[600], err[768];
    snprintf(zip, sizeof zip, "%s/s.zip", tmpdir);
    snprintf(seg, sizeof seg, "%s/seg.dcm", tmpdir);
    gen(zip, "--shape 10,8,6");
    uint8_t cls[10 * 8 * 6] = {0};
    cr_assert_eq(dicom_seg_write(zip, cls, seg, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "no structure") != NULL, "%s", err);
    cr_assert_neq(access(seg, F_OK), 0);
}
