/* prom.c: request counters by route and status, a latency histogram per route, in-flight
 * requests and queue gauges (see prom.h). */
#include "prom.h"

#include <stdatomic.h>
#include <stdlib.h>

#define NSTATUS 600
static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                 0.5,   1,     2.5,  5,     10,   30,  60};
#define NBUCKETS (int)(sizeof buckets / sizeof buckets[0])

typedef struct {
    atomic_ulong status[NSTATUS];
    atomic_ulong bucket[NBUCKETS]; /* non-cumulative; summed at render time */
    atomic_ulong count;
    atomic_ulong sum_us;
} route_stats;

static route_stats *stats; /* nroutes + 1 ("unmatched" last) */
static int nstats;
static atomic_long inflight, q_depth, q_cap;

int prom_init(int nroutes)
{
    free(stats);
    stats = calloc((size_t)nroutes + 1, sizeof *stats);
    nstats = stats ? nroutes + 1 : 0;
    return stats ? 0 : -1;
}

void prom_free(void)
{
    free(stats);
    stats = NULL;
    nstats = 0;
}

void prom_observe(int route, int status, double seconds)
{
    if (!stats)
        return;
    if (route < 0 || route >= nstats - 1)
        route = nstats - 1;
    route_stats *s = &stats[route];
    if (status > 0 && status < NSTATUS)
        atomic_fetch_add(&s->status[status], 1);
    int b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    if (b < NBUCKETS)
        atomic_fetch_add(&s->bucket[b], 1);
    atomic_fetch_add(&s->count, 1);
    atomic_fetch_add(&s->sum_us, (unsigned long)(seconds * 1e6));
}

void prom_inflight_add(int delta) { atomic_fetch_add(&inflight, delta); }
long prom_inflight(void) { return atomic_load(&inflight); }

void prom_queue_set(long depth, long capacity)
{
    atomic_store(&q_depth, depth);
    atomic_store(&q_cap, capacity);
}

void prom_write(FILE *f, int nroutes, const char *(*route_label)(int),
                const char *(*route_method)(int))
{
    if (!stats)
        return;
    if (nroutes > nstats - 1)
        nroutes = nstats - 1;
    fprintf(f, "# HELP mkdseg_http_requests_total HTTP requests finished, by route and status.\n"
               "# TYPE mkdseg_http_requests_total counter\n");
    for (int r = 0; r <= nroutes; r++) {
        route_stats *s = &stats[r == nroutes ? nstats - 1 : r];
        const char *label = r == nroutes ? "unmatched" : route_label(r);
        const char *method = r == nroutes ? "" : route_method(r);
        for (int st = 0; st < NSTATUS; st++) {
            unsigned long v = atomic_load(&s->status[st]);
            if (v)
                fprintf(
                    f, "mkdseg_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %lu\n",
                    method, label, st, v);
        }
    }
    fprintf(f, "# HELP mkdseg_http_request_duration_seconds Time from request headers to "
               "response, by route.\n# TYPE mkdseg_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= nroutes; r++) {
        route_stats *s = &stats[r == nroutes ? nstats - 1 : r];
        unsigned long count = atomic_load(&s->count);
        if (!count)
            continue;
        const char *label = r == nroutes ? "unmatched" : route_label(r);
        const char *method = r == nroutes ? "" : route_method(r);
        unsigned long cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += atomic_load(&s->bucket[b]);
            fprintf(f,
                    "mkdseg_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%"
                    "g\"} %lu\n",
                    method, label, buckets[b], cum);
        }
        fprintf(f,
                "mkdseg_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+"
                "Inf\"} %lu\n",
                method, label, count);
        fprintf(f, "mkdseg_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n",
                method, label, (double)atomic_load(&s->sum_us) / 1e6);
        fprintf(f, "mkdseg_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %lu\n",
                method, label, count);
    }
    fprintf(f,
            "# HELP mkdseg_http_requests_in_flight HTTP requests being served now.\n"
            "# TYPE mkdseg_http_requests_in_flight gauge\nmkdseg_http_requests_in_flight %ld\n",
            atomic_load(&inflight));
    fprintf(f,
            "# HELP mkdseg_queue_depth Segmentation requests waiting for an engine worker.\n"
            "# TYPE mkdseg_queue_depth gauge\nmkdseg_queue_depth %ld\n"
            "# HELP mkdseg_queue_capacity Segmentation queue size (then 503).\n"
            "# TYPE mkdseg_queue_capacity gauge\nmkdseg_queue_capacity %ld\n",
            atomic_load(&q_depth), atomic_load(&q_cap));
}
