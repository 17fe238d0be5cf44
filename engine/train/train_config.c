/* train_config.c: the training settings table; see train_config.h. */
#include "train_config.h"
#include "mkd_err.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {
    "mkd",        "baseline",      "joint",         "finetune",
    "mkd-no-iam", "mkd-no-kd-s2r", "mkd-no-kd-r2s", "joint-dsbn",
};
_Static_assert(sizeof method_names / sizeof method_names[0] == TM_COUNT, "method name table");

const char *train_method_name(train_method m)
{
    return (unsigned)m < TM_COUNT ? method_names[m] : "?";
}

int train_method_parse(const char *name, train_method *m)
{
    for (int i = 0; i < TM_COUNT; i++)
        if (!strcmp(name, method_names[i])) {
            *m = (train_method)i;
            return 0;
        }
    return -1;
}

static const char *const iam_names[] = {"cyclegan", "oracle", "identity", "histmatch", "frozen"};
_Static_assert(sizeof iam_names / sizeof iam_names[0] == TI_COUNT, "iam name table");

const char *train_iam_name(train_iam m) { return (unsigned)m < TI_COUNT ? iam_names[m] : "?"; }

int train_iam_parse(const char *name, train_iam *m)
{
    for (int i = 0; i < TI_COUNT; i++)
        if (!strcmp(name, iam_names[i])) {
            *m = (train_iam)i;
            return 0;
        }
    return -1;
}

int train_method_is_mkd(train_method m)
{
    return m == TM_MKD || m == TM_MKD_NO_IAM || m == TM_MKD_NO_KD_S2R || m == TM_MKD_NO_KD_R2S;
}

typedef enum { T_INT, T_FLOAT, T_U64, T_METHOD, T_IAM } opt_type;

typedef struct {
    const char *name; /* JSON name; the flag is "--" + name with '_' -> '-' */
    opt_type type;
    size_t off;
    double lo, hi; /* valid range (inclusive) for numbers */
    const char *help;
} opt_def;

