/* tspec.c: see tspec.h. */
#include "tspec.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The `security:` value of an operation into out (see tspec.h). */
static void security_value(const char *v, char *out, size_t cap)
{
    while (*v == ' ')
        v++;
    if (!strcmp(v, "[]")) {
        snprintf(out, cap, "public");
        return;
    }
    const char *b = strstr(v, "bearer: [");
    if (!b) {
        snprintf(out, cap, "?%s", v);
        return;
    }
    b += 9;
    size_t n = strcspn(b, "]");
    snprintf(out, cap, "%.*s", (int)n, b);
}

int tspec_scope(const char *method, const char *path, char *out, size_t cap)
{
    FILE *f = fopen("api/openapi.yaml", "r");
    if (!f)
        return -1;
    char line[1024], cur[256] = "", meth[16] = "";
    int in_paths = 0, found = 0;
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        int ind = (int)strspn(line, " ");
        const char *t = line + ind;
        size_t len = strlen(t);
        if (!len || *t == '#')
            continue;
        if (ind == 0) {
            in_paths = !strcmp(t, "paths:");
            continue;
        }
        if (!in_paths)
            continue;
        if (ind == 2 && t[0] == '/' && t[len - 1] == ':') {
            snprintf(cur, sizeof cur, "%.*s", (int)(len - 1), t);
            meth[0] = 0;
        } else if (ind == 4 && t[len - 1] == ':' && len < sizeof meth) {
            for (size_t i = 0; i + 1 < len; i++)
                meth[i] = (char)toupper((unsigned char)t[i]);
            meth[len - 1] = 0;
            found |= !strcmp(meth, method) && !strcmp(cur, path);
        } else if (ind == 6 && !strncmp(t, "security:", 9) && !strcmp(meth, method) &&
                   !strcmp(cur, path)) {
            security_value(t + 9, out, cap);
        }
    }
    fclose(f);
    return found ? 0 : -1;
}
