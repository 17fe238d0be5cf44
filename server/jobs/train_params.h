/* train_params.h: the parameters of a "train" job, defined once. POST /train (handlers_jobs.c)
 * fills a train_params and stores train_params_to_json as the job's params; job_train reads
 * them back with train_params_from_json. The JSON:
 *   {"target_dataset": id, "assistant_dataset": id|null, "method": "mkd", "config": {the full
 *    train_config}, "target_volumes": [ids], "assistant_volumes": [ids],
 *    "validation_volumes": [ids], "target_modality": "ct"|"mr", "assistant_modality": "ct"|"mr"}
 * (without an assistant dataset the assistant modality is "mr"). */
#ifndef MKDSEG_TRAIN_PARAMS_H
#define MKDSEG_TRAIN_PARAMS_H

#include <stddef.h>
#include <jansson.h>

#include "prep.h"
#include "train_config.h"

/* A list of volume ids (malloc'd; n entries). */
typedef struct {
    long long *id;
    size_t n;
} train_ids;

typedef struct {
    long long target_dataset;
    long long assistant_dataset; /* 0: none */
    train_config config;         /* config.method is the job's method */
    prep_modality target_modality, assistant_modality;
    train_ids target_volumes, assistant_volumes, validation_volumes;
} train_params;

/* The params as JSON (new reference). */
json_t *train_params_to_json(const train_params *p);
/* Reads and checks params written by train_params_to_json: the config parses and validates,
 * the modalities are "ct" or "mr". 0, or -1 + err (p is then freed). */
int train_params_from_json(train_params *p, const json_t *j, char *err, size_t errlen);
/* Frees the id lists. */
void train_params_free(train_params *p);

/* The ids of a JSON array of integers; -1 when an element is not an integer. */
int train_ids_from_json(train_ids *ids, const json_t *a);
/* A JSON array of the ids (new reference). */
json_t *train_ids_to_json(const train_ids *ids);
/* Whether id is in ids. */
int train_ids_has(const train_ids *ids, long long id);

/* The validation split of the target volumes `all` (labelled, in id order) as POST /train's
 * `validation` asks: absent / null, none held out; an array of ids, those (each must be in
 * all); a fraction f in (0, 1), the last max(1, round(f * n)) volumes. *train gets the others,
 * in order. 0, or -1 + err (nothing allocated) when the request is not one of these or leaves
 * no volume for training. No I/O. */
int train_split_validation(const json_t *validation, const train_ids *all, train_ids *train,
                           train_ids *valid, char *err, size_t errlen);

#endif
