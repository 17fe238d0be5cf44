/* trainer_internal.h: what checkpoint.c needs of the trainer's private state. */
#ifndef MKD_TRAINER_INTERNAL_H
#define MKD_TRAINER_INTERNAL_H

#include "image_pool.h"
#include "nn_backend.h"
#include "train.h"

const nn_backend *trainer_backend(const trainer *t);
void trainer_pools(trainer *t, image_pool **pool_t, image_pool **pool_a);
const nn_rng *trainer_rng(const trainer *t);
int  trainer_finetune_switched(const trainer *t);
void trainer_restore_state(trainer *t, const nn_rng *r, int iter, int finetune_switched);
/* Tests: end each mkd iteration right after Algorithm 1's step `step` (2 = G_a2t, 3 = D_t,
 * 4 = G_t2a, 5 = D_a, 6 = S_syn; 0 = the whole iteration). */
void trainer_set_stop_after(trainer *t, int step);
/* Set a parameter's Adam moments (host m[n], v[n]) and step count, allocating them through
 * the backend when absent. 0 or -1 (out of memory). */
int  trainer_param_set_adam(const nn_backend *be, nn_param *q, const float *m, const float *v,
                            int64_t step, size_t n);
/* Reset a registry's Adam state (a fresh optimiser). */
void trainer_params_reset_adam(const nn_backend *be, nn_params *p);

#endif
