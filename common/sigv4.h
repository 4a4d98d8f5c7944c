/*
 * AWS Signature Version 4 (AWS4-HMAC-SHA256) with the Authorization header.
 *
 * The signer builds the canonical request from the request as it goes on
 * the wire and adds these signed headers itself:
 *   host                  from req->host
 *   x-amz-date            from req->when (also returned in amz_date)
 *   x-amz-content-sha256  S3 mode always, from req->payload_sha256_hex;
 *                         generic mode only when the caller passes it
 *   x-amz-security-token  when creds->session_token is set
 * The caller must send the same values; a caller header of one of these
 * names is ignored in favour of the signer's own (as botocore does).
 *
 * Canonicalisation:
 *   headers  names lowercased; values trimmed, runs of spaces and tabs
 *            collapsed to one space; repeated names joined with ',' in the
 *            order given; sorted by name.  CR or LF in a value, or a
 *            name that is not an HTTP token, is an error.
 *   query    split on '&' (empty pieces dropped), name and value split at
 *            the first '=' (none: empty value); each is %XX-decoded and
 *            re-encoded so only A-Za-z0-9-._~ stay literal ('+' is a
 *            literal plus and becomes %2B); sorted by name, then value.
 *   path     S3 mode: the path as sent with its percent-encoding normalised
 *            the same way, '/' kept, %2F kept; no dot-segment removal and no
 *            double encoding.  Generic mode: the path as sent encoded once
 *            more ('%' becomes %25, '/' kept); with normalize set, dot
 *            segments are removed and repeated slashes collapsed first.
 * A malformed %-escape in the path (S3 mode) or query is an error.
 */
#ifndef CLIPSWEEP_SIGV4_H
#define CLIPSWEEP_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "util.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

struct sigv4_header {
	const char *name;
	const char *value;
};

/* S3: no path normalisation, no double encoding, x-amz-content-sha256 signed */
enum sigv4_mode { SIGV4_S3, SIGV4_GENERIC };

struct sigv4_creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* may be NULL */
};

struct sigv4_request {
	enum sigv4_mode mode;
	/* generic mode only: remove dot segments, collapse slashes */
	int	    normalize;
	const char *method;
	/* Host header value as sent, with :port when non-default */
	const char *host;
	/* path as sent on the wire, already percent-encoded */
	const char *path;
	/* raw query string as sent (no '?'), or NULL */
	const char *query;
	/* headers the caller sets and wants signed (Content-MD5, ...) */
	const struct sigv4_header *headers;
	size_t			   nheaders;
	/* lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
	const char *payload_sha256_hex;
	const char *region;
	const char *service;
	time_t	    when; /* signing time */
};

struct sigv4_signed {
	char  amz_date[17]; /* YYYYMMDDTHHMMSSZ */
	char  signature[65];
	char *authorization;	 /* header value, malloc'd */
	char *canonical_request; /* malloc'd, for tests, debug */
	char *string_to_sign;	 /* malloc'd */
};

/*
 * Sign a request.  Returns 0, -EINVAL for a malformed request or -EIO if
 * OpenSSL fails; on error out is zeroed.  Either way sigv4_signed_free()
 * may be called on out.
 * The derived signing key is cached per thread for the last (date, region,
 * service, secret).
 */
int  sigv4_sign(const struct sigv4_request *, const struct sigv4_creds *,
     struct sigv4_signed *) MUST_CHECK;
void sigv4_signed_free(struct sigv4_signed *);

/* Lowercase hex SHA-256. */
void sha256_hex(const void *, size_t, char out[65]);
/* Base64 MD5, for Content-MD5. */
void md5_base64(const void *, size_t, char out[25]);

#endif
