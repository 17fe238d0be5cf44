/* sql_blobs.c: the statements about blobs across every table that names one (sql.h): which
 * digests rows reference, for the garbage collector (gc.c), and the blobs of rows about to be
 * deleted. A table that gains a blob column must be added to the two reference statements
 * (tests/unit/test_gc.c compares them with the schema). */
#include "sql.h"

/* the digest each row names, through its sha256 column and the last component of its path */
#define BLOB_REFS                                                                                  \
    "SELECT sha256 FROM volumes UNION SELECT regexp_replace(path, '^.*/', '') FROM volumes "       \
    "UNION SELECT label_sha256 FROM volumes WHERE label_sha256 IS NOT NULL UNION SELECT "          \
    "regexp_replace(label_path, '^.*/', '') FROM volumes WHERE label_path IS NOT NULL UNION "      \
    "SELECT weights_sha256 FROM models UNION SELECT regexp_replace(weights_path, '^.*/', '') "     \
    "FROM "                                                                                        \
    "models UNION SELECT mask_sha256 FROM inferences WHERE mask_sha256 IS NOT NULL UNION SELECT "  \
    "regexp_replace(mask_path, '^.*/', '') FROM inferences WHERE mask_path IS NOT NULL UNION "     \
    "SELECT uncertainty_sha256 FROM inferences WHERE uncertainty_sha256 IS NOT NULL UNION SELECT " \
    "regexp_replace(uncertainty_path, '^.*/', '') FROM inferences WHERE uncertainty_path IS NOT "  \
    "NULL UNION SELECT sha256 FROM slicer_images UNION SELECT regexp_replace(path, '^.*/', '') "   \
    "FROM slicer_images"

const db_stmt sql_blobs_referenced = {"blobs_referenced",
                                      "SELECT d FROM (" BLOB_REFS ") AS refs (d)", 0};

const db_stmt sql_blobs_is_referenced = {
    "blobs_is_referenced", "SELECT EXISTS (SELECT 1 FROM (" BLOB_REFS ") AS refs (d) WHERE d = $1)",
    1};

const db_stmt sql_blobs_active_jobs = {
    "blobs_active_jobs", "SELECT id FROM jobs WHERE state IN ('queued', 'running')", 0};

const db_stmt sql_blobs_of_dataset = {
    "blobs_of_dataset",
    "SELECT sha256 FROM volumes WHERE dataset_id = $1::bigint UNION SELECT label_sha256 FROM "
    "volumes WHERE dataset_id = $1::bigint AND label_sha256 IS NOT NULL",
    1};

const db_stmt sql_blobs_of_model = {"blobs_of_model",
                                    "SELECT weights_sha256 FROM models WHERE id = $1::bigint", 1};

/* backup (cmd_backup.c): one read-only snapshot shared with pg_dump --snapshot, so that the
 * blobs copied are those the dumped rows name */
const db_stmt sql_backup_begin = {"backup_begin",
                                  "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0};

const db_stmt sql_backup_snapshot = {"backup_snapshot", "SELECT pg_export_snapshot()", 0};

/* restore: whether the target database holds any table of its own */
const db_stmt sql_backup_user_tables = {
    "backup_user_tables",
    "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    0};
