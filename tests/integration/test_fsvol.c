/*
 * The S3 client on a local volume (CLIPSWEEP_STORAGE_URL=file://): S3's
 * byte order (a directory sorts as its name and '/'), pages, start-after
 * and prefixes, HEAD, deletes, symbolic links never followed, a name that
 * is not UTF-8, a missing volume, and a client freed with work in flight.
 * Effects are checked with stat(2) and lstat(2), not through the client.
 *
 *   test_fsvol
 *
 * Works in a fresh directory under $TMPDIR, removed at the end.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "s3.h"
#include "tap.h"
#include "util.h"

#define NFLAT 2500

#define BAIL_OUT(...)                                                          \
	do {                                                                   \
		printf("Bail out! ");                                          \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
		exit(1);                                                       \
	} while (0)
#define diag(...)                                                              \
	do {                                                                   \
		printf("# ");                                                  \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
	} while (0)
#define like(got, want, ...) ok(strstr((got), (want)) != NULL, __VA_ARGS__)

static struct event_base *base;
static struct s3_client	 *s3;
static char		  top[256]; /* the temporary directory */
static char		  vol[300]; /* top/media: the volume */
static int		  pending;

/* Regular files of the volume, relative to it. */
static const char *const files[] = {
    "a",
    "a-b",
    "a.b",
    "a0",
    "b/c/d",
    "b/c/d.e",
    "b/c-d",
    "b/c0",
    "B",
    "z z",
    "caf\xc3\xa9/x+y=1.mp4",
    "up/1.mp4",
    "up/2.mp4",
    "audio/1.mp3",
    "dir/sub/deep/x",
};

