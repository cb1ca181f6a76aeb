// SPDX-License-Identifier: GPL-2.0
/* sixgate's kernel datapath: a tc egress program on the translator's TUN
 * device that translates the common packets (RFC 7915) in place and hands
 * them back to the stack on the device's ingress, as if the userspace
 * translator had written them: the same nftables rules, conntrack and
 * masquerade see them. Everything else (ICMP errors, fragments, options and
 * extension headers, expiring hop limits, a pool's first packet, hairpins,
 * renumbering) is punted with TC_ACT_OK to the TUN queue, where the
 * userspace engine, which defines the semantics, handles it. For the packets
 * it translates the result is byte for byte the engine's (but for the
 * Identification of small IPv6-to-IPv4 packets, which each translator
 * numbers itself). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "nat64_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat64_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nat64_lpm6);
	__type(value, struct nat64_eam);
} eam6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nat64_lpm4);
	__type(value, struct nat64_eam);
} eam4 SEC(".maps");

/* RFC 6052 §3.1's non-global blocks, filled only for the well-known prefix. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nat64_lpm4);
	__type(value, __u8);
} nonglobal4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u8[16]);
	__type(value, struct nat64_pool_entry);
} pool6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct nat64_pool_entry);
} pool4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NAT64_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Where an ICMP echo is copied to be checked and summed: twice the longest
 * echo, so that a length masked to ten bits is inside it for the verifier. */
struct scratch {
	__u8 buf[2 * NAT64_ICMP_MAX + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &what);

	if (c)
		*c += 1;
}

static __always_inline int punt(__u32 why)
{
	count(why);
	return TC_ACT_OK;
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The byte positions of the IPv4 address in an RFC 6052 address, by prefix
 * length: the u-octet (byte 8) is skipped. */
static __always_inline int v4_positions(__u32 len, int pos[4])
{
	int first;

	switch (len) {
	case 32: first = 4; break;
	case 40: first = 5; break;
	case 48: first = 6; break;
	case 56: first = 7; break;
	case 64: first = 9; break;
	case 96: first = 12; break;
	default: return -1;
	}
	for (int i = 0, at = first; i < 4; i++, at++) {
		if (at == 8)
			at++;
		pos[i] = at;
	}
	return 0;
}

static __always_inline int in_prefix(const struct nat64_config *cfg, const __u8 *a)
{
	__u32 whole = cfg->prefix_len / 8;

	for (int i = 0; i < 12; i++)
		if (i < whole && a[i] != cfg->prefix[i])
			return 0;
	return 1;
}

static __always_inline int extract(const struct nat64_config *cfg, const __u8 *a, __u8 v4[4])
{
	int pos[4];

	if (v4_positions(cfg->prefix_len, pos) || !in_prefix(cfg, a))
		return -1;
	for (int i = 0; i < 4; i++)
		v4[i] = a[pos[i] & 15];
	return 0;
}

static __always_inline int embed(const struct nat64_config *cfg, const __u8 v4[4], __u8 a[16])
{
	int pos[4];
	__u32 whole = cfg->prefix_len / 8;

	if (v4_positions(cfg->prefix_len, pos))
		return -1;
	for (int i = 0; i < 16; i++)
		a[i] = i < whole ? cfg->prefix[i] : 0;
	for (int i = 0; i < 4; i++)
		a[pos[i] & 15] = v4[i];
	return 0;
}

/* RFC 6052 §3.1, for the well-known prefix. */
static __always_inline int representable(const struct nat64_config *cfg, const __u8 v4[4])
{
	struct nat64_lpm4 key = { .prefixlen = 32 };

	if (!(cfg->flags & NAT64_WELL_KNOWN))
		return 1;
	__builtin_memcpy(key.addr, v4, 4);
	return bpf_map_lookup_elem(&nonglobal4, &key) == NULL;
}

/* RFC 7757: the address `a` maps to through the mapping `e` (the suffix
 * carries over: at most 32 bits, so within the last four bytes). */
static __always_inline void eam_to4(const struct nat64_eam *e, const __u8 a[16], __u8 v4[4])
{
	__u32 host = e->ipv4_len >= 32 ? 0 : 0xffffffffu >> (e->ipv4_len & 31);
	__u32 net, suffix;

	__builtin_memcpy(&net, e->ipv4, 4);
	__builtin_memcpy(&suffix, a + 12, 4);
	net = bpf_htonl((bpf_ntohl(net) & ~host) | (bpf_ntohl(suffix) & host));
	__builtin_memcpy(v4, &net, 4);
}

static __always_inline void eam_to6(const struct nat64_eam *e, const __u8 v4[4], __u8 a[16])
{
	__u32 host = e->ipv4_len >= 32 ? 0 : 0xffffffffu >> (e->ipv4_len & 31);
	__u32 low, addr;

	__builtin_memcpy(a, e->ipv6, 16);
	__builtin_memcpy(&low, e->ipv6 + 12, 4);
	__builtin_memcpy(&addr, v4, 4);
	low = bpf_htonl(bpf_ntohl(low) | (bpf_ntohl(addr) & host));
	__builtin_memcpy(a + 12, &low, 4);
}

static __always_inline void stamp(struct nat64_pool_entry *e)
{
	__u64 now = bpf_ktime_get_boot_ns();

	/* At most once a second: the entry's cache line stays shared between CPUs. */
	if (now - e->last_used > 1000000000ull)
		e->last_used = now;
}

/* ICMP echo: copies the message at `at` (`len` bytes) to the scratch buffer
 * and returns it, zero-padded to a multiple of four. */
static __always_inline __u8 *copy_echo(struct __sk_buff *skb, __u32 at, __u32 len)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (!s || len < 8 || len > NAT64_ICMP_MAX)
		return NULL;
	/* The same length, bounded to [1, 1024] by instructions the compiler
	 * cannot drop: the verifier then knows what it is handed. */
	asm volatile("%[len] += -1\n\t%[len] &= %[mask]\n\t%[len] += 1"
		     : [len] "+r"(len) : [mask] "i"(2 * NAT64_ICMP_MAX - 1));
	*(__u32 *)(s->buf + (len & ~3u)) = 0;
	if (bpf_skb_load_bytes(skb, at, s->buf, len))
		return NULL;
	return s->buf;
}

