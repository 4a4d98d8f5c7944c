/*
 * PutObject, GetObject, HeadObject, DeleteObject.
 */
#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "ops.h"
#include "sigv4.h"
#include "xmlout.h"

/* Latest mtime x-s3mem-last-modified takes: 9999-12-31T23:59:59Z. */
#define MAX_MTIME 253402300799LL

/* Headers a PUT stores and a GET gives back, besides x-amz-meta-*. */
static const char *const kept_headers[] = {"Cache-Control",
    "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Type", "Expires"};

static const char *
in_header(struct s3req *r, const char *name)
{
	return evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), name);
}

static int
is_kept(const char *name)
{
	size_t i;

	if (strncasecmp(name, "x-amz-meta-", 11) == 0)
		return 1;
	for (i = 0; i < nitems(kept_headers); i++)
		if (strcasecmp(name, kept_headers[i]) == 0)
			return 1;
	return 0;
}

/* "name: value\n" for each header to give back, names lowercased. */
static char *
kept_header_lines(struct s3req *r)
{
	struct evkeyval *kv;
	struct buf	 b;
	size_t		 start, i;

	buf_init(&b);
	buf_add(&b, "", 0);
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(r->req), next)
	{
		if (!is_kept(kv->key))
			continue;
		start = b.len;
		buf_addf(&b, "%s: %s\n", kv->key, kv->value);
		for (i = start; b.data[i] != ':'; i++)
			if (b.data[i] >= 'A' && b.data[i] <= 'Z')
				b.data[i] = (char)(b.data[i] - 'A' + 'a');
	}
	return buf_steal(&b);
}

/* Parses a decimal integer in [min, max], the whole string. */
static int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char	 *end;
	long long v;

	if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
is_base64_md5(const char *s)
{
	size_t i;

	if (strlen(s) != 24 || strcmp(s + 22, "==") != 0)
		return 0;
	for (i = 0; i < 22; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
			s[i] == '/'))
			return 0;
	return 1;
}

int
check_content_md5(struct s3req *r, int required)
{
	const char *claimed = in_header(r, "Content-MD5");
	char	    actual[25];

	if (claimed == NULL) {
		if (!required)
			return 0;
		reply_error(r, 400, "InvalidRequest",
		    "Missing required header for this request: Content-MD5");
		return -1;
	}
	if (!is_base64_md5(claimed)) {
		reply_error(r, 400, "InvalidDigest",
		    "The Content-MD5 you specified was invalid.");
		return -1;
	}
	md5_base64(r->body, r->bodylen, actual);
	if (strcmp(actual, claimed) != 0) {
		reply_error(r, 400, "BadDigest",
		    "The Content-MD5 you specified did not match what we "
		    "received.");
		return -1;
	}
	return 0;
}

static struct body *
body_new(struct s3req *r)
{
	struct body *b;
	unsigned int len = 0;

	b = xmalloc(sizeof(*b) + r->bodylen);
	b->len = r->bodylen;
	memcpy(b->data, r->body, r->bodylen);
	if (EVP_Digest(r->body, r->bodylen, b->md5, &len, EVP_md5(), NULL) !=
		1 ||
	    len != 16)
		memset(b->md5, 0, sizeof(b->md5));
	b->headers = kept_header_lines(r);
	if (b->headers[0] == '\0') {
		free(b->headers);
		b->headers = NULL;
	}
	return b;
}

void
op_put_object(struct s3req *r)
{
	struct object *o;
	const char    *lm;
	int64_t	       mtime = time(NULL);
	char	       etag[40];

	if (in_header(r, "x-amz-copy-source") != NULL) {
		reply_error(r, 501, "NotImplemented",
		    "s3mem does not implement CopyObject.");
		return;
	}
	if (r->bodylen > S3MEM_MAX_BODY) {
		reply_error(r, 400, "EntityTooLarge",
		    "Your proposed upload exceeds s3mem's maximum object size "
		    "(%d bytes).",
		    S3MEM_MAX_BODY);
		return;
	}
	if (check_content_md5(r, 0) != 0)
		return;
	lm = in_header(r, "x-s3mem-last-modified");
	if (lm != NULL && parse_int64(lm, 0, MAX_MTIME, &mtime) != 0) {
		reply_error(r, 400, "InvalidArgument",
		    "x-s3mem-last-modified must be Unix seconds, not "
		    "\"%.40s\".",
		    lm);
		return;
	}
	o = object_new(r->key, r->keylen, (int64_t)r->bodylen, mtime);
	o->body = body_new(r);
	etag_object(o, etag);
	bucket_put(r->bucket, o);
	evhttp_add_header(reply_headers(r), "ETag", etag);
	reply(r, 200, NULL);
}

