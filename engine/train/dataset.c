/* dataset.c: see dataset.h. */
#include "dataset.h"
#include "mkd_err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dataset_free(train_slices *s)
{
    free(s->img);
    free(s->lab);
    memset(s, 0, sizeof *s);
}

static int grow(train_slices *s, int add)
{
    size_t ss = (size_t)s->size * s->size, n = (size_t)s->n + (size_t)add;
    float *ni = realloc(s->img, n * ss * sizeof(float));
    if (!ni)
        return -1;
    s->img = ni;
    int32_t *nl = realloc(s->lab, n * ss * sizeof(int32_t));
    if (!nl)
        return -1;
    s->lab = nl;
    return 0;
}

/* Foreground centre (row, col) of a [h][w] label slice; 0 when it has none. */
static int fg_centre(const uint8_t *lab, int64_t h, int64_t w, double *cy, double *cx)
{
    double sy = 0, sx = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < h; i++)
        for (int64_t j = 0; j < w; j++)
            if (lab[i * w + j]) {
                sy += (double)i;
                sx += (double)j;
                n++;
            }
    if (!n)
        return 0;
    *cy = sy / (double)n;
    *cx = sx / (double)n;
    return 1;
}

/* Window origin along an axis of length n for a window t centred near c (+- t/4 jitter). */
static int64_t origin(int64_t n, int t, double c, prep_rng *r)
{
    if (n <= t)
        return -(int64_t)((t - n) / 2); /* pad evenly */
    double o = c - 0.5 * t + prep_rng_range(r, -0.25 * t, 0.25 * t);
    int64_t oi = (int64_t)lround(o);
    if (oi < 0)
        oi = 0;
    if (oi > n - t)
        oi = n - t;
    return oi;
}

int dataset_add_volume(train_slices *s, const dataset_opts *o, const vol_t *image,
                       const uint8_t *cls, char *err, size_t errlen)
{
    const vol_geom *g = &image->geom;
    vol_slice_frame f;
    vol_geom_slice_frame(g, &f);
    const int t = o->size;
    if (s->n == 0)
        s->size = t;
    if (s->size != t) {
        mkd_seterr(err, errlen, "dataset: window size changed from %d to %d", s->size, t);
        return -1;
    }
    int64_t nvox = g->nx * g->ny * g->nz;
    prep_norm_stats st;
    if (prep_norm_fit(&o->norm, image->data, nvox, &st, err, errlen))
        return -1;
    double tsu = o->spacing > 0 ? o->spacing : f.du, tsv = o->spacing > 0 ? o->spacing : f.dv;
    int64_t rw = prep_resampled_size(f.w, f.du, tsu), rh = prep_resampled_size(f.h, f.dv, tsv);
    if (rw > 8192 || rh > 8192) {
        mkd_seterr(err, errlen, "dataset: resampled slice %lldx%lld is too large", (long long)rh,
                   (long long)rw);
        return -1;
    }
    float *sl = malloc(sizeof(float) * (size_t)(f.w * f.h)),
          *rs = malloc(sizeof(float) * (size_t)(rw * rh));
    uint8_t *ll = malloc((size_t)(f.w * f.h)), *rl = malloc((size_t)(rw * rh));
    int rc = -1;
    if (!sl || !rs || !ll || !rl) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    prep_rng rng;
    prep_rng_seed(&rng, o->seed ^ ((uint64_t)s->n * 0x9E3779B97F4A7C15ULL));

    /* the volume's foreground centre in resampled slice coordinates, for empty slices */
    double vcy = 0.5 * (double)rh, vcx = 0.5 * (double)rw, ay = 0, ax = 0;
    int64_t nfg = 0;
    for (int64_t k = 0; k < f.nslices; k++) {
        prep_slice_get_u8(g, &f, cls, k, ll);
        double cy, cx;
        if (fg_centre(ll, f.h, f.w, &cy, &cx)) {
            ay += cy;
            ax += cx;
            nfg++;
        }
    }
    if (nfg) {
        vcy = (ay / (double)nfg + 0.5) * (double)rh / (double)f.h - 0.5;
        vcx = (ax / (double)nfg + 0.5) * (double)rw / (double)f.w - 0.5;
    }
    int64_t empties = 0;
    for (int64_t k = 0; k < f.nslices; k++) {
        prep_slice_get_u8(g, &f, cls, k, ll);
        prep_resize_nearest_u8(ll, f.h, f.w, rl, rh, rw);
        double cy, cx;
        int has = fg_centre(rl, rh, rw, &cy, &cx);
        if (!has) {
            if (!o->empty_every || (empties++ % o->empty_every))
                continue;
            cy = vcy;
            cx = vcx;
        }
        prep_slice_get(g, &f, image->data, k, sl);
        prep_norm_apply(&o->norm, &st, sl, f.h * f.w);
        prep_resize_linear(sl, 1, f.h, f.w, rs, rh, rw);
        if (grow(s, 1)) {
            mkd_seterr(err, errlen, "out of memory");
            goto done;
        }
        int64_t y0 = origin(rh, t, cy, &rng), x0 = origin(rw, t, cx, &rng);
        float *di = s->img + (size_t)s->n * t * t;
        int32_t *dl = s->lab + (size_t)s->n * t * t;
        for (int i = 0; i < t; i++)
            for (int j = 0; j < t; j++) {
                int64_t y = y0 + i, x = x0 + j;
                int in = y >= 0 && y < rh && x >= 0 && x < rw;
                di[i * t + j] = in ? rs[y * rw + x] : -1.0f;
                dl[i * t + j] = in ? rl[y * rw + x] : 0;
            }
        s->n++;
    }
    rc = 0;
done:
    free(sl);
    free(rs);
    free(ll);
    free(rl);
    return rc;
}

int dataset_add_files(train_slices *s, const dataset_opts *o, const char *image_path,
                      const char *label_path, int64_t max_voxels, char *err, size_t errlen)
{
    vol_read_opts ro = {.max_voxels = max_voxels};
    vol_t im = {0}, lb = {0};
    uint8_t *cls = NULL;
    int rc = -1;
    char e2[400];
    if (vol_read(image_path, &ro, &im, e2, sizeof e2)) {
        mkd_seterr(err, errlen, "%s: %s", image_path, e2);
        goto done;
    }
    if (vol_read(label_path, &ro, &lb, e2, sizeof e2)) {
        mkd_seterr(err, errlen, "%s: %s", label_path, e2);
        goto done;
    }
    if (im.geom.nx != lb.geom.nx || im.geom.ny != lb.geom.ny || im.geom.nz != lb.geom.nz) {
        mkd_seterr(err, errlen, "%s and %s have different grids (%lldx%lldx%lld vs %lldx%lldx%lld)",
                   image_path, label_path, (long long)im.geom.nx, (long long)im.geom.ny,
                   (long long)im.geom.nz, (long long)lb.geom.nx, (long long)lb.geom.ny,
                   (long long)lb.geom.nz);
        goto done;
    }
    int64_t n = im.geom.nx * im.geom.ny * im.geom.nz;
    cls = malloc((size_t)n);
    if (!cls) {
        mkd_seterr(err, errlen, "out of memory");
        goto done;
    }
    if (vol_labels_to_classes(lb.data, n, VOL_LABELS_AUTO, cls, e2, sizeof e2)) {
        mkd_seterr(err, errlen, "%s: %s", label_path, e2);
        goto done;
    }
    vol_free(&lb);
    rc = dataset_add_volume(s, o, &im, cls, err, errlen);
done:
    free(cls);
    vol_free(&im);
    vol_free(&lb);
    return rc;
}
