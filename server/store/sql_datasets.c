/* sql_datasets.c: the statements about datasets (sql.h). */
#include "sql.h"

#define DATASET_JSON                                                                               \
    "json_build_object('id', d.id, 'name', d.name, 'modality', d.modality, 'description', "        \
    "d.description, 'created_at', d.created_at, 'volumes', coalesce((SELECT json_agg("             \
    "json_build_object('id', v.id, 'name', v.name, 'dims', v.dims, 'spacing', v.spacing, "         \
    "'sha256', v.sha256, 'has_label', v.label_sha256 IS NOT NULL, 'label_stats', v.label_stats) "  \
    "ORDER BY v.id) FROM volumes v WHERE v.dataset_id = d.id), '[]'::json))::text"

const db_stmt sql_datasets_insert = {
    "datasets_insert",
    "WITH d AS (INSERT INTO datasets (name, modality, description) VALUES ($1, $2, $3) "
    "RETURNING *) SELECT d.id, " DATASET_JSON " FROM d",
    3};

const db_stmt sql_datasets_get = {
    "datasets_get", "SELECT " DATASET_JSON " FROM datasets d WHERE d.id = $1::bigint", 1};

const db_stmt sql_datasets_list = {
    "datasets_list",
    "SELECT json_build_object('datasets', coalesce(json_agg(json_build_object('id', d.id, "
    "'name', d.name, 'modality', d.modality, 'description', d.description, 'created_at', "
    "d.created_at, 'volume_count', (SELECT count(*) FROM volumes v WHERE v.dataset_id = d.id)) "
    "ORDER BY d.id), '[]'::json))::text FROM datasets d",
    0};

const db_stmt sql_datasets_in_use = {
    "datasets_in_use",
    "SELECT (SELECT count(*) FROM model_datasets WHERE dataset_id = $1::bigint), (SELECT count(*) "
    "FROM jobs WHERE state IN ('queued','running') AND (params->>'target_dataset' = $1::text OR "
    "params->>'assistant_dataset' = $1::text OR params->>'dataset_id' = $1::text)), (SELECT "
    "count(*) FROM "
    "datasets WHERE id = $1::bigint)",
    1};

const db_stmt sql_datasets_delete = {"datasets_delete",
                                     "DELETE FROM datasets WHERE id = $1::bigint", 1};

const db_stmt sql_datasets_modality = {"datasets_modality",
                                       "SELECT modality FROM datasets WHERE id = $1::bigint", 1};

const db_stmt sql_datasets_labelled_volumes = {
    "datasets_labelled_volumes",
    "SELECT d.modality, coalesce((SELECT json_agg(v.id ORDER BY v.id) FROM volumes v WHERE "
    "v.dataset_id = d.id AND v.label_path IS NOT NULL), '[]')::text FROM datasets d WHERE d.id = "
    "$1::bigint",
    1};

const db_stmt sql_datasets_labelled_count = {
    "datasets_labelled_count",
    "SELECT d.modality, (SELECT count(*) FROM volumes v WHERE v.dataset_id = d.id AND "
    "v.label_path IS NOT NULL) FROM datasets d WHERE d.id = $1::bigint",
    1};
