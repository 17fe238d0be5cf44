/* trainer_internal.h: the trainer's private state, shared by trainer.c (the steps),
 * trainer_score.c (translation scores, the paired and histogram-matched assistant images)
 * and checkpoint.c (which uses the accessors). */
#ifndef MKD_TRAINER_INTERNAL_H
#define MKD_TRAINER_INTERNAL_H

#include "image_pool.h"
#include "nn_backend.h"
#include "train.h"

/* A monotone intensity mapping: the assistant's quantiles q_from onto the target's q_to. */
#define HIST_QUANTILES 257
typedef struct {
    float q_from[HIST_QUANTILES], q_to[HIST_QUANTILES];
} hist_map;

struct trainer {
    train_config c;
    train_iam iam; /* the alignment module in effect (mkd-no-iam: identity) */
    const nn_backend *be;
    const train_slices *tgt, *ast;
    int nseg;
    segmentor *seg[2];
    segmentor *seg_a; /* joint-dsbn: the assistant's BatchNorm; convolutions are seg[0]'s */
    generator *g_a2t, *g_t2a;
    discriminator *d_t, *d_a;
    nn_adam *opt_seg[2], *opt_seg_a, *opt_g_a2t, *opt_g_t2a, *opt_d_t, *opt_d_a;
    image_pool pool_t, pool_a;
    nn_rng rng;
    nn_ctx *ctx;
    int iter, total;
    int finetune_switched;
    train_progress prog;
    float *xt, *xa, *xp, *tmp; /* host batches [2B, S, S] (joint uses 2B); xp: paired images */
    int32_t *yt, *ya, *yp;     /* yp: scratch for the paired slices' labels */
    uint8_t *u8;               /* one slice of labels, for prep_augment */
    int stop_after;            /* tests: end an mkd iteration after this step (2..6; 0 = all) */
    /* the assistant slices' images in the target modality, sampled with them: the oracle
     * renderings (borrowed) or the histogram-matched copy (owned, hm) */
    const train_slices *pair;
    train_slices hm;
    hist_map hmap;
    /* translation scores: held-out assistant slices (and their oracle renderings) */
    const train_slices *sc, *sc_oracle;
    train_score *scores;
    int nscores, capscores;
};

/* 1 when the method trains G_a2t/G_t2a/D_t/D_a (mkd family with iam cyclegan or frozen). */
int trainer_uses_gan(const train_config *c);
/* The alignment module in effect for c. */
train_iam trainer_effective_iam(const train_config *c);

/* trainer_score.c */
/* Builds the quantile mapping of the assistant's intensities onto the target's and the mapped
 * copy t->hm of the assistant slices. 0 or -1 (out of memory). */
int trainer_histmatch_init(trainer *t, char *err, size_t errlen);
void trainer_histmatch_apply(const hist_map *m, const float *in, float *out, size_t n);
/* Scores the translation now (iteration t->iter) and appends it to t->scores. */
int trainer_score_now(trainer *t, char *err, size_t errlen);
/* The scores from trainer_scores_json's text (replacing t->scores). 0 or -1. */
int trainer_scores_from_json(trainer *t, const char *json);

const nn_backend *trainer_backend(const trainer *t);
void trainer_pools(trainer *t, image_pool **pool_t, image_pool **pool_a);
const nn_rng *trainer_rng(const trainer *t);
int trainer_finetune_switched(const trainer *t);
void trainer_restore_state(trainer *t, const nn_rng *r, int iter, int finetune_switched);
/* Tests: end each mkd iteration right after Algorithm 1's step `step` (2 = G_a2t, 3 = D_t,
 * 4 = G_t2a, 5 = D_a, 6 = S_syn; 0 = the whole iteration). */
void trainer_set_stop_after(trainer *t, int step);
/* Set a parameter's Adam moments (host m[n], v[n]) and step count, allocating them through
 * the backend when absent. 0 or -1 (out of memory). */
int trainer_param_set_adam(const nn_backend *be, nn_param *q, const float *m, const float *v,
                           int64_t step, size_t n);
/* Reset a registry's Adam state (a fresh optimiser). */
void trainer_params_reset_adam(const nn_backend *be, nn_params *p);

#endif
