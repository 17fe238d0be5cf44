/* http_slow.c: see http_slow.h. */
#include "http_slow.h"

int http_body_too_slow(long long bytes, long long elapsed_ms, int grace_s, int min_rate)
{
    if (min_rate <= 0 || elapsed_ms <= (long long)grace_s * 1000)
        return 0;
    /* the deadline in ms: grace + bytes / rate seconds (no overflow: bytes < 2^53 here) */
    long long deadline_ms = (long long)grace_s * 1000 + bytes * 1000 / min_rate;
    return elapsed_ms > deadline_ms;
}
