/*
 * PostgreSQL access: a small pool of asynchronous libpq connections on one
 * libevent loop.  Nothing here may block the loop, so:
 *
 *  - host names are turned into addresses with evdns first and handed to
 *    libpq as hostaddr (host is kept, for TLS name checks and the
 *    password file), because PQconnectStart() would resolve them with a
 *    blocking getaddrinfo();
 *  - connections are made with PQconnectStartParams()/PQconnectPoll() and
 *    every later step waits for socket readiness (PQflush(),
 *    PQconsumeInput(), PQisBusy() before each PQgetResult());
 *  - a query that outlives query_ms is not cancelled with PQcancel(),
 *    which opens a new connection and waits for it: its connection is
 *    closed instead (see conn_query_timeout()).
 *
 * The rules for failures: a query that was sent on a connection that dies
 * is answered DB_ERR_UNAVAILABLE and never retried, since it may have had
 * effects.  A query not yet sent stays queued while connections are made
 * again with capped exponential backoff, but for connect_ms at most.
 *
 * Callbacks run only from the loop, never inside db_query() or a
 * db_cursor_*() call, and may call any of them or db_free(); deliver() is
 * the one place they are called.
 *
 * A cursor is a chain of statements on one connection it holds: BEGIN
 * (with SET LOCAL), DECLARE, then a FETCH each time the consumer asks.
 * Its BEGIN waits in the queue like any query; the statements after it
 * are "pinned": they run on the held connection or fail, never elsewhere.
 * When the cursor is closed or fails, a ROLLBACK ends its transaction
 * before the connection rejoins the pool ("releasing").
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "resolve.h"
#include "util.h"

#define DB_CONNECT_TIMEOUT_MS 10000
#define DB_QUERY_TIMEOUT_MS   30000
#define DB_BACKOFF_MIN_MS     100
#define DB_BACKOFF_MAX_MS     5000
#define DB_DEFAULT_PORT	      5432
#define DB_APP_NAME	      "clipsweep"
#define DB_CURSOR_NAME	      "clipsweep_cursor" /* one per connection */
/* The server's statement_timeout for cursors: ours, and then a grace. */
#define DB_SERVER_GRACE_MS 1000

enum db_conn_state {
	DC_CLOSED,     /* no connection */
	DC_RESOLVING,  /* evdns is looking up host names */
	DC_CONNECTING, /* PQconnectPoll() in progress */
	DC_IDLE,       /* connected, free for a query */
	DC_BUSY,       /* a query was sent, its result is awaited */
};

struct db_query {
	TAILQ_ENTRY(db_query) entry;
	char   *sql;
	char  **params;
	int	nparams;
	db_cb  *cb;
	void   *arg;
	int64_t queued_us;
	int	simple; /* several statements, no parameters: PQsendQuery() */
	int	opens;	/* a cursor's BEGIN: takes the connection it runs on */
	int	pinned; /* runs on the connection it was made for, or fails */
	char   *copy;	/* COPY ... FROM STDIN: the data, sent whole */
	size_t	copylen;
	int	copied;		  /* the data and its end are queued */
	struct db_cursor *cursor; /* whose statement this is */
};

TAILQ_HEAD(db_query_list, db_query);

/* The lookup of one entry of the host list, for one connection attempt. */
struct db_lookup {
	struct db_conn	   *conn;
	const char	   *host;
	struct resolve_req *req;
	char		    addr[INET6_ADDRSTRLEN];
	char		    error[128];
};

struct db_conn {
	struct db	  *db;
	enum db_conn_state state;
	PGconn		  *pg;
	struct event	   io;
	int		   io_fd;
	short		   io_what;    /* 0 while io is not added */
	struct event	   timer;      /* connect or query deadline */
	int64_t		   started_us; /* of this connection attempt */
	struct db_lookup  *lookups;    /* nhosts, if db->lookup */
	int		   lookups_left;
	int		   starting;  /* inside conn_start() */
	int		   flushing;  /* PQflush() returned 1 */
	struct db_query	  *q;	      /* sent and not yet answered */
	PGresult	  *last;      /* latest result for q */
	struct db_cursor  *cur;	      /* holds this connection */
	int		   releasing; /* ROLLBACK due before it rejoins */
};

struct db_cursor {
	TAILQ_ENTRY(db_cursor) entry;
	struct db	*db;	  /* NULL after db_free() */
	struct db_conn	*conn;	  /* held, from its BEGIN being sent */
	struct db_query *declare; /* sent once BEGIN is done */
	struct db_query *next;	  /* to be sent from the loop */
	struct event	 step;	  /* sends next */
	int		 opened;  /* DECLARE done */
	int		 dead;
	struct db_error	 error; /* why it is dead */
	db_cursor_cb	*cb;	/* of the operation under way */
	void		*cbarg;
};

TAILQ_HEAD(db_cursor_list, db_cursor);

struct db {
	struct event_base *base;
	struct evdns_base *dns;
	PQconninfoOption  *opts;
	const char	 **keys; /* options passed as they are */
	const char	 **vals;
	int		   nkeys;
	int		   lookup; /* hosts has names to resolve */
	char		 **hosts;
	int		   nhosts;
	char		 **ports; /* port list split, if any */
	int		   nports;
	char		  *port_spec; /* port list as given */

	struct db_conn	     *conns;
	int		      nconns;
	struct db_query_list  queue; /* not yet sent, oldest first */
	int		      nqueued;
	struct event	      kick;    /* run db_dispatch() */
	struct event	      retry;   /* end of the backoff delay */
	struct event	      expiry;  /* oldest query's deadline */
	struct db_cursor_list cursors; /* not yet closed */

	int	connect_ms;
	int	query_ms;
	int	backoff_ms;   /* 0 while connecting works */
	int64_t retry_at_us;  /* no attempt starts before */
	int64_t failed_at_us; /* last backoff step */
	char	last_error[256];

	int		closing;
	int		free_pending; /* db_free() in a callback */
	int		depth;	      /* callbacks running */
	struct db_stats stats;
};

struct db_result {
	const PGresult *res;
};

static void db_dispatch(struct db *);
static void db_kick(struct db *);
static void conn_io_cb(evutil_socket_t, short, void *);
static void conn_timer_cb(evutil_socket_t, short, void *);
static void conn_close(struct db_conn *);
static void conn_connect_failed(struct db_conn *, const char *);
static int  conn_lost(struct db_conn *, const char *);
static void cursor_kill(struct db_cursor *, const struct db_error *);

