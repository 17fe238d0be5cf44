/* svc.c: see svc.h. */
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include "blob.h"
#include "db.h"
#include "infer.h"
#include "log.h"
#include "safetensors.h"
#include "sql.h"

static mkd_config g_cfg;

void svc_set_config(const mkd_config *c) { g_cfg = *c; }
const mkd_config *svc_config(void) { return &g_cfg; }

void svc_engine_threads(void)
{
    int n = g_cfg.engine_threads;
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    nn_set_threads(n > 0 ? n : 1);
}

void svc_abs(const char *data_dir, const char *relpath, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", data_dir, relpath);
}

int svc_nifti_sniff(const char *path, int *gz, char *why, size_t whylen)
{
    unsigned char b[552];
    memset(b, 0, sizeof b);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open the upload: %s", strerror(errno));
        return -1;
    }
    unsigned char m[2] = {0, 0};
    ssize_t k = read(fd, m, 2);
    close(fd);
    *gz = k == 2 && m[0] == 0x1f && m[1] == 0x8b;
    gzFile g = gzopen(path, "rb");
    if (!g) {
        snprintf(why, whylen, "cannot open the upload");
        return -1;
    }
    int n = gzread(g, b, sizeof b);
    gzclose(g);
    if (n < 0) {
        snprintf(why, whylen, "the gzip stream is corrupt");
        return 0;
    }
    if (n < 348) {
        snprintf(why, whylen, "not a NIfTI file: %d bytes%s, a NIfTI header has at least 348", n,
                 *gz ? " after gunzip" : "");
        return 0;
    }
    int32_t s1, s1s;
    memcpy(&s1, b, 4);
    s1s = (int32_t)__builtin_bswap32((uint32_t)s1);
    /* one uploaded file holds header and data: only the single-file magics will do. A pair's
     * header ("ni1", or ANALYZE 7.5, which nifticlib would otherwise read with a guessed data
     * offset) has its data in another file that an upload cannot bring along */
    int nifti1 = !memcmp(b + 344, "n+1", 4);
    int nifti2 = n >= 540 && !memcmp(b + 4, "n+2", 4);
    if (nifti1 || nifti2)
        return 1;
    if (!memcmp(b + 344, "ni1", 4) || (n >= 540 && !memcmp(b + 4, "ni2", 4)))
        snprintf(
            why, whylen,
            "the header of a .hdr/.img pair (magic ni1/ni2): upload a single-file .nii or .nii.gz");
    else if (s1 == 348 || s1s == 348 || s1 == 540 || s1s == 540)
        snprintf(
            why, whylen,
            "not a NIfTI file: its magic is neither 'n+1' nor 'ni1' (ANALYZE 7.5 is read only as a "
            ".hdr/.img pair, which cannot be uploaded as one file)");
    else
        snprintf(why, whylen,
                 "not a NIfTI file: no NIfTI-1/-2 magic and header size %d (expected 348 or 540)",
                 (int)s1);
    return 0;
}

int svc_sha256_file(const char *path, char hex[65], long long *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    char buf[65536];
    ssize_t k;
    long long n = 0;
    while ((k = read(fd, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(md, buf, (size_t)k);
        n += k;
    }
    close(fd);
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    if (k < 0)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (size)
        *size = n;
    return 0;
}

static int mkdir_one(const char *p) { return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0; }

int svc_blob_adopt(const char *data_dir, const char *tmp_path, const char *sha256, char *relpath,
                   size_t relpathlen, char *err, size_t errlen)
{
    char final[1400], sub[1300];
    if (blob_path(data_dir, sha256, final, sizeof final) < 0) {
        snprintf(err, errlen, "blob: bad digest");
        return -1;
    }
    snprintf(sub, sizeof sub, "%s/blobs", data_dir);
    mkdir_one(sub);
    snprintf(sub, sizeof sub, "%s/blobs/%.2s", data_dir, sha256);
    if (mkdir_one(sub) < 0) {
        snprintf(err, errlen, "blob: cannot create %s: %s", sub, strerror(errno));
        return -1;
    }
    /* stored once: the existing blob is kept, its mtime refreshed for the garbage collector
     * (blob_touch; gone meanwhile: this file takes its place) */
    if (blob_touch(final) == 0) {
        unlink(tmp_path);
    } else if (rename(tmp_path, final) < 0) {
        snprintf(err, errlen, "blob: cannot store %s: %s", final, strerror(errno));
        return -1;
    }
    snprintf(relpath, relpathlen, "blobs/%.2s/%s", sha256, sha256);
    return 0;
}

int svc_blob_copy(const char *data_dir, const char *src, char sha256[65], char *relpath,
                  size_t relpathlen, long long *size, char *err, size_t errlen)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", src, strerror(errno));
        return -1;
    }
    blob_writer *w = blob_begin(data_dir, err, errlen);
    if (!w) {
        close(fd);
        return -1;
    }
    char buf[65536];
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        if (blob_write(w, buf, (size_t)k, err, errlen) < 0)
            break;
    close(fd);
    if (k != 0) {
        if (k < 0)
            snprintf(err, errlen, "cannot read %s: %s", src, strerror(errno));
        blob_abort(w);
        return -1;
    }
    if (size)
        *size = blob_size(w);
    return blob_commit(w, sha256, relpath, relpathlen, err, errlen);
}

