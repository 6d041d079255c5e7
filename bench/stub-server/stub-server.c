/*
 * stub-server: the upstream and the audit sink of `make bench`, as cheap as
 * an HTTP/1.1 server can be, so the load side never limits the Envoy under
 * test.
 *
 *   stub-server --backend PORT --sink PORT
 *
 * One thread, epoll, plaintext keep-alive HTTP/1.1 on 127.0.0.1. Every
 * request is read whole (its head, then a Content-Length or chunked body)
 * before it is answered, as a real server does:
 *   backend: 200 with a small JSON body;
 *   sink:    200 with no body, once the whole batch was read.
 * It counts what it answered and, on SIGTERM, prints one line:
 *   backend_requests=N sink_requests=M sink_bytes=B bad=K
 * (bad: requests it could not parse; they get 400 and the connection closes).
 *
 * An Envoy served both roles before; measured on the load core it cost more
 * per request than the upstream work the Envoy under test does, so the
 * measured core sat partly idle and the variants' ratios flattered them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
/* A request head larger than this is refused; bodies are streamed. */
#define HEAD_MAX 16384

static const char BACKEND_REPLY[] =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 32\r\n\r\n"
    "{\"order\":42,\"status\":\"shipped\"}\n";
static const char SINK_REPLY[] = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
static const char BAD_REPLY[] =
    "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

enum role { BACKEND, SINK };
enum phase { HEAD, BODY_LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_TRAILER };

struct conn {
    int fd;
    enum role role;
    enum phase phase;
    char head[HEAD_MAX];
    size_t head_len;
    unsigned long long remaining; /* body bytes (or chunk bytes incl. CRLF) still to read */
    char line[64];                /* a chunk-size line being collected */
    size_t line_len;
};

struct listener {
    int fd;
    enum role role;
};

static volatile sig_atomic_t stopping;
static unsigned long long backend_requests, sink_requests, sink_bytes, bad;

static void on_term(int sig) {
    (void)sig;
    stopping = 1;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 1024) < 0) die("listen");
    return fd;
}

static void close_conn(int epfd, struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes a whole small reply; the socket buffer always has room for it. */
static int reply(struct conn *c, const char *text, size_t len) {
    while (len > 0) {
        ssize_t n = write(c->fd, text, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

static int answered(struct conn *c) {
    c->phase = HEAD;
    c->head_len = 0;
    if (c->role == BACKEND) {
        backend_requests++;
        return reply(c, BACKEND_REPLY, sizeof BACKEND_REPLY - 1);
    }
    sink_requests++;
    return reply(c, SINK_REPLY, sizeof SINK_REPLY - 1);
}

/* The value of a header in a request head, or NULL. */
static const char *header(const char *head, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ' || *v == '\t') v++;
            return v;
        }
    }
    return NULL;
}

/* A complete head is in c->head: decides how its body is framed. */
static int start_body(struct conn *c) {
    c->head[c->head_len] = '\0';
    const char *te = header(c->head, "transfer-encoding");
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        c->phase = CHUNK_SIZE;
        c->line_len = 0;
        return 0;
    }
    const char *cl = header(c->head, "content-length");
    c->remaining = cl ? strtoull(cl, NULL, 10) : 0;
    if (c->remaining == 0) return answered(c);
    c->phase = BODY_LENGTH;
    return 0;
}

/* Feeds received bytes through the request parser; -1 closes the connection. */
static int feed(struct conn *c, const char *p, size_t n) {
    while (n > 0) {
        switch (c->phase) {
        case HEAD: {
            size_t room = HEAD_MAX - 1 - c->head_len;
            if (room == 0) return -1;
            size_t take = n < room ? n : room;
            memcpy(c->head + c->head_len, p, take);
            c->head[c->head_len + take] = '\0';
            /* Look for the end of the head, also across the previous read's tail. */
            size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
            char *end = strstr(c->head + from, "\r\n\r\n");
            if (!end) {
                c->head_len += take;
                p += take;
                n -= take;
                break;
            }
            size_t used = (size_t)(end + 4 - c->head) - c->head_len;
            c->head_len = (size_t)(end + 4 - c->head);
            p += used;
            n -= used;
            if (start_body(c) < 0) return -1;
            break;
        }
        case BODY_LENGTH: {
            size_t take = n < c->remaining ? n : (size_t)c->remaining;
            if (c->role == SINK) sink_bytes += take;
            c->remaining -= take;
            p += take;
            n -= take;
            if (c->remaining == 0 && answered(c) < 0) return -1;
            break;
        }
        case CHUNK_SIZE:
        case CHUNK_TRAILER: {
            char ch = *p++;
            n--;
            if (c->line_len + 1 >= sizeof c->line) return -1;
            c->line[c->line_len++] = ch;
            if (c->line_len < 2 || c->line[c->line_len - 2] != '\r' || ch != '\n') break;
            c->line[c->line_len - 2] = '\0';
            int empty = c->line_len == 2;
            c->line_len = 0;
            if (c->phase == CHUNK_TRAILER) {
                if (empty && answered(c) < 0) return -1;
                break;
            }
            char *rest;
            unsigned long long size = strtoull(c->line, &rest, 16);
            if (rest == c->line) return -1;
            if (size == 0) {
                c->phase = CHUNK_TRAILER;
            } else {
                c->remaining = size + 2; /* the data and its CRLF */
                c->phase = CHUNK_DATA;
            }
            break;
        }
        case CHUNK_DATA: {
            size_t take = n < c->remaining ? n : (size_t)c->remaining;
            if (c->role == SINK) sink_bytes += take;
            c->remaining -= take;
            p += take;
            n -= take;
            if (c->remaining == 0) c->phase = CHUNK_SIZE;
            break;
        }
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    int backend_port = 0, sink_port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--backend") == 0) backend_port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--sink") == 0) sink_port = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "stub-server: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (backend_port <= 0 || sink_port <= 0) {
        fprintf(stderr, "usage: stub-server --backend PORT --sink PORT\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    struct listener listeners[2] = {{listen_on(backend_port), BACKEND}, {listen_on(sink_port), SINK}};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listeners[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, listeners[i].fd, &ev) < 0) die("epoll_ctl");
    }
    printf("ready\n");
    fflush(stdout);

    static char buf[65536];
    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int k = epoll_wait(epfd, events, MAX_EVENTS, 200);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < k; i++) {
            void *ptr = events[i].data.ptr;
            if (ptr == &listeners[0] || ptr == &listeners[1]) {
                struct listener *l = ptr;
                for (;;) {
                    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c) die("calloc");
                    c->fd = fd;
                    c->role = l->role;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
                }
                continue;
            }
            struct conn *c = ptr;
            for (;;) {
                ssize_t n = read(c->fd, buf, sizeof buf);
                if (n > 0) {
                    if (feed(c, buf, (size_t)n) < 0) {
                        bad++;
                        reply(c, BAD_REPLY, sizeof BAD_REPLY - 1);
                        close_conn(epfd, c);
                        break;
                    }
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                close_conn(epfd, c);
                break;
            }
        }
    }
    printf("backend_requests=%llu sink_requests=%llu sink_bytes=%llu bad=%llu\n", backend_requests,
           sink_requests, sink_bytes, bad);
    return 0;
}
