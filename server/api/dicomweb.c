/* dicomweb.c: see dicomweb.h. */
#include "dicomweb.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

static void seterr(dw_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(dw_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

static void trim_slash(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = 0;
}

int dw_allowed(const char *list, const char *url, dw_pacs *p)
{
    char want[1024];
    if (!url || strlen(url) >= sizeof want)
        return 0;
    snprintf(want, sizeof want, "%s", url);
    trim_slash(want);
    for (const char *s = list; s && *s;) {
        size_t n = strcspn(s, ",");
        char e[2048];
        snprintf(e, sizeof e, "%.*s", (int)(n < sizeof e ? n : sizeof e - 1), s);
        s += n + (s[n] == ',');
        char *e0 = e + strspn(e, " \t"), *bar = strchr(e0, '|');
        if (bar)
            *bar++ = 0;
        for (size_t k = strlen(e0); k && (e0[k - 1] == ' ' || e0[k - 1] == '\t');)
            e0[--k] = 0;
        trim_slash(e0);
        if (!*e0 || strcmp(e0, want))
            continue;
        memset(p, 0, sizeof *p);
        snprintf(p->url, sizeof p->url, "%s", e0);
        if (bar && !strncmp(bar, "basic:", 6))
            snprintf(p->userpwd, sizeof p->userpwd, "%s", bar + 6);
        else if (bar && !strncmp(bar, "bearer:", 7))
            snprintf(p->bearer, sizeof p->bearer, "%s", bar + 7);
        return 1;
    }
    return 0;
}

int dw_uid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 64 && strspn(s, "0123456789.") == n;
}

typedef struct {
    char *p;
    size_t n, cap;
    long long max;
    int too_large;
    char ctype[512];
} dw_buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    dw_buf *b = ud;
    size_t k = size * nmemb;
    if ((long long)(b->n + k) > b->max) {
        b->too_large = 1;
        return 0; /* aborts the transfer */
    }
    if (b->n + k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1 << 20;
        while (nc < b->n + k + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return 0;
        b->p = np, b->cap = nc;
    }
    memcpy(b->p + b->n, ptr, k);
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    dw_buf *b = ud;
    size_t k = size * nmemb;
    if (k > 13 && !strncasecmp(ptr, "Content-Type:", 13)) {
        size_t n = k - 13 < sizeof b->ctype - 1 ? k - 13 : sizeof b->ctype - 1;
        memcpy(b->ctype, ptr + 13, n);
        b->ctype[n] = 0;
    }
    return k;
}

/* One request; the answer body in b. 0 when the PACS answered 2xx. */
static int perform(const dw_pacs *p, const char *url, const char *accept, const char *ctype,
                   const char *body, size_t len, dw_buf *b, dw_result *r)
{
    CURL *c = curl_easy_init();
    if (!c) {
        seterr(r, "libcurl could not start");
        return -1;
    }
    struct curl_slist *h = NULL;
    char line[1200];
    snprintf(line, sizeof line, "Accept: %s", accept);
    h = curl_slist_append(h, line);
    if (ctype) {
        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        h = curl_slist_append(h, line);
    }
    if (p->bearer[0]) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", p->bearer);
        h = curl_slist_append(h, line);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, p->timeout_s > 0 ? p->timeout_s : 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could leave the allowed root */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, b);
    if (p->userpwd[0]) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, p->userpwd);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->http_status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->too_large = b->too_large;
    if (b->too_large) {
        seterr(r, "the series is larger than %lld bytes (dicomweb-max-bytes)", p->max_bytes);
        return -1;
    }
    if (rc != CURLE_OK) {
        seterr(r, "the PACS did not answer: %s", curl_easy_strerror(rc));
        return -1;
    }
    if (r->http_status < 200 || r->http_status > 299) {
        seterr(r, "the PACS answered HTTP %ld", r->http_status);
        return -1;
    }
    return 0;
}

