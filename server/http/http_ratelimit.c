/* http_ratelimit.c: see http_ratelimit.h. */
#include "http_ratelimit.h"

#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define NBUCKETS 4096

typedef struct {
    uint64_t key; /* hash of the address; 0 = unused */
    double tokens;
    double last; /* monotonic seconds of the last refill */
} bucket;

static bucket buckets[NBUCKETS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static double rate_per_s, burst_size;

void ratelimit_configure(double rate, double burst)
{
    pthread_mutex_lock(&mu);
    rate_per_s = rate > 0 ? rate : 0;
    burst_size = burst >= 1 ? burst : 1;
    memset(buckets, 0, sizeof buckets);
    pthread_mutex_unlock(&mu);
}

/* FNV-1a over the address bytes (not the port) */
static uint64_t addr_hash(const struct sockaddr *a)
{
    const unsigned char *p;
    size_t n;
    if (a->sa_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)a)->sin_addr;
        n = 4;
    } else if (a->sa_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)a)->sin6_addr;
        n = 16;
    } else {
        return 1;
    }
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ? h : 1;
}

int ratelimit_take(const struct sockaddr *addr, int *retry_after_s)
{
    if (!addr)
        return 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    uint64_t key = addr_hash(addr);
    int ok = 1;
    pthread_mutex_lock(&mu);
    if (rate_per_s > 0) {
        bucket *b = &buckets[key % NBUCKETS];
        if (b->key != key) {
            b->key = key;
            b->tokens = burst_size;
            b->last = now;
        }
        b->tokens = fmin(burst_size, b->tokens + (now - b->last) * rate_per_s);
        b->last = now;
        if (b->tokens >= 1) {
            b->tokens -= 1;
        } else {
            ok = 0;
            if (retry_after_s) {
                int s = (int)ceil((1 - b->tokens) / rate_per_s);
                *retry_after_s = s < 1 ? 1 : s;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return ok;
}
