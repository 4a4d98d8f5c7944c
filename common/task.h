#ifndef CLIPSWEEP_TASK_H
#define CLIPSWEEP_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct cJSON;

#define TASK_MAX_BYTES	 (64 * 1024)
#define TASK_ID_MAX	 128
#define TASK_JOB_ID_MAX	 128
#define TASK_MAX_ATTEMPT 100
#define TASK_MAX_SHARDS	 256
/* A shard's id is its sweep's id plus ":plan:255" or ":execute:255". */
#define TASK_SHARD_ID_MAX (TASK_ID_MAX + 16)
/* The longest range bound (after, upto) a shard takes. */
#define TASK_SHARD_KEY_MAX 1024

enum task_type {
	TASK_JOB_CLEANUP,
	TASK_RETENTION_SWEEP,
	TASK_SWEEP_SHARD, /* made by workers, never by producers */
};

enum shard_phase { SHARD_PLAN, SHARD_EXECUTE };

/*
 * One key range of a sharded sweep (docs/PROTOCOL.md, Sharded sweeps).
 * after and upto are keys relative to the cube: the shard covers
 * (after, upto], NULL meaning unbounded.
 */
struct task_shard {
	char		*sweep_id;
	char		*run; /* the sweep's run token */
	enum shard_phase phase;
	int		 index;
	int		 count;
	char		*after;
	char		*upto;
	int64_t		 young_after_ms; /* the sweep's min-age cutoff */
	int64_t		 started_ms;	 /* when the sweep started */
	int64_t		 planned;	 /* execute: this range's plan */
	int64_t		 limit;	  /* execute: the most candidates it may meet */
	int		 gave_up; /* redelivered too often: record, don't run */
};

/*
 * A validated task.  Strings are owned by the struct; task_free() releases
 * them.  Optional numbers are -1 when absent.
 */
struct task {
	enum task_type	  type;
	const char	 *type_name;
	char		  id[TASK_SHARD_ID_MAX + 1];
	int		  id_assigned; /* the message had no id */
	char		 *job_id;
	int		  dry_run;
	int		  force;
	int64_t		  retention_days;
	int64_t		  min_age_hours;
	char		 *prefix;
	int64_t		  shards; /* retention_sweep: key ranges, -1 absent */
	struct task_shard shard;  /* sweep_shard */
	struct cJSON	 *enqueued_at; /* echoed back as given */
	/* Kept by the worker across retries (docs/PROTOCOL.md, Retries). */
	int	      attempt;		/* 1 for the first run */
	int64_t	      first_attempt_at; /* ms since the epoch, 0 if unset */
	struct cJSON *history;		/* [{at, code, message}] or NULL */
};

/*
 * Why a message was rejected.  code is a stable identifier for machines
 * (documented in docs/PROTOCOL.md); message says what and where for people.
 * id is the task id when one could be read, else empty.
 */
struct task_error {
	const char *code;
	char	    message[256];
	char	    id[TASK_SHARD_ID_MAX + 1];
};

/*
 * Validate one raw queue message.  Rejects: more than 64 KiB, invalid UTF-8,
 * anything but one JSON object, duplicate keys at any depth, unknown type,
 * unknown fields (a misspelt "dryrun" must not turn into a real delete),
 * missing or malformed fields.  On success fills t; the caller task_free()s.
 */
int  task_parse(const char *raw, size_t len, struct task *t,
     struct task_error *err) MUST_CHECK;
void task_free(struct task *);

/* The task type's wire name, or NULL. */
const char *task_type_name(enum task_type);

#endif