/* The boundary parameter of a multipart Content-Type, into out. */
static int boundary_of(const char *ctype, char *out, size_t outlen)
{
    const char *b = strcasestr(ctype, "boundary=");
    if (!b)
        return -1;
    b += 9;
    int q = *b == '"';
    b += q;
    size_t n = q ? strcspn(b, "\"") : strcspn(b, "; \r\n");
    if (n == 0 || n + 1 > outlen)
        return -1;
    memcpy(out, b, n);
    out[n] = 0;
    return 0;
}

/* Splits a multipart/related body and writes every part's content to dir. */
static int write_parts(const dw_buf *b, const char *dir, dw_result *r)
{
    char bd[300], delim[320];
    if (boundary_of(b->ctype, bd, sizeof bd) < 0) {
        seterr(r, "the PACS answer is not multipart (Content-Type:%.200s)", b->ctype);
        return -1;
    }
    size_t dl = (size_t)snprintf(delim, sizeof delim, "--%s", bd);
    const char *end = b->p + b->n, *s = memmem(b->p, b->n, delim, dl);
    int count = 0;
    while (s && s + dl + 2 <= end && strncmp(s + dl, "--", 2)) {
        const char *h = s + dl, *body = memmem(h, (size_t)(end - h), "\r\n\r\n", 4);
        if (!body)
            break;
        body += 4;
        const char *next = memmem(body, (size_t)(end - body), delim, dl);
        if (!next)
            break;
        size_t len = (size_t)(next - body);
        if (len >= 2 && next[-2] == '\r' && next[-1] == '\n')
            len -= 2;
        char path[1400];
        snprintf(path, sizeof path, "%s/%06d.dcm", dir, count);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(body, 1, len, f) != len) {
            if (f)
                fclose(f);
            seterr(r, "cannot write a retrieved instance to disk");
            return -1;
        }
        fclose(f);
        count++;
        s = next;
    }
    if (count == 0)
        seterr(r, "the PACS answered no instance");
    return count ? count : -1;
}

int dw_wado_series(const dw_pacs *p, const char *study, const char *series, const char *dir,
                   dw_result *r)
{
    memset(r, 0, sizeof *r);
    char url[1400];
    snprintf(url, sizeof url, "%s/studies/%s/series/%s", p->url, study, series);
    dw_buf b = {0};
    b.max = p->max_bytes > 0 ? p->max_bytes : (long long)1 << 30;
    int n = perform(p, url, "multipart/related; type=\"application/dicom\"", NULL, NULL, 0, &b, r);
    if (n == 0)
        n = b.p ? write_parts(&b, dir, r) : (seterr(r, "the PACS answered an empty body"), -1);
    if (n > 0) {
        unsigned char md[32];
        unsigned int ml = 0;
        EVP_Digest(b.p, b.n, md, &ml, EVP_sha256(), NULL);
        for (int i = 0; i < 32; i++)
            snprintf(r->sha256 + 2 * i, 3, "%02x", md[i]);
    }
    free(b.p);
    return n;
}

int dw_stow(const dw_pacs *p, const char *path, dw_result *r)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(r, "cannot read the SEG");
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    static const char bd[] = "mkdseg-stow-7f3a9c1e";
    char head[200], tail[64];
    int hl = snprintf(head, sizeof head, "--%s\r\nContent-Type: application/dicom\r\n\r\n", bd);
    int tl = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", bd);
    size_t len = (size_t)hl + (size_t)(sz > 0 ? sz : 0) + (size_t)tl;
    char *body = malloc(len);
    int rc = -1;
    if (body && sz > 0 && fread(body + hl, 1, (size_t)sz, f) == (size_t)sz) {
        memcpy(body, head, (size_t)hl);
        memcpy(body + hl + sz, tail, (size_t)tl);
        char ct[160];
        snprintf(ct, sizeof ct, "multipart/related; type=\"application/dicom\"; boundary=%s", bd);
        char url[1200];
        snprintf(url, sizeof url, "%s/studies", p->url);
        dw_buf b = {0};
        b.max = 16 << 20;
        rc = perform(p, url, "application/dicom+json", ct, body, len, &b, r);
        free(b.p);
    } else {
        seterr(r, "cannot read the SEG");
    }
    free(body);
    fclose(f);
    return rc;
}
