#ifndef CLIPSWEEP_JOB_LOADER_H
#define CLIPSWEEP_JOB_LOADER_H

#include "util.h"

struct event_base;
struct db;
struct db_error;

/*
 * The per-job database lookups of job_cleanup, batched: the jobs asked for
 * within flush_ms (or max at once) share one query, WHERE id = ANY($1).
 * A job the batch cannot answer for certain (its id written otherwise
 * than the database prints it, like "007", or a batch refused because one
 * id is not valid for the column's type) is asked alone, with the same
 * query by id.  Every caller gets exactly what a query of its own would.
 */
struct job_row {
	int	    nrows; /* 0: no such job; > 1: the id is not unique */
	const char *status;
	const char *original_key;
	const char *audio_key;
	const char *total_clips;
	const char *completed_clips;
	const char *original_referenced; /* "t" or "f" */
	const char *audio_referenced;
};

/* row is valid only during the call; NULL with err on failure. */
typedef void job_loaded_cb(
    void *arg, const struct job_row *row, const struct db_error *err);

struct job_loader;

struct job_loader *job_loader_new(struct event_base *, struct db *,
    const char *jobs_table, const char *clips_table, int flush_ms, int max);
/* Callers still waiting get DB_ERR_UNAVAILABLE before this returns. */
void job_loader_free(struct job_loader *);
/* job_id is copied.  The callback never runs inside this call. */
void job_loader_get(
    struct job_loader *, const char *job_id, job_loaded_cb *, void *arg);
/* Queries sent: batched and single, for tests and metrics. */
void job_loader_counts(
    const struct job_loader *, unsigned long *batches, unsigned long *singles);

#endif
