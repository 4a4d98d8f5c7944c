/*
 * The operator's commands: what the queues hold and what happened.
 *
 *   clipsweep stats [--json]
 *   clipsweep result ID [--json]
 *   clipsweep dead list [--json] | show ID | retry ID | retry --all |
 *                  purge [--yes]
 *
 * They read and change the protocol's keys directly (docs/PROTOCOL.md);
 * every change is one Lua script, so that a worker dead-lettering at the
 * same moment never loses a message.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "queue.h"
#include "task.h"

#define LAST_RESULTS_SCAN "500" /* results:log entries read by stats */

/* The options a command allows (ops_options()). */
#define OPT_JSON 0x1
#define OPT_YES	 0x2
#define OPT_ALL	 0x4

/* Parse "--json" (and "--yes", "--all" where allowed); -1 on a bad option. */
struct ops_flags {
	int json, yes, all;
};

static int
ops_options(
    int argc, char **argv, int allow, struct ops_flags *f, const char *usage)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"yes", no_argument, NULL, 'y'},
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(f, 0, sizeof(*f));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: clipsweep %s\n", usage);
			exit(0);
		}
		if (ch == 'j' && (allow & OPT_JSON))
			f->json = 1;
		else if (ch == 'y' && (allow & OPT_YES))
			f->yes = 1;
		else if (ch == 'a' && (allow & OPT_ALL))
			f->all = 1;
		else {
			if (ch != '?')
				fprintf(stderr,
				    "clipsweep: %s is not an option "
				    "here\n",
				    argv[optind - 1]);
			fprintf(stderr, "usage: clipsweep %s\n", usage);
			return -1;
		}
	}
	return 0;
}

static void
print_json(const cJSON *o, int pretty)
{
	char *s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);

	printf("%s\n", s);
	cJSON_free(s);
}

static cJSON *
call(struct client *c, const char *a0, const char *a1, const char *a2,
    const char *a3)
{
	const char *argv[4] = {a0, a1, a2, a3};
	int	    argc = a3 ? 4 : a2 ? 3 : a1 ? 2 : 1;

	return client_call(c, argc, argv);
}

static long long
call_int(struct client *c, const char *a0, const char *a1)
{
	cJSON	 *r = call(c, a0, a1, NULL, NULL);
	long long v = cJSON_IsNumber(r) ? (long long)r->valuedouble : -1;

	cJSON_Delete(r);
	return v;
}

