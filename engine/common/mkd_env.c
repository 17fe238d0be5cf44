/* mkd_env.c: see mkd_env.h. The one place where the engine calls getenv. */
#include "mkd_env.h"

#include <stdlib.h>

const mkd_env_info mkd_env_table[MKD_ENV_COUNT] = {
    [MKD_ENV_DEVICE] = {"MKDSEG_DEVICE", "auto",
                        "engine backend: auto (CUDA when a GPU is usable, else CPU), cpu or cuda"},
    [MKD_ENV_THREADS] =
        {"MKDSEG_THREADS", "0",
         "CPU (OpenMP) threads when a command or setting asks for 0; 0 = all cores"},
    [MKD_ENV_CONV_PATH] = {"MKDSEG_CONV_PATH", "auto",
                           "CPU convolutions: auto (per shape, the fastest of oneDNN, the direct "
                           "AVX2 kernels, Winograd F(2x2,3x3) and im2col + GEMM, timed once per "
                           "process), onednn, direct, winograd or gemm"},
    [MKD_ENV_CONV_DIRECT] =
        {"MKDSEG_CONV_DIRECT", "",
         "older spelling of MKDSEG_CONV_PATH when that is unset: 0 = onednn, 1 = direct"},
    [MKD_ENV_CPU_ISA] = {"MKDSEG_CPU_ISA", "auto",
                         "mkdseg's own CPU kernels: auto (their AVX-512 forms where the CPU has "
                         "AVX-512F) or avx2 (never AVX-512; oneDNN has ONEDNN_MAX_CPU_ISA)"},
    [MKD_ENV_CPU_LAYOUT] = {"MKDSEG_CPU_LAYOUT", "auto",
                            "CPU activations between inference ops: auto (oneDNN's channel-"
                            "blocked layout where the next op takes it) or plain (always NCHW)"},
    [MKD_ENV_NN_PROFILE] =
        {"MKDSEG_NN_PROFILE", "",
         "set (to anything): time every op of a context, printed when it is freed"},
    [MKD_ENV_INFER_TILES] = {"MKDSEG_INFER_TILES", "16",
                             "on a GPU: most tiles inference sends through one network call"},
    [MKD_ENV_CUDA_WORKSPACE_MB] = {"MKDSEG_CUDA_WORKSPACE_MB", "1024",
                                   "largest cuDNN convolution workspace, in MiB"},
    [MKD_ENV_CUDA_TF32] = {"MKDSEG_CUDA_TF32", "0",
                           "1: cuDNN may use TF32 tensor-core math for FP32 convolutions"},
    [MKD_ENV_CUDA_ALGO] = {"MKDSEG_CUDA_ALGO", "find",
                           "find: time cuDNN's algorithms per shape; heuristic: take its ranking"},
    [MKD_ENV_CUDA_PROFILE] = {"MKDSEG_CUDA_PROFILE", "0",
                              "1: device time per op, direction and shape, printed at exit"},
    [MKD_ENV_INFLATE] = {"MKDSEG_INFLATE", "auto",
                         ".nii.gz data: auto (the whole file at once with libdeflate, zlib's "
                         "stream where that fails) or zlib (zlib's stream only)"},
};

const char *mkd_env_raw(mkd_env_knob k) { return getenv(mkd_env_table[k].name); }

const char *mkd_env_str(mkd_env_knob k)
{
    const char *v = mkd_env_raw(k);
    return v && *v ? v : mkd_env_table[k].def;
}

long mkd_env_pos(mkd_env_knob k)
{
    const char *v = mkd_env_raw(k);
    long n = v ? atol(v) : 0;
    return n > 0 ? n : atol(mkd_env_table[k].def);
}
