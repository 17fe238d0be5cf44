/* test_nifti_inflate.c: compressed NIfTI data read by the two inflaters of nifti_read.c, the
 * whole-file libdeflate one (MKDSEG_INFLATE=auto) and zlib's stream (=zlib), give the same
 * volume bit for bit: files written by other software (nibabel's test data), a phantom CT
 * written by vol_write, the chosen volume of a 4-D file, and gzip streams libdeflate's path
 * does not take and hands to zlib (two gzip members, as `cat a.gz b.gz` makes; an inflated
 * size in the trailer that is not the real one). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phantom.h"
#include "vol.h"

static void read_as(const char *path, const vol_read_opts *o, const char *mode, vol_t *v)
{
    char err[512];
    setenv("MKDSEG_INFLATE", mode, 1);
    int rc = vol_read(path, o, v, err, sizeof err);
    unsetenv("MKDSEG_INFLATE");
    cr_assert_eq(rc, 0, "%s (MKDSEG_INFLATE=%s): %s", path, mode, err);
}

static void same_both_ways(const char *path, const vol_read_opts *o)
{
    vol_t a, b;
    read_as(path, o, "auto", &a);
    read_as(path, o, "zlib", &b);
    cr_assert(a.hdr.compressed && b.hdr.compressed, "%s", path);
    const size_t n = (size_t)a.geom.nx * a.geom.ny * a.geom.nz;
    cr_assert_eq(n, (size_t)b.geom.nx * b.geom.ny * b.geom.nz);
    cr_expect(!memcmp(a.data, b.data, n * sizeof(float)), "%s: the two inflaters differ", path);
    cr_expect(a.vmin == b.vmin && a.vmax == b.vmax);
    vol_free(&a);
    vol_free(&b);
}

Test(nifti_inflate, other_software)
{
    const char *dir = "/usr/lib/python3/dist-packages/nibabel/tests/data";
    char p[512];
    snprintf(p, sizeof p, "%s/standard.nii.gz", dir);
    same_both_ways(p, NULL);
    snprintf(p, sizeof p, "%s/example4d.nii.gz", dir);
    for (int64_t t = 0; t < 2; t++) {
        vol_read_opts o = {0, 1, t};
        same_both_ways(p, &o);
    }
}

/* a phantom CT as .nii.gz (int16), and the same bytes as two gzip members and with a false
 * inflated size in the gzip trailer */
Test(nifti_inflate, phantom_and_streams_zlib_takes)
{
    char err[512], dir[] = "/tmp/mkd_inflate_XXXXXX", p[600], q[600], cmd[2048];
    cr_assert(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/ct.nii.gz", dir);
    phantom_opts po;
    phantom_default(&po, PREP_CT, 3);
    po.shape[0] = 40;
    po.shape[1] = 36;
    po.shape[2] = 12;
    phantom_vol pv;
    cr_assert_eq(phantom_generate(&po, &pv, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_write(p, &pv.geom, pv.image, VOL_DT_INT16, err, sizeof err), 0, "%s", err);
    phantom_free(&pv);
    same_both_ways(p, NULL);
    /* two members: the inflated file split at byte 1000, each part gzipped */
    snprintf(q, sizeof q, "%s/two.nii.gz", dir);
    snprintf(cmd, sizeof cmd,
             "cd %s && gzip -dc ct.nii.gz > ct.nii && head -c 1000 ct.nii | gzip -c > two.nii.gz "
             "&& tail -c +1001 ct.nii | gzip -c >> two.nii.gz",
             dir);
    cr_assert_eq(system(cmd), 0);
    same_both_ways(q, NULL);
    vol_t a, b;
    read_as(p, NULL, "auto", &a);
    read_as(q, NULL, "auto", &b);
    const size_t n = (size_t)a.geom.nx * a.geom.ny * a.geom.nz;
    cr_expect(!memcmp(a.data, b.data, n * sizeof(float)), "two members read differently");
    vol_free(&b);
    /* the trailer's size (last 4 bytes) claiming 1 byte more: libdeflate refuses, and the
     * error is zlib's, the same as with zlib alone */
    snprintf(q, sizeof q, "%s/isize.nii.gz", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", p, q);
    cr_assert_eq(system(cmd), 0);
    FILE *f = fopen(q, "r+b");
    cr_assert(f);
    unsigned char t[4];
    cr_assert_eq(fseek(f, -4, SEEK_END), 0);
    cr_assert_eq(fread(t, 1, 4, f), 4);
    t[0]++;
    cr_assert_eq(fseek(f, -4, SEEK_END), 0);
    cr_assert_eq(fwrite(t, 1, 4, f), 4);
    fclose(f);
    char err2[512];
    setenv("MKDSEG_INFLATE", "auto", 1);
    cr_expect_eq(vol_read(q, NULL, &b, err, sizeof err), -1);
    setenv("MKDSEG_INFLATE", "zlib", 1);
    cr_expect_eq(vol_read(q, NULL, &b, err2, sizeof err2), -1);
    unsetenv("MKDSEG_INFLATE");
    cr_expect(strstr(err, "corrupt compressed data"), "%s", err);
    cr_expect_str_eq(err, err2);
    vol_free(&a);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
