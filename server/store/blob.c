/* blob.c: see blob.h. */
#include "blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

struct blob_writer {
    char dir[1024]; /* data dir */
    char tmp[1200]; /* temporary file */
    int fd;
    long long size;
    EVP_MD_CTX *md;
};

static int mkdir_one(const char *path) { return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0; }

blob_writer *blob_begin(const char *data_dir, char *err, size_t errlen)
{
    blob_writer *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "blob: out of memory");
        return NULL;
    }
    w->fd = -1;
    if (strlen(data_dir) >= sizeof w->dir - 32) {
        snprintf(err, errlen, "blob: data dir path too long");
        goto fail;
    }
    snprintf(w->dir, sizeof w->dir, "%s", data_dir);
    char tdir[1100];
    snprintf(tdir, sizeof tdir, "%s/tmp", data_dir);
    if (mkdir_one(data_dir) < 0 || mkdir_one(tdir) < 0) {
        snprintf(err, errlen, "blob: cannot create %s: %s", tdir, strerror(errno));
        goto fail;
    }
    snprintf(w->tmp, sizeof w->tmp, "%s/upload.XXXXXX", tdir);
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, "blob: cannot create a file in %s: %s", tdir, strerror(errno));
        w->tmp[0] = 0;
        goto fail;
    }
    w->md = EVP_MD_CTX_new();
    if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        snprintf(err, errlen, "blob: cannot start SHA-256");
        goto fail;
    }
    return w;
fail:
    blob_abort(w);
    return NULL;
}

int blob_write(blob_writer *w, const void *data, size_t len, char *err, size_t errlen)
{
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(w->fd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, errlen, "blob: write failed: %s",
                     k < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        p += k;
        left -= (size_t)k;
    }
    EVP_DigestUpdate(w->md, data, len);
    w->size += (long long)len;
    return 0;
}

long long blob_size(const blob_writer *w) { return w->size; }

int blob_path(const char *data_dir, const char *sha256, char *out, size_t outlen)
{
    if (!sha256 || strlen(sha256) != 64)
        return -1;
    for (int i = 0; i < 64; i++)
        if (!((sha256[i] >= '0' && sha256[i] <= '9') || (sha256[i] >= 'a' && sha256[i] <= 'f')))
            return -1;
    int n = snprintf(out, outlen, "%s/blobs/%.2s/%s", data_dir, sha256, sha256);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int blob_commit(blob_writer *w, char sha256[65], char *relpath, size_t relpathlen, char *err,
                size_t errlen)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char final[1200], sub[1100];
    if (EVP_DigestFinal_ex(w->md, md, &mdlen) != 1 || mdlen != 32) {
        snprintf(err, errlen, "blob: SHA-256 failed");
        goto fail;
    }
    for (int i = 0; i < 32; i++)
        snprintf(sha256 + 2 * i, 3, "%02x", md[i]);
    sha256[64] = 0;
    if (fsync(w->fd) < 0 || close(w->fd) < 0) {
        w->fd = -1;
        snprintf(err, errlen, "blob: cannot flush: %s", strerror(errno));
        goto fail;
    }
    w->fd = -1;
    snprintf(sub, sizeof sub, "%s/blobs", w->dir);
    if (mkdir_one(sub) < 0) {
        snprintf(err, errlen, "blob: cannot create %s: %s", sub, strerror(errno));
        goto fail;
    }
    snprintf(sub, sizeof sub, "%s/blobs/%.2s", w->dir, sha256);
    if (mkdir_one(sub) < 0) {
        snprintf(err, errlen, "blob: cannot create %s: %s", sub, strerror(errno));
        goto fail;
    }
    blob_path(w->dir, sha256, final, sizeof final);
    /* link() refuses to replace: an existing blob with this digest is kept as it is, its
     * mtime refreshed so that the garbage collector (gc.h) leaves it to the row about to name
     * it; when the collector took it in between, the link is made again */
    int stored = 0;
    for (int tries = 0; !stored && tries < 3; tries++) {
        if (link(w->tmp, final) == 0)
            stored = 1;
        else if (errno != EEXIST)
            break;
        else if (blob_touch(final) == 0)
            stored = 1;
        else if (errno != ENOENT)
            break;
    }
    if (!stored) {
        snprintf(err, errlen, "blob: cannot store %s: %s", final, strerror(errno));
        goto fail;
    }
    unlink(w->tmp);
    w->tmp[0] = 0;
    if (relpath)
        snprintf(relpath, relpathlen, "blobs/%.2s/%s", sha256, sha256);
    blob_abort(w);
    return 0;
fail:
    blob_abort(w);
    return -1;
}

int blob_touch(const char *path) { return utimensat(AT_FDCWD, path, NULL, 0); }

void blob_abort(blob_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp[0])
        unlink(w->tmp);
    if (w->md)
        EVP_MD_CTX_free(w->md);
    free(w);
}

/* Whether s is 64 lowercase hex digits. */
static int is_digest(const char *s)
{
    int n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

int blob_verify(const char *path, char *err, size_t errlen)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    if (!is_digest(name))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "stored blob %.12s... is missing from the data folder (%s)", name,
                 strerror(errno));
        return -1;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    unsigned char buf[1 << 16];
    ssize_t k;
    while (rc == 0 && (k = read(fd, buf, sizeof buf)) != 0) {
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 || EVP_DigestUpdate(md, buf, (size_t)k) != 1)
            rc = -1;
    }
    close(fd);
    unsigned char d[32];
    unsigned int dl = 0;
    char hex[65] = "";
    if (rc == 0 && EVP_DigestFinal_ex(md, d, &dl) == 1)
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    EVP_MD_CTX_free(md);
    if (rc < 0 || !hex[0]) {
        snprintf(err, errlen, "stored blob %.12s... cannot be read", name);
        return -1;
    }
    if (strcmp(hex, name)) {
        snprintf(
            err, errlen,
            "stored blob %.12s... is corrupt: its content changed on disk (sha256 now %.12s...)",
            name, hex);
        return -1;
    }
    return 0;
}
