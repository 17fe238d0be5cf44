/* train_params.c: see train_params.h. */
#include "train_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ids_push(train_ids *ids, long long id)
{
    long long *p = realloc(ids->id, (ids->n + 1) * sizeof *p);
    if (!p)
        return -1;
    ids->id = p;
    ids->id[ids->n++] = id;
    return 0;
}

static void ids_free(train_ids *ids)
{
    free(ids->id);
    ids->id = NULL;
    ids->n = 0;
}

int train_ids_from_json(train_ids *ids, const json_t *a)
{
    size_t i;
    json_t *x;
    ids->id = NULL;
    ids->n = 0;
    json_array_foreach (a, i, x) {
        if (!json_is_integer(x) || ids_push(ids, (long long)json_integer_value(x)) < 0) {
            ids_free(ids);
            return -1;
        }
    }
    return 0;
}

json_t *train_ids_to_json(const train_ids *ids)
{
    json_t *a = json_array();
    for (size_t i = 0; i < ids->n; i++)
        json_array_append_new(a, json_integer(ids->id[i]));
    return a;
}

int train_ids_has(const train_ids *ids, long long id)
{
    for (size_t i = 0; i < ids->n; i++)
        if (ids->id[i] == id)
            return 1;
    return 0;
}

json_t *train_params_to_json(const train_params *p)
{
    char *cs = train_config_to_json(&p->config);
    json_t *cj = cs ? json_loads(cs, 0, NULL) : NULL;
    free(cs);
    return json_pack("{s:I,s:o,s:s,s:o,s:o,s:o,s:o,s:s,s:s}", "target_dataset",
                     (json_int_t)p->target_dataset, "assistant_dataset",
                     p->assistant_dataset ? json_integer(p->assistant_dataset) : json_null(),
                     "method", train_method_name(p->config.method), "config",
                     cj ? cj : json_object(), "target_volumes",
                     train_ids_to_json(&p->target_volumes), "assistant_volumes",
                     train_ids_to_json(&p->assistant_volumes), "validation_volumes",
                     train_ids_to_json(&p->validation_volumes), "target_modality",
                     prep_modality_name(p->target_modality), "assistant_modality",
                     prep_modality_name(p->assistant_modality));
}

static int ids_field(train_ids *ids, const json_t *j, const char *name, char *err, size_t errlen)
{
    const json_t *a = json_object_get(j, name);
    if (!json_is_array(a) || train_ids_from_json(ids, a) < 0) {
        snprintf(err, errlen, "job params: %s must be an array of volume ids", name);
        return -1;
    }
    return 0;
}

static int modality_field(prep_modality *m, const json_t *j, const char *name, char *err,
                          size_t errlen)
{
    if (prep_modality_parse(json_string_value(json_object_get(j, name)), m) < 0) {
        snprintf(err, errlen, "job params: %s must be \"ct\" or \"mr\"", name);
        return -1;
    }
    return 0;
}

int train_params_from_json(train_params *p, const json_t *j, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    const json_t *t = json_object_get(j, "target_dataset"),
                 *a = json_object_get(j, "assistant_dataset");
    const char *field = NULL;
    if (!json_is_integer(t)) {
        snprintf(err, errlen, "job params: target_dataset must be a dataset id");
        return -1;
    }
    p->target_dataset = (long long)json_integer_value(t);
    p->assistant_dataset = json_is_integer(a) ? (long long)json_integer_value(a) : 0;
    train_config_default(&p->config);
    if (train_config_from_json(&p->config, json_object_get(j, "config"), err, errlen, &field) < 0 ||
        train_config_validate(&p->config, err, errlen) < 0 ||
        modality_field(&p->target_modality, j, "target_modality", err, errlen) < 0 ||
        modality_field(&p->assistant_modality, j, "assistant_modality", err, errlen) < 0 ||
        ids_field(&p->target_volumes, j, "target_volumes", err, errlen) < 0 ||
        ids_field(&p->assistant_volumes, j, "assistant_volumes", err, errlen) < 0 ||
        ids_field(&p->validation_volumes, j, "validation_volumes", err, errlen) < 0) {
        train_params_free(p);
        return -1;
    }
    return 0;
}

void train_params_free(train_params *p)
{
    ids_free(&p->target_volumes);
    ids_free(&p->assistant_volumes);
    ids_free(&p->validation_volumes);
}

/* validation = an array of ids: each must be one of all's */
static int split_ids(const json_t *validation, const train_ids *all, train_ids *valid, char *err,
                     size_t errlen)
{
    size_t i;
    json_t *x;
    json_array_foreach (validation, i, x) {
        if (!json_is_integer(x) || !train_ids_has(all, (long long)json_integer_value(x))) {
            snprintf(err, errlen,
                     "validation volume %s is not a labelled volume of the target dataset",
                     json_is_integer(x) ? "id" : "(not an integer)");
            return -1;
        }
        if (ids_push(valid, (long long)json_integer_value(x)) < 0)
            goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* validation = a fraction: the last max(1, round(f * n)) volumes */
static int split_fraction(double f, const train_ids *all, train_ids *valid, char *err,
                          size_t errlen)
{
    if (!(f > 0 && f < 1)) {
        snprintf(err, errlen, "a validation fraction must be in (0, 1)");
        return -1;
    }
    size_t nv = (size_t)(f * (double)all->n + 0.5);
    if (nv < 1)
        nv = 1;
    for (size_t i = 0; i < all->n; i++)
        if (i + nv >= all->n && ids_push(valid, all->id[i]) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return 0;
}

int train_split_validation(const json_t *validation, const train_ids *all, train_ids *train,
                           train_ids *valid, char *err, size_t errlen)
{
    int rc = 0;
    memset(train, 0, sizeof *train);
    memset(valid, 0, sizeof *valid);
    if (json_is_array(validation))
        rc = split_ids(validation, all, valid, err, errlen);
    else if (json_is_number(validation))
        rc = split_fraction(json_number_value(validation), all, valid, err, errlen);
    else if (validation && !json_is_null(validation)) {
        snprintf(err, errlen, "validation must be an array of volume ids or a fraction");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < all->n; i++)
        if (!train_ids_has(valid, all->id[i]) && ids_push(train, all->id[i]) < 0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    if (rc == 0 && train->n == 0) {
        snprintf(err, errlen, "no target volume is left for training");
        rc = -1;
    }
    if (rc < 0) {
        ids_free(train);
        ids_free(valid);
    }
    return rc;
}
