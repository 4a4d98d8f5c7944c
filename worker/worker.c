#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "b64.h"
#include "db.h"
#include "http.h"
#include "job_loader.h"
#include "audit.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "queue.h"
#include "redis.h"
#include "s3.h"
#include "s3batch.h"
#include "worker.h"

#define LOCK_TTL_S	  15
#define LOCK_RENEW_MS	  5000
#define REAP_INTERVAL_MS  1000
#define LAG_TICK_MS	  50
#define LAG_WARN_MS	  100
#define PUBLISH_RETRY_MS  1000
#define MOVER_INTERVAL_MS 250
#define NOTIFY_STATUS_MS  1000
#define PAUSE_POLL_MS	  1000

TAILQ_HEAD(task_run_list, task_run);

/* A sweep pass waiting for a database connection to hold a cursor on. */
struct cursor_wait {
	TAILQ_ENTRY(cursor_wait) entry;
	void (*cb)(void *);
	void *arg;
};
TAILQ_HEAD(cursor_wait_list, cursor_wait);

/* A delete batch at the kill switch. */
struct gate_wait {
	TAILQ_ENTRY(gate_wait) entry;
	struct worker *w;
	char	      *cancel_key; /* or NULL */
	void (*go)(void *, int);
	void *arg;
	int   checking; /* a GET is out for it */
	int   answered; /* go() was called: only the GET's reply is due */
};
TAILQ_HEAD(gate_wait_list, gate_wait);

/*
 * The database pool: two connections for short queries (job lookups,
 * shard boundaries) plus one per sweep pass that may hold a cursor at
 * once, as many as job slots up to 10.
 */
#define DB_SHORT_CONNS 2
#define DB_MAX_CURSORS 10

struct worker {
	struct event_base    *base;
	struct evdns_base    *dns;
	struct config	     *cfg;
	struct worker_options opt;
	struct queue_keys     keys;
	char		    **qkeys;
	struct redis	     *cmd;   /* results, acks, everything short */
	struct redis	     *claim; /* blocking claims only */
	struct db	     *db;
	struct s3_client     *s3;
	struct s3batch	     *dels; /* job deletes, coalesced */
	struct job_loader    *jobs; /* job lookups, batched */
	struct task_run_list  runs;
	int		      inflight;
	int		      claiming;
	size_t		      claim_tried;
	int64_t		      cycle_done; /* done_count as a round began */
	size_t		      rr;
	int		      recovered;
	int		      stopping;
	int		      locked;
	int		      lock_pending;
	int		      exiting;
	int		      teardown; /* worker_free(): callbacks unwind */
	size_t	      claim_src;	/* queue index of the claim in flight */
	struct event *drain_ev;
	struct event *mover_ev;
	int	      requeue_pending;
	struct event *claim_retry_ev;
	char	      lock_token[37];
	struct event *lock_ev;
	struct event *reap_ev;
	int	      reap_pending;
	int	      started; /* our own leftovers were given back */
	struct event *lag_ev;
	int64_t	      lag_due_us;
	int64_t	      lag_max_us;
	int64_t	      lag_ticks;
	int64_t	      lag_slow; /* ticks later than 50 ms */
	int64_t	      done_count;
	int	      cursors_free;
	struct cursor_wait_list cursor_waits;
	struct metrics	       *metrics; /* NULL: --metrics-listen none */
	struct audit	       *audit;	 /* NULL: CLIPSWEEP_AUDIT off */
	const char	      **qnames;
	struct gate_wait_list	gate_waits;
	struct event	       *pause_ev; /* polls while paused */
	int			paused;	  /* as last read */
	struct notify	       *notify;	  /* the service manager, if any */
	struct event	       *notify_ev;
	int64_t			watchdog_us;
	int			redis_up;
	char			status[192]; /* the last STATUS= sent */
};

static void	   claim_next(struct worker *);
static const char *run_queue(const struct task_run *);
static void	   recover(struct worker *);
static void	   run_publish(struct task_run *);

const char *
worker_metrics_address(const struct worker *w)
{
	return metrics_address(w->metrics);
}

struct event_base *
worker_base(struct worker *w)
{
	return w->base;
}

struct db *
worker_db(struct worker *w)
{
	return w->db;
}

struct s3_client *
worker_s3(struct worker *w)
{
	return w->s3;
}

struct s3batch *
worker_deletes(struct worker *w)
{
	return w->dels;
}

struct job_loader *
worker_jobs(struct worker *w)
{
	return w->jobs;
}

const struct config *
worker_config(struct worker *w)
{
	return w->cfg;
}

void
worker_publish_progress(struct worker *w, const char *json)
{
	char *channel = xasprintf("%s:progress", w->cfg->namespace);

	if (redis_cmd(w->cmd, NULL, NULL, "PUBLISH", channel, json,
		(char *)NULL) != 0)
		log_debug("progress not published: Redis is down");
	free(channel);
}

void
worker_cursor_wait(struct worker *w, void (*cb)(void *), void *arg)
{
	struct cursor_wait *c;

	if (w->cursors_free > 0) {
		w->cursors_free--;
		cb(arg);
		return;
	}
	c = xmalloc(sizeof(*c));
	c->cb = cb;
	c->arg = arg;
	TAILQ_INSERT_TAIL(&w->cursor_waits, c, entry);
}

void
worker_cursor_cancel(struct worker *w, void *arg)
{
	struct cursor_wait *c;

	TAILQ_FOREACH(c, &w->cursor_waits, entry)
	if (c->arg == arg) {
		TAILQ_REMOVE(&w->cursor_waits, c, entry);
		free(c);
		return;
	}
}

void
worker_cursor_done(struct worker *w)
{
	struct cursor_wait *c;

	if (w->teardown)
		return;
	if ((c = TAILQ_FIRST(&w->cursor_waits)) == NULL) {
		w->cursors_free++;
		return;
	}
	TAILQ_REMOVE(&w->cursor_waits, c, entry);
	c->cb(c->arg); /* the slot passes on */
	free(c);
}

struct redis *
worker_redis(struct worker *w)
{
	return w->cmd;
}

const struct queue_keys *
worker_keys(struct worker *w)
{
	return &w->keys;
}

const struct task_kind *
task_kind_find(enum task_type type)
{
	static const struct task_kind *kinds[] = {
	    &task_kind_job_cleanup,
	    &task_kind_retention_sweep,
	    &task_kind_sweep_shard,
	};
	size_t i;

	for (i = 0; i < nitems(kinds); i++)
		if (kinds[i]->type == type)
			return kinds[i];
	return NULL;
}

static void
exit_now(void *arg, int status)
{
	struct worker *w = arg;
	char	       max[24], slow[48];

	unsigned long batches, singles;
	char	      lookups[64], deletes[64];

	snprintf(max, sizeof(max), "%lld", (long long)(w->lag_max_us / 1000));
	snprintf(slow, sizeof(slow), "%lld/%lld", (long long)w->lag_slow,
	    (long long)w->lag_ticks);
	job_loader_counts(w->jobs, &batches, &singles);
	snprintf(lookups, sizeof(lookups), "%lu batched, %lu single", batches,
	    singles);
	snprintf(deletes, sizeof(deletes), "%zu requests, %zu keys",
	    s3batch_requests(w->dels), s3batch_keys(w->dels));
	logkv(LOG_INFO, "stopped", "worker", w->cfg->worker_id,
	    "max_loop_lag_ms", max, "loop_ticks_late", slow, "job_queries",
	    lookups, "job_deletes", deletes, (char *)NULL);
	event_base_loopexit(w->base, NULL);
}

