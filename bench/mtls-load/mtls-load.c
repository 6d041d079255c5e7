/*
 * mtls-load: a closed-loop HTTP/1.1 load generator that presents a client
 * certificate, so `make bench` can load an mTLS sidecar listener directly.
 *
 *   mtls-load --port P --cert F --key F --ca F --sni NAME --connections N
 *             --seconds S --path PATH [--header 'name: value']...
 *
 * N keep-alive connections, each with one request outstanding at a time, for
 * S seconds, on one thread (epoll). The server must be verified by the CA and
 * answer 200 with a Content-Length body. Prints one line:
 *   requests=R errors=E seconds=S rps=X
 * Requests still in flight at the deadline are not counted. Exit status 0,
 * or 1 when it cannot run at all or errors pile up (the run is then invalid).
 *
 * wrk is the usual tool for this, but cannot present a client certificate;
 * putting an Envoy in front of it costs more CPU per request than the Envoy
 * under test, on the load core, and would make the load side the bottleneck.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define MAX_HEADERS 16
#define BUF_SIZE 16384
/* More errors than this and the numbers mean nothing: stop early. */
#define MAX_ERRORS 1000

enum state { HANDSHAKE, SENDING, RECEIVING };

struct conn {
    int fd;
    SSL *ssl;
    enum state state;
    char buf[BUF_SIZE];
    size_t len;
};

static struct {
    int port;
    const char *cert, *key, *ca, *sni, *path;
    const char *headers[MAX_HEADERS];
    int n_headers;
    int connections;
    double seconds;
} opt = {.connections = 32, .seconds = 10, .path = "/"};

static SSL_CTX *ctx;
static int epfd;
static char request[4096];
static size_t request_len;
static long long completed, errors;

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mtls-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void watch(struct conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
}

static void open_conn(struct conn *c) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
        fail("connect 127.0.0.1:%d: %s", opt.port, strerror(errno));
    }
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || !SSL_set_tlsext_host_name(c->ssl, opt.sni) ||
        !SSL_set1_host(c->ssl, opt.sni)) {
        fail("cannot set up TLS");
    }
    SSL_set_connect_state(c->ssl);
    c->state = HANDSHAKE;
    c->len = 0;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void close_conn(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
}

static void broken(struct conn *c, const char *why) {
    if (++errors == 1 || errors == MAX_ERRORS) fprintf(stderr, "mtls-load: %s\n", why);
    ERR_clear_error();
    close_conn(c);
    if (errors >= MAX_ERRORS) fail("too many errors");
    open_conn(c);
}

/* Waits for what OpenSSL asked for; false when the connection failed. */
static int wait_for(struct conn *c, int ret) {
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ: watch(c, EPOLLIN, EPOLL_CTL_MOD); return 1;
    case SSL_ERROR_WANT_WRITE: watch(c, EPOLLOUT, EPOLL_CTL_MOD); return 1;
    default: return 0;
    }
}

static void send_request(struct conn *c) {
    c->state = SENDING;
    int ret = SSL_write(c->ssl, request, (int)request_len);
    if (ret > 0) {
        c->state = RECEIVING;
        c->len = 0;
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
    } else if (!wait_for(c, ret)) {
        broken(c, "write failed");
    }
}

/* Length of a complete 200 response at the start of buf, 0 if incomplete, -1 if bad. */
static long response_length(const char *buf, size_t len) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len >= BUF_SIZE ? -1 : 0;
    if (len < 13 || memcmp(buf, "HTTP/1.1 200 ", 13) != 0) return -1;
    long body = -1;
    for (const char *line = memchr(buf, '\n', (size_t)(end - buf)); line && line < end;
         line = memchr(line + 1, '\n', (size_t)(end - line))) {
        if (strncasecmp(line + 1, "content-length:", 15) == 0) body = strtol(line + 16, NULL, 10);
    }
    if (body < 0) return -1;
    long total = (long)(end + 4 - buf) + body;
    return total > BUF_SIZE ? -1 : ((size_t)total <= len ? total : 0);
}

static void receive(struct conn *c, int sending) {
    for (;;) {
        int ret = SSL_read(c->ssl, c->buf + c->len, (int)(BUF_SIZE - c->len));
        if (ret <= 0) {
            if (!wait_for(c, ret)) broken(c, "connection closed or TLS error while reading");
            return;
        }
        c->len += (size_t)ret;
        long n = response_length(c->buf, c->len);
        if (n < 0) {
            broken(c, "response is not a 200 with a Content-Length body");
            return;
        }
        if (n > 0) {
            if ((size_t)n != c->len) {
                broken(c, "unexpected bytes after the response");
                return;
            }
            completed++;
            if (sending) send_request(c);
            return;
        }
    }
}

static void handshake(struct conn *c) {
    int ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        send_request(c);
    } else if (!wait_for(c, ret)) {
        broken(c, "TLS handshake failed");
    }
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) fail("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--cert")) opt.cert = v;
        else if (!strcmp(a, "--key")) opt.key = v;
        else if (!strcmp(a, "--ca")) opt.ca = v;
        else if (!strcmp(a, "--sni")) opt.sni = v;
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--connections")) opt.connections = atoi(v);
        else if (!strcmp(a, "--seconds")) opt.seconds = atof(v);
        else if (!strcmp(a, "--header")) {
            if (opt.n_headers == MAX_HEADERS) fail("too many headers");
            opt.headers[opt.n_headers++] = v;
        } else fail("unknown option %s", a);
    }
    if (opt.port <= 0 || !opt.cert || !opt.key || !opt.ca || !opt.sni)
        fail("--port, --cert, --key, --ca and --sni are required");
    if (opt.connections < 1 || opt.connections > MAX_CONNECTIONS) fail("bad --connections");
    if (!(opt.seconds > 0)) fail("bad --seconds");
}

int main(int argc, char **argv) {
    parse_args(argc, argv);

    int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nhost: %s\r\n", opt.path, opt.sni);
    for (int i = 0; i < opt.n_headers; i++)
        n += snprintf(request + n, sizeof request - (size_t)n, "%s\r\n", opt.headers[i]);
    n += snprintf(request + n, sizeof request - (size_t)n, "\r\n");
    if (n <= 0 || (size_t)n >= sizeof request) fail("request too long");
    request_len = (size_t)n;

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, opt.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, opt.key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) {
        fail("cannot load the client certificate, key or CA");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    epfd = epoll_create1(0);
    if (epfd < 0) fail("epoll_create1: %s", strerror(errno));
    static struct conn conns[MAX_CONNECTIONS];
    double start = now(), deadline = start + opt.seconds;
    for (int i = 0; i < opt.connections; i++) open_conn(&conns[i]);

    struct epoll_event events[MAX_CONNECTIONS];
    for (double t = start; t < deadline; t = now()) {
        int timeout_ms = (int)((deadline - t) * 1000) + 1;
        int ready = epoll_wait(epfd, events, MAX_CONNECTIONS, timeout_ms > 100 ? 100 : timeout_ms);
        if (ready < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
        int sending = now() < deadline;
        for (int i = 0; i < ready; i++) {
            struct conn *c = events[i].data.ptr;
            switch (c->state) {
            case HANDSHAKE: handshake(c); break;
            case SENDING: send_request(c); break;
            case RECEIVING: receive(c, sending); break;
            }
        }
    }
    double elapsed = now() - start;
    printf("requests=%lld errors=%lld seconds=%.3f rps=%.2f\n", completed, errors, elapsed,
           (double)completed / elapsed);
    return 0;
}
