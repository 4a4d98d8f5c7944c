/*
 * retention_sweep: keep completed clips inside the retention window,
 * delete everything else under the prefix that no longer needs to exist.
 *
 * Two passes over the same streams.  The plan classifies the whole prefix
 * exactly as a dry run does; only if it passes the guards does the second
 * pass merge again and delete, stopping if it meets more candidates than
 * the plan counted (the bucket changed under it).  Each pass merges the
 * listing (ListObjectsV2, byte order) with the keys the database refers
 * to (a cursor ordered by COLLATE "C"), one page and one batch at a time,
 * so memory does not grow with the bucket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "config.h"
#include "db.h"
#include "audit.h"
#include "log.h"
#include "queue.h"
#include "redis.h"
#include "s3.h"
#include "sweep.h"
#include "sweep_run.h"
#include "worker.h"

#define PAGE_KEYS	       1000
#define DB_BATCH	       1000
#define DELETE_BATCH	       1000
#define DELETES_IN_FLIGHT      4
#define MAX_REPORTED_ERRORS    100
#define MAX_PREFIXES	       50
#define SAMPLE_KEYS	       10
#define DEFAULT_RETENTION_DAYS 5
#define DEFAULT_MIN_AGE_HOURS  24

/*
 * Every key the database refers to, once, with what the rows say of it.
 * Terminal statuses are the data contract's; NULL is active.  $1 is the
 * retention in days.  A sweep of a sub-prefix still reads every key, so
 * that a key stored in the wrong form anywhere refuses the sweep instead
 * of hiding outside the filter; the merge counts only those under it.
 */
static const char refs_sql[] =
    "SELECT key, bool_or(active), bool_or(retained), bool_or(clip) FROM ("
    "SELECT c.key AS key, "
    "coalesce(c.status, '') NOT IN ('completed', 'failed') AS active, "
    "coalesce(c.status = 'completed' AND "
    "c.created_at >= now() - make_interval(days => $1::int), false) "
    "AS retained, true AS clip FROM %2$s c "
    "WHERE c.key IS NOT NULL "
    "UNION ALL SELECT j.original_key, "
    "coalesce(j.status, '') NOT IN ('completed', 'failed', 'cancelled'), "
    "false, false FROM %1$s j "
    "WHERE j.original_key IS NOT NULL "
    "UNION ALL SELECT j.audio_key, "
    "coalesce(j.status, '') NOT IN ('completed', 'failed', 'cancelled'), "
    "false, false FROM %1$s j "
    "WHERE j.audio_key IS NOT NULL"
    ") r %3$s GROUP BY key ORDER BY key COLLATE \"C\"";

static void sweep_step(struct sweep_run *);
static void delete_batch_free(struct delete_batch *);
static void ahead_free(struct sweep_run *);
static void list_next(struct sweep_run *);

/* Stop the sweep: nothing further is listed, fetched or deleted. */
static void PRINTF_LIKE(4, 5) sweep_abort(struct sweep_run *s,
    const char *status, const char *code, const char *fmt, ...)
{
	char	msg[512];
	va_list ap;

	if (s->stopping)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	task_run_error(s->tr, NULL, code, "%s", msg);
	s->stopping = 1;
	s->final_status = status;
}

static void
add_counts(cJSON *o, const char *name, const struct sweep_counts *c, int keep)
{
	cJSON *by = cJSON_AddObjectToObject(o, name);
	int    r;

	for (r = keep ? 0 : SWEEP_FIRST_CANDIDATE;
	     r < (keep ? SWEEP_FIRST_CANDIDATE : SWEEP_NREASONS); r++)
		cJSON_AddNumberToObject(
		    by, sweep_reason_name(r), (double)c->by_reason[r]);
}

static double
mb(int64_t bytes)
{
	return (double)(int64_t)((double)bytes / 10485.76 + 0.5) / 100.0;
}

