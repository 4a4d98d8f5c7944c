#include <sys/queue.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "config.h"
#include "fsvol.h"
#include "http.h"
#include "log.h"
#include "s3.h"
#include "s3xml.h"
#include "sigv4.h"
#include "util.h"

/*
 * Each call builds one operation: the request as it will be signed (method,
 * encoded path and query, signed headers, payload hash), its callback, and
 * for listings and deletes the streaming XML parser fed by http.c.  The
 * signature is made when the request leaves http.c's queue, so a request
 * that waited stays inside S3's clock-skew window.
 *
 * An operation refused before sending waits on the client's deferred list
 * and is reported on the next loop turn.  A sent one is owned by its HTTP
 * request and listed in live until its callback runs.
 */

#define S3_MAX_DELETE	  1000
#define S3_MAX_LIST_KEYS  1000
#define S3_KEY_IN_MESSAGE 120 /* bytes of a key quoted in messages */
#define S3_BACKOFF_CAP_MS 20000
#define S3_RETRY_COST	  5
#define S3_TIMEOUT_COST	  10

enum s3_op_kind { S3_OP_HEAD, S3_OP_PUT, S3_OP_LIST, S3_OP_DELETE };

struct s3_op {
	TAILQ_ENTRY(s3_op) entry;
	struct s3_client *client; /* NULL once cancelled */
	enum s3_op_kind	  kind;
	union {
		s3_head_cb   *head;
		s3_put_cb    *put;
		s3_list_cb   *list;
		s3_delete_cb *del;
	} cb;
	void *arg;
	char *what; /* "HEAD of cube/a", for messages */

	const char *method;
	char	   *path;  /* encoded, as sent and signed */
	char	   *query; /* encoded, or NULL */
	char	   *content_type;
	char	    content_md5[25];
	char	    payload_hash[65];

	char		    *key;	  /* HEAD */
	char		    *list_prefix; /* LIST */
	struct s3xml_list   *list;
	struct s3xml_delete *del;
	char		   **keys; /* DELETE */
	size_t		     nkeys;

	struct s3_error early; /* why it was refused */
	struct fs_req  *fsr;   /* on a local volume */

	char	     *body; /* kept for a retry */
	size_t	      body_len;
	http_sink_cb *sink;
	int	      attempt;	  /* sends so far */
	int	      retry_cost; /* quota taken by its retries */
	struct event *retry_ev;
};

TAILQ_HEAD(s3_op_list, s3_op);

/* Operation names for the observer (metrics' op label). */
static const char *const s3_op_names[] = {
    [S3_OP_HEAD] = "head",
    [S3_OP_PUT] = "put",
    [S3_OP_LIST] = "list",
    [S3_OP_DELETE] = "delete",
};

struct s3_client {
	struct event_base *base;
	struct http	  *http;   /* NULL on a local volume */
	struct fsvol	  *fs;	   /* file://, else NULL */
	char		  *origin; /* scheme://host[:port] */
	char		  *host_header;
	char		  *bucket_path; /* "/bucket", or "" */
	char		  *prefix;
	char		  *region;
	char		  *access_key_id;
	char		  *secret_access_key;
	char		  *session_token;
	struct event	  *defer_ev;
	struct s3_op_list  deferred;
	struct s3_op_list  live;
	struct s3_op_list  waiting; /* for their retry's time */
	uint64_t	   nrequests;
	uint64_t	   nretries;
	int		   max_attempts;
	int		   retry_base_ms;
	int		   retry_quota;
	int		   busy;   /* inside a callback */
	int		   doomed; /* s3_client_free() called */
	s3_observe_cb	  *observe;
	void		  *observe_arg;
};

struct s3_list_page {
	const struct s3xml_list *x;  /* from S3 */
	const struct fs_req	*fs; /* from a local volume */
};

static void s3_really_free(struct s3_client *);

size_t
s3_list_page_count(const struct s3_list_page *p)
{
	if (p->fs != NULL)
		return p->fs->nobjs;
	return s3xml_list_count(p->x);
}

const struct s3_object *
s3_list_page_object(const struct s3_list_page *p, size_t i)
{
	if (p->fs != NULL)
		return &p->fs->objs[i];
	return s3xml_list_object(p->x, i);
}

int
s3_list_page_truncated(const struct s3_list_page *p)
{
	if (p->fs != NULL)
		return p->fs->truncated;
	return s3xml_list_is_truncated(p->x);
}

const char *
s3_list_page_next_token(const struct s3_list_page *p)
{
	/* A volume's listing goes on after the last key it gave. */
	if (p->fs != NULL)
		return p->fs->truncated && p->fs->nobjs > 0
		    ? p->fs->objs[p->fs->nobjs - 1].key
		    : NULL;
	return s3xml_list_next_token(p->x);
}

const char *
s3_client_prefix(const struct s3_client *c)
{
	return c->prefix;
}

int
s3_client_inflight(const struct s3_client *c)
{
	int n = 0;

	if (c->http == NULL) {
		const struct s3_op *op;
		TAILQ_FOREACH(op, &c->live, entry)
		n++;
		return n;
	}
	return http_inflight(c->http);
}

uint64_t
s3_client_requests(const struct s3_client *c)
{
	return c->nrequests;
}

void
s3_client_set_rate(struct s3_client *c, double per_second)
{
	if (c->http != NULL)
		http_set_rate(c->http, per_second);
}

void
s3_client_set_limits(struct s3_client *c, int timeout_ms, int max_inflight)
{
	if (c->http != NULL)
		http_set_limits(c->http, timeout_ms, 0, max_inflight);
}

