/*
 * clipsweep: the producer and operator command line.  Subcommands are
 * entries in a table, one file each (cmd_*.c).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "clipsweep_config.h"
#include "client.h"
#include "log.h"
#include "redis.h"

static const struct cmd_entry *cmd_table[] = {
    &cmd_job_entry,
    &cmd_sweep_entry,
    &cmd_watch_entry,
    &cmd_stats_entry,
    &cmd_result_entry,
    &cmd_dead_entry,
    &cmd_pause_entry,
    &cmd_resume_entry,
    &cmd_cancel_entry,
    &cmd_migrate_entry,
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: clipsweep COMMAND [OPTIONS]\n\ncommands:\n");
	for (i = 0; i < nitems(cmd_table); i++)
		fprintf(f, "  clipsweep %s %s\n", cmd_table[i]->name,
		    cmd_table[i]->usage);
	fprintf(f,
	    "\n  clipsweep --help | --version\n\n"
	    "Redis comes from CLIPSWEEP_REDIS_URL (or REDIS_URL); keys are "
	    "under CLIPSWEEP_NAMESPACE.\nSee clipsweep(1) and "
	    "docs/PROTOCOL.md.\n");
}

int
main(int argc, char **argv)
{
	const struct cmd_entry *cmd = NULL;
	struct client		c;
	char			err[512];
	size_t			i;
	int			rc;

	log_init("clipsweep", stderr);
	log_set_json(0);
	/* The CLI says what failed itself; library warnings would repeat it. */
	log_set_default_level(LOG_ERROR);
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("clipsweep %s\n", CLIPSWEEP_VERSION);
		return 0;
	}
	for (i = 0; i < nitems(cmd_table); i++)
		if (strcmp(argv[1], cmd_table[i]->name) == 0)
			cmd = cmd_table[i];
	if (cmd == NULL) {
		fprintf(stderr, "clipsweep: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return EX_USAGE;
	}
	memset(&c, 0, sizeof(c));
	if (config_load(&c.cfg, CONFIG_NEED_REDIS, err, sizeof(err)) != 0) {
		fprintf(stderr, "clipsweep: configuration: %s\n", err);
		return EX_CONFIG;
	}
	queue_keys_init(&c.keys, c.cfg.namespace, c.cfg.worker_id);
	signal(SIGPIPE, SIG_IGN);
	c.base = event_base_new();
	c.dns = evdns_base_new(c.base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (c.base == NULL || c.dns == NULL) {
		fprintf(stderr,
		    "clipsweep: cannot set up the event loop or "
		    "DNS\n");
		return EX_OSERR;
	}
	rc = cmd->exec(&c, argc - 1, argv + 1);
	redis_free(c.cmd);
	evdns_base_free(c.dns, 0);
	event_base_free(c.base);
	queue_keys_free(&c.keys);
	config_free(&c.cfg);
	return rc;
}
