#define _GNU_SOURCE
#include "cmux.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

int sixgate_mux_epoll_ctl(int ep, int op, int fd, unsigned events, unsigned long long token) {
    struct epoll_event e = { .events = events, .data.u64 = token };
    return epoll_ctl(ep, op, fd, &e);
}

int sixgate_mux_epoll_wait(int ep, unsigned long long *tokens, unsigned *events, int n, int timeout) {
    struct epoll_event e[256];
    if (n > 256) n = 256;
    int got = epoll_wait(ep, e, n, timeout);
    for (int i = 0; i < got; i++) {
        tokens[i] = e[i].data.u64;
        events[i] = e[i].events;
    }
    return got;
}

long sixgate_mux_splice(int in, int out, size_t len) {
    return splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int sixgate_mux_transparent6(int fd) {
    int on = 1;
    /* The port is chosen at connect, by the whole 4-tuple, rather than at
       bind among every port the client's address holds already. */
    (void)setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
    return setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &on, sizeof on);
}

int sixgate_mux_pipe_size(int fd, int size) {
    int got = fcntl(fd, F_SETPIPE_SZ, size);
    return got > 0 ? got : fcntl(fd, F_GETPIPE_SZ);
}

int sixgate_mux_accept(int fd, uint8_t address[16], int *v4) {
    struct sockaddr_storage a;
    socklen_t length = sizeof a;
    int got = accept4(fd, (struct sockaddr *)&a, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (got >= 0) {
        *v4 = a.ss_family == AF_INET;
        if (*v4)
            memcpy(address, &((struct sockaddr_in *)&a)->sin_addr, 4);
        else
            memcpy(address, &((struct sockaddr_in6 *)&a)->sin6_addr, 16);
    }
    return got;
}

int sixgate_mux_pipe(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }
