/* cpu_vmath.h: exp, log and tanh of 8 floats at once (AVX2 + FMA), for softmax, the losses
 * and the generators' output activation.
 *
 * glibc's expf and logf are scalar here (GCC calls libmvec's vector forms only under
 * -ffast-math): a softmax over 8 channels of a 4x64x64 batch took about 1 ms in them. These
 * are the usual range reductions with minimax polynomials (Cephes' coefficients):
 *   exp: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent
 *        bits; inputs clamped to [-87.3, 88.3] (e^x then stays a normal float or 0 / +large).
 *   log: x = 2^e m, m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1.
 * Both are within 2 ulp of the correctly rounded result over the normal range (checked
 * against libm over a dense sweep in tests/unit/test_nn_vmath.c). log expects x > 0 (the
 * callers clamp to a positive epsilon first).
 *   tanh: |x| < 0.625 by x + x^3 q(x^2) (Cephes' tanhf polynomial), above by
 *         1 - 2 / (e^{2|x|} + 1) (no cancellation there: the result is at least 0.55), the sign
 *         put back; |x| clamped to 10 (tanh rounds to 1 in float from 9.01 on). Within
 *         3 ulp; a NaN input gives NaN. */
#ifndef MKDSEG_CPU_VMATH_H
#define MKDSEG_CPU_VMATH_H

#include <immintrin.h>

static inline __m256 cpu_exp8(__m256 x)
{
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n: n + 127 in the exponent field (n in [-126, 127]) */
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 cpu_log8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256i xi = _mm256_castps_si256(x);
    /* exponent and mantissa in [1, 2) */
    __m256 e =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(127)));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(xi, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f800000)));
    /* m >= sqrt(2): halve it, one more in the exponent */
    const __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GE_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
    e = _mm256_add_ps(e, _mm256_and_ps(big, one));
    const __m256 f = _mm256_sub_ps(m, one), f2 = _mm256_mul_ps(f, f);
    __m256 p = _mm256_set1_ps(7.0376836292e-2f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.1514610310e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.1676998740e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.2420140846e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.4249322787e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.6668057665e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.0000714765e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-2.4999993993e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(3.3333331174e-1f));
    /* log(m) = f - f^2/2 + f^3 p(f) */
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, f2), f);
    y = _mm256_fnmadd_ps(f2, _mm256_set1_ps(0.5f), y);
    y = _mm256_add_ps(y, f);
    /* + e ln2, in two parts */
    y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.12194440e-4f), y);
    return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), y);
}

static inline __m256 cpu_tanh8(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    const __m256 ax = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(10.0f));
    /* small: x + x^3 q(x^2) */
    const __m256 z = _mm256_mul_ps(ax, ax);
    __m256 q = _mm256_set1_ps(-5.70498872745e-3f);
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(2.06390887954e-2f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(-5.37397155531e-2f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(1.33314422036e-1f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), ax, ax);
    /* large: 1 - 2 / (e^{2|x|} + 1) */
    const __m256 e = cpu_exp8(_mm256_add_ps(ax, ax));
    const __m256 large =
        _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    __m256 t =
        _mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    t = _mm256_or_ps(t, _mm256_and_ps(x, sign));
    /* NaN in, NaN out (min and the compares above drop it) */
    return _mm256_blendv_ps(t, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

#endif
