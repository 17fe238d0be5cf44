/* sql_slicer_images.c: the statements about slicer images (sql.h). */
#include "sql.h"

const db_stmt sql_slicer_images_count = {"slicer_images_count",
                                         "SELECT count(*) FROM slicer_images", 0};

const db_stmt sql_slicer_images_put = {
    "slicer_images_put",
    "INSERT INTO slicer_images (name, sha256, path, size, ext, filename, client_id) VALUES ($1, "
    "$2, "
    "$3, $4::bigint, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, path = "
    "EXCLUDED.path, size = EXCLUDED.size, ext = EXCLUDED.ext, filename = EXCLUDED.filename, "
    "client_id = EXCLUDED.client_id, updated_at = now()",
    7};

const db_stmt sql_slicer_images_get = {"slicer_images_get",
                                       "SELECT path FROM slicer_images WHERE name = $1", 1};
