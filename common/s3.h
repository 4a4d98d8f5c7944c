#ifndef CLIPSWEEP_S3_H
#define CLIPSWEEP_S3_H

#include <stddef.h>
#include <stdint.h>

#include "s3xml.h" /* struct s3_object, struct s3_delete_result */
#include "util.h"

struct event_base;
struct storage_url;
struct s3_client;
struct s3_list_page;

/*
 * The S3 client: SigV4-signed requests on libcurl multi, driven by the
 * libevent loop, with keep-alive and many requests in flight.
 *
 * Every key passed in or out is the full storage key (cube prefix
 * included).  The client refuses, without sending anything, a key that is
 * not under the configured prefix or that key_unsafe_reason() rejects:
 * that is the last line of defence against deleting outside the cube.
 */

struct s3_creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* may be NULL */
};

/*
 * Our own codes, besides S3's: outside_prefix, unsafe_key, bad_argument
 * (refused before sending), timeout, connect, network, tls, cancelled,
 * bad_response (a 2xx body that does not parse), request_failed, and
 * http_NNN for a non-2xx answer without an S3 error document.  message
 * names the operation and key; it never holds a secret.
 */
struct s3_error {
	int http_status; /* 0 when no response was received */
	int transient;	 /* 5xx, 429, SlowDown, RequestTimeout,
			    InternalError, timeouts, connection errors,
			    cancelled */
	char code[64];
	char message[256];
};

/* The URL and credentials are copied. */
struct s3_client *s3_client_new(
    struct event_base *, const struct storage_url *, const struct s3_creds *);
/*
 * Requests still pending get their callback, with err code "cancelled",
 * before this returns; none is called afterwards.  May be called from a
 * callback.
 */
void s3_client_free(struct s3_client *);
/* Per-request timeout (default 30 s) and parallelism cap (default 64). */
void s3_client_set_limits(struct s3_client *, int timeout_ms, int max_inflight);
/* At most this many requests started per second (0: no cap). */
void s3_client_set_rate(struct s3_client *, double per_second);

/*
 * Retries, as the AWS SDKs' standard mode: a request that fails
 * transiently (5xx, 429, SlowDown, RequestTimeout, a timeout or a broken
 * connection) is sent again after a delay drawn uniformly from 0 to
 * base * 2^(attempt - 1), capped at 20 s, up to max_attempts sends in all
 * (default 3, base 1000 ms).  Retries draw on a quota shared by the client
 * (500 tokens; a retry costs 5, 10 after a timeout; a success gives back
 * what its retries cost, or 1): when the storage fails for everyone, the
 * client stops retrying instead of multiplying the load.  503 and 429
 * answers also halve the requests in flight (http_window()).
 * max_attempts 1 turns retries off.
 */
#define S3_MAX_ATTEMPTS	 3
#define S3_RETRY_BASE_MS 1000
#define S3_RETRY_QUOTA	 500
void s3_client_set_retries(struct s3_client *, int max_attempts, int base_ms);
/* Retries sent, and the quota left, for tests and metrics. */
/*
 * Told of every response (each send of a retried request too): the
 * operation ("head", "put", "list", "delete") and the HTTP status, 0 when
 * no response came (a timeout, a broken connection).
 */
typedef void s3_observe_cb(void *arg, const char *op, int status);
void	 s3_client_set_observer(struct s3_client *, s3_observe_cb *, void *arg);
uint64_t s3_client_retries(const struct s3_client *);
int	 s3_client_retry_quota(const struct s3_client *);
/* Requests allowed in flight now (halved by 503s, regrown by successes). */
int s3_client_window(const struct s3_client *);
/*
 * NULL when the client would send a request for key: under the cube
 * prefix (and more than it) and accepted by key_unsafe_reason().  Else
 * the error code it would fail with, and the reason in why.
 */
const char *s3_client_key_refusal(
    const struct s3_client *, const char *key, const char **why);
/* The configured cube prefix, ending in '/'. */
const char *s3_client_prefix(const struct s3_client *);
/* Requests started and still running, for tests and metrics. */
int s3_client_inflight(const struct s3_client *);
/* Requests sent (signed and handed to curl) since s3_client_new(). */
uint64_t s3_client_requests(const struct s3_client *);

/*
 * Callbacks run from the event loop, never from inside the s3_* call that
 * started the request (errors found before sending are delivered on the
 * next loop turn).  Pointers passed to callbacks are valid only during the
 * callback; copy what you keep.  err is NULL on success.
 *
 * The s3_* calls return -1, and never call back, only while the client is
 * being freed; every other failure goes to the callback.  Requests beyond
 * the parallelism cap wait in a FIFO queue and are signed when they start.
 */

/*
 * found = 0 with err NULL means 404.  obj->key is the key asked for;
 * obj->size is -1 if the response had no Content-Length and
 * obj->last_modified_ms is -1 if it had no valid Last-Modified.
 */
typedef void s3_head_cb(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err);
int	     s3_head(
	     struct s3_client *, const char *key, s3_head_cb *, void *arg) MUST_CHECK;

/*
 * One DeleteObjects request (1 to 1000 keys, Quiet off, Content-MD5).
 * There is one result per key asked for, in the order asked; a key the
 * response does not mention counts as not deleted (code
 * "missing_result").  A request-level failure, including a 200 response
 * that does not parse, gives err with results NULL: then nothing is known
 * about any key.  If any key is refused, nothing is sent.
 */
typedef void s3_delete_cb(void *arg, const struct s3_delete_result *results,
    size_t n, const struct s3_error *err);
int s3_delete_objects(struct s3_client *, const char *const *keys, size_t n,
    s3_delete_cb *, void *arg) MUST_CHECK;

/*
 * One ListObjectsV2 page under prefix (which must start with the cube
 * prefix), with encoding-type=url; keys come back decoded.  max_keys is
 * 1 to 1000.  token or start_after may be NULL.  A page with a key outside
 * prefix fails with bad_response.
 */
typedef void s3_list_cb(
    void *arg, const struct s3_list_page *page, const struct s3_error *err);
int    s3_list(struct s3_client *, const char *prefix, const char *token,
       const char *start_after, int max_keys, s3_list_cb *, void *arg) MUST_CHECK;
size_t s3_list_page_count(const struct s3_list_page *);
const struct s3_object *s3_list_page_object(
    const struct s3_list_page *, size_t);
int	    s3_list_page_truncated(const struct s3_list_page *);
const char *s3_list_page_next_token(const struct s3_list_page *);

/* body is copied; content_type NULL means application/octet-stream. */
typedef void s3_put_cb(void *arg, const struct s3_error *err);
int s3_put(struct s3_client *, const char *key, const void *body, size_t len,
    const char *content_type, s3_put_cb *, void *arg) MUST_CHECK;

#endif
