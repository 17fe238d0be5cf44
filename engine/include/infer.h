/* infer.h: segmentation of a whole volume with a model file (engine/infer).
 *
 * A model file (safetensors, written by trainer_save_model) holds one segmentor ("seg") or
 * the two of the paper ("s_syn", "s_real") and in its metadata everything inference needs:
 * the architecture, the preprocessing (intensity normalisation, pixel spacing, tile size) and
 * the label table. Inference goes slice by slice along the slicing axis, so memory is bounded
 * by a few slices plus the input and output volumes:
 *   normalise (per-volume statistics) -> slice in canonical orientation -> resample to the
 *   model spacing -> Gaussian-weighted sliding-window tiles -> softmax of each member,
 *   averaged (the paper's ensemble) -> optional flip test-time augmentation -> probabilities
 *   resampled back to the slice's own grid -> argmax -> written into the output volume,
 * so the label map lies exactly on the input's grid (same geometry). */
#ifndef MKD_INFER_H
#define MKD_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"
#include "nn.h"
#include "prep.h"
#include "vol.h"

#define INFER_MAX_MEMBERS 2

typedef struct {
    int members;                             /* 1 or 2 */
    segmentor *seg[INFER_MAX_MEMBERS];       /* owned */
    char member_name[INFER_MAX_MEMBERS][16]; /* "seg" | "s_syn", "s_real" */
    prep_norm norm;
    double spacing; /* mm; 0 = each volume's own */
    int size;       /* tile side */
    int classes;
    char method[32];
    const nn_backend *be;
} infer_model;

/* Loads and validates a model file: metadata present and consistent, every tensor of every
 * member present with the architecture's shape. NULL with err otherwise. */
infer_model *infer_model_load(const char *path, const nn_backend *be, char *err, size_t errlen);
void infer_model_free(infer_model *m);

typedef struct {
    int member;     /* -1: ensemble of all members; 0 or 1: that member only */
    int tta;        /* 1: average with left-right and up-down flipped passes */
    double overlap; /* sliding-window overlap fraction (0.5) */
} infer_opts;

typedef struct {
    double prep_s, net_s, post_s, total_s;
} infer_timing;

/* Segments image (as read by vol_read) into cls[nx*ny*nz] (class indices, the input's grid).
 * timing may be NULL. 0, or -1 with err. */
int infer_volume(const infer_model *m, const vol_t *image, const infer_opts *o, uint8_t *cls,
                 infer_timing *timing, char *err, size_t errlen);

/* Same, and for an ensemble of two members (o->member = -1 on an s_syn/s_real model) the
 * members' disagreement into disagree[nx*ny*nz] (may be NULL): at every voxel the
 * Jensen-Shannon divergence, in bits (0 = the two class distributions are identical, 1 = they
 * put all their mass on different classes), between the two members' class probabilities,
 * each accumulated over tiles and flips and resampled to the input grid on its own; the
 * ensemble is then the mean of the two maps. It measures how much the two segmentors differ,
 * not the probability of an error. With one member, or one member chosen, disagree is zeros. */
int infer_volume_ex(const infer_model *m, const vol_t *image, const infer_opts *o, uint8_t *cls,
                    float *disagree, infer_timing *timing, char *err, size_t errlen);

/* The Jensen-Shannon divergence in bits of two distributions over K classes, each read at
 * p[c * stride] and q[c * stride]; clamped to [0, 1]. */
float infer_js_divergence(const float *p, const float *q, int K, size_t stride);

#endif
