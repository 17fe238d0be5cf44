/* upload.c: see upload.h. */
#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "svc.h"

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
        if (f->path[0])
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
        if (f && off == 0 && f->size > 0)
            return MHD_NO; /* the same file field twice */
        if (!f && !(f = new_file(u, key, filename)))
            return MHD_NO;
        size_t done = 0;
        while (done < size) {
            ssize_t k = write(f->fd, data + done, size - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return MHD_NO;
            done += (size_t)k;
        }
        EVP_DigestUpdate(f->md, data, size);
        f->size += (long long)size;
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

static int is_multipart(http_req *r)
{
    const char *ct = http_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && !strncasecmp(ct, "multipart/form-data", 19);
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
    }
    if (MHD_post_process(u->pp, data, len) != MHD_YES) {
        http_error(r, 400, "malformed_multipart", NULL,
                   "the multipart body is malformed, repeats a field, has more than %d files or "
                   "%d fields, a field over %d bytes, or could not be written to disk",
                   UPLOAD_MAX_FILES, UPLOAD_MAX_FIELDS, UPLOAD_MAX_VALUE);
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
            http_error(r, 500, "internal", NULL, "cannot write the upload to disk");
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
