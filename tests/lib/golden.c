/* golden.c: reader for the PyTorch golden files (format in golden.h). */
#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : -1; }

golden_file *golden_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    golden_file *g = NULL;
    char magic[8];
    uint32_t count;
    if (!f) {
        snprintf(err, errlen, "golden: cannot open %s", path);
        return NULL;
    }
    if (rd(f, magic, 8) || memcmp(magic, "MKDGOLD1", 8) || rd(f, &count, 4) || count > 100000)
        goto bad;
    g = calloc(1, sizeof *g);
    if (!g || !(g->e = calloc(count ? count : 1, sizeof *g->e)))
        goto bad;
    for (uint32_t i = 0; i < count; i++) {
        golden_entry *e = &g->e[i];
        uint16_t nl;
        uint8_t dt, nd;
        if (rd(f, &nl, 2) || nl >= sizeof e->name || rd(f, e->name, nl))
            goto bad;
        e->name[nl] = 0;
        if (rd(f, &dt, 1) || rd(f, &nd, 1) || dt > 2 || nd > 8)
            goto bad;
        e->dtype = dt;
        e->ndim = nd;
        e->numel = 1;
        for (int d = 0; d < nd; d++) {
            int32_t v;
            if (rd(f, &v, 4) || v < 0)
                goto bad;
            e->dims[d] = v;
            e->numel *= (size_t)v;
        }
        size_t esz = dt == 2 ? 8 : 4;
        e->data = malloc(e->numel * esz + 1);
        g->count = (int)i + 1;
        if (!e->data || rd(f, e->data, e->numel * esz))
            goto bad;
    }
    fclose(f);
    return g;
bad:
    snprintf(err, errlen, "golden: %s: bad or truncated file", path);
    golden_free(g);
    fclose(f);
    return NULL;
}

void golden_free(golden_file *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->count; i++)
        free(g->e[i].data);
    free(g->e);
    free(g);
}

const golden_entry *golden_get(const golden_file *g, const char *name)
{
    for (int i = 0; g && i < g->count; i++)
        if (!strcmp(g->e[i].name, name))
            return &g->e[i];
    return NULL;
}

const float *golden_f32(const golden_file *g, const char *name)
{
    const golden_entry *e = golden_get(g, name);
    return e && e->dtype == 0 ? (const float *)e->data : NULL;
}

int golden_nchw(const golden_file *g, const char *name, int dims[4])
{
    const golden_entry *e = golden_get(g, name);
    if (!e || e->ndim > 4)
        return -1;
    int pad = 4 - e->ndim;
    for (int d = 0; d < 4; d++)
        dims[d] = d < pad ? 1 : e->dims[d - pad];
    return 0;
}

double golden_rel_err(const float *a, const float *b, size_t n, double floor)
{
    double scale = floor, err = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > scale)
            scale = fabs((double)b[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= err)) /* NaN counts as infinitely wrong */
            err = isnan(d) ? INFINITY : d;
    }
    return err / scale;
}
