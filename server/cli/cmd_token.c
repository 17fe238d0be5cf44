/* cmd_token.c: `mkdseg token create | list | revoke`: API bearer tokens for MKDSEG_AUTH=on,
 * each with scopes (read, segment, train, admin) and an optional expiry. Only the SHA-256 of a
 * token is stored (auth.h); `create` prints the token once, on stdout. */
#include <ctype.h>
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

typedef struct {
    const char *sub, *name, *id, *scopes, *expires, *url;
    char scopes_lit[64]; /* create: the scopes as an array literal */
    char ival[64];       /* create: --expires as an interval, or "" */
    const char *ts;      /* create: --expires as a timestamp, or NULL */
} token_args;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mkdseg token create --name NAME [--scopes read,segment,train,admin]\n"
        "                           [--expires 30d|12h|YYYY-MM-DD|ISO-8601 time] "
        "[--database-url URL]\n"
        "       mkdseg token list [--database-url URL]\n"
        "       mkdseg token revoke --name NAME | --id ID [--database-url URL]\n\n"
        "Bearer tokens for `mkdseg serve --auth on` (MKDSEG_AUTH=on): requests send\n"
        "'Authorization: Bearer TOKEN', and each route needs one scope: read (GET), segment\n"
        "(POST /segment, Slicer's infer), train (datasets, volumes, /train, evaluate, jobs'\n"
        "cancel, Slicer's datastore) or admin (deletions, model upload and promote; admin\n"
        "implies the others). Without --scopes a token gets admin. --expires: a duration from\n"
        "now (d, h, m) or a date/time (UTC unless it names a zone); without it, never. Only the\n"
        "token's SHA-256 is stored; `create` prints the token once. `list` never shows one.\n"
        "The database comes from --database-url, MKDSEG_DATABASE_URL or DATABASE_URL.\n");
}

/* --expires: a duration "<n>d|h|m" becomes an interval (*ival), anything else is passed as a
 * timestamp for PostgreSQL to parse (*ts). 0 / -1 with a message. */
static int parse_expires(const char *s, char ival[64], const char **ts)
{
    *ts = NULL;
    ival[0] = 0;
    if (!s)
        return 0;
    size_t n = strlen(s), digits = strspn(s, "0123456789");
    if (n >= 2 && digits == n - 1 && digits <= 6 && strchr("dhm", s[n - 1])) {
        const char *unit = s[n - 1] == 'd' ? "days" : s[n - 1] == 'h' ? "hours" : "minutes";
        snprintf(ival, 64, "%.*s %s", (int)digits, s, unit);
        return 0;
    }
    if (n >= 10 && n <= 40 && isdigit((unsigned char)s[0]) && s[4] == '-') {
        *ts = s;
        return 0;
    }
    fprintf(stderr,
            "mkdseg token: --expires '%s': expected 30d, 12h, 90m or an ISO date such as "
            "2027-01-31 or 2027-01-31T12:00:00Z\n",
            s);
    return -1;
}

/* The scopes as a PostgreSQL array literal ("{read,segment}"). 0 / -1 with a message. */
static int scopes_literal(const char *csv, char out[64])
{
    unsigned mask;
    char err[128];
    if (auth_scopes_parse(csv, &mask, err, sizeof err) < 0) {
        fprintf(stderr, "mkdseg token: --scopes: %s\n", err);
        return -1;
    }
    int off = snprintf(out, 64, "{");
    for (int s = HTTP_SCOPE_READ; s <= HTTP_SCOPE_ADMIN; s++)
        if (mask & (1u << s))
            off += snprintf(out + off, 64 - (size_t)off, "%s%s", off > 1 ? "," : "",
                            auth_scope_name((http_scope)s));
    snprintf(out + off, 64 - (size_t)off, "}");
    return 0;
}

/* A new random token "mkd_" + 48 hex digits in tok[64]. 0 / -1. */
static int new_token(char tok[64])
{
    unsigned char b[24];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    int off = snprintf(tok, 64, "mkd_");
    for (size_t i = 0; i < sizeof b; i++)
        off += snprintf(tok + off, 64 - (size_t)off, "%02x", b[i]);
    return 0;
}

/* Makes a token, stores its hash and prints it (the only time it is shown). 0 / 1. */
static int token_create(PGconn *pg, const token_args *o)
{
    char err[512], tok[64], hex[65], prefix[16];
    if (new_token(tok) < 0) {
        fprintf(stderr, "mkdseg token: no randomness\n");
        return 1;
    }
    auth_hash_token(tok, hex);
    snprintf(prefix, sizeof prefix, "%.8s", tok);
    const char *v[6] = {o->name, hex, prefix, o->scopes_lit, o->ts, *o->ival ? o->ival : NULL};
    PGresult *r = db_query(pg, &sql_api_tokens_utc, NULL, err, sizeof err);
    if (r) {
        PQclear(r);
        r = db_query(pg, &sql_api_tokens_insert, v, err, sizeof err);
    }
    if (!r) {
        fprintf(stderr, "mkdseg token: %s\n",
                strstr(err, "duplicate")  ? "a token with this name exists already"
                : strstr(err, "time")     ? "--expires: not a date or time PostgreSQL reads"
                : strstr(err, "interval") ? "--expires: duration out of range"
                                          : err);
        return 1;
    }
    if (PQntuples(r) != 1) {
        fprintf(stderr, "mkdseg token: --expires %s is not in the future\n", o->expires);
        PQclear(r);
        return 1;
    }
    printf("%s\n", tok);
    fprintf(stderr,
            "mkdseg token: created token '%s' (id %s, scopes %s, expires %s); it is shown only "
            "now\n",
            o->name, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
            PQgetisnull(r, 0, 2) ? "never" : PQgetvalue(r, 0, 2));
    PQclear(r);
    return 0;
}

