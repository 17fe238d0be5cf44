/* rng.c: prep's view of the engine generator (rng.h): doubles for phantoms and augmentation. */
#include <math.h>

#include "prep.h"

void prep_rng_seed(prep_rng *r, uint64_t seed) { mkd_rng_seed(r, seed); }

uint64_t prep_rng_u64(prep_rng *r) { return mkd_rng_u64(r); }

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
