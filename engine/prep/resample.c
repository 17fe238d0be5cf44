/* resample.c: in-plane resampling of slices (pixel centres aligned: a pixel of the output at
 * index o covers the same physical interval as input coordinate (o + 0.5) * n_in / n_out - 0.5). */
#include <math.h>
#include <stdlib.h>

#include "prep.h"

int64_t prep_resampled_size(int64_t n, double sp, double tsp)
{
    double m = (double)n * sp / tsp;
    int64_t r = (int64_t)llround(m);
    return r < 1 ? 1 : r;
}

/* prep_resize_linear without its column table (when that cannot be allocated) */
static void resize_linear_slow(const float *in, int C, int64_t h, int64_t w, float *out, int64_t oh,
                               int64_t ow)
{
    double sy = (double)h / (double)oh, sx = (double)w / (double)ow;
    for (int64_t y = 0; y < oh; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        fy = fy < 0 ? 0 : fy > h - 1 ? (double)(h - 1) : fy;
        int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        float ty = (float)(fy - (double)y0);
        for (int64_t x = 0; x < ow; x++) {
            double fx = (x + 0.5) * sx - 0.5;
            fx = fx < 0 ? 0 : fx > w - 1 ? (double)(w - 1) : fx;
            int64_t x0 = (int64_t)fx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            float tx = (float)(fx - (double)x0);
            for (int c = 0; c < C; c++) {
                const float *p = in + (int64_t)c * h * w;
                float a = p[y0 * w + x0] + tx * (p[y0 * w + x1] - p[y0 * w + x0]);
                float b = p[y1 * w + x0] + tx * (p[y1 * w + x1] - p[y1 * w + x0]);
                out[(int64_t)c * oh * ow + y * ow + x] = a + ty * (b - a);
            }
        }
    }
}

void prep_resize_linear(const float *in, int C, int64_t h, int64_t w, float *out, int64_t oh,
                        int64_t ow)
{
    /* the column taps and weights once per call (they are the same for every row and
     * channel), then each output row of each channel in one pass; the arithmetic per output
     * value is the same as sampling it alone */
    double sy = (double)h / (double)oh, sx = (double)w / (double)ow;
    int64_t *x0 = malloc((size_t)ow * 2 * sizeof *x0);
    float *tx = malloc((size_t)ow * sizeof *tx);
    if (!x0 || !tx) {
        free(x0);
        free(tx);
        resize_linear_slow(in, C, h, w, out, oh, ow);
        return;
    }
    int64_t *x1 = x0 + ow;
    for (int64_t x = 0; x < ow; x++) {
        double fx = (x + 0.5) * sx - 0.5;
        fx = fx < 0 ? 0 : fx > w - 1 ? (double)(w - 1) : fx;
        x0[x] = (int64_t)fx;
        x1[x] = x0[x] + 1 < w ? x0[x] + 1 : x0[x];
        tx[x] = (float)(fx - (double)x0[x]);
    }
    for (int64_t y = 0; y < oh; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        fy = fy < 0 ? 0 : fy > h - 1 ? (double)(h - 1) : fy;
        int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        float ty = (float)(fy - (double)y0);
        for (int c = 0; c < C; c++) {
            const float *r0 = in + (int64_t)c * h * w + y0 * w,
                        *r1 = in + (int64_t)c * h * w + y1 * w;
            float *o = out + (int64_t)c * oh * ow + y * ow;
            for (int64_t x = 0; x < ow; x++) {
                float a = r0[x0[x]] + tx[x] * (r0[x1[x]] - r0[x0[x]]);
                float b = r1[x0[x]] + tx[x] * (r1[x1[x]] - r1[x0[x]]);
                o[x] = a + ty * (b - a);
            }
        }
    }
    free(x0);
    free(tx);
}

void prep_resize_nearest_u8(const uint8_t *in, int64_t h, int64_t w, uint8_t *out, int64_t oh,
                            int64_t ow)
{
    double sy = (double)h / (double)oh, sx = (double)w / (double)ow;
    for (int64_t y = 0; y < oh; y++) {
        int64_t iy = (int64_t)floor((y + 0.5) * sy);
        iy = iy < 0 ? 0 : iy >= h ? h - 1 : iy;
        for (int64_t x = 0; x < ow; x++) {
            int64_t ix = (int64_t)floor((x + 0.5) * sx);
            ix = ix < 0 ? 0 : ix >= w ? w - 1 : ix;
            out[y * ow + x] = in[iy * w + ix];
        }
    }
}
