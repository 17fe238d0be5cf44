/* http_slow.h: the floor on how slowly a request body may arrive. libmicrohttpd's connection
 * timeout counts idle time only, so a client that trickles a byte just before each timeout
 * holds a connection (and, for an upload, a temporary file) for as long as it likes. A body
 * gets `grace_s` seconds from the end of its headers, and each `min_rate` bytes that arrive
 * buy one more second (Apache's mod_reqtimeout counts the same way); the connection of a body
 * past that deadline is closed (libmicrohttpd cannot queue an answer while a body is coming in;
 * the request is logged with status 408). Decided from byte counts and a monotonic clock at
 * each chunk that arrives; a client that sends nothing at all meets the idle timeout. */
#ifndef MKDSEG_HTTP_SLOW_H
#define MKDSEG_HTTP_SLOW_H

/* 1 when a body that has brought `bytes` bytes `elapsed_ms` milliseconds after its headers is
 * too slow, else 0. min_rate <= 0 turns the floor off. */
int http_body_too_slow(long long bytes, long long elapsed_ms, int grace_s, int min_rate);

#endif
