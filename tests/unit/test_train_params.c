/* test_train_params.c: the train job's parameters (server/jobs/train_params.c): the validation
 * split POST /train applies, the JSON round trip between the handler and the job, and the one
 * modality parser (prep_modality_parse) refusing unknown names. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "train_params.h"

static train_ids ids_of(const char *json)
{
    json_t *a = json_loads(json, 0, NULL);
    train_ids t;
    cr_assert_eq(train_ids_from_json(&t, a), 0);
    json_decref(a);
    return t;
}

static void expect_ids(const train_ids *t, const long long *want, size_t n)
{
    cr_expect_eq(t->n, n);
    for (size_t i = 0; i < n && i < t->n; i++)
        cr_expect_eq(t->id[i], want[i], "entry %zu: %lld, expected %lld", i, t->id[i], want[i]);
}

/* split of all (JSON array) by validation (JSON text, NULL: absent); err[0] = 0 when it worked */
static int split(const char *all_json, const char *validation, train_ids *train, train_ids *valid,
                 char err[256])
{
    train_ids all = ids_of(all_json);
    json_t *v = validation ? json_loads(validation, JSON_DECODE_ANY, NULL) : NULL;
    err[0] = 0;
    int rc = train_split_validation(v, &all, train, valid, err, 256);
    json_decref(v);
    free(all.id);
    return rc;
}

Test(train_params, split_absent_or_null_keeps_every_volume_for_training)
{
    train_ids t, v;
    char err[256];
    const long long want[] = {4, 7, 9};
    cr_assert_eq(split("[4,7,9]", NULL, &t, &v, err), 0, "%s", err);
    expect_ids(&t, want, 3);
    cr_expect_eq(v.n, 0);
    free(t.id), free(v.id);
    cr_assert_eq(split("[4,7,9]", "null", &t, &v, err), 0, "%s", err);
    expect_ids(&t, want, 3);
    cr_expect_eq(v.n, 0);
    free(t.id), free(v.id);
}

Test(train_params, split_fraction_holds_out_the_last_rounded_share)
{
    train_ids t, v;
    char err[256];
    /* 0.25 of 10 = 2.5, rounded half up: 3 volumes, the last ones */
    cr_assert_eq(split("[1,2,3,4,5,6,7,8,9,10]", "0.25", &t, &v, err), 0, "%s", err);
    const long long wt[] = {1, 2, 3, 4, 5, 6, 7}, wv[] = {8, 9, 10};
    expect_ids(&t, wt, 7);
    expect_ids(&v, wv, 3);
    free(t.id), free(v.id);
    /* a tiny fraction still holds out one volume */
    cr_assert_eq(split("[5,6]", "0.01", &t, &v, err), 0, "%s", err);
    const long long wt2[] = {5}, wv2[] = {6};
    expect_ids(&t, wt2, 1);
    expect_ids(&v, wv2, 1);
    free(t.id), free(v.id);
}

Test(train_params, split_ids_hold_out_exactly_those)
{
    train_ids t, v;
    char err[256];
    cr_assert_eq(split("[3,5,8,13]", "[13,5]", &t, &v, err), 0, "%s", err);
    const long long wt[] = {3, 8}, wv[] = {13, 5};
    expect_ids(&t, wt, 2);
    expect_ids(&v, wv, 2);
    free(t.id), free(v.id);
}

