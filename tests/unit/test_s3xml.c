/*
 * Tests for the S3 XML response parsers.  Every document is parsed whole
 * and again one byte at a time; the answers must not depend on how the
 * body was split.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"
#include "util.h"
#include "tap.h"

#define XMLDECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define AWSNS	"http://s3.amazonaws.com/doc/2006-03-01/"
#define S3RVNS	"http://doc.s3.amazonaws.com/2006-03-01/"

/* Feed doc in chunks of chunk bytes (0: all at once), then finish. */
static int
feed_list(struct s3xml_list *l, const char *doc, size_t len, size_t chunk)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = chunk == 0 || len - off < chunk ? len - off : chunk;
		if (s3xml_list_feed(l, doc + off, n) == -1)
			return -1;
	}
	return s3xml_list_finish(l);
}

static int
feed_delete(struct s3xml_delete *d, const char *doc, size_t len, size_t chunk)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = chunk == 0 || len - off < chunk ? len - off : chunk;
		if (s3xml_delete_feed(d, doc + off, n) == -1)
			return -1;
	}
	return s3xml_delete_finish(d);
}

static const char *
how(size_t chunk)
{
	return chunk == 0 ? "whole" : "bytewise";
}

/* A list document must fail, with exactly this message, both ways. */
static void
list_fails(const char *name, const char *doc, const char *want)
{
	struct s3xml_list *l;
	size_t		   chunk;

	for (chunk = 0; chunk <= 1; chunk++) {
		l = s3xml_list_create();
		is_int(feed_list(l, doc, strlen(doc), chunk), -1,
		    "%s (%s): fails", name, how(chunk));
		is_str(s3xml_list_error(l), want, "%s (%s): error", name,
		    how(chunk));
		if (strcmp(name, "truncated") == 0) {
			/* Nothing is visible after a failure. */
			is_int(s3xml_list_count(l), 0, "%s (%s): no objects",
			    name, how(chunk));
			ok(s3xml_list_object(l, 0) == NULL,
			    "%s (%s): no object 0", name, how(chunk));
		}
		s3xml_list_free(l);
	}
}

static void
delete_fails(const char *name, const char *doc, const char *want)
{
	struct s3xml_delete *d;
	size_t		     chunk;

	for (chunk = 0; chunk <= 1; chunk++) {
		d = s3xml_delete_create();
		is_int(feed_delete(d, doc, strlen(doc), chunk), -1,
		    "%s (%s): fails", name, how(chunk));
		is_str(s3xml_delete_error(d), want, "%s (%s): error", name,
		    how(chunk));
		is_int(s3xml_delete_count(d), 0, "%s (%s): no results", name,
		    how(chunk));
		s3xml_delete_free(d);
	}
}

static void
is_object(const struct s3xml_list *l, size_t i, const char *key, size_t key_len,
    int64_t size, int64_t mtime, const char *name)
{
	const struct s3_object *o;

	o = s3xml_list_object(l, i);
	if (!ok(o != NULL, "%s: object %zu exists", name, i))
		return;
	is_str(o->key, key, "%s: object %zu key", name, i);
	is_int(o->key_len, key_len, "%s: object %zu key_len", name, i);
	is_int(o->size, size, "%s: object %zu size", name, i);
	is_int(o->last_modified_ms, mtime, "%s: object %zu mtime", name, i);
}

static const char aws_page[] = XMLDECL
    "<ListBucketResult xmlns=\"" AWSNS "\">"
    "<Name>clipsweep-prod</Name><Prefix>clips/</Prefix>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOw"
    "M=</NextContinuationToken>"
    "<KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>clips/2026/11/21/0a1b2c.mp4</Key>"
    "<LastModified>2026-11-21T12:36:00.000Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
    "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>"
    "<ChecksumType>FULL_OBJECT</ChecksumType>"
    "<Size>7340032</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>clips/2026/11/21/thumb &amp; poster.jpg</Key>"
    "<LastModified>2026-11-20T08:01:02.123Z</LastModified>"
    "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>"
    "<Size>0</Size><Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76"
    "c078efc7c6caea54ba06a</ID><DisplayName>clips</DisplayName></Owner>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>clips/2026/11/21/\xed\x95\x9c\xea\xb8\x80 &#x1F600;"
    ".webm</Key>"
    "<LastModified>2026-01-05T17:45:30.5Z</LastModified>"
    "<ETag>&quot;0cc175b9c0f1b6a831c399e269772661-2&quot;</ETag>"
    "<Size>9223372036854775807</Size>"
    "<RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress>"
    "</RestoreStatus>"
    "<StorageClass>GLACIER</StorageClass></Contents>"
    "</ListBucketResult>";

