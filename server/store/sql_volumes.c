/* sql_volumes.c: the statements about volumes (sql.h). */
#include "sql.h"

const db_stmt sql_volumes_insert = {
    "volumes_insert",
    "INSERT INTO volumes (dataset_id, name, modality, dims, spacing, affine, sha256, path, "
    "size_bytes, label_sha256, label_path, label_stats) VALUES ($1::bigint, $2, $3, $4::int[], "
    "$5::float8[], $6::float8[], $7, $8, $9::bigint, $10, $11, $12::jsonb) RETURNING "
    "json_build_object("
    "'id', id, 'dataset_id', dataset_id, 'name', name, 'modality', modality, 'dims', dims, "
    "'spacing', "
    "spacing, 'sha256', sha256, 'size_bytes', size_bytes, 'has_label', label_sha256 IS NOT NULL, "
    "'label_sha256', label_sha256, 'label_stats', label_stats, 'created_at', created_at)::text",
    12};

const db_stmt sql_volumes_labelled_by_ids = {
    "volumes_labelled_by_ids",
    "SELECT id, path, label_path FROM volumes WHERE id = ANY($1::bigint[]) AND "
    "label_path IS NOT NULL ORDER BY id",
    1};

const db_stmt sql_volumes_labelled_of_dataset = {
    "volumes_labelled_of_dataset",
    "SELECT id, path, label_path FROM volumes WHERE dataset_id = $1::bigint AND "
    "label_path IS NOT NULL ORDER BY id",
    1};

const db_stmt sql_volumes_files = {"volumes_files",
                                   "SELECT path, label_path FROM volumes WHERE id = $1::bigint", 1};
