/* test_metrics.c: Dice, ASSD, HD95 against hand-computed cases and a brute-force reference. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "seg_metrics.h"

#define NX 12
#define NY 10
#define NZ 8
#define IDX(i, j, k) (((k)*NY + (j)) * NX + (i))

static uint8_t P[NX * NY * NZ], T[NX * NY * NZ];
static metrics_struct M[8];

static void run(const double sp[3])
{
    char err[128];
    cr_assert_eq(metrics_compute(P, T, NX, NY, NZ, sp, 8, M, err, sizeof err), 0, "%s", err);
}

Test(metrics_hand, identical)
{
    memset(P, 0, sizeof P);
    for (int k = 2; k < 6; k++)
        for (int j = 2; j < 6; j++)
            for (int i = 2; i < 6; i++)
                P[IDX(i, j, k)] = 3;
    memcpy(T, P, sizeof P);
    run((double[3]){1, 1, 1});
    cr_assert_float_eq(M[3].dice, 1.0, 1e-12);
    cr_assert_float_eq(M[3].assd, 0.0, 1e-12);
    cr_assert_float_eq(M[3].hd95, 0.0, 1e-12);
    cr_assert_eq(M[3].n_pred, 64);
    cr_assert_eq(M[1].empty, METRICS_BOTH_EMPTY);
    cr_assert_float_eq(M[1].dice, 1.0, 1e-12);
}

/* single voxels 3 apart along x with x spacing 2 mm: every distance is 6 mm */
Test(metrics_hand, two_points_anisotropic)
{
    memset(P, 0, sizeof P), memset(T, 0, sizeof T);
    P[IDX(2, 2, 2)] = 1;
    T[IDX(5, 2, 2)] = 1;
    run((double[3]){2, 1, 1});
    cr_assert_float_eq(M[1].dice, 0.0, 1e-12);
    cr_assert_float_eq(M[1].assd, 6.0, 1e-9);
    cr_assert_float_eq(M[1].hd95, 6.0, 1e-9);
}

/* parallel planes x=2 and x=4, spacing 1.5 mm along x: all distances 3 mm */
Test(metrics_hand, planes)
{
    memset(P, 0, sizeof P), memset(T, 0, sizeof T);
    for (int k = 0; k < NZ; k++)
        for (int j = 0; j < NY; j++)
            P[IDX(2, j, k)] = 2, T[IDX(4, j, k)] = 2;
    run((double[3]){1.5, 0.7, 3});
    cr_assert_float_eq(M[2].assd, 3.0, 1e-9);
    cr_assert_float_eq(M[2].hd95, 3.0, 1e-9);
}

/* P = {a}, T = {a, b} with |ab| = 4: d(P->T) = {0}, d(T->P) = {0, 4};
 * ASSD = 4/3, HD95 = max(0, 0 + 0.95 * 4) = 3.8, Dice = 2/3 */
Test(metrics_hand, asymmetric)
{
    memset(P, 0, sizeof P), memset(T, 0, sizeof T);
    P[IDX(2, 2, 2)] = 7;
    T[IDX(2, 2, 2)] = 7;
    T[IDX(2, 2, 6)] = 7;
    run((double[3]){1, 1, 1});
    cr_assert_float_eq(M[7].dice, 2.0 / 3.0, 1e-12);
    cr_assert_float_eq(M[7].assd, 4.0 / 3.0, 1e-9);
    cr_assert_float_eq(M[7].hd95, 3.8, 1e-9);
}

Test(metrics_hand, empty_cases)
{
    memset(P, 0, sizeof P), memset(T, 0, sizeof T);
    T[IDX(1, 1, 1)] = 4;
    P[IDX(1, 1, 1)] = 5;
    run((double[3]){1, 2, 3});
    double diag = sqrt(12 * 12 + 20 * 20 + 24 * 24);
    cr_assert_eq(M[4].empty, METRICS_PRED_EMPTY);
    cr_assert_eq(M[5].empty, METRICS_TRUTH_EMPTY);
    cr_assert_float_eq(M[4].dice, 0.0, 1e-12);
    cr_assert_float_eq(M[4].hd95, diag, 1e-9);
    cr_assert_float_eq(M[5].assd, diag, 1e-9);
    double md;
    metrics_mean(M, 8, &md, NULL, NULL);
    cr_assert_float_eq(md, 5.0 / 7.0, 1e-12); /* 5 structures absent from both count as 1 */
    uint8_t bad = 9;
    P[0] = bad;
    char err[128];
    cr_assert_eq(metrics_compute(P, T, NX, NY, NZ, (double[3]){1, 1, 1}, 8, M, err, sizeof err),
                 -1);
}

/* random blobs: the distance transform against brute force over all surface pairs */
static int surf(const uint8_t *a, int c, int i, int j, int k)
{
    if (a[IDX(i, j, k)] != c)
        return 0;
    if (i == 0 || j == 0 || k == 0 || i == NX - 1 || j == NY - 1 || k == NZ - 1)
        return 1;
    return a[IDX(i - 1, j, k)] != c || a[IDX(i + 1, j, k)] != c || a[IDX(i, j - 1, k)] != c ||
           a[IDX(i, j + 1, k)] != c || a[IDX(i, j, k - 1)] != c || a[IDX(i, j, k + 1)] != c;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(metrics_brute, random_blobs)
{
    unsigned s = 12345;
    const double sp[3] = {0.7, 1.3, 2.1};
    for (int trial = 0; trial < 5; trial++) {
        for (int v = 0; v < NX * NY * NZ; v++) {
            s = s * 1103515245u + 12345u;
            P[v] = (s >> 16) % 5 == 0 ? 1 : 0;
            s = s * 1103515245u + 12345u;
            T[v] = (s >> 16) % 4 == 0 ? 1 : 0;
        }
        run(sp);
        static double d[2][NX * NY * NZ];
        int n[2] = {0, 0};
        double sum = 0;
        for (int dir = 0; dir < 2; dir++) {
            const uint8_t *A = dir ? T : P, *B = dir ? P : T;
            for (int k = 0; k < NZ; k++)
                for (int j = 0; j < NY; j++)
                    for (int i = 0; i < NX; i++) {
                        if (!surf(A, 1, i, j, k))
                            continue;
                        double best = 1e30;
                        for (int k2 = 0; k2 < NZ; k2++)
                            for (int j2 = 0; j2 < NY; j2++)
                                for (int i2 = 0; i2 < NX; i2++) {
                                    if (!surf(B, 1, i2, j2, k2))
                                        continue;
                                    double dd = pow((i - i2) * sp[0], 2) +
                                                pow((j - j2) * sp[1], 2) + pow((k - k2) * sp[2], 2);
                                    if (dd < best)
                                        best = dd;
                                }
                        d[dir][n[dir]++] = sqrt(best);
                        sum += sqrt(best);
                    }
        }
        double h = 0;
        for (int dir = 0; dir < 2; dir++) {
            qsort(d[dir], (size_t)n[dir], sizeof(double), cmpd);
            double pos = 0.95 * (n[dir] - 1);
            int lo = (int)pos, hi = lo + 1 < n[dir] ? lo + 1 : lo;
            double p = d[dir][lo] + (pos - lo) * (d[dir][hi] - d[dir][lo]);
            h = p > h ? p : h;
        }
        cr_assert_float_eq(M[1].assd, sum / (n[0] + n[1]), 1e-9, "trial %d", trial);
        cr_assert_float_eq(M[1].hd95, h, 1e-9, "trial %d", trial);
    }
}
