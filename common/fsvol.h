#ifndef CLIPSWEEP_FSVOL_H
#define CLIPSWEEP_FSVOL_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include "s3xml.h" /* struct s3_object */

struct event_base;
struct fsvol;

/*
 * A local volume (CLIPSWEEP_STORAGE_URL=file:///srv/app/media): the S3
 * client's second transport.  The directory plays the cube, and its name
 * the cube prefix: the file up/1.mp4 in it is the key "media/up/1.mp4".
 *
 * Requests run on a few threads, so a slow disk never holds the event
 * loop; each completion is handed back on the loop.  Below the volume
 * directory nothing follows a symbolic link: every path is walked with
 * openat(O_NOFOLLOW) one directory at a time, a symbolic link is never
 * an object, and only regular files are listed, looked at or removed.
 * Directories are never removed.
 */

enum fs_kind { FS_HEAD, FS_LIST, FS_DELETE, FS_PUT };

struct fs_req;
typedef void fs_done_cb(void *arg, struct fs_req *);

struct fs_req {
	enum fs_kind kind;
	/* In, full keys (cube prefix included), checked by the caller. */
	char  *key;  /* HEAD, PUT */
	char **keys; /* DELETE */
	size_t nkeys;
	char  *prefix;	 /* LIST */
	char  *after;	 /* LIST: keys after this one, or NULL */
	int    max_keys; /* LIST */
	int    fresh;	 /* LIST: a first page (no continuation) */
	char  *body;	 /* PUT */
	size_t len;

	/* Out.  err is the errno of a request-level failure, else 0. */
	int		  err;
	const char	 *err_call; /* "openat", "readdir", ... */
	char		 *err_path; /* relative to the volume */
	int		  found;    /* HEAD */
	int64_t		  size, mtime_ms;
	struct s3_object *objs; /* LIST, in byte order */
	size_t		  nobjs;
	char		 *names;
	int		  truncated;
	int		 *errs; /* DELETE: errno per key; 0 removed or absent */

	fs_done_cb *done;
	void	   *arg;
	TAILQ_ENTRY(fs_req) entry;
};

/* root: the volume directory; prefix: its name and '/'.  Copied. */
struct fsvol *fsvol_new(
    struct event_base *, const char *root, const char *prefix);
/*
 * Waits for the requests being worked on; every request not yet handed
 * back is handed back now with err ECANCELED (none after this returns).
 */
void fsvol_free(struct fsvol *);
/* Queue req; done(arg, req) runs later on the loop, never from here. */
void fsvol_submit(struct fsvol *, struct fs_req *, fs_done_cb *, void *arg);
void fs_req_free(struct fs_req *);

#endif
