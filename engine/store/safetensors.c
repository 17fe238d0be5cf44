/* safetensors.c: see safetensors.h for the format and the contracts. */
#include "safetensors.h"
#include "mkd_err.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20) /* 100 MiB of JSON is far beyond any real model */

struct st_file {
    int n;
    st_tensor *t; /* [n], sorted by data offset */
    char **names; /* [n] */
    int nmeta;
    char **mkeys, **mvals; /* [nmeta] */
    unsigned char *data;   /* tensor bytes, each tensor 8-byte aligned */
};

static const char *const dtype_names[] = {"F32", "I64", "U8", "F64", "I32"};
static const size_t dtype_sizes[] = {4, 8, 1, 8, 4};
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == ST_I32 + 1, "dtype table");

size_t st_dtype_size(st_dtype dt) { return dtype_sizes[dt]; }
const char *st_dtype_name(st_dtype dt) { return dtype_names[dt]; }

static int dtype_parse(const char *s, st_dtype *dt)
{
    for (int i = 0; i <= ST_I32; i++)
        if (!strcmp(s, dtype_names[i])) {
            *dt = (st_dtype)i;
            return 0;
        }
    return -1;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->names[i]);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->mkeys[i]);
        free(f->mvals[i]);
    }
    free(f->names);
    free(f->t);
    free(f->mkeys);
    free(f->mvals);
    free(f->data);
    free(f);
}

typedef struct {
    size_t b, e;
    int idx;
} range;
static int range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    return x->e < y->e ? -1 : (x->e > y->e);
}

