/*
 * Request handling: split the target into bucket and key, authenticate,
 * consult the fault rules, pick the operation, reply.  Operations live in
 * ops_*.c; late and dropped replies in delivery.c.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "ops.h"
#include "server.h"
#include "xmlout.h"

/* Subresources s3mem does not implement: they fail rather than list. */
static const char *const unsupported_subresources[] = {"accelerate", "acl",
    "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
    "inventory", "legal-hold", "lifecycle", "logging", "metrics",
    "notification", "object-lock", "ownershipControls", "partNumber", "policy",
    "policyStatus", "publicAccessBlock", "replication", "requestPayment",
    "restore", "retention", "select", "tagging", "torrent", "uploadId",
    "uploads", "versionId", "versioning", "versions", "website"};

static const char *
reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 416:
		return "Range Not Satisfiable";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

struct evkeyvalq *
reply_headers(struct s3req *r)
{
	return evhttp_request_get_output_headers(r->req);
}

static const char *
outcome_name(enum fault_outcome o)
{
	switch (o) {
	case FAULT_RESET:
		return "reset";
	case FAULT_CLOSE:
		return "close";
	case FAULT_STALL:
		return "stall";
	default:
		return "error";
	}
}

/* status 0: no answer (the fault's outcome). */
static void
log_request(const struct s3req *r, int status)
{
	const struct fault_decision *d = &r->fault;
	struct buf		     fault;
	char			     st[16];

	if (!r->srv->verbose)
		return;
	if (status != 0)
		snprintf(st, sizeof(st), "%d", status);
	else
		snprintf(st, sizeof(st), "%s", outcome_name(d->outcome));
	buf_init(&fault);
	if (d->rule != 0)
		buf_addf(&fault, " rule %d", d->rule);
	if (d->delay_ms != 0)
		buf_addf(&fault, " +%lldms", (long long)d->delay_ms);
	if (d->keys != NULL)
		buf_adds(&fault, " per-key");
	fprintf(stderr, "s3mem: %s %s %s %.3fms%s%s\n", r->method, r->uri, st,
	    (double)(mono_us() - r->start_us) / 1000.0,
	    fault.len > 0 ? " fault:" : "", fault.len > 0 ? fault.data : "");
	buf_free(&fault);
}

/* The fault's outcome instead of an answer. */
static void
reply_fault(struct s3req *r)
{
	switch (r->fault.outcome) {
	case FAULT_ANSWER:
		break;
	case FAULT_ERROR_500:
		reply_error(r, 500, "InternalError",
		    "We encountered an internal error. Please try again. "
		    "(s3mem fault rule %d)",
		    r->fault.rule);
		break;
	case FAULT_ERROR_503:
		reply_error(r, 503, "SlowDown",
		    "Please reduce your request rate. (s3mem fault rule %d)",
		    r->fault.rule);
		break;
	case FAULT_RESET:
	case FAULT_CLOSE:
	case FAULT_STALL:
		r->replied = 1;
		delivery_drop(r->srv->delivery, r->req, r->fault.outcome,
		    r->fault.delay_ms);
		log_request(r, 0);
		break;
	}
}

void
reply_bytes(struct s3req *r, int status, const void *p, size_t n)
{
	struct evkeyvalq *h = reply_headers(r);
	struct evbuffer	 *out;

	if (r->replied)
		return;
	if (r->fault.applied) {
		/* The operation ran: only its answer is replaced. */
		r->fault.applied = 0;
		evhttp_clear_headers(h);
		reply_fault(r);
		return;
	}
	r->replied = 1;
	evhttp_add_header(h, "x-amz-request-id", r->request_id);
	evhttp_add_header(h, "Server", "s3mem");
	if (p != NULL && evhttp_find_header(h, "Content-Type") == NULL)
		evhttp_add_header(h, "Content-Type", "application/xml");
	out = evbuffer_new();
	if (out == NULL) {
		evhttp_send_error(r->req, 500, NULL);
		return;
	}
	if (evhttp_request_get_command(r->req) != EVHTTP_REQ_HEAD && n > 0 &&
	    evbuffer_add(out, p, n) != 0) {
		evbuffer_free(out);
		evhttp_send_error(r->req, 500, NULL);
		return;
	}
	delivery_send(r->srv->delivery, r->req, status, reason(status), out,
	    r->fault.delay_ms);
	log_request(r, status);
}

void
reply(struct s3req *r, int status, const struct buf *body)
{
	if (body == NULL)
		reply_bytes(r, status, NULL, 0);
	else
		reply_bytes(
		    r, status, body->data != NULL ? body->data : "", body->len);
}

static void
reply_error_doc(struct s3req *r, int status, const char *code,
    const char *message, const char *extra)
{
	struct buf b;

	buf_init(&b);
	xml_error(&b, code, message, r->path, r->request_id, extra);
	reply(r, status, &b);
	buf_free(&b);
}

void
reply_error(struct s3req *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	char	msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_error_doc(r, status, code, msg, NULL);
}

