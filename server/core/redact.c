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