static void
maybe_exit(struct worker *w)
{
	if (!w->stopping || w->inflight > 0 || w->claiming || w->exiting)
		return;
	w->exiting = 1;
	/* Release the worker id so that a restart need not wait for it. */
	if (w->locked &&
	    queue_lease_release(w->cmd, &w->keys, w->lock_token, exit_now, w) ==
		0)
		return;
	exit_now(w, 0);
}

/*
 * The kill switch.  Each delete batch reads <ns>:paused (one GET, on the
 * commands connection, so it costs no extra round trip on a busy
 * pipeline); while the key exists, or Redis cannot say, the batch waits
 * and is read again every second.  Failing closed: no answer, no delete.
 */
static void gate_check(struct gate_wait *);

static void
gate_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct gate_wait *g = arg;
	struct worker	 *w = g->w;
	struct timeval	  tv = {PAUSE_POLL_MS / 1000, 0};
	int		  paused, failed;

	g->checking = 0;
	if (g->answered) { /* the worker is shutting down */
		TAILQ_REMOVE(&w->gate_waits, g, entry);
		free(g->cancel_key);
		free(g);
		return;
	}
	/* MGET paused [cancel]: an array of one or two values. */
	failed = redis_reply_failed(reply) ||
	    redis_reply_type(reply) != REDIS_R_ARRAY ||
	    redis_reply_len(reply) != (g->cancel_key != NULL ? 2u : 1u);
	if (!failed && g->cancel_key != NULL &&
	    redis_reply_type(redis_reply_elem(reply, 1)) != REDIS_R_NIL) {
		TAILQ_REMOVE(&w->gate_waits, g, entry);
		g->go(g->arg, GATE_CANCELLED);
		free(g->cancel_key);
		free(g);
		return;
	}
	paused = failed ||
	    redis_reply_type(redis_reply_elem(reply, 0)) != REDIS_R_NIL;
	if (paused != w->paused) {
		w->paused = paused;
		if (paused && failed)
			logkv(LOG_WARN,
			    "cannot read the kill switch; deletes wait", "key",
			    w->keys.paused, (char *)NULL);
		else
			logkv(LOG_WARN,
			    paused ? "paused by an operator: deletes wait"
				   : "resumed: deletes go on",
			    "key", w->keys.paused, (char *)NULL);
	}
	if (paused) {
		if (!evtimer_pending(w->pause_ev, NULL))
			evtimer_add(w->pause_ev, &tv);
		return; /* waits, checking 0, for the poll */
	}
	TAILQ_REMOVE(&w->gate_waits, g, entry);
	g->go(g->arg, GATE_SEND);
	free(g->cancel_key);
	free(g);
}

static void
gate_check(struct gate_wait *g)
{
	struct worker *w = g->w;

	if (redis_cmd(w->cmd, gate_reply, g, "MGET", w->keys.paused,
		g->cancel_key, (char *)NULL) == 0)
		g->checking = 1;
	else
		gate_reply(w->cmd, NULL, g); /* not connected: wait */
}

static void
pause_poll(evutil_socket_t fd, short what, void *arg)
{
	struct worker	 *w = arg;
	struct gate_wait *g, *next;

	for (g = TAILQ_FIRST(&w->gate_waits); g != NULL; g = next) {
		next = TAILQ_NEXT(g, entry);
		if (!g->checking && !g->answered)
			gate_check(g);
	}
}

void
worker_delete_gate(struct worker *w, const char *cancel_key,
    void (*go)(void *, int), void		*arg)
{
	struct gate_wait *g;

	if (w->teardown) {
		go(arg, GATE_SHUTDOWN);
		return;
	}
	g = xcalloc(1, sizeof(*g));
	g->w = w;
	g->cancel_key = cancel_key != NULL ? xstrdup(cancel_key) : NULL;
	g->go = go;
	g->arg = arg;
	TAILQ_INSERT_TAIL(&w->gate_waits, g, entry);
	gate_check(g);
}

struct audit *
worker_audit(struct worker *w)
{
	return w->audit;
}

int
worker_tearing_down(const struct worker *w)
{
	return w->teardown;
}

/* A shared job batch on its way: the audit trail, the kill switch, go. */
struct job_gate {
	struct worker *w;
	void (*go)(void *, int);
	void		 *req;
	struct audit_row *rows;
	size_t		  n, cap;
};

static void
job_gate_row(void *arg, const char *key, const char *task_id,
    const char *task_type, const char *reason, int64_t size)
{
	struct job_gate *g = arg;

	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->rows = xrealloc(g->rows, g->cap * sizeof(*g->rows));
	}
	g->rows[g->n].task_id = task_id ? task_id : "";
	g->rows[g->n].task_type = task_type ? task_type : "";
	g->rows[g->n].reason = reason ? reason : "";
	g->rows[g->n].key = key;
	g->rows[g->n].size = size;
	g->n++;
}

/* Past the kill switch (read last): send, or not. */
static void
job_gate_open(void *arg, int verdict)
{
	struct job_gate *g = arg;

	g->go(g->req, verdict == GATE_SEND);
	free(g);
}

static void
job_gate_audited(void *arg, const char *error)
{
	struct job_gate *g = arg;

	free(g->rows);
	g->rows = NULL;
	if (error != NULL || g->w->teardown) {
		if (error != NULL)
			logkv(LOG_ERROR,
			    "deletes held back: the audit trail failed",
			    "error", error, (char *)NULL);
		job_gate_open(g, GATE_SHUTDOWN);
		return;
	}
	worker_delete_gate(g->w, NULL, job_gate_open, g);
}

/*
 * A shared job batch: its audit rows first (when the trail is on), then
 * the kill switch, read last so that a pause that lands while the rows
 * are written still holds the batch back.
 */
static void
s3batch_gate(void *arg, void (*go)(void *, int), void *req)
{
	struct job_gate *g = xcalloc(1, sizeof(*g));

	g->w = arg;
	g->go = go;
	g->req = req;
	if (g->w->audit == NULL) {
		worker_delete_gate(g->w, NULL, job_gate_open, g);
		return;
	}
	s3batch_req_keys(req, job_gate_row, g);
	audit_write(g->w->audit, g->rows, g->n, job_gate_audited, g);
}

/* Shutting down: every batch at the gate is cancelled. */
static void
gate_cancel_all(struct worker *w)
{
	struct gate_wait *g, *next;

	for (g = TAILQ_FIRST(&w->gate_waits); g != NULL; g = next) {
		next = TAILQ_NEXT(g, entry);
		if (g->answered)
			continue;
		g->answered = 1;
		g->go(g->arg, GATE_SHUTDOWN);
		if (!g->checking) {
			TAILQ_REMOVE(&w->gate_waits, g, entry);
			free(g->cancel_key);
			free(g);
		}
	}
}