void
s3_client_set_retries(struct s3_client *c, int max_attempts, int base_ms)
{
	if (max_attempts > 0)
		c->max_attempts = max_attempts;
	if (base_ms > 0)
		c->retry_base_ms = base_ms;
}

void
s3_client_set_observer(struct s3_client *c, s3_observe_cb *cb, void *arg)
{
	c->observe = cb;
	c->observe_arg = arg;
}

uint64_t
s3_client_retries(const struct s3_client *c)
{
	return c->nretries;
}

int
s3_client_retry_quota(const struct s3_client *c)
{
	return c->retry_quota;
}

int
s3_client_window(const struct s3_client *c)
{
	return c->http != NULL ? http_window(c->http) : 1;
}

static void PRINTF_LIKE(5, 6) s3_error_set(struct s3_error *err, int status,
    int transient, const char *code, const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	err->http_status = status;
	err->transient = transient;
	strlcpy_(err->code, code, sizeof(err->code));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* A key for a message: cut short, control characters as \xNN. */
static char *
s3_key_quote(const char *key)
{
	struct buf b;
	size_t	   i;

	buf_init(&b);
	buf_adds(&b, "");
	for (i = 0; key[i] != '\0' && i < S3_KEY_IN_MESSAGE; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (ch < 0x20 || ch == 0x7f)
			buf_addf(&b, "\\x%02x", ch);
		else
			buf_add(&b, &key[i], 1);
	}
	if (key[i] != '\0')
		buf_adds(&b, "...");
	return buf_steal(&b);
}

static char *
s3_what(const char *op, const char *key)
{
	char *q = s3_key_quote(key), *s;

	s = xasprintf("%s of %s", op, q);
	free(q);
	return s;
}

/* Append s percent-encoded, keeping only A-Za-z0-9-._~ (and '/'). */
static void
s3_add_escaped(struct buf *b, const char *s, int keep_slash)
{
	const char *seg = s, *slash;
	char	   *e;

	for (;;) {
		slash = keep_slash ? strchr(seg, '/') : NULL;
		e = curl_easy_escape(NULL, seg,
		    (int)(slash != NULL ? (size_t)(slash - seg) : strlen(seg)));
		if (e == NULL)
			fatal("out of memory encoding a key");
		buf_adds(b, e);
		curl_free(e);
		if (slash == NULL)
			break;
		buf_add(b, "/", 1);
		seg = slash + 1;
	}
}

static char *
s3_object_path(const struct s3_client *c, const char *key)
{
	struct buf b;

	buf_init(&b);
	buf_adds(&b, c->bucket_path);
	buf_add(&b, "/", 1);
	s3_add_escaped(&b, key, 1);
	return buf_steal(&b);
}

static char *
s3_bucket_path(const struct s3_client *c)
{
	return xstrdup(c->bucket_path[0] != '\0' ? c->bucket_path : "/");
}

static struct s3_op *
s3_op_new(struct s3_client *c, enum s3_op_kind kind, void *arg)
{
	struct s3_op *op;

	op = xcalloc(1, sizeof(*op));
	op->client = c;
	op->kind = kind;
	op->arg = arg;
	return op;
}

static void
s3_op_free(struct s3_op *op)
{
	size_t i;

	free(op->what);
	free(op->path);
	free(op->query);
	free(op->content_type);
	free(op->key);
	free(op->list_prefix);
	s3xml_list_free(op->list);
	s3xml_delete_free(op->del);
	free(op->body);
	fs_req_free(op->fsr);
	if (op->retry_ev != NULL)
		event_free(op->retry_ev);
	for (i = 0; i < op->nkeys; i++)
		free(op->keys[i]);
	free(op->keys);
	free(op);
}

/* Give err to the operation's callback, in the shape its kind needs. */
static void
s3_op_fail(struct s3_op *op, const struct s3_error *err)
{
	switch (op->kind) {
	case S3_OP_HEAD:
		op->cb.head(op->arg, 0, NULL, err);
		break;
	case S3_OP_PUT:
		op->cb.put(op->arg, err);
		break;
	case S3_OP_LIST:
		op->cb.list(op->arg, NULL, err);
		break;
	case S3_OP_DELETE:
		op->cb.del(op->arg, NULL, 0, err);
		break;
	}
}

static void
s3_leave(struct s3_client *c)
{
	if (--c->busy == 0 && c->doomed)
		s3_really_free(c);
}

static void
s3_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct s3_client *c = arg;
	struct s3_op	 *op;

	c->busy++;
	while (!c->doomed && (op = TAILQ_FIRST(&c->deferred)) != NULL) {
		TAILQ_REMOVE(&c->deferred, op, entry);
		s3_op_fail(op, &op->early);
		s3_op_free(op);
	}
	s3_leave(c);
}

/* Refuse op without sending anything; its callback runs next turn. */
static int PRINTF_LIKE(3, 4)
    s3_refuse(struct s3_op *op, const char *code, const char *fmt, ...)
{
	struct s3_client *c = op->client;
	va_list		  ap;

	memset(&op->early, 0, sizeof(op->early));
	strlcpy_(op->early.code, code, sizeof(op->early.code));
	va_start(ap, fmt);
	vsnprintf(op->early.message, sizeof(op->early.message), fmt, ap);
	va_end(ap);
	TAILQ_INSERT_TAIL(&c->deferred, op, entry);
	event_active(c->defer_ev, EV_TIMEOUT, 0);
	return 0;
}

/*
 * NULL when key may be touched: under the cube prefix (and more than the
 * prefix) and accepted by key_unsafe_reason().  Else the error code, with
 * the reason in why.
 */
