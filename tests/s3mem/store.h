/*
 * s3mem's buckets and objects, in memory.
 *
 * A bucket keeps its objects sorted by key in UTF-8 byte order (memcmp,
 * shorter first on a tie: what strcmp gives for keys without NUL), which
 * is the order S3 lists them in.  The index is a two-level sorted vector:
 * an array of chunks of at most STORE_CHUNK object pointers each, so a
 * lookup is two binary searches, an insert or delete moves at most one
 * chunk's pointers plus, when a chunk splits or empties, the chunk array
 * (n / STORE_CHUNK pointers).  Appending keys in ascending order fills
 * chunks completely, which is what bulk seeding does.
 *
 * A seeded object has a size but no body (body is NULL); its bytes read
 * back as NULs.
 */
#ifndef S3MEM_STORE_H
#define S3MEM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STORE_CHUNK 512

/* The stored bytes of an object that was PUT, and what came with them. */
struct body {
	unsigned char md5[16];
	char	     *headers; /* "name: value\n" lines to replay, or NULL */
	size_t	      len;
	char	      data[];
};

struct object {
	struct body *body; /* NULL for a seeded object */
	int64_t	     size;
	int64_t	     mtime; /* Unix seconds */
	uint32_t     keylen;
	char	     key[]; /* NUL-terminated */
};

struct store;
struct bucket;

/* A position in a bucket; valid until the bucket next changes. */
struct cursor {
	const struct bucket *bucket;
	size_t		     chunk;
	size_t		     pos;
};

struct store *store_create(void);
void	      store_free(struct store *);

/* The bucket of that name, or NULL. */
struct bucket *store_bucket(const struct store *, const char *);
/* Creates a bucket; returns 0, or 1 when it exists already. */
int    store_bucket_create(struct store *, const char *, time_t);
size_t store_bucket_count(const struct store *);
/* The i-th bucket in creation order. */
struct bucket *store_bucket_at(const struct store *, size_t);
/* Removes an empty bucket: 0, or -1 when it still holds objects. */
int store_bucket_delete(struct store *, struct bucket *);

const char *bucket_name(const struct bucket *);
time_t	    bucket_created(const struct bucket *);
size_t	    bucket_object_count(const struct bucket *);
/* Total of the objects' sizes. */
int64_t bucket_bytes(const struct bucket *);

/* A new object with no body; the caller owns it until bucket_put(). */
struct object *object_new(
    const char *key, size_t keylen, int64_t size, int64_t mtime);
void object_free(struct object *);

/* The object under key, or NULL; it belongs to the bucket. */
const struct object *bucket_get(
    const struct bucket *, const char *key, size_t keylen);
/*
 * Stores obj, which the bucket then owns, replacing and freeing any object
 * under the same key.  Returns 1 when it replaced one, 0 otherwise.
 */
int bucket_put(struct bucket *, struct object *obj);
/* Removes and frees the object under key: 1 when there was one, else 0. */
int bucket_delete(struct bucket *, const char *key, size_t keylen);

/* Positions c at the first key >= key (key may be NULL: the first). */
void bucket_seek(
    const struct bucket *, const char *key, size_t keylen, struct cursor *c);
/* The object at c, or NULL at the end. */
const struct object *cursor_object(const struct cursor *);
void		     cursor_next(struct cursor *);

/* Orders byte strings as S3 orders keys. */
int key_cmp(const char *, size_t, const char *, size_t);

#endif
