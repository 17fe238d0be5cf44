/* norm.c: intensity normalisation per modality (contract in prep.h).
 * CT: clip to the HU window [ct_lo, ct_hi], map linearly to [-1, 1].
 * MR: per volume, clip to the [mr_plo, mr_phi] percentiles, z-score with the mean and standard
 * deviation of the clipped values, divide by mr_zscale and clip to [-1, 1]. Percentiles come from
 * a 4096-bin histogram between the volume's min and max, interpolated inside the bin. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prep.h"

#define NBINS 4096

void prep_norm_default(prep_norm *p, prep_modality m)
{
    memset(p, 0, sizeof *p);
    p->modality = m;
    p->ct_lo = -400.0f;
    p->ct_hi = 700.0f;
    p->mr_plo = 0.5f;
    p->mr_phi = 99.5f;
    p->mr_zscale = 3.0f;
}

static float hist_pct(const int64_t *h, int64_t n, float lo, float hi, double pct)
{
    double target = pct / 100.0 * (double)n, acc = 0;
    double bw = ((double)hi - lo) / NBINS;
    for (int b = 0; b < NBINS; b++) {
        if (acc + (double)h[b] >= target && h[b] > 0)
            return (float)(lo + bw * (b + (target - acc) / (double)h[b]));
        acc += (double)h[b];
    }
    return hi;
}

int prep_norm_fit(const prep_norm *p, const float *x, int64_t n, prep_norm_stats *st, char *err,
                  size_t errlen)
{
    memset(st, 0, sizeof *st);
    if (p->modality == PREP_CT) {
        st->lo = p->ct_lo, st->hi = p->ct_hi;
        return 0;
    }
    if (n <= 0 || !(p->mr_plo >= 0 && p->mr_plo < p->mr_phi && p->mr_phi <= 100) ||
        !(p->mr_zscale > 0)) {
        if (err && errlen)
            snprintf(err, errlen, "prep_norm_fit: empty volume or invalid MR percentiles/scale");
        return -1;
    }
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++)
        mn = x[i] < mn ? x[i] : mn, mx = x[i] > mx ? x[i] : mx;
    int64_t *h = calloc(NBINS, sizeof *h);
    if (!h) {
        if (err && errlen)
            snprintf(err, errlen, "prep_norm_fit: out of memory");
        return -1;
    }
    double scale = mx > mn ? NBINS / ((double)mx - mn) : 0;
    for (int64_t i = 0; i < n; i++) {
        int b = (int)(((double)x[i] - mn) * scale);
        h[b < 0 ? 0 : b >= NBINS ? NBINS - 1 : b]++;
    }
    st->lo = mx > mn ? hist_pct(h, n, mn, mx, p->mr_plo) : mn;
    st->hi = mx > mn ? hist_pct(h, n, mn, mx, p->mr_phi) : mx;
    free(h);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i] < st->lo ? st->lo : x[i] > st->hi ? st->hi : x[i];
        s += v;
        s2 += v * v;
    }
    st->mean = (float)(s / (double)n);
    double var = s2 / (double)n - (s / (double)n) * (s / (double)n);
    st->std = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    return 0;
}

void prep_norm_apply(const prep_norm *p, const prep_norm_stats *st, float *x, int64_t n)
{
    if (p->modality == PREP_CT) {
        float lo = p->ct_lo, hi = p->ct_hi, k = 2.0f / (hi - lo);
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
            x[i] = (v - lo) * k - 1.0f;
        }
        return;
    }
    float lo = st->lo, hi = st->hi, m = st->mean, k = 1.0f / (st->std * p->mr_zscale);
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
        v = (v - m) * k;
        x[i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
    }
}

int prep_modality_parse(const char *s, prep_modality *m)
{
    if (s && !strcmp(s, "ct"))
        *m = PREP_CT;
    else if (s && !strcmp(s, "mr"))
        *m = PREP_MR;
    else
        return -1;
    return 0;
}

const char *prep_modality_name(prep_modality m) { return m == PREP_CT ? "ct" : "mr"; }

int prep_norm_to_string(const prep_norm *p, char *buf, size_t len)
{
    int n = snprintf(buf, len,
                     "modality=%s;ct_lo=%.9g;ct_hi=%.9g;mr_plo=%.9g;mr_phi=%.9g;mr_zscale=%.9g",
                     prep_modality_name(p->modality), (double)p->ct_lo, (double)p->ct_hi,
                     (double)p->mr_plo, (double)p->mr_phi, (double)p->mr_zscale);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

int prep_norm_from_string(prep_norm *p, const char *s, char *err, size_t errlen)
{
    prep_norm_default(p, PREP_CT);
    int have_mod = 0;
    while (*s) {
        const char *eq = strchr(s, '='), *end = strchr(s, ';');
        if (!end)
            end = s + strlen(s);
        if (!eq || eq > end) {
            if (err && errlen)
                snprintf(err, errlen, "normalisation: expected key=value in '%.40s'", s);
            return -1;
        }
        size_t kl = (size_t)(eq - s);
        char val[64];
        size_t vl = (size_t)(end - eq - 1);
        if (vl >= sizeof val)
            vl = sizeof val - 1;
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
        char *e;
        float f = strtof(val, &e);
        int isnum = e != val && *e == 0 && isfinite(f);
        if (kl == 8 && !strncmp(s, "modality", 8)) {
            if (prep_modality_parse(val, &p->modality) < 0)
                goto bad;
            have_mod = 1;
        } else if (!isnum) {
            goto bad;
        } else if (kl == 5 && !strncmp(s, "ct_lo", 5))
            p->ct_lo = f;
        else if (kl == 5 && !strncmp(s, "ct_hi", 5))
            p->ct_hi = f;
        else if (kl == 6 && !strncmp(s, "mr_plo", 6))
            p->mr_plo = f;
        else if (kl == 6 && !strncmp(s, "mr_phi", 6))
            p->mr_phi = f;
        else if (kl == 9 && !strncmp(s, "mr_zscale", 9))
            p->mr_zscale = f;
        else
            goto bad;
        s = *end ? end + 1 : end;
        continue;
    bad:
        if (err && errlen)
            snprintf(err, errlen, "normalisation: bad entry '%.*s'", (int)(end - s), s);
        return -1;
    }
    if (!have_mod || !(p->ct_hi > p->ct_lo) ||
        !(p->mr_plo >= 0 && p->mr_plo < p->mr_phi && p->mr_phi <= 100) || !(p->mr_zscale > 0)) {
        if (err && errlen)
            snprintf(err, errlen, "normalisation: missing modality or inconsistent values");
        return -1;
    }
    return 0;
}
