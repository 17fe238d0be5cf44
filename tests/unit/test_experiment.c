/* test_experiment.c: `make experiment`'s runner (scripts/experiment.py) end to end on a tiny
 * config with the real `mkdseg`: every run of the plan trains and is evaluated, a longer budget
 * continues its 1200-iteration analogue from that run's final checkpoint (and reaches its own
 * iteration count), the report gets its Table 5, and a second invocation trains nothing. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/tsrv.h"

static char dir[512];

static void cleanup(void)
{
    if (dir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", dir);
        dir[0] = 0;
    }
}

static long file_mtime_ns(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s is missing", path);
    return st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
}

Test(experiment, budgets_continue_from_the_final_checkpoint, .fini = cleanup, .timeout = 900)
{
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/exp.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dir));
    const char *bin = tenv("MKDSEG_TEST_BIN");
    /* a phantom benchmark of 4 CT and 2 MR volumes, the benchmark's names */
    tsh("mkdir -p '%s/ph/ct' '%s/ph/mr'", dir, dir);
    for (int i = 1; i <= 4; i++)
        tsh("'%s' phantom --modality ct --seed %d --shape 40,40,12 --image "
            "'%s/ph/ct/ct_train_20%02d_image.nii.gz' --label "
            "'%s/ph/ct/ct_train_20%02d_label.nii.gz' "
            "2>/dev/null",
            bin, 2000 + i, dir, i, dir, i);
    for (int i = 1; i <= 2; i++)
        tsh("'%s' phantom --modality mr --seed %d --shape 40,40,12 --image "
            "'%s/ph/mr/mr_train_10%02d_image.nii.gz' --label "
            "'%s/ph/mr/mr_train_10%02d_label.nii.gz' "
            "2>/dev/null",
            bin, 1000 + i, dir, i, dir, i);
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/exp.json", dir);
    FILE *f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f,
            "{\"phantom_dir\": \"%s/ph\", \"out_dir\": \"%s/out\", \"report_dir\": \"%s/rep\",\n"
            " \"target_per_fold\": 1, \"folds\": 2, \"seeds\": [1], \"main_seeds\": [1],\n"
            " \"test_per_fold\": 1, \"methods\": [\"baseline\", \"mkd\"], \"reverse\": false,\n"
            " \"parallel\": 2, \"train\": {\"iters\": 4, \"iters_per_epoch\": 2, \"size\": 32,\n"
            " \"spacing\": 3, \"batch\": 2, \"seg_width\": 2, \"ngf\": 2, \"ngen_blocks\": 1,\n"
            " \"ndf\": 2, \"threads\": 1},\n"
            " \"budgets\": {\"iters\": [6, 8], \"methods\": [\"baseline\", \"mkd\"], \"seeds\": "
            "[1]}}\n",
            dir, dir, dir);
    fclose(f);
    tsh("/usr/bin/python3 scripts/experiment.py '%s' --bin '%s' > '%s/run1.log' 2>&1", cfg, bin,
        dir);

    char path[800];
    snprintf(path, sizeof path, "%s/rep/results.json", dir);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    cr_assert(doc, "%s: %s", path, je.text);
    json_t *runs = json_object_get(doc, "runs");
    /* 2 folds x 2 methods at 4 iterations, and at 6 and 8 */
    cr_assert_eq(json_array_size(runs), 12, "runs: %zu", json_array_size(runs));
    int budget = 0;
    size_t i;
    json_t *r;
    json_array_foreach (runs, i, r) {
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *study = json_string_value(json_object_get(r, "study"));
        int iters = (int)json_integer_value(json_object_get(r, "iters"));
        cr_expect(json_is_real(json_object_get(
                      json_object_get(json_object_get(r, "eval"), "ensemble"), "dice")),
                  "%s has no test Dice", name);
        if (strcmp(study, "budget"))
            continue;
        budget++;
        cr_expect(iters == 6 || iters == 8, "%s: iters %d", name, iters);
        /* it resumed at the previous point's last iteration and trained to its own */
        snprintf(path, sizeof path, "%s/out/%s/train.log", dir, name);
        char *log = tslurp(path, NULL);
        char want[64];
        snprintf(want, sizeof want, "at iteration %d", iters == 6 ? 4 : 6);
        cr_expect(strstr(log, "resumed from") && strstr(log, want), "%s: %s", name, log);
        snprintf(want, sizeof want, "\"iterations\":%d", iters);
        cr_expect(strstr(log, want), "%s does not end at %d iterations: %s", name, iters, log);
        free(log);
    }
    cr_expect_eq(budget, 8);
    json_decref(doc);
    snprintf(path, sizeof path, "%s/rep/results.md", dir);
    char *md = tslurp(path, NULL);
    cr_expect(strstr(md, "## Table 5: longer budgets") &&
                  strstr(md, "| 4 iterations | 6 iterations | 8 iterations |"),
              "%s", md);
    free(md);

    /* again: every result is kept, nothing trains */
    snprintf(path, sizeof path, "%s/out/budget-ct-f1-s1-mkd-a2-i8/model.safetensors", dir);
    long before = file_mtime_ns(path);
    tsh("/usr/bin/python3 scripts/experiment.py '%s' --bin '%s' > '%s/run2.log' 2>&1", cfg, bin,
        dir);
    cr_expect_eq(file_mtime_ns(path), before, "the second run trained again");
}
