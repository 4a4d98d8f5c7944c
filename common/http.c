#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "clipsweep_config.h"
#include "http.h"
#include "log.h"
#include "util.h"

/*
 * The libcurl multi glue follows curl's docs/examples/hiperfifo.c: curl
 * tells us which sockets to watch (http_socket_cb) and when to wake it
 * (http_timer_cb); our libevent callbacks call curl_multi_socket_action()
 * and then drain curl_multi_info_read().  curl_multi_socket_action() is
 * never called from inside a curl callback, and nothing here exits: a
 * failure fails the request it belongs to.
 */

enum http_req_state { HR_NEW, HR_QUEUED, HR_RUNNING };

struct http_request {
	TAILQ_ENTRY(http_request) entry;
	struct http	   *http;
	enum http_req_state state;
	char		   *method;
	char		   *url;
	struct curl_slist  *headers;
	int		    bad_header;
	char		   *body;
	size_t		    body_len;
	int		    has_body;
	size_t		    body_max;
	http_start_cb	   *start;
	void		   *start_arg;
	http_sink_cb	   *sink;
	void		   *sink_arg;
	int		    sink_refused;
	http_done_cb	   *done;
	void		   *done_arg;
	uint64_t	    seq; /* when it started, for the window */

	CURL	  *easy;
	struct buf resp;
	int	   resp_truncated;
	char	   errbuf[CURL_ERROR_SIZE];
};

TAILQ_HEAD(http_request_list, http_request);

/* One socket curl asked us to watch; attached with curl_multi_assign(). */
struct http_sock {
	LIST_ENTRY(http_sock) entry;
	curl_socket_t fd;
	struct event *ev;
};

struct http {
	struct event_base *base;
	CURLM		  *multi;
	struct event	  *timer_ev;
	struct event	  *defer_ev;
	LIST_HEAD(, http_sock) socks;
	struct http_request_list queued;
	struct http_request_list running;
	struct http_request_list failed; /* to report on the next turn */
	int			 ninflight;
	int			 nqueued;
	int			 timeout_ms;
	int			 connect_timeout_ms;
	int			 max_inflight;
	double			 window;  /* in flight allowed now, >= 1 */
	uint64_t		 started; /* requests started so far */
	uint64_t		 cut_seq; /* started when window last cut */
	double			 rate;	  /* requests per second, 0: no cap */
	double	      tokens; /* token bucket, at most max(1, rate) */
	int64_t	      tokens_us;
	struct event *rate_ev;
	CURL	    **idle_easy; /* handles kept for reuse */
	int	      nidle_easy;
	int	      idle_cap;
	int	      busy;   /* inside our event callbacks */
	int	      doomed; /* http_free() while busy */
};

static void http_start_queued(struct http *);
static void http_really_free(struct http *);

int
http_inflight(const struct http *h)
{
	return h->ninflight;
}

int
http_queued(const struct http *h)
{
	return h->nqueued;
}

int
http_window(const struct http *h)
{
	return (int)h->window;
}

/*
 * Congestion control on the server's overload signals (503 SlowDown, 429):
 * the number of requests in flight is halved, at most once per round of
 * requests (those started before the cut are already on the wire), and
 * grows back by one per window of successful requests, like TCP's.
 */
static void
http_congestion(struct http *h, const struct http_request *r, int status)
{
	if (status == 503 || status == 429) {
		if (r->seq <= h->cut_seq)
			return;
		h->window /= 2;
		if (h->window < 1.0)
			h->window = 1.0;
		h->cut_seq = h->started;
		log_debug("http: overload signal %d: at most %d requests in "
			  "flight",
		    status, (int)h->window);
	} else if (status >= 200 && status < 500) {
		h->window += 1.0 / h->window;
		if (h->window > h->max_inflight)
			h->window = h->max_inflight;
	}
}

