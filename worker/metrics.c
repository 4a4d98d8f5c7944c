#include <sys/socket.h>
#include <sys/queue.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "clipsweep_config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "s3.h"
#include "util.h"

#define GAUGE_REFRESH_MS 5000 /* queue depths */
#define PROBE_CACHE_MS	 1000 /* a /readyz answer is good this long */
#define PROBE_TIMEOUT_MS 2000 /* a check that takes longer fails */
#define STORAGE_SERIES	 64

static const char *const task_types[] = {
    "job_cleanup", "retention_sweep", "sweep_shard", "invalid"};
static const char *const task_statuses[] = {
    "ok", "partial", "failed", "refused", "retrying", "dead_letter"};
static const double buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};

#define NTYPES	  (sizeof(task_types) / sizeof(task_types[0]))
#define NSTATUSES (sizeof(task_statuses) / sizeof(task_statuses[0]))
#define NBUCKETS  (sizeof(buckets) / sizeof(buckets[0]))

struct histogram {
	unsigned long long counts[NBUCKETS + 1]; /* the last: +Inf only */
	unsigned long long count;
	double		   sum;
};

struct storage_series {
	const char	  *op; /* static */
	int		   status;
	unsigned long long n;
};

enum check { CHECK_REDIS, CHECK_DB, CHECK_STORAGE, NCHECKS };
static const char *const check_names[] = {"redis", "postgresql", "storage"};

/* A waiting /readyz request. */
struct waiter {
	TAILQ_ENTRY(waiter) entry;
	struct evhttp_request *req;
};
TAILQ_HEAD(waiter_list, waiter);

/*
 * One round of readiness checks.  It outlives the metrics when a check is
 * still out as they are freed: the late callback finds it orphaned.
 */
struct probe {
	struct metrics *m; /* NULL once orphaned */
	int		pending;
	int		ok[NCHECKS];
	char		why[NCHECKS][160];
};

struct metrics {
	struct event_base     *base;
	struct evhttp	      *http;
	char		       address[80];
	struct metrics_sources src;
	int		       have_src;
	unsigned long long     tasks[NTYPES][NSTATUSES];
	struct histogram       duration[NTYPES];
	unsigned long long     deleted_objects;
	unsigned long long     deleted_bytes;
	double		       last_sweep_ok; /* seconds; 0: never */
	struct storage_series  storage[STORAGE_SERIES];
	size_t		       nstorage;
	unsigned long long     storage_other;
	long long	      *depth; /* per queue; -1 unknown */
	long long	       dead, scheduled;
	int		       gauges_pending;
	struct event	      *gauge_ev;
	struct probe	      *probe; /* in flight, or NULL */
	struct event	      *probe_ev;
	struct waiter_list     waiters;
	int64_t		       ready_at; /* of the cached answer */
	int		       ready_ok;
	char		       ready_text[600];
};

static size_t
index_of(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return n;
}

void
metrics_task(
    struct metrics *m, const char *type, const char *status, double seconds)
{
	size_t		  t, s, b;
	struct histogram *h;

	if (m == NULL)
		return;
	if ((t = index_of(task_types, NTYPES, type)) == NTYPES)
		t = NTYPES - 1; /* "invalid" */
	if ((s = index_of(task_statuses, NSTATUSES, status)) == NSTATUSES)
		return;
	m->tasks[t][s]++;
	h = &m->duration[t];
	for (b = 0; b < NBUCKETS && seconds > buckets[b]; b++)
		;
	h->counts[b]++;
	h->count++;
	h->sum += seconds;
}

void
metrics_deleted(struct metrics *m, long long objects, long long bytes)
{
	if (m == NULL)
		return;
	if (objects > 0)
		m->deleted_objects += (unsigned long long)objects;
	if (bytes > 0)
		m->deleted_bytes += (unsigned long long)bytes;
}

void
metrics_sweep_ok(struct metrics *m, int64_t when_ms)
{
	if (m != NULL)
		m->last_sweep_ok = (double)when_ms / 1000.0;
}

