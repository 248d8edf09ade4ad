/* A tiny HTTP/1.1 keep-alive server, the service behind kpy's ingress in
 * bench/record_bench.py: quick enough never to be what is measured.
 *
 *     http_server LISTEN_PORT MAX_SECONDS
 *
 * Listens on 127.0.0.1:LISTEN_PORT (0: any; the port is printed on stdout, one line). One
 * thread, epoll, non-blocking sockets. Every request head (up to the blank line; requests
 * carry no body, as wrk's GETs do not) is answered with the same small JSON reply, in the
 * order they came, so pipelining works too. It exits by itself after MAX_SECONDS.
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

#define BUF (16 * 1024)
#define MAX_EVENTS 256

static const char REPLY[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 27\r\n"
    "\r\n"
    "{\"ok\":true,\"items\":[1,2,3]}";

struct conn {
    int fd;
    char in[BUF];
    size_t inlen;
    char out[BUF];
    size_t outlen, outoff;
    uint32_t armed;  /* the events epoll waits for on fd */
};

static void die(const char *what) { perror(what); exit(1); }

static int flush_out(struct conn *c) {
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->outoff += (size_t)n;
    }
    c->outlen = c->outoff = 0;
    return 0;
}

/* Read what is there and answer each complete head; -1 when the connection is done. */
static int serve(struct conn *c) {
    if (flush_out(c) < 0) return -1;
    for (;;) {
        if (c->outlen) return 0;  /* wait for the client to take what we owe it */
        ssize_t n = recv(c->fd, c->in + c->inlen, BUF - c->inlen, 0);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->inlen += (size_t)n;
        size_t pos = 0;
        char *end;
        while ((end = memmem(c->in + pos, c->inlen - pos, "\r\n\r\n", 4)) != NULL) {
            if (c->outlen + sizeof REPLY - 1 > BUF && flush_out(c) < 0) return -1;
            if (c->outlen + sizeof REPLY - 1 > BUF) break;
            memcpy(c->out + c->outlen, REPLY, sizeof REPLY - 1);
            c->outlen += sizeof REPLY - 1;
            pos = (size_t)(end - c->in) + 4;
        }
        memmove(c->in, c->in + pos, c->inlen - pos);
        c->inlen -= pos;
        if (c->inlen == BUF) return -1;  /* a head larger than the buffer: not ours */
        if (flush_out(c) < 0) return -1;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: http_server LISTEN_PORT MAX_SECONDS\n");
        return 2;
    }
    alarm((unsigned)atoi(argv[2]));
    signal(SIGPIPE, SIG_IGN);
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

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl listen");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) die("calloc");
                    nc->fd = fd;
                    nc->armed = EPOLLIN;
                    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = nc };
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add");
                }
                continue;
            }
            if ((events[i].events & EPOLLERR) || serve(c) < 0) {
                close(c->fd);  /* closing removes it from the epoll set */
                free(c);
                continue;
            }
            uint32_t want = c->outlen ? EPOLLOUT : EPOLLIN;
            if (want != c->armed) {
                struct epoll_event ev = { .events = want, .data.ptr = c };
                if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
                c->armed = want;
            }
        }
    }
}
