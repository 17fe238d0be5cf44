/* test_dice_regression.c: the CI Dice guard. scripts/dice-ci.sh trains a tiny `mkd`
 * model on phantom volumes with a fixed seed and evaluates its ensemble on held-out phantom CT;
 * this test fails when the mean Dice falls below the floor committed in tests/dice_floor.txt
 * (set from measured runs with a margin; raising it is a deliberate commit). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(dice_regression, tiny_mkd_model_stays_above_the_committed_floor, .timeout = 1500)
{
    FILE *f = fopen("tests/dice_floor.txt", "r");
    cr_assert_not_null(f, "tests/dice_floor.txt is missing");
    char line[256];
    double floor_ = -1;
    while (fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%lf", &floor_) == 1)
            break;
    fclose(f);
    cr_assert(floor_ > 0 && floor_ < 1, "no floor in tests/dice_floor.txt");

    const char *bin = getenv("MKDSEG_TEST_BIN") ? getenv("MKDSEG_TEST_BIN") : "build/mkdseg";
    const char *tmp = getenv("MKDSEG_TEST_TMP") ? getenv("MKDSEG_TEST_TMP") : "/tmp";
    char dir[512], cmd[1200];
    snprintf(dir, sizeof dir, "%s/dice-ci.XXXXXX", tmp);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "scripts/dice-ci.sh %s %s > %s/eval.json", bin, dir, dir);
    int rc = system(cmd);
    char tail[1200];
    snprintf(tail, sizeof tail, "tail -5 %s/train.log >&2", dir);
    if (rc)
        (void)!system(tail);
    cr_assert_eq(rc, 0, "%s failed", cmd);
    char path[600];
    snprintf(path, sizeof path, "%s/eval.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    double dice = json_real_value(json_object_get(json_object_get(j, "mean"), "dice"));
    fprintf(stderr, "dice-ci: ensemble mean Dice %.4f (floor %.4f)\n", dice, floor_);
    cr_expect_geq(dice, floor_, "ensemble mean Dice %.4f fell below the committed floor %.4f", dice,
                  floor_);
    json_decref(j);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)!system(cmd);
}