static void
test_aws_page(void)
{
	struct s3xml_list *l;
	size_t		   chunk;
	const char	  *n;

	for (chunk = 0; chunk <= 1; chunk++) {
		n = chunk == 0 ? "aws page" : "aws page bytewise";
		l = s3xml_list_create();
		ok(s3xml_list_object(l, 0) == NULL, "%s: nothing before finish",
		    n);
		ok(s3xml_list_next_token(l) == NULL,
		    "%s: no token before finish", n);
		is_int(feed_list(l, aws_page, sizeof(aws_page) - 1, chunk), 0,
		    "%s: parses", n);
		is_str(s3xml_list_error(l), "", "%s: no error", n);
		is_int(s3xml_list_is_truncated(l), 1, "%s: truncated", n);
		is_str(s3xml_list_next_token(l),
		    "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
		    "%s: token", n);
		is_int(s3xml_list_key_count(l), 3, "%s: KeyCount", n);
		is_str(s3xml_list_prefix(l), "clips/", "%s: prefix", n);
		is_int(s3xml_list_count(l), 3, "%s: count", n);
		is_object(l, 0, "clips/2026/11/21/0a1b2c.mp4", 27, 7340032,
		    INT64_C(1795264560000), n);
		is_object(l, 1, "clips/2026/11/21/thumb & poster.jpg", 35, 0,
		    INT64_C(1795161662123), n);
		is_object(l, 2,
		    "clips/2026/11/21/\xed\x95\x9c\xea\xb8\x80 "
		    "\xf0\x9f\x98\x80.webm",
		    33, INT64_MAX, INT64_C(1767635130500), n);
		ok(s3xml_list_object(l, 3) == NULL, "%s: no object 3", n);
		/* finish is idempotent; more data is refused. */
		is_int(s3xml_list_finish(l), 0, "%s: finish again", n);
		is_int(
		    s3xml_list_feed(l, "x", 1), -1, "%s: feed after finish", n);
		is_str(s3xml_list_error(l), "data fed after finish",
		    "%s: feed after finish error", n);
		s3xml_list_free(l);
	}
}

/* What s3rver 3.7.1 sends: its own namespace, compact, ms timestamps. */
static const char s3rver_page[] = XMLDECL
    "<ListBucketResult xmlns=\"" S3RVNS "\"><Name>clips</Name>"
    "<Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>false</IsTruncated>"
    "<Contents><Key>a b+c%d.mp4</Key>"
    "<LastModified>2026-11-21T12:36:00.000Z</LastModified>"
    "<ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag>"
    "<Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>x/y.txt</Key>"
    "<LastModified>2026-11-20T08:01:02.999Z</LastModified>"
    "<ETag>&quot;7d793037a0760186574b0282f2f435e7&quot;</ETag>"
    "<Size>11</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "</ListBucketResult>";

static void
test_s3rver_page(void)
{
	struct s3xml_list *l;
	size_t		   chunk;
	const char	  *n;

	for (chunk = 0; chunk <= 1; chunk++) {
		n = chunk == 0 ? "s3rver page" : "s3rver page bytewise";
		l = s3xml_list_create();
		is_int(
		    feed_list(l, s3rver_page, sizeof(s3rver_page) - 1, chunk),
		    0, "%s: parses", n);
		is_int(s3xml_list_is_truncated(l), 0, "%s: not truncated", n);
		ok(s3xml_list_next_token(l) == NULL, "%s: no token", n);
		is_int(s3xml_list_key_count(l), 2, "%s: KeyCount", n);
		is_str(s3xml_list_prefix(l), "", "%s: empty prefix", n);
		is_int(s3xml_list_count(l), 2, "%s: count", n);
		/* No EncodingType: '+' and '%' are literal. */
		is_object(
		    l, 0, "a b+c%d.mp4", 11, 5, INT64_C(1795264560000), n);
		is_object(l, 1, "x/y.txt", 7, 11, INT64_C(1795161662999), n);
		s3xml_list_free(l);
	}
}

/* No namespace at all, pretty-printed, a CDATA key, no Prefix. */
static void
test_plain_page(void)
{
	static const char doc[] =
	    "<ListBucketResult>\n"
	    "  <IsTruncated>false</IsTruncated>\n"
	    "  <Contents>\n"
	    "    <Key><![CDATA[a<b>&c]]>.txt</Key>\n"
	    "    <Size>42</Size>\n"
	    "    <LastModified>2024-02-29T23:59:59Z</LastModified>\n"
	    "  </Contents>\n"
	    "  <CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>\n"
	    "</ListBucketResult>\n";
	struct s3xml_list *l;

	l = s3xml_list_create();
	is_int(feed_list(l, doc, sizeof(doc) - 1, 0), 0, "plain page parses");
	ok(s3xml_list_prefix(l) == NULL,
	    "plain page: CommonPrefixes/Prefix is not the Prefix");
	is_int(s3xml_list_key_count(l), -1, "plain page: no KeyCount");
	is_int(s3xml_list_count(l), 1, "plain page: count");
	is_object(
	    l, 0, "a<b>&c.txt", 10, 42, INT64_C(1709251199000), "plain page");
	s3xml_list_free(l);
}

/* A namespace prefix, which S3 does not use: elements by local name. */
static void
test_prefixed_page(void)
{
	static const char doc[] =
	    "<s3:ListBucketResult xmlns:s3=\"" AWSNS "\">"
	    "<s3:IsTruncated>false</s3:IsTruncated>"
	    "<s3:Contents><s3:Key>p/k.bin</s3:Key><s3:Size>7</s3:Size>"
	    "<s3:LastModified>1970-01-01T00:00:01Z</s3:LastModified>"
	    "</s3:Contents></s3:ListBucketResult>";
	struct s3xml_list *l;

	l = s3xml_list_create();
	is_int(
	    feed_list(l, doc, sizeof(doc) - 1, 0), 0, "prefixed page parses");
	is_int(s3xml_list_count(l), 1, "prefixed page: count");
	is_object(l, 0, "p/k.bin", 7, 7, INT64_C(1000), "prefixed page");
	s3xml_list_free(l);
}