/*
 * What the service manager shows as the unit's status (systemctl status):
 * what the worker is waiting for, or how busy it is.
 */
static void
status_text(const struct worker *w, char *buf, size_t len)
{
	if (w->stopping)
		snprintf(buf, len, "stopping: %d task%s in flight", w->inflight,
		    w->inflight == 1 ? "" : "s");
	else if (!w->redis_up)
		snprintf(
		    buf, len, "waiting for Redis (%s)", w->cfg->redis.redacted);
	else if (!w->started)
		snprintf(buf, len, "waiting for the worker id %s",
		    w->cfg->worker_id);
	else if (w->paused)
		snprintf(buf, len,
		    "paused (%s): %d task%s in flight, deletes wait",
		    w->keys.paused, w->inflight, w->inflight == 1 ? "" : "s");
	else
		snprintf(buf, len, "%d of %d slots busy, %lld task%s done",
		    w->inflight, w->opt.concurrency, (long long)w->done_count,
		    w->done_count == 1 ? "" : "s");
}

/* STATUS= when it changed, with anything else to say (READY=1, ...). */
static void
notify_status(struct worker *w, const char *also)
{
	char status[sizeof(w->status)], msg[sizeof(w->status) + 64];

	if (w->notify == NULL)
		return;
	status_text(w, status, sizeof(status));
	if (strcmp(status, w->status) == 0 && also == NULL)
		return;
	snprintf(msg, sizeof(msg), "%s%sSTATUS=%s", also ? also : "",
	    also ? "\n" : "", status);
	if (notify_send(w->notify, msg) == 0)
		memcpy(w->status, status, sizeof(status));
}

/*
 * Every second, or twice per watchdog interval: the status, and
 * WATCHDOG=1, which only a turning loop sends.
 */
static void
notify_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	notify_status(w, w->watchdog_us > 0 ? "WATCHDOG=1" : NULL);
}

void
worker_stop(struct worker *w, const char *why)
{
	if (w->stopping) {
		logkv(LOG_WARN,
		    "second stop request: exiting now; unfinished "
		    "tasks stay in the processing list",
		    "reason", why, (char *)NULL);
		event_base_loopbreak(w->base);
		return;
	}
	w->stopping = 1;
	logkv(LOG_INFO, "stopping: no new claims, finishing tasks in flight",
	    "reason", why, (char *)NULL);
	notify_status(w, "STOPPING=1");
	if (w->opt.drain_timeout_ms > 0) {
		struct timeval tv = {w->opt.drain_timeout_ms / 1000,
		    (w->opt.drain_timeout_ms % 1000) * 1000};
		evtimer_add(w->drain_ev, &tv);
	}
	maybe_exit(w);
}

/*
 * The drain timeout: what is still running goes back to the right end of
 * the queue it came from (the end workers claim from), atomically with
 * its removal from our processing list, so another worker picks it up at
 * once.  Its result, should it still come, is dropped: the task will run
 * again, and running it twice is harmless.
 */
static const char requeue_script[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then "
    "redis.call('RPUSH', KEYS[2], ARGV[1]) return 1 end return 0";

/*
 * Once every unfinished task is back in its queue, give up the lease too,
 * unless a finished task's acknowledgement is still to be sent: then the
 * lease must lapse on its own, so that the reaper returns that message.
 */
static void
requeued(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct worker	*w = arg;
	struct task_run *tr;
	int		 unacked = 0;

	if (--w->requeue_pending > 0 || w->teardown)
		return;
	TAILQ_FOREACH(tr, &w->runs, entry)
	if (!tr->returned)
		unacked++;
	if (unacked == 0 && w->locked && !w->exiting) {
		w->exiting = 1;
		if (queue_lease_release(
			w->cmd, &w->keys, w->lock_token, exit_now, w) == 0)
			return;
	}
	exit_now(w, 0);
}

static void
drain_expired(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct task_run *tr;
	char		 count[24];
	int		 n = 0;

	w->requeue_pending = 1; /* held until every command is sent */
	TAILQ_FOREACH(tr, &w->runs, entry)
	{
		const char *q = run_queue(tr);
		const char *argv[6];
		size_t	    lens[6];
		int	    i;

		if (tr->final != NULL || tr->dead != NULL || tr->returned)
			continue; /* finished: its ack is on its way */
		argv[0] = "EVAL";
		argv[1] = requeue_script;
		argv[2] = "2";
		argv[3] = w->keys.processing;
		argv[4] = q;
		argv[5] = tr->raw;
		for (i = 0; i < 6; i++)
			lens[i] = i == 5 ? tr->rawlen : strlen(argv[i]);
		if (redis_cmd_argv(w->cmd, requeued, w, 6, argv, lens) == 0) {
			w->requeue_pending++;
			tr->returned = 1;
			n++;
		}
	}
	snprintf(count, sizeof(count), "%d", n);
	logkv(LOG_WARN,
	    "drain timeout: returning unfinished tasks to their "
	    "queues",
	    "count", count, (char *)NULL);
	requeued(w->cmd, NULL, w);
}

/* Results and logs. */

void
task_run_error(struct task_run *tr, const char *key, const char *code,
    const char *fmt, ...)
{
	cJSON  *e = cJSON_CreateObject();
	char	msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_sanitize(msg);
	if (key != NULL)
		cJSON_AddStringToObject(e, "key", key);
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddItemToArray(tr->errors, e);
}

static char *
result_text(struct task_run *tr, const char *status, int64_t finished)
{
	cJSON *o = cJSON_CreateObject(), *item;
	char   ts[40];
	char  *s;

	cJSON_AddStringToObject(o, "id", tr->task.id);
	if (tr->task.type_name != NULL)
		cJSON_AddStringToObject(o, "type", tr->task.type_name);
	else
		cJSON_AddNullToObject(o, "type");
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddBoolToObject(o, "dry_run", tr->task.dry_run);
	if (tr->task.job_id != NULL)
		cJSON_AddStringToObject(o, "job_id", tr->task.job_id);
	while (tr->result != NULL && (item = tr->result->child) != NULL) {
		cJSON_DetachItemViaPointer(tr->result, item);
		cJSON_AddItemToObject(o, item->string, item);
	}
	format_time_ms(tr->started_ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, "started_at", ts);
	format_time_ms(finished, ts, sizeof(ts));
	cJSON_AddStringToObject(o, "finished_at", ts);
	cJSON_AddNumberToObject(
	    o, "duration_ms", (double)((mono_us() - tr->started_us) / 1000));
	cJSON_AddStringToObject(o, "worker", tr->w->cfg->worker_id);
	if (tr->task.enqueued_at != NULL)
		cJSON_AddItemToObject(
		    o, "enqueued_at", cJSON_Duplicate(tr->task.enqueued_at, 1));
	cJSON_AddItemToObject(o, "errors", tr->errors);
	tr->errors = NULL;
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void
run_free(struct task_run *tr)
{
	task_free(&tr->task);
	cJSON_Delete(tr->result);
	cJSON_Delete(tr->errors);
	if (tr->retry_ev != NULL)
		event_free(tr->retry_ev);
	free(tr->raw);
	cJSON_free(tr->final);
	free(tr->dead);
	cJSON_free(tr->retry_next);
	free(tr);
}

static void
run_published(void *arg, int status)
{
	struct task_run *tr = arg;
	struct worker	*w = tr->w;
	struct timeval	 tv = {0, PUBLISH_RETRY_MS * 1000};

	if (w->teardown)
		return; /* worker_free() frees the runs */
	if (status == QUEUE_NOT_OURS)
		logkv(LOG_WARN,
		    "result dropped: the task is no longer ours (our lease "
		    "expired and it went back to its queue)",
		    "task_id", tr->task.id, (char *)NULL);
	if (status == QUEUE_ERROR) {
		if (tr->publish_tries++ == 0)
			logkv(LOG_WARN,
			    "cannot publish the result yet; will "
			    "retry",
			    "task_id", tr->task.id, (char *)NULL);
		evtimer_add(tr->retry_ev, &tv);
		return;
	}
	TAILQ_REMOVE(&w->runs, tr, entry);
	w->inflight--;
	w->done_count++;
	run_free(tr);
	claim_next(w);
	maybe_exit(w);
}

static void
run_publish_retry(evutil_socket_t fd, short what, void *arg)
{
	run_publish(arg);
}

/* The queue a task belongs to: where it came from, else its type's. */
static const char *
run_queue(const struct task_run *tr)
{
	if (tr->queue_key != NULL)
		return tr->queue_key;
	return tr->task.type == TASK_JOB_CLEANUP ? tr->w->keys.jobs
						 : tr->w->keys.sweeps;
}

static void
run_publish(struct task_run *tr)
{
	struct worker *w = tr->w;

	if (w->teardown)
		return;
	if (tr->retry_next != NULL) {
		if (queue_retry(w->cmd, &w->keys, tr->task.id, tr->final,
			tr->raw, tr->rawlen, run_queue(tr), tr->retry_next,
			tr->retry_due_ms, run_published, tr) != 0)
			run_published(tr, QUEUE_ERROR);
		return;
	}
	if (queue_finish(w->cmd, &w->keys, tr->task.id[0] ? tr->task.id : NULL,
		tr->final, tr->dead, tr->raw, tr->rawlen, run_published,
		tr) != 0)
		run_published(tr, QUEUE_ERROR);
}

/*
 * Retries.  Transient failures (storage or database unavailable) get up to
 * max_attempts runs; "not ready" ones (the message raced the app's commit:
 * job_not_found, clips_not_finished) are retried for not_ready_retry_s
 * since the first attempt.  The delay is full jitter over an exponential,
 * capped at a minute.  Other failures, refusals and successes are final.
 */
#define RETRY_CAP_MS 60000

enum retry_class { RETRY_NONE, RETRY_TRANSIENT, RETRY_NOT_READY };

/* When the task's first attempt started, ms since the epoch. */
static int64_t
first_attempt_ms(const struct task_run *tr)
{
	return tr->task.first_attempt_at > 0 ? tr->task.first_attempt_at
					     : tr->started_ms;
}

static const char *const transient_codes[] = {
    "storage_unavailable", "database_unavailable"};

static int
is_transient(const char *code)
{
	size_t i;

	for (i = 0; i < nitems(transient_codes); i++)
		if (strcmp(code, transient_codes[i]) == 0)
			return 1;
	return 0;
}

/* The first error of the run with a transient code, or NULL. */
static const char *
transient_code(const struct task_run *tr)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, tr->errors)
	{
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
		if (cJSON_IsString(c) && is_transient(c->valuestring))
			return c->valuestring;
	}
	return NULL;
}

