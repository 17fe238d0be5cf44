/* cmd_token.c: `mkdseg token create --name N | list | revoke --name N`: API bearer tokens for
 * MKDSEG_AUTH=on. Only the SHA-256 of a token is stored (auth.h); `create` prints the token
 * once, on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth.h"
#include "cli_util.h"
#include "commands.h"
#include "db.h"
#include "sql.h"
#include "svc.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mkdseg token create --name NAME [--database-url URL]\n"
        "       mkdseg token list [--database-url URL]\n"
        "       mkdseg token revoke --name NAME [--database-url URL]\n\n"
        "Bearer tokens for `mkdseg serve --auth on` (MKDSEG_AUTH=on): mutating requests need\n"
        "'Authorization: Bearer TOKEN'. Only the token's SHA-256 is stored; `create` prints the\n"
        "token once. The database comes from --database-url, MKDSEG_DATABASE_URL or "
        "DATABASE_URL.\n");
}

/* Makes a token, stores its hash and prints it (the only time it is shown). 0 / 1. */
static int token_create(PGconn *pg, const char *name)
{
    char err[512];
    unsigned char b[24];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        fprintf(stderr, "mkdseg token: no randomness\n");
        return 1;
    }
    char tok[8 + 2 * sizeof b + 1], hex[65], prefix[16];
    int off = snprintf(tok, sizeof tok, "mkd_");
    for (size_t i = 0; i < sizeof b; i++)
        off += snprintf(tok + off, sizeof tok - (size_t)off, "%02x", b[i]);
    auth_hash_token(tok, hex);
    snprintf(prefix, sizeof prefix, "%.8s", tok);
    const char *v[3] = {name, hex, prefix};
    PGresult *r = db_query(pg, &sql_api_tokens_insert, v, err, sizeof err);
    if (!r) {
        fprintf(stderr, "mkdseg token: %s\n",
                strstr(err, "duplicate") ? "a token with this name exists already" : err);
        return 1;
    }
    printf("%s\n", tok);
    fprintf(stderr, "mkdseg token: created token '%s' (id %s); it is shown only now\n", name,
            PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* Revokes the active token `name`. 0 / 1. */
static int token_revoke(PGconn *pg, const char *name)
{
    char err[512];
    const char *v[1] = {name};
    PGresult *r = db_query(pg, &sql_api_tokens_revoke, v, err, sizeof err);
    if (!r) {
        fprintf(stderr, "mkdseg token: %s\n", err);
        return 1;
    }
    int found = PQntuples(r) > 0;
    PQclear(r);
    if (!found) {
        fprintf(stderr, "mkdseg token: no active token named '%s'\n", name);
        return 1;
    }
    fprintf(stderr, "mkdseg token: revoked '%s'\n", name);
    return 0;
}

/* Prints every token (never the secret: the prefix only). 0 / 1. */
static int token_list(PGconn *pg)
{
    char err[512];
    PGresult *r = db_query(pg, &sql_api_tokens_list, NULL, err, sizeof err);
    if (!r) {
        fprintf(stderr, "mkdseg token: %s\n", err);
        return 1;
    }
    printf("%-6s %-24s %-10s %-32s %-32s %s\n", "id", "name", "prefix", "created", "last used",
           "revoked");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-6s %-24s %-10s %-32s %-32s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    PQclear(r);
    return 0;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *name = NULL, *url = getenv("MKDSEG_DATABASE_URL");
    if (!url || !*url)
        url = getenv("DATABASE_URL");
    for (int i = 2; i < argc; i++) {
        int miss = 0;
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--name", &miss)))
            name = v;
        else if ((v = cli_opt(argc, argv, &i, "--database-url", &miss)))
            url = v;
        else {
            fprintf(stderr, "mkdseg token: %s '%s'\n",
                    miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        if (miss) {
            fprintf(stderr, "mkdseg token: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    int create = !strcmp(sub, "create"), revoke = !strcmp(sub, "revoke"),
        list = !strcmp(sub, "list");
    if (!create && !revoke && !list) {
        fprintf(stderr, "mkdseg token: unknown subcommand '%s' (create, list, revoke)\n", sub);
        return 2;
    }
    if ((create || revoke) && (!name || !*name || strlen(name) > 200)) {
        fprintf(stderr, "mkdseg token %s: --name (1 to 200 characters) is required\n", sub);
        return 2;
    }
    char err[512];
    PGconn *pg = db_connect(url ? url : "", 5, err, sizeof err);
    if (!pg) {
        fprintf(stderr, "mkdseg token: %s\n", err);
        return 1;
    }
    int rc = create ? token_create(pg, name) : revoke ? token_revoke(pg, name) : token_list(pg);
    PQfinish(pg);
    return rc;
}
