/* ttrain.h: fixtures for the trainer's tests (unit and CUDA): tiny synthetic slices and host
 * snapshots of a network's parameters. */
#ifndef MKDSEG_TESTS_TTRAIN_H
#define MKDSEG_TESTS_TTRAIN_H

#include <stddef.h>

#include "nn.h"
#include "train.h"

/* The tile of the synthetic slices: the shapes below are placed for 32 pixels. */
#define TTRAIN_S 32

/* n TTRAIN_S x TTRAIN_S slices, each with a bright disc (class 1) and a darker square (class 2)
 * at random places drawn from `seed`, plus noise; `contrast` scales the intensities (a negative
 * value flips them: the "other modality"). Free with ttrain_free. */
train_slices ttrain_slices(int n, int seed, float contrast);

/* a copy of a's images and labels */
train_slices ttrain_copy(const train_slices *a);

void ttrain_free(train_slices *s);

/* A host copy of every tensor of kind `kind` (NN_PARAM, NN_BUFFER) of registry p, in registry
 * order; *n: how many floats. free() it. */
float *ttrain_snap_kind(nn_params *p, size_t *n, nn_param_kind kind);

/* the same for the parameters (NN_PARAM) */
float *ttrain_snap(nn_params *p, size_t *n);

/* 1 when p's parameters differ from *before (a ttrain_snap of p), 0 when not; *before is
 * replaced by the new snapshot. */
int ttrain_moved(nn_params *p, float **before);

#endif