int svc_nifti_link(const char *data_dir, const char *relpath, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    char target[1400], tdir[1200];
    if (relpath[0] == '/')
        snprintf(target, sizeof target, "%s", relpath);
    else {
        char cwd[1024] = "";
        if (data_dir[0] != '/' && !getcwd(cwd, sizeof cwd))
            cwd[0] = 0;
        snprintf(target, sizeof target, "%s%s%s/%s", cwd, *cwd ? "/" : "", data_dir, relpath);
    }
    unsigned char m[2] = {0, 0};
    if (blob_verify(target, err, errlen) < 0)
        return -1;
    int fd = open(target, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "blob %s cannot be opened: %s", strrchr(target, '/') + 1,
                 strerror(errno));
        return -1;
    }
    ssize_t k = read(fd, m, 2);
    close(fd);
    int gz = k == 2 && m[0] == 0x1f && m[1] == 0x8b;
    snprintf(tdir, sizeof tdir, "%s/tmp", data_dir);
    mkdir_one(data_dir);
    mkdir_one(tdir);
    for (int tries = 0; tries < 100; tries++) {
        char name[1300];
        unsigned r = (unsigned)rand() ^ (unsigned)getpid() ^ (unsigned)(tries * 7919);
        snprintf(name, sizeof name, "%s/rd-%08x-%d.nii%s", tdir, r, tries, gz ? ".gz" : "");
        if (symlink(target, name) == 0) {
            snprintf(out, outlen, "%s", name);
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    snprintf(err, errlen, "cannot link %s: %s", target, strerror(errno));
    return -1;
}

json_t *svc_model_metadata(const char *path, char *err, size_t errlen)
{
    st_file *f = NULL;
    if (st_open(path, 0, &f, err, errlen) < 0)
        return NULL;
    json_t *o = json_object();
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *k, *v;
        if (st_meta_at(f, i, &k, &v) < 0)
            continue;
        json_t *j = !strcmp(k, "mkdseg.config") ? json_loads(v, 0, NULL) : NULL;
        json_object_set_new(o, k, j ? j : json_string(v));
    }
    st_close(f);
    return o;
}

int svc_register_default_model(const mkd_config *cfg)
{
    char err[1024];
    if (!cfg->default_model[0])
        return 0;
    PGconn *pg = db_connect(cfg->database_url, 5, err, sizeof err);
    if (!pg) {
        log_json(LOG_WARN, NULL, "default model not registered", json_pack("{s:s}", "error", err));
        return -1;
    }
    int rc = -1;
    json_t *meta = NULL;
    char *metas = NULL, *cfgs = NULL;
    PGresult *r = db_query(pg, &sql_models_count, NULL, err, sizeof err);
    if (!r)
        goto fail;
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (n > 0) {
        rc = 0;
        goto done;
    }
    if (access(cfg->default_model, R_OK) < 0) {
        snprintf(err, sizeof err, "%s: %s (make default-model writes it)", cfg->default_model,
                 strerror(errno));
        goto fail;
    }
    infer_model *m = infer_model_load(cfg->default_model, nn_backend_cpu(), err, sizeof err);
    if (!m)
        goto fail;
    char method[32];
    snprintf(method, sizeof method, "%s", m->method);
    infer_model_free(m);
    if (!(meta = svc_model_metadata(cfg->default_model, err, sizeof err)))
        goto fail;
    char sha[65], rel[256], size[32];
    long long sz = 0;
    if (svc_blob_copy(cfg->data_dir, cfg->default_model, sha, rel, sizeof rel, &sz, err,
                      sizeof err) < 0)
        goto fail;
    snprintf(size, sizeof size, "%lld", sz);
    metas = json_dumps(meta, JSON_COMPACT);
    json_t *c = json_object_get(meta, "mkdseg.config");
    cfgs = json_is_object(c) ? json_dumps(c, JSON_COMPACT) : strdup("{}");
    const char *modality = svc_meta_modality(meta);
    const char *v[7] = {method, modality, cfgs, metas, sha, rel, size};
    r = db_query(pg, &sql_models_insert_default, v, err, sizeof err);
    if (!r)
        goto fail;
    rc = PQntuples(r) == 1;
    if (rc)
        log_json(LOG_INFO, NULL, "default model registered and promoted",
                 json_pack("{s:s,s:s,s:s}", "model", PQgetvalue(r, 0, 0), "file",
                           cfg->default_model, "sha256", sha));
    PQclear(r);
    goto done;
fail:
    log_json(LOG_WARN, NULL, "default model not registered: /segment needs a promoted model",
             json_pack("{s:s}", "error", err));
done:
    json_decref(meta);
    free(metas);
    free(cfgs);
    PQfinish(pg);
    return rc;
}

const char *svc_meta_modality(const json_t *meta)
{
    prep_modality m;
    if (prep_modality_parse(json_string_value(json_object_get(meta, "mkdseg.modality")), &m) < 0)
        return NULL;
    return prep_modality_name(m);
}

const nn_backend *svc_backend(void)
{
    static const nn_backend *be;
    if (!be) {
        be = nn_backend_from_env(NULL, 0);
        if (!be)
            be = nn_backend_cpu(); /* serve and worker refuse to start in this case */
    }
    return be;
}
