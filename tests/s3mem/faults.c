/*
 * Fault rules: parsing, counting, and the seeded random draws.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "query.h"
#include "xmlout.h"

#define MAX_DELAY_MS (3600 * 1000)
#define MAX_CODE     64

struct fault_rule {
	char		  *spec;  /* its tokens, one space apart */
	unsigned	   ops;	  /* 1 << enum fault_op */
	long		   after; /* triggers; 0: not set */
	long		   nth;
	long		   every;
	long		   count; /* -1: no limit */
	double		   rate;
	int64_t		   delay_ms;
	int64_t		   jitter_ms;
	enum fault_outcome outcome;
	int		   applied;
	char		  *key_match; /* decoded; NULL when not set */
	size_t		   key_match_len;
	double		   key_rate;
	char		   key_code[MAX_CODE];
	int		   key_code_set;
	uint64_t	   matched; /* counters */
	uint64_t	   fired;
	uint64_t	   key_errors;
};

struct faults {
	struct fault_rule *rules;
	size_t		   nrules;
	uint64_t	   start_seed;
	uint64_t	   seed;
	uint64_t	   state;
};

static const char *const op_names[] = {
    [FAULT_OP_LIST] = "list",
    [FAULT_OP_HEAD] = "head",
    [FAULT_OP_GET] = "get",
    [FAULT_OP_PUT] = "put",
    [FAULT_OP_DELETE] = "delete",
    [FAULT_OP_DELETE_OBJECTS] = "delete-objects",
    [FAULT_OP_BUCKET] = "bucket",
};

#define ALL_OPS ((1u << FAULT_OP_NONE) - 1)

