/* http_deadline.c: see http_deadline.h. */
#include "http_deadline.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

typedef struct hd_conn {
    int fd;
    long long since_ms; /* waiting for headers since */
    int in_request;     /* headers complete, the request runs */
    int cut;            /* shut down already */
    struct hd_conn *prev, *next;
} hd_conn;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static hd_conn *head;
static pthread_t reaper;
static int running, timeout;
static atomic_llong cuts;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int http_header_late(long long since_ms, long long now, int timeout_s)
{
    return timeout_s > 0 && now - since_ms > (long long)timeout_s * 1000;
}

void http_deadline_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        hd_conn *e = ci ? calloc(1, sizeof *e) : NULL;
        if (!e)
            return; /* not registered: only the idle timeout applies to it */
        e->fd = ci->connect_fd;
        e->since_ms = now_ms();
        pthread_mutex_lock(&mu);
        e->next = head;
        if (head)
            head->prev = e;
        head = e;
        pthread_mutex_unlock(&mu);
        *socket_context = e;
        return;
    }
    hd_conn *e = *socket_context;
    if (!e)
        return;
    pthread_mutex_lock(&mu);
    if (e->prev)
        e->prev->next = e->next;
    else
        head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    pthread_mutex_unlock(&mu);
    free(e);
    *socket_context = NULL;
}

void http_deadline_request(struct MHD_Connection *c, int begins)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    hd_conn *e = ci ? ci->socket_context : NULL;
    if (!e)
        return;
    pthread_mutex_lock(&mu);
    e->in_request = begins;
    e->since_ms = now_ms();
    pthread_mutex_unlock(&mu);
}

static void *reap(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (running) {
        long long now = now_ms(), n = 0;
        for (hd_conn *e = head; e; e = e->next)
            if (!e->in_request && !e->cut && http_header_late(e->since_ms, now, timeout)) {
                shutdown(e->fd, SHUT_RDWR);
                e->cut = 1;
                n++;
            }
        if (n) {
            atomic_fetch_add(&cuts, n);
            log_json(
                LOG_WARN, NULL, "request header too slow: connection closed",
                json_pack("{s:I,s:i}", "connections", (json_int_t)n, "header_timeout_s", timeout));
        }
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 250 * 1000000L; /* four checks a second */
        if (t.tv_nsec >= 1000000000L)
            t.tv_sec++, t.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&wake, &mu, &t);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int http_deadline_start(int timeout_s)
{
    if (timeout_s <= 0 || running)
        return 0;
    timeout = timeout_s;
    running = 1;
    if (pthread_create(&reaper, NULL, reap, NULL) != 0) {
        running = 0;
        return -1;
    }
    return 0;
}

void http_deadline_stop(void)
{
    pthread_mutex_lock(&mu);
    int was = running;
    running = 0;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&mu);
    if (was)
        pthread_join(reaper, NULL);
}

long long http_deadline_cut(void) { return atomic_load(&cuts); }
