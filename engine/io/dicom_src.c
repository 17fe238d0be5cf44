/* dicom_src.c: the files of a DICOM input into memory (see dicom_src.h).
 *
 * Archives are read with libarchive, entry by entry, never extracted to disk. What makes an
 * archive unsafe is refused before it is unpacked further: an entry name that climbs out of
 * the archive (an absolute path or a ".." component), more than DICOM_ZIP_MAX_ENTRIES entries
 * (empty ones count: 10^5 empty entries cost time and memory to list), more unpacked bytes
 * than the caller's limit, or an unpacking ratio past DICOM_ZIP_MAX_RATIO (a zip bomb). */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "dicom_src.h"

#define RATIO_FLOOR (64u << 20) /* the ratio check starts past this many unpacked bytes */

int dcm_fail(dicom_code *code, dicom_code c, char *err, size_t errlen, const char *fmt, ...)
{
    if (code)
        *code = c;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void dcm_entries_free(dcm_entries *x)
{
    for (int i = 0; i < x->n; i++)
        free(x->e[i].data);
    free(x->e);
    memset(x, 0, sizeof *x);
}

int dcm_is_zip(const unsigned char *b, size_t n)
{
    return n >= 4 && b[0] == 'P' && b[1] == 'K' &&
           ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6));
}

static dcm_entry *add_entry(dcm_entries *x, const char *name)
{
    if (x->n == x->cap) {
        int nc = x->cap ? 2 * x->cap : 64;
        dcm_entry *ne = realloc(x->e, (size_t)nc * sizeof *ne);
        if (!ne)
            return NULL;
        x->e = ne;
        x->cap = nc;
    }
    dcm_entry *e = &x->e[x->n++];
    memset(e, 0, sizeof *e);
    size_t l = strlen(name);
    snprintf(e->name, sizeof e->name, "%s",
             l < sizeof e->name ? name : name + l - (sizeof e->name - 1));
    return e;
}

/* An archive name that would land outside a folder it was extracted into. */
static int unsafe_name(const char *s)
{
    if (s[0] == '/' || s[0] == '\\' || (s[0] && s[1] == ':'))
        return 1;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

static int skip_name(const char *s)
{
    return !strncmp(s, "__MACOSX/", 9) || strstr(s, "/._") || !strncmp(s, "._", 2);
}

/* Unpacks one archive entry into e (at most budget bytes). */
static int read_entry(struct archive *a, dcm_entry *e, size_t budget, size_t *total, size_t packed,
                      dicom_code *code, char *err, size_t errlen)
{
    size_t cap = 0;
    unsigned char buf[65536];
    for (;;) {
        la_ssize_t k = archive_read_data(a, buf, sizeof buf);
        if (k < 0)
            return dcm_fail(code, DICOM_E_ARCHIVE, err, errlen,
                            "zip entry '%s' cannot be unpacked: %s", e->name,
                            archive_error_string(a) ? archive_error_string(a) : "corrupt data");
        if (k == 0)
            return 0;
        *total += (size_t)k;
        if (*total > budget)
            return dcm_fail(
                code, DICOM_E_ZIP_UNSAFE, err, errlen,
                "the zip unpacks to more than %zu MiB (the limit for this volume size): refused",
                budget >> 20);
        if (*total > RATIO_FLOOR &&
            (double)*total > DICOM_ZIP_MAX_RATIO * (double)(packed ? packed : 1))
            return dcm_fail(code, DICOM_E_ZIP_UNSAFE, err, errlen,
                            "the zip unpacks more than %.0f times its size (a zip bomb?): refused",
                            DICOM_ZIP_MAX_RATIO);
        if (e->size + (size_t)k > cap) {
            size_t nc = cap ? cap * 2 : 1 << 20;
            while (nc < e->size + (size_t)k)
                nc *= 2;
            unsigned char *nd = realloc(e->data, nc);
            if (!nd)
                return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "out of memory unpacking '%s'",
                                e->name);
            e->data = nd;
            cap = nc;
        }
        memcpy(e->data + e->size, buf, (size_t)k);
        e->size += (size_t)k;
    }
}

