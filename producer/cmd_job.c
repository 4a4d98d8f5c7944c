/*
 * clipsweep job JOB_ID [--dry-run] [--wait[=SECONDS]] [--json]
 *
 * Enqueue a per-job cleanup; client_enqueue() pushes it and waits.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "task.h"

#define JOB_WAIT_S 120

static char *
job_build(const char *id, const char *job_id, int dry_run)
{
	cJSON *o = cJSON_CreateObject();
	char   ts[40], *s;

	cJSON_AddStringToObject(o, "type", "job_cleanup");
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "job_id", job_id);
	cJSON_AddBoolToObject(o, "dry_run", dry_run);
	format_time_ms(now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(o, "enqueued_at", ts);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int
job_usage(FILE *f, int rc)
{
	fprintf(f, "usage: clipsweep job %s\n", cmd_job_entry.usage);
	return rc;
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
	struct client_task ct = {.queue = c->keys.jobs, .type = "job_cleanup"};
	struct task	   t;
	struct task_error  err;
	char		   id[37], *msg;
	int		   ch, dry_run = 0, rc;

	while ((ch = getopt_long(argc, argv, "nh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		case 'w':
			if (client_parse_wait(optarg, JOB_WAIT_S, &ct.wait_s) !=
			    0) {
				fprintf(stderr,
				    "clipsweep job: --wait takes "
				    "1 to %d seconds, not '%s'\n",
				    CLIENT_WAIT_MAX_S, optarg);
				return EX_USAGE;
			}
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			return job_usage(stdout, 0);
		default:
			return job_usage(stderr, EX_USAGE);
		}
	}
	if (argc - optind != 1)
		return job_usage(stderr, EX_USAGE);
	uuid_v4(id);
	msg = job_build(id, argv[optind], dry_run);
	/* Never enqueue what the worker would dead-letter. */
	if (task_parse(msg, strlen(msg), &t, &err) != 0) {
		fprintf(stderr, "clipsweep job: %s\n", err.message);
		cJSON_free(msg);
		return EX_DATAERR;
	}
	task_free(&t);
	ct.json = msg;
	ct.id = id;
	rc = client_enqueue(c, &ct);
	cJSON_free(msg);
	return rc;
}

const struct cmd_entry cmd_job_entry = {
    .name = "job",
    .usage = "JOB_ID [--dry-run] [--wait[=SECONDS]] [--json]",
    .exec = job_exec,
};