/* Every key matching pattern (SCAN, so a big keyspace is not blocked). */
static cJSON *
scan_keys(struct client *c, const char *pattern)
{
	cJSON *keys = cJSON_CreateArray(), *r, *k;
	char   cursor[32] = "0";

	do {
		const char *argv[6] = {
		    "SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
		r = client_call(c, 6, argv);
		if (r == NULL || cJSON_GetArraySize(r) != 2) {
			cJSON_Delete(r);
			cJSON_Delete(keys);
			return NULL;
		}
		snprintf(cursor, sizeof(cursor), "%s",
		    cJSON_GetStringValue(cJSON_GetArrayItem(r, 0)));
		cJSON_ArrayForEach(k, cJSON_GetArrayItem(r, 1))
		    cJSON_AddItemToArray(keys, cJSON_Duplicate(k, 0));
		cJSON_Delete(r);
	} while (strcmp(cursor, "0") != 0);
	return keys;
}

/* Milliseconds since the epoch of an ISO 8601 "…Z" time or a number. */
static double
time_ms(const cJSON *v)
{
	struct tm tm;
	char	 *rest;
	double	  frac = 0;

	if (cJSON_IsNumber(v))
		return v->valuedouble;
	if (!cJSON_IsString(v))
		return -1;
	memset(&tm, 0, sizeof(tm));
	rest = strptime(v->valuestring, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL)
		return -1;
	if (*rest == '.')
		frac = strtod(rest, &rest);
	if (*rest != 'Z')
		return -1;
	return ((double)timegm(&tm) + frac) * 1000.0;
}

/* stats */

static int
stats_exec(struct client *c, int argc, char **argv)
{
	struct ops_flags f;
	cJSON		*out, *queues, *keys = NULL, *k, *r, *workers, *last;
	double		 now = (double)now_ms(), oldest = -1;
	long long	 inflight = 0, n;
	char		*pattern;
	size_t		 plen = strlen(c->keys.ns);

	if (ops_options(argc, argv, OPT_JSON, &f, "stats [--json]") != 0 ||
	    optind != argc)
		return EX_USAGE;
	if (client_connect(c) != 0)
		return c->exit_code;
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "namespace", c->keys.ns);
	if ((r = call(c, "GET", c->keys.paused, NULL, NULL)) == NULL)
		goto fail;
	if (!cJSON_IsString(r))
		cJSON_AddNullToObject(out, "paused");
	else if ((k = cJSON_Parse(r->valuestring)) != NULL && cJSON_IsObject(k))
		cJSON_AddItemToObject(out, "paused", k);
	else { /* set by hand: paused all the same */
		cJSON_Delete(k);
		cJSON_AddTrueToObject(out, "paused");
	}
	cJSON_Delete(r);

	/* Queues: every <ns>:queue:*, with the oldest waiting task. */
	queues = cJSON_AddObjectToObject(out, "queues");
	pattern = xasprintf("%s:queue:*", c->keys.ns);
	keys = scan_keys(c, pattern);
	free(pattern);
	if (keys == NULL)
		goto fail;
	cJSON_ArrayForEach(k, keys)
	{
		const char *key = k->valuestring;
		cJSON	   *msg, *m;
		double	    t;

		if ((n = call_int(c, "LLEN", key)) < 0)
			goto fail;
		cJSON_AddNumberToObject(
		    queues, key + plen + strlen(":queue:"), (double)n);
		/* Workers claim from the right end: the oldest is there. */
		if ((msg = call(c, "LINDEX", key, "-1", NULL)) == NULL)
			goto fail;
		m = cJSON_Parse(cJSON_GetStringValue(msg));
		t = time_ms(cJSON_GetObjectItemCaseSensitive(m, "enqueued_at"));
		if (t > 0 && (oldest < 0 || t < oldest))
			oldest = t;
		cJSON_Delete(m);
		cJSON_Delete(msg);
	}
	cJSON_Delete(keys);
	keys = NULL;
	if (oldest > 0)
		cJSON_AddNumberToObject(out, "oldest_task_age_seconds",
		    (double)(long long)((now - oldest) / 1000.0));
	else
		cJSON_AddNullToObject(out, "oldest_task_age_seconds");

	/* In flight: every worker's processing list. */
	pattern = xasprintf("%s:processing:*", c->keys.ns);
	keys = scan_keys(c, pattern);
	free(pattern);
	if (keys == NULL)
		goto fail;
	cJSON_ArrayForEach(k, keys)
	{
		if ((n = call_int(c, "LLEN", k->valuestring)) < 0)
			goto fail;
		inflight += n;
	}
	cJSON_Delete(keys);
	keys = NULL;
	cJSON_AddNumberToObject(out, "in_flight", (double)inflight);
	if ((n = call_int(c, "ZCARD", c->keys.scheduled)) < 0)
		goto fail;
	cJSON_AddNumberToObject(out, "scheduled_retries", (double)n);
	if ((n = call_int(c, "LLEN", c->keys.dead)) < 0)
		goto fail;
	cJSON_AddNumberToObject(out, "dead_letters", (double)n);

	/* Workers whose lease has not lapsed (scores: expiry, Redis ms). */
	{
		const char *argv2[3] = {"TIME", NULL, NULL};
		char	    min[32];

		if ((r = client_call(c, 1, argv2)) == NULL)
			goto fail;
		snprintf(min, sizeof(min), "%s%03lld",
		    cJSON_GetStringValue(cJSON_GetArrayItem(r, 0)),
		    atoll(cJSON_GetStringValue(cJSON_GetArrayItem(r, 1))) /
			1000);
		cJSON_Delete(r);
		if ((r = call(c, "ZRANGEBYSCORE", c->keys.leases, min,
			 "+inf")) == NULL)
			goto fail;
		workers = cJSON_AddArrayToObject(out, "workers");
		cJSON_ArrayForEach(k, r)
		    cJSON_AddItemToArray(workers, cJSON_Duplicate(k, 0));
		cJSON_Delete(r);
	}

	/* The last final result of each type, newest first in the log. */
	last = cJSON_AddObjectToObject(out, "last_results");
	{
		const char *argv3[6] = {"XREVRANGE", c->keys.results_log, "+",
		    "-", "COUNT", LAST_RESULTS_SCAN};
		cJSON	   *e;

		if ((r = client_call(c, 6, argv3)) == NULL)
			goto fail;
		cJSON_ArrayForEach(e, r)
		{
			cJSON	   *fields = cJSON_GetArrayItem(e, 1), *res, *s;
			const char *type;
			int	    i;

			for (i = 0; i + 1 < cJSON_GetArraySize(fields); i += 2)
				if (strcmp(cJSON_GetStringValue(
					       cJSON_GetArrayItem(fields, i)),
					"result") == 0)
					break;
			res = cJSON_Parse(cJSON_GetStringValue(
			    cJSON_GetArrayItem(fields, i + 1)));
			type = cJSON_GetStringValue(
			    cJSON_GetObjectItemCaseSensitive(res, "type"));
			if (type == NULL || cJSON_HasObjectItem(last, type) ||
			    !result_status_final(cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(
				    res, "status")))) {
				cJSON_Delete(res);
				continue;
			}
			s = cJSON_AddObjectToObject(last, type);
			cJSON_AddItemToObject(s, "id",
			    cJSON_Duplicate(
				cJSON_GetObjectItemCaseSensitive(res, "id"),
				0));
			cJSON_AddItemToObject(s, "status",
			    cJSON_Duplicate(
				cJSON_GetObjectItemCaseSensitive(res, "status"),
				0));
			cJSON_AddItemToObject(s, "finished_at",
			    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
						res, "finished_at"),
				0));
			cJSON_AddItemToObject(s, "message",
			    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
						res, "message"),
				0));
			cJSON_Delete(res);
		}
		cJSON_Delete(r);
	}

	if (f.json)
		print_json(out, 0);
	else {
		cJSON *q, *w, *l;

		const cJSON *p = cJSON_GetObjectItemCaseSensitive(
		    out, "paused");

		printf("namespace         %s\n", c->keys.ns);
		if (cJSON_IsObject(p))
			printf("PAUSED            since %s by %s%s%s\n",
			    client_str_field(p, "at", "?"),
			    client_str_field(p, "by", "?"),
			    cJSON_HasObjectItem(p, "reason") ? ": " : "",
			    client_str_field(p, "reason", ""));
		else if (!cJSON_IsNull(p))
			printf(
			    "PAUSED            (%s is set)\n", c->keys.paused);
		cJSON_ArrayForEach(q, queues) printf(
		    "queue %-11s %.0f waiting\n", q->string, q->valuedouble);
		if (oldest > 0)
			printf("oldest task       %.0f s old\n",
			    (now - oldest) / 1000.0);
		printf("in flight         %lld\n", inflight);
		printf("scheduled retries %.0f\n",
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
			out, "scheduled_retries")));
		printf("dead letters      %.0f\n",
		    cJSON_GetNumberValue(
			cJSON_GetObjectItemCaseSensitive(out, "dead_letters")));
		w = cJSON_GetObjectItemCaseSensitive(out, "workers");
		printf("workers alive     %d", cJSON_GetArraySize(w));
		cJSON_ArrayForEach(k, w)
		    printf("%s%s", k == w->child ? " (" : ", ", k->valuestring);
		printf("%s\n", cJSON_GetArraySize(w) > 0 ? ")" : "");
		cJSON_ArrayForEach(l, last)
		{
			const char *msg = cJSON_GetStringValue(
			    cJSON_GetObjectItemCaseSensitive(l, "message"));
			printf("last %-12s %s %s at %s%s%s\n", l->string,
			    cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(l, "id")),
			    cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(l, "status")),
			    cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(
				    l, "finished_at")),
			    msg ? ": " : "", msg ? msg : "");
		}
	}
	cJSON_Delete(out);
	return 0;
