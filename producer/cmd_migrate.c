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

static const char table_sql[] =
    "CREATE TABLE IF NOT EXISTS %s ("
    " id bigserial PRIMARY KEY,"
    " deleted_at timestamptz NOT NULL DEFAULT now(),"
    " task_id text NOT NULL,"
    " task_type text NOT NULL,"
    " reason text NOT NULL,"
    " key text NOT NULL,"
    " size_bytes bigint,"
    " worker text NOT NULL)";

/* The indexes, named after the table: <table>_key_idx, ... */
static const char *const indexes[][2] = {
    {"key", "key"}, {"task", "task_id"}, {"time", "deleted_at"}};

/* Runs sql; on failure says so and returns -1. */
static int
run(PGconn *pg, const char *sql, int nparams, const char *const *params,
    PGresult **out)
{
	PGresult *r = PQexecParams(
	    pg, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "clipsweep: migrate failed: %s",
		    PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	if (out != NULL)
		*out = r;
	else
		PQclear(r);
	return 0;
}

static int
migrate_exec(struct client *c, int argc, char **argv)
{
	struct config cfg;
	char	      err[512], *sql;
	PGconn	     *pg;
	PGresult     *r = NULL;
	int	      rc;

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
	sql = xasprintf(table_sql, cfg.audit_table);
	rc = run(pg, sql, 0, NULL, NULL);
	free(sql);
	if (rc == 0) {
		const char *p[1] = {cfg.audit_table};

		rc = run(pg,
		    "SELECT relname FROM pg_class WHERE oid = $1::regclass", 1,
		    p, &r);
	}
	if (rc == 0) {
		const char *rel = PQgetvalue(r, 0, 0);
		size_t	    i;

		for (i = 0; rc == 0 && i < nitems(indexes); i++) {
			char *name = xasprintf("%s_%s_idx", rel, indexes[i][0]);
			char *q = PQescapeIdentifier(pg, name, strlen(name));

			sql = xasprintf(
			    "CREATE INDEX IF NOT EXISTS %s ON %s (%s)", q,
			    cfg.audit_table, indexes[i][1]);
			rc = run(pg, sql, 0, NULL, NULL);
			free(sql);
			PQfreemem(q);
			free(name);
		}
		PQclear(r);
	}
	if (rc == 0)
		printf("the audit table %s is ready (CLIPSWEEP_AUDIT=postgres "
		       "to use it)\n",
		    cfg.audit_table);
	else
		rc = EXIT_NOT_OK;
	PQfinish(pg);
	config_free(&cfg);
	return rc;
}

const struct cmd_entry cmd_migrate_entry = {
    .name = "migrate",
    .usage = "",
    .exec = migrate_exec,
};
