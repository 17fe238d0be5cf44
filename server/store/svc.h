/* svc.h: shared pieces of the service layer: the process's settings as seen by the
 * handlers and job kinds, blob helpers for NIfTI and model files, NIfTI sniffing, and the
 * start-up registration of the default model.
 *
 * The settings are copied once at start-up (svc_set_config, from `serve` and `worker`) so that
 * job handlers, which receive only a job_ctx, know the data folder and the database URL. */
#ifndef MKDSEG_SVC_H
#define MKDSEG_SVC_H

#include <stddef.h>
#include <libpq-fe.h>
#include <jansson.h>

#include "config.h"
#include "nn.h"

/* Copies the settings (call once at start-up, before any worker or handler runs). */
void svc_set_config(const mkd_config *c);
/* The settings given to svc_set_config (zeroed defaults before). */
const mkd_config *svc_config(void);

/* Sets the engine's CPU threads for the calling thread from the threads setting (0: all cores;
 * MKDSEG_THREADS is the HTTP thread setting of `serve`, so it is not consulted here). */
void svc_engine_threads(void);

/* Whether the file at path starts like a NIfTI-1/-2 (or ANALYZE) header, looking through gzip.
 * 1 yes (and *gz set when gzip-compressed), 0 no (reason in why), -1 unreadable. */
int svc_nifti_sniff(const char *path, int *gz, char *why, size_t whylen);

/* Moves a finished temporary file (already hashed: sha256) into the content-addressed blob
 * store of data_dir (blob.h layout), or removes it when that content is stored already.
 * relpath gets "blobs/ab/ab12...". 0 / -1 + err. */
int svc_blob_adopt(const char *data_dir, const char *tmp_path, const char *sha256, char *relpath,
                   size_t relpathlen, char *err, size_t errlen);

/* Copies the file at src into the blob store (src is kept). sha256[65], relpath, *size. */
int svc_blob_copy(const char *data_dir, const char *src, char sha256[65], char *relpath,
                  size_t relpathlen, long long *size, char *err, size_t errlen);

/* nifticlib chooses by file name: makes a symbolic link <data_dir>/tmp/rd-XXXXXX.nii[.gz] to
 * the blob data_dir/relpath (extension from the content) in out. Caller unlinks out. 0 / -1. */
int svc_nifti_link(const char *data_dir, const char *relpath, char *out, size_t outlen, char *err,
                   size_t errlen);

/* Absolute path of data_dir/relpath into out. */
void svc_abs(const char *data_dir, const char *relpath, char *out, size_t outlen);

/* SHA-256 (hex) of a file. 0 / -1. */
int svc_sha256_file(const char *path, char hex[65], long long *size);

/* Registers MKDSEG default model (cfg->default_model) and promotes it when the models table is
 * empty. 1 registered, 0 nothing to do, -1 error (logged; the service runs without a model). */
int svc_register_default_model(const mkd_config *cfg);

/* The model file's metadata as a JSON object ("mkdseg.config" parsed as JSON). New reference,
 * NULL + err when the file is not valid safetensors. */
json_t *svc_model_metadata(const char *path, char *err, size_t errlen);

/* The "mkdseg.modality" of model metadata ("ct" / "mr"), NULL when absent or unknown. */
const char *svc_meta_modality(const json_t *meta);

/* The engine backend of the service's compute (MKDSEG_DEVICE, checked at start-up by serve and
 * worker; the CPU when unset or auto without a GPU). */
const nn_backend *svc_backend(void);

#endif