void
sweep_report(struct sweep_run *s)
{
	struct task_run		  *tr = s->tr;
	const struct sweep_counts *c = &s->plan;
	cJSON			  *r = tr->result;
	int64_t count = tr->task.dry_run || !s->executing ? c->candidates
							  : s->deleted;
	int64_t bytes = tr->task.dry_run || !s->executing ? c->candidate_bytes
							  : s->deleted_bytes;
	char	msg[300];

	if (!tr->task.dry_run && !s->executing)
		count = bytes = 0; /* refused or failed before deleting */
	snprintf(msg, sizeof(msg),
	    "%s %lld files (%.2f MB) under %s, retained "
	    "%lld of %lld scanned",
	    tr->task.dry_run ? "Would delete" : "Deleted", (long long)count,
	    mb(bytes), s->scan_prefix, (long long)(c->scanned - c->candidates),
	    (long long)c->scanned);
	cJSON_AddStringToObject(r, "message", msg);
	cJSON_AddStringToObject(r, "scan_prefix", s->scan_prefix);
	cJSON_AddNumberToObject(r, "retention_days", (double)s->retention_days);
	cJSON_AddNumberToObject(r, "min_age_hours", (double)s->min_age_hours);
	cJSON_AddBoolToObject(r, "force", tr->task.force);
	cJSON_AddNumberToObject(r, "deleted_count", (double)count);
	cJSON_AddNumberToObject(r, "deleted_size_bytes", (double)bytes);
	cJSON_AddNumberToObject(r, "deleted_size_mb", mb(bytes));
	cJSON_AddNumberToObject(
	    r, "retained_count", (double)(c->scanned - c->candidates));
	cJSON_AddNumberToObject(r, "total_files_scanned", (double)c->scanned);
	cJSON_AddNumberToObject(r, "total_objects_scanned", (double)c->scanned);
	cJSON_AddNumberToObject(
	    r, "total_bytes_scanned", (double)c->scanned_bytes);
	cJSON_AddNumberToObject(r, "objects_in_database", (double)c->db_keys);
	cJSON_AddNumberToObject(
	    r, "database_keys_found", (double)c->db_keys_matched);
	cJSON_AddNumberToObject(r, "delete_ratio",
	    c->scanned ? (double)(int64_t)((double)c->candidates /
				 (double)c->scanned * 10000.0 +
			     0.5) /
		    10000.0
		       : 0.0);
	add_counts(r, "candidates_by_reason", c, 0);
	cJSON_AddItemToObject(r, "candidates_by_prefix", s->by_prefix);
	s->by_prefix = NULL;
	add_counts(r, "kept_by_reason", c, 1);
	cJSON_AddItemToObject(r, "sample_candidate_keys", s->samples);
	s->samples = NULL;
	cJSON_AddItemToObject(r, "deleted_files_sample", s->deleted_sample);
	s->deleted_sample = NULL;
	cJSON_AddItemToObject(r, "warnings", s->warnings);
	s->warnings = NULL;
	if (s->refused_reason != NULL)
		cJSON_AddStringToObject(r, "refused_reason", s->refused_reason);
	if (s->executing) {
		cJSON *e = cJSON_AddObjectToObject(r, "execution");
		cJSON_AddNumberToObject(
		    e, "planned_candidates", (double)c->candidates);
		cJSON_AddNumberToObject(
		    e, "candidates", (double)s->exec_candidates);
		cJSON_AddNumberToObject(e, "deleted", (double)s->deleted);
		cJSON_AddNumberToObject(
		    e, "delete_errors", (double)s->delete_errors);
		cJSON_AddNumberToObject(e, "scanned", (double)s->exec.scanned);
	}
}

void
sweep_run_free(struct sweep_run *s)
{
	free(s->cancel_key);
	sweep_merge_free(s->m);
	if (s->cur != NULL)
		db_cursor_close(s->cur);
	if (s->batch != NULL)
		delete_batch_free(s->batch);
	cJSON_Delete(s->by_prefix);
	cJSON_Delete(s->samples);
	cJSON_Delete(s->deleted_sample);
	cJSON_Delete(s->warnings);
	free(s->refused_reason);
	free(s->scan_prefix);
	free(s->sub_prefix);
	free(s->token);
	ahead_free(s);
	free(s->sql);
	free(s->list_after);
	free(s->list_upto);
	if (s->waiting_cursor)
		worker_cursor_cancel(s->w, s);
	if (s->has_cursor)
		worker_cursor_done(s->w);
	if (s->shard_ev != NULL)
		event_free(s->shard_ev);
	free(s->shard_report);
	while (s->nspawn > 0)
		cJSON_free(s->spawn[--s->nspawn]);
	free(s->spawn);
	free(s);
}

/* Finish once nothing that refers to s is still outstanding. */
static int
sweep_idle(const struct sweep_run *s)
{
	return !s->list_pending && !s->db_pending && s->deletes_inflight == 0 &&
	    !s->cancel_pending;
}

/*
 * A shard's pass is over: give its cursor and pool connection back before
 * the Redis steps, which may wait out an outage.
 */
