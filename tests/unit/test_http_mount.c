/* test_http_mount.c: the MONAI Label mount (http_mount_map) and its setting
 * (--monailabel-prefix: a URL path prefix, checked by the settings table). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"

static void mapped(const char *path, const char *prefix, const char *want)
{
    char *got = http_mount_map(path, HTTP_MOUNT_MONAILABEL, prefix);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want, "%s under %s", path, prefix);
    free(got);
}

Test(http_mount, maps_the_configured_prefix_only)
{
    mapped("/monailabel/info/", "/monailabel", "/monailabel/info/");
    mapped("/datasets/3", "/monailabel", "/datasets/3");
    mapped("/slicer/ml/info/", "/slicer/ml", "/monailabel/info/");
    mapped("/slicer/ml", "/slicer/ml", "/monailabel");
    mapped("/slicer/mlx/info/", "/slicer/ml",
           "/slicer/mlx/info/");                   /* a longer segment is not the prefix */
    mapped("/monailabel/info/", "/slicer/ml", ""); /* the default is off then */
    mapped("/models", "/slicer/ml", "/models");
    mapped("/x", "", "/x");
}

static int load(const char *prefix, char err[512])
{
    mkd_config c;
    int help = 0;
    char *argv[] = {"serve", "--monailabel-prefix", (char *)prefix, NULL};
    return cfg_load(&c, CFG_SERVE, 3, argv, &help, err, 512);
}

Test(http_mount, prefix_setting_is_a_url_path)
{
    char err[512];
    static const char *const good[] = {"/monailabel", "/a", "/slicer/ml", "/v1.2/x_y-z"};
    static const char *const bad[] = {"",     "monailabel", "/",   "/a/",    "//a", "/a//b",
                                      "/a b", "/a?b",       "/..", "/a/./b", "/%20"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(load(good[i], err), 0, "%s: %s", good[i], err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(load(bad[i], err), -1, "'%s' must be refused", bad[i]);
        cr_assert(strstr(err, "monailabel-prefix"), "%s", err);
    }
}
