/* redact.c: server paths out of client-visible messages (see redact.h). */
#include "redact.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void redact_replace(char *msg, size_t cap, const char *path, const char *name)
{
    if (!msg || !cap || !path || !*path)
        return;
    if (!name)
        name = "";
    size_t pl = strlen(path), nl = strlen(name);
    char *out = malloc(cap);
    if (!out)
        return;
    size_t o = 0;
    for (const char *s = msg; *s && o + 1 < cap;) {
        if (!strncmp(s, path, pl)) {
            size_t k = nl < cap - 1 - o ? nl : cap - 1 - o;
            memcpy(out + o, name, k);
            o += k;
            s += pl;
        } else {
            out[o++] = *s++;
        }
    }
    out[o] = 0;
    memcpy(msg, out, o + 1);
    free(out);
}

/* Where a path may start (the character before it) and what ends one. */
static int starts_word(const char *msg, const char *s)
{
    return s == msg || strchr(" \t\n'\"(=[,:<", s[-1]) != NULL;
}
static int ends_path(char c) { return !c || strchr(" \t\n'\",;()[]<>:", c) != NULL; }

/* The length of the folder of dirs[] that msg's position s starts with (followed by '/'), else 0. */
static size_t dir_at(const char *s, const char *const *dirs, int n)
{
    for (int i = 0; i < n; i++) {
        const char *d = dirs[i];
        if (!d || !*d)
            continue;
        size_t dl = strlen(d);
        while (dl > 1 && d[dl - 1] == '/')
            dl--;
        if (!strncmp(s, d, dl) && s[dl] == '/')
            return dl;
    }
    return 0;
}

void redact_dirs(char *msg, size_t cap, const char *const *dirs, int n)
{
    if (!msg || !cap)
        return;
    char *out = malloc(cap);
    if (!out)
        return;
    size_t o = 0;
    for (const char *s = msg; *s && o + 1 < cap;) {
        if (starts_word(msg, s) && dir_at(s, dirs, n)) {
            const char *e = s, *last = s;
            while (!ends_path(*e)) {
                if (*e == '/')
                    last = e + 1;
                e++;
            }
            for (const char *c = last; c < e && o + 1 < cap; c++)
                out[o++] = *c;
            s = e;
        } else {
            out[o++] = *s++;
        }
    }
    out[o] = 0;
    memcpy(msg, out, o + 1);
    free(out);
}

int redact_server_paths(char *msg, size_t cap, const char *data_dir)
{
    if (!msg || !cap)
        return 0;
    char abs[PATH_MAX] = "";
    if (data_dir && *data_dir && !realpath(data_dir, abs))
        abs[0] = 0;
    const char *dirs[] = {abs, data_dir, getenv("TMPDIR"), "/tmp", "/var/tmp"};
    char *before = strdup(msg);
    redact_dirs(msg, cap, dirs, (int)(sizeof dirs / sizeof dirs[0]));
    int changed = before && strcmp(before, msg) != 0;
    free(before);
    return changed;
}

/* The length of the valid UTF-8 sequence at s, or 0. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n = c >= 0xc2 && c <= 0xdf   ? 2
            : c >= 0xe0 && c <= 0xef ? 3
            : c >= 0xf0 && c <= 0xf4 ? 4
                                     : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

int redact_utf8(char *s)
{
    int bad = 0;
    for (unsigned char *p = (unsigned char *)s; p && *p;) {
        int n = utf8_len(p);
        if (n) {
            p += n;
        } else {
            *p++ = '?';
            bad++;
        }
    }
    return bad;
}
