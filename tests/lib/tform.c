/* tform.c: see tform.h. */
#include "tform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

int tform_post(const tsrv *s, const char *path, const char *const *parts,
               const char *const *headers, tresp *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    curl_mime *m = curl_mime_init(c);
    for (int i = 0; parts && parts[i]; i++) {
        const char *eq = strchr(parts[i], '=');
        if (!eq)
            continue;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - parts[i]), parts[i]);
        curl_mimepart *p = curl_mime_addpart(m);
        curl_mime_name(p, name);
        if (eq[1] == '@')
            curl_mime_filedata(p, eq + 2);
        else
            curl_mime_data(p, eq + 1, CURL_ZERO_TERMINATED);
    }
    struct curl_slist *hl = NULL;
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    tbuf b = {0}, h = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tbuf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, tbuf_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_mime_free(m);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    out->body = b.p ? b.p : calloc(1, 1);
    out->len = b.n;
    out->headers = h.p ? h.p : calloc(1, 1);
    out->json = out->len ? json_loadb(out->body, out->len, 0, NULL) : NULL;
    return rc == CURLE_OK ? 0 : -1;
}
