/*
 * The CLI's side of the queue protocol: one Redis connection for commands,
 * and enqueue-and-wait for any task type (docs/PROTOCOL.md).
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "client.h"
#include "log.h"
#include "redis.h"

/* The state of one client_enqueue(); lives on its stack. */
struct enqueue {
	struct client		 *c;
	const struct client_task *t;
	struct redis		 *sub;	/* results channel */
	struct redis		 *prog; /* progress channel, or NULL */
	struct event		 *timeout_ev;
	cJSON			 *last; /* last interim result seen */
	int			  sub_requested, sub_ready;
	int			  prog_requested, prog_ready;
	int			  push_sent, pushed;
	int			  done;
	int			  line_shown; /* a progress line is on stderr */
};

static void
connect_state(struct redis *r, int up, void *arg)
{
	struct client *c = arg;

	if (!up)
		c->exit_code = EX_UNAVAILABLE;
	event_base_loopexit(c->base, NULL);
}

int
client_connect(struct client *c)
{
	c->cmd = redis_new(c->base, c->dns, &c->cfg.redis, "commands");
	redis_set_reconnect(c->cmd, 0);
	redis_set_state_cb(c->cmd, connect_state, c);
	redis_connect(c->cmd);
	event_base_dispatch(c->base);
	if (!redis_is_ready(c->cmd)) {
		fprintf(stderr,
		    "clipsweep: cannot connect to Redis at %s: %s\n",
		    c->cfg.redis.redacted, redis_last_error(c->cmd));
		c->exit_code = EX_UNAVAILABLE;
		return -1;
	}
	redis_set_state_cb(c->cmd, NULL, NULL);
	redis_set_reconnect(c->cmd, 1);
	return 0;
}

void
client_exit(struct client *c, int code)
{
	c->exit_code = code;
	event_base_loopexit(c->base, NULL);
}

int
client_parse_wait(const char *arg, int def, int *out)
{
	char *end;
	long  v;

	if (arg == NULL) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < 1 ||
	    v > CLIENT_WAIT_MAX_S)
		return -1;
	*out = (int)v;
	return 0;
}

/* Progress. */

static void
enq_line_clear(struct enqueue *e)
{
	if (!e->line_shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	e->line_shown = 0;
}

static void
enq_line_show(struct enqueue *e, const char *text)
{
	struct winsize ws;
	int	       width = 79;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		width = ws.ws_col - 1; /* a wrapped line cannot be redrawn */
	fprintf(stderr, "\r%.*s\033[K", width, text);
	fflush(stderr);
	e->line_shown = 1;
}

static void
enq_progress(struct redis *r, const char *payload, size_t len, void *arg)
{
	struct enqueue *e = arg;
	const cJSON    *id;
	cJSON	       *o;
	struct buf	line;

	if (e->done || (o = cJSON_ParseWithLength(payload, len)) == NULL)
		return;
	id = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (cJSON_IsString(id) && strcmp(id->valuestring, e->t->id) == 0) {
		buf_init(&line);
		e->t->progress(o, &line);
		if (line.len > 0)
			enq_line_show(e, line.data);
		buf_free(&line);
	}
	cJSON_Delete(o);
}

/* Results. */

static void
enq_done(struct enqueue *e, const cJSON *result)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "status");

	e->done = 1;
	enq_line_clear(e);
	client_print_result(e->c, result);
	client_exit(e->c,
	    cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0
		? 0
		: EXIT_NOT_OK);
}

/* A result for us: a final one ends the command, others are news. */
static void
enq_consider(struct enqueue *e, const char *payload, size_t len)
{
	cJSON	    *r;
	const cJSON *id, *st;

	if (e->done || (r = cJSON_ParseWithLength(payload, len)) == NULL)
		return;
	id = cJSON_GetObjectItemCaseSensitive(r, "id");
	st = cJSON_GetObjectItemCaseSensitive(r, "status");
	if (!cJSON_IsString(id) || strcmp(id->valuestring, e->t->id) != 0 ||
	    !cJSON_IsString(st)) {
		cJSON_Delete(r);
		return;
	}
	if (result_status_final(st->valuestring)) {
		enq_done(e, r);
		cJSON_Delete(r);
		return;
	}
	{
		/* Interim results go to stderr, with or without --json. */
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(r, "errors"), 0),
		    "code");
		const cJSON *next = cJSON_GetObjectItemCaseSensitive(
		    r, "next_attempt_at");

		enq_line_clear(e);
		fprintf(stderr, "clipsweep: task %s is %s%s%s%s%s\n", e->t->id,
		    st->valuestring, cJSON_IsString(code) ? " after " : "",
		    cJSON_IsString(code) ? code->valuestring : "",
		    cJSON_IsString(next) ? "; next attempt at " : "",
		    cJSON_IsString(next) ? next->valuestring : "");
	}
	cJSON_Delete(e->last);
	e->last = r;
}

