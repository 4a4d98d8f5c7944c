/*
 * clipsweep job JOB_ID [--dry-run] [--wait[=SECONDS]] [--json]
 *
 * Enqueue a per-job cleanup.  With --wait, subscribe to the results first,
 * then push, so that the result cannot slip by unseen.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "client.h"
#include "log.h"
#include "redis.h"
#include "task.h"

#define DEFAULT_WAIT_S 120

struct job_cmd {
	struct client *c;
	char	       id[37];
	char	      *task; /* the message, as pushed */
	int	       wait_s;
	struct redis  *sub;
	struct event  *timeout_ev;
	cJSON	      *last; /* last interim result seen */
	int	       pushed;
};

static void
job_done(struct job_cmd *j, const cJSON *result)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "status");

	client_print_result(j->c, result);
	client_exit(j->c,
	    cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0
		? 0
		: EXIT_NOT_OK);
}

/* A result for us: final ones end the command, others are progress. */
static void
job_consider(struct job_cmd *j, const char *payload, size_t len)
{
	cJSON	    *r = cJSON_ParseWithLength(payload, len);
	const cJSON *id, *st;

	if (r == NULL)
		return;
	id = cJSON_GetObjectItemCaseSensitive(r, "id");
	st = cJSON_GetObjectItemCaseSensitive(r, "status");
	if (!cJSON_IsString(id) || strcmp(id->valuestring, j->id) != 0 ||
	    !cJSON_IsString(st)) {
		cJSON_Delete(r);
		return;
	}
	if (result_status_final(st->valuestring)) {
		job_done(j, r);
		cJSON_Delete(r);
		return;
	}
	if (!j->c->json)
		fprintf(stderr, "clipsweep: task %s is %s\n", j->id,
		    st->valuestring);
	cJSON_Delete(j->last);
	j->last = r;
}

static void
job_message(struct redis *r, const char *payload, size_t len, void *arg)
{
	job_consider(arg, payload, len);
}

static void
job_stored(struct redis *r, const struct redis_reply *reply, void *arg)
{
	size_t	    len;
	const char *s;

	if (reply != NULL && (s = redis_reply_str(reply, &len)) != NULL &&
	    redis_reply_type(reply) == REDIS_R_STRING)
		job_consider(arg, s, len);
}

static void
job_check_stored(struct job_cmd *j)
{
	char *key = queue_result_key(&j->c->keys, j->id);

	if (redis_cmd(j->c->cmd, job_stored, j, "GET", key, (char *)NULL) != 0)
		log_debug("Redis is down; the next reconnect checks again");
	free(key);
}

static void
job_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct job_cmd *j = arg;

	if (j->last != NULL) {
		fprintf(stderr,
		    "clipsweep: no final result for task %s "
		    "within %d s; the last one was:\n",
		    j->id, j->wait_s);
		client_print_result(j->c, j->last);
	} else
		fprintf(stderr,
		    "clipsweep: no result for task %s within %d s; "
		    "it is still queued or running (see 'clipsweep watch')\n",
		    j->id, j->wait_s);
	client_exit(j->c, EX_TEMPFAIL);
}

static void
job_pushed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct job_cmd *j = arg;
	struct timeval	tv = {j->wait_s, 0};

	if (redis_reply_failed(reply)) {
		fprintf(stderr, "clipsweep: enqueuing failed: %s\n",
		    reply ? redis_reply_str(reply, NULL) : "connection lost");
		client_exit(j->c, EX_UNAVAILABLE);
		return;
	}
	j->pushed = 1;
	if (j->sub == NULL) {
		if (j->c->json)
			printf("%s\n", j->task);
		else
			fprintf(stderr,
			    "clipsweep: enqueued job_cleanup task %s\n", j->id);
		client_exit(j->c, 0);
		return;
	}
	if (!j->c->json)
		fprintf(stderr,
		    "clipsweep: enqueued task %s; waiting up to "
		    "%d s for its result\n",
		    j->id, j->wait_s);
	evtimer_add(j->timeout_ev, &tv);
}

static void
job_push(struct job_cmd *j)
{
	char *queue = j->c->keys.jobs;

	if (redis_cmd(j->c->cmd, job_pushed, j, "LPUSH", queue, j->task,
		(char *)NULL) != 0) {
		fprintf(stderr,
		    "clipsweep: Redis connection lost before "
		    "enqueuing\n");
		client_exit(j->c, EX_UNAVAILABLE);
	}
}