static enum retry_class
retry_class(const struct task_run *tr, const char *status, const char **code)
{
	static const char *not_ready[] = {
	    "job_not_found", "clips_not_finished"};
	const cJSON *e;
	size_t	     i;

	if (strcmp(status, "failed") != 0 && strcmp(status, "partial") != 0)
		return RETRY_NONE;
	if (tr->task.type == TASK_SWEEP_SHARD)
		return RETRY_NONE; /* see task_run_shard_retry() */
	cJSON_ArrayForEach(e, tr->errors)
	{
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
		if (!cJSON_IsString(c))
			continue;
		*code = c->valuestring;
		if (is_transient(c->valuestring))
			return RETRY_TRANSIENT;
		for (i = 0; i < nitems(not_ready) && status[0] == 'f'; i++)
			if (strcmp(c->valuestring, not_ready[i]) == 0)
				return RETRY_NOT_READY;
	}
	return RETRY_NONE;
}

static int64_t
retry_delay_ms(const struct config *cfg, int attempt)
{
	int64_t ceiling = cfg->retry_base_ms;
	int	i;

	for (i = 1; i < attempt && ceiling < RETRY_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > RETRY_CAP_MS)
		ceiling = RETRY_CAP_MS;
	return (int64_t)(random() % (ceiling + 1));
}

/* This attempt's entry for the message's history. */
static cJSON *
history_entry(const struct task_run *tr, int64_t at)
{
	cJSON	    *h = cJSON_CreateObject();
	const cJSON *e = cJSON_GetArrayItem(tr->errors, 0);
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	char	     ts[40];

	format_time_ms(at, ts, sizeof(ts));
	cJSON_AddNumberToObject(h, "attempt", tr->task.attempt);
	cJSON_AddStringToObject(h, "at", ts);
	cJSON_AddStringToObject(h, "worker", tr->w->cfg->worker_id);
	cJSON_AddStringToObject(
	    h, "code", cJSON_IsString(code) ? code->valuestring : "?");
	cJSON_AddStringToObject(
	    h, "message", cJSON_IsString(msg) ? msg->valuestring : "");
	return h;
}

/* The history so far plus this attempt; the caller frees it. */
static cJSON *
run_history(const struct task_run *tr, int64_t at)
{
	cJSON *h = tr->task.history != NULL
	    ? cJSON_Duplicate(tr->task.history, 1)
	    : cJSON_CreateArray();

	cJSON_AddItemToArray(h, history_entry(tr, at));
	return h;
}

static void
replace_item(cJSON *o, const char *name, cJSON *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, name);
	cJSON_AddItemToObject(o, name, v);
}

/* The message for the next attempt: the same task, with its bookkeeping. */
static char *
next_message(const struct task_run *tr, int64_t first, int64_t now)
{
	cJSON *m = cJSON_ParseWithLength(tr->raw, tr->rawlen);
	char  *s;

	if (m == NULL)
		return NULL;
	replace_item(m, "id", cJSON_CreateString(tr->task.id));
	replace_item(m, "attempt", cJSON_CreateNumber(tr->task.attempt + 1));
	replace_item(m, "first_attempt_at", cJSON_CreateNumber((double)first));
	replace_item(m, "history", run_history(tr, now));
	s = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	return s;
}

