#ifndef CLIPSWEEP_SWEEP_H
#define CLIPSWEEP_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * The retention sweep's decision core: a comm(1)-style merge of two sorted
 * streams, the bucket listing and the keys the database refers to, with
 * no I/O of its own.  The caller feeds listing pages and database batches
 * as they arrive; the merge says what it needs next and reports a verdict
 * for every listed object.  Memory is one page plus one batch, whatever
 * the size of the bucket.
 *
 * Both streams must be in strictly increasing byte order (S3's order, and
 * PostgreSQL's with COLLATE "C").  Anything else stops the merge with an
 * error: a sweep never decides on a stream it cannot trust.
 */

enum sweep_reason {
	/* kept */
	SWEEP_KEEP_RETAINED, /* completed clip inside the retention window */
	SWEEP_KEEP_ACTIVE,   /* referenced by a job or clip not yet terminal */
	SWEEP_KEEP_RECENT,   /* younger than min_age_hours */
	SWEEP_KEEP_UNSAFE,   /* a key the client will not send (a//b, ..) */
	/* candidates */
	SWEEP_EXPIRED_CLIP, /* clip outside the retention window */
	SWEEP_TEMPORARY,    /* original or audio of a finished job */
	SWEEP_ORPHAN,	    /* no row refers to it */
	SWEEP_NREASONS,
};

#define SWEEP_FIRST_CANDIDATE SWEEP_EXPIRED_CLIP

const char *sweep_reason_name(enum sweep_reason);

/* What the database says of one key (relative to the cube prefix). */
enum sweep_ref_kind {
	SWEEP_REF_KEEP, /* some row needs it: retained or active */
	SWEEP_REF_KEEP_ACTIVE,
	SWEEP_REF_EXPIRED_CLIP,
	SWEEP_REF_TEMPORARY,
};

struct sweep_ref {
	const char	   *key; /* relative to the cube prefix */
	size_t		    key_len;
	enum sweep_ref_kind kind;
};

struct sweep_object {
	const char *key; /* full storage key */
	size_t	    key_len;
	int64_t	    size;
	int64_t	    last_modified_ms;
};

struct sweep_merge;

/*
 * Called once per listed object, in listing order.  The object is valid
 * only during the call.
 */
typedef void sweep_verdict_cb(
    void *arg, const struct sweep_object *, enum sweep_reason);

/*
 * cube_prefix is stripped from listed keys to compare them with database
 * keys; every listed key must start with scan_prefix (cube prefix plus the
 * task's sub-prefix).  Objects modified after young_after_ms are kept as
 * recent.
 */
struct sweep_merge *sweep_merge_new(const char *cube_prefix,
    const char *scan_prefix, int64_t young_after_ms, sweep_verdict_cb *,
    void *arg);
void		    sweep_merge_free(struct sweep_merge *);
/*
 * Limit a shard's merge to the keys (relative to the cube) in
 * (after, upto]; NULL is unbounded.  A key outside fails the merge.
 */
void sweep_merge_set_range(
    struct sweep_merge *, const char *after, const char *upto);

/* Copy one listing page in; last marks the end of the listing. */
int sweep_merge_add_objects(struct sweep_merge *, const struct sweep_object *,
    size_t, int last) MUST_CHECK;
/* Copy one database batch in; last marks the end of the stream. */
int sweep_merge_add_refs(struct sweep_merge *, const struct sweep_ref *, size_t,
    int last) MUST_CHECK;

enum sweep_step {
	SWEEP_NEED_OBJECTS, /* feed the next listing page */
	SWEEP_NEED_REFS,    /* feed the next database batch */
	SWEEP_DONE,
	SWEEP_FAILED, /* see sweep_merge_error() */
};

/* Decide as far as the data fed so far allows. */
enum sweep_step sweep_merge_run(struct sweep_merge *);
const char     *sweep_merge_error(const struct sweep_merge *);

/* Totals so far. */
struct sweep_counts {
	int64_t scanned; /* objects listed */
	int64_t scanned_bytes;
	int64_t db_keys;	 /* distinct keys the database refers to */
	int64_t db_keys_matched; /* of those, found in the listing */
	int64_t candidates;
	int64_t candidate_bytes;
	int64_t by_reason[SWEEP_NREASONS];
};

void sweep_merge_counts(const struct sweep_merge *, struct sweep_counts *);

/*
 * The guards of seed 001, applied to a finished plan.  Returns NULL when
 * the plan may run, else why it must not (a static string, for the
 * report's refused_reason).
 */
const char *sweep_guard(const struct sweep_counts *, double max_delete_ratio,
    int force, char *buf, size_t buflen);

#endif
