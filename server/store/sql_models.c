/* sql_models.c: the statements about models, model_datasets (sql.h). */
#include "sql.h"

#define MODEL_JSON                                                                                 \
    "json_build_object('id', m.id, 'name', m.name, 'method', m.method, 'modality', m.modality, "   \
    "'config', m.config, 'weights_sha256', m.weights_sha256, 'weights_size', m.weights_size, "     \
    "'job_id', m.job_id, 'is_default', m.is_default, 'created_at', m.created_at, 'datasets', "     \
    "coalesce((SELECT json_agg(json_build_object('dataset_id', md.dataset_id, 'role', md.role) "   \
    "ORDER BY md.role, md.dataset_id) FROM model_datasets md WHERE md.model_id = m.id), '[]'))"

/* Dice summary: per dataset, the mean rows (volume_id NULL) of the newest evaluation. */
#define MODEL_DICE                                                                                 \
    "coalesce((SELECT json_object_agg(x.dataset_id::text, x.s) FROM (SELECT d.dataset_id, "        \
    "json_build_object('job_id', d.job_id, 'created_at', max(d.created_at), 'mean', avg(d.dice), " \
    "'structures', json_object_agg(d.structure, d.dice)) AS s FROM dice_results d WHERE "          \
    "d.model_id = m.id AND d.volume_id IS NULL AND d.job_id IS NOT DISTINCT FROM (SELECT "         \
    "d2.job_id "                                                                                   \
    "FROM dice_results d2 WHERE d2.model_id = m.id AND d2.dataset_id = d.dataset_id ORDER BY "     \
    "d2.id DESC LIMIT 1) GROUP BY d.dataset_id, d.job_id) x), '{}')"

const db_stmt sql_models_list = {"models_list",
                                 "SELECT json_build_object('models', coalesce(json_agg(" MODEL_JSON
                                 " ORDER BY m.id), '[]'))::text "
                                 "FROM models m",
                                 0};

const db_stmt sql_models_get = {
    "models_get",
    "SELECT (jsonb_build_object('metadata', m.metadata, 'dice', " MODEL_DICE ") || (" MODEL_JSON
    ")::jsonb)::text FROM models m WHERE m.id = $1::bigint",
    1};

const db_stmt sql_models_weights_path = {
    "models_weights_path", "SELECT weights_path FROM models WHERE id = $1::bigint", 1};

const db_stmt sql_models_insert = {
    "models_insert",
    "WITH m AS (INSERT INTO models (name, method, modality, config, metadata, weights_sha256, "
    "weights_path, weights_size) VALUES (nullif($1, ''), $2, $3, $4::jsonb, $5::jsonb, $6, $7, "
    "$8::bigint) RETURNING *) SELECT m.id, (" MODEL_JSON ")::text FROM m",
    8};

const db_stmt sql_models_exists = {"models_exists", "SELECT 1 FROM models WHERE id = $1::bigint",
                                   1};

const db_stmt sql_models_unpromote = {
    "models_unpromote",
    "UPDATE models SET is_default = false WHERE is_default AND id <> $1::bigint", 1};

const db_stmt sql_models_promote = {
    "models_promote", "UPDATE models SET is_default = true WHERE id = $1::bigint RETURNING id", 1};

const db_stmt sql_models_get_plain = {
    "models_get_plain", "SELECT (" MODEL_JSON ")::text FROM models m WHERE m.id = $1::bigint", 1};

const db_stmt sql_models_by_ref = {
    "models_by_ref",
    "SELECT id, weights_path, coalesce(name, '') FROM models WHERE id::text = $1 OR name = $1 "
    "ORDER BY (id::text = $1) DESC LIMIT 1",
    1};

const db_stmt sql_models_default = {
    "models_default", "SELECT id, weights_path, coalesce(name, '') FROM models WHERE is_default",
    0};

const db_stmt sql_models_of_job = {"models_of_job",
                                   "SELECT id FROM models WHERE job_id = $1::bigint", 1};

const db_stmt sql_models_insert_trained = {
    "models_insert_trained",
    "INSERT INTO models (method, modality, config, metadata, weights_sha256, weights_path, "
    "weights_size, job_id) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7::bigint, $8::bigint) "
    "RETURNING id",
    8};

const db_stmt sql_models_count = {"models_count", "SELECT count(*) FROM models", 0};

const db_stmt sql_models_insert_default = {
    "models_insert_default",
    "INSERT INTO models (name, method, modality, config, metadata, weights_sha256, "
    "weights_path, weights_size, is_default) SELECT 'default', $1, $2, $3::jsonb, $4::jsonb, "
    "$5, $6, $7::bigint, true WHERE NOT EXISTS (SELECT 1 FROM models) RETURNING id",
    7};

const db_stmt sql_model_datasets_insert = {
    "model_datasets_insert",
    "INSERT INTO model_datasets (model_id, dataset_id, role) VALUES ($1::bigint, "
    "$2::bigint, $3) ON CONFLICT DO NOTHING",
    3};

/* a model's name as the API shows it: its name, else model-<id> */
#define ML_MODEL_NAME "coalesce(m.name, 'model-' || m.id)"

const db_stmt sql_models_named = {"models_named",
                                  "SELECT " ML_MODEL_NAME
                                  ", m.id, m.method, coalesce(m.modality, ''), m.is_default "
                                  "FROM models m ORDER BY m.is_default DESC, m.id",
                                  0};

const db_stmt sql_models_by_name = {
    "models_by_name",
    "SELECT m.id, m.weights_path, " ML_MODEL_NAME " FROM models m WHERE " ML_MODEL_NAME " = $1 "
    "OR m.id::text = $1 ORDER BY (" ML_MODEL_NAME " = $1) DESC LIMIT 1",
    1};

const db_stmt sql_models_in_use = {
    "models_in_use",
    "SELECT is_default, (SELECT count(*) FROM jobs WHERE state IN ('queued','running') AND "
    "params->>'model_id' = $1::text) FROM models WHERE id = $1::bigint",
    1};

const db_stmt sql_models_delete = {
    "models_delete",
    "DELETE FROM models WHERE id = $1::bigint AND NOT is_default RETURNING weights_sha256", 1};