fail:
	cJSON_Delete(keys);
	cJSON_Delete(out);
	return c->exit_code != 0 ? c->exit_code : EX_UNAVAILABLE;
}

const struct cmd_entry cmd_stats_entry = {
    .name = "stats",
    .usage = "[--json]",
    .exec = stats_exec,
};

/* result */

static int
result_exec(struct client *c, int argc, char **argv)
{
	struct ops_flags f;
	cJSON		*r, *res;
	char		*key;

	if (ops_options(argc, argv, OPT_JSON, &f, "result ID [--json]") != 0)
		return EX_USAGE;
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: clipsweep result ID [--json]\n");
		return EX_USAGE;
	}
	c->json = f.json;
	if (client_connect(c) != 0)
		return c->exit_code;
	key = queue_result_key(&c->keys, argv[optind]);
	r = call(c, "GET", key, NULL, NULL);
	free(key);
	if (r == NULL)
		return c->exit_code;
	if (!cJSON_IsString(r)) {
		cJSON_Delete(r);
		fprintf(stderr,
		    "clipsweep: no result stored for '%s' (results are kept "
		    "7 days)\n",
		    argv[optind]);
		return EXIT_NOT_OK;
	}
	if ((res = cJSON_Parse(r->valuestring)) == NULL) {
		fprintf(stderr, "clipsweep: the result of '%s' is not JSON\n",
		    argv[optind]);
		cJSON_Delete(r);
		return EX_DATAERR;
	}
	client_print_result(c, res);
	cJSON_Delete(r);
	cJSON_Delete(res);
	return 0;
}