static const char *
s3_key_refusal(const struct s3_client *c, const char *key, const char **why)
{
	size_t plen = strlen(c->prefix), klen = strlen(key);

	if (klen <= plen || strncmp(key, c->prefix, plen) != 0) {
		*why = "the key is not under the cube prefix";
		return "outside_prefix";
	}
	if ((*why = key_unsafe_reason(key, klen)) != NULL)
		return "unsafe_key";
	return NULL;
}

const char *
s3_client_key_refusal(
    const struct s3_client *c, const char *key, const char **why)
{
	return s3_key_refusal(c, key, why);
}

static int
s3_add_headers(struct http_request *r, const struct s3_op *op,
    const struct sigv4_signed *sig)
{
	const struct s3_client *c = op->client;
	int			rc = 0;

	rc |= http_request_add_header(r, "Host", c->host_header);
	rc |= http_request_add_header(r, "x-amz-date", sig->amz_date);
	rc |= http_request_add_header(
	    r, "x-amz-content-sha256", op->payload_hash);
	if (c->session_token != NULL)
		rc |= http_request_add_header(
		    r, "x-amz-security-token", c->session_token);
	if (op->content_type != NULL)
		rc |= http_request_add_header(
		    r, "Content-Type", op->content_type);
	if (op->content_md5[0] != '\0')
		rc |= http_request_add_header(
		    r, "Content-MD5", op->content_md5);
	rc |= http_request_add_header(r, "Authorization", sig->authorization);
	return rc != 0 ? -1 : 0;
}

/* http_start_cb: sign now, just before the request goes out. */
static int
s3_sign_cb(void *arg, struct http_request *r, char *err, size_t errlen)
{
	struct s3_op	    *op = arg;
	struct s3_client    *c = op->client;
	struct sigv4_header  hdr[2];
	struct sigv4_request req;
	struct sigv4_creds   cr;
	struct sigv4_signed  sig;
	size_t		     nh = 0;
	int		     rc;

	if (op->content_type != NULL)
		hdr[nh++] = (struct sigv4_header){
		    "Content-Type", op->content_type};
	if (op->content_md5[0] != '\0')
		hdr[nh++] = (struct sigv4_header){
		    "Content-MD5", op->content_md5};
	memset(&req, 0, sizeof(req));
	req.mode = SIGV4_S3;
	req.method = op->method;
	req.host = c->host_header;
	req.path = op->path;
	req.query = op->query;
	req.headers = hdr;
	req.nheaders = nh;
	req.payload_sha256_hex = op->payload_hash;
	req.region = c->region;
	req.service = "s3";
	req.when = time(NULL);
	cr.access_key_id = c->access_key_id;
	cr.secret_access_key = c->secret_access_key;
	cr.session_token = c->session_token;
	if ((rc = sigv4_sign(&req, &cr, &sig)) == 0)
		rc = s3_add_headers(r, op, &sig);
	sigv4_signed_free(&sig);
	if (rc != 0) {
		snprintf(err, errlen,
		    "the request cannot be signed (bad "
		    "credentials or storage URL)");
		return -1;
	}
	c->nrequests++;
	return 0;
}

static int
s3_is_transient_code(const char *code)
{
	static const char *const codes[] = {
	    "SlowDown",
	    "RequestTimeout",
	    "InternalError",
	    "ServiceUnavailable",
	};
	size_t i;

	for (i = 0; i < nitems(codes); i++)
		if (strcmp(code, codes[i]) == 0)
			return 1;
	return 0;
}

/* " after N attempts" once a request was sent more than once. */
static const char *
s3_attempts_note(const struct s3_op *op)
{
	static char note[48];

	if (op->attempt <= 1)
		return "";
	snprintf(note, sizeof(note), " (after %d attempts)", op->attempt);
	return note;
}

/* A request that got no complete response. */
static void
s3_error_from_fail(const struct s3_op *op, const struct http_response *resp,
    struct s3_error *err)
{
	static const struct {
		const char *code;
		int	    transient;
	} map[] = {
	    [HTTP_FAIL_NONE] = {"request_failed", 0},
	    [HTTP_FAIL_TIMEOUT] = {"timeout", 1},
	    [HTTP_FAIL_CONNECT] = {"connect", 1},
	    [HTTP_FAIL_NETWORK] = {"network", 1},
	    [HTTP_FAIL_TLS] = {"tls", 0},
	    [HTTP_FAIL_ABORTED] = {"bad_response", 0},
	    [HTTP_FAIL_CANCELLED] = {"cancelled", 1},
	    [HTTP_FAIL_OTHER] = {"request_failed", 0},
	};

	s3_error_set(err, resp->status, map[resp->fail].transient,
	    map[resp->fail].code, "%s: %s%s", op->what, resp->error,
	    s3_attempts_note(op));
}

/* What a bare status means, for answers without an error document. */
static const char *
s3_status_hint(int status)
{
	switch (status) {
	case 301:
	case 307:
		return "the bucket is in another region or at another "
		       "endpoint; "
		       "check the storage URL";
	case 400:
		return "the storage refused the request as malformed";
	case 403:
		return "access denied; check the access key, secret and clock";
	case 404:
		return "not found; check the bucket name";
	case 429:
	case 503:
		return "the storage is overloaded; retry later";
	default:
		return status >= 500 ? "the storage failed; retry later"
				     : "no S3 error document in the response";
	}
}

/* A non-2xx response: the S3 error document says what, if there is one. */
static void
s3_error_from_status(const struct s3_op *op, const struct http_response *resp,
    struct s3_error *err)
{
	char	    code[64], msg[160];
	const char *reqid = http_response_header(resp, "x-amz-request-id");
	int	    transient;

