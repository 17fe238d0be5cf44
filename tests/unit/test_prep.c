/* test_prep.c: normalisation, slices, resampling, tiles, augmentation, streaming memory. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prep.h"

Test(prep_norm, ct_window)
{
    prep_norm p;
    prep_norm_stats st;
    prep_norm_default(&p, PREP_CT);
    float x[5] = {-1000, -400, 150, 700, 3000};
    cr_assert_eq(prep_norm_fit(&p, x, 5, &st, NULL, 0), 0);
    prep_norm_apply(&p, &st, x, 5);
    const float want[5] = {-1, -1, 0, 1, 1};
    for (int i = 0; i < 5; i++)
        cr_assert_float_eq(x[i], want[i], 1e-6, "%d: %g", i, x[i]);
}

Test(prep_norm, mr_percentile_zscore)
{
    prep_norm p;
    prep_norm_stats st;
    prep_norm_default(&p, PREP_MR);
    int n = 100000;
    float *x = malloc(n * sizeof *x);
    for (int i = 0; i < n; i++)
        x[i] = (float)(i % 1000);
    x[7] = 1e6f; /* an outlier the percentile clip removes */
    cr_assert_eq(prep_norm_fit(&p, x, n, &st, NULL, 0), 0);
    cr_assert_float_eq(st.lo, 5.0, 1.0);
    cr_assert_float_eq(st.hi, 995.0, 250.0); /* one 244-wide bin: the outlier stretches the range */
    prep_norm_apply(&p, &st, x, n);
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        cr_assert(x[i] >= -1 && x[i] <= 1);
        s += x[i], s2 += (double)x[i] * x[i];
    }
    double m = s / n, sd = sqrt(s2 / n - m * m);
    cr_assert_float_eq(m, 0.0, 0.01);
    cr_assert_float_eq(sd, 1.0 / 3.0, 0.01);
    free(x);
}

Test(prep_norm, string_round_trip)
{
    prep_norm p, q;
    char buf[256], err[128];
    prep_norm_default(&p, PREP_MR);
    p.mr_plo = 1.25f;
    cr_assert_eq(prep_norm_to_string(&p, buf, sizeof buf), 0);
    cr_assert_eq(prep_norm_from_string(&q, buf, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(&p, &q, sizeof p), 0);
    cr_assert_eq(prep_norm_from_string(&q, "modality=xx", err, sizeof err), -1);
    cr_assert_eq(prep_norm_from_string(&q, "modality=ct;ct_lo=5;ct_hi=1", err, sizeof err), -1);
    cr_assert_eq(prep_norm_from_string(&q, "modality=ct;bogus=1", err, sizeof err), -1);
}

/* coronal RAS stack: slicing axis j; slices come out with u toward the patient's left and v
 * toward posterior, and put() inverts get() */
Test(prep_slice, canonical_frame_round_trip)
{
    double a[4][4] = {{1.5, 0, 0, 0}, {0, 0, 2, 0}, {0, 3, 0, 0}, {0, 0, 0, 1}};
    vol_geom g;
    cr_assert_eq(vol_geom_init(&g, 5, 4, 6, a, NULL, 0), 0);
    vol_slice_frame f;
    vol_geom_slice_frame(&g, &f);
    cr_assert_eq(f.slice_axis, 1);
    int64_t n = 5 * 4 * 6;
    float *vol = malloc(n * sizeof *vol), *back = calloc(n, sizeof *back);
    for (int64_t i = 0; i < n; i++)
        vol[i] = (float)i;
    float *sl = malloc(f.w * f.h * sizeof *sl);
    for (int64_t s = 0; s < f.nslices; s++) {
        prep_slice_get(&g, &f, vol, s, sl);
        /* world x decreases along u, world y decreases along v */
        for (int64_t v = 0; v < f.h; v++)
            for (int64_t u = 0; u + 1 < f.w; u++) {
                int64_t i0 = (int64_t)sl[v * f.w + u], i1 = (int64_t)sl[v * f.w + u + 1];
                cr_assert_eq(i0 / 5 % 4, s); /* j index = slice */
                double x0 = a[0][0] * (i0 % 5), x1 = a[0][0] * (i1 % 5);
                cr_assert_lt(x1, x0);
            }
        for (int64_t v = 0; v + 1 < f.h; v++) {
            int64_t k0 = (int64_t)sl[v * f.w] / 20, k1 = (int64_t)sl[(v + 1) * f.w] / 20;
            cr_assert_lt(a[1][2] * k1, a[1][2] * k0);
        }
        prep_slice_put(&g, &f, back, s, sl);
    }
    cr_assert_eq(memcmp(vol, back, n * sizeof *vol), 0);
    uint8_t *l = malloc(n), *l2 = calloc(n, 1), *ls = malloc(f.w * f.h);
    for (int64_t i = 0; i < n; i++)
        l[i] = (uint8_t)(i % 8);
    for (int64_t s = 0; s < f.nslices; s++) {
        prep_slice_get_u8(&g, &f, l, s, ls);
        prep_slice_put_u8(&g, &f, l2, s, ls);
    }
    cr_assert_eq(memcmp(l, l2, n), 0);
    free(vol), free(back), free(sl), free(l), free(l2), free(ls);
}

Test(prep_resample, linear_and_nearest)
{
    cr_assert_eq(prep_resampled_size(512, 0.4, 1.25), 164);
    cr_assert_eq(prep_resampled_size(3, 0.1, 10), 1);
    /* a ramp along x, 2 channels, resized 10 -> 20: out(o) = clamp((o + 0.5)/2 - 0.5) */
    float in[2 * 3 * 10], out[2 * 5 * 20];
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 10; x++)
                in[c * 30 + y * 10 + x] = (float)(x + 100 * c);
    prep_resize_linear(in, 2, 3, 10, out, 5, 20);
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 5; y++)
            for (int o = 0; o < 20; o++) {
                double f = (o + 0.5) / 2 - 0.5;
                f = f < 0 ? 0 : f > 9 ? 9 : f;
                cr_assert_float_eq(out[c * 100 + y * 20 + o], f + 100 * c, 1e-5);
            }
    uint8_t lab[6 * 8], up[12 * 16], down[6 * 8];
    for (int i = 0; i < 48; i++)
        lab[i] = (uint8_t)((i * 7) % 8);
    prep_resize_nearest_u8(lab, 6, 8, up, 12, 16);
    prep_resize_nearest_u8(up, 12, 16, down, 6, 8);
    cr_assert_eq(memcmp(lab, down, 48), 0);
    cr_assert_eq(up[0], lab[0]);
    cr_assert_eq(up[1 * 16 + 3], lab[0 * 8 + 1]);
}