const struct cmd_entry cmd_result_entry = {
    .name = "result",
    .usage = "ID [--json]",
    .exec = result_exec,
};

/* dead */

#define DEAD_ARGS                                                              \
	"list [--json] | show ID | retry ID | retry --all | purge [--yes]"
#define DEAD_USAGE "dead " DEAD_ARGS

/*
 * Retry: remove the exact dead letter and queue its message, in one
 * script, so that a letter is never both gone and not queued.
 */
static const char retry_script[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then "
    "redis.call('LPUSH', KEYS[2], ARGV[2]) return 1 end return 0";
/*
 * Purge: the ARGV[1] oldest letters (the right end), at most all of them:
 * letters that arrive while the operator confirms are not deleted unseen.
 */
static const char purge_script[] =
    "local len = redis.call('LLEN', KEYS[1]) "
    "local n = tonumber(ARGV[1]) if n > len then n = len end "
    "if n == len then redis.call('DEL', KEYS[1]) "
    "else redis.call('LTRIM', KEYS[1], 0, len - n - 1) end return n";

/*
 * The dead letters, oldest first: letters are pushed at the left end, so
 * "#N" (the Nth oldest) keeps naming the same letter as new ones arrive.
 */
static cJSON *
dead_letters(struct client *c)
{
	cJSON *r = call(c, "LRANGE", c->keys.dead, "0", "-1"), *out;
	int    i;

	if (r == NULL)
		return NULL;
	out = cJSON_CreateArray();
	for (i = cJSON_GetArraySize(r) - 1; i >= 0; i--)
		cJSON_AddItemToArray(out, cJSON_DetachItemFromArray(r, i));
	cJSON_Delete(r);
	return out;
}

/* The letter with this id, or "#N" for the Nth in `dead list`. */
static cJSON *
dead_find(cJSON *letters, const char *id)
{
	cJSON *l;
	int    i = 0, want = -1;

	if (id[0] == '#')
		want = atoi(id + 1);
	cJSON_ArrayForEach(l, letters)
	{
		cJSON	   *d = cJSON_Parse(l->valuestring);
		const char *did = cJSON_GetStringValue(
		    cJSON_GetObjectItemCaseSensitive(d, "id"));
		int match = want >= 0 ? ++i == want
				      : did != NULL && strcmp(did, id) == 0;

		cJSON_Delete(d);
		if (match)
			return l;
	}
	return NULL;
}

/*
 * The message to queue again for a dead letter: its raw message, checked
 * by the worker's own parser, without the retry fields so that it gets
 * its attempts afresh.  NULL, with why, when it cannot run.
 */
static char *
dead_message(struct client *c, const cJSON *letter, char **queue, char *why,
    size_t whylen)
{
	cJSON	   *d = cJSON_Parse(letter->valuestring), *m;
	const char *raw = cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(d, "raw"));
	struct task	  t;
	struct task_error err;
	char		 *out = NULL;

	*queue = NULL;
	if (raw == NULL) {
		snprintf(why, whylen, "its message is not valid UTF-8");
		goto done;
	}
	if (task_parse(raw, strlen(raw), &t, &err) != 0) {
		snprintf(why, whylen,
		    "its message is not a valid task (%s: %s)", err.code,
		    err.message);
		goto done;
	}
	*queue = queue_key_for(
	    &c->keys, t.type == TASK_JOB_CLEANUP ? "jobs" : "sweeps");
	task_free(&t);
	m = cJSON_Parse(raw);
	cJSON_DeleteItemFromObjectCaseSensitive(m, "attempt");
	cJSON_DeleteItemFromObjectCaseSensitive(m, "first_attempt_at");
	cJSON_DeleteItemFromObjectCaseSensitive(m, "history");
	out = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
done:
	cJSON_Delete(d);
	return out;
}

