#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "redis.h"
#include "util.h"

void
queue_keys_init(struct queue_keys *k, const char *ns, const char *worker_id)
{
	k->ns = xstrdup(ns);
	k->jobs = xasprintf("%s:queue:jobs", ns);
	k->sweeps = xasprintf("%s:queue:sweeps", ns);
	k->processing = xasprintf("%s:processing:%s", ns, worker_id);
	k->dead = xasprintf("%s:dead", ns);
	k->results = xasprintf("%s:results", ns);
	k->results_log = xasprintf("%s:results:log", ns);
	k->scheduled = xasprintf("%s:scheduled", ns);
	k->progress = xasprintf("%s:progress", ns);
}

void
queue_keys_free(struct queue_keys *k)
{
	free(k->ns);
	free(k->jobs);
	free(k->sweeps);
	free(k->processing);
	free(k->dead);
	free(k->results);
	free(k->results_log);
	free(k->scheduled);
	free(k->progress);
	memset(k, 0, sizeof(*k));
}

char *
queue_key_for(const struct queue_keys *k, const char *name)
{
	return xasprintf("%s:queue:%s", k->ns, name);
}

char *
queue_result_key(const struct queue_keys *k, const char *id)
{
	return xasprintf("%s:result:%s", k->ns, id);
}

struct queue_txn {
	queue_done_cb *cb;
	void	      *arg;
};

static void
queue_ack_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct queue_txn *t = arg;
	int ok = reply != NULL && redis_reply_type(reply) == REDIS_R_INTEGER;

	t->cb(t->arg, ok);
	free(t);
}

/*
 * The acknowledgement, atomic and safe to repeat: a retry after a lost
 * reply finds the message gone from the processing list and its result
 * stored, and does nothing.  Removing the message is what makes the rest
 * happen, so one of two identical messages in flight is never acked twice.
 *
 * KEYS: processing, result key, results channel, results log, dead list.
 * ARGV: raw message, result ("" for none), dead letter ("" for none),
 * result TTL, results log length.
 */
static const char ack_script[] =
    "local removed = redis.call('LREM', KEYS[1], 1, ARGV[1]) "
    "if removed == 0 and (ARGV[2] == '' or "
    "redis.call('EXISTS', KEYS[2]) == 1) then return 0 end "
    "if ARGV[3] ~= '' then redis.call('LPUSH', KEYS[5], ARGV[3]) end "
    "if ARGV[2] ~= '' then "
    "redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4]) "
    "redis.call('PUBLISH', KEYS[3], ARGV[2]) "
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'result', "
    "ARGV[2]) end "
    "return 1";

int
queue_finish(struct redis *r, const struct queue_keys *k, const char *id,
    const char *result, const char *dead, const char *raw, size_t rawlen,
    queue_done_cb *cb, void *arg)
{
	struct queue_txn *t;
	char		  ttl[16];
	char		 *rkey;
	const char	 *argv[13];
	size_t		  lens[13];
	int		  i, rc;

	if (id == NULL)
		result = NULL;
	rkey = queue_result_key(k, id != NULL ? id : "");
	snprintf(ttl, sizeof(ttl), "%d", QUEUE_RESULT_TTL_S);
	argv[0] = "EVAL";
	argv[1] = ack_script;
	argv[2] = "5";
	argv[3] = k->processing;
	argv[4] = rkey;
	argv[5] = k->results;
	argv[6] = k->results_log;
	argv[7] = k->dead;
	argv[8] = raw;
	argv[9] = result != NULL ? result : "";
	argv[10] = dead != NULL ? dead : "";
	argv[11] = ttl;
	argv[12] = QUEUE_RESULTS_LOG_MAX;
	for (i = 0; i < 13; i++)
		lens[i] = i == 8 ? rawlen : strlen(argv[i]);
	t = xmalloc(sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	rc = redis_cmd_argv(r, queue_ack_reply, t, 13, argv, lens);
	free(rkey);
	if (rc != 0) {
		free(t);
		return -1;
	}
	return 0;
}

/*
 * A scheduled member is "<queue key>\t<message>": the queue comes first so
 * that one sorted set serves every queue.  Messages printed by cJSON hold
 * no raw tab.
 *
 * KEYS: processing, scheduled, result key, results channel, results log.
 * ARGV: raw, interim result ("" for none), due ms, member, TTL, log length.
 */
static const char retry_script[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) "
    "if ARGV[2] ~= '' then "
    "redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[5]) "
    "redis.call('PUBLISH', KEYS[4], ARGV[2]) "
    "redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'result', "
    "ARGV[2]) end "
    "return 1";

int
queue_retry(struct redis *r, const struct queue_keys *k, const char *id,
    const char *interim, const char *raw, size_t rawlen, const char *queue,
    const char *next, int64_t due_ms, queue_done_cb *cb, void *arg)
{
	struct queue_txn *t;
	char		  ttl[16], due[24];
	char		 *rkey, *member;
	const char	 *argv[14];
	size_t		  lens[14];
	int		  i, rc;

	rkey = queue_result_key(k, id);
	member = xasprintf("%s\t%s", queue, next);
	snprintf(ttl, sizeof(ttl), "%d", QUEUE_RESULT_TTL_S);
	snprintf(due, sizeof(due), "%lld", (long long)due_ms);
	argv[0] = "EVAL";
	argv[1] = retry_script;
	argv[2] = "5";
	argv[3] = k->processing;
	argv[4] = k->scheduled;
	argv[5] = rkey;
	argv[6] = k->results;
	argv[7] = k->results_log;
	argv[8] = raw;
	argv[9] = interim != NULL ? interim : "";
	argv[10] = due;
	argv[11] = member;
	argv[12] = ttl;
	argv[13] = QUEUE_RESULTS_LOG_MAX;
	for (i = 0; i < 14; i++)
		lens[i] = i == 8 ? rawlen : strlen(argv[i]);
	t = xmalloc(sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	rc = redis_cmd_argv(r, queue_ack_reply, t, 14, argv, lens);
	free(rkey);
	free(member);
	if (rc != 0) {
		free(t);
		return -1;
	}
	return 0;
}

static const char move_due_script[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], "
    "'LIMIT', 0, 100) "
    "for _, m in ipairs(due) do "
    "local tab = string.find(m, '\t', 1, true) "
    "if tab and redis.call('ZREM', KEYS[1], m) == 1 then "
    "redis.call('LPUSH', string.sub(m, 1, tab - 1), string.sub(m, tab + 1)) "
    "end end "
    "return #due";

int
queue_move_due(struct redis *r, const struct queue_keys *k, int64_t now)
{
	char when[24];

	snprintf(when, sizeof(when), "%lld", (long long)now);
	return redis_cmd(r, NULL, NULL, "EVAL", move_due_script, "1",
	    k->scheduled, when, (char *)NULL);
}
