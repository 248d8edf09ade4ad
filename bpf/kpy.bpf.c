// SPDX-License-Identifier: MIT
/* kpy's eBPF programs. Attached only to the service's own cgroup (kpy-<pid>), they:
 *  - send the service's TCP connect()s to kpy's proxy and remember where they were going
 *    (connect4/6 + sockops), and give that address back to getpeername() (getpeername4/6);
 *  - send its DNS (UDP port 53, connected or not) to kpy's DNS port, and make the answers
 *    look as if they came from the resolver it asked (connect4/6, sendmsg4/6, recvmsg4/6);
 *  - move its listening ports to internal ones so kpy can stand on the public port
 *    (bind4/6), and keep getsockname() showing the public port (getsockname4/6);
 *  - count the TCP connect()s a passthrough rule let go to their real destination
 *    (kpy_passed), since those never reach kpy's proxy.
 * Return 1 to let the call go on; 0 fails it with EPERM, which only sendmsg6 does, to keep a
 * DNS query from leaving the machine. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kpy.h"

/* from <sys/socket.h>, which does not build for the bpf target */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kpy_config);
} kpy_config SEC(".maps");

/* public port -> internal port, for bind() */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u16);
} kpy_ports SEC(".maps");

/* destinations left alone (LPM: address, then port) */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct kpy_pass_key);
	__type(value, __u8);
} kpy_pass SEC(".maps");

/* Per socket, freed with it. CLONE: accepted sockets inherit their listener's public port. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct kpy_sock);
} kpy_socks SEC(".maps");

/* client endpoint of a redirected connection -> the endpoint it dialled; the proxy reads
 * and deletes it for each accepted connection. LRU, so entries nobody reads age out.
 * Sized for connections not yet accepted, not for all: creating it dominates set-up. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct kpy_endpoint);
	__type(value, struct kpy_endpoint);
} kpy_origin SEC(".maps");

/* dialled endpoint (family: the dialling socket's) -> connect()s a passthrough rule let go
 * there, TCP only; kpy reads it before and after each test. LRU: a flood of destinations
 * ages old counters out rather than failing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct kpy_endpoint);
	__type(value, __u64);
} kpy_passed SEC(".maps");

static __always_inline struct kpy_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&kpy_config, &zero);
}

static __always_inline void map_ip4(__u32 ip6[4], __u32 ip4)
{
	ip6[0] = 0;
	ip6[1] = 0;
	ip6[2] = bpf_htonl(0xffff);
	ip6[3] = ip4;
}

static __always_inline int is_mapped(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff);
}

static __always_inline int same_ip6(const __u32 a[4], const __u32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int passthrough(const __u32 ip6[4], __u16 port)
{
	struct kpy_pass_key key = {
		.prefixlen = 144,
		.ip6 = {ip6[0], ip6[1], ip6[2], ip6[3]},
		.port = bpf_htons(port),
	};
	return bpf_map_lookup_elem(&kpy_pass, &key) != NULL;
}

static __always_inline void count_passed(struct bpf_sock_addr *ctx, const __u32 ip6[4],
					 __u16 port)
{
	struct kpy_endpoint key = {
		.ip6 = {ip6[0], ip6[1], ip6[2], ip6[3]},
		.port = port,
		.family = ctx->family,
	};
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&kpy_passed, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	/* first time: create it; if another CPU just did, add to theirs */
	if (bpf_map_update_elem(&kpy_passed, &key, &one, BPF_NOEXIST) == 0)
		return;
	n = bpf_map_lookup_elem(&kpy_passed, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void remember(struct bpf_sock_addr *ctx, const __u32 ip6[4], __u16 port,
				     __u16 kind)
{
	struct kpy_sock *s = bpf_sk_storage_get(&kpy_socks, ctx->sk, NULL,
						BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	s->ip6[0] = ip6[0];
	s->ip6[1] = ip6[1];
	s->ip6[2] = ip6[2];
	s->ip6[3] = ip6[3];
	s->port = port;
	s->kind = kind;
}

/* Where a socket dialling ip6:port must go instead (port, and to_ip6), or 0 to leave it
 * alone. IPv6 sockets dialling a mapped address go to the mapped IPv4 address. */
static __always_inline __u16 redirect_port(struct bpf_sock_addr *ctx, struct kpy_config *cfg,
					   const __u32 ip6[4], __u16 port, __u32 *to_ip6)
{
	__u32 *cfg_ip6;
	__u32 ip4;
	__u16 to;

	if (ctx->type == SOCK_STREAM && cfg->proxy_port) {
		to = cfg->proxy_port;
		ip4 = cfg->proxy_ip4;
		cfg_ip6 = cfg->proxy_ip6;
	} else if (ctx->type == SOCK_DGRAM && port == 53 && cfg->dns_port) {
		to = cfg->dns_port;
		ip4 = cfg->dns_ip4;
		cfg_ip6 = cfg->dns_ip6;
	} else {
		return 0;
	}
	if (ctx->family == AF_INET6 && !is_mapped(ip6))
		__builtin_memcpy(to_ip6, cfg_ip6, 16);
	else
		map_ip4(to_ip6, ip4);
	/* never loop the proxy onto itself; honour passthrough rules */
	if (port == to && same_ip6(ip6, to_ip6))
		return 0;
	if (passthrough(ip6, port)) {
		if (ctx->type == SOCK_STREAM) /* sendmsg hooks see UDP only: this is connect() */
			count_passed(ctx, ip6, port);
		return 0;
	}
	return to;
}

/* Send an IPv4 socket's connect() or sendto() to kpy, remembering where it was going. */
static __always_inline int redirect4(struct bpf_sock_addr *ctx, __u16 kind)
{
	struct kpy_config *cfg = config();
	__u32 ip6[4], to_ip6[4];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u16 to;

	if (!cfg)
		return 1;
	map_ip4(ip6, ctx->user_ip4);
	to = redirect_port(ctx, cfg, ip6, port, to_ip6);
	if (!to)
		return 1;
	remember(ctx, ip6, port, kind);
	ctx->user_ip4 = to_ip6[3];
	ctx->user_port = bpf_htons(to);
	return 1;
}

/* The same for IPv6 sockets; IPv4-mapped destinations on them come here only, never to
 * the 4 hooks. sendmsg6 cannot send a native IPv6 destination to a mapped address (the
 * kernel says ENOTSUPP), and the query must not reach a real IPv6 resolver: it fails with
 * EPERM, so the resolver tries its next server. */
static __always_inline int redirect6(struct bpf_sock_addr *ctx, __u16 kind)
{
	struct kpy_config *cfg = config();
	__u32 ip6[4], to_ip6[4];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u16 to;

	if (!cfg)
		return 1;
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	to = redirect_port(ctx, cfg, ip6, port, to_ip6);
	if (!to)
		return 1;
	if (kind == KPY_SOCK_DNS && !is_mapped(ip6) && is_mapped(to_ip6))
		return 0;
	remember(ctx, ip6, port, kind);
	ctx->user_ip6[0] = to_ip6[0];
	ctx->user_ip6[1] = to_ip6[1];
	ctx->user_ip6[2] = to_ip6[2];
	ctx->user_ip6[3] = to_ip6[3];
	ctx->user_port = bpf_htons(to);
	return 1;
}

SEC("cgroup/connect4")
int kpy_connect4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx, KPY_SOCK_CONNECT);
}