/* 1 retried, 0 not (why printed), -1 Redis failed. */
static int
dead_retry_one(struct client *c, const cJSON *letter, const char *label)
{
	char	    why[400], *queue, *msg;
	const char *argv[7];
	cJSON	   *r;
	int	    rc;

	if ((msg = dead_message(c, letter, &queue, why, sizeof(why))) == NULL) {
		fprintf(stderr, "clipsweep: not retrying %s: %s\n", label, why);
		return 0;
	}
	argv[0] = "EVAL";
	argv[1] = retry_script;
	argv[2] = "2";
	argv[3] = c->keys.dead;
	argv[4] = queue;
	argv[5] = letter->valuestring;
	argv[6] = msg;
	r = client_call(c, 7, argv);
	rc = r == NULL ? -1 : cJSON_GetNumberValue(r) == 1 ? 1 : 0;
	if (rc == 0)
		fprintf(stderr,
		    "clipsweep: %s was no longer in the dead letters\n", label);
	else if (rc == 1)
		fprintf(
		    stderr, "clipsweep: %s queued again on %s\n", label, queue);
	cJSON_Delete(r);
	cJSON_free(msg);
	free(queue);
	return rc;
}

static int
dead_confirm(struct client *c, long long n)
{
	char line[64];

	fprintf(stderr,
	    "About to delete %lld dead letter%s from %s for good.\n"
	    "Type 'purge' to go on: ",
	    n, n == 1 ? "" : "s", c->keys.dead);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, "purge") == 0;
}

