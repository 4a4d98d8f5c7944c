/*
 * How a reply leaves s3mem: at once, late, never, or not at all with the
 * connection dropped.  Requests held back are kept here, with their
 * timers, until they go or s3mem stops.
 *
 * evhttp lets a handler keep a request past its callback: when the client
 * goes away meanwhile, evhttp detaches the request from the connection
 * instead of freeing it, and sending on a detached request frees it.  So
 * a held request stays valid until we send it, drop it, or free the
 * delivery.
 */
#ifndef S3MEM_DELIVERY_H
#define S3MEM_DELIVERY_H

#include <stdint.h>

#include "faults.h"

struct event_base;
struct evbuffer;
struct evhttp_request;
struct delivery;

struct delivery *delivery_new(struct event_base *);
/*
 * Forgets every held request: those whose client left are freed, the
 * others are left for evhttp_free(), which must come after.
 */
void delivery_free(struct delivery *);

/* Sends the reply after delay_ms (0: now).  body is taken over. */
void delivery_send(struct delivery *, struct evhttp_request *, int status,
    const char *reason, struct evbuffer *body, int64_t delay_ms);
/*
 * Answers nothing: after delay_ms aborts the connection (FAULT_RESET) or
 * closes it (FAULT_CLOSE); FAULT_STALL holds the request until the
 * delivery is freed.
 */
void delivery_drop(struct delivery *, struct evhttp_request *,
    enum fault_outcome how, int64_t delay_ms);

/* Requests held now, sent late or never. */
unsigned delivery_held(const struct delivery *);

#endif
