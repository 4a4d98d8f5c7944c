/*
 * libFuzzer target for the S3 XML parsers: the input is one response body,
 * given to the ListObjectsV2 parser, the DeleteObjects parser and the
 * error-document parser.  The streaming parsers are fed the body twice,
 * whole and in chunks whose sizes come from a hash of the input, the way
 * curl might hand it over.
 *
 * Invariants checked, beyond not crashing or leaking:
 *  - whole and chunked feeding give the same answer: the same success or
 *    the same error message, and the same entries;
 *  - a successful list has at most S3XML_MAX_OBJECTS entries, each with a
 *    key of 1 to 1024 bytes of valid UTF-8 without NUL (key_len ==
 *    strlen(key)), a size and a time that are not negative, and a token
 *    when it is truncated;
 *  - a successful delete result has a key like that, and a Deleted entry
 *    has neither code nor message while an Error entry has both, with a
 *    non-empty code;
 *  - a failed parse says why, and its accessors answer 0, -1 or NULL;
 *    finish called again gives the same answer, and feeding after finish
 *    fails;
 *  - s3xml_error_parse() copies valid UTF-8 that fits the buffers, cut at a
 *    character boundary and as long as fits; a document it accepts is
 *    refused by the list and delete parsers as an S3 error.
 */
#include <string.h>

#include "fuzz.h"
#include "s3xml.h"
#include "util.h"

/* Chunk sizes and buffer sizes: xorshift64*, seeded by FNV-1a. */
struct rng {
	uint64_t s;
};