int st_parse(const void *buf, size_t len, st_file **out, char *err, size_t errlen)
{
    const unsigned char *p = buf;
    st_file *f = NULL;
    json_t *root = NULL;
    range *rg = NULL;
    *out = NULL;
    if (len < 8) {
        mkd_seterr(err, errlen,
                   "safetensors: file too short (%zu bytes) for the 8-byte header length", len);
        goto fail;
    }
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = (hn << 8) | p[i];
    if (hn < 2 || hn > ST_MAX_HEADER || hn > len - 8) {
        mkd_seterr(err, errlen, "safetensors: header length %llu is invalid for a %zu-byte file",
                   (unsigned long long)hn, len);
        goto fail;
    }
    json_error_t je;
    root = json_loadb((const char *)p + 8, (size_t)hn, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        mkd_seterr(err, errlen, "safetensors: header is not a JSON object (%s)",
                   root ? "wrong type" : je.text);
        goto fail;
    }
    size_t datalen = len - 8 - (size_t)hn;
    const unsigned char *data = p + 8 + hn;

    f = calloc(1, sizeof *f);
    if (!f)
        goto oom;
    size_t nkeys = json_object_size(root);
    f->t = calloc(nkeys ? nkeys : 1, sizeof *f->t);
    f->names = calloc(nkeys ? nkeys : 1, sizeof *f->names);
    rg = calloc(nkeys ? nkeys : 1, sizeof *rg);
    if (!f->t || !f->names || !rg)
        goto oom;

    const char *key;
    json_t *val;
    size_t total_aligned = 0;
    json_object_foreach (root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                mkd_seterr(err, errlen, "safetensors: __metadata__ is not an object");
                goto fail;
            }
            size_t nm = json_object_size(val);
            f->mkeys = calloc(nm ? nm : 1, sizeof(char *));
            f->mvals = calloc(nm ? nm : 1, sizeof(char *));
            if (!f->mkeys || !f->mvals)
                goto oom;
            const char *mk;
            json_t *mv;
            json_object_foreach (val, mk, mv) {
                if (!json_is_string(mv)) {
                    mkd_seterr(err, errlen, "safetensors: metadata value of '%s' is not a string",
                               mk);
                    goto fail;
                }
                f->mkeys[f->nmeta] = strdup(mk);
                f->mvals[f->nmeta] = strdup(json_string_value(mv));
                f->nmeta++;
                if (!f->mkeys[f->nmeta - 1] || !f->mvals[f->nmeta - 1])
                    goto oom;
            }
            continue;
        }
        st_tensor *t = &f->t[f->n];
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) ||
            !json_is_array(jo) || json_array_size(jo) != 2) {
            mkd_seterr(err, errlen,
                       "safetensors: entry '%s' needs dtype, shape and data_offsets[2]", key);
            goto fail;
        }
        if (dtype_parse(json_string_value(jd), &t->dtype)) {
            mkd_seterr(
                err, errlen,
                "safetensors: tensor '%s' has unsupported dtype '%s' (F32, F64, I64, I32, U8 are)",
                key, json_string_value(jd));
            goto fail;
        }
        t->ndim = (int)json_array_size(js);
        if (t->ndim > ST_MAX_DIMS) {
            mkd_seterr(err, errlen, "safetensors: tensor '%s' has %d dims (max %d)", key, t->ndim,
                       ST_MAX_DIMS);
            goto fail;
        }
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            json_t *e = json_array_get(js, d);
            if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                json_integer_value(e) > (json_int_t)1 << 40) {
                mkd_seterr(err, errlen, "safetensors: tensor '%s' has an invalid shape", key);
                goto fail;
            }
            t->shape[d] = json_integer_value(e);
            if (t->shape[d] && numel > (((uint64_t)1 << 40) / (uint64_t)t->shape[d])) {
                mkd_seterr(err, errlen, "safetensors: tensor '%s' is too large", key);
                goto fail;
            }
            numel *= (uint64_t)t->shape[d];
        }
        json_t *b = json_array_get(jo, 0), *e = json_array_get(jo, 1);
        if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
            json_integer_value(e) < json_integer_value(b) ||
            (uint64_t)json_integer_value(e) > datalen) {
            mkd_seterr(err, errlen,
                       "safetensors: tensor '%s' has data_offsets outside the %zu data bytes", key,
                       datalen);
            goto fail;
        }
        size_t nb = (size_t)(json_integer_value(e) - json_integer_value(b));
        if ((uint64_t)nb != numel * dtype_sizes[t->dtype]) {
            mkd_seterr(err, errlen,
                       "safetensors: tensor '%s' spans %zu bytes but its shape needs %llu", key, nb,
                       (unsigned long long)(numel * dtype_sizes[t->dtype]));
            goto fail;
        }
        t->numel = (int64_t)numel;
        t->nbytes = nb;
        f->names[f->n] = strdup(key);
        if (!f->names[f->n])
            goto oom;
        t->name = f->names[f->n];
        rg[f->n] = (range){(size_t)json_integer_value(b), (size_t)json_integer_value(e), f->n};
        total_aligned += (nb + 7) & ~(size_t)7;
        f->n++;
    }
    /* the byte ranges must tile the data area: no overlap, no hole */
    qsort(rg, (size_t)f->n, sizeof *rg, range_cmp);
    size_t at = 0;
    for (int i = 0; i < f->n; i++) {
        if (rg[i].b != at) {
            mkd_seterr(err, errlen, "safetensors: tensor '%s' %s", f->names[rg[i].idx],
                       rg[i].b < at ? "overlaps another tensor" : "leaves a hole in the data area");
            goto fail;
        }
        at = rg[i].e;
    }
    if (at != datalen) {
        mkd_seterr(err, errlen, "safetensors: %zu trailing bytes after the last tensor",
                   datalen - at);
        goto fail;
    }

    f->data = malloc(total_aligned ? total_aligned : 8);
    if (!f->data)
        goto oom;
    /* order tensors by offset (file order) and copy each to an aligned slot */
    st_tensor *sorted = calloc((size_t)(f->n ? f->n : 1), sizeof *sorted);
    char **snames = calloc((size_t)(f->n ? f->n : 1), sizeof *snames);
    if (!sorted || !snames) {
        free(sorted);
        free(snames);
        goto oom;
    }
    size_t off = 0;
    for (int i = 0; i < f->n; i++) {
        sorted[i] = f->t[rg[i].idx];
        snames[i] = f->names[rg[i].idx];
        memcpy(f->data + off, data + rg[i].b, sorted[i].nbytes);
        sorted[i].data = f->data + off;
        off += (sorted[i].nbytes + 7) & ~(size_t)7;
    }
    free(f->t);
    free(f->names);
    f->t = sorted;
    f->names = snames;
    free(rg);
    json_decref(root);
    *out = f;
    return 0;
oom:
    mkd_seterr(err, errlen, "safetensors: out of memory");
fail:
    free(rg);
    json_decref(root);
    st_close(f);
    return -1;
}

int st_open(const char *path, size_t max_bytes, st_file **out, char *err, size_t errlen)
{
    if (!max_bytes)
        max_bytes = (size_t)4 << 30;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mkd_seterr(err, errlen, "safetensors: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    unsigned char *buf = NULL;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        mkd_seterr(err, errlen, "safetensors: %s is not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        mkd_seterr(err, errlen, "safetensors: %s is %lld bytes, over the %zu-byte limit", path,
                   (long long)sb.st_size, max_bytes);
        goto fail;
    }
    size_t len = (size_t)sb.st_size;
    buf = malloc(len ? len : 1);
    if (!buf) {
        mkd_seterr(err, errlen, "safetensors: out of memory");
        goto fail;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            mkd_seterr(err, errlen, "safetensors: read error on %s", path);
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    int rc = st_parse(buf, len, out, err, errlen);
    free(buf);
    return rc;
fail:
    free(buf);
    close(fd);
    return -1;
}

int st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }

