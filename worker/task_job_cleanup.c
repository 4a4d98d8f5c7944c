/*
 * job_cleanup: once a job's clips have rendered, delete its original upload
 * and extracted audio, keeping anything another row still refers to.
 *
 * The order is: one database lookup that answers every question (job
 * state, clip counts, references; worker/job_loader.c, shared with the
 * other jobs in flight), then a HEAD per candidate for its
 * size and presence, then its keys join a DeleteObjects shared with the
 * other jobs in flight (common/s3batch.c).  Nothing is deleted unless the
 * whole picture is known.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "db.h"
#include "job_loader.h"
#include "log.h"
#include "s3.h"
#include "s3batch.h"
#include "worker.h"

#define MAX_CANDIDATES 2

struct cleanup;

struct candidate {
	struct cleanup *owner;
	const char     *column; /* original_key or audio_key */
	char	       *key;	/* full storage key */
	int		referenced;
	int		present;
	int		failed; /* HEAD failed: not deleted */
	int64_t		size;
};

struct cleanup {
	struct task_run *tr;
	struct candidate cand[MAX_CANDIDATES];
	int		 ncand;
	int		 heads_pending;
	long long	 total_clips;
	long long	 completed_clips;
};

static void
cleanup_free(struct cleanup *c)
{
	int i;

	for (i = 0; i < c->ncand; i++)
		free(c->cand[i].key);
	free(c);
}

static void
cleanup_finish(struct cleanup *c, const char *status)
{
	struct task_run *tr = c->tr;

	tr->kind_state = NULL;
	cleanup_free(c);
	task_run_finish(tr, status);
}

static void
add_message(struct task_run *tr, long long count, long long bytes,
    long long absent, long long kept, long long retained)
{
	char	   msg[256];
	struct buf b;

	buf_init(&b);
	buf_addf(&b, "%s %lld file%s (%.2f MB)",
	    tr->task.dry_run ? "Would delete" : "Deleted", count,
	    count == 1 ? "" : "s", (double)bytes / (1024.0 * 1024.0));
	if (absent > 0)
		buf_addf(&b, ", %lld already gone", absent);
	if (kept > 0)
		buf_addf(&b, ", kept %lld still referenced", kept);
	buf_addf(
	    &b, ", retained %lld clip%s", retained, retained == 1 ? "" : "s");
	strlcpy_(msg, b.data, sizeof(msg));
	buf_free(&b);
	cJSON_AddStringToObject(tr->result, "message", msg);
}

/* The report, with deleted marking what went (or would go). */
static void
cleanup_report(struct cleanup *c, const int *deleted, const char *status)
{
	struct task_run *tr = c->tr;
	cJSON	 *keys = cJSON_CreateArray(), *kept = cJSON_CreateArray();
	long long count = 0, absent = 0, bytes = 0, nkept = 0;
	int	  i;

	for (i = 0; i < c->ncand; i++) {
		struct candidate *k = &c->cand[i];
		if (k->referenced) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "key", k->key);
			cJSON_AddStringToObject(o, "reason", "referenced");
			cJSON_AddItemToArray(kept, o);
			nkept++;
		} else if (!k->failed && !k->present)
			absent++;
		else if (deleted[i]) {
			cJSON_AddItemToArray(keys, cJSON_CreateString(k->key));
			count++;
			bytes += k->size;
		}
	}
	add_message(tr, count, bytes, absent, nkept, c->total_clips);
	cJSON_AddItemToObject(tr->result, "deleted_keys", keys);
	cJSON_AddNumberToObject(tr->result, "deleted_count", (double)count);
	cJSON_AddNumberToObject(
	    tr->result, "already_absent_count", (double)absent);
	cJSON_AddNumberToObject(
	    tr->result, "deleted_size_bytes", (double)bytes);
	cJSON_AddNumberToObject(tr->result, "deleted_size_mb",
	    (double)((long long)((double)bytes / 10485.76 + 0.5)) / 100.0);
	cJSON_AddNumberToObject(
	    tr->result, "retained_count", (double)c->total_clips);
	cJSON_AddItemToObject(tr->result, "kept_keys", kept);
	cleanup_finish(c, status);
}

