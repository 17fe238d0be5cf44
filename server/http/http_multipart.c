/* http_multipart.c: see http_multipart.h. The body is a list of segments, each either bytes in
 * memory (part headers, small parts, the closing delimiter) or a byte range of an open file;
 * the libmicrohttpd reader maps an offset to its segment. */
#include "http_multipart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SEGS (3 * HTTP_MP_MAX_PARTS + 1)

typedef struct {
    char *mem;      /* owned bytes, or NULL for a file range */
    int fd;         /* file segment: its descriptor (owned), else -1 */
    uint64_t start; /* offset of the segment in the body */
    uint64_t len;
} mp_seg;

struct http_multipart {
    char boundary[48];
    mp_seg segs[MAX_SEGS];
    int nsegs, nparts;
    uint64_t total;
};

http_multipart *http_mp_new(void)
{
    http_multipart *mp = calloc(1, sizeof *mp);
    if (!mp)
        return NULL;
    unsigned char b[12] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uintptr_t x = (uintptr_t)mp ^ (uintptr_t)time(NULL);
        memcpy(b, &x, sizeof x < sizeof b ? sizeof x : sizeof b);
    }
    int off = snprintf(mp->boundary, sizeof mp->boundary, "mkdseg-");
    for (size_t i = 0; i < sizeof b; i++)
        off += snprintf(mp->boundary + off, sizeof mp->boundary - (size_t)off, "%02x", b[i]);
    return mp;
}

static int seg_mem(http_multipart *mp, char *mem, size_t len)
{
    if (mp->nsegs >= MAX_SEGS) {
        free(mem);
        return -1;
    }
    mp->segs[mp->nsegs++] = (mp_seg){mem, -1, mp->total, len};
    mp->total += len;
    return 0;
}

static int safe_token(const char *s) { return !s || !strpbrk(s, "\"\r\n"); }

/* The delimiter and headers of a new part (a CRLF ends the previous part's data). */
static int part_head(http_multipart *mp, const char *name, const char *filename, const char *ctype)
{
    if (mp->nparts >= HTTP_MP_MAX_PARTS || !safe_token(name) || !safe_token(filename) ||
        !safe_token(ctype))
        return -1;
    size_t n = strlen(name) + (filename ? strlen(filename) : 0) + (ctype ? strlen(ctype) : 0) + 160;
    char *h = malloc(n);
    if (!h)
        return -1;
    int k = snprintf(h, n, "%s--%s\r\nContent-Disposition: form-data; name=\"%s\"%s%s%s\r\n",
                     mp->nparts ? "\r\n" : "", mp->boundary, name, filename ? "; filename=\"" : "",
                     filename ? filename : "", filename ? "\"" : "");
    if (ctype)
        k += snprintf(h + k, n - (size_t)k, "Content-Type: %s\r\n", ctype);
    k += snprintf(h + k, n - (size_t)k, "\r\n");
    mp->nparts++;
    return seg_mem(mp, h, (size_t)k);
}

int http_mp_add_data(http_multipart *mp, const char *name, const char *filename, const char *ctype,
                     const void *data, size_t len)
{
    if (part_head(mp, name, filename, ctype) < 0)
        return -1;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    return seg_mem(mp, copy, len);
}

int http_mp_add_file(http_multipart *mp, const char *name, const char *filename, const char *ctype,
                     const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || mp->nsegs + 1 >= MAX_SEGS ||
        part_head(mp, name, filename, ctype) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    mp->segs[mp->nsegs++] = (mp_seg){NULL, fd, mp->total, (uint64_t)st.st_size};
    mp->total += (uint64_t)st.st_size;
    return 0;
}

void http_mp_free(http_multipart *mp)
{
    if (!mp)
        return;
    for (int i = 0; i < mp->nsegs; i++) {
        free(mp->segs[i].mem);
        if (mp->segs[i].fd >= 0)
            close(mp->segs[i].fd);
    }
    free(mp);
}

static void mp_free_cb(void *cls) { http_mp_free(cls); }

/* libmicrohttpd's reader: up to max bytes of the body from offset pos. */
static ssize_t mp_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_multipart *mp = cls;
    if (pos >= mp->total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    int i = 0;
    while (i + 1 < mp->nsegs && mp->segs[i + 1].start <= pos)
        i++;
    const mp_seg *s = &mp->segs[i];
    uint64_t off = pos - s->start, left = s->len - off;
    size_t n = left < max ? (size_t)left : max;
    if (s->fd < 0) {
        memcpy(buf, s->mem + off, n);
        return (ssize_t)n;
    }
    ssize_t k;
    do
        k = pread(s->fd, buf, n, (off_t)off);
    while (k < 0 && errno == EINTR);
    return k > 0 ? k : MHD_CONTENT_READER_END_WITH_ERROR; /* a file that shrank: cut the answer */
}

int http_reply_multipart(http_req *r, int status, http_multipart *mp)
{
    char tail[80], ctype[100];
    snprintf(tail, sizeof tail, "\r\n--%s--\r\n", mp->boundary);
    char *t = strdup(tail);
    if (!t || seg_mem(mp, t, strlen(tail)) < 0) {
        http_mp_free(mp);
        http_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", mp->boundary);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(mp->total, 64 * 1024, mp_read, mp, mp_free_cb);
    if (!resp) {
        http_mp_free(mp);
        http_error(r, 500, "internal", NULL, "cannot create the response");
        return -1;
    }
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = status;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    return 0;
}
