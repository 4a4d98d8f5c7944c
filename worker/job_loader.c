#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "db.h"
#include "job_loader.h"
#include "util.h"

/*
 * Terminal statuses are the data contract's (docs/PROTOCOL.md); a NULL
 * status is treated as active, so the row is protected.  %3$s is the
 * WHERE clause: "j.id = $1" alone, "j.id = ANY($1)" for a batch, which
 * also returns j.id as text to tell the rows apart.
 */
static const char job_sql[] =
    "SELECT j.status, j.original_key, j.audio_key, "
    "(SELECT count(*) FROM %2$s c WHERE c.job_id = j.id), "
    "(SELECT count(*) FROM %2$s c WHERE c.job_id = j.id "
    "AND c.status = 'completed'), "
    "(SELECT EXISTS (SELECT 1 FROM %2$s c WHERE c.key = j.original_key) "
    "OR EXISTS (SELECT 1 FROM %1$s o WHERE o.id <> j.id "
    "AND coalesce(o.status, '') NOT IN ('completed', 'failed', 'cancelled') "
    "AND (o.original_key = j.original_key OR o.audio_key = j.original_key))), "
    "(SELECT EXISTS (SELECT 1 FROM %2$s c WHERE c.key = j.audio_key) "
    "OR EXISTS (SELECT 1 FROM %1$s o WHERE o.id <> j.id "
    "AND coalesce(o.status, '') NOT IN ('completed', 'failed', 'cancelled') "
    "AND (o.original_key = j.audio_key OR o.audio_key = j.audio_key))), "
    "j.id::text "
    "FROM %1$s j WHERE %3$s";

enum { COL_ID = 7 };

struct job_req {
	TAILQ_ENTRY(job_req) entry;
	struct job_loader *l;
	char		  *job_id;
	job_loaded_cb	  *cb;
	void		  *arg;
};

TAILQ_HEAD(job_reqs, job_req);

struct job_batch {
	struct job_loader *l;
	struct job_reqs	   reqs;
};

struct job_loader {
	struct event_base *base;
	struct db	  *db;
	char		  *single_sql;
	char		  *batch_sql;
	int		   flush_ms;
	int		   max;
	struct job_reqs	   open;
	int		   nopen;
	struct event	  *flush_ev;
	unsigned long	   batches;
	unsigned long	   singles;
};

static void
req_free(struct job_req *r)
{
	free(r->job_id);
	free(r);
}

static void
row_from(const struct db_result *res, int i, struct job_row *row)
{
	row->status = db_value(res, i, 0);
	row->original_key = db_value(res, i, 1);
	row->audio_key = db_value(res, i, 2);
	row->total_clips = db_value(res, i, 3);
	row->completed_clips = db_value(res, i, 4);
	row->original_referenced = db_value(res, i, 5);
	row->audio_referenced = db_value(res, i, 6);
}

static void
single_done(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct job_req *r = arg;
	struct job_row	row;

	memset(&row, 0, sizeof(row));
	if (err != NULL)
		r->cb(r->arg, NULL, err);
	else {
		row.nrows = db_ntuples(res);
		if (row.nrows > 0)
			row_from(res, 0, &row);
		r->cb(r->arg, &row, NULL);
	}
	req_free(r);
}

static void
single(struct job_req *r)
{
	const char     *params[1] = {r->job_id};
	struct db_error err;

	r->l->singles++;
	if (db_query(r->l->db, r->l->single_sql, 1, params, single_done, r) ==
	    0)
		return;
	memset(&err, 0, sizeof(err));
	err.kind = DB_ERR_UNAVAILABLE;
	strlcpy_(err.message, "cannot send the query", sizeof(err.message));
	r->cb(r->arg, NULL, &err);
	req_free(r);
}

/*
 * The rows whose id prints exactly as the caller wrote it answer it; a
 * caller without one is asked alone (its id may be written otherwise).
 */
static void
batch_done(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct job_batch *b = arg;
	struct job_req	 *r;
	struct job_row	  row;
	int		  i, n;

	while ((r = TAILQ_FIRST(&b->reqs)) != NULL) {
		TAILQ_REMOVE(&b->reqs, r, entry);
		if (err != NULL) {
			/* 22P02, 22003: one id is not valid for the column. */
			if (err->kind == DB_ERR_QUERY &&
			    (strcmp(err->sqlstate, "22P02") == 0 ||
				strcmp(err->sqlstate, "22003") == 0))
				single(r);
			else {
				r->cb(r->arg, NULL, err);
				req_free(r);
			}
			continue;
		}
		memset(&row, 0, sizeof(row));
		for (i = 0, n = db_ntuples(res); i < n; i++) {
			const char *id = db_value(res, i, COL_ID);
			if (id == NULL || strcmp(id, r->job_id) != 0)
				continue;
			if (row.nrows++ == 0)
				row_from(res, i, &row);
		}
		if (row.nrows == 0) {
			single(r);
			continue;
		}
		r->cb(r->arg, &row, NULL);
		req_free(r);
	}
	free(b);
}