const st_tensor *st_get(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name))
            return &f->t[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->mkeys[i], key))
            return f->mvals[i];
    return NULL;
}

int st_meta_count(const st_file *f) { return f->nmeta; }

int st_meta_at(const st_file *f, int i, const char **key, const char **value)
{
    if (i < 0 || i >= f->nmeta)
        return -1;
    *key = f->mkeys[i];
    *value = f->mvals[i];
    return 0;
}

/* ---- writer ------------------------------------------------------------------------------ */
typedef struct {
    char *name;
    st_dtype dt;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wtensor;

struct st_writer {
    int n, cap;
    wtensor *t;
    json_t *meta;
};

st_writer *st_writer_new(void)
{
    st_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->meta = json_object();
    if (!w->meta) {
        free(w);
        return NULL;
    }
    return w;
}

void st_writer_free(st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    json_decref(w->meta);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, st_dtype dt, int ndim, const int64_t *shape,
                  const void *data, char *err, size_t errlen)
{
    if (!strcmp(name, "__metadata__") || !*name) {
        mkd_seterr(err, errlen, "safetensors: invalid tensor name '%s'", name);
        return -1;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS) {
        mkd_seterr(err, errlen, "safetensors: tensor '%s' has %d dims", name, ndim);
        return -1;
    }
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) {
            mkd_seterr(err, errlen, "safetensors: duplicate tensor name '%s'", name);
            return -1;
        }
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) {
            mkd_seterr(err, errlen, "safetensors: out of memory");
            return -1;
        }
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        mkd_seterr(err, errlen, "safetensors: out of memory");
        return -1;
    }
    t->dt = dt;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            free(t->name);
            mkd_seterr(err, errlen, "safetensors: tensor '%s' has a negative dim", name);
            return -1;
        }
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t->nbytes = numel * dtype_sizes[dt];
    t->data = data;
    w->n++;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *value)
{
    return json_object_set_new(w->meta, key, json_string(value));
}

/* larger elements first so every tensor's offset is a multiple of its element size */
static int wt_cmp(const void *a, const void *b)
{
    const wtensor *x = *(wtensor *const *)a, *y = *(wtensor *const *)b;
    size_t sx = dtype_sizes[x->dt], sy = dtype_sizes[y->dt];
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *c = p;
    while (n) {
        ssize_t r = write(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

int st_writer_write(st_writer *w, const char *path, char *err, size_t errlen)
{
    int rc = -1, fd = -1;
    char *hdr = NULL, *tmp = NULL;
    wtensor **order = calloc((size_t)(w->n ? w->n : 1), sizeof *order);
    json_t *root = json_object();
    if (!order || !root) {
        mkd_seterr(err, errlen, "safetensors: out of memory");
        goto fail;
    }
    for (int i = 0; i < w->n; i++)
        order[i] = &w->t[i];
    qsort(order, (size_t)w->n, sizeof *order, wt_cmp);
    if (json_object_size(w->meta))
        json_object_set(root, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < order[i]->ndim; d++)
            json_array_append_new(shape, json_integer(order[i]->shape[d]));
        json_object_set_new(root, order[i]->name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtype_names[order[i]->dt],
                                      "shape", shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + order[i]->nbytes)));
        off += order[i]->nbytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) {
        mkd_seterr(err, errlen, "safetensors: cannot encode the header");
        goto fail;
    }
    size_t hn = strlen(hdr), padded = (hn + 7) & ~(size_t)7;
    if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
        tmp = NULL;
        mkd_seterr(err, errlen, "safetensors: out of memory");
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        mkd_seterr(err, errlen, "safetensors: cannot create %s: %s", tmp, strerror(errno));
        goto fail;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if (write_all(fd, lenb, 8) || write_all(fd, hdr, hn) || write_all(fd, spaces, padded - hn))
        goto ioerr;
    for (int i = 0; i < w->n; i++)
        if (order[i]->nbytes && write_all(fd, order[i]->data, order[i]->nbytes))
            goto ioerr;
    if (fsync(fd))
        goto ioerr;
    if (close(fd)) {
        fd = -1;
        goto ioerr;
    }
    fd = -1;
    if (rename(tmp, path))
        goto ioerr;
    rc = 0;
    goto done;
ioerr:
    mkd_seterr(err, errlen, "safetensors: writing %s failed: %s", path, strerror(errno));
fail:
done:
    if (fd >= 0)
        close(fd);
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    free(hdr);
    free(order);
    json_decref(root);
    return rc;
}
