#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "redis.h"
#include "resolve.h"
#include "util.h"

#define REDIS_CONNECT_TIMEOUT_MS 10000
#define REDIS_BACKOFF_MIN_MS	 100
#define REDIS_BACKOFF_MAX_MS	 5000
#define REDIS_MAX_ARGS		 64

enum redis_state {
	RS_IDLE,
	RS_RESOLVING,
	RS_CONNECTING,
	RS_HANDSHAKE,
	RS_READY,
};

struct redis_pending {
	TAILQ_ENTRY(redis_pending) entry;
	redis_cb *cb;
	void	 *arg;
};

TAILQ_HEAD(redis_pending_list, redis_pending);

struct redis {
	struct event_base *base;
	struct evdns_base *dns;
	char		  *name;
	char		  *host;
	int		   port;
	int		   tls;
	int		   verify;
	char		  *ca_file;
	char		  *user;
	char		  *password;
	int		   db;

	enum redis_state	  state;
	struct resolve_req	 *resolving;
	struct bufferevent	 *bev;
	SSL_CTX			 *ssl_ctx;
	redisReader		 *reader;
	struct redis_pending_list pending;
	struct event		 *retry_ev;
	struct event		 *timeout_ev;
	int			  backoff_ms;
	int			  reconnect;
	int			  handshake_left;

	redis_state_cb *state_cb;
	void	       *state_arg;
	char	       *channel;
	redis_cb       *sub_cb;
	redis_msg_cb   *msg_cb;
	void	       *msg_arg;

	int  busy;   /* inside a callback */
	int  doomed; /* redis_free() during a callback */
	char err[256];
};

static void redis_start(struct redis *);
static void redis_fail(struct redis *, const char *, ...) PRINTF_LIKE(2, 3);

enum redis_reply_type
redis_reply_type(const struct redis_reply *r)
{
	return (enum redis_reply_type)((const redisReply *)r)->type;
}

const char *
redis_reply_str(const struct redis_reply *rr, size_t *len)
{
	const redisReply *r = (const redisReply *)rr;

	if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS &&
	    r->type != REDIS_REPLY_ERROR) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = r->len;
	return r->str;
}

long long
redis_reply_int(const struct redis_reply *r)
{
	return ((const redisReply *)r)->integer;
}

size_t
redis_reply_len(const struct redis_reply *r)
{
	const redisReply *rr = (const redisReply *)r;

	return rr->type == REDIS_REPLY_ARRAY ? rr->elements : 0;
}

const struct redis_reply *
redis_reply_elem(const struct redis_reply *r, size_t i)
{
	const redisReply *rr = (const redisReply *)r;

	if (rr->type != REDIS_REPLY_ARRAY || i >= rr->elements)
		return NULL;
	return (const struct redis_reply *)rr->element[i];
}

int
redis_reply_failed(const struct redis_reply *r)
{
	return r == NULL || ((const redisReply *)r)->type == REDIS_REPLY_ERROR;
}

static void
redis_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	redis_start(arg);
}

static void
redis_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;

	redis_fail(r, "timed out connecting to %s:%d", r->host, r->port);
}

struct redis *
redis_new(struct event_base *base, struct evdns_base *dns,
    const struct redis_url *u, const char *name)
{
	struct redis *r = xcalloc(1, sizeof(*r));

	r->base = base;
	r->dns = dns;
	r->name = xstrdup(name);
	r->host = xstrdup(u->host);
	r->port = u->port;
	r->tls = u->tls;
	r->verify = u->verify;
	r->ca_file = u->ca_file ? xstrdup(u->ca_file) : NULL;
	r->user = u->user ? xstrdup(u->user) : NULL;
	r->password = u->password ? xstrdup(u->password) : NULL;
	r->db = u->db;
	r->reconnect = 1;
	r->backoff_ms = REDIS_BACKOFF_MIN_MS;
	TAILQ_INIT(&r->pending);
	r->retry_ev = evtimer_new(base, redis_retry_cb, r);
	r->timeout_ev = evtimer_new(base, redis_timeout_cb, r);
	return r;
}

void
redis_set_state_cb(struct redis *r, redis_state_cb *cb, void *arg)
{
	r->state_cb = cb;
	r->state_arg = arg;
}

void
redis_set_reconnect(struct redis *r, int on)
{
	r->reconnect = on;
}

int
redis_is_ready(const struct redis *r)
{
	return r->state == RS_READY;
}

const char *
redis_last_error(const struct redis *r)
{
	return r->err;
}

