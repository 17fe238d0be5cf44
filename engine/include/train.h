/* train.h: online mutual training (docs/method.md Algorithm 1) and the baseline methods.
 *
 * The trainer owns the networks the method needs (six for mkd and its ablations with IAM,
 * two segmentors for mkd-no-iam, one segmentor for baseline/joint/finetune), their Adam
 * optimisers, the discriminators' image pools and its random generator. It consumes 2-D
 * slices already normalised and tiled (train_slices); the volume pipeline (engine/prep)
 * makes them, so training and inference share one preprocessing.
 *
 * Determinism: same config (seed included), same data and same thread count give the same
 * losses on the CPU. A checkpoint holds everything the next iteration depends on (every
 * network, optimiser moments and steps, pools, RNG, iteration), so a resumed run's loss
 * trajectory equals an uninterrupted one. */
#ifndef MKD_TRAIN_H
#define MKD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"
#include "nn.h"
#include "train_config.h"

/* n labelled slices of size x size: img normalised intensities, lab class indices. */
typedef struct {
    int n, size;
    float *img;   /* [n, size, size] */
    int32_t *lab; /* [n, size, size], values 0..classes-1 */
} train_slices;

/* The losses one iteration reports; which are used depends on the method (unused: NAN). */
typedef enum {
    TL_G_A2T = 0, /* L_gan^{a->t} + L_sup^syn, minimised by G_a2t (step 2) */
    TL_D_T,       /* discriminator D_t (step 3) */
    TL_G_T2A,     /* L_gan^{t->a} (step 4) */
    TL_D_A,       /* discriminator D_a (step 5) */
    TL_CYC,       /* L_cyc (both directions, unweighted) */
    TL_SUP_SYN,   /* L_sup^syn  (CE + Dice of S_syn on synthetic target images) */
    TL_SUP_REAL,  /* L_sup^real (CE + Dice of S_real on real target images) */
    TL_KD_S2R,    /* L_kd^{s->r} */
    TL_KD_R2S,    /* L_kd^{r->s} */
    TL_SEG,       /* single-segmentor methods: the supervised loss */
    /* the terms of the GAN steps apart (unweighted) */
    TL_G_A2T_ADV, /* mean (D_t(G_a2t(x^a)) - 1)^2 (step 2) */
    TL_G_T2A_ADV, /* mean (D_a(G_t2a(x^t)) - 1)^2 (step 4) */
    TL_CYC_A,     /* |G_t2a(G_a2t(x^a)) - x^a|_1 (step 2) */
    TL_CYC_T,     /* |G_a2t(G_t2a(x^t)) - x^t|_1 (step 2) */
    TL_IDT_A2T,   /* identity |G_a2t(x^t) - x^t|_1 (when lambda_idt > 0) */
    TL_IDT_T2A,   /* identity |G_t2a(x^a) - x^a|_1 */
    TL_G_A2T_SEG, /* the segmentation feedback into G_a2t: CE + Dice of S_syn(G_a2t(x^a)) */
    TL_D_T_REAL,  /* mean (D_t(x^t) - 1)^2 */
    TL_D_T_FAKE,  /* mean D_t(pooled fakes)^2 */
    TL_D_A_REAL,
    TL_D_A_FAKE,
    /* the latest translation score on held-out assistant slices (score_every; NAN before) */
    TL_SCORE_DICE, /* Dice of S_real (single methods: the segmentor) on T(x^a) against y^a */
    TL_SCORE_MAE,  /* mean |T(x^a) - oracle rendering| in normalised units (phantom only) */
    TL_COUNT
} train_loss;

/* One translation score (trainer_set_score_set): at iteration iter, the label score (Dice
 * of the CT segmentor on the translated held-out assistant slices against their labels) and
 * the fidelity (MAE against their oracle renderings; NAN without them). */
typedef struct {
    int iter;
    float dice, mae;
} train_score;

const char *train_loss_name(train_loss l);