	if (s3xml_error_parse(resp->body, resp->body_len, code, sizeof(code),
		msg, sizeof(msg)) != 0) {
		snprintf(code, sizeof(code), "http_%d", resp->status);
		snprintf(msg, sizeof(msg), "%s", s3_status_hint(resp->status));
	}
	transient = resp->status >= 500 || resp->status == 429 ||
	    s3_is_transient_code(code);
	s3_error_set(err, resp->status, transient, code,
	    "%s: %s (HTTP %d%s%s)%s", op->what, msg[0] != '\0' ? msg : code,
	    resp->status, reqid != NULL ? ", request id " : "",
	    reqid != NULL ? reqid : "", s3_attempts_note(op));
}

/* Any failure of resp, or 0 when it is a complete 2xx response. */
static int
s3_response_failed(const struct s3_op *op, const struct http_response *resp,
    struct s3_error *err)
{
	if (resp->fail != HTTP_FAIL_NONE) {
		s3_error_from_fail(op, resp, err);
		return -1;
	}
	if (resp->status < 200 || resp->status > 299) {
		s3_error_from_status(op, resp, err);
		return -1;
	}
	return 0;
}

static int64_t
s3_parse_int64(const char *s)
{
	char	 *end;
	long long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	v = strtoll(s, &end, 10);
	return *end == '\0' && v >= 0 ? (int64_t)v : -1;
}

static void
s3_head_done(struct s3_op *op, const struct http_response *resp)
{
	struct s3_object obj;
	struct s3_error	 err;
	const char	*lm;
	time_t		 t;

	if (resp->fail == HTTP_FAIL_NONE && resp->status == 404) {
		op->cb.head(op->arg, 0, NULL, NULL);
		return;
	}
	if (s3_response_failed(op, resp, &err) != 0) {
		s3_op_fail(op, &err);
		return;
	}
	memset(&obj, 0, sizeof(obj));
	obj.key = op->key;
	obj.key_len = strlen(op->key);
	obj.size = s3_parse_int64(http_response_header(resp, "Content-Length"));
	obj.last_modified_ms = -1;
	if ((lm = http_response_header(resp, "Last-Modified")) != NULL &&
	    (t = curl_getdate(lm, NULL)) != -1)
		obj.last_modified_ms = (int64_t)t * 1000;
	op->cb.head(op->arg, 1, &obj, NULL);
}

static void
s3_put_done(struct s3_op *op, const struct http_response *resp)
{
	struct s3_error err;

	if (s3_response_failed(op, resp, &err) != 0)
		s3_op_fail(op, &err);
	else
		op->cb.put(op->arg, NULL);
}

static int
s3_list_sink(void *arg, const char *data, size_t len)
{
	struct s3_op *op = arg;

	return s3xml_list_feed(op->list, data, len) == 0 ? 0 : -1;
}

static int
s3_list_check_keys(const struct s3_op *op, struct s3_error *err)
{
	size_t			i, n = s3xml_list_count(op->list);
	size_t			plen = strlen(op->list_prefix);
	const struct s3_object *o;

	for (i = 0; i < n; i++) {
		o = s3xml_list_object(op->list, i);
		if (o->key_len < plen ||
		    memcmp(o->key, op->list_prefix, plen) != 0) {
			char *q = s3_key_quote(o->key);
			s3_error_set(err, 200, 0, "bad_response",
			    "%s: the "
			    "listing has key %s outside the prefix",
			    op->what, q);
			free(q);
			return -1;
		}
	}
	return 0;
}

static void
s3_list_done(struct s3_op *op, const struct http_response *resp)
{
	struct s3_list_page page = {.x = op->list};
	struct s3_error	    err;

	if (resp->fail == HTTP_FAIL_ABORTED ||
	    (s3_response_failed(op, resp, &err) == 0 &&
		s3xml_list_finish(op->list) != 0)) {
		s3_error_set(&err, resp->status, 0, "bad_response",
		    "%s: the "
		    "listing does not parse: %s",
		    op->what, s3xml_list_error(op->list));
		s3_op_fail(op, &err);
		return;
	}
	if (resp->fail != HTTP_FAIL_NONE || resp->status < 200 ||
	    resp->status > 299 || s3_list_check_keys(op, &err) != 0) {
		s3_op_fail(op, &err);
		return;
	}
	op->cb.list(op->arg, &page, NULL);
}

static int
s3_delete_sink(void *arg, const char *data, size_t len)
{
	struct s3_op *op = arg;

	return s3xml_delete_feed(op->del, data, len) == 0 ? 0 : -1;
}

