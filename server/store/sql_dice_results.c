/* sql_dice_results.c: the statements about dice_results (sql.h). */
#include "sql.h"

const db_stmt sql_dice_results_list = {
    "dice_results_list",
    "WITH f AS (SELECT * FROM dice_results WHERE ($1 = '' OR model_id = nullif($1, '')::bigint) "
    "AND ($2 = '' OR dataset_id = nullif($2, '')::bigint)) "
    "SELECT json_build_object("
    "'runs', coalesce((SELECT json_agg(x ORDER BY x.created_at, x.job_id) FROM (SELECT job_id, "
    "model_id, dataset_id, min(created_at) AS created_at, avg(dice) AS mean_dice, avg(assd) AS "
    "mean_assd, avg(hd95) AS mean_hd95, json_object_agg(structure, json_build_object('dice', dice, "
    "'assd', assd, 'hd95', hd95)) AS structures FROM f WHERE volume_id IS NULL GROUP BY job_id, "
    "model_id, dataset_id) x), '[]'), "
    "'results', coalesce((SELECT json_agg(json_build_object('model_id', model_id, 'dataset_id', "
    "dataset_id, 'volume_id', volume_id, 'job_id', job_id, 'structure', structure, 'dice', dice, "
    "'assd', assd, 'hd95', hd95, 'created_at', created_at) ORDER BY id) FROM f), '[]'))::text",
    2};

const db_stmt sql_dice_results_insert = {
    "dice_results_insert",
    "INSERT INTO dice_results (model_id, dataset_id, volume_id, job_id, "
    "structure, dice, assd, hd95) VALUES ($1::bigint, $2::bigint, $3::bigint, "
    "$4::bigint, $5, $6::float8, $7::float8, $8::float8)",
    8};

const db_stmt sql_dice_results_insert_mean = {
    "dice_results_insert_mean",
    "INSERT INTO dice_results (model_id, dataset_id, volume_id, job_id, "
    "structure, dice, assd, hd95) VALUES ($1::bigint, $2::bigint, NULL, $3::bigint, "
    "$4, $5::float8, $6::float8, $7::float8)",
    7};

const db_stmt sql_dice_results_delete_job = {
    "dice_results_delete_job", "DELETE FROM dice_results WHERE job_id = $1::bigint", 1};
