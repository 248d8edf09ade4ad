/* SPDX-License-Identifier: MIT */
/* Layouts shared by kpy.bpf.c and kpy_ci/ebpf/maps.py: change both together. */
#ifndef KPY_H
#define KPY_H

/* Every address is kept as 16 bytes: IPv6, or IPv4 mapped (::ffff:a.b.c.d), network order.
 * Ports are host order. */

/* Where redirected sockets go: IPv4 sockets to the ip4 address, IPv6 sockets to the ip6 one
 * (a mapped IPv4 address by default, so one IPv4 listener serves both families). */
struct kpy_config {
	__u32 proxy_ip4;
	__u32 proxy_ip6[4];
	__u32 dns_ip4;
	__u32 dns_ip6[4];
	__u16 proxy_port; /* 0: TCP is left alone */
	__u16 dns_port;   /* 0: DNS is left alone */
};

/* kpy_origin key: the client side of a redirected TCP connection, as the proxy sees its peer.
 * kpy_passed key: a destination a passthrough rule let a connect() go to. */
struct kpy_endpoint {
	__u32 ip6[4];
	__u16 port;
	__u16 family; /* the family of the socket that dialled; 0 in kpy_origin keys */
};

/* Per-socket storage: what this socket dialled, or which public port it bound. */
#define KPY_SOCK_CONNECT 1 /* redirected connect(): ip6/port are the original peer */
#define KPY_SOCK_BIND 2    /* moved bind(): port is the public port the service asked for */
#define KPY_SOCK_DNS 3     /* unconnected UDP sendmsg to port 53: ip6/port are the resolver */

struct kpy_sock {
	__u32 ip6[4];
	__u16 port;
	__u16 kind;
};

/* kpy_pass key: LPM over address then port, so "10.0.0.0/8 any port" and "a.b.c.d:5432"
 * are both one entry (prefixlen 96+8, and 128+16). */
struct kpy_pass_key {
	__u32 prefixlen;
	__u32 ip6[4];
	__u16 port; /* network order, so the prefix bits run in wire order */
	__u16 pad;
};

#endif
