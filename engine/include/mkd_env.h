/* mkd_env.h: the engine's environment knobs, one table (mkd_env.c) read in one place. Every
 * MKDSEG_* variable the engine and the CUDA kernels look at is a row here; docs/architecture.md
 * lists them with their defaults and meanings. (The service's own settings are config.c's.) */
#ifndef MKD_ENV_H
#define MKD_ENV_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MKD_ENV_DEVICE,            /* MKDSEG_DEVICE */
    MKD_ENV_THREADS,           /* MKDSEG_THREADS */
    MKD_ENV_CONV_PATH,         /* MKDSEG_CONV_PATH */
    MKD_ENV_CONV_DIRECT,       /* MKDSEG_CONV_DIRECT (the older spelling) */
    MKD_ENV_CPU_ISA,           /* MKDSEG_CPU_ISA */
    MKD_ENV_CPU_LAYOUT,        /* MKDSEG_CPU_LAYOUT */
    MKD_ENV_NN_PROFILE,        /* MKDSEG_NN_PROFILE */
    MKD_ENV_INFER_TILES,       /* MKDSEG_INFER_TILES */
    MKD_ENV_CUDA_WORKSPACE_MB, /* MKDSEG_CUDA_WORKSPACE_MB */
    MKD_ENV_CUDA_TF32,         /* MKDSEG_CUDA_TF32 */
    MKD_ENV_CUDA_ALGO,         /* MKDSEG_CUDA_ALGO */
    MKD_ENV_CUDA_PROFILE,      /* MKDSEG_CUDA_PROFILE */
    MKD_ENV_INFLATE,           /* MKDSEG_INFLATE */
    MKD_ENV_COUNT
} mkd_env_knob;

typedef struct {
    const char *name;    /* the variable */
    const char *def;     /* the value when it is unset */
    const char *meaning; /* one line for the documentation */
} mkd_env_info;

extern const mkd_env_info mkd_env_table[MKD_ENV_COUNT];

/* The variable's value as set (NULL when unset). */
const char *mkd_env_raw(mkd_env_knob k);
/* The value when set and not empty, else the default. */
const char *mkd_env_str(mkd_env_knob k);
/* The value when it is a positive integer, else the default as a number. */
long mkd_env_pos(mkd_env_knob k);

#ifdef __cplusplus
}
#endif

#endif
