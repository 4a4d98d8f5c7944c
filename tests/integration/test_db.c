/*
 * common/db.c against a real PostgreSQL named by DATABASE_URL (see
 * scripts/lib/services.sh, svc_start_postgres).  Skips when it is unset.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#include <event2/dns.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "tap.h"
#include "util.h"

#define MAX_COLS 8
/* Our backends, among those of the suites that share the server. */
#define TEST_APP "clipsweep-test-db"

struct reply {
	int		   done;
	int		   failed;
	enum db_error_kind kind;
	char		   sqlstate[6];
	char		   message[512];
	int		   ntuples;
	int		   nfields;
	char		  *values[MAX_COLS]; /* row 0, NULL if NULL */
	int64_t		   at_us;
};

static struct event_base *base;
static struct evdns_base *dns;
static const char	 *url;

static void
reply_clear(struct reply *r)
{
	int i;

	for (i = 0; i < MAX_COLS; i++)
		free(r->values[i]);
	memset(r, 0, sizeof(*r));
}

static void
on_reply(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct reply *r = arg;
	const char   *v;
	int	      i;

	r->done++;
	r->at_us = mono_us();
	if (err != NULL) {
		r->failed = 1;
		r->kind = err->kind;
		strlcpy_(r->sqlstate, err->sqlstate, sizeof(r->sqlstate));
		strlcpy_(r->message, err->message, sizeof(r->message));
		printf("# error: %s%s%s\n", err->sqlstate,
		    err->sqlstate[0] != '\0' ? ": " : "", err->message);
		return;
	}
	r->ntuples = db_ntuples(res);
	r->nfields = db_nfields(res);
	for (i = 0; i < r->nfields && i < MAX_COLS && r->ntuples > 0; i++)
		if ((v = db_value(res, 0, i)) != NULL)
			r->values[i] = xstrdup(v);
}

static void
on_guard(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run the loop until *count reaches want or ms pass; 1 if it did. */
static int
run_until(const int *count, int want, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event  *guard;
	int	       timed_out = 0;

	guard = evtimer_new(base, on_guard, &timed_out);
	evtimer_add(guard, &tv);
	while (*count < want && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	return *count >= want;
}

static void
run_for(int ms)
{
	int never = 0;

	(void)run_until(&never, 1, ms);
}

/* Submit sql and wait for its answer. */
static void
query_wait(struct db *db, struct reply *r, const char *sql, int n,
    const char *const *params)
{
	reply_clear(r);
	if (db_query(db, sql, n, params, on_reply, r) != 0) {
		r->failed = 1;
		strlcpy_(
		    r->message, "db_query returned -1", sizeof(r->message));
		r->done = 1;
		return;
	}
	if (!run_until(&r->done, 1, 20000)) {
		r->failed = 1;
		strlcpy_(
		    r->message, "no answer within 20 s", sizeof(r->message));
	}
}

static double
ms_since(int64_t t0)
{
	return (double)(mono_us() - t0) / 1000.0;
}

/* A port on 127.0.0.1 where nothing listens (right now). */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t	   len = sizeof(sin);
	int		   fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		fatal("free_port: cannot bind");
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/*
 * DATABASE_URL as key=value text with host (and port, when given)
 * replaced; NULL when its host is not the loopback address, where
 * "localhost" would not reach the same server.
 */
static char *
conninfo_with_host(const char *host, const char *port)
{
	PQconninfoOption *opts, *o;
	const char	 *v, *orig = NULL;
	struct buf	  b;

	if ((opts = PQconninfoParse(url, NULL)) == NULL)
		return NULL;
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "host") == 0)
			orig = o->val;
	if (orig == NULL ||
	    (strcmp(orig, "127.0.0.1") != 0 &&
		strcmp(orig, "localhost") != 0)) {
		PQconninfoFree(opts);
		return NULL;
	}
	buf_init(&b);
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "host") == 0 ||
		    strcmp(o->keyword, "hostaddr") == 0 ||
		    (port != NULL && strcmp(o->keyword, "port") == 0))
			continue;
		buf_addf(&b, "%s='", o->keyword);
		for (v = o->val; *v != '\0'; v++) {
			if (*v == '\'' || *v == '\\')
				buf_add(&b, "\\", 1);
			buf_add(&b, v, 1);
		}
		buf_adds(&b, "' ");
	}
	buf_addf(&b, "host='%s'", host);
	if (port != NULL)
		buf_addf(&b, " port='%s'", port);
	PQconninfoFree(opts);
	return buf_steal(&b);
}

static void
test_params(void)
{
	const char  *p[] = {"hello", NULL, "41",
	     "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac",
	     "it's \"quoted\" \\ ; -- drop table x"};
	struct reply r = {0};
	struct db   *db;

	db = db_new(base, dns, url, 1);
	ok(db != NULL, "db_new");
	query_wait(db, &r,
	    "select $1::text, $2::text, $3::int + 1, $4::text, "
	    "$5::text, octet_length($4::text)",
	    5, p);
	ok(!r.failed, "parameterised query answered");
	is_int(r.ntuples, 1, "one row");
	is_int(r.nfields, 6, "six columns");
	is_str(r.values[0], "hello", "text parameter");
	ok(r.values[1] == NULL, "NULL parameter gives SQL NULL");
	is_str(r.values[2], "42", "integer parameter");
	is_str(r.values[3], p[3], "unicode parameter round trip");
	is_str(r.values[4], p[4], "parameter with quotes and backslash");
	is_int(atoi(r.values[5] != NULL ? r.values[5] : "0"),
	    (long long)strlen(p[3]), "server saw the UTF-8 bytes");

	query_wait(db, &r, "select 1 where false", 0, NULL);
	ok(!r.failed && r.ntuples == 0, "empty result");
	reply_clear(&r);
	db_free(db);
}

