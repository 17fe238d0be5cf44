/* test_http_router.c: the route matcher, request id validation and the error body shape. */
#include <string.h>

#include <criterion/criterion.h>

#include "http.h"

static void h_dummy(http_req *r) { (void)r; }

static const http_route table[] = {
    {"GET", "/healthz", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"GET", "/datasets", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"POST", "/datasets", h_dummy, HTTP_JSON, NULL, HTTP_PUBLIC},
    {"GET", "/datasets/{id}", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"DELETE", "/datasets/{id}", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"POST", "/datasets/{id}/volumes", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"GET", "/models/{id}/weights", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"POST", "/models/{id}/promote", h_dummy, 0, NULL, HTTP_PUBLIC},
    {"GET", "/a/{x}/b/{y}", h_dummy, 0, NULL, HTTP_PUBLIC},
};
static const int ntable = sizeof table / sizeof table[0];

static http_match_result m(const char *method, const char *path, int *idx,
                           char params[][HTTP_PARAM_MAX], int *np, char *allow)
{
    return http_match(table, ntable, method, path, idx, params, np, allow, 256);
}

Test(http_router, literal_and_captures)
{
    int idx = -1, np = 0;
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX], allow[256];
    cr_assert_eq(m("GET", "/healthz", &idx, params, &np, allow), HTTP_MATCH_OK);
    cr_assert_eq(idx, 0);
    cr_assert_eq(m("POST", "/datasets", &idx, params, &np, allow), HTTP_MATCH_OK);
    cr_assert_eq(idx, 2);
    cr_assert_eq(m("DELETE", "/datasets/42", &idx, params, &np, allow), HTTP_MATCH_OK);
    cr_assert_eq(idx, 4);
    cr_assert_eq(np, 1);
    cr_assert_str_eq(params[0], "42");
    cr_assert_eq(m("POST", "/datasets/7/volumes", &idx, params, &np, allow), HTTP_MATCH_OK);
    cr_assert_eq(idx, 5);
    cr_assert_str_eq(params[0], "7");
    cr_assert_eq(m("GET", "/a/one/b/two", &idx, params, &np, allow), HTTP_MATCH_OK);
    cr_assert_eq(np, 2);
    cr_assert_str_eq(params[0], "one");
    cr_assert_str_eq(params[1], "two");
}

Test(http_router, head_matches_get)
{
    int idx = -1, np = 0;
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX], allow[256];
    cr_assert_eq(m("HEAD", "/datasets/3", &idx, params, &np, allow), HTTP_MATCH_OK);
    cr_assert_eq(idx, 3);
}

Test(http_router, unknown_paths)
{
    int idx = -1, np = 0;
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX], allow[256];
    const char *paths[] = {"/",
                           "/nope",
                           "/healthz/",
                           "/datasets/",
                           "/datasets//volumes",
                           "/datasets/1/volumes/2",
                           "/healthzz",
                           "healthz",
                           "/a/x/b",
                           ""};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        cr_assert_eq(m("GET", paths[i], &idx, params, &np, allow), HTTP_MATCH_NO_PATH, "%s",
                     paths[i]);
    /* a capture longer than the buffer does not match (no truncation) */
    char longp[300] = "/datasets/";
    memset(longp + 10, '1', 200);
    longp[210] = 0;
    cr_assert_eq(m("GET", longp, &idx, params, &np, allow), HTTP_MATCH_NO_PATH);
}

Test(http_router, wrong_method_lists_allow)
{
    int idx = -1, np = 0;
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX], allow[256];
    cr_assert_eq(m("PUT", "/datasets/9", &idx, params, &np, allow), HTTP_MATCH_NO_METHOD);
    cr_assert_str_eq(allow, "GET, DELETE, HEAD, OPTIONS");
    cr_assert_eq(m("GET", "/models/1/promote", &idx, params, &np, allow), HTTP_MATCH_NO_METHOD);
    cr_assert_str_eq(allow, "POST, OPTIONS");
    cr_assert_eq(m("DELETE", "/healthz", &idx, params, &np, allow), HTTP_MATCH_NO_METHOD);
    cr_assert_str_eq(allow, "GET, HEAD, OPTIONS");
}

Test(http_router, real_table_has_no_duplicates_and_valid_patterns)
{
    cr_assert_gt(http_nroutes, 0);
    for (int i = 0; i < http_nroutes; i++) {
        const http_route *a = &http_routes[i];
        cr_assert(a->fn, "route %d has no handler", i);
        cr_assert_eq(a->pattern[0], '/', "%s", a->pattern);
        for (int j = i + 1; j < http_nroutes; j++)
            cr_assert(strcmp(a->method, http_routes[j].method) ||
                          strcmp(a->pattern, http_routes[j].pattern),
                      "duplicate route %s %s", a->method, a->pattern);
        /* each route is found by its own pattern (with captures filled by "1") */
        char path[256];
        size_t o = 0;
        for (const char *p = a->pattern; *p && o < sizeof path - 2;) {
            if (*p == '{') {
                path[o++] = '1';
                while (*p && *p != '}')
                    p++;
                if (*p)
                    p++;
            } else {
                path[o++] = *p++;
            }
        }
        path[o] = 0;
        int idx = -1, np = 0;
        char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX], allow[256];
        cr_assert_eq(http_match(http_routes, http_nroutes, a->method, path, &idx, params, &np,
                                allow, sizeof allow),
                     HTTP_MATCH_OK, "%s %s", a->method, path);
        cr_assert_eq(idx, i, "%s %s matched route %d", a->method, path, idx);
    }
}

Test(http_router, request_id_validation)
{
    cr_assert(http_request_id_ok("abc-123"));
    cr_assert(http_request_id_ok("a.b:c_d"));
    cr_assert(!http_request_id_ok(""));
    cr_assert(!http_request_id_ok("has space"));
    cr_assert(!http_request_id_ok("quote\""));
    cr_assert(!http_request_id_ok("new\nline"));
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = 0;
    cr_assert(!http_request_id_ok(longid));
    longid[64] = 0;
    cr_assert(http_request_id_ok(longid));
}

Test(http_router, error_body_shape)
{
    json_t *e = http_error_body("invalid_field", "modality must be 'ct' or 'mr'", "modality");
    json_t *in = json_object_get(e, "error");
    cr_assert(json_is_object(in));
    cr_assert_eq(json_object_size(e), 1);
    cr_assert_str_eq(json_string_value(json_object_get(in, "code")), "invalid_field");
    cr_assert_str_eq(json_string_value(json_object_get(in, "message")),
                     "modality must be 'ct' or 'mr'");
    cr_assert_str_eq(json_string_value(json_object_get(in, "field")), "modality");
    json_decref(e);
    e = http_error_body("not_found", "x", NULL);
    cr_assert_null(json_object_get(json_object_get(e, "error"), "field"));
    cr_assert_eq(json_object_size(json_object_get(e, "error")), 2);
    json_decref(e);
}
