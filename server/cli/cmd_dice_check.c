/* cmd_dice_check.c: `mkdseg dice-check`: the CI regression check against a running server.
 * Asks the server to evaluate a model on a dataset (POST /models/{id}/evaluate, a job), waits
 * for the job, reads the results (GET /dice?dataset=), and exits 1 when the mean Dice of this
 * evaluation is under --min-mean or more than --max-drop below the best earlier evaluation on
 * the same dataset (any model). Exit 2 on usage errors, 3 when the server or the job failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli_util.h"
#include "commands.h"

typedef struct {
    char *p;
    size_t n;
} buf_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf_t *b = ud;
    size_t k = size * nmemb;
    char *np = realloc(b->p, b->n + k + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, ptr, k);
    b->p = np;
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

/* One request; *status, parsed JSON body (new ref, NULL when not JSON). 0 / -1 transport. */
static int req(const char *base, const char *method, const char *path, const char *body,
               const char *token, long *status, json_t **out)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[2048], auth[400];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct curl_slist *h = NULL;
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (token && *token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    buf_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *out = b.p ? json_loads(b.p, 0, NULL) : NULL;
    if (rc != CURLE_OK)
        fprintf(stderr, "mkdseg dice-check: %s %s: %s\n", method, url, curl_easy_strerror(rc));
    else if (*status >= 400)
        fprintf(stderr, "mkdseg dice-check: %s %s: HTTP %ld: %s\n", method, url, *status,
                b.p ? b.p : "");
    free(b.p);
    return rc == CURLE_OK ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mkdseg dice-check --server URL --model ID --dataset ID [--min-mean X] [--max-drop "
        "Y]\n"
        "                         [--token T] [--timeout S]\n\n"
        "Evaluates model ID on dataset ID on a running mkdseg server (a job), waits for it, and\n"
        "exits 1 when the mean Dice is under X, or more than Y below the best earlier evaluation\n"
        "on that dataset. Prints one JSON line with the numbers. --token (or MKDSEG_TOKEN) when\n"
        "the server runs with --auth on. Exit 3 when the server or the job failed.\n");
}

/* The command line of one `mkdseg dice-check`. */
typedef struct {
    const char *server, *token;
    long long model, dataset;
    double min_mean, max_drop;
    int timeout;
} dc_args;

