/*
 * Sharded sweeps: a retention_sweep with "shards": N splits the key space
 * under its prefix into ranges, and any worker anywhere runs each range as
 * a sweep_shard task.  Redis is the only coordinator (docs/PROTOCOL.md,
 * Sharded sweeps):
 *
 *   split    the worker that claims the sweep reads the range boundaries
 *            (quantiles of the keys the database refers to under the
 *            prefix), then in one transaction acknowledges the sweep,
 *            creates <ns>:sweep:<id> and pushes one plan shard per range;
 *   plan     each shard classifies its range as a dry run does and
 *            records its counts in the hash; nothing is judged alone;
 *   barrier  the shard that records the last plan judges the sums with
 *            the sweep's guards: refused, failed, a dry run or nothing to
 *            delete ends the sweep with its report; otherwise it pushes
 *            one execute shard per range, in the transaction that
 *            acknowledges it;
 *   execute  each shard merges its range again and deletes, stopping if
 *            it meets more candidates than its plan counted;
 *   report   the shard that records the last execution publishes one
 *            combined result under the sweep's id.
 *
 * A shard that fails for a transient reason (storage or database
 * unavailable) runs again later, as any task would, up to max_attempts,
 * without an interim result.  A shard that fails for good sets "stop":
 * shards that start after it do nothing, and the sweep fails (or is
 * partial, if something was deleted).  A shard whose worker dies is
 * redelivered by the reaper and runs again; records are per range, so a
 * repeat replaces its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "sweep_run.h"

#define RETRY_MS     1000
#define MAX_PREFIXES 50
#define SAMPLE_KEYS  10
#define MAX_ERRORS   100

/*
 * The boundaries: the i/N quantiles, in byte order, of the distinct keys
 * the database refers to under the sub-prefix ($1), as keys relative to
 * the cube.  The database knows where the objects are; a bucket of mostly
 * orphans may split unevenly, but any boundaries split it correctly.
 */
static const char bounds_sql[] =
    "SELECT b FROM unnest((SELECT percentile_disc($2::float8[]) "
    "WITHIN GROUP (ORDER BY k COLLATE \"C\") FROM ("
    "SELECT c.key FROM %2$s c WHERE c.key IS NOT NULL "
    "UNION SELECT j.original_key FROM %1$s j "
    "WHERE j.original_key IS NOT NULL "
    "UNION SELECT j.audio_key FROM %1$s j WHERE j.audio_key IS NOT NULL"
    ") r(k) WHERE starts_with(k, $1))) AS b "
    "WHERE b IS NOT NULL GROUP BY b ORDER BY b COLLATE \"C\"";

static const char *
sweep_id(const struct sweep_run *s)
{
	return s->shard != NULL ? s->shard->sweep_id : s->tr->task.id;
}

/* One shard's message; planned and limit are -1 for a plan. */
static char *
shard_message(struct sweep_run *s, const char *run, enum shard_phase phase,
    int index, int count, const char *after, const char *upto, int64_t planned,
    int64_t limit)
{
	const struct task *t = &s->tr->task;
	const char	  *ph = phase == SHARD_PLAN ? "plan" : "execute";
	cJSON		  *m = cJSON_CreateObject();
	char		   id[TASK_SHARD_ID_MAX + 16];
	char		  *txt;

	snprintf(id, sizeof(id), "%.128s:%s:%d", sweep_id(s), ph, index);
	cJSON_AddStringToObject(m, "type", "sweep_shard");
	cJSON_AddStringToObject(m, "id", id);
	cJSON_AddStringToObject(m, "sweep_id", sweep_id(s));
	cJSON_AddStringToObject(m, "run", run);
	cJSON_AddStringToObject(m, "phase", ph);
	cJSON_AddNumberToObject(m, "shard", index);
	cJSON_AddNumberToObject(m, "shards", count);
	if (after != NULL)
		cJSON_AddStringToObject(m, "after", after);
	if (upto != NULL)
		cJSON_AddStringToObject(m, "upto", upto);
	cJSON_AddNumberToObject(m, "young_after_ms", (double)s->young_after_ms);
	cJSON_AddNumberToObject(m, "started_ms",
	    (double)(s->shard != NULL ? s->shard->started_ms
				      : s->tr->started_ms));
	if (planned >= 0)
		cJSON_AddNumberToObject(
		    m, "planned_candidates", (double)planned);
	if (limit >= 0)
		cJSON_AddNumberToObject(m, "candidate_limit", (double)limit);
	cJSON_AddNumberToObject(m, "retention_days", (double)s->retention_days);
	cJSON_AddNumberToObject(m, "min_age_hours", (double)s->min_age_hours);
	cJSON_AddBoolToObject(m, "dry_run", t->dry_run);
	cJSON_AddBoolToObject(m, "force", t->force);
	if (t->prefix != NULL && t->prefix[0] != '\0')
		cJSON_AddStringToObject(m, "prefix", t->prefix);
	if (t->enqueued_at != NULL)
		cJSON_AddItemToObject(
		    m, "enqueued_at", cJSON_Duplicate(t->enqueued_at, 1));
	txt = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	return txt;
}

