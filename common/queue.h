#ifndef CLIPSWEEP_QUEUE_H
#define CLIPSWEEP_QUEUE_H

#include <stddef.h>

#include "redis.h"
#include "util.h"

struct redis;

/*
 * The wire protocol's Redis keys (docs/PROTOCOL.md).  All are under the
 * namespace, "clipsweep" by default.  Owned by the struct.
 */
struct queue_keys {
	char *ns;
	char *worker_id;
	char *jobs;	   /* <ns>:queue:jobs */
	char *sweeps;	   /* <ns>:queue:sweeps */
	char *processing;  /* <ns>:processing:<worker-id> */
	char *dead;	   /* <ns>:dead */
	char *results;	   /* <ns>:results (pub/sub channel) */
	char *results_log; /* <ns>:results:log (stream) */
	char *scheduled;   /* <ns>:scheduled (sorted set, by due time) */
	char *progress;	   /* <ns>:progress (pub/sub channel) */
	char *leases;	   /* <ns>:leases (sorted set, by expiry) */
	char *lock;	   /* <ns>:worker:<worker-id> */
	char *stats;	   /* <ns>:stats (hash of counters) */
	char *paused;	   /* <ns>:paused (the kill switch) */
};

#define QUEUE_RESULT_TTL_S    (7 * 24 * 3600)
#define QUEUE_RESULTS_LOG_MAX "10000"

void queue_keys_init(
    struct queue_keys *, const char *ns, const char *worker_id);
void queue_keys_free(struct queue_keys *);
/* <ns>:queue:<name>, for --queues; caller frees. */
char *queue_key_for(const struct queue_keys *, const char *name);
/* <ns>:result:<id>; caller frees. */
char *queue_result_key(const struct queue_keys *, const char *id);
/* <ns>:cancel:<id>: an operator asked sweep <id> to stop. */
char *queue_cancel_key(const struct queue_keys *, const char *id);

/*
 * status is QUEUE_DONE when the transaction ran, QUEUE_NOT_OURS when the
 * message was no longer in our processing list (our lease expired and the
 * message went back to its queue, or an earlier try already acked it), and
 * QUEUE_ERROR when Redis did not answer.
 */
#define QUEUE_ERROR    (-1)
#define QUEUE_NOT_OURS 0
#define QUEUE_DONE     1
typedef void queue_done_cb(void *arg, int status);

/*
 * Publish a result and acknowledge the message, atomically (one script):
 * store it at <ns>:result:<id> for 7 days, PUBLISH it, append it to the
 * results stream, and remove raw from the processing list.  With dead set,
 * the dead letter is pushed in the same transaction; result may then be
 * NULL (a message without an id has no result).
 */
int queue_finish(struct redis *, const struct queue_keys *, const char *id,
    const char *result, const char *dead, const char *raw, size_t rawlen,
    queue_done_cb *, void *arg) MUST_CHECK;

/*
 * A retry: remove raw from the processing list and, if it was there,
 * schedule next (the message for the next attempt) for queue at due_ms,
 * and publish the interim result.  Same atomicity as queue_finish().
 */
int queue_retry(struct redis *, const struct queue_keys *, const char *id,
    const char *interim, const char *raw, size_t rawlen, const char *queue,
    const char *next, int64_t due_ms, queue_done_cb *, void *arg) MUST_CHECK;

/*
 * Move scheduled messages that are due (at most 100) to the left end of
 * their queues.  Safe with any number of workers doing it at once.
 */
int queue_move_due(
    struct redis *, const struct queue_keys *, int64_t now_ms) MUST_CHECK;

/*
 * Claim up to max messages (at most 100) from queue in one round trip:
 * each moved atomically from the queue's right end to the left of our
 * processing list, as LMOVE does.  The reply is an array, oldest first,
 * empty when the queue was.
 */
int queue_claim(struct redis *, const struct queue_keys *, const char *queue,
    int max, redis_cb *, void *arg) MUST_CHECK;

/*
 * Take or renew this worker's lease: the worker id lock (so that two live
 * processes never share a processing list), lock_s from now, and the
 * lease on the tasks of its processing list in <ns>:leases, lease_s from
 * now by the Redis clock.  cb gets 1 when both are ours, 0 when another
 * live process holds the worker id, -1 on error.
 */
int queue_lease_renew(struct redis *, const struct queue_keys *,
    const char *token, int lock_s, int lease_s, queue_done_cb *,
    void *arg) MUST_CHECK;

/* Give up the lease (at exit), if it is still ours. */
int queue_lease_release(struct redis *, const struct queue_keys *,
    const char *token, queue_done_cb *, void *arg) MUST_CHECK;

/*
 * The reaper.  For each worker whose lease expired (or, with self set, for
 * this worker, at start-up), return the messages of its processing list to
 * the right end of their type's queue, oldest claimed first, and count
 * them in <ns>:stats "redelivered".  A message redelivered more than
 * max_redeliveries times (its worker keeps dying while running it) goes to
 * the dead-letter list with reason "redelivery_limit" and a failed result
 * instead.  reaped() gets the number of messages returned, or -1.
 */
typedef void queue_reaped_cb(
    void *arg, long long returned, long long dead, const char *workers);
int queue_reap(struct redis *, const struct queue_keys *, const char *self,
    int max_redeliveries, queue_reaped_cb *, void *arg) MUST_CHECK;

/* Sharded sweeps: the state hash <ns>:sweep:<sweep id>; caller frees. */
char *queue_sweep_key(const struct queue_keys *, const char *sweep_id);

/*
 * Acknowledge raw and, atomically, set the sweep's state fields (nfields
 * name/value pairs; with reset, on a fresh hash, else only while the hash
 * is still run's: otherwise QUEUE_NOT_OURS, nothing set or pushed) and
 * push msgs onto <ns>:queue:sweeps where the next claim takes them first.
 */
int queue_sweep_spawn(struct redis *, const struct queue_keys *,
    const char *sweep_id, const char *run, int reset, const char *const *fields,
    size_t nfields, const char *raw, size_t rawlen, const char *const *msgs,
    size_t nmsgs, queue_done_cb *, void *arg) MUST_CHECK;

/*
 * Record a shard's report for phase ("plan" or "execute").  The reply is
 * an array: {-1} the message belongs to an earlier run of the sweep and
 * was dropped; {0} it is no longer ours; {1} recorded and acknowledged;
 * {2, plan reports..., [execute reports...]} recorded, this shard was the
 * last of the phase and must close it (its message is not acknowledged).
 */
int queue_shard_record(struct redis *, const struct queue_keys *,
    const char *sweep_id, const char *run, const char *phase, int index,
    int shards, const char *report, int failed, const char *raw, size_t rawlen,
    redis_cb *, void *arg) MUST_CHECK;

#endif
