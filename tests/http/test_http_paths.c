/* test_http_paths.c: encoded NUL and control bytes in the request path, against the real
 * server: "/ui/index.html%00.png" must not reach the dashboard as "/ui/index.html" (nor any
 * route as a shortened path); every such path is a 400 with the error shape. */
#include <string.h>

#include <criterion/criterion.h>

#include "../lib/tsrv.h"

static tsrv srv;

static void start(void) { cr_assert_eq(tsrv_start(&srv, NULL, NULL), 0, "server did not start"); }
static void stop(void)
{
    int rc = tsrv_stop(&srv);
    cr_expect_eq(rc, 0, "the server must exit 0 on SIGTERM (got %d)", rc);
}
TestSuite(paths, .init = start, .fini = stop, .timeout = 60);

static long get(const char *path, char code[64])
{
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", path, NULL, NULL, 0, &r), 0, "%s", path);
    long st = r.status;
    const char *c = json_string_value(json_object_get(json_object_get(r.json, "error"), "code"));
    snprintf(code, 64, "%s", c ? c : "");
    tresp_free(&r);
    return st;
}

Test(paths, encoded_nul_and_control_bytes_are_refused_with_400)
{
    char code[64];
    /* the file exists: without the NUL it is served */
    cr_assert_eq(get("/ui/index.html", code), 200);
    const char *bad[] = {"/ui/index.html%00.png", "/ui/index.html%00", "/ui/%00index.html",
                         "/ui/vendor/x.js%00",    "/ui/app%0a.js",     "/ui/app%1F.js",
                         "/ui/app%7f.js",         "/healthz%00",       "/datasets/1%00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long st = get(bad[i], code);
        cr_expect_eq(st, 400, "%s: %ld", bad[i], st);
        cr_expect_str_eq(code, "invalid_path", "%s", bad[i]);
    }
    /* other escapes still decode as before */
    cr_expect_eq(get("/ui/index%2ehtml", code), 200);
    cr_expect_eq(get("/ui/nope%20.js", code), 404);
    cr_expect_eq(get("/healthz", code), 200, "the server is fine afterwards");
}
