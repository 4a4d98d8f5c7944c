#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "sigv4.h"
#include "util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* The parts of an Authorization header. */
struct authz {
	char *access_key;
	char *date;
	char *region;
	char *service;
	char *terminator;
	char *signed_headers;
	char *signature;
};

static int PRINTF_LIKE(4, 5) fail(
    struct auth_error *err, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

void
auth_error_free(struct auth_error *err)
{
	if (err == NULL)
		return;
	free(err->canonical_request);
	free(err->string_to_sign);
	err->canonical_request = NULL;
	err->string_to_sign = NULL;
}

static void
authz_free(struct authz *a)
{
	free(a->access_key);
	free(a->date);
	free(a->region);
	free(a->service);
	free(a->terminator);
	free(a->signed_headers);
	free(a->signature);
}

static const char *
header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static int
is_sha256_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == 64;
}

/* x-amz-content-sha256 against the body; checked with or without creds. */
static int
check_payload(struct evhttp_request *req, const void *body, size_t len,
    struct auth_error *err)
{
	const char *claimed = header(req, "x-amz-content-sha256");
	char	    actual[65];

	if (claimed == NULL || strcmp(claimed, SIGV4_UNSIGNED_PAYLOAD) == 0)
		return 0;
	if (strncmp(claimed, "STREAMING-", 10) == 0)
		return fail(err, 501, "NotImplemented",
		    "s3mem does not support aws-chunked uploads (%s)", claimed);
	if (!is_sha256_hex(claimed))
		return fail(err, 400, "InvalidArgument",
		    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or the "
		    "lower-case hex SHA-256 of the body");
	sha256_hex(body, len, actual);
	if (strcmp(actual, claimed) != 0)
		return fail(err, 400, "XAmzContentSHA256Mismatch",
		    "The provided 'x-amz-content-sha256' header does not match "
		    "what was computed.");
	return 0;
}

/* One "Name=value" component of the header, trimmed; NULL when absent. */
static char *
component(const char *params, const char *name)
{
	const char *p = params, *e;
	size_t	    nlen = strlen(name);

	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			return NULL;
		e = p + strcspn(p, ",");
		if ((size_t)(e - p) > nlen && strncmp(p, name, nlen) == 0 &&
		    p[nlen] == '=') {
			p += nlen + 1;
			while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			return xstrndup(p, (size_t)(e - p));
		}
		p = e;
	}
}

/* Credential=AKID/20130524/us-east-1/s3/aws4_request */
static int
split_credential(char *cred, struct authz *a)
{
	char *part[4], *slash;
	int   i;

	for (i = 3; i >= 0; i--) {
		if ((slash = strrchr(cred, '/')) == NULL)
			return -1;
		part[i] = slash + 1;
		*slash = '\0';
	}
	a->access_key = xstrdup(cred);
	a->date = xstrdup(part[0]);
	a->region = xstrdup(part[1]);
	a->service = xstrdup(part[2]);
	a->terminator = xstrdup(part[3]);
	return 0;
}

static int
parse_authorization(const char *value, struct authz *a, struct auth_error *err)
{
	char *cred;
	int   rc;

	memset(a, 0, sizeof(*a));
	if (strncmp(value, ALGORITHM " ", strlen(ALGORITHM) + 1) != 0)
		return fail(err, 400, "InvalidArgument",
		    "Unsupported Authorization Type: s3mem only knows "
		    "AWS4-HMAC-SHA256");
	value += strlen(ALGORITHM) + 1;
	a->signed_headers = component(value, "SignedHeaders");
	a->signature = component(value, "Signature");
	if ((cred = component(value, "Credential")) == NULL ||
	    a->signed_headers == NULL || a->signature == NULL) {
		free(cred);
		return fail(err, 400, "AuthorizationHeaderMalformed",
		    "The authorization header is malformed; it needs "
		    "Credential, SignedHeaders and Signature.");
	}
	rc = split_credential(cred, a);
	free(cred);
	if (rc != 0)
		return fail(err, 400, "AuthorizationHeaderMalformed",
		    "The authorization header is malformed; the Credential is "
		    "not KEY/DATE/REGION/SERVICE/aws4_request.");
	return 0;
}