static void
wait_all(void)
{
	while (pending > 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
run(const char *cmd)
{
	if (system(cmd) != 0)
		BAIL_OUT("command failed: %s", cmd);
}

static void
make_file(const char *rel, size_t size)
{
	char  path[1024], cmd[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", vol, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	run(cmd);
	if ((f = fopen(path, "w")) == NULL)
		BAIL_OUT("cannot create %s: %s", path, strerror(errno));
	while (size-- > 0)
		fputc('x', f);
	fclose(f);
}

static int
exists(const char *rel)
{
	char	    path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", vol, rel);
	return lstat(path, &st) == 0;
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Listing: every page's keys appended to got, '\n' after each. */
struct listing {
	struct buf got;
	int	   pages;
	int	   max_keys;
	char	  *prefix;
	char	   err[128];
	int	   transient;
};

static void list_next(struct listing *, const char *token);

static void
list_cb(void *arg, const struct s3_list_page *page, const struct s3_error *err)
{
	struct listing *l = arg;
	size_t		i;

	pending--;
	if (err != NULL) {
		snprintf(l->err, sizeof(l->err), "%s", err->code);
		l->transient = err->transient;
		diag("list: %s: %s", err->code, err->message);
		return;
	}
	l->pages++;
	for (i = 0; i < s3_list_page_count(page); i++) {
		const struct s3_object *o = s3_list_page_object(page, i);
		buf_add(&l->got, o->key, o->key_len);
		buf_add(&l->got, "\n", 1);
	}
	if (s3_list_page_truncated(page))
		list_next(l, s3_list_page_next_token(page));
}

static void
list_next(struct listing *l, const char *token)
{
	pending++;
	if (s3_list(s3, l->prefix, token, NULL, l->max_keys, list_cb, l) != 0)
		BAIL_OUT("s3_list refused");
}

/* All keys under prefix, in pages of max_keys, from start_after. */
static char *
list_all(const char *prefix, const char *start_after, int max_keys, int *pages,
    char *errcode)
{
	struct listing l;

	memset(&l, 0, sizeof(l));
	buf_init(&l.got);
	buf_add(&l.got, "", 0);
	l.max_keys = max_keys;
	l.prefix = xstrdup(prefix);
	pending++;
	if (s3_list(s3, prefix, NULL, start_after, max_keys, list_cb, &l) != 0)
		BAIL_OUT("s3_list refused");
	wait_all();
	if (pages != NULL)
		*pages = l.pages;
	if (errcode != NULL)
		strcpy(errcode, l.err);
	free(l.prefix);
	buf_add(&l.got, "", 1);
	return buf_steal(&l.got);
}

/* The expected listing: the files as keys, sorted with strcmp. */
static char *
expected(const char *prefix, const char *after)
{
	size_t	   n = sizeof(files) / sizeof(files[0]), i;
	char	  *keys[64];
	struct buf b;

	for (i = 0; i < n; i++)
		keys[i] = xasprintf("media/%s", files[i]);
	qsort(keys, n, sizeof(keys[0]), strp_cmp);
	buf_init(&b);
	buf_add(&b, "", 0);
	for (i = 0; i < n; i++) {
		if (strncmp(keys[i], prefix, strlen(prefix)) == 0 &&
		    (after == NULL || strcmp(keys[i], after) > 0)) {
			buf_adds(&b, keys[i]);
			buf_add(&b, "\n", 1);
		}
		free(keys[i]);
	}
	buf_add(&b, "", 1);
	return buf_steal(&b);
}

static void
check_listing(const char *prefix, const char *after, int max_keys)
{
	char *got = list_all(prefix, after, max_keys, NULL, NULL);
	char *want = expected(prefix, after);

	is_str(got, want, "prefix '%s' after '%s' in pages of %d", prefix,
	    after ? after : "(none)", max_keys);
	free(got);
	free(want);
}

/* HEAD */

struct head {
	int	found;
	int64_t size, mtime_ms;
	char	code[64];
};

static void
head_cb(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err)
{
	struct head *h = arg;

	pending--;
	h->found = found;
	if (err != NULL)
		snprintf(h->code, sizeof(h->code), "%s", err->code);
	if (found) {
		h->size = obj->size;
		h->mtime_ms = obj->last_modified_ms;
	}
}

static struct head
head(const char *key)
{
	struct head h;

	memset(&h, 0, sizeof(h));
	pending++;
	if (s3_head(s3, key, head_cb, &h) != 0)
		BAIL_OUT("s3_head refused");
	wait_all();
	return h;
}

/* DeleteObjects */

struct del {
	int  deleted[16];
	char code[16][64];
	char err[64];
};

static void
del_cb(void *arg, const struct s3_delete_result *res, size_t n,
    const struct s3_error *err)
{
	struct del *d = arg;
	size_t	    i;

	pending--;
	if (err != NULL) {
		snprintf(d->err, sizeof(d->err), "%s", err->code);
		return;
	}
	for (i = 0; i < n && i < 16; i++) {
		d->deleted[i] = res[i].deleted;
		snprintf(d->code[i], sizeof(d->code[i]), "%s",
		    res[i].code ? res[i].code : "");
	}
}

static void
del(const char *const *keys, size_t n, struct del *d)
{
	memset(d, 0, sizeof(*d));
	pending++;
	if (s3_delete_objects(s3, keys, n, del_cb, d) != 0)
		BAIL_OUT("s3_delete_objects refused");
	wait_all();
}

static void
put_cb(void *arg, const struct s3_error *err)
{
	pending--;
	*(int *)arg = err == NULL;
}

static void
cancel_cb(void *arg, const struct s3_delete_result *res, size_t n,
    const struct s3_error *err)
{
	int *told = arg;

	(*told)++;
}

static void
new_client(const char *dir)
{
	struct storage_url u;
	char		   url[512], err[256];

	snprintf(url, sizeof(url), "file://%s", dir);
	if (volume_url_parse(url, &u, err, sizeof(err)) != 0)
		BAIL_OUT("%s", err);
	s3 = s3_client_new(base, &u, NULL);
	storage_url_free(&u);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char	    cmd[1024], path[1024], errcode[64], *got;
	size_t	    i;
	int	    pages, ok;

	snprintf(top, sizeof(top), "%s/fsvol.XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(top) == NULL)
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	snprintf(vol, sizeof(vol), "%s/media", top);
	base = event_base_new();

	/* The URL: the directory's name is the prefix. */
	{
		struct storage_url u;
		char		   err[256];

		ok = volume_url_parse(
			 "file:///srv/app/media/", &u, err, sizeof(err)) == 0;
		is_int(ok, 1, "file:///srv/app/media/ parses");
		if (ok) {
			is_str(u.volume, "/srv/app/media", "the volume");
			is_str(u.prefix, "media/", "its name is the prefix");
			storage_url_free(&u);
		}
		is_int(volume_url_parse("file:///", &u, err, sizeof(err)), -1,
		    "file:/// is refused");
		like(err, "directory below /", "naming why");
		is_int(volume_url_parse(
			   "file:///srv/../etc", &u, err, sizeof(err)),
		    -1, "a path with .. is refused");
		is_int(volume_url_parse(
			   "file://nas/srv/media", &u, err, sizeof(err)),
		    -1, "a remote host is refused");
		like(err, "must be local", "naming why");
	}

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		make_file(files[i], i * 10);
	/* Not objects: links (to a file outside, to a directory), a FIFO,
	 * an empty directory. */
	snprintf(path, sizeof(path), "%s/outside.txt", top);
	make_file("../outside.txt", 5);
	snprintf(cmd, sizeof(cmd),
	    "cd '%s' && ln -s ../outside.txt link && ln -s b linkdir && "
	    "ln -s ../outside.txt up/3.mp4 && mkfifo fifo && mkdir empty",
	    vol);
	run(cmd);
	new_client(vol);

	/* Listing order and pages. */
	check_listing("media/", NULL, 1000);
	check_listing("media/", NULL, 1);
	check_listing("media/", NULL, 3);
	check_listing("media/a", NULL, 2);
	check_listing("media/b/", NULL, 1000);
	check_listing("media/b/c", NULL, 2);
	check_listing("media/up/", NULL, 1000);
	check_listing("media/", "media/a.b", 2);
	check_listing("media/", "media/b/", 2);
	check_listing("media/", "media/b/c/d", 1000);
	check_listing("media/", "media/b", 1000);
	check_listing("media/", "media/dir/sub/deep/x", 1000);
	check_listing("media/", "media/z z", 1000);
	check_listing("media/nothing/", NULL, 1000);
	got = list_all("media/", "zzz", 10, NULL, NULL);
	is_str(got, "", "start-after past the volume: nothing");
	free(got);
	got = list_all("media/", "a", 10, NULL, NULL);
	free(got);

	/* A large directory, in pages of 1000. */
	for (i = 0; i < NFLAT; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "flat/%05zu", (i * 7919) % NFLAT);
		make_file(rel, 0);
	}
	got = list_all("media/flat/", NULL, 1000, &pages, NULL);
	{
		struct buf want;
		buf_init(&want);
		buf_add(&want, "", 0);
		for (i = 0; i < NFLAT; i++)
			buf_addf(&want, "media/flat/%05zu\n", i);
		buf_add(&want, "", 1);
		is_str(got, want.data, "%d files in one directory, in order",
		    NFLAT);
		buf_free(&want);
	}
	is_int(pages, 3, "in three pages");
	free(got);

	/* HEAD */
	{
		struct head h = head("media/b/c/d");
		struct stat st;

		snprintf(path, sizeof(path), "%s/b/c/d", vol);
		stat(path, &st);
		is_int(h.found, 1, "HEAD of a file: found");
		is_int((int)h.size, 40, "its size");
		is_int(
		    h.mtime_ms / 1000 == (int64_t)st.st_mtime, 1, "its mtime");
		/* Placed a moment ago with an old mtime (rsync -a, cp -p):
		 * its age is its ctime's, so it still counts as new. */
		{
			struct timespec ts[2] = {
			    {time(NULL) - 864000, 0}, {time(NULL) - 864000, 0}};
			utimensat(AT_FDCWD, path, ts, 0);
		}
		h = head("media/b/c/d");
		is_int(h.mtime_ms / 1000 >= (int64_t)time(NULL) - 60, 1,
		    "an old mtime on a new file: its age is its ctime's");
		h = head("media/nope");
		is_int(h.found, 0, "HEAD of a missing file: not found");
		is_str(h.code, "", "without an error");
		h = head("media/link");
		is_int(h.found, 0, "HEAD of a symbolic link: not an object");
		h = head("media/linkdir/c/d");
		is_int(
		    h.found, 0, "HEAD through a linked directory: not found");
		h = head("media/b/c");
		is_int(h.found, 0, "HEAD of a directory: not an object");
		h = head("media/fifo");
		is_int(h.found, 0, "HEAD of a FIFO: not an object");
		h = head("other/x");
		is_str(h.code, "outside_prefix",
		    "HEAD outside the volume: refused");
	}

	/* Deletes */
	{
		const char *keys[] = {"media/a", "media/nope", "media/link",
		    "media/linkdir/c/d", "media/b", "media/up/3.mp4",
		    "media/fifo", "media/up/1.mp4"};
		struct del  d;

		del(keys, 8, &d);
		is_str(d.err, "", "DeleteObjects of 8 keys: answered");
		is_int(d.deleted[0] && !exists("a"), 1, "a file: removed");
		is_int(d.deleted[1], 1,
		    "a missing key counts as deleted, as in S3");
		is_int(!d.deleted[2] && exists("link"), 1,
		    "a symbolic link: not removed");
		is_str(d.code[2], "ELOOP", "with ELOOP");
		is_int(exists("b/c/d"), 1,
		    "a file behind a linked directory: not removed");
		is_int(!d.deleted[4] && exists("b/c/d.e"), 1,
		    "a directory: not removed");
		is_str(d.code[4], "EISDIR", "with EISDIR");
		is_int(!d.deleted[5] && exists("up/3.mp4"), 1,
		    "a link named like an object: not removed");
		snprintf(path, sizeof(path), "%s/outside.txt", top);
		is_int(
		    access(path, F_OK), 0, "the file it points to is intact");
		is_int(
		    !d.deleted[6] && exists("fifo"), 1, "a FIFO: not removed");
		is_int(d.deleted[7] && !exists("up/1.mp4"), 1,
		    "a file in another directory: removed");
		is_int(exists("up/2.mp4"), 1, "its neighbour: kept");
	}
	{
		const char *keys[] = {"media/b/c0", "media/../outside.txt"};
		struct del  d;

		del(keys, 2, &d);
		is_str(d.err, "unsafe_key",
		    "a batch with a .. key is refused whole");
		is_int(exists("b/c0"), 1, "and nothing in it is removed");
	}

	/* PUT */
	pending++;
	ok = 0;
	if (s3_put(s3, "media/new/dir/f.txt", "hello", 5, NULL, put_cb, &ok) !=
	    0)
		BAIL_OUT("s3_put refused");
	wait_all();
	is_int(ok && head("media/new/dir/f.txt").size == 5, 1,
	    "PUT makes the directories and the file");

	/* A name that is not UTF-8 cannot be a key: the listing fails. */
	make_file("bad/\xff.bin", 1);
	got = list_all("media/", NULL, 1000, NULL, errcode);
	is_str(errcode, "EILSEQ", "a name that is not UTF-8 fails the listing");
	free(got);
	got = list_all("media/up/", NULL, 1000, NULL, errcode);
	is_str(errcode, "", "a listing that does not reach it is fine");
	free(got);

	/* Freed with work in flight: each callback once, cancelled or
	 * answered, none afterwards. */
	{
		const char *keys[] = {"media/up/2.mp4"};
		int	    told = 0;

		for (i = 0; i < 40; i++)
			if (s3_delete_objects(s3, keys, 1, cancel_cb, &told) !=
			    0)
				BAIL_OUT("s3_delete_objects refused");
		s3_client_free(s3);
		is_int(told, 40, "freed with 40 deletes out: 40 callbacks");
		event_base_loop(base, EVLOOP_NONBLOCK);
		is_int(told, 40, "and none after");
	}

	/* A volume that is not there (not mounted): a transient failure. */
	snprintf(path, sizeof(path), "%s/absent", top);
	new_client(path);
	{
		struct listing l;
		memset(&l, 0, sizeof(l));
		buf_init(&l.got);
		l.max_keys = 10;
		l.prefix = xstrdup("absent/");
		list_next(&l, NULL);
		wait_all();
		is_str(l.err, "ENOENT", "listing a missing volume fails");
		is_int(l.transient, 1, "transiently (it may be mounted later)");
		struct head h = head("absent/x");
		is_str(h.code, "ENOENT",
		    "HEAD on a missing volume fails, not 'not found'");
		const char *keys[] = {"absent/x"};
		struct del  d;
		del(keys, 1, &d);
		is_str(d.err, "ENOENT",
		    "a delete on a missing volume fails, not 'deleted'");
		free(l.prefix);
		buf_free(&l.got);
	}
	s3_client_free(s3);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	run(cmd);
	event_base_free(base);
	return tap_done();
}