struct http_request *
http_request_new(const char *method, const char *url)
{
	struct http_request *r;

	r = xcalloc(1, sizeof(*r));
	r->state = HR_NEW;
	r->method = xstrdup(method);
	r->url = xstrdup(url);
	r->body_max = HTTP_BODY_MAX;
	buf_init(&r->resp);
	/* curl would send "Expect: 100-continue" for bodies: one more RTT. */
	r->headers = curl_slist_append(NULL, "Expect:");
	if (r->headers == NULL)
		fatal("out of memory building an HTTP request");
	return r;
}

void
http_request_free(struct http_request *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->method);
	free(r->url);
	free(r->body);
	buf_free(&r->resp);
	free(r);
}

static int
header_text_ok(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

int
http_request_add_header(
    struct http_request *r, const char *name, const char *value)
{
	struct curl_slist *l;
	char		  *line;

	if (*name == '\0' || strchr(name, ':') != NULL ||
	    strpbrk(name, " \t") != NULL || !header_text_ok(name) ||
	    !header_text_ok(value)) {
		r->bad_header = 1;
		return -1;
	}
	/* "Name;" is curl's way to send a header with an empty value. */
	if (*value == '\0')
		line = xasprintf("%s;", name);
	else
		line = xasprintf("%s: %s", name, value);
	l = curl_slist_append(r->headers, line);
	free(line);
	if (l == NULL)
		fatal("out of memory building an HTTP request");
	r->headers = l;
	return 0;
}

void
http_request_set_body(struct http_request *r, const void *p, size_t n)
{
	free(r->body);
	r->body = xmalloc(n + 1);
	if (n > 0)
		memcpy(r->body, p, n);
	r->body[n] = '\0';
	r->body_len = n;
	r->has_body = 1;
}

void
http_request_set_body_max(struct http_request *r, size_t n)
{
	r->body_max = n;
}

void
http_request_set_start(struct http_request *r, http_start_cb *cb, void *arg)
{
	r->start = cb;
	r->start_arg = arg;
}

void
http_request_set_sink(struct http_request *r, http_sink_cb *cb, void *arg)
{
	r->sink = cb;
	r->sink_arg = arg;
}

const char *
http_response_header(const struct http_response *resp, const char *name)
{
	struct curl_header *h;

	if (resp->req == NULL || resp->req->easy == NULL)
		return NULL;
	if (curl_easy_header(resp->req->easy, name, 0, CURLH_HEADER, -1, &h) !=
	    CURLHE_OK)
		return NULL;
	return h->value;
}

static int
is_2xx(CURL *easy)
{
	long code = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	return code >= 200 && code < 300;
}

static void
http_buffer_body(struct http_request *r, const char *p, size_t n)
{
	size_t room = r->body_max -
	    (r->resp.len < r->body_max ? r->resp.len : r->body_max);

	if (n > room) {
		n = room;
		r->resp_truncated = 1;
	}
	if (n > 0)
		buf_add(&r->resp, p, n);
}

/* CURLOPT_WRITEFUNCTION: stream 2xx bodies to the sink, buffer the rest. */
static size_t
http_write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
	struct http_request *r = userp;
	size_t		     n = size * nmemb;

	if (r->sink != NULL && is_2xx(r->easy)) {
		if (r->sink(r->sink_arg, p, n) != 0) {
			r->sink_refused = 1;
			return 0; /* CURLE_WRITE_ERROR */
		}
		return n;
	}
	http_buffer_body(r, p, n);
	return n;
}