#define ENC_CONTENTS                                                           \
	"<Contents><Key>a+b.txt</Key><Size>1</Size>"                           \
	"<LastModified>1970-01-01T00:00:00Z</LastModified></Contents>"         \
	"<Contents><Key>a%2Bb.txt</Key><Size>2</Size>"                         \
	"<LastModified>1970-01-01T00:00:00.001Z</LastModified></Contents>"     \
	"<Contents><Key>100%25.csv</Key><Size>3</Size>"                        \
	"<LastModified>1970-01-01T00:00:01Z</LastModified></Contents>"         \
	"<Contents><Key>%ED%95%9C%EA%B8%80/caf%C3%A9%20menu.txt</Key>"         \
	"<Size>4</Size>"                                                       \
	"<LastModified>1970-01-01T00:01:00Z</LastModified></Contents>"         \
	"<Contents><Key>%0A%01tab%09</Key><Size>5</Size>"                      \
	"<LastModified>1970-01-01T01:00:00Z</LastModified></Contents>"

static void
check_encoded(struct s3xml_list *l, const char *n)
{
	is_str(s3xml_list_prefix(l), "run books/+", "%s: prefix decoded", n);
	is_int(s3xml_list_count(l), 5, "%s: count", n);
	is_object(l, 0, "a b.txt", 7, 1, 0, n);
	is_object(l, 1, "a+b.txt", 7, 2, 1, n);
	is_object(l, 2, "100%.csv", 8, 3, 1000, n);
	is_object(l, 3, "\xed\x95\x9c\xea\xb8\x80/caf\xc3\xa9 menu.txt", 21, 4,
	    60000, n);
	is_object(l, 4, "\n\001tab\t", 6, 5, 3600000, n);
}

static void
test_encoded(void)
{
	static const char before[] = XMLDECL
	    "<ListBucketResult xmlns=\"" AWSNS "\">"
	    "<Prefix>run+books%2F%2B</Prefix><EncodingType>url</EncodingType>"
	    "<KeyCount>5</KeyCount><IsTruncated>false</"
	    "IsTruncated>" ENC_CONTENTS "</ListBucketResult>";
	static const char after[] = XMLDECL
	    "<ListBucketResult xmlns=\"" AWSNS "\">"
	    "<Prefix>run+books%2F%2B</Prefix>"
	    "<KeyCount>5</KeyCount><IsTruncated>false</"
	    "IsTruncated>" ENC_CONTENTS "<EncodingType>url</EncodingType>"
	    "</ListBucketResult>";
	struct s3xml_list *l;
	size_t		   chunk;
	char		   n[64];

	for (chunk = 0; chunk <= 1; chunk++) {
		snprintf(n, sizeof(n), "EncodingType first (%s)", how(chunk));
		l = s3xml_list_create();
		is_int(feed_list(l, before, sizeof(before) - 1, chunk), 0,
		    "%s: parses", n);
		check_encoded(l, n);
		s3xml_list_free(l);

		snprintf(n, sizeof(n), "EncodingType last (%s)", how(chunk));
		l = s3xml_list_create();
		is_int(feed_list(l, after, sizeof(after) - 1, chunk), 0,
		    "%s: parses", n);
		check_encoded(l, n);
		s3xml_list_free(l);
	}
}

static void
test_empty_listing(void)
{
	static const char doc[] = XMLDECL
	    "<ListBucketResult xmlns=\"" AWSNS "\">"
	    "<Name>clips</Name><Prefix>gone/</Prefix><KeyCount>0</KeyCount>"
	    "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
	    "</ListBucketResult>";
	struct s3xml_list *l;

	l = s3xml_list_create();
	is_int(feed_list(l, doc, sizeof(doc) - 1, 0), 0, "empty listing");
	is_int(s3xml_list_count(l), 0, "empty listing: count");
	is_int(s3xml_list_key_count(l), 0, "empty listing: KeyCount");
	is_int(s3xml_list_is_truncated(l), 0, "empty listing: truncated");
	ok(s3xml_list_next_token(l) == NULL, "empty listing: no token");
	is_str(s3xml_list_prefix(l), "gone/", "empty listing: prefix");
	ok(s3xml_list_object(l, 0) == NULL, "empty listing: no object 0");
	s3xml_list_free(l);
}

/* A Contents element with the given body inside a minimal listing. */
static char *
one_contents(const char *body)
{
	return xasprintf(
	    "<ListBucketResult xmlns=\"" AWSNS "\">"
	    "<IsTruncated>false</IsTruncated><Contents>%s</Contents>"
	    "</ListBucketResult>",
	    body);
}

static void
contents_fails(const char *name, const char *body, const char *want)
{
	char *doc;

	doc = one_contents(body);
	list_fails(name, doc, want);
	free(doc);
}

static void
contents_ok(const char *name, const char *body, const char *key, int64_t size,
    int64_t mtime)
{
	struct s3xml_list *l;
	char		  *doc;

	doc = one_contents(body);
	l = s3xml_list_create();
	is_int(feed_list(l, doc, strlen(doc), 0), 0, "%s: parses", name);
	is_str(s3xml_list_error(l), "", "%s: no error", name);
	is_int(s3xml_list_count(l), 1, "%s: count", name);
	is_object(l, 0, key, strlen(key), size, mtime, name);
	s3xml_list_free(l);
	free(doc);
}

#define LM "<LastModified>2026-11-21T12:36:00.000Z</LastModified>"

