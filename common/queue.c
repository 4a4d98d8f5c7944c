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
queue_exec_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct queue_txn *t = arg;
	int ok = reply != NULL && redis_reply_type(reply) == REDIS_R_ARRAY;

	t->cb(t->arg, ok);
	free(t);
}

int
queue_finish(struct redis *r, const struct queue_keys *k, const char *id,
    const char *result, const char *dead, const char *raw, size_t rawlen,
    queue_done_cb *cb, void *arg)
{
	struct queue_txn *t;
	char		  ttl[16];

	if (redis_cmd(r, NULL, NULL, "MULTI", (char *)NULL) != 0)
		return -1;
	if (dead != NULL &&
	    redis_cmd(r, NULL, NULL, "LPUSH", k->dead, dead, (char *)NULL) != 0)
		return -1;
	if (result != NULL && id != NULL) {
		char *key = queue_result_key(k, id);
		int   rc;

		snprintf(ttl, sizeof(ttl), "%d", QUEUE_RESULT_TTL_S);
		rc = redis_cmd(
		    r, NULL, NULL, "SET", key, result, "EX", ttl, (char *)NULL);
		free(key);
		if (rc != 0 ||
		    redis_cmd(r, NULL, NULL, "PUBLISH", k->results, result,
			(char *)NULL) != 0 ||
		    redis_cmd(r, NULL, NULL, "XADD", k->results_log, "MAXLEN",
			"~", QUEUE_RESULTS_LOG_MAX, "*", "result", result,
			(char *)NULL) != 0)
			return -1;
	}
	{
		const char *argv[4] = {"LREM", k->processing, "1", raw};
		size_t	    lens[4] = {4, strlen(k->processing), 1, rawlen};

		if (redis_cmd_argv(r, NULL, NULL, 4, argv, lens) != 0)
			return -1;
	}
	t = xmalloc(sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	if (redis_cmd(r, queue_exec_reply, t, "EXEC", (char *)NULL) != 0) {
		free(t);
		return -1;
	}
	return 0;
}