static void
shard_pass_over(struct sweep_run *s, const char *status)
{
	db_cursor_close(s->cur);
	s->cur = NULL;
	if (s->has_cursor) {
		s->has_cursor = 0;
		worker_cursor_done(s->w);
	}
	sweep_shard_pass_done(s, status);
}

void
sweep_run_end(struct sweep_run *s, const char *status)
{
	struct task_run *tr = s->tr;

	if (s->shard != NULL) {
		shard_pass_over(s, status);
		return;
	}
	sweep_report(s);
	tr->kind_state = NULL;
	sweep_run_free(s);
	task_run_finish(tr, status);
}

/* An operator's clipsweep cancel: stop, keeping what was done. */
static void
sweep_cancelled(struct sweep_run *s)
{
	sweep_abort(s, s->deleted > 0 ? "partial" : "failed", "cancelled",
	    "cancelled by an operator (%s) after deleting %lld objects",
	    s->cancel_key, (long long)s->deleted);
}

static void
cancel_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct sweep_run *s = arg;

	s->cancel_pending = 0;
	/* The worker is shutting down: its other clients are gone. */
	if (reply == NULL && worker_tearing_down(s->w))
		return;
	if (!redis_reply_failed(reply) &&
	    redis_reply_type(reply) == REDIS_R_INTEGER &&
	    redis_reply_int(reply) > 0)
		sweep_cancelled(s);
	sweep_step(s);
}

static void
sweep_progress(struct sweep_run *s, int force)
{
	const struct sweep_counts *c;
	struct sweep_counts	   now;
	cJSON			  *o;
	char			  *txt;

	if (!force && now_ms() - s->last_progress_ms < 1000)
		return;
	s->last_progress_ms = now_ms();
	/*
	 * Once a second, too: has an operator cancelled the sweep?  (Not
	 * on the forced report at the end: the run is about to be freed.)
	 */
	if (!force && !s->cancel_pending &&
	    redis_cmd(worker_redis(s->w), cancel_reply, s, "EXISTS",
		s->cancel_key, (char *)NULL) == 0)
		s->cancel_pending = 1;
	sweep_merge_counts(s->m, &now);
	c = &now;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(
	    o, "id", s->shard != NULL ? s->shard->sweep_id : s->tr->task.id);
	cJSON_AddStringToObject(o, "type", "retention_sweep");
	if (s->shard != NULL) {
		cJSON_AddNumberToObject(o, "shard", s->shard->index);
		cJSON_AddNumberToObject(o, "shards", s->shard->count);
	}
	cJSON_AddStringToObject(o, "phase", s->executing ? "execute" : "plan");
	cJSON_AddNumberToObject(o, "scanned", (double)c->scanned);
	cJSON_AddNumberToObject(o, "candidates", (double)c->candidates);
	cJSON_AddNumberToObject(o, "deleted", (double)s->deleted);
	cJSON_AddNumberToObject(o, "deleted_bytes", (double)s->deleted_bytes);
	txt = cJSON_PrintUnformatted(o);
	worker_publish_progress(s->w, txt);
	cJSON_free(txt);
	cJSON_Delete(o);
}

/* Deleting. */

static void delete_send(struct delete_batch *);

static void
delete_batch_free(struct delete_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->keys[i]);
	free(b->keys);
	free(b->sizes);
	free(b->reasons);
	free(b);
}

static void
delete_done(void *arg, const struct s3_delete_result *res, size_t n,
    const struct s3_error *err)
{
	struct delete_batch *b = arg;
	struct sweep_run    *s = b->s;
	size_t		     i;

	/* The S3 client retried it already (standard mode). */
	s->deletes_inflight--;
	if (err != NULL) {
		s->delete_errors += (int64_t)b->n;
		sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
		    err->transient ? "storage_unavailable" : "storage_error",
		    "DeleteObjects of %zu keys failed: %s%s%s; "
		    "the sweep stopped",
		    b->n, err->code, err->message[0] ? ": " : "", err->message);
	} else
		for (i = 0; i < n && i < b->n; i++) {
			if (res[i].deleted) {
				s->deleted++;
				s->deleted_bytes += b->sizes[i];
				if (cJSON_GetArraySize(s->deleted_sample) <
				    SAMPLE_KEYS)
					cJSON_AddItemToArray(s->deleted_sample,
					    cJSON_CreateString(res[i].key));
				continue;
			}
			if (s->delete_errors++ < MAX_REPORTED_ERRORS)
				task_run_error(s->tr, res[i].key,
				    res[i].code ? res[i].code : "delete_failed",
				    "%s", res[i].message ? res[i].message : "");
		}
	delete_batch_free(b);
	sweep_step(s);
}

