/* tile.c: sliding-window tiles and their Gaussian weights. */
#include <math.h>

#include "prep.h"

int prep_tile_positions(int64_t n, int t, double overlap, int64_t *pos, int max)
{
    if (max < 1 || t < 1)
        return 0;
    if (n <= t) {
        pos[0] = 0;
        return 1;
    }
    if (overlap < 0)
        overlap = 0;
    if (overlap > 0.95)
        overlap = 0.95;
    double step = t * (1.0 - overlap);
    if (step < 1)
        step = 1;
    int64_t count = (int64_t)ceil((double)(n - t) / step) + 1;
    for (int64_t i = 0; i < count && i < max; i++)
        pos[i] = (int64_t)llround((double)i * (double)(n - t) / (double)(count - 1));
    return (int)count;
}

void prep_gaussian_weights(int t, float *w)
{
    double c = (t - 1) / 2.0, sig = t / 8.0;
    for (int y = 0; y < t; y++)
        for (int x = 0; x < t; x++) {
            double d2 = (y - c) * (y - c) + (x - c) * (x - c);
            double v = exp(-d2 / (2 * sig * sig));
            w[y * t + x] = (float)(v < 1e-3 ? 1e-3 : v);
        }
}

void prep_tile_get(const float *img, int64_t h, int64_t w, int64_t y0, int64_t x0, int t, float pad,
                   float *tile)
{
    for (int y = 0; y < t; y++)
        for (int x = 0; x < t; x++) {
            int64_t iy = y0 + y, ix = x0 + x;
            tile[y * t + x] = iy >= 0 && iy < h && ix >= 0 && ix < w ? img[iy * w + ix] : pad;
        }
}

void prep_tile_accumulate(float *acc, float *wsum, int C, int64_t h, int64_t w, int64_t y0,
                          int64_t x0, int t, const float *probs, const float *weights)
{
    for (int y = 0; y < t; y++) {
        int64_t iy = y0 + y;
        if (iy < 0 || iy >= h)
            continue;
        for (int x = 0; x < t; x++) {
            int64_t ix = x0 + x;
            if (ix < 0 || ix >= w)
                continue;
            float wt = weights[y * t + x];
            wsum[iy * w + ix] += wt;
            for (int c = 0; c < C; c++)
                acc[(int64_t)c * h * w + iy * w + ix] += wt * probs[(int64_t)c * t * t + y * t + x];
        }
    }
}
