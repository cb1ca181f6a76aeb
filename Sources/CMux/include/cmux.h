#ifndef SIXGATE_CMUX_H
#define SIXGATE_CMUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* What the multiplexer needs of the system that does not reach Swift:
   struct epoll_event is packed, splice(2) and IPV6_TRANSPARENT are GNU. */

/* epoll_ctl with a 64-bit token for the event's data. */
int sixgate_mux_epoll_ctl(int ep, int op, int fd, unsigned events, unsigned long long token);

/* epoll_wait into parallel arrays of tokens and event bits (at most 256). */
int sixgate_mux_epoll_wait(int ep, unsigned long long *tokens, unsigned *events, int n, int timeout);

/* Moves up to `len` bytes from `in` to `out` (one of them a pipe) without
   waiting. The bytes moved, 0 at the end of `in`, or -1 with errno. */
long sixgate_mux_splice(int in, int out, size_t len);

/* Lets an IPv6 socket bind to an address that is not the host's
   (IPV6_TRANSPARENT, needs CAP_NET_ADMIN), its port left to connect.
   0 or -1 with errno. */
int sixgate_mux_transparent6(int fd);

/* accept4(2), non-blocking and close-on-exec: the peer's address as 16
   bytes, an IPv4 address in the first four with *v4 set. */
int sixgate_mux_accept(int fd, uint8_t address[16], int *v4);

/* pipe2(2), non-blocking and close-on-exec. */
int sixgate_mux_pipe(int fds[2]);

/* The capacity of the pipe, raised towards `size` where allowed. */
int sixgate_mux_pipe_size(int fd, int size);

#endif
