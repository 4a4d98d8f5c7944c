#ifndef CLIPSWEEP_CLIENT_H
#define CLIPSWEEP_CLIENT_H

#include <stddef.h>

#include "config.h"
#include "queue.h"
#include "util.h"

struct cJSON;
struct event_base;
struct evdns_base;
struct redis;

/* Exit codes of the CLI beyond sysexits(3). */
#define EXIT_NOT_OK 1 /* the task ended, but not with status ok */

#define CLIENT_WAIT_MAX_S 86400

/*
 * What every subcommand shares: the configuration, the loop and one Redis
 * connection for commands.  Owned by main().
 */
struct client {
	struct config	   cfg;
	struct queue_keys  keys;
	struct event_base *base;
	struct evdns_base *dns;
	struct redis	  *cmd;
	int		   json;
	int		   exit_code;
};

struct cmd_entry {
	const char *name;
	const char *usage;
	int (*exec)(struct client *, int, char **);
};

extern const struct cmd_entry cmd_job_entry;
extern const struct cmd_entry cmd_sweep_entry;
extern const struct cmd_entry cmd_watch_entry;
extern const struct cmd_entry cmd_stats_entry;
extern const struct cmd_entry cmd_result_entry;
extern const struct cmd_entry cmd_dead_entry;
extern const struct cmd_entry cmd_pause_entry;
extern const struct cmd_entry cmd_resume_entry;
extern const struct cmd_entry cmd_cancel_entry;
extern const struct cmd_entry cmd_migrate_entry;

/* Run the loop until a subcommand calls client_exit(). */
int  client_connect(struct client *) MUST_CHECK;
void client_exit(struct client *, int code);

/*
 * Turn one progress message (already matched to the task's id) into the
 * text of the progress line; leave line empty to show nothing.
 */
typedef void client_progress_fmt(const struct cJSON *, struct buf *line);

/* One validated task to push, and how to wait for its result. */
struct client_task {
	const char *queue;  /* the list to LPUSH to */
	const char *json;   /* the message, as pushed */
	const char *id;	    /* its "id" */
	const char *type;   /* its "type", for messages to people */
	int	    wait_s; /* 0: push and return at once */
	/* With wait_s, show <ns>:progress on a terminal; may be NULL. */
	client_progress_fmt *progress;
};

/*
 * Connect, push the task and, with wait_s, wait for its final result and
 * print it.  The subscriptions are made before the push, so that no result
 * can slip by unseen.  Returns the exit code: 0 pushed (without wait_s) or
 * status ok, EXIT_NOT_OK another final status, EX_TEMPFAIL no final result
 * within wait_s, EX_UNAVAILABLE Redis failed.
 */
int client_enqueue(struct client *, const struct client_task *);

/*
 * Parse the argument of --wait[=SECONDS]: NULL gives def; else 1 to
 * CLIENT_WAIT_MAX_S.  Returns -1 for anything else.
 */
int client_parse_wait(const char *arg, int def, int *out) MUST_CHECK;

/*
 * One command, waited for (the operator commands are sequential): the
 * reply as JSON (strings, numbers, null, arrays), owned by the caller.
 * NULL when Redis failed or answered an error: the message is printed and
 * c->exit_code is EX_UNAVAILABLE.  argv is NUL-terminated strings.
 */
struct cJSON *client_call(struct client *, int argc, const char **argv);

/* One summary per result for people; compact JSON with --json. */
void client_print_result(struct client *, const struct cJSON *);

/* A count for people, "1,234,567" ("?" when not a count); returns out. */
const char *client_fmt_count(double, char *out, size_t len);

/* The string field name of o, or none when it is absent or not a string. */
const char *client_str_field(
    const struct cJSON *o, const char *name, const char *none);

/* A "status" that ends a task (ok, partial, failed, refused). */
int result_status_final(const char *);

#endif