static int
s3_result_cmp(const void *a, const void *b)
{
	const struct s3_delete_result *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

/* One result per key asked for, in order; unmentioned keys not deleted. */
static void
s3_delete_report(struct s3_op *op)
{
	size_t				i, n = s3xml_delete_count(op->del);
	const struct s3_delete_result **sorted, **hit;
	struct s3_delete_result	       *out;

	sorted = xcalloc(n, sizeof(*sorted));
	for (i = 0; i < n; i++)
		sorted[i] = s3xml_delete_result(op->del, i);
	qsort(sorted, n, sizeof(*sorted), s3_result_cmp);
	out = xcalloc(op->nkeys, sizeof(*out));
	for (i = 0; i < op->nkeys; i++) {
		struct s3_delete_result	       want = {.key = op->keys[i]};
		const struct s3_delete_result *wp = &want;

		hit = n > 0
		    ? bsearch(&wp, sorted, n, sizeof(*sorted), s3_result_cmp)
		    : NULL;
		if (hit != NULL)
			out[i] = **hit;
		else {
			out[i].code = "missing_result";
			out[i].message = "the DeleteObjects response does not "
					 "mention this key";
		}
		out[i].key = op->keys[i];
	}
	op->cb.del(op->arg, out, op->nkeys, NULL);
	free(out);
	free(sorted);
}

static void
s3_delete_done(struct s3_op *op, const struct http_response *resp)
{
	struct s3_error err;

	if (resp->fail == HTTP_FAIL_ABORTED ||
	    (s3_response_failed(op, resp, &err) == 0 &&
		s3xml_delete_finish(op->del) != 0)) {
		s3_error_set(&err, resp->status, 0, "bad_response",
		    "%s: the "
		    "response does not parse, so no key is known to be "
		    "deleted: %s",
		    op->what, s3xml_delete_error(op->del));
		s3_op_fail(op, &err);
		return;
	}
	if (resp->fail != HTTP_FAIL_NONE || resp->status < 200 ||
	    resp->status > 299) {
		s3_op_fail(op, &err);
		return;
	}
	s3_delete_report(op);
}

static int s3_submit(struct s3_op *);

/*
 * Whether resp is a failure worth another send, and the quota allows it.
 * A HEAD's 404 is an answer, a body that does not parse is not transient,
 * and a cancelled request is the client shutting down.
 */
static int
s3_should_retry(struct s3_op *op, const struct http_response *resp)
{
	struct s3_client *c = op->client;
	struct s3_error	  err;
	int		  cost;

	if (resp->fail == HTTP_FAIL_CANCELLED ||
	    resp->fail == HTTP_FAIL_ABORTED || c->doomed ||
	    op->attempt >= c->max_attempts)
		return 0;
	if (resp->fail == HTTP_FAIL_NONE &&
	    (resp->status == 404 && op->kind == S3_OP_HEAD))
		return 0;
	if (s3_response_failed(op, resp, &err) == 0 || !err.transient)
		return 0;
	cost = resp->fail == HTTP_FAIL_TIMEOUT ? S3_TIMEOUT_COST
					       : S3_RETRY_COST;
	if (c->retry_quota < cost) {
		log_debug(
		    "s3: retry quota exhausted; not retrying %s", op->what);
		return 0;
	}
	c->retry_quota -= cost;
	op->retry_cost += cost;
	return 1;
}

/* A success gives back what its retries took, or one token. */
static void
s3_refill(
    struct s3_client *c, struct s3_op *op, const struct http_response *resp)
{
	if (resp->fail != HTTP_FAIL_NONE ||
	    (resp->status >= 300 &&
		!(resp->status == 404 && op->kind == S3_OP_HEAD)))
		return;
	c->retry_quota += op->retry_cost > 0 ? op->retry_cost : 1;
	if (c->retry_quota > S3_RETRY_QUOTA)
		c->retry_quota = S3_RETRY_QUOTA;
}

static void
s3_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct s3_op	 *op = arg;
	struct s3_client *c = op->client;
	struct s3_error	  err;

	TAILQ_REMOVE(&c->waiting, op, entry);
	if (s3_submit(op) == 0)
		return;
	/* http_free() in progress: s3_submit() freed nothing; tell. */
	c->busy++;
	s3_error_set(&err, 0, 1, "cancelled",
	    "%s: cancelled: the S3 client is shutting down", op->what);
	s3_op_fail(op, &err);
	s3_op_free(op);
	s3_leave(c);
}

/* Full jitter over base * 2^(attempt - 1), capped. */
static void
s3_schedule_retry(struct s3_op *op)
{
	struct s3_client *c = op->client;
	int64_t		  ceiling = c->retry_base_ms, delay;
	struct timeval	  tv;
	int		  i;

	for (i = 1; i < op->attempt && ceiling < S3_BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > S3_BACKOFF_CAP_MS)
		ceiling = S3_BACKOFF_CAP_MS;
	delay = (int64_t)(random() % (ceiling + 1));
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	if (op->retry_ev == NULL)
		op->retry_ev = evtimer_new(c->base, s3_retry_cb, op);
	c->nretries++;
	TAILQ_INSERT_TAIL(&c->waiting, op, entry);
	evtimer_add(op->retry_ev, &tv);
}

/* http_done_cb for every operation. */
static void
s3_op_done(void *arg, const struct http_response *resp)
{
	struct s3_op	 *op = arg;
	struct s3_client *c = op->client;

	if (c == NULL) { /* already told: cancelled */
		s3_op_free(op);
		return;
	}
	TAILQ_REMOVE(&c->live, op, entry);
	if (c->observe != NULL && resp->fail != HTTP_FAIL_CANCELLED &&
	    resp->fail != HTTP_FAIL_ABORTED) {
		c->observe(c->observe_arg, s3_op_names[op->kind],
		    resp->fail == HTTP_FAIL_NONE ? resp->status : 0);
	}
	if (s3_should_retry(op, resp)) {
		s3_schedule_retry(op);
		return;
	}
	s3_refill(c, op, resp);
	c->busy++;
	switch (op->kind) {
	case S3_OP_HEAD:
		s3_head_done(op, resp);
		break;
	case S3_OP_PUT:
		s3_put_done(op, resp);
		break;
	case S3_OP_LIST:
		s3_list_done(op, resp);
		break;
	case S3_OP_DELETE:
		s3_delete_done(op, resp);
		break;
	}
	s3_op_free(op);
	s3_leave(c);
}

/*
 * One send of op.  A listing or delete parser starts afresh: a retried
 * response is parsed from its beginning.
 */
