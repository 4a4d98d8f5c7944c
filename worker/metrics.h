#ifndef CLIPSWEEP_METRICS_H
#define CLIPSWEEP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redis;
struct db;
struct s3_client;

/*
 * The worker's HTTP endpoint for operators: /metrics (Prometheus text
 * format 0.0.4), /livez (the event loop turns) and /readyz (Redis,
 * PostgreSQL and the storage answer).  Every function accepts NULL, the
 * endpoint turned off (--metrics-listen none).
 */
struct metrics;

/* What /readyz and the gauges look at; the worker owns all of it. */
struct metrics_sources {
	struct redis	  *redis;
	struct db	  *db;
	struct s3_client  *s3;
	const char *const *queue_names; /* "jobs", ... */
	const char *const *queue_keys;	/* "<ns>:queue:jobs", ... */
	size_t		   nqueues;
	const char	  *dead_key;
	const char	  *scheduled_key;
	const int	  *inflight;
	const int	  *stopping;
	const int	  *paused;
};

/*
 * Listens on listen ("HOST:PORT", "[V6]:PORT"; port 0 picks a free one).
 * NULL with err set when the address is malformed or cannot be bound.
 */
struct metrics *metrics_new(
    struct event_base *, const char *listen, char *err, size_t errlen);
void metrics_free(struct metrics *);
/* The address bound, e.g. "127.0.0.1:9540". */
const char *metrics_address(const struct metrics *);
void metrics_set_sources(struct metrics *, const struct metrics_sources *);

/* A task ended: its type name (NULL: a message that was not a task). */
void metrics_task(
    struct metrics *, const char *type, const char *status, double seconds);
void metrics_deleted(struct metrics *, long long objects, long long bytes);
void metrics_sweep_ok(struct metrics *, int64_t when_ms);
/* One storage response (status 0: none came: a timeout or a failure). */
void metrics_storage(void *metrics, const char *op, int status);

#endif