/* 0, 1 after --help, 2 on an error (printed). */
static int dc_parse(dc_args *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int miss = 0;
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        } else if ((v = cli_opt(argc, argv, &i, "--server", &miss)))
            o->server = v;
        else if ((v = cli_opt(argc, argv, &i, "--model", &miss)))
            o->model = atoll(v);
        else if ((v = cli_opt(argc, argv, &i, "--dataset", &miss)))
            o->dataset = atoll(v);
        else if ((v = cli_opt(argc, argv, &i, "--min-mean", &miss)))
            o->min_mean = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--max-drop", &miss)))
            o->max_drop = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--token", &miss)))
            o->token = v;
        else if ((v = cli_opt(argc, argv, &i, "--timeout", &miss)))
            o->timeout = atoi(v);
        else {
            fprintf(stderr, "mkdseg dice-check: %s '%s' (see --help)\n",
                    miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        if (miss) {
            fprintf(stderr, "mkdseg dice-check: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!o->server || o->model < 1 || o->dataset < 1) {
        fprintf(stderr, "mkdseg dice-check: --server, --model and --dataset are required\n");
        return 2;
    }
    return 0;
}

/* Queues the evaluation and polls the job until it ends. 0 succeeded (*job set), -1 (printed
 * when the job failed or timed out). */
static int dc_evaluate(const dc_args *o, long long *job)
{
    long st = 0;
    json_t *j = NULL;
    char path[256], body[64];
    int rc = -1;
    snprintf(path, sizeof path, "/models/%lld/evaluate", o->model);
    snprintf(body, sizeof body, "{\"dataset\":%lld}", o->dataset);
    if (req(o->server, "POST", path, body, o->token, &st, &j) < 0 || st != 202 || !j)
        goto done;
    *job = (long long)json_integer_value(json_object_get(j, "id"));
    fprintf(stderr, "mkdseg dice-check: evaluation job %lld queued\n", *job);
    snprintf(path, sizeof path, "/jobs/%lld", *job);
    time_t t0 = time(NULL);
    const char *state = "";
    for (;;) {
        json_decref(j);
        j = NULL;
        if (req(o->server, "GET", path, NULL, o->token, &st, &j) < 0 || st != 200 || !j)
            goto done;
        state = json_string_value(json_object_get(j, "state"));
        if (state && (!strcmp(state, "succeeded") || !strcmp(state, "failed") ||
                      !strcmp(state, "cancelled")))
            break;
        if (time(NULL) - t0 > o->timeout) {
            fprintf(stderr, "mkdseg dice-check: job %lld did not finish within %d s\n", *job,
                    o->timeout);
            goto done;
        }
        struct timespec nap = {0, 300 * 1000000L};
        nanosleep(&nap, NULL);
    }
    if (strcmp(state, "succeeded"))
        fprintf(stderr, "mkdseg dice-check: job %lld %s: %s\n", *job, state,
                json_string_value(json_object_get(j, "error"))
                    ? json_string_value(json_object_get(j, "error"))
                    : "");
    else
        rc = 0;
done:
    json_decref(j);
    return rc;
}

/* The job's mean Dice and the best earlier run's on the dataset (-1 when none). 0 / -1. */
static int dc_scores(const dc_args *o, long long job, double *mean, double *best,
                     long long *best_job)
{
    long st = 0;
    json_t *j = NULL;
    char path[256];
    snprintf(path, sizeof path, "/dice?dataset=%lld", o->dataset);
    if (req(o->server, "GET", path, NULL, o->token, &st, &j) < 0 || st != 200 || !j) {
        json_decref(j);
        return -1;
    }
    *mean = -1, *best = -1, *best_job = 0;
    size_t i;
    json_t *run;
    json_array_foreach (json_object_get(j, "runs"), i, run) {
        long long rj = (long long)json_integer_value(json_object_get(run, "job_id"));
        double md = json_number_value(json_object_get(run, "mean_dice"));
        if (rj == job)
            *mean = md;
        else if (rj < job && md > *best) {
            *best = md;
            *best_job = rj;
        }
    }
    json_decref(j);
    if (*mean < 0) {
        fprintf(stderr, "mkdseg dice-check: no results for job %lld\n", job);
        return -1;
    }
    return 0;
}

/* Prints the JSON line and the reasons for a failure. 0 pass, 1 fail. */
static int dc_report(const dc_args *o, long long job, double mean, double best, long long best_job)
{
    int below = o->min_mean >= 0 && mean < o->min_mean;
    int dropped = o->max_drop >= 0 && best >= 0 && best - mean > o->max_drop;
    json_t *out = json_pack("{s:I,s:I,s:I,s:f,s:o,s:o,s:o,s:o,s:b}", "model", (json_int_t)o->model,
                            "dataset", (json_int_t)o->dataset, "job", (json_int_t)job, "mean_dice",
                            mean, "best_earlier", best < 0 ? json_null() : json_real(best),
                            "best_earlier_job", best_job ? json_integer(best_job) : json_null(),
                            "min_mean", o->min_mean >= 0 ? json_real(o->min_mean) : json_null(),
                            "max_drop", o->max_drop >= 0 ? json_real(o->max_drop) : json_null(),
                            "pass", !(below || dropped));
    char *os = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", os);
    free(os);
    json_decref(out);
    if (below)
        fprintf(stderr, "mkdseg dice-check: FAIL: mean Dice %.4f is under the floor %.4f\n", mean,
                o->min_mean);
    if (dropped)
        fprintf(stderr,
                "mkdseg dice-check: FAIL: mean Dice %.4f is %.4f below the best earlier %.4f (job "
                "%lld)\n",
                mean, best - mean, best, best_job);
    return below || dropped ? 1 : 0;
}

int cmd_dice_check(int argc, char **argv)
{
    dc_args o = {.token = getenv("MKDSEG_TOKEN"), .min_mean = -1, .max_drop = -1, .timeout = 3600};
    int prc = dc_parse(&o, argc, argv);
    if (prc)
        return prc == 1 ? 0 : 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 3;
    long long job = 0, best_job = 0;
    double mean = -1, best = -1;
    if (dc_evaluate(&o, &job) == 0 && dc_scores(&o, job, &mean, &best, &best_job) == 0)
        rc = dc_report(&o, job, mean, best, best_job);
    curl_global_cleanup();
    return rc;
}