static int read_archive(struct archive *a, size_t packed, size_t max_bytes, dcm_entries *out,
                        dicom_code *code, char *err, size_t errlen)
{
    struct archive_entry *ae;
    size_t total = 0;
    int nentries = 0, r;
    out->is_archive = 1;
    while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(ae);
        if (!name)
            name = "";
        if (++nentries > DICOM_ZIP_MAX_ENTRIES)
            return dcm_fail(code, DICOM_E_ZIP_UNSAFE, err, errlen,
                            "the zip has more than %d entries: refused", DICOM_ZIP_MAX_ENTRIES);
        if (unsafe_name(name))
            return dcm_fail(code, DICOM_E_ZIP_UNSAFE, err, errlen,
                            "zip entry '%.100s' has an absolute path or a '..' component: refused",
                            name);
        if (archive_entry_filetype(ae) != AE_IFREG || skip_name(name) ||
            (archive_entry_size_is_set(ae) && archive_entry_size(ae) == 0)) {
            out->skipped++;
            continue;
        }
        dcm_entry *e = add_entry(out, name);
        if (!e)
            return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "out of memory");
        if (read_entry(a, e, max_bytes, &total, packed, code, err, errlen) < 0)
            return -1;
        if (e->size == 0) {
            out->n--;
            out->skipped++;
        }
    }
    if (r != ARCHIVE_EOF)
        return dcm_fail(code, DICOM_E_ARCHIVE, err, errlen, "the zip cannot be read: %s",
                        archive_error_string(a) ? archive_error_string(a)
                                                : "corrupt or truncated archive");
    return 0;
}

static struct archive *zip_reader(void)
{
    struct archive *a = archive_read_new();
    if (a)
        archive_read_support_format_zip(a);
    return a;
}

int dcm_collect_mem(const void *buf, size_t len, size_t max_bytes, dcm_entries *out,
                    dicom_code *code, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct archive *a = zip_reader();
    if (!a)
        return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "out of memory");
    int rc = archive_read_open_memory(a, buf, len) != ARCHIVE_OK
                 ? dcm_fail(code, DICOM_E_ARCHIVE, err, errlen, "not a readable zip archive")
                 : read_archive(a, len, max_bytes, out, code, err, errlen);
    archive_read_free(a);
    if (rc < 0)
        dcm_entries_free(out);
    return rc;
}

static int read_file(const char *path, const char *name, size_t max_bytes, size_t *total,
                     dcm_entries *out, dicom_code *code, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0) {
        if (f)
            fclose(f);
        return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "cannot open '%s': %s", name,
                        strerror(errno));
    }
    int rc = 0;
    if (st.st_size == 0) {
        out->skipped++;
    } else if ((size_t)st.st_size > max_bytes - *total) {
        rc = dcm_fail(code, DICOM_E_TOO_LARGE, err, errlen,
                      "the input is larger than %zu MiB: refused", max_bytes >> 20);
    } else {
        dcm_entry *e = add_entry(out, name);
        if (!e || !(e->data = malloc((size_t)st.st_size))) {
            rc = dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "out of memory");
        } else if (fread(e->data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            rc = dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "cannot read '%s'", name);
        } else {
            e->size = (size_t)st.st_size;
            *total += e->size;
        }
    }
    fclose(f);
    return rc;
}

/* Regular files of a folder and its subfolders (depth 4), in no particular order. */
static int read_dir(const char *dir, const char *rel, int depth, size_t max_bytes, size_t *total,
                    int *count, dcm_entries *out, dicom_code *code, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "cannot open the folder '%s': %s", rel,
                        strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (++*count > DICOM_ZIP_MAX_ENTRIES) {
            rc = dcm_fail(code, DICOM_E_ZIP_UNSAFE, err, errlen, "more than %d files: refused",
                          DICOM_ZIP_MAX_ENTRIES);
            break;
        }
        char p[4096], r[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        struct stat st;
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < 4)
            rc = read_dir(p, r, depth + 1, max_bytes, total, count, out, code, err, errlen);
        else if (S_ISREG(st.st_mode))
            rc = read_file(p, r, max_bytes, total, out, code, err, errlen);
    }
    closedir(d);
    return rc;
}

int dcm_collect(const char *path, size_t max_bytes, dcm_entries *out, dicom_code *code, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) < 0)
        return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "cannot open the input: %s",
                        strerror(errno));
    size_t total = 0;
    int rc, count = 0;
    if (S_ISDIR(st.st_mode)) {
        rc = read_dir(path, "", 0, max_bytes, &total, &count, out, code, err, errlen);
    } else {
        unsigned char magic[4] = {0};
        FILE *f = fopen(path, "rb");
        size_t got = f ? fread(magic, 1, 4, f) : 0;
        if (f)
            fclose(f);
        if (dcm_is_zip(magic, got)) {
            struct archive *a = zip_reader();
            if (!a)
                return dcm_fail(code, DICOM_E_INTERNAL, err, errlen, "out of memory");
            rc = archive_read_open_filename(a, path, 65536) != ARCHIVE_OK
                     ? dcm_fail(code, DICOM_E_ARCHIVE, err, errlen, "not a readable zip archive")
                     : read_archive(a, (size_t)st.st_size, max_bytes, out, code, err, errlen);
            archive_read_free(a);
        } else {
            rc = read_file(path, "input", max_bytes, &total, out, code, err, errlen);
        }
    }
    if (rc < 0)
        dcm_entries_free(out);
    return rc;
}