static void
test_bad_contents(void)
{
	contents_fails("Size negative", "<Key>k</Key><Size>-1</Size>" LM,
	    "line 1: Contents #1: bad Size '-1'");
	contents_fails("Size not a number", "<Key>k</Key><Size>12a</Size>" LM,
	    "line 1: Contents #1: bad Size '12a'");
	contents_fails("Size empty", "<Key>k</Key><Size></Size>" LM,
	    "line 1: Contents #1: bad Size ''");
	contents_fails("Size with space", "<Key>k</Key><Size> 12</Size>" LM,
	    "line 1: Contents #1: bad Size ' 12'");
	contents_fails("Size overflow",
	    "<Key>k</Key><Size>9223372036854775808</Size>" LM,
	    "line 1: Contents #1: bad Size '9223372036854775808'");
	contents_fails("Size too long",
	    "<Key>k</Key><Size>"
	    "00000000000000000000000000000000000000000000000000000000000000001"
	    "</Size>" LM,
	    "line 1: <Size> longer than 64 bytes");

	contents_fails("LastModified month 13",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-13-01T00:00:00.000Z</LastModified>",
	    "line 1: Contents #1: bad LastModified "
	    "'2026-13-01T00:00:00.000Z'");
	contents_fails("LastModified Feb 29 2026",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-02-29T00:00:00.000Z</LastModified>",
	    "line 1: Contents #1: bad LastModified "
	    "'2026-02-29T00:00:00.000Z'");
	contents_fails("LastModified hour 24",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21T24:00:00.000Z</LastModified>",
	    "line 1: Contents #1: bad LastModified "
	    "'2026-11-21T24:00:00.000Z'");
	contents_fails("LastModified space",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21 12:36:00Z</LastModified>",
	    "line 1: Contents #1: bad LastModified '2026-11-21 12:36:00Z'");
	contents_fails("LastModified no zone",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21T12:36:00.000</LastModified>",
	    "line 1: Contents #1: bad LastModified '2026-11-21T12:36:00.000'");
	contents_fails("LastModified offset",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21T12:36:00+00:00</LastModified>",
	    "line 1: Contents #1: bad LastModified "
	    "'2026-11-21T12:36:00+00:00'");
	contents_fails("LastModified empty fraction",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21T12:36:00.Z</LastModified>",
	    "line 1: Contents #1: bad LastModified '2026-11-21T12:36:00.Z'");
	contents_fails("LastModified trailing",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21T12:36:00ZZ</LastModified>",
	    "line 1: Contents #1: bad LastModified '2026-11-21T12:36:00ZZ'");
	contents_fails("LastModified before 1970",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>1969-12-31T23:59:59Z</LastModified>",
	    "line 1: Contents #1: bad LastModified '1969-12-31T23:59:59Z'");
	contents_fails("LastModified sign",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-+1-21T12:36:00Z</LastModified>",
	    "line 1: Contents #1: bad LastModified '2026-+1-21T12:36:00Z'");
	contents_ok("LastModified 9 fraction digits",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2026-11-21T12:36:00.987654321Z</LastModified>",
	    "k", 1, INT64_C(1795264560987));
	contents_ok("LastModified 1 fraction digit",
	    "<Key>k</Key><Size>1</Size>"
	    "<LastModified>2024-02-29T23:59:59.5Z</LastModified>",
	    "k", 1, INT64_C(1709251199500));

	contents_fails("missing Key", "<Size>1</Size>" LM,
	    "line 1: Contents #1 has no Key");
	contents_fails("empty Key", "<Key></Key><Size>1</Size>" LM,
	    "line 1: Contents #1 has an empty Key");
	contents_fails("self-closed Key", "<Key/><Size>1</Size>" LM,
	    "line 1: Contents #1 has an empty Key");
	contents_fails("missing Size", "<Key>k</Key>" LM,
	    "line 1: Contents #1 has no Size");
	contents_fails("missing LastModified", "<Key>k</Key><Size>1</Size>",
	    "line 1: Contents #1 has no LastModified");
	contents_fails("two Keys", "<Key>k</Key><Key>j</Key><Size>1</Size>" LM,
	    "line 1: Contents #1 has more than one <Key>");
	contents_fails("element inside Key",
	    "<Key>a<b>c</b></Key><Size>1</Size>" LM,
	    "line 1: unexpected element <b> inside <Key>");
	contents_ok("whitespace Key", "<Key> </Key><Size>1</Size>" LM, " ", 1,
	    INT64_C(1795264560000));
	contents_ok("entities in Key",
	    "<Key>&lt;&#65;&#x42;&gt;&apos;&quot;</Key><Size>1</Size>" LM,
	    "<AB>'\"", 1, INT64_C(1795264560000));
}