Test(train_params, split_refuses_what_it_cannot_honour)
{
    train_ids t = {0}, v = {0};
    char err[256];
    cr_expect_eq(split("[3,5]", "[4]", &t, &v, err), -1);
    cr_expect(strstr(err, "not a labelled volume of the target dataset"), "%s", err);
    cr_expect_eq(split("[3,5]", "[\"3\"]", &t, &v, err), -1);
    cr_expect(strstr(err, "(not an integer)"), "%s", err);
    cr_expect_eq(split("[3,5]", "1.0", &t, &v, err), -1);
    cr_expect(strstr(err, "fraction must be in (0, 1)"), "%s", err);
    cr_expect_eq(split("[3,5]", "0", &t, &v, err), -1);
    cr_expect_eq(split("[3,5]", "\"half\"", &t, &v, err), -1);
    cr_expect(strstr(err, "array of volume ids or a fraction"), "%s", err);
    cr_expect_eq(split("[3,5]", "[3,5]", &t, &v, err), -1);
    cr_expect(strstr(err, "no target volume is left for training"), "%s", err);
    cr_expect_eq(split("[3]", "0.5", &t, &v, err), -1);
    cr_expect(strstr(err, "no target volume is left"), "%s", err);
    cr_expect(t.id == NULL && v.id == NULL && t.n == 0 && v.n == 0, "nothing is left allocated");
}

Test(train_params, json_round_trip_is_what_the_job_reads)
{
    train_params p = {0}, q;
    char err[256];
    train_config_default(&p.config);
    p.config.method = TM_JOINT;
    p.config.iters = 123;
    p.target_dataset = 11;
    p.assistant_dataset = 12;
    p.target_modality = PREP_CT;
    p.assistant_modality = PREP_MR;
    p.target_volumes = ids_of("[1,2]");
    p.assistant_volumes = ids_of("[7]");
    p.validation_volumes = ids_of("[3]");
    json_t *j = train_params_to_json(&p);
    cr_assert(j);
    cr_expect_str_eq(json_string_value(json_object_get(j, "method")), "joint");
    cr_expect_str_eq(json_string_value(json_object_get(j, "assistant_modality")), "mr");
    cr_assert_eq(train_params_from_json(&q, j, err, sizeof err), 0, "%s", err);
    cr_expect_eq(q.target_dataset, 11);
    cr_expect_eq(q.assistant_dataset, 12);
    cr_expect_eq(q.config.method, TM_JOINT);
    cr_expect_eq(q.config.iters, 123);
    cr_expect_eq(q.target_modality, PREP_CT);
    cr_expect_eq(q.assistant_modality, PREP_MR);
    const long long wt[] = {1, 2}, wa[] = {7}, wv[] = {3};
    expect_ids(&q.target_volumes, wt, 2);
    expect_ids(&q.assistant_volumes, wa, 1);
    expect_ids(&q.validation_volumes, wv, 1);
    /* no assistant: null in JSON, 0 back */
    p.assistant_dataset = 0;
    json_t *k = train_params_to_json(&p);
    cr_expect(json_is_null(json_object_get(k, "assistant_dataset")));
    train_params r;
    cr_assert_eq(train_params_from_json(&r, k, err, sizeof err), 0, "%s", err);
    cr_expect_eq(r.assistant_dataset, 0);
    train_params_free(&r);
    /* an unknown modality is refused, not read as CT */
    json_object_set_new(k, "target_modality", json_string("pet"));
    cr_expect_eq(train_params_from_json(&r, k, err, sizeof err), -1);
    cr_expect(strstr(err, "target_modality"), "%s", err);
    json_decref(j), json_decref(k);
    train_params_free(&p);
    train_params_free(&q);
}

Test(train_params, modality_parser_knows_ct_and_mr_only)
{
    prep_modality m = PREP_MR;
    cr_expect_eq(prep_modality_parse("ct", &m), 0);
    cr_expect_eq(m, PREP_CT);
    cr_expect_eq(prep_modality_parse("mr", &m), 0);
    cr_expect_eq(m, PREP_MR);
    cr_expect_eq(prep_modality_parse("CT", &m), -1);
    cr_expect_eq(prep_modality_parse("", &m), -1);
    cr_expect_eq(prep_modality_parse(NULL, &m), -1);
    cr_expect_eq(prep_modality_parse("mri", &m), -1);
    cr_expect_str_eq(prep_modality_name(PREP_CT), "ct");
    cr_expect_str_eq(prep_modality_name(PREP_MR), "mr");
}
