/* handlers.h: the HTTP handlers named in the routing table (routes.c), one block per resource
 * file. Each answers through http_reply_* / http_error (http.h); the helpers they share are in
 * api_util.h. */
#ifndef MKDSEG_HANDLERS_H
#define MKDSEG_HANDLERS_H

#include "http.h"

/* handlers_ops.c: operational endpoints */
void h_healthz(http_req *r);
void h_readyz(http_req *r);
void h_metrics(http_req *r);
void h_version(http_req *r);

/* handlers_datasets.c */
void h_datasets_create(http_req *r);
void h_datasets_list(http_req *r);
void h_datasets_get(http_req *r);
void h_datasets_delete(http_req *r);

/* handlers_volumes.c */
void h_volumes_add(http_req *r);

/* handlers_segment.c */
void h_segment(http_req *r);
void h_inference_mask(http_req *r);
void h_inference_uncertainty(http_req *r); /* handlers_uncertainty.c */
void h_volume_image(http_req *r);          /* handlers_volume_files.c */
void h_volume_label(http_req *r);
void h_ui_index(http_req *r); /* handlers_ui.c: the dashboard's static files */
void h_ui_file(http_req *r);
void h_ui_vendor(http_req *r);

/* handlers_models.c */
void h_models_list(http_req *r);
void h_models_get(http_req *r);
void h_models_weights(http_req *r);
void h_models_upload(http_req *r);
void h_models_promote(http_req *r);
void h_models_evaluate(http_req *r);
void h_models_delete(http_req *r);

/* handlers_jobs.c */
void h_train(http_req *r);
void h_jobs_list(http_req *r);
void h_jobs_get(http_req *r);
void h_jobs_cancel(http_req *r);
void h_jobs_events(http_req *r);

/* handlers_dice.c */
void h_dice(http_req *r);

#endif