/*
 * libpq messages span lines ("...failed: Connection refused\n\tIs the
 * server running...\n"); logs want one line.  Runs of white space become
 * one space, and a cut never splits a UTF-8 sequence.
 */
static void
text_clean(char *out, size_t outlen, const char *in)
{
	size_t n = 0;
	int    space = 0, cut = 0;

	for (; in != NULL && *in != '\0'; in++) {
		if (*in == ' ' || *in == '\n' || *in == '\t' || *in == '\r') {
			space = 1;
			continue;
		}
		if (n + (space && n > 0) + 1 >= outlen) {
			cut = 1;
			break;
		}
		if (space && n > 0)
			out[n++] = ' ';
		space = 0;
		out[n++] = *in;
	}
	if (cut) {
		while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
			n--;
		if (n > 0 && (unsigned char)out[n - 1] >= 0xc0)
			n--;
	}
	if (outlen > 0)
		out[n] = '\0';
}

static void PRINTF_LIKE(4, 5) err_set(struct db_error *err,
    enum db_error_kind kind, const char *sqlstate, const char *fmt, ...)
{
	char	tmp[1024];
	va_list ap;

	memset(err, 0, sizeof(*err));
	err->kind = kind;
	if (sqlstate != NULL)
		strlcpy_(err->sqlstate, sqlstate, sizeof(err->sqlstate));
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	text_clean(err->message, sizeof(err->message), tmp);
}

static int
is_keyword(const PQconninfoOption *known, const char *s, size_t len)
{
	for (; known != NULL && known->keyword != NULL; known++)
		if (strlen(known->keyword) == len &&
		    strncmp(known->keyword, s, len) == 0)
			return 1;
	return 0;
}

/*
 * PQconninfoParse() quotes the text it could not parse, and that text can
 * be the password ("invalid percent-encoded token: "pa%zz"").  Keep quoted
 * option names, hide every other quoted string.
 */
static void
conninfo_error(const char *perr)
{
	PQconninfoOption *known;
	const char	 *in, *end;
	char		  clean[512];
	struct buf	  b;
	size_t		  n;

	known = PQconninfoParse("", NULL);
	text_clean(clean, sizeof(clean), perr != NULL ? perr : "out of memory");
	buf_init(&b);
	for (in = clean; *in != '\0'; in = end + 1) {
		if (*in != '"') {
			buf_add(&b, in, 1);
			end = in;
			continue;
		}
		if ((end = strchr(in + 1, '"')) == NULL) {
			buf_adds(&b, "\"***\"");
			break;
		}
		n = (size_t)(end - in - 1);
		if (is_keyword(known, in + 1, n))
			buf_add(&b, in, n + 2);
		else
			buf_adds(&b, "\"***\"");
	}
	logkv(LOG_ERROR, "invalid database connection string", "error",
	    b.data != NULL ? b.data : "", NULL);
	buf_free(&b);
	PQconninfoFree(known);
}

/* A name for evdns: not empty, not a socket directory, not numeric. */
static int
host_is_name(const char *host)
{
	return host[0] != '\0' && host[0] != '/' && host[0] != '@' &&
	    !host_is_numeric(host);
}

/* libpq's list syntax: comma-separated, no quoting. */
static char **
list_split(const char *s, int *np)
{
	const char *comma;
	char	  **v;
	int	    n = 1, i;

	for (comma = s; (comma = strchr(comma, ',')) != NULL; comma++)
		n++;
	v = xcalloc((size_t)n, sizeof(*v));
	for (i = 0; i < n; i++) {
		comma = strchr(s, ',');
		if (comma == NULL)
			comma = s + strlen(s);
		v[i] = xstrndup(s, (size_t)(comma - s));
		s = comma + 1;
	}
	*np = n;
	return v;
}

static void
list_free(char **v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *
opt_value(const PQconninfoOption *o, const char *keyword)
{
	for (; o->keyword != NULL; o++)
		if (strcmp(o->keyword, keyword) == 0)
			return o->val;
	return NULL;
}

/*
 * Decide whether connecting needs evdns, and split the options into those
 * passed as they are and the host list built again for each attempt.
 * Without host or hostaddr libpq falls back to PGHOST, so that is looked
 * at too.  A host set through a service file (service=) is not seen here
 * and would be resolved by libpq, blocking: a documented limitation.
 */
static int
db_plan_hosts(struct db *db)
{
	const PQconninfoOption *o;
	const char	       *host, *hostaddr, *port;
	int			n = 0;

	host = opt_value(db->opts, "host");
	hostaddr = opt_value(db->opts, "hostaddr");
	port = opt_value(db->opts, "port");
	if (host == NULL && hostaddr == NULL && getenv("PGHOSTADDR") == NULL) {
		host = getenv("PGHOST");
		if (port == NULL)
			port = getenv("PGPORT");
	}
	if (hostaddr == NULL && host != NULL) {
		db->hosts = list_split(host, &db->nhosts);
		for (n = 0; n < db->nhosts; n++)
			if (host_is_name(db->hosts[n]))
				db->lookup = 1;
	}
	if (db->lookup && db->dns == NULL) {
		logkv(LOG_ERROR, "database host name needs a DNS resolver",
		    "host", host, NULL);
		return -1;
	}
	if (db->lookup && port != NULL) {
		db->port_spec = xstrdup(port);
		db->ports = list_split(port, &db->nports);
	}

	for (n = 0, o = db->opts; o->keyword != NULL; o++)
		n++;
	db->keys = xcalloc((size_t)n + 2, sizeof(*db->keys));
	db->vals = xcalloc((size_t)n + 2, sizeof(*db->vals));
	for (o = db->opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (db->lookup &&
		    (strcmp(o->keyword, "host") == 0 ||
			strcmp(o->keyword, "hostaddr") == 0 ||
			strcmp(o->keyword, "port") == 0))
			continue;
		db->keys[db->nkeys] = o->keyword;
		db->vals[db->nkeys++] = o->val;
	}
	if (opt_value(db->opts, "fallback_application_name") == NULL) {
		db->keys[db->nkeys] = "fallback_application_name";
		db->vals[db->nkeys++] = DB_APP_NAME;
	}
	return 0;
}

static void
timer_add(struct event *ev, int64_t us)
{
	struct timeval tv;

	if (us < 0)
		us = 0;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	event_add(ev, &tv);
}

static void
db_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	db_dispatch(arg);
}

/* Dispatching happens from the loop, never inside db_query(). */
static void
db_kick(struct db *db)
{
	if (!db->closing)
		event_active(&db->kick, EV_TIMEOUT, 1);
}

static void db_expiry_cb(evutil_socket_t, short, void *);