static void
give_up(struct task_run *tr, const char *code, int64_t now)
{
	cJSON *d = cJSON_CreateObject(), *reason;
	char   msg[300], ts[40];

	snprintf(msg, sizeof(msg),
	    "gave up after %d attempts; the last failed with %s",
	    tr->task.attempt, code);
	reason = cJSON_AddObjectToObject(d, "reason");
	cJSON_AddStringToObject(reason, "code", "retries_exhausted");
	cJSON_AddStringToObject(reason, "message", msg);
	cJSON_AddStringToObject(d, "raw", tr->raw);
	cJSON_AddStringToObject(d, "id", tr->task.id);
	cJSON_AddStringToObject(d, "worker", tr->w->cfg->worker_id);
	format_time_ms(now, ts, sizeof(ts));
	cJSON_AddStringToObject(d, "dead_at", ts);
	cJSON_AddItemToObject(d, "history", run_history(tr, now));
	tr->dead = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	task_run_error(tr, NULL, "retries_exhausted", "%s", msg);
	logkv(LOG_WARN, "task dead-lettered: retries exhausted", "task_id",
	    tr->task.id, "code", code, (char *)NULL);
}

/* Returns 1 when the task is to run again (its result is interim). */
static int
run_retry_or_give_up(struct task_run *tr, const char *status, int64_t now)
{
	const struct config *cfg = tr->w->cfg;
	const char	    *code = NULL;
	enum retry_class     rc = retry_class(tr, status, &code);
	int64_t		     first = first_attempt_ms(tr);
	char		     ts[40];

	if (rc == RETRY_NONE)
		return 0;
	if ((rc == RETRY_TRANSIENT && tr->task.attempt >= cfg->max_attempts) ||
	    (rc == RETRY_NOT_READY &&
		now - first >= (int64_t)cfg->not_ready_retry_s * 1000) ||
	    tr->task.attempt >= TASK_MAX_ATTEMPT) {
		/* With retries off (one attempt allowed) a failure is plain. */
		if (tr->task.attempt > 1)
			give_up(tr, code, now);
		return 0;
	}
	if ((tr->retry_next = next_message(tr, first, now)) == NULL)
		return 0;
	tr->retry_due_ms = now + retry_delay_ms(cfg, tr->task.attempt);
	format_time_ms(tr->retry_due_ms, ts, sizeof(ts));
	cJSON_AddNumberToObject(tr->result, "attempt", tr->task.attempt);
	cJSON_AddStringToObject(tr->result, "next_attempt_at", ts);
	cJSON_AddStringToObject(tr->result, "retry_code", code);
	return 1;
}

/* What a result adds to the counters, read before result_text() takes it. */
static void
run_metrics(const struct task_run *tr, const char *status, int64_t end)
{
	struct metrics *m = tr->w->metrics;
	const cJSON    *n, *b;

	if (m == NULL)
		return;
	metrics_task(m, tr->task.type_name, status,
	    (double)(mono_us() - tr->started_us) / 1e6);
	if (tr->task.dry_run || tr->result == NULL)
		return;
	n = cJSON_GetObjectItemCaseSensitive(tr->result, "deleted_count");
	b = cJSON_GetObjectItemCaseSensitive(tr->result, "deleted_size_bytes");
	metrics_deleted(m, cJSON_IsNumber(n) ? (long long)n->valuedouble : 0,
	    cJSON_IsNumber(b) ? (long long)b->valuedouble : 0);
	if (tr->task.type == TASK_RETENTION_SWEEP && strcmp(status, "ok") == 0)
		metrics_sweep_ok(m, end);
}

void
task_run_finish(struct task_run *tr, const char *status)
{
	int64_t end = now_ms();
	char	dur[32];

	if (tr->w->teardown)
		return;
	if (tr->returned) {
		logkv(LOG_INFO,
		    "result dropped: the task was returned to its "
		    "queue",
		    "task_id", tr->task.id, "status", status, (char *)NULL);
		return;
	}
	if (run_retry_or_give_up(tr, status, end))
		status = "retrying";
	run_metrics(tr, status, end);
	tr->final = result_text(tr, status, end);
	snprintf(dur, sizeof(dur), "%lld",
	    (long long)((mono_us() - tr->started_us) / 1000));
	logkv(LOG_INFO, "task finished", "task_id", tr->task.id, "type",
	    tr->task.type_name, "job_id", tr->task.job_id, "status", status,
	    "duration_ms", dur, (char *)NULL);
	run_publish(tr);
}

void
task_run_finish_as(struct task_run *tr, const char *id, const char *type_name,
    int64_t started_ms, const char *status)
{
	strlcpy_(tr->task.id, id, sizeof(tr->task.id));
	tr->task.type_name = type_name;
	tr->started_us -= (tr->started_ms - started_ms) * 1000;
	tr->started_ms = started_ms;
	task_run_finish(tr, status);
}

int
task_run_shard_retry(struct task_run *tr)
{
	const struct config *cfg = tr->w->cfg;
	const char	    *code = transient_code(tr);
	int64_t		     now = now_ms();
	int64_t		     first = first_attempt_ms(tr);
	char		     ts[40];

	if (code == NULL || tr->w->teardown || tr->returned ||
	    tr->task.attempt >= cfg->max_attempts ||
	    tr->task.attempt >= TASK_MAX_ATTEMPT ||
	    (tr->retry_next = next_message(tr, first, now)) == NULL)
		return 0;
	tr->retry_due_ms = now + retry_delay_ms(cfg, tr->task.attempt);
	tr->final = xstrdup(""); /* no interim result */
	format_time_ms(tr->retry_due_ms, ts, sizeof(ts));
	logkv(LOG_INFO, "shard will run again", "task_id", tr->task.id, "code",
	    code, "next_attempt_at", ts, (char *)NULL);
	return 1;
}

void
task_run_shard_retry_send(struct task_run *tr)
{
	run_publish(tr);
}

void
task_run_acked(struct task_run *tr, const char *status)
{
	if (tr->w->teardown)
		return;
	logkv(LOG_INFO, "task finished", "task_id", tr->task.id, "type",
	    tr->task.type_name, "status", status, (char *)NULL);
	metrics_task(tr->w->metrics, tr->task.type_name, status,
	    (double)(mono_us() - tr->started_us) / 1e6);
	run_published(tr, QUEUE_DONE);
}

/* A message that cannot be run goes to the dead-letter list. */
static void
run_dead_letter(struct task_run *tr, const struct task_error *err)
{
	cJSON *d = cJSON_CreateObject(), *reason;
	char   ts[40];

	reason = cJSON_AddObjectToObject(d, "reason");
	cJSON_AddStringToObject(reason, "code", err->code);
	cJSON_AddStringToObject(reason, "message", err->message);
	if (utf8_valid(tr->raw, tr->rawlen) &&
	    memchr(tr->raw, '\0', tr->rawlen) == NULL)
		cJSON_AddStringToObject(d, "raw", tr->raw);
	else {
		char *b = b64_encode(tr->raw, tr->rawlen);
		cJSON_AddStringToObject(d, "raw_base64", b);
		free(b);
	}
	if (err->id[0] != '\0')
		cJSON_AddStringToObject(d, "id", err->id);
	cJSON_AddStringToObject(d, "worker", tr->w->cfg->worker_id);
	format_time_ms(now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(d, "dead_at", ts);
	tr->dead = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);

	metrics_task(tr->w->metrics, NULL, "dead_letter", 0.0);
	logkv(LOG_WARN, "message dead-lettered", "task_id",
	    err->id[0] ? err->id : NULL, "code", err->code, "error",
	    err->message, (char *)NULL);
	if (err->id[0] != '\0') {
		strlcpy_(tr->task.id, err->id, sizeof(tr->task.id));
		task_run_error(tr, NULL, err->code, "%s", err->message);
		tr->final = result_text(tr, "failed", now_ms());
	}
	run_publish(tr);
}

