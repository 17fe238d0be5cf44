/* http_deadline.h: the deadline for a request's headers. libmicrohttpd calls the application
 * only once a request's headers are complete, and its connection timeout counts idle time only,
 * so a client that trickles a header byte just before each timeout holds a connection for as
 * long as it likes. Each connection is registered when it opens (MHD_OPTION_NOTIFY_CONNECTION)
 * with the time it started waiting for headers: its opening, and again the end of each request
 * (an idle keep-alive connection waits for the next request's headers the same way). A reaper
 * thread shuts down (shutdown(2): libmicrohttpd then closes it as if the client had) every
 * connection that has waited longer than the header timeout without a complete header. The
 * socket is never closed here, and a connection leaves the registry before libmicrohttpd closes
 * its socket, so a descriptor is never shut down after it was reused. */
#ifndef MKDSEG_HTTP_DEADLINE_H
#define MKDSEG_HTTP_DEADLINE_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>

/* 1 when a connection waiting for headers since `since_ms` is past its deadline at `now_ms`
 * (milliseconds of one monotonic clock), 0 otherwise; timeout_s <= 0 never. */
int http_header_late(long long since_ms, long long now_ms, int timeout_s);

/* MHD_OPTION_NOTIFY_CONNECTION: registers and removes connections. */
void http_deadline_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);

/* A request's headers are complete (begins = 1) or the request is over (0: the connection waits
 * for headers again from now). */
void http_deadline_request(struct MHD_Connection *c, int begins);

/* Starts the reaper for timeout_s (0: none). 0 / -1. Stop once the daemon is stopped. */
int http_deadline_start(int timeout_s);
void http_deadline_stop(void);

/* Connections shut down so far for a late header. */
long long http_deadline_cut(void);

#endif