static void spawn_send(struct sweep_run *);
static void shard_check(struct sweep_run *);

static void
shard_retry(evutil_socket_t fd, short what, void *arg)
{
	struct sweep_run *s = arg;

	if (s->nspawn > 0)
		spawn_send(s);
	else if (s->shard_status == NULL)
		shard_check(s);
	else
		sweep_shard_pass_done(s, s->shard_status);
}

/* Redis did not answer: try the same step again in a second. */
static void
retry_later(struct sweep_run *s, const char *what)
{
	struct timeval tv = {RETRY_MS / 1000, 0};

	logkv(LOG_WARN, "sharded sweep: Redis did not answer; will retry",
	    "task_id", s->tr->task.id, "step", what, (char *)NULL);
	if (s->shard_ev == NULL)
		s->shard_ev = evtimer_new(worker_base(s->w), shard_retry, s);
	evtimer_add(s->shard_ev, &tv);
}

/* Free the shard's state before its task run ends; returns the run. */
static struct task_run *
release(struct sweep_run *s)
{
	struct task_run *tr = s->tr;

	tr->kind_state = NULL;
	sweep_run_free(s);
	return tr;
}

/* The step is done and the message acknowledged: forget the run. */
static void
run_acked(struct sweep_run *s, const char *status)
{
	task_run_acked(release(s), status);
}

/* Splitting. */

static void
spawned(void *arg, int status)
{
	struct sweep_run *s = arg;

	if (status == QUEUE_ERROR) {
		retry_later(s, s->closing ? "execute" : "split");
		return;
	}
	if (status == QUEUE_NOT_OURS)
		logkv(LOG_WARN,
		    "sharded sweep: shards not pushed: the task is no "
		    "longer ours, or the sweep was started again",
		    "task_id", s->tr->task.id, (char *)NULL);
	else
		logkv(LOG_INFO,
		    s->closing ? "sweep planned; shards deleting"
			       : "sweep split into shards",
		    "task_id", sweep_id(s), "shards",
		    s->nspawn > 0 ? "yes" : "no", (char *)NULL);
	run_acked(s, s->closing ? "planned" : "split");
}

static void
spawn_send(struct sweep_run *s)
{
	struct task_run *tr = s->tr;
	char		 count[16], started[24];
	const char	*fields[6];
	size_t		 nf = 0;

	if (!s->closing) {
		snprintf(count, sizeof(count), "%zu", s->nspawn);
		snprintf(started, sizeof(started), "%lld",
		    (long long)tr->started_ms);
		fields[nf++] = "run";
		fields[nf++] = s->run;
		fields[nf++] = "shards";
		fields[nf++] = count;
		fields[nf++] = "started_ms";
		fields[nf++] = started;
	} else {
		fields[nf++] = "plan_closed";
		fields[nf++] = "1";
	}
	if (queue_sweep_spawn(worker_redis(s->w), worker_keys(s->w),
		sweep_id(s), s->closing ? s->shard->run : s->run, !s->closing,
		fields, nf / 2, tr->raw, tr->rawlen,
		(const char *const *)s->spawn, s->nspawn, spawned, s) != 0)
		spawned(s, QUEUE_ERROR);
}