static void
delete_go(void *arg, int verdict)
{
	struct delete_batch *b = arg;
	struct sweep_run    *s = b->s;

	if (verdict == GATE_CANCELLED) { /* not sent: nothing deleted */
		s->deletes_inflight--;
		delete_batch_free(b);
		sweep_cancelled(s);
		sweep_step(s);
		return;
	}
	if (verdict == GATE_SEND && s->stopping) {
		/* Stopped meanwhile (cancelled, a failure): not sent. */
		s->deletes_inflight--;
		delete_batch_free(b);
		sweep_step(s);
		return;
	}
	if (verdict == GATE_SHUTDOWN) {
		struct s3_error e = {
		    0, 1, "cancelled", "the worker is shutting down"};
		delete_done(b, NULL, 0, &e);
		return;
	}
	if (s3_delete_objects(worker_s3(b->s->w), (const char *const *)b->keys,
		b->n, delete_done, b) != 0) {
		struct s3_error e = {0, 0, "shutting_down",
		    "the S3 client "
		    "is closing"};
		delete_done(b, NULL, 0, &e);
	}
}

/* The audit rows are in: send, or stop the sweep without sending. */
static void
delete_audited(void *arg, const char *error)
{
	struct delete_batch *b = arg;
	struct sweep_run    *s = b->s;

	if (error == NULL) {
		worker_delete_gate(s->w, s->cancel_key, delete_go, b);
		return;
	}
	s->deletes_inflight--;
	delete_batch_free(b);
	sweep_abort(s, s->deleted > 0 ? "partial" : "failed", "audit_failed",
	    "%s; the sweep stopped before deleting the batch", error);
	sweep_step(s);
}

static void
delete_audit(struct delete_batch *b)
{
	struct sweep_run *s = b->s;
	struct audit_row *rows = xcalloc(b->n, sizeof(*rows));
	size_t		  i;

	for (i = 0; i < b->n; i++) {
		rows[i].task_id = s->shard != NULL ? s->shard->sweep_id
						   : s->tr->task.id;
		rows[i].task_type = "retention_sweep";
		rows[i].key = b->keys[i];
		rows[i].reason = b->reasons[i];
		rows[i].size = b->sizes[i];
	}
	audit_write(worker_audit(s->w), rows, b->n, delete_audited, b);
	free(rows);
}

/*
 * The audit rows first (when the trail is on), then the kill switch and
 * the cancel key, read last so that a pause or a cancel that lands while
 * the rows are written still holds the batch back; then DeleteObjects.
 */
static void
delete_send(struct delete_batch *b)
{
	if (worker_audit(b->s->w) != NULL)
		delete_audit(b);
	else
		worker_delete_gate(b->s->w, b->s->cancel_key, delete_go, b);
}

static void
delete_flush(struct sweep_run *s)
{
	struct delete_batch *b = s->batch;

	if (b == NULL || b->n == 0)
		return;
	s->batch = NULL;
	s->deletes_inflight++;
	delete_send(b);
}

static void
delete_add(
    struct sweep_run *s, const struct sweep_object *o, enum sweep_reason r)
{
	struct delete_batch *b = s->batch;

	if (b == NULL) {
		b = s->batch = xcalloc(1, sizeof(*b));
		b->s = s;
		b->keys = xcalloc(DELETE_BATCH, sizeof(*b->keys));
		b->sizes = xcalloc(DELETE_BATCH, sizeof(*b->sizes));
		b->reasons = xcalloc(DELETE_BATCH, sizeof(*b->reasons));
	}
	b->reasons[b->n] = sweep_reason_name(r);
	b->keys[b->n] = xstrndup(o->key, o->key_len);
	b->sizes[b->n++] = o->size > 0 ? o->size : 0;
	if (b->n == DELETE_BATCH)
		delete_flush(s);
}

/* The verdicts. */

