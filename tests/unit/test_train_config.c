/* test_train_config.c: the training settings table (command line, JSON, round trip). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "train_config.h"

Test(train_config, defaults_are_the_papers)
{
    train_config c;
    train_config_default(&c);
    cr_expect_eq(c.method, TM_MKD);
    cr_expect_float_eq(c.lr_seg, 2e-4f, 1e-9);
    cr_expect_float_eq(c.lr_gan, 2e-4f, 1e-9);
    cr_expect_float_eq(c.lambda_cyc, 10.0f, 0);
    cr_expect_float_eq(c.lambda_kd1, 0.5f, 0);
    cr_expect_float_eq(c.lambda_kd2, 1.0f, 0);
    cr_expect_float_eq(c.gan_beta1, 0.5f, 0);
    cr_expect_float_eq(c.seg_decay, 0.9f, 1e-7);
    cr_expect_eq(c.seg_decay_every, 2);
    cr_expect_eq(c.pool_size, 50);
    cr_expect_eq(c.bn_target_stats, 1);
    cr_expect_eq(c.seg_width, 32);
    cr_expect_eq(c.ngf, 64);
    cr_expect_eq(c.ngen_blocks, 9);
    cr_expect_eq(c.ndf, 64);
    char err[128];
    cr_expect_eq(train_config_validate(&c, err, sizeof err), 0, "%s", err);
}

Test(train_config, argv_sets_known_options_and_keeps_the_rest)
{
    train_config c;
    train_config_default(&c);
    char *argv[] = {"--seg-width",  "16",   "--target-dir", "x",      "--method=mkd-no-kd-r2s",
                    "--lambda-kd1", "0.25", "pos",          "--seed", "9223372036854775807"};
    char *rest[10];
    int nrest;
    char err[128] = "";
    cr_assert_eq(train_config_from_argv(&c, 10, argv, rest, &nrest, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.seg_width, 16);
    cr_expect_eq(c.method, TM_MKD_NO_KD_R2S);
    cr_expect_float_eq(c.lambda_kd1, 0.25f, 0);
    cr_expect_eq(c.seed, 9223372036854775807ULL);
    cr_assert_eq(nrest, 3);
    cr_expect_str_eq(rest[0], "--target-dir");
    cr_expect_str_eq(rest[1], "x");
    cr_expect_str_eq(rest[2], "pos");

    char *bad1[] = {"--size", "12x"};
    cr_expect_eq(train_config_from_argv(&c, 2, bad1, rest, &nrest, err, sizeof err), -1);
    cr_expect(strstr(err, "size"));
    char *bad2[] = {"--method", "gan"};
    cr_expect_eq(train_config_from_argv(&c, 2, bad2, rest, &nrest, err, sizeof err), -1);
    cr_expect(strstr(err, "unknown method 'gan'"));
    char *bad3[] = {"--batch"};
    cr_expect_eq(train_config_from_argv(&c, 1, bad3, rest, &nrest, err, sizeof err), -1);
    cr_expect(strstr(err, "needs a value"));
    char *bad5[] = {"--seed", "18446744073709551615"};
    cr_expect_eq(train_config_from_argv(&c, 2, bad5, rest, &nrest, err, sizeof err), -1);
    char *bad4[] = {"--lr-seg", "nan"};
    cr_expect_eq(train_config_from_argv(&c, 2, bad4, rest, &nrest, err, sizeof err), -1);
}

Test(train_config, json_round_trip_and_errors)
{
    train_config a, b;
    train_config_default(&a);
    a.method = TM_FINETUNE;
    a.seg_width = 8;
    a.lambda_cyc = 3.5f;
    a.lr_seg = 1.2345678e-4f;
    a.seed = 42;
    char *s = train_config_to_json(&a);
    cr_assert_not_null(s);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    cr_assert_not_null(j, "%s", je.text);
    train_config_default(&b);
    char err[128];
    const char *field;
    cr_assert_eq(train_config_from_json(&b, j, err, sizeof err, &field), 0, "%s", err);
    cr_expect_eq(memcmp(&a, &b, sizeof a), 0, "round trip differs: %s", s);
    json_decref(j);
    free(s);

    j = json_pack("{s:i, s:s}", "seg_width", 4, "bogus", "x");
    cr_expect_eq(train_config_from_json(&b, j, err, sizeof err, &field), -1);
    cr_expect(strstr(err, "unknown setting 'bogus'"));
    json_decref(j);
    j = json_pack("{s:s}", "iters", "ten");
    cr_expect_eq(train_config_from_json(&b, j, err, sizeof err, &field), -1);
    cr_expect_str_eq(field, "iters");
    json_decref(j);
    j = json_pack("{s:f}", "batch", 2.5);
    cr_expect_eq(train_config_from_json(&b, j, err, sizeof err, &field), -1);
    json_decref(j);
}

Test(train_config, validate_catches_bad_combinations)
{
    train_config c;
    train_config_default(&c);
    char err[128];
    c.size = 40;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), -1);
    cr_expect(strstr(err, "multiple of 16"));
    c.size = 16;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), -1);
    c.method = TM_BASELINE;
    cr_expect_eq(train_config_validate(&c, err, sizeof err), 0, "%s", err);
    c.iters = 0;
    c.epochs = 3;
    c.iters_per_epoch = 7;
    cr_expect_eq(train_config_total_iters(&c), 21);
    c.iters = 5;
    cr_expect_eq(train_config_total_iters(&c), 5);
}