struct db *
db_new(struct event_base *base, struct evdns_base *dns, const char *conninfo,
    int pool_size)
{
	PQconninfoOption *opts;
	struct db_conn	 *c;
	struct db	 *db;
	char		 *perr = NULL;
	int		  i, j;

	if ((opts = PQconninfoParse(conninfo, &perr)) == NULL) {
		conninfo_error(perr);
		PQfreemem(perr);
		return NULL;
	}
	db = xcalloc(1, sizeof(*db));
	db->base = base;
	db->dns = dns;
	db->opts = opts;
	db->connect_ms = DB_CONNECT_TIMEOUT_MS;
	db->query_ms = DB_QUERY_TIMEOUT_MS;
	TAILQ_INIT(&db->queue);
	TAILQ_INIT(&db->cursors);
	event_assign(&db->kick, base, -1, 0, db_kick_cb, db);
	event_assign(&db->retry, base, -1, 0, db_kick_cb, db);
	event_assign(&db->expiry, base, -1, 0, db_expiry_cb, db);
	if (db_plan_hosts(db) == -1) {
		db_free(db);
		return NULL;
	}

	db->nconns = pool_size < 1 ? 1 : pool_size;
	db->conns = xcalloc((size_t)db->nconns, sizeof(*db->conns));
	for (i = 0; i < db->nconns; i++) {
		c = &db->conns[i];
		c->db = db;
		c->io_fd = -1;
		evtimer_assign(&c->timer, base, conn_timer_cb, c);
		if (!db->lookup)
			continue;
		c->lookups = xcalloc((size_t)db->nhosts, sizeof(*c->lookups));
		for (j = 0; j < db->nhosts; j++) {
			c->lookups[j].conn = c;
			c->lookups[j].host = db->hosts[j];
		}
	}
	return db;
}

void
db_set_timeouts(struct db *db, int connect_ms, int query_ms)
{
	if (connect_ms > 0)
		db->connect_ms = connect_ms;
	if (query_ms > 0)
		db->query_ms = query_ms;
	db_kick(db);
}

void
db_get_stats(const struct db *db, struct db_stats *st)
{
	*st = db->stats;
}

static void
query_free(struct db_query *q)
{
	int i;

	for (i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q->copy);
	free(q);
}

static void
db_destroy(struct db *db)
{
	int i;

	for (i = 0; i < db->nconns; i++) {
		conn_close(&db->conns[i]);
		free(db->conns[i].lookups);
	}
	free(db->conns);
	event_del(&db->kick);
	event_del(&db->retry);
	event_del(&db->expiry);
	if (db->hosts != NULL)
		list_free(db->hosts, db->nhosts);
	if (db->ports != NULL)
		list_free(db->ports, db->nports);
	free(db->port_spec);
	free(db->keys);
	free(db->vals);
	PQconninfoFree(db->opts);
	free(db);
}

/*
 * The one place callbacks run.  Returns -1 when db is closing (and then
 * may be gone): the caller must touch neither db nor its connections.
 */
static int
deliver(struct db *db, struct db_query *q, const PGresult *res,
    const struct db_error *err)
{
	struct db_result r;

	r.res = res;
	db->depth++;
	q->cb(q->arg, res != NULL ? &r : NULL, err);
	db->depth--;
	query_free(q);
	if (db->free_pending && db->depth == 0) {
		db_destroy(db);
		return -1;
	}
	return db->closing ? -1 : 0;
}

static void cursor_orphan(struct db_cursor *, const struct db_error *);

void
db_free(struct db *db)
{
	struct db_query *q;
	struct db_error	 err;
	int		 i;

	if (db == NULL || db->closing)
		return;
	db->closing = 1;
	err_set(
	    &err, DB_ERR_UNAVAILABLE, NULL, "database client shutting down");
	db->depth++;
	for (i = 0; i < db->nconns; i++) {
		q = db->conns[i].q;
		db->conns[i].q = NULL;
		conn_close(&db->conns[i]);
		if (q != NULL)
			(void)deliver(db, q, NULL, &err);
	}
	while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
		TAILQ_REMOVE(&db->queue, q, entry);
		db->nqueued--;
		(void)deliver(db, q, NULL, &err);
	}
	while (!TAILQ_EMPTY(&db->cursors))
		cursor_orphan(TAILQ_FIRST(&db->cursors), &err);
	db->depth--;
	if (db->depth > 0)
		db->free_pending = 1;
	else
		db_destroy(db);
}

/* Takes sql, which must come from malloc(); copies the parameters. */
static struct db_query *
query_new(
    char *sql, int nparams, const char *const *params, db_cb *cb, void *arg)
{
	struct db_query *q;
	int		 i;

	q = xcalloc(1, sizeof(*q));
	q->sql = sql;
	q->nparams = nparams;
	if (nparams > 0)
		q->params = xcalloc((size_t)nparams, sizeof(*q->params));
	for (i = 0; i < nparams; i++)
		if (params[i] != NULL)
			q->params[i] = xstrdup(params[i]);
	q->cb = cb;
	q->arg = arg;
	return q;
}

static void
db_enqueue(struct db *db, struct db_query *q)
{
	q->queued_us = mono_us();
	TAILQ_INSERT_TAIL(&db->queue, q, entry);
	db->nqueued++;
	db_kick(db);
}

int
db_query(struct db *db, const char *sql, int nparams, const char *const *params,
    db_cb *cb, void *arg)
{
	if (db == NULL || db->closing)
		return -1;
	if (sql == NULL || cb == NULL || nparams < 0 ||
	    (nparams > 0 && params == NULL))
		fatal("db_query: invalid arguments");
	db_enqueue(db, query_new(xstrdup(sql), nparams, params, cb, arg));
	return 0;
}

int
db_copy_in(struct db *db, const char *sql, const char *data, size_t len,
    db_cb *cb, void *arg)
{
	struct db_query *q;

	if (db == NULL || db->closing)
		return -1;
	if (sql == NULL || cb == NULL || (data == NULL && len > 0))
		fatal("db_copy_in: invalid arguments");
	q = query_new(xstrdup(sql), 0, NULL, cb, arg);
	q->copy = xmalloc(len > 0 ? len : 1);
	memcpy(q->copy, data, len);
	q->copylen = len;
	db_enqueue(db, q);
	return 0;
}

int
db_ntuples(const struct db_result *r)
{
	return PQntuples(r->res);
}

long long
db_cmd_tuples(const struct db_result *r)
{
	const char *n = PQcmdTuples((PGresult *)r->res);

	return n != NULL && *n != '\0' ? atoll(n) : -1;
}