/* COPY FROM STDIN: escapes, a large body, an error, the pool after it. */
static void
test_copy(void)
{
	struct reply r = {0};
	struct db   *db;
	char	     table[64], sql[256], *big;
	const char   rows[] = "1\ttab\\there\n2\tback\\\\slash\n3\t\\N\n";
	size_t	     i, len = 0, nbig = 20000;

	snprintf(table, sizeof(table), "clipsweep_test_copy_%d", (int)getpid());
	db = db_new(base, dns, url, 1);
	snprintf(sql, sizeof(sql), "create table %s (n int, t text)", table);
	query_wait(db, &r, sql, 0, NULL);
	ok(!r.failed, "copy: table made");
	reply_clear(&r);
	snprintf(sql, sizeof(sql), "copy %s (n, t) from stdin", table);
	ok(db_copy_in(db, sql, rows, strlen(rows), on_reply, &r) == 0,
	    "copy: submitted");
	ok(run_until(&r.done, 1, 10000) && !r.failed, "copy: answered");
	snprintf(sql, sizeof(sql),
	    "select count(*), string_agg(coalesce(t, 'NULL'), '|' order by n) "
	    "from %s",
	    table);
	query_wait(db, &r, sql, 0, NULL);
	is_str(r.values[0], "3", "copy: three rows");
	is_str(r.values[1], "tab\there|back\\slash|NULL",
	    "copy: escapes decoded by the server");

	/* 20,000 rows of 100 bytes: more than one socket buffer. */
	big = xmalloc(nbig * 110);
	for (i = 0; i < nbig; i++)
		len += (size_t)sprintf(big + len, "%zu\t%0100zu\n", i + 10, i);
	reply_clear(&r);
	snprintf(sql, sizeof(sql), "copy %s (n, t) from stdin", table);
	ok(db_copy_in(db, sql, big, len, on_reply, &r) == 0 &&
		run_until(&r.done, 1, 20000) && !r.failed,
	    "copy: %zu bytes in one COPY", len);
	free(big);
	snprintf(sql, sizeof(sql), "select count(*) from %s", table);
	query_wait(db, &r, sql, 0, NULL);
	is_str(r.values[0], "20003", "copy: all 20,000 rows arrived");

	reply_clear(&r);
	ok(db_copy_in(db, "copy clipsweep_no_such_table (n) from stdin", "1\n",
	       2, on_reply, &r) == 0 &&
		run_until(&r.done, 1, 10000),
	    "copy into a missing table: answered");
	ok(r.failed && strcmp(r.sqlstate, "42P01") == 0,
	    "copy into a missing table: the server's error (%s)", r.sqlstate);
	snprintf(sql, sizeof(sql), "drop table %s", table);
	query_wait(db, &r, sql, 0, NULL);
	ok(!r.failed, "copy: the pool works after a failed COPY");
	reply_clear(&r);
	db_free(db);
}

struct many {
	int done;
	int right;
	int pids[8];
	int npids;
};

struct many_q {
	struct many *m;
	int	     n;
};

static void
on_many(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct many_q *mq = arg;
	struct many   *m = mq->m;
	const char    *v;
	int	       i, pid;

	m->done++;
	if (err != NULL || db_ntuples(res) != 1)
		return;
	if ((v = db_value(res, 0, 0)) != NULL && atoi(v) == mq->n * 2)
		m->right++;
	pid = atoi(db_value(res, 0, 1));
	for (i = 0; i < m->npids; i++)
		if (m->pids[i] == pid)
			return;
	if (m->npids < (int)nitems(m->pids))
		m->pids[m->npids++] = pid;
}

static void
test_many(void)
{
	struct many_q	mq[200];
	struct many	m;
	struct db_stats st;
	struct db      *db;
	char		num[16];
	const char     *p[1] = {num};
	int64_t		t0;
	int		i, round, submitted;

	db = db_new(base, dns, url, 4);
	for (round = 0; round < 2; round++) {
		memset(&m, 0, sizeof(m));
		submitted = 0;
		t0 = mono_us();
		for (i = 0; i < 200; i++) {
			mq[i].m = &m;
			mq[i].n = i;
			snprintf(num, sizeof(num), "%d", i);
			if (db_query(db, "select $1::int * 2, pg_backend_pid()",
				1, p, on_many, &mq[i]) == 0)
				submitted++;
		}
		is_int(submitted, 200, "200 queries submitted");
		ok(run_until(&m.done, 200, 20000), "all 200 answered");
		printf("# 200 queries on a pool of 4 (%s): %.1f ms\n",
		    round == 0 ? "cold, connecting" : "warm", ms_since(t0));
		is_int(m.right, 200, "every answer is right for its query");
		ok(m.npids >= 2 && m.npids <= 4,
		    "spread over %d backends "
		    "(at most 4)",
		    m.npids);
	}
	db_get_stats(db, &st);
	ok(st.connects <= 4, "no more than 4 connections made (%lu)",
	    st.connects);
	db_free(db);
}

static void
test_errors(void)
{
	struct reply	r = {0};
	struct db_stats st;
	struct db      *db;

	db = db_new(base, dns, url, 1);
	query_wait(db, &r, "selec 1", 0, NULL);
	ok(r.failed && r.kind == DB_ERR_QUERY, "syntax error is DB_ERR_QUERY");
	is_str(r.sqlstate, "42601", "syntax error sqlstate");
	ok(strstr(r.message, "syntax error") != NULL, "primary message: %s",
	    r.message);

	query_wait(db, &r, "select 1/0", 0, NULL);
	ok(r.failed && r.kind == DB_ERR_QUERY,
	    "division by zero is "
	    "DB_ERR_QUERY");
	is_str(r.sqlstate, "22012", "division by zero sqlstate");
	is_str(r.message, "division by zero", "primary message only");

	query_wait(db, &r, "select 'still fine'", 0, NULL);
	is_str(r.values[0], "still fine", "connection usable after errors");
	db_get_stats(db, &st);
	is_int(st.connects, 1, "query errors do not cost the connection");
	reply_clear(&r);
	db_free(db);
}

