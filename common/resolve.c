#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "resolve.h"
#include "util.h"

struct resolve_req {
	struct evdns_getaddrinfo_request *req;
	resolve_cb			 *cb;
	void				 *arg;
};

int
host_is_numeric(const char *host)
{
	struct in6_addr a6;
	struct in_addr	a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

void
sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	const void *addr = sa->sa_family == AF_INET6
	    ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
	    : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, addr, out, (socklen_t)outlen) == NULL)
		strlcpy_(out, "?", outlen);
}

static void
resolve_done(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct resolve_req *r = arg;

	if (r->cb == NULL)
		; /* cancelled: the owner is gone */
	else if (result != 0 || ai == NULL)
		r->cb(r->arg, NULL, 0, evutil_gai_strerror(result));
	else
		r->cb(r->arg, ai->ai_addr, (socklen_t)ai->ai_addrlen, NULL);
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	free(r);
}

struct resolve_req *
resolve_host(struct evdns_base *dns, const char *host, int port, resolve_cb *cb,
    void *arg)
{
	struct evutil_addrinfo		  hints;
	struct evdns_getaddrinfo_request *req;
	struct resolve_req		 *r;
	char				  portstr[16];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(portstr, sizeof(portstr), "%d", port);
	r = xcalloc(1, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	/* The callback may run (and free r) before this returns. */
	req = evdns_getaddrinfo(dns, host, portstr, &hints, resolve_done, r);
	if (req == NULL)
		return NULL;
	r->req = req;
	return r;
}

void
resolve_cancel(struct resolve_req *r)
{
	if (r == NULL)
		return;
	r->cb = NULL;
	evdns_getaddrinfo_cancel(r->req);
}
