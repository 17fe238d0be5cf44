/* rng.c: xoshiro256** seeded with splitmix64 (public-domain algorithms by Vigna and Blackman),
 * the engine's deterministic source of randomness for phantoms and augmentation. */
#include <math.h>

#include "prep.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void prep_rng_seed(prep_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t prep_rng_u64(prep_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double prep_rng_uniform(prep_rng *r) { return (double)(prep_rng_u64(r) >> 11) * 0x1.0p-53; }

double prep_rng_range(prep_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * prep_rng_uniform(r);
}

double prep_rng_normal(prep_rng *r)
{
    double u = prep_rng_uniform(r), v = prep_rng_uniform(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}
