/* cpu_vmath.h: exp and log of 8 floats at once (AVX2 + FMA), for softmax and the losses.
 *
 * glibc's expf and logf are scalar here (GCC calls libmvec's vector forms only under
 * -ffast-math): a softmax over 8 channels of a 4x64x64 batch took about 1 ms in them. These
 * are the usual range reductions with minimax polynomials (Cephes' coefficients):
 *   exp: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent
 *        bits; inputs clamped to [-87.3, 88.3] (e^x then stays a normal float or 0 / +large).
 *   log: x = 2^e m, m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1.
 * Both are within 2 ulp of the correctly rounded result over the normal range (checked
 * against libm over a dense sweep in tests/unit/test_nn_vmath.c). log expects x > 0 (the
 * callers clamp to a positive epsilon first). */
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

#endif