#define O(f) offsetof(train_config, f)
static const opt_def opts[] = {
    {"method", T_METHOD, O(method), 0, 0,
     "mkd | baseline | joint | finetune | mkd-no-iam | mkd-no-kd-s2r | mkd-no-kd-r2s | joint-dsbn"},
    {"iters", T_INT, O(iters), 0, 1e8, "total iterations; 0 = epochs x iters-per-epoch"},
    {"epochs", T_INT, O(epochs), 1, 1e6, "epochs (the segmentor rate decays per epoch)"},
    {"iters_per_epoch", T_INT, O(iters_per_epoch), 1, 1e7, "iterations per epoch"},
    {"batch", T_INT, O(batch), 1, 256, "slices per batch and modality"},
    {"size", T_INT, O(size), 16, 1024, "tile side in pixels (multiple of 16)"},
    {"spacing", T_FLOAT, O(spacing), 0, 20,
     "in-plane pixel spacing in mm slices are resampled to; 0 = keep"},
    {"seg_width", T_INT, O(seg_width), 1, 256,
     "segmentor base width w (levels w, 2w, 4w, 8w, 16w)"},
    {"ngf", T_INT, O(ngf), 1, 256, "generator base width"},
    {"ngen_blocks", T_INT, O(ngen_blocks), 0, 32, "generator residual blocks"},
    {"ndf", T_INT, O(ndf), 1, 256, "discriminator base width"},
    {"classes", T_INT, O(classes), 2, 64, "classes including background"},
    {"lr_seg", T_FLOAT, O(lr_seg), 1e-8, 1, "segmentor learning rate (Adam)"},
    {"lr_gan", T_FLOAT, O(lr_gan), 1e-8, 1, "generator and discriminator learning rate (Adam)"},
    {"seg_beta1", T_FLOAT, O(seg_beta1), 0, 0.999999, "segmentor Adam beta1"},
    {"gan_beta1", T_FLOAT, O(gan_beta1), 0, 0.999999,
     "generator/discriminator Adam beta1 (CycleGAN: 0.5)"},
    {"beta2", T_FLOAT, O(beta2), 0, 0.999999, "Adam beta2"},
    {"seg_decay", T_FLOAT, O(seg_decay), 0, 1, "segmentor rate factor per decay step"},
    {"seg_decay_every", T_INT, O(seg_decay_every), 1, 1e6, "epochs per segmentor rate decay step"},
    {"lambda_cyc", T_FLOAT, O(lambda_cyc), 0, 1e4, "cycle-consistency weight (Eq. 4, 5)"},
    {"lambda_kd1", T_FLOAT, O(lambda_kd1), 0, 1e4,
     "weight of L_kd^{s->r} in S_real's loss (Eq. 8)"},
    {"lambda_kd2", T_FLOAT, O(lambda_kd2), 0, 1e4, "weight of L_kd^{r->s} in S_syn's loss (Eq. 8)"},
    {"pool_size", T_INT, O(pool_size), 0, 10000, "image pool of earlier fakes per discriminator"},
    {"bn_target_stats", T_INT, O(bn_target_stats), 0, 1,
     "mkd: 1 = BN running statistics from real target batches only (default); 0 = from every "
     "batch"},
    {"iam", T_IAM, O(iam), 0, 0,
     "alignment module: cyclegan | oracle (phantom pairs) | identity | histmatch | frozen (a "
     "CycleGAN trained first, then fixed; mkd and joint)"},
    {"iam_pretrain", T_INT, O(iam_pretrain), 0, 1e8,
     "iam frozen: GAN-only iterations before the segmentors train"},
    {"lambda_seg_g", T_FLOAT, O(lambda_seg_g), 0, 1e4,
     "weight of the segmentation feedback into G_a2t"},
    {"seg_g_warmup", T_INT, O(seg_g_warmup), 0, 1e8,
     "iterations without segmentation feedback into G_a2t"},
    {"seg_g_ramp", T_INT, O(seg_g_ramp), 0, 1e8,
     "iterations of linear ramp of that feedback after the warm-up"},
    {"lambda_idt", T_FLOAT, O(lambda_idt), 0, 1e3,
     "identity loss weight, times lambda_cyc (CycleGAN: 0.5; 0 = off)"},
    {"disc_layers", T_INT, O(disc_layers), 1, 3,
     "PatchGAN stride-2 layers (3: 70 px receptive field, 2: 34, 1: 16)"},
    {"lr_disc", T_FLOAT, O(lr_disc), 0, 1, "discriminator learning rate; 0 = lr_gan"},
    {"score_every", T_INT, O(score_every), 0, 1e8,
     "iterations between translation scores on held-out assistant slices; 0 = never"},
    {"aug_flip", T_FLOAT, O(aug_flip), 0, 1, "probability of a random flip per axis"},
    {"aug_rot_deg", T_FLOAT, O(aug_rot_deg), 0, 180, "largest random rotation in degrees"},
    {"aug_scale", T_FLOAT, O(aug_scale), 0, 0.9, "largest random relative scaling"},
    {"finetune_pretrain", T_FLOAT, O(finetune_pretrain), 0, 1,
     "finetune: fraction of iterations on the assistant"},
    {"val_fraction", T_FLOAT, O(val_fraction), 0, 0.9,
     "fraction of target volumes held out for validation"},
    {"checkpoint_every", T_INT, O(checkpoint_every), 0, 1e8,
     "iterations between checkpoints; 0 = every epoch"},
    {"seed", T_U64, O(seed), 0, 0, "random seed (initialisation, sampling, augmentation)"},
    {"threads", T_INT, O(threads), 0, 1024, "CPU threads; 0 = MKDSEG_THREADS or all cores"},
};
#undef O
#define NOPTS ((int)(sizeof opts / sizeof opts[0]))

void train_config_default(train_config *c)
{
    memset(c, 0, sizeof *c);
    c->method = TM_MKD;
    c->iters = 0;
    c->epochs = 20;
    c->iters_per_epoch = 500;
    c->batch = 8;
    c->size = 256;
    c->spacing = 0;
    c->seg_width = 32;
    c->ngf = 64;
    c->ngen_blocks = 9;
    c->ndf = 64;
    c->classes = 8;
    c->lr_seg = 2e-4f;
    c->lr_gan = 2e-4f;
    c->seg_beta1 = 0.9f;
    c->gan_beta1 = 0.5f;
    c->beta2 = 0.999f;
    c->seg_decay = 0.9f;
    c->seg_decay_every = 2;
    c->lambda_cyc = 10.0f;
    c->lambda_kd1 = 0.5f;
    c->lambda_kd2 = 1.0f;
    c->pool_size = 50;
    c->bn_target_stats = 1;
    c->iam = TI_CYCLEGAN;
    c->iam_pretrain = 1000;
    c->lambda_seg_g = 1.0f;
    c->seg_g_warmup = 0;
    c->seg_g_ramp = 0;
    c->lambda_idt = 0.0f;
    c->disc_layers = 3;
    c->lr_disc = 0.0f;
    c->score_every = 0;
    c->aug_flip = 0.5f;
    c->aug_rot_deg = 15.0f;
    c->aug_scale = 0.1f;
    c->finetune_pretrain = 0.5f;
    c->val_fraction = 0.0f;
    c->checkpoint_every = 0;
    c->seed = 1;
    c->threads = 0;
}