/* The one's complement sum of the echo in `buf` (as 32-bit words, like
 * bpf_csum_diff's), `seed` added; fold() it for the 16-bit checksum. */
static __always_inline __u64 sum_echo(const __u8 *buf, __u32 len, __u64 seed)
{
	const __u32 *w = (const __u32 *)buf;
	__u64 sum = seed;

	for (int i = 0; i < NAT64_ICMP_MAX / 4; i++) {
		if (i * 4 >= len)
			break;
		sum += w[i];
	}
	return sum;
}

/* A TCP or UDP checksum moved from the pseudo-header addresses `from` to
 * `to`: incrementally, correct also for a checksum the kernel is still to
 * complete (CHECKSUM_PARTIAL holds the pseudo-header sum), and never 0 for UDP. */
static __always_inline int readdress_l4(struct __sk_buff *skb, __u32 csum_at, __u32 proto,
					__be32 *from, __u32 from_size, __be32 *to, __u32 to_size)
{
	long diff = bpf_csum_diff(from, from_size, to, to_size, 0);

	if (diff < 0)
		return -1;
	return bpf_l4_csum_replace(skb, csum_at, 0, diff, BPF_F_PSEUDO_HDR | (proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0));
}

struct pseudo6 {
	__u8 src[16];
	__u8 dst[16];
	__be32 length;
	__be32 next;
};

/* Fixes the Ethernet type of BPF_PROG_TEST_RUN's frames. */
static __always_inline int set_ethertype(struct __sk_buff *skb, __u32 l3, __u16 proto)
{
	__be16 p = bpf_htons(proto);

	if (l3 != ETH_HLEN)
		return 0;
	return bpf_skb_store_bytes(skb, 12, &p, 2, 0);
}