static void
job_subscribed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct job_cmd *j = arg;

	if (redis_reply_failed(reply)) {
		fprintf(stderr, "clipsweep: cannot subscribe to results: %s\n",
		    reply ? redis_reply_str(reply, NULL) : "connection lost");
		if (!j->pushed)
			client_exit(j->c, EX_UNAVAILABLE);
		return;
	}
	if (!j->pushed)
		job_push(j);
	else
		job_check_stored(j); /* we may have missed it meanwhile */
}

static void
job_sub_state(struct redis *r, int up, void *arg)
{
	struct job_cmd *j = arg;

	if (up && !j->pushed &&
	    redis_subscribe(
		r, j->c->keys.results, job_message, job_subscribed, j) != 0) {
		fprintf(stderr, "clipsweep: cannot subscribe to results\n");
		client_exit(j->c, EX_UNAVAILABLE);
	}
	if (!up && !j->pushed) {
		fprintf(stderr,
		    "clipsweep: cannot connect to Redis at %s: %s\n",
		    j->c->cfg.redis.redacted, redis_last_error(r));
		client_exit(j->c, EX_UNAVAILABLE);
	}
}

static char *
job_build(struct job_cmd *j, const char *job_id, int dry_run)
{
	cJSON *o = cJSON_CreateObject();
	char   ts[40], *s;

	uuid_v4(j->id);
	cJSON_AddStringToObject(o, "type", "job_cleanup");
	cJSON_AddStringToObject(o, "id", j->id);
	cJSON_AddStringToObject(o, "job_id", job_id);
	cJSON_AddBoolToObject(o, "dry_run", dry_run);
	format_time_ms(now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(o, "enqueued_at", ts);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int
job_parse_wait(const char *arg, int *out)
{
	char *end;
	long  v;

	if (arg == NULL) {
		*out = DEFAULT_WAIT_S;
		return 0;
	}
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 86400)
		return -1;
	*out = (int)v;
	return 0;
}

static int
job_exec(struct client *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"wait", optional_argument, NULL, 'w'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct job_cmd	  j;
	struct task	  t;
	struct task_error err;
	int		  ch, dry_run = 0;

	memset(&j, 0, sizeof(j));
	j.c = c;
	while ((ch = getopt_long(argc, argv, "nh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		case 'w':
			if (job_parse_wait(optarg, &j.wait_s) != 0) {
				fprintf(stderr,
				    "clipsweep job: --wait takes "
				    "1 to 86400 seconds, not '%s'\n",
				    optarg);
				return EX_USAGE;
			}
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			printf(
			    "usage: clipsweep job %s\n", cmd_job_entry.usage);
			return 0;
		default:
			fprintf(stderr, "usage: clipsweep job %s\n",
			    cmd_job_entry.usage);
			return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(
		    stderr, "usage: clipsweep job %s\n", cmd_job_entry.usage);
		return EX_USAGE;
	}
	j.task = job_build(&j, argv[optind], dry_run);
	/* Never enqueue what the worker would dead-letter. */
	if (task_parse(j.task, strlen(j.task), &t, &err) != 0) {
		fprintf(stderr, "clipsweep job: %s\n", err.message);
		cJSON_free(j.task);
		return EX_DATAERR;
	}
	task_free(&t);
	if (client_connect(c) != 0) {
		cJSON_free(j.task);
		return c->exit_code;
	}
	if (j.wait_s > 0) {
		j.timeout_ev = evtimer_new(c->base, job_timeout, &j);
		j.sub = redis_new(c->base, c->dns, &c->cfg.redis, "results");
		redis_set_state_cb(j.sub, job_sub_state, &j);
		redis_connect(j.sub);
	} else
		job_push(&j);
	event_base_dispatch(c->base);
	redis_free(j.sub);
	if (j.timeout_ev != NULL)
		event_free(j.timeout_ev);
	cJSON_Delete(j.last);
	cJSON_free(j.task);
	return c->exit_code;
}

const struct cmd_entry cmd_job_entry = {
    .name = "job",
    .usage = "JOB_ID [--dry-run] [--wait[=SECONDS]] [--json]",
    .exec = job_exec,
};
