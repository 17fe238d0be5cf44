/* prep.h: preprocessing shared by training and inference (engine/prep), so they cannot drift.
 *
 *  - a small deterministic PRNG (xoshiro256**, seeded by splitmix64) for everything seeded
 *  - intensity normalisation per modality, its configuration stored with the model
 *  - 2-D slices along the slicing axis in the canonical in-plane orientation (vol.h's
 *    vol_slice_frame), in-plane resampling to the model's pixel spacing and back
 *  - tiles for sliding-window inference and their Gaussian weight map
 *  - seeded training augmentation (flips, small rotations, scaling)
 * 2-D buffers are [h][w] row-major (w fastest); multi-channel maps [C][h][w]. */
#ifndef MKDSEG_PREP_H
#define MKDSEG_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "vol.h"

/* ---- PRNG ------------------------------------------------------------------------------ */
typedef mkd_rng prep_rng; /* rng.h: one generator for the whole engine */
void prep_rng_seed(prep_rng *r, uint64_t seed);
uint64_t prep_rng_u64(prep_rng *r);
double prep_rng_uniform(prep_rng *r);                     /* [0, 1) */
double prep_rng_range(prep_rng *r, double lo, double hi); /* [lo, hi) */
double prep_rng_normal(prep_rng *r);                      /* N(0, 1) */

/* ---- intensity normalisation ----------------------------------------------------------- */
typedef enum { PREP_CT = 0, PREP_MR = 1 } prep_modality;

/* "ct" -> PREP_CT, "mr" -> PREP_MR; 0, or -1 for anything else (NULL included): the one
 * parser of modality names (command line, HTTP fields, job params, model metadata). */
int prep_modality_parse(const char *s, prep_modality *m);
/* "ct" or "mr". */
const char *prep_modality_name(prep_modality m);

/* The configuration stored in the model file (all fields; defaults from prep_norm_default). */
typedef struct {
    prep_modality modality;
    float ct_lo, ct_hi;   /* CT: HU window mapped linearly to [-1, 1], clipped (-400, 700) */
    float mr_plo, mr_phi; /* MR: percentiles (0..100) to clip at, per volume (0.5, 99.5) */
    float mr_zscale;      /* MR: z-scores divided by this, then clipped to [-1,1] (3) */
} prep_norm;

/* Per-volume statistics (MR: percentile values, mean and std after clipping; CT: unused). */
typedef struct {
    float lo, hi, mean, std;
} prep_norm_stats;

void prep_norm_default(prep_norm *p, prep_modality m);
/* Computes per-volume statistics over data[n] (a histogram pass: O(n) time, O(1) memory). */
int prep_norm_fit(const prep_norm *p, const float *data, int64_t n, prep_norm_stats *st, char *err,
                  size_t errlen);
/* Normalises x[n] in place (a slice or a whole volume) into [-1, 1]. */
void prep_norm_apply(const prep_norm *p, const prep_norm_stats *st, float *x, int64_t n);
/* Stores / parses the configuration as "key=value;..." text (for model metadata). */
int prep_norm_to_string(const prep_norm *p, char *buf, size_t len);
int prep_norm_from_string(prep_norm *p, const char *s, char *err, size_t errlen);

/* ---- slices ---------------------------------------------------------------------------- */
/* Copies slice s of vol data [nz][ny][nx] (geometry g, frame f from vol_geom_slice_frame) into
 * out[f->h][f->w] in the canonical orientation. Works for float and uint8 volumes. */
void prep_slice_get(const vol_geom *g, const vol_slice_frame *f, const float *data, int64_t s,
                    float *out);
void prep_slice_get_u8(const vol_geom *g, const vol_slice_frame *f, const uint8_t *data, int64_t s,
                       uint8_t *out);
/* The inverse: writes in[f->h][f->w] into slice s of data. */
void prep_slice_put_u8(const vol_geom *g, const vol_slice_frame *f, uint8_t *data, int64_t s,
                       const uint8_t *in);
void prep_slice_put(const vol_geom *g, const vol_slice_frame *f, float *data, int64_t s,
                    const float *in);

/* ---- resampling ------------------------------------------------------------------------ */
/* Size of a slice of n pixels at spacing sp resampled to spacing tsp: max(1, round(n*sp/tsp)). */
int64_t prep_resampled_size(int64_t n, double sp, double tsp);
/* Bilinear resize of C channels [C][h][w] -> [C][oh][ow], pixel centres aligned in physical
 * space (align_corners=False semantics, edge clamped). */
void prep_resize_linear(const float *in, int C, int64_t h, int64_t w, float *out, int64_t oh,
                        int64_t ow);
/* Nearest-neighbour resize of labels [h][w] -> [oh][ow] (same pixel-centre mapping). */
void prep_resize_nearest_u8(const uint8_t *in, int64_t h, int64_t w, uint8_t *out, int64_t oh,
                            int64_t ow);

/* ---- tiles ----------------------------------------------------------------------------- */
/* Tile origins along one axis of length n for tiles of size t with the given overlap fraction
 * (0 <= overlap < 1): first at 0, last at n - t, evenly spread; one tile at 0 when n <= t.
 * Writes up to max positions, returns how many there are. */
int prep_tile_positions(int64_t n, int t, double overlap, int64_t *pos, int max);
/* Gaussian weight map [t][t], sigma = t/8, max 1, min clamped to 1e-3 (nnU-Net style). */
void prep_gaussian_weights(int t, float *w);
/* Copies the t*t tile at (y0, x0) of img[h][w] into tile, padding outside pixels with pad. */
void prep_tile_get(const float *img, int64_t h, int64_t w, int64_t y0, int64_t x0, int t, float pad,
                   float *tile);
/* acc[C][h][w] += weights * probs[C][t][t] and wsum[h][w] += weights, inside the image only. */
void prep_tile_accumulate(float *acc, float *wsum, int C, int64_t h, int64_t w, int64_t y0,
                          int64_t x0, int t, const float *probs, const float *weights);

/* ---- augmentation ---------------------------------------------------------------------- */
typedef struct {
    double p_flip_u, p_flip_v;   /* probability of a left-right / up-down flip (0.5, 0.5) */
    double max_rot_deg;          /* rotation uniform in [-max, max] (15) */
    double min_scale, max_scale; /* isotropic scale (0.9, 1.1) */
} prep_aug;

void prep_aug_default(prep_aug *a);
/* Draws one random transform from rng and applies it to img[h][w] (bilinear, outside filled
 * with img_fill) and, when lab is not NULL, lab[h][w] (nearest, outside 0), in place. */
int prep_augment(const prep_aug *a, prep_rng *rng, float *img, uint8_t *lab, int64_t h, int64_t w,
                 float img_fill);

#endif
