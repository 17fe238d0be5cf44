/* test_nifti_magic.c: what the reader accepts as a NIfTI file by its magic, and gzip streams cut
 * short. A single-file .nii must carry "n+1" (nifticlib would read any other header as ANALYZE
 * 7.5 and guess where the data starts); a real ANALYZE 7.5 or "ni1" pair is read under its .hdr
 * name, with the same voxels as the .nii it was cut from. A .nii.gz cut inside its last block
 * or CRC trailer (all voxels present) is refused, and `mkdseg info` exits 1 on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "vol.h"

static char dir[256];

static void setup(void)
{
    const char *t = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/magic.XXXXXX", t && *t ? t : "/tmp");
    cr_assert(mkdtemp(dir));
}
static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
TestSuite(nifti_magic, .init = setup, .fini = teardown);

#define NX 6
#define NY 5
#define NZ 4

/* Writes a small float32 volume to <dir>/name; returns the path (static buffer per call). */
static void write_volume(const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    double a[4][4] = {{1.5, 0, 0, -3}, {0, 1.5, 0, 2}, {0, 0, 2.5, 7}, {0, 0, 0, 1}};
    vol_geom g;
    char err[256];
    cr_assert_eq(vol_geom_init(&g, NX, NY, NZ, a, err, sizeof err), 0, "%s", err);
    float data[NX * NY * NZ];
    for (int i = 0; i < NX * NY * NZ; i++)
        data[i] = (float)(i * 7 % 23) - 4.0f;
    cr_assert_eq(vol_write(path, &g, data, VOL_DT_FLOAT32, err, sizeof err), 0, "%s", err);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spill(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "create %s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* vol_read must fail on path with a message containing want */
static void refused(const char *path, const char *want)
{
    vol_t v;
    char err[512] = "";
    cr_assert_eq(vol_read(path, NULL, &v, err, sizeof err), -1, "%s was read", path);
    cr_assert(strstr(err, want), "%s: '%s' lacks '%s'", path, err, want);
}

/* reads path and compares its voxels with the original .nii */
static void same_voxels(const char *path, const char *orig)
{
    vol_t a, b;
    char err[512];
    cr_assert_eq(vol_read(path, NULL, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_read(orig, NULL, &b, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.geom.nx * a.geom.ny * a.geom.nz, (int64_t)NX * NY * NZ);
    cr_assert_eq(memcmp(a.data, b.data, sizeof(float) * NX * NY * NZ), 0, "%s: other voxels", path);
    vol_free(&a);
    vol_free(&b);
}

Test(nifti_magic, a_nii_needs_the_single_file_magic)
{
    char nii[400], bad[400];
    write_volume("a.nii", nii, sizeof nii);
    size_t n;
    unsigned char *b = slurp(nii, &n);
    cr_assert_eq(memcmp(b + 344, "n+1", 4), 0, "the writer's magic");
    memcpy(b + 344, "abc", 4);
    snprintf(bad, sizeof bad, "%s/abc.nii", dir);
    spill(bad, b, n);
    refused(bad, "magic is neither 'n+1' nor 'ni1'");
    memset(b + 344, 0, 4); /* an ANALYZE 7.5 header under a .nii name */
    snprintf(bad, sizeof bad, "%s/analyze.nii", dir);
    spill(bad, b, n);
    refused(bad, "read only as a .hdr/.img pair");
    memcpy(b + 344, "ni1", 4);
    snprintf(bad, sizeof bad, "%s/ni1.nii", dir);
    spill(bad, b, n);
    refused(bad, "header of a .hdr/.img pair");
    free(b);
}

Test(nifti_magic, real_pairs_are_read_under_their_hdr_name)
{
    char nii[400], hdr[400], img[400];
    write_volume("a.nii", nii, sizeof nii);
    size_t n;
    unsigned char *b = slurp(nii, &n);
    float off;
    memcpy(&off, b + 108, 4);
    cr_assert(off >= 348 && off < n);
    static const char *const magics[] = {"ni1", ""};
    for (int k = 0; k < 2; k++) {
        unsigned char h[348];
        memcpy(h, b, 348);
        memset(h + 344, 0, 4);
        memcpy(h + 344, magics[k], strlen(magics[k]));
        float zero = 0; /* a pair's data starts at the top of the .img */
        memcpy(h + 108, &zero, 4);
        snprintf(hdr, sizeof hdr, "%s/p%d.hdr", dir, k);
        snprintf(img, sizeof img, "%s/p%d.img", dir, k);
        spill(hdr, h, sizeof h);
        spill(img, b + (size_t)off, n - (size_t)off);
        same_voxels(hdr, nii);
    }
    free(b);
}

Test(nifti_magic, a_gzip_stream_cut_in_its_trailer_is_refused)
{
    char gz[400], cut[400];
    write_volume("a.nii.gz", gz, sizeof gz);
    size_t n;
    unsigned char *b = slurp(gz, &n);
    snprintf(cut, sizeof cut, "%s/cut.nii.gz", dir);
    for (size_t k = 1; k <= 8; k++) {
        spill(cut, b, n - k);
        refused(cut, "truncated gzip stream");
    }
    /* the whole stream still reads */
    vol_t v;
    char err[512];
    cr_assert_eq(vol_read(gz, NULL, &v, err, sizeof err), 0, "%s", err);
    vol_free(&v);
    /* and `mkdseg info`, which reads the data as well as the header, exits 1 */
    const char *bin = getenv("MKDSEG_TEST_BIN");
    if (bin) {
        spill(cut, b, n - 4);
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "'%s' info '%s' >/dev/null 2>&1", bin, cut);
        int rc = system(cmd);
        cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "mkdseg info exit status %d", rc);
    }
    free(b);
}