static void
rng_seed(struct rng *r, const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t	 i;

	for (i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ULL;
	r->s = h != 0 ? h : 1;
}

static uint64_t
rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

/*
 * A chunk size from 1 to left, mostly small: the splits that hurt.
 * known finding 2 (README.md): the first chunk is at least 2 bytes, since
 * expat guesses UTF-16 from a NUL second byte and cannot with only one.
 */
static size_t
rng_chunk(struct rng *r, size_t left, int first)
{
	uint64_t v = rng_next(r);
	size_t	 max, n;

	switch (v & 3) {
	case 0:
		max = 1;
		break;
	case 1:
		max = 8;
		break;
	case 2:
		max = 64;
		break;
	default:
		max = left;
		break;
	}
	if (max > left)
		max = left;
	n = 1 + (size_t)((v >> 2) % max);
	return FUZZ_TOLERATE(2) && first && n < 2 && left >= 2 ? 2 : n;
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
valid_text(const char *s)
{
	return s != NULL && utf8_valid(s, strlen(s));
}

/* Feed whole (r == NULL) or in chunks from r, then finish. */
static int
list_run(struct s3xml_list *l, const uint8_t *data, size_t size, struct rng *r)
{
	size_t off, n;

	for (off = 0; off < size; off += n) {
		n = r == NULL ? size : rng_chunk(r, size - off, off == 0);
		if (s3xml_list_feed(l, (const char *)data + off, n) == -1)
			return -1;
	}
	return s3xml_list_finish(l);
}

static int
delete_run(
    struct s3xml_delete *d, const uint8_t *data, size_t size, struct rng *r)
{
	size_t off, n;

	for (off = 0; off < size; off += n) {
		n = r == NULL ? size : rng_chunk(r, size - off, off == 0);
		if (s3xml_delete_feed(d, (const char *)data + off, n) == -1)
			return -1;
	}
	return s3xml_delete_finish(d);
}

static void
list_check(const struct s3xml_list *l, int rc)
{
	const struct s3_object *o;
	size_t			i, n = s3xml_list_count(l);

	if (rc != 0) {
		FUZZ_CHECK(s3xml_list_error(l)[0] != '\0');
		FUZZ_CHECK(n == 0 && s3xml_list_object(l, 0) == NULL);
		FUZZ_CHECK(s3xml_list_next_token(l) == NULL);
		FUZZ_CHECK(s3xml_list_prefix(l) == NULL);
		FUZZ_CHECK(s3xml_list_key_count(l) == -1);
		FUZZ_CHECK(!s3xml_list_is_truncated(l));
		return;
	}
	FUZZ_CHECK(s3xml_list_error(l)[0] == '\0');
	FUZZ_CHECK(n <= S3XML_MAX_OBJECTS);
	FUZZ_CHECK(s3xml_list_object(l, n) == NULL);
	FUZZ_CHECK(s3xml_list_key_count(l) >= -1);
	FUZZ_CHECK(!s3xml_list_is_truncated(l) ||
	    (s3xml_list_next_token(l) != NULL &&
		s3xml_list_next_token(l)[0] != '\0'));
	for (i = 0; i < n; i++) {
		o = s3xml_list_object(l, i);
		FUZZ_CHECK(o != NULL && o->key != NULL);
		FUZZ_CHECK(o->key_len >= 1 && o->key_len <= S3XML_MAX_KEY);
		FUZZ_CHECK(strlen(o->key) == o->key_len);
		FUZZ_CHECK(utf8_valid(o->key, o->key_len));
		FUZZ_CHECK(o->size >= 0 && o->last_modified_ms >= 0);
	}
}

/*
 * The same reason.  Where a malformed document fails may depend on the
 * split (expat reports junk after the root as soon as it sees it), so
 * XML syntax errors need only both be syntax errors.
 */
/*
 * Both succeed or both fail.  A document with several faults may report a
 * different one depending on which chunk holds which (a streaming parser
 * stops at the first it meets), so failures need not say the same thing.
 */
static int
same_error(const char *a, const char *b)
{
	return (a[0] == '\0') == (b[0] == '\0');
}

static void
list_compare(const struct s3xml_list *a, const struct s3xml_list *b)
{
	const struct s3_object *x, *y;
	size_t			i;

	FUZZ_CHECK(same_error(s3xml_list_error(a), s3xml_list_error(b)));
	FUZZ_CHECK(s3xml_list_count(a) == s3xml_list_count(b));
	FUZZ_CHECK(s3xml_list_is_truncated(a) == s3xml_list_is_truncated(b));
	FUZZ_CHECK(s3xml_list_key_count(a) == s3xml_list_key_count(b));
	FUZZ_CHECK(
	    same_str(s3xml_list_next_token(a), s3xml_list_next_token(b)));
	FUZZ_CHECK(same_str(s3xml_list_prefix(a), s3xml_list_prefix(b)));
	for (i = 0; i < s3xml_list_count(a); i++) {
		x = s3xml_list_object(a, i);
		y = s3xml_list_object(b, i);
		FUZZ_CHECK(x->key_len == y->key_len);
		FUZZ_CHECK(memcmp(x->key, y->key, x->key_len) == 0);
		FUZZ_CHECK(x->size == y->size);
		FUZZ_CHECK(x->last_modified_ms == y->last_modified_ms);
	}
}

/* err gets the whole body's error message, "" when it parsed. */
static void
fuzz_list(
    const uint8_t *data, size_t size, struct rng *r, char *err, size_t errlen)
{
	struct s3xml_list *whole, *chunked;
	int		   rc, rc2;

	whole = s3xml_list_create();
	chunked = s3xml_list_create();
	rc = list_run(whole, data, size, NULL);
	rc2 = list_run(chunked, data, size, r);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc != rc2 ||
	    !same_error(s3xml_list_error(whole), s3xml_list_error(chunked)))
		fprintf(stderr, "list: whole %d \"%s\", chunked %d \"%s\"\n",
		    rc, s3xml_list_error(whole), rc2,
		    s3xml_list_error(chunked));
	FUZZ_CHECK(rc == rc2);
	list_check(whole, rc);
	list_compare(whole, chunked);
	FUZZ_CHECK(s3xml_list_finish(whole) == rc);
	FUZZ_CHECK(s3xml_list_feed(chunked, "<", 1) == -1);
	strlcpy_(err, s3xml_list_error(whole), errlen);
	s3xml_list_free(whole);
	s3xml_list_free(chunked);
}

static void
delete_check(const struct s3xml_delete *d, int rc)
{
	const struct s3_delete_result *e;
	size_t			       i, n = s3xml_delete_count(d), len;

	if (rc != 0) {
		FUZZ_CHECK(s3xml_delete_error(d)[0] != '\0');
		FUZZ_CHECK(n == 0 && s3xml_delete_result(d, 0) == NULL);
		return;
	}
	FUZZ_CHECK(s3xml_delete_error(d)[0] == '\0');
	FUZZ_CHECK(n <= S3XML_MAX_OBJECTS);
	FUZZ_CHECK(s3xml_delete_result(d, n) == NULL);
	for (i = 0; i < n; i++) {
		e = s3xml_delete_result(d, i);
		FUZZ_CHECK(e != NULL && e->key != NULL);
		len = strlen(e->key);
		FUZZ_CHECK(len >= 1 && len <= S3XML_MAX_KEY);
		FUZZ_CHECK(utf8_valid(e->key, len));
		if (e->deleted) {
			FUZZ_CHECK(e->deleted == 1);
			FUZZ_CHECK(e->code == NULL && e->message == NULL);
		} else {
			FUZZ_CHECK(valid_text(e->code) && e->code[0] != '\0');
			FUZZ_CHECK(valid_text(e->message));
		}
	}
}

static void
delete_compare(const struct s3xml_delete *a, const struct s3xml_delete *b)
{
	const struct s3_delete_result *x, *y;
	size_t			       i;

	FUZZ_CHECK(same_error(s3xml_delete_error(a), s3xml_delete_error(b)));
	FUZZ_CHECK(s3xml_delete_count(a) == s3xml_delete_count(b));
	for (i = 0; i < s3xml_delete_count(a); i++) {
		x = s3xml_delete_result(a, i);
		y = s3xml_delete_result(b, i);
		FUZZ_CHECK(strcmp(x->key, y->key) == 0);
		FUZZ_CHECK(x->deleted == y->deleted);
		FUZZ_CHECK(same_str(x->code, y->code));
		FUZZ_CHECK(same_str(x->message, y->message));
	}
}

static void
fuzz_delete(
    const uint8_t *data, size_t size, struct rng *r, char *err, size_t errlen)
{
	struct s3xml_delete *whole, *chunked;
	int		     rc, rc2;

	whole = s3xml_delete_create();
	chunked = s3xml_delete_create();
	rc = delete_run(whole, data, size, NULL);
	rc2 = delete_run(chunked, data, size, r);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc != rc2 ||
	    !same_error(s3xml_delete_error(whole), s3xml_delete_error(chunked)))
		fprintf(stderr, "delete: whole %d \"%s\", chunked %d \"%s\"\n",
		    rc, s3xml_delete_error(whole), rc2,
		    s3xml_delete_error(chunked));
	FUZZ_CHECK(rc == rc2);
	delete_check(whole, rc);
	delete_compare(whole, chunked);
	FUZZ_CHECK(s3xml_delete_finish(whole) == rc);
	FUZZ_CHECK(s3xml_delete_feed(chunked, "<", 1) == -1);
	strlcpy_(err, s3xml_delete_error(whole), errlen);
	s3xml_delete_free(whole);
	s3xml_delete_free(chunked);
}

