/*
 * Request-target pieces: percent-decoding of the path and the query string.
 */
#ifndef S3MEM_QUERY_H
#define S3MEM_QUERY_H

#include <stddef.h>

#include "util.h"

struct query_param {
	char  *name;
	char  *value;	  /* "" when the parameter had no '=' */
	size_t value_len; /* may hold NULs: a value is bytes */
	int    has_value;
};

struct query {
	struct query_param *params;
	size_t		    n;
};

/*
 * Appends s[0..n) %XX-decoded to out; with plus_space a '+' becomes a
 * space, as in a form-encoded query.  Returns 0, or -1 for a malformed
 * escape (out then holds a partial result).
 */
int pct_decode(
    struct buf *out, const char *s, size_t n, int plus_space) MUST_CHECK;

/*
 * Splits a raw query string (without '?'; NULL or "" for none) on '&' and
 * decodes names and values, '+' as a space as S3 does.  Returns 0, or -1
 * for a malformed escape.  query_free() may be called either way.
 */
int  query_parse(struct query *, const char *raw) MUST_CHECK;
void query_free(struct query *);

/* The first parameter of that name, or NULL; it belongs to q. */
const struct query_param *query_find(const struct query *, const char *);
/* Its value, or NULL when absent. */
const char *query_get(const struct query *, const char *);

#endif