int
db_nfields(const struct db_result *r)
{
	return PQnfields(r->res);
}

const char *
db_value(const struct db_result *r, int row, int col)
{
	if (row < 0 || row >= PQntuples(r->res) || col < 0 ||
	    col >= PQnfields(r->res) || PQgetisnull(r->res, row, col))
		return NULL;
	return PQgetvalue(r->res, row, col);
}

/* Connections held by cursors, or being given back by them. */
static int
db_held(const struct db *db)
{
	int i, n = 0;

	for (i = 0; i < db->nconns; i++)
		if (db->conns[i].cur != NULL || db->conns[i].releasing)
			n++;
	return n;
}

/* One connection is always kept for queries. */
static int
db_can_hold(const struct db *db)
{
	return db_held(db) < db->nconns - 1;
}

/* Why q could not be sent within connect_ms. */
static void
db_wait_error(struct db *db, const struct db_query *q, struct db_error *err)
{
	const char *why = "no connection attempt finished";
	int	    i, connected = 0;

	if (q->opens && !db_can_hold(db)) {
		err_set(err, DB_ERR_UNAVAILABLE, NULL,
		    "no database connection for a cursor within %d ms: "
		    "%d of %d are held by cursors and one is kept for queries",
		    db->connect_ms, db_held(db), db->nconns);
		return;
	}

	for (i = 0; i < db->nconns; i++) {
		switch (db->conns[i].state) {
		case DC_IDLE:
		case DC_BUSY:
			connected++;
			break;
		case DC_RESOLVING:
			why = "still looking up the host name";
			break;
		case DC_CONNECTING:
			why = "still connecting";
			break;
		default:
			break;
		}
	}
	if (db->last_error[0] != '\0')
		why = db->last_error;
	if (connected > 0)
		err_set(err, DB_ERR_UNAVAILABLE, NULL,
		    "no free database "
		    "connection within %d ms (%d of %d busy)",
		    db->connect_ms, connected, db->nconns);
	else
		err_set(err, DB_ERR_UNAVAILABLE, NULL,
		    "could not connect to "
		    "the database within %d ms: %s",
		    db->connect_ms, why);
}

static void
db_arm_expiry(struct db *db)
{
	struct db_query *q;

	if ((q = TAILQ_FIRST(&db->queue)) == NULL) {
		event_del(&db->expiry);
		return;
	}
	timer_add(&db->expiry,
	    q->queued_us + (int64_t)db->connect_ms * 1000 - mono_us());
}

static void
db_expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db	*db = arg;
	struct db_query *q;
	struct db_error	 err;
	int64_t		 now = mono_us();

	while ((q = TAILQ_FIRST(&db->queue)) != NULL &&
	    q->queued_us + (int64_t)db->connect_ms * 1000 <= now) {
		TAILQ_REMOVE(&db->queue, q, entry);
		db->nqueued--;
		db_wait_error(db, q, &err);
		if (deliver(db, q, NULL, &err) == -1)
			return;
	}
	db_arm_expiry(db);
}

/*
 * Sets the socket events for c.  renew re-adds the event even when the
 * descriptor number did not change: during connection libpq may close its
 * socket and open another that gets the same number, which epoll would no
 * longer watch.
 */
static int
conn_watch(struct db_conn *c, short what, int renew)
{
	int fd = PQsocket(c->pg);

	if (!renew && fd == c->io_fd && what == c->io_what)
		return 0;
	if (c->io_what != 0)
		event_del(&c->io);
	c->io_fd = fd;
	c->io_what = 0;
	if (fd < 0)
		return -1;
	event_assign(&c->io, c->db->base, fd, what | EV_PERSIST, conn_io_cb, c);
	if (event_add(&c->io, NULL) == -1)
		return -1;
	c->io_what = what;
	return 0;
}

static void
conn_unhold(struct db_conn *c)
{
	if (c->cur != NULL)
		c->cur->conn = NULL;
	c->cur = NULL;
}

static void
conn_close(struct db_conn *c)
{
	int i;

	for (i = 0; c->lookups != NULL && i < c->db->nhosts; i++) {
		if (c->lookups[i].req != NULL)
			resolve_cancel(c->lookups[i].req);
		c->lookups[i].req = NULL;
	}
	if (c->io_what != 0)
		event_del(&c->io);
	c->io_what = 0;
	c->io_fd = -1;
	event_del(&c->timer);
	/* In non-blocking mode PQfinish() does not wait on the socket. */
	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	PQclear(c->last);
	c->last = NULL;
	c->flushing = 0;
	c->lookups_left = 0;
	c->state = DC_CLOSED;
	conn_unhold(c);
	c->releasing = 0;
}

static void
db_notice(void *arg, const char *message)
{
	char clean[512];

	text_clean(clean, sizeof(clean), message);
	logkv(LOG_INFO, "database notice", "message", clean, NULL);
}

static void
conn_connect(
    struct db_conn *c, const char *host, const char *hostaddr, const char *port)
{
	struct db   *db = c->db;
	const char **keys, **vals;
	int	     n = db->nkeys;

	keys = xcalloc((size_t)n + 4, sizeof(*keys));
	vals = xcalloc((size_t)n + 4, sizeof(*vals));
	memcpy(keys, db->keys, (size_t)n * sizeof(*keys));
	memcpy(vals, db->vals, (size_t)n * sizeof(*vals));
	if (host != NULL) {
		keys[n] = "host";
		vals[n++] = host;
	}
	if (hostaddr != NULL) {
		keys[n] = "hostaddr";
		vals[n++] = hostaddr;
	}
	if (port != NULL) {
		keys[n] = "port";
		vals[n++] = port;
	}
	c->state = DC_CONNECTING;
	c->pg = PQconnectStartParams(keys, vals, 0);
	free(keys);
	free(vals);
	if (c->pg == NULL) {
		conn_connect_failed(c, "out of memory");
		return;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		conn_connect_failed(c, PQerrorMessage(c->pg));
		return;
	}
	PQsetNoticeProcessor(c->pg, db_notice, db);
	/* libpq: start as if PQconnectPoll() had said PGRES_POLLING_WRITING. */
	if (conn_watch(c, EV_WRITE, 1) == -1)
		conn_connect_failed(c, "no socket to watch");
}

/*
 * All lookups are done: connect to the hosts that resolved, each with its
 * address as hostaddr.  Socket directories get an empty hostaddr entry,
 * which makes libpq use the host entry.  Hosts that did not resolve are
 * left out, and their entries of a per-host port list with them.
 */
