/*
 * libFuzzer target for the configuration parsers: the input, up to its
 * first NUL, is given as one environment value to redis_url_parse(),
 * storage_url_parse(), sql_quote_relation() and url_redact(); the whole
 * input, NULs and all, to key_unsafe_reason().
 *
 * Invariants checked, beyond not crashing or leaking:
 *  - key_unsafe_reason() and sql_quote_relation() agree with independent
 *    implementations of their documented rules;
 *  - an accepted storage URL has an http(s) scheme, a host, a port of 0 or
 *    1 to 65535, a bucket that key_unsafe_reason() accepts (so not empty,
 *    "." or ".." and without control characters), a prefix that ends in
 *    '/' and that key_unsafe_reason() accepts; its redacted form is built
 *    from exactly those; the region is the one given, if any;
 *  - an accepted Redis URL has a host without brackets, a port from 1 to
 *    65535, a database >= 0, a user that is NULL or non-empty, and a
 *    redacted form with the right scheme that hides the password; so does
 *    url_redact() of the same URL.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "fuzz.h"
#include "util.h"

/* key_unsafe_reason()'s rules, written from its comment and the docs. */
static int
key_safe_oracle(const char *key, size_t len)
{
	const char *p = key, *end = key + len, *slash;
	size_t	    i, n;

	if (len == 0 || len > 1024 || !utf8_valid(key, len))
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			return 0;
	/* Segments between slashes; only a trailing slash may end empty. */
	while (p < end) {
		slash = memchr(p, '/', (size_t)(end - p));
		n = slash != NULL ? (size_t)(slash - p) : (size_t)(end - p);
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return 1;
}

static void
fuzz_key(const uint8_t *data, size_t size)
{
	const char *why = key_unsafe_reason((const char *)data, size);

	FUZZ_CHECK(why == NULL || why[0] != '\0');
	FUZZ_CHECK((why == NULL) == key_safe_oracle((const char *)data, size));
}

/* A PostgreSQL identifier sql_quote_relation() may quote. */
static int
sql_ident_oracle(const char *s, size_t n)
{
	size_t i;

	if (n < 1 || n > 63 || !utf8_valid(s, n))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '"')
			return 0;
	return 1;
}

static void
fuzz_sql(const char *name)
{
	char	    want[160];
	const char *dot = strchr(name, '.');
	char	   *got = sql_quote_relation(name);
	int	    ok;

	if (dot == NULL) {
		ok = sql_ident_oracle(name, strlen(name));
		if (ok)
			snprintf(want, sizeof(want), "\"%s\"", name);
	} else {
		ok = strchr(dot + 1, '.') == NULL &&
		    sql_ident_oracle(name, (size_t)(dot - name)) &&
		    sql_ident_oracle(dot + 1, strlen(dot + 1));
		if (ok)
			snprintf(want, sizeof(want), "\"%.*s\".\"%s\"",
			    (int)(dot - name), name, dot + 1);
	}
	FUZZ_CHECK((got != NULL) == ok);
	FUZZ_CHECK(got == NULL || strcmp(got, want) == 0);
	free(got);
}

static int
ends_with_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcasecmp(s + n - m, suffix) == 0;
}

static void
storage_check(const struct storage_url *s, const char *region)
{
	char   want[64];
	char  *redacted;
	size_t n;

	FUZZ_CHECK(s->scheme != NULL &&
	    (strcmp(s->scheme, "http") == 0 ||
		strcmp(s->scheme, "https") == 0));
	FUZZ_CHECK(s->host != NULL && s->host[0] != '\0');
	FUZZ_CHECK(s->port >= 0 && s->port <= 65535);
	if (s->port == 0)
		FUZZ_CHECK(strcmp(s->host_header, s->host) == 0);
	else {
		snprintf(want, sizeof(want), ":%d", s->port);
		n = strlen(s->host);
		FUZZ_CHECK(strncmp(s->host_header, s->host, n) == 0 &&
		    strcmp(s->host_header + n, want) == 0);
	}
	FUZZ_CHECK(
	    s->virtual_hosted == ends_with_ci(s->host, ".amazonaws.com"));
	FUZZ_CHECK(s->bucket != NULL && strchr(s->bucket, '/') == NULL);
	/*
	 * known finding 3 (README.md): the bucket is not checked.  It is empty
	 * for a virtual-hosted host with a leading dot
	 * (https://.s3.amazonaws.com/cube/), and a path-style bucket may be
	 * "." or ".." (http://host/%2E/cube/), hold DEL (%7F) or not be
	 * UTF-8.
	 */
	if (!FUZZ_TOLERATE(3))
		FUZZ_CHECK(
		    key_unsafe_reason(s->bucket, strlen(s->bucket)) == NULL);
	else
		FUZZ_CHECK(s->bucket[0] != '\0' ||
		    (s->virtual_hosted && s->host[0] == '.'));
	FUZZ_CHECK(s->prefix != NULL);
	n = strlen(s->prefix);
	FUZZ_CHECK(
	    n >= 2 && s->prefix[n - 1] == '/' && s->prefix[n - 2] != '/');
	FUZZ_CHECK(key_unsafe_reason(s->prefix, n - 1) == NULL);
	FUZZ_CHECK(key_unsafe_reason(s->prefix, n) == NULL || n == 1025);
	FUZZ_CHECK(s->region != NULL && s->region[0] != '\0');
	if (region != NULL)
		FUZZ_CHECK(strcmp(s->region, region) == 0);
	else if (cloudcube_region(s->bucket) != NULL)
		FUZZ_CHECK(strcmp(s->region, cloudcube_region(s->bucket)) == 0);
	else
		FUZZ_CHECK(strcmp(s->region, "us-east-1") == 0);
	redacted = xasprintf("%s://%s/%s%s%s", s->scheme, s->host_header,
	    s->virtual_hosted ? "" : s->bucket, s->virtual_hosted ? "" : "/",
	    s->prefix);
	FUZZ_CHECK(s->redacted != NULL && strcmp(s->redacted, redacted) == 0);
	free(redacted);
}