static void
dispatch(struct worker *w, const char *raw, size_t len, const char *queue_key)
{
	struct task_run	       *tr = xcalloc(1, sizeof(*tr));
	const struct task_kind *kind;
	struct task_error	err;

	tr->w = w;
	tr->raw = xstrndup(raw, len);
	tr->rawlen = len;
	tr->queue_key = queue_key;
	tr->started_ms = now_ms();
	tr->started_us = mono_us();
	tr->errors = cJSON_CreateArray();
	tr->result = cJSON_CreateObject();
	tr->retry_ev = evtimer_new(w->base, run_publish_retry, tr);
	TAILQ_INSERT_TAIL(&w->runs, tr, entry);
	w->inflight++;

	if (task_parse(raw, len, &tr->task, &err) != 0) {
		run_dead_letter(tr, &err);
		return;
	}
	if ((kind = task_kind_find(tr->task.type)) == NULL)
		fatal("task type %s has no kind", tr->task.type_name);
	logkv(LOG_DEBUG, "task claimed", "task_id", tr->task.id, "type",
	    kind->name, "job_id", tr->task.job_id, (char *)NULL);
	kind->run(tr);
}

/* Claiming. */

static void
claim_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct worker *w = arg;
	size_t	       n = w->opt.nqueues;

	w->claiming = 0;
	if (w->teardown)
		return;
	if (reply == NULL) {
		/*
		 * The move may have happened with its reply lost: look at our
		 * processing list again before claiming anything new.
		 */
		w->recovered = 0;
		maybe_exit(w);
		return; /* the state callback resumes claiming */
	}
	switch (redis_reply_type(reply)) {
	case REDIS_R_STRING: {
		size_t	    len;
		const char *s = redis_reply_str(reply, &len);
		w->rr = (w->rr + w->claim_tried + 1) % n;
		w->claim_tried = 0;
		dispatch(w, s, len, w->qkeys[w->claim_src]);
		break;
	}
	case REDIS_R_ARRAY: { /* queue_claim(): oldest first */
		size_t i, m = redis_reply_len(reply);
		if (m == 0) {
			w->claim_tried++;
			break;
		}
		w->rr = (w->rr + w->claim_tried + 1) % n;
		w->claim_tried = 0;
		for (i = 0; i < m; i++) {
			size_t	    len;
			const char *s = redis_reply_str(
			    redis_reply_elem(reply, i), &len);
			if (s != NULL)
				dispatch(w, s, len, w->qkeys[w->claim_src]);
		}
		break;
	}
	case REDIS_R_NIL:
		w->claim_tried++;
		break;
	default: {
		/* LOADING, READONLY during a failover...: wait and retry. */
		struct timeval tv = {1, 0};
		logkv(LOG_WARN, "claim refused by Redis; retrying in 1 s",
		    "error", redis_reply_str(reply, NULL), (char *)NULL);
		w->claim_tried = 0;
		w->claiming = 1;
		evtimer_add(w->claim_retry_ev, &tv);
		maybe_exit(w);
		return;
	}
	}
	claim_next(w);
	maybe_exit(w);
}

static void
claim_retry(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	w->claiming = 0;
	claim_next(w);
	maybe_exit(w);
}

static void
claim_next(struct worker *w)
{
	size_t	    n = w->opt.nqueues;
	const char *src;
	int	    rc;

	if (w->claiming || w->stopping || w->teardown || !w->locked ||
	    w->inflight >= w->opt.concurrency || !redis_is_ready(w->claim) ||
	    !redis_is_ready(w->cmd))
		return;
	if (!w->recovered) {
		recover(w);
		return;
	}
	if (w->claim_tried >= n && w->opt.drain) {
		w->claim_tried = 0;
		if (w->inflight > 0)
			return;
		/*
		 * A task that ended while the queues were read may have
		 * pushed more after they were (a sharded sweep's next
		 * phase): drained only after a round that saw no task end.
		 */
		if (w->cycle_done == w->done_count) {
			logkv(LOG_INFO, "queues drained", (char *)NULL);
			w->stopping = 1;
			maybe_exit(w);
			return;
		}
	}
	if (w->claim_tried == 0)
		w->cycle_done = w->done_count;
	if (w->claim_tried >= n) {
		w->claim_tried = 0;
		/* Every queue was empty: block on one, in turn. */
		w->claim_src = w->rr;
		src = w->qkeys[w->rr];
		w->rr = (w->rr + 1) % n;
		w->claim_tried = n; /* a nil reply means "start over" */
		rc = redis_cmd(w->claim, claim_reply, w, "BLMOVE", src,
		    w->keys.processing, "RIGHT", "LEFT", n > 1 ? "0.5" : "1",
		    (char *)NULL);
	} else {
		/* As many as we have room for, in one round trip. */
		w->claim_src = (w->rr + w->claim_tried) % n;
		src = w->qkeys[w->claim_src];
		rc = queue_claim(w->claim, &w->keys, src,
		    w->opt.concurrency - w->inflight, claim_reply, w);
	}
	if (rc == 0)
		w->claiming = 1;
}

/*
 * A processing-list entry is ours already when as many running tasks hold
 * the same bytes as there are copies of it up to this one in the list.
 */
static int
already_running(struct worker *w, const struct redis_reply *list, size_t at,
    const char *raw, size_t len)
{
	struct task_run *tr;
	size_t		 copies = 0, running = 0, i;

	for (i = at; i < redis_reply_len(list); i++) {
		size_t	    l;
		const char *s = redis_reply_str(redis_reply_elem(list, i), &l);
		if (s != NULL && l == len && memcmp(s, raw, len) == 0)
			copies++;
	}
	TAILQ_FOREACH(tr, &w->runs, entry)
	if (tr->rawlen == len && memcmp(tr->raw, raw, len) == 0)
		running++;
	return running >= copies;
}

/*
 * A claim whose reply was lost may have moved a message into our
 * processing list: run what is there and not running before claiming
 * anything new.
 */
static void
recover_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct worker *w = arg;
	size_t	       i, n;

	w->claiming = 0;
	if (w->teardown)
		return;
	if (reply == NULL || redis_reply_type(reply) != REDIS_R_ARRAY) {
		if (reply != NULL)
			logkv(LOG_WARN,
			    "cannot read the processing list; "
			    "retrying",
			    "error", redis_reply_str(reply, NULL),
			    (char *)NULL);
		maybe_exit(w);
		return;
	}
	n = redis_reply_len(reply);
	if (n > 0) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", n);
		logkv(LOG_INFO, "taking back unfinished messages", "count",
		    count, "list", w->keys.processing, (char *)NULL);
	}
	/* Oldest first: the list grows at the left. */
	for (i = n; i > 0; i--) {
		size_t	    len;
		const char *s = redis_reply_str(
		    redis_reply_elem(reply, i - 1), &len);
		if (s != NULL && !already_running(w, reply, i - 1, s, len))
			dispatch(w, s, len, NULL);
	}
	w->recovered = 1;
	claim_next(w);
	maybe_exit(w);
}

