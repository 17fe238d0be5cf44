/* test_http_ui.c: the dashboard's file-name rules and content types (handlers_ui.c); serving
 * itself (traversal, ETag, gzip, CSP) is tested against a real server in tests/browser. */
#include <criterion/criterion.h>

#include "api_ui.h"
#include "api_util.h"
#include "handlers.h"

Test(http_ui, names_are_one_safe_segment)
{
    const char *ok[] = {"index.html", "app.js", "page_train.js", "niivue-0.69.0.js", "a"};
    const char *bad[] = {"",        ".",      "..",      ".gitignore", "../x.js", "a/b.js",
                         "a\\b.js", "a b.js", "x%2e.js", "é.js",       "a;b.js"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect(ui_name_ok(ok[i]), "%s", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!ui_name_ok(bad[i]), "%s", bad[i]);
    char longname[128];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_expect(!ui_name_ok(longname));
}

Test(http_ui, content_types_by_extension)
{
    int text = -1;
    cr_expect_str_eq(ui_content_type("index.html", &text), "text/html; charset=utf-8");
    cr_expect_eq(text, 1);
    cr_expect_str_eq(ui_content_type("app.js", NULL), "text/javascript; charset=utf-8");
    cr_expect_str_eq(ui_content_type("u.css", NULL), "text/css; charset=utf-8");
    cr_expect_str_eq(ui_content_type("f.svg", NULL), "image/svg+xml");
    cr_expect_str_eq(ui_content_type("p.png", &text), "image/png");
    cr_expect_eq(text, 0);
    cr_expect_null(ui_content_type("Makefile", NULL), "no extension: not served");
    cr_expect_null(ui_content_type("x.sh", NULL));
    cr_expect_null(ui_content_type(".js", NULL), "an extension alone is not a name");
}
