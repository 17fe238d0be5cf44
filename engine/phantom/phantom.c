/* phantom.c: synthetic labelled thorax, CT or bSSFP-like MR (model: docs/phantom.md).
 *
 * Pipeline per subject: draw the subject (anatomy + tissue values) from the seed; for every voxel
 * centre, map to world (mm, RAS+) and paint tissues in anatomical order (later wins), giving a
 * tissue id; the label is a function of the tissue id; intensity = tissue value + smooth texture;
 * then the point-spread blur (partial volume), MR bias field, and noise (Gaussian for CT, Rician
 * for MR). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phantom.h"

enum {
    T_AIR,
    T_LUNG,
    T_LUNGVES,
    T_FAT,
    T_PERIFAT,
    T_MUSCLE,
    T_SOFT,
    T_LIVER,
    T_BONE_CANC,
    T_BONE_CORT,
    T_CSF,
    T_ESO,
    T_WALL,
    T_MYO,
    T_LV,
    T_LA,
    T_AA,
    T_DAO,
    T_PV, /* left-heart blood */
    T_RV,
    T_RA,
    T_PA,
    T_PAB, /* right-heart blood */
    T_SVC,
    T_IVC,
    T_NT
};

static const uint8_t tissue_class[T_NT] = {
    [T_MYO] = 1, [T_LA] = 2, [T_LV] = 3, [T_RA] = 4, [T_RV] = 5, [T_AA] = 6, [T_PA] = 7,
};

typedef struct {
    double c[3];
    double R[3][3]; /* local = R (p - c): rows are the local axes in world coordinates */
    double a[3];
    double pk[3][3], pamp[3], pph[3];
    double rb; /* bounding radius (without grow) */
} ellip;

typedef struct {
    double p0[3], p1[3], r;
    double lo[3], hi[3];
} capsule;

typedef struct {
    double A, B, tf, tw, zr, zl;
    double yS;
    ellip lv_cav, lv_out, rv, la, ra, liver, lung_r, lung_l;
    double lv_base; /* truncation: local axis-0 coordinate > lv_base */
    capsule aa[2], arch[2], dao, pa[3], pab[2], svc, ivc, pv[4];
    double val[T_NT], tex[T_NT], texcell[T_NT];
    uint64_t salt;
    double noise_sigma;
    double bias_w[4][3], bias_c[4], bias_ph[4];
    double blur[3];
} subject;

static void v_rot(const double R[3][3], const double v[3], double o[3])
{
    for (int i = 0; i < 3; i++)
        o[i] = R[i][0] * v[0] + R[i][1] * v[1] + R[i][2] * v[2];
}

static void normalize(double v[3])
{
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int i = 0; i < 3; i++)
        v[i] /= n;
}

static void cross(const double a[3], const double b[3], double o[3])
{
    o[0] = a[1] * b[2] - a[2] * b[1];
    o[1] = a[2] * b[0] - a[0] * b[2];
    o[2] = a[0] * b[1] - a[1] * b[0];
}

static void rot_xyz(double ax, double ay, double az, double R[3][3])
{
    double cx = cos(ax), sx = sin(ax), cy = cos(ay), sy = sin(ay), cz = cos(az), sz = sin(az);
    double Rx[3][3] = {{1, 0, 0}, {0, cx, -sx}, {0, sx, cx}};
    double Ry[3][3] = {{cy, 0, sy}, {0, 1, 0}, {-sy, 0, cy}};
    double Rz[3][3] = {{cz, -sz, 0}, {sz, cz, 0}, {0, 0, 1}};
    double T[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            T[i][j] = 0;
            for (int k = 0; k < 3; k++)
                T[i][j] += Ry[i][k] * Rx[k][j];
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            R[i][j] = 0;
            for (int k = 0; k < 3; k++)
                R[i][j] += Rz[i][k] * T[k][j];
        }
}

