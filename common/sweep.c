#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sweep.h"
#include "util.h"

struct sweep_merge {
	char		 *cube_prefix;
	size_t		  cube_len;
	char		 *scan_prefix;
	size_t		  scan_len;
	int64_t		  young_after_ms;
	sweep_verdict_cb *cb;
	void		 *arg;

	struct sweep_object *objs; /* the current listing page */
	size_t		     nobjs, oi;
	int		     objs_last;
	struct sweep_ref    *refs; /* the current database batch */
	size_t		     nrefs, ri;
	int		     refs_last;

	char		   *after, *upto; /* the shard's range, or NULL */
	struct buf	    last_obj, last_ref;
	int		    have_last_obj, have_last_ref;
	struct sweep_counts counts;
	int		    failed;
	char		    err[512];
};

const char *
sweep_reason_name(enum sweep_reason r)
{
	static const char *names[] = {
	    [SWEEP_KEEP_RETAINED] = "retained_clip",
	    [SWEEP_KEEP_ACTIVE] = "active",
	    [SWEEP_KEEP_RECENT] = "recent",
	    [SWEEP_KEEP_UNSAFE] = "unsafe_key",
	    [SWEEP_EXPIRED_CLIP] = "expired_clip",
	    [SWEEP_TEMPORARY] = "temporary",
	    [SWEEP_ORPHAN] = "orphan",
	};

	return r < SWEEP_NREASONS ? names[r] : "?";
}

struct sweep_merge *
sweep_merge_new(const char *cube_prefix, const char *scan_prefix,
    int64_t young_after_ms, sweep_verdict_cb *cb, void *arg)
{
	struct sweep_merge *m = xcalloc(1, sizeof(*m));

	m->cube_prefix = xstrdup(cube_prefix);
	m->cube_len = strlen(cube_prefix);
	m->scan_prefix = xstrdup(scan_prefix);
	m->scan_len = strlen(scan_prefix);
	m->young_after_ms = young_after_ms;
	m->cb = cb;
	m->arg = arg;
	buf_init(&m->last_obj);
	buf_init(&m->last_ref);
	return m;
}

static void
free_objects(struct sweep_merge *m)
{
	size_t i;

	for (i = 0; i < m->nobjs; i++)
		free((char *)m->objs[i].key);
	free(m->objs);
	m->objs = NULL;
	m->nobjs = m->oi = 0;
}

static void
free_refs(struct sweep_merge *m)
{
	size_t i;

	for (i = 0; i < m->nrefs; i++)
		free((char *)m->refs[i].key);
	free(m->refs);
	m->refs = NULL;
	m->nrefs = m->ri = 0;
}

void
sweep_merge_free(struct sweep_merge *m)
{
	if (m == NULL)
		return;
	free_objects(m);
	free_refs(m);
	buf_free(&m->last_obj);
	buf_free(&m->last_ref);
	free(m->cube_prefix);
	free(m->scan_prefix);
	free(m->after);
	free(m->upto);
	free(m);
}

static int PRINTF_LIKE(2, 3)
    merge_fail(struct sweep_merge *m, const char *fmt, ...)
{
	va_list ap;

	if (!m->failed) {
		va_start(ap, fmt);
		vsnprintf(m->err, sizeof(m->err), fmt, ap);
		va_end(ap);
	}
	m->failed = 1;
	return -1;
}

/* Byte order, as S3 and COLLATE "C" sort: memcmp, then length. */
static int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Strictly increasing, or the stream cannot be trusted. */
static int
check_order(struct sweep_merge *m, struct buf *last, int *have, const char *key,
    size_t len, const char *what)
{
	if (*have && key_cmp(last->data, last->len, key, len) >= 0)
		return merge_fail(m,
		    "%s is out of order or repeats a key: "
		    "'%.200s' after '%.200s'; nothing further is decided",
		    what, key, last->data);
	buf_reset(last);
	buf_add(last, key, len);
	*have = 1;
	return 0;
}

void
sweep_merge_set_range(
    struct sweep_merge *m, const char *after, const char *upto)
{
	free(m->after);
	free(m->upto);
	m->after = after != NULL ? xstrdup(after) : NULL;
	m->upto = upto != NULL ? xstrdup(upto) : NULL;
}

/* Is the relative key inside the range (after, upto]? */
static int
in_range(const struct sweep_merge *m, const char *rel, size_t len)
{
	if (m->after != NULL &&
	    key_cmp(rel, len, m->after, strlen(m->after)) <= 0)
		return 0;
	if (m->upto != NULL && key_cmp(rel, len, m->upto, strlen(m->upto)) > 0)
		return 0;
	return 1;
}

int
sweep_merge_add_objects(
    struct sweep_merge *m, const struct sweep_object *o, size_t n, int last)
{
	size_t i;

	if (m->failed)
		return -1;
	if (m->oi < m->nobjs || m->objs_last)
		return merge_fail(m, "listing page fed out of turn");
	free_objects(m);
	m->objs = xcalloc(n, sizeof(*m->objs));
	for (i = 0; i < n; i++) {
		if (o[i].key_len < m->scan_len ||
		    memcmp(o[i].key, m->scan_prefix, m->scan_len) != 0)
			return merge_fail(m,
			    "the listing returned '%.200s', "
			    "which is not under the scanned prefix '%s'",
			    o[i].key, m->scan_prefix);
		if (!in_range(
			m, o[i].key + m->cube_len, o[i].key_len - m->cube_len))
			return merge_fail(m,
			    "the listing returned '%.200s', which is outside "
			    "the shard's key range",
			    o[i].key);
		if (check_order(m, &m->last_obj, &m->have_last_obj, o[i].key,
			o[i].key_len, "the listing") != 0)
			return -1;
		m->objs[i] = o[i];
		m->objs[i].key = xstrndup(o[i].key, o[i].key_len);
		m->nobjs = i + 1;
	}
	m->objs_last = last;
	return 0;
}

