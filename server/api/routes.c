/* routes.c: the static routing table. Every route here must be in api/openapi.yaml (and every
 * operation there not marked `x-mkdseg-status: planned` must be here): tests/unit/
 * test_http_openapi.c checks both directions. Order matters only for readability. */
#include "api_dicom.h"
#include "handlers.h"
#include "monailabel.h"
#include "upload.h"
#include "http.h"

const http_route http_routes[] = {
    /* operations */
    {"GET", "/healthz", h_healthz, HTTP_NO_LIMIT, NULL, HTTP_PUBLIC},
    {"GET", "/readyz", h_readyz, HTTP_NO_LIMIT, NULL, HTTP_PUBLIC},
    {"GET", "/metrics", h_metrics, HTTP_NO_LIMIT, NULL, HTTP_SCOPE_READ},
    {"GET", "/version", h_version, 0, NULL, HTTP_SCOPE_READ},
    /* datasets and their volumes */
    {"POST", "/datasets", h_datasets_create, HTTP_JSON | HTTP_MUTATING, NULL, HTTP_SCOPE_TRAIN},
    {"GET", "/datasets", h_datasets_list, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/datasets/{id}", h_datasets_get, 0, NULL, HTTP_SCOPE_READ},
    /* segmentation, volumes, training and jobs, models, Dice */
    {"POST", "/segment", h_segment, HTTP_MUTATING, api_volume_body,
     HTTP_SCOPE_SEGMENT}, /* multipart, or JSON for DICOMweb */
    {"GET", "/inferences/{id}/mask", h_inference_mask, 0, NULL, HTTP_SCOPE_READ},
    {"POST", "/datasets/{id}/volumes", h_volumes_add, HTTP_MUTATING, api_volume_body,
     HTTP_SCOPE_TRAIN},
    {"DELETE", "/datasets/{id}", h_datasets_delete, HTTP_MUTATING, NULL, HTTP_SCOPE_ADMIN},
    {"POST", "/train", h_train, HTTP_JSON | HTTP_MUTATING, NULL, HTTP_SCOPE_TRAIN},
    {"GET", "/jobs", h_jobs_list, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/jobs/{id}", h_jobs_get, 0, NULL, HTTP_SCOPE_READ},
    {"DELETE", "/jobs/{id}", h_jobs_cancel, HTTP_MUTATING, NULL, HTTP_SCOPE_TRAIN},
    {"GET", "/jobs/{id}/events", h_jobs_events, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/models", h_models_list, 0, NULL, HTTP_SCOPE_READ},
    {"POST", "/models", h_models_upload, HTTP_MUTATING, upload_on_body, HTTP_SCOPE_ADMIN},
    {"GET", "/models/{id}", h_models_get, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/models/{id}/weights", h_models_weights, 0, NULL, HTTP_SCOPE_READ},
    {"DELETE", "/models/{id}", h_models_delete, HTTP_MUTATING, NULL, HTTP_SCOPE_ADMIN},
    {"POST", "/models/{id}/promote", h_models_promote, HTTP_MUTATING, NULL, HTTP_SCOPE_ADMIN},
    {"POST", "/models/{id}/evaluate", h_models_evaluate, HTTP_JSON | HTTP_MUTATING, NULL,
     HTTP_SCOPE_TRAIN},
    {"GET", "/dice", h_dice, 0, NULL, HTTP_SCOPE_READ},
    /* the MONAI Label protocol for 3D Slicer (monailabel.h), served under --monailabel-prefix */
    {"GET", "/monailabel/auth/", ml_auth, HTTP_DETAIL, NULL, HTTP_PUBLIC},
    {"POST", "/monailabel/auth/token", ml_auth_token, HTTP_DETAIL, NULL, HTTP_PUBLIC},
    {"GET", "/monailabel/auth/token/valid", ml_auth_token_valid, HTTP_DETAIL, NULL,
     HTTP_SCOPE_READ},
    {"GET", "/monailabel/info/", ml_info, HTTP_DETAIL, NULL, HTTP_SCOPE_READ},
    {"GET", "/monailabel/train/", ml_train_status, HTTP_DETAIL, NULL, HTTP_SCOPE_READ},
    {"PUT", "/monailabel/datastore/", ml_datastore_put, HTTP_DETAIL | HTTP_MUTATING, upload_on_body,
     HTTP_SCOPE_TRAIN},
    {"POST", "/monailabel/infer/{model}", ml_infer, HTTP_DETAIL | HTTP_MUTATING, upload_on_body,
     HTTP_SCOPE_SEGMENT},
    /* the dashboard: the ensemble's disagreement map, the static page (handlers_ui.c) */
    {"GET", "/inferences/{id}/uncertainty", h_inference_uncertainty, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/volumes/{id}/image", h_volume_image, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/volumes/{id}/label", h_volume_label, 0, NULL, HTTP_SCOPE_READ},
    {"GET", "/", h_ui_index, 0, NULL, HTTP_PUBLIC},
    {"GET", "/ui/{file}", h_ui_file, 0, NULL, HTTP_PUBLIC},
    {"GET", "/ui/vendor/{file}", h_ui_vendor, 0, NULL, HTTP_PUBLIC},
};
const int http_nroutes = (int)(sizeof http_routes / sizeof http_routes[0]);