static void
redis_close(struct redis *r)
{
	if (r->resolving != NULL) {
		resolve_cancel(r->resolving);
		r->resolving = NULL;
	}
	if (r->bev != NULL) {
		bufferevent_free(r->bev);
		r->bev = NULL;
	}
	if (r->reader != NULL) {
		redisReaderFree(r->reader);
		r->reader = NULL;
	}
	evtimer_del(r->timeout_ev);
	r->state = RS_IDLE;
}

/* Fail every command in flight; each gets a NULL reply. */
static void
redis_fail_pending(struct redis *r)
{
	struct redis_pending_list list;
	struct redis_pending	 *p;

	TAILQ_INIT(&list);
	TAILQ_CONCAT(&list, &r->pending, entry);
	r->busy++;
	while ((p = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, p, entry);
		if (p->cb != NULL)
			p->cb(r, NULL, p->arg);
		free(p);
	}
	r->busy--;
}

static void
redis_schedule_retry(struct redis *r)
{
	struct timeval tv;
	int ms = r->backoff_ms / 2 + (int)(random() % (r->backoff_ms / 2 + 1));

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->retry_ev, &tv);
	r->backoff_ms *= 2;
	if (r->backoff_ms > REDIS_BACKOFF_MAX_MS)
		r->backoff_ms = REDIS_BACKOFF_MAX_MS;
}

static void
redis_really_free(struct redis *r)
{
	redis_close(r);
	event_free(r->retry_ev);
	event_free(r->timeout_ev);
	if (r->ssl_ctx != NULL)
		SSL_CTX_free(r->ssl_ctx);
	free(r->name);
	free(r->host);
	free(r->ca_file);
	free(r->user);
	if (r->password != NULL)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	free(r->channel);
	free(r);
}

static void
redis_fail(struct redis *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	logkv(LOG_WARN, "redis connection failed", "conn", r->name, "error",
	    r->err, (char *)NULL);
	redis_close(r);
	r->busy++;
	redis_fail_pending(r);
	if (r->state_cb != NULL && !r->doomed)
		r->state_cb(r, 0, r->state_arg);
	r->busy--;
	if (r->doomed && r->busy == 0) {
		redis_really_free(r);
		return;
	}
	if (r->reconnect && !r->doomed)
		redis_schedule_retry(r);
}

void
redis_free(struct redis *r)
{
	if (r == NULL)
		return;
	r->doomed = 1;
	r->reconnect = 0;
	if (r->busy > 0)
		return;
	r->busy++;
	redis_close(r);
	redis_fail_pending(r);
	r->busy--;
	redis_really_free(r);
}

static void
redis_send(struct redis *r, int argc, const char **argv, const size_t *lens,
    redis_cb *cb, void *arg)
{
	struct redis_pending *p;
	char		     *cmd;
	int		      n;

	n = redisFormatCommandArgv(&cmd, argc, argv, lens);
	if (n < 0)
		fatal("out of memory formatting a redis command");
	bufferevent_write(r->bev, cmd, (size_t)n);
	free(cmd);
	p = xmalloc(sizeof(*p));
	p->cb = cb;
	p->arg = arg;
	TAILQ_INSERT_TAIL(&r->pending, p, entry);
}

int
redis_cmd_argv(struct redis *r, redis_cb *cb, void *arg, int argc,
    const char **argv, const size_t *lens)
{
	if (r->state != RS_READY || r->doomed || r->channel != NULL)
		return -1;
	redis_send(r, argc, argv, lens, cb, arg);
	return 0;
}

int
redis_cmd(struct redis *r, redis_cb *cb, void *arg, ...)
{
	const char *argv[REDIS_MAX_ARGS];
	size_t	    lens[REDIS_MAX_ARGS];
	va_list	    ap;
	int	    argc = 0;
	const char *s;

	va_start(ap, arg);
	while ((s = va_arg(ap, const char *)) != NULL) {
		if (argc == REDIS_MAX_ARGS)
			fatal("redis command with more than %d arguments",
			    REDIS_MAX_ARGS);
		argv[argc] = s;
		lens[argc++] = strlen(s);
	}
	va_end(ap);
	return redis_cmd_argv(r, cb, arg, argc, argv, lens);
}

static void
redis_ready(struct redis *r)
{
	evtimer_del(r->timeout_ev);
	r->state = RS_READY;
	r->backoff_ms = REDIS_BACKOFF_MIN_MS;
	r->err[0] = '\0';
	logkv(LOG_DEBUG, "redis connected", "conn", r->name, (char *)NULL);
	if (r->state_cb != NULL)
		r->state_cb(r, 1, r->state_arg);
}

