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
	k->worker_id = xstrdup(worker_id);
	k->jobs = xasprintf("%s:queue:jobs", ns);
	k->sweeps = xasprintf("%s:queue:sweeps", ns);
	k->processing = xasprintf("%s:processing:%s", ns, worker_id);
	k->dead = xasprintf("%s:dead", ns);
	k->results = xasprintf("%s:results", ns);
	k->results_log = xasprintf("%s:results:log", ns);
	k->scheduled = xasprintf("%s:scheduled", ns);
	k->progress = xasprintf("%s:progress", ns);
	k->leases = xasprintf("%s:leases", ns);
	k->lock = xasprintf("%s:worker:%s", ns, worker_id);
	k->stats = xasprintf("%s:stats", ns);
	k->paused = xasprintf("%s:paused", ns);
}

void
queue_keys_free(struct queue_keys *k)
{
	free(k->ns);
	free(k->worker_id);
	free(k->jobs);
	free(k->sweeps);
	free(k->processing);
	free(k->dead);
	free(k->results);
	free(k->results_log);
	free(k->scheduled);
	free(k->progress);
	free(k->leases);
	free(k->paused);
	free(k->lock);
	free(k->stats);
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

char *
queue_cancel_key(const struct queue_keys *k, const char *id)
{
	return xasprintf("%s:cancel:%s", k->ns, id);
}

struct queue_txn {
	queue_done_cb *cb;
	void	      *arg;
};

static void
queue_ack_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct queue_txn *t = arg;
	int		  status = QUEUE_ERROR;

	if (reply != NULL && redis_reply_type(reply) == REDIS_R_INTEGER)
		status = redis_reply_int(reply) == 1 ? QUEUE_DONE
						     : QUEUE_NOT_OURS;
	t->cb(t->arg, status);
	free(t);
}

static struct queue_txn *
txn_new(queue_done_cb *cb, void *arg)
{
	struct queue_txn *t = xmalloc(sizeof(*t));

	t->cb = cb;
	t->arg = arg;
	return t;
}

/*
 * The acknowledgement, atomic and safe to repeat: a retry after a lost
 * reply finds the message gone from the processing list and does nothing.
 * Removing the message is what makes the rest happen, so one of two
 * identical messages in flight is never acked twice, and a worker whose
 * lease expired (the reaper gave the message back to its queue) neither
 * acks nor publishes for a task it no longer owns.
 *
 * KEYS: processing, result key, results channel, results log, dead list.
 * ARGV: raw message, result ("" for none), dead letter ("" for none),
 * result TTL, results log length.
 */
static const char ack_script[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
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
	t = txn_new(cb, arg);
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
	t = txn_new(cb, arg);
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

/*
 * KEYS: lock, leases.  ARGV: token, lock seconds, worker id, lease
 * seconds.  Times come from the Redis server's clock, which every worker
 * shares.
 */
static const char lease_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v ~= false and v ~= ARGV[1] then return 0 end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]) * 1000, ARGV[3]) "
    "return 1";

static void
lease_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct queue_txn *t = arg;
	int		  status = -1;

	if (reply != NULL && redis_reply_type(reply) == REDIS_R_INTEGER)
		status = redis_reply_int(reply) == 1;
	t->cb(t->arg, status);
	free(t);
}

int
queue_lease_renew(struct redis *r, const struct queue_keys *k,
    const char *token, int lock_s, int lease_s, queue_done_cb *cb, void *arg)
{
	struct queue_txn *t = txn_new(cb, arg);
	char		  ttl[16], lease[16];

	snprintf(ttl, sizeof(ttl), "%d", lock_s);
	snprintf(lease, sizeof(lease), "%d", lease_s);
	if (redis_cmd(r, lease_reply, t, "EVAL", lease_script, "2", k->lock,
		k->leases, token, ttl, k->worker_id, lease,
		(char *)NULL) != 0) {
		free(t);
		return -1;
	}
	return 0;
}

static const char release_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[2]) "
    "return 1";

