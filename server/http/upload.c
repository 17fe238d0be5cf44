/* upload.c: see upload.h. */
#include "upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "redact.h"
#include "svc.h"

/* Removes a folder of parts (flat: files only). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[1500];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void upload_free(http_req *r)
{
    upload *u = r->user;
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    for (int i = 0; i < u->nfiles; i++) {
        upload_file *f = &u->files[i];
        if (f->fd >= 0)
            close(f->fd);
        if (f->path[0] && f->is_dir)
            remove_dir(f->path);
        else if (f->path[0])
            unlink(f->path); /* partial or unclaimed */
        if (f->md)
            EVP_MD_CTX_free(f->md);
    }
    free(u);
    r->user = NULL;
    r->user_free = NULL;
}

static upload_file *new_file(upload *u, const char *key, const char *filename)
{
    if (u->nfiles >= UPLOAD_MAX_FILES)
        return NULL;
    const mkd_config *c = svc_config();
    upload_file *f = &u->files[u->nfiles];
    memset(f, 0, sizeof *f);
    f->fd = -1;
    snprintf(f->field, sizeof f->field, "%s", key);
    snprintf(f->filename, sizeof f->filename, "%s", filename ? filename : "");
    redact_utf8(f->filename); /* it is stored in text columns and quoted in JSON */
    char tdir[1100];
    snprintf(tdir, sizeof tdir, "%s/tmp", c->data_dir);
    mkdir(c->data_dir, 0755);
    mkdir(tdir, 0755);
    snprintf(f->path, sizeof f->path, "%s/part-XXXXXX", tdir);
    f->fd = mkostemp(f->path, O_CLOEXEC);
    if (f->fd < 0) {
        f->path[0] = 0;
        return NULL;
    }
    f->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(f->md, EVP_sha256(), NULL);
    u->nfiles++;
    return f;
}

/* Turns field f into a folder of parts on its second part (the first part's file moves into
 * it), and opens the file of the next part. 0 / -1. */
static int next_part(upload_file *f)
{
    if (f->nparts >= UPLOAD_MAX_PARTS)
        return -1;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    char p[1300];
    if (!f->is_dir) {
        char dir[1200], first[1300];
        snprintf(dir, sizeof dir, "%.1190s.d", f->path);
        snprintf(first, sizeof first, "%s/000000", dir);
        if (mkdir(dir, 0700) < 0 || rename(f->path, first) < 0)
            return -1;
        snprintf(f->path, sizeof f->path, "%s", dir);
        f->is_dir = 1;
    }
    snprintf(p, sizeof p, "%s/%06d", f->path, f->nparts);
    f->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f->fd < 0)
        return -1;
    f->nparts++;
    f->part_size = 0;
    return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    (void)kind, (void)content_type, (void)transfer_encoding;
    upload *u = cls;
    if (!key)
        return MHD_YES;
    if (filename) {
        upload_file *f = NULL;
        for (int i = 0; i < u->nfiles; i++)
            if (!strcmp(u->files[i].field, key))
                f = &u->files[i];
        if (f && off == 0 && f->part_size > 0 && next_part(f) < 0)
            return MHD_NO; /* another file under the same field: a folder of parts */
        if (!f && !(f = new_file(u, key, filename))) {
            u->disk_errno = u->nfiles < UPLOAD_MAX_FILES ? errno : 0;
            return MHD_NO;
        }
        if (off == 0 && f->nparts == 0)
            f->nparts = 1;
        size_t done = 0;
        while (done < size) {
            ssize_t k = write(f->fd, data + done, size - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                u->disk_errno = k < 0 ? errno : EIO;
                return MHD_NO;
            }
            done += (size_t)k;
        }
        EVP_DigestUpdate(f->md, data, size);
        f->size += (long long)size;
        f->part_size += (long long)size;
        return MHD_YES;
    }
    int i = 0;
    for (; i < u->nfields; i++)
        if (!strcmp(u->fields[i].name, key))
            break;
    if (i == u->nfields) {
        if (u->nfields >= UPLOAD_MAX_FIELDS)
            return MHD_NO;
        snprintf(u->fields[i].name, sizeof u->fields[i].name, "%s", key);
        u->fields[i].len = 0;
        u->fields[i].value[0] = 0;
        u->nfields++;
    }
    if (u->fields[i].len + size > UPLOAD_MAX_VALUE)
        return MHD_NO;
    memcpy(u->fields[i].value + u->fields[i].len, data, size);
    u->fields[i].len += size;
    u->fields[i].value[u->fields[i].len] = 0;
    return MHD_YES;
}

/* Sets u->close_delim from the request's boundary parameter (quoted or not). */
static void set_close_delim(http_req *r, upload *u)
{
    const char *ct = http_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *b = ct ? strcasestr(ct, "boundary=") : NULL;
    if (!b)
        return;
    b += 9;
    int quoted = *b == '"';
    b += quoted;
    size_t n = strcspn(b, quoted ? "\"" : "; \t");
    if (n == 0 || n > 70) /* RFC 2046: 1-70 characters */
        return;
    u->close_len =
        (size_t)snprintf(u->close_delim, sizeof u->close_delim, "\r\n--%.*s--", (int)n, b);
}

/* How many bytes of data to pass to the parser: all, or up to the end of the closing delimiter
 * (then u->closed is set). Keeps the tail for a delimiter split across chunks. */
