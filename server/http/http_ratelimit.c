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
    uint64_t key; /* hash of the address, or the token id; 0 = unused */
    double tokens;
    double last; /* monotonic seconds of the last refill */
} bucket;

/* one table of buckets with its refill rate (per second; 0 = off) and size */
typedef struct {
    bucket b[NBUCKETS];
    double rate, burst;
} bucket_table;

static bucket_table by_addr, by_token;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void table_configure(bucket_table *t, double rate, double burst)
{
    pthread_mutex_lock(&mu);
    t->rate = rate > 0 ? rate : 0;
    t->burst = burst >= 1 ? burst : 1;
    memset(t->b, 0, sizeof t->b);
    pthread_mutex_unlock(&mu);
}

void ratelimit_configure(double rate, double burst) { table_configure(&by_addr, rate, burst); }

void ratelimit_configure_token(int per_window, int window_s)
{
    double rate = per_window > 0 && window_s > 0 ? (double)per_window / window_s : 0;
    table_configure(&by_token, rate, per_window);
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

/* Takes one token from key's bucket of t (a refill first). 1 / 0 with *retry_after_s. */
static int table_take(bucket_table *t, uint64_t key, int *retry_after_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    int ok = 1;
    pthread_mutex_lock(&mu);
    if (t->rate > 0) {
        bucket *b = &t->b[key % NBUCKETS];
        if (b->key != key) {
            b->key = key;
            b->tokens = t->burst;
            b->last = now;
        }
        b->tokens = fmin(t->burst, b->tokens + (now - b->last) * t->rate);
        b->last = now;
        if (b->tokens >= 1) {
            b->tokens -= 1;
        } else {
            ok = 0;
            if (retry_after_s) {
                int s = (int)ceil((1 - b->tokens) / t->rate);
                *retry_after_s = s < 1 ? 1 : s;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

int ratelimit_take(const struct sockaddr *addr, int *retry_after_s)
{
    if (!addr)
        return 1;
    return table_take(&by_addr, addr_hash(addr), retry_after_s);
}

int ratelimit_take_token(long long token_id, int *retry_after_s)
{
    if (token_id <= 0)
        return 1;
    return table_take(&by_token, (uint64_t)token_id, retry_after_s);
}
