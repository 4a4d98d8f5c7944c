#ifndef CLIPSWEEP_NOTIFY_H
#define CLIPSWEEP_NOTIFY_H

#include <stdint.h>

/*
 * The service manager's notification protocol (sd_notify(3)): one datagram
 * of newline-separated assignments to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
 * Without $NOTIFY_SOCKET every call does nothing, so the worker runs the
 * same under systemd, a container runtime or a shell.
 */
struct notify;

/* Reads and unsets $NOTIFY_SOCKET; NULL when there is none. */
struct notify *notify_open(void);
void	       notify_close(struct notify *);

/* Sends one message ("READY=1", "STATUS=..."); -1 if it was not sent. */
int notify_send(struct notify *, const char *msg);

/*
 * The watchdog interval in microseconds from $WATCHDOG_USEC, when it is
 * meant for this process ($WATCHDOG_PID unset or ours); 0 otherwise.
 */
int64_t notify_watchdog_usec(void);

#endif