static const opt_def *find_flag(const char *flag, size_t len)
{
    for (int i = 0; i < NOPTS; i++) {
        const char *n = opts[i].name;
        if (strlen(n) != len)
            continue;
        size_t k = 0;
        for (; k < len; k++)
            if (flag[k] != (n[k] == '_' ? '-' : n[k]))
                break;
        if (k == len)
            return &opts[i];
    }
    return NULL;
}

static const opt_def *find_json(const char *name)
{
    for (int i = 0; i < NOPTS; i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

/* Sets one option from text. */
static int set_text(train_config *c, const opt_def *o, const char *v, char *err, size_t errlen)
{
    char *end = NULL;
    void *p = (char *)c + o->off;
    errno = 0;
    switch (o->type) {
    case T_METHOD:
        if (train_method_parse(v, (train_method *)p)) {
            mkd_seterr(err, errlen, "%s: unknown method '%s' (%s)", o->name, v, o->help);
            return -1;
        }
        return 0;
    case T_IAM:
        if (train_iam_parse(v, (train_iam *)p)) {
            mkd_seterr(err, errlen, "%s: unknown alignment module '%s' (%s)", o->name, v, o->help);
            return -1;
        }
        return 0;
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < o->lo || x > o->hi) {
            mkd_seterr(err, errlen, "%s: '%s' is not an integer in [%g, %g]", o->name, v, o->lo,
                       o->hi);
            return -1;
        }
        *(int *)p = (int)x;
        return 0;
    }
    case T_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < o->lo || x > o->hi) {
            mkd_seterr(err, errlen, "%s: '%s' is not a number in [%g, %g]", o->name, v, o->lo,
                       o->hi);
            return -1;
        }
        *(float *)p = (float)x;
        return 0;
    }
    case T_U64: {
        if (*v == '-') {
            mkd_seterr(err, errlen, "%s: must not be negative", o->name);
            return -1;
        }
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || x > (unsigned long long)LLONG_MAX) {
            mkd_seterr(err, errlen, "%s: '%s' is not an integer in [0, 2^63)", o->name, v);
            return -1;
        }
        *(unsigned long long *)p = x;
        return 0;
    }
    }
    return -1;
}

int train_config_from_argv(train_config *c, int argc, char **argv, char **rest, int *nrest,
                           char *err, size_t errlen)
{
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt_def *o = find_flag(name, len);
        if (!o) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            mkd_seterr(err, errlen, "--%.*s needs a value", (int)len, name);
            return -1;
        }
        if (set_text(c, o, v, err, errlen))
            return -1;
    }
    return 0;
}

int train_config_from_json(train_config *c, const void *json_obj, char *err, size_t errlen,
                           const char **field)
{
    const json_t *obj = json_obj;
    *field = NULL;
    if (!json_is_object(obj)) {
        mkd_seterr(err, errlen, "config must be a JSON object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)obj, k, v) {
        const opt_def *o = find_json(k);
        if (!o) {
            mkd_seterr(err, errlen, "config: unknown setting '%s'", k);
            return -1;
        }
        *field = o->name;
        char buf[64];
        if (o->type == T_METHOD || o->type == T_IAM) {
            if (!json_is_string(v)) {
                mkd_seterr(err, errlen, "%s: must be a string", o->name);
                return -1;
            }
            if (set_text(c, o, json_string_value(v), err, errlen))
                return -1;
        } else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            if (set_text(c, o, buf, err, errlen))
                return -1;
        } else if (json_is_real(v) && o->type == T_FLOAT) {
            snprintf(buf, sizeof buf, "%.9g", json_real_value(v));
            if (set_text(c, o, buf, err, errlen))
                return -1;
        } else {
            mkd_seterr(err, errlen, "%s: must be %s", o->name,
                       o->type == T_FLOAT ? "a number" : "an integer");
            return -1;
        }
    }
    *field = NULL;
    return 0;
}