/* Revokes the active token named o->name or numbered o->id. 0 / 1. */
static int token_revoke(PGconn *pg, const token_args *o)
{
    char err[512];
    const char *v[2] = {o->name, o->id};
    PGresult *r = db_query(pg, &sql_api_tokens_revoke, v, err, sizeof err);
    if (!r) {
        fprintf(stderr, "mkdseg token: %s\n", err);
        return 1;
    }
    int found = PQntuples(r) > 0;
    if (found)
        fprintf(stderr, "mkdseg token: revoked '%s' (id %s)\n", PQgetvalue(r, 0, 1),
                PQgetvalue(r, 0, 0));
    else if (o->name)
        fprintf(stderr, "mkdseg token: no active token named '%s'\n", o->name);
    else
        fprintf(stderr, "mkdseg token: no active token with id %s\n", o->id);
    PQclear(r);
    return found ? 0 : 1;
}

/* Prints every token (never the secret: the prefix only; times in UTC, '-' for none). 0 / 1. */
static int token_list(PGconn *pg)
{
    char err[512];
    PGresult *r = db_query(pg, &sql_api_tokens_list, NULL, err, sizeof err);
    if (!r) {
        fprintf(stderr, "mkdseg token: %s\n", err);
        return 1;
    }
    const char *fmt = "%-6s %-24s %-10s %-24s %-20s %-20s %-20s %-20s %s\n";
    printf(fmt, "id", "name", "prefix", "scopes", "created", "expires", "last used", "revoked",
           "state");
    for (int i = 0; i < PQntuples(r); i++)
        printf(fmt, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
               PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
    PQclear(r);
    return 0;
}

/* Reads the options after the subcommand into o. 0 / 2 (usage error, said on stderr). */
static int parse_args(int argc, char **argv, token_args *o)
{
    static const char *const names[] = {"--name", "--id", "--scopes", "--expires",
                                        "--database-url"};
    const char **slots[] = {&o->name, &o->id, &o->scopes, &o->expires, &o->url};
    for (int i = 2; i < argc; i++) {
        int miss = 0, k = 0;
        const char *v = NULL;
        for (; k < 5 && !(v = cli_opt(argc, argv, &i, names[k], &miss)) && !miss; k++)
            ;
        if (miss || k == 5) {
            fprintf(stderr, "mkdseg token: %s '%s'\n",
                    miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        *slots[k] = v;
    }
    return 0;
}

/* Which options each subcommand needs or takes. 0 / 2. */
static int check_args(token_args *o, int create, int revoke)
{
    if (create && (scopes_literal(o->scopes ? o->scopes : "admin", o->scopes_lit) < 0 ||
                   parse_expires(o->expires, o->ival, &o->ts) < 0))
        return 2;
    if ((create || (revoke && !o->id)) && (!o->name || !*o->name || strlen(o->name) > 200)) {
        fprintf(stderr, "mkdseg token %s: --name (1 to 200 characters) is required%s\n", o->sub,
                revoke ? " (or --id)" : "");
        return 2;
    }
    if (revoke && o->id &&
        (o->name || strspn(o->id, "0123456789") != strlen(o->id) || !*o->id ||
         strlen(o->id) > 18)) {
        fprintf(stderr, "mkdseg token revoke: --id takes a token id (a number), not with --name\n");
        return 2;
    }
    if (!create && (o->scopes || o->expires)) {
        fprintf(stderr, "mkdseg token %s: --scopes and --expires belong to create\n", o->sub);
        return 2;
    }
    if ((!create && !revoke) && (o->name || o->id)) {
        fprintf(stderr, "mkdseg token list: takes no --name or --id\n");
        return 2;
    }
    return 0;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    token_args o = {.sub = argv[1], .url = getenv("MKDSEG_DATABASE_URL")};
    if (!o.url || !*o.url)
        o.url = getenv("DATABASE_URL");
    int create = !strcmp(o.sub, "create"), revoke = !strcmp(o.sub, "revoke"),
        list = !strcmp(o.sub, "list");
    if (!create && !revoke && !list) {
        fprintf(stderr, "mkdseg token: unknown subcommand '%s' (create, list, revoke)\n", o.sub);
        return 2;
    }
    if (parse_args(argc, argv, &o) || check_args(&o, create, revoke))
        return 2;
    if (create && !o.scopes)
        fprintf(stderr, "mkdseg token: no --scopes: the token gets admin (every route)\n");
    char err[512];
    PGconn *pg = db_connect(o.url ? o.url : "", 5, err, sizeof err);
    if (!pg) {
        fprintf(stderr, "mkdseg token: %s\n", err);
        return 1;
    }
    int rc = create ? token_create(pg, &o) : revoke ? token_revoke(pg, &o) : token_list(pg);
    PQfinish(pg);
    return rc;
}
