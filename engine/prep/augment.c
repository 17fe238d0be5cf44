/* augment.c: seeded training augmentation (flips, rotation, isotropic scale about the centre). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prep.h"

void prep_aug_default(prep_aug *a)
{
    a->p_flip_u = 0.5;
    a->p_flip_v = 0.5;
    a->max_rot_deg = 15.0;
    a->min_scale = 0.9;
    a->max_scale = 1.1;
}

int prep_augment(const prep_aug *a, prep_rng *rng, float *img, uint8_t *lab, int64_t h, int64_t w,
                 float fill)
{
    /* always draw the same four numbers, so the stream does not depend on the outcome */
    int fu = prep_rng_uniform(rng) < a->p_flip_u;
    int fv = prep_rng_uniform(rng) < a->p_flip_v;
    double th = prep_rng_range(rng, -a->max_rot_deg, a->max_rot_deg) * M_PI / 180.0;
    double sc = prep_rng_range(rng, a->min_scale, a->max_scale);
    int64_t n = h * w;
    float *src = malloc((size_t)n * sizeof *src);
    uint8_t *lsrc = lab ? malloc((size_t)n) : NULL;
    if (!src || (lab && !lsrc)) {
        free(src);
        free(lsrc);
        return -1;
    }
    memcpy(src, img, (size_t)n * sizeof *src);
    if (lab)
        memcpy(lsrc, lab, (size_t)n);
    double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0, c = cos(th), s = sin(th);
    /* rows in parallel for large slices (every pixel is independent: same result with any
     * thread count) */
#pragma omp parallel for if (n >= 65536) schedule(static)
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            double dx = x - cx, dy = y - cy;
            double sx = (c * dx + s * dy) / sc, sy = (-s * dx + c * dy) / sc;
            if (fu)
                sx = -sx;
            if (fv)
                sy = -sy;
            double fx = cx + sx, fy = cy + sy;
            float v = fill;
            if (fx > -0.5 && fx < w - 0.5 && fy > -0.5 && fy < h - 0.5) {
                double gx = fx < 0 ? 0 : fx > w - 1 ? w - 1 : fx;
                double gy = fy < 0 ? 0 : fy > h - 1 ? h - 1 : fy;
                int64_t x0 = (int64_t)gx, y0 = (int64_t)gy;
                int64_t x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
                float tx = (float)(gx - x0), ty = (float)(gy - y0);
                float p = src[y0 * w + x0] + tx * (src[y0 * w + x1] - src[y0 * w + x0]);
                float q = src[y1 * w + x0] + tx * (src[y1 * w + x1] - src[y1 * w + x0]);
                v = p + ty * (q - p);
                if (lab) {
                    int64_t nx = (int64_t)floor(fx + 0.5), ny = (int64_t)floor(fy + 0.5);
                    nx = nx < 0 ? 0 : nx >= w ? w - 1 : nx;
                    ny = ny < 0 ? 0 : ny >= h ? h - 1 : ny;
                    lab[y * w + x] = lsrc[ny * w + nx];
                }
            } else if (lab) {
                lab[y * w + x] = 0;
            }
            img[y * w + x] = v;
        }
    free(src);
    free(lsrc);
    return 0;
}