static __always_inline int from6(struct __sk_buff *skb, const struct nat64_config *cfg, __u32 l3)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + l3;
	struct nat64_lpm6 key6 = { .prefixlen = 128 };
	struct nat64_lpm4 key4 = { .prefixlen = 32 };
	struct nat64_eam *e;
	struct nat64_pool_entry *pe;
	struct iphdr ip4 = {};
	__u8 src6[16], dst6[16], src4[4], dst4[4];
	__u32 len4, upper = l3 + sizeof(*ip6), csum_at, proto, pool;
	__u8 hop, next, tc;
	int df, icmp_len = 0;
	long s;

	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return punt(NAT64_PUNT_NOT_IP);
	next = ip6->nexthdr;
	hop = ip6->hop_limit;
	tc = (__u8)(bpf_ntohl(*(__be32 *)ip6) >> 20);
	__builtin_memcpy(src6, &ip6->saddr, 16);
	__builtin_memcpy(dst6, &ip6->daddr, 16);
	if (40 + bpf_ntohs(ip6->payload_len) + l3 != skb->len)
		return punt(NAT64_PUNT_HEADERS);  /* a jumbogram, or malformed: the engine's */
	len4 = 20 + bpf_ntohs(ip6->payload_len);
	if (len4 > 65535)
		return punt(NAT64_PUNT_SIZE);
	if (dst6[0] == 0xff || src6[0] == 0xff)
		return punt(NAT64_PUNT_DESTINATION);
	if (hop <= 1)
		return punt(NAT64_PUNT_HOP_LIMIT);
	switch (next) {
	case IPPROTO_TCP:
		csum_at = upper + 16;
		proto = IPPROTO_TCP;
		if (len4 < 20 + 18)
			return punt(NAT64_PUNT_HEADERS);
		break;
	case IPPROTO_UDP: {
		__u16 c;

		csum_at = upper + 6;
		proto = IPPROTO_UDP;
		if (len4 < 20 + 8 || bpf_skb_load_bytes(skb, csum_at, &c, 2))
			return punt(NAT64_PUNT_HEADERS);
		if (c == 0)
			return punt(NAT64_PUNT_CHECKSUM);
		break;
	}
	case IPPROTO_ICMPV6: {
		__u8 type[2];

		proto = IPPROTO_ICMP;
		if (bpf_skb_load_bytes(skb, upper, type, 2))
			return punt(NAT64_PUNT_HEADERS);
		if ((type[0] != 128 && type[0] != 129) || type[1] != 0)
			return punt(NAT64_PUNT_PROTOCOL);
		icmp_len = len4 - 20;
		break;
	}
	case 0: case 43: case 44: case 60:
		return punt(next == 44 ? NAT64_PUNT_FRAGMENT : NAT64_PUNT_HEADERS);
	default:
		return punt(NAT64_PUNT_PROTOCOL);
	}

	/* The destination: a mapping, else the address embedded in the prefix. */
	__builtin_memcpy(key6.addr, dst6, 16);
	e = bpf_map_lookup_elem(&eam6, &key6);
	if (e)
		eam_to4(e, dst6, dst4);
	else if (extract(cfg, dst6, dst4))
		return punt(NAT64_PUNT_DESTINATION);
	else if (!representable(cfg, dst4))
		return punt(NAT64_PUNT_POLICY);
	/* The source: a mapping, an address in the prefix, else the host's
	 * pool address. */
	__builtin_memcpy(key6.addr, src6, 16);
	e = bpf_map_lookup_elem(&eam6, &key6);
	if (e) {
		eam_to4(e, src6, src4);
	} else if (!extract(cfg, src6, src4)) {
		if (!representable(cfg, src4))
			return punt(NAT64_PUNT_POLICY);
	} else {
		pe = bpf_map_lookup_elem(&pool6, src6);
		if (!pe)
			return punt(NAT64_PUNT_SOURCE);
		__builtin_memcpy(src4, pe->ipv4, 4);
		stamp(pe);
	}
	/* RFC 7757 §4.2: a destination mapped back to IPv6 hairpins: a
	 * mapping, or a pool address held by a host (of the range, or of one
	 * a renumbering still keeps), as the engine decides. */
	__builtin_memcpy(key4.addr, dst4, 4);
	__builtin_memcpy(&pool, dst4, 4);
	if (bpf_map_lookup_elem(&eam4, &key4) || bpf_map_lookup_elem(&pool4, &pool))
		return punt(NAT64_PUNT_HAIRPIN);

	/* RFC 7915 §5.1: DF only above 1260 bytes, where IPv6 path MTU
	 * discovery can work; smaller packets may be fragmented and need an
	 * ID. A TCP super-packet's segments are all above it; a UDP one's are
	 * gso_size-byte datagrams. */
	if (skb->gso_size)
		df = proto != IPPROTO_UDP || 28 + skb->gso_size > 1260;
	else
		df = len4 > 1260;

	if (proto == IPPROTO_ICMP) {
		struct pseudo6 ph = { .length = bpf_htonl(icmp_len), .next = bpf_htonl(IPPROTO_ICMPV6) };
		__u8 *buf = copy_echo(skb, upper, icmp_len);
		__u16 csum;

		if (!buf)
			return punt(NAT64_PUNT_SIZE);
		__builtin_memcpy(ph.src, src6, 16);
		__builtin_memcpy(ph.dst, dst6, 16);
		s = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		if (s < 0)
			return punt(NAT64_PUNT_ERROR);
		if (fold(sum_echo(buf, icmp_len, (__u32)s)) != 0xffff)
			return punt(NAT64_PUNT_CHECKSUM);
		buf[0] = buf[0] == 128 ? 8 : 0;
		buf[2] = buf[3] = 0;
		csum = ~fold(sum_echo(buf, icmp_len, 0));
		__builtin_memcpy(buf + 2, &csum, 2);
		/* Type, code and checksum in one store: all or nothing. */
		if (bpf_skb_store_bytes(skb, upper, buf, 4, 0))
			return punt(NAT64_PUNT_ERROR);
	} else {
		__be32 v6[8], v4[2];

		__builtin_memcpy(v6, src6, 16);
		__builtin_memcpy(v6 + 4, dst6, 16);
		__builtin_memcpy(&v4[0], src4, 4);
		__builtin_memcpy(&v4[1], dst4, 4);
		if (readdress_l4(skb, csum_at, proto, v6, sizeof(v6), v4, sizeof(v4)))
			return punt(NAT64_PUNT_ERROR);
	}

	ip4.version = 4;
	ip4.ihl = 5;
	ip4.tos = tc;
	ip4.tot_len = bpf_htons(len4);
	ip4.id = df ? 0 : (__be16)bpf_get_prandom_u32();
	ip4.frag_off = df ? bpf_htons(0x4000) : 0;
	ip4.ttl = hop - 1;
	ip4.protocol = proto;
	__builtin_memcpy(&ip4.saddr, src4, 4);
	__builtin_memcpy(&ip4.daddr, dst4, 4);
	s = bpf_csum_diff(NULL, 0, (__be32 *)&ip4, sizeof(ip4), 0);
	if (s < 0)
		return punt(NAT64_PUNT_ERROR);
	ip4.check = ~fold(s);

	/* From here on the packet is changed: a failure drops it rather than
	 * hand the engine half a translation. */
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0) ||
	    bpf_skb_store_bytes(skb, l3, &ip4, sizeof(ip4), 0) || set_ethertype(skb, l3, ETH_P_IP)) {
		count(NAT64_PUNT_ERROR);
		return TC_ACT_SHOT;
	}
	count(NAT64_TRANSLATED_6TO4);
	return bpf_redirect(cfg->ifindex4, BPF_F_INGRESS);
}

