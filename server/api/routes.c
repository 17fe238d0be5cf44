/* routes.c: the static routing table. Every route here must be in api/openapi.yaml (and every
 * operation there not marked `x-mkdseg-status: planned` must be here): tests/unit/
 * test_http_openapi.c checks both directions. Order matters only for readability. */
#include "handlers.h"
#include "handlers_svc.h"
#include "upload.h"
#include "http.h"

const http_route http_routes[] = {
    /* operations */
    {"GET", "/healthz", h_healthz, HTTP_NO_LIMIT, NULL},
    {"GET", "/readyz", h_readyz, HTTP_NO_LIMIT, NULL},
    {"GET", "/metrics", h_metrics, HTTP_NO_LIMIT, NULL},
    {"GET", "/version", h_version, 0, NULL},
    /* datasets (issue 6 extends these) */
    {"POST", "/datasets", h_datasets_create, HTTP_JSON | HTTP_MUTATING, NULL},
    {"GET", "/datasets", h_datasets_list, 0, NULL},
    {"GET", "/datasets/{id}", h_datasets_get, 0, NULL},
    /* issue 6: segmentation, models, jobs, volumes, Dice (handlers_svc.h) */
    {"POST", "/segment", h_segment, HTTP_MUTATING, upload_on_body},
    {"GET", "/inferences/{id}/mask", h_inference_mask, 0, NULL},
    {"POST", "/datasets/{id}/volumes", h_volumes_add, HTTP_MUTATING, upload_on_body},
    {"DELETE", "/datasets/{id}", h_datasets_delete, HTTP_MUTATING, NULL},
    {"POST", "/train", h_train, HTTP_JSON | HTTP_MUTATING, NULL},
    {"GET", "/jobs", h_jobs_list, 0, NULL},
    {"GET", "/jobs/{id}", h_jobs_get, 0, NULL},
    {"DELETE", "/jobs/{id}", h_jobs_cancel, HTTP_MUTATING, NULL},
    {"GET", "/jobs/{id}/events", h_jobs_events, 0, NULL},
    {"GET", "/models", h_models_list, 0, NULL},
    {"POST", "/models", h_models_upload, HTTP_MUTATING, upload_on_body},
    {"GET", "/models/{id}", h_models_get, 0, NULL},
    {"GET", "/models/{id}/weights", h_models_weights, 0, NULL},
    {"POST", "/models/{id}/promote", h_models_promote, HTTP_MUTATING, NULL},
    {"POST", "/models/{id}/evaluate", h_models_evaluate, HTTP_JSON | HTTP_MUTATING, NULL},
    {"GET", "/dice", h_dice, 0, NULL},
};
const int http_nroutes = (int)(sizeof http_routes / sizeof http_routes[0]);
