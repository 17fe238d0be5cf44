/* metrics.c: Dice, ASSD, HD95 per structure (contract in metrics.h).
 *
 * Surface distances use an exact Euclidean distance transform (Felzenszwalb & Huttenlocher's
 * lower envelope of parabolas, one pass per axis, with the axis spacing) computed only over the
 * bounding box of the structure in either volume: every surface voxel lies inside it, so the
 * distances are the same as over the whole grid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seg_metrics.h"

#define BIG 1e30

/* 1-D squared distance transform of f[0..n) (stride in the buffer), sample spacing s.
 * v, z, tmp are scratch of n, n+1, n. */
static void dt1d(double *f, int64_t n, int64_t stride, double s, int64_t *v, double *z, double *tmp)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        tmp[i] = f[i * stride];
    int64_t first = -1;
    for (int64_t i = 0; i < n; i++)
        if (tmp[i] < BIG) {
            first = i;
            break;
        }
    if (first < 0)
        return; /* no feature on this line: stays BIG */
    v[0] = first;
    z[0] = -BIG;
    z[1] = BIG;
    for (int64_t q = first + 1; q < n; q++) {
        if (tmp[q] >= BIG)
            continue;
        double xq = q * s;
        for (;;) {
            double xv = v[k] * s;
            double sct = ((tmp[q] + xq * xq) - (tmp[v[k]] + xv * xv)) / (2 * (xq - xv));
            if (sct <= z[k] && k > 0) {
                k--;
                continue;
            }
            if (sct <= z[k]) { /* k == 0: replaces the only parabola */
                v[0] = q;
                z[0] = -BIG;
                z[1] = BIG;
                break;
            }
            k++;
            v[k] = q;
            z[k] = sct;
            z[k + 1] = BIG;
            break;
        }
    }
    k = 0;
    for (int64_t p = 0; p < n; p++) {
        double xp = p * s;
        while (z[k + 1] < xp)
            k++;
        double d = xp - v[k] * s;
        f[p * stride] = d * d + tmp[v[k]];
    }
}

/* Squared EDT in place over a bx*by*bz box (f: 0 at features, BIG elsewhere). */
static int edt3(double *f, int64_t bx, int64_t by, int64_t bz, const double sp[3])
{
    int64_t n = bx > by ? bx : by;
    n = n > bz ? n : bz;
    int64_t *v = malloc((size_t)n * sizeof *v);
    double *z = malloc((size_t)(n + 1) * sizeof *z), *tmp = malloc((size_t)n * sizeof *tmp);
    if (!v || !z || !tmp) {
        free(v), free(z), free(tmp);
        return -1;
    }
    for (int64_t k = 0; k < bz; k++)
        for (int64_t j = 0; j < by; j++)
            dt1d(f + (k * by + j) * bx, bx, 1, sp[0], v, z, tmp);
    for (int64_t k = 0; k < bz; k++)
        for (int64_t i = 0; i < bx; i++)
            dt1d(f + k * by * bx + i, by, bx, sp[1], v, z, tmp);
    for (int64_t j = 0; j < by; j++)
        for (int64_t i = 0; i < bx; i++)
            dt1d(f + j * bx + i, bz, bx * by, sp[2], v, z, tmp);
    free(v), free(z), free(tmp);
    return 0;
}

static int is_surface(const uint8_t *a, int c, int64_t i, int64_t j, int64_t k, int64_t nx,
                      int64_t ny, int64_t nz)
{
    int64_t idx = (k * ny + j) * nx + i;
    if (a[idx] != c)
        return 0;
    if (i == 0 || i == nx - 1 || j == 0 || j == ny - 1 || k == 0 || k == nz - 1)
        return 1;
    return a[idx - 1] != c || a[idx + 1] != c || a[idx - nx] != c || a[idx + nx] != c ||
           a[idx - nx * ny] != c || a[idx + nx * ny] != c;
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double pct95(double *d, int64_t n)
{
    qsort(d, (size_t)n, sizeof *d, cmp_d);
    double pos = 0.95 * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos);
    int64_t hi = lo + 1 < n ? lo + 1 : lo;
    return d[lo] + (pos - (double)lo) * (d[hi] - d[lo]);
}

