#ifndef SIXGATE_CNETLINK_SHIM_H
#define SIXGATE_CNETLINK_SHIM_H

// glibc first: linux/libc-compat.h then skips the definitions glibc already made.
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>

#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/udata.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#include <sys/syscall.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* setns(2) is declared only under _GNU_SOURCE, which Swift's Glibc module does
   not set; the raw system call needs no feature macro. */
#define SIXGATE_CLONE_NEWNET 0x40000000
static inline int sixgate_setns_net(int fd) { return (int)syscall(SYS_setns, fd, SIXGATE_CLONE_NEWNET); }

/* sendmmsg(2) and struct mmsghdr are declared only under _GNU_SOURCE too. */
struct sixgate_mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
static inline int sixgate_sendmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags) {
    return (int)syscall(SYS_sendmmsg, fd, v, n, flags);
}
/* MSG_WAITFORONE: wait for the first datagram, take what else is queued. */
static inline int sixgate_recvmmsg_waitforone(int fd, struct sixgate_mmsghdr *v, unsigned int n) {
    return (int)syscall(SYS_recvmmsg, fd, v, n, 0x10000, NULL);
}

/* Steers each datagram of a SO_REUSEPORT group to the socket numbered
   (CPU that received it) mod n, by a classic BPF program on the group. */
#include <linux/filter.h>
static inline int sixgate_reuseport_by_cpu(int fd, unsigned int n) {
    struct sock_filter code[] = {
        { BPF_LD | BPF_W | BPF_ABS, 0, 0, (unsigned int)(SKF_AD_OFF + SKF_AD_CPU) },
        { BPF_ALU | BPF_MOD | BPF_K, 0, 0, n },
        { BPF_RET | BPF_A, 0, 0, 0 },
    };
    struct sock_fprog prog = { 3, code };
    return setsockopt(fd, SOL_SOCKET, 51 /* SO_ATTACH_REUSEPORT_CBPF */, &prog, sizeof prog);
}

/* MSG_DONTWAIT: what is queued now, or EAGAIN. */
static inline int sixgate_recvmmsg_nowait(int fd, struct sixgate_mmsghdr *v, unsigned int n) {
    return (int)syscall(SYS_recvmmsg, fd, v, n, 0x40, NULL);
}
/* epoll with plain file descriptors: struct epoll_event is packed, which
   Swift imports poorly. */
static inline int sixgate_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
static inline int sixgate_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline int sixgate_epoll_add(int ep, int fd) {
    struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}
/* Up to n ready descriptors into fds; their count, or -1. */
static inline int sixgate_epoll_wait(int ep, int *fds, int n, int timeout) {
    struct epoll_event e[64];
    if (n > 64) n = 64;
    int got = epoll_wait(ep, e, n, timeout);
    for (int i = 0; i < got; i++) fds[i] = e[i].data.fd;
    return got;
}

/* ioctl(2) is variadic, which Swift cannot call. */
static inline int sixgate_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static inline int sixgate_ioctl_int(int fd, unsigned long request, unsigned long arg) { return ioctl(fd, request, arg); }

/* TUNSETIFF and TUNSETPERSIST expand through the function-like _IOW(), which
   Swift does not import; their encoding differs between architectures. */
static inline unsigned long sixgate_tunsetiff(void) { return TUNSETIFF; }
static inline unsigned long sixgate_tunsetpersist(void) { return TUNSETPERSIST; }
static inline unsigned long sixgate_tunsetoffload(void) { return TUNSETOFFLOAD; }
static inline unsigned long sixgate_tungetiff(void) { return TUNGETIFF; }

#endif
