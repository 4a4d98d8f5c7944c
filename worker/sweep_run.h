/*
 * A retention sweep's state, shared by task_retention_sweep.c (the passes)
 * and sweep_shard.c (sharded sweeps: splitting, recording, closing).
 * Internal to the worker.
 */
#ifndef CLIPSWEEP_SWEEP_RUN_H
#define CLIPSWEEP_SWEEP_RUN_H

#include "sweep.h"
#include "worker.h"

struct cJSON;
struct db_cursor;
struct event;

struct delete_batch {
	struct sweep_run *s;
	char		**keys;
	int64_t		 *sizes;
	const char	**reasons; /* static: sweep_reason_name() */
	size_t		  n;
};

struct sweep_run {
	struct task_run *tr;
	struct worker	*w;
	int		 executing;
	char		*scan_prefix; /* full: cube + sub-prefix */
	char		*sub_prefix;  /* relative to the cube */
	int64_t		 retention_days;
	int64_t		 min_age_hours;
	int64_t		 young_after_ms;
	char		*sql;
	char		 days[24];

	struct sweep_merge  *m;
	struct db_cursor    *cur;
	int		     cur_ready;
	int		     db_pending;
	int		     db_done;
	char		    *token;
	int		     list_pending;
	int		     list_done;
	int		     want_objects; /* the merge waits for a page */
	struct sweep_object *ahead;	   /* the next page, listed early */
	size_t		     nahead;
	int		     ahead_last;
	int		     have_ahead;

	struct sweep_counts  plan;
	struct sweep_counts  exec;
	struct delete_batch *batch;
	int		     deletes_inflight;
	int64_t		     deleted;
	int64_t		     deleted_bytes;
	int64_t		     delete_errors;
	int64_t		     exec_candidates;

	int	    stopping; /* abort: finish when idle */
	const char *final_status;
	char	   *refused_reason;
	cJSON	   *by_prefix;
	int	    nprefixes;
	cJSON	   *samples;
	cJSON	   *deleted_sample;
	cJSON	   *warnings;
	int64_t	    last_progress_ms;
	char	   *cancel_key;	    /* <ns>:cancel:<sweep id> */
	int	    cancel_pending; /* its GET is out */

	/* Sharded sweeps (sweep_shard.c). */
	const struct task_shard *shard;	     /* a shard's run, else NULL */
	char			*list_after; /* full key: start-after */
	char			*list_upto;  /* full key: last to list */
	int			 waiting_cursor;
	int			 has_cursor;
	struct event		*shard_ev; /* retries a Redis step */
	char			*shard_report;
	const char		*shard_status;
	char		       **spawn; /* messages to push */
	size_t			 nspawn;
	int			 closing; /* spawn is the last step */
	char			 run[37]; /* a split's run token */
};

/* task_retention_sweep.c */
struct sweep_run *sweep_run_new(struct task_run *);
void		  sweep_run_free(struct sweep_run *);
void		  sweep_pass_begin(struct sweep_run *);
/* Report and finish the task with status; frees s. */
void sweep_run_end(struct sweep_run *, const char *status);
/* Put the report of s (its counts, or the sums a closing shard set) in
 * its task's result. */
void	    sweep_report(struct sweep_run *);
const char *sweep_guard_plan(struct sweep_run *, char *buf, size_t len);

/* sweep_shard.c */
/* A retention_sweep with shards > 1: split it, or run it whole. */
void sweep_split(struct sweep_run *);
/* A shard's pass ended with status; record it, maybe close the phase. */
void sweep_shard_pass_done(struct sweep_run *, const char *status);

#endif
