/*
 * ListObjects (v1, marker) and ListObjectsV2 (list-type=2, continuation
 * tokens).  Both walk the bucket in key order from a lower bound and fold
 * keys into CommonPrefixes at the delimiter.
 *
 * A listing resumes strictly after a bound: the key or common prefix a
 * token names, start-after or marker.  A common prefix that is not greater
 * than the bound is skipped whole, as S3 does, so a page that ended on a
 * common prefix never repeats it.
 *
 * The continuation token is the standard base64 of the last key or common
 * prefix returned, so it has '+', '/' and '=' in it as S3's tokens do and
 * a client must encode it in the query.  With encoding-type=url the
 * elements S3 documents as encoded are URL-encoded (v2: Delimiter,
 * Prefix, ContinuationToken, Key, StartAfter; v1: Delimiter, Marker,
 * Prefix, NextMarker, Key; CommonPrefixes' Prefix in both);
 * NextContinuationToken never is.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "b64.h"
#include "ops.h"
#include "xmlout.h"

#define MAX_KEYS 1000

struct list_params {
	int	    v2;
	const char *prefix;
	size_t	    prefixlen;
	const char *delim; /* NULL: none (an empty delimiter is none) */
	size_t	    delimlen;
	int64_t	    max_keys;
	int	    urlenc;
	int	    fetch_owner;
	const char *token;	 /* v2, as given */
	const char *start_after; /* v2 */
	const char *marker;	 /* v1 */
	char	   *after;	 /* the bound, decoded; NULL for none */
	size_t	    afterlen;
};

struct list_page {
	struct buf contents;
	struct buf prefixes;
	struct buf last; /* the last key or prefix returned */
	int64_t	   count;
	int	   truncated;
	int64_t	   mtime; /* cache for the formatting of LastModified */
	char	   mtime_text[32];
};

/* A query parameter as a string, refusing NULs.  Replies on failure. */
static int
param(struct s3req *r, const char *name, const char **out, size_t *lenp)
{
	const struct query_param *qp = query_find(&r->query, name);

	*out = NULL;
	if (lenp != NULL)
		*lenp = 0;
	if (qp == NULL)
		return 0;
	if (strlen(qp->value) != qp->value_len ||
	    !utf8_valid(qp->value, qp->value_len)) {
		reply_error(r, 400, "InvalidArgument",
		    "The %s parameter must be UTF-8 without NUL.", name);
		return -1;
	}
	*out = qp->value;
	if (lenp != NULL)
		*lenp = qp->value_len;
	return 0;
}

/* The key or prefix a continuation token names. */
static int
decode_token(const char *tok, char **out, size_t *outlen)
{
	size_t	       len = strlen(tok), i, pad = 0;
	unsigned char *dec;
	int	       n;

	if (len == 0 || len % 4 != 0 || len > 4 * (S3MEM_MAX_KEY + 2) / 3 + 4)
		return -1;
	for (i = 0; i < len; i++) {
		if (tok[i] == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (pad > 0 ||
		    !((tok[i] >= 'A' && tok[i] <= 'Z') ||
			(tok[i] >= 'a' && tok[i] <= 'z') ||
			(tok[i] >= '0' && tok[i] <= '9') || tok[i] == '+' ||
			tok[i] == '/'))
			return -1;
	}
	dec = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(dec, (const unsigned char *)tok, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(dec);
		return -1;
	}
	*outlen = (size_t)n - pad;
	dec[*outlen] = '\0';
	if (*outlen == 0 || memchr(dec, '\0', *outlen) != NULL ||
	    !utf8_valid((char *)dec, *outlen)) {
		free(dec);
		return -1;
	}
	*out = (char *)dec;
	return 0;
}

static int
parse_max_keys(struct s3req *r, struct list_params *p)
{
	const char *s;
	char	   *end;
	long long   v;

	p->max_keys = MAX_KEYS;
	if (param(r, "max-keys", &s, NULL) != 0)
		return -1;
	if (s == NULL)
		return 0;
	v = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || v < 0 || v > 2147483647) {
		reply_error(r, 400, "InvalidArgument",
		    "Provided max-keys not an integer or within integer range");
		return -1;
	}
	p->max_keys = v > MAX_KEYS ? MAX_KEYS : v;
	return 0;
}

