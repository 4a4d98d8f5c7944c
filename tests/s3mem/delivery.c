/*
 * Late, missing and dropped replies.  Everything that is not sent at once
 * waits for a timer, even with no delay, so that connections are only
 * ever dropped from the event loop, never from inside evhttp's own
 * callback.
 *
 * evhttp stops reading a connection while its request is being handled,
 * so it would not notice a client that gives up on a held request: the
 * connection would sit in CLOSE_WAIT until the answer is due, or for a
 * stall until s3mem exits.  Each held request watches its socket itself
 * and is dropped when the client closes it.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#include "delivery.h"
#include "log.h"
#include "util.h"

struct held {
	TAILQ_ENTRY(held) entry;
	struct delivery	      *dl;
	struct evhttp_request *req;
	struct event	       timer;
	int		       timed;
	struct event	       watch; /* the client's socket, for EOF */
	int		       watching;
	enum fault_outcome     how; /* FAULT_ANSWER: send body */
	int		       status;
	const char	      *reason;
	struct evbuffer	      *body;
};

struct delivery {
	struct event_base *base;
	TAILQ_HEAD(, held) held;
	unsigned nheld;
};

struct delivery *
delivery_new(struct event_base *base)
{
	struct delivery *dl = xcalloc(1, sizeof(*dl));

	dl->base = base;
	TAILQ_INIT(&dl->held);
	return dl;
}

/* Before the connection goes: its socket may be closed with it. */
static void
unwatch(struct held *h)
{
	if (h->watching)
		event_del(&h->watch);
	h->watching = 0;
}

static void
held_free(struct held *h)
{
	struct delivery *dl = h->dl;

	TAILQ_REMOVE(&dl->held, h, entry);
	dl->nheld--;
	if (h->timed)
		event_del(&h->timer);
	unwatch(h);
	if (h->body != NULL)
		evbuffer_free(h->body);
	free(h);
}

void
delivery_free(struct delivery *dl)
{
	struct held *h;

	if (dl == NULL)
		return;
	while ((h = TAILQ_FIRST(&dl->held)) != NULL) {
		if (evhttp_request_get_connection(h->req) == NULL)
			evhttp_request_free(h->req);
		held_free(h);
	}
	free(dl);
}

static evutil_socket_t
request_fd(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);

	if (conn == NULL)
		return -1;
	return bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
}

/*
 * Drops the request's connection without an answer.  evhttp shuts the
 * socket down before it closes it, so with SO_LINGER 0 alone the client
 * would read a FIN (EOF) before the RST.  connect() to AF_UNSPEC aborts a
 * TCP connection at once on Linux: the RST comes first.
 */
static void
drop_connection(struct evhttp_request *req, int abort)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct sockaddr		  unspec;
	evutil_socket_t		  fd = request_fd(req);

	if (conn == NULL) {
		/* The client left first: nothing to drop. */
		evhttp_request_free(req);
		return;
	}
	if (abort && fd >= 0) {
		memset(&unspec, 0, sizeof(unspec));
		unspec.sa_family = AF_UNSPEC;
		(void)connect(fd, &unspec, sizeof(unspec));
	}
	evhttp_connection_free(conn);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;

	(void)fd;
	(void)what;
	h->timed = 0;
	unwatch(h);
	if (h->how == FAULT_ANSWER)
		evhttp_send_reply(h->req, h->status, h->reason, h->body);
	else
		drop_connection(h->req, h->how == FAULT_RESET);
	held_free(h);
}

/* The held request's socket is readable: EOF means the client left. */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;
	char	     c;
	ssize_t	     n;

	(void)what;
	h->watching = 0;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
		/* Not an EOF (a pipelined request?): stop watching. */
		return;
	}
	drop_connection(h->req, 0);
	held_free(h);
}

static void
watch_client(struct delivery *dl, struct held *h)
{
	evutil_socket_t fd = request_fd(h->req);

	if (fd < 0)
		return;
	if (event_assign(&h->watch, dl->base, fd, EV_READ, on_readable, h) !=
		0 ||
	    event_add(&h->watch, NULL) != 0)
		fatal("s3mem: cannot watch a held connection");
	h->watching = 1;
}

static void
hold(struct delivery *dl, struct evhttp_request *req, enum fault_outcome how,
    int64_t delay_ms, struct held **out)
{
	struct held   *h = xcalloc(1, sizeof(*h));
	struct timeval tv;

	h->dl = dl;
	h->req = req;
	h->how = how;
	TAILQ_INSERT_TAIL(&dl->held, h, entry);
	dl->nheld++;
	if (out != NULL)
		*out = h;
	watch_client(dl, h);
	if (how == FAULT_STALL)
		return;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000 * 1000);
	if (event_assign(&h->timer, dl->base, -1, 0, on_timer, h) != 0 ||
	    event_add(&h->timer, &tv) != 0)
		fatal("s3mem: cannot add a timer");
	h->timed = 1;
}

void
delivery_send(struct delivery *dl, struct evhttp_request *req, int status,
    const char *reason, struct evbuffer *body, int64_t delay_ms)
{
	struct held *h;

	if (delay_ms <= 0) {
		evhttp_send_reply(req, status, reason, body);
		evbuffer_free(body);
		return;
	}
	hold(dl, req, FAULT_ANSWER, delay_ms, &h);
	h->status = status;
	h->reason = reason;
	h->body = body;
}

void
delivery_drop(struct delivery *dl, struct evhttp_request *req,
    enum fault_outcome how, int64_t delay_ms)
{
	hold(dl, req, how, delay_ms, NULL);
}

unsigned
delivery_held(const struct delivery *dl)
{
	return dl->nheld;
}