static void
enq_message(struct redis *r, const char *payload, size_t len, void *arg)
{
	enq_consider(arg, payload, len);
}

static void
enq_stored(struct redis *r, const struct redis_reply *reply, void *arg)
{
	size_t	    len;
	const char *s;

	if (reply != NULL && redis_reply_type(reply) == REDIS_R_STRING &&
	    (s = redis_reply_str(reply, &len)) != NULL)
		enq_consider(arg, s, len);
}

/* Results published while the subscription was down are only stored. */
static void
enq_check_stored(struct enqueue *e)
{
	char *key = queue_result_key(&e->c->keys, e->t->id);

	if (redis_cmd(e->c->cmd, enq_stored, e, "GET", key, (char *)NULL) != 0)
		log_debug("Redis is down; the next reconnect checks again");
	free(key);
}

static void
enq_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct enqueue *e = arg;

	enq_line_clear(e);
	if (e->last != NULL) {
		fprintf(stderr,
		    "clipsweep: no final result for task %s "
		    "within %d s; the last one was:\n",
		    e->t->id, e->t->wait_s);
		client_print_result(e->c, e->last);
	} else
		fprintf(stderr,
		    "clipsweep: no result for task %s within %d s; "
		    "it is still queued or running (see 'clipsweep watch')\n",
		    e->t->id, e->t->wait_s);
	client_exit(e->c, EX_TEMPFAIL);
}

/* Pushing. */

static void
enq_pushed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct enqueue *e = arg;
	struct timeval	tv = {e->t->wait_s, 0};

	if (redis_reply_failed(reply)) {
		fprintf(stderr, "clipsweep: enqueuing to %s failed: %s\n",
		    e->t->queue,
		    reply ? redis_reply_str(reply, NULL) : "connection lost");
		client_exit(e->c, EX_UNAVAILABLE);
		return;
	}
	e->pushed = 1;
	if (e->t->wait_s == 0) {
		if (e->c->json)
			printf("%s\n", e->t->json);
		else
			fprintf(stderr, "clipsweep: enqueued %s task %s\n",
			    e->t->type, e->t->id);
		client_exit(e->c, 0);
		return;
	}
	if (e->done)
		return;
	if (!e->c->json)
		fprintf(stderr,
		    "clipsweep: enqueued %s task %s; waiting up to "
		    "%d s for its result\n",
		    e->t->type, e->t->id, e->t->wait_s);
	evtimer_add(e->timeout_ev, &tv);
}

static void
enq_push(struct enqueue *e)
{
	e->push_sent = 1;
	if (redis_cmd(e->c->cmd, enq_pushed, e, "LPUSH", e->t->queue,
		e->t->json, (char *)NULL) != 0) {
		fprintf(stderr,
		    "clipsweep: Redis connection lost before "
		    "enqueuing\n");
		client_exit(e->c, EX_UNAVAILABLE);
	}
}

/* Push once every subscription we wait for is in place. */
static void
enq_maybe_push(struct enqueue *e)
{
	if (!e->push_sent && e->sub_ready && (e->prog == NULL || e->prog_ready))
		enq_push(e);
}

/* Subscriptions. */

static void
enq_subscribed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct enqueue *e = arg;

	if (redis_reply_failed(reply)) {
		fprintf(stderr,
		    "clipsweep: cannot subscribe to %s: %s; "
		    "nothing was enqueued\n",
		    e->c->keys.results,
		    reply ? redis_reply_str(reply, NULL) : "connection lost");
		if (!e->push_sent)
			client_exit(e->c, EX_UNAVAILABLE);
		return;
	}
	e->sub_ready = 1;
	enq_maybe_push(e);
}