static void
conn_lookups_done(struct db_conn *c)
{
	struct db	 *db = c->db;
	struct db_lookup *lk;
	struct buf	  host, addr, port;
	char		  first_err[256] = "";
	int		  i, kept = 0, resolved = 0, per_host_ports;
	const char	 *sep;

	per_host_ports = db->nports > 1 && db->nports == db->nhosts;
	buf_init(&host);
	buf_init(&addr);
	buf_init(&port);
	for (i = 0; i < db->nhosts; i++) {
		lk = &c->lookups[i];
		if (lk->error[0] != '\0') {
			logkv(LOG_WARN, "database host name lookup failed",
			    "host", lk->host, "error", lk->error, NULL);
			if (first_err[0] == '\0')
				snprintf(first_err, sizeof(first_err),
				    "could not resolve host name \"%s\": %s",
				    lk->host, lk->error);
			continue;
		}
		sep = kept++ > 0 ? "," : "";
		buf_addf(&host, "%s%s", sep, lk->host);
		if (lk->addr[0] != '\0') {
			logkv(LOG_DEBUG, "database host resolved", "host",
			    lk->host, "address", lk->addr, NULL);
			resolved = 1;
			buf_addf(&addr, "%s%s", sep, lk->addr);
		} else if (host_is_numeric(lk->host))
			buf_addf(&addr, "%s%s", sep, lk->host);
		else
			buf_adds(&addr, sep);
		if (per_host_ports)
			buf_addf(&port, "%s%s", sep, db->ports[i]);
	}
	if (kept == 0)
		conn_connect_failed(c, first_err);
	else {
		if (resolved)
			db->stats.resolved++;
		conn_connect(c, host.data, addr.data != NULL ? addr.data : "",
		    per_host_ports ? port.data : db->port_spec);
	}
	buf_free(&host);
	buf_free(&addr);
	buf_free(&port);
}

static void
conn_resolved(
    void *arg, const struct sockaddr *sa, socklen_t len, const char *err)
{
	struct db_lookup *lk = arg;
	struct db_conn	 *c = lk->conn;

	lk->req = NULL;
	if (sa != NULL)
		sockaddr_text(sa, lk->addr, sizeof(lk->addr));
	else
		strlcpy_(lk->error, err != NULL ? err : "unknown error",
		    sizeof(lk->error));
	if (--c->lookups_left == 0 && !c->starting)
		conn_lookups_done(c);
}

/*
 * Start one connection attempt.  A lookup may be answered before
 * resolve_host() returns, so the last one to finish continues only once
 * every lookup has been started.
 */
static void
conn_start(struct db_conn *c)
{
	struct db	 *db = c->db;
	struct db_lookup *lk;
	int		  i;

	c->started_us = mono_us();
	timer_add(&c->timer, (int64_t)db->connect_ms * 1000);
	if (!db->lookup) {
		conn_connect(c, NULL, NULL, NULL);
		return;
	}
	c->state = DC_RESOLVING;
	c->starting = 1;
	c->lookups_left = db->nhosts;
	for (i = 0; i < db->nhosts; i++) {
		lk = &c->lookups[i];
		lk->addr[0] = lk->error[0] = '\0';
		if (!host_is_name(lk->host))
			c->lookups_left--;
		else
			lk->req = resolve_host(db->dns, lk->host,
			    DB_DEFAULT_PORT, conn_resolved, lk);
	}
	c->starting = 0;
	if (c->lookups_left == 0)
		conn_lookups_done(c);
}

/*
 * Backoff is shared by the pool: attempts that were already under way
 * when an earlier one failed do not double it again.
 */
static void
conn_connect_failed(struct db_conn *c, const char *why)
{
	struct db *db = c->db;
	int64_t	   now = mono_us();
	char	   msg[256], retry[24];
	int	   delay;

	text_clean(msg, sizeof(msg), why);
	db->stats.connect_failures++;
	strlcpy_(db->last_error, msg, sizeof(db->last_error));
	if (c->started_us >= db->failed_at_us) {
		if (db->backoff_ms == 0)
			db->backoff_ms = DB_BACKOFF_MIN_MS;
		else if ((db->backoff_ms *= 2) > DB_BACKOFF_MAX_MS)
			db->backoff_ms = DB_BACKOFF_MAX_MS;
		delay = db->backoff_ms / 2 +
		    (int)arc4random_uniform((uint32_t)db->backoff_ms / 2 + 1);
		db->retry_at_us = now + (int64_t)delay * 1000;
		db->failed_at_us = now;
	}
	snprintf(retry, sizeof(retry), "%lld",
	    (long long)(db->retry_at_us > now ? (db->retry_at_us - now) / 1000
					      : 0));
	logkv(LOG_WARN, "database connection failed", "error", msg, "retry_ms",
	    retry, NULL);
	conn_close(c);
	db_kick(db);
}

/*
 * libpq documents PQsetnonblocking() for established connections; while
 * connecting, PQconnectPoll() never waits on the socket anyway.
 */
static void
conn_ready(struct db_conn *c)
{
	struct db *db = c->db;

	if (PQsetnonblocking(c->pg, 1) == -1) {
		conn_connect_failed(c, PQerrorMessage(c->pg));
		return;
	}
	event_del(&c->timer);
	c->state = DC_IDLE;
	if (conn_watch(c, EV_READ, 1) == -1) {
		conn_connect_failed(c, "no socket to watch");
		return;
	}
	db->stats.connects++;
	if (db->backoff_ms > 0)
		logkv(LOG_INFO, "database connection restored", NULL);
	else
		logkv(LOG_DEBUG, "database connected", NULL);
	db->backoff_ms = 0;
	db->retry_at_us = 0;
	db->last_error[0] = '\0';
	db_kick(db);
}

static void
conn_poll(struct db_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		if (conn_watch(c, EV_READ, 1) == -1)
			conn_connect_failed(c, "no socket to watch");
		break;
	case PGRES_POLLING_WRITING:
		if (conn_watch(c, EV_WRITE, 1) == -1)
			conn_connect_failed(c, "no socket to watch");
		break;
	case PGRES_POLLING_OK:
		conn_ready(c);
		break;
	default:
		conn_connect_failed(c, PQerrorMessage(c->pg));
		break;
	}
}

static int
sqlstate_is_disconnect(const char *sqlstate)
{
	/* Class 08 connection exception, 57P0x the server going away. */
	return sqlstate != NULL &&
	    (strncmp(sqlstate, "08", 2) == 0 ||
		strncmp(sqlstate, "57P", 3) == 0);
}