/* Candidates by the first path segment under the cube prefix. */
static void
count_prefix(struct sweep_run *s, const struct sweep_object *o)
{
	const char *rel = o->key + strlen(worker_config(s->w)->storage.prefix);
	const char *slash = strchr(rel, '/');
	char	    name[256];
	cJSON	   *n;

	if (slash != NULL)
		snprintf(
		    name, sizeof(name), "%.*s", (int)(slash - rel + 1), rel);
	else
		strlcpy_(name, "(root)", sizeof(name));
	n = cJSON_GetObjectItemCaseSensitive(s->by_prefix, name);
	if (n == NULL && s->nprefixes >= MAX_PREFIXES)
		n = cJSON_GetObjectItemCaseSensitive(s->by_prefix, "(other)");
	if (n == NULL) {
		n = cJSON_AddNumberToObject(s->by_prefix,
		    s->nprefixes < MAX_PREFIXES ? name : "(other)", 0);
		s->nprefixes++;
	}
	cJSON_SetNumberValue(n, n->valuedouble + 1);
}

static void
sweep_verdict(void *arg, const struct sweep_object *o, enum sweep_reason r)
{
	struct sweep_run *s = arg;

	if (r < SWEEP_FIRST_CANDIDATE)
		return;
	if (!s->executing) {
		count_prefix(s, o);
		if (cJSON_GetArraySize(s->samples) < SAMPLE_KEYS)
			cJSON_AddItemToArray(
			    s->samples, cJSON_CreateString(o->key));
		return;
	}
	/*
	 * A margin for uploads that aged past min_age between the passes;
	 * a shard has its share of the sweep's margin (sweep_shard.c).
	 */
	if (++s->exec_candidates >
	    (s->shard != NULL ? s->shard->limit
			      : s->plan.candidates +
			(s->plan.candidates / 100 > 10
				? s->plan.candidates / 100
				: 10))) {
		sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
		    "bucket_changed",
		    "the second pass met more candidates "
		    "(%lld) than the plan counted (%lld): the bucket or the "
		    "database changed during the sweep; it stopped",
		    (long long)s->exec_candidates,
		    (long long)s->plan.candidates);
		return;
	}
	if (!s->stopping)
		delete_add(s, o, r);
}

/* Listing. */

static void
ahead_free(struct sweep_run *s)
{
	size_t i;

	for (i = 0; i < s->nahead; i++)
		free((char *)s->ahead[i].key);
	free(s->ahead);
	s->ahead = NULL;
	s->nahead = 0;
	s->have_ahead = 0;
}

static void
feed(struct sweep_run *s, const struct sweep_object *objs, size_t n, int last)
{
	s->want_objects = 0;
	if (sweep_merge_add_objects(s->m, objs, n, last) != 0)
		sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
		    "listing_invalid", "%s", sweep_merge_error(s->m));
}

/*
 * One page ahead: the next page is asked for as soon as the last one
 * arrives, so the listing's round trips overlap the merge and the
 * database, and waits in ahead until the merge wants it.
 */
static void
list_done(
    void *arg, const struct s3_list_page *page, const struct s3_error *err)
{
	struct sweep_run    *s = arg;
	struct sweep_object *objs;
	size_t		     n, i;
	int		     last;

	s->list_pending = 0;
	if (err != NULL) { /* after the S3 client's retries */
		sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
		    err->transient ? "storage_unavailable" : "storage_error",
		    "listing %s failed: %s%s%s; nothing further is decided",
		    s->scan_prefix, err->code, err->message[0] ? ": " : "",
		    err->message);
		sweep_step(s);
		return;
	}
	n = s3_list_page_count(page);
	last = !s3_list_page_truncated(page);
	objs = xcalloc(n > 0 ? n : 1, sizeof(*objs));
	for (i = 0; i < n; i++) {
		const struct s3_object *o = s3_list_page_object(page, i);

		if (s->list_upto != NULL && strcmp(o->key, s->list_upto) > 0) {
			n = i; /* the next shard's: this one is listed */
			last = 1;
			break;
		}
		objs[i].key = o->key;
		objs[i].key_len = o->key_len;
		objs[i].size = o->size;
		objs[i].last_modified_ms = o->last_modified_ms;
	}
	free(s->token);
	s->token = last ? NULL : xstrdup(s3_list_page_next_token(page));
	s->list_done = last;
	if (s->want_objects)
		feed(s, objs, n, last);
	else {
		for (i = 0; i < n; i++)
			objs[i].key = xstrndup(objs[i].key, objs[i].key_len);
		s->ahead = objs;
		s->nahead = n;
		s->ahead_last = last;
		s->have_ahead = 1;
		objs = NULL;
	}
	free(objs);
	sweep_step(s);
}

/*
 * Delete batches a sweep keeps going at once; with the audit trail each
 * spends a COPY's round trip more before it is sent, so allow twice as
 * many to keep the storage as busy.
 */