static int
dead_exec(struct client *c, int argc, char **argv)
{
	struct ops_flags f;
	const char	*sub;
	cJSON		*letters, *l, *found;
	int		 rc = 0, i = 0;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: clipsweep %s\n", DEAD_USAGE);
		return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0
								   : EX_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 &&
	    strcmp(sub, "retry") != 0 && strcmp(sub, "purge") != 0) {
		fprintf(stderr,
		    "clipsweep: dead: unknown subcommand '%s'\nusage: "
		    "clipsweep %s\n",
		    sub, DEAD_USAGE);
		return EX_USAGE;
	}
	if (ops_options(argc - 1, argv + 1,
		strcmp(sub, "list") == 0	? OPT_JSON
		    : strcmp(sub, "retry") == 0 ? OPT_ALL
		    : strcmp(sub, "purge") == 0 ? OPT_YES
						: 0,
		&f, DEAD_USAGE) != 0)
		return EX_USAGE;
	optind++; /* argv + 1 */
	if ((strcmp(sub, "show") == 0 ||
		(strcmp(sub, "retry") == 0 && !f.all)) !=
		(optind + 1 == argc) ||
	    ((strcmp(sub, "list") == 0 || strcmp(sub, "purge") == 0 || f.all) &&
		optind != argc)) {
		fprintf(stderr, "usage: clipsweep %s\n", DEAD_USAGE);
		return EX_USAGE;
	}
	if (strcmp(sub, "purge") == 0 && !f.yes && !isatty(STDIN_FILENO)) {
		fprintf(stderr,
		    "clipsweep: dead purge deletes for good: on a "
		    "terminal, confirm it; elsewhere add --yes\n");
		return EX_USAGE;
	}
	if (client_connect(c) != 0)
		return c->exit_code;

	if (strcmp(sub, "purge") == 0) {
		long long   n = call_int(c, "LLEN", c->keys.dead);
		char	    count[24];
		const char *pargv[5] = {
		    "EVAL", purge_script, "1", c->keys.dead, count};
		cJSON *r;

		if (n < 0)
			return c->exit_code;
		if (!f.yes && !dead_confirm(c, n)) {
			fprintf(stderr, "clipsweep: nothing deleted\n");
			return EXIT_NOT_OK;
		}
		/* --yes: every letter, also those that arrive meanwhile. */
		snprintf(count, sizeof(count), "%lld", f.yes ? LLONG_MAX : n);
		if ((r = client_call(c, 5, pargv)) == NULL)
			return c->exit_code;
		printf("deleted %.0f dead letter%s\n", cJSON_GetNumberValue(r),
		    cJSON_GetNumberValue(r) == 1 ? "" : "s");
		cJSON_Delete(r);
		return 0;
	}

	if ((letters = dead_letters(c)) == NULL)
		return c->exit_code;
	if (strcmp(sub, "list") == 0) {
		cJSON_ArrayForEach(l, letters)
		{
			cJSON *d = cJSON_Parse(l->valuestring), *reason;

			i++;
			if (f.json) {
				print_json(d, 0);
				cJSON_Delete(d);
				continue;
			}
			reason = cJSON_GetObjectItemCaseSensitive(d, "reason");
			printf("#%-4d %-38s %-24s %-20s %s\n", i,
			    client_str_field(d, "id", "(no id)"),
			    client_str_field(d, "dead_at", "?"),
			    client_str_field(reason, "code", "?"),
			    client_str_field(reason, "message", ""));
			cJSON_Delete(d);
		}
		if (!f.json && i == 0)
			fprintf(stderr, "clipsweep: no dead letters in %s\n",
			    c->keys.dead);
	} else if (strcmp(sub, "show") == 0) {
		if ((found = dead_find(letters, argv[optind])) == NULL) {
			fprintf(stderr, "clipsweep: no dead letter '%s'\n",
			    argv[optind]);
			rc = EXIT_NOT_OK;
		} else {
			cJSON *d = cJSON_Parse(found->valuestring);
			print_json(d, 1);
			cJSON_Delete(d);
		}
	} else if (!f.all) {
		if ((found = dead_find(letters, argv[optind])) == NULL) {
			fprintf(stderr, "clipsweep: no dead letter '%s'\n",
			    argv[optind]);
			rc = EXIT_NOT_OK;
		} else {
			int r = dead_retry_one(c, found, argv[optind]);
			rc = r < 0 ? c->exit_code : r == 1 ? 0 : EXIT_NOT_OK;
		}
	} else {
		int retried = 0, skipped = 0;

		cJSON_ArrayForEach(l, letters)
		{
			char label[64];
			int  r;

			snprintf(label, sizeof(label), "#%d", ++i);
			if ((r = dead_retry_one(c, l, label)) < 0) {
				rc = c->exit_code;
				break;
			}
			r == 1 ? retried++ : skipped++;
		}
		printf("retried %d, left %d\n", retried, skipped);
		if (rc == 0 && skipped > 0)
			rc = EXIT_NOT_OK;
	}
	cJSON_Delete(letters);
	return rc;
}

