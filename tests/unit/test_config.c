/* test_config.c: settings precedence (flag > env > default), validation and --help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "config.h"
#include "log.h"

/* Criterion runs each test in its own process: setenv/unsetenv do not leak between tests. */
static void clean_env(void)
{
    const char *vars[] = {"MKDSEG_HOST",
                          "MKDSEG_PORT",
                          "MKDSEG_DATABASE_URL",
                          "DATABASE_URL",
                          "MKDSEG_MAX_BODY",
                          "MKDSEG_AUTH",
                          "MKDSEG_LOG_LEVEL",
                          "MKDSEG_HTTP_THREADS",
                          "MKDSEG_MAX_JSON",
                          "MKDSEG_CORS_ORIGIN",
                          NULL};
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
}

static int load(mkd_config *c, char **argv, int argc, char *err)
{
    int help = 0;
    return cfg_load(c, CFG_SERVE, argc, argv, &help, err, 512);
}

Test(config, defaults)
{
    clean_env();
    mkd_config c;
    char err[512];
    char *argv[] = {"serve"};
    cr_assert_eq(load(&c, argv, 1, err), 0, "%s", err);
    cr_assert_str_eq(c.host, "127.0.0.1");
    cr_assert_eq(c.port, 8080);
    cr_assert_str_eq(c.database_url, "");
    cr_assert_eq(c.max_body, 512LL << 20);
    cr_assert_eq(c.max_json, 1LL << 20);
    cr_assert_eq(c.auth, 0);
    cr_assert_eq(c.log_level, LOG_INFO);
    cr_assert_eq(cfg_source_of(&c, "port"), CFG_SRC_DEFAULT);
}

Test(config, precedence_flag_env_default)
{
    clean_env();
    mkd_config c;
    char err[512];
    setenv("MKDSEG_PORT", "9000", 1);
    char *a1[] = {"serve"};
    cr_assert_eq(load(&c, a1, 1, err), 0, "%s", err);
    cr_assert_eq(c.port, 9000, "env beats default");
    cr_assert_eq(cfg_source_of(&c, "port"), CFG_SRC_ENV);
    char *a2[] = {"serve", "--port", "9001"};
    cr_assert_eq(load(&c, a2, 3, err), 0, "%s", err);
    cr_assert_eq(c.port, 9001, "flag beats env");
    cr_assert_eq(cfg_source_of(&c, "port"), CFG_SRC_FLAG);
    char *a3[] = {"serve", "--port=0"};
    cr_assert_eq(load(&c, a3, 2, err), 0, "%s", err);
    cr_assert_eq(c.port, 0, "--name=value form, and 0 is allowed");
}

Test(config, database_url_env_names)
{
    clean_env();
    mkd_config c;
    char err[512];
    char *argv[] = {"serve"};
    setenv("DATABASE_URL", "postgresql:///from_database_url", 1);
    cr_assert_eq(load(&c, argv, 1, err), 0, "%s", err);
    cr_assert_str_eq(c.database_url, "postgresql:///from_database_url");
    setenv("MKDSEG_DATABASE_URL", "postgresql:///from_mkdseg", 1);
    cr_assert_eq(load(&c, argv, 1, err), 0, "%s", err);
    cr_assert_str_eq(c.database_url, "postgresql:///from_mkdseg", "MKDSEG_ wins over DATABASE_URL");
    char *a2[] = {"serve", "--database-url", "postgresql:///from_flag"};
    cr_assert_eq(load(&c, a2, 3, err), 0, "%s", err);
    cr_assert_str_eq(c.database_url, "postgresql:///from_flag");
}

Test(config, sizes_bools_levels)
{
    clean_env();
    mkd_config c;
    char err[512];
    setenv("MKDSEG_MAX_BODY", "2G", 1);
    setenv("MKDSEG_AUTH", "on", 1);
    char *argv[] = {"serve", "--max-json", "64KiB", "--log-level", "debug"};
    cr_assert_eq(load(&c, argv, 5, err), 0, "%s", err);
    cr_assert_eq(c.max_body, 2LL << 30);
    cr_assert_eq(c.max_json, 64LL << 10);
    cr_assert_eq(c.auth, 1);
    cr_assert_eq(c.log_level, LOG_DEBUG);
}

