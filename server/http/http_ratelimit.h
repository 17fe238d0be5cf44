/* http_ratelimit.h: a per-client-IP token bucket (429 Too Many Requests).
 * Buckets live in a fixed table indexed by a hash of the address: two clients whose addresses
 * collide share a bucket until one of them takes it over (an approximation that keeps memory
 * bounded). Process-wide state, thread-safe. */
#ifndef MKDSEG_HTTP_RATELIMIT_H
#define MKDSEG_HTTP_RATELIMIT_H

#include <sys/socket.h>

/* Sets the rate (requests per second per client address; 0 disables) and the burst (bucket
 * size, >= 1). Resets every bucket. */
void ratelimit_configure(double rate, double burst);

/* Takes one token for `addr`. 1 allowed; 0 refused, with *retry_after_s = seconds until a
 * token is available (>= 1). Always 1 when disabled or addr is NULL. */
int ratelimit_take(const struct sockaddr *addr, int *retry_after_s);

#endif