static void
redis_handshake_reply(
    struct redis *r, const struct redis_reply *reply, void *arg)
{
	const char *what = arg;

	if (reply == NULL)
		return; /* redis_fail() is already running */
	if (redis_reply_type(reply) == REDIS_R_ERROR) {
		redis_fail(
		    r, "%s failed: %.200s", what, redis_reply_str(reply, NULL));
		return;
	}
	if (--r->handshake_left == 0)
		redis_ready(r);
}

static void
redis_handshake(struct redis *r)
{
	char db[16];

	r->state = RS_HANDSHAKE;
	r->handshake_left = 0;
	if (r->password != NULL) {
		const char *argv[3] = {"AUTH", r->user, r->password};
		size_t	    lens[3] = {
			 4, r->user ? strlen(r->user) : 0, strlen(r->password)};
		if (r->user == NULL) {
			argv[1] = r->password;
			lens[1] = lens[2];
		}
		redis_send(r, r->user ? 3 : 2, argv, lens,
		    redis_handshake_reply, "AUTH");
		r->handshake_left++;
	}
	if (r->db != 0) {
		const char *argv[2] = {"SELECT", db};
		size_t	    lens[2];
		snprintf(db, sizeof(db), "%d", r->db);
		lens[0] = 6;
		lens[1] = strlen(db);
		redis_send(r, 2, argv, lens, redis_handshake_reply, "SELECT");
		r->handshake_left++;
	}
	if (r->channel != NULL) {
		const char *argv[2] = {"SUBSCRIBE", r->channel};
		size_t	    lens[2] = {9, strlen(r->channel)};
		redis_send(
		    r, 2, argv, lens, redis_handshake_reply, "SUBSCRIBE");
		r->handshake_left++;
	}
	/* PING proves the server speaks RESP even with nothing else to send. */
	if (r->handshake_left == 0) {
		const char *argv[1] = {"PING"};
		size_t	    lens[1] = {4};
		redis_send(r, 1, argv, lens, redis_handshake_reply, "PING");
		r->handshake_left++;
	}
}

/* Deliver one reply; returns -1 when r must not be touched any more. */
static int
redis_dispatch(struct redis *r, redisReply *reply)
{
	struct redis_pending *p;

	if (r->channel != NULL && r->state == RS_READY &&
	    reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(reply->element[0]->str, "message") == 0) {
		if (r->msg_cb != NULL &&
		    reply->element[2]->type == REDIS_REPLY_STRING)
			r->msg_cb(r, reply->element[2]->str,
			    reply->element[2]->len, r->msg_arg);
		return 0;
	}
	if ((p = TAILQ_FIRST(&r->pending)) == NULL) {
		redis_fail(r, "unexpected reply from the server");
		return -1;
	}
	TAILQ_REMOVE(&r->pending, p, entry);
	if (p->cb != NULL)
		p->cb(r, (const struct redis_reply *)reply, p->arg);
	free(p);
	return 0;
}

static void
redis_read_cb(struct bufferevent *bev, void *arg)
{
	struct redis	     *r = arg;
	struct evbuffer	     *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[16];
	void		     *reply;
	int		      i, n;

	while (evbuffer_get_length(in) > 0) {
		size_t fed = 0;
		n = evbuffer_peek(in, -1, NULL, v, (int)nitems(v));
		if (n > (int)nitems(v))
			n = (int)nitems(v);
		for (i = 0; i < n; i++) {
			redisReaderFeed(r->reader, v[i].iov_base, v[i].iov_len);
			fed += v[i].iov_len;
		}
		evbuffer_drain(in, fed);
	}
	r->busy++;
	for (;;) {
		if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
			redis_fail(r, "protocol error reading a reply: %s",
			    r->reader->errstr);
			break;
		}
		if (reply == NULL)
			break;
		if (redis_dispatch(r, reply) != 0 || r->reader == NULL) {
			freeReplyObject(reply);
			break;
		}
		freeReplyObject(reply);
		if (r->doomed)
			break;
	}
	r->busy--;
	if (r->doomed && r->busy == 0)
		redis_free(r);
}

