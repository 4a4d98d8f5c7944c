#ifndef CLIPSWEEP_CLIENT_H
#define CLIPSWEEP_CLIENT_H

#include <stddef.h>

#include "config.h"
#include "queue.h"

struct cJSON;
struct event_base;
struct evdns_base;
struct redis;

/* Exit codes of the CLI beyond sysexits(3). */
#define EXIT_NOT_OK 1 /* the task ended, but not with status ok */

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
extern const struct cmd_entry cmd_watch_entry;

/* Run the loop until a subcommand calls client_exit(). */
int  client_connect(struct client *) MUST_CHECK;
void client_exit(struct client *, int code);

/* One line per result for people; compact JSON with --json. */
void client_print_result(struct client *, const struct cJSON *);

/* A "status" that ends a task (ok, partial, failed, refused). */
int result_status_final(const char *);

#endif
