/* test_nn_vmath.c: the AVX2 exp, log and tanh of the CPU backend (engine/nn/cpu/cpu_vmath.h) against
 * libm in double precision over dense sweeps of their ranges, in units in the last place of
 * the float result; and the edges (clamping of exp, powers of two and the sqrt(2) split of
 * log). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>

#include "../../engine/nn/cpu/cpu_vmath.h"

/* |got - want| in ulps of want (as a float) */
static double ulps(float got, double want)
{
    const float w = (float)want;
    const double ulp = nextafterf(fabsf(w), INFINITY) - fabsf(w);
    return fabs((double)got - want) / ulp;
}

enum { F_EXP, F_LOG, F_TANH };

static double worst(int fn, float lo, float hi, int steps, float *at)
{
    double e = 0;
    for (int i = 0; i < steps; i += 8) {
        float in[8], out[8];
        for (int k = 0; k < 8; k++)
            in[k] = lo + (hi - lo) * (float)(i + k) / (float)steps;
        const __m256 v = _mm256_loadu_ps(in);
        _mm256_storeu_ps(out, fn == F_LOG    ? cpu_log8(v)
                              : fn == F_TANH ? cpu_tanh8(v)
                                             : cpu_exp8(v));
        for (int k = 0; k < 8; k++) {
            const double x = in[k];
            const double u = ulps(out[k], fn == F_LOG ? log(x) : fn == F_TANH ? tanh(x) : exp(x));
            if (u > e) {
                e = u;
                *at = in[k];
            }
        }
    }
    return e;
}

Test(nn_vmath, exp_within_2_ulp_over_its_range)
{
    float at = 0;
    double e = worst(F_EXP, -87.0f, 88.0f, 1 << 22, &at);
    cr_expect(e <= 2.0, "exp: %.2f ulp at %g", e, at);
    e = worst(F_EXP, -1.0f, 1.0f, 1 << 20, &at);
    cr_expect(e <= 2.0, "exp near 0: %.2f ulp at %g", e, at);
}

Test(nn_vmath, exp_clamps_instead_of_overflowing)
{
    float in[8] = {-1000.0f, -100.0f, -87.3f, 0.0f, 88.0f, 88.3f, 100.0f, 1000.0f}, out[8];
    _mm256_storeu_ps(out, cpu_exp8(_mm256_loadu_ps(in)));
    for (int k = 0; k < 8; k++)
        cr_expect(isfinite(out[k]) && out[k] >= 0, "exp(%g) = %g", in[k], out[k]);
    cr_expect(out[0] < 2e-38f && out[7] > 1e38f);
    cr_expect(out[3] == 1.0f, "exp(0) = %.9g", out[3]);
}

Test(nn_vmath, log_within_2_ulp_over_its_range)
{
    float at = 0;
    /* the KD loss clamps p to 1e-7; softmax sums lie in [1, K] */
    double e = worst(F_LOG, 1e-7f, 1.0f, 1 << 22, &at);
    cr_expect(e <= 2.0, "log: %.2f ulp at %g", e, at);
    e = worst(F_LOG, 1.0f, 1e4f, 1 << 22, &at);
    cr_expect(e <= 2.0, "log above 1: %.2f ulp at %g", e, at);
    /* around the sqrt(2) split and at powers of two (log 1 = 0 exactly) */
    e = worst(F_LOG, 1.40f, 1.43f, 1 << 16, &at);
    cr_expect(e <= 2.0, "log near sqrt 2: %.2f ulp at %g", e, at);
    float in[8] = {1.0f, 2.0f, 0.5f, 4.0f, 1024.0f, 1.0f / 1024, FLT_MIN, 3.0e38f}, out[8];
    _mm256_storeu_ps(out, cpu_log8(_mm256_loadu_ps(in)));
    cr_expect(out[0] == 0.0f, "log 1 = %g", out[0]);
    for (int k = 1; k < 8; k++)
        cr_expect(ulps(out[k], log((double)in[k])) <= 2.0, "log(%g) = %.9g", in[k], out[k]);
}

Test(nn_vmath, tanh_within_3_ulp_and_odd)
{
    float at = 0;
    double e = worst(F_TANH, -10.0f, 10.0f, 1 << 22, &at);
    cr_expect(e <= 3.0, "tanh: %.2f ulp at %g", e, at);
    /* around the switch between the polynomial and the exp form, and near 0 */
    e = worst(F_TANH, 0.6f, 0.65f, 1 << 16, &at);
    cr_expect(e <= 3.0, "tanh near 0.625: %.2f ulp at %g", e, at);
    e = worst(F_TANH, -1e-3f, 1e-3f, 1 << 16, &at);
    cr_expect(e <= 3.0, "tanh near 0: %.2f ulp at %g", e, at);
    float in[8] = {0.0f, -0.0f, 1e-30f, -2.5f, 9.5f, -50.0f, INFINITY, NAN}, out[8];
    _mm256_storeu_ps(out, cpu_tanh8(_mm256_loadu_ps(in)));
    cr_expect(out[0] == 0.0f && !signbit(out[0]) && out[1] == 0.0f && signbit(out[1]));
    cr_expect(out[2] == 1e-30f, "tanh(1e-30) = %g", out[2]);
    cr_expect(out[3] == -cpu_tanh8(_mm256_set1_ps(2.5f))[0], "odd");
    cr_expect(out[4] == 1.0f && out[5] == -1.0f && out[6] == 1.0f, "%g %g %g", out[4], out[5],
              out[6]);
    cr_expect(isnan(out[7]), "tanh(NaN) = %g", out[7]);
}
