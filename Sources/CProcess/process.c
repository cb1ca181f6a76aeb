#include "cprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int sixgate_keep_capabilities(unsigned long long keep, int last) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    /* Dropping from the bounding set needs CAP_SETPCAP, which capset then drops. */
    for (int cap = 0; cap <= last && cap < 64; cap++)
        if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -1;
    for (int i = 0; i < 2; i++) {
        data[i].permitted &= (unsigned int)(keep >> (32 * i));
        data[i].effective = data[i].permitted;
        data[i].inheritable = 0;
    }
    return (int)syscall(SYS_capset, &header, data);
}

#define MAX_FDS 250

long sixgate_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    union { char space[CMSG_SPACE(MAX_FDS * sizeof(int))]; struct cmsghdr align; } control;
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds < 0 || nfds > MAX_FDS) { errno = EINVAL; return -1; }
    if (nfds > 0) {
        msg.msg_control = control.space;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

long sixgate_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
    union { char space[CMSG_SPACE(MAX_FDS * sizeof(int))]; struct cmsghdr align; } control;
    struct iovec iov = { buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    *nfds = 0;
    long n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int got[MAX_FDS + 8];
        if (count > MAX_FDS + 8) count = MAX_FDS + 8;
        memcpy(got, CMSG_DATA(c), count * sizeof(int));
        for (int i = 0; i < count; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = got[i];
            else close(got[i]);
        }
    }
    return n;
}

static struct sigaction previous[NSIG];

static void crash_handler(int sig, siginfo_t *info, void *context) {
    struct sigaction *p = &previous[sig];
    int sent = info->si_code <= 0;
    if (sent || (!(p->sa_flags & SA_SIGINFO) && (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN))) {
        /* Blocked while this handler runs: delivered, by default, as it returns. */
        signal(sig, SIG_DFL);
        if (sent) raise(sig);
        return;
    }
    if (p->sa_flags & SA_SIGINFO) p->sa_sigaction(sig, info, context);
    else p->sa_handler(sig);
}

void sixgate_die_of_sent_crash_signals(void) {
    const int signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE };
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction handler;
        memset(&handler, 0, sizeof handler);
        handler.sa_sigaction = crash_handler;
        handler.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&handler.sa_mask);
        sigaction(signals[i], &handler, &previous[signals[i]]);
    }
}

/* `sixgated part NAME … --capabilities HEX`: the part process keeps only the
   capabilities its supervisor names. Dropped here, before main: they belong
   to threads, and before main there is only this one. */
__attribute__((constructor)) static void part_capabilities(void) {
    static char cmdline[65536];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    if (n <= 0) return;
    cmdline[n] = 0;
    const char *args[64];
    int count = 0;
    for (char *p = cmdline; p < cmdline + n && count < 64; p += strlen(p) + 1) args[count++] = p;
    if (count < 3 || strcmp(args[1], "part") != 0) return;
    const char *mask = NULL;
    for (int i = 3; i + 1 < count; i++)
        if (strcmp(args[i], "--capabilities") == 0) mask = args[i + 1];
    if (!mask) return;
    int last = 40;
    fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char text[16] = { 0 };
        if (read(fd, text, sizeof text - 1) > 0) last = atoi(text);
        close(fd);
    }
    if (sixgate_keep_capabilities(strtoull(mask, NULL, 16), last) != 0) {
        dprintf(2, "sixgated[%s]: cannot drop the capabilities it does not need: %s\n", args[2], strerror(errno));
        _exit(1);
    }
}
