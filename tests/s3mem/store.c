/*
 * Buckets and the two-level sorted index described in store.h.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"

struct chunk {
	size_t	       n;
	struct object *obj[STORE_CHUNK];
};

struct bucket {
	char	      *name;
	time_t	       created;
	struct chunk **chunks;
	size_t	       nchunks;
	size_t	       capchunks;
	size_t	       nobjects;
	int64_t	       bytes;
};

struct store {
	struct bucket **buckets;
	size_t		nbuckets;
};

int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c;

	if ((c = memcmp(a, b, alen < blen ? alen : blen)) != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int
obj_cmp(const struct object *o, const char *key, size_t keylen)
{
	return key_cmp(o->key, o->keylen, key, keylen);
}

struct object *
object_new(const char *key, size_t keylen, int64_t size, int64_t mtime)
{
	struct object *o;

	o = xmalloc(sizeof(*o) + keylen + 1);
	o->body = NULL;
	o->size = size;
	o->mtime = mtime;
	o->keylen = (uint32_t)keylen;
	memcpy(o->key, key, keylen);
	o->key[keylen] = '\0';
	return o;
}

void
object_free(struct object *o)
{
	if (o == NULL)
		return;
	if (o->body != NULL)
		free(o->body->headers);
	free(o->body);
	free(o);
}

struct store *
store_create(void)
{
	return xcalloc(1, sizeof(struct store));
}

static void
bucket_free(struct bucket *b)
{
	size_t i, j;

	for (i = 0; i < b->nchunks; i++) {
		for (j = 0; j < b->chunks[i]->n; j++)
			object_free(b->chunks[i]->obj[j]);
		free(b->chunks[i]);
	}
	free(b->chunks);
	free(b->name);
	free(b);
}

void
store_free(struct store *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nbuckets; i++)
		bucket_free(s->buckets[i]);
	free(s->buckets);
	free(s);
}

struct bucket *
store_bucket(const struct store *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nbuckets; i++)
		if (strcmp(s->buckets[i]->name, name) == 0)
			return s->buckets[i];
	return NULL;
}

int
store_bucket_create(struct store *s, const char *name, time_t now)
{
	struct bucket *b;

	if (store_bucket(s, name) != NULL)
		return 1;
	b = xcalloc(1, sizeof(*b));
	b->name = xstrdup(name);
	b->created = now;
	s->buckets = xrealloc(
	    s->buckets, (s->nbuckets + 1) * sizeof(*s->buckets));
	s->buckets[s->nbuckets++] = b;
	return 0;
}

size_t
store_bucket_count(const struct store *s)
{
	return s->nbuckets;
}

struct bucket *
store_bucket_at(const struct store *s, size_t i)
{
	return i < s->nbuckets ? s->buckets[i] : NULL;
}

int
store_bucket_delete(struct store *s, struct bucket *b)
{
	size_t i;

	if (b->nobjects > 0)
		return -1;
	for (i = 0; i < s->nbuckets; i++)
		if (s->buckets[i] == b)
			break;
	if (i == s->nbuckets)
		return -1;
	memmove(&s->buckets[i], &s->buckets[i + 1],
	    (s->nbuckets - i - 1) * sizeof(*s->buckets));
	s->nbuckets--;
	bucket_free(b);
	return 0;
}

const char *
bucket_name(const struct bucket *b)
{
	return b->name;
}

time_t
bucket_created(const struct bucket *b)
{
	return b->created;
}

size_t
bucket_object_count(const struct bucket *b)
{
	return b->nobjects;
}

int64_t
bucket_bytes(const struct bucket *b)
{
	return b->bytes;
}

/* The first chunk whose last key is >= key; nchunks when there is none. */
static size_t
find_chunk(const struct bucket *b, const char *key, size_t keylen)
{
	const struct chunk *c;
	size_t		    lo = 0, hi = b->nchunks, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = b->chunks[mid];
		if (obj_cmp(c->obj[c->n - 1], key, keylen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first slot of c whose key is >= key. */
static size_t
find_slot(const struct chunk *c, const char *key, size_t keylen)
{
	size_t lo = 0, hi = c->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (obj_cmp(c->obj[mid], key, keylen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
bucket_seek(
    const struct bucket *b, const char *key, size_t keylen, struct cursor *cur)
{
	cur->bucket = b;
	cur->chunk = 0;
	cur->pos = 0;
	if (key == NULL)
		return;
	cur->chunk = find_chunk(b, key, keylen);
	if (cur->chunk < b->nchunks)
		cur->pos = find_slot(b->chunks[cur->chunk], key, keylen);
}

const struct object *
cursor_object(const struct cursor *cur)
{
	const struct bucket *b = cur->bucket;

	if (cur->chunk >= b->nchunks)
		return NULL;
	return b->chunks[cur->chunk]->obj[cur->pos];
}

void
cursor_next(struct cursor *cur)
{
	const struct bucket *b = cur->bucket;

	if (cur->chunk >= b->nchunks)
		return;
	if (++cur->pos >= b->chunks[cur->chunk]->n) {
		cur->chunk++;
		cur->pos = 0;
	}
}

const struct object *
bucket_get(const struct bucket *b, const char *key, size_t keylen)
{
	struct cursor	     cur;
	const struct object *o;

	bucket_seek(b, key, keylen, &cur);
	o = cursor_object(&cur);
	if (o == NULL || obj_cmp(o, key, keylen) != 0)
		return NULL;
	return o;
}

/* Makes room for a chunk at index i of the chunk array. */
static struct chunk *
insert_chunk(struct bucket *b, size_t i)
{
	struct chunk *c;

	if (b->nchunks == b->capchunks) {
		b->capchunks = b->capchunks == 0 ? 16 : b->capchunks * 2;
		b->chunks = xrealloc(
		    b->chunks, b->capchunks * sizeof(*b->chunks));
	}
	memmove(&b->chunks[i + 1], &b->chunks[i],
	    (b->nchunks - i) * sizeof(*b->chunks));
	c = xmalloc(sizeof(*c));
	c->n = 0;
	b->chunks[i] = c;
	b->nchunks++;
	return c;
}

static void
remove_chunk(struct bucket *b, size_t i)
{
	free(b->chunks[i]);
	memmove(&b->chunks[i], &b->chunks[i + 1],
	    (b->nchunks - i - 1) * sizeof(*b->chunks));
	b->nchunks--;
}

/* Splits full chunk ci in two halves; returns the index of the second. */
static size_t
split_chunk(struct bucket *b, size_t ci)
{
	struct chunk *c = b->chunks[ci], *d;
	size_t	      half = c->n / 2;

	d = insert_chunk(b, ci + 1);
	d->n = c->n - half;
	memcpy(d->obj, &c->obj[half], d->n * sizeof(d->obj[0]));
	c->n = half;
	return ci + 1;
}

static void
chunk_insert(struct chunk *c, size_t pos, struct object *o)
{
	memmove(
	    &c->obj[pos + 1], &c->obj[pos], (c->n - pos) * sizeof(c->obj[0]));
	c->obj[pos] = o;
	c->n++;
}

/* Appends a key greater than every key present (the seeding fast path). */
static void
append_object(struct bucket *b, struct object *o)
{
	struct chunk *c = NULL;

	if (b->nchunks > 0)
		c = b->chunks[b->nchunks - 1];
	if (c == NULL || c->n == STORE_CHUNK)
		c = insert_chunk(b, b->nchunks);
	c->obj[c->n++] = o;
}

static void
insert_new(struct bucket *b, size_t ci, struct object *o)
{
	struct chunk *c;
	size_t	      pos;

	if (ci == b->nchunks) {
		append_object(b, o);
		return;
	}
	c = b->chunks[ci];
	if (c->n == STORE_CHUNK) {
		ci = split_chunk(b, ci);
		if (obj_cmp(b->chunks[ci]->obj[0], o->key, o->keylen) > 0)
			ci--;
		c = b->chunks[ci];
	}
	pos = find_slot(c, o->key, o->keylen);
	chunk_insert(c, pos, o);
}

int
bucket_put(struct bucket *b, struct object *o)
{
	const struct chunk *last;
	struct chunk	   *c;
	size_t		    ci, pos;

	b->bytes += o->size;
	if (b->nchunks > 0) {
		last = b->chunks[b->nchunks - 1];
		if (obj_cmp(last->obj[last->n - 1], o->key, o->keylen) < 0) {
			append_object(b, o);
			b->nobjects++;
			return 0;
		}
	}
	ci = find_chunk(b, o->key, o->keylen);
	if (ci < b->nchunks) {
		c = b->chunks[ci];
		pos = find_slot(c, o->key, o->keylen);
		if (pos < c->n &&
		    obj_cmp(c->obj[pos], o->key, o->keylen) == 0) {
			b->bytes -= c->obj[pos]->size;
			object_free(c->obj[pos]);
			c->obj[pos] = o;
			return 1;
		}
	}
	insert_new(b, ci, o);
	b->nobjects++;
	return 0;
}

/*
 * Folds chunk ci+1 into ci when both are at most a quarter full, so that a
 * bucket emptied by deletes does not keep many nearly empty chunks.
 */
static void
maybe_merge(struct bucket *b, size_t ci)
{
	struct chunk *c, *d;

	if (ci + 1 >= b->nchunks)
		return;
	c = b->chunks[ci];
	d = b->chunks[ci + 1];
	if (c->n > STORE_CHUNK / 4 || d->n > STORE_CHUNK / 4)
		return;
	memcpy(&c->obj[c->n], d->obj, d->n * sizeof(d->obj[0]));
	c->n += d->n;
	remove_chunk(b, ci + 1);
}

int
bucket_delete(struct bucket *b, const char *key, size_t keylen)
{
	struct chunk *c;
	size_t	      ci, pos;

	ci = find_chunk(b, key, keylen);
	if (ci == b->nchunks)
		return 0;
	c = b->chunks[ci];
	pos = find_slot(c, key, keylen);
	if (pos == c->n || obj_cmp(c->obj[pos], key, keylen) != 0)
		return 0;
	b->bytes -= c->obj[pos]->size;
	object_free(c->obj[pos]);
	memmove(&c->obj[pos], &c->obj[pos + 1],
	    (c->n - pos - 1) * sizeof(c->obj[0]));
	c->n--;
	b->nobjects--;
	if (c->n == 0)
		remove_chunk(b, ci);
	else {
		maybe_merge(b, ci);
		if (ci > 0)
			maybe_merge(b, ci - 1);
	}
	return 1;
}