/* pause, resume */

/*
 * What an operator's switch holds: {"at", "by": "user@host"[, "reason"]},
 * as text for SET; cJSON_free() it.
 */
static char *
operator_stamp(const char *reason)
{
	const char *user = getenv("USER");
	char	    host[256] = "", ts[40], *by, *text;
	cJSON	   *o = cJSON_CreateObject();

	gethostname(host, sizeof(host) - 1);
	format_time_ms(now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(o, "at", ts);
	by = xasprintf("%s@%s", user != NULL ? user : "?", host);
	cJSON_AddStringToObject(o, "by", by);
	free(by);
	if (reason != NULL)
		cJSON_AddStringToObject(o, "reason", reason);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int
pause_exec(struct client *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *reason = NULL, *argv2[3];
	char	   *text;
	cJSON	   *r;
	int	    ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'r')
			reason = optarg;
		else {
			fprintf(ch == 'h' ? stdout : stderr,
			    "usage: clipsweep pause %s\n",
			    cmd_pause_entry.usage);
			return ch == 'h' ? 0 : EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: clipsweep pause %s\n",
		    cmd_pause_entry.usage);
		return EX_USAGE;
	}
	if (client_connect(c) != 0)
		return c->exit_code;
	text = operator_stamp(reason);
	argv2[0] = "SET";
	argv2[1] = c->keys.paused;
	argv2[2] = text;
	r = client_call(c, 3, argv2);
	cJSON_free(text);
	if (r == NULL)
		return c->exit_code;
	cJSON_Delete(r);
	printf("paused: every worker in namespace %s holds its deletes before "
	       "the next batch\n(tasks in flight wait; `clipsweep resume` "
	       "lets them go on)\n",
	    c->keys.ns);
	return 0;
}

const struct cmd_entry cmd_pause_entry = {
    .name = "pause",
    .usage = "[--reason TEXT]",
    .exec = pause_exec,
};

static int
resume_exec(struct client *c, int argc, char **argv)
{
	long long n;

	if (argc != 1) {
		fprintf(strcmp(argv[1], "--help") == 0 ? stdout : stderr,
		    "usage: clipsweep resume\n");
		return strcmp(argv[1], "--help") == 0 ? 0 : EX_USAGE;
	}
	if (client_connect(c) != 0)
		return c->exit_code;
	if ((n = call_int(c, "DEL", c->keys.paused)) < 0)
		return c->exit_code;
	printf(n > 0 ? "resumed: deletes go on (each worker reads the switch "
		       "again within a second)\n"
		     : "not paused\n");
	return 0;
}

const struct cmd_entry cmd_resume_entry = {
    .name = "resume",
    .usage = "",
    .exec = resume_exec,
};

/* cancel */

/*
 * Whether sweep <id> is somewhere a worker will run it: its sharded
 * state, a retry in the schedule, a queue, or a worker's processing list.
 * 1 yes, 0 no, -1 Redis failed.
 */
static const char known_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end "
    "for i = 2, #KEYS do "
    "  local items "
    "  if i == 2 then items = redis.call('ZRANGE', KEYS[i], 0, -1) "
    "  else items = redis.call('LRANGE', KEYS[i], 0, -1) end "
    "  for _, m in ipairs(items) do "
    "    if i == 2 then "
    "      local tab = string.find(m, '\\t', 1, true) "
    "      if tab then m = string.sub(m, tab + 1) end "
    "    end "
    "    local ok, t = pcall(cjson.decode, m) "
    "    if ok and type(t) == 'table' and "
    "       (t.type == 'retention_sweep' or t.type == 'sweep_shard') and "
    "       (t.id == ARGV[1] or t.sweep_id == ARGV[1]) then return 1 end "
    "  end "
    "end return 0";

