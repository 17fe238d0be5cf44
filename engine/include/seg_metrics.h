/* seg_metrics.h: segmentation metrics per structure on 3-D label volumes (engine/metrics).
 *
 * Inputs are class-index volumes (uint8, [nz][ny][nx], x fastest) of the same grid, and the voxel
 * spacing in mm along x, y, z (array axes i, j, k). Per structure c (1 .. nclasses-1):
 *   Dice  = 2 |P ∩ T| / (|P| + |T|)
 *   ASSD  = mean over the surface voxels of P and of T of the distance (mm) to the other's surface
 *   HD95  = max(95th percentile of d(P->T), 95th percentile of d(T->P)) (linear interpolation
 *           between order statistics, numpy's default; medpy's definition)
 * A surface voxel is a voxel of the structure with at least one of its 6 face neighbours outside
 * it (outside the grid counts as outside). Distances are Euclidean between voxel centres, scaled
 * by the spacing (an exact separable distance transform, not a chamfer approximation).
 * Empty cases (see docs/volumes.md):
 *   both empty   : Dice 1, ASSD 0, HD95 0 (a correct "absent" answer)
 *   one empty    : Dice 0, ASSD = HD95 = the grid's diagonal in mm (the worst possible distance);
 *                  `empty` says which, so callers can also report or skip them separately. */
#ifndef MKDSEG_SEG_METRICS_H
#define MKDSEG_SEG_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum {
    METRICS_BOTH_PRESENT = 0,
    METRICS_PRED_EMPTY = 1,
    METRICS_TRUTH_EMPTY = 2,
    METRICS_BOTH_EMPTY = 3
};

typedef struct {
    double dice, assd, hd95;
    int64_t n_pred, n_truth, n_inter; /* voxel counts */
    int empty;                        /* METRICS_* */
} metrics_struct;

/* Computes out[c] for c = 1 .. nclasses-1 (out[0], background, is zeroed). Labels >= nclasses
 * are an error. Memory: O(bounding box of the structure) doubles. Returns 0 / -1. */
int metrics_compute(const uint8_t *pred, const uint8_t *truth, int64_t nx, int64_t ny, int64_t nz,
                    const double spacing[3], int nclasses, metrics_struct *out, char *err,
                    size_t errlen);

/* Means of dice, assd and hd95 over structures 1 .. nclasses-1 (every structure counts). */
void metrics_mean(const metrics_struct *m, int nclasses, double *dice, double *assd, double *hd95);

#endif
