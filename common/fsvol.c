/*
 * The local-volume transport: S3's four operations on a directory tree.
 *
 * Listing is in S3's byte order, where a directory sorts as its name and
 * '/': each directory's entries are read once, with that '/' appended to
 * the directories' names, sorted with strcmp() and kept for FS_DIR_TTL
 * seconds, so that the later pages of one listing continue from a binary
 * search instead of rereading a large directory.  A listing's first page
 * reads afresh every directory it enters; a later page may use a
 * directory read earlier, so it can only miss files created since (they
 * are new, so never deleted) or name files gone since (skipped: every
 * listed file is looked at with fstatat() before it is reported).
 *
 * An object's age is the later of its mtime and ctime: rsync -a, cp -p,
 * tar and touch -d set an old mtime on a file placed a moment ago, and the
 * sweep's guard for recent objects must still see it as new.  A directory
 * on another filesystem (a mount point inside the volume) is not part of
 * the volume: it is neither walked nor reached, like a symbolic link.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fsvol.h"
#include "log.h"
#include "util.h"

#define FS_THREADS    4
#define FS_DIR_TTL    30 /* seconds a directory's sorted names are kept */
#define FS_DIR_CACHED 32 /* directories kept */

/* One directory's names, sorted as keys; immutable once made. */
struct fs_dir {
	char	 *path; /* relative to the root: "" or "up/" */
	char	 *names;
	uint32_t *off; /* sorted offsets into names */
	size_t	  n;
	time_t	  loaded;
	uint64_t  gen; /* v->gen when it was read */
	int	  refs;
	TAILQ_ENTRY(fs_dir) lru;
};

TAILQ_HEAD(fs_req_list, fs_req);
TAILQ_HEAD(fs_dir_list, fs_dir);

struct fsvol {
	char		  *root;
	char		  *prefix;
	size_t		   plen;
	struct event	  *ev;
	int		   wake[2];
	pthread_mutex_t	   mu;
	pthread_cond_t	   cv;
	struct fs_req_list todo;
	struct fs_req_list done;
	struct fs_dir_list dirs; /* most recent first */
	size_t		   ndirs;
	uint64_t	   gen; /* listings begun */
	pthread_t	   th[FS_THREADS];
	int		   nth;
	int		   stop;
};

void
fs_req_free(struct fs_req *r)
{
	size_t i;

	if (r == NULL)
		return;
	free(r->key);
	for (i = 0; i < r->nkeys; i++)
		free(r->keys[i]);
	free(r->keys);
	free(r->prefix);
	free(r->after);
	free(r->body);
	free(r->err_path);
	free(r->objs);
	free(r->names);
	free(r->errs);
	free(r);
}