static __always_inline int from4(struct __sk_buff *skb, const struct nat64_config *cfg, __u32 l3)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip4 = data + l3;
	struct nat64_lpm4 key4 = { .prefixlen = 32 };
	struct nat64_eam *e;
	struct nat64_pool_entry *pe;
	struct ipv6hdr ip6 = {};
	__u8 src4[4], dst4[4], src6[16], dst6[16];
	__u32 total, payload, upper = l3 + 20, csum_at, next;
	__u8 ttl, proto, tos;
	__u16 frag;
	long s;

	if ((void *)(ip4 + 1) > end || ip4->version != 4)
		return punt(NAT64_PUNT_NOT_IP);
	if (ip4->ihl != 5)
		return punt(NAT64_PUNT_HEADERS);
	s = bpf_csum_diff(NULL, 0, (__be32 *)ip4, 20, 0);
	if (s < 0 || fold(s) != 0xffff)
		return punt(NAT64_PUNT_CHECKSUM);
	total = bpf_ntohs(ip4->tot_len);
	frag = bpf_ntohs(ip4->frag_off);
	ttl = ip4->ttl;
	proto = ip4->protocol;
	tos = ip4->tos;
	__builtin_memcpy(src4, &ip4->saddr, 4);
	__builtin_memcpy(dst4, &ip4->daddr, 4);
	if (total + l3 != skb->len || total < 20)
		return punt(NAT64_PUNT_HEADERS);
	payload = total - 20;
	if (frag & 0x3fff)
		return punt(NAT64_PUNT_FRAGMENT);
	if (ttl <= 1)
		return punt(NAT64_PUNT_HOP_LIMIT);
	switch (proto) {
	case IPPROTO_TCP:
		csum_at = upper + 16;
		next = IPPROTO_TCP;
		if (payload < 18)
			return punt(NAT64_PUNT_HEADERS);
		break;
	case IPPROTO_UDP: {
		__u16 c;

		csum_at = upper + 6;
		next = IPPROTO_UDP;
		if (payload < 8 || bpf_skb_load_bytes(skb, csum_at, &c, 2))
			return punt(NAT64_PUNT_HEADERS);
		if (c == 0)
			return punt(NAT64_PUNT_CHECKSUM);
		break;
	}
	case IPPROTO_ICMP: {
		__u8 type[2];

		next = IPPROTO_ICMPV6;
		if (bpf_skb_load_bytes(skb, upper, type, 2))
			return punt(NAT64_PUNT_HEADERS);
		if ((type[0] != 8 && type[0] != 0) || type[1] != 0)
			return punt(NAT64_PUNT_PROTOCOL);
		break;
	}
	default:
		return punt(NAT64_PUNT_PROTOCOL);
	}
	/* RFC 7915 §4: a packet IPv4 may fragment must not make an IPv6 packet
	 * above lowest-ipv6-mtu: the engine splits it into fragments. */
	if (!(frag & 0x4000) && 40 + payload > cfg->lowest_ipv6_mtu)
		return punt(NAT64_PUNT_SIZE);

	/* The destination: a mapping, else the host holding the pool address. */
	__builtin_memcpy(key4.addr, dst4, 4);
	e = bpf_map_lookup_elem(&eam4, &key4);
	if (e) {
		eam_to6(e, dst4, dst6);
	} else {
		__u32 k;

		__builtin_memcpy(&k, dst4, 4);
		pe = bpf_map_lookup_elem(&pool4, &k);
		if (!pe)
			return punt(NAT64_PUNT_DESTINATION);
		__builtin_memcpy(dst6, pe->ipv6, 16);
		stamp(pe);
	}
	/* The source: a mapping, else embedded in the prefix. */
	__builtin_memcpy(key4.addr, src4, 4);
	e = bpf_map_lookup_elem(&eam4, &key4);
	if (e)
		eam_to6(e, src4, src6);
	else if (!representable(cfg, src4))
		return punt(NAT64_PUNT_POLICY);
	else if (embed(cfg, src4, src6))
		return punt(NAT64_PUNT_ERROR);

	if (proto == IPPROTO_ICMP) {
		struct pseudo6 ph = { .length = bpf_htonl(payload), .next = bpf_htonl(IPPROTO_ICMPV6) };
		__u8 *buf = copy_echo(skb, upper, payload);
		__u16 csum;

		if (!buf)
			return punt(NAT64_PUNT_SIZE);
		if (fold(sum_echo(buf, payload, 0)) != 0xffff)
			return punt(NAT64_PUNT_CHECKSUM);
		buf[0] = buf[0] == 8 ? 128 : 129;
		buf[2] = buf[3] = 0;
		__builtin_memcpy(ph.src, src6, 16);
		__builtin_memcpy(ph.dst, dst6, 16);
		s = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		if (s < 0)
			return punt(NAT64_PUNT_ERROR);
		csum = ~fold(sum_echo(buf, payload, (__u32)s));
		__builtin_memcpy(buf + 2, &csum, 2);
		if (bpf_skb_store_bytes(skb, upper, buf, 4, 0))
			return punt(NAT64_PUNT_ERROR);
	} else {
		__be32 v4[2], v6[8];

		__builtin_memcpy(&v4[0], src4, 4);
		__builtin_memcpy(&v4[1], dst4, 4);
		__builtin_memcpy(v6, src6, 16);
		__builtin_memcpy(v6 + 4, dst6, 16);
		if (readdress_l4(skb, csum_at, proto, v4, sizeof(v4), v6, sizeof(v6)))
			return punt(NAT64_PUNT_ERROR);
	}

	*(__be32 *)&ip6 = bpf_htonl(0x60000000u | (__u32)tos << 20);
	ip6.payload_len = bpf_htons(payload);
	ip6.nexthdr = next;
	ip6.hop_limit = ttl - 1;
	__builtin_memcpy(&ip6.saddr, src6, 16);
	__builtin_memcpy(&ip6.daddr, dst6, 16);

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0) ||
	    bpf_skb_store_bytes(skb, l3, &ip6, sizeof(ip6), 0) || set_ethertype(skb, l3, ETH_P_IPV6)) {
		count(NAT64_PUNT_ERROR);
		return TC_ACT_SHOT;
	}
	count(NAT64_TRANSLATED_4TO6);
	return bpf_redirect(cfg->ifindex6, BPF_F_INGRESS);
}

SEC("tc")
int nat64(struct __sk_buff *skb)
{
	__u32 zero = 0, l3;
	struct nat64_config *cfg = bpf_map_lookup_elem(&config, &zero);

	if (!cfg || !cfg->enabled)
		return punt(NAT64_PUNT_DISABLED);
	if (cfg->flags & NAT64_PUNT_ALL)
		return punt(NAT64_PUNT_RENUMBERING);
	/* Two constants, so that the verifier knows every packet offset. */
	l3 = cfg->l3_offset == ETH_HLEN ? ETH_HLEN : 0;
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return from6(skb, cfg, l3);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return from4(skb, cfg, l3);
	return punt(NAT64_PUNT_NOT_IP);
}

char LICENSE[] SEC("license") = "GPL";
