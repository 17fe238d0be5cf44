/* phantom.h: a synthetic labelled thorax (engine/phantom), CT or bSSFP-like MR.
 *
 * The model and the tissue values behind it are described in docs/phantom.md. Each seed gives
 * a different subject (size, position, rotation and shape of every structure vary); CT and MR
 * with the same seed are different subjects (the data are unpaired); `paired` renders one subject
 * in the other modality as well (a research oracle). Deterministic: the same
 * options give the same bytes on every machine (own PRNG, no global state). */
#ifndef MKDSEG_PHANTOM_H
#define MKDSEG_PHANTOM_H

#include <stddef.h>
#include <stdint.h>

#include "prep.h"
#include "vol.h"

typedef struct {
    prep_modality modality;
    uint64_t seed;
    int64_t shape[3]; /* array size nx, ny, nz (defaults CT 96x96x80, MR 80x80x40) */
    double fov[3];    /* field of view in mm (defaults CT 220x220x160, MR 300x300x160),
                           varied by +-6% per subject unless fixed_fov */
    int fixed_fov;
    double noise; /* multiplier on the modality's noise level (1) */
    int paired;   /* 1: the same subject, on the same grid, rendered with the other
                           modality's appearance (tissue values, texture, blur, noise; no MR
                           bias field for CT), with fresh noise: the oracle translation of
                           the image modality gives. Labels equal the unpaired rendering's. */
} phantom_opts;

typedef struct {
    vol_geom geom;  /* CT: LPS axial grid; MR: RAS grid tilted by a few degrees */
    float *image;   /* [nz][ny][nx]: HU (CT) or arbitrary MR signal units */
    uint8_t *label; /* [nz][ny][nx]: class indices 0..7 (vol_mmwhs_codes for MM-WHS) */
} phantom_vol;

void phantom_default(phantom_opts *o, prep_modality m, uint64_t seed);
/* Generates one subject. Owns out->image and out->label (phantom_free). */
int phantom_generate(const phantom_opts *o, phantom_vol *out, char *err, size_t errlen);
void phantom_free(phantom_vol *p);
/* Writes image (CT: int16 HU; MR: float32) and label (int16 MM-WHS codes) files. */
int phantom_write(const phantom_vol *p, prep_modality m, const char *image_path,
                  const char *label_path, char *err, size_t errlen);

#endif
