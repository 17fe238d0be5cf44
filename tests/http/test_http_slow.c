/* test_http_slow.c: what bounds slow and numerous clients, against the real server over raw
 * sockets: a body that trickles in below --min-body-rate after --body-grace has its connection
 * closed (logged as a 408), with no temporary file left; a header that trickles past
 * --header-timeout has its connection closed; --per-ip-connections N admits N
 * connections from one address and closes the N+1st. Nothing here asserts on time: the
 * trickle goes on until the server answers (a generous outer limit only catches a hang). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../lib/tsrv.h"

static tsrv srv;

static void stop(void)
{
    if (srv.pid > 0) {
        int rc = tsrv_stop(&srv);
        cr_expect_eq(rc, 0, "the server must exit 0 on SIGTERM (got %d)", rc);
    }
}
TestSuite(slow, .fini = stop, .timeout = 120);

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        cr_assert(k > 0, "send: %s", strerror(errno));
        s += k, n -= (size_t)k;
    }
}

/* Reads what arrives within wait_ms into buf (NUL-terminated); returns the bytes read, 0 when
 * the server closed the connection with nothing sent, -1 on a reset or when nothing came. */
static ssize_t read_some(int fd, char *buf, size_t cap, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    ssize_t k = recv(fd, buf, cap - 1, 0);
    buf[k > 0 ? k : 0] = 0;
    return k;
}

/* Reads until the server closes the connection (or 60 s: a hang). */
static size_t read_to_close(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < 600 && n + 1 < cap; i++) {
        ssize_t k = read_some(fd, buf + n, cap - n, 100);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            break;
        if (k > 0)
            n += (size_t)k;
    }
    buf[n] = 0;
    return n;
}

static int tmp_entries(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/data/tmp", srv.dir);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

Test(slow, a_trickled_upload_is_cut_off_and_leaves_no_file)
{
    /* no grace and a floor of 1 GiB/s: any chunk that comes a millisecond after the headers is
     * behind */
    const char *args[] = {"--body-grace", "0", "--min-body-rate", "1073741824", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
    int fd = dial();
    const char *head = "POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                       "boundary=XyZ\r\nContent-Length: 100000\r\n\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"vol\"; "
                       "filename=\"ct.nii.gz\"\r\nContent-Type: application/octet-stream\r\n\r\n";
    send_all(fd, head, strlen(head));
    char buf[8192] = "";
    int closed = 0;
    for (int i = 0; i < 3000 && !closed; i++) { /* a byte every 20 ms, at most 60 s */
        if (send(fd, "\x1f", 1, MSG_NOSIGNAL) != 1) {
            closed = 1;
            break;
        }
        ssize_t k = read_some(fd, buf, sizeof buf, 20);
        closed = k == 0 || (k < 0 && errno == ECONNRESET) || k > 0;
    }
    close(fd);
    cr_assert(closed, "the server closed the trickling connection");
    cr_assert_eq(buf[0], 0, "closed without an answer (got: %s)", buf);
    int logged = 0;
    for (int i = 0; i < 600 && !logged; i++) /* the log line is an event: waited for */
        if (!(logged = tsrv_log_contains(&srv, "\"status\":408")))
            usleep(100000);
    cr_assert(logged, "the request is logged as a 408");
    cr_assert(tsrv_log_contains(&srv, "request body too slow: connection closed"));
    /* the upload's temporary file goes with the request (an event, waited for) */
    int left = 1;
    for (int i = 0; i < 600 && (left = tmp_entries()) > 0; i++)
        usleep(100000);
    cr_assert_eq(left, 0, "no partial file stays in tmp/");
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
}

static long healthz_on(int fd);

Test(slow, a_trickled_header_is_cut_off)
{
    const char *args[] = {"--header-timeout", "1", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
    int fd = dial();
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    send_all(fd, head, strlen(head));
    char buf[4096] = "";
    int closed = 0;
    for (int i = 0; i < 1200 && !closed; i++) { /* a byte every 50 ms, at most 60 s */
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
            closed = 1;
            break;
        }
        ssize_t k = read_some(fd, buf, sizeof buf, 50);
        closed = k == 0 || (k < 0 && errno == ECONNRESET) || k > 0;
    }
    close(fd);
    cr_assert(closed, "the server closed the trickling connection");
    cr_assert_eq(buf[0], 0, "closed without an answer (got: %s)", buf);
    int logged = 0;
    for (int i = 0; i < 600 && !logged; i++)
        if (!(logged = tsrv_log_contains(&srv, "request header too slow: connection closed")))
            usleep(100000);
    cr_assert(logged);
    /* a whole header in one go is answered */
    fd = dial();
    cr_assert_eq(healthz_on(fd), 200);
    close(fd);
}

Test(slow, a_body_at_a_good_rate_is_not_cut)
{
    /* the defaults (30 s of grace, then 1 KiB/s): a JSON body in two parts is read whole */
    cr_assert_eq(tsrv_start(&srv, NULL, NULL), 0);
    int fd = dial();
    const char *head = "POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 28\r\nConnection: close\r\n\r\n{\"name\":\"x\",";
    send_all(fd, head, strlen(head));
    send_all(fd, "\"modality\":\"zz\"}", 16);
    char buf[8192];
    read_to_close(fd, buf, sizeof buf);
    close(fd);
    /* the body reached the handler: its answer is about the modality, not a timeout */
    cr_assert(strstr(buf, "HTTP/1.1 422") || strstr(buf, "HTTP/1.1 503"), "%s", buf);
    cr_assert_null(strstr(buf, "request_timeout"), "%s", buf);
}

static long healthz_on(int fd)
{
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
        return -1;
    char buf[4096] = "";
    size_t n = 0;
    for (int i = 0; i < 300 && !strstr(buf, "\r\n\r\n"); i++) { /* at most 30 s */
        ssize_t k = read_some(fd, buf + n, sizeof buf - n, 100);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return -1;
        if (k > 0)
            n += (size_t)k;
    }
    return strstr(buf, "HTTP/1.1 200") ? 200 : 0;
}

Test(slow, per_ip_connection_limit_closes_the_one_over)
{
    const char *args[] = {"--per-ip-connections", "3", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
    int fds[3];
    for (int i = 0; i < 3; i++) { /* each answered once: accepted and counted */
        fds[i] = dial();
        cr_assert_eq(healthz_on(fds[i]), 200, "connection %d", i + 1);
    }
    int over = dial(); /* the kernel completes the handshake; the server closes it */
    cr_assert_eq(healthz_on(over), -1, "the 4th connection from one address is closed");
    close(over);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(healthz_on(fds[i]), 200, "the 3 admitted ones still work");
    close(fds[0]);
    /* once one is gone, a new one is admitted (the server notices the close: retried) */
    long st = -1;
    for (int i = 0; i < 300 && st != 200; i++) {
        int fd = dial();
        st = healthz_on(fd);
        close(fd);
        if (st != 200)
            usleep(100000);
    }
    cr_assert_eq(st, 200, "a connection is admitted again");
    close(fds[1]);
    close(fds[2]);
}