Test(prep_tile, positions_weights_accumulate)
{
    int64_t pos[16];
    cr_assert_eq(prep_tile_positions(100, 64, 0.5, pos, 16), 3);
    cr_assert_eq(pos[0], 0);
    cr_assert_eq(pos[1], 18);
    cr_assert_eq(pos[2], 36);
    cr_assert_eq(prep_tile_positions(50, 64, 0.5, pos, 16), 1);
    cr_assert_eq(prep_tile_positions(64, 64, 0.5, pos, 16), 1);
    int t = 16;
    float w[16 * 16];
    prep_gaussian_weights(t, w);
    for (int y = 0; y < t; y++)
        for (int x = 0; x < t; x++) {
            cr_assert_float_eq(w[y * t + x], w[(t - 1 - y) * t + (t - 1 - x)], 1e-7);
            cr_assert_geq(w[y * t + x], 1e-3f);
        }
    cr_assert_gt(w[8 * t + 8], 0.9f);
    cr_assert_lt(w[0], 0.01f);
    /* a constant probability map comes back exactly, for images smaller and larger than t */
    int64_t dims[2][2] = {{10, 7}, {40, 37}};
    for (int d = 0; d < 2; d++) {
        int64_t h = dims[d][0], ww = dims[d][1];
        float *img = malloc(h * ww * sizeof *img), *acc = calloc(2 * h * ww, sizeof *acc),
              *ws = calloc(h * ww, sizeof *ws), tile[16 * 16], probs[2 * 16 * 16];
        for (int64_t i = 0; i < h * ww; i++)
            img[i] = (float)i;
        int64_t py[16], px[16];
        int ny = prep_tile_positions(h, t, 0.5, py, 16),
            nx = prep_tile_positions(ww, t, 0.5, px, 16);
        for (int a = 0; a < ny; a++)
            for (int b = 0; b < nx; b++) {
                prep_tile_get(img, h, ww, py[a], px[b], t, -5.0f, tile);
                for (int y = 0; y < t; y++)
                    for (int x = 0; x < t; x++) {
                        int64_t iy = py[a] + y, ix = px[b] + x;
                        float want = iy < h && ix < ww ? img[iy * ww + ix] : -5.0f;
                        cr_assert_eq(tile[y * t + x], want);
                    }
                for (int i = 0; i < t * t; i++)
                    probs[i] = 0.25f, probs[t * t + i] = 0.75f;
                prep_tile_accumulate(acc, ws, 2, h, ww, py[a], px[b], t, probs, w);
            }
        for (int64_t i = 0; i < h * ww; i++) {
            cr_assert_gt(ws[i], 0.0f);
            cr_assert_float_eq(acc[i] / ws[i], 0.25f, 1e-6);
            cr_assert_float_eq(acc[h * ww + i] / ws[i], 0.75f, 1e-6);
        }
        free(img), free(acc), free(ws);
    }
}