int
queue_lease_release(struct redis *r, const struct queue_keys *k,
    const char *token, queue_done_cb *cb, void *arg)
{
	struct queue_txn *t = txn_new(cb, arg);

	if (redis_cmd(r, lease_reply, t, "EVAL", release_script, "2", k->lock,
		k->leases, token, k->worker_id, (char *)NULL) != 0) {
		free(t);
		return -1;
	}
	return 0;
}

/*
 * KEYS: leases, stats, dead, results channel, results log.
 * ARGV: namespace, self ("" for the expired leases), max redeliveries,
 * result TTL, results log length.
 *
 * A sweep_shard over the limit is not dead-lettered but given back with
 * "gave_up": the worker that claims it records its range as failed
 * without running it, so that the sweep still ends with a result.
 *
 * A message goes back to the queue of its type: <ns>:queue:sweeps for a
 * retention_sweep, <ns>:queue:jobs for anything else (a message that does
 * not parse is dead-lettered by whoever claims it next).  Processing lists
 * hold at most a worker's concurrency, so the loop is short.
 */
static const char reap_script[] =
    "local ns = ARGV[1] "
    "local ids "
    "if ARGV[2] ~= '' then ids = {ARGV[2]} else "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16) "
    "end "
    "local back, dead, reaped = 0, 0, {} "
    "for _, id in ipairs(ids) do "
    "local proc = ns .. ':processing:' .. id "
    "while true do "
    "local m = redis.call('LPOP', proc) "
    "if not m then break end "
    "local ok, d = pcall(cjson.decode, m) "
    "if not ok or type(d) ~= 'table' then d = {} end "
    "local q = ns .. ':queue:jobs' "
    "if d.type == 'retention_sweep' or d.type == 'sweep_shard' then "
    "q = ns .. ':queue:sweeps' end "
    "local n = 0 "
    "if type(d.id) == 'string' then "
    "local ck = ns .. ':redelivered:' .. d.id "
    "n = redis.call('INCR', ck) redis.call('EXPIRE', ck, ARGV[4]) end "
    "local msg = 'its worker stopped while running it ' .. n .. "
    "' times (killed or lost); not run again' "
    "if n > tonumber(ARGV[3]) and d.type == 'sweep_shard' and "
    "d.gave_up == nil and string.sub(m, 1, 1) == '{' then "
    "redis.call('RPUSH', q, '{\"gave_up\":\"redelivery_limit\",' .. "
    "string.sub(m, 2)) dead = dead + 1 "
    "elseif n > tonumber(ARGV[3]) then "
    "redis.call('LPUSH', KEYS[3], cjson.encode({id = d.id, raw = m, "
    "worker = id, reason = {code = 'redelivery_limit', message = msg}})) "
    "local r = cjson.encode({id = d.id, type = d.type, status = 'failed', "
    "job_id = d.job_id, dry_run = d.dry_run == true, "
    "errors = {{code = 'redelivery_limit', message = msg}}}) "
    "redis.call('SET', ns .. ':result:' .. d.id, r, 'EX', ARGV[4]) "
    "redis.call('PUBLISH', KEYS[4], r) "
    "redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'result', r) "
    "dead = dead + 1 "
    "else redis.call('RPUSH', q, m) back = back + 1 end "
    "end "
    "if ARGV[2] == '' then redis.call('ZREM', KEYS[1], id) "
    "redis.call('DEL', ns .. ':worker:' .. id) "
    "table.insert(reaped, id) end "
    "end "
    "if back > 0 then redis.call('HINCRBY', KEYS[2], 'redelivered', back) end "
    "if dead > 0 then "
    "redis.call('HINCRBY', KEYS[2], 'redelivery_dead', dead) end "
    "return {back, dead, table.concat(reaped, ' ')}";

struct queue_reap_txn {
	queue_reaped_cb *cb;
	void		*arg;
};