static void
redis_tls_error(struct redis *r, char *out, size_t outlen)
{
	unsigned long e;
	SSL	     *ssl = bufferevent_openssl_get_ssl(r->bev);
	long	      vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	out[0] = '\0';
	if (vr != X509_V_OK) {
		snprintf(out, outlen, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
		return;
	}
	while ((e = bufferevent_get_openssl_error(r->bev)) != 0)
		if (out[0] == '\0')
			ERR_error_string_n(e, out, outlen);
}

static void
redis_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct redis *r = arg;
	char	      why[200];

	if (what & BEV_EVENT_CONNECTED) {
		int		one = 1;
		evutil_socket_t fd = bufferevent_getfd(bev);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		redis_handshake(r);
		return;
	}
	why[0] = '\0';
	if (r->tls)
		redis_tls_error(r, why, sizeof(why));
	if (why[0] == '\0' && (what & BEV_EVENT_ERROR) &&
	    EVUTIL_SOCKET_ERROR() != 0)
		snprintf(why, sizeof(why), "%s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (why[0] == '\0')
		snprintf(why, sizeof(why), "%s",
		    what & BEV_EVENT_EOF ? "connection closed by the server"
					 : "connection error");
	redis_fail(r, "%s:%d: %s", r->host, r->port, why);
}

static SSL *
redis_ssl_new(struct redis *r)
{
	SSL *ssl;

	if (r->ssl_ctx == NULL) {
		r->ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (r->ssl_ctx == NULL)
			return NULL;
		SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_2_VERSION);
		if (r->verify) {
			SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_PEER, NULL);
			if (r->ca_file != NULL
				? SSL_CTX_load_verify_locations(
				      r->ssl_ctx, r->ca_file, NULL) != 1
				: SSL_CTX_set_default_verify_paths(
				      r->ssl_ctx) != 1) {
				snprintf(r->err, sizeof(r->err),
				    "cannot load "
				    "CA certificates%s%s",
				    r->ca_file ? " from " : "",
				    r->ca_file ? r->ca_file : "");
				SSL_CTX_free(r->ssl_ctx);
				r->ssl_ctx = NULL;
				return NULL;
			}
		} else
			SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	if ((ssl = SSL_new(r->ssl_ctx)) == NULL)
		return NULL;
	if (host_is_numeric(r->host)) {
		if (r->verify)
			X509_VERIFY_PARAM_set1_ip_asc(
			    SSL_get0_param(ssl), r->host);
	} else {
		SSL_set_tlsext_host_name(ssl, r->host);
		if (r->verify)
			SSL_set1_host(ssl, r->host);
	}
	return ssl;
}

static void
redis_resolved(
    void *arg, const struct sockaddr *sa, socklen_t len, const char *err)
{
	struct redis *r = arg;
	SSL	     *ssl = NULL;

	r->resolving = NULL;
	if (sa == NULL) {
		redis_fail(r, "cannot resolve %s: %s", r->host, err);
		return;
	}
	if (r->tls) {
		if ((ssl = redis_ssl_new(r)) == NULL) {
			char why[sizeof(r->err)];
			strlcpy_(
			    why, r->err[0] ? r->err : "SSL_new", sizeof(why));
			redis_fail(r, "TLS setup failed: %s", why);
			return;
		}
		r->bev = bufferevent_openssl_socket_new(r->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (r->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(r->bev, 1);
	} else
		r->bev = bufferevent_socket_new(
		    r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL) {
		if (ssl != NULL)
			SSL_free(ssl);
		redis_fail(r, "cannot create a connection");
		return;
	}
	r->reader = redisReaderCreate();
	r->state = RS_CONNECTING;
	bufferevent_setcb(r->bev, redis_read_cb, NULL, redis_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(
		r->bev, (struct sockaddr *)sa, (int)len) != 0)
		redis_fail(r, "cannot connect to %s:%d: %s", r->host, r->port,
		    strerror(errno));
}

static void
redis_start(struct redis *r)
{
	struct timeval tv = {REDIS_CONNECT_TIMEOUT_MS / 1000, 0};

	if (r->state != RS_IDLE || r->doomed)
		return;
	r->state = RS_RESOLVING;
	evtimer_add(r->timeout_ev, &tv);
	r->resolving = resolve_host(
	    r->dns, r->host, r->port, redis_resolved, r);
}

void
redis_connect(struct redis *r)
{
	evtimer_del(r->retry_ev);
	redis_start(r);
}

static void
redis_subscribed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	if (r->sub_cb != NULL)
		r->sub_cb(r, reply, r->msg_arg);
}

int
redis_subscribe(struct redis *r, const char *channel, redis_msg_cb *cb,
    redis_cb *confirmed, void *arg)
{
	const char *argv[2] = {"SUBSCRIBE", channel};
	size_t	    lens[2] = {9, strlen(channel)};

	if (r->state != RS_READY || r->channel != NULL)
		return -1;
	r->channel = xstrdup(channel);
	r->msg_cb = cb;
	r->sub_cb = confirmed;
	r->msg_arg = arg;
	redis_send(r, 2, argv, lens, redis_subscribed, NULL);
	return 0;
}