static void
http_set_method(struct http_request *r)
{
	CURL *e = r->easy;

	if (strcmp(r->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->has_body) {
		/* POSTFIELDS makes curl send the body, whatever the method. */
		curl_easy_setopt(
		    e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	}
}

static int
http_setup_easy(struct http *h, struct http_request *r)
{
	CURL *e;

	if (h->nidle_easy > 0) {
		e = r->easy = h->idle_easy[--h->nidle_easy];
		curl_easy_reset(e);
	} else if ((e = r->easy = curl_easy_init()) == NULL)
		return -1;
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(h->connect_timeout_ms < h->timeout_ms ? h->connect_timeout_ms
							 : h->timeout_ms));
	curl_easy_setopt(e, CURLOPT_USERAGENT, "clipsweep/" CLIPSWEEP_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	http_set_method(r);
	return 0;
}

static enum http_fail
http_classify(CURLcode rc, const struct http_request *r)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_FAIL_NONE;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_FAIL_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return HTTP_FAIL_CONNECT;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return HTTP_FAIL_NETWORK;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return HTTP_FAIL_TLS;
	case CURLE_WRITE_ERROR:
		return r->sink_refused ? HTTP_FAIL_ABORTED : HTTP_FAIL_OTHER;
	default:
		return HTTP_FAIL_OTHER;
	}
}

/*
 * A finished request's easy handle is kept for the next request (reset,
 * its allocations reused) rather than freed: one fewer curl_easy_init()
 * per request.
 */
static void
http_easy_keep(struct http_request *r)
{
	struct http *h = r->http;

	if (r->easy == NULL || h == NULL || h->doomed ||
	    h->nidle_easy >= h->max_inflight)
		return;
	if (h->nidle_easy == h->idle_cap) {
		h->idle_cap = h->idle_cap > 0 ? h->idle_cap * 2 : 16;
		h->idle_easy = xrealloc(
		    h->idle_easy, (size_t)h->idle_cap * sizeof(*h->idle_easy));
	}
	h->idle_easy[h->nidle_easy++] = r->easy;
	r->easy = NULL;
}

/* Call the done callback once, then free the request. */
static void
http_finish(struct http_request *r, enum http_fail fail, const char *error)
{
	struct http_response resp;
	long		     code = 0;

	memset(&resp, 0, sizeof(resp));
	if (r->easy != NULL)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
	resp.fail = fail;
	resp.error = error != NULL ? error : "";
	resp.status = (int)code;
	resp.body = r->resp.data != NULL ? r->resp.data : "";
	resp.body_len = r->resp.len;
	resp.body_truncated = r->resp_truncated;
	resp.req = r;
	if (r->done != NULL)
		r->done(r->done_arg, &resp);
	http_easy_keep(r);
	http_request_free(r);
}

static void
http_finish_curl(struct http_request *r, CURLcode rc)
{
	enum http_fail fail = http_classify(rc, r);
	char	       msg[CURL_ERROR_SIZE + 64];

	if (fail == HTTP_FAIL_NONE) {
		http_finish(r, fail, NULL);
		return;
	}
	if (fail == HTTP_FAIL_ABORTED)
		snprintf(msg, sizeof(msg),
		    "the response body was not "
		    "accepted by its reader");
	else
		snprintf(msg, sizeof(msg), "%s",
		    r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(rc));
	http_finish(r, fail, msg);
}

/* Drain finished transfers; called only from our libevent callbacks. */
static void
http_check_done(struct http *h)
{
	struct http_request *r;
	CURLMsg		    *m;
	CURLcode	     rc;
	char		    *priv;
	long		     status;
	int		     left;

	while (
	    !h->doomed && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		r = (struct http_request *)priv;
		if (rc == CURLE_OK &&
		    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE,
			&status) == CURLE_OK)
			http_congestion(h, r, (int)status);
		curl_multi_remove_handle(h->multi, m->easy_handle);
		TAILQ_REMOVE(&h->running, r, entry);
		h->ninflight--;
		http_finish_curl(r, rc);
	}
	http_start_queued(h);
}

static void
http_leave(struct http *h)
{
	if (--h->busy == 0 && h->doomed)
		http_really_free(h);
}

