#ifndef CLIPSWEEP_AUDIT_H
#define CLIPSWEEP_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct db;

/*
 * The audit trail (CLIPSWEEP_AUDIT=postgres): every key a worker is about
 * to delete, with its task, reason and size, written with COPY to the
 * table `clipsweep migrate` made, before the DeleteObjects that deletes it
 * is sent (and before the kill switch is read, last).  The row records the
 * decision: a key whose delete then fails, or whose batch a cancel then
 * holds back, keeps its row; the task's result says what was deleted.
 */
struct audit;

struct audit_row {
	const char *task_id;
	const char *task_type;
	const char *key; /* full key, cube prefix included */
	const char *reason;
	int64_t	    size; /* -1 unknown */
};

/* table is already quoted (sql_quote_relation()). */
struct audit *audit_new(struct db *, const char *table, const char *worker);
void	      audit_free(struct audit *);

/*
 * Write the rows; cb gets NULL once they are committed, or why not.  The
 * rows are copied.  cb may run before audit_write() returns.
 */
typedef void audit_cb(void *arg, const char *error);
void	     audit_write(
	    struct audit *, const struct audit_row *, size_t n, audit_cb *, void *arg);

#endif
