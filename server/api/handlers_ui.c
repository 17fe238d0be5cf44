/* handlers_ui.c: the dashboard's static files (GET /, /ui/{file}, /ui/vendor/{file}) from the
 * folder `ui-dir` (default server/api/ui; vendor/ is filled by `make` from npm ci).
 *
 * - Names are one path segment of [A-Za-z0-9._-], not starting with a dot, and the resolved
 *   file must be a regular file inside ui-dir (realpath): no traversal, no dot files, no
 *   symlinks out of the folder.
 * - ETag = the first 128 bits of the content's SHA-256; If-None-Match answers 304. Our own files
 *   are `no-cache` (revalidated on every load, so an edit shows at once); vendor files carry
 *   their version in their names and are cached for a year as immutable.
 * - gzip when the client accepts it and the type is text (kept compressed in memory).
 * - Every answer carries a strict Content-Security-Policy (no inline script or style, no eval,
 *   connections and workers to this origin only), nosniff and no referrer.
 * Files are cached in memory by (path, size, mtime): a changed file is read again. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "handlers.h"
#include "api_ui.h"
#include "api_util.h"

#define UI_CACHE 64
#define UI_MAX_FILE (32LL << 20)

const char ui_csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

typedef struct {
    char path[PATH_MAX];
    off_t size;
    struct timespec mtime;
    unsigned char *data, *gz;
    size_t len, gzlen;
    char etag[40];
    unsigned long long used;
} ui_entry;

static ui_entry cache[UI_CACHE];
static unsigned long long use_clock;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static const struct {
    const char *ext, *type;
    int text;
} ui_types[] = {
    {".html", "text/html; charset=utf-8", 1},
    {".js", "text/javascript; charset=utf-8", 1},
    {".mjs", "text/javascript; charset=utf-8", 1},
    {".css", "text/css; charset=utf-8", 1},
    {".json", "application/json", 1},
    {".map", "application/json", 1},
    {".svg", "image/svg+xml", 1},
    {".txt", "text/plain; charset=utf-8", 1},
    {".png", "image/png", 0},
    {".ico", "image/x-icon", 0},
    {".woff2", "font/woff2", 0},
};

int ui_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

const char *ui_content_type(const char *name, int *text)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ui_types / sizeof ui_types[0]; i++) {
        size_t e = strlen(ui_types[i].ext);
        if (n > e && !strcmp(name + n - e, ui_types[i].ext)) {
            if (text)
                *text = ui_types[i].text;
            return ui_types[i].type;
        }
    }
    return NULL;
}

/* gzip of data into a new buffer (*out, *outlen); 0 / -1. */
static int gzip_buf(const unsigned char *data, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)len);
    unsigned char *b = malloc(cap);
    if (!b) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (unsigned char *)data, z.avail_in = (uInt)len;
    z.next_out = b, z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *outlen = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

/* Reads path into e (content, ETag, gzip copy for text). 0 / -1. */
static int load_entry(ui_entry *e, const char *path, const struct stat *st, int text)
{
    FILE *f = fopen(path, "rb");
    unsigned char *d = malloc((size_t)st->st_size + 1);
    if (!f || !d || fread(d, 1, (size_t)st->st_size, f) != (size_t)st->st_size) {
        if (f)
            fclose(f);
        free(d);
        return -1;
    }
    fclose(f);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(d, (size_t)st->st_size, md, &mdlen, EVP_sha256(), NULL);
    free(e->data), free(e->gz);
    memset(e, 0, sizeof *e);
    e->data = d, e->len = (size_t)st->st_size;
    e->etag[0] = '"';
    for (int i = 0; i < 16; i++)
        snprintf(e->etag + 1 + 2 * i, 3, "%02x", md[i]);
    strcat(e->etag, "\"");
    if (text && e->len > 256 && gzip_buf(d, e->len, &e->gz, &e->gzlen) == 0 && e->gzlen >= e->len) {
        free(e->gz);
        e->gz = NULL;
    }
    snprintf(e->path, sizeof e->path, "%s", path);
    e->size = st->st_size, e->mtime = st->st_mtim;
    return 0;
}