static int
s3_submit(struct s3_op *op)
{
	struct s3_client    *c = op->client;
	struct http_request *r;
	char		    *url;

	if (op->kind == S3_OP_LIST && op->attempt > 0) {
		s3xml_list_free(op->list);
		op->list = s3xml_list_create();
	} else if (op->kind == S3_OP_DELETE && op->attempt > 0) {
		s3xml_delete_free(op->del);
		op->del = s3xml_delete_create();
	}
	op->attempt++;
	url = xasprintf("%s%s%s%s", c->origin, op->path,
	    op->query != NULL ? "?" : "", op->query != NULL ? op->query : "");
	r = http_request_new(op->method, url);
	free(url);
	if (op->body != NULL)
		http_request_set_body(r, op->body, op->body_len);
	if (op->sink != NULL)
		http_request_set_sink(r, op->sink, op);
	http_request_set_start(r, s3_sign_cb, op);
	TAILQ_INSERT_TAIL(&c->live, op, entry);
	if (http_submit(c->http, r, s3_op_done, op) != 0) {
		TAILQ_REMOVE(&c->live, op, entry);
		return -1;
	}
	return 0;
}

/* Hand op to http.c; the body, if any, is kept for retries. */
/*
 * A local volume's errno as an S3 error.  Transient: what a busy or
 * remounting volume (NFS too) says and may not say again.
 */
static void
s3_fs_error(const struct s3_op *op, const struct fs_req *r, struct s3_error *e)
{
	const char *name = strerrorname_np(r->err);
	const char *code = r->err == ECANCELED ? "cancelled"
	    : name != NULL		       ? name
					       : "fs_error";
	int	    t;

	switch (r->err) {
	case EAGAIN:
	case EINTR:
	case EIO:
	case EBUSY:
	case ESTALE:
	case ETIMEDOUT:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case ECANCELED:
		t = 1;
		break;
	default:
		/* The volume directory itself missing: not mounted yet. */
		t = strcmp(r->err_path, ".") == 0;
	}
	if (strcmp(r->err_path, ".") == 0)
		s3_error_set(e, 0, t, code,
		    "%s: %s of the volume directory: %s", op->what, r->err_call,
		    strerror(r->err));
	else
		s3_error_set(e, 0, t, code, "%s: %s of '%s' in the volume: %s",
		    op->what, r->err_call, r->err_path, strerror(r->err));
}

static void
s3_fs_deleted(struct s3_op *op, const struct fs_req *r)
{
	struct s3_delete_result *out;
	char		       **msgs;
	size_t			 i;

	out = xcalloc(op->nkeys, sizeof(*out));
	msgs = xcalloc(op->nkeys, sizeof(*msgs));
	for (i = 0; i < op->nkeys; i++) {
		int e = r->errs[i];

		out[i].key = op->keys[i];
		out[i].deleted = e == 0;
		if (e == 0)
			continue;
		out[i].code = strerrorname_np(e) ? strerrorname_np(e)
						 : "fs_error";
		msgs[i] = xasprintf("not removed: %s",
		    e == ELOOP	      ? "a symbolic link is not an object"
			: e == EISDIR ? "not a regular file"
				      : strerror(e));
		out[i].message = msgs[i];
	}
	op->cb.del(op->arg, out, op->nkeys, NULL);
	for (i = 0; i < op->nkeys; i++)
		free(msgs[i]);
	free(msgs);
	free(out);
}

/* fs_done_cb: a local volume's answer, given as S3's would be. */
static void
s3_fs_done(void *arg, struct fs_req *r)
{
	struct s3_op	   *op = arg;
	struct s3_client   *c = op->client;
	struct s3_list_page page;
	struct s3_object    obj;
	struct s3_error	    err;

	if (c == NULL) { /* already told: cancelled */
		s3_op_free(op);
		return;
	}
	TAILQ_REMOVE(&c->live, op, entry);
	if (c->observe != NULL && r->err != ECANCELED)
		c->observe(c->observe_arg, s3_op_names[op->kind],
		    r->err != 0				      ? 500
			: op->kind == S3_OP_HEAD && !r->found ? 404
							      : 200);
	c->busy++;
	if (r->err != 0) {
		s3_fs_error(op, r, &err);
		s3_op_fail(op, &err);
	} else
		switch (op->kind) {
		case S3_OP_HEAD:
			memset(&obj, 0, sizeof(obj));
			obj.key = op->key;
			obj.key_len = strlen(op->key);
			obj.size = r->size;
			obj.last_modified_ms = r->mtime_ms;
			op->cb.head(
			    op->arg, r->found, r->found ? &obj : NULL, NULL);
			break;
		case S3_OP_PUT:
			op->cb.put(op->arg, NULL);
			break;
		case S3_OP_LIST:
			page.x = NULL;
			page.fs = r;
			op->cb.list(op->arg, &page, NULL);
			break;
		case S3_OP_DELETE:
			s3_fs_deleted(op, r);
			break;
		}
	s3_op_free(op);
	s3_leave(c);
}

/* Hand op to the volume's threads instead of http.c. */
static int
s3_fs_send(struct s3_op *op, const void *body, size_t len)
{
	struct s3_client *c = op->client;
	struct fs_req	 *r = op->fsr;
	size_t		  i;

	if (r == NULL)
		r = op->fsr = xcalloc(1, sizeof(*r));
	switch (op->kind) {
	case S3_OP_HEAD:
		r->kind = FS_HEAD;
		r->key = xstrdup(op->key);
		break;
	case S3_OP_PUT:
		r->kind = FS_PUT;
		r->key = xstrdup(op->key);
		r->body = xmalloc(len > 0 ? len : 1);
		memcpy(r->body, body, len);
		r->len = len;
		break;
	case S3_OP_LIST:
		break; /* set up by s3_list() */
	case S3_OP_DELETE:
		r->kind = FS_DELETE;
		r->keys = xcalloc(op->nkeys, sizeof(*r->keys));
		for (i = 0; i < op->nkeys; i++)
			r->keys[r->nkeys++] = xstrdup(op->keys[i]);
		break;
	}
	op->attempt++;
	c->nrequests++;
	TAILQ_INSERT_TAIL(&c->live, op, entry);
	fsvol_submit(c->fs, r, s3_fs_done, op);
	return 0;
}