static void
bounds_read(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct sweep_run *s = arg;
	int		  n, i;
	const char	 *run, **cuts;

	if (err != NULL) {
		task_run_error(s->tr, NULL,
		    err->kind == DB_ERR_UNAVAILABLE ? "database_unavailable"
						    : "database_error",
		    "reading the shard boundaries failed: %s%s%s", err->message,
		    err->sqlstate[0] ? " SQLSTATE " : "", err->sqlstate);
		sweep_run_end(s, "failed");
		return;
	}
	/*
	 * Any cut points split correctly; one too long for a message
	 * (TASK_SHARD_KEY_MAX) is left out and its neighbours' ranges join.
	 */
	cuts = xcalloc((size_t)db_ntuples(res) + 1, sizeof(*cuts));
	for (i = 0, n = 0; i < db_ntuples(res); i++)
		if (strlen(db_value(res, i, 0)) <= TASK_SHARD_KEY_MAX)
			cuts[n++] = db_value(res, i, 0);
	if (n == 0) {
		/* The database knows no key here: nothing to split by. */
		logkv(LOG_INFO, "sweep not split: no key to split by",
		    "task_id", s->tr->task.id, (char *)NULL);
		free(cuts);
		sweep_pass_begin(s);
		return;
	}
	uuid_v4(s->run);
	run = s->run;
	s->spawn = xcalloc((size_t)n + 1, sizeof(*s->spawn));
	for (i = 0; i <= n; i++)
		s->spawn[s->nspawn++] = shard_message(s, run, SHARD_PLAN, i,
		    n + 1, i > 0 ? cuts[i - 1] : NULL, i < n ? cuts[i] : NULL,
		    -1, -1);
	free(cuts);
	spawn_send(s);
}

void
sweep_split(struct sweep_run *s)
{
	const struct config *cfg = worker_config(s->w);
	struct buf	     q;
	const char	    *params[2];
	char		    *sql;
	int64_t		     i, n = s->tr->task.shards;

	buf_init(&q);
	buf_adds(&q, "{");
	for (i = 1; i < n; i++)
		buf_addf(&q, "%s%.6f", i > 1 ? "," : "", (double)i / (double)n);
	buf_adds(&q, "}");
	params[0] = s->sub_prefix;
	params[1] = q.data;
	sql = xasprintf(bounds_sql, cfg->jobs_table, cfg->clips_table);
	if (db_query(worker_db(s->w), sql, 2, params, bounds_read, s) != 0) {
		struct db_error e = {
		    DB_ERR_UNAVAILABLE, "", "the database is closing"};
		bounds_read(s, NULL, &e);
	}
	free(sql);
	buf_free(&q);
}

/* A shard's report: what the last shard needs to judge and to report. */

static void
add_count_array(cJSON *o, const struct sweep_counts *c)
{
	cJSON *a = cJSON_AddArrayToObject(o, "counts");
	int    r;

	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->scanned));
	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->scanned_bytes));
	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->db_keys));
	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->db_keys_matched));
	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->candidates));
	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->candidate_bytes));
	for (r = 0; r < SWEEP_NREASONS; r++)
		cJSON_AddItemToArray(
		    a, cJSON_CreateNumber((double)c->by_reason[r]));
}

/* Adds the counts array of a report to c; -1 if it is not one. */
static int
sum_counts(struct sweep_counts *c, const cJSON *rep)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(rep, "counts");
	int64_t	     v[6 + SWEEP_NREASONS];
	int	     i;

	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 6 + SWEEP_NREASONS)
		return -1;
	for (i = 0; i < 6 + SWEEP_NREASONS; i++) {
		const cJSON *n = cJSON_GetArrayItem(a, i);
		if (!cJSON_IsNumber(n) || n->valuedouble < 0)
			return -1;
		v[i] = (int64_t)n->valuedouble;
	}
	c->scanned += v[0];
	c->scanned_bytes += v[1];
	c->db_keys += v[2];
	c->db_keys_matched += v[3];
	c->candidates += v[4];
	c->candidate_bytes += v[5];
	for (i = 0; i < SWEEP_NREASONS; i++)
		c->by_reason[i] += v[6 + i];
	return 0;
}