static size_t until_close(upload *u, const char *data, size_t len)
{
    size_t dl = u->close_len, keep = dl - 1, end = len;
    char win[2 * sizeof u->tail];
    size_t head = len < keep ? len : keep;
    memcpy(win, u->tail, u->tail_len);
    memcpy(win + u->tail_len, data, head);
    const char *m = memmem(win, u->tail_len + head, u->close_delim, dl);
    if (m)
        end = (size_t)(m - win) + dl - u->tail_len;
    else if ((m = memmem(data, len, u->close_delim, dl)))
        end = (size_t)(m - data) + dl;
    if (m) {
        u->closed = 1;
        return end;
    }
    /* the new tail: the last `keep` bytes of tail + data */
    size_t total = u->tail_len + len, t = total < keep ? total : keep;
    if (len >= t)
        memcpy(u->tail, data + len - t, t);
    else {
        memmove(u->tail, u->tail + u->tail_len - (t - len), t - len);
        memcpy(u->tail + (t - len), data, len);
    }
    u->tail_len = t;
    return len;
}

static int is_multipart(http_req *r)
{
    const char *ct = http_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && !strncasecmp(ct, "multipart/form-data", 19);
}

/* Answers a failed write of an upload: 507 when the data folder is full (the client may retry
 * once space is freed), else 500. Returns -1. The partial files go with the request. */
static int disk_error(http_req *r, int e)
{
    if (e == ENOSPC || e == EDQUOT) {
        http_error(r, 507, "insufficient_storage", NULL,
                   "the server's data folder is full; the upload was discarded, retry later");
        http_header(r, "Retry-After", "60");
    } else {
        http_error(r, 500, "internal", NULL, "cannot write the upload to disk: %s", strerror(e));
    }
    return -1;
}

int upload_on_body(http_req *r, const char *data, size_t len)
{
    upload *u = r->user;
    if (!u) {
        if (!is_multipart(r)) {
            http_error(r, 415, "unsupported_media_type", NULL,
                       "%s %s expects a multipart/form-data upload (curl -F field=@file)",
                       r->method, r->route->pattern);
            return -1;
        }
        u = calloc(1, sizeof *u);
        if (!u) {
            http_error(r, 500, "internal", NULL, "out of memory");
            return -1;
        }
        r->user = u;
        r->user_free = upload_free;
        u->pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part, u);
        if (!u->pp) {
            http_error(r, 400, "malformed_multipart", NULL,
                       "cannot parse the multipart/form-data request (no boundary?)");
            return -1;
        }
        set_close_delim(r, u);
    }
    if (u->closed)
        return 0; /* the epilogue */
    if (u->close_len)
        len = until_close(u, data, len);
    if (MHD_post_process(u->pp, data, len) != MHD_YES) {
        if (u->disk_errno)
            return disk_error(r, u->disk_errno);
        http_error(
            r, 400, "malformed_multipart", NULL,
            "the multipart body is malformed, has more than %d file fields, %d parts under one "
            "field or %d fields, a field over %d bytes, or could not be written to disk",
            UPLOAD_MAX_FILES, UPLOAD_MAX_PARTS, UPLOAD_MAX_FIELDS, UPLOAD_MAX_VALUE);
        return -1;
    }
    return 0;
}

upload *upload_finish(http_req *r)
{
    upload *u = r->user;
    if (!u) {
        if (!is_multipart(r))
            http_error(r, 415, "unsupported_media_type", NULL,
                       "%s %s expects a multipart/form-data upload (curl -F field=@file)",
                       r->method, r->route->pattern);
        else
            http_error(r, 400, "missing_body", NULL, "the multipart/form-data body is empty");
        return NULL;
    }
    if (u->finished)
        return u;
    if (u->pp) {
        MHD_destroy_post_processor(u->pp);
        u->pp = NULL;
    }
    for (int i = 0; i < u->nfiles; i++) {
        upload_file *f = &u->files[i];
        if (f->fd >= 0 && close(f->fd) < 0) {
            f->fd = -1;
            disk_error(r, errno);
            return NULL;
        }
        f->fd = -1;
        unsigned char d[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(f->md, d, &dl);
        for (int k = 0; k < 32; k++)
            snprintf(f->sha256 + 2 * k, 3, "%02x", d[k]);
    }
    u->finished = 1;
    return u;
}

upload_file *upload_get_file(upload *u, const char *name)
{
    for (int i = 0; u && i < u->nfiles; i++)
        if (!strcmp(u->files[i].field, name))
            return &u->files[i];
    return NULL;
}

const char *upload_get_field(upload *u, const char *name)
{
    for (int i = 0; u && i < u->nfields; i++)
        if (!strcmp(u->fields[i].name, name))
            return u->fields[i].value;
    return NULL;
}

void upload_redact(const http_req *r, char *msg, size_t cap)
{
    if (!r || r->user_free != upload_free || !r->user)
        return;
    const upload *u = r->user;
    for (int i = 0; i < u->nfiles; i++) {
        const upload_file *f = &u->files[i];
        redact_replace(msg, cap, f->path, f->filename[0] ? f->filename : f->field);
    }
}

void upload_discard(upload_file *f)
{
    if (f->path[0] && f->is_dir)
        remove_dir(f->path);
    else if (f->path[0])
        unlink(f->path);
    f->path[0] = 0;
    f->is_dir = 0;
}
