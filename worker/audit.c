#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "util.h"

struct audit {
	struct db *db;
	char	  *copy_sql;
	char	  *worker;
};

struct audit_write {
	audit_cb *cb;
	void	 *arg;
};

struct audit *
audit_new(struct db *db, const char *table, const char *worker)
{
	struct audit *a = xcalloc(1, sizeof(*a));

	a->db = db;
	a->copy_sql = xasprintf("COPY %s (task_id, task_type, reason, key, "
				"size_bytes, worker) FROM STDIN",
	    table);
	a->worker = xstrdup(worker);
	return a;
}

void
audit_free(struct audit *a)
{
	if (a == NULL)
		return;
	free(a->copy_sql);
	free(a->worker);
	free(a);
}

/* One text field of COPY's text format: \, tab, CR and LF escaped. */
static void
field(struct buf *b, const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++)
		switch (*p) {
		case '\\':
			buf_add(b, "\\\\", 2);
			break;
		case '\t':
			buf_add(b, "\\t", 2);
			break;
		case '\n':
			buf_add(b, "\\n", 2);
			break;
		case '\r':
			buf_add(b, "\\r", 2);
			break;
		default:
			buf_add(b, p, 1);
		}
}

static void
written(void *arg, const struct db_result *res, const struct db_error *err)
{
	struct audit_write *w = arg;
	char		    why[600];

	if (err != NULL)
		snprintf(why, sizeof(why),
		    "the audit trail could not be "
		    "written: %s%s%s",
		    err->message, err->sqlstate[0] ? " SQLSTATE " : "",
		    err->sqlstate);
	w->cb(w->arg, err != NULL ? why : NULL);
	free(w);
}

void
audit_write(struct audit *a, const struct audit_row *rows, size_t n,
    audit_cb *cb, void *arg)
{
	struct audit_write *w = xcalloc(1, sizeof(*w));
	struct buf	    b;
	size_t		    i;

	w->cb = cb;
	w->arg = arg;
	buf_init(&b);
	for (i = 0; i < n; i++) {
		field(&b, rows[i].task_id);
		buf_add(&b, "\t", 1);
		field(&b, rows[i].task_type);
		buf_add(&b, "\t", 1);
		field(&b, rows[i].reason);
		buf_add(&b, "\t", 1);
		field(&b, rows[i].key);
		if (rows[i].size >= 0)
			buf_addf(&b, "\t%lld\t", (long long)rows[i].size);
		else
			buf_add(&b, "\t\\N\t", 4);
		field(&b, a->worker);
		buf_add(&b, "\n", 1);
	}
	if (db_copy_in(a->db, a->copy_sql, b.data, b.len, written, w) != 0)
		written(w, NULL,
		    &(struct db_error){DB_ERR_UNAVAILABLE, "",
			"the database client is closing"});
	buf_free(&b);
}