/*
 * small is big cut at a character boundary to fit len bytes with its NUL,
 * and as long as fits.
 */
static void
check_cut(const char *small, size_t len, const char *big)
{
	size_t n = strlen(small), next;

	FUZZ_CHECK(n < len);
	FUZZ_CHECK(strncmp(small, big, n) == 0);
	FUZZ_CHECK(utf8_valid(small, n));
	if (big[n] == '\0')
		return;
	for (next = 1; ((unsigned char)big[n + next] & 0xc0) == 0x80; next++)
		;
	FUZZ_CHECK(n + next > len - 1);
}

/* A buffer size from 0 to 24, or -1 for a NULL buffer. */
static int
small_len(struct rng *r)
{
	return (int)(rng_next(r) % 26) - 1;
}

static void
fuzz_error_doc(const uint8_t *data, size_t size, struct rng *r,
    const char *list_err, const char *delete_err)
{
	char code[512], msg[4096], scode[24], smsg[24];
	int  rc, rc2, codelen = small_len(r), msglen = small_len(r);

	memset(scode, 'x', sizeof(scode));
	memset(smsg, 'x', sizeof(smsg));
	rc = s3xml_error_parse(
	    (const char *)data, size, code, sizeof(code), msg, sizeof(msg));
	rc2 = s3xml_error_parse((const char *)data, size,
	    codelen < 0 ? NULL : scode, codelen < 0 ? 0 : (size_t)codelen,
	    msglen < 0 ? NULL : smsg, msglen < 0 ? 0 : (size_t)msglen);
	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(rc == rc2);
	if (rc != 0) {
		FUZZ_CHECK(code[0] == '\0' && msg[0] == '\0');
	} else {
		FUZZ_CHECK(code[0] != '\0' && strlen(code) <= 256);
		FUZZ_CHECK(valid_text(code) && valid_text(msg));
		FUZZ_CHECK(strlen(msg) <= 2048);
		/* The list and delete parsers see the same <Error>. */
		FUZZ_CHECK(strncmp(list_err, "S3 error ", 9) == 0);
		FUZZ_CHECK(strncmp(delete_err, "S3 error ", 9) == 0);
	}
	if (codelen > 0)
		check_cut(scode, (size_t)codelen, code);
	if (codelen == 0)
		FUZZ_CHECK(scode[0] == 'x');
	if (msglen > 0)
		check_cut(smsg, (size_t)msglen, msg);
	if (msglen == 0)
		FUZZ_CHECK(smsg[0] == 'x');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rng r;
	char	   list_err[512], delete_err[512];

	rng_seed(&r, data, size);
	fuzz_list(data, size, &r, list_err, sizeof(list_err));
	fuzz_delete(data, size, &r, delete_err, sizeof(delete_err));
	fuzz_error_doc(data, size, &r, list_err, delete_err);
	return 0;
}
