/* prom.h: process-wide counters for GET /metrics (Prometheus text format 0.0.4).
 * All updates are lock-free atomics; prom_init must run before the HTTP server starts. */
#ifndef MKDSEG_PROM_H
#define MKDSEG_PROM_H

#include <stdio.h>

/* Allocates counters for `nroutes` routes (plus one "unmatched" slot). 0 / -1. */
int prom_init(int nroutes);
void prom_free(void);

/* Records one finished request: route index (-1 for unmatched/404/405), status, seconds. */
void prom_observe(int route, int status, double seconds);

/* In-flight HTTP requests (from the first callback to completion). */
void prom_inflight_add(int delta);
long prom_inflight(void);

/* Queue gauges, set by whoever owns a queue (e.g. the segmentation queue). */
void prom_queue_set(long depth, long capacity);

/* Writes the HTTP metrics. `route_label(i)` / `route_method(i)` give the labels of route i. */
void prom_write(FILE *f, int nroutes, const char *(*route_label)(int),
                const char *(*route_method)(int));

#endif