void
metrics_storage(void *arg, const char *op, int status)
{
	struct metrics *m = arg;
	size_t		i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nstorage; i++)
		if (m->storage[i].status == status &&
		    strcmp(m->storage[i].op, op) == 0) {
			m->storage[i].n++;
			return;
		}
	if (m->nstorage == STORAGE_SERIES) {
		m->storage_other++;
		return;
	}
	m->storage[m->nstorage].op = op;
	m->storage[m->nstorage].status = status;
	m->storage[m->nstorage].n = 1;
	m->nstorage++;
}

/* Gauges read from Redis every few seconds; -1 until known. */
static void
gauge_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	long long *slot = arg;

	*slot = redis_reply_failed(reply) ||
		redis_reply_type(reply) != REDIS_R_INTEGER
	    ? -1
	    : redis_reply_int(reply);
}

static void
gauge_refresh(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;
	size_t		i;

	if (!m->have_src || !redis_is_ready(m->src.redis))
		return;
	for (i = 0; i < m->src.nqueues; i++)
		if (redis_cmd(m->src.redis, gauge_reply, &m->depth[i], "LLEN",
			m->src.queue_keys[i], (char *)NULL) != 0)
			m->depth[i] = -1;
	if (redis_cmd(m->src.redis, gauge_reply, &m->dead, "LLEN",
		m->src.dead_key, (char *)NULL) != 0)
		m->dead = -1;
	if (redis_cmd(m->src.redis, gauge_reply, &m->scheduled, "ZCARD",
		m->src.scheduled_key, (char *)NULL) != 0)
		m->scheduled = -1;
}

void
metrics_set_sources(struct metrics *m, const struct metrics_sources *src)
{
	struct timeval tv = {GAUGE_REFRESH_MS / 1000, 0};
	size_t	       i;

	if (m == NULL)
		return;
	m->src = *src;
	m->have_src = 1;
	m->depth = xcalloc(src->nqueues, sizeof(*m->depth));
	for (i = 0; i < src->nqueues; i++)
		m->depth[i] = -1;
	m->dead = m->scheduled = -1;
	m->gauge_ev = event_new(m->base, -1, EV_PERSIST, gauge_refresh, m);
	evtimer_add(m->gauge_ev, &tv);
	if (src->s3 != NULL)
		s3_client_set_observer(src->s3, metrics_storage, m);
}

/* The exposition. */