int
sweep_merge_add_refs(
    struct sweep_merge *m, const struct sweep_ref *r, size_t n, int last)
{
	const char *sub = m->scan_prefix + m->cube_len;
	size_t	    sublen = m->scan_len - m->cube_len, i;

	if (m->failed)
		return -1;
	if (m->ri < m->nrefs || m->refs_last)
		return merge_fail(m, "database batch fed out of turn");
	free_refs(m);
	m->refs = xcalloc(n, sizeof(*m->refs));
	for (i = 0; i < n; i++) {
		if (check_order(m, &m->last_ref, &m->have_last_ref, r[i].key,
			r[i].key_len, "the database stream") != 0)
			return -1;
		if (!in_range(m, r[i].key, r[i].key_len))
			return merge_fail(m,
			    "the database returned '%.200s', which is outside "
			    "the shard's key range",
			    r[i].key);
		m->refs[i] = r[i];
		m->refs[i].key = xstrndup(r[i].key, r[i].key_len);
		m->nrefs = i + 1;
		if (r[i].key_len >= sublen &&
		    memcmp(r[i].key, sub, sublen) == 0)
			m->counts.db_keys++;
	}
	m->refs_last = last;
	return 0;
}

static enum sweep_reason
ref_reason(enum sweep_ref_kind k)
{
	switch (k) {
	case SWEEP_REF_KEEP:
		return SWEEP_KEEP_RETAINED;
	case SWEEP_REF_KEEP_ACTIVE:
		return SWEEP_KEEP_ACTIVE;
	case SWEEP_REF_EXPIRED_CLIP:
		return SWEEP_EXPIRED_CLIP;
	case SWEEP_REF_TEMPORARY:
		return SWEEP_TEMPORARY;
	}
	return SWEEP_KEEP_ACTIVE; /* unknown: keep */
}

static void
decide(struct sweep_merge *m, const struct sweep_object *o, enum sweep_reason r)
{
	const char *rel = o->key + m->cube_len;

	if (r >= SWEEP_FIRST_CANDIDATE &&
	    key_unsafe_reason(rel, o->key_len - m->cube_len) != NULL)
		r = SWEEP_KEEP_UNSAFE;
	if (r >= SWEEP_FIRST_CANDIDATE &&
	    o->last_modified_ms > m->young_after_ms)
		r = SWEEP_KEEP_RECENT;
	m->counts.scanned++;
	m->counts.scanned_bytes += o->size > 0 ? o->size : 0;
	m->counts.by_reason[r]++;
	if (r >= SWEEP_FIRST_CANDIDATE) {
		m->counts.candidates++;
		m->counts.candidate_bytes += o->size > 0 ? o->size : 0;
	}
	m->cb(m->arg, o, r);
}

enum sweep_step
sweep_merge_run(struct sweep_merge *m)
{
	for (;;) {
		const struct sweep_object *o;
		const char		  *rel;
		size_t			   rlen;
		int			   cmp = 1;

		if (m->failed)
			return SWEEP_FAILED;
		if (m->oi == m->nobjs) {
			if (!m->objs_last)
				return SWEEP_NEED_OBJECTS;
			/* Read the rest of the stream to count its keys. */
			if (m->ri < m->nrefs) {
				m->ri = m->nrefs;
				continue;
			}
			return m->refs_last ? SWEEP_DONE : SWEEP_NEED_REFS;
		}
		o = &m->objs[m->oi];
		rel = o->key + m->cube_len;
		rlen = o->key_len - m->cube_len;
		while (m->ri < m->nrefs &&
		    (cmp = key_cmp(m->refs[m->ri].key, m->refs[m->ri].key_len,
			 rel, rlen)) < 0)
			m->ri++;
		if (m->ri == m->nrefs && !m->refs_last)
			return SWEEP_NEED_REFS;
		if (m->ri < m->nrefs && cmp == 0) {
			m->counts.db_keys_matched++;
			decide(m, o, ref_reason(m->refs[m->ri].kind));
			m->ri++;
		} else
			decide(m, o, SWEEP_ORPHAN);
		m->oi++;
	}
}

const char *
sweep_merge_error(const struct sweep_merge *m)
{
	return m->failed ? m->err : NULL;
}

void
sweep_merge_counts(const struct sweep_merge *m, struct sweep_counts *c)
{
	*c = m->counts;
}

const char *
sweep_guard(const struct sweep_counts *c, double max_ratio, int force,
    char *buf, size_t buflen)
{
	double ratio;

	if (c->scanned > 0 && c->db_keys > 0 && c->db_keys_matched == 0) {
		snprintf(buf, buflen,
		    "key mismatch: the database refers to "
		    "%lld keys under the swept prefix but none of them is in "
		    "the listing of %lld objects; are keys stored with a "
		    "different prefix? (seed 001)",
		    (long long)c->db_keys, (long long)c->scanned);
		return buf;
	}
	if (c->scanned == 0 || force)
		return NULL;
	ratio = (double)c->candidates / (double)c->scanned;
	if (ratio > max_ratio) {
		snprintf(buf, buflen,
		    "delete ratio %.1f%% (%lld of %lld "
		    "objects) is above the %.1f%% limit; set force to run it "
		    "anyway",
		    ratio * 100.0, (long long)c->candidates,
		    (long long)c->scanned, max_ratio * 100.0);
		return buf;
	}
	return NULL;
}
