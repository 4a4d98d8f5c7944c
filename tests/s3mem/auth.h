/*
 * Checking a request's AWS Signature Version 4 (Authorization header form)
 * the way S3 does, by signing it again with the project's signer
 * (common/sigv4.h) in S3 mode and comparing: the path and query exactly as
 * sent, the headers the request names in SignedHeaders, and the payload
 * hash it sends in x-amz-content-sha256.  That header, when it is a hash,
 * must also match the body, with or without credentials.
 */
#ifndef S3MEM_AUTH_H
#define S3MEM_AUTH_H

#include <stddef.h>
#include <time.h>

#include <event2/http.h>

#include "util.h"

/* A request older or newer than this is RequestTimeTooSkewed. */
#define AUTH_MAX_SKEW (15 * 60)

struct auth_config {
	const char *access_key; /* NULL: requests are not authenticated */
	const char *secret_key;
	const char *region;
};

/* Why a request was refused; free with auth_error_free(). */
struct auth_error {
	int	    status;
	const char *code;
	char	    message[512];
	char	   *canonical_request; /* ours, for SignatureDoesNotMatch */
	char	   *string_to_sign;
};

/*
 * Returns 0 when the request may go on, -1 with err filled otherwise.
 * path and query are the request target's raw parts (query NULL when
 * absent); body is the whole request body.
 */
int  auth_check(const struct auth_config *, struct evhttp_request *,
     const char *path, const char *query, const void *body, size_t bodylen,
     time_t now, struct auth_error *err) MUST_CHECK;
void auth_error_free(struct auth_error *);

#endif
