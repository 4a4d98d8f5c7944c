#ifndef CLIPSWEEP_DB_H
#define CLIPSWEEP_DB_H

#include "util.h"

struct event_base;
struct evdns_base;
struct db;
struct db_result;

enum db_error_kind {
	DB_ERR_UNAVAILABLE, /* could not connect, or the connection died */
	DB_ERR_QUERY,	    /* the server rejected the query */
};

struct db_error {
	enum db_error_kind kind;
	char		   sqlstate[6];	 /* empty when unavailable */
	char		   message[512]; /* never holds a password */
};

/*
 * Called once per query: with res on success (err NULL) or err on failure
 * (res NULL).  res is valid only during the callback; copy what you keep.
 */
typedef void db_cb(
    void *arg, const struct db_result *res, const struct db_error *err);

/*
 * A small pool of asynchronous libpq connections on the event loop.
 * conninfo is any libpq URI or key=value string; host names are resolved
 * with evdns first so that connecting never blocks the loop.  Queries are
 * queued and run in order of submission as connections become free;
 * connections are (re)made lazily with capped backoff.  Returns NULL,
 * after logging why (without the password), when conninfo cannot be parsed
 * or names a host while dns is NULL.
 */
struct db *db_new(struct event_base *, struct evdns_base *,
    const char *conninfo, int pool_size);
/*
 * Fails every query and cursor operation not yet answered with
 * DB_ERR_UNAVAILABLE ("shutting down"), then releases everything but the
 * cursors, which stay dead until the caller closes them.  Safe inside a
 * db callback (the memory goes when that callback returns); db_query()
 * and db_cursor_fetch() from a callback it runs return -1.
 */
void db_free(struct db *);

/*
 * Time limits in milliseconds; a value <= 0 keeps the current one.
 * connect_ms (default 10000) bounds one connection attempt, name lookup
 * included, and how long a query may wait in the queue before it is sent.
 * query_ms (default 30000) bounds a query once sent; on expiry its
 * connection is closed and it fails with DB_ERR_UNAVAILABLE.
 */
void db_set_timeouts(struct db *, int connect_ms, int query_ms);

/* Parameters are text and are copied.  Returns 0, or -1 if db is closing. */
int db_query(struct db *, const char *sql, int nparams,
    const char *const *params, db_cb *, void *arg) MUST_CHECK;

/*
 * COPY ... FROM STDIN with data (len bytes, copied) in the statement's
 * format; cb gets the COMMAND_OK result (its tuple count:
 * db_cmd_tuples()) or the error.  Returns 0, or -1 if db is closing.
 */
int db_copy_in(struct db *, const char *sql, const char *data, size_t len,
    db_cb *, void *arg) MUST_CHECK;

/*
 * Cursors stream a large result in batches, with memory bounded by the
 * batch size and the pace set by the consumer: nothing is read until it
 * asks for the next batch.
 *
 * A cursor holds one pool connection for its whole life, in a transaction
 * ISOLATION LEVEL REPEATABLE READ READ ONLY, so that every batch comes
 * from one snapshot.  The other queries share the remaining connections:
 * at most pool_size - 1 cursors are open at once, and a pool of 1 allows
 * none.  An open beyond that waits, as queries do, for connect_ms at most.
 *
 * Holding a snapshot holds back VACUUM on the whole server, and a
 * server's idle_in_transaction_session_timeout ends a cursor whose
 * consumer pauses longer than it: keep cursors short.
 */
struct db_cursor;

/*
 * Called once per operation: after db_cursor_open() with res and err NULL
 * when the cursor is ready; after db_cursor_fetch() with res holding up to
 * n rows, 0 rows meaning the end, or with err.  res and err are valid only
 * during the callback; copy what you keep.  After an error the cursor is
 * dead, and every later fetch fails with the same error: the result is
 * incomplete and must not be acted on.  db_cursor_fetch() and
 * db_cursor_close() may be called from the callback.
 */
typedef void db_cursor_cb(void *arg, struct db_cursor *,
    const struct db_result *res, const struct db_error *err);

/*
 * Declares a NO SCROLL cursor for sql (one SELECT; parameters are text,
 * copied, and bound in the DECLARE) on a connection it takes from the
 * pool, and calls cb once that is done.  The caller owns the cursor and
 * frees it with db_cursor_close(), also after an error or after db_free().
 * Returns NULL if db is closing or its pool has a single connection.
 *
 * Failures: DB_ERR_UNAVAILABLE when no connection could be had within
 * connect_ms or the connection died, DB_ERR_QUERY when the server rejected
 * sql.  query_ms bounds each statement (BEGIN, DECLARE, each FETCH) rather
 * than the cursor's life; the server is told to give up on a statement
 * 1 s after we do (SET LOCAL statement_timeout, fixed at open).  The
 * first FETCH of an ORDER BY does the whole sort: allow for it.
 */
struct db_cursor *db_cursor_open(struct db *, const char *sql, int nparams,
    const char *const *params, db_cursor_cb *cb, void *arg);

/*
 * Asks for the next n rows (FETCH FORWARD n); cb is called once.  One
 * operation at a time: fetch only from or after the previous callback.
 * Returns 0, or -1 if the cursor's db is closing or gone (its pending
 * operation, if any, was failed with "shutting down").
 */
int db_cursor_fetch(
    struct db_cursor *, int n, db_cursor_cb *cb, void *arg) MUST_CHECK;

/*
 * Frees the cursor; no callback runs after this, also for an operation
 * still pending.  An idle connection is given back to the pool after a
 * ROLLBACK; one with a FETCH still running is closed instead, since its
 * answer may be long in coming.  Safe inside any db callback.
 * db_cursor_close(NULL) does nothing.
 */
void db_cursor_close(struct db_cursor *);

/* Counters since db_new(), for metrics and tests. */
struct db_stats {
	unsigned long connects; /* connections established */
	unsigned long connect_failures;
	unsigned long resolved; /* attempts via evdns + hostaddr */
	unsigned long lost;	/* established connections that died */
	unsigned long timeouts; /* queries cancelled after query_ms */
};

void db_get_stats(const struct db *, struct db_stats *);

int db_ntuples(const struct db_result *);
/* Rows a command touched (INSERT, COPY, ...); -1 when it says none. */
long long db_cmd_tuples(const struct db_result *);
int	  db_nfields(const struct db_result *);
/* NULL for SQL NULL. */
const char *db_value(const struct db_result *, int row, int col);

#endif