static void
test_key_lengths(void)
{
	struct buf b;
	char	  *doc;
	size_t	   i;

	/* 1024 bytes is S3's limit; 1025 is refused. */
	buf_init(&b);
	buf_adds(&b, "<Key>");
	for (i = 0; i < 1024; i++)
		buf_adds(&b, "k");
	buf_adds(&b, "</Key><Size>1</Size>" LM);
	doc = one_contents(b.data);
	{
		struct s3xml_list *l = s3xml_list_create();

		is_int(feed_list(l, doc, strlen(doc), 0), 0, "1024-byte key");
		is_int(s3xml_list_count(l), 1, "1024-byte key: count");
		is_int(s3xml_list_object(l, 0) != NULL
			? s3xml_list_object(l, 0)->key_len
			: 0,
		    1024, "1024-byte key: length");
		s3xml_list_free(l);
	}
	free(doc);

	buf_reset(&b);
	buf_adds(&b, "<Key>");
	for (i = 0; i < 1025; i++)
		buf_adds(&b, "k");
	buf_adds(&b, "</Key><Size>1</Size>" LM);
	contents_fails(
	    "1025-byte key", b.data, "Contents #1: Key longer than 1024 bytes");

	/* Two-byte characters: 513 of them make 1026 bytes. */
	buf_reset(&b);
	buf_adds(&b, "<Key>");
	for (i = 0; i < 513; i++)
		buf_adds(&b, "\xc3\xa9");
	buf_adds(&b, "</Key><Size>1</Size>" LM);
	contents_fails("1026-byte UTF-8 key", b.data,
	    "Contents #1: Key longer than 1024 bytes");

	/* Way over: refused while streaming, before it is all buffered. */
	buf_reset(&b);
	buf_adds(&b, "<Key>");
	for (i = 0; i < 5000; i++)
		buf_adds(&b, "k");
	buf_adds(&b, "</Key><Size>1</Size>" LM);
	contents_fails(
	    "5000-byte key", b.data, "line 1: <Key> longer than 3072 bytes");

	/* Encoded, 1024 decoded bytes take 3072: fine; 1025 are not. */
	buf_reset(&b);
	buf_adds(&b,
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<Contents><Key>");
	for (i = 0; i < 1024; i++)
		buf_adds(&b, "%6B");
	buf_adds(&b,
	    "</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>");
	{
		struct s3xml_list *l = s3xml_list_create();

		is_int(
		    feed_list(l, b.data, b.len, 0), 0, "1024-byte encoded key");
		is_int(s3xml_list_object(l, 0) != NULL
			? s3xml_list_object(l, 0)->key_len
			: 0,
		    1024, "1024-byte encoded key: decoded length");
		ok(s3xml_list_object(l, 0) != NULL &&
			s3xml_list_object(l, 0)->key[1023] == 'k' &&
			s3xml_list_object(l, 0)->key[1024] == '\0',
		    "1024-byte encoded key: decoded bytes");
		s3xml_list_free(l);
	}
	buf_reset(&b);
	buf_adds(&b,
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<Contents><Key>");
	for (i = 0; i < 1025; i++)
		buf_adds(&b, "%6B");
	buf_adds(&b,
	    "</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>");
	list_fails("1025-byte encoded key", b.data,
	    "line 1: <Key> longer than 3072 bytes");
	buf_free(&b);
}

static void
test_bad_encoding(void)
{
	list_fails("NUL after decoding",
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<Contents><Key>a%00b</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>",
	    "Contents #1: Key contains NUL");
	list_fails("bad UTF-8 after decoding",
	    "<ListBucketResult><Contents><Key>a%C3</Key><Size>1</Size>" LM
	    "</Contents><EncodingType>url</EncodingType></ListBucketResult>",
	    "Contents #1: Key not valid UTF-8");
	list_fails("bad escape",
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<Contents><Key>a%G1</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>",
	    "Contents #1: Key malformed URL encoding");
	list_fails("short escape at end",
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<Contents><Key>a%4</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>",
	    "Contents #1: Key malformed URL encoding");
	list_fails("lone percent",
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<Contents><Key>%</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>",
	    "Contents #1: Key malformed URL encoding");
	list_fails("bad Prefix escape",
	    "<ListBucketResult><Prefix>100%</Prefix>"
	    "<EncodingType>url</EncodingType></ListBucketResult>",
	    "Prefix: malformed URL encoding");
	list_fails("unknown EncodingType",
	    "<ListBucketResult><EncodingType>base64</EncodingType>"
	    "</ListBucketResult>",
	    "line 1: unsupported EncodingType 'base64'");
	list_fails("two EncodingTypes",
	    "<ListBucketResult><EncodingType>url</EncodingType>"
	    "<EncodingType>url</EncodingType></ListBucketResult>",
	    "line 1: more than one <EncodingType>");
}

static void
test_bad_documents(void)
{
	char *doc;

	list_fails("truncated",
	    XMLDECL "<ListBucketResult xmlns=\"" AWSNS "\">"
		    "<IsTruncated>false</IsTruncated><Contents><Key>k</Key>"
		    "<Size>1</Size>" LM "</Contents><Contents><Key>clips/a",
	    "XML error at line 2 column 220: no element found");
	list_fails("truncated after Contents",
	    "<ListBucketResult><Contents><Key>k</Key><Size>1</Size>" LM
	    "</Contents>",
	    "XML error at line 1 column 118: no element found");
	list_fails(
	    "empty body", "", "XML error at line 1 column 0: no element found");
	list_fails("malformed",
	    "<ListBucketResult><Contents></ListBucketResult>",
	    "XML error at line 1 column 30: mismatched tag");
	list_fails("not XML", "<html><body>502 Bad Gateway</body></html>",
	    "line 1: unexpected root element <html>");
	list_fails("garbage", "{\"error\": 1}",
	    "XML error at line 1 column 0: not well-formed (invalid token)");
	list_fails("junk after root",
	    "<ListBucketResult></ListBucketResult><x/>",
	    "XML error at line 1 column 37: junk after document element");
	list_fails("wrong root",
	    XMLDECL "<ListAllMyBucketsResult xmlns=\"" AWSNS "\">"
		    "<Buckets/></ListAllMyBucketsResult>",
	    "line 2: unexpected root element <ListAllMyBucketsResult>");
	list_fails("DeleteResult as list",
	    "<DeleteResult xmlns=\"" AWSNS "\"/>",
	    "line 1: unexpected root element <DeleteResult>");
	list_fails("Error document",
	    XMLDECL "<Error><Code>NoSuchBucket</Code>"
		    "<Message>The specified bucket does not exist</Message>"
		    "<BucketName>clips</BucketName>"
		    "<RequestId>4442587FB7D0A2F9</RequestId>"
		    "<HostId>uVbQ8TmHk0/+abc=</HostId></Error>",
	    "S3 error NoSuchBucket: The specified bucket does not exist");
	list_fails("Error document without Code",
	    "<Error><Message>oops</Message></Error>",
	    "S3 error document without a Code");
	list_fails("billion laughs",
	    XMLDECL
	    "<!DOCTYPE lolz [\n"
	    " <!ENTITY lol \"lol\">\n"
	    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
	    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
	    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
	    "]>\n"
	    "<ListBucketResult><Contents><Key>&lol3;</Key><Size>1</Size>" LM
	    "</Contents></ListBucketResult>",
	    "line 2: DOCTYPE declarations are not allowed");
	list_fails("external entity",
	    "<!DOCTYPE ListBucketResult SYSTEM \"file:///etc/passwd\">"
	    "<ListBucketResult/>",
	    "line 1: DOCTYPE declarations are not allowed");
	list_fails("undeclared entity",
	    "<ListBucketResult><Prefix>&xxe;</Prefix></ListBucketResult>",
	    "XML error at line 1 column 26: undefined entity");
	list_fails("truncated without token",
	    "<ListBucketResult><IsTruncated>true</IsTruncated>"
	    "</ListBucketResult>",
	    "IsTruncated without NextContinuationToken");
	list_fails("bad IsTruncated",
	    "<ListBucketResult><IsTruncated>yes</IsTruncated>"
	    "</ListBucketResult>",
	    "line 1: bad IsTruncated 'yes'");
	list_fails("bad KeyCount",
	    "<ListBucketResult><KeyCount>-3</KeyCount></ListBucketResult>",
	    "line 1: bad KeyCount '-3'");
	list_fails("empty token",
	    "<ListBucketResult><NextContinuationToken></NextContinuationToken>"
	    "</ListBucketResult>",
	    "line 1: empty NextContinuationToken");
	list_fails("control characters in message are not echoed",
	    "<Error><Code>Bad\tCode</Code><Message>a\nb</Message></Error>",
	    "S3 error Bad?Code: a?b");

	/* 16 levels are allowed, 17 are not. */
	doc = xasprintf("<ListBucketResult>%s%s</ListBucketResult>",
	    "<a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>",
	    "</a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>");
	{
		struct s3xml_list *l = s3xml_list_create();

		is_int(feed_list(l, doc, strlen(doc), 0), 0, "16 levels deep");
		s3xml_list_free(l);
	}
	free(doc);
	list_fails("17 levels deep",
	    "<ListBucketResult><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
	    "<a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>"
	    "</a></ListBucketResult>",
	    "line 1: elements nested deeper than 16");
}

static void
test_limits(void)
{
	struct s3xml_list *l;
	struct buf	   b;
	char		  *chunk;
	size_t		   i, size = 1024 * 1024;
	int		   rv = 0;

	/* 10000 objects are fine, 10001 are not. */
	buf_init(&b);
	buf_adds(&b, "<ListBucketResult>");
	for (i = 0; i < 10000; i++)
		buf_addf(&b,
		    "<Contents><Key>k%zu</Key><Size>%zu</Size>" LM
		    "</Contents>",
		    i, i);
	buf_adds(&b, "</ListBucketResult>");
	l = s3xml_list_create();
	is_int(feed_list(l, b.data, b.len, 0), 0, "10000 objects");
	is_int(s3xml_list_count(l), 10000, "10000 objects: count");
	ok(s3xml_list_object(l, 9999) != NULL &&
		strcmp(s3xml_list_object(l, 9999)->key, "k9999") == 0 &&
		s3xml_list_object(l, 9999)->size == 9999,
	    "10000 objects: the last one");
	s3xml_list_free(l);

	b.len -= strlen("</ListBucketResult>");
	buf_adds(&b,
	    "<Contents><Key>k</Key><Size>1</Size>" LM "</Contents>"
	    "</ListBucketResult>");
	l = s3xml_list_create();
	is_int(feed_list(l, b.data, b.len, 0), -1, "10001 objects");
	is_str(s3xml_list_error(l), "line 1: more than 10000 Contents",
	    "10001 objects: error");
	is_int(s3xml_list_count(l), 0, "10001 objects: none visible");
	s3xml_list_free(l);
	buf_free(&b);

	/* The whole document is bounded too. */
	chunk = xmalloc(size);
	memset(chunk, ' ', size);
	l = s3xml_list_create();
	if (s3xml_list_feed(l, "<ListBucketResult>", 18) == -1)
		rv = -1;
	for (i = 0; rv == 0 && i < S3XML_MAX_DOCUMENT / size; i++)
		rv = s3xml_list_feed(l, chunk, size);
	is_int(rv, -1, "document over 16 MiB");
	is_int(i, S3XML_MAX_DOCUMENT / size,
	    "document over 16 MiB: "
	    "refused on the last chunk");
	is_str(s3xml_list_error(l), "document larger than 16777216 bytes",
	    "document over 16 MiB: error");
	is_int(s3xml_list_finish(l), -1, "document over 16 MiB: finish");
	s3xml_list_free(l);
	free(chunk);

	/* No-ops; a crash here fails the test. */
	s3xml_list_free(NULL);
	s3xml_delete_free(NULL);
}

static const char delete_doc[] = XMLDECL
    "<DeleteResult xmlns=\"" AWSNS "\">"
    "<Deleted><Key>clips/a.mp4</Key></Deleted>"
    "<Deleted><Key>clips/b &amp; c.mp4</Key><VersionId>3HL4kqtJlcpXroDTDm"
    "JVrrVuzU0HDFS.</VersionId><DeleteMarker>true</DeleteMarker>"
    "<DeleteMarkerVersionId>UuzKFN6Z</DeleteMarkerVersionId></Deleted>"
    "<Error><Key>clips/locked.mp4</Key><VersionId>v1</VersionId>"
    "<Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    "<Error><Key>clips/\xc3\xa9t\xc3\xa9.mp4</Key><Code>InternalError</Code>"
    "</Error>"
    "</DeleteResult>";

static void
is_result(const struct s3xml_delete *d, size_t i, const char *key, int deleted,
    const char *code, const char *message, const char *n)
{
	const struct s3_delete_result *r;

	r = s3xml_delete_result(d, i);
	if (!ok(r != NULL, "%s: result %zu exists", n, i))
		return;
	is_str(r->key, key, "%s: result %zu key", n, i);
	is_int(r->deleted, deleted, "%s: result %zu deleted", n, i);
	is_str(r->code, code, "%s: result %zu code", n, i);
	is_str(r->message, message, "%s: result %zu message", n, i);
}

static void
test_delete(void)
{
	static const char encoded[] =
	    "<DeleteResult xmlns=\"" S3RVNS "\"><Deleted><Key>a+b%2Bc</Key>"
	    "</Deleted><EncodingType>url</EncodingType></DeleteResult>";
	struct s3xml_delete *d;
	size_t		     chunk;
	const char	    *n;

	for (chunk = 0; chunk <= 1; chunk++) {
		n = chunk == 0 ? "delete" : "delete bytewise";
		d = s3xml_delete_create();
		ok(s3xml_delete_result(d, 0) == NULL,
		    "%s: nothing before finish", n);
		is_int(
		    feed_delete(d, delete_doc, sizeof(delete_doc) - 1, chunk),
		    0, "%s: parses", n);
		is_str(s3xml_delete_error(d), "", "%s: no error", n);
		is_int(s3xml_delete_count(d), 4, "%s: count", n);
		is_result(d, 0, "clips/a.mp4", 1, NULL, NULL, n);
		is_result(d, 1, "clips/b & c.mp4", 1, NULL, NULL, n);
		is_result(d, 2, "clips/locked.mp4", 0, "AccessDenied",
		    "Access Denied", n);
		is_result(d, 3, "clips/\xc3\xa9t\xc3\xa9.mp4", 0,
		    "InternalError", "", n);
		ok(s3xml_delete_result(d, 4) == NULL, "%s: no result 4", n);
		s3xml_delete_free(d);
	}

	d = s3xml_delete_create();
	is_int(feed_delete(d, encoded, sizeof(encoded) - 1, 0), 0,
	    "delete encoded");
	is_int(s3xml_delete_count(d), 1, "delete encoded: count");
	is_result(d, 0, "a b+c", 1, NULL, NULL, "delete encoded");
	s3xml_delete_free(d);

	d = s3xml_delete_create();
	is_int(feed_delete(d, "<DeleteResult/>", 15, 0), 0, "delete quiet");
	is_int(s3xml_delete_count(d), 0, "delete quiet: count");
	s3xml_delete_free(d);

	delete_fails("delete: Deleted without Key",
	    "<DeleteResult><Deleted><VersionId>x</VersionId></Deleted>"
	    "</DeleteResult>",
	    "line 1: Deleted #1 has no Key");
	delete_fails("delete: Error without Key",
	    "<DeleteResult><Deleted><Key>a</Key></Deleted>"
	    "<Error><Code>AccessDenied</Code></Error></DeleteResult>",
	    "line 1: Error #2 has no Key");
	delete_fails("delete: Error without Code",
	    "<DeleteResult><Error><Key>a</Key><Message>m</Message></Error>"
	    "</DeleteResult>",
	    "line 1: Error #1 has no Code");
	delete_fails("delete: empty Key",
	    "<DeleteResult><Deleted><Key/></Deleted></DeleteResult>",
	    "line 1: result #1 has an empty Key");
	delete_fails("delete: error document",
	    XMLDECL "<Error><Code>InternalError</Code><Message>We encountered "
		    "an internal error. Please try again.</Message></Error>",
	    "S3 error InternalError: We encountered an internal error. "
	    "Please try again.");
	delete_fails("delete: wrong root",
	    "<ListBucketResult></ListBucketResult>",
	    "line 1: unexpected root element <ListBucketResult>");
	delete_fails("delete: DOCTYPE",
	    "<!DOCTYPE d [<!ENTITY a \"aaaaaaaa\">]><DeleteResult>"
	    "<Deleted><Key>&a;</Key></Deleted></DeleteResult>",
	    "line 1: DOCTYPE declarations are not allowed");
	delete_fails("delete: truncated",
	    "<DeleteResult><Deleted><Key>a</Key></Del",
	    "XML error at line 1 column 35: unclosed token");
	delete_fails("delete: NUL key",
	    "<DeleteResult><EncodingType>url</EncodingType>"
	    "<Deleted><Key>%00</Key></Deleted></DeleteResult>",
	    "result #1: Key contains NUL");
}

static void
test_error_parse(void)
{
	static const char aws[] = XMLDECL
	    "<Error><Code>NoSuchKey</Code>"
	    "<Message>The specified key does not exist.</Message>"
	    "<Key>clips/a.mp4</Key><RequestId>4442587FB7D0A2F9</RequestId>"
	    "<HostId>eftixk72aD6Ap51TnqcoF8eFidJG9Z/2mkiDFu8yU9AS1ed4OpIszj7UD"
	    "NEHGran</HostId></Error>";
	/* s3rver: no declaration newline, detail elements, a namespace. */
	static const char s3rver[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error xmlns=\"" S3RVNS
	    "\"><Code>SignatureDoesNotMatch</Code><Message>The request "
	    "signature we calculated does not match the signature you provided."
	    "</Message><StringToSign>AWS4-HMAC-SHA256</StringToSign></Error>";
	static const char accented[] =
	    "<Error><Code>SlowDown</Code><Message>h\xc3\xa9llo</Message></"
	    "Error>";
	char code[64], msg[128];

	is_int(s3xml_error_parse(
		   aws, sizeof(aws) - 1, code, sizeof(code), msg, sizeof(msg)),
	    0, "error doc");
	is_str(code, "NoSuchKey", "error doc: code");
	is_str(msg, "The specified key does not exist.", "error doc: message");

	is_int(s3xml_error_parse(s3rver, sizeof(s3rver) - 1, code, sizeof(code),
		   msg, sizeof(msg)),
	    0, "s3rver error doc");
	is_str(code, "SignatureDoesNotMatch", "s3rver error doc: code");
	is_str(msg,
	    "The request signature we calculated does not match the "
	    "signature you provided.",
	    "s3rver error doc: message");

	is_int(s3xml_error_parse(aws, sizeof(aws) - 1, code, 5, msg, 8), 0,
	    "error doc, small buffers");
	is_str(code, "NoSu", "error doc: code truncated");
	is_str(msg, "The spe", "error doc: message truncated");

	is_int(s3xml_error_parse(
		   accented, sizeof(accented) - 1, code, sizeof(code), msg, 3),
	    0, "error doc, cut in a character");
	is_str(msg, "h", "error doc: cut before the character");
	is_int(s3xml_error_parse(
		   accented, sizeof(accented) - 1, code, sizeof(code), msg, 4),
	    0, "error doc, cut after a character");
	is_str(msg, "h\xc3\xa9", "error doc: cut after the character");

	is_int(s3xml_error_parse(aws, sizeof(aws) - 1, NULL, 0, NULL, 0), 0,
	    "error doc, no buffers");

	strcpy(code, "stale");
	strcpy(msg, "stale");
	is_int(s3xml_error_parse("<html>502</html>", 16, code, sizeof(code),
		   msg, sizeof(msg)),
	    -1, "HTML is not an error doc");
	is_str(code, "", "HTML: code emptied");
	is_str(msg, "", "HTML: message emptied");
	is_int(s3xml_error_parse("", 0, code, sizeof(code), msg, sizeof(msg)),
	    -1, "empty body is not an error doc");
	is_int(s3xml_error_parse(NULL, 0, code, sizeof(code), msg, sizeof(msg)),
	    -1, "NULL body is not an error doc");
	is_int(s3xml_error_parse("<Error><Message>m</Message></Error>", 34,
		   code, sizeof(code), msg, sizeof(msg)),
	    -1, "error doc without Code");
	is_int(s3xml_error_parse("<Error><Code></Code></Error>", 28, code,
		   sizeof(code), msg, sizeof(msg)),
	    -1, "error doc with empty Code");
	is_int(s3xml_error_parse("<Error><Code>A</Code>", 21, code,
		   sizeof(code), msg, sizeof(msg)),
	    -1, "truncated error doc");
	is_str(code, "", "truncated error doc: code emptied");
	is_int(s3xml_error_parse("<ListBucketResult/>", 19, code, sizeof(code),
		   msg, sizeof(msg)),
	    -1, "ListBucketResult");
	is_int(s3xml_error_parse("<!DOCTYPE Error [<!ENTITY c \"NoSuchKey\">]>"
				 "<Error><Code>&c;</Code></Error>",
		   72, code, sizeof(code), msg, sizeof(msg)),
	    -1, "error doc with DOCTYPE");
	is_int(s3xml_error_parse("<Error><Code>X</Code><Code>Y</Code></Error>",
		   43, code, sizeof(code), msg, sizeof(msg)),
	    0, "error doc with two Codes");
	is_str(code, "X", "error doc with two Codes: the first");
	is_str(msg, "", "error doc without Message: empty message");
}

int
main(void)
{
	test_aws_page();
	test_s3rver_page();
	test_plain_page();
	test_prefixed_page();
	test_encoded();
	test_empty_listing();
	test_bad_contents();
	test_key_lengths();
	test_bad_encoding();
	test_bad_documents();
	test_limits();
	test_delete();
	test_error_parse();
	return tap_done();
}