static void
test_unavailable(void)
{
	struct reply	r = {0};
	struct db_stats st;
	struct db      *db;
	char		conninfo[256];
	int64_t		t0;
	double		ms;

	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d "
	    "dbname=nope user=nope password=sekrit-pw",
	    free_port());
	db = db_new(base, dns, conninfo, 2);
	db_set_timeouts(db, 1000, 0);
	t0 = mono_us();
	query_wait(db, &r, "select 1", 0, NULL);
	ms = ms_since(t0);
	ok(r.failed && r.kind == DB_ERR_UNAVAILABLE,
	    "nothing listening gives DB_ERR_UNAVAILABLE");
	ok(ms >= 900 && ms <= 1400,
	    "after the 1000 ms connect timeout "
	    "(%.0f ms)",
	    ms);
	is_str(r.sqlstate, "", "no sqlstate when unavailable");
	ok(strstr(r.message, "Connection refused") != NULL, "says why: %s",
	    r.message);
	ok(strstr(r.message, "sekrit") == NULL, "no password in the message");
	ok(strchr(r.message, '\n') == NULL, "message is one line");
	db_get_stats(db, &st);
	ok(st.connect_failures >= 3, "retried with backoff (%lu attempts)",
	    st.connect_failures);
	reply_clear(&r);
	db_free(db);

	ok(db_new(base, dns, "postgresql://u:pa%zzword@h/db", 1) == NULL,
	    "bad conninfo refused (its password is not logged)");
	ok(db_new(base, dns, "host=h pasword=x", 1) == NULL,
	    "unknown option refused");
}

static void
test_hostname(void)
{
	struct reply	r = {0};
	struct db_stats st;
	struct db      *db;
	char	       *conninfo, port[16];
	int64_t		t0;
	double		ms;

	if ((conninfo = conninfo_with_host("localhost", NULL)) == NULL) {
		ok(1, "# SKIP DATABASE_URL host is not 127.0.0.1");
		return;
	}
	db = db_new(base, dns, conninfo, 1);
	free(conninfo);
	query_wait(db, &r, "select host(inet_server_addr())", 0, NULL);
	ok(!r.failed, "host name localhost works");
	is_str(r.values[0], "127.0.0.1", "reached the server by address");
	db_get_stats(db, &st);
	is_int(st.resolved, 1, "the evdns + hostaddr path was taken");
	db_free(db);

	/* A host list: the first refuses, libpq moves on to the second. */
	snprintf(port, sizeof(port), "%d,%s", free_port(),
	    getenv("PGPORT") != NULL ? getenv("PGPORT") : "5432");
	if ((conninfo = conninfo_with_host("127.0.0.1,localhost", port)) !=
		NULL &&
	    getenv("PGPORT") != NULL) {
		db = db_new(base, dns, conninfo, 1);
		query_wait(db, &r, "select 'list'", 0, NULL);
		is_str(r.values[0], "list", "host list with per-host ports");
		db_get_stats(db, &st);
		is_int(st.resolved, 1, "the name in the list was resolved");
		db_free(db);
	} else
		ok(1, "# SKIP no PGPORT for the host list test");
	free(conninfo);

	db = db_new(base, dns, "host=no-such-host.invalid dbname=x", 1);
	db_set_timeouts(db, 1000, 0);
	t0 = mono_us();
	query_wait(db, &r, "select 1", 0, NULL);
	ms = ms_since(t0);
	ok(r.failed && r.kind == DB_ERR_UNAVAILABLE && ms <= 1400,
	    "unknown host name: DB_ERR_UNAVAILABLE in %.0f ms", ms);
	reply_clear(&r);
	db_free(db);
}

/*
 * A name server that never answers: the attempt ends at connect_ms with
 * the lookup cancelled, and db_free() while a lookup runs is clean.
 */
static void
test_silent_dns(void)
{
	struct sockaddr_in sin;
	struct evdns_base *mute;
	struct reply	   r = {0};
	struct db	  *db;
	socklen_t	   len = sizeof(sin);
	char		   ns[32];
	int64_t		   t0;
	double		   ms;
	int		   fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		fatal("cannot bind a UDP socket");
	snprintf(ns, sizeof(ns), "127.0.0.1:%d", ntohs(sin.sin_port));
	if ((mute = evdns_base_new(base, 0)) == NULL ||
	    evdns_base_nameserver_ip_add(mute, ns) != 0)
		fatal("evdns_base_new");

	db = db_new(base, mute, "host=db.example.com dbname=x", 1);
	db_set_timeouts(db, 500, 0);
	t0 = mono_us();
	query_wait(db, &r, "select 1", 0, NULL);
	ms = ms_since(t0);
	ok(r.failed && r.kind == DB_ERR_UNAVAILABLE && ms <= 900,
	    "silent DNS: DB_ERR_UNAVAILABLE after %.0f ms: %s", ms, r.message);
	/* Two timers end together: the queue wait and the attempt. */
	ok(strstr(r.message, "within 500 ms") != NULL &&
		(strstr(r.message, "host name") != NULL ||
		    strstr(r.message, "timed out") != NULL),
	    "says it was still "
	    "looking up the name");
	reply_clear(&r);
	if (db_query(db, "select 1", 0, NULL, on_reply, &r) != 0)
		fatal("db_query");
	run_for(50);
	db_free(db);
	ok(r.done == 1 && r.failed,
	    "db_free during a lookup answers the "
	    "query");
	reply_clear(&r);
	/*
	 * libevent 2.1 finishes a cancelled lookup from the loop, touching
	 * its evdns_base: let it run before freeing that base.
	 */
	run_for(20);
	evdns_base_free(mute, 1);
	close(fd);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(*(int *)arg)++;
}

static void
test_not_blocked(void)
{
	struct timeval tv = {0, 10000};
	struct reply   r = {0};
	struct event  *tick;
	struct db     *db;
	int	       ticks = 0;
	int64_t	       t0;

	tick = event_new(base, -1, EV_PERSIST, on_tick, &ticks);
	event_add(tick, &tv);
	db = db_new(base, dns, url, 1);
	t0 = mono_us();
	query_wait(db, &r, "select pg_sleep(0.5)", 0, NULL);
	ok(!r.failed, "pg_sleep(0.5) answered in %.0f ms, connect included",
	    ms_since(t0));
	ok(ticks >= 30, "a 10 ms timer kept firing meanwhile (%d ticks)",
	    ticks);
	event_free(tick);
	reply_clear(&r);
	db_free(db);
}

