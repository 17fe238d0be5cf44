/* handlers_dice.c: GET /dice?model=&dataset=, the evaluation results (dice_results) of a model,
 * a dataset or both: per run (job) the means over volumes, and every row. */
#include <stdio.h>
#include <stdlib.h>

#include "api_util.h"
#include "handlers.h"
#include "sql.h"

static int query_id(http_req *r, const char *name, char out[24])
{
    const char *s = http_query(r, name);
    out[0] = 0;
    if (!s || !*s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 1) {
        http_error(r, 422, "invalid_field", name, "query parameter '%s' must be a positive integer",
                   name);
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
    api_reply_json_row(r, &sql_dice_results_list, v, 200, "results");
}
