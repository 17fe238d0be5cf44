/* train_config.h: every training setting in one table, shared by the command line
 * (`mkdseg train --seg-width 16`), the HTTP API (POST /train {"config": {"seg_width": 16}})
 * and the model file's metadata (the config is stored whole, as JSON).
 *
 * Names use '_' in JSON and '-' on the command line; defaults are the paper's settings
 * (docs/method.md) except where the comment of the table entry says otherwise. */
#ifndef MKD_TRAIN_CONFIG_H
#define MKD_TRAIN_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    TM_MKD = 0,    /* the paper: IAM + mutual distillation, Algorithm 1 */
    TM_BASELINE,   /* one segmentor, target labels only */
    TM_JOINT,      /* one segmentor, target and raw assistant slices */
    TM_FINETUNE,   /* pretrain on assistant, then train on target */
    TM_MKD_NO_IAM, /* no translation: S_syn sees raw assistant images */
    TM_MKD_NO_KD_S2R,
    TM_MKD_NO_KD_R2S,
    TM_JOINT_DSBN, /* joint with domain-specific BatchNorm: shared convolutions, per-modality
                      * BN statistics and affines; the model keeps the target's */
    TM_COUNT
} train_method;

/* The image alignment module: what S_syn (mkd) or the assistant half of a joint batch sees as
 * the assistant's images in the target modality. */
typedef enum {
    TI_CYCLEGAN = 0, /* the paper: G_a2t trained online with segmentation feedback */
    TI_ORACLE,       /* the paired renderings of the assistant volumes in the target modality
                      * (phantom data only: mkdseg phantom --paired-ct); a research bound */
    TI_IDENTITY,     /* no translation: the raw assistant images (mkd-no-iam) */
    TI_HISTMATCH,    /* a fixed monotone intensity mapping of the assistant's intensity
                      * quantiles onto the target's */
    TI_FROZEN,       /* a CycleGAN trained first, without segmentation feedback, for
                      * iam_pretrain iterations, then frozen while the segmentors train */
    TI_COUNT
} train_iam;

const char *train_iam_name(train_iam m);
int train_iam_parse(const char *name, train_iam *m);

const char *train_method_name(train_method m);
/* 0 and *m set, or -1 when name is not a method. */
int train_method_parse(const char *name, train_method *m);
/* 1 when the method trains the two-segmentor framework (mkd and its ablations). */
int train_method_is_mkd(train_method m);

typedef struct {
    train_method method;
    int iters; /* total iterations; 0: epochs * iters_per_epoch */
    int epochs;
    int iters_per_epoch;
    int batch;
    int size;             /* tile side in pixels */
    float spacing;        /* in-plane pixel spacing in mm the slices are resampled to; 0: keep */
    int seg_width;        /* segmentor base width w (levels w..16w) */
    int ngf, ngen_blocks; /* generator width and residual blocks */
    int ndf;              /* discriminator width */
    int classes;          /* background + 7 structures */
    float lr_seg, lr_gan;
    float seg_beta1, gan_beta1, beta2;
    float seg_decay; /* segmentor lr *= seg_decay every seg_decay_every epochs */
    int seg_decay_every;
    float lambda_cyc, lambda_kd1, lambda_kd2;
    int pool_size;       /* image pool of earlier fakes for the discriminators */
    int bn_target_stats; /* mkd: 1 (default) = the segmentors' BN running statistics follow
                           * only the real target batches; the translated (or raw, no-IAM)
                           * assistant batches are normalised by their own batch statistics.
                           * 0 = every training batch updates them (docs/method.md) */
    train_iam iam;       /* the alignment module (mkd; joint, joint-dsbn and finetune use
                           * oracle and histmatch, and see raw images otherwise) */
    int iam_pretrain;    /* frozen: GAN-only iterations before the segmentors start */
    float lambda_seg_g;  /* weight of the segmentation feedback L_sup^syn in G_a2t's loss */
    int seg_g_warmup;    /* ... off for the first seg_g_warmup iterations, */
    int seg_g_ramp;      /* ... then ramped linearly to lambda_seg_g over seg_g_ramp */
    float lambda_idt;    /* CycleGAN's identity loss, weight lambda_idt x lambda_cyc
                           * (its reference code: 0.5); 0 = off (the paper's) */
    int disc_layers;     /* PatchGAN stride-2 layers: 3 = 70x70 receptive field, 2 = 34, 1 = 16 */
    float lr_disc;       /* discriminator learning rate; 0 = lr_gan */
    int score_every;     /* translation score on held-out assistant slices every N iterations
                           * (and at the end); 0 = never */
    float aug_flip, aug_rot_deg, aug_scale;
    float finetune_pretrain; /* finetune: fraction of iterations spent on the assistant */
    float val_fraction;      /* volumes held out for validation (0: none) */
    int checkpoint_every;    /* iterations between checkpoints (0: once per epoch) */
    unsigned long long seed;
    int threads; /* 0: MKDSEG_THREADS or all cores */
} train_config;

/* The defaults. */
void train_config_default(train_config *c);

/* Applies the command-line options in argv[0..argc) it knows ("--seg-width 16" or
 * "--seg-width=16"); every other argument is kept, in order, in rest[] (caller-sized argc),
 * with *nrest set. Returns 0, or -1 with err naming the option and the problem. */
int train_config_from_argv(train_config *c, int argc, char **argv, char **rest, int *nrest,
                           char *err, size_t errlen);

/* Applies a JSON object's fields (jansson json_t*, passed as void* so this header does not
 * need jansson). Unknown fields and wrong types are errors naming the field (*field set to
 * a static string naming it, or NULL). */
int train_config_from_json(train_config *c, const void *json_obj, char *err, size_t errlen,
                           const char **field);

/* Checks ranges and combinations (e.g. size divisible by 16 for the U-Net). 0 or -1. */
int train_config_validate(const train_config *c, char *err, size_t errlen);

/* The whole config as a compact JSON string (malloc'd, caller frees), for model metadata,
 * job rows and logs. */
char *train_config_to_json(const train_config *c);

/* Prints one line per option: --name VALUE  help (default). */
void train_config_usage(FILE *f);

/* Total iterations (iters, or epochs * iters_per_epoch). */
int train_config_total_iters(const train_config *c);

#endif