static void
reply_auth_error(struct s3req *r, const struct auth_error *err)
{
	struct buf extra;

	buf_init(&extra);
	if (err->canonical_request != NULL) {
		xml_elem_str(&extra, "StringToSign", err->string_to_sign, 0);
		xml_elem_str(
		    &extra, "CanonicalRequest", err->canonical_request, 0);
		if (r->srv->verbose)
			fprintf(stderr,
			    "s3mem: %s %s: our canonical request:\n%s\n",
			    r->method, r->uri, err->canonical_request);
	}
	reply_error_doc(r, err->status, err->code, err->message, extra.data);
	buf_free(&extra);
}

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	default:
		return "OTHER";
	}
}

/* A decoded path part: no NUL, valid UTF-8. */
static int
decode_part(const char *s, size_t n, char **out, size_t *outlen)
{
	struct buf b;

	buf_init(&b);
	if (pct_decode(&b, s, n, 0) != 0 || memchr(b.data, '\0', b.len) ||
	    !utf8_valid(b.data, b.len)) {
		buf_free(&b);
		return -1;
	}
	*outlen = b.len;
	*out = buf_steal(&b);
	return 0;
}

/* "/bucket/key": bucket_name and key, decoded.  Replies on failure. */
static int
split_target(struct s3req *r)
{
	const char *p = r->path + 1, *slash;
	size_t	    len;

	if (*p == '\0')
		return 0;
	slash = strchr(p, '/');
	len = slash != NULL ? (size_t)(slash - p) : strlen(p);
	if (decode_part(p, len, &r->bucket_name, &len) != 0) {
		reply_error(
		    r, 400, "InvalidURI", "Couldn't parse the specified URI.");
		return -1;
	}
	r->bucket = store_bucket(r->srv->store, r->bucket_name);
	if (slash == NULL || slash[1] == '\0')
		return 0;
	if (decode_part(slash + 1, strlen(slash + 1), &r->key, &r->keylen) !=
	    0) {
		reply_error(r, 400, "InvalidURI",
		    "Couldn't parse the specified URI (a key must be UTF-8 "
		    "without NUL).");
		return -1;
	}
	if (r->keylen > S3MEM_MAX_KEY) {
		reply_error(r, 400, "KeyTooLongError",
		    "Your key is too long (%zu bytes; at most %d).", r->keylen,
		    S3MEM_MAX_KEY);
		return -1;
	}
	return 0;
}

static const char *
unsupported_subresource(const struct s3req *r)
{
	size_t i;

	for (i = 0; i < nitems(unsupported_subresources); i++)
		if (query_find(&r->query, unsupported_subresources[i]) != NULL)
			return unsupported_subresources[i];
	return NULL;
}

static void
dispatch_bucket(struct s3req *r, enum evhttp_cmd_type cmd)
{
	if (cmd == EVHTTP_REQ_PUT) {
		op_create_bucket(r);
		return;
	}
	if (r->bucket == NULL) {
		reply_error(r, 404, "NoSuchBucket",
		    "The specified bucket does not exist: %s", r->bucket_name);
		return;
	}
	switch (cmd) {
	case EVHTTP_REQ_DELETE:
		op_delete_bucket(r);
		break;
	case EVHTTP_REQ_HEAD:
		reply(r, 200, NULL);
		break;
	case EVHTTP_REQ_GET:
		if (query_find(&r->query, "location") != NULL)
			op_bucket_location(r);
		else
			op_list_objects(r);
		break;
	case EVHTTP_REQ_POST:
		if (query_find(&r->query, "delete") != NULL)
			op_delete_objects(r);
		else if (query_find(&r->query, "s3mem-seed") != NULL)
			op_seed(r);
		else
			reply_error(r, 405, "MethodNotAllowed",
			    "POST on a bucket needs ?delete or ?s3mem-seed.");
		break;
	default:
		reply_error(r, 405, "MethodNotAllowed",
		    "The specified method is not allowed against this "
		    "resource.");
		break;
	}
}

static void
dispatch_object(struct s3req *r, enum evhttp_cmd_type cmd)
{
	if (r->bucket == NULL) {
		reply_error(r, 404, "NoSuchBucket",
		    "The specified bucket does not exist: %s", r->bucket_name);
		return;
	}
	switch (cmd) {
	case EVHTTP_REQ_PUT:
		op_put_object(r);
		break;
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		op_get_object(r);
		break;
	case EVHTTP_REQ_DELETE:
		op_delete_object(r);
		break;
	default:
		reply_error(r, 405, "MethodNotAllowed",
		    "The specified method is not allowed against this "
		    "resource.");
		break;
	}
}

static int
is_extension(const struct s3req *r)
{
	return (r->bucket_name == NULL &&
		   query_find(&r->query, "s3mem-faults") != NULL) ||
	    (r->bucket_name != NULL && r->key == NULL &&
		query_find(&r->query, "s3mem-seed") != NULL);
}

