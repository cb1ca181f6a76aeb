#ifndef SIXGATE_CPROCESS_H
#define SIXGATE_CPROCESS_H

#include <stddef.h>

/* What sixgated's part processes need of the system that does not reach
   Swift: prctl(2) is variadic, capset(2) has no glibc wrapper, the CMSG
   macros are macros, and a signal handler must not run Swift code. */

/* Drops every capability outside `keep` (a bit per capability, up to `last`)
   from the calling thread's bounding, ambient, permitted, effective and
   inheritable sets. 0, or -1 with errno. */
int sixgate_keep_capabilities(unsigned long long keep, int last);

/* One datagram with up to 250 descriptors attached (SCM_RIGHTS), without
   waiting. The bytes sent, or -1 with errno. */
long sixgate_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/* Receives one datagram and the descriptors attached to it (close-on-exec),
   at most `maxfds`, their count in *nfds; those beyond are closed. */
long sixgate_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds);

/* The Swift runtime's backtracer returns from a crash signal, trusting the
   fault to recur and end the process once its handler is gone; one sent
   with kill(2) does not recur, and the process would go on. From now on a
   crash signal sent by a process ends this one as it would without the
   backtracer; a real fault still goes to the backtracer. */
void sixgate_die_of_sent_crash_signals(void);

#endif