/* YYYYMMDDTHHMMSSZ, strictly. */
static int
parse_amz_date(const char *s, time_t *out)
{
	struct tm tm;
	size_t	  i;

	if (s == NULL || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
		return -1;
	for (i = 0; i < 15; i++)
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 +
	    (s[2] - '0') * 10 + (s[3] - '0') - 1900;
	tm.tm_mon = (s[4] - '0') * 10 + (s[5] - '0') - 1;
	tm.tm_mday = (s[6] - '0') * 10 + (s[7] - '0');
	tm.tm_hour = (s[9] - '0') * 10 + (s[10] - '0');
	tm.tm_min = (s[11] - '0') * 10 + (s[12] - '0');
	tm.tm_sec = (s[13] - '0') * 10 + (s[14] - '0');
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static int
check_scope(const struct auth_config *cfg, const struct authz *a,
    const char *amz_date, struct auth_error *err)
{
	if (strlen(a->date) != 8 || strncmp(a->date, amz_date, 8) != 0)
		return fail(err, 400, "AuthorizationHeaderMalformed",
		    "Invalid credential date \"%.16s\": it is not the date of "
		    "X-Amz-Date %s.",
		    a->date, amz_date);
	if (strcmp(a->region, cfg->region) != 0)
		return fail(err, 400, "AuthorizationHeaderMalformed",
		    "The authorization header is malformed; the region "
		    "'%.64s' is wrong; expecting '%s'",
		    a->region, cfg->region);
	if (strcmp(a->service, "s3") != 0 ||
	    strcmp(a->terminator, "aws4_request") != 0)
		return fail(err, 400, "AuthorizationHeaderMalformed",
		    "The authorization header is malformed; the credential "
		    "scope must end in /s3/aws4_request.");
	return 0;
}

/* The signer adds these itself from the request's own values. */
static int
signer_owned(const char *name)
{
	return strcmp(name, "host") == 0 || strcmp(name, "x-amz-date") == 0 ||
	    strcmp(name, "x-amz-content-sha256") == 0 ||
	    strcmp(name, "x-amz-security-token") == 0;
}

/*
 * The request's headers named in SignedHeaders (other than those the
 * signer adds itself), every occurrence in the order received.  The array
 * points into the request and into list; free the array only.
 */
static int
collect_headers(struct evhttp_request *req, char *list,
    struct sigv4_header **out, size_t *nout, struct auth_error *err)
{
	struct evkeyvalq    *in = evhttp_request_get_input_headers(req);
	struct evkeyval	    *kv;
	struct sigv4_header *h = NULL;
	size_t		     n = 0, found;
	char		    *name, *save = NULL;

	for (name = strtok_r(list, ";", &save); name != NULL;
	     name = strtok_r(NULL, ";", &save)) {
		if (signer_owned(name))
			continue;
		found = 0;
		TAILQ_FOREACH(kv, in, next)
		{
			if (strcasecmp(kv->key, name) != 0)
				continue;
			h = xrealloc(h, (n + 1) * sizeof(*h));
			h[n].name = name;
			h[n++].value = kv->value;
			found++;
		}
		if (found == 0) {
			free(h);
			return fail(err, 403, "SignatureDoesNotMatch",
			    "The signed header '%.64s' is not in the request.",
			    name);
		}
	}
	*out = h;
	*nout = n;
	return 0;
}

static const char *
method_name(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	default:
		return "OPTIONS";
	}
}

/* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=X, Signature=..." */
static char *
signed_headers_of(const char *authorization)
{
	const char *p = strstr(authorization, "SignedHeaders=");

	if (p == NULL)
		return xstrdup("");
	p += strlen("SignedHeaders=");
	return xstrndup(p, strcspn(p, ","));
}

/* Signs the request again and compares with what it carries. */
static int
check_signature(const struct auth_config *cfg, struct evhttp_request *req,
    const char *path, const char *query, const struct authz *a, time_t when,
    struct auth_error *err)
{
	struct sigv4_request req4;
	struct sigv4_creds   creds;
	struct sigv4_signed  sig;
	struct sigv4_header *hdrs = NULL;
	char		    *list, *ours;
	size_t		     nhdrs = 0;
	int		     rc, same;

	list = xstrdup(a->signed_headers);
	if (collect_headers(req, list, &hdrs, &nhdrs, err) != 0) {
		free(list);
		return -1;
	}
	memset(&req4, 0, sizeof(req4));
	req4.mode = SIGV4_S3;
	req4.method = method_name(req);
	req4.host = header(req, "Host") != NULL ? header(req, "Host") : "";
	req4.path = path;
	req4.query = query;
	req4.headers = hdrs;
	req4.nheaders = nhdrs;
	req4.payload_sha256_hex = header(req, "x-amz-content-sha256");
	req4.region = cfg->region;
	req4.service = "s3";
	req4.when = when;
	creds.access_key_id = cfg->access_key;
	creds.secret_access_key = cfg->secret_key;
	creds.session_token = header(req, "x-amz-security-token");

	rc = sigv4_sign(&req4, &creds, &sig);
	free(hdrs);
	free(list);
	if (rc != 0)
		return fail(err, 403, "SignatureDoesNotMatch",
		    "The request cannot be signed again as sent (a malformed "
		    "%%-escape, header or Host?).");
	ours = signed_headers_of(sig.authorization);
	same = strcmp(ours, a->signed_headers) == 0 &&
	    strlen(a->signature) == 64 &&
	    CRYPTO_memcmp(sig.signature, a->signature, 64) == 0;
	free(ours);
	if (!same) {
		err->canonical_request = sig.canonical_request;
		err->string_to_sign = sig.string_to_sign;
		sig.canonical_request = sig.string_to_sign = NULL;
		sigv4_signed_free(&sig);
		return fail(err, 403, "SignatureDoesNotMatch",
		    "The request signature we calculated does not match the "
		    "signature you provided. Check your key and signing "
		    "method.");
	}
	sigv4_signed_free(&sig);
	return 0;
}

int
auth_check(const struct auth_config *cfg, struct evhttp_request *req,
    const char *path, const char *query, const void *body, size_t bodylen,
    time_t now, struct auth_error *err)
{
	struct authz a;
	const char  *value, *amz_date;
	time_t	     when;
	int	     rc;

	memset(err, 0, sizeof(*err));
	if (check_payload(req, body, bodylen, err) != 0)
		return -1;
	if (cfg->access_key == NULL)
		return 0;
	if (query != NULL &&
	    (strstr(query, "X-Amz-Signature=") != NULL ||
		strstr(query, "X-Amz-Credential=") != NULL))
		return fail(err, 403, "AccessDenied",
		    "s3mem does not support presigned (query-string) "
		    "authentication.");
	if ((value = header(req, "Authorization")) == NULL)
		return fail(err, 403, "AccessDenied", "Access Denied");
	if (parse_authorization(value, &a, err) != 0) {
		authz_free(&a);
		return -1;
	}
	rc = -1;
	amz_date = header(req, "x-amz-date");
	if (strcmp(a.access_key, cfg->access_key) != 0)
		fail(err, 403, "InvalidAccessKeyId",
		    "The AWS Access Key Id you provided does not exist in our "
		    "records.");
	else if (parse_amz_date(amz_date, &when) != 0)
		fail(err, 403, "AccessDenied",
		    "AWS authentication requires a valid Date or x-amz-date "
		    "header");
	else if (when - now > AUTH_MAX_SKEW || now - when > AUTH_MAX_SKEW)
		fail(err, 403, "RequestTimeTooSkewed",
		    "The difference between the request time (%s) and the "
		    "server's time is too large.",
		    amz_date);
	else if (check_scope(cfg, &a, amz_date, err) != 0)
		;
	else if (header(req, "x-amz-content-sha256") == NULL)
		fail(err, 400, "InvalidRequest",
		    "Missing required header for this request: "
		    "x-amz-content-sha256");
	else
		rc = check_signature(cfg, req, path, query, &a, when, err);
	authz_free(&a);
	return rc;
}
