/*
 * Fault injection: rules that make some requests slow, failed, dropped or
 * never answered, and make DeleteObjects fail on some keys.  This module
 * only keeps the rules and decides; server.c asks for a decision per
 * request and carries it out (delivery.h).  Every random draw comes from
 * one seeded generator, so the same sequence of requests meets the same
 * faults on every run.  The rule language is described in s3mem.c.
 */
#ifndef S3MEM_FAULTS_H
#define S3MEM_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* What a request is, for the rules' op= selector. */
enum fault_op {
	FAULT_OP_LIST,		 /* ListObjects v1 and v2 */
	FAULT_OP_HEAD,		 /* HeadObject */
	FAULT_OP_GET,		 /* GetObject */
	FAULT_OP_PUT,		 /* PutObject */
	FAULT_OP_DELETE,	 /* DeleteObject */
	FAULT_OP_DELETE_OBJECTS, /* DeleteObjects */
	FAULT_OP_BUCKET,	 /* everything else: bucket and service level */
	FAULT_OP_NONE		 /* s3mem's own extensions: never faulted */
};

/* What a faulted request gets instead of its answer. */
enum fault_outcome {
	FAULT_ANSWER,	 /* its own answer (perhaps late) */
	FAULT_ERROR_500, /* 500 InternalError */
	FAULT_ERROR_503, /* 503 SlowDown */
	FAULT_RESET,	 /* no answer, the connection aborted (RST) */
	FAULT_CLOSE,	 /* no answer, the connection closed (FIN) */
	FAULT_STALL	 /* no answer, ever */
};

struct fault_rule;

/* One request's faults: all zero means none. */
struct fault_decision {
	int64_t		   delay_ms; /* before the answer or drop */
	enum fault_outcome outcome;
	int		   applied; /* the operation runs anyway */
	int		   rule;    /* 1-based rule that set outcome */
	struct fault_rule *keys;    /* per-key faults, or NULL */
};

struct faults;

/* No rules; seed is the generator's seed until a rule set names one. */
struct faults *faults_new(uint64_t seed);
void	       faults_free(struct faults *);

/*
 * Appends one rule (a --fault argument).  Returns 0, or -1 with the reason
 * in errbuf and nothing changed.
 */
int faults_add(
    struct faults *, const char *rule, char *errbuf, size_t errlen) MUST_CHECK;
/*
 * Replaces every rule with those in text (one a line, "seed=N" lines and
 * '#' comments allowed), with fresh counters, and reseeds the generator
 * (from the text, else with faults_new()'s seed).  Returns 0, or -1 with
 * the line and reason in errbuf and nothing changed.
 */
int faults_set(struct faults *, const char *text, size_t len, char *errbuf,
    size_t errlen) MUST_CHECK;

/*
 * Counts the request against every rule for op and fills d: the delays
 * of the rules that fire add up, the first of them with an outcome sets
 * it, the first with per-key faults sets keys.  d->keys stays valid until
 * the rules are next changed.
 */
void faults_decide(struct faults *, enum fault_op, struct fault_decision *d);
/*
 * For one key of a DeleteObjects request decided as d: the S3 error code
 * to report instead of deleting it, or NULL to delete it.
 */
const char *faults_key_error(
    struct faults *, const struct fault_decision *d, const char *key, size_t);

/* The seed and each rule with its counters, as XML elements. */
void faults_report(const struct faults *, struct buf *);

#endif