static void
family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(
	    b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
gauge_value(struct evbuffer *b, const char *series, long long v)
{
	if (v < 0)
		evbuffer_add_printf(b, "%s NaN\n", series);
	else
		evbuffer_add_printf(b, "%s %lld\n", series, v);
}

static void
render(struct metrics *m, struct evbuffer *b)
{
	size_t t, s, i;

	family(b, "clipsweep_build_info", "gauge",
	    "The worker's version; always 1.");
	evbuffer_add_printf(
	    b, "clipsweep_build_info{version=\"%s\"} 1\n", CLIPSWEEP_VERSION);

	family(b, "clipsweep_tasks_total", "counter",
	    "Tasks this worker ended, by type and status (retrying: an "
	    "attempt that will run again; dead_letter: a message that was "
	    "not a valid task).");
	for (t = 0; t < NTYPES; t++)
		for (s = 0; s < NSTATUSES; s++)
			evbuffer_add_printf(b,
			    "clipsweep_tasks_total{type=\"%s\",status=\"%s\"} "
			    "%llu\n",
			    task_types[t], task_statuses[s], m->tasks[t][s]);

	family(b, "clipsweep_task_duration_seconds", "histogram",
	    "How long each task attempt took, from claim to result.");
	for (t = 0; t < NTYPES; t++) {
		const struct histogram *h = &m->duration[t];
		unsigned long long	cum = 0;

		for (i = 0; i < NBUCKETS; i++) {
			cum += h->counts[i];
			evbuffer_add_printf(b,
			    "clipsweep_task_duration_seconds_bucket{type=\"%"
			    "s\","
			    "le=\"%g\"} %llu\n",
			    task_types[t], buckets[i], cum);
		}
		evbuffer_add_printf(b,
		    "clipsweep_task_duration_seconds_bucket{type=\"%s\","
		    "le=\"+Inf\"} %llu\n"
		    "clipsweep_task_duration_seconds_sum{type=\"%s\"} %.6f\n"
		    "clipsweep_task_duration_seconds_count{type=\"%s\"} %llu\n",
		    task_types[t], h->count, task_types[t], h->sum,
		    task_types[t], h->count);
	}

	family(b, "clipsweep_objects_deleted_total", "counter",
	    "Objects deleted, from the results this worker published (a "
	    "sharded sweep counts where its combined result is published).");
	evbuffer_add_printf(
	    b, "clipsweep_objects_deleted_total %llu\n", m->deleted_objects);
	family(b, "clipsweep_bytes_deleted_total", "counter",
	    "Bytes deleted, counted as clipsweep_objects_deleted_total.");
	evbuffer_add_printf(
	    b, "clipsweep_bytes_deleted_total %llu\n", m->deleted_bytes);

	family(b, "clipsweep_storage_requests_total", "counter",
	    "Storage responses by operation and HTTP status (code 0: no "
	    "response, a timeout or a broken connection).");
	for (i = 0; i < m->nstorage; i++)
		evbuffer_add_printf(b,
		    "clipsweep_storage_requests_total{op=\"%s\",code=\"%d\"} "
		    "%llu\n",
		    m->storage[i].op, m->storage[i].status, m->storage[i].n);
	if (m->storage_other > 0)
		evbuffer_add_printf(b,
		    "clipsweep_storage_requests_total{op=\"other\","
		    "code=\"other\"} %llu\n",
		    m->storage_other);

	family(b, "clipsweep_queue_depth", "gauge",
	    "Messages waiting in each queue this worker claims from (NaN "
	    "until Redis answered; refreshed every 5 s).");
	for (i = 0; m->have_src && i < m->src.nqueues; i++) {
		char series[160];

		snprintf(series, sizeof(series),
		    "clipsweep_queue_depth{queue=\"%s\"}",
		    m->src.queue_names[i]);
		gauge_value(b, series, m->depth[i]);
	}
	family(b, "clipsweep_scheduled_retries", "gauge",
	    "Task attempts waiting for their retry time.");
	gauge_value(
	    b, "clipsweep_scheduled_retries", m->have_src ? m->scheduled : -1);
	family(b, "clipsweep_dead_letters", "gauge",
	    "Messages in the dead-letter list.");
	gauge_value(b, "clipsweep_dead_letters", m->have_src ? m->dead : -1);

	family(b, "clipsweep_paused", "gauge",
	    "1 while the kill switch (<ns>:paused) holds this worker's "
	    "deletes, or Redis cannot say whether it is set.");
	evbuffer_add_printf(b, "clipsweep_paused %d\n",
	    m->have_src && m->src.paused != NULL ? *m->src.paused : 0);
	family(b, "clipsweep_inflight_tasks", "gauge",
	    "Tasks this worker is running.");
	evbuffer_add_printf(b, "clipsweep_inflight_tasks %d\n",
	    m->have_src ? *m->src.inflight : 0);
	family(b, "clipsweep_last_sweep_success_timestamp_seconds", "gauge",
	    "When a retention sweep last ended ok on this worker (0: never "
	    "since it started).");
	evbuffer_add_printf(b,
	    "clipsweep_last_sweep_success_timestamp_seconds %.3f\n",
	    m->last_sweep_ok);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *content_type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", content_type);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static void
on_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	render(arg, b);
	reply_text(
	    req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

static void
on_livez(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	/* Answering at all means the loop turns. */
	evbuffer_add_printf(b, "ok\n");
	reply_text(req, 200, "OK", "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/* Readiness. */

static void
answer_waiters(struct metrics *m)
{
	struct waiter	*wt;
	struct evbuffer *b = evbuffer_new();

	while ((wt = TAILQ_FIRST(&m->waiters)) != NULL) {
		TAILQ_REMOVE(&m->waiters, wt, entry);
		evbuffer_add(b, m->ready_text, strlen(m->ready_text));
		reply_text(wt->req, m->ready_ok ? 200 : 503,
		    m->ready_ok ? "OK" : "Service Unavailable",
		    "text/plain; charset=utf-8", b);
		evbuffer_drain(b, evbuffer_get_length(b));
		free(wt);
	}
	evbuffer_free(b);
}

/* The round is over (all answered, or the time is up): tell everyone. */
static void
probe_end(struct metrics *m)
{
	struct probe *p = m->probe;
	size_t	      i, len = 0;
	int	      all = !*m->src.stopping;

	for (i = 0; i < NCHECKS; i++)
		if (!p->ok[i])
			all = 0;
	len += (size_t)snprintf(m->ready_text, sizeof(m->ready_text), "%s\n",
	    *m->src.stopping ? "stopping"
		: all	     ? "ready"
			     : "not ready");
	for (i = 0; i < NCHECKS && len < sizeof(m->ready_text); i++)
		len += (size_t)snprintf(m->ready_text + len,
		    sizeof(m->ready_text) - len, "%s: %s\n", check_names[i],
		    p->ok[i] ? "ok" : p->why[i]);
	m->ready_ok = all;
	m->ready_at = mono_us() / 1000;
	evtimer_del(m->probe_ev);
	if (p->pending > 0)
		p->m = NULL; /* late answers find it orphaned */
	else
		free(p);
	m->probe = NULL;
	answer_waiters(m);
}

/* One check answered; the probe may be orphaned (m gone or round over). */
static void
probe_done(struct probe *p, enum check which, int ok, const char *why)
{
	p->ok[which] = ok;
	if (!ok && why != p->why[which])
		snprintf(p->why[which], sizeof(p->why[which]), "%.*s",
		    (int)sizeof(p->why[which]) - 1, why);
	if (--p->pending > 0)
		return;
	if (p->m == NULL)
		free(p);
	else
		probe_end(p->m);
}

static void
probe_db(void *arg, const struct db_result *res, const struct db_error *err)
{
	probe_done(
	    arg, CHECK_DB, err == NULL, err != NULL ? err->message : NULL);
}

static void
probe_storage(
    void *arg, const struct s3_list_page *page, const struct s3_error *err)
{
	probe_done(
	    arg, CHECK_STORAGE, err == NULL, err != NULL ? err->message : NULL);
}

static void
probe_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;
	struct probe   *p = m->probe;
	size_t		i;

	for (i = 0; i < NCHECKS; i++)
		if (!p->ok[i] && p->why[i][0] == '\0')
			snprintf(p->why[i], sizeof(p->why[i]),
			    "no answer within %d ms", PROBE_TIMEOUT_MS);
	probe_end(m);
}

static void
probe_start(struct metrics *m)
{
	struct probe  *p = xcalloc(1, sizeof(*p));
	struct timeval tv = {
	    PROBE_TIMEOUT_MS / 1000, (PROBE_TIMEOUT_MS % 1000) * 1000};

	p->m = m;
	m->probe = p;
	p->pending = 1; /* held while the checks are sent */
	if (redis_is_ready(m->src.redis))
		p->ok[CHECK_REDIS] = 1;
	else
		snprintf(p->why[CHECK_REDIS], sizeof(p->why[CHECK_REDIS]),
		    "not connected: %s", redis_last_error(m->src.redis));
	if (db_query(m->src.db, "SELECT 1", 0, NULL, probe_db, p) == 0)
		p->pending++;
	else
		snprintf(p->why[CHECK_DB], sizeof(p->why[CHECK_DB]),
		    "the database client is closing");
	if (s3_list(m->src.s3, s3_client_prefix(m->src.s3), NULL, NULL, 1,
		probe_storage, p) == 0)
		p->pending++;
	else
		snprintf(p->why[CHECK_STORAGE], sizeof(p->why[CHECK_STORAGE]),
		    "the S3 client is closing");
	evtimer_add(m->probe_ev, &tv);
	probe_done(p, CHECK_REDIS, p->ok[CHECK_REDIS], p->why[CHECK_REDIS]);
}

static void
on_readyz(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct waiter  *wt = xcalloc(1, sizeof(*wt));

	wt->req = req;
	TAILQ_INSERT_TAIL(&m->waiters, wt, entry);
	if (m->probe != NULL)
		return; /* answered with the round in flight */
	if (m->ready_at > 0 &&
	    mono_us() / 1000 - m->ready_at < PROBE_CACHE_MS &&
	    !*m->src.stopping) {
		answer_waiters(m);
		return;
	}
	probe_start(m);
}

static void
on_other(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b, "not found; try /metrics, /livez or /readyz\n");
	reply_text(req, 404, "Not Found", "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/* HOST:PORT through curl's URL parser; host without brackets. */
static int
parse_listen(const char *listen, char *host, size_t hostlen, int *port)
{
	CURLU *u = curl_url();
	char  *url = xasprintf("http://%s/", listen), *h = NULL, *p = NULL;
	int    rc = -1;

	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, 0) == CURLUE_OK &&
	    strchr(listen, '/') == NULL && strchr(listen, '@') == NULL) {
		size_t n = strlen(h);

		if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
			h[n - 1] = '\0';
			memmove(h, h + 1, n - 1);
		}
		*port = atoi(p);
		if (strlen(h) < hostlen && *port >= 0 && *port <= 65535) {
			snprintf(host, hostlen, "%s", h);
			rc = 0;
		}
	}
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	free(url);
	return rc;
}

struct metrics *
metrics_new(
    struct event_base *base, const char *listen, char *err, size_t errlen)
{
	struct metrics		   *m;
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage	    ss;
	socklen_t		    sslen = sizeof(ss);
	char			    host[64], ip[INET6_ADDRSTRLEN];
	int			    port;

	if (parse_listen(listen, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen,
		    "--metrics-listen: '%s' is not HOST:PORT (like "
		    "127.0.0.1:9540, [::1]:9540) or none",
		    listen);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->base = base;
	TAILQ_INIT(&m->waiters);
	m->http = evhttp_new(base);
	if ((bound = evhttp_bind_socket_with_handle(
		 m->http, host, (ev_uint16_t)port)) == NULL) {
		snprintf(err, errlen,
		    "--metrics-listen: cannot listen on %s (in use, or not "
		    "an address of this host)",
		    listen);
		evhttp_free(m->http);
		free(m);
		return NULL;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound),
		(struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			snprintf(m->address, sizeof(m->address), "[%s]:%d", ip,
			    ntohs(s6->sin6_port));
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
			snprintf(m->address, sizeof(m->address), "%s:%d", ip,
			    ntohs(s4->sin_port));
		}
	} else
		snprintf(m->address, sizeof(m->address), "%s", listen);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_cb(m->http, "/metrics", on_metrics, m);
	evhttp_set_cb(m->http, "/livez", on_livez, m);
	evhttp_set_cb(m->http, "/readyz", on_readyz, m);
	evhttp_set_gencb(m->http, on_other, m);
	m->probe_ev = evtimer_new(base, probe_timeout, m);
	return m;
}

const char *
metrics_address(const struct metrics *m)
{
	return m != NULL ? m->address : "none";
}

void
metrics_free(struct metrics *m)
{
	struct waiter *wt;

	if (m == NULL)
		return;
	if (m->probe != NULL) {
		if (m->probe->pending > 0)
			m->probe->m = NULL;
		else
			free(m->probe);
	}
	/* Requests still waiting go with their connections. */
	while ((wt = TAILQ_FIRST(&m->waiters)) != NULL) {
		TAILQ_REMOVE(&m->waiters, wt, entry);
		free(wt);
	}
	evhttp_free(m->http);
	if (m->gauge_ev != NULL)
		event_free(m->gauge_ev);
	event_free(m->probe_ev);
	free(m->depth);
	free(m);
}