/* The cache entry for path (loaded or refreshed as needed), or NULL. Call with cache_mu held. */
static ui_entry *get_entry(const char *path, const struct stat *st, int text)
{
    ui_entry *hit = NULL, *victim = &cache[0];
    for (int i = 0; i < UI_CACHE; i++) {
        if (cache[i].data && !strcmp(cache[i].path, path)) {
            hit = &cache[i];
            break;
        }
        if (!cache[i].data || cache[i].used < victim->used)
            victim = &cache[i];
    }
    ui_entry *e = hit ? hit : victim;
    if (!hit || e->size != st->st_size || e->mtime.tv_sec != st->st_mtim.tv_sec ||
        e->mtime.tv_nsec != st->st_mtim.tv_nsec) {
        if (load_entry(e, path, st, text) < 0)
            return NULL;
    }
    e->used = ++use_clock;
    return e;
}

/* Whether the request's Accept-Encoding allows gzip (and does not refuse it with q=0). */
static int accepts_gzip(http_req *r)
{
    const char *a = http_get_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    const char *g = a ? strstr(a, "gzip") : NULL;
    if (!g)
        return 0;
    const char *q = g + 4;
    while (*q == ' ')
        q++;
    if (*q == ';') {
        q++;
        while (*q == ' ')
            q++;
        if (!strncmp(q, "q=", 2) && strtod(q + 2, NULL) == 0)
            return 0;
    }
    return 1;
}

static void not_found(http_req *r, const char *name)
{
    http_error(r, 404, "not_found", NULL, "no dashboard file '%.100s'", name);
    http_header(r, "Content-Security-Policy", ui_csp);
}

/* Answers the file `name` of sub-folder `sub` ("" or "vendor") of ui-dir. */
static void serve(http_req *r, const char *sub, const char *name)
{
    const char *dir = r->app->cfg.ui_dir;
    int text = 0;
    const char *ctype = ui_name_ok(name) ? ui_content_type(name, &text) : NULL;
    char root[PATH_MAX], want[PATH_MAX * 2], real[PATH_MAX];
    struct stat st;
    if (!*dir || !ctype || !realpath(dir, root)) {
        not_found(r, name);
        return;
    }
    snprintf(want, sizeof want, "%s/%s%s%s", root, sub, *sub ? "/" : "", name);
    size_t rl = strlen(root);
    if (!realpath(want, real) || strncmp(real, root, rl) || real[rl] != '/' ||
        stat(real, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > UI_MAX_FILE) {
        not_found(r, name);
        return;
    }
    pthread_mutex_lock(&cache_mu);
    ui_entry *e = get_entry(real, &st, text);
    if (!e) {
        pthread_mutex_unlock(&cache_mu);
        http_error(r, 500, "internal", NULL, "cannot read dashboard file '%s'", name);
        return;
    }
    const char *inm = http_get_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    int fresh = inm && strstr(inm, e->etag) != NULL, gz = e->gz && accepts_gzip(r);
    if (fresh)
        http_reply_data(r, 304, NULL, "", 0);
    else
        http_reply_data(r, 200, ctype, gz ? e->gz : e->data, gz ? e->gzlen : e->len);
    char etag[40];
    snprintf(etag, sizeof etag, "%s", e->etag);
    pthread_mutex_unlock(&cache_mu);
    http_header(r, MHD_HTTP_HEADER_ETAG, etag);
    if (gz && !fresh)
        http_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (text)
        http_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    http_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                *sub ? "public, max-age=31536000, immutable" : "no-cache");
    http_header(r, "Content-Security-Policy", ui_csp);
    http_header(r, "X-Content-Type-Options", "nosniff");
    http_header(r, "Referrer-Policy", "no-referrer");
}

void h_ui_index(http_req *r) { serve(r, "", "index.html"); }
void h_ui_file(http_req *r) { serve(r, "", r->params[0]); }
void h_ui_vendor(http_req *r) { serve(r, "vendor", r->params[0]); }