static int
sweep_known(struct client *c, const char *id)
{
	cJSON	    *queues, *procs, *k, *r;
	const char **argv;
	char	    *pattern, *state, nkeys[16];
	int	     argc = 0, n, rc;

	pattern = xasprintf("%s:queue:*", c->keys.ns);
	queues = scan_keys(c, pattern);
	free(pattern);
	pattern = xasprintf("%s:processing:*", c->keys.ns);
	procs = queues != NULL ? scan_keys(c, pattern) : NULL;
	free(pattern);
	if (queues == NULL || procs == NULL) {
		cJSON_Delete(queues);
		return -1;
	}
	n = 2 + cJSON_GetArraySize(queues) + cJSON_GetArraySize(procs);
	argv = xcalloc((size_t)n + 4, sizeof(*argv));
	state = queue_sweep_key(&c->keys, id);
	snprintf(nkeys, sizeof(nkeys), "%d", n);
	argv[argc++] = "EVAL";
	argv[argc++] = known_script;
	argv[argc++] = nkeys;
	argv[argc++] = state;
	argv[argc++] = c->keys.scheduled;
	cJSON_ArrayForEach(k, queues) argv[argc++] = k->valuestring;
	cJSON_ArrayForEach(k, procs) argv[argc++] = k->valuestring;
	argv[argc++] = id;
	r = client_call(c, argc, argv);
	rc = r == NULL ? -1 : cJSON_GetNumberValue(r) == 1 ? 1 : 0;
	cJSON_Delete(r);
	free(argv);
	free(state);
	cJSON_Delete(queues);
	cJSON_Delete(procs);
	return rc;
}

#define CANCEL_TTL_S "604800" /* as long as results are kept */

static int
cancel_exec(struct client *c, int argc, char **argv)
{
	const char *argv2[5];
	char	   *key, *text;
	cJSON	   *r, *res;
	int	    rc = 0;

	if (argc != 2 || argv[1][0] == '-') {
		int help = argc == 2 && strcmp(argv[1], "--help") == 0;
		fprintf(help ? stdout : stderr, "usage: clipsweep cancel %s\n",
		    cmd_cancel_entry.usage);
		return help ? 0 : EX_USAGE;
	}
	if (client_connect(c) != 0)
		return c->exit_code;
	/* A sweep that has ended cannot be stopped: say how it ended. */
	key = queue_result_key(&c->keys, argv[1]);
	r = call(c, "GET", key, NULL, NULL);
	free(key);
	if (r == NULL)
		return c->exit_code;
	res = cJSON_IsString(r) ? cJSON_Parse(r->valuestring) : NULL;
	cJSON_Delete(r);
	if (result_status_final(client_str_field(res, "status", ""))) {
		fprintf(stderr,
		    "clipsweep: '%s' has already ended (%s); nothing to "
		    "cancel\n",
		    argv[1], client_str_field(res, "status", "?"));
		cJSON_Delete(res);
		return EXIT_NOT_OK;
	}
	cJSON_Delete(res);
	if ((rc = sweep_known(c, argv[1])) != 1) {
		if (rc == 0)
			fprintf(stderr,
			    "clipsweep: no sweep '%s' is queued, running or "
			    "waiting to retry (a typo? `clipsweep stats`)\n",
			    argv[1]);
		return rc == 0 ? EXIT_NOT_OK : c->exit_code;
	}
	rc = 0;
	text = operator_stamp(NULL);
	key = queue_cancel_key(&c->keys, argv[1]);
	argv2[0] = "SET";
	argv2[1] = key;
	argv2[2] = text;
	argv2[3] = "EX";
	argv2[4] = CANCEL_TTL_S;
	r = client_call(c, 5, argv2);
	cJSON_free(text);
	if (r == NULL)
		rc = c->exit_code;
	else
		printf("cancel requested (%s): sweep %s stops within a second, "
		       "or before its next delete batch,\nand reports what it "
		       "did (`clipsweep result %s`)\n",
		    key, argv[1], argv[1]);
	cJSON_Delete(r);
	free(key);
	return rc;
}

const struct cmd_entry cmd_cancel_entry = {
    .name = "cancel",
    .usage = "SWEEP_ID",
    .exec = cancel_exec,
};

const struct cmd_entry cmd_dead_entry = {
    .name = "dead",
    .usage = DEAD_ARGS,
    .exec = dead_exec,
};
