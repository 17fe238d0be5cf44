/* handlers_volume_files.c: GET /volumes/{id}/image and /volumes/{id}/label, a dataset volume's
 * stored NIfTI files (for viewers: the dashboard opens any volume of a dataset). */
#include <string.h>

#include "api_ui.h"
#include "api_util.h"
#include "sql.h"
#include "handlers.h"
#include "svc.h"

/* Answers column col (0 image, 1 label) of volume {id}. */
static void reply_volume_file(http_req *r, int col)
{
    long long id;
    PGresult *res = api_row_by_id(r, "volume", &sql_volumes_files, &id);
    if (!res)
        return;
    if (PQgetisnull(res, 0, col)) {
        PQclear(res);
        http_error(r, 404, "not_found", "id", "volume %lld has no label", id);
        return;
    }
    char path[1400], why[128];
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, col), path, sizeof path);
    PQclear(res);
    int gz = 0;
    svc_nifti_sniff(path, &gz, why, sizeof why);
    const char *name =
        col ? (gz ? "label.nii.gz" : "label.nii") : (gz ? "image.nii.gz" : "image.nii");
    api_reply_file(r, path, gz ? "application/gzip" : "application/octet-stream", name);
}

void h_volume_image(http_req *r) { reply_volume_file(r, 0); }
void h_volume_label(http_req *r) { reply_volume_file(r, 1); }
