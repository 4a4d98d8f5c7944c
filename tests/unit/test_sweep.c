#include <stdlib.h>
#include <string.h>

#include "sweep.h"
#include "tap.h"

#define MAXV 4096

struct seen {
	char keys[MAXV][64];
	int  reasons[MAXV];
	int  n;
};

static void
record(void *arg, const struct sweep_object *o, enum sweep_reason r)
{
	struct seen *s = arg;

	if (s->n < MAXV) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%.*s",
		    (int)o->key_len, o->key);
		s->reasons[s->n++] = (int)r;
	}
}

static struct sweep_object
obj(const char *key, int64_t mtime)
{
	struct sweep_object o = {key, strlen(key), 100, mtime};

	return o;
}

static struct sweep_ref
ref(const char *key, enum sweep_ref_kind k)
{
	struct sweep_ref r = {key, strlen(key), k};

	return r;
}

/* Feed everything in pages of page_n and batches of batch_n. */
static enum sweep_step
drive(struct sweep_merge *m, const struct sweep_object *o, size_t no,
    const struct sweep_ref *r, size_t nr, size_t page_n, size_t batch_n)
{
	size_t		oi = 0, ri = 0;
	enum sweep_step st;

	while ((st = sweep_merge_run(m)) == SWEEP_NEED_OBJECTS ||
	    st == SWEEP_NEED_REFS) {
		if (st == SWEEP_NEED_OBJECTS) {
			size_t k = no - oi < page_n ? no - oi : page_n;
			if (sweep_merge_add_objects(
				m, o + oi, k, oi + k == no) != 0)
				return SWEEP_FAILED;
			oi += k;
		} else {
			size_t k = nr - ri < batch_n ? nr - ri : batch_n;
			if (sweep_merge_add_refs(m, r + ri, k, ri + k == nr) !=
			    0)
				return SWEEP_FAILED;
			ri += k;
		}
	}
	return st;
}

static void
test_classification(void)
{
	const struct sweep_object o[] = {
	    obj("cube/a.mp4", 1000), /* orphan */
	    obj("cube/b.mp4", 1000), /* retained clip */
	    obj("cube/c.mp4", 1000), /* expired clip */
	    obj("cube/d.mp4", 1000), /* temporary */
	    obj("cube/e.mp4", 1000), /* active */
	    obj("cube/f.mp4", 9000), /* young orphan */
	    obj("cube/g//h", 1000),  /* unsafe orphan */
	    obj("cube/h.mp4", 9000), /* young temporary */
	};
	const struct sweep_ref r[] = {
	    ref("0-not-listed", SWEEP_REF_TEMPORARY),
	    ref("b.mp4", SWEEP_REF_KEEP),
	    ref("c.mp4", SWEEP_REF_EXPIRED_CLIP),
	    ref("d.mp4", SWEEP_REF_TEMPORARY),
	    ref("e.mp4", SWEEP_REF_KEEP_ACTIVE),
	    ref("h.mp4", SWEEP_REF_TEMPORARY),
	    ref("zz-not-listed", SWEEP_REF_KEEP),
	};
	static const int want[] = {
	    SWEEP_ORPHAN,
	    SWEEP_KEEP_RETAINED,
	    SWEEP_EXPIRED_CLIP,
	    SWEEP_TEMPORARY,
	    SWEEP_KEEP_ACTIVE,
	    SWEEP_KEEP_RECENT,
	    SWEEP_KEEP_UNSAFE,
	    SWEEP_KEEP_RECENT,
	};
	size_t sizes[] = {1, 2, 3, 1000};
	size_t p, b, i;

	for (p = 0; p < nitems(sizes); p++)
		for (b = 0; b < nitems(sizes); b++) {
			static struct seen  s;
			struct sweep_merge *m;
			struct sweep_counts c;
			int		    same = 1;

			memset(&s, 0, sizeof(s));
			m = sweep_merge_new("cube/", "cube/", 5000, record, &s);
			is_int(drive(m, o, nitems(o), r, nitems(r), sizes[p],
				   sizes[b]),
			    SWEEP_DONE,
			    "merge ends (pages %zu, "
			    "batches %zu)",
			    sizes[p], sizes[b]);
			for (i = 0; i < nitems(want); i++)
				if (i >= (size_t)s.n ||
				    s.reasons[i] != want[i]) {
					same = 0;
					printf("# %s: got %s want %s\n",
					    o[i].key,
					    i < (size_t)s.n ? sweep_reason_name(
								  s.reasons[i])
							    : "nothing",
					    sweep_reason_name(want[i]));
				}
			ok(same && s.n == (int)nitems(want),
			    "every verdict "
			    "right (pages %zu, batches %zu)",
			    sizes[p], sizes[b]);
			sweep_merge_counts(m, &c);
			is_int(c.scanned, 8, "scanned");
			is_int(c.candidates, 3, "candidates");
			is_int(c.db_keys, 7, "db keys counted to the end");
			is_int(c.db_keys_matched, 5, "db keys matched");
			sweep_merge_free(m);
		}
}

