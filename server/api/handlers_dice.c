/* handlers_dice.c: GET /dice?model=&dataset=, the evaluation results (dice_results) of a model,
 * a dataset or both: per run (job) the means over volumes, and every row. */
#include <stdio.h>
#include <stdlib.h>

#include "api_util.h"
#include "handlers.h"

static const db_stmt st_dice = {
    "dice_list",
    "WITH f AS (SELECT * FROM dice_results WHERE ($1 = '' OR model_id = nullif($1, '')::bigint) "
    "AND ($2 = '' OR dataset_id = nullif($2, '')::bigint)) "
    "SELECT json_build_object("
    "'runs', coalesce((SELECT json_agg(x ORDER BY x.created_at, x.job_id) FROM (SELECT job_id, "
    "model_id, dataset_id, min(created_at) AS created_at, avg(dice) AS mean_dice, avg(assd) AS "
    "mean_assd, avg(hd95) AS mean_hd95, json_object_agg(structure, json_build_object('dice', dice, "
    "'assd', assd, 'hd95', hd95)) AS structures FROM f WHERE volume_id IS NULL GROUP BY job_id, "
    "model_id, dataset_id) x), '[]'), "
    "'results', coalesce((SELECT json_agg(json_build_object('model_id', model_id, 'dataset_id', "
    "dataset_id, 'volume_id', volume_id, 'job_id', job_id, 'structure', structure, 'dice', dice, "
    "'assd', assd, 'hd95', hd95, 'created_at', created_at) ORDER BY id) FROM f), '[]'))::text",
    2};

static int query_id(http_req *r, const char *name, char out[24])
{
    const char *s = http_query(r, name);
    out[0] = 0;
    if (!s || !*s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 1) {
        http_error(r, 422, "invalid_field", name, "query parameter '%s' must be a positive integer", name);
        return -1;
    }
    snprintf(out, 24, "%lld", v);
    return 0;
}

void h_dice(http_req *r)
{
    char m[24], d[24];
    if (query_id(r, "model", m) < 0 || query_id(r, "dataset", d) < 0)
        return;
    const char *v[2] = {m, d};
    api_reply_json_row(r, &st_dice, v, 200, "results");
}
