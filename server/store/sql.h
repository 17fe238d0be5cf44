/* sql.h: every SQL statement of the service, one named db_stmt each (db.h), grouped by the
 * table it is about; defined in sql_<table>.c. Pooled connections run them prepared
 * (db_exec), direct connections (job workers, event streams, commands) through db_query.
 * Parameters are always $n, never built with sprintf. Migrations (db_migrate.c) are the one
 * exception: they run whole sql/ scripts through the simple protocol. */
#ifndef MKDSEG_SQL_H
#define MKDSEG_SQL_H

#include "db.h"

/* no table (sql_ops.c): the readiness probe, transactions on a direct connection */
extern const db_stmt sql_ops_ping;
extern const db_stmt sql_tx_begin;
extern const db_stmt sql_tx_commit;

/* blobs named by any table (sql_blobs.c): references for the garbage collector (gc.h) */
extern const db_stmt sql_blobs_referenced;
extern const db_stmt sql_blobs_is_referenced;
extern const db_stmt sql_blobs_active_jobs;
extern const db_stmt sql_blobs_of_dataset;
extern const db_stmt sql_blobs_of_model;
extern const db_stmt sql_backup_begin;
extern const db_stmt sql_backup_snapshot;
extern const db_stmt sql_backup_user_tables;

/* datasets (sql_datasets.c) */
extern const db_stmt sql_datasets_insert;
extern const db_stmt sql_datasets_get;
extern const db_stmt sql_datasets_list;
extern const db_stmt sql_datasets_in_use;
extern const db_stmt sql_datasets_delete;
extern const db_stmt sql_datasets_modality;
extern const db_stmt sql_datasets_labelled_volumes;
extern const db_stmt sql_datasets_labelled_count;

/* volumes (sql_volumes.c) */
extern const db_stmt sql_volumes_insert;
extern const db_stmt sql_volumes_labelled_by_ids;
extern const db_stmt sql_volumes_labelled_of_dataset;
extern const db_stmt sql_volumes_files;

/* models (sql_models.c) */
extern const db_stmt sql_models_list;
extern const db_stmt sql_models_get;
extern const db_stmt sql_models_weights_path;
extern const db_stmt sql_models_insert;
extern const db_stmt sql_models_exists;
extern const db_stmt sql_models_unpromote;
extern const db_stmt sql_models_promote;
extern const db_stmt sql_models_get_plain;
extern const db_stmt sql_models_by_ref;
extern const db_stmt sql_models_default;
extern const db_stmt sql_models_of_job;
extern const db_stmt sql_models_insert_trained;
extern const db_stmt sql_models_count;
extern const db_stmt sql_models_insert_default;
extern const db_stmt sql_models_named;
extern const db_stmt sql_models_by_name;
extern const db_stmt sql_models_in_use;
extern const db_stmt sql_models_delete;

/* model_datasets (sql_models.c) */
extern const db_stmt sql_model_datasets_insert;

/* inferences (sql_inferences.c) */
extern const db_stmt sql_inferences_insert;
extern const db_stmt sql_inferences_mask_path;
extern const db_stmt sql_inferences_uncertainty_path;

/* slicer_images (sql_slicer_images.c): the MONAI Label datastore */
extern const db_stmt sql_slicer_images_count;
extern const db_stmt sql_slicer_images_put;
extern const db_stmt sql_slicer_images_get;

/* dice_results (sql_dice_results.c) */
extern const db_stmt sql_dice_results_list;
extern const db_stmt sql_dice_results_insert;
extern const db_stmt sql_dice_results_insert_mean;
extern const db_stmt sql_dice_results_delete_job;

/* jobs (sql_jobs.c) */
extern const db_stmt sql_jobs_get;
extern const db_stmt sql_jobs_list;
extern const db_stmt sql_jobs_cancel;
extern const db_stmt sql_jobs_get_brief;
extern const db_stmt sql_jobs_count_by_state;
extern const db_stmt sql_jobs_enqueue;
extern const db_stmt sql_jobs_progress;
extern const db_stmt sql_jobs_requeue;
extern const db_stmt sql_jobs_finish;
extern const db_stmt sql_jobs_claim;
extern const db_stmt sql_jobs_listen;
extern const db_stmt sql_jobs_heartbeat;
extern const db_stmt sql_jobs_exists;

/* job_events (sql_jobs.c) */
extern const db_stmt sql_job_events_after;
extern const db_stmt sql_job_events_listen;

/* api_tokens (sql_api_tokens.c) */
extern const db_stmt sql_api_tokens_use;
extern const db_stmt sql_api_tokens_insert;
extern const db_stmt sql_api_tokens_revoke;
extern const db_stmt sql_api_tokens_list;
extern const db_stmt sql_api_tokens_by_name;
extern const db_stmt sql_api_tokens_utc;

#endif