static void
test_order(void)
{
	const struct sweep_object bad[] = {obj("cube/b", 0), obj("cube/a", 0)};
	const struct sweep_object dup[] = {obj("cube/a", 0), obj("cube/a", 0)};
	const struct sweep_object outside[] = {
	    obj("cube/a", 0), obj("other/b", 0)};
	const struct sweep_object good[] = {obj("cube/a", 0), obj("cube/b", 0)};
	const struct sweep_ref	  rbad[] = {ref("b", 0), ref("a", 0)};
	struct seen		 *s = calloc(1, sizeof(*s));
	struct sweep_merge	 *m;

	m = sweep_merge_new("cube/", "cube/", 0, record, s);
	is_int(drive(m, bad, 2, NULL, 0, 1000, 1000), SWEEP_FAILED,
	    "a listing out of order fails the merge");
	ok(strstr(sweep_merge_error(m), "out of order") != NULL,
	    "and says "
	    "why: %s",
	    sweep_merge_error(m));
	sweep_merge_free(m);

	s->n = 0;
	m = sweep_merge_new("cube/", "cube/", 0, record, s);
	is_int(drive(m, bad, 2, NULL, 0, 1, 1000), SWEEP_FAILED,
	    "out of order across pages fails too");
	is_int(s->n, 1, "only the object before the fault was decided");
	sweep_merge_free(m);

	m = sweep_merge_new("cube/", "cube/", 0, record, s);
	is_int(drive(m, dup, 2, NULL, 0, 1000, 1000), SWEEP_FAILED,
	    "a repeated key fails the merge");
	sweep_merge_free(m);

	m = sweep_merge_new("cube/", "cube/", 0, record, s);
	is_int(drive(m, outside, 2, NULL, 0, 1000, 1000), SWEEP_FAILED,
	    "a listed key outside the prefix fails the merge");
	ok(strstr(sweep_merge_error(m), "not under") != NULL, "and says why");
	sweep_merge_free(m);

	m = sweep_merge_new("cube/", "cube/", 0, record, s);
	is_int(drive(m, good, 2, rbad, 2, 1000, 1000), SWEEP_FAILED,
	    "a database stream out of order fails the merge");
	sweep_merge_free(m);

	m = sweep_merge_new("cube/", "cube/sub/", 0, record, s);
	is_int(drive(m, good, 2, NULL, 0, 1000, 1000), SWEEP_FAILED,
	    "a sub-prefix sweep refuses keys outside the sub-prefix");
	sweep_merge_free(m);
	free(s);
}

