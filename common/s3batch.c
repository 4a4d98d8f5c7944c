#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "s3batch.h"
#include "util.h"

/*
 * Callers' deletes wait in the open batch until it is full or its timer
 * fires; then the batch becomes one DeleteObjects of its distinct keys and
 * is owned by that request until the answer is fanned out.
 */

struct s3batch_entry {
	TAILQ_ENTRY(s3batch_entry) entry;
	char	      **keys;
	size_t		n;
	char	       *task_id; /* the note, if any */
	char	       *task_type;
	char	      **reasons;
	int64_t	       *sizes;
	s3_delete_cb   *cb;
	void	       *arg;
	struct s3_error refused; /* code set: refused before sending */
};

TAILQ_HEAD(s3batch_entries, s3batch_entry);

struct s3batch_req {
	struct s3batch	      *b;
	struct s3batch_entries entries;
	size_t		       nkeys; /* with repeats */
};

struct s3batch {
	struct event_base     *base;
	struct s3_client      *s3;
	int		       flush_ms;
	size_t		       max_keys;
	struct s3batch_req    *open;
	struct event	      *flush_ev;
	struct event	      *soon_ev; /* next turn: nobody else is coming */
	int		       holds;
	struct event	      *refuse_ev;
	struct s3batch_entries refused;
	size_t		       requests;
	size_t		       keys;
	s3batch_gate_fn	      *gate;
	void		      *gate_arg;
};

static void
entry_free(struct s3batch_entry *e)
{
	size_t i;

	for (i = 0; i < e->n; i++) {
		free(e->keys[i]);
		if (e->reasons != NULL)
			free(e->reasons[i]);
	}
	free(e->keys);
	free(e->reasons);
	free(e->sizes);
	free(e->task_id);
	free(e->task_type);
	free(e);
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
result_cmp(const void *a, const void *b)
{
	const struct s3_delete_result *x = a, *y = b;

	return strcmp(x->key, y->key);
}

/* Each entry's own results, looked up by key in the sorted answer. */
static void
req_done(void *arg, const struct s3_delete_result *res, size_t n,
    const struct s3_error *err)
{
	struct s3batch_req	*r = arg;
	struct s3batch_entry	*e;
	struct s3_delete_result *sorted = NULL, *mine = NULL;
	size_t			 i;

	if (err == NULL) {
		sorted = xcalloc(n > 0 ? n : 1, sizeof(*sorted));
		memcpy(sorted, res, n * sizeof(*res));
		qsort(sorted, n, sizeof(*sorted), result_cmp);
	}
	while ((e = TAILQ_FIRST(&r->entries)) != NULL) {
		TAILQ_REMOVE(&r->entries, e, entry);
		if (err != NULL) {
			e->cb(e->arg, NULL, 0, err);
			entry_free(e);
			continue;
		}
		mine = xcalloc(e->n, sizeof(*mine));
		for (i = 0; i < e->n; i++) {
			struct s3_delete_result want = {.key = e->keys[i]};
			const struct s3_delete_result *hit = bsearch(
			    &want, sorted, n, sizeof(*sorted), result_cmp);
			if (hit != NULL)
				mine[i] = *hit;
			else {
				mine[i].code = "missing_result";
				mine[i].message = "the DeleteObjects response "
						  "does not mention this key";
			}
			mine[i].key = e->keys[i];
		}
		e->cb(e->arg, mine, e->n, NULL);
		free(mine);
		entry_free(e);
	}
	free(sorted);
	free(r);
}

/* The gate's answer: send r, or (go 0) fail it as cancelled. */
static void
send_req(void *arg, int go)
{
	struct s3batch_req   *r = arg;
	struct s3batch	     *b = r->b;
	struct s3batch_entry *e;
	const char	    **keys;
	size_t		      n = 0, i, j;
	struct s3_error	      err;

	if (!go) {
		memset(&err, 0, sizeof(err));
		err.transient = 1;
		strlcpy_(err.code, "cancelled", sizeof(err.code));
		strlcpy_(err.message, "DeleteObjects: cancelled before sending",
		    sizeof(err.message));
		req_done(r, NULL, 0, &err);
		return;
	}
	keys = xcalloc(r->nkeys, sizeof(*keys));
	TAILQ_FOREACH(e, &r->entries, entry)
	for (i = 0; i < e->n; i++)
		keys[n++] = e->keys[i];
	/* Distinct keys only: a key asked for twice is sent once. */
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (i = j = 0; i < n; i++)
		if (j == 0 || strcmp(keys[j - 1], keys[i]) != 0)
			keys[j++] = keys[i];
	b->requests++;
	b->keys += j;
	if (s3_delete_objects(b->s3, keys, j, req_done, r) != 0) {
		memset(&err, 0, sizeof(err));
		strlcpy_(err.code, "cancelled", sizeof(err.code));
		strlcpy_(err.message, "the S3 client is shutting down",
		    sizeof(err.message));
		req_done(r, NULL, 0, &err);
	}
	free(keys);
}

static void
flush(struct s3batch *b)
{
	struct s3batch_req *r = b->open;

	if (r == NULL)
		return;
	b->open = NULL;
	evtimer_del(b->flush_ev);
	event_del(b->soon_ev);
	if (b->gate != NULL)
		b->gate(b->gate_arg, send_req, r);
	else
		send_req(r, 1);
}

void
s3batch_set_gate(struct s3batch *b, s3batch_gate_fn *gate, void *arg)
{
	b->gate = gate;
	b->gate_arg = arg;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	flush(arg);
}

static void
refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct s3batch	     *b = arg;
	struct s3batch_entry *e;

	while ((e = TAILQ_FIRST(&b->refused)) != NULL) {
		TAILQ_REMOVE(&b->refused, e, entry);
		e->cb(e->arg, NULL, 0, &e->refused);
		entry_free(e);
	}
}