SEC("cgroup/connect6")
int kpy_connect6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx, KPY_SOCK_CONNECT);
}

/* Once the kernel has picked the local port, key the original destination by it. */
SEC("sockops")
int kpy_sockops(struct bpf_sock_ops *ctx)
{
	struct kpy_endpoint local = {}, dialled = {};
	struct bpf_sock *sk;
	struct kpy_sock *s;
	__u32 ip4, family;

	if (ctx->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	sk = ctx->sk;
	if (!sk)
		return 1;
	s = bpf_sk_storage_get(&kpy_socks, sk, NULL, 0);
	if (!s || s->kind != KPY_SOCK_CONNECT)
		return 1;
	/* read every field unconditionally: the verifier refuses a ctx pointer the compiler
	 * picked between two fields */
	family = ctx->family;
	local.port = ctx->local_port;
	local.ip6[0] = ctx->local_ip6[0];
	local.ip6[1] = ctx->local_ip6[1];
	local.ip6[2] = ctx->local_ip6[2];
	local.ip6[3] = ctx->local_ip6[3];
	ip4 = ctx->local_ip4;
	if (family == AF_INET)
		map_ip4(local.ip6, ip4);
	__builtin_memcpy(dialled.ip6, s->ip6, 16);
	dialled.port = s->port;
	dialled.family = family;
	bpf_map_update_elem(&kpy_origin, &local, &dialled, BPF_ANY);
	return 1;
}

static __always_inline struct kpy_sock *sock_of(struct bpf_sock_addr *ctx, __u16 kind)
{
	struct kpy_sock *s = bpf_sk_storage_get(&kpy_socks, ctx->sk, NULL, 0);

	return s && s->kind == kind ? s : NULL;
}

/* Show the address the socket remembers as its peer (getpeername, recvmsg). */
static __always_inline int show_peer4(struct bpf_sock_addr *ctx, struct kpy_sock *s)
{
	if (s) {
		ctx->user_ip4 = s->ip6[3];
		ctx->user_port = bpf_htons(s->port);
	}
	return 1;
}

static __always_inline int show_peer6(struct bpf_sock_addr *ctx, struct kpy_sock *s)
{
	if (s) {
		ctx->user_ip6[0] = s->ip6[0];
		ctx->user_ip6[1] = s->ip6[1];
		ctx->user_ip6[2] = s->ip6[2];
		ctx->user_ip6[3] = s->ip6[3];
		ctx->user_port = bpf_htons(s->port);
	}
	return 1;
}

SEC("cgroup/getpeername4")
int kpy_getpeername4(struct bpf_sock_addr *ctx)
{
	return show_peer4(ctx, sock_of(ctx, KPY_SOCK_CONNECT));
}

SEC("cgroup/getpeername6")
int kpy_getpeername6(struct bpf_sock_addr *ctx)
{
	return show_peer6(ctx, sock_of(ctx, KPY_SOCK_CONNECT));
}

/* bind() of a public port in kpy_ports binds the internal port instead. */
static __always_inline int move_bind(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u16 *internal;
	__u32 none[4] = {};

	if (!port)
		return 1;
	internal = bpf_map_lookup_elem(&kpy_ports, &port);
	if (!internal)
		return 1;
	remember(ctx, none, port, KPY_SOCK_BIND);
	ctx->user_port = bpf_htons(*internal);
	return 1;
}

/* getsockname() of a moved socket, or of one accepted from it, shows the public port. */
static __always_inline int show_public_port(struct bpf_sock_addr *ctx)
{
	struct kpy_sock *s = sock_of(ctx, KPY_SOCK_BIND);

	if (s)
		ctx->user_port = bpf_htons(s->port);
	return 1;
}

SEC("cgroup/bind4")
int kpy_bind4(struct bpf_sock_addr *ctx)
{
	return move_bind(ctx);
}

SEC("cgroup/bind6")
int kpy_bind6(struct bpf_sock_addr *ctx)
{
	return move_bind(ctx);
}

SEC("cgroup/getsockname4")
int kpy_getsockname4(struct bpf_sock_addr *ctx)
{
	return show_public_port(ctx);
}

SEC("cgroup/getsockname6")
int kpy_getsockname6(struct bpf_sock_addr *ctx)
{
	return show_public_port(ctx);
}

/* Unconnected UDP (sendto): DNS only. The resolver asked is kept for recvmsg. */
SEC("cgroup/sendmsg4")
int kpy_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx, KPY_SOCK_DNS);
}

