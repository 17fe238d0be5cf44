/* job_train.h: the "train" and "evaluate" job kinds (registered in job_kinds.c).
 *
 * train, params (written by POST /train, validated there):
 *   {"target_dataset": id, "assistant_dataset": id|null, "method": "mkd", "config": {full
 *    train_config as JSON}, "target_volumes": [ids], "assistant_volumes": [ids],
 *    "validation_volumes": [ids], "target_modality": "ct", "assistant_modality": "mr"}
 * Loads the volumes' slices (dataset_add_files), trains (trainer_run) with a checkpoint under
 * <data-dir>/jobs/<id>/ so that a job claimed again after its worker died resumes
 * (trainer_load_checkpoint), reports progress (iteration, epoch, losses, ETA) at most every
 * 0.5 s and stops within one iteration when cancelled; on success registers the model
 * (row + weights blob, immutable, model_datasets) and evaluates it on the validation volumes
 * into dice_results. result: {"model_id", "iterations", "mean_dice"}.
 *
 * evaluate, params: {"model_id": id, "dataset_id": id}: Dice, ASSD and HD95 per volume and
 * structure, and the dataset means (volume_id NULL), into dice_results. result: {"mean_dice"}. */
#ifndef MKDSEG_JOB_TRAIN_H
#define MKDSEG_JOB_TRAIN_H

#include "job.h"

job_status job_train(job_ctx *j, char *err, size_t errlen);
job_status job_evaluate(job_ctx *j, char *err, size_t errlen);

#endif