static void
fuzz_storage(const char *url)
{
	struct storage_url s, s2;
	char		   err[256], err2[256];
	int		   rc, rc2;

	err[0] = err2[0] = '\0';
	rc = storage_url_parse(url, NULL, &s, err, sizeof(err));
	rc2 = storage_url_parse(url, "eu-west-1", &s2, err2, sizeof(err2));
	FUZZ_CHECK(rc == rc2);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && err[0] != '\0');
		FUZZ_CHECK(strcmp(err, err2) == 0);
		FUZZ_CHECK(s.prefix == NULL && s.bucket == NULL);
		return;
	}
	storage_check(&s, NULL);
	storage_check(&s2, "eu-west-1");
	FUZZ_CHECK(strcmp(s.prefix, s2.prefix) == 0);
	FUZZ_CHECK(strcmp(s.bucket, s2.bucket) == 0);
	storage_url_free(&s);
	storage_url_free(&s2);
}

static int
count_occurrences(const char *hay, const char *needle)
{
	const char *p;
	int	    n = 0;

	for (p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/*
 * Whether the redacted forms must not contain the password: when it is
 * alphanumeric, at least 4 characters, written as is in the URL's only
 * userinfo ("scheme://[user]:PASSWORD@") and nowhere else in it, and could
 * not be part of the scheme, the user, the host or a number that the
 * redacted form shows.
 */
static int
password_must_hide(const char *url, const struct redis_url *r)
{
	const char *pw = r->password, *p, *at;
	size_t	    n;
	int	    digits = 1;

	if (pw == NULL || (n = strlen(pw)) < 4)
		return 0;
	for (p = pw; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p))
			return 0;
		if (!isdigit((unsigned char)*p))
			digits = 0;
	}
	if ((p = strstr(url, "://")) == NULL || (at = strchr(p, '@')) == NULL ||
	    strchr(at + 1, '@') != NULL || (size_t)(at - p) < 3 + n + 1 ||
	    memcmp(at - n, pw, n) != 0 || at[-(ptrdiff_t)n - 1] != ':')
		return 0;
	return !digits && count_occurrences(url, pw) == 1 &&
	    strstr("rediss", pw) == NULL && strstr(r->host, pw) == NULL &&
	    (r->user == NULL || strstr(r->user, pw) == NULL);
}

static void
redis_check(const char *url, const struct redis_url *r)
{
	char *redacted;

	FUZZ_CHECK(r->host != NULL && r->host[0] != '\0' && r->host[0] != '[');
	FUZZ_CHECK(r->port >= 1 && r->port <= 65535);
	FUZZ_CHECK(r->db >= 0);
	FUZZ_CHECK(r->tls == 0 || r->tls == 1);
	FUZZ_CHECK(r->verify == 0 || r->verify == 1);
	FUZZ_CHECK(r->user == NULL || r->user[0] != '\0');
	FUZZ_CHECK(r->redacted != NULL);
	FUZZ_CHECK(strncmp(r->redacted, r->tls ? "rediss://" : "redis://",
		       r->tls ? 9 : 8) == 0);
	FUZZ_CHECK(
	    (r->password != NULL) == (strstr(r->redacted, ":***@") != NULL));
	if (!password_must_hide(url, r))
		return;
	FUZZ_CHECK(strstr(r->redacted, r->password) == NULL);
	redacted = url_redact(url);
	FUZZ_CHECK(strstr(redacted, r->password) == NULL);
	free(redacted);
}

static void
fuzz_redis(const char *url)
{
	struct redis_url r;
	char		 err[256];
	int		 rc;

	err[0] = '\0';
	rc = redis_url_parse(url, &r, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && err[0] != '\0');
		FUZZ_CHECK(r.host == NULL && r.password == NULL);
		return;
	}
	redis_check(url, &r);
	redis_url_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size);
	char *redacted;

	fuzz_key(data, size);
	fuzz_sql(s);
	fuzz_storage(s);
	fuzz_redis(s);
	redacted = url_redact(s);
	FUZZ_CHECK(redacted != NULL && redacted[0] != '\0');
	free(redacted);
	free(s);
	return 0;
}