static void
cleanup_deleted(void *arg, const struct s3_delete_result *res, size_t n,
    const struct s3_error *err)
{
	struct cleanup *c = arg;
	int		deleted[MAX_CANDIDATES] = {0};
	int		errors = 0, i;
	size_t		j;

	if (err != NULL) {
		task_run_error(c->tr, NULL,
		    err->transient ? "storage_unavailable" : "storage_error",
		    "DeleteObjects failed: %s%s%s", err->code,
		    err->message[0] ? ": " : "", err->message);
		cleanup_report(c, deleted, "failed");
		return;
	}
	for (j = 0; j < n; j++) {
		for (i = 0; i < c->ncand; i++)
			if (strcmp(c->cand[i].key, res[j].key) == 0)
				break;
		if (i == c->ncand)
			continue; /* the client reports only our keys */
		if (res[j].deleted)
			deleted[i] = 1;
		else {
			task_run_error(c->tr, res[j].key,
			    res[j].code ? res[j].code : "delete_failed", "%s",
			    res[j].message
				? res[j].message
				: "the storage did not delete the key");
			errors++;
		}
	}
	for (i = 0; i < c->ncand; i++)
		if (c->cand[i].failed)
			errors++;
	cleanup_report(c, deleted, errors ? "partial" : "ok");
}

static void
cleanup_delete(struct cleanup *c)
{
	struct s3batch	   *dels = worker_deletes(c->tr->w);
	const char	   *keys[MAX_CANDIDATES], *reasons[MAX_CANDIDATES];
	int64_t		    sizes[MAX_CANDIDATES];
	int		    deleted[MAX_CANDIDATES] = {0};
	int		    n = 0, failed = 0, i, rc;
	struct s3batch_note note;

	for (i = 0; i < c->ncand; i++) {
		struct candidate *k = &c->cand[i];
		failed += k->failed;
		if (!k->referenced && k->present && !k->failed) {
			reasons[n] = strcmp(k->column, "audio_key") == 0
			    ? "job_audio"
			    : "job_original";
			sizes[n] = k->size;
			keys[n++] = k->key;
			deleted[i] = 1;
		}
	}
	if (c->tr->task.dry_run || n == 0) {
		s3batch_release(dels);
		cleanup_report(c, deleted,
		    failed == 0 ? "ok"
			: n > 0 ? "partial"
				: "failed");
		return;
	}
	/* What the audit trail says of each key (CLIPSWEEP_AUDIT). */
	note.task_id = c->tr->task.id;
	note.task_type = "job_cleanup";
	note.reasons = reasons;
	note.sizes = sizes;
	rc = s3batch_delete_noted(
	    dels, keys, (size_t)n, &note, cleanup_deleted, c);
	s3batch_release(dels);
	if (rc != 0) {
		task_run_error(c->tr, NULL, "storage_error",
		    "cannot send "
		    "DeleteObjects");
		memset(deleted, 0, sizeof(deleted));
		cleanup_report(c, deleted, "failed");
	}
}

static void
cleanup_head_done(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err)
{
	struct candidate *k = arg;
	struct cleanup	 *c = k->owner;

	if (err != NULL) {
		k->failed = 1;
		task_run_error(c->tr, k->key,
		    err->transient ? "storage_unavailable" : "storage_error",
		    "HEAD failed, so the key was not deleted: %s%s%s",
		    err->code, err->message[0] ? ": " : "", err->message);
	} else if (found) {
		k->present = 1;
		/* A HEAD without Content-Length counts as size 0. */
		k->size = obj != NULL && obj->size > 0 ? obj->size : 0;
	}
	if (--c->heads_pending == 0)
		cleanup_delete(c);
}

static void
cleanup_heads(struct cleanup *c)
{
	int i;

	/* The batcher waits for our delete while the HEADs are out. */
	s3batch_hold(worker_deletes(c->tr->w));
	/* One extra hold, so that c outlives the loop whatever happens. */
	c->heads_pending = 1;
	for (i = 0; i < c->ncand; i++) {
		struct candidate *k = &c->cand[i];
		if (k->referenced)
			continue;
		c->heads_pending++;
		if (s3_head(worker_s3(c->tr->w), k->key, cleanup_head_done,
			k) != 0) {
			k->failed = 1;
			task_run_error(
			    c->tr, k->key, "storage_error", "cannot send HEAD");
			c->heads_pending--;
		}
	}
	if (--c->heads_pending == 0)
		cleanup_delete(c);
}