static void
add_int(cJSON *o, const char *name, int64_t v)
{
	cJSON_AddNumberToObject(o, name, (double)v);
}

static char *
shard_report(struct sweep_run *s, const char *status)
{
	const struct task_shard *sh = s->shard;
	cJSON			*o = cJSON_CreateObject();
	char			*txt;

	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "worker", worker_config(s->w)->worker_id);
	if (sh->after != NULL)
		cJSON_AddStringToObject(o, "after", sh->after);
	if (sh->upto != NULL)
		cJSON_AddStringToObject(o, "upto", sh->upto);
	add_count_array(o, sh->phase == SHARD_PLAN ? &s->plan : &s->exec);
	add_int(o, "deleted", s->deleted);
	add_int(o, "deleted_bytes", s->deleted_bytes);
	add_int(o, "delete_errors", s->delete_errors);
	add_int(o, "candidates_met", s->exec_candidates);
	add_int(o, "duration_ms", (mono_us() - s->tr->started_us) / 1000);
	cJSON_AddItemReferenceToObject(o, "by_prefix", s->by_prefix);
	cJSON_AddItemReferenceToObject(o, "samples", s->samples);
	cJSON_AddItemReferenceToObject(o, "deleted_sample", s->deleted_sample);
	cJSON_AddItemReferenceToObject(o, "warnings", s->warnings);
	cJSON_AddItemReferenceToObject(o, "errors", s->tr->errors);
	if (s->refused_reason != NULL)
		cJSON_AddStringToObject(o, "refused_reason", s->refused_reason);
	txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return txt;
}

/* Closing a phase: the sums of every shard's report. */

struct shard_sums {
	int	    n;
	cJSON	  **plan; /* parsed reports, n each */
	cJSON	  **exec; /* NULL in the plan phase */
	const char *refused;
	int	    failed; /* a shard failed, was partial or skipped */
	int	    nprefixes;
};

static const char *
str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t
int_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) && v->valuedouble > 0 ? (int64_t)v->valuedouble
						       : 0;
}

static void
append_strings(cJSON *to, const cJSON *from, int max, int unique)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, from)
	{
		const cJSON *d;
		int	     dup = 0;

		if (!cJSON_IsString(e) || cJSON_GetArraySize(to) >= max)
			continue;
		if (unique)
			cJSON_ArrayForEach(d, to)
			    dup |= strcmp(d->valuestring, e->valuestring) == 0;
		if (!dup)
			cJSON_AddItemToArray(
			    to, cJSON_CreateString(e->valuestring));
	}
}

static void
merge_prefixes(struct sweep_run *s, struct shard_sums *t, const cJSON *from)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, from)
	{
		cJSON *n = cJSON_GetObjectItemCaseSensitive(
		    s->by_prefix, e->string);

		if (!cJSON_IsNumber(e) || e->string == NULL)
			continue;
		if (n == NULL && t->nprefixes >= MAX_PREFIXES)
			n = cJSON_GetObjectItemCaseSensitive(
			    s->by_prefix, "(other)");
		if (n == NULL) {
			n = cJSON_AddNumberToObject(s->by_prefix,
			    t->nprefixes < MAX_PREFIXES ? e->string : "(other)",
			    0);
			t->nprefixes++;
		}
		cJSON_SetNumberValue(n, n->valuedouble + e->valuedouble);
	}
}

static void
merge_errors(struct task_run *tr, const cJSON *rep, int shard)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(rep, "errors"))
	{
		cJSON *c;

		if (cJSON_GetArraySize(tr->errors) >= MAX_ERRORS)
			return;
		c = cJSON_Duplicate(e, 1);
		cJSON_AddNumberToObject(c, "shard", shard);
		cJSON_AddItemToArray(tr->errors, c);
	}
}

static int
bad_status(const char *st)
{
	return st == NULL || strcmp(st, "ok") != 0;
}

/*
 * Replace what s holds of its own range with the sums of every range.
 * Returns -1 when a report is missing or malformed: the sweep fails
 * rather than judge on part of it.
 */