static int
deletes_in_flight(const struct sweep_run *s)
{
	return worker_audit(s->w) != NULL ? 2 * DELETES_IN_FLIGHT
					  : DELETES_IN_FLIGHT;
}

static void
list_next(struct sweep_run *s)
{
	if (s->stopping || s->list_pending || s->have_ahead || s->list_done ||
	    s->deletes_inflight >= deletes_in_flight(s))
		return;
	s->list_pending = 1;
	if (s3_list(worker_s3(s->w), s->scan_prefix, s->token,
		s->token == NULL ? s->list_after : NULL, PAGE_KEYS, list_done,
		s) != 0) {
		s->list_pending = 0;
		sweep_abort(s, "failed", "storage_error",
		    "cannot list: the S3 "
		    "client is closing");
	}
}

/* The database stream. */

static enum sweep_ref_kind
ref_kind(const struct db_result *res, int row)
{
	const char *active = db_value(res, row, 1);
	const char *retained = db_value(res, row, 2);
	const char *clip = db_value(res, row, 3);

	if (active == NULL || strcmp(active, "f") != 0)
		return SWEEP_REF_KEEP_ACTIVE; /* NULL: keep */
	if (retained == NULL || strcmp(retained, "f") != 0)
		return SWEEP_REF_KEEP;
	return clip != NULL && strcmp(clip, "t") == 0 ? SWEEP_REF_EXPIRED_CLIP
						      : SWEEP_REF_TEMPORARY;
}

/*
 * A key the database stores in a form that cannot name an object under
 * the cube means its keys do not map the way we map them, and the objects
 * they mean would look like orphans: seed 001.  NULL when the key is fine.
 */
static char *
key_format_problem(struct sweep_run *s, const char *k)
{
	const char *cube = worker_config(s->w)->storage.prefix;
	const char *why;

	if (strncmp(k, cube, strlen(cube)) == 0)
		return xasprintf(
		    "the database stores keys with the cube prefix "
		    "('%.200s'); clipsweep expects keys relative "
		    "to the cube",
		    k);
	if ((why = key_unsafe_reason(k, strlen(k))) != NULL)
		return xasprintf("the database stores a key that cannot name "
				 "an object under the cube ('%.200s': %s); "
				 "fix the row or map it with a view",
		    k, why);
	return NULL;
}

static void
db_failed(struct sweep_run *s, const struct db_error *err)
{
	sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
	    err->kind == DB_ERR_UNAVAILABLE ? "database_unavailable"
					    : "database_error",
	    "reading the referenced keys failed: %s%s%s; "
	    "nothing further is decided",
	    err->message, err->sqlstate[0] ? " SQLSTATE " : "", err->sqlstate);
}

static void
db_batch(void *arg, struct db_cursor *cur, const struct db_result *res,
    const struct db_error *err)
{
	struct sweep_run *s = arg;
	struct sweep_ref *refs;
	int		  n, i;

	s->db_pending = 0;
	if (err != NULL) {
		db_failed(s, err);
		sweep_step(s);
		return;
	}
	n = db_ntuples(res);
	refs = xcalloc((size_t)n, sizeof(*refs));
	for (i = 0; i < n; i++) {
		const char *k = db_value(res, i, 0);

		if (k != NULL &&
		    (s->refused_reason = key_format_problem(s, k)) != NULL) {
			utf8_sanitize(s->refused_reason);
			sweep_abort(s, "refused", "key_format", "%s",
			    s->refused_reason);
			free(refs);
			sweep_step(s);
			return;
		}
		refs[i].key = k != NULL ? k : "";
		refs[i].key_len = strlen(refs[i].key);
		refs[i].kind = ref_kind(res, i);
	}
	s->db_done = n < DB_BATCH;
	if (sweep_merge_add_refs(s->m, refs, (size_t)n, s->db_done) != 0)
		sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
		    "database_invalid", "%s", sweep_merge_error(s->m));
	free(refs);
	sweep_step(s);
}

static void
db_next(struct sweep_run *s)
{
	if (s->stopping)
		return;
	s->db_pending = 1;
	if (db_cursor_fetch(s->cur, DB_BATCH, db_batch, s) != 0) {
		s->db_pending = 0;
		sweep_abort(s, "failed", "database_unavailable",
		    "cannot fetch "
		    "from the database cursor");
	}
}

