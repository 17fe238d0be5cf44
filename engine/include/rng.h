/* rng.h: the engine's one deterministic random generator: xoshiro256** seeded through
 * splitmix64 (Vigna and Blackman's public-domain algorithms). nn (initialisation, sampling,
 * image pools) and prep (phantoms, augmentation) wrap it with the value types they need, so a
 * seed means the same stream everywhere. Plain state: copy it to save or restore a stream. */
#ifndef MKD_RNG_H
#define MKD_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} mkd_rng;

void mkd_rng_seed(mkd_rng *r, uint64_t seed);
uint64_t mkd_rng_u64(mkd_rng *r);

#endif