/* A text array literal: every element quoted, " and \ escaped. */
static char *
array_literal(const struct job_reqs *reqs)
{
	struct job_req *r;
	struct buf	b;
	const char     *p;

	buf_init(&b);
	buf_adds(&b, "{");
	TAILQ_FOREACH(r, reqs, entry)
	{
		if (r != TAILQ_FIRST(reqs))
			buf_adds(&b, ",");
		buf_adds(&b, "\"");
		for (p = r->job_id; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				buf_add(&b, "\\", 1);
			buf_add(&b, p, 1);
		}
		buf_adds(&b, "\"");
	}
	buf_adds(&b, "}");
	return buf_steal(&b);
}

static void
flush(struct job_loader *l)
{
	struct job_batch *b;
	struct job_req	 *r;
	struct db_error	  err;
	const char	 *params[1];
	char		 *ids;

	evtimer_del(l->flush_ev);
	if (l->nopen == 0)
		return;
	if (l->nopen == 1) { /* nothing to share */
		r = TAILQ_FIRST(&l->open);
		TAILQ_REMOVE(&l->open, r, entry);
		l->nopen = 0;
		single(r);
		return;
	}
	b = xcalloc(1, sizeof(*b));
	b->l = l;
	TAILQ_INIT(&b->reqs);
	TAILQ_CONCAT(&b->reqs, &l->open, entry);
	l->nopen = 0;
	ids = array_literal(&b->reqs);
	params[0] = ids;
	l->batches++;
	if (db_query(l->db, l->batch_sql, 1, params, batch_done, b) != 0) {
		memset(&err, 0, sizeof(err));
		err.kind = DB_ERR_UNAVAILABLE;
		strlcpy_(
		    err.message, "cannot send the query", sizeof(err.message));
		batch_done(b, NULL, &err);
	}
	free(ids);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	flush(arg);
}

void
job_loader_get(
    struct job_loader *l, const char *job_id, job_loaded_cb *cb, void *arg)
{
	struct job_req *r = xcalloc(1, sizeof(*r));
	struct timeval	tv = {0, l->flush_ms * 1000};

	r->l = l;
	r->job_id = xstrdup(job_id);
	r->cb = cb;
	r->arg = arg;
	TAILQ_INSERT_TAIL(&l->open, r, entry);
	if (l->nopen++ == 0)
		evtimer_add(l->flush_ev, &tv);
	if (l->nopen >= l->max)
		flush(l);
}

struct job_loader *
job_loader_new(struct event_base *base, struct db *db, const char *jobs_table,
    const char *clips_table, int flush_ms, int max)
{
	struct job_loader *l = xcalloc(1, sizeof(*l));

	l->base = base;
	l->db = db;
	l->single_sql = xasprintf(
	    job_sql, jobs_table, clips_table, "j.id = $1");
	l->batch_sql = xasprintf(
	    job_sql, jobs_table, clips_table, "j.id = ANY($1)");
	l->flush_ms = flush_ms > 0 && flush_ms < 1000 ? flush_ms : 0;
	l->max = max > 0 ? max : 1;
	TAILQ_INIT(&l->open);
	l->flush_ev = evtimer_new(base, flush_cb, l);
	return l;
}

void
job_loader_free(struct job_loader *l)
{
	struct job_req *r;
	struct db_error err;

	if (l == NULL)
		return;
	memset(&err, 0, sizeof(err));
	err.kind = DB_ERR_UNAVAILABLE;
	strlcpy_(err.message, "shutting down", sizeof(err.message));
	while ((r = TAILQ_FIRST(&l->open)) != NULL) {
		TAILQ_REMOVE(&l->open, r, entry);
		r->cb(r->arg, NULL, &err);
		req_free(r);
	}
	event_free(l->flush_ev);
	free(l->single_sql);
	free(l->batch_sql);
	free(l);
}

void
job_loader_counts(
    const struct job_loader *l, unsigned long *batches, unsigned long *singles)
{
	*batches = l->batches;
	*singles = l->singles;
}