/* An ellipsoid with local axes e[3] (heart frame, unit, rows) rotated into the world by Rh. */
static void ellip_make(ellip *e, prep_rng *r, const double c[3], const double ax[3][3],
                       const double Rh[3][3], const double a[3], double amp)
{
    memcpy(e->c, c, sizeof e->c);
    for (int i = 0; i < 3; i++)
        v_rot(Rh, ax[i], e->R[i]);
    double amax = 0;
    for (int i = 0; i < 3; i++) {
        e->a[i] = a[i];
        amax = a[i] > amax ? a[i] : amax;
    }
    double sum = 0;
    for (int m = 0; m < 3; m++) {
        double k[3] = {prep_rng_normal(r), prep_rng_normal(r), prep_rng_normal(r)};
        normalize(k);
        double f = prep_rng_range(r, 1.5, 3.0);
        for (int i = 0; i < 3; i++)
            e->pk[m][i] = k[i] * f;
        e->pamp[m] = amp * prep_rng_range(r, 0.5, 1.0);
        e->pph[m] = prep_rng_range(r, 0, 2 * M_PI);
        sum += e->pamp[m];
    }
    e->rb = amax * (1 + sum);
}

/* Inside test with the surface grown by `grow` mm; *t gets the local axis-0 coordinate. */
static int ellip_in(const ellip *e, const double p[3], double grow, double *t)
{
    double d[3] = {p[0] - e->c[0], p[1] - e->c[1], p[2] - e->c[2]};
    double rb = e->rb + grow;
    if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] > rb * rb)
        return 0;
    double q[3], l[3];
    v_rot(e->R, d, l);
    if (t)
        *t = l[0];
    for (int i = 0; i < 3; i++)
        q[i] = l[i] / (e->a[i] + grow);
    double rho = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
    if (rho < 0.5)
        return 1;
    double s = 1;
    for (int m = 0; m < 3; m++)
        s += e->pamp[m] *
             sin((e->pk[m][0] * q[0] + e->pk[m][1] * q[1] + e->pk[m][2] * q[2]) / rho + e->pph[m]);
    return rho < s;
}

static void cap_make(capsule *c, const double p0[3], const double p1[3], double r)
{
    memcpy(c->p0, p0, sizeof c->p0);
    memcpy(c->p1, p1, sizeof c->p1);
    c->r = r;
    for (int i = 0; i < 3; i++) {
        c->lo[i] = fmin(p0[i], p1[i]) - r;
        c->hi[i] = fmax(p0[i], p1[i]) + r;
    }
}

static int cap_in(const capsule *c, const double p[3])
{
    for (int i = 0; i < 3; i++)
        if (p[i] < c->lo[i] || p[i] > c->hi[i])
            return 0;
    double d[3], v[3], dd = 0, vv = 0;
    for (int i = 0; i < 3; i++) {
        d[i] = p[i] - c->p0[i];
        v[i] = c->p1[i] - c->p0[i];
        dd += d[i] * v[i];
        vv += v[i] * v[i];
    }
    double t = vv > 0 ? dd / vv : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double s = 0;
    for (int i = 0; i < 3; i++) {
        double e = d[i] - t * v[i];
        s += e * e;
    }
    return s < c->r * c->r;
}