int metrics_compute(const uint8_t *pred, const uint8_t *truth, int64_t nx, int64_t ny, int64_t nz,
                    const double sp[3], int nclasses, metrics_struct *out, char *err, size_t errlen)
{
    int64_t n = nx * ny * nz;
    int64_t(*bb)[6] = calloc((size_t)nclasses, sizeof *bb);
    double *fa = NULL, *fb = NULL, *da = NULL, *db = NULL;
    if (!bb)
        goto oom;
    memset(out, 0, (size_t)nclasses * sizeof *out);
    for (int c = 0; c < nclasses; c++) {
        bb[c][0] = nx, bb[c][1] = ny, bb[c][2] = nz;
        bb[c][3] = bb[c][4] = bb[c][5] = -1;
    }
    for (int64_t k = 0, idx = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++, idx++) {
                int p = pred[idx], t = truth[idx];
                if (p >= nclasses || t >= nclasses) {
                    if (err && errlen)
                        snprintf(err, errlen, "label %d at voxel %lld is not below nclasses=%d",
                                 p >= nclasses ? p : t, (long long)idx, nclasses);
                    free(bb);
                    return -1;
                }
                out[p].n_pred++;
                out[t].n_truth++;
                if (p == t)
                    out[p].n_inter++;
                for (int s = 0; s < 2; s++) {
                    int c = s ? t : p;
                    if (i < bb[c][0])
                        bb[c][0] = i;
                    if (j < bb[c][1])
                        bb[c][1] = j;
                    if (k < bb[c][2])
                        bb[c][2] = k;
                    if (i > bb[c][3])
                        bb[c][3] = i;
                    if (j > bb[c][4])
                        bb[c][4] = j;
                    if (k > bb[c][5])
                        bb[c][5] = k;
                }
            }
    (void)n;
    double diag = sqrt(pow(nx * sp[0], 2) + pow(ny * sp[1], 2) + pow(nz * sp[2], 2));
    memset(&out[0], 0, sizeof out[0]);
    for (int c = 1; c < nclasses; c++) {
        metrics_struct *m = &out[c];
        if (m->n_pred == 0 && m->n_truth == 0) {
            m->dice = 1.0;
            m->empty = METRICS_BOTH_EMPTY;
            continue;
        }
        m->dice = 2.0 * (double)m->n_inter / (double)(m->n_pred + m->n_truth);
        if (m->n_pred == 0 || m->n_truth == 0) {
            m->empty = m->n_pred == 0 ? METRICS_PRED_EMPTY : METRICS_TRUTH_EMPTY;
            m->assd = m->hd95 = diag;
            continue;
        }
        int64_t x0 = bb[c][0], y0 = bb[c][1], z0 = bb[c][2];
        int64_t bx = bb[c][3] - x0 + 1, by = bb[c][4] - y0 + 1, bz = bb[c][5] - z0 + 1;
        size_t bn = (size_t)(bx * by * bz);
        fa = malloc(bn * sizeof *fa);
        fb = malloc(bn * sizeof *fb);
        if (!fa || !fb)
            goto oom;
        int64_t na = 0, nb = 0;
        for (int64_t k = 0, q = 0; k < bz; k++)
            for (int64_t j = 0; j < by; j++)
                for (int64_t i = 0; i < bx; i++, q++) {
                    int sa = is_surface(pred, c, i + x0, j + y0, k + z0, nx, ny, nz);
                    int sb = is_surface(truth, c, i + x0, j + y0, k + z0, nx, ny, nz);
                    fa[q] = sa ? 0.0 : BIG;
                    fb[q] = sb ? 0.0 : BIG;
                    na += sa;
                    nb += sb;
                }
        da = malloc((size_t)na * sizeof *da);
        db = malloc((size_t)nb * sizeof *db);
        if (!da || !db || edt3(fa, bx, by, bz, sp) != 0 || edt3(fb, bx, by, bz, sp) != 0)
            goto oom;
        /* fa = squared distance to P's surface, fb = to T's surface */
        int64_t ia = 0, ib = 0;
        double sum = 0;
        for (int64_t q = 0; q < (int64_t)bn; q++) {
            if (fa[q] == 0.0 && ia < na) { /* a surface voxel of P: distance to T's surface */
                da[ia] = sqrt(fb[q]);
                sum += da[ia++];
            }
            if (fb[q] == 0.0 && ib < nb) {
                db[ib] = sqrt(fa[q]);
                sum += db[ib++];
            }
        }
        m->assd = sum / (double)(na + nb);
        double h1 = pct95(da, na), h2 = pct95(db, nb);
        m->hd95 = h1 > h2 ? h1 : h2;
        free(fa), free(fb), free(da), free(db);
        fa = fb = da = db = NULL;
    }
    free(bb);
    return 0;
oom:
    free(bb), free(fa), free(fb), free(da), free(db);
    if (err && errlen)
        snprintf(err, errlen, "metrics: out of memory");
    return -1;
}

void metrics_mean(const metrics_struct *m, int nclasses, double *dice, double *assd, double *hd95)
{
    double s[3] = {0, 0, 0};
    for (int c = 1; c < nclasses; c++) {
        s[0] += m[c].dice;
        s[1] += m[c].assd;
        s[2] += m[c].hd95;
    }
    int k = nclasses > 1 ? nclasses - 1 : 1;
    if (dice)
        *dice = s[0] / k;
    if (assd)
        *assd = s[1] / k;
    if (hd95)
        *hd95 = s[2] / k;
}
