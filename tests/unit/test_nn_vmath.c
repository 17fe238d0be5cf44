/* test_nn_vmath.c: the AVX2 exp and log of the CPU backend (engine/nn/cpu/cpu_vmath.h) against
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

static double worst(int is_log, float lo, float hi, int steps, float *at)
{
    double e = 0;
    for (int i = 0; i < steps; i += 8) {
        float in[8], out[8];
        for (int k = 0; k < 8; k++)
            in[k] = lo + (hi - lo) * (float)(i + k) / (float)steps;
        const __m256 v = _mm256_loadu_ps(in);
        _mm256_storeu_ps(out, is_log ? cpu_log8(v) : cpu_exp8(v));
        for (int k = 0; k < 8; k++) {
            const double u = ulps(out[k], is_log ? log((double)in[k]) : exp((double)in[k]));
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
    double e = worst(0, -87.0f, 88.0f, 1 << 22, &at);
    cr_expect(e <= 2.0, "exp: %.2f ulp at %g", e, at);
    e = worst(0, -1.0f, 1.0f, 1 << 20, &at);
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
    double e = worst(1, 1e-7f, 1.0f, 1 << 22, &at);
    cr_expect(e <= 2.0, "log: %.2f ulp at %g", e, at);
    e = worst(1, 1.0f, 1e4f, 1 << 22, &at);
    cr_expect(e <= 2.0, "log above 1: %.2f ulp at %g", e, at);
    /* around the sqrt(2) split and at powers of two (log 1 = 0 exactly) */
    e = worst(1, 1.40f, 1.43f, 1 << 16, &at);
    cr_expect(e <= 2.0, "log near sqrt 2: %.2f ulp at %g", e, at);
    float in[8] = {1.0f, 2.0f, 0.5f, 4.0f, 1024.0f, 1.0f / 1024, FLT_MIN, 3.0e38f}, out[8];
    _mm256_storeu_ps(out, cpu_log8(_mm256_loadu_ps(in)));
    cr_expect(out[0] == 0.0f, "log 1 = %g", out[0]);
    for (int k = 1; k < 8; k++)
        cr_expect(ulps(out[k], log((double)in[k])) <= 2.0, "log(%g) = %.9g", in[k], out[k]);
}