/* The best words for a dead connection; never holds the conninfo. */
static const char *
conn_error_text(struct db_conn *c)
{
	const char *m;

	if (c->last != NULL && PQresultStatus(c->last) == PGRES_FATAL_ERROR &&
	    sqlstate_is_disconnect(
		PQresultErrorField(c->last, PG_DIAG_SQLSTATE)) &&
	    (m = PQresultErrorField(c->last, PG_DIAG_MESSAGE_PRIMARY)) != NULL)
		return m;
	m = c->pg != NULL ? PQerrorMessage(c->pg) : "";
	return m[0] != '\0' ? m : "connection closed";
}

/*
 * The connection died (or can no longer be trusted).  A query sent on it
 * fails and is not retried: it may have had effects.  Always returns -1:
 * c is closed, and db may be gone.
 */
static int
conn_lost(struct db_conn *c, const char *why)
{
	struct db	 *db = c->db;
	struct db_query	 *q = c->q;
	struct db_cursor *cur = c->cur;
	struct db_error	  err;
	char		  msg[256];

	text_clean(msg, sizeof(msg), why != NULL ? why : conn_error_text(c));
	c->q = NULL;
	db->stats.lost++;
	logkv(LOG_WARN, "database connection lost", "error", msg,
	    "query_in_flight", q != NULL ? "yes" : "no", NULL);
	conn_close(c);
	db_kick(db);
	err_set(&err, DB_ERR_UNAVAILABLE, NULL, "database connection lost: %s",
	    msg);
	/* A cursor between fetches learns it at its next one. */
	if (q != NULL)
		(void)deliver(db, q, NULL, &err);
	else if (cur != NULL)
		cursor_kill(cur, &err);
	return -1;
}

/* Returns -1 when c was closed (and db may be gone). */
static int
conn_flush(struct db_conn *c)
{
	short what;

	switch (PQflush(c->pg)) {
	case 0:
		c->flushing = 0;
		what = EV_READ;
		break;
	case 1:
		/* Read too: the server may be waiting for us to read. */
		c->flushing = 1;
		what = EV_READ | EV_WRITE;
		break;
	default:
		return conn_lost(c, NULL);
	}
	if (conn_watch(c, what, 0) == -1)
		return conn_lost(c, "no socket to watch");
	return 0;
}

/* Returns -1 when c was closed or db is gone. */
static int
conn_send(struct db_conn *c, struct db_query *q)
{
	struct db      *db = c->db;
	struct db_error err;

	if (PQstatus(c->pg) != CONNECTION_OK) {
		if (q->pinned)
			c->q = q; /* it has nowhere else to go: it fails */
		else {
			/* Not sent: it keeps its place. */
			conn_unhold(c);
			TAILQ_INSERT_HEAD(&db->queue, q, entry);
			db->nqueued++;
		}
		return conn_lost(c, NULL);
	}
	if (!(q->simple ? PQsendQuery(c->pg, q->sql)
			: PQsendQueryParams(c->pg, q->sql, q->nparams, NULL,
			      (const char *const *)q->params, NULL, NULL, 0))) {
		c->q = q;
		if (PQstatus(c->pg) == CONNECTION_BAD)
			return conn_lost(c, NULL);
		/* Refused by libpq itself (too many parameters...). */
		c->q = NULL;
		err_set(&err, DB_ERR_QUERY, NULL, "%s", PQerrorMessage(c->pg));
		db_kick(db);
		return deliver(db, q, NULL, &err);
	}
	c->q = q;
	c->state = DC_BUSY;
	timer_add(&c->timer, (int64_t)db->query_ms * 1000);
	return conn_flush(c);
}

static int
result_is_answer(const PGresult *r)
{
	const char *sqlstate;

	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY:
		return 1;
	case PGRES_FATAL_ERROR:
		sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		return sqlstate != NULL && !sqlstate_is_disconnect(sqlstate);
	default:
		return 0;
	}
}

/*
 * The query's last result is in: answer it.  An error with SQLSTATE is the
 * server rejecting the query, unless it says the server is going away; an
 * error without one (libpq's own, such as "server closed the connection
 * unexpectedly") is the connection failing.
 */
static void
conn_complete(struct db_conn *c)
{
	struct db	*db = c->db;
	struct db_query *q = c->q;
	PGresult	*r = c->last;
	const char	*primary;
	struct db_error	 err;
	int		 rc;

	if (r == NULL || !result_is_answer(r)) {
		(void)conn_lost(c, NULL);
		return;
	}
	c->q = NULL;
	c->last = NULL;
	c->flushing = 0;
	event_del(&c->timer);
	c->state = DC_IDLE;
	db_kick(db);
	if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
		primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		err_set(&err, DB_ERR_QUERY,
		    PQresultErrorField(r, PG_DIAG_SQLSTATE), "%s",
		    primary != NULL ? primary : PQresultErrorMessage(r));
		rc = deliver(db, q, NULL, &err);
	} else
		rc = deliver(db, q, r, NULL);
	PQclear(r);
	/*
	 * Answered, but libpq may have seen the socket close meanwhile (or
	 * the callback closed c).
	 */
	if (rc == 0 && c->pg != NULL && PQstatus(c->pg) != CONNECTION_OK)
		(void)conn_lost(c, NULL);
}

/*
 * COPY FROM STDIN, for a query that brought its data: queued whole with
 * its end (libpq's buffer grows; in nonblocking mode it refuses only when
 * memory runs out), then flushed as any query.  Returns -1 when c was
 * closed.
 */
static int
conn_copy_in(struct db_conn *c)
{
	struct db_query *q = c->q;

	if (q->copied)
		return 0;
	q->copied = 1;
	if ((q->copylen > 0 &&
		PQputCopyData(c->pg, q->copy, (int)q->copylen) != 1) ||
	    PQputCopyEnd(c->pg, NULL) != 1)
		return conn_lost(c, NULL);
	return conn_flush(c);
}

/* Other COPY would need its own protocol; the connection is given up. */
static void
conn_abandon_copy(struct db_conn *c)
{
	struct db	*db = c->db;
	struct db_query *q = c->q;
	struct db_error	 err;

	c->q = NULL;
	conn_close(c);
	db_kick(db);
	err_set(&err, DB_ERR_QUERY, NULL, "COPY is not supported");
	(void)deliver(db, q, NULL, &err);
}

