/*
 * clipsweep sweep [--retention-days N] [--min-age-hours H] [--prefix P]
 *     [--shards N] [--dry-run] [--force [--yes]] [--wait[=SECONDS]] [--json]
 *
 * Enqueue a retention sweep.  --force turns off the worker's delete-ratio
 * guard, so a real forced sweep is enqueued only after the user types
 * SWEEP_CONFIRM_WORD on a terminal, or with --yes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "task.h"

#define SWEEP_WAIT_S	   3600
#define SWEEP_CONFIRM_WORD "force"
#define RETENTION_DAYS_MAX 3650
#define MIN_AGE_HOURS_MAX  87600

struct sweep_opts {
	int64_t	    retention_days; /* -1: the worker's default */
	int64_t	    min_age_hours;  /* -1: the worker's default */
	const char *prefix;	    /* NULL: the whole cube prefix */
	int64_t	    shards;	    /* -1: unsharded */
	int	    dry_run;
	int	    force;
	int	    yes;
};

static int
sweep_usage(FILE *f, int rc)
{
	fprintf(f, "usage: clipsweep sweep %s\n", cmd_sweep_entry.usage);
	return rc;
}

static int
sweep_help(const struct client *c)
{
	sweep_usage(stdout, 0);
	printf("\nEnqueue a retention sweep on %s.\n\n"
	       "  --retention-days N  keep completed clips younger than N "
	       "days (0 to %d;\n"
	       "                      worker default 5)\n"
	       "  --min-age-hours H   keep every object younger than H hours "
	       "(0 to %d;\n"
	       "                      worker default 24)\n"
	       "  --prefix P          sweep only P under the cube prefix\n"
	       "  --shards N          split into N key ranges that workers "
	       "sweep at once\n"
	       "                      (1 to %d)\n"
	       "  --dry-run           report what would be deleted, delete "
	       "nothing\n"
	       "  --force             turn off the worker's delete-ratio "
	       "guard; asks you to\n"
	       "                      type '%s' on a terminal\n"
	       "  --yes               confirm --force without asking (for "
	       "scripts)\n"
	       "  --wait[=SECONDS]    wait for the result (default %d s), "
	       "showing progress\n"
	       "                      on a terminal; exit 0 only for status "
	       "ok\n"
	       "  --json              one JSON line on stdout: the result, or "
	       "the task\n",
	    c->keys.sweeps, RETENTION_DAYS_MAX, MIN_AGE_HOURS_MAX,
	    TASK_MAX_SHARDS, SWEEP_CONFIRM_WORD, SWEEP_WAIT_S);
	return 0;
}

/* A whole number from min to max, digits only: no sign, space or unit. */
static int
sweep_parse_count(const char *opt, const char *unit, const char *arg,
    int64_t min, int64_t max, int64_t *out)
{
	char	 *end;
	long long v;

	errno = 0;
	v = arg[0] >= '0' && arg[0] <= '9' ? strtoll(arg, &end, 10) : -1;
	if (v < min || errno != 0 || *end != '\0' || v > max) {
		fprintf(stderr,
		    "clipsweep sweep: %s takes a whole number of %s from "
		    "%lld to %lld, not '%s'\n",
		    opt, unit, (long long)min, (long long)max, arg);
		return -1;
	}
	*out = v;
	return 0;
}