static void
test_terminated(void)
{
	struct reply	a = {0}, b = {0}, c = {0};
	struct db_stats st;
	struct db      *db;
	int64_t		t0;

	db = db_new(base, dns, url, 2);
	t0 = mono_us();
	if (db_query(db, "select pg_sleep(3)", 0, NULL, on_reply, &a) != 0)
		fatal("db_query");
	run_for(400);
	if (db_query(db,
		"select pg_terminate_backend(pid) from "
		"pg_stat_activity where query like '%pg_sleep(3)%' and "
		"pid <> pg_backend_pid()",
		0, NULL, on_reply, &b) != 0)
		fatal("db_query");
	ok(run_until(&a.done, 1, 10000) && run_until(&b.done, 1, 10000),
	    "both answered");
	ok(a.failed && a.kind == DB_ERR_UNAVAILABLE,
	    "the killed query gets "
	    "DB_ERR_UNAVAILABLE");
	ok(a.at_us - t0 < 2500000, "promptly, not after its 3 s");
	ok(strstr(a.message, "connection lost") != NULL, "message: %s",
	    a.message);
	is_str(b.values[0], "t", "pg_terminate_backend found it");
	query_wait(db, &c, "select 'after'", 0, NULL);
	is_str(c.values[0], "after", "the next query succeeds");
	db_get_stats(db, &st);
	ok(st.lost >= 1, "lost connections counted (%lu)", st.lost);
	reply_clear(&a);
	reply_clear(&b);
	reply_clear(&c);
	db_free(db);
}

static void
test_timeouts(void)
{
	struct reply	a = {0}, b = {0};
	struct db_stats st;
	struct db      *db;
	int64_t		t0;
	double		ms;

	db = db_new(base, dns, url, 1);
	db_set_timeouts(db, 0, 300);
	t0 = mono_us();
	query_wait(db, &a, "select pg_sleep(2)", 0, NULL);
	ms = ms_since(t0);
	ok(a.failed && a.kind == DB_ERR_UNAVAILABLE &&
		strstr(a.message, "timed out") != NULL,
	    "a query past query_ms is given up: %s", a.message);
	ok(ms < 1000, "after about 300 ms (%.0f ms)", ms);
	query_wait(db, &a, "select 'next'", 0, NULL);
	is_str(a.values[0], "next", "next query on a new connection");
	db_get_stats(db, &st);
	is_int(st.timeouts, 1, "timeouts counted");
	db_free(db);

	/* Waiting for a busy pool is bounded by connect_ms too. */
	db = db_new(base, dns, url, 1);
	db_set_timeouts(db, 500, 0);
	reply_clear(&a);
	reply_clear(&b);
	t0 = mono_us();
	if (db_query(db, "select pg_sleep(1)", 0, NULL, on_reply, &a) != 0 ||
	    db_query(db, "select 1", 0, NULL, on_reply, &b) != 0)
		fatal("db_query");
	ok(run_until(&b.done, 1, 5000), "queued query answered");
	ms = (double)(b.at_us - t0) / 1000.0;
	ok(b.failed && b.kind == DB_ERR_UNAVAILABLE && ms < 900,
	    "queued behind a busy pool: failed after %.0f ms: %s", ms,
	    b.message);
	ok(run_until(&a.done, 1, 5000) && !a.failed,
	    "the running one "
	    "finishes");
	reply_clear(&a);
	reply_clear(&b);
	db_free(db);
}

struct chain {
	struct db *db;
	int	   done;
	int	   good;
	int	   refused;
};

static void
on_chain(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct chain *ch = arg;

	ch->done++;
	if (err == NULL)
		ch->good++;
	if (ch->done < 5 &&
	    db_query(ch->db, "select 1", 0, NULL, on_chain, ch) != 0)
		ch->refused++;
}

static void
on_shutdown(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct chain *ch = arg;

	ch->done++;
	if (err != NULL && err->kind == DB_ERR_UNAVAILABLE &&
	    strstr(err->message, "shutting down") != NULL)
		ch->good++;
	if (db_query(ch->db, "select 1", 0, NULL, on_shutdown, ch) != 0)
		ch->refused++;
}

static void
on_free_inside(
    void *arg, const struct db_result *res, const struct db_error *err)
{
	struct chain *ch = arg;

	ch->done++;
	if (ch->db != NULL) {
		struct db *db = ch->db;

		ch->db = NULL;
		db_free(db);
	}
}

static void
test_reentrancy(void)
{
	struct chain ch = {0};
	int	     i;

	ch.db = db_new(base, dns, url, 2);
	if (db_query(ch.db, "select 1", 0, NULL, on_chain, &ch) != 0)
		fatal("db_query");
	ok(ch.done == 0, "no callback inside db_query");
	ok(run_until(&ch.done, 5, 10000), "queries from callbacks run");
	is_int(ch.good, 5, "all five succeeded");
	db_free(ch.db);

	/* Pending and running queries at db_free. */
	memset(&ch, 0, sizeof(ch));
	ch.db = db_new(base, dns, url, 2);
	if (db_query(ch.db, "select pg_sleep(1)", 0, NULL, on_shutdown, &ch) !=
	    0)
		fatal("db_query");
	run_for(200);
	for (i = 0; i < 3; i++)
		if (db_query(ch.db, "select 1", 0, NULL, on_shutdown, &ch) != 0)
			fatal("db_query");
	db_free(ch.db);
	is_int(ch.done, 4, "db_free answers running and queued queries");
	is_int(ch.good, 4, "with DB_ERR_UNAVAILABLE, shutting down");
	is_int(ch.refused, 4, "db_query from those callbacks returns -1");

	/* db_free from inside a callback. */
	memset(&ch, 0, sizeof(ch));
	ch.db = db_new(base, dns, url, 1);
	for (i = 0; i < 3; i++)
		if (db_query(ch.db, "select 1", 0, NULL, on_free_inside, &ch) !=
		    0)
			fatal("db_query");
	ok(run_until(&ch.done, 3, 10000),
	    "db_free inside a callback answers "
	    "the rest");
	run_for(50);
	ok(ch.done == 3, "and nothing runs afterwards");
}

/*
 * Cursors.  The keys mix prefixes whose order differs between collations
 * ("K/" < "k/" < "k_" < "é/" in bytes) and md5() scatters them, so the
 * ORDER BY really sorts.
 */
#define KEYS_SQL                                                               \
	"select case i % 4 when 0 then 'K/' when 1 then 'k/' "                 \
	"when 2 then '\xc3\xa9/' else 'k_' end || md5(i::text) as k "          \
	"from generate_series(1, $1::int) i"
#define NKEYS	  100000
#define NKEYS_STR "100000"
#define BATCH	  1000