/* Keep only the last result: PQgetResult() until NULL, never when busy. */
static void
conn_collect(struct db_conn *c)
{
	PGresult *r;

	while (!PQisBusy(c->pg)) {
		if ((r = PQgetResult(c->pg)) == NULL) {
			conn_complete(c);
			return;
		}
		switch (PQresultStatus(r)) {
		case PGRES_COPY_IN:
			if (c->q != NULL && c->q->copy != NULL) {
				PQclear(r);
				if (conn_copy_in(c) == -1)
					return;
				break;
			}
			/* FALLTHROUGH */
		case PGRES_COPY_OUT:
		case PGRES_COPY_BOTH:
			PQclear(r);
			conn_abandon_copy(c);
			return;
		default:
			PQclear(c->last);
			c->last = r;
			break;
		}
	}
}

static void
conn_busy_io(struct db_conn *c, short what)
{
	if ((what & EV_READ) && !PQconsumeInput(c->pg)) {
		(void)conn_lost(c, NULL);
		return;
	}
	if (c->flushing && conn_flush(c) == -1)
		return;
	conn_collect(c);
}

/* An idle connection reads only to notice that the server went away. */
static void
conn_idle_input(struct db_conn *c)
{
	PGnotify *n;

	if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) {
		(void)conn_lost(c, NULL);
		return;
	}
	while ((n = PQnotifies(c->pg)) != NULL)
		PQfreemem(n);
}

static void
conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	switch (c->state) {
	case DC_CONNECTING:
		conn_poll(c);
		break;
	case DC_IDLE:
		conn_idle_input(c);
		break;
	case DC_BUSY:
		conn_busy_io(c, what);
		break;
	default:
		break;
	}
}

/*
 * PQcancel() opens a new connection and waits for the server, which would
 * block the loop (libpq 15 has no asynchronous cancel), so the connection
 * is closed instead.  The backend stops when it next writes to the closed
 * socket, or sooner with client_connection_check_interval set; until then
 * the query may keep running on the server.
 */
static void
conn_query_timeout(struct db_conn *c)
{
	struct db	*db = c->db;
	struct db_query *q = c->q;
	struct db_error	 err;
	char		 ms[16];

	c->q = NULL;
	db->stats.timeouts++;
	snprintf(ms, sizeof(ms), "%d", db->query_ms);
	logkv(LOG_WARN, "database query timed out, closing its connection",
	    "timeout_ms", ms, NULL);
	conn_close(c);
	db_kick(db);
	err_set(&err, DB_ERR_UNAVAILABLE, NULL,
	    "database query timed out "
	    "after %d ms; its connection was closed",
	    db->query_ms);
	(void)deliver(db, q, NULL, &err);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	char		msg[128];

	switch (c->state) {
	case DC_RESOLVING:
	case DC_CONNECTING:
		snprintf(msg, sizeof(msg),
		    "timed out after %d ms connecting "
		    "to the database",
		    c->db->connect_ms);
		conn_connect_failed(c, msg);
		break;
	case DC_BUSY:
		conn_query_timeout(c);
		break;
	default:
		break;
	}
}

/*
 * Queued queries that a connection could take now, up to max: a cursor's
 * BEGIN counts only while one more connection may be held.
 */
static int
db_runnable(const struct db *db, int max)
{
	const struct db_query *q;
	int		       n = 0, holdable = db->nconns - 1 - db_held(db);

	TAILQ_FOREACH(q, &db->queue, entry)
	{
		if (n >= max)
			break;
		if (!q->opens)
			n++;
		else if (holdable > 0) {
			holdable--;
			n++;
		}
	}
	return n;
}

/* Start as many connections as queued queries can use, unless backing off. */
static void
db_connect_more(struct db *db)
{
	struct db_conn *c;
	int64_t		now;
	int		i, want = db_runnable(db, db->nconns);

	for (i = 0; i < db->nconns; i++)
		if (db->conns[i].state == DC_RESOLVING ||
		    db->conns[i].state == DC_CONNECTING)
			want--;
	for (i = 0; i < db->nconns && want > 0; i++) {
		c = &db->conns[i];
		if (c->state != DC_CLOSED)
			continue;
		if ((now = mono_us()) < db->retry_at_us) {
			timer_add(&db->retry, db->retry_at_us - now);
			return;
		}
		conn_start(c);
		want--;
	}
}

/*
 * The oldest query that may run now; a cursor's BEGIN waits while taking
 * a connection would leave none for queries.
 */
static struct db_query *
db_next_query(struct db *db)
{
	struct db_query *q;
	int		 can_hold = db_can_hold(db);

	TAILQ_FOREACH(q, &db->queue, entry)
	{
		if (q->opens && !can_hold)
			continue;
		TAILQ_REMOVE(&db->queue, q, entry);
		db->nqueued--;
		return q;
	}
	return NULL;
}

static void conn_released(
    void *, const struct db_result *, const struct db_error *);

/* End the transaction a cursor left on c. */
static struct db_query *
conn_rollback_query(struct db_conn *c)
{
	struct db_query *q;

	q = query_new(xstrdup("ROLLBACK"), 0, NULL, conn_released, c);
	q->pinned = 1;
	return q;
}

static void
conn_hold(struct db_conn *c, struct db_cursor *cur)
{
	c->cur = cur;
	cur->conn = c;
}

/*
 * Hand queued queries to idle connections, oldest first, and ROLLBACK
 * connections that cursors gave back.
 */
static void
db_dispatch(struct db *db)
{
	struct db_conn	*c;
	struct db_query *q;
	int		 i;

	if (db->closing)
		return;
	for (i = 0; i < db->nconns; i++) {
		c = &db->conns[i];
		if (c->state != DC_IDLE || c->cur != NULL)
			continue;
		if (c->releasing)
			q = conn_rollback_query(c);
		else if ((q = db_next_query(db)) == NULL)
			continue;
		else if (q->opens)
			conn_hold(c, q->cursor);
		/* On -1 a kick is pending, if db is still there. */
		if (conn_send(c, q) == -1)
			return;
	}
	db_connect_more(db);
	db_arm_expiry(db);
}

/*
 * Called with the ROLLBACK's answer: c rejoins the pool, unless that left
 * it in doubt.
 */
static void
conn_released(
    void *arg, const struct db_result *res, const struct db_error *err)
{
	struct db_conn *c = arg;

	c->releasing = 0;
	if (c->pg != NULL &&
	    (err != NULL || PQtransactionStatus(c->pg) != PQTRANS_IDLE)) {
		logkv(LOG_WARN,
		    "database connection closed: a cursor's transaction "
		    "did not end",
		    "error",
		    err != NULL ? err->message : "still in a transaction",
		    NULL);
		conn_close(c);
	}
	db_kick(c->db);
}