static void
enq_sub_state(struct redis *r, int up, void *arg)
{
	struct enqueue *e = arg;

	if (up && !e->sub_requested) {
		e->sub_requested = 1;
		if (redis_subscribe(r, e->c->keys.results, enq_message,
			enq_subscribed, e) != 0) {
			fprintf(stderr, "clipsweep: cannot subscribe to %s\n",
			    e->c->keys.results);
			client_exit(e->c, EX_UNAVAILABLE);
		}
	} else if (up && e->pushed)
		enq_check_stored(e); /* back after a reconnect */
	else if (!up && !e->push_sent) {
		fprintf(stderr,
		    "clipsweep: cannot connect to Redis at %s: %s\n",
		    e->c->cfg.redis.redacted, redis_last_error(r));
		client_exit(e->c, EX_UNAVAILABLE);
	}
}

/* Progress is a nicety: when it cannot be had, go on without it. */
static void
enq_prog_subscribed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct enqueue *e = arg;

	e->prog_ready = 1;
	enq_maybe_push(e);
}

static void
enq_prog_state(struct redis *r, int up, void *arg)
{
	struct enqueue *e = arg;

	if (up && !e->prog_requested) {
		e->prog_requested = 1;
		if (redis_subscribe(r, e->c->keys.progress, enq_progress,
			enq_prog_subscribed, e) != 0)
			enq_prog_subscribed(r, NULL, e);
	} else if (!up && !e->prog_ready)
		enq_prog_subscribed(r, NULL, e);
}

static void
enq_start_waiting(struct enqueue *e)
{
	struct client *c = e->c;

	e->timeout_ev = evtimer_new(c->base, enq_timeout, e);
	e->sub = redis_new(c->base, c->dns, &c->cfg.redis, "results");
	redis_set_state_cb(e->sub, enq_sub_state, e);
	if (e->t->progress != NULL && isatty(STDERR_FILENO)) {
		e->prog = redis_new(c->base, c->dns, &c->cfg.redis, "progress");
		redis_set_state_cb(e->prog, enq_prog_state, e);
		redis_connect(e->prog);
	}
	redis_connect(e->sub);
}

int
client_enqueue(struct client *c, const struct client_task *t)
{
	struct enqueue e;

	memset(&e, 0, sizeof(e));
	e.c = c;
	e.t = t;
	if (client_connect(c) != 0)
		return c->exit_code;
	if (t->wait_s > 0)
		enq_start_waiting(&e);
	else
		enq_push(&e);
	event_base_dispatch(c->base);
	enq_line_clear(&e);
	redis_free(e.sub);
	redis_free(e.prog);
	if (e.timeout_ev != NULL)
		event_free(e.timeout_ev);
	cJSON_Delete(e.last);
	return c->exit_code;
}

/* Synchronous calls, for the operator commands. */

struct call {
	cJSON *out;
	int    done;
	int    failed;
	char   why[256];
};

static cJSON *
reply_json(const struct redis_reply *r)
{
	cJSON *a;
	size_t i, len;

	switch (redis_reply_type(r)) {
	case REDIS_R_STRING:
	case REDIS_R_STATUS: {
		const char *s = redis_reply_str(r, &len);
		return cJSON_CreateString(s != NULL ? s : "");
	}
	case REDIS_R_INTEGER:
		return cJSON_CreateNumber((double)redis_reply_int(r));
	case REDIS_R_ARRAY:
		a = cJSON_CreateArray();
		for (i = 0; i < redis_reply_len(r); i++)
			cJSON_AddItemToArray(
			    a, reply_json(redis_reply_elem(r, i)));
		return a;
	default:
		return cJSON_CreateNull();
	}
}

static void
call_reply(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct call *k = arg;

	k->done = 1;
	if (reply == NULL) {
		k->failed = 1;
		snprintf(k->why, sizeof(k->why), "%s", redis_last_error(r));
	} else if (redis_reply_type(reply) == REDIS_R_ERROR) {
		k->failed = 1;
		snprintf(
		    k->why, sizeof(k->why), "%s", redis_reply_str(reply, NULL));
	} else
		k->out = reply_json(reply);
}

cJSON *
client_call(struct client *c, int argc, const char **argv)
{
	struct call k = {0};

	if (redis_cmd_argv(c->cmd, call_reply, &k, argc, argv, NULL) != 0) {
		k.failed = 1;
		snprintf(k.why, sizeof(k.why), "the connection is closing");
	}
	while (!k.done && !k.failed)
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
			break;
	if (k.failed || !k.done) {
		fprintf(stderr, "clipsweep: Redis %s failed: %s\n", argv[0],
		    k.failed ? k.why : "no answer");
		c->exit_code = EX_UNAVAILABLE;
		cJSON_Delete(k.out);
		return NULL;
	}
	return k.out;
}