int train_config_validate(const train_config *c, char *err, size_t errlen)
{
    if (c->size % 16) {
        mkd_seterr(err, errlen, "size: %d is not a multiple of 16 (the U-Net pools 4 times)",
                   c->size);
        return -1;
    }
    if (c->size < 16 * 1) {
        mkd_seterr(err, errlen, "size: at least 16");
        return -1;
    }
    if (train_method_is_mkd(c->method) && c->size < 32) {
        mkd_seterr(err, errlen,
                   "size: the PatchGAN discriminator needs tiles of at least 32 pixels");
        return -1;
    }
    if (train_method_is_mkd(c->method) && c->size >> c->disc_layers < 4) {
        mkd_seterr(err, errlen, "disc_layers: %d stride-2 layers leave no patch of a %d-pixel tile",
                   c->disc_layers, c->size);
        return -1;
    }
    if (c->method == TM_MKD_NO_IAM && c->iam != TI_CYCLEGAN && c->iam != TI_IDENTITY) {
        mkd_seterr(err, errlen,
                   "iam: mkd-no-iam has no alignment module (it is mkd with iam identity)");
        return -1;
    }
    if (!train_method_is_mkd(c->method) && c->method != TM_JOINT && c->iam == TI_FROZEN) {
        mkd_seterr(err, errlen,
                   "iam: frozen needs a CycleGAN, which mkd's methods and joint train (method %s "
                   "has none)",
                   train_method_name(c->method));
        return -1;
    }
    if ((long long)c->epochs * c->iters_per_epoch > 100000000LL && !c->iters) {
        mkd_seterr(err, errlen, "epochs x iters_per_epoch is too large");
        return -1;
    }
    return 0;
}

int train_config_total_iters(const train_config *c)
{
    return c->iters > 0 ? c->iters : c->epochs * c->iters_per_epoch;
}

char *train_config_to_json(const train_config *c)
{
    json_t *o = json_object();
    for (int i = 0; i < NOPTS; i++) {
        const void *p = (const char *)c + opts[i].off;
        json_t *v = NULL;
        switch (opts[i].type) {
        case T_METHOD:
            v = json_string(train_method_name(*(const train_method *)p));
            break;
        case T_IAM:
            v = json_string(train_iam_name(*(const train_iam *)p));
            break;
        case T_INT:
            v = json_integer(*(const int *)p);
            break;
        case T_FLOAT: {
            /* shortest text that reads back as the same float */
            char buf[32];
            float f = *(const float *)p;
            for (int prec = 6; prec <= 9; prec++) { /* 9 digits always round-trip a float */
                snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
                if (strtof(buf, NULL) == f)
                    break;
            }
            v = json_real(strtod(buf, NULL));
            break;
        }
        case T_U64:
            v = json_integer((json_int_t) * (const unsigned long long *)p);
            break;
        }
        json_object_set_new(o, opts[i].name, v);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

void train_config_usage(FILE *f)
{
    train_config d;
    train_config_default(&d);
    for (int i = 0; i < NOPTS; i++) {
        char flag[64], def[48];
        int k = snprintf(flag, sizeof flag, "--");
        for (const char *n = opts[i].name; *n && k < (int)sizeof flag - 1; n++)
            flag[k++] = *n == '_' ? '-' : *n;
        flag[k] = 0;
        const void *p = (const char *)&d + opts[i].off;
        switch (opts[i].type) {
        case T_METHOD:
            snprintf(def, sizeof def, "%s", train_method_name(*(const train_method *)p));
            break;
        case T_IAM:
            snprintf(def, sizeof def, "%s", train_iam_name(*(const train_iam *)p));
            break;
        case T_INT:
            snprintf(def, sizeof def, "%d", *(const int *)p);
            break;
        case T_FLOAT:
            snprintf(def, sizeof def, "%g", (double)*(const float *)p);
            break;
        case T_U64:
            snprintf(def, sizeof def, "%llu", *(const unsigned long long *)p);
            break;
        }
        fprintf(f, "  %-22s %s (default %s)\n", flag, opts[i].help, def);
    }
}