SEC("cgroup/sendmsg6")
int kpy_sendmsg6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx, KPY_SOCK_DNS);
}

/* A datagram from kpy's DNS port is shown as coming from the resolver the service asked:
 * glibc drops answers whose source is not the nameserver it sent to. */
static __always_inline struct kpy_sock *dns_sock(struct bpf_sock_addr *ctx)
{
	struct kpy_sock *s = bpf_sk_storage_get(&kpy_socks, ctx->sk, NULL, 0);

	if (!s || s->kind == KPY_SOCK_BIND || s->port != 53)
		return NULL;
	return s;
}

SEC("cgroup/recvmsg4")
int kpy_recvmsg4(struct bpf_sock_addr *ctx)
{
	struct kpy_config *cfg = config();

	if (!cfg || !cfg->dns_port || bpf_ntohs((__u16)ctx->user_port) != cfg->dns_port ||
	    ctx->user_ip4 != cfg->dns_ip4)
		return 1;
	return show_peer4(ctx, dns_sock(ctx));
}

SEC("cgroup/recvmsg6")
int kpy_recvmsg6(struct bpf_sock_addr *ctx)
{
	struct kpy_config *cfg = config();
	__u32 from[4], dns4[4];

	if (!cfg || !cfg->dns_port || bpf_ntohs((__u16)ctx->user_port) != cfg->dns_port)
		return 1;
	from[0] = ctx->user_ip6[0];
	from[1] = ctx->user_ip6[1];
	from[2] = ctx->user_ip6[2];
	from[3] = ctx->user_ip6[3];
	map_ip4(dns4, cfg->dns_ip4);
	if (!same_ip6(from, cfg->dns_ip6) && !same_ip6(from, dns4))
		return 1;
	return show_peer6(ctx, dns_sock(ctx));
}