typedef struct {
    int iter;  /* iterations done (1-based after the first) */
    int total; /* iterations planned */
    int epoch; /* 0-based epoch of the last iteration */
    float loss[TL_COUNT];
    double iters_per_s; /* since this run (not the checkpoint) started */
    double eta_s;
    float lr_seg;
    double gflop_per_iter; /* convolution arithmetic of the last iteration (nn_ctx_flops) */
} train_progress;

/* Called after every iteration; a non-zero return cancels the run (checked every
 * iteration). */
typedef int (*train_progress_fn)(const train_progress *p, void *user);

typedef struct trainer trainer;

/* A trainer for config c (validated here) on target slices (labelled, required) and
 * assistant slices (required by every method but baseline; may be NULL for baseline).
 * The slices are borrowed and must outlive the trainer. Networks are initialised from
 * c->seed. NULL with err on error. */
trainer *trainer_new(const train_config *c, const nn_backend *be, const train_slices *target,
                     const train_slices *assistant, char *err, size_t errlen);
void trainer_free(trainer *t);

/* The assistant slices rendered in the target modality (same n, size and labels, in the same
 * order: `mkdseg phantom --paired-ct` volumes through the same dataset pipeline), for iam
 * oracle. Borrowed; set before the first step. 0, or -1 with err when they do not match. */
int trainer_set_oracle(trainer *t, const train_slices *oracle, char *err, size_t errlen);
/* Held-out labelled assistant slices to score the translation on every c->score_every
 * iterations, with their oracle renderings (may be NULL: no fidelity). Borrowed. */
int trainer_set_score_set(trainer *t, const train_slices *assistant, const train_slices *oracle,
                          char *err, size_t errlen);
/* The scores so far (count; *out points into the trainer). */
int trainer_scores(const trainer *t, const train_score **out);
/* The scores as a JSON array [{"iter", "label_dice", "fidelity_mae" (null without oracle
 * renderings)}] (malloc'd; NULL when out of memory). */
char *trainer_scores_json(const trainer *t);

/* One iteration of the configured method. 0, or -1 with err. */
int trainer_step(trainer *t, char *err, size_t errlen);

/* Iterations until the configured total (or a cancel from cb). When ckpt_path is not NULL,
 * writes a checkpoint there every c->checkpoint_every iterations (0: every epoch) and at the
 * end. Returns 0 when finished, 1 when cancelled, -1 on error. */
int trainer_run(trainer *t, train_progress_fn cb, void *user, const char *ckpt_path, char *err,
                size_t errlen);

const train_progress *trainer_progress(const trainer *t);
int trainer_iter(const trainer *t);
const train_config *trainer_config(const trainer *t);

/* The segmentor members: for mkd methods 0 = S_syn, 1 = S_real; single-segmentor methods
 * have member 0 only (joint-dsbn: with the target's BatchNorm; trainer_segmentor_assistant
 * is the same convolutions with the assistant's). NULL when out of range. */
segmentor *trainer_segmentor_assistant(trainer *t);
segmentor *trainer_segmentor(trainer *t, int member);
int trainer_members(const trainer *t);
/* The networks by role, NULL when the method has none. */
generator *trainer_g_a2t(trainer *t);
generator *trainer_g_t2a(trainer *t);
discriminator *trainer_d_t(trainer *t);
discriminator *trainer_d_a(trainer *t);

/* Checkpoint: every network, optimiser state, pools, RNG and iteration (safetensors). */
int trainer_save_checkpoint(trainer *t, const char *path, char *err, size_t errlen);
/* Load a checkpoint written by a trainer with the same config. */
int trainer_load_checkpoint(trainer *t, const char *path, char *err, size_t errlen);

/* The model file: the segmentor member(s) and the metadata (config, method, architecture,
 * mkdseg.translation: the translation scores as JSON when there are any),
 * plus extra key/value metadata pairs (kv[2i] key, kv[2i+1] value; e.g. preprocessing,
 * data set ids, source revision). */
int trainer_save_model(trainer *t, const char *path, const char *const *kv, int nkv, char *err,
                       size_t errlen);

#endif
