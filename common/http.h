#ifndef CLIPSWEEP_HTTP_H
#define CLIPSWEEP_HTTP_H

#include <stddef.h>

#include "util.h"

struct event_base;
struct http;
struct http_request;

/*
 * HTTP/1.1 requests on one libcurl multi handle driven by a libevent loop
 * (curl's hiperfifo pattern).  Connections are kept alive and reused; at
 * most max_inflight requests run at once and the rest wait in a FIFO
 * queue.  TLS peers are always verified.  Nothing here knows about S3.
 *
 * Every submitted request gets exactly one done callback, from the event
 * loop, never from inside http_submit().
 */

enum http_fail {
	HTTP_FAIL_NONE = 0,  /* a complete response was received */
	HTTP_FAIL_TIMEOUT,   /* the request or connect timeout expired */
	HTTP_FAIL_CONNECT,   /* resolving, connecting or the TLS handshake */
	HTTP_FAIL_NETWORK,   /* the connection broke during the exchange */
	HTTP_FAIL_TLS,	     /* the peer's certificate was not accepted */
	HTTP_FAIL_ABORTED,   /* the body sink refused the body */
	HTTP_FAIL_CANCELLED, /* http_free() while the request was pending */
	HTTP_FAIL_OTHER,
};

/*
 * What came back.  Valid only during the done callback; copy what you
 * keep.  A body is buffered (and NUL-terminated) unless a sink took it;
 * a buffered body longer than the request's cap is cut, with truncated set.
 */
struct http_response {
	enum http_fail	     fail;
	const char	    *error;  /* "" when fail is NONE */
	int		     status; /* 0 when no response */
	const char	    *body;
	size_t		     body_len;
	int		     body_truncated;
	struct http_request *req; /* for http_response_header() */
};

/* Default per-request and connect timeouts, parallelism and body cap. */
#define HTTP_TIMEOUT_MS		30000
#define HTTP_CONNECT_TIMEOUT_MS 10000
#define HTTP_MAX_INFLIGHT	64
#define HTTP_BODY_MAX		(64 * 1024)

struct http *http_new(struct event_base *);
/*
 * Requests still pending get their callback with HTTP_FAIL_CANCELLED.
 * May be called from a done callback.
 */
void http_free(struct http *);
/* Applies to requests submitted afterwards; values <= 0 keep the current. */
void http_set_limits(
    struct http *, int timeout_ms, int connect_timeout_ms, int max_inflight);
/* Cap requests started per second (0: no cap); a burst of one second. */
void http_set_rate(struct http *, double per_second);
/* Requests on the wire, and requests waiting for a slot. */
int http_inflight(const struct http *);
int http_queued(const struct http *);
/*
 * How many requests may be in flight now: max_inflight, halved on each
 * round of 503/429 answers and grown back by successes.
 */
int http_window(const struct http *);

/*
 * A request to build and submit.  url must be fully encoded; it is sent as
 * is (no dot-segment removal).  Strings and the body are copied.
 */
struct http_request *http_request_new(const char *method, const char *url);
/* Discard a request that was never submitted. */
void http_request_free(struct http_request *);
/* Returns -1 for a name or value with CR, LF or NUL, or an empty name. */
int http_request_add_header(
    struct http_request *, const char *name, const char *value) MUST_CHECK;
void http_request_set_body(struct http_request *, const void *, size_t);
/* Cap for a buffered body (default HTTP_BODY_MAX). */
void http_request_set_body_max(struct http_request *, size_t);

/*
 * Stream the body of a 2xx response to sink instead of buffering it; other
 * bodies are still buffered (and capped).  A sink returns 0 to go on or -1
 * to abort the transfer (the request then fails with HTTP_FAIL_ABORTED).
 * data is valid only during the call.
 */
typedef int http_sink_cb(void *arg, const char *data, size_t len);
void http_request_set_sink(struct http_request *, http_sink_cb *, void *arg);

/*
 * Called when the request leaves the queue, just before it goes out: the
 * place for headers that must be fresh, like a signature and its date.
 * Returning -1 fails the request (HTTP_FAIL_OTHER) with the message the
 * hook wrote to err.
 */
typedef int http_start_cb(
    void *arg, struct http_request *, char *err, size_t errlen);
void http_request_set_start(struct http_request *, http_start_cb *, void *arg);

/*
 * Send req.  The request is owned by the http handle from now on, also
 * when -1 is returned (http_free() in progress); then cb is never called.
 */
typedef void http_done_cb(void *arg, const struct http_response *);
int	     http_submit(
	     struct http *, struct http_request *, http_done_cb *, void *arg) MUST_CHECK;

/*
 * A header of the final response (case-insensitive name), or NULL.  Valid
 * only during the done callback.
 */
const char *http_response_header(
    const struct http_response *, const char *name);

#endif