static int
parse_bound(struct s3req *r, struct list_params *p)
{
	const char *bound;

	if (p->v2 && p->token != NULL) {
		if (decode_token(p->token, &p->after, &p->afterlen) != 0) {
			reply_error(r, 400, "InvalidArgument",
			    "The continuation token provided is incorrect");
			return -1;
		}
		return 0;
	}
	bound = p->v2 ? p->start_after : p->marker;
	if (bound != NULL && *bound != '\0') {
		p->afterlen = strlen(bound);
		p->after = xstrndup(bound, p->afterlen);
	}
	return 0;
}

/* Reads the request's parameters.  Replies on failure. */
static int
parse_params(struct s3req *r, struct list_params *p)
{
	const char *lt, *enc, *owner;

	memset(p, 0, sizeof(*p));
	if (param(r, "list-type", &lt, NULL) != 0 ||
	    param(r, "prefix", &p->prefix, &p->prefixlen) != 0 ||
	    param(r, "delimiter", &p->delim, &p->delimlen) != 0 ||
	    param(r, "encoding-type", &enc, NULL) != 0 ||
	    param(r, "fetch-owner", &owner, NULL) != 0 ||
	    param(r, "continuation-token", &p->token, NULL) != 0 ||
	    param(r, "start-after", &p->start_after, NULL) != 0 ||
	    param(r, "marker", &p->marker, NULL) != 0 ||
	    parse_max_keys(r, p) != 0)
		return -1;
	if (lt != NULL && strcmp(lt, "2") != 0) {
		reply_error(r, 400, "InvalidArgument",
		    "Invalid List Type specified in Request");
		return -1;
	}
	if (enc != NULL && strcmp(enc, "url") != 0) {
		reply_error(r, 400, "InvalidArgument",
		    "Invalid Encoding Method specified in Request");
		return -1;
	}
	p->v2 = lt != NULL;
	p->urlenc = enc != NULL;
	p->fetch_owner = !p->v2 ||
	    (owner != NULL && strcmp(owner, "true") == 0);
	if (p->prefix == NULL)
		p->prefix = "";
	if (p->delim != NULL && p->delimlen == 0)
		p->delim = NULL;
	return parse_bound(r, p);
}

static void
add_contents(
    struct list_page *pg, const struct list_params *p, const struct object *o)
{
	struct buf *b = &pg->contents;
	char	    etag[40];

	if (pg->count == 0 || pg->mtime != o->mtime) {
		pg->mtime = o->mtime;
		time_iso8601(o->mtime, pg->mtime_text);
	}
	etag_object(o, etag);
	buf_adds(b, "<Contents>");
	xml_elem(b, "Key", o->key, o->keylen, p->urlenc);
	xml_elem_str(b, "LastModified", pg->mtime_text, 0);
	xml_elem_str(b, "ETag", etag, 0);
	xml_elem_int(b, "Size", o->size);
	if (p->fetch_owner)
		buf_adds(b,
		    "<Owner><ID>s3mem</ID><DisplayName>s3mem"
		    "</DisplayName></Owner>");
	buf_adds(b, "<StorageClass>STANDARD</StorageClass></Contents>");
}

static void
set_last(struct list_page *pg, const char *s, size_t n)
{
	buf_reset(&pg->last);
	buf_add(&pg->last, s, n);
}

/*
 * Moves cur past every key that starts with prefix[0..n): to the first key
 * not below prefix with its last byte incremented.  Returns 0, or -1 when
 * no such key can exist.
 */
static int
skip_prefix(
    const struct bucket *b, const char *prefix, size_t n, struct cursor *cur)
{
	char *end;
	int   rc = -1;

	end = xstrndup(prefix, n);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n > 0) {
		end[n - 1]++;
		bucket_seek(b, end, n, cur);
		rc = 0;
	}
	free(end);
	return rc;
}