Test(config, invalid_values_name_flag_and_env)
{
    clean_env();
    mkd_config c;
    char err[512];
    char *a1[] = {"serve", "--port", "70000"};
    cr_assert_eq(load(&c, a1, 3, err), -1);
    cr_assert(strstr(err, "--port") && strstr(err, "0..65535"), "%s", err);
    setenv("MKDSEG_PORT", "http", 1);
    char *a2[] = {"serve"};
    cr_assert_eq(load(&c, a2, 1, err), -1);
    cr_assert(strstr(err, "MKDSEG_PORT") && strstr(err, "'http'"), "%s", err);
    unsetenv("MKDSEG_PORT");
    char *a3[] = {"serve", "--auth", "maybe"};
    cr_assert_eq(load(&c, a3, 3, err), -1);
    cr_assert(strstr(err, "on or off"), "%s", err);
    char *a4[] = {"serve", "--max-body", "12X"};
    cr_assert_eq(load(&c, a4, 3, err), -1);
    cr_assert(strstr(err, "--max-body"), "%s", err);
    char *a5[] = {"serve", "--nope", "1"};
    cr_assert_eq(load(&c, a5, 3, err), -1);
    cr_assert(strstr(err, "unknown option '--nope'"), "%s", err);
    char *a6[] = {"serve", "--port"};
    cr_assert_eq(load(&c, a6, 2, err), -1);
    cr_assert(strstr(err, "needs a value"), "%s", err);
    char *a7[] = {"serve", "--max-json", "2M", "--max-body", "1M"};
    cr_assert_eq(load(&c, a7, 5, err), -1);
    cr_assert(strstr(err, "must not exceed"), "%s", err);
    char *a8[] = {"serve", "--host", ""};
    cr_assert_eq(load(&c, a8, 3, err), -1);
    cr_assert(strstr(err, "empty"), "%s", err);
}

Test(config, migrate_rejects_serve_flags)
{
    clean_env();
    mkd_config c;
    char err[512];
    int help = 0;
    char *argv[] = {"migrate", "--port", "1"};
    cr_assert_eq(cfg_load(&c, CFG_MIGRATE, 3, argv, &help, err, sizeof err), -1);
    cr_assert(strstr(err, "unknown option"), "%s", err);
}

Test(config, help_lists_every_setting_with_default_and_env)
{
    clean_env();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cfg_usage(f, CFG_SERVE, "serve", "summary");
    fclose(f);
    /* every setting the effective-config JSON names must be in the help, with its env var */
    mkd_config c;
    char err[512];
    char *argv[] = {"serve"};
    cr_assert_eq(load(&c, argv, 1, err), 0);
    json_t *j = cfg_to_json(&c, CFG_SERVE);
    cr_assert_geq(json_object_size(j), 14, "at least the 14 settings the issue names");
    const char *key;
    json_t *v;
    json_object_foreach (j, key, v) {
        char flag[80], env[80];
        snprintf(flag, sizeof flag, "--%s ", key);
        snprintf(env, sizeof env, "MKDSEG_");
        for (const char *p = key; *p && strlen(env) < sizeof env - 1; p++) {
            char ch = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
            strncat(env, &ch, 1);
        }
        cr_assert(strstr(text, flag), "help lacks %s", flag);
        cr_assert(strstr(text, env), "help lacks %s", env);
    }
    cr_assert(strstr(text, "DATABASE_URL"));
    cr_assert(strstr(text, "default: 8080"));
    cr_assert(strstr(text, "default: 127.0.0.1"));
    json_decref(j);
    free(text);
}

Test(config, json_masks_database_password)
{
    clean_env();
    mkd_config c;
    char err[512];
    char *argv[] = {"serve", "--database-url", "postgresql://u:secret@db:5432/x"};
    cr_assert_eq(load(&c, argv, 3, err), 0, "%s", err);
    json_t *j = cfg_to_json(&c, CFG_SERVE);
    const char *u = json_string_value(json_object_get(j, "database-url"));
    cr_assert(u && !strstr(u, "secret") && strstr(u, "***@db"), "%s", u);
    json_decref(j);
}

/* conninfo and URI query forms, quoted values with spaces and escapes, two passwords */
Test(config, json_masks_conninfo_passwords)
{
    static const char *const urls[][2] = {
        {"host=db password=secret1 dbname=x", "host=db password=*** dbname=x"},
        {"host=db password = 'sec ret\\' 2' user=u", "host=db password = *** user=u"},
        {"postgresql://db/x?user=u&password=secret3&sslmode=require",
         "postgresql://db/x?user=u&password=***&sslmode=require"},
        {"password=s4 host=db password=s5", "password=*** host=db password=***"},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        clean_env();
        mkd_config c;
        char err[512];
        char *argv[] = {"serve", "--database-url", (char *)urls[i][0]};
        cr_assert_eq(load(&c, argv, 3, err), 0, "%s: %s", urls[i][0], err);
        json_t *j = cfg_to_json(&c, CFG_SERVE);
        const char *u = json_string_value(json_object_get(j, "database-url"));
        cr_assert_str_eq(u, urls[i][1]);
        json_decref(j);
    }
}

Test(config, unparsable_database_url_is_a_config_error)
{
    clean_env();
    mkd_config c;
    char err[512];
    char *argv[] = {"serve", "--database-url", "host=x port"};
    cr_assert_eq(load(&c, argv, 3, err), -1);
    cr_assert(strstr(err, "--database-url"), "%s", err);
    setenv("DATABASE_URL", "postgresql://[broken", 1);
    char *a2[] = {"serve"};
    cr_assert_eq(load(&c, a2, 1, err), -1);
    cr_assert(strstr(err, "DATABASE_URL"), "%s", err);
}