static void
db_opened(void *arg, struct db_cursor *cur, const struct db_result *res,
    const struct db_error *err)
{
	struct sweep_run *s = arg;

	s->db_pending = 0;
	if (err != NULL)
		db_failed(s, err);
	else
		s->cur_ready = 1;
	sweep_step(s);
}

/* The passes. */

/*
 * The guards on a finished plan (a shard closing the plan phase has put
 * the sums of every shard's plan in s->plan).  Adds the warnings; returns
 * why the sweep must not run, or NULL.
 */
const char *
sweep_guard_plan(struct sweep_run *s, char *buf, size_t len)
{
	const struct sweep_counts *c = &s->plan;
	double			   max = worker_config(s->w)->max_delete_ratio;
	const char		  *why;

	if (c->db_keys > 0 && c->scanned > 0 &&
	    c->db_keys_matched * 10 < c->db_keys)
		cJSON_AddItemToArray(s->warnings,
		    cJSON_CreateString("fewer than 10% of the keys the "
				       "database refers to are in the "
				       "listing: check how keys are stored"));
	why = sweep_guard(c, max, s->tr->task.force, buf, len);
	if (why == NULL && s->tr->task.force && c->scanned > 0 &&
	    (double)c->candidates / (double)c->scanned > max)
		cJSON_AddItemToArray(s->warnings,
		    cJSON_CreateString("the delete ratio is above the limit; "
				       "running because the "
				       "task has force"));
	return why;
}

static void
sweep_plan_done(struct sweep_run *s)
{
	char	    buf[512];
	const char *why;

	sweep_merge_counts(s->m, &s->plan);
	if (s->shard != NULL) {
		shard_pass_over(s, "ok"); /* the last shard judges */
		return;
	}
	if ((why = sweep_guard_plan(s, buf, sizeof(buf))) != NULL) {
		s->refused_reason = xstrdup(why);
		task_run_error(s->tr, NULL, "refused", "%s", why);
		sweep_run_end(s, "refused");
		return;
	}
	if (s->tr->task.dry_run || s->plan.candidates == 0) {
		sweep_run_end(s, "ok");
		return;
	}
	s->executing = 1;
	sweep_pass_begin(s);
}

static void
sweep_step(struct sweep_run *s)
{
	enum sweep_step st;

	if (s->stopping) {
		if (sweep_idle(s)) {
			if (s->m != NULL)
				sweep_merge_counts(
				    s->m, s->executing ? &s->exec : &s->plan);
			sweep_run_end(s, s->final_status);
		}
		return;
	}
	if (!s->cur_ready)
		return; /* the cursor is opening */
	list_next(s);	/* keep a page coming */
	sweep_progress(s, 0);
	switch ((st = sweep_merge_run(s->m))) {
	case SWEEP_NEED_OBJECTS:
		if (s->have_ahead) {
			struct sweep_object *objs = s->ahead;
			size_t		     n = s->nahead;
			int		     last = s->ahead_last;

			s->ahead = NULL;
			s->nahead = 0;
			s->have_ahead = 0;
			feed(s, objs, n, last);
			while (n > 0)
				free((char *)objs[--n].key);
			free(objs);
			sweep_step(s);
			return;
		}
		/* Deleting is the slow part: list no further ahead of it. */
		s->want_objects = 1;
		list_next(s);
		break;
	case SWEEP_NEED_REFS:
		if (!s->db_pending)
			db_next(s);
		break;
	case SWEEP_DONE:
		if (s->stopping) {
			/* A verdict stopped it (bucket_changed) at the end. */
			sweep_step(s);
			break;
		}
		if (!s->executing) {
			if (sweep_idle(s))
				sweep_plan_done(s);
			break;
		}
		delete_flush(s);
		if (sweep_idle(s)) {
			sweep_merge_counts(s->m, &s->exec);
			sweep_progress(s, 1);
			sweep_run_end(
			    s, s->delete_errors > 0 ? "partial" : "ok");
		}
		break;
	case SWEEP_FAILED:
		sweep_abort(s, s->deleted > 0 ? "partial" : "failed",
		    "stream_invalid", "%s", sweep_merge_error(s->m));
		sweep_step(s);
		break;
	}
}