static void
test_byte_order(void)
{
	/* strcmp order: '+' < '-' < '/' < '0' < 'a' < 0xc3 */
	const struct sweep_object o[] = {obj("c/a", 0), obj("c/a+b", 0),
	    obj("c/a-b", 0), obj("c/a/b", 0), obj("c/a0", 0),
	    obj("c/a\xc3\xa9", 0)};
	const struct sweep_ref	  r[] = {ref("a+b", SWEEP_REF_KEEP),
	       ref("a/b", SWEEP_REF_KEEP), ref("a\xc3\xa9", SWEEP_REF_KEEP)};
	struct seen		 *s = calloc(1, sizeof(*s));
	struct sweep_merge *m = sweep_merge_new("c/", "c/", 10, record, s);
	struct sweep_counts c;

	is_int(drive(m, o, nitems(o), r, nitems(r), 2, 1), SWEEP_DONE,
	    "byte-ordered keys with + - / and UTF-8 merge");
	sweep_merge_counts(m, &c);
	is_int(c.db_keys_matched, 3, "every referenced key is matched");
	is_int(c.by_reason[SWEEP_ORPHAN], 3, "the rest are orphans");
	sweep_merge_free(m);
	free(s);
}

static void
test_range(void)
{
	const struct sweep_object o[] = {
	    obj("c/a", 0), obj("c/b", 0), obj("c/b/x", 0), obj("c/c", 0)};
	const struct sweep_object inside[] = {obj("c/b/x", 0), obj("c/c", 0)};
	const struct sweep_ref	  r[] = {ref("c", SWEEP_REF_KEEP)};
	const struct sweep_ref	  rout[] = {ref("d", SWEEP_REF_KEEP)};
	struct seen		 *s = calloc(1, sizeof(*s));
	struct sweep_merge	 *m;
	struct sweep_counts	  c;

	m = sweep_merge_new("c/", "c/", 10, record, s);
	sweep_merge_set_range(m, "b", "c");
	is_int(drive(m, inside, nitems(inside), r, nitems(r), 1, 1), SWEEP_DONE,
	    "a range (b, c]: its keys merge");
	sweep_merge_counts(m, &c);
	is_int(c.scanned, 2, "both keys in the range were scanned");
	is_int(c.db_keys_matched, 1, "the upper bound is inside the range");
	sweep_merge_free(m);

	m = sweep_merge_new("c/", "c/", 10, record, s);
	sweep_merge_set_range(m, "b", "c");
	is_int(drive(m, o, nitems(o), NULL, 0, 1000, 1000), SWEEP_FAILED,
	    "a listed key at or below the lower bound fails the merge");
	ok(strstr(sweep_merge_error(m), "outside the shard") != NULL,
	    "and says why: %s", sweep_merge_error(m));
	sweep_merge_free(m);

	m = sweep_merge_new("c/", "c/", 10, record, s);
	sweep_merge_set_range(m, NULL, "b/x");
	is_int(drive(m, o, nitems(o), NULL, 0, 1000, 1000), SWEEP_FAILED,
	    "a listed key above the upper bound fails the merge");
	sweep_merge_free(m);

	m = sweep_merge_new("c/", "c/", 10, record, s);
	sweep_merge_set_range(m, "b", NULL);
	is_int(drive(m, inside, nitems(inside), rout, nitems(rout), 1000, 1000),
	    SWEEP_DONE, "unbounded above: a database key past the last object");
	sweep_merge_free(m);

	m = sweep_merge_new("c/", "c/", 10, record, s);
	sweep_merge_set_range(m, "b", "c");
	is_int(drive(m, inside, nitems(inside), rout, nitems(rout), 1000, 1000),
	    SWEEP_FAILED, "a database key outside the range fails the merge");
	sweep_merge_free(m);
	free(s);
}