/* What dispatch() will make of the request, for the fault rules. */
static enum fault_op
request_op(const struct s3req *r)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(r->req);

	if (is_extension(r))
		return FAULT_OP_NONE;
	if (r->bucket_name == NULL)
		return FAULT_OP_BUCKET;
	if (r->key == NULL) {
		if (cmd == EVHTTP_REQ_GET &&
		    query_find(&r->query, "location") == NULL)
			return FAULT_OP_LIST;
		if (cmd == EVHTTP_REQ_POST &&
		    query_find(&r->query, "delete") != NULL)
			return FAULT_OP_DELETE_OBJECTS;
		return FAULT_OP_BUCKET;
	}
	switch (cmd) {
	case EVHTTP_REQ_PUT:
		return FAULT_OP_PUT;
	case EVHTTP_REQ_GET:
		return FAULT_OP_GET;
	case EVHTTP_REQ_HEAD:
		return FAULT_OP_HEAD;
	case EVHTTP_REQ_DELETE:
		return FAULT_OP_DELETE;
	default:
		return FAULT_OP_BUCKET;
	}
}

static void
dispatch(struct s3req *r)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(r->req);
	const char	    *sub;

	if (r->bucket_name == NULL &&
	    query_find(&r->query, "s3mem-faults") != NULL)
		op_faults(r);
	else if ((sub = unsupported_subresource(r)) != NULL)
		reply_error(r, 501, "NotImplemented",
		    "s3mem does not implement the ?%s subresource.", sub);
	else if (r->bucket_name == NULL && cmd == EVHTTP_REQ_GET)
		op_list_buckets(r);
	else if (r->bucket_name == NULL)
		reply_error(r, 405, "MethodNotAllowed",
		    "The specified method is not allowed against this "
		    "resource.");
	else if (r->key == NULL)
		dispatch_bucket(r, cmd);
	else
		dispatch_object(r, cmd);
}

/* Path and query as sent.  Replies on failure. */
static int
split_uri(struct s3req *r)
{
	const char *q = strchr(r->uri, '?');

	r->path = q != NULL ? xstrndup(r->uri, (size_t)(q - r->uri))
			    : xstrdup(r->uri);
	if (q != NULL)
		r->rawquery = xstrdup(q + 1);
	if (r->path[0] != '/') {
		reply_error(r, 400, "InvalidURI",
		    "s3mem takes origin-form request targets (/bucket/key).");
		return -1;
	}
	return 0;
}

static int
authenticate(struct s3req *r)
{
	struct auth_error err;

	if (auth_check(&r->srv->auth, r->req, r->path, r->rawquery, r->body,
		r->bodylen, time(NULL), &err) == 0)
		return 0;
	reply_auth_error(r, &err);
	auth_error_free(&err);
	return -1;
}

static void
handle(struct evhttp_request *req, void *arg)
{
	struct server	*srv = arg;
	struct s3req	 r;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);

	memset(&r, 0, sizeof(r));
	r.srv = srv;
	r.req = req;
	r.start_us = mono_us();
	r.method = method_name(evhttp_request_get_command(req));
	r.uri = evhttp_request_get_uri(req);
	snprintf(r.request_id, sizeof(r.request_id), "%016" PRIX64,
	    ++srv->nrequests);
	r.bodylen = evbuffer_get_length(in);
	r.body = r.bodylen > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	if (r.body == NULL)
		r.body = "";

	if (split_uri(&r) != 0 || authenticate(&r) != 0)
		goto out;
	if (query_parse(&r.query, r.rawquery) != 0) {
		reply_error(&r, 400, "InvalidArgument",
		    "The query string has a malformed %%-escape.");
		goto out;
	}
	if (split_target(&r) != 0)
		goto out;
	faults_decide(srv->faults, request_op(&r), &r.fault);
	if (r.fault.outcome != FAULT_ANSWER && !r.fault.applied)
		reply_fault(&r);
	else
		dispatch(&r);
	if (!r.replied)
		reply_error(&r, 500, "InternalError",
		    "s3mem did not answer this request.");
out:
	query_free(&r.query);
	free(r.path);
	free(r.rawquery);
	free(r.bucket_name);
	free(r.key);
}

int
server_listen(struct server *srv, const char *host, int port, int *bound_port,
    char *errbuf, size_t errlen)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage	    ss;
	socklen_t		    sslen = sizeof(ss);

	srv->delivery = delivery_new(srv->base);
	if ((srv->http = evhttp_new(srv->base)) == NULL) {
		snprintf(errbuf, errlen, "evhttp_new failed");
		return -1;
	}
	evhttp_set_max_body_size(srv->http, S3MEM_MAX_REQUEST);
	evhttp_set_max_headers_size(srv->http, S3MEM_MAX_HEADERS);
	evhttp_set_allowed_methods(srv->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
		EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(srv->http, 120);
	evhttp_set_gencb(srv->http, handle, srv);
	if ((bs = evhttp_bind_socket_with_handle(
		 srv->http, host, (ev_uint16_t)port)) == NULL) {
		snprintf(errbuf, errlen, "cannot listen on %s:%d", host, port);
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
		&sslen) != 0) {
		snprintf(errbuf, errlen, "getsockname failed");
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		*bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

void
server_close(struct server *srv)
{
	/* Before evhttp_free(): see delivery_free(). */
	delivery_free(srv->delivery);
	srv->delivery = NULL;
	if (srv->http != NULL)
		evhttp_free(srv->http);
	srv->http = NULL;
}