/*
 * A single "bytes=first-last" or "bytes=-suffix".  Returns 0 to send the
 * whole object (no Range, or one HTTP lets us ignore), 1 with [*first,
 * *last] set, -1 when it cannot be satisfied.
 */
static int
parse_range(const char *h, int64_t size, int64_t *first, int64_t *last)
{
	const char *dash;
	char	    a[24], b[24];
	int64_t	    x, y;
	size_t	    alen;

	if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') ||
	    (dash = strchr(h + 6, '-')) == NULL)
		return 0;
	alen = (size_t)(dash - (h + 6));
	if (alen >= sizeof(a) || strlen(dash + 1) >= sizeof(b))
		return 0;
	memcpy(a, h + 6, alen);
	a[alen] = '\0';
	strlcpy_(b, dash + 1, sizeof(b));
	if (alen == 0) {
		if (parse_int64(b, 0, INT64_MAX, &y) != 0)
			return 0;
		if (y == 0 || size == 0)
			return -1;
		*first = y >= size ? 0 : size - y;
		*last = size - 1;
		return 1;
	}
	if (parse_int64(a, 0, INT64_MAX, &x) != 0)
		return 0;
	if (b[0] == '\0')
		y = INT64_MAX;
	else if (parse_int64(b, 0, INT64_MAX, &y) != 0 || y < x)
		return 0;
	if (x >= size)
		return -1;
	*first = x;
	*last = y >= size ? size - 1 : y;
	return 1;
}

static void
add_object_headers(struct s3req *r, const struct object *o)
{
	struct evkeyvalq *h = reply_headers(r);
	const char	 *line, *colon, *nl;
	char		  when[32], etag[40], *name, *value;

	etag_object(o, etag);
	time_http(o->mtime, when);
	evhttp_add_header(h, "ETag", etag);
	evhttp_add_header(h, "Last-Modified", when);
	evhttp_add_header(h, "Accept-Ranges", "bytes");
	if (o->body != NULL && o->body->headers != NULL)
		for (line = o->body->headers; *line != '\0'; line = nl + 1) {
			nl = strchr(line, '\n');
			colon = strchr(line, ':');
			name = xstrndup(line, (size_t)(colon - line));
			value = xstrndup(colon + 2, (size_t)(nl - colon - 2));
			evhttp_add_header(h, name, value);
			free(name);
			free(value);
		}
	if (evhttp_find_header(h, "Content-Type") == NULL)
		evhttp_add_header(h, "Content-Type", "binary/octet-stream");
}

static void
send_content(struct s3req *r, const struct object *o, int status, int64_t first,
    int64_t len)
{
	char  n[24];
	char *zeros;

	snprintf(n, sizeof(n), "%" PRId64, len);
	evhttp_add_header(reply_headers(r), "Content-Length", n);
	if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD)
		reply_bytes(r, status, NULL, 0);
	else if (o->body != NULL)
		reply_bytes(r, status, o->body->data + first, (size_t)len);
	else {
		zeros = xcalloc(1, (size_t)len + 1);
		reply_bytes(r, status, zeros, (size_t)len);
		free(zeros);
	}
}

void
op_get_object(struct s3req *r)
{
	const struct object *o;
	int64_t		     first = 0, last = 0, len;
	int		     ranged;
	char		     cr[80];

	if ((o = bucket_get(r->bucket, r->key, r->keylen)) == NULL) {
		reply_error(
		    r, 404, "NoSuchKey", "The specified key does not exist.");
		return;
	}
	ranged = parse_range(in_header(r, "Range"), o->size, &first, &last);
	if (ranged < 0) {
		snprintf(cr, sizeof(cr), "bytes */%" PRId64, o->size);
		evhttp_add_header(reply_headers(r), "Content-Range", cr);
		reply_error(r, 416, "InvalidRange",
		    "The requested range is not satisfiable");
		return;
	}
	len = ranged ? last - first + 1 : o->size;
	if (evhttp_request_get_command(r->req) != EVHTTP_REQ_HEAD &&
	    len > S3MEM_MAX_BODY) {
		reply_error(r, 501, "NotImplemented",
		    "s3mem serves at most %d bytes in one GET; ask for a "
		    "Range.",
		    S3MEM_MAX_BODY);
		return;
	}
	add_object_headers(r, o);
	if (ranged) {
		snprintf(cr, sizeof(cr),
		    "bytes %" PRId64 "-%" PRId64 "/%" PRId64, first, last,
		    o->size);
		evhttp_add_header(reply_headers(r), "Content-Range", cr);
	}
	send_content(r, o, ranged ? 206 : 200, first, len);
}

/* S3 answers 204 whether or not the key was there. */
void
op_delete_object(struct s3req *r)
{
	bucket_delete(r->bucket, r->key, r->keylen);
	reply(r, 204, NULL);
}
