/* slice.c: 2-D slices along the slicing axis in the canonical orientation, and back. */
#include "prep.h"

/* offset of pixel (0,0) and the steps along u and v in the flat volume */
static void frame_steps(const vol_geom *g, const vol_slice_frame *f, int64_t s, int64_t *base,
                        int64_t *su, int64_t *sv)
{
    const int64_t stride[3] = {1, g->nx, g->nx * g->ny};
    *su = f->u_flip ? -stride[f->u_axis] : stride[f->u_axis];
    *sv = f->v_flip ? -stride[f->v_axis] : stride[f->v_axis];
    *base = s * stride[f->slice_axis] + (f->u_flip ? (f->w - 1) * stride[f->u_axis] : 0) +
            (f->v_flip ? (f->h - 1) * stride[f->v_axis] : 0);
}

#define SLICE_COPY(GET)                                                                            \
    do {                                                                                           \
        int64_t base, su, sv;                                                                      \
        frame_steps(g, f, s, &base, &su, &sv);                                                     \
        for (int64_t v = 0; v < f->h; v++) {                                                       \
            int64_t p = base + v * sv;                                                             \
            for (int64_t u = 0; u < f->w; u++, p += su)                                            \
                GET;                                                                               \
        }                                                                                          \
    } while (0)

void prep_slice_get(const vol_geom *g, const vol_slice_frame *f, const float *data, int64_t s,
                    float *out)
{
    SLICE_COPY(out[v * f->w + u] = data[p]);
}

void prep_slice_get_u8(const vol_geom *g, const vol_slice_frame *f, const uint8_t *data, int64_t s,
                       uint8_t *out)
{
    SLICE_COPY(out[v * f->w + u] = data[p]);
}

void prep_slice_put(const vol_geom *g, const vol_slice_frame *f, float *data, int64_t s,
                    const float *in)
{
    SLICE_COPY(data[p] = in[v * f->w + u]);
}

void prep_slice_put_u8(const vol_geom *g, const vol_slice_frame *f, uint8_t *data, int64_t s,
                       const uint8_t *in)
{
    SLICE_COPY(data[p] = in[v * f->w + u]);
}