static void
http_event_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct http *h = arg;
	CURLMcode    mc;
	int	     action = 0, running;

	if (kind & EV_READ)
		action |= CURL_CSELECT_IN;
	if (kind & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	h->busy++;
	mc = curl_multi_socket_action(h->multi, fd, action, &running);
	if (mc != CURLM_OK)
		log_warnx("http: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
	http_check_done(h);
	http_leave(h);
}

static void
http_timeout_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct http *h = arg;
	CURLMcode    mc;
	int	     running;

	h->busy++;
	mc = curl_multi_socket_action(
	    h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	if (mc != CURLM_OK)
		log_warnx("http: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
	http_check_done(h);
	http_leave(h);
}

/* Requests that failed before reaching curl, reported on a later turn. */
static void
http_defer_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct http	    *h = arg;
	struct http_request *r;

	h->busy++;
	while (!h->doomed && (r = TAILQ_FIRST(&h->failed)) != NULL) {
		TAILQ_REMOVE(&h->failed, r, entry);
		http_finish(r, HTTP_FAIL_OTHER, r->errbuf);
	}
	http_leave(h);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm our timer, never act here. */
static int
http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http   *h = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(h->timer_ev);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(h->timer_ev, &tv) == 0 ? 0 : -1;
}

static void
http_sock_free(struct http_sock *s)
{
	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants. */
static int
http_socket_cb(
    CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http	 *h = userp;
	struct http_sock *s = socketp;
	short		  kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			http_sock_free(s);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->ev = event_new(h->base, fd, kind, http_event_cb, h);
		if (s->ev == NULL) {
			free(s);
			return -1;
		}
		LIST_INSERT_HEAD(&h->socks, s, entry);
		curl_multi_assign(h->multi, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, h->base, fd, kind, http_event_cb, h);
	}
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

static void
http_fail_later(struct http *h, struct http_request *r, const char *why)
{
	snprintf(r->errbuf, sizeof(r->errbuf), "%s", why);
	TAILQ_INSERT_TAIL(&h->failed, r, entry);
	event_active(h->defer_ev, EV_TIMEOUT, 0);
}

static void
http_start(struct http *h, struct http_request *r)
{
	CURLMcode mc;
	char	  why[CURL_ERROR_SIZE];

	if (r->start != NULL &&
	    r->start(r->start_arg, r, why, sizeof(why)) != 0) {
		http_fail_later(h, r, why);
		return;
	}
	if (r->bad_header) {
		http_fail_later(h, r,
		    "a request header has a bad name or "
		    "value");
		return;
	}
	if (http_setup_easy(h, r) != 0) {
		http_fail_later(h, r, "cannot create a curl handle");
		return;
	}
	if ((mc = curl_multi_add_handle(h->multi, r->easy)) != CURLM_OK) {
		snprintf(why, sizeof(why), "cannot start the request: %s",
		    curl_multi_strerror(mc));
		http_fail_later(h, r, why);
		return;
	}
	r->state = HR_RUNNING;
	r->seq = ++h->started;
	TAILQ_INSERT_TAIL(&h->running, r, entry);
	h->ninflight++;
}

/*
 * The optional request-rate cap, for providers that throttle: a token
 * bucket refilled at h->rate per second, one token per request.  Returns 1
 * when a request may start now, else arms rate_ev for the next token.
 */
static int
http_rate_take(struct http *h)
{
	int64_t now;
	double	burst = h->rate > 1.0 ? h->rate : 1.0, wait_s;

	if (h->rate <= 0)
		return 1;
	now = mono_us();
	h->tokens += (double)(now - h->tokens_us) / 1e6 * h->rate;
	if (h->tokens > burst)
		h->tokens = burst;
	h->tokens_us = now;
	if (h->tokens >= 1.0) {
		h->tokens -= 1.0;
		return 1;
	}
	if (!evtimer_pending(h->rate_ev, NULL)) {
		struct timeval tv;
		wait_s = (1.0 - h->tokens) / h->rate;
		tv.tv_sec = (time_t)wait_s;
		tv.tv_usec = (suseconds_t)((wait_s - (double)tv.tv_sec) * 1e6) +
		    1;
		evtimer_add(h->rate_ev, &tv);
	}
	return 0;
}

static void
http_rate_cb(evutil_socket_t fd, short kind, void *arg)
{
	http_start_queued(arg);
}

void
http_set_rate(struct http *h, double per_second)
{
	h->rate = per_second > 0 ? per_second : 0;
	h->tokens = 1.0;
	h->tokens_us = mono_us();
}

static void
http_start_queued(struct http *h)
{
	struct http_request *r;

	while (!h->doomed && h->ninflight < (int)h->window &&
	    !TAILQ_EMPTY(&h->queued) && http_rate_take(h) &&
	    (r = TAILQ_FIRST(&h->queued)) != NULL) {
		TAILQ_REMOVE(&h->queued, r, entry);
		h->nqueued--;
		http_start(h, r);
	}
}

int
http_submit(struct http *h, struct http_request *r, http_done_cb *cb, void *arg)
{
	if (h->doomed) {
		http_request_free(r);
		return -1;
	}
	r->http = h;
	r->done = cb;
	r->done_arg = arg;
	r->state = HR_QUEUED;
	TAILQ_INSERT_TAIL(&h->queued, r, entry);
	h->nqueued++;
	/* Start at once when there is room: curl only arms its timer here. */
	http_start_queued(h);
	return 0;
}

static void
http_apply_limits(struct http *h)
{
	curl_multi_setopt(
	    h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->max_inflight);
	curl_multi_setopt(
	    h->multi, CURLMOPT_MAXCONNECTS, (long)h->max_inflight);
}

void
http_set_limits(
    struct http *h, int timeout_ms, int connect_timeout_ms, int max_inflight)
{
	if (timeout_ms > 0)
		h->timeout_ms = timeout_ms;
	if (connect_timeout_ms > 0)
		h->connect_timeout_ms = connect_timeout_ms;
	if (max_inflight > 0)
		h->max_inflight = h->window = max_inflight;
	http_apply_limits(h);
	http_start_queued(h);
}

struct http *
http_new(struct event_base *base)
{
	struct http *h;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatal("curl_global_init failed");
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->timeout_ms = HTTP_TIMEOUT_MS;
	h->connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS;
	h->max_inflight = HTTP_MAX_INFLIGHT;
	h->window = HTTP_MAX_INFLIGHT;
	LIST_INIT(&h->socks);
	TAILQ_INIT(&h->queued);
	TAILQ_INIT(&h->running);
	TAILQ_INIT(&h->failed);
	if ((h->multi = curl_multi_init()) == NULL)
		fatal("curl_multi_init failed");
	h->timer_ev = evtimer_new(base, http_timeout_cb, h);
	h->rate_ev = evtimer_new(base, http_rate_cb, h);
	h->defer_ev = event_new(base, -1, 0, http_defer_cb, h);
	if (h->timer_ev == NULL || h->defer_ev == NULL)
		fatal("cannot create the HTTP timer events");
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	curl_multi_setopt(
	    h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	http_apply_limits(h);
	return h;
}

static void
http_cancel_list(struct http_request_list *list)
{
	struct http_request *r;

	while ((r = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, r, entry);
		if (r->state == HR_RUNNING)
			curl_multi_remove_handle(r->http->multi, r->easy);
		http_finish(
		    r, HTTP_FAIL_CANCELLED, "the request was cancelled");
	}
}

static void
http_really_free(struct http *h)
{
	struct http_sock *s;

	h->busy++;
	http_cancel_list(&h->running);
	http_cancel_list(&h->queued);
	http_cancel_list(&h->failed);
	h->ninflight = h->nqueued = 0;
	curl_multi_cleanup(h->multi);
	while (h->nidle_easy > 0)
		curl_easy_cleanup(h->idle_easy[--h->nidle_easy]);
	free(h->idle_easy);
	while ((s = LIST_FIRST(&h->socks)) != NULL)
		http_sock_free(s);
	event_free(h->timer_ev);
	event_free(h->rate_ev);
	event_free(h->defer_ev);
	free(h);
	curl_global_cleanup();
}

void
http_free(struct http *h)
{
	if (h == NULL || h->doomed)
		return;
	h->doomed = 1;
	if (h->busy > 0)
		return;
	http_really_free(h);
}