static int
sums_load(struct sweep_run *s, struct shard_sums *t)
{
	struct task_run *tr = s->tr;
	int		 i;

	memset(&s->plan, 0, sizeof(s->plan));
	memset(&s->exec, 0, sizeof(s->exec));
	s->deleted = s->deleted_bytes = s->delete_errors = 0;
	s->exec_candidates = 0;
	cJSON_Delete(s->by_prefix);
	cJSON_Delete(s->samples);
	cJSON_Delete(s->deleted_sample);
	cJSON_Delete(s->warnings);
	s->by_prefix = cJSON_CreateObject();
	s->samples = cJSON_CreateArray();
	s->deleted_sample = cJSON_CreateArray();
	s->warnings = cJSON_CreateArray();
	free(s->refused_reason);
	s->refused_reason = NULL;
	cJSON_Delete(tr->errors);
	tr->errors = cJSON_CreateArray();
	for (i = 0; i < t->n; i++) {
		const cJSON *p = t->plan[i], *x = t->exec ? t->exec[i] : NULL;
		const char  *st = str_field(p, "status");

		if (p == NULL || sum_counts(&s->plan, p) != 0 ||
		    (t->exec != NULL &&
			(x == NULL || sum_counts(&s->exec, x) != 0)))
			return -1;
		merge_prefixes(
		    s, t, cJSON_GetObjectItemCaseSensitive(p, "by_prefix"));
		append_strings(s->samples,
		    cJSON_GetObjectItemCaseSensitive(p, "samples"), SAMPLE_KEYS,
		    0);
		append_strings(s->warnings,
		    cJSON_GetObjectItemCaseSensitive(p, "warnings"), 20, 1);
		merge_errors(tr, p, i);
		if (st != NULL && strcmp(st, "refused") == 0 &&
		    t->refused == NULL)
			t->refused = str_field(p, "refused_reason");
		else if (bad_status(st))
			t->failed = 1;
		if (x == NULL)
			continue;
		s->deleted += int_field(x, "deleted");
		s->deleted_bytes += int_field(x, "deleted_bytes");
		s->delete_errors += int_field(x, "delete_errors");
		s->exec_candidates += int_field(x, "candidates_met");
		append_strings(s->deleted_sample,
		    cJSON_GetObjectItemCaseSensitive(x, "deleted_sample"),
		    SAMPLE_KEYS, 0);
		append_strings(s->warnings,
		    cJSON_GetObjectItemCaseSensitive(x, "warnings"), 20, 1);
		merge_errors(tr, x, i);
		if (bad_status(str_field(x, "status")))
			t->failed = 1;
	}
	if (t->refused != NULL)
		s->refused_reason = xstrdup(t->refused);
	return 0;
}