struct stream {
	struct db   *db;
	int	     batch;
	int	     manual;	  /* the test asks for each batch */
	int	     close_after; /* batches, then close from the callback */
	int	     calls;
	int	     opened;
	int	     ended; /* a fetch returned 0 rows */
	int	     closed;
	int	     failed;
	struct reply err;
	long	     rows;
	int	     batches;
	int	     oversized; /* batches of more than batch rows */
	int	     short_mid; /* batches of fewer rows, not the last */
	int	     last_n;
	int	     disorder;
	char	     first[128];
	char	     prev[128];
	int	     pid;	/* the cursor's backend */
	long	     rss_kb[2]; /* after the first batch, at the end */
	int64_t	     t0_us, first_us, t1_us;
	struct reply side;	 /* a query sent while streaming */
	int	     side_batch; /* batches done when it was answered */
	struct reply row;	 /* row 0 of the latest batch */
	int	     close_on_error;
	int	     fetch_on_error; /* and keep db_cursor_fetch()'s answer */
	int	     fetch_rc;
	int64_t	     err_us;
};

/* The resident set in KiB, or -1. */
static long
rss_kb(void)
{
	FILE *f;
	char  line[256];
	long  kb = -1;

	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
stream_error(struct stream *s, const struct db_error *err)
{
	s->err_us = mono_us();
	s->failed++;
	s->err.failed = 1;
	s->err.kind = err->kind;
	strlcpy_(s->err.sqlstate, err->sqlstate, sizeof(s->err.sqlstate));
	strlcpy_(s->err.message, err->message, sizeof(s->err.message));
	printf("# cursor error: %s%s%s\n", err->sqlstate,
	    err->sqlstate[0] != '\0' ? ": " : "", err->message);
}

static void
on_side(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct stream *s = arg;

	on_reply(&s->side, res, err);
	s->side_batch = s->batches;
}

static void
stream_rows(struct stream *s, const struct db_result *res)
{
	const char *k, *pid;
	int	    i, n = db_ntuples(res);

	if (n > s->batch)
		s->oversized++;
	if (s->batches > 0 && s->last_n < s->batch)
		s->short_mid++;
	for (i = 0; i < n; i++) {
		if ((k = db_value(res, i, 0)) == NULL)
			k = "";
		if (s->rows + i == 0)
			strlcpy_(s->first, k, sizeof(s->first));
		else if (strcmp(s->prev, k) >= 0)
			s->disorder++;
		strlcpy_(s->prev, k, sizeof(s->prev));
	}
	if (n > 0 && db_nfields(res) > 1 && (pid = db_value(res, 0, 1)) != NULL)
		s->pid = atoi(pid);
	if (n > 0) {
		reply_clear(&s->row);
		on_reply(&s->row, res, NULL);
	}
	s->rows += n;
	s->batches++;
	s->last_n = n;
}

static void
on_stream(void *arg, struct db_cursor *cur, const struct db_result *res,
    const struct db_error *err)
{
	struct stream *s = arg;

	s->calls++;
	if (err != NULL) {
		stream_error(s, err);
		if (s->fetch_on_error)
			s->fetch_rc = db_cursor_fetch(cur, 1, on_stream, s);
		if (s->close_on_error) {
			db_cursor_close(cur);
			s->closed = 1;
		}
		return;
	}
	if (res == NULL) {
		s->opened = 1;
		s->t0_us = mono_us();
	} else if (db_ntuples(res) == 0) {
		s->ended = 1;
		s->t1_us = mono_us();
		s->rss_kb[1] = rss_kb();
		return;
	} else {
		stream_rows(s, res);
		if (s->batches == 1) {
			s->first_us = mono_us();
			s->rss_kb[0] = rss_kb();
		}
		if (s->batches == 10 &&
		    db_query(s->db, "select pg_backend_pid()", 0, NULL, on_side,
			s) != 0)
			fatal("db_query");
		if (s->batches == s->close_after) {
			db_cursor_close(cur);
			s->closed = 1;
			return;
		}
	}
	if (!s->manual && db_cursor_fetch(cur, s->batch, on_stream, s) != 0)
		fatal("db_cursor_fetch");
}

static struct db_cursor *
stream_open(struct stream *s, struct db *db, const char *sql, int n,
    const char *const *params)
{
	struct db_cursor *cur;

	memset(s, 0, sizeof(*s));
	s->db = db;
	s->batch = BATCH;
	s->manual = 1;
	if ((cur = db_cursor_open(db, sql, n, params, on_stream, s)) == NULL)
		fatal("db_cursor_open");
	return cur;
}

/* One fetch, waited for; 1 if it was answered. */
static int
stream_fetch(struct stream *s, struct db_cursor *cur, int n)
{
	int want = s->calls + 1;

	if (db_cursor_fetch(cur, n, on_stream, s) != 0)
		return 0;
	return run_until(&s->calls, want, 10000);
}

static void
test_cursor_stream(void)
{
	const char	 *p[] = {NKEYS_STR};
	struct reply	  want = {0}, r = {0};
	struct stream	  s;
	struct db_cursor *cur;
	struct db_stats	  st;
	struct db	 *db;
	double		  secs;

	db = db_new(base, dns, url, 1);
	ok(db_cursor_open(db, "select 1", 0, NULL, on_stream, &s) == NULL,
	    "a pool of 1 refuses cursors");
	db_free(db);

	db = db_new(base, dns, url, 2);
	query_wait(db, &want,
	    "select count(*), min(k collate \"C\"), max(k collate \"C\") "
	    "from (" KEYS_SQL ") s",
	    1, p);
	is_str(want.values[0], NKEYS_STR, "the keys, counted by one query");

	cur = stream_open(&s, db,
	    "select k, pg_backend_pid() from (" KEYS_SQL
	    ") s order by k collate \"C\"",
	    1, p);
	s.manual = 0;
	ok(run_until(&s.calls, 1, 10000) && s.opened, "cursor opened");
	ok(run_until(&s.ended, 1, 30000), "streamed to the end");
	ok(!s.failed, "without an error");
	is_int(s.rows, NKEYS, "every key came");
	is_int(s.batches, NKEYS / BATCH, "in batches");
	ok(s.oversized == 0 && s.short_mid == 0,
	    "of exactly %d rows each (%d larger, %d smaller)", BATCH,
	    s.oversized, s.short_mid);
	is_int(s.disorder, 0, "in strictly increasing strcmp() order");
	is_str(s.first, want.values[1], "first key is the least");
	is_str(s.prev, want.values[2], "last key is the greatest");
	ok(strncmp(s.first, "K/", 2) == 0 &&
		strncmp(s.prev, "\xc3\xa9/", 3) == 0,
	    "byte order, not the locale's: %.8s... to %.8s...", s.first,
	    s.prev);
	secs = (double)(s.t1_us - s.first_us) / 1e6;
	printf("# %d rows in batches of %d: %.0f ms for the first "
	       "(the sort), then %.0f ms, %.0f rows/s\n",
	    NKEYS, BATCH, (double)(s.first_us - s.t0_us) / 1000.0,
	    secs * 1000.0, secs > 0 ? (NKEYS - BATCH) / secs : 0.0);
	if (RUNNING_ON_VALGRIND || UNDER_ASAN || s.rss_kb[0] < 0)
		ok(1, "# SKIP resident set under valgrind or ASan");
	else
		ok(s.rss_kb[1] - s.rss_kb[0] < 2048,
		    "resident set grew by %ld KiB from the first batch to "
		    "the end",
		    s.rss_kb[1] - s.rss_kb[0]);
	ok(s.side.done && !s.side.failed,
	    "a query sent while streaming was answered");
	ok(s.side_batch < s.batches,
	    "before the stream ended (after batch %d of %d)", s.side_batch,
	    s.batches);
	ok(s.side.values[0] != NULL && atoi(s.side.values[0]) != s.pid,
	    "on the other connection");
	ok(stream_fetch(&s, cur, BATCH) && s.ended && !s.failed,
	    "a fetch past the end gives 0 rows again");
	db_cursor_close(cur);

	/* The connection comes back, out of its transaction. */
	run_for(100);
	query_wait(db, &r,
	    "select count(*) from pg_stat_activity where "
	    "application_name = '" TEST_APP "' and "
	    "(state like 'idle in transaction%' or query like 'FETCH%')",
	    0, NULL);
	is_str(r.values[0], "0", "no backend left in a transaction");
	db_get_stats(db, &st);
	is_int(st.connects, 2, "two connections made");
	reply_clear(&r);
	reply_clear(&want);
	reply_clear(&s.side);
	reply_clear(&s.row);
	db_free(db);
}

static void
stream_clear(struct stream *s)
{
	reply_clear(&s->side);
	reply_clear(&s->row);
}

/* Wait for the open to be answered; 1 if the cursor is ready. */
static int
stream_ready(struct stream *s)
{
	return run_until(&s->calls, 1, 10000) && s->opened;
}

static void
test_cursor_settings(void)
{
	const char	 *p[] = {"it's", "41"};
	struct stream	  s;
	struct db_cursor *cur;
	struct db	 *db;

	db = db_new(base, dns, url, 2);
	cur = stream_open(&s, db,
	    "select current_setting('transaction_read_only'), "
	    "current_setting('transaction_isolation'), "
	    "current_setting('statement_timeout'), $1::text, $2::int + 1",
	    2, p);
	ok(stream_ready(&s), "cursor with parameters opened");
	ok(s.calls == 1 && s.rows == 0, "opened without rows");
	ok(stream_fetch(&s, cur, 10) && s.rows == 1, "one row");
	is_str(s.row.values[0], "on", "the transaction is read only");
	is_str(s.row.values[1], "repeatable read", "one snapshot");
	is_str(
	    s.row.values[2], "31s", "the server gives up 1 s after query_ms");
	is_str(s.row.values[3], "it's", "text parameter in the DECLARE");
	is_str(s.row.values[4], "42", "integer parameter in the DECLARE");
	db_cursor_close(cur);
	stream_clear(&s);
	db_free(db);
}

/*
 * Nothing left in a transaction, and the connections were kept.  A
 * backend whose connection was closed during a FETCH may still run it.
 */
static void
check_pool_clean(struct db *db, unsigned long connects, const char *what)
{
	struct reply	r = {0};
	struct db_stats st;

	run_for(50);
	query_wait(db, &r,
	    "select count(*) from pg_stat_activity where "
	    "application_name = '" TEST_APP "' and "
	    "state like 'idle in transaction%'",
	    0, NULL);
	is_str(r.values[0], "0", "%s: the pool works, nothing left open", what);
	reply_clear(&r);
	query_wait(
	    db, &r, "select current_setting('application_name')", 0, NULL);
	is_str(r.values[0], TEST_APP, "%s: our backends are told apart", what);
	db_get_stats(db, &st);
	if (connects > 0)
		is_int(st.connects, connects, "%s: connections kept", what);
	reply_clear(&r);
}

static void
test_cursor_errors(void)
{
	struct stream	  s;
	struct db_cursor *cur;
	struct db	 *db;

	db = db_new(base, dns, url, 2);
	cur = stream_open(&s, db, "selec 1", 0, NULL);
	ok(run_until(&s.calls, 1, 10000) && s.failed && !s.opened,
	    "a bad query fails the open");
	ok(s.err.kind == DB_ERR_QUERY && strcmp(s.err.sqlstate, "42601") == 0,
	    "with DB_ERR_QUERY 42601: %s", s.err.message);
	ok(stream_fetch(&s, cur, 10) && s.failed == 2 &&
		strcmp(s.err.sqlstate, "42601") == 0,
	    "a fetch on the dead cursor gets the same error");
	db_cursor_close(cur);

	cur = stream_open(&s, db,
	    "select 1 / (i - 1500) from generate_series(1, 3000) i", 0, NULL);
	ok(stream_ready(&s) && stream_fetch(&s, cur, 1000) && s.rows == 1000,
	    "the first batch is fine");
	ok(stream_fetch(&s, cur, 1000) && s.failed == 1 &&
		s.err.kind == DB_ERR_QUERY &&
		strcmp(s.err.sqlstate, "22012") == 0,
	    "an error mid-stream fails that fetch: %s", s.err.message);
	ok(stream_fetch(&s, cur, 1000) && s.failed == 2 && s.rows == 1000,
	    "and the next one, without rows");
	db_cursor_close(cur);
	stream_clear(&s);
	/* Cursors wait for a ROLLBACK to end, so all took the first. */
	check_pool_clean(db, 1, "after query errors");
	db_free(db);
}

static void
test_cursor_terminated(void)
{
	const char	 *p[] = {NKEYS_STR};
	struct reply	  r = {0};
	struct stream	  s;
	struct db_cursor *cur;
	struct db	 *db;
	char		  pid[16];
	const char	 *pp[] = {pid};
	int64_t		  t0;

	db = db_new(base, dns, url, 2);
	cur = stream_open(&s, db,
	    "select k, pg_backend_pid() from (" KEYS_SQL
	    ") s order by k collate \"C\"",
	    1, p);
	ok(stream_ready(&s) && stream_fetch(&s, cur, BATCH) &&
		stream_fetch(&s, cur, BATCH) && s.rows == 2 * BATCH,
	    "two batches");
	snprintf(pid, sizeof(pid), "%d", s.pid);
	query_wait(db, &r, "select pg_terminate_backend($1::int)", 1, pp);
	is_str(r.values[0], "t", "the cursor's backend terminated");
	run_for(100); /* noticed between fetches */
	ok(stream_fetch(&s, cur, BATCH) && s.failed == 1,
	    "the next fetch fails");
	ok(s.err.kind == DB_ERR_UNAVAILABLE &&
		strstr(s.err.message, "connection lost") != NULL,
	    "with DB_ERR_UNAVAILABLE: %s", s.err.message);
	ok(stream_fetch(&s, cur, BATCH) && s.failed == 2 &&
		s.err.kind == DB_ERR_UNAVAILABLE && s.rows == 2 * BATCH,
	    "and so does every later one");
	db_cursor_close(cur);
	stream_clear(&s);

	/* Terminated during a FETCH, closed from the error callback. */
	cur = stream_open(&s, db,
	    "select i, pg_sleep(0.5)::text from generate_series(1, 10) i", 0,
	    NULL);
	s.close_on_error = 1;
	ok(stream_ready(&s) && db_cursor_fetch(cur, 10, on_stream, &s) == 0,
	    "a 5 s fetch sent");
	run_for(300);
	t0 = mono_us();
	query_wait(db, &r,
	    "select pg_terminate_backend(pid) from pg_stat_activity "
	    "where query like 'FETCH%' and state = 'active' and "
	    "application_name = '" TEST_APP "'",
	    0, NULL);
	is_str(r.values[0], "t", "its backend terminated");
	(void)run_until(&s.closed, 1, 5000);
	ok(s.closed && s.err.kind == DB_ERR_UNAVAILABLE,
	    "the fetch fails with DB_ERR_UNAVAILABLE in %.0f ms: %s",
	    (double)(s.err_us - t0) / 1000.0, s.err.message);
	run_for(100);
	is_int(s.calls, 2, "nothing after the close");
	reply_clear(&r);
	stream_clear(&s);
	check_pool_clean(db, 0, "after terminations");
	db_free(db);
}

static void
test_cursor_close(void)
{
	const char	 *p[] = {NKEYS_STR};
	struct reply	  a = {0}, b = {0};
	struct stream	  s;
	struct db_cursor *cur;
	struct db_stats	  st;
	struct db	 *db;
	const char	 *sql = "select pg_backend_pid(), "
				"current_setting('transaction_read_only'), "
				"pg_sleep(0.2)";

	db = db_new(base, dns, url, 2);
	cur = stream_open(&s, db,
	    "select k, pg_backend_pid() from (" KEYS_SQL
	    ") s order by k collate \"C\"",
	    1, p);
	s.manual = 0;
	s.close_after = 3;
	ok(run_until(&s.closed, 1, 10000), "closed from the third batch");
	run_for(100);
	is_int(s.calls, 4, "no callback after the close");
	if (db_query(db, sql, 0, NULL, on_reply, &a) != 0 ||
	    db_query(db, sql, 0, NULL, on_reply, &b) != 0)
		fatal("db_query");
	ok(run_until(&a.done, 1, 5000) && run_until(&b.done, 1, 5000) &&
		!a.failed && !b.failed,
	    "two queries at once on the pool of 2");
	ok(a.values[0] != NULL && b.values[0] != NULL &&
		strcmp(a.values[0], b.values[0]) != 0 &&
		(atoi(a.values[0]) == s.pid || atoi(b.values[0]) == s.pid),
	    "one on the cursor's connection");
	ok(a.values[1] != NULL && b.values[1] != NULL &&
		strcmp(a.values[1], "off") == 0 &&
		strcmp(b.values[1], "off") == 0,
	    "outside its transaction");
	db_get_stats(db, &st);
	is_int(st.connects, 2, "no connection made again");
	stream_clear(&s);

	/* Closed during a FETCH: its connection is closed instead. */
	cur = stream_open(&s, db,
	    "select i, pg_sleep(0.5)::text from generate_series(1, 10) i", 0,
	    NULL);
	ok(stream_ready(&s) && db_cursor_fetch(cur, 10, on_stream, &s) == 0,
	    "a 5 s fetch sent");
	run_for(200);
	db_cursor_close(cur);
	run_for(200);
	is_int(s.calls, 1, "closed during the fetch: no callback");
	check_pool_clean(db, 0, "after a close during a fetch");

	/* Closed before it opened, and with a fetch not yet sent. */
	cur = stream_open(&s, db, "select 1", 0, NULL);
	db_cursor_close(cur);
	cur = stream_open(&s, db, "select 1", 0, NULL);
	ok(stream_ready(&s) && db_cursor_fetch(cur, 1, on_stream, &s) == 0,
	    "a fetch asked for");
	db_cursor_close(cur);
	run_for(200);
	is_int(s.calls, 1, "closed at once: no callback");
	check_pool_clean(db, 0, "after early closes");
	reply_clear(&a);
	reply_clear(&b);
	stream_clear(&s);
	db_free(db);
}

static void
test_cursor_limit(void)
{
	struct reply	  r = {0};
	struct stream	  a, b, c;
	struct db_cursor *ca, *cb, *cc;
	struct db	 *db;
	int64_t		  t0;

	db = db_new(base, dns, url, 2);
	db_set_timeouts(db, 3000, 0);
	ca = stream_open(&a, db, "select 1", 0, NULL);
	ok(stream_ready(&a), "first cursor on a pool of 2");
	cb = stream_open(&b, db, "select 2", 0, NULL);
	run_for(300);
	is_int(b.calls, 0, "the second waits");
	query_wait(db, &r, "select 'free'", 0, NULL);
	is_str(r.values[0], "free", "while queries still run");
	db_cursor_close(ca);
	ok(stream_ready(&b), "and opens when the first is closed");

	db_set_timeouts(db, 300, 0);
	t0 = mono_us();
	cc = stream_open(&c, db, "select 3", 0, NULL);
	(void)run_until(&c.calls, 1, 5000);
	ok(c.failed && c.err.kind == DB_ERR_UNAVAILABLE &&
		c.err_us - t0 >= 290000,
	    "a third gives up after connect_ms (%.0f ms)",
	    (double)(c.err_us - t0) / 1000.0);
	ok(strstr(c.err.message, "held by cursors") != NULL, "saying why: %s",
	    c.err.message);
	db_cursor_close(cc);
	db_cursor_close(cb);
	reply_clear(&r);
	db_free(db);
}

static void
test_cursor_timeout(void)
{
	struct reply	  r = {0};
	struct stream	  s;
	struct db_cursor *cur;
	struct db_stats	  st;
	struct db	 *db;
	int64_t		  t0;
	double		  ms;
	char		  pid[16];
	const char	 *pp[] = {pid};
	int		  i, good = 1;

	db = db_new(base, dns, url, 2);
	db_set_timeouts(db, 0, 300);
	cur = stream_open(&s, db,
	    "select i, pg_backend_pid(), "
	    "pg_sleep(case when i < 4 then 0.15 else 5 end)::text "
	    "from generate_series(1, 10) i",
	    0, NULL);
	ok(stream_ready(&s), "opened");
	t0 = mono_us();
	for (i = 0; i < 3; i++)
		good &= stream_fetch(&s, cur, 1) && !s.failed;
	ms = ms_since(t0);
	ok(good && s.rows == 3 && ms > 300,
	    "three fetches of 150 ms each, %.0f ms in all, past query_ms", ms);
	t0 = mono_us();
	ok(stream_fetch(&s, cur, 1) && s.failed &&
		s.err.kind == DB_ERR_UNAVAILABLE &&
		strstr(s.err.message, "timed out") != NULL,
	    "a 5 s fetch times out: %s", s.err.message);
	ms = (double)(s.err_us - t0) / 1000.0;
	ok(ms >= 290 && ms < 1000, "after %.0f ms", ms);
	ok(stream_fetch(&s, cur, 1) && s.failed == 2, "the cursor is dead");
	db_cursor_close(cur);
	db_get_stats(db, &st);
	is_int(st.timeouts, 1, "one timeout counted");
	stream_clear(&s);

	/* statement_timeout is 1300 ms: the server gives up too. */
	run_for((int)(1500 - (mono_us() - t0) / 1000));
	snprintf(pid, sizeof(pid), "%d", s.pid);
	query_wait(db, &r,
	    "select count(*) from pg_stat_activity where pid = $1::int", 1, pp);
	is_str(r.values[0], "0",
	    "the server stopped the abandoned FETCH, and its backend");
	reply_clear(&r);
	check_pool_clean(db, 0, "after a timeout");
	db_free(db);
}

static void
test_cursor_shutdown(void)
{
	struct stream	  s[4];
	struct db_cursor *cur[4];
	struct db	 *db;
	int		  i;

	db = db_new(base, dns, url, 4);
	cur[0] = stream_open(&s[0], db,
	    "select i, pg_sleep(0.5)::text from generate_series(1, 10) i", 0,
	    NULL);
	s[0].fetch_on_error = 1;
	s[0].fetch_rc = 99;
	for (i = 1; i < 4; i++)
		cur[i] = stream_open(&s[i], db, "select 1", 0, NULL);
	ok(stream_ready(&s[0]) && stream_ready(&s[1]) && stream_ready(&s[2]),
	    "three cursors open on a pool of 4");
	is_int(s[3].calls, 0, "a fourth waits");
	if (db_cursor_fetch(cur[0], 10, on_stream, &s[0]) != 0)
		fatal("db_cursor_fetch");
	run_for(100);
	if (db_cursor_fetch(cur[2], 10, on_stream, &s[2]) != 0)
		fatal("db_cursor_fetch");
	db_free(db);
	ok(s[0].failed && strstr(s[0].err.message, "shutting down") != NULL,
	    "a running fetch fails: %s", s[0].err.message);
	is_int(s[0].fetch_rc, -1, "db_cursor_fetch() in that callback: -1");
	ok(s[2].failed && strstr(s[2].err.message, "shutting down") != NULL,
	    "a fetch not yet sent fails");
	ok(s[3].failed && !s[3].opened, "a waiting open fails");
	is_int(s[1].calls, 1, "an idle cursor gets no callback");
	is_int(db_cursor_fetch(cur[1], 1, on_stream, &s[1]), -1,
	    "and db_cursor_fetch() on it returns -1");
	for (i = 0; i < 4; i++) {
		db_cursor_close(cur[i]);
		stream_clear(&s[i]);
	}
}

int
main(void)
{
	if ((url = getenv("DATABASE_URL")) == NULL || url[0] == '\0') {
		printf("1..0 # SKIP no DATABASE_URL\n");
		return 0;
	}
	/*
	 * Other suites share this server: look only at our own backends
	 * (libpq's default application_name, over the pool's fallback).
	 */
	setenv("PGAPPNAME", TEST_APP, 1);
	log_init("test_db", stderr);
	if ((base = event_base_new()) == NULL)
		fatal("event_base_new");
	if ((dns = evdns_base_new(base,
		 EVDNS_BASE_INITIALIZE_NAMESERVERS |
		     EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL)
		fatal("evdns_base_new");

	test_params();
	test_copy();
	test_many();
	test_errors();
	test_unavailable();
	test_hostname();
	test_silent_dns();
	test_not_blocked();
	test_terminated();
	test_timeouts();
	test_reentrancy();
	test_cursor_stream();
	test_cursor_settings();
	test_cursor_errors();
	test_cursor_terminated();
	test_cursor_close();
	test_cursor_limit();
	test_cursor_timeout();
	test_cursor_shutdown();

	evdns_base_free(dns, 0);
	event_base_free(base);
	return tap_done();
}