static void
fs_fail(struct fs_req *r, int err, const char *call, const char *path)
{
	r->err = err;
	r->err_call = call;
	free(r->err_path);
	r->err_path = xstrdup(path[0] != '\0' ? path : ".");
	utf8_sanitize(r->err_path); /* names go into results and logs */
	for (char *p = r->err_path; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* Age: the later of mtime and ctime (see the top of this file). */
static int64_t
fs_age_ms(const struct stat *st)
{
	const struct timespec *t = &st->st_mtim;

	if (st->st_ctim.tv_sec > t->tv_sec ||
	    (st->st_ctim.tv_sec == t->tv_sec &&
		st->st_ctim.tv_nsec > t->tv_nsec))
		t = &st->st_ctim;
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* A directory just opened: on the volume's filesystem, or EXDEV. */
static int
fs_same_dev(int fd, dev_t dev)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -errno;
	return st.st_dev == dev ? 0 : -EXDEV;
}

/*
 * The directory part of rel, opened below the root without following a
 * symbolic link or leaving the root's filesystem; *base is the last
 * component.  -errno on failure: ELOOP when a component is a symbolic
 * link, ENOTDIR when it is a file, EXDEV when it is another filesystem;
 * then *base is NULL if the root itself could not be opened (the volume
 * is missing: that is no answer about any key).  create makes missing
 * directories (PUT only).
 */
static int
fs_open_parent(
    const struct fsvol *v, const char *rel, int create, const char **base)
{
	const char *p = rel, *slash;
	char	    name[NAME_MAX + 1];
	struct stat st;
	int	    fd, nfd, e;

	*base = NULL;
	if ((fd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		e = errno;
		close(fd);
		return -e;
	}
	*base = p;
	while ((slash = strchr(p, '/')) != NULL) {
		size_t n = (size_t)(slash - p);

		if (n == 0 || n > NAME_MAX) {
			close(fd);
			return -ENOENT;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		nfd = openat(
		    fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create &&
		    mkdirat(fd, name, 0755) == 0)
			nfd = openat(fd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		e = nfd < 0 ? errno : -fs_same_dev(nfd, st.st_dev);
		close(fd);
		if (e != 0) {
			if (nfd >= 0)
				close(nfd);
			return -e;
		}
		fd = nfd;
		p = slash + 1;
	}
	*base = p;
	return fd;
}

/* What stands between a key and an object: nothing there at all. */
static int
fs_absent(int e)
{
	return e == ENOENT || e == ENOTDIR || e == ELOOP || e == EXDEV;
}

static void
fs_head(struct fsvol *v, struct fs_req *r)
{
	const char *rel = r->key + v->plen, *base;
	struct stat st;
	int	    fd;

	if ((fd = fs_open_parent(v, rel, 0, &base)) < 0) {
		if (base == NULL)
			fs_fail(r, -fd, "open", "");
		else if (!fs_absent(-fd))
			fs_fail(r, -fd, "openat", rel);
		return;
	}
	if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (!fs_absent(errno))
			fs_fail(r, errno, "fstatat", rel);
	} else if (S_ISREG(st.st_mode)) {
		r->found = 1;
		r->size = (int64_t)st.st_size;
		r->mtime_ms = fs_age_ms(&st);
	}
	close(fd);
}

static void
fs_put(struct fsvol *v, struct fs_req *r)
{
	const char *rel = r->key + v->plen, *base;
	size_t	    done = 0;
	ssize_t	    n;
	struct stat st;
	int	    dfd, fd, e;

	if ((dfd = fs_open_parent(v, rel, 1, &base)) < 0) {
		fs_fail(r, -dfd, "openat", rel);
		return;
	}
	/* Never a FIFO's endless wait, nor through a link. */
	fd = openat(dfd, base,
	    O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
	e = errno;
	close(dfd);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    ftruncate(fd, 0) != 0) {
		fs_fail(r,
		    fd < 0		      ? e
			: S_ISREG(st.st_mode) ? errno
					      : EISDIR,
		    "openat", rel);
		if (fd >= 0)
			close(fd);
		return;
	}
	while (done < r->len) {
		if ((n = write(fd, r->body + done, r->len - done)) < 0) {
			if (errno == EINTR)
				continue;
			fs_fail(r, errno, "write", rel);
			break;
		}
		done += (size_t)n;
	}
	if (close(fd) != 0 && r->err == 0)
		fs_fail(r, errno, "close", rel);
}

/*
 * Each key in turn; keys in one directory share its descriptor.  A key
 * that is not there counts as removed, as with S3; one that is there but
 * not a regular file is left, with EISDIR or ELOOP.
 */
static void
fs_delete(struct fsvol *v, struct fs_req *r)
{
	char	   *dir = NULL;
	size_t	    dirlen = 0, i;
	const char *base;
	struct stat st;
	int	    fd = -1;

	r->errs = xcalloc(r->nkeys, sizeof(*r->errs));
	for (i = 0; i < r->nkeys; i++) {
		const char *rel = r->keys[i] + v->plen;
		const char *slash = strrchr(rel, '/');
		size_t	    n = slash != NULL ? (size_t)(slash - rel) + 1 : 0;

		if (fd < 0 || n != dirlen || memcmp(rel, dir, n) != 0) {
			if (fd >= 0)
				close(fd);
			free(dir);
			dir = xstrndup(rel, n);
			dirlen = n;
			fd = fs_open_parent(v, rel, 0, &base);
			if (fd < 0 && base == NULL) { /* no volume: no answer */
				fs_fail(r, -fd, "open", "");
				break;
			}
		}
		base = rel + n;
		if (fd < 0) {
			r->errs[i] = fs_absent(-fd) ? 0 : -fd;
			continue;
		}
		if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
			r->errs[i] = fs_absent(errno) ? 0 : errno;
		else if (S_ISLNK(st.st_mode))
			r->errs[i] = ELOOP;
		else if (!S_ISREG(st.st_mode))
			r->errs[i] = EISDIR;
		else if (unlinkat(fd, base, 0) != 0)
			r->errs[i] = fs_absent(errno) ? 0 : errno;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
}

static void fs_dir_drop(struct fs_dir *);

static int
fs_name_cmp(const void *a, const void *b, void *names)
{
	return strcmp((const char *)names + *(const uint32_t *)a,
	    (const char *)names + *(const uint32_t *)b);
}

/*
 * Read the directory open on fd (its path relative to the root is path):
 * regular files by name, directories by name and '/', nothing else.  A
 * name that is not UTF-8 cannot be a key: the listing fails, naming it.
 */
static struct fs_dir *
fs_dir_read(int fd, const char *path, struct fs_req *r)
{
	struct fs_dir *d;
	struct dirent *de;
	struct buf     names;
	size_t	       cap = 0, len, i;
	DIR	      *dp;
	int	       dfd;

	if ((dfd = dup(fd)) < 0 || (dp = fdopendir(dfd)) == NULL) {
		fs_fail(r, errno, "opendir", path);
		if (dfd >= 0)
			close(dfd);
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->path = xstrdup(path);
	buf_init(&names);
	for (;;) {
		int isdir;

		errno = 0;
		if ((de = readdir(dp)) == NULL) {
			if (errno != 0)
				fs_fail(r, errno, "readdir", path);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			    0) {
				if (errno == ENOENT)
					continue; /* gone */
				fs_fail(r, errno, "fstatat", path);
				break;
			}
			isdir = S_ISDIR(st.st_mode);
			if (!isdir && !S_ISREG(st.st_mode))
				continue;
		} else if (de->d_type == DT_DIR)
			isdir = 1;
		else if (de->d_type == DT_REG)
			isdir = 0;
		else
			continue; /* a symbolic link, a socket, ... */
		if (!utf8_valid(de->d_name, strlen(de->d_name))) {
			char *where = xasprintf("%s%s", path, de->d_name);
			utf8_sanitize(where);
			fs_fail(r, EILSEQ, "readdir", where);
			free(where);
			break;
		}
		if (names.len > UINT32_MAX - 2 * NAME_MAX) {
			fs_fail(r, EOVERFLOW, "readdir", path);
			break;
		}
		if (d->n == cap) {
			cap = cap ? cap * 2 : 64;
			d->off = xrealloc(d->off, cap * sizeof(*d->off));
		}
		d->off[d->n++] = (uint32_t)names.len;
		buf_adds(&names, de->d_name);
		if (isdir)
			buf_add(&names, "/", 1);
		buf_add(&names, "", 1);
	}
	closedir(dp);
	/* Kept for a while: no slack. */
	len = names.len;
	d->names = xrealloc(buf_steal(&names), len > 0 ? len : 1);
	if (d->n > 0)
		d->off = xrealloc(d->off, d->n * sizeof(*d->off));
	if (r->err != 0) {
		free(d->path);
		free(d->names);
		free(d->off);
		free(d);
		return NULL;
	}
	if (d->n > 1)
		qsort_r(d->off, d->n, sizeof(*d->off), fs_name_cmp, d->names);
	/* A name read twice (a directory changing under readdir, on NFS or
	 * FUSE) would list a key twice: read it again later. */
	for (i = 1; i < d->n && r->err == 0; i++)
		if (strcmp(d->names + d->off[i - 1], d->names + d->off[i]) >= 0)
			fs_fail(r, EAGAIN, "readdir", path);
	if (r->err != 0) {
		fs_dir_drop(d);
		return NULL;
	}
	d->loaded = time(NULL);
	return d;
}

static void
fs_dir_drop(struct fs_dir *d)
{
	free(d->path);
	free(d->names);
	free(d->off);
	free(d);
}

static void
fs_dir_put(struct fsvol *v, struct fs_dir *d)
{
	int last;

	pthread_mutex_lock(&v->mu);
	last = --d->refs == 0 && d->loaded == 0; /* 0: evicted */
	pthread_mutex_unlock(&v->mu);
	if (last)
		fs_dir_drop(d);
}

/* Evict d from the cache (under mu); freed now or by its last user. */
static void
fs_dir_evict(struct fsvol *v, struct fs_dir *d)
{
	TAILQ_REMOVE(&v->dirs, d, lru);
	v->ndirs--;
	d->loaded = 0;
	if (d->refs == 0)
		fs_dir_drop(d);
}

/*
 * The sorted names of the directory open on fd: from the cache if read
 * within FS_DIR_TTL and at or after listing generation min_gen.
 */
static struct fs_dir *
fs_dir_get(struct fsvol *v, int fd, const char *path, uint64_t min_gen,
    struct fs_req *r)
{
	struct fs_dir *d, *next;
	time_t	       now = time(NULL);
	uint64_t       gen;

	pthread_mutex_lock(&v->mu);
	for (d = TAILQ_FIRST(&v->dirs); d != NULL; d = next) {
		next = TAILQ_NEXT(d, lru);
		if (now - d->loaded >= FS_DIR_TTL ||
		    (d->gen < min_gen && strcmp(d->path, path) == 0)) {
			fs_dir_evict(v, d);
			continue;
		}
		if (strcmp(d->path, path) == 0) {
			TAILQ_REMOVE(&v->dirs, d, lru);
			TAILQ_INSERT_HEAD(&v->dirs, d, lru);
			d->refs++;
			pthread_mutex_unlock(&v->mu);
			return d;
		}
	}
	gen = v->gen;
	pthread_mutex_unlock(&v->mu);
	if ((d = fs_dir_read(fd, path, r)) == NULL)
		return NULL;
	d->refs = 1;
	d->gen = gen;
	pthread_mutex_lock(&v->mu);
	TAILQ_INSERT_HEAD(&v->dirs, d, lru);
	if (++v->ndirs > FS_DIR_CACHED)
		fs_dir_evict(v, TAILQ_LAST(&v->dirs, fs_dir_list));
	pthread_mutex_unlock(&v->mu);
	return d;
}

struct fs_lister {
	struct fsvol  *v;
	struct fs_req *r;
	const char    *prefix; /* relative */
	size_t	       plen;
	const char    *after; /* relative, "" for none */
	const char    *from;  /* the greater of prefix and after */
	uint64_t       min_gen;
	dev_t	       dev;  /* the root's filesystem */
	size_t	      *koff; /* key offsets into keys */
	struct buf     keys;
	size_t	       cap;
};

#define FS_WALK_MORE 0
#define FS_WALK_DONE 1
#define FS_WALK_FAIL 2

/* First entry of d that can hold a key at or after from (relative). */
static size_t
fs_dir_start(const struct fs_dir *d, const char *from)
{
	size_t lo = 0, hi = d->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(d->names + d->off[mid], from) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* The directory holding from sorts just before it. */
	if (lo > 0) {
		const char *e = d->names + d->off[lo - 1];
		size_t	    n = strlen(e);
		if (e[n - 1] == '/' && strncmp(from, e, n) == 0)
			lo--;
	}
	return lo;
}

static int
fs_walk(struct fs_lister *l, int fd, char *path)
{
	struct fs_req *r = l->r;
	struct fs_dir *d;
	size_t	       plen = strlen(path), i;
	int	       rc = FS_WALK_MORE;

	if ((d = fs_dir_get(l->v, fd, path, l->min_gen, r)) == NULL)
		return FS_WALK_FAIL;
	i = strncmp(l->from, path, plen) == 0 ? fs_dir_start(d, l->from + plen)
					      : 0;
	for (; i < d->n && rc == FS_WALK_MORE; i++) {
		const char *name = d->names + d->off[i];
		size_t	    nlen = strlen(name);
		int	    isdir = name[nlen - 1] == '/';
		char	   *key = xasprintf("%s%s", path, name);
		size_t	    klen = plen + nlen;
		size_t	    m = klen < l->plen ? klen : l->plen;
		int	    c = memcmp(key, l->prefix, m);

		if (c > 0) { /* past the prefix: so is every later entry */
			free(key);
			break;
		}
		if (c < 0 || (!isdir && klen < l->plen)) {
			free(key);
			continue;
		}
		if (isdir) {
			/* Skip a directory wholly at or before after. */
			if (strncmp(l->after, key, klen) != 0 &&
			    strcmp(key, l->after) < 0) {
				free(key);
				continue;
			}
			char *dname = xstrndup(name, nlen - 1);
			int   cfd = openat(fd, dname,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd >= 0 && fs_same_dev(cfd, l->dev) != 0) {
				close(cfd); /* a mount point: not the volume */
				cfd = -1;
				errno = EXDEV;
			}
			if (cfd < 0 && !fs_absent(errno)) {
				fs_fail(r, errno, "openat", key);
				rc = FS_WALK_FAIL;
			} else if (cfd >= 0) {
				rc = fs_walk(l, cfd, key);
				close(cfd);
			}
			free(dname);
			free(key);
			continue;
		}
		if (strcmp(key, l->after) <= 0) {
			free(key);
			continue;
		}
		struct stat st;
		int	    gone = 0;
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno != ENOENT) {
				fs_fail(r, errno, "fstatat", key);
				free(key);
				rc = FS_WALK_FAIL;
				break;
			}
			gone = 1;
		}
		if (gone || !S_ISREG(st.st_mode)) {
			free(key); /* gone, or replaced since it was read */
			continue;
		}
		if (r->nobjs == (size_t)r->max_keys) {
			r->truncated = 1; /* one more exists: stop here */
			free(key);
			rc = FS_WALK_DONE;
			break;
		}
		if (r->nobjs == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			r->objs = xrealloc(r->objs, l->cap * sizeof(*r->objs));
			l->koff = xrealloc(l->koff, l->cap * sizeof(*l->koff));
		}
		l->koff[r->nobjs] = l->keys.len;
		buf_adds(&l->keys, l->v->prefix);
		buf_add(&l->keys, key, klen + 1);
		r->objs[r->nobjs].key_len = l->v->plen + klen;
		r->objs[r->nobjs].size = (int64_t)st.st_size;
		r->objs[r->nobjs].last_modified_ms = fs_age_ms(&st);
		r->nobjs++;
		free(key);
	}
	fs_dir_put(l->v, d);
	return rc;
}

static void
fs_list(struct fsvol *v, struct fs_req *r)
{
	struct fs_lister l;
	struct stat	 st;
	size_t		 i;
	int		 fd;

	memset(&l, 0, sizeof(l));
	l.v = v;
	l.r = r;
	l.prefix = r->prefix + v->plen;
	l.plen = strlen(l.prefix);
	if (r->after == NULL)
		l.after = "";
	else if (strncmp(r->after, v->prefix, v->plen) == 0)
		l.after = r->after + v->plen;
	else if (strcmp(r->after, v->prefix) < 0)
		l.after = "";
	else { /* every key of the volume sorts before it */
		r->names = xstrdup("");
		return;
	}
	l.from = strcmp(l.after, l.prefix) > 0 ? l.after : l.prefix;
	if (r->fresh) { /* a new listing: no directory read before it */
		pthread_mutex_lock(&v->mu);
		l.min_gen = ++v->gen;
		pthread_mutex_unlock(&v->mu);
	}
	buf_init(&l.keys);
	if ((fd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0) {
		fs_fail(r, errno, "open", "");
		if (fd >= 0)
			close(fd);
	} else {
		l.dev = st.st_dev;
		if (fs_walk(&l, fd, "") == FS_WALK_FAIL) {
			r->nobjs = 0;
			r->truncated = 0;
		}
		close(fd);
	}
	r->names = buf_steal(&l.keys);
	for (i = 0; i < r->nobjs; i++)
		r->objs[i].key = r->names + l.koff[i];
	free(l.koff);
}

static void *
fs_thread(void *arg)
{
	struct fsvol  *v = arg;
	struct fs_req *r;

	pthread_mutex_lock(&v->mu);
	for (;;) {
		while (!v->stop && TAILQ_EMPTY(&v->todo))
			pthread_cond_wait(&v->cv, &v->mu);
		if (v->stop)
			break;
		r = TAILQ_FIRST(&v->todo);
		TAILQ_REMOVE(&v->todo, r, entry);
		pthread_mutex_unlock(&v->mu);
		switch (r->kind) {
		case FS_HEAD:
			fs_head(v, r);
			break;
		case FS_LIST:
			fs_list(v, r);
			break;
		case FS_DELETE:
			fs_delete(v, r);
			break;
		case FS_PUT:
			fs_put(v, r);
			break;
		}
		pthread_mutex_lock(&v->mu);
		TAILQ_INSERT_TAIL(&v->done, r, entry);
		/* One byte is enough to wake the loop; a full pipe already
		 * will. */
		(void)!write(v->wake[1], "", 1);
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* On the loop: hand back what the threads finished. */
static void
fs_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fsvol	  *v = arg;
	struct fs_req_list done;
	struct fs_req	  *r;
	char		   drain[256];

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&v->mu);
	TAILQ_CONCAT(&done, &v->done, entry);
	pthread_mutex_unlock(&v->mu);
	while ((r = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, r, entry);
		r->done(r->arg, r);
	}
}

struct fsvol *
fsvol_new(struct event_base *base, const char *root, const char *prefix)
{
	struct fsvol *v = xcalloc(1, sizeof(*v));
	sigset_t      all, old;
	int	      i;

	v->root = xstrdup(root);
	v->prefix = xstrdup(prefix);
	v->plen = strlen(prefix);
	TAILQ_INIT(&v->todo);
	TAILQ_INIT(&v->done);
	TAILQ_INIT(&v->dirs);
	if (pipe2(v->wake, O_NONBLOCK | O_CLOEXEC) != 0)
		fatal("fsvol: pipe: %s", strerror(errno));
	v->ev = event_new(
	    base, v->wake[0], EV_READ | EV_PERSIST, fs_wake_cb, v);
	if (v->ev == NULL || event_add(v->ev, NULL) != 0)
		fatal("fsvol: cannot watch the wake-up pipe");
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	/* Signals are the loop's: the threads start with all blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < FS_THREADS; i++) {
		if (pthread_create(&v->th[i], NULL, fs_thread, v) != 0)
			fatal("fsvol: cannot start a thread");
		v->nth++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return v;
}

void
fsvol_submit(struct fsvol *v, struct fs_req *r, fs_done_cb *done, void *arg)
{
	r->done = done;
	r->arg = arg;
	pthread_mutex_lock(&v->mu);
	TAILQ_INSERT_TAIL(&v->todo, r, entry);
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

void
fsvol_free(struct fsvol *v)
{
	struct fs_req *r;
	struct fs_dir *d;
	int	       i;

	if (v == NULL)
		return;
	pthread_mutex_lock(&v->mu);
	v->stop = 1;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	for (i = 0; i < v->nth; i++)
		pthread_join(v->th[i], NULL);
	/* Not started: cancelled.  Finished: as they are. */
	TAILQ_FOREACH(r, &v->todo, entry)
	fs_fail(r, ECANCELED, "cancel", r->key ? r->key : "");
	TAILQ_CONCAT(&v->done, &v->todo, entry);
	while ((r = TAILQ_FIRST(&v->done)) != NULL) {
		TAILQ_REMOVE(&v->done, r, entry);
		r->done(r->arg, r);
	}
	while ((d = TAILQ_FIRST(&v->dirs)) != NULL)
		fs_dir_evict(v, d);
	event_free(v->ev);
	close(v->wake[0]);
	close(v->wake[1]);
	pthread_mutex_destroy(&v->mu);
	pthread_cond_destroy(&v->cv);
	free(v->root);
	free(v->prefix);
	free(v);
}