/*
 * Map a key as the app stores it (relative to the cube) to the storage
 * key.  A key that could land outside the prefix refuses the whole task.
 */
static int
cleanup_add_candidate(
    struct cleanup *c, const char *column, const char *rel, const char *ref)
{
	const char	 *prefix = worker_config(c->tr->w)->storage.prefix;
	const char	 *why;
	struct candidate *k;
	int		  i;

	if (rel == NULL || *rel == '\0')
		return 0;
	if ((why = key_unsafe_reason(rel, strlen(rel))) != NULL ||
	    strlen(prefix) + strlen(rel) > 1024) {
		task_run_error(c->tr, rel, "unsafe_key",
		    "%s value '%.200s' "
		    "is refused: %s; nothing was deleted",
		    column, rel,
		    why ? why : "the storage key would exceed 1024 bytes");
		return -1;
	}
	for (i = 0; i < c->ncand; i++)
		if (strcmp(c->cand[i].key + strlen(prefix), rel) == 0)
			return 0; /* audio_key == original_key */
	k = &c->cand[c->ncand++];
	k->owner = c;
	k->column = column;
	k->key = xasprintf("%s%s", prefix, rel);
	k->referenced = ref != NULL && strcmp(ref, "t") == 0;
	return 0;
}

static long long
count_value(const char *s)
{
	return s != NULL ? strtoll(s, NULL, 10) : 0;
}

static void
cleanup_loaded(void *arg, const struct job_row *row, const struct db_error *err)
{
	struct cleanup	*c = arg;
	struct task_run *tr = c->tr;
	const char	*status;

	if (err != NULL) {
		/* 22P02: not a number; 22003: out of the column's range. */
		if (err->kind == DB_ERR_QUERY &&
		    (strcmp(err->sqlstate, "22P02") == 0 ||
			strcmp(err->sqlstate, "22003") == 0))
			task_run_error(tr, NULL, "job_not_found",
			    "job_id "
			    "'%s' is not a valid id for the jobs table: %s",
			    tr->task.job_id, err->message);
		else
			task_run_error(tr, NULL,
			    err->kind == DB_ERR_UNAVAILABLE
				? "database_unavailable"
				: "database_error",
			    "loading job %s failed: %s%s%s", tr->task.job_id,
			    err->message, err->sqlstate[0] ? " SQLSTATE " : "",
			    err->sqlstate);
		cleanup_finish(c, "failed");
		return;
	}
	if (row->nrows == 0) {
		task_run_error(tr, NULL, "job_not_found",
		    "job %s was not found", tr->task.job_id);
		cleanup_finish(c, "failed");
		return;
	}
	if (row->nrows > 1) {
		task_run_error(tr, NULL, "ambiguous_job",
		    "job id %s matches %d "
		    "rows; nothing was deleted",
		    tr->task.job_id, row->nrows);
		cleanup_finish(c, "refused");
		return;
	}
	status = row->status;
	c->total_clips = count_value(row->total_clips);
	c->completed_clips = count_value(row->completed_clips);
	cJSON_AddStringToObject(tr->result, "job_status", status ? status : "");
	if (!(status != NULL && strcmp(status, "completed") == 0) &&
	    !(c->total_clips > 0 && c->completed_clips == c->total_clips)) {
		task_run_error(tr, NULL, "clips_not_finished",
		    "job %s is '%s' "
		    "with %lld of %lld clips completed; nothing was deleted",
		    tr->task.job_id, status ? status : "(null)",
		    c->completed_clips, c->total_clips);
		cleanup_finish(c, "failed");
		return;
	}
	if (cleanup_add_candidate(c, "original_key", row->original_key,
		row->original_referenced) != 0 ||
	    cleanup_add_candidate(
		c, "audio_key", row->audio_key, row->audio_referenced) != 0) {
		cleanup_finish(c, "refused");
		return;
	}
	cleanup_heads(c);
}

/* The job's row comes from a lookup shared with the jobs in flight. */
static void
job_cleanup_run(struct task_run *tr)
{
	struct cleanup *c = xcalloc(1, sizeof(*c));

	c->tr = tr;
	tr->kind_state = c;
	job_loader_get(worker_jobs(tr->w), tr->task.job_id, cleanup_loaded, c);
}

const struct task_kind task_kind_job_cleanup = {
    .name = "job_cleanup",
    .type = TASK_JOB_CLEANUP,
    .run = job_cleanup_run,
};
