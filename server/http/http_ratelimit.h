/* http_ratelimit.h: token buckets (429 Too Many Requests), one per client IP address and one
 * per bearer token (auth on).
 * Buckets live in fixed tables indexed by a hash of the address (by the token id): two clients
 * whose keys collide share a bucket until one of them takes it over (an approximation that
 * keeps memory bounded; token ids below the table size never collide). Process-wide state,
 * thread-safe. */
#ifndef MKDSEG_HTTP_RATELIMIT_H
#define MKDSEG_HTTP_RATELIMIT_H

#include <sys/socket.h>

/* Sets the rate (requests per second per client address; 0 disables) and the burst (bucket
 * size, >= 1). Resets every address bucket. */
void ratelimit_configure(double rate, double burst);

/* Per token: at most per_window requests in a row, refilled at per_window per window_s
 * seconds (so per_window requests per window on average); 0 disables. Resets every token
 * bucket. */
void ratelimit_configure_token(int per_window, int window_s);

/* Takes one token for `addr`. 1 allowed; 0 refused, with *retry_after_s = seconds until a
 * token is available (>= 1). Always 1 when disabled or addr is NULL. */
int ratelimit_take(const struct sockaddr *addr, int *retry_after_s);

/* The same for the bearer token api_tokens.id = token_id (always 1 when token_id <= 0). */
int ratelimit_take_token(long long token_id, int *retry_after_s);

#endif
