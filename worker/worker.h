#ifndef CLIPSWEEP_WORKER_H
#define CLIPSWEEP_WORKER_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"
#include "task.h"

struct cJSON;
struct event;
struct event_base;
struct evdns_base;
struct redis;
struct db;
struct s3_client;
struct s3batch;
struct job_loader;

struct worker_options {
	int	    concurrency;
	char	  **queues; /* queue names, e.g. jobs, sweeps */
	size_t	    nqueues;
	int	    drain;
	int	    drain_timeout_ms; /* after SIGTERM, then requeue */
	const char *metrics_listen;   /* HOST:PORT, or "none" */
};

struct task_run;

/*
 * A task type: its wire name and how to run it.  run() starts the work and
 * must end, now or later, with exactly one task_run_finish().
 */
struct task_kind {
	const char    *name;
	enum task_type type;
	void (*run)(struct task_run *);
};

const struct task_kind *task_kind_find(enum task_type);

extern const struct task_kind task_kind_job_cleanup;
extern const struct task_kind task_kind_retention_sweep;
extern const struct task_kind task_kind_sweep_shard;

struct worker;

/*
 * One claimed message from claim to acknowledgement.  The worker owns it;
 * a task kind may hang its own state on kind_state and must free it before
 * calling task_run_finish().
 */
struct task_run {
	TAILQ_ENTRY(task_run) entry;
	struct worker *w;
	char	      *raw;
	size_t	       rawlen;
	struct task    task;
	int64_t	       started_ms;
	int64_t	       started_us;
	struct cJSON  *result; /* type fields, added by the kind */
	struct cJSON  *errors; /* [{key?, code, message}] */
	void	      *kind_state;
	char	      *final; /* result text, kept until published */
	char	      *dead;  /* dead letter text, if any */
	int	       publish_tries;
	struct event  *retry_ev;
	const char    *queue_key;  /* where it was claimed from, or NULL */
	char	      *retry_next; /* the next attempt's message, if any */
	int64_t	       retry_due_ms;
	int	       returned; /* given back to its queue at drain time */
};

/* What a task kind may use. */
struct event_base	*worker_base(struct worker *);
struct db		*worker_db(struct worker *);
struct s3_client	*worker_s3(struct worker *);
struct s3batch		*worker_deletes(struct worker *);
struct job_loader	*worker_jobs(struct worker *);
const struct config	*worker_config(struct worker *);
struct redis		*worker_redis(struct worker *);
const struct queue_keys *worker_keys(struct worker *);
/* Where /metrics is served, or "none". */
const char *worker_metrics_address(const struct worker *);
/*
 * A sweep pass holds a database cursor (a pool connection) throughout:
 * cb runs once one is free, now or later; done gives it back, cancel
 * withdraws a wait.
 */
void worker_cursor_wait(struct worker *, void (*cb)(void *), void *arg);
void worker_cursor_cancel(struct worker *, void *arg);
void worker_cursor_done(struct worker *);
/*
 * The kill switch, read from Redis before every delete batch: go(arg,
 * GATE_SEND) once <ns>:paused is absent (now, or when an operator
 * resumes); go(arg, GATE_CANCELLED) when cancel_key (a task's
 * <ns>:cancel:<id>, or NULL) exists; go(arg, GATE_SHUTDOWN) when the
 * worker shuts down first.  Exactly one call.
 */
enum { GATE_SHUTDOWN, GATE_SEND, GATE_CANCELLED };
/* worker_free() has begun: replies now are its clients failing. */
int worker_tearing_down(const struct worker *);
/* The audit trail, or NULL when CLIPSWEEP_AUDIT is off. */
struct audit *worker_audit(struct worker *);
void	      worker_delete_gate(struct worker *, const char *cancel_key,
	     void (*go)(void *arg, int verdict), void	     *arg);
/* PUBLISH a progress message on <ns>:progress; best effort. */
void worker_publish_progress(struct worker *, const char *json);

void task_run_error(struct task_run *, const char *key, const char *code,
    const char *fmt, ...) PRINTF_LIKE(4, 5);
/* status: ok, partial, failed or refused. */
void task_run_finish(struct task_run *, const char *status);
/*
 * Finish with the result of another task (a sharded sweep's, published by
 * its last shard): the result carries id and type_name and counts its
 * duration from started_ms; the message acknowledged is still this one's.
 */
void task_run_finish_as(struct task_run *, const char *id,
    const char *type_name, int64_t started_ms, const char *status);
/*
 * A sweep shard that failed for a transient reason (storage or database
 * unavailable) with attempts left: prepares its next attempt and returns
 * 1; the caller frees its own state, then calls task_run_shard_retry_send(),
 * which schedules it as any retry but publishes no interim result (the
 * sweep's one result comes from its last shard).  0: the failure is final.
 */
int  task_run_shard_retry(struct task_run *);
void task_run_shard_retry_send(struct task_run *);
/* The kind acknowledged the message in a transaction of its own. */
void task_run_acked(struct task_run *, const char *status);

struct worker *worker_new(struct event_base *, struct evdns_base *,
    struct config *, const struct worker_options *);
void	       worker_free(struct worker *);
void	       worker_start(struct worker *);
/* Stop claiming; exit the loop once nothing is in flight. */
void worker_stop(struct worker *, const char *why);

#endif