static int
s3_send(struct s3_op *op, const void *body, size_t len, http_sink_cb *sink)
{
	if (op->client->fs != NULL)
		return s3_fs_send(op, body, len);
	if (body != NULL) {
		op->body = xmalloc(len > 0 ? len : 1);
		memcpy(op->body, body, len);
		op->body_len = len;
	}
	op->sink = sink;
	if (s3_submit(op) != 0) {
		s3_op_free(op);
		return -1;
	}
	return 0;
}

int
s3_head(struct s3_client *c, const char *key, s3_head_cb *cb, void *arg)
{
	struct s3_op *op;
	const char   *code, *why;

	if (c->doomed)
		return -1;
	op = s3_op_new(c, S3_OP_HEAD, arg);
	op->cb.head = cb;
	op->what = s3_what("HEAD", key);
	if ((code = s3_key_refusal(c, key, &why)) != NULL)
		return s3_refuse(op, code, "%s: refused: %s", op->what, why);
	op->method = "HEAD";
	op->key = xstrdup(key);
	op->path = s3_object_path(c, key);
	sha256_hex("", 0, op->payload_hash);
	return s3_send(op, NULL, 0, NULL);
}

int
s3_put(struct s3_client *c, const char *key, const void *body, size_t len,
    const char *content_type, s3_put_cb *cb, void *arg)
{
	struct s3_op *op;
	const char   *code, *why;

	if (c->doomed)
		return -1;
	op = s3_op_new(c, S3_OP_PUT, arg);
	op->cb.put = cb;
	op->what = s3_what("PUT", key);
	if ((code = s3_key_refusal(c, key, &why)) != NULL)
		return s3_refuse(op, code, "%s: refused: %s", op->what, why);
	op->method = "PUT";
	op->key = xstrdup(key);
	op->path = s3_object_path(c, key);
	op->content_type = xstrdup(
	    content_type != NULL ? content_type : "application/octet-stream");
	sha256_hex(body, len, op->payload_hash);
	return s3_send(op, body != NULL ? body : "", len, NULL);
}

static char *
s3_list_query(const char *prefix, const char *token, const char *start_after,
    int max_keys)
{
	struct buf b;

	buf_init(&b);
	buf_adds(&b, "list-type=2&prefix=");
	s3_add_escaped(&b, prefix, 0);
	buf_addf(&b, "&max-keys=%d&encoding-type=url", max_keys);
	if (token != NULL) {
		buf_adds(&b, "&continuation-token=");
		s3_add_escaped(&b, token, 0);
	}
	if (start_after != NULL) {
		buf_adds(&b, "&start-after=");
		s3_add_escaped(&b, start_after, 0);
	}
	return buf_steal(&b);
}

int
s3_list(struct s3_client *c, const char *prefix, const char *token,
    const char *start_after, int max_keys, s3_list_cb *cb, void *arg)
{
	struct s3_op *op;
	const char   *why;

	if (c->doomed)
		return -1;
	op = s3_op_new(c, S3_OP_LIST, arg);
	op->cb.list = cb;
	op->what = s3_what("ListObjectsV2", prefix);
	if (strncmp(prefix, c->prefix, strlen(c->prefix)) != 0)
		return s3_refuse(op, "outside_prefix",
		    "%s: refused: the "
		    "prefix is not under the cube prefix",
		    op->what);
	if ((why = key_unsafe_reason(prefix, strlen(prefix))) != NULL)
		return s3_refuse(
		    op, "unsafe_key", "%s: refused: %s", op->what, why);
	if (max_keys < 1 || max_keys > S3_MAX_LIST_KEYS)
		return s3_refuse(op, "bad_argument",
		    "%s: max-keys %d is not "
		    "between 1 and %d",
		    op->what, max_keys, S3_MAX_LIST_KEYS);
	op->method = "GET";
	op->list_prefix = xstrdup(prefix);
	op->path = s3_bucket_path(c);
	op->query = s3_list_query(prefix, token, start_after, max_keys);
	if (c->fs != NULL) {
		op->fsr = xcalloc(1, sizeof(*op->fsr));
		op->fsr->kind = FS_LIST;
		op->fsr->prefix = xstrdup(prefix);
		op->fsr->max_keys = max_keys;
		op->fsr->fresh = token == NULL;
		if (token != NULL || start_after != NULL)
			op->fsr->after = xstrdup(
			    token != NULL ? token : start_after);
		return s3_send(op, NULL, 0, NULL);
	}
	op->list = s3xml_list_create();
	sha256_hex("", 0, op->payload_hash);
	return s3_send(op, NULL, 0, s3_list_sink);
}

static char *
s3_delete_body(const char *const *keys, size_t n)
{
	struct buf b;
	size_t	   i;

	buf_init(&b);
	buf_adds(&b,
	    "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Quiet>false</Quiet>");
	for (i = 0; i < n; i++) {
		buf_adds(&b, "<Object><Key>");
		buf_add_xml_text(&b, keys[i], strlen(keys[i]));
		buf_adds(&b, "</Key></Object>");
	}
	buf_adds(&b, "</Delete>");
	return buf_steal(&b);
}

