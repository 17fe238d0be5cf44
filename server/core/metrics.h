/* metrics.h: process-wide counters for GET /metrics (Prometheus text format 0.0.4).
 * All updates are lock-free atomics; metrics_init must run before the HTTP server starts. */
#ifndef MKDSEG_METRICS_H
#define MKDSEG_METRICS_H

#include <stdio.h>

/* Allocates counters for `nroutes` routes (plus one "unmatched" slot). 0 / -1. */
int metrics_init(int nroutes);
void metrics_free(void);

/* Records one finished request: route index (-1 for unmatched/404/405), status, seconds. */
void metrics_observe(int route, int status, double seconds);

/* In-flight HTTP requests (from the first callback to completion). */
void metrics_inflight_add(int delta);
long metrics_inflight(void);

/* Queue gauges, set by whoever owns a queue (e.g. the segmentation queue). */
void metrics_queue_set(long depth, long capacity);

/* Writes the HTTP metrics. `route_label(i)` / `route_method(i)` give the labels of route i. */
void metrics_write(FILE *f, int nroutes, const char *(*route_label)(int),
                   const char *(*route_method)(int));

#endif