static void
pass_begin(void *arg)
{
	struct sweep_run *s = arg;
	const char	 *params[3] = {s->days, NULL, NULL};
	int		  n = 1;

	s->waiting_cursor = 0;
	s->has_cursor = 1;
	if (s->shard != NULL && s->shard->after != NULL)
		params[n++] = s->shard->after;
	if (s->shard != NULL && s->shard->upto != NULL)
		params[n++] = s->shard->upto;
	sweep_merge_free(s->m);
	s->m = sweep_merge_new(worker_config(s->w)->storage.prefix,
	    s->scan_prefix, s->young_after_ms, sweep_verdict, s);
	if (s->shard != NULL)
		sweep_merge_set_range(s->m, s->shard->after, s->shard->upto);
	db_cursor_close(s->cur);
	s->cur_ready = 0;
	free(s->token);
	s->token = NULL;
	ahead_free(s);
	s->list_done = s->db_done = 0;
	s->db_pending = 1;
	s->cur = db_cursor_open(
	    worker_db(s->w), s->sql, n, params, db_opened, s);
	if (s->cur == NULL) {
		s->db_pending = 0;
		sweep_abort(s, "failed", "database_unavailable",
		    "cannot open a database cursor");
		sweep_step(s);
	}
}

/*
 * A pass holds a database cursor, and so a pool connection, from start to
 * end; passes beyond what the pool can hold wait for one to finish.
 */
void
sweep_pass_begin(struct sweep_run *s)
{
	if (s->has_cursor) {
		pass_begin(s);
		return;
	}
	s->waiting_cursor = 1;
	worker_cursor_wait(s->w, pass_begin, s);
}

/* The shard's key range, in SQL (parameters $2 and $3) and listing form. */
static char *
range_sql(struct sweep_run *s)
{
	const struct task_shard *sh = s->shard;
	const char		*cube = worker_config(s->w)->storage.prefix;

	if (sh == NULL || (sh->after == NULL && sh->upto == NULL))
		return xstrdup("");
	if (sh->after != NULL)
		s->list_after = xasprintf("%s%s", cube, sh->after);
	if (sh->upto != NULL)
		s->list_upto = xasprintf("%s%s", cube, sh->upto);
	if (sh->after != NULL && sh->upto != NULL)
		return xstrdup("WHERE key COLLATE \"C\" > $2 AND "
			       "key COLLATE \"C\" <= $3");
	return xstrdup(sh->after != NULL ? "WHERE key COLLATE \"C\" > $2"
					 : "WHERE key COLLATE \"C\" <= $2");
}

struct sweep_run *
sweep_run_new(struct task_run *tr)
{
	const struct config *cfg = worker_config(tr->w);
	struct sweep_run    *s = xcalloc(1, sizeof(*s));
	char		    *range;

	s->tr = tr;
	s->w = tr->w;
	tr->kind_state = s;
	if (tr->task.type == TASK_SWEEP_SHARD)
		s->shard = &tr->task.shard;
	s->cancel_key = queue_cancel_key(worker_keys(tr->w),
	    s->shard != NULL ? s->shard->sweep_id : tr->task.id);
	s->retention_days = tr->task.retention_days >= 0
	    ? tr->task.retention_days
	    : DEFAULT_RETENTION_DAYS;
	s->min_age_hours = tr->task.min_age_hours >= 0 ? tr->task.min_age_hours
						       : DEFAULT_MIN_AGE_HOURS;
	snprintf(
	    s->days, sizeof(s->days), "%lld", (long long)s->retention_days);
	s->young_after_ms = s->shard != NULL
	    ? s->shard->young_after_ms
	    : now_ms() - s->min_age_hours * 3600 * 1000;
	s->sub_prefix = xstrdup(tr->task.prefix ? tr->task.prefix : "");
	s->scan_prefix = xasprintf("%s%s", cfg->storage.prefix, s->sub_prefix);
	range = range_sql(s);
	s->sql = xasprintf(refs_sql, cfg->jobs_table, cfg->clips_table, range);
	free(range);
	s->by_prefix = cJSON_CreateObject();
	s->samples = cJSON_CreateArray();
	s->deleted_sample = cJSON_CreateArray();
	s->warnings = cJSON_CreateArray();
	return s;
}

static void
retention_sweep_run(struct task_run *tr)
{
	struct sweep_run *s = sweep_run_new(tr);

	logkv(LOG_INFO, "sweep started", "task_id", tr->task.id, "prefix",
	    s->scan_prefix, "dry_run", tr->task.dry_run ? "true" : "false",
	    (char *)NULL);
	if (tr->task.shards > 1)
		sweep_split(s);
	else
		sweep_pass_begin(s);
}

const struct task_kind task_kind_retention_sweep = {
    .name = "retention_sweep",
    .type = TASK_RETENTION_SWEEP,
    .run = retention_sweep_run,
};
