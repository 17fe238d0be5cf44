/* geom.c: the affine in use, orientation codes, slicing axis and the canonical slice frame. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nifti/nifti2_io.h>

#include "vol.h"

const char *vol_affine_src_name(vol_affine_src s)
{
    switch (s) {
    case VOL_AFFINE_SFORM:
        return "sform";
    case VOL_AFFINE_QFORM:
        return "qform";
    default:
        return "pixdim";
    }
}

void vol_geom_update(vol_geom *g)
{
    double(*A)[4] = g->affine;
    memset(g->affine, 0, sizeof g->affine);
    A[3][3] = 1.0;
    if (g->sform_code > 0) {
        g->affine_src = VOL_AFFINE_SFORM;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                A[r][c] = g->srow[r][c];
    } else if (g->qform_code > 0) {
        g->affine_src = VOL_AFFINE_QFORM;
        double qfac = g->qfac < 0 ? -1.0 : 1.0;
        nifti_dmat44 m = nifti_quatern_to_dmat44(g->quatern_b, g->quatern_c, g->quatern_d,
                                                 g->qoffset_x, g->qoffset_y, g->qoffset_z,
                                                 g->pixdim[1], g->pixdim[2], g->pixdim[3], qfac);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                A[r][c] = m.m[r][c];
    } else {
        g->affine_src = VOL_AFFINE_PIXDIM;
        for (int d = 0; d < 3; d++)
            A[d][d] = g->pixdim[d + 1] > 0 ? g->pixdim[d + 1] : 1.0;
    }
}

int vol_geom_init(vol_geom *g, int64_t nx, int64_t ny, int64_t nz, const double affine[4][4],
                  char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    double det = affine[0][0] * (affine[1][1] * affine[2][2] - affine[1][2] * affine[2][1]) -
                 affine[0][1] * (affine[1][0] * affine[2][2] - affine[1][2] * affine[2][0]) +
                 affine[0][2] * (affine[1][0] * affine[2][1] - affine[1][1] * affine[2][0]);
    if (!isfinite(det) || fabs(det) < 1e-12 || nx < 1 || ny < 1 || nz < 1) {
        if (err && errlen)
            snprintf(err, errlen, "vol_geom_init: singular or non-finite affine, or empty grid");
        return -1;
    }
    g->nifti_version = 1;
    g->nx = nx;
    g->ny = ny;
    g->nz = nz;
    nifti_dmat44 m;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            m.m[r][c] = r < 3 ? affine[r][c] : (c == 3 ? 1.0 : 0.0);
    double dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(m, &g->quatern_b, &g->quatern_c, &g->quatern_d, &g->qoffset_x,
                            &g->qoffset_y, &g->qoffset_z, &dx, &dy, &dz, &qfac);
    g->qfac = qfac;
    g->pixdim[0] = qfac;
    g->pixdim[1] = dx;
    g->pixdim[2] = dy;
    g->pixdim[3] = dz;
    g->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    g->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            g->srow[r][c] = affine[r][c];
    g->xyz_units = NIFTI_UNITS_MM;
    g->time_units = NIFTI_UNITS_SEC;
    vol_geom_update(g);
    return 0;
}

void vol_geom_spacing(const vol_geom *g, double sp[3])
{
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int r = 0; r < 3; r++)
            s += g->affine[r][c] * g->affine[r][c];
        sp[c] = sqrt(s);
    }
}

void vol_geom_axes(const vol_geom *g, int world_axis[3], int sign[3])
{
    /* |cos| between array axis c and world axis r */
    double cosv[3][3];
    double sp[3];
    vol_geom_spacing(g, sp);
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < 3; r++)
            cosv[c][r] = sp[c] > 0 ? g->affine[r][c] / sp[c] : (r == c);
    static const int perm[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                   {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    int best = 0;
    double bestv = -1;
    for (int p = 0; p < 6; p++) {
        double s =
            fabs(cosv[0][perm[p][0]]) + fabs(cosv[1][perm[p][1]]) + fabs(cosv[2][perm[p][2]]);
        if (s > bestv + 1e-12) {
            bestv = s;
            best = p;
        }
    }
    for (int c = 0; c < 3; c++) {
        world_axis[c] = perm[best][c];
        sign[c] = cosv[c][perm[best][c]] < 0 ? -1 : 1;
    }
}

void vol_geom_orientation(const vol_geom *g, char code[4])
{
    static const char pos[3] = {'R', 'A', 'S'}, neg[3] = {'L', 'P', 'I'};
    int wa[3], sg[3];
    vol_geom_axes(g, wa, sg);
    for (int c = 0; c < 3; c++)
        code[c] = sg[c] > 0 ? pos[wa[c]] : neg[wa[c]];
    code[3] = '\0';
}

int vol_geom_slicing_axis(const vol_geom *g)
{
    int wa[3], sg[3];
    vol_geom_axes(g, wa, sg);
    for (int c = 0; c < 3; c++)
        if (wa[c] == 2)
            return c;
    return 2;
}

void vol_geom_slice_frame(const vol_geom *g, vol_slice_frame *f)
{
    int wa[3], sg[3];
    double sp[3];
    vol_geom_axes(g, wa, sg);
    vol_geom_spacing(g, sp);
    const int64_t n[3] = {g->nx, g->ny, g->nz};
    memset(f, 0, sizeof *f);
    for (int c = 0; c < 3; c++) {
        if (wa[c] == 0) {
            f->u_axis = c;
            f->u_flip = sg[c] > 0; /* u runs toward the patient's left (-x) */
        } else if (wa[c] == 1) {
            f->v_axis = c;
            f->v_flip = sg[c] > 0; /* v runs toward posterior (-y) */
        } else {
            f->slice_axis = c;
        }
    }
    f->w = n[f->u_axis];
    f->h = n[f->v_axis];
    f->nslices = n[f->slice_axis];
    f->du = sp[f->u_axis];
    f->dv = sp[f->v_axis];
    f->ds = sp[f->slice_axis];
}

int vol_geom_same(const vol_geom *a, const vol_geom *b, double tol, char *err, size_t errlen)
{
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz) {
        if (err && errlen)
            snprintf(err, errlen, "grids differ: %lldx%lldx%lld vs %lldx%lldx%lld",
                     (long long)a->nx, (long long)a->ny, (long long)a->nz, (long long)b->nx,
                     (long long)b->ny, (long long)b->nz);
        return -1;
    }
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            if (!(fabs(a->affine[r][c] - b->affine[r][c]) <= tol)) {
                if (err && errlen)
                    snprintf(err, errlen, "affines differ at [%d][%d]: %g vs %g", r, c,
                             a->affine[r][c], b->affine[r][c]);
                return -1;
            }
    return 0;
}