/*
 * At start-up, what an earlier run of this worker id left in our
 * processing list (a crash, a kill -9, a second SIGTERM) goes back to the
 * queues through the reaper's script, which counts the redelivery and
 * stops a message that keeps killing its workers.
 */
static void
own_leftovers_returned(
    void *arg, long long back, long long dead, const char *workers)
{
	struct worker *w = arg;
	char	       nb[24], nd[24];

	w->claiming = 0;
	if (w->teardown)
		return;
	if (back < 0) {
		logkv(LOG_WARN, "cannot return our leftover messages; retrying",
		    (char *)NULL);
		maybe_exit(w);
		return;
	}
	if (back > 0 || dead > 0) {
		snprintf(nb, sizeof(nb), "%lld", back);
		snprintf(nd, sizeof(nd), "%lld", dead);
		logkv(LOG_INFO,
		    "returned messages an earlier run left unfinished to "
		    "their queues",
		    "list", w->keys.processing, "returned", nb, "dead_lettered",
		    nd, (char *)NULL);
	}
	if (!w->started) {
		w->started = 1;
		/* Serving: Redis answers and the worker id is ours. */
		notify_status(w, "READY=1");
	}
	w->recovered = 1;
	claim_next(w);
	maybe_exit(w);
}

static void
recover(struct worker *w)
{
	int rc;

	if (w->recovered || w->claiming || w->stopping ||
	    !redis_is_ready(w->cmd) || !w->locked)
		return;
	if (!w->started)
		rc = queue_reap(w->cmd, &w->keys, w->cfg->worker_id,
		    w->cfg->max_attempts, own_leftovers_returned, w);
	else
		rc = redis_cmd(w->cmd, recover_reply, w, "LRANGE",
		    w->keys.processing, "0", "-1", (char *)NULL);
	if (rc == 0)
		w->claiming = 1;
}

/*
 * The worker id names the processing list, so two live processes must
 * never share one: a lock with a short TTL, renewed while we run, lets a
 * restarted worker take over once a crashed predecessor's lock expires.
 * The same renewal extends the lease on the tasks of our processing list;
 * its own timer runs it, whatever the tasks are doing.  Once it has
 * lapsed, any worker's reaper gives those tasks back to their queues.
 */
static void
lease_reply(void *arg, int status)
{
	struct worker *w = arg;
	static int     warned;

	w->lock_pending = 0;
	if (w->teardown)
		return;
	if (status < 0) {
		logkv(
		    LOG_WARN, "cannot renew the lease; retrying", (char *)NULL);
		maybe_exit(w);
		return;
	}
	if (status == 1) {
		if (!w->locked)
			logkv(LOG_DEBUG, "worker id locked", "key",
			    w->keys.lock, (char *)NULL);
		w->locked = 1;
		warned = 0;
		recover(w);
		claim_next(w);
		return;
	}
	if (w->locked)
		logkv(LOG_ERROR,
		    "lost the worker id lock to another process; "
		    "no new claims",
		    "worker", w->cfg->worker_id, (char *)NULL);
	else if (!warned++)
		logkv(LOG_WARN,
		    "worker id is in use by another live process; "
		    "waiting for it (set CLIPSWEEP_WORKER_ID to run several "
		    "workers on one host)",
		    "worker", w->cfg->worker_id, (char *)NULL);
	w->locked = 0;
	maybe_exit(w);
}

static void
lease_renew(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->exiting || (w->stopping && w->inflight == 0))
		return;
	if (!w->lock_pending &&
	    queue_lease_renew(w->cmd, &w->keys, w->lock_token, LOCK_TTL_S,
		w->cfg->lease_s, lease_reply, w) == 0)
		w->lock_pending = 1;
}

static void
reaped(void *arg, long long back, long long dead, const char *workers)
{
	struct worker *w = arg;
	char	       nb[24], nd[24];

	w->reap_pending = 0;
	if (w->teardown || back < 0 ||
	    (back == 0 && dead == 0 && (workers == NULL || !*workers)))
		return;
	snprintf(nb, sizeof(nb), "%lld", back);
	snprintf(nd, sizeof(nd), "%lld", dead);
	logkv(LOG_WARN,
	    "lease expired: tasks of a stopped worker returned to their "
	    "queues",
	    "workers", workers, "returned", nb, "dead_lettered", nd,
	    (char *)NULL);
}

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->teardown || w->reap_pending || !redis_is_ready(w->cmd))
		return;
	if (queue_reap(
		w->cmd, &w->keys, NULL, w->cfg->max_attempts, reaped, w) == 0)
		w->reap_pending = 1;
}

static void
redis_state(struct redis *r, int up, void *arg)
{
	struct worker *w = arg;

	if (w->teardown)
		return;
	if (r == w->cmd)
		w->redis_up = up;
	if (up && r == w->cmd)
		lease_renew(-1, 0, w);
	if (up)
		claim_next(w);
	maybe_exit(w);
}

/*
 * Every worker moves due retries from the schedule to their queues; the
 * script makes that safe with any number of workers.
 */
static void
move_due(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->teardown || !redis_is_ready(w->cmd))
		return;
	if (queue_move_due(w->cmd, &w->keys, now_ms()) != 0)
		log_debug("retries not moved: Redis is down");
}

/*
 * The loop's lag: a timer that should fire every 50 ms notes how late it
 * is.  Nothing in the worker may block the loop (every server is talked
 * to asynchronously), so a late tick is the machine, or a bug.
 */
static void
lag_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int64_t	       now = mono_us(), late = now - w->lag_due_us;
	char	       ms[24];

	if (w->lag_due_us > 0) {
		w->lag_ticks++;
		if (late > w->lag_max_us)
			w->lag_max_us = late;
		if (late > LAG_TICK_MS * 1000)
			w->lag_slow++;
		if (late > LAG_WARN_MS * 1000) {
			snprintf(
			    ms, sizeof(ms), "%lld", (long long)late / 1000);
			logkv(LOG_WARN, "the event loop was late", "lag_ms", ms,
			    (char *)NULL);
		}
	}
	w->lag_due_us = now + LAG_TICK_MS * 1000;
}