static void
reap_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct queue_reap_txn	 *t = arg;
	const struct redis_reply *e[3];
	size_t			  i;

	if (reply == NULL || redis_reply_type(reply) != REDIS_R_ARRAY ||
	    redis_reply_len(reply) != 3) {
		t->cb(t->arg, -1, 0, NULL);
		free(t);
		return;
	}
	for (i = 0; i < 3; i++)
		e[i] = redis_reply_elem(reply, i);
	t->cb(t->arg, redis_reply_int(e[0]), redis_reply_int(e[1]),
	    redis_reply_str(e[2], NULL));
	free(t);
}

int
queue_reap(struct redis *r, const struct queue_keys *k, const char *self,
    int max_redeliveries, queue_reaped_cb *cb, void *arg)
{
	struct queue_reap_txn *t = xmalloc(sizeof(*t));
	char		       max[16], ttl[16];

	t->cb = cb;
	t->arg = arg;
	snprintf(max, sizeof(max), "%d", max_redeliveries);
	snprintf(ttl, sizeof(ttl), "%d", QUEUE_RESULT_TTL_S);
	if (redis_cmd(r, reap_reply, t, "EVAL", reap_script, "5", k->leases,
		k->stats, k->dead, k->results, k->results_log, k->ns,
		self != NULL ? self : "", max, ttl, QUEUE_RESULTS_LOG_MAX,
		(char *)NULL) != 0) {
		free(t);
		return -1;
	}
	return 0;
}

static const char claim_script[] =
    "local out = {} "
    "for i = 1, tonumber(ARGV[1]) do "
    "local m = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') "
    "if not m then break end "
    "out[i] = m end "
    "return out";

int
queue_claim(struct redis *r, const struct queue_keys *k, const char *queue,
    int max, redis_cb *cb, void *arg)
{
	char n[16];

	snprintf(n, sizeof(n), "%d", max < 1 ? 1 : max > 100 ? 100 : max);
	return redis_cmd(r, cb, arg, "EVAL", claim_script, "2", queue,
	    k->processing, n, (char *)NULL);
}

/* Sharded sweeps (docs/PROTOCOL.md). */

char *
queue_sweep_key(const struct queue_keys *k, const char *sweep_id)
{
	return xasprintf("%s:sweep:%s", k->ns, sweep_id);
}

/*
 * Acknowledge raw and, in the same transaction, set fields of the sweep's
 * state (after deleting it, with reset; without, only if the state is
 * still run's) and push messages to the right end of the queue, where
 * the next claim takes them.  A state of another run: acknowledged,
 * nothing set or pushed, 2.
 *
 * KEYS: processing, state, queue.
 * ARGV: raw, reset, TTL, run, 2 * number of fields, field, value, ...,
 * messages.
 */
static const char spawn_script[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) "
    "elseif redis.call('HGET', KEYS[2], 'run') ~= ARGV[4] then return 2 end "
    "local nf = tonumber(ARGV[5]) "
    "for i = 6, 5 + nf, 2 do "
    "redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end "
    "redis.call('EXPIRE', KEYS[2], ARGV[3]) "
    "for i = 6 + nf, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end "
    "return 1";

int
queue_sweep_spawn(struct redis *r, const struct queue_keys *k,
    const char *sweep_id, const char *run, int reset, const char *const *fields,
    size_t nfields, const char *raw, size_t rawlen, const char *const *msgs,
    size_t nmsgs, queue_done_cb *cb, void *arg)
{
	size_t		  argc = 11 + 2 * nfields + nmsgs, i, a = 0;
	const char	**argv = xcalloc(argc, sizeof(*argv));
	size_t		 *lens = xcalloc(argc, sizeof(*lens));
	char		 *state = queue_sweep_key(k, sweep_id);
	char		  ttl[16], nf[16];
	struct queue_txn *t;
	int		  rc;

	snprintf(ttl, sizeof(ttl), "%d", QUEUE_RESULT_TTL_S);
	snprintf(nf, sizeof(nf), "%zu", 2 * nfields);
	argv[a++] = "EVAL";
	argv[a++] = spawn_script;
	argv[a++] = "3";
	argv[a++] = k->processing;
	argv[a++] = state;
	argv[a++] = k->sweeps;
	argv[a++] = raw;
	argv[a++] = reset ? "1" : "0";
	argv[a++] = ttl;
	argv[a++] = run;
	argv[a++] = nf;
	for (i = 0; i < 2 * nfields; i++)
		argv[a++] = fields[i];
	for (i = 0; i < nmsgs; i++)
		argv[a++] = msgs[i];
	for (i = 0; i < argc; i++)
		lens[i] = i == 6 ? rawlen : strlen(argv[i]);
	t = txn_new(cb, arg);
	rc = redis_cmd_argv(r, queue_ack_reply, t, (int)argc, argv, lens);
	free(state);
	free(argv);
	free(lens);
	if (rc != 0) {
		free(t);
		return -1;
	}
	return 0;
}

