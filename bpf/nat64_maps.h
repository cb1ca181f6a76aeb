/* The maps of the tc-BPF translator (nat64.bpf.c) as both sides see them:
 * the program, and sixgate's Swift code through the CBPF module. Addresses
 * are in network byte order, as in the packet. */
#ifndef SIXGATE_NAT64_MAPS_H
#define SIXGATE_NAT64_MAPS_H

#include <linux/types.h>

/* config.flags */
#define NAT64_WELL_KNOWN 1u   /* 64:ff9b::/96: non-global IPv4 addresses are not represented (RFC 6052 §3.1) */
#define NAT64_PUNT_ALL 2u     /* a renumbering runs: its flows are the userspace translator's */

/* The one entry of the config map. The program translates nothing until
 * userspace has written it (enabled != 0). */
struct nat64_config {
	__u8 prefix[16];         /* the NAT64 prefix (RFC 6052) */
	__u32 prefix_len;        /* 32, 40, 48, 56, 64 or 96 */
	__u32 flags;
	__u32 ifindex6;          /* where translated IPv6 packets enter the stack */
	__u32 ifindex4;          /* where translated IPv4 packets enter the stack */
	__u32 lowest_ipv6_mtu;   /* RFC 7915 §4: larger fragmentable IPv4 packets are split, in userspace */
	__u32 l3_offset;         /* 0 on a TUN device; 14 for BPF_PROG_TEST_RUN's Ethernet frames */
	__u32 enabled;
};

/* An explicit address mapping (RFC 7757), the value of both EAM tries. */
struct nat64_eam {
	__u8 ipv6[16];
	__u8 ipv4[4];
	__u32 ipv6_len;
	__u32 ipv4_len;
};

struct nat64_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct nat64_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

/* A dynamic pool mapping, the value of both pool maps. The program stamps
 * last_used (CLOCK_BOOTTIME, ns) at most once a second; userspace reads it
 * before it lets a mapping idle out. */
struct nat64_pool_entry {
	__u8 ipv6[16];
	__u8 ipv4[4];
	__u32 pad;
	__u64 last_used;
};

/* The per-CPU counters: what the program translated, and why it left a
 * packet to the userspace translator (the punts). */
enum nat64_counter {
	NAT64_TRANSLATED_6TO4,
	NAT64_TRANSLATED_4TO6,
	NAT64_PUNT_DISABLED,
	NAT64_PUNT_RENUMBERING,
	NAT64_PUNT_NOT_IP,
	NAT64_PUNT_HEADERS,      /* IPv6 extension headers, IPv4 options */
	NAT64_PUNT_FRAGMENT,
	NAT64_PUNT_HOP_LIMIT,
	NAT64_PUNT_PROTOCOL,     /* neither TCP, UDP nor an ICMP echo */
	NAT64_PUNT_CHECKSUM,     /* a zero UDP checksum, a bad IPv4 header or ICMP checksum */
	NAT64_PUNT_DESTINATION,  /* no mapping, prefix or pool address for it */
	NAT64_PUNT_SOURCE,       /* no mapping or pool address yet (the pool's first packet) */
	NAT64_PUNT_POLICY,       /* a non-global address behind the well-known prefix */
	NAT64_PUNT_HAIRPIN,
	NAT64_PUNT_SIZE,         /* needs fragmenting, or an echo too long to check here */
	NAT64_PUNT_ERROR,        /* a helper failed */
	NAT64_COUNTERS
};

#define NAT64_ICMP_MAX 512   /* the longest ICMP echo the program checks and translates */

#endif