/* A cursor is done with c: it rejoins the pool after a ROLLBACK. */
static void
conn_release(struct db_conn *c)
{
	conn_unhold(c);
	c->releasing = 1;
	db_kick(c->db);
}

/* The first error stays; a live connection goes back to the pool. */
static void
cursor_kill(struct db_cursor *cur, const struct db_error *err)
{
	if (!cur->dead) {
		cur->dead = 1;
		cur->error = *err;
	}
	if (cur->conn != NULL)
		conn_release(cur->conn);
}

/* Statements are sent from the loop, never inside a db_cursor_*() call. */
static void
cursor_send_later(struct db_cursor *cur, struct db_query *q)
{
	cur->next = q;
	event_active(&cur->step, EV_TIMEOUT, 1);
}

static void
cursor_step(evutil_socket_t fd, short what, void *arg)
{
	struct db_cursor *cur = arg;
	struct db_query	 *q = cur->next;
	struct db_error	  err;

	if (q == NULL)
		return;
	cur->next = NULL;
	if (!cur->dead && cur->conn == NULL) {
		err_set(
		    &err, DB_ERR_UNAVAILABLE, NULL, "database connection lost");
		cursor_kill(cur, &err);
	}
	if (cur->dead) {
		/* A copy: the callback may close cur. */
		err = cur->error;
		(void)deliver(cur->db, q, NULL, &err);
		return;
	}
	(void)conn_send(cur->conn, q);
}

/*
 * Every statement of a cursor ends here.  The callback comes last: it may
 * close cur.
 */
static void
cursor_done(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct db_cursor *cur = arg;
	db_cursor_cb	 *cb = cur->cb;
	void		 *cbarg = cur->cbarg;

	if (err == NULL && cur->declare != NULL) {
		/* BEGIN is done. */
		cursor_send_later(cur, cur->declare);
		cur->declare = NULL;
		return;
	}
	if (err != NULL)
		cursor_kill(cur, err);
	else if (!cur->opened) {
		cur->opened = 1;
		res = NULL;
	}
	cur->cb = NULL;
	cur->cbarg = NULL;
	cb(cbarg, cur, err == NULL ? res : NULL, err);
}

static struct db_query *
cursor_statement(
    struct db_cursor *cur, char *sql, int nparams, const char *const *params)
{
	struct db_query *q;

	q = query_new(sql, nparams, params, cursor_done, cur);
	q->cursor = cur;
	q->pinned = 1;
	return q;
}

struct db_cursor *
db_cursor_open(struct db *db, const char *sql, int nparams,
    const char *const *params, db_cursor_cb *cb, void *arg)
{
	struct db_cursor *cur;
	struct db_query	 *q;
	long long	  timeout_ms;

	if (db == NULL || db->closing || db->nconns < 2)
		return NULL;
	if (sql == NULL || cb == NULL || nparams < 0 ||
	    (nparams > 0 && params == NULL))
		fatal("db_cursor_open: invalid arguments");
	cur = xcalloc(1, sizeof(*cur));
	cur->db = db;
	cur->cb = cb;
	cur->cbarg = arg;
	event_assign(&cur->step, db->base, -1, 0, cursor_step, cur);
	cur->declare = cursor_statement(cur,
	    xasprintf(
		"DECLARE " DB_CURSOR_NAME " NO SCROLL CURSOR FOR %s", sql),
	    nparams, params);

	timeout_ms = (long long)db->query_ms + DB_SERVER_GRACE_MS;
	if (timeout_ms > INT_MAX)
		timeout_ms = INT_MAX;
	q = cursor_statement(cur,
	    xasprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
		      "SET LOCAL statement_timeout = %lld",
		timeout_ms),
	    0, NULL);
	q->pinned = 0;
	q->opens = 1;
	q->simple = 1;
	TAILQ_INSERT_TAIL(&db->cursors, cur, entry);
	db_enqueue(db, q);
	return cur;
}

int
db_cursor_fetch(struct db_cursor *cur, int n, db_cursor_cb *cb, void *arg)
{
	if (cur->db == NULL || cur->db->closing)
		return -1;
	if (n < 1 || cb == NULL)
		fatal("db_cursor_fetch: invalid arguments");
	if (cur->cb != NULL)
		fatal("db_cursor_fetch: the previous operation is not done");
	cur->cb = cb;
	cur->cbarg = arg;
	cursor_send_later(cur,
	    cursor_statement(cur,
		xasprintf("FETCH FORWARD %d FROM " DB_CURSOR_NAME, n), 0,
		NULL));
	return 0;
}

/* db_free(): the pending operation fails; the caller still closes cur. */
static void
cursor_orphan(struct db_cursor *cur, const struct db_error *err)
{
	struct db	*db = cur->db;
	struct db_query *q = cur->next;

	TAILQ_REMOVE(&db->cursors, cur, entry);
	cur->db = NULL;
	cur->next = NULL;
	event_del(&cur->step);
	cursor_kill(cur, err);
	if (q != NULL)
		(void)deliver(db, q, NULL, err);
}

/* A BEGIN still waiting for a connection. */
static void
cursor_unqueue(struct db *db, struct db_cursor *cur)
{
	struct db_query *q, *next;

	for (q = TAILQ_FIRST(&db->queue); q != NULL; q = next) {
		next = TAILQ_NEXT(q, entry);
		if (q->cursor != cur)
			continue;
		TAILQ_REMOVE(&db->queue, q, entry);
		db->nqueued--;
		query_free(q);
	}
}

/*
 * A statement under way is not waited for: its connection is closed, and
 * the backend stops when it next writes, or at statement_timeout.
 */
static void
cursor_return_conn(struct db_cursor *cur)
{
	struct db_conn	*c = cur->conn;
	struct db_query *q = c->q;

	if (q == NULL) {
		conn_release(c);
		return;
	}
	c->q = NULL;
	logkv(LOG_DEBUG,
	    "database cursor closed during a statement, closing its connection",
	    NULL);
	conn_close(c);
	query_free(q);
	db_kick(c->db);
}

void
db_cursor_close(struct db_cursor *cur)
{
	struct db *db;

	if (cur == NULL)
		return;
	event_del(&cur->step);
	if ((db = cur->db) != NULL) {
		TAILQ_REMOVE(&db->cursors, cur, entry);
		cursor_unqueue(db, cur);
		if (cur->conn != NULL)
			cursor_return_conn(cur);
	}
	if (cur->next != NULL)
		query_free(cur->next);
	if (cur->declare != NULL)
		query_free(cur->declare);
	free(cur);
}
