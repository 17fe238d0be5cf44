/* dicom_src.h (internal to engine/io): the files of a DICOM input, in memory, whatever held
 * them: a zip archive (libarchive, with the unpacking limits of dicom.h), a folder, or one
 * file. Names are kept for messages only (never a server path: the archive's own names). */
#ifndef MKDSEG_DICOM_SRC_H
#define MKDSEG_DICOM_SRC_H

#include <stddef.h>

#include "dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets *code (when code is not NULL) and the message; returns -1, for `return dcm_fail(...)`. */
int dcm_fail(dicom_code *code, dicom_code c, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

typedef struct {
    char name[128]; /* name inside the archive or folder (shortened) */
    unsigned char *data;
    size_t size;
} dcm_entry;

typedef struct {
    dcm_entry *e;
    int n, cap;
    int skipped; /* entries left out: folders, empty files, resource forks */
    int is_archive;
} dcm_entries;

/* Collects the files of path into out: at most max_bytes unpacked in all. */
int dcm_collect(const char *path, size_t max_bytes, dcm_entries *out, dicom_code *code, char *err,
                size_t errlen);

/* Same, from an archive already in memory (the fuzz target's entry point). */
int dcm_collect_mem(const void *buf, size_t len, size_t max_bytes, dcm_entries *out,
                    dicom_code *code, char *err, size_t errlen);

void dcm_entries_free(dcm_entries *x);

/* 1 when buf starts like a zip archive (a local file header or an empty archive's end record). */
int dcm_is_zip(const unsigned char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
