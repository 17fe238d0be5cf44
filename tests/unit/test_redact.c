/* test_redact.c: server paths out of client-visible messages (server/core/redact.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "redact.h"

Test(redact, a_temporary_path_becomes_the_clients_name)
{
    char m[256] = "/srv/x/var/data/tmp/part-Ab12Cd.nii.gz: a 4-D image with 3 volumes";
    redact_replace(m, sizeof m, "/srv/x/var/data/tmp/part-Ab12Cd.nii.gz", "ct.nii.gz");
    cr_assert_str_eq(m, "ct.nii.gz: a 4-D image with 3 volumes");
    char twice[256] = "/a/b: image data file /a/b: gone";
    redact_replace(twice, sizeof twice, "/a/b", "x.nii");
    cr_assert_str_eq(twice, "x.nii: image data file x.nii: gone");
}

Test(redact, folders_keep_only_the_last_component)
{
    char m[256] = "label: var/data/blobs/ab/abcdef.nii.gz: data ends early; see /tmp/q/r.log (and "
                  "'/models/3')";
    const char *dirs[] = {"var/data", "/tmp", NULL, ""};
    redact_dirs(m, sizeof m, dirs, 4);
    cr_assert_str_eq(m, "label: abcdef.nii.gz: data ends early; see r.log (and '/models/3')");
    /* a word that merely contains the folder name is left alone */
    char w[64] = "metadata/tmpfile and xvar/data/y";
    redact_dirs(w, sizeof w, dirs, 4);
    cr_assert_str_eq(w, "metadata/tmpfile and xvar/data/y");
}

Test(redact, the_absolute_data_dir_is_found_from_a_relative_one)
{
    char cwd[4096], m[8192];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(m, sizeof m, "%s/tests/data/x.nii: bad", cwd);
    cr_assert_eq(redact_server_paths(m, sizeof m, "tests"), 1);
    cr_assert_str_eq(m, "x.nii: bad");
    char same[64] = "dataset 3 not found";
    cr_assert_eq(redact_server_paths(same, sizeof same, "tests"), 0);
    cr_assert_str_eq(same, "dataset 3 not found");
}

Test(redact, truncates_within_the_buffer)
{
    char m[16] = "/tmp/abc: long";
    redact_replace(m, sizeof m, "/tmp/abc", "a-very-long-client-name.nii.gz");
    cr_assert_eq(strlen(m), 15);
    cr_assert(!strncmp(m, "a-very-long-cli", 15));
}

Test(redact, invalid_utf8_becomes_question_marks)
{
    char m[64] = "no route for GET /\x8a\xff and caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    cr_assert_eq(redact_utf8(m), 2);
    cr_assert_str_eq(m, "no route for GET /?? and caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    char o[16] = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82";
    redact_utf8(o); /* overlong '/', a surrogate, above U+10FFFF, cut short */
    cr_assert_str_eq(o, "??|???|????|??");
}
