/*
 * The HTTP side of s3mem: one evhttp on the caller's event_base, a request
 * context per request, dispatch to the operations in ops.h, and S3-style
 * replies.
 */
#ifndef S3MEM_SERVER_H
#define S3MEM_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>

#include "auth.h"
#include "delivery.h"
#include "faults.h"
#include "query.h"
#include "store.h"
#include "util.h"

/*
 * Largest request body: evhttp answers 413 beyond it without reading it.
 * It is a seed's limit (about 3.5 million lines); an object's is lower.
 */
#define S3MEM_MAX_REQUEST (256 * 1024 * 1024)
/* Largest object body a PUT stores or a GET sends. */
#define S3MEM_MAX_BODY	  (64 * 1024 * 1024)
#define S3MEM_MAX_HEADERS (64 * 1024)
#define S3MEM_MAX_KEY	  1024
/* S3's largest object, for seeded sizes. */
#define S3MEM_MAX_SIZE (5LL * 1024 * 1024 * 1024 * 1024)

struct server {
	struct event_base *base;
	struct evhttp	  *http;
	struct store	  *store;
	struct auth_config auth;
	struct faults	  *faults;
	struct delivery	  *delivery;
	int		   verbose;
	uint64_t	   nrequests;
};

/* One request while it is handled; everything in it dies with the reply. */
struct s3req {
	struct server	      *srv;
	struct evhttp_request *req;
	const char	      *method;
	const char	      *uri;	 /* as sent */
	char		      *path;	 /* raw, without the query */
	char		      *rawquery; /* raw, NULL when absent */
	struct query	       query;
	char		      *bucket_name; /* decoded; NULL for "/" */
	struct bucket	      *bucket;	    /* NULL when it does not exist */
	char		      *key;	    /* decoded; NULL for none */
	size_t		       keylen;
	const char	      *body;
	size_t		       bodylen;
	int64_t		       start_us;
	char		       request_id[17];
	struct fault_decision  fault;
	int		       replied;
};

/*
 * Binds host:port (port 0: a free one, returned in *bound_port) and
 * serves on base, with srv->faults consulted for every request.  Returns
 * 0, or -1 with a message in errbuf.
 */
int  server_listen(struct server *, const char *host, int port, int *bound_port,
     char *errbuf, size_t errlen) MUST_CHECK;
void server_close(struct server *);

/* Headers of the reply being built. */
struct evkeyvalq *reply_headers(struct s3req *);
/*
 * Sends the reply with body (XML unless a Content-Type was set; NULL: no
 * body).  For HEAD the body is dropped and Content-Length, if set, kept.
 * The request's fault decision may delay it, or replace it when the
 * fault is "applied".
 */
void reply(struct s3req *, int status, const struct buf *body);
/* Sends the same with raw bytes. */
void reply_bytes(struct s3req *, int status, const void *, size_t);
/* An S3 error document. */
void reply_error(struct s3req *, int status, const char *code, const char *fmt,
    ...) PRINTF_LIKE(4, 5);

#endif
