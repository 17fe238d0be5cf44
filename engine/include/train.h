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
    float *img;      /* [n, size, size] */
    int32_t *lab;    /* [n, size, size], values 0..classes-1 */
} train_slices;

/* The losses one iteration reports; which are used depends on the method (unused: NAN). */
typedef enum {
    TL_G_A2T = 0,    /* L_gan^{a->t} + L_sup^syn, minimised by G_a2t (step 2) */
    TL_D_T,          /* discriminator D_t (step 3) */
    TL_G_T2A,        /* L_gan^{t->a} (step 4) */
    TL_D_A,          /* discriminator D_a (step 5) */
    TL_CYC,          /* L_cyc (both directions, unweighted) */
    TL_SUP_SYN,      /* L_sup^syn  (CE + Dice of S_syn on synthetic target images) */
    TL_SUP_REAL,     /* L_sup^real (CE + Dice of S_real on real target images) */
    TL_KD_S2R,       /* L_kd^{s->r} */
    TL_KD_R2S,       /* L_kd^{r->s} */
    TL_SEG,          /* single-segmentor methods: the supervised loss */
    TL_COUNT
} train_loss;

const char *train_loss_name(train_loss l);

typedef struct {
    int iter;            /* iterations done (1-based after the first) */
    int total;           /* iterations planned */
    int epoch;           /* 0-based epoch of the last iteration */
    float loss[TL_COUNT];
    double iters_per_s;  /* since this run (not the checkpoint) started */
    double eta_s;
    float lr_seg;
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
void     trainer_free(trainer *t);

/* One iteration of the configured method. 0, or -1 with err. */
int trainer_step(trainer *t, char *err, size_t errlen);

/* Iterations until the configured total (or a cancel from cb). When ckpt_path is not NULL,
 * writes a checkpoint there every c->checkpoint_every iterations (0: every epoch) and at the
 * end. Returns 0 when finished, 1 when cancelled, -1 on error. */
int trainer_run(trainer *t, train_progress_fn cb, void *user, const char *ckpt_path,
                char *err, size_t errlen);

const train_progress *trainer_progress(const trainer *t);
int trainer_iter(const trainer *t);
const train_config *trainer_config(const trainer *t);

/* The segmentor members: for mkd methods 0 = S_syn, 1 = S_real; single-segmentor methods
 * have member 0 only. NULL when out of range. */
segmentor *trainer_segmentor(trainer *t, int member);
int        trainer_members(const trainer *t);
/* The networks by role, NULL when the method has none. */
generator     *trainer_g_a2t(trainer *t);
generator     *trainer_g_t2a(trainer *t);
discriminator *trainer_d_t(trainer *t);
discriminator *trainer_d_a(trainer *t);

/* Checkpoint: every network, optimiser state, pools, RNG and iteration (safetensors). */
int trainer_save_checkpoint(trainer *t, const char *path, char *err, size_t errlen);
/* Load a checkpoint written by a trainer with the same config. */
int trainer_load_checkpoint(trainer *t, const char *path, char *err, size_t errlen);

/* The model file: the segmentor member(s) and the metadata (config, method, architecture),
 * plus extra key/value metadata pairs (kv[2i] key, kv[2i+1] value; e.g. preprocessing,
 * data set ids, source revision). */
int trainer_save_model(trainer *t, const char *path, const char *const *kv, int nkv,
                       char *err, size_t errlen);

#endif