int
s3batch_delete(struct s3batch *b, const char *const *keys, size_t n,
    s3_delete_cb *cb, void *arg)
{
	return s3batch_delete_noted(b, keys, n, NULL, cb, arg);
}

void
s3batch_req_keys(void *req, s3batch_key_fn *fn, void *ctx)
{
	struct s3batch_req   *r = req;
	struct s3batch_entry *e;
	size_t		      i;

	TAILQ_FOREACH(e, &r->entries, entry)
	for (i = 0; i < e->n; i++)
		fn(ctx, e->keys[i], e->task_id, e->task_type,
		    e->reasons != NULL ? e->reasons[i] : NULL,
		    e->sizes != NULL ? e->sizes[i] : -1);
}

int
s3batch_delete_noted(struct s3batch *b, const char *const *keys, size_t n,
    const struct s3batch_note *note, s3_delete_cb *cb, void *arg)
{
	struct s3batch_entry *e;
	struct timeval tv = {b->flush_ms / 1000, (b->flush_ms % 1000) * 1000};
	const char    *code, *why;
	size_t	       i;

	e = xcalloc(1, sizeof(*e));
	e->keys = xcalloc(n > 0 ? n : 1, sizeof(*e->keys));
	for (i = 0; i < n; i++)
		e->keys[e->n++] = xstrdup(keys[i]);
	if (note != NULL) {
		e->task_id = xstrdup(note->task_id);
		e->task_type = xstrdup(note->task_type);
		e->reasons = xcalloc(n > 0 ? n : 1, sizeof(*e->reasons));
		e->sizes = xcalloc(n > 0 ? n : 1, sizeof(*e->sizes));
		for (i = 0; i < n; i++) {
			e->reasons[i] = xstrdup(note->reasons[i]);
			e->sizes[i] = note->sizes[i];
		}
	}
	e->cb = cb;
	e->arg = arg;
	/* Refused alone, so that one bad caller fails nobody else. */
	code = n == 0 || n > b->max_keys ? "bad_argument" : NULL;
	why = "1 to the batch size keys at a time";
	for (i = 0; code == NULL && i < n; i++)
		code = s3_client_key_refusal(b->s3, keys[i], &why);
	if (code != NULL) {
		strlcpy_(e->refused.code, code, sizeof(e->refused.code));
		snprintf(e->refused.message, sizeof(e->refused.message),
		    "DeleteObjects: refused, nothing sent: %s", why);
		TAILQ_INSERT_TAIL(&b->refused, e, entry);
		event_active(b->refuse_ev, EV_TIMEOUT, 0);
		return 0;
	}
	if (b->open != NULL && b->open->nkeys + n > b->max_keys)
		flush(b);
	if (b->open == NULL) {
		b->open = xcalloc(1, sizeof(*b->open));
		b->open->b = b;
		TAILQ_INIT(&b->open->entries);
		evtimer_add(b->flush_ev, &tv);
	}
	TAILQ_INSERT_TAIL(&b->open->entries, e, entry);
	b->open->nkeys += n;
	if (b->open->nkeys >= b->max_keys)
		flush(b);
	else if (b->holds == 0)
		event_active(b->soon_ev, EV_TIMEOUT, 0);
	return 0;
}

void
s3batch_hold(struct s3batch *b)
{
	b->holds++;
}

void
s3batch_release(struct s3batch *b)
{
	if (b->holds > 0 && --b->holds == 0 && b->open != NULL)
		event_active(b->soon_ev, EV_TIMEOUT, 0);
}

struct s3batch *
s3batch_new(struct event_base *base, struct s3_client *s3, int flush_ms,
    size_t max_keys)
{
	struct s3batch *b = xcalloc(1, sizeof(*b));

	b->base = base;
	b->s3 = s3;
	b->flush_ms = flush_ms > 0 ? flush_ms : 0;
	b->max_keys = max_keys > 0 && max_keys <= 1000 ? max_keys : 1000;
	b->flush_ev = evtimer_new(base, flush_cb, b);
	b->soon_ev = event_new(base, -1, 0, flush_cb, b);
	b->refuse_ev = event_new(base, -1, 0, refuse_cb, b);
	TAILQ_INIT(&b->refused);
	return b;
}

void
s3batch_free(struct s3batch *b)
{
	struct s3batch_entry *e;
	struct s3_error	      err;

	if (b == NULL)
		return;
	memset(&err, 0, sizeof(err));
	err.transient = 1;
	strlcpy_(err.code, "cancelled", sizeof(err.code));
	strlcpy_(err.message, "DeleteObjects: cancelled: shutting down",
	    sizeof(err.message));
	if (b->open != NULL) {
		struct s3batch_req *r = b->open;
		b->open = NULL;
		req_done(r, NULL, 0, &err);
	}
	while ((e = TAILQ_FIRST(&b->refused)) != NULL) {
		TAILQ_REMOVE(&b->refused, e, entry);
		e->cb(e->arg, NULL, 0, &err);
		entry_free(e);
	}
	event_free(b->flush_ev);
	event_free(b->soon_ev);
	event_free(b->refuse_ev);
	free(b);
}

size_t
s3batch_requests(const struct s3batch *b)
{
	return b->requests;
}

size_t
s3batch_keys(const struct s3batch *b)
{
	return b->keys;
}
