/* A minimal TCP relay, the yardstick for kpy's recording proxy in bench/record_bench.py.
 *
 *     relay LISTEN_PORT UPSTREAM_PORT MAX_SECONDS
 *
 * Listens on 127.0.0.1:LISTEN_PORT (0: any; the port it got is printed on stdout, one
 * line), and relays each accepted connection to 127.0.0.1:UPSTREAM_PORT: one thread, one
 * epoll set (level-triggered), non-blocking sockets with TCP_NODELAY, and a 64 KiB userspace
 * buffer per direction. A direction reads only while its buffer is empty and writes until
 * it is; an EOF is passed on as a half-close (shutdown SHUT_WR) once the buffer is drained.
 * It exits by itself after MAX_SECONDS (alarm), so a forgotten relay cannot outlive a run.
 * No recording, no parsing: the least any userspace relay must do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define MAX_EVENTS 256

struct pipe_ {           /* one direction: bytes read from src wait in buf for dst */
    int src, dst;
    char buf[BUF];
    size_t len, off;
    int eof;             /* src said EOF (or failed) */
    int shut;            /* dst has been half-closed */
};

struct conn {
    int fds[2];          /* 0: the client, 1: upstream */
    struct pipe_ up;     /* client -> upstream */
    struct pipe_ down;   /* upstream -> client */
    int open_fds;
    int dead;            /* torn down in this epoll batch: freed after it */
};

/* the epoll user data of a socket: its connection and which end it is */
struct end { struct conn *c; int which; };

static int ep;
static struct sockaddr_in upstream;

static void die(const char *what) { perror(what); exit(1); }

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* What each socket of a connection waits for, from the state of both pipes. */
static void rearm(struct conn *c, struct end *ends) {
    for (int w = 0; w < 2; w++) {
        int fd = c->fds[w];
        if (fd < 0) continue;
        struct pipe_ *in = w == 0 ? &c->up : &c->down;    /* reads from this fd */
        struct pipe_ *out = w == 0 ? &c->down : &c->up;   /* writes to this fd */
        uint32_t want = 0;
        if (!in->eof && in->len == 0) want |= EPOLLIN;
        if (out->len > out->off) want |= EPOLLOUT;
        struct epoll_event ev = { .events = want, .data.ptr = &ends[w] };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) die("epoll_ctl mod");
    }
}

/* Close a connection's sockets; its memory goes after the batch (``reap``), since later
   events of the same epoll batch may still point at it. */
static void finish(struct conn *c) {
    for (int w = 0; w < 2; w++)
        if (c->fds[w] >= 0) { close(c->fds[w]); c->fds[w] = -1; }
    c->dead = 1;
}

/* Move what can be moved on one pipe; -1 when the connection must be torn down. */
static int pump(struct pipe_ *p) {
    for (;;) {
        if (p->len > p->off) {
            ssize_t n = send(p->dst, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);
            if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
            p->off += (size_t)n;
            if (p->off < p->len) return 0;
            p->len = p->off = 0;
        }
        if (p->eof) {
            if (!p->shut) { shutdown(p->dst, SHUT_WR); p->shut = 1; }
            return 0;
        }
        ssize_t n = recv(p->src, p->buf, BUF, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            p->eof = 1;          /* a reset: pass it on as an end */
            continue;
        }
        if (n == 0) { p->eof = 1; continue; }
        p->len = (size_t)n;
        p->off = 0;
    }
}

static void accept_one(int lfd) {
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED) continue;
            die("accept");
        }
        int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ufd < 0) die("socket");
        nodelay(cfd);
        nodelay(ufd);
        if (connect(ufd, (struct sockaddr *)&upstream, sizeof upstream) < 0 &&
            errno != EINPROGRESS) {
            close(ufd);
            close(cfd);
            continue;
        }
        struct conn *c = calloc(1, sizeof *c);
        struct end *ends = calloc(2, sizeof *ends);
        if (!c || !ends) die("calloc");
        c->fds[0] = cfd; c->fds[1] = ufd;
        c->up.src = cfd; c->up.dst = ufd;
        c->down.src = ufd; c->down.dst = cfd;
        ends[0] = (struct end){ c, 0 };
        ends[1] = (struct end){ c, 1 };
        for (int w = 0; w < 2; w++) {
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ends[w] };
            if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fds[w], &ev) < 0) die("epoll_ctl add");
        }
        /* until the connect completes, writes to upstream get EAGAIN and wait for EPOLLOUT */
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: relay LISTEN_PORT UPSTREAM_PORT MAX_SECONDS\n");
        return 2;
    }
    alarm((unsigned)atoi(argv[3]));
    signal(SIGPIPE, SIG_IGN);

    upstream.sin_family = AF_INET;
    upstream.sin_port = htons((uint16_t)atoi(argv[2]));
    upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 1024) < 0) die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    static struct end listener = { NULL, -1 };
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listener };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl listen");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        /* connections torn down in this batch, freed once it is handled */
        struct end *gone[MAX_EVENTS];
        int ngone = 0;
        for (int i = 0; i < n; i++) {
            struct end *e = events[i].data.ptr;
            if (e->which < 0) { accept_one(lfd); continue; }
            struct conn *c = e->c;
            if (c->dead) continue;
            struct end *ends = e - e->which;
            if ((events[i].events & EPOLLERR) || pump(&c->up) < 0 || pump(&c->down) < 0 ||
                (c->up.eof && c->up.len == 0 && c->down.eof && c->down.len == 0)) {
                finish(c);
                gone[ngone++] = ends;
                continue;
            }
            rearm(c, ends);
        }
        for (int g = 0; g < ngone; g++) {
            free(gone[g]->c);
            free(gone[g]);
        }
    }
}
