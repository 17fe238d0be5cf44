/* handlers_dicom.c: DICOM uploads for the volume routes (POST /segment, POST
 * /datasets/{id}/volumes): recognising a DICOM series, answering the reader's refusals with
 * their own error codes, converting a series to NIfTI for the dataset store, and writing the
 * DICOM SEG answer of /segment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicom.h"
#include "api_dicom.h"
#include "api_util.h"
#include "svc.h"

static int dicom_status(dicom_code c)
{
    switch (c) {
    case DICOM_E_COMPRESSION:
    case DICOM_E_UNSUPPORTED:
        return 415;
    case DICOM_E_TOO_LARGE:
        return 413;
    case DICOM_E_INTERNAL:
        return 500;
    default:
        return 422;
    }
}

int api_upload_dicom(http_req *r, upload_file *f)
{
    if (dicom_sniff(f->path) != 1)
        return 0;
    char err[768];
    vol_t v;
    dicom_code code = DICOM_OK;
    if (dicom_read(f->path, NULL, 0, &v, NULL, &code, err, sizeof err) < 0) {
        http_error(r, dicom_status(code), dicom_code_name(code), f->field, "field '%s' (%s): %s",
                   f->field, f->filename, err);
        return -1;
    }
    return 1;
}

int api_dicom_to_nifti(http_req *r, upload_file *f)
{
    char err[768], np[1300];
    vol_t v;
    dicom_code code = DICOM_OK;
    if (dicom_read(f->path, NULL, 1, &v, NULL, &code, err, sizeof err) < 0) {
        http_error(r, dicom_status(code), dicom_code_name(code), f->field, "field '%s' (%s): %s",
                   f->field, f->filename, err);
        return -1;
    }
    snprintf(np, sizeof np, "%s.nii.gz", f->path);
    int rc = vol_write(np, &v.geom, v.data, VOL_DT_FLOAT32, err, sizeof err);
    vol_free(&v);
    long long size = 0;
    if (rc < 0 || svc_sha256_file(np, f->sha256, &size) < 0) {
        unlink(np);
        http_error(r, 500, "internal", NULL, "cannot convert the DICOM series to NIfTI");
        return -1;
    }
    upload_discard(f);
    snprintf(f->path, sizeof f->path, "%s", np);
    f->size = size;
    return 0;
}

int api_write_seg(http_req *r, const char *src, const char *mask_path, const char *out_path,
                  char uids[2][65])
{
    char err[768];
    vol_geom g;
    uint8_t *cls = NULL;
    if (vol_read_labels(mask_path, NULL, VOL_LABELS_AUTO, &g, &cls, err, sizeof err) < 0) {
        http_error(r, 500, "internal", NULL, "cannot read the label map back: %s", err);
        return -1;
    }
    int rc = dicom_seg_write(src, cls, out_path, uids, err, sizeof err);
    free(cls);
    if (rc < 0) {
        unlink(out_path);
        if (strstr(err, "no structure"))
            http_error(r, 422, "empty_segmentation", "vol", "%s", err);
        else
            http_error(r, 500, "internal", NULL, "%s", err);
        return -1;
    }
    return 0;
}
