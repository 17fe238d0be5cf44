/* test_http_openapi.c: api/openapi.yaml and the routing table (server/api/routes.c) agree:
 * every route is in the spec (and not marked planned), and every operation of the spec not
 * marked `x-mkdseg-status: planned` is a route. Also: every $ref resolves.
 * The YAML is read simply: under `paths:`, a path at indent 2 ("  /x:"), a method at indent 4
 * ("    get:"), and `x-mkdseg-status:` at indent 6 inside the operation. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "http.h"

typedef struct {
    char method[8];
    char path[128];
    int planned;
} spec_op;

static spec_op ops[128];
static int nops;
static char *spec;

static int indent_of(const char *line)
{
    int n = 0;
    while (line[n] == ' ')
        n++;
    return n;
}

static void load_spec(void)
{
    FILE *f = fopen("api/openapi.yaml", "r");
    cr_assert(f, "api/openapi.yaml not found: run the tests from the repository root");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    spec = malloc((size_t)n + 1);
    cr_assert_eq(fread(spec, 1, (size_t)n, f), (size_t)n);
    spec[n] = 0;
    fclose(f);

    char *copy = strdup(spec), *save = NULL;
    int in_paths = 0;
    char cur_path[128] = "";
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int ind = indent_of(line);
        const char *t = line + ind;
        if (!*t || *t == '#')
            continue;
        if (ind == 0) {
            in_paths = !strcmp(t, "paths:");
            continue;
        }
        if (!in_paths)
            continue;
        size_t len = strlen(t);
        if (ind == 2 && t[0] == '/' && t[len - 1] == ':') {
            snprintf(cur_path, sizeof cur_path, "%.*s", (int)(len - 1), t);
        } else if (ind == 4 && t[len - 1] == ':' && len < 10) {
            cr_assert_lt(nops, 128);
            spec_op *o = &ops[nops++];
            for (size_t i = 0; i + 1 < len && i < sizeof o->method - 1; i++)
                o->method[i] = (char)toupper((unsigned char)t[i]);
            snprintf(o->path, sizeof o->path, "%s", cur_path);
            o->planned = 0;
        } else if (ind == 6 && nops && !strncmp(t, "x-mkdseg-status:", 16)) {
            const char *v = t + 16;
            while (*v == ' ')
                v++;
            ops[nops - 1].planned = !strcmp(v, "planned");
        }
    }
    free(copy);
}

static void free_spec(void)
{
    free(spec);
    spec = NULL;
    nops = 0;
}

TestSuite(http_openapi, .init = load_spec, .fini = free_spec);

Test(http_openapi, spec_has_operations)
{
    cr_assert_geq(nops, 20, "the spec lists the service's operations (found %d)", nops);
    static const char *const methods[] = {"GET",    "POST", "PUT",    "PATCH",
                                          "DELETE", "HEAD", "OPTIONS"};
    for (int i = 0; i < nops; i++) {
        int ok = 0;
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
            ok |= !strcmp(ops[i].method, methods[m]);
        cr_assert(ok, "unexpected key '%s' under %s", ops[i].method, ops[i].path);
    }
}

Test(http_openapi, every_route_is_in_the_spec)
{
    for (int r = 0; r < http_nroutes; r++) {
        int found = 0;
        for (int i = 0; i < nops; i++)
            if (!strcmp(ops[i].method, http_routes[r].method) &&
                !strcmp(ops[i].path, http_routes[r].pattern)) {
                found = 1;
                cr_assert(!ops[i].planned, "%s %s is built but marked planned in the spec",
                          http_routes[r].method, http_routes[r].pattern);
            }
        cr_assert(found, "route %s %s is missing from api/openapi.yaml", http_routes[r].method,
                  http_routes[r].pattern);
    }
}

Test(http_openapi, every_built_operation_is_a_route)
{
    for (int i = 0; i < nops; i++) {
        if (ops[i].planned)
            continue;
        int found = 0;
        for (int r = 0; r < http_nroutes; r++)
            found |= !strcmp(ops[i].method, http_routes[r].method) &&
                     !strcmp(ops[i].path, http_routes[r].pattern);
        cr_assert(found, "%s %s is in the spec (not planned) but not in server/api/routes.c",
                  ops[i].method, ops[i].path);
    }
}

Test(http_openapi, issue_routes_are_specified)
{
    /* the endpoints the issues name must all be in the contract, built or planned */
    static const char *const want[][2] = {{"POST", "/segment"},
                                          {"GET", "/inferences/{id}/mask"},
                                          {"POST", "/datasets"},
                                          {"POST", "/datasets/{id}/volumes"},
                                          {"GET", "/datasets"},
                                          {"GET", "/datasets/{id}"},
                                          {"DELETE", "/datasets/{id}"},
                                          {"POST", "/train"},
                                          {"GET", "/jobs"},
                                          {"GET", "/jobs/{id}"},
                                          {"GET", "/jobs/{id}/events"},
                                          {"DELETE", "/jobs/{id}"},
                                          {"GET", "/models"},
                                          {"GET", "/models/{id}"},
                                          {"GET", "/models/{id}/weights"},
                                          {"POST", "/models"},
                                          {"POST", "/models/{id}/promote"},
                                          {"POST", "/models/{id}/evaluate"},
                                          {"GET", "/dice"},
                                          {"GET", "/healthz"},
                                          {"GET", "/readyz"},
                                          {"GET", "/metrics"},
                                          {"GET", "/version"}};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (int i = 0; i < nops; i++)
            found |= !strcmp(ops[i].method, want[w][0]) && !strcmp(ops[i].path, want[w][1]);
        cr_assert(found, "%s %s missing from the spec", want[w][0], want[w][1]);
    }
}

Test(http_openapi, refs_resolve)
{
    /* "#/components/<section>/<name>" must have "  <section>:" then "    <name>:" under it */
    const char *p = spec;
    int nrefs = 0;
    while ((p = strstr(p, "#/components/"))) {
        p += strlen("#/components/");
        char section[64] = "", name[64] = "";
        int k = 0;
        while (*p && *p != '/' && k < 63)
            section[k++] = *p++;
        section[k] = 0;
        if (*p == '/')
            p++;
        k = 0;
        while (*p && (isalnum((unsigned char)*p) || *p == '_') && k < 63)
            name[k++] = *p++;
        name[k] = 0;
        char sec_line[80], name_line[80];
        snprintf(sec_line, sizeof sec_line, "\n  %s:\n", section);
        snprintf(name_line, sizeof name_line, "\n    %s:", name);
        const char *comp = strstr(spec, "\ncomponents:\n");
        cr_assert(comp, "no components section");
        const char *sec = strstr(comp, sec_line);
        cr_assert(sec, "components/%s missing", section);
        /* the name must appear before the next section at indent 2 */
        const char *next = sec + strlen(sec_line);
        const char *end = next;
        while ((end = strchr(end, '\n')) && end[1] &&
               (end[1] == ' ' && end[2] == ' ' && end[3] == ' '))
            end++;
        const char *hit = strstr(sec, name_line);
        cr_assert(hit && (!end || hit < end), "$ref #/components/%s/%s does not resolve", section,
                  name);
        nrefs++;
    }
    cr_assert_gt(nrefs, 10);
}