static char *
s3_delete_what(const char *const *keys, size_t n)
{
	char *q, *s;

	if (n == 0)
		return xstrdup("DeleteObjects of no key");
	q = s3_key_quote(keys[0]);
	if (n == 1)
		s = xasprintf("DeleteObjects of %s", q);
	else
		s = xasprintf("DeleteObjects of %zu keys from %s", n, q);
	free(q);
	return s;
}

int
s3_delete_objects(struct s3_client *c, const char *const *keys, size_t n,
    s3_delete_cb *cb, void *arg)
{
	struct s3_op *op;
	const char   *code, *why;
	char	     *body, *q;
	size_t	      i;
	int	      rc;

	if (c->doomed)
		return -1;
	op = s3_op_new(c, S3_OP_DELETE, arg);
	op->cb.del = cb;
	op->what = s3_delete_what(keys, n);
	if (n == 0 || n > S3_MAX_DELETE)
		return s3_refuse(op, "bad_argument",
		    "%s: DeleteObjects takes "
		    "1 to %d keys",
		    op->what, S3_MAX_DELETE);
	for (i = 0; i < n; i++) {
		if ((code = s3_key_refusal(c, keys[i], &why)) == NULL)
			continue;
		q = s3_key_quote(keys[i]);
		rc = s3_refuse(op, code,
		    "%s: refused, nothing sent: key %s: "
		    "%s",
		    op->what, q, why);
		free(q);
		return rc;
	}
	op->method = "POST";
	op->path = s3_bucket_path(c);
	op->query = xstrdup("delete");
	op->keys = xcalloc(n, sizeof(*op->keys));
	for (i = 0; i < n; i++)
		op->keys[op->nkeys++] = xstrdup(keys[i]);
	if (c->fs != NULL)
		return s3_send(op, NULL, 0, NULL);
	op->content_type = xstrdup("application/xml");
	body = s3_delete_body(keys, n);
	md5_base64(body, strlen(body), op->content_md5);
	sha256_hex(body, strlen(body), op->payload_hash);
	op->del = s3xml_delete_create();
	rc = s3_send(op, body, strlen(body), s3_delete_sink);
	free(body);
	return rc;
}

struct s3_client *
s3_client_new(struct event_base *base, const struct storage_url *u,
    const struct s3_creds *cr)
{
	struct s3_client *c;

	c = xcalloc(1, sizeof(*c));
	c->base = base;
	TAILQ_INIT(&c->deferred);
	TAILQ_INIT(&c->live);
	TAILQ_INIT(&c->waiting);
	if ((c->defer_ev = event_new(base, -1, 0, s3_defer_cb, c)) == NULL)
		fatal("cannot create the S3 client's event");
	c->prefix = xstrdup(u->prefix);
	c->max_attempts = 1;
	if (u->volume != NULL) { /* file:// */
		c->fs = fsvol_new(base, u->volume, u->prefix);
		c->bucket_path = xstrdup(""); /* paths are built, not sent */
		return c;
	}
	c->http = http_new(base);
	c->origin = xasprintf("%s://%s", u->scheme, u->host_header);
	c->host_header = xstrdup(u->host_header);
	if (u->virtual_hosted)
		c->bucket_path = xstrdup("");
	else {
		struct buf b;

		buf_init(&b);
		buf_add(&b, "/", 1);
		s3_add_escaped(&b, u->bucket, 0);
		c->bucket_path = buf_steal(&b);
	}
	c->region = xstrdup(u->region);
	c->access_key_id = xstrdup(cr->access_key_id);
	c->secret_access_key = xstrdup(cr->secret_access_key);
	if (cr->session_token != NULL && cr->session_token[0] != '\0')
		c->session_token = xstrdup(cr->session_token);
	c->max_attempts = S3_MAX_ATTEMPTS;
	c->retry_base_ms = S3_RETRY_BASE_MS;
	c->retry_quota = S3_RETRY_QUOTA;
	return c;
}

/* Tell every pending callback "cancelled", now. */
static void
s3_cancel_all(struct s3_client *c)
{
	struct s3_error err;
	struct s3_op   *op;

	while ((op = TAILQ_FIRST(&c->deferred)) != NULL) {
		TAILQ_REMOVE(&c->deferred, op, entry);
		s3_op_fail(op, &op->early);
		s3_op_free(op);
	}
	while ((op = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, op, entry);
		s3_error_set(&err, 0, 1, "cancelled",
		    "%s: cancelled: the "
		    "S3 client is shutting down",
		    op->what);
		s3_op_fail(op, &err);
		s3_op_free(op);
	}
	while ((op = TAILQ_FIRST(&c->live)) != NULL) {
		TAILQ_REMOVE(&c->live, op, entry);
		op->client = NULL; /* http.c frees it later */
		s3_error_set(&err, 0, 1, "cancelled",
		    "%s: cancelled: the "
		    "S3 client is shutting down",
		    op->what);
		s3_op_fail(op, &err);
	}
}

static void
s3_secret_free(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
	free(s);
}

static void
s3_really_free(struct s3_client *c)
{
	if (c->http != NULL)
		http_free(c->http);
	fsvol_free(c->fs);
	event_free(c->defer_ev);
	free(c->origin);
	free(c->host_header);
	free(c->bucket_path);
	free(c->prefix);
	free(c->region);
	free(c->access_key_id);
	s3_secret_free(c->secret_access_key);
	s3_secret_free(c->session_token);
	free(c);
}

void
s3_client_free(struct s3_client *c)
{
	if (c == NULL || c->doomed)
		return;
	c->doomed = 1;
	c->busy++;
	s3_cancel_all(c);
	s3_leave(c);
}
