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
 * Fails every query not yet answered with DB_ERR_UNAVAILABLE ("shutting
 * down"), then releases everything.  Safe inside a db callback (the memory
 * goes when that callback returns); db_query() from a callback it runs
 * returns -1.
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
int db_nfields(const struct db_result *);
/* NULL for SQL NULL. */
const char *db_value(const struct db_result *, int row, int col);

#endif