/*
 * Record one shard's report.  A message from an earlier run of the sweep
 * (another run token) is acknowledged and forgotten: -1.  A message no
 * longer ours records nothing: 0.  Otherwise the report is stored and, if
 * others are still missing, the message acknowledged: 1.  The shard that
 * completes the phase is not acknowledged here; it gets 2 and every
 * report (the plans, then for execute the executions), and must close the
 * phase in a transaction of its own that acknowledges it.  A failed shard
 * also sets "stop", which shards not yet started honour.
 *
 * KEYS: processing, state.
 * ARGV: raw, run, phase, index, shards, report, failed, TTL.
 */
static const char record_script[] =
    "if redis.call('HGET', KEYS[2], 'run') ~= ARGV[2] then "
    "redis.call('LREM', KEYS[1], 1, ARGV[1]) return {-1} end "
    "if not redis.call('LPOS', KEYS[1], ARGV[1]) then return {0} end "
    "local f = ARGV[3] .. ':' .. ARGV[4] "
    "if redis.call('HSET', KEYS[2], f, ARGV[6]) == 1 then "
    "redis.call('HINCRBY', KEYS[2], ARGV[3] .. '_done', 1) end "
    "if ARGV[7] == '1' then redis.call('HSETNX', KEYS[2], 'stop', f) "
    "elseif redis.call('HGET', KEYS[2], 'stop') == f then "
    "redis.call('HDEL', KEYS[2], 'stop') end "
    "redis.call('EXPIRE', KEYS[2], ARGV[8]) "
    "local n = tonumber(ARGV[5]) "
    "if tonumber(redis.call('HGET', KEYS[2], ARGV[3] .. '_done')) < n then "
    "redis.call('LREM', KEYS[1], 1, ARGV[1]) return {1} end "
    "local out = {2} "
    "for i = 0, n - 1 do "
    "out[#out + 1] = redis.call('HGET', KEYS[2], 'plan:' .. i) or '' end "
    "if ARGV[3] == 'execute' then for i = 0, n - 1 do "
    "out[#out + 1] = redis.call('HGET', KEYS[2], 'execute:' .. i) or '' "
    "end end "
    "return out";

int
queue_shard_record(struct redis *r, const struct queue_keys *k,
    const char *sweep_id, const char *run, const char *phase, int index,
    int shards, const char *report, int failed, const char *raw, size_t rawlen,
    redis_cb *cb, void *arg)
{
	char	   *state = queue_sweep_key(k, sweep_id);
	char	    ttl[16], idx[16], n[16];
	const char *argv[13];
	size_t	    lens[13];
	int	    i, rc;

	snprintf(ttl, sizeof(ttl), "%d", QUEUE_RESULT_TTL_S);
	snprintf(idx, sizeof(idx), "%d", index);
	snprintf(n, sizeof(n), "%d", shards);
	argv[0] = "EVAL";
	argv[1] = record_script;
	argv[2] = "2";
	argv[3] = k->processing;
	argv[4] = state;
	argv[5] = raw;
	argv[6] = run;
	argv[7] = phase;
	argv[8] = idx;
	argv[9] = n;
	argv[10] = report;
	argv[11] = failed ? "1" : "0";
	argv[12] = ttl;
	for (i = 0; i < 13; i++)
		lens[i] = i == 5 ? rawlen : strlen(argv[i]);
	rc = redis_cmd_argv(r, cb, arg, 13, argv, lens);
	free(state);
	return rc;
}
