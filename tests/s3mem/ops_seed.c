/*
 * POST /BUCKET?s3mem-seed: objects without bodies, in bulk, for tests
 * that need many keys fast.  The body is lines of
 *	KEY \t SIZE \t UNIX_MTIME \n
 * (the last newline optional).  KEY is raw UTF-8, 1 to 1024 bytes,
 * without NUL, tab or newline; SIZE is 0 to 5 TiB; UNIX_MTIME is seconds
 * from 0 to the end of year 9999.  The whole body is checked before any
 * object is stored: one bad line stores nothing.  An existing object
 * under a seeded key is replaced.  Keys in ascending byte order take the
 * append fast path of the index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "xmlout.h"

#define MAX_MTIME 253402300799LL

struct seed_line {
	const char *key;
	size_t	    keylen;
	int64_t	    size;
	int64_t	    mtime;
};

/* Decimal digits only, at most max. */
static int
parse_uint(const char *s, size_t n, int64_t max, int64_t *out)
{
	int64_t v = 0;
	size_t	i;

	if (n == 0 || n > 19)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

/* Splits the line at p (ending at end, without the newline). */
static const char *
parse_line(const char *p, const char *end, struct seed_line *sl)
{
	const char *t1, *t2;

	if ((t1 = memchr(p, '\t', (size_t)(end - p))) == NULL ||
	    (t2 = memchr(t1 + 1, '\t', (size_t)(end - t1 - 1))) == NULL)
		return "expected KEY<tab>SIZE<tab>UNIX_MTIME";
	sl->key = p;
	sl->keylen = (size_t)(t1 - p);
	if (sl->keylen == 0 || sl->keylen > S3MEM_MAX_KEY)
		return "the key must be 1 to 1024 bytes";
	if (memchr(p, '\0', sl->keylen) != NULL || !utf8_valid(p, sl->keylen))
		return "the key must be UTF-8 without NUL";
	if (parse_uint(
		t1 + 1, (size_t)(t2 - t1 - 1), S3MEM_MAX_SIZE, &sl->size) != 0)
		return "SIZE must be a byte count up to 5 TiB";
	if (parse_uint(t2 + 1, (size_t)(end - t2 - 1), MAX_MTIME, &sl->mtime) !=
	    0)
		return "UNIX_MTIME must be seconds since 1970";
	return NULL;
}

/*
 * Calls each line's parse; with b set, stores it too.  Returns the
 * number of lines, or -1 with *why and *lineno set.
 */
static long
seed_pass(const char *body, size_t len, struct bucket *b, size_t *replaced,
    const char **why, long *lineno)
{
	const char	*p = body, *end = body + len, *nl;
	struct seed_line sl;
	long		 n = 0;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n++;
		if ((*why = parse_line(p, nl, &sl)) != NULL) {
			*lineno = n;
			return -1;
		}
		if (b != NULL)
			*replaced += (size_t)bucket_put(b,
			    object_new(sl.key, sl.keylen, sl.size, sl.mtime));
		p = nl + 1;
	}
	return n;
}

void
op_seed(struct s3req *r)
{
	struct buf  out;
	const char *why = NULL;
	long	    n, lineno = 0;
	size_t	    replaced = 0;

	if (seed_pass(r->body, r->bodylen, NULL, NULL, &why, &lineno) < 0) {
		reply_error(r, 400, "InvalidArgument",
		    "s3mem-seed line %ld: %s; nothing was stored.", lineno,
		    why);
		return;
	}
	n = seed_pass(r->body, r->bodylen, r->bucket, &replaced, &why, &lineno);
	buf_init(&out);
	buf_adds(&out, XML_DECL "<SeedResult>");
	xml_elem_int(&out, "Seeded", n);
	xml_elem_int(&out, "Replaced", (int64_t)replaced);
	xml_elem_int(
	    &out, "ObjectCount", (int64_t)bucket_object_count(r->bucket));
	buf_adds(&out, "</SeedResult>");
	reply(r, 200, &out);
	buf_free(&out);
}
