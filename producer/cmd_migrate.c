/*
 * clipsweep migrate: create what clipsweep keeps in the application's
 * database (the audit trail's table), idempotently.  Synchronous libpq:
 * a command, not the worker's loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <libpq-fe.h>

#include "client.h"
#include "config.h"

static const char migrate_sql[] =
    "CREATE TABLE IF NOT EXISTS %1$s ("
    " id bigserial PRIMARY KEY,"
    " deleted_at timestamptz NOT NULL DEFAULT now(),"
    " task_id text NOT NULL,"
    " task_type text NOT NULL,"
    " reason text NOT NULL,"
    " key text NOT NULL,"
    " size_bytes bigint,"
    " worker text NOT NULL);"
    "CREATE INDEX IF NOT EXISTS clipsweep_audit_key_idx ON %1$s (key);"
    "CREATE INDEX IF NOT EXISTS clipsweep_audit_task_idx ON %1$s (task_id);"
    "CREATE INDEX IF NOT EXISTS clipsweep_audit_time_idx ON %1$s "
    "(deleted_at);";

static int
migrate_exec(struct client *c, int argc, char **argv)
{
	struct config cfg;
	char	      err[512], *sql;
	PGconn	     *pg;
	PGresult     *r;
	int	      rc = 0;

	if (argc != 1) {
		int help = strcmp(argv[1], "--help") == 0;
		fprintf(help ? stdout : stderr, "usage: clipsweep migrate\n");
		return help ? 0 : EX_USAGE;
	}
	if (config_load(&cfg, CONFIG_NEED_DATABASE, err, sizeof(err)) != 0) {
		fprintf(stderr, "clipsweep: configuration: %s\n", err);
		return EX_CONFIG;
	}
	pg = PQconnectdb(cfg.database_url);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr,
		    "clipsweep: cannot connect to the database at %s: %s",
		    cfg.database_redacted, PQerrorMessage(pg));
		PQfinish(pg);
		config_free(&cfg);
		return EX_UNAVAILABLE;
	}
	sql = xasprintf(migrate_sql, cfg.audit_table);
	r = PQexec(pg, sql);
	free(sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "clipsweep: migrate failed: %s",
		    PQresultErrorMessage(r));
		rc = EXIT_NOT_OK;
	} else
		printf("the audit table %s is ready (CLIPSWEEP_AUDIT=postgres "
		       "to use it)\n",
		    cfg.audit_table);
	PQclear(r);
	PQfinish(pg);
	config_free(&cfg);
	return rc;
}

const struct cmd_entry cmd_migrate_entry = {
    .name = "migrate",
    .usage = "",
    .exec = migrate_exec,
};
