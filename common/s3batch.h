#ifndef CLIPSWEEP_S3BATCH_H
#define CLIPSWEEP_S3BATCH_H

#include <stddef.h>

#include "s3.h"

struct event_base;
struct s3batch;

/*
 * Coalesced deletes: many callers' keys share DeleteObjects requests.  A
 * request goes out when it holds max_keys keys (at most 1000), when no
 * caller holds the batcher open (s3batch_hold()) any more, or flush_ms
 * after the first key of it arrived, whichever comes first.  A key asked
 * for twice in one request is sent once and reported to both.  Each caller
 * gets its own keys' results, in the order it asked, or the request's
 * error if the request failed as a whole.
 */
struct s3batch *s3batch_new(
    struct event_base *, struct s3_client *, int flush_ms, size_t max_keys);
/* Callers still waiting get err code "cancelled", before this returns. */
void s3batch_free(struct s3batch *);

/*
 * keys (1 to max_keys of them) are copied.  Refusals (a key outside the
 * prefix) fail the whole request they share, so callers check their keys
 * first, as job_cleanup does.  Returns -1 only while being freed.
 */
int s3batch_delete(struct s3batch *, const char *const *keys, size_t n,
    s3_delete_cb *, void *arg) MUST_CHECK;

/*
 * The same, with what the caller knows of each key, for the gate (an
 * audit trail): reasons[i] and sizes[i] (-1 unknown) describe keys[i].
 * Everything is copied.
 */
struct s3batch_note {
	const char	  *task_id;
	const char	  *task_type;
	const char *const *reasons;
	const int64_t	  *sizes;
};
int s3batch_delete_noted(struct s3batch *, const char *const *keys, size_t n,
    const struct s3batch_note *, s3_delete_cb *, void *arg) MUST_CHECK;

/* Every key of a request at the gate, with its caller's note (or NULLs). */
typedef void s3batch_key_fn(void *ctx, const char *key, const char *task_id,
    const char *task_type, const char *reason, int64_t size);
void	     s3batch_req_keys(void *req, s3batch_key_fn *, void *ctx);

/*
 * A caller that will probably delete soon (a job whose HEADs are out)
 * holds the batcher open, so that the request waits for it (up to
 * flush_ms); it releases once it has asked, or knows it will not.  With
 * no holder left, the open request goes out on the next loop turn.
 */
void s3batch_hold(struct s3batch *);
void s3batch_release(struct s3batch *);

/*
 * A gate every request passes just before it is sent (the worker's kill
 * switch): gate calls go(req, 1) to send it, now or later, or go(req, 0)
 * to fail it with code "cancelled".  It must call go exactly once, also
 * when shutting down: a request inside the gate is not freed by
 * s3batch_free().
 */
typedef void s3batch_gate_fn(
    void *gate_arg, void (*go)(void *req, int send), void *req);
void s3batch_set_gate(struct s3batch *, s3batch_gate_fn *, void *gate_arg);

/* Requests sent, and keys in them, for tests and metrics. */
size_t s3batch_requests(const struct s3batch *);
size_t s3batch_keys(const struct s3batch *);

#endif
