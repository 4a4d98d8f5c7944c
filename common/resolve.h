#ifndef CLIPSWEEP_RESOLVE_H
#define CLIPSWEEP_RESOLVE_H

#include <sys/socket.h>

struct evdns_base;
struct resolve_req;

/*
 * Called once with the first address for the name, or with sa == NULL and
 * err set.  sa is valid only during the callback; copy what you keep.
 */
typedef void resolve_cb(
    void *arg, const struct sockaddr *sa, socklen_t len, const char *err);

/*
 * Resolve host without blocking the loop (evdns).  A numeric address is
 * answered at once, before this returns.  Returns a handle that
 * resolve_cancel() may use until the callback has run, or NULL when the
 * callback already ran.  After resolve_cancel() the callback never runs.
 */
struct resolve_req *resolve_host(
    struct evdns_base *, const char *host, int port, resolve_cb *, void *arg);
void resolve_cancel(struct resolve_req *);

/* True when host is a numeric IPv4 or IPv6 address. */
int host_is_numeric(const char *host);

/* The numeric text of sa into out (INET6_ADDRSTRLEN bytes). */
void sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen);

#endif