/* splitmix64: small, seedable, and good enough for test faults. */
static uint64_t
next_random(struct faults *f)
{
	uint64_t z = (f->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double
draw(struct faults *f)
{
	return (double)(next_random(f) >> 11) * 0x1.0p-53;
}

static void
reseed(struct faults *f, uint64_t seed)
{
	f->seed = seed;
	f->state = seed;
}

static void
rule_free(struct fault_rule *fr)
{
	free(fr->spec);
	free(fr->key_match);
}

static void
rules_free(struct fault_rule *rules, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		rule_free(&rules[i]);
	free(rules);
}

static int
parse_long(const char *v, long min, long max, long *out)
{
	char *end;
	long  n;

	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int
parse_prob(const char *v, double *out)
{
	char  *end;
	double p;

	if (v == NULL || ((*v < '0' || *v > '9') && *v != '.'))
		return -1;
	p = strtod(v, &end);
	if (*end != '\0' || !(p >= 0 && p <= 1))
		return -1;
	*out = p;
	return 0;
}

static int
parse_op(const char *v, unsigned *ops)
{
	size_t i;

	if (v != NULL && strcmp(v, "any") == 0) {
		*ops |= ALL_OPS;
		return 0;
	}
	for (i = 0; i < nitems(op_names); i++)
		if (v != NULL && strcmp(v, op_names[i]) == 0) {
			*ops |= 1u << i;
			return 0;
		}
	return -1;
}

static const char *
set_op(struct fault_rule *fr, const char *v)
{
	if (parse_op(v, &fr->ops) != 0)
		return "op wants list, head, get, put, delete, delete-objects, "
		       "bucket or any";
	return NULL;
}

static const char *
set_after(struct fault_rule *fr, const char *v)
{
	if (parse_long(v, 0, LONG_MAX, &fr->after) != 0)
		return "after wants a count";
	return NULL;
}

static const char *
set_nth(struct fault_rule *fr, const char *v)
{
	if (parse_long(v, 1, LONG_MAX, &fr->nth) != 0)
		return "nth wants a number from 1";
	return NULL;
}

static const char *
set_every(struct fault_rule *fr, const char *v)
{
	if (parse_long(v, 1, LONG_MAX, &fr->every) != 0)
		return "every wants a number from 1";
	return NULL;
}

static const char *
set_count(struct fault_rule *fr, const char *v)
{
	if (parse_long(v, 0, LONG_MAX, &fr->count) != 0)
		return "count wants a count";
	return NULL;
}

static const char *
set_rate(struct fault_rule *fr, const char *v)
{
	if (parse_prob(v, &fr->rate) != 0)
		return "rate wants a probability from 0 to 1";
	return NULL;
}

static const char *
set_delay(struct fault_rule *fr, const char *v)
{
	long n;

	if (parse_long(v, 0, MAX_DELAY_MS, &n) != 0)
		return "delay wants milliseconds, at most 3600000";
	fr->delay_ms = n;
	return NULL;
}

static const char *
set_jitter(struct fault_rule *fr, const char *v)
{
	long n;

	if (parse_long(v, 0, MAX_DELAY_MS, &n) != 0)
		return "jitter wants milliseconds, at most 3600000";
	fr->jitter_ms = n;
	return NULL;
}

static const char *
set_outcome(struct fault_rule *fr, enum fault_outcome o)
{
	if (fr->outcome != FAULT_ANSWER && fr->outcome != o)
		return "error, reset, close and stall exclude each other";
	fr->outcome = o;
	return NULL;
}

static const char *
set_error(struct fault_rule *fr, const char *v)
{
	if (v != NULL && strcmp(v, "500") == 0)
		return set_outcome(fr, FAULT_ERROR_500);
	if (v != NULL && strcmp(v, "503") == 0)
		return set_outcome(fr, FAULT_ERROR_503);
	return "error wants 500 or 503";
}

static const char *
set_reset(struct fault_rule *fr, const char *v)
{
	if (v != NULL)
		return "reset takes no value";
	return set_outcome(fr, FAULT_RESET);
}

static const char *
set_close(struct fault_rule *fr, const char *v)
{
	if (v != NULL)
		return "close takes no value";
	return set_outcome(fr, FAULT_CLOSE);
}

static const char *
set_stall(struct fault_rule *fr, const char *v)
{
	if (v != NULL)
		return "stall takes no value";
	return set_outcome(fr, FAULT_STALL);
}

static const char *
set_applied(struct fault_rule *fr, const char *v)
{
	if (v != NULL)
		return "applied takes no value";
	fr->applied = 1;
	return NULL;
}

static const char *
set_key_error(struct fault_rule *fr, const char *v)
{
	struct buf b;

	buf_init(&b);
	if (v == NULL || *v == '\0' || pct_decode(&b, v, strlen(v), 0) != 0) {
		buf_free(&b);
		return "key-error wants a non-empty substring (%XX-escapes "
		       "allowed)";
	}
	free(fr->key_match);
	fr->key_match_len = b.len;
	fr->key_match = buf_steal(&b);
	return NULL;
}

static const char *
set_key_rate(struct fault_rule *fr, const char *v)
{
	if (parse_prob(v, &fr->key_rate) != 0)
		return "key-rate wants a probability from 0 to 1";
	return NULL;
}

static const char *
set_key_code(struct fault_rule *fr, const char *v)
{
	size_t i, n = v != NULL ? strlen(v) : 0;

	if (n == 0 || n >= sizeof(fr->key_code))
		return "key-code wants an S3 error code";
	for (i = 0; i < n; i++)
		if (!((v[i] >= 'A' && v[i] <= 'Z') ||
			(v[i] >= 'a' && v[i] <= 'z') ||
			(v[i] >= '0' && v[i] <= '9')))
			return "key-code wants letters and digits";
	memcpy(fr->key_code, v, n + 1);
	fr->key_code_set = 1;
	return NULL;
}

/* The rule language's words; a flag gets a NULL value. */
static const struct setting {
	const char *name;
	const char *(*set)(struct fault_rule *, const char *value);
} settings[] = {
    {"op", set_op},
    {"after", set_after},
    {"nth", set_nth},
    {"every", set_every},
    {"count", set_count},
    {"rate", set_rate},
    {"delay", set_delay},
    {"jitter", set_jitter},
    {"error", set_error},
    {"reset", set_reset},
    {"close", set_close},
    {"stall", set_stall},
    {"applied", set_applied},
    {"key-error", set_key_error},
    {"key-rate", set_key_rate},
    {"key-code", set_key_code},
};

/* Returns NULL, or why the setting is bad. */
static const char *
parse_setting(struct fault_rule *fr, const char *name, const char *v)
{
	size_t i;

	for (i = 0; i < nitems(settings); i++)
		if (strcmp(name, settings[i].name) == 0)
			return settings[i].set(fr, v);
	return "unknown setting (see s3mem.c for the rule language)";
}

/* The rule's settings taken together. */
static const char *
check_rule(struct fault_rule *fr)
{
	int keys = fr->key_match != NULL || fr->key_rate > 0;

	if (!keys && fr->outcome == FAULT_ANSWER && fr->delay_ms == 0 &&
	    fr->jitter_ms == 0)
		return "a rule needs an action: delay, jitter, error, reset, "
		       "close, stall, key-error or key-rate";
	if (fr->applied && fr->outcome == FAULT_ANSWER)
		return "applied goes with error, reset, close or stall";
	if (fr->key_code_set && !keys)
		return "key-code goes with key-error or key-rate";
	if (keys && fr->ops == 0)
		fr->ops = 1u << FAULT_OP_DELETE_OBJECTS;
	if (keys && fr->ops != 1u << FAULT_OP_DELETE_OBJECTS)
		return "key-error and key-rate are for op=delete-objects only";
	if (keys && fr->outcome != FAULT_ANSWER)
		return "key-error and key-rate need the answer: not with "
		       "error, reset, close or stall";
	if (fr->ops == 0)
		fr->ops = ALL_OPS;
	return NULL;
}

static int
is_separator(char c)
{
	return c == ' ' || c == '\t' || c == ',' || c == '\r';
}

/*
 * One rule from s[0..n): tokens NAME or NAME=VALUE between spaces or
 * commas.  Returns NULL, or why it is bad (naming the token in tok).
 */
static const char *
parse_rule(
    struct fault_rule *fr, const char *s, size_t n, char *tok, size_t toklen)
{
	const char *p = s, *end = s + n, *start, *why;
	struct buf  spec;
	char	   *t, *eq;

	memset(fr, 0, sizeof(*fr));
	fr->count = -1;
	fr->rate = 1;
	snprintf(fr->key_code, sizeof(fr->key_code), "InternalError");
	buf_init(&spec);
	for (;;) {
		while (p < end && is_separator(*p))
			p++;
		if (p == end)
			break;
		start = p;
		while (p < end && !is_separator(*p))
			p++;
		t = xstrndup(start, (size_t)(p - start));
		if ((eq = strchr(t, '=')) != NULL)
			*eq = '\0';
		why = parse_setting(fr, t, eq != NULL ? eq + 1 : NULL);
		if (eq != NULL)
			*eq = '=';
		if (why != NULL) {
			snprintf(tok, toklen, "%s", t);
			free(t);
			buf_free(&spec);
			return why;
		}
		if (spec.len > 0)
			buf_adds(&spec, " ");
		buf_adds(&spec, t);
		free(t);
	}
	fr->spec = buf_steal(&spec);
	snprintf(tok, toklen, "%s", fr->spec);
	return check_rule(fr);
}

struct faults *
faults_new(uint64_t seed)
{
	struct faults *f = xcalloc(1, sizeof(*f));

	f->start_seed = seed;
	reseed(f, seed);
	return f;
}

void
faults_free(struct faults *f)
{
	if (f == NULL)
		return;
	rules_free(f->rules, f->nrules);
	free(f);
}

int
faults_add(struct faults *f, const char *rule, char *errbuf, size_t errlen)
{
	struct fault_rule fr;
	const char	 *why;
	char		  tok[128];

	if (strchr(rule, '\n') != NULL) {
		snprintf(errbuf, errlen, "one rule, on one line");
		return -1;
	}
	if ((why = parse_rule(&fr, rule, strlen(rule), tok, sizeof(tok))) !=
	    NULL) {
		snprintf(errbuf, errlen, "\"%s\": %s", tok, why);
		rule_free(&fr);
		return -1;
	}
	f->rules = xrealloc(f->rules, (f->nrules + 1) * sizeof(*f->rules));
	f->rules[f->nrules++] = fr;
	return 0;
}

/* "seed=N" alone on a line. */
static int
parse_seed_line(const char *s, size_t n, uint64_t *seed)
{
	char *line, *end;
	int   rc = -1;

	while (n > 0 && is_separator(s[n - 1]))
		n--;
	line = xstrndup(s, n);
	if (line[5] >= '0' && line[5] <= '9') {
		errno = 0;
		*seed = strtoull(line + 5, &end, 10);
		rc = errno == 0 && *end == '\0' ? 0 : -1;
	}
	free(line);
	return rc;
}

int
faults_set(
    struct faults *f, const char *text, size_t len, char *errbuf, size_t errlen)
{
	struct fault_rule *rules = NULL;
	size_t		   nrules = 0;
	const char	  *p = text, *end = text + len, *nl, *why;
	uint64_t	   seed = f->start_seed;
	long		   lineno = 0;
	char		   tok[128];

	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		lineno++;
		while (p < nl && is_separator(*p))
			p++;
		if (p == nl || *p == '#')
			continue;
		if ((size_t)(nl - p) > 5 && strncmp(p, "seed=", 5) == 0) {
			if (parse_seed_line(p, (size_t)(nl - p), &seed) == 0)
				continue;
			snprintf(errbuf, errlen,
			    "line %ld: seed wants a number, alone on its line",
			    lineno);
			goto fail;
		}
		rules = xrealloc(rules, (nrules + 1) * sizeof(*rules));
		why = parse_rule(
		    &rules[nrules++], p, (size_t)(nl - p), tok, sizeof(tok));
		if (why != NULL) {
			snprintf(errbuf, errlen, "line %ld: \"%s\": %s", lineno,
			    tok, why);
			goto fail;
		}
	}
	rules_free(f->rules, f->nrules);
	f->rules = rules;
	f->nrules = nrules;
	reseed(f, seed);
	return 0;
fail:
	rules_free(rules, nrules);
	return -1;
}

/* Counts the request against fr; true when fr fires on it. */
static int
rule_fires(struct faults *f, struct fault_rule *fr)
{
	uint64_t k = ++fr->matched;

	if (k <= (uint64_t)fr->after)
		return 0;
	if (fr->nth != 0 && k != (uint64_t)fr->nth)
		return 0;
	if (fr->every != 0 && k % (uint64_t)fr->every != 0)
		return 0;
	if (fr->count >= 0 && fr->fired >= (uint64_t)fr->count)
		return 0;
	if (fr->rate < 1 && draw(f) >= fr->rate)
		return 0;
	fr->fired++;
	return 1;
}

void
faults_decide(struct faults *f, enum fault_op op, struct fault_decision *d)
{
	struct fault_rule *fr;
	size_t		   i;

	memset(d, 0, sizeof(*d));
	if (op == FAULT_OP_NONE)
		return;
	for (i = 0; i < f->nrules; i++) {
		fr = &f->rules[i];
		if ((fr->ops & (1u << op)) == 0 || !rule_fires(f, fr))
			continue;
		d->delay_ms += fr->delay_ms;
		if (fr->jitter_ms > 0)
			d->delay_ms += (int64_t)(draw(f) *
			    (double)(fr->jitter_ms + 1));
		if (d->outcome == FAULT_ANSWER && fr->outcome != FAULT_ANSWER) {
			d->outcome = fr->outcome;
			d->applied = fr->applied;
			d->rule = (int)i + 1;
		}
		if (d->keys == NULL &&
		    (fr->key_match != NULL || fr->key_rate > 0))
			d->keys = fr;
	}
}

const char *
faults_key_error(struct faults *f, const struct fault_decision *d,
    const char *key, size_t len)
{
	struct fault_rule *fr = d->keys;

	if (fr == NULL)
		return NULL;
	if ((fr->key_match != NULL &&
		memmem(key, len, fr->key_match, fr->key_match_len) != NULL) ||
	    (fr->key_rate > 0 && draw(f) < fr->key_rate)) {
		fr->key_errors++;
		return fr->key_code;
	}
	return NULL;
}

void
faults_report(const struct faults *f, struct buf *out)
{
	const struct fault_rule *fr;
	size_t			 i;

	buf_addf(out, "<Seed>%llu</Seed>", (unsigned long long)f->seed);
	for (i = 0; i < f->nrules; i++) {
		fr = &f->rules[i];
		buf_adds(out, "<Rule>");
		xml_elem_int(out, "Number", (int64_t)i + 1);
		xml_elem_str(out, "Spec", fr->spec, 0);
		xml_elem_int(out, "Matched", (int64_t)fr->matched);
		xml_elem_int(out, "Fired", (int64_t)fr->fired);
		xml_elem_int(out, "KeyErrors", (int64_t)fr->key_errors);
		buf_adds(out, "</Rule>");
	}
}
