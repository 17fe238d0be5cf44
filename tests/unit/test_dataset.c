/* test_dataset.c: labelled volumes -> training slices. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

static char dir[256];
static void setup(void)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/ds.XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
TestSuite(dataset, .init = setup, .fini = teardown);

static void phantom(const char *mod, int seed, const char *img, const char *lab)
{
    char cmd[1024];
    snprintf(
        cmd, sizeof cmd,
        "%s phantom --modality %s --seed %d --shape 48,44,16 --image %s --label %s 2>/dev/null",
        getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg", mod, seed, img,
        lab);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(dataset, slices_hold_the_labelled_structures_in_range)
{
    char img[300], lab[300], err[256];
    snprintf(img, sizeof img, "%s/a_image.nii.gz", dir);
    snprintf(lab, sizeof lab, "%s/a_label.nii.gz", dir);
    phantom("ct", 3, img, lab);
    vol_t lv = {0};
    cr_assert_eq(vol_read(lab, NULL, &lv, err, sizeof err), 0, "%s", err);
    int64_t n = lv.geom.nx * lv.geom.ny * lv.geom.nz;
    uint8_t *cls = malloc((size_t)n);
    cr_assert_eq(vol_labels_to_classes(lv.data, n, VOL_LABELS_AUTO, cls, err, sizeof err), 0, "%s",
                 err);
    vol_slice_frame f;
    vol_geom_slice_frame(&lv.geom, &f);
    int labelled = 0;
    for (int64_t k = 0; k < f.nslices; k++) {
        uint8_t *sl = malloc((size_t)(f.w * f.h));
        prep_slice_get_u8(&lv.geom, &f, cls, k, sl);
        for (int64_t i = 0; i < f.w * f.h; i++)
            if (sl[i]) {
                labelled++;
                break;
            }
        free(sl);
    }
    cr_assert_gt(labelled, 0);

    train_slices s = {0};
    dataset_opts o = {.spacing = 0, .size = 32, .empty_every = 0, .seed = 1};
    prep_norm_default(&o.norm, PREP_CT);
    cr_assert_eq(dataset_add_files(&s, &o, img, lab, 0, err, sizeof err), 0, "%s", err);
    cr_expect_eq(s.n, labelled, "one slice per labelled slice (%d), got %d", labelled, s.n);
    cr_expect_eq(s.size, 32);
    int fg = 0;
    for (size_t i = 0; i < (size_t)s.n * 32 * 32; i++) {
        cr_assert(s.img[i] >= -1.0f && s.img[i] <= 1.0f, "intensity %g outside [-1,1]", s.img[i]);
        cr_assert(s.lab[i] >= 0 && s.lab[i] < VOL_NCLASSES);
        fg += s.lab[i] > 0;
    }
    cr_expect_gt(fg, 0);
    /* keeping every empty slice adds the rest */
    int before = s.n;
    o.empty_every = 1;
    cr_assert_eq(dataset_add_files(&s, &o, img, lab, 0, err, sizeof err), 0, "%s", err);
    cr_expect_eq(s.n - before, (int)f.nslices);
    /* a different window size cannot be mixed in */
    o.size = 48;
    cr_expect_eq(dataset_add_files(&s, &o, img, lab, 0, err, sizeof err), -1);
    dataset_free(&s);
    free(cls);
    vol_free(&lv);
}

Test(dataset, mismatched_grids_and_unknown_labels_are_errors)
{
    char a[300], al[300], b[300], bl[300], err[256];
    snprintf(a, sizeof a, "%s/a_image.nii.gz", dir);
    snprintf(al, sizeof al, "%s/a_label.nii.gz", dir);
    snprintf(b, sizeof b, "%s/b_image.nii.gz", dir);
    snprintf(bl, sizeof bl, "%s/b_label.nii.gz", dir);
    phantom("ct", 3, a, al);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s phantom --modality ct --seed 4 --shape 40,40,16 --image %s --label %s 2>/dev/null",
             getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg", b, bl);
    cr_assert_eq(system(cmd), 0);
    train_slices s = {0};
    dataset_opts o = {.spacing = 3, .size = 32, .empty_every = 0, .seed = 1};
    prep_norm_default(&o.norm, PREP_CT);
    cr_expect_eq(dataset_add_files(&s, &o, a, bl, 0, err, sizeof err), -1);
    cr_expect(strstr(err, "different grids"), "%s", err);
    /* an image used as its own label map holds values that are not MM-WHS codes */
    cr_expect_eq(dataset_add_files(&s, &o, a, a, 0, err, sizeof err), -1);
    cr_expect(strstr(err, "a_image.nii.gz"), "%s", err);
    dataset_free(&s);
}