static void
test_guards(void)
{
	struct sweep_counts c;
	char		    buf[512];
	const char	   *why;

	memset(&c, 0, sizeof(c));
	c.scanned = 7000;
	c.db_keys = 5089;
	c.db_keys_matched = 0;
	c.candidates = 6892;
	why = sweep_guard(&c, 0.5, 1, buf, sizeof(buf));
	ok(why != NULL && strstr(why, "key mismatch") != NULL,
	    "seed 001: database keys none of which are listed: refused even "
	    "with force");
	c.db_keys_matched = 5000;
	why = sweep_guard(&c, 0.5, 0, buf, sizeof(buf));
	ok(why != NULL && strstr(why, "98.5%") != NULL,
	    "98%% candidates: refused (%s)", why ? why : "");
	ok(sweep_guard(&c, 0.5, 1, buf, sizeof(buf)) == NULL,
	    "98%% candidates with force: allowed");
	c.candidates = 3500;
	ok(sweep_guard(&c, 0.5, 0, buf, sizeof(buf)) == NULL,
	    "exactly 50%%: allowed");
	c.candidates = 3501;
	ok(sweep_guard(&c, 0.5, 0, buf, sizeof(buf)) != NULL,
	    "just above 50%%: refused");
	memset(&c, 0, sizeof(c));
	ok(sweep_guard(&c, 0.5, 0, buf, sizeof(buf)) == NULL,
	    "an empty prefix is not an anomaly");
	c.db_keys = 10;
	ok(sweep_guard(&c, 0.5, 0, buf, sizeof(buf)) == NULL,
	    "database keys but an empty listing: nothing to delete, no "
	    "refusal");
}

static int
ref_kind_reason(int k)
{
	static const int map[] = {SWEEP_KEEP_RETAINED, SWEEP_KEEP_ACTIVE,
	    SWEEP_EXPIRED_CLIP, SWEEP_TEMPORARY};

	return map[k];
}

/* Random sets against a direct computation, in random page sizes. */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_random(void)
{
	int round, bad = 0;

	srand(12345);
	for (round = 0; round < 200; round++) {
		char		   *keys[300], full[300][40];
		struct sweep_object o[300];
		struct sweep_ref    r[300];
		int		    inlist[300], inref[300], kinds[300];
		size_t		    n = 0, no = 0, nr = 0, i;
		struct seen	   *s = calloc(1, sizeof(*s));
		struct sweep_merge *m;

		while (n < 1 + (size_t)(rand() % 250)) {
			char k[24];
			int  len = 1 + rand() % 6, j, at = 0;
			/* Safe keys only: unsafe ones are tested above. */
			for (j = 0; j < len; j++) {
				if (rand() % 8 == 0) {
					k[at++] = '\xc3';
					k[at++] = '\xa9';
				} else
					k[at++] = "ab+-0z~ "[rand() % 8];
			}
			k[at] = '\0';
			for (i = 0; i < n; i++)
				if (strcmp(keys[i], k) == 0)
					break;
			if (i == n)
				keys[n++] = strdup(k);
		}
		qsort(keys, n, sizeof(*keys), cmp_str);
		for (i = 0; i < n; i++) {
			inlist[i] = rand() % 3 != 0;
			inref[i] = rand() % 2;
			kinds[i] = rand() % 4;
			snprintf(full[i], sizeof(full[i]), "k/%s", keys[i]);
			if (inlist[i])
				o[no++] = obj(full[i], (rand() % 2) * 100);
			if (inref[i])
				r[nr++] = ref(keys[i], kinds[i]);
		}
		m = sweep_merge_new("k/", "k/", 50, record, s);
		if (drive(m, o, no, r, nr, 1 + (size_t)(rand() % 7),
			1 + (size_t)(rand() % 7)) != SWEEP_DONE)
			bad++;
		else {
			int at = 0;
			for (i = 0; i < n; i++) {
				int want;
				if (!inlist[i])
					continue;
				want = inref[i] ? (int)ref_kind_reason(kinds[i])
						: SWEEP_ORPHAN;
				if (want >= SWEEP_FIRST_CANDIDATE &&
				    o[at].last_modified_ms > 50)
					want = SWEEP_KEEP_RECENT;
				if (at >= s->n || s->reasons[at] != want ||
				    strcmp(s->keys[at], full[i]) != 0)
					bad++;
				at++;
			}
			if (at != s->n)
				bad++;
		}
		sweep_merge_free(m);
		for (i = 0; i < n; i++)
			free(keys[i]);
		free(s);
	}
	is_int(bad, 0,
	    "200 random buckets: the merge agrees with a direct "
	    "lookup for every object");
}

int
main(void)
{
	test_classification();
	test_order();
	test_byte_order();
	test_range();
	test_guards();
	test_random();
	return tap_done();
}
