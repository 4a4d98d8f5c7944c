#ifndef CLIPSWEEP_REDIS_H
#define CLIPSWEEP_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct event_base;
struct evdns_base;
struct redis_url;
struct redis;
struct redis_reply;

/*
 * One Redis connection on a libevent bufferevent (plain or TLS), with
 * hiredis used only to format commands and read replies.  Commands are
 * pipelined: each gets exactly one callback, in order.
 *
 * A reply is valid only during its callback; copy what you keep.  A NULL
 * reply means the connection failed before the reply arrived (the command
 * may or may not have run).
 */
typedef void redis_cb(struct redis *, const struct redis_reply *, void *arg);

/* Called when the connection becomes ready (up = 1) or is lost (up = 0). */
typedef void redis_state_cb(struct redis *, int up, void *arg);

struct redis *redis_new(struct event_base *, struct evdns_base *,
    const struct redis_url *, const char *name);
void	      redis_free(struct redis *);
void	      redis_set_state_cb(struct redis *, redis_state_cb *, void *arg);
/* By default a lost connection is made again with capped backoff. */
void redis_set_reconnect(struct redis *, int on);
void redis_connect(struct redis *);
int  redis_is_ready(const struct redis *);
/* Why the last connection attempt or connection failed. */
const char *redis_last_error(const struct redis *);

/*
 * Send one command.  Returns -1 (and never calls cb) when the connection
 * is not ready.  Arguments are copied.
 */
int redis_cmd_argv(struct redis *, redis_cb *, void *arg, int argc,
    const char **argv, const size_t *argvlen) MUST_CHECK;
/* The same with NUL-terminated arguments, ending with NULL. */
int redis_cmd(struct redis *, redis_cb *, void *arg, ...) MUST_CHECK
    __attribute__((sentinel));

/*
 * Enter subscribe mode on this connection: every message on channel is
 * passed to cb as the payload string.  The connection can then only be
 * used for this subscription; after a reconnect it subscribes again, and
 * the state callback says so (messages sent meanwhile are lost).
 * confirmed, if not NULL, gets the server's reply to SUBSCRIBE.
 */
typedef void redis_msg_cb(
    struct redis *, const char *payload, size_t len, void *arg);
int redis_subscribe(struct redis *, const char *channel, redis_msg_cb *,
    redis_cb *confirmed, void *arg) MUST_CHECK;

enum redis_reply_type {
	REDIS_R_STRING = 1,
	REDIS_R_ARRAY,
	REDIS_R_INTEGER,
	REDIS_R_NIL,
	REDIS_R_STATUS,
	REDIS_R_ERROR,
};

enum redis_reply_type redis_reply_type(const struct redis_reply *);
/* String, status or error text; *len may be NULL. */
const char *redis_reply_str(const struct redis_reply *, size_t *len);
long long   redis_reply_int(const struct redis_reply *);
size_t	    redis_reply_len(const struct redis_reply *);
const struct redis_reply *redis_reply_elem(const struct redis_reply *, size_t);
/* True when r is NULL (connection lost) or a Redis error reply. */
int redis_reply_failed(const struct redis_reply *);

#endif
