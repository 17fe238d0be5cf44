/* dataset.h: labelled volumes -> the 2-D training slices the trainer samples (train_slices),
 * through the same preprocessing inference uses (prep.h): per-volume intensity normalisation,
 * slices along the slicing axis in the canonical orientation, in-plane resampling to the
 * model's pixel spacing, then a size x size window (padded with -1, the normalised minimum,
 * where the slice is smaller). Where the slice is larger than the window, the window is placed
 * around the heart (the labelled foreground's centre in this slice, or in the volume for a
 * slice without labels) with a random offset of up to a quarter window, drawn from the
 * dataset's seeded generator so that the slices are reproducible. */
#ifndef MKD_DATASET_H
#define MKD_DATASET_H

#include <stdint.h>

#include "prep.h"
#include "train.h"
#include "vol.h"

typedef struct {
    prep_norm norm;  /* intensity normalisation (modality and its parameters) */
    double spacing;  /* in-plane pixel spacing in mm; 0 keeps each volume's own */
    int size;        /* window side in pixels */
    int empty_every; /* keep every n-th slice without any label (0: none) */
    uint64_t seed;
} dataset_opts;

/* Appends the slices of one labelled volume (image: as read; cls: class indices on the same
 * grid) to s, growing its arrays (s starts zeroed; s->size is set from opts). 0 or -1. */
int dataset_add_volume(train_slices *s, const dataset_opts *o, const vol_t *image,
                       const uint8_t *cls, char *err, size_t errlen);

/* Reads image and label files (labels: MM-WHS codes or class indices, checked: unknown values
 * are an error naming them; the grids must match) and appends their slices. */
int dataset_add_files(train_slices *s, const dataset_opts *o, const char *image_path,
                      const char *label_path, int64_t max_voxels, char *err, size_t errlen);

void dataset_free(train_slices *s);

#endif