/* Walks from the bound; fills pg with at most max_keys entries. */
static void
walk(const struct bucket *b, const struct list_params *p, struct list_page *pg)
{
	const struct object *o;
	struct cursor	     cur;
	const char	    *d;
	size_t		     cplen;

	if (p->after != NULL &&
	    key_cmp(p->after, p->afterlen, p->prefix, p->prefixlen) >= 0) {
		bucket_seek(b, p->after, p->afterlen, &cur);
		o = cursor_object(&cur);
		if (o != NULL &&
		    key_cmp(o->key, o->keylen, p->after, p->afterlen) == 0)
			cursor_next(&cur);
	} else
		bucket_seek(b, p->prefix, p->prefixlen, &cur);

	while ((o = cursor_object(&cur)) != NULL && p->max_keys > 0) {
		if (o->keylen < p->prefixlen ||
		    memcmp(o->key, p->prefix, p->prefixlen) != 0)
			break;
		d = NULL;
		if (p->delim != NULL)
			d = memmem(o->key + p->prefixlen,
			    o->keylen - p->prefixlen, p->delim, p->delimlen);
		if (d == NULL) {
			if (pg->count == p->max_keys) {
				pg->truncated = 1;
				break;
			}
			add_contents(pg, p, o);
			set_last(pg, o->key, o->keylen);
			pg->count++;
			cursor_next(&cur);
			continue;
		}
		cplen = (size_t)(d - o->key) + p->delimlen;
		if (p->after == NULL ||
		    key_cmp(o->key, cplen, p->after, p->afterlen) > 0) {
			if (pg->count == p->max_keys) {
				pg->truncated = 1;
				break;
			}
			buf_adds(&pg->prefixes, "<CommonPrefixes>");
			xml_elem(
			    &pg->prefixes, "Prefix", o->key, cplen, p->urlenc);
			buf_adds(&pg->prefixes, "</CommonPrefixes>");
			set_last(pg, o->key, cplen);
			pg->count++;
		}
		if (skip_prefix(b, o->key, cplen, &cur) != 0)
			break;
	}
}

static void
write_v2(struct buf *out, struct s3req *r, const struct list_params *p,
    const struct list_page *pg)
{
	char *tok;

	xml_elem_str(out, "Name", bucket_name(r->bucket), 0);
	xml_elem(out, "Prefix", p->prefix, p->prefixlen, p->urlenc);
	if (p->delim != NULL)
		xml_elem(out, "Delimiter", p->delim, p->delimlen, p->urlenc);
	xml_elem_int(out, "MaxKeys", p->max_keys);
	if (p->urlenc)
		xml_elem_str(out, "EncodingType", "url", 0);
	xml_elem_int(out, "KeyCount", pg->count);
	xml_elem_str(out, "IsTruncated", pg->truncated ? "true" : "false", 0);
	if (p->token != NULL)
		xml_elem_str(out, "ContinuationToken", p->token, p->urlenc);
	if (pg->truncated) {
		tok = b64_encode(pg->last.data, pg->last.len);
		xml_elem_str(out, "NextContinuationToken", tok, 0);
		free(tok);
	}
	if (p->start_after != NULL)
		xml_elem_str(out, "StartAfter", p->start_after, p->urlenc);
}

static void
write_v1(struct buf *out, struct s3req *r, const struct list_params *p,
    const struct list_page *pg)
{
	xml_elem_str(out, "Name", bucket_name(r->bucket), 0);
	xml_elem(out, "Prefix", p->prefix, p->prefixlen, p->urlenc);
	xml_elem_str(
	    out, "Marker", p->marker != NULL ? p->marker : "", p->urlenc);
	xml_elem_int(out, "MaxKeys", p->max_keys);
	if (p->delim != NULL)
		xml_elem(out, "Delimiter", p->delim, p->delimlen, p->urlenc);
	if (p->urlenc)
		xml_elem_str(out, "EncodingType", "url", 0);
	xml_elem_str(out, "IsTruncated", pg->truncated ? "true" : "false", 0);
	/* Without a delimiter clients resume from the last Key. */
	if (pg->truncated && p->delim != NULL)
		xml_elem(
		    out, "NextMarker", pg->last.data, pg->last.len, p->urlenc);
}

void
op_list_objects(struct s3req *r)
{
	struct list_params p;
	struct list_page   pg;
	struct buf	   out;

	if (parse_params(r, &p) != 0)
		return;
	memset(&pg, 0, sizeof(pg));
	buf_init(&pg.contents);
	buf_init(&pg.prefixes);
	buf_init(&pg.last);
	walk(r->bucket, &p, &pg);

	buf_init(&out);
	buf_adds(&out, XML_DECL "<ListBucketResult xmlns=\"" S3_XMLNS "\">");
	if (p.v2)
		write_v2(&out, r, &p, &pg);
	else
		write_v1(&out, r, &p, &pg);
	buf_add(&out, pg.contents.data, pg.contents.len);
	buf_add(&out, pg.prefixes.data, pg.prefixes.len);
	buf_adds(&out, "</ListBucketResult>");
	reply(r, 200, &out);

	buf_free(&out);
	buf_free(&pg.contents);
	buf_free(&pg.prefixes);
	buf_free(&pg.last);
	free(p.after);
}
