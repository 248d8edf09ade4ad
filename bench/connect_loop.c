/* SPDX-License-Identifier: MIT */
/* The measuring child of session_bench.py, in C so that the figures are the kernel's, not an
 * interpreter's. session_bench.py compiles it with gcc into a temporary directory.
 *
 *   connect_loop listen CPU
 *       listen on 127.0.0.1 (kernel-chosen port, printed on stdout), accept and close, until
 *       killed or for 10 minutes at most.
 *   connect_loop dial PORT COUNT CPU [ports]
 *       COUNT blocking connect() + close() to 127.0.0.1:PORT after 500 unmeasured ones;
 *       prints "median p90 min mean" of connect() alone in nanoseconds. With "ports": no
 *       warm-up, and prints the local port of each connection instead.
 * Both run on CPU only (-1: anywhere): where the listener runs decides which of two very
 * different latencies a connect() gets, so it must not be left to the scheduler.
 * Sockets close with SO_LINGER 0 (a RST), so no TIME_WAIT piles up across rounds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <sched.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARM_UP 500

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set)) {
		perror("sched_setaffinity");
		exit(1);
	}
}

static int by_value(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int listen_and_drop(void)
{
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		perror("listener");
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	alarm(600); /* bounded even if the parent forgets us */
	for (;;) {
		int c = accept(fd, NULL, NULL);

		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED) {
			perror("accept");
			return 1;
		}
	}
}

static int dial(int port, long count, int show_ports)
{
	struct sockaddr_in to = loopback(port), local;
	struct linger rst = {1, 0};
	long warm = show_ports ? 0 : WARM_UP;
	long long *ns = malloc(count * sizeof *ns), sum = 0;
	socklen_t len;

	if (!ns)
		return 1;
	alarm(300);
	for (long i = -warm; i < count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		long long t0, t1;
		int rc;

		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst)) {
			perror("socket");
			return 1;
		}
		t0 = now_ns();
		rc = connect(fd, (struct sockaddr *)&to, sizeof to);
		t1 = now_ns();
		if (rc) {
			fprintf(stderr, "connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
			return 1;
		}
		if (show_ports) {
			len = sizeof local;
			getsockname(fd, (struct sockaddr *)&local, &len);
			printf("%d\n", ntohs(local.sin_port));
		}
		close(fd);
		if (i >= 0) {
			ns[i] = t1 - t0;
			sum += ns[i];
		}
	}
	if (!show_ports) {
		qsort(ns, count, sizeof *ns, by_value);
		printf("%lld %lld %lld %lld\n", ns[count / 2], ns[count * 9 / 10], ns[0], sum / count);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "listen")) {
		pin(atoi(argv[2]));
		return listen_and_drop();
	}
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "dial") && atol(argv[3]) > 0) {
		pin(atoi(argv[4]));
		return dial(atoi(argv[2]), atol(argv[3]), argc == 6 && !strcmp(argv[5], "ports"));
	}
	fprintf(stderr, "usage: %s listen CPU | dial PORT COUNT CPU [ports]\n", argv[0]);
	return 2;
}