static cJSON *
shard_results(const struct shard_sums *t)
{
	cJSON *a = cJSON_CreateArray();
	int    i;

	for (i = 0; i < t->n; i++) {
		const cJSON *p = t->plan[i], *x = t->exec ? t->exec[i] : NULL;
		const cJSON *last = x != NULL ? x : p;
		struct sweep_counts c = {0};
		cJSON		   *o = cJSON_CreateObject();

		(void)sum_counts(&c, p);
		cJSON_AddNumberToObject(o, "shard", i);
		if (str_field(p, "after") != NULL)
			cJSON_AddStringToObject(
			    o, "after", str_field(p, "after"));
		if (str_field(p, "upto") != NULL)
			cJSON_AddStringToObject(
			    o, "upto", str_field(p, "upto"));
		cJSON_AddStringToObject(o, "status",
		    str_field(last, "status") ? str_field(last, "status")
					      : "?");
		add_int(o, "scanned", c.scanned);
		add_int(o, "candidates", c.candidates);
		add_int(o, "deleted", x != NULL ? int_field(x, "deleted") : 0);
		add_int(o, "duration_ms",
		    int_field(p, "duration_ms") +
			(x != NULL ? int_field(x, "duration_ms") : 0));
		cJSON_AddStringToObject(o, "worker",
		    str_field(last, "worker") ? str_field(last, "worker")
					      : "?");
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

/* Publish the sweep's one result, in the transaction that acks us. */
static void
publish_final(struct sweep_run *s, struct shard_sums *t, const char *status)
{
	struct task_run		*tr = s->tr;
	const struct task_shard *sh = s->shard;
	char			 id[TASK_ID_MAX + 1];
	int64_t			 started = sh->started_ms;

	strlcpy_(id, sh->sweep_id, sizeof(id));
	s->executing = t->exec != NULL;
	sweep_report(s);
	cJSON_AddNumberToObject(tr->result, "shards", t->n);
	cJSON_AddItemToObject(tr->result, "shard_results", shard_results(t));
	release(s);
	task_run_finish_as(tr, id, "retention_sweep", started, status);
}

static void
close_plan(struct sweep_run *s, struct shard_sums *t)
{
	char	    buf[512];
	const char *why;
	int64_t	    total, margin;
	int	    i;

	if (t->refused != NULL) {
		publish_final(s, t, "refused");
		return;
	}
	if (t->failed) {
		publish_final(s, t, "failed");
		return;
	}
	if ((why = sweep_guard_plan(s, buf, sizeof(buf))) != NULL) {
		s->refused_reason = xstrdup(why);
		task_run_error(s->tr, NULL, "refused", "%s", why);
		publish_final(s, t, "refused");
		return;
	}
	if (s->tr->task.dry_run || s->plan.candidates == 0) {
		publish_final(s, t, "ok");
		return;
	}
	/*
	 * The second pass may meet a few more candidates than the plan (see
	 * sweep_verdict); the sweep's margin is shared out in proportion to
	 * the ranges' plans, so the shards together stop where a whole sweep
	 * would, and a range that planned nothing deletes nothing.
	 */
	total = s->plan.candidates;
	margin = total / 100 > 10 ? total / 100 : 10;
	s->closing = 1;
	s->spawn = xcalloc((size_t)t->n, sizeof(*s->spawn));
	for (i = 0; i < t->n; i++) {
		struct sweep_counts c = {0};

		(void)sum_counts(&c, t->plan[i]);
		s->spawn[s->nspawn++] = shard_message(s, s->shard->run,
		    SHARD_EXECUTE, i, t->n, str_field(t->plan[i], "after"),
		    str_field(t->plan[i], "upto"), c.candidates,
		    c.candidates + c.candidates * margin / total);
	}
	spawn_send(s);
}

static void
close_phase(struct sweep_run *s, const struct redis_reply *reply)
{
	struct shard_sums t;
	int		  n = s->shard->count, i;
	size_t		  want = 1 + (size_t)n * (s->shard->phase + 1U);

	memset(&t, 0, sizeof(t));
	t.n = n;
	t.plan = xcalloc((size_t)n, sizeof(*t.plan));
	if (s->shard->phase == SHARD_EXECUTE)
		t.exec = xcalloc((size_t)n, sizeof(*t.exec));
	for (i = 0; redis_reply_len(reply) == want && i < n; i++) {
		t.plan[i] = cJSON_Parse(
		    redis_reply_str(redis_reply_elem(reply, 1 + i), NULL));
		if (t.exec != NULL)
			t.exec[i] = cJSON_Parse(redis_reply_str(
			    redis_reply_elem(reply, 1 + n + i), NULL));
	}
	if (sums_load(s, &t) != 0) {
		task_run_error(s->tr, NULL, "shard_state_invalid",
		    "a shard's record in Redis is missing or malformed; "
		    "the sweep stops");
		t.failed = 1;
		t.refused = NULL;
		if (t.exec == NULL) {
			publish_final(s, &t, "failed");
			goto out;
		}
	}
	if (t.exec == NULL)
		close_plan(s, &t);
	else
		publish_final(s, &t,
		    !t.failed && s->delete_errors == 0 ? "ok"
			: s->deleted > 0	       ? "partial"
						       : "failed");
out:
	for (i = 0; i < n; i++) {
		cJSON_Delete(t.plan[i]);
		if (t.exec != NULL)
			cJSON_Delete(t.exec[i]);
	}
	free(t.plan);
	free(t.exec);
}

static void
recorded(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct sweep_run *s = arg;
	long long	  code;

	if (reply == NULL || redis_reply_type(reply) != REDIS_R_ARRAY ||
	    redis_reply_len(reply) < 1) {
		retry_later(s, "record");
		return;
	}
	code = redis_reply_int(redis_reply_elem(reply, 0));
	if (code == 2) {
		close_phase(s, reply);
		return;
	}
	if (code == -1)
		logkv(LOG_WARN,
		    "shard dropped: its sweep was started again or has "
		    "expired",
		    "task_id", s->tr->task.id, (char *)NULL);
	else if (code == 0)
		logkv(LOG_WARN,
		    "shard record dropped: the task is no longer ours",
		    "task_id", s->tr->task.id, (char *)NULL);
	run_acked(s, s->shard_status);
}

void
sweep_shard_pass_done(struct sweep_run *s, const char *status)
{
	const struct task_shard *sh = s->shard;
	struct task_run		*tr = s->tr;

	/* Storage or database unavailable: the range runs again later. */
	if (s->shard_report == NULL &&
	    (strcmp(status, "failed") == 0 || strcmp(status, "partial") == 0) &&
	    task_run_shard_retry(tr)) {
		task_run_shard_retry_send(release(s));
		return;
	}
	s->shard_status = status;
	if (s->shard_report == NULL)
		s->shard_report = shard_report(s, status);
	if (queue_shard_record(worker_redis(s->w), worker_keys(s->w),
		sh->sweep_id, sh->run,
		sh->phase == SHARD_PLAN ? "plan" : "execute", sh->index,
		sh->count, s->shard_report, strcmp(status, "ok") != 0,
		s->tr->raw, s->tr->rawlen, recorded, s) != 0)
		retry_later(s, "record");
}

/* Running a shard. */

static void
state_read(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct sweep_run	*s = arg;
	const struct task_shard *sh = s->shard;
	const char		*run = NULL, *stop = NULL;

	/* Nothing runs unchecked: without an answer, ask again. */
	if (reply == NULL || redis_reply_type(reply) != REDIS_R_ARRAY ||
	    redis_reply_len(reply) != 2) {
		retry_later(s, "check");
		return;
	}
	run = redis_reply_str(redis_reply_elem(reply, 0), NULL);
	stop = redis_reply_str(redis_reply_elem(reply, 1), NULL);
	if (run == NULL || strcmp(run, sh->run) != 0) {
		sweep_shard_pass_done(s, "stale");
		return;
	}
	if (stop != NULL) {
		task_run_error(s->tr, NULL, "shard_skipped",
		    "another shard (%s) failed first; this range was not "
		    "swept",
		    stop);
		sweep_shard_pass_done(s, "skipped");
		return;
	}
	if (sh->phase == SHARD_EXECUTE) {
		s->executing = 1;
		s->plan.candidates = sh->planned;
	}
	sweep_pass_begin(s);
}

/* Is the shard's run still the sweep's, and has no other shard failed? */
static void
shard_check(struct sweep_run *s)
{
	char *key = queue_sweep_key(worker_keys(s->w), s->shard->sweep_id);

	if (redis_cmd(worker_redis(s->w), state_read, s, "HMGET", key, "run",
		"stop", (char *)NULL) != 0)
		state_read(NULL, NULL, s);
	free(key);
}

static void
sweep_shard_run(struct task_run *tr)
{
	struct sweep_run *s = sweep_run_new(tr);
	char		  idx[24];

	snprintf(idx, sizeof(idx), "%d/%d", tr->task.shard.index,
	    tr->task.shard.count);
	if (tr->task.shard.gave_up) {
		/* Its workers kept dying (queue_reap): record, don't run. */
		task_run_error(tr, NULL, "redelivery_limit",
		    "range %s: its workers stopped while running it more "
		    "than %d times (killed or lost); not run again",
		    idx, worker_config(tr->w)->max_attempts);
		logkv(LOG_WARN, "shard given up: redelivered too often",
		    "task_id", tr->task.id, (char *)NULL);
		sweep_shard_pass_done(s, "failed");
		return;
	}
	logkv(LOG_INFO, "shard started", "task_id", tr->task.id, "shard", idx,
	    "phase", tr->task.shard.phase == SHARD_PLAN ? "plan" : "execute",
	    (char *)NULL);
	shard_check(s);
}

const struct task_kind task_kind_sweep_shard = {
    .name = "sweep_shard",
    .type = TASK_SWEEP_SHARD,
    .run = sweep_shard_run,
};