/* The task in the order of docs/PROTOCOL.md; cJSON_free() it. */
static char *
sweep_build(const char *id, const struct sweep_opts *o)
{
	cJSON *m = cJSON_CreateObject();
	char   ts[40], *s;

	cJSON_AddStringToObject(m, "type", "retention_sweep");
	cJSON_AddStringToObject(m, "id", id);
	if (o->retention_days >= 0)
		cJSON_AddNumberToObject(
		    m, "retention_days", (double)o->retention_days);
	if (o->min_age_hours >= 0)
		cJSON_AddNumberToObject(
		    m, "min_age_hours", (double)o->min_age_hours);
	cJSON_AddBoolToObject(m, "dry_run", o->dry_run);
	if (o->force)
		cJSON_AddBoolToObject(m, "force", 1);
	if (o->prefix != NULL)
		cJSON_AddStringToObject(m, "prefix", o->prefix);
	if (o->shards >= 0)
		cJSON_AddNumberToObject(m, "shards", (double)o->shards);
	format_time_ms(now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(m, "enqueued_at", ts);
	s = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	return s;
}

static void
sweep_describe(const struct client *c, const struct sweep_opts *o)
{
	fprintf(stderr,
	    "clipsweep sweep --force: a real sweep with the delete-ratio "
	    "guard OFF.\n\n"
	    "  Redis      %s\n  namespace  %s\n  queue      %s\n",
	    c->cfg.redis.redacted, c->keys.ns, c->keys.sweeps);
	if (o->prefix != NULL)
		fprintf(stderr, "  prefix     %s (under the cube prefix)\n",
		    o->prefix);
	else
		fprintf(stderr, "  prefix     none: the whole cube prefix\n");
	if (o->retention_days >= 0)
		fprintf(stderr, "  retention  %lld days\n",
		    (long long)o->retention_days);
	else
		fprintf(stderr, "  retention  the worker's default (5 days)\n");
	if (o->min_age_hours >= 0)
		fprintf(stderr, "  min age    %lld hours\n",
		    (long long)o->min_age_hours);
	else
		fprintf(
		    stderr, "  min age    the worker's default (24 hours)\n");
	fprintf(stderr,
	    "\nThe worker will delete every candidate it finds, even when "
	    "they are most\nof the objects scanned: the guard that refuses "
	    "such a sweep is off.\nRun with --dry-run first to see what it "
	    "would delete.\n\n");
}

/* Returns 0 when the user typed the word, else the exit code. */
static int
sweep_confirm(const struct client *c, const struct sweep_opts *o)
{
	char  answer[64];
	char *s, *e;

	sweep_describe(c, o);
	fprintf(stderr,
	    "Type '%s' to enqueue this sweep; anything else aborts: ",
	    SWEEP_CONFIRM_WORD);
	fflush(stderr);
	if (fgets(answer, sizeof(answer), stdin) == NULL) {
		fprintf(stderr, "\n");
		answer[0] = '\0';
	}
	for (s = answer; *s == ' ' || *s == '\t'; s++)
		;
	for (e = s + strlen(s); e > s && strchr(" \t\r\n", e[-1]); e--)
		;
	*e = '\0';
	if (strcmp(s, SWEEP_CONFIRM_WORD) == 0)
		return 0;
	fprintf(stderr,
	    "clipsweep sweep: not confirmed; nothing was "
	    "enqueued\n");
	return EXIT_NOT_OK;
}

/*
 * --force deletes without the ratio guard, so it needs a person's typed
 * word, or --yes from a script; a dry run deletes nothing and needs none.
 */
static int
sweep_check_force(const struct client *c, const struct sweep_opts *o)
{
	if (o->yes && !o->force) {
		fprintf(stderr,
		    "clipsweep sweep: --yes only confirms --force; "
		    "without --force it means nothing\n");
		return sweep_usage(stderr, EX_USAGE);
	}
	if (!o->force || o->dry_run || o->yes)
		return 0;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr,
		    "clipsweep sweep: --force turns off the worker's "
		    "delete-ratio guard and needs a typed confirmation, but "
		    "stdin is not a terminal; add --yes to confirm it "
		    "(nothing was enqueued)\n");
		return EX_USAGE;
	}
	return sweep_confirm(c, o);
}

