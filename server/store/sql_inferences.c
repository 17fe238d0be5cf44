/* sql_inferences.c: the statements about inferences (sql.h). */
#include "sql.h"

const db_stmt sql_inferences_insert = {
    "inferences_insert",
    "INSERT INTO inferences (model_id, request_id, input_name, input_sha256, dims, spacing, "
    "mask_sha256, mask_path, structures, dice, timings_ms, uncertainty_sha256, uncertainty_path, "
    "uncertainty) VALUES ($1::bigint, $2, $3, $4, $5::int[], $6::float8[], $7, $8, $9::jsonb, "
    "$10::jsonb, $11::jsonb, nullif($12, ''), nullif($13, ''), $14::jsonb) RETURNING id",
    14};

const db_stmt sql_inferences_mask_path = {
    "inferences_mask_path",
    "SELECT mask_path FROM inferences WHERE id = $1::bigint AND mask_path IS NOT NULL", 1};

const db_stmt sql_inferences_uncertainty_path = {
    "inferences_uncertainty_path",
    "SELECT uncertainty_path, mask_path FROM inferences WHERE id = $1::bigint", 1};