struct worker *
worker_new(struct event_base *base, struct evdns_base *dns, struct config *cfg,
    const struct worker_options *opt)
{
	struct timeval	mover_tv = {0, MOVER_INTERVAL_MS * 1000};
	struct worker  *w = xcalloc(1, sizeof(*w));
	struct s3_creds creds;
	struct timeval	tv = {0, 0};
	struct timeval	reap_tv = {0, REAP_INTERVAL_MS * 1000};
	struct timeval	lag_tv = {0, LAG_TICK_MS * 1000};
	int		renew_ms, inflight;
	size_t		i;

	w->base = base;
	w->dns = dns;
	w->cfg = cfg;
	w->opt = *opt;
	if (opt->metrics_listen != NULL &&
	    strcmp(opt->metrics_listen, "none") != 0) {
		char err[256];

		if ((w->metrics = metrics_new(
			 base, opt->metrics_listen, err, sizeof(err))) == NULL)
			fatal_code(EX_CONFIG, "configuration: %s", err);
	}
	TAILQ_INIT(&w->runs);
	queue_keys_init(&w->keys, cfg->namespace, cfg->worker_id);
	w->qkeys = xcalloc(opt->nqueues, sizeof(*w->qkeys));
	for (i = 0; i < opt->nqueues; i++)
		w->qkeys[i] = queue_key_for(&w->keys, opt->queues[i]);
	uuid_v4(w->lock_token);
	/* Renew three times per lease: one lost reply is no harm. */
	renew_ms = cfg->lease_s * 1000 / 3;
	if (renew_ms > LOCK_RENEW_MS)
		renew_ms = LOCK_RENEW_MS;
	tv.tv_sec = renew_ms / 1000;
	tv.tv_usec = (renew_ms % 1000) * 1000;
	w->lock_ev = event_new(base, -1, EV_PERSIST, lease_renew, w);
	w->reap_ev = event_new(base, -1, EV_PERSIST, reap, w);
	evtimer_add(w->reap_ev, &reap_tv);
	w->lag_ev = event_new(base, -1, EV_PERSIST, lag_tick, w);
	evtimer_add(w->lag_ev, &lag_tv);
	w->claim_retry_ev = evtimer_new(base, claim_retry, w);
	w->drain_ev = evtimer_new(base, drain_expired, w);
	w->mover_ev = event_new(base, -1, EV_PERSIST, move_due, w);
	evtimer_add(w->mover_ev, &mover_tv);
	evtimer_add(w->lock_ev, &tv);
	if ((w->notify = notify_open()) != NULL) {
		int64_t period = NOTIFY_STATUS_MS * 1000;

		w->watchdog_us = notify_watchdog_usec();
		if (w->watchdog_us > 0 && w->watchdog_us / 2 < period)
			period = w->watchdog_us / 2;
		tv.tv_sec = period / 1000000;
		tv.tv_usec = period % 1000000;
		w->notify_ev = event_new(base, -1, EV_PERSIST, notify_tick, w);
		evtimer_add(w->notify_ev, &tv);
	}

	w->cmd = redis_new(base, dns, &cfg->redis, "commands");
	w->claim = redis_new(base, dns, &cfg->redis, "claims");
	redis_set_state_cb(w->cmd, redis_state, w);
	redis_set_state_cb(w->claim, redis_state, w);
	TAILQ_INIT(&w->cursor_waits);
	TAILQ_INIT(&w->gate_waits);
	w->pause_ev = evtimer_new(base, pause_poll, w);
	w->cursors_free = opt->concurrency < DB_MAX_CURSORS ? opt->concurrency
							    : DB_MAX_CURSORS;
	if ((w->db = db_new(base, dns, cfg->database_url,
		 DB_SHORT_CONNS + w->cursors_free)) == NULL)
		fatal_code(EX_CONFIG,
		    "configuration: the database URL cannot "
		    "be used (see the line above)");
	/*
	 * A sweep's first FETCH sorts every referenced key: allow it two
	 * minutes rather than the default thirty seconds.
	 */
	db_set_timeouts(w->db, 0, 120000);
	creds.access_key_id = cfg->access_key_id;
	creds.secret_access_key = cfg->secret_access_key;
	creds.session_token = cfg->session_token;
	w->s3 = s3_client_new(base, &cfg->storage, &creds);
	s3_client_set_rate(w->s3, cfg->s3_max_rps);
	s3_client_set_retries(w->s3, cfg->s3_max_attempts, 0);
	/*
	 * Every job in flight may have two HEADs out at once: let them, so
	 * that a high-latency store does not queue them; 64 at least (a
	 * sweep's listing and deletes), 256 at most: each costs a connection,
	 * and curl looks through them for every request.
	 */
	inflight = opt->concurrency * 2 + 8;
	inflight = inflight < HTTP_MAX_INFLIGHT ? HTTP_MAX_INFLIGHT
	    : inflight > 256			? 256
						: inflight;
	s3_client_set_limits(w->s3, 0, inflight);
	/*
	 * Concurrent jobs' deletes share DeleteObjects requests: one goes
	 * out when full, when no other job is about to delete (its HEADs
	 * out), or 5 ms after its first key.
	 */
	w->dels = s3batch_new(base, w->s3, 5, 1000);
	s3batch_set_gate(w->dels, s3batch_gate, w);
	if (cfg->audit)
		w->audit = audit_new(w->db, cfg->audit_table, cfg->worker_id);
	/* Job lookups likewise share queries, up to 50 jobs each. */
	w->jobs = job_loader_new(base, w->db, cfg->jobs_table, cfg->clips_table,
	    opt->concurrency > 1 ? 1 : 0, 50);
	if (w->metrics != NULL) {
		struct metrics_sources src = {0};

		w->qnames = xcalloc(opt->nqueues, sizeof(*w->qnames));
		for (i = 0; i < opt->nqueues; i++)
			w->qnames[i] = opt->queues[i];
		src.redis = w->cmd;
		src.db = w->db;
		src.s3 = w->s3;
		src.queue_names = w->qnames;
		src.queue_keys = (const char *const *)w->qkeys;
		src.nqueues = opt->nqueues;
		src.dead_key = w->keys.dead;
		src.scheduled_key = w->keys.scheduled;
		src.inflight = &w->inflight;
		src.stopping = &w->stopping;
		src.paused = &w->paused;
		metrics_set_sources(w->metrics, &src);
	}
	return w;
}

void
worker_start(struct worker *w)
{
	redis_connect(w->cmd);
	redis_connect(w->claim);
}

void
worker_free(struct worker *w)
{
	struct task_run	   *tr;
	struct cursor_wait *c;
	size_t		    i;

	if (w == NULL)
		return;
	/*
	 * Freeing a client fails what it still has in flight, and those
	 * callbacks reach the runs: free the clients first, with every
	 * publishing path turned off, then the runs.
	 */
	w->teardown = 1;
	gate_cancel_all(w);
	redis_free(w->claim);
	job_loader_free(w->jobs);
	db_free(w->db);
	s3batch_free(w->dels);
	s3_client_free(w->s3);
	redis_free(w->cmd);
	while ((c = TAILQ_FIRST(&w->cursor_waits)) != NULL) {
		TAILQ_REMOVE(&w->cursor_waits, c, entry);
		free(c);
	}
	while ((tr = TAILQ_FIRST(&w->runs)) != NULL) {
		TAILQ_REMOVE(&w->runs, tr, entry);
		run_free(tr);
	}
	event_free(w->claim_retry_ev);
	event_free(w->drain_ev);
	event_free(w->mover_ev);
	for (i = 0; i < w->opt.nqueues; i++)
		free(w->qkeys[i]);
	free(w->qkeys);
	queue_keys_free(&w->keys);
	event_free(w->lock_ev);
	event_free(w->reap_ev);
	event_free(w->lag_ev);
	event_free(w->pause_ev);
	metrics_free(w->metrics); /* after the clients: their callbacks */
	audit_free(w->audit);
	free(w->qnames);
	if (w->notify_ev != NULL)
		event_free(w->notify_ev);
	notify_close(w->notify);
	free(w);
}
