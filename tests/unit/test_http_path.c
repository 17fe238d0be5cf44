/* test_http_path.c: the request path's decoding (http_path.c): a decoded NUL cannot shorten
 * the path, and control bytes are found. */
#include <string.h>

#include <criterion/criterion.h>

#include "http_path.h"

Test(http_path, a_decoded_nul_does_not_cut_the_path)
{
    char s[] = "/ui/index.html%00.png";
    size_t n = http_unescape(NULL, NULL, s);
    cr_assert_eq(n, strlen("/ui/index.html?.png"));
    cr_assert_eq(strlen(s), n, "nothing cut: the NUL became 0x01");
    cr_assert_eq(s[14], 0x01);
    cr_assert(http_path_has_control(s));
}

Test(http_path, other_escapes_decode_as_before)
{
    char s[] = "/a%20b%2Fc%e9";
    size_t n = http_unescape(NULL, NULL, s);
    cr_assert_str_eq(s, "/a b/c\xe9");
    cr_assert_eq(n, strlen(s));
    cr_assert_not(http_path_has_control(s), "a space and Latin-1 are not control bytes");
}

Test(http_path, control_bytes)
{
    cr_assert(http_path_has_control("/x\n"));
    cr_assert(http_path_has_control("\x1f"));
    cr_assert(http_path_has_control("/x\x7f"));
    cr_assert_not(http_path_has_control("/ui/index.html"));
    cr_assert_not(http_path_has_control(""));
}
