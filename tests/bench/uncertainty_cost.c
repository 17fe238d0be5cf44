/* uncertainty_cost.c: what the disagreement map costs a segmentation: the same model and
 * volume through infer_volume (the ensemble alone) and infer_volume_ex (with the map),
 * interleaved, `reps` times, one engine thread.
 * Usage: build/uncertainty_cost MODEL.safetensors VOLUME.nii.gz [reps] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "infer.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    char err[512];
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL VOLUME [reps]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 3, rc = 1;
    nn_set_threads(1);
    infer_model *m = infer_model_load(argv[1], nn_backend_cpu(), err, sizeof err);
    vol_t v = {0};
    if (!m || vol_read(argv[2], NULL, &v, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        infer_model_free(m);
        return 1;
    }
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    uint8_t *cls = malloc(n);
    float *dis = malloc(sizeof(float) * n);
    infer_opts o = {-1, 0, 0.5};
    for (int r = 0; r < reps && cls && dis; r++) {
        infer_timing a, b;
        double t0 = now_s();
        if (infer_volume(m, &v, &o, cls, &a, err, sizeof err) < 0)
            goto done;
        double t1 = now_s();
        if (infer_volume_ex(m, &v, &o, cls, dis, &b, err, sizeof err) < 0)
            goto done;
        double t2 = now_s();
        printf("rep %d: ensemble %.3f s (post %.3f s), with the map %.3f s (post %.3f s)\n", r,
               t1 - t0, a.post_s, t2 - t1, b.post_s);
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "%s\n", err);
    free(cls), free(dis);
    vol_free(&v);
    infer_model_free(m);
    return rc;
}