Test(prep_augment, seeded_and_consistent)
{
    int64_t h = 20, w = 24;
    float img[20 * 24], a[20 * 24], b[20 * 24];
    uint8_t lab[20 * 24], la[20 * 24], lb[20 * 24];
    for (int64_t i = 0; i < h * w; i++) {
        img[i] = (float)(i % w) + 0.5f * (float)(i / w);
        lab[i] = (uint8_t)((i % w) < 12 ? 2 : 5);
    }
    prep_aug ag;
    prep_aug_default(&ag);
    prep_rng r1, r2;
    prep_rng_seed(&r1, 99);
    prep_rng_seed(&r2, 99);
    memcpy(a, img, sizeof img), memcpy(b, img, sizeof img);
    memcpy(la, lab, sizeof lab), memcpy(lb, lab, sizeof lab);
    cr_assert_eq(prep_augment(&ag, &r1, a, la, h, w, -1.0f), 0);
    cr_assert_eq(prep_augment(&ag, &r2, b, lb, h, w, -1.0f), 0);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_eq(memcmp(la, lb, sizeof la), 0);
    for (int64_t i = 0; i < h * w; i++)
        cr_assert(la[i] == 0 || la[i] == 2 || la[i] == 5);
    /* a pure left-right flip is exact for image and labels */
    prep_aug flip = {
        .p_flip_u = 1, .p_flip_v = 0, .max_rot_deg = 0, .min_scale = 1, .max_scale = 1};
    memcpy(a, img, sizeof img), memcpy(la, lab, sizeof lab);
    cr_assert_eq(prep_augment(&flip, &r1, a, la, h, w, -1.0f), 0);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            cr_assert_float_eq(a[y * w + x], img[y * w + (w - 1 - x)], 1e-5);
            cr_assert_eq(la[y * w + x], lab[y * w + (w - 1 - x)]);
        }
    /* a rotation keeps the centre pixel's neighbourhood and brings fill in at the corners */
    prep_aug rot = {
        .p_flip_u = 0, .p_flip_v = 0, .max_rot_deg = 45, .min_scale = 0.7, .max_scale = 0.7};
    memcpy(a, img, sizeof img);
    cr_assert_eq(prep_augment(&rot, &r1, a, NULL, h, w, -7.0f), 0);
    cr_assert_eq(a[0], -7.0f);
}

/* A 512x512x300 int16 CT read and processed slice by slice (normalise, resample, tile, label
 * output) with peak memory below 2.2 float copies of the volume. */
Test(prep_stream, ct_512x512x300_peak_memory, .timeout = 120)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    char d[512], path[600], err[256];
    snprintf(d, sizeof d, "%s/stream.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(d));
    snprintf(path, sizeof path, "%s/ct.nii", d);
    const int64_t nx = 512, ny = 512, nz = 300, n = nx * ny * nz;
    pid_t pid = fork(); /* the writer's memory is not counted in this process's peak */
    if (pid == 0) {
        double a[4][4] = {{-0.4, 0, 0, 100}, {0, -0.4, 0, 100}, {0, 0, 0.6, -90}, {0, 0, 0, 1}};
        vol_geom g;
        int16_t *raw = malloc((size_t)n * sizeof *raw);
        if (!raw || vol_geom_init(&g, nx, ny, nz, a, NULL, 0) != 0)
            _exit(1);
        for (int64_t i = 0; i < n; i++)
            raw[i] = (int16_t)((i % 2000) - 1000);
        _exit(vol_write_raw(path, &g, raw, VOL_DT_INT16, NULL, 0) == 0 ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vol_t v;
    cr_assert_eq(vol_read(path, NULL, &v, err, sizeof err), 0, "%s", err);
    prep_norm p;
    prep_norm_stats st;
    prep_norm_default(&p, PREP_CT);
    cr_assert_eq(prep_norm_fit(&p, v.data, n, &st, NULL, 0), 0);
    vol_slice_frame f;
    vol_geom_slice_frame(&v.geom, &f);
    int64_t oh = prep_resampled_size(f.h, f.dv, 1.0), ow = prep_resampled_size(f.w, f.du, 1.0);
    float *sl = malloc(f.h * f.w * sizeof *sl), *rs = malloc(oh * ow * sizeof *rs);
    uint8_t *lab = malloc((size_t)n), *ls = malloc(oh * ow), *lb = malloc(f.h * f.w);
    cr_assert(sl && rs && lab && ls && lb);
    for (int64_t s = 0; s < f.nslices; s++) {
        prep_slice_get(&v.geom, &f, v.data, s, sl);
        prep_norm_apply(&p, &st, sl, f.h * f.w);
        prep_resize_linear(sl, 1, f.h, f.w, rs, oh, ow);
        for (int64_t i = 0; i < oh * ow; i++)
            ls[i] = rs[i] > 0 ? 1 : 0;
        prep_resize_nearest_u8(ls, oh, ow, lb, f.h, f.w);
        prep_slice_put_u8(&v.geom, &f, lab, s, lb);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak_mb = ru.ru_maxrss / 1024.0, float_copy_mb = n * 4.0 / (1 << 20);
    cr_log_info("512x512x300 int16: read + per-slice processing %.2f s, peak RSS %.0f MiB (one "
                "float copy %.0f MiB)",
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), peak_mb,
                float_copy_mb);
    cr_assert_lt(peak_mb, 2.2 * float_copy_mb, "peak RSS %.0f MiB", peak_mb);
    free(sl), free(rs), free(lab), free(ls), free(lb);
    vol_free(&v);
    unlink(path);
    rmdir(d);
}