/* Smooth value noise in [-1, 1]: hashed lattice with cell size `cell` mm, trilinear. */
static double hash01(int64_t x, int64_t y, int64_t z, uint64_t salt)
{
    uint64_t h = salt ^ ((uint64_t)x * 0x9E3779B97F4A7C15ULL) ^
                 ((uint64_t)y * 0xC2B2AE3D27D4EB4FULL) ^ ((uint64_t)z * 0x165667B19E3779F9ULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (double)(h >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

static double vnoise(const double p[3], double cell, uint64_t salt)
{
    double f[3];
    int64_t b[3];
    for (int i = 0; i < 3; i++) {
        double x = p[i] / cell + 1000.0;
        b[i] = (int64_t)floor(x);
        double t = x - (double)b[i];
        f[i] = t * t * (3 - 2 * t);
    }
    double s = 0;
    for (int c = 0; c < 8; c++) {
        double w = 1;
        for (int i = 0; i < 3; i++)
            w *= (c >> i & 1) ? f[i] : 1 - f[i];
        s += w * hash01(b[0] + (c & 1), b[1] + (c >> 1 & 1), b[2] + (c >> 2 & 1), salt);
    }
    return s;
}

static void add3(const double a[3], const double b[3], double o[3])
{
    for (int i = 0; i < 3; i++)
        o[i] = a[i] + b[i];
}

/* heart-frame point -> world */
static void hpt(const double H[3], const double Rh[3][3], double s, double x, double y, double z,
                prep_rng *r, double o[3])
{
    double v[3] = {s * (x + 2.0 * prep_rng_normal(r)), s * (y + 2.0 * prep_rng_normal(r)),
                   s * (z + 2.0 * prep_rng_normal(r))},
           w[3];
    v_rot(Rh, v, w);
    add3(H, w, o);
}

static void draw_appearance(subject *S, prep_modality mod, prep_rng *r);

static void draw_subject(subject *S, prep_modality mod, prep_rng *r, double H[3])
{
    static const double I3[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    memset(S, 0, sizeof *S);
    S->salt = prep_rng_u64(r);
    S->A = prep_rng_range(r, 150, 175);
    S->B = prep_rng_range(r, 105, 122);
    S->tf = prep_rng_range(r, 8, 25);
    S->tw = prep_rng_range(r, 10, 15);
    S->yS = -S->B * 0.62;
    H[0] = -12 + prep_rng_range(r, -12, 12);
    H[1] = 22 + prep_rng_range(r, -10, 10);
    H[2] = prep_rng_range(r, -12, 12);
    S->zr = H[2] - 45 + prep_rng_range(r, -12, 12);
    S->zl = S->zr - prep_rng_range(r, 5, 15);

    double Rh[3][3];
    rot_xyz(prep_rng_range(r, -15, 15) * M_PI / 180, prep_rng_range(r, -15, 15) * M_PI / 180,
            prep_rng_range(r, -25, 25) * M_PI / 180, Rh);
    double s = prep_rng_range(r, 0.82, 1.18);

    /* left-ventricle frame: e1 toward the apex (left, anterior, inferior) */
    double e[3][3] = {{-0.55, 0.55, -0.62}, {0, 0, 0}, {0, 0, 0}};
    normalize(e[0]);
    double up[3] = {0, 0, 1};
    cross(e[0], up, e[1]);
    normalize(e[1]);
    cross(e[0], e[1], e[2]);
    double c[3], a[3];
    double aL = 40 * prep_rng_range(r, 0.9, 1.1), aT = 22 * prep_rng_range(r, 0.88, 1.12);
    double th = prep_rng_range(r, 8, 12);
    hpt(H, Rh, s, -15, 5, -10, r, c);
    a[0] = s * aL, a[1] = s * aT, a[2] = s * aT * prep_rng_range(r, 0.9, 1.1);
    ellip_make(&S->lv_cav, r, c, e, Rh, a, 0.08);
    double ao[3] = {a[0] + th * 0.9, a[1] + th, a[2] + th};
    ellip_make(&S->lv_out, r, c, e, Rh, ao, 0.03);
    S->lv_base = -0.72 * a[0];
    /* RV: wraps the LV on its right-anterior side (the septum stays LV myocardium) */
    double rc[3] = {-15 + 25 * e[1][0] - 5 * e[0][0], 5 + 25 * e[1][1] - 5 * e[0][1],
                    -10 + 25 * e[1][2] - 5 * e[0][2]};
    hpt(H, Rh, s, rc[0], rc[1], rc[2], r, c);
    a[0] = s * 40 * prep_rng_range(r, 0.9, 1.1);
    a[1] = s * 28 * prep_rng_range(r, 0.85, 1.15);
    a[2] = s * 34 * prep_rng_range(r, 0.85, 1.15);
    ellip_make(&S->rv, r, c, e, Rh, a, 0.12);
    hpt(H, Rh, s, -8, -30, 20, r, c);
    a[0] = s * 30 * prep_rng_range(r, 0.85, 1.15);
    a[1] = s * 20 * prep_rng_range(r, 0.85, 1.15);
    a[2] = s * 22 * prep_rng_range(r, 0.85, 1.15);
    ellip_make(&S->la, r, c, I3, Rh, a, 0.12);
    double la_c[3];
    memcpy(la_c, c, sizeof la_c);
    hpt(H, Rh, s, 30, -5, 10, r, c);
    a[0] = s * 24 * prep_rng_range(r, 0.85, 1.15);
    a[1] = s * 24 * prep_rng_range(r, 0.85, 1.15);
    a[2] = s * 28 * prep_rng_range(r, 0.85, 1.15);
    ellip_make(&S->ra, r, c, I3, Rh, a, 0.12);
    double ra_top[3], ra_bot[3];
    hpt(H, Rh, s, 30, -5, 34, r, ra_top);
    hpt(H, Rh, s, 28, -8, -12, r, ra_bot);

    /* great vessels */
    double p0[3], p1[3], p2[3], p3[3];
    double raa = 14 * prep_rng_range(r, 0.85, 1.15);
    hpt(H, Rh, s, -2, -8, 10, r, p0);
    hpt(H, Rh, s, 6, 2, 58, r, p1);
    cap_make(&S->aa[0], p0, p0, raa * 1.1); /* aortic root (sinus) */
    cap_make(&S->aa[1], p0, p1, raa);
    double dao_top[3] = {-24 + prep_rng_range(r, -4, 4), S->yS + 22, p1[2] + 12};
    double mid[3] = {(p1[0] + dao_top[0]) / 2, (p1[1] + dao_top[1]) / 2, p1[2] + 22};
    cap_make(&S->arch[0], p1, mid, raa * 0.9);
    cap_make(&S->arch[1], mid, dao_top, raa * 0.85);
    double dao_bot[3] = {dao_top[0], dao_top[1] - 3, -200};
    cap_make(&S->dao, dao_top, dao_bot, raa * 0.8);
    double rpa = 13 * prep_rng_range(r, 0.85, 1.15);
    hpt(H, Rh, s, -10, 28, 8, r, p0);
    hpt(H, Rh, s, -20, 10, 40, r, p1);
    cap_make(&S->pa[0], p0, p1, rpa);
    hpt(H, Rh, s, -45, -5, 42, r, p2);
    cap_make(&S->pa[1], p1, p2, rpa * 0.75);
    hpt(H, Rh, s, 10, -22, 42, r, p3);
    cap_make(&S->pa[2], p1, p3, rpa * 0.75);
    double q[3] = {p2[0] - 30, p2[1] - 10, p2[2] - 6};
    cap_make(&S->pab[0], p2, q, rpa * 0.6);
    double q2[3] = {p3[0] + 30, p3[1] - 5, p3[2] - 4};
    cap_make(&S->pab[1], p3, q2, rpa * 0.6);
    double svc_top[3] = {ra_top[0], ra_top[1] - 5, 200};
    cap_make(&S->svc, ra_top, svc_top, 9 * prep_rng_range(r, 0.85, 1.15));
    double ivc_bot[3] = {ra_bot[0] - 5, ra_bot[1] - 10, -200};
    cap_make(&S->ivc, ra_bot, ivc_bot, 11 * prep_rng_range(r, 0.85, 1.15));
    for (int v = 0; v < 4; v++) {
        double end[3] = {la_c[0] + (v & 1 ? 45 : -40), la_c[1] - 10, la_c[2] + (v & 2 ? 9 : -9)};
        cap_make(&S->pv[v], la_c, end, 6 * prep_rng_range(r, 0.8, 1.2));
    }

    /* surroundings (world-fixed) */
    c[0] = 55, c[1] = 10, c[2] = S->zr - 75;
    a[0] = 100, a[1] = 85, a[2] = 90;
    ellip_make(&S->liver, r, c, I3, I3, a, 0.05);
    c[0] = 72, c[1] = -5, c[2] = S->zr + 80;
    a[0] = 65, a[1] = 88, a[2] = 150;
    ellip_make(&S->lung_r, r, c, I3, I3, a, 0.03);
    c[0] = -72, c[2] = S->zl + 80;
    a[0] = 60;
    ellip_make(&S->lung_l, r, c, I3, I3, a, 0.03);
    draw_appearance(S, mod, r);
}

/* The tissue values, texture, noise, blur and (MR) bias field of modality mod, drawn from r;
 * docs/phantom.md gives the sources. Overwrites every appearance field of S, so a subject drawn
 * for one modality can be given the other's appearance (the paired rendering). */
static void draw_appearance(subject *S, prep_modality mod, prep_rng *r)
{
    double *v = S->val, *t = S->tex, *cell = S->texcell;
    memset(S->val, 0, sizeof S->val);
    memset(S->tex, 0, sizeof S->tex);
    memset(S->bias_c, 0, sizeof S->bias_c);
    for (int i = 0; i < T_NT; i++)
        cell[i] = 15;
    if (mod == PREP_CT) {
        double bl = prep_rng_range(r, 250, 420), br = bl * prep_rng_range(r, 0.85, 1.08);
        v[T_AIR] = -1000, v[T_LUNG] = prep_rng_range(r, -880, -820), v[T_LUNGVES] = -450;
        v[T_FAT] = prep_rng_range(r, -115, -85), v[T_PERIFAT] = v[T_FAT] + 10;
        v[T_MUSCLE] = prep_rng_range(r, 40, 55), v[T_SOFT] = 40;
        v[T_LIVER] = prep_rng_range(r, 70, 110);
        v[T_BONE_CANC] = prep_rng_range(r, 200, 320), v[T_BONE_CORT] = 700, v[T_CSF] = 15;
        v[T_ESO] = 35;
        v[T_MYO] = prep_rng_range(r, 90, 140), v[T_WALL] = v[T_MYO] - 10;
        v[T_LV] = bl + prep_rng_normal(r) * 12, v[T_LA] = bl + prep_rng_normal(r) * 12;
        v[T_AA] = bl + prep_rng_normal(r) * 12, v[T_DAO] = v[T_AA], v[T_PV] = v[T_LA];
        v[T_RV] = br + prep_rng_normal(r) * 12, v[T_RA] = br + prep_rng_normal(r) * 12;
        v[T_PA] = br + prep_rng_normal(r) * 12, v[T_PAB] = v[T_PA];
        v[T_SVC] = prep_rng_range(r, 300, 900), v[T_IVC] = prep_rng_range(r, 80, 180);
        t[T_RA] = 35, t[T_RV] = 15, t[T_SVC] = 80, t[T_LV] = 8, t[T_LA] = 8, t[T_MYO] = 10;
        t[T_LIVER] = 8, t[T_FAT] = 10, t[T_MUSCLE] = 6;
        S->noise_sigma = prep_rng_range(r, 20, 45);
        S->blur[0] = S->blur[1] = S->blur[2] = 0.55;
    } else {
        double gain = prep_rng_range(r, 250, 900);
        double bl = prep_rng_range(r, 0.85, 1.05);
        v[T_AIR] = 0, v[T_LUNG] = 0.05, v[T_LUNGVES] = 0.25;
        v[T_FAT] = prep_rng_range(r, 0.8, 1.0), v[T_PERIFAT] = v[T_FAT];
        v[T_MUSCLE] = prep_rng_range(r, 0.22, 0.32), v[T_SOFT] = 0.35;
        v[T_LIVER] = prep_rng_range(r, 0.30, 0.45);
        v[T_BONE_CANC] = prep_rng_range(r, 0.45, 0.6), v[T_BONE_CORT] = 0.05, v[T_CSF] = 1.0;
        v[T_ESO] = 0.3;
        v[T_MYO] = prep_rng_range(r, 0.25, 0.38), v[T_WALL] = v[T_MYO];
        v[T_LV] = bl + prep_rng_normal(r) * 0.05, v[T_LA] = bl + prep_rng_normal(r) * 0.05;
        v[T_AA] = bl + prep_rng_normal(r) * 0.05, v[T_DAO] = v[T_AA], v[T_PV] = v[T_LA];
        v[T_RV] = bl + prep_rng_normal(r) * 0.05, v[T_RA] = bl + prep_rng_normal(r) * 0.05;
        v[T_PA] = bl + prep_rng_normal(r) * 0.05, v[T_PAB] = v[T_PA];
        v[T_SVC] = bl * 0.9, v[T_IVC] = bl * 0.9;
        t[T_LV] = t[T_RV] = 0.08, t[T_RA] = t[T_LA] = 0.06, t[T_FAT] = 0.05;
        for (int i = 0; i < T_NT; i++)
            v[i] *= gain, t[i] *= gain;
        S->noise_sigma = prep_rng_range(r, 0.025, 0.05) * bl * gain;
        S->blur[0] = S->blur[1] = 0.6, S->blur[2] = 0.9;
        for (int m = 0; m < 4; m++) {
            double k[3] = {prep_rng_normal(r), prep_rng_normal(r), prep_rng_normal(r)};
            normalize(k);
            double f = 2 * M_PI / prep_rng_range(r, 250, 600);
            for (int i = 0; i < 3; i++)
                S->bias_w[m][i] = k[i] * f;
            S->bias_c[m] = prep_rng_range(r, 0.08, 0.18);
            S->bias_ph[m] = prep_rng_range(r, 0, 2 * M_PI);
        }
    }
    cell[T_LUNGVES] = 7;
}

static int paint(const subject *S, const double p[3])
{
    double x = p[0], y = p[1], z = p[2];
    double e = (x / S->A) * (x / S->A) + (y / S->B) * (y / S->B);
    if (e >= 1)
        return T_AIR;
    int t = T_FAT;
    double A1 = S->A - S->tf, B1 = S->B - S->tf;
    double th = atan2(y / S->B, x / S->A);
    if ((x / A1) * (x / A1) + (y / B1) * (y / B1) < 1) {
        t = T_MUSCLE;
        double post = sin(th) < 0 ? sin(th) * sin(th) : 0;
        double tw = S->tw + 28 * post;
        double A2 = A1 - tw, B2 = B1 - tw;
        int cavity = (x / A2) * (x / A2) + (y / B2) * (y / B2) < 1;
        if (!cavity) {
            /* ribs slope downward toward the front; the sternum in front */
            double zr = z + 22 * sin(th);
            double m = fmod(zr + 1000.0, 30.0);
            if (m < 8 && sin(th) > -0.85)
                t = m < 1.5 || m > 6.5 ? T_BONE_CORT : T_BONE_CANC;
            if (sin(th) > 0.9 && fabs(x) < 16)
                t = T_BONE_CANC;
        } else {
            double zd = fmax(S->zr - ((x - 60) * (x - 60) + y * y) / 260.0,
                             S->zl - ((x + 60) * (x + 60) + y * y) / 260.0);
            if (z > zd + 2) {
                t = T_FAT; /* mediastinal fat unless something else is there */
                if (fabs(x) > 10 &&
                    (ellip_in(&S->lung_r, p, 0, NULL) || ellip_in(&S->lung_l, p, 0, NULL)))
                    t = vnoise(p, S->texcell[T_LUNGVES], S->salt ^ 7) > 0.55 ? T_LUNGVES : T_LUNG;
            } else {
                t = T_SOFT;
                if (ellip_in(&S->liver, p, 0, NULL))
                    t = T_LIVER;
            }
        }
    }
    /* spine */
    double dy = y - S->yS, rs = sqrt(x * x + dy * dy);
    if (rs < 17) {
        double m = fmod(z + 1000.0, 28.0);
        t = m < 5 ? T_SOFT : rs > 15 ? T_BONE_CORT : T_BONE_CANC;
    } else if (fabs(x) < 22 && dy < -18 && dy > -48) {
        double rc = sqrt(x * x + (dy + 26) * (dy + 26));
        t = rc < 8 ? T_CSF : rc < 10 ? T_BONE_CORT : (fabs(x) < 12 || dy > -30) ? T_BONE_CANC : t;
    }
    /* trachea above the heart, esophagus behind it */
    double yt = S->yS + 45;
    if (z > S->zr + 105 && x * x + (y - yt) * (y - yt) < 81)
        t = T_AIR;
    if ((x + 5) * (x + 5) + (y - S->yS - 30) * (y - S->yS - 30) < 49)
        t = T_ESO;
    /* vessels outside the labelled structures */
    if (cap_in(&S->dao, p) || cap_in(&S->arch[1], p))
        t = T_DAO;
    if (cap_in(&S->ivc, p))
        t = T_IVC;
    if (cap_in(&S->svc, p))
        t = T_SVC;
    for (int v = 0; v < 4; v++)
        if (cap_in(&S->pv[v], p))
            t = T_PV;
    if (cap_in(&S->pab[0], p) || cap_in(&S->pab[1], p))
        t = T_PAB;
    /* heart */
    double tt;
    if (ellip_in(&S->lv_out, p, 6, NULL) || ellip_in(&S->rv, p, 6, NULL) ||
        ellip_in(&S->la, p, 5, NULL) || ellip_in(&S->ra, p, 5, NULL))
        t = T_PERIFAT;
    if (ellip_in(&S->rv, p, 3, NULL) || ellip_in(&S->la, p, 2, NULL) ||
        ellip_in(&S->ra, p, 2, NULL))
        t = T_WALL;
    if (ellip_in(&S->la, p, 0, NULL))
        t = T_LA;
    if (ellip_in(&S->ra, p, 0, NULL))
        t = T_RA;
    if (ellip_in(&S->rv, p, 0, NULL))
        t = T_RV;
    if (ellip_in(&S->lv_out, p, 0, &tt) && tt > S->lv_base)
        t = T_MYO;
    if (ellip_in(&S->lv_cav, p, 0, &tt) && tt > S->lv_base)
        t = T_LV;
    if (cap_in(&S->pa[0], p) || cap_in(&S->pa[1], p) || cap_in(&S->pa[2], p))
        t = T_PA;
    if (cap_in(&S->aa[0], p) || cap_in(&S->aa[1], p) || cap_in(&S->arch[0], p))
        t = T_AA;
    return t;
}

/* separable Gaussian blur along one axis (sigma in voxels), edges clamped */
static void blur_axis(float *x, int64_t n[3], int axis, double sigma, float *line, float *tmp)
{
    if (sigma <= 0.05)
        return;
    int rad = (int)ceil(3 * sigma);
    float k[64];
    if (rad > 31)
        rad = 31;
    double sum = 0;
    for (int i = -rad; i <= rad; i++)
        sum += k[i + rad] = (float)exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * rad; i++)
        k[i] = (float)(k[i] / sum);
    int64_t len = n[axis];
    int64_t stride = axis == 0 ? 1 : axis == 1 ? n[0] : n[0] * n[1];
    int64_t o1 = axis == 0 ? n[1] : n[0], o2 = axis == 2 ? n[1] : n[2];
    int64_t s1 = axis == 0 ? n[0] : 1, s2 = axis == 2 ? n[0] : n[0] * n[1];
    for (int64_t b = 0; b < o2; b++)
        for (int64_t a = 0; a < o1; a++) {
            float *base = x + a * s1 + b * s2;
            for (int64_t i = 0; i < len; i++)
                line[i] = base[i * stride];
            for (int64_t i = 0; i < len; i++) {
                float s = 0;
                for (int j = -rad; j <= rad; j++) {
                    int64_t q = i + j;
                    q = q < 0 ? 0 : q >= len ? len - 1 : q;
                    s += k[j + rad] * line[q];
                }
                tmp[i] = s;
            }
            for (int64_t i = 0; i < len; i++)
                base[i * stride] = tmp[i];
        }
}

void phantom_default(phantom_opts *o, prep_modality m, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->modality = m;
    o->seed = seed;
    o->noise = 1.0;
    if (m == PREP_CT) {
        o->shape[0] = 96, o->shape[1] = 96, o->shape[2] = 80;
        o->fov[0] = 220, o->fov[1] = 220, o->fov[2] = 160;
    } else {
        o->shape[0] = 80, o->shape[1] = 80, o->shape[2] = 40;
        o->fov[0] = 300, o->fov[1] = 300, o->fov[2] = 160;
    }
}

int phantom_generate(const phantom_opts *o, phantom_vol *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int64_t n[3] = {o->shape[0], o->shape[1], o->shape[2]};
    for (int i = 0; i < 3; i++)
        if (n[i] < 1 || n[i] > 2048 || !(o->fov[i] > 0) || o->fov[i] > 2000) {
            if (err && errlen)
                snprintf(err, errlen,
                         "phantom: shape must be 1..2048 and field of view 0..2000 mm per axis");
            return -1;
        }
    prep_rng r;
    prep_rng_seed(&r, o->seed * 2 + (o->modality == PREP_MR) + 0x5eed);
    subject *S = malloc(sizeof *S);
    float *line = NULL, *tmp = NULL;
    if (!S)
        goto oom;
    double H[3];
    draw_subject(S, o->modality, &r, H);
    double fov[3], sp[3];
    for (int i = 0; i < 3; i++) {
        fov[i] = o->fov[i] * (o->fixed_fov ? 1.0 : prep_rng_range(&r, 0.88, 1.12));
        sp[i] = fov[i] / (double)n[i];
    }
    double ctr[3] = {H[0] + 10 + prep_rng_range(&r, -15, 15),
                     H[1] - 5 + prep_rng_range(&r, -15, 15), H[2] + prep_rng_range(&r, -10, 10)};
    double Rg[3][3], A[4][4] = {{0}};
    if (o->modality == PREP_CT) {
        double d[3] = {-1, -1, 1}; /* LPS, as CT converted from DICOM usually is */
        memset(Rg, 0, sizeof Rg);
        for (int i = 0; i < 3; i++)
            Rg[i][i] = d[i];
    } else {
        double Rt[3][3];
        rot_xyz(prep_rng_range(&r, -6, 6) * M_PI / 180, prep_rng_range(&r, -6, 6) * M_PI / 180, 0,
                Rt);
        memcpy(Rg, Rt, sizeof Rg);
    }
    for (int rr = 0; rr < 3; rr++) {
        double off = 0;
        for (int c = 0; c < 3; c++) {
            A[rr][c] = Rg[rr][c] * sp[c];
            off += A[rr][c] * (n[c] - 1) / 2.0;
        }
        A[rr][3] = ctr[rr] - off;
    }
    A[3][3] = 1;
    /* the paired rendering: the same subject on the same grid with the other modality's
     * appearance, drawn (with the noise) from a stream of its own */
    prep_modality look = o->modality;
    if (o->paired) {
        look = o->modality == PREP_CT ? PREP_MR : PREP_CT;
        prep_rng_seed(&r, o->seed * 2 + (o->modality == PREP_MR) + 0x9a1d);
        draw_appearance(S, look, &r);
    }
    if (vol_geom_init(&out->geom, n[0], n[1], n[2], A, err, errlen) != 0)
        goto fail;
    int64_t nv = n[0] * n[1] * n[2];
    out->image = malloc((size_t)nv * sizeof(float));
    out->label = malloc((size_t)nv);
    int64_t nmax = n[0] > n[1] ? n[0] : n[1];
    nmax = nmax > n[2] ? nmax : n[2];
    line = malloc((size_t)nmax * sizeof(float));
    tmp = malloc((size_t)nmax * sizeof(float));
    if (!out->image || !out->label || !line || !tmp)
        goto oom;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t k = 0; k < n[2]; k++)
        for (int64_t j = 0; j < n[1]; j++)
            for (int64_t i = 0; i < n[0]; i++) {
                double p[3];
                for (int rr = 0; rr < 3; rr++)
                    p[rr] = A[rr][0] * i + A[rr][1] * j + A[rr][2] * k + A[rr][3];
                int t = paint(S, p);
                int64_t idx = (k * n[1] + j) * n[0] + i;
                out->label[idx] = tissue_class[t];
                double v = S->val[t];
                if (S->tex[t] != 0)
                    v += S->tex[t] * vnoise(p, S->texcell[t], S->salt + (uint64_t)t);
                out->image[idx] = (float)v;
            }
    for (int ax = 0; ax < 3; ax++)
        blur_axis(out->image, n, ax, S->blur[ax], line, tmp);
    for (int64_t k = 0, idx = 0; k < n[2]; k++)
        for (int64_t j = 0; j < n[1]; j++)
            for (int64_t i = 0; i < n[0]; i++, idx++) {
                double v = out->image[idx];
                double sig = S->noise_sigma * o->noise;
                if (look == PREP_CT) {
                    v += sig * prep_rng_normal(&r);
                    v = v < -1024 ? -1024 : v > 3071 ? 3071 : v;
                } else {
                    double p[3];
                    for (int rr = 0; rr < 3; rr++)
                        p[rr] = A[rr][0] * i + A[rr][1] * j + A[rr][2] * k + A[rr][3];
                    double b = 0;
                    for (int m = 0; m < 4; m++)
                        b += S->bias_c[m] * cos(S->bias_w[m][0] * p[0] + S->bias_w[m][1] * p[1] +
                                                S->bias_w[m][2] * p[2] + S->bias_ph[m]);
                    v *= exp(b);
                    double re = v + sig * prep_rng_normal(&r), im = sig * prep_rng_normal(&r);
                    v = sqrt(re * re + im * im);
                }
                out->image[idx] = (float)v;
            }
    free(line);
    free(tmp);
    free(S);
    return 0;
oom:
    if (err && errlen)
        snprintf(err, errlen, "phantom: out of memory");
fail:
    free(line);
    free(tmp);
    free(S);
    phantom_free(out);
    return -1;
}

void phantom_free(phantom_vol *p)
{
    free(p->image);
    free(p->label);
    p->image = NULL;
    p->label = NULL;
}

int phantom_write(const phantom_vol *p, prep_modality m, const char *image_path,
                  const char *label_path, char *err, size_t errlen)
{
    if (image_path && vol_write(image_path, &p->geom, p->image,
                                m == PREP_CT ? VOL_DT_INT16 : VOL_DT_FLOAT32, err, errlen) != 0)
        return -1;
    if (label_path &&
        vol_write_labels(label_path, &p->geom, p->label, VOL_LABELS_MMWHS, err, errlen) != 0)
        return -1;
    return 0;
}