/* A number from a progress message; -1 (shown as "?") when absent. */
static double
num_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void
sweep_progress_line(const cJSON *p, struct buf *line)
{
	const cJSON *phase = cJSON_GetObjectItemCaseSensitive(p, "phase");
	char	     a[32], b[32], d[32];
	int	     exec = cJSON_IsString(phase) &&
	    strcmp(phase->valuestring, "execute") == 0;

	if (num_field(p, "shards") > 0)
		buf_addf(line, "shard %.0f/%.0f ", num_field(p, "shard") + 1,
		    num_field(p, "shards"));
	buf_addf(line, "%s: %s objects scanned, %s candidates",
	    exec ? "deleting" : "planning",
	    client_fmt_count(num_field(p, "scanned"), a, sizeof(a)),
	    client_fmt_count(num_field(p, "candidates"), b, sizeof(b)));
	if (exec)
		buf_addf(line, ", %s deleted (%.2f MB)",
		    client_fmt_count(num_field(p, "deleted"), d, sizeof(d)),
		    num_field(p, "deleted_bytes") > 0
			? num_field(p, "deleted_bytes") / 1048576.0
			: 0.0);
}

static int
sweep_getopt(
    struct client *c, int argc, char **argv, struct sweep_opts *o, int *wait_s)
{
	static const struct option longopts[] = {
	    {"retention-days", required_argument, NULL, 'r'},
	    {"min-age-hours", required_argument, NULL, 'a'},
	    {"prefix", required_argument, NULL, 'p'},
	    {"shards", required_argument, NULL, 's'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"force", no_argument, NULL, 'f'},
	    {"yes", no_argument, NULL, 'y'},
	    {"wait", optional_argument, NULL, 'w'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "nh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (sweep_parse_count("--retention-days", "days",
				optarg, 0, RETENTION_DAYS_MAX,
				&o->retention_days) != 0)
				return EX_USAGE;
			break;
		case 'a':
			if (sweep_parse_count("--min-age-hours", "hours",
				optarg, 0, MIN_AGE_HOURS_MAX,
				&o->min_age_hours) != 0)
				return EX_USAGE;
			break;
		case 'p':
			o->prefix = optarg;
			break;
		case 's':
			if (sweep_parse_count("--shards", "key ranges", optarg,
				1, TASK_MAX_SHARDS, &o->shards) != 0)
				return EX_USAGE;
			break;
		case 'n':
			o->dry_run = 1;
			break;
		case 'f':
			o->force = 1;
			break;
		case 'y':
			o->yes = 1;
			break;
		case 'w':
			if (client_parse_wait(optarg, SWEEP_WAIT_S, wait_s) !=
			    0) {
				fprintf(stderr,
				    "clipsweep sweep: --wait takes 1 to %d "
				    "seconds, not '%s'\n",
				    CLIENT_WAIT_MAX_S, optarg);
				return EX_USAGE;
			}
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			return -1;
		default:
			return sweep_usage(stderr, EX_USAGE);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "clipsweep sweep: unexpected argument '%s'\n",
		    argv[optind]);
		return sweep_usage(stderr, EX_USAGE);
	}
	return 0;
}

static int
sweep_exec(struct client *c, int argc, char **argv)
{
	struct sweep_opts o = {
	    .retention_days = -1, .min_age_hours = -1, .shards = -1};
	struct client_task ct = {.queue = c->keys.sweeps,
	    .type = "retention_sweep",
	    .progress = sweep_progress_line};
	struct task	   t;
	struct task_error  err;
	char		   id[37], *msg;
	int		   rc;

	if ((rc = sweep_getopt(c, argc, argv, &o, &ct.wait_s)) != 0)
		return rc < 0 ? sweep_help(c) : rc;
	uuid_v4(id);
	msg = sweep_build(id, &o);
	/* Never enqueue what the worker would dead-letter. */
	if (task_parse(msg, strlen(msg), &t, &err) != 0) {
		fprintf(stderr, "clipsweep sweep: %s\n", err.message);
		cJSON_free(msg);
		return EX_DATAERR;
	}
	task_free(&t);
	if ((rc = sweep_check_force(c, &o)) == 0) {
		ct.json = msg;
		ct.id = id;
		rc = client_enqueue(c, &ct);
	}
	cJSON_free(msg);
	return rc;
}

const struct cmd_entry cmd_sweep_entry = {
    .name = "sweep",
    .usage = "[--retention-days N] [--min-age-hours H] [--prefix P] "
	     "[--shards N] [--dry-run] [--force [--yes]] [--wait[=SECONDS]] "
	     "[--json]",
    .exec = sweep_exec,
};
