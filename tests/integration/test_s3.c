/*
 * The S3 client against a real S3 server (s3rver in CI): many requests in
 * flight, pagination, HEAD, DeleteObjects, awkward keys, refusals that
 * send nothing, a dead port, a server that never answers, cancellation,
 * and a loop that keeps ticking.  Effects are checked with the aws CLI too.
 *
 *   S3_ENDPOINT=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=.. \
 *   AWS_SECRET_ACCESS_KEY=.. test_s3
 *
 * The bucket cloud-cube must exist; objects go under test-<pid>/.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "s3.h"
#include "tap.h"
#include "util.h"

#define BUCKET	   "cloud-cube"
#define NOBJ	   2500
#define MAX_GAP_MS 1000 /* a blocked loop would stall for seconds */

static struct event_base *base;
static struct s3_client	 *s3;
static char		  prefix[64]; /* "test-PID/" */
static int		  pending;

/* The 10 ms ticker: how long the loop ever went without running it. */
static struct event *tick_ev;
static int64_t	     last_tick_us, max_gap_us;
static int	     max_inflight_seen;

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = mono_us();

	if (last_tick_us != 0 && now - last_tick_us > max_gap_us)
		max_gap_us = now - last_tick_us;
	last_tick_us = now;
	if (s3 != NULL && s3_client_inflight(s3) > max_inflight_seen)
		max_inflight_seen = s3_client_inflight(s3);
}

/* Run the loop until every started request has called back. */
static void
wait_all(void)
{
	while (pending > 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
obj_key(char *out, size_t len, int i)
{
	snprintf(out, len, "%sobj/%05d", prefix, i);
}

static size_t
obj_size(int i)
{
	return (size_t)(i * 37 % 1000);
}

static double
rate(int n, int64_t us)
{
	return us > 0 ? n * 1e6 / (double)us : 0;
}

static const char *
errstr(const struct s3_error *err)
{
	static char s[512];

	if (err == NULL)
		return "no error";
	snprintf(s, sizeof(s), "%s: %s", err->code, err->message);
	return s;
}

/* PUT */

static int put_failed;

static void
put_cb(void *arg, const struct s3_error *err)
{
	if (err != NULL) {
		if (put_failed++ < 5)
			printf("# put %s failed: %s\n", (const char *)arg,
			    errstr(err));
	}
	if (s3_client_inflight(s3) + 1 > max_inflight_seen)
		max_inflight_seen = s3_client_inflight(s3) + 1;
	free(arg);
	pending--;
}

static int
put_one(const char *key, size_t size)
{
	char *body = xmalloc(size + 1);
	int   rc;

	memset(body, 'a' + (int)(size % 26), size);
	rc = s3_put(s3, key, body, size, "text/plain", put_cb, xstrdup(key));
	free(body);
	if (rc == 0)
		pending++;
	return rc;
}

static void
test_put_many(void)
{
	char	key[128];
	int	i, refused = 0;
	int64_t t0;

	max_inflight_seen = 0;
	max_gap_us = 0;
	last_tick_us = 0;
	t0 = mono_us();
	for (i = 0; i < NOBJ; i++) {
		obj_key(key, sizeof(key), i);
		if (put_one(key, obj_size(i)) != 0)
			refused++;
	}
	wait_all();
	t0 = mono_us() - t0;
	is_int(refused, 0, "all %d PUTs accepted", NOBJ);
	is_int(put_failed, 0, "all %d PUTs succeeded", NOBJ);
	ok(max_inflight_seen > 1, "PUTs ran in parallel (max %d in flight)",
	    max_inflight_seen);
	ok(max_gap_us < MAX_GAP_MS * 1000,
	    "the loop kept ticking during the "
	    "PUTs (longest gap %lld ms)",
	    (long long)max_gap_us / 1000);
	printf("# PUT %d objects in %.2f s: %.0f objects/s\n", NOBJ,
	    (double)t0 / 1e6, rate(NOBJ, t0));
}

/* LIST */

struct lister {
	char		prefix[256];
	char	       *token;
	char		start_after[256];
	int		max_keys;
	char	      **keys;
	int64_t	       *sizes;
	size_t		n, cap;
	int		pages;
	int		done;
	struct s3_error err;
	int		failed;
};

static void lister_next(struct lister *);

static void
list_cb(void *arg, const struct s3_list_page *page, const struct s3_error *err)
{
	struct lister *l = arg;
	const char    *tok;
	size_t	       i;

	pending--;
	if (err != NULL) {
		l->err = *err;
		l->failed = 1;
		l->done = 1;
		return;
	}
	l->pages++;
	for (i = 0; i < s3_list_page_count(page); i++) {
		const struct s3_object *o = s3_list_page_object(page, i);
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			l->keys = xrealloc(l->keys, l->cap * sizeof(*l->keys));
			l->sizes = xrealloc(
			    l->sizes, l->cap * sizeof(*l->sizes));
		}
		l->keys[l->n] = xstrndup(o->key, o->key_len);
		l->sizes[l->n++] = o->size;
	}
	free(l->token);
	l->token = NULL;
	tok = s3_list_page_next_token(page);
	if (s3_list_page_truncated(page) && tok != NULL) {
		l->token = xstrdup(tok);
		lister_next(l);
	} else
		l->done = 1;
}

static void
lister_next(struct lister *l)
{
	if (s3_list(s3, l->prefix, l->token,
		l->token == NULL && l->start_after[0] != '\0' ? l->start_after
							      : NULL,
		l->max_keys, list_cb, l) != 0) {
		l->failed = 1;
		l->done = 1;
		return;
	}
	pending++;
}

static void
lister_free(struct lister *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
	free(l->sizes);
	free(l->token);
	memset(l, 0, sizeof(*l));
}

/* List everything under p after start_after (paginating), into l. */
static void
list_from(
    struct lister *l, const char *p, const char *start_after, int max_keys)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->prefix, sizeof(l->prefix), "%s", p);
	snprintf(l->start_after, sizeof(l->start_after), "%s",
	    start_after != NULL ? start_after : "");
	l->max_keys = max_keys;
	lister_next(l);
	wait_all();
}

static void
list_all(struct lister *l, const char *p, int max_keys)
{
	list_from(l, p, NULL, max_keys);
}

static void
test_list_many(void)
{
	struct lister l;
	char	      p[128], key[128];
	int64_t	      t0;
	size_t	      i;
	int	      order_ok = 1, keys_ok = 1, sizes_ok = 1;

	snprintf(p, sizeof(p), "%sobj/", prefix);
	t0 = mono_us();
	list_all(&l, p, 1000);
	t0 = mono_us() - t0;
	ok(!l.failed, "listing succeeded (%s)",
	    errstr(l.failed ? &l.err : NULL));
	is_int(l.n, NOBJ, "listing found every object");
	is_int(l.pages, 3, "listing took 3 pages of 1000");
	for (i = 0; i < l.n; i++) {
		if (i > 0 && strcmp(l.keys[i - 1], l.keys[i]) >= 0)
			order_ok = 0;
		obj_key(key, sizeof(key), (int)i);
		if (strcmp(l.keys[i], key) != 0)
			keys_ok = 0;
		else if (l.sizes[i] != (int64_t)obj_size((int)i))
			sizes_ok = 0;
	}
	ok(order_ok, "keys come in byte order");
	ok(keys_ok, "keys are the ones written");
	ok(sizes_ok, "sizes are the ones written");
	printf("# listed %zu objects in %.2f s: %.0f objects/s\n", l.n,
	    (double)t0 / 1e6, rate((int)l.n, t0));
	lister_free(&l);

	/* s3rver reads the whole prefix for every page: few pages here. */
	obj_key(key, sizeof(key), NOBJ - 20);
	list_from(&l, p, key, 7);
	obj_key(key, sizeof(key), NOBJ - 19);
	ok(!l.failed && l.n == 19 && l.pages == 3 &&
		strcmp(l.keys[0], key) == 0,
	    "listing 7 at a time after "
	    "start-after: %zu keys in %d pages",
	    l.n, l.pages);
	lister_free(&l);
}

/* HEAD */

struct head_res {
	int		called;
	int		found;
	int64_t		size;
	int64_t		mtime;
	struct s3_error err;
	int		failed;
};

static void
head_cb(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err)
{
	struct head_res *h = arg;

	h->called++;
	h->found = found;
	if (obj != NULL) {
		h->size = obj->size;
		h->mtime = obj->last_modified_ms;
	}
	if (err != NULL) {
		h->err = *err;
		h->failed = 1;
	}
	pending--;
}

static void
diag_ms(const char *what, int64_t us)
{
	printf("# %s %lld ms\n", what, (long long)(us / 1000));
}

static void
head(const char *key, struct head_res *h)
{
	memset(h, 0, sizeof(*h));
	if (s3_head(s3, key, head_cb, h) != 0) {
		h->failed = 1;
		return;
	}
	pending++;
	wait_all();
}

static void
test_head(void)
{
	struct head_res h;
	char		key[128];

	obj_key(key, sizeof(key), 1234);
	head(key, &h);
	ok(!h.failed && h.found, "HEAD finds an object (%s)",
	    errstr(h.failed ? &h.err : NULL));
	is_int(h.size, (long long)obj_size(1234), "HEAD gives its size");
	ok(h.mtime > now_ms() - 3600 * 1000 && h.mtime < now_ms() + 3600 * 1000,
	    "HEAD gives a recent Last-Modified");

	snprintf(key, sizeof(key), "%sobj/missing", prefix);
	head(key, &h);
	ok(h.called == 1 && !h.failed && !h.found,
	    "HEAD of a missing key: "
	    "not found, no error (%s)",
	    errstr(h.failed ? &h.err : NULL));
}

/* The request-rate cap: 30 HEADs at 10/s take at least 2 s after the burst. */
static void
test_rate_limit(void)
{
	static struct head_res h[30];
	char		       key[128];
	int64_t		       t0;
	int		       i, found = 0;

	s3_client_set_rate(s3, 10);
	obj_key(key, sizeof(key), 1234);
	t0 = mono_us();
	for (i = 0; i < 30; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		if (s3_head(s3, key, head_cb, &h[i]) == 0)
			pending++;
	}
	wait_all();
	for (i = 0; i < 30; i++)
		found += h[i].found;
	is_int(found, 30, "rate-capped HEADs all succeed");
	ok(mono_us() - t0 >= 1900000,
	    "30 requests at 10/s with a burst of 10 "
	    "took %lld ms (at least 1900)",
	    (long long)((mono_us() - t0) / 1000));
	s3_client_set_rate(s3, 0);
	t0 = mono_us();
	for (i = 0; i < 30; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		if (s3_head(s3, key, head_cb, &h[i]) == 0)
			pending++;
	}
	wait_all();
	diag_ms("uncapped, the same 30 HEADs took", mono_us() - t0);
}

/* DELETE */

struct del_res {
	size_t		   n;
	int		   deleted;
	int		   in_order;
	struct s3_error	   err;
	int		   failed;
	const char *const *keys;
};

static void
del_cb(void *arg, const struct s3_delete_result *r, size_t n,
    const struct s3_error *err)
{
	struct del_res *d = arg;
	size_t		i;

	pending--;
	if (err != NULL) {
		d->err = *err;
		d->failed = 1;
		return;
	}
	d->n = n;
	d->in_order = 1;
	for (i = 0; i < n; i++) {
		d->deleted += r[i].deleted;
		if (strcmp(r[i].key, d->keys[i]) != 0)
			d->in_order = 0;
		if (!r[i].deleted)
			printf("# not deleted: %s: %s: %s\n", r[i].key,
			    r[i].code ? r[i].code : "-",
			    r[i].message ? r[i].message : "-");
	}
}

static void
delete_keys(const char *const *keys, size_t n, struct del_res *d)
{
	memset(d, 0, sizeof(*d));
	d->keys = keys;
	if (s3_delete_objects(s3, keys, n, del_cb, d) != 0) {
		d->failed = 1;
		return;
	}
	pending++;
	wait_all();
}

static char **
obj_keys(int from, int to, int absent)
{
	char **keys = xcalloc((size_t)(to - from + absent), sizeof(*keys));
	char   key[128];
	int    i, n = 0;

	for (i = from; i < to; i++) {
		obj_key(key, sizeof(key), i);
		keys[n++] = xstrdup(key);
	}
	for (i = 0; i < absent; i++) {
		snprintf(key, sizeof(key), "%sobj/absent-%d", prefix, i);
		keys[n++] = xstrdup(key);
	}
	return keys;
}

static void
free_keys(char **keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/* Objects under our prefix according to the aws CLI; -1 on failure. */
static int
aws_count(const char *sub)
{
	char	    cmd[1024], line[4096], needle[128];
	const char *ep = getenv("S3_ENDPOINT");
	FILE	   *f;
	int	    n = 0, st;

	snprintf(cmd, sizeof(cmd),
	    "env -u AWS_CA_BUNDLE -u AWS_PROFILE "
	    "AWS_PAGER= AWS_CONFIG_FILE=/dev/null "
	    "AWS_SHARED_CREDENTIALS_FILE=/dev/null "
	    "AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 "
	    "/usr/bin/aws --endpoint-url '%s' --output json s3api "
	    "list-objects-v2 --bucket %s --prefix '%s%s' "
	    "--query 'Contents[].Key'",
	    ep, BUCKET, prefix, sub);
	snprintf(needle, sizeof(needle), "\"%s%s", prefix, sub);
	if ((f = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	st = pclose(f);
	return st == 0 ? n : -1;
}

static void
test_delete(void)
{
	struct del_res d;
	char	     **keys;
	int64_t	       t0;
	int	       n;

	keys = obj_keys(0, 1000, 0);
	t0 = mono_us();
	delete_keys((const char *const *)keys, 1000, &d);
	t0 = mono_us() - t0;
	ok(!d.failed, "DeleteObjects of 1000 keys succeeded (%s)",
	    errstr(d.failed ? &d.err : NULL));
	is_int(d.n, 1000, "one result per key");
	is_int(d.deleted, 1000, "every key reported deleted");
	ok(d.in_order, "results come in the order asked");
	printf("# deleted 1000 objects in one request in %.2f s: %.0f "
	       "objects/s\n",
	    (double)t0 / 1e6, rate(1000, t0));
	free_keys(keys, 1000);
	n = aws_count("obj/");
	is_int(n, NOBJ - 1000, "aws s3api sees %d objects left", NOBJ - 1000);

	/* Present and absent keys: S3 reports both as deleted. */
	keys = obj_keys(1000, 1500, 20);
	delete_keys((const char *const *)keys, 520, &d);
	ok(!d.failed,
	    "DeleteObjects of present and absent keys succeeded "
	    "(%s)",
	    errstr(d.failed ? &d.err : NULL));
	is_int(d.n, 520, "one result per key");
	is_int(d.deleted, 520, "absent keys are reported deleted too");
	free_keys(keys, 520);

	keys = obj_keys(1500, NOBJ, 0);
	delete_keys((const char *const *)keys, NOBJ - 1500, &d);
	ok(!d.failed && d.deleted == NOBJ - 1500, "deleted the rest");
	free_keys(keys, NOBJ - 1500);
	n = aws_count("obj/");
	is_int(n, 0, "aws s3api sees no object left");
}

/* Awkward keys */

static const char *const weird[] = {
    "a b",
    "a+b",
    "a=b",
    "a&b",
    "q?x",
    "h#x",
    "100%",
    "%41",
    "%2F",
    "semi;colon",
    "x<y>z",
    "quo\"te",
    "apo's",
    "t~i-l_d.e",
    "\xc3\xbc"
    "n"
    "\xc3\xaf"
    "c"
    "\xc3\xb6"
    "d"
    "\xc3\xa9 \xe2\x9c\x93",
    "\xf0\x9f\x8e\xac clip.mp4",
    "sub dir/with space/f+g=h&i",
    "plus+and space",
    "star*(paren)!",
    "comma,colon:at@dollar$",
    "..dots..",
    "trailing.",
};

static void
test_weird_keys(void)
{
	char	       *keys[nitems(weird)];
	struct lister	l;
	struct head_res h;
	struct del_res	d;
	char		p[128];
	size_t		i, j, found = 0, heads_ok = 0;

	snprintf(p, sizeof(p), "%sweird/", prefix);
	put_failed = 0;
	for (i = 0; i < nitems(weird); i++) {
		keys[i] = xasprintf("%s%s", p, weird[i]);
		if (put_one(keys[i], i + 1) != 0)
			put_failed++;
	}
	wait_all();
	is_int(put_failed, 0, "PUT of %zu awkward keys", nitems(weird));

	list_all(&l, p, 1000);
	ok(!l.failed, "listing awkward keys (%s)",
	    errstr(l.failed ? &l.err : NULL));
	for (i = 0; i < nitems(weird); i++) {
		for (j = 0; j < l.n; j++)
			if (strcmp(l.keys[j], keys[i]) == 0 &&
			    l.sizes[j] == (int64_t)(i + 1))
				break;
		if (j < l.n)
			found++;
		else
			printf("# not listed: '%s'\n", keys[i]);
	}
	is_int(found, nitems(weird), "every awkward key listed as written");
	is_int(l.n, nitems(weird), "and nothing else");
	lister_free(&l);

	for (i = 0; i < nitems(weird); i++) {
		head(keys[i], &h);
		if (!h.failed && h.found && h.size == (int64_t)(i + 1))
			heads_ok++;
		else
			printf("# HEAD '%s': %s\n", keys[i],
			    errstr(h.failed ? &h.err : NULL));
	}
	is_int(heads_ok, nitems(weird), "HEAD finds every awkward key");

	delete_keys((const char *const *)keys, nitems(weird), &d);
	ok(!d.failed && d.deleted == (int)nitems(weird) && d.in_order,
	    "DeleteObjects of the awkward keys (%s)",
	    errstr(d.failed ? &d.err : NULL));
	is_int(aws_count("weird/"), 0, "aws s3api sees none left");
	for (i = 0; i < nitems(weird); i++)
		free(keys[i]);
}

/* Refusals */

struct refusal {
	int  called;
	char code[64];
};

static void
refused_head_cb(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err)
{
	struct refusal *r = arg;

	r->called++;
	snprintf(r->code, sizeof(r->code), "%s", err ? err->code : "none");
	pending--;
}

static void
refused_del_cb(void *arg, const struct s3_delete_result *res, size_t n,
    const struct s3_error *err)
{
	struct refusal *r = arg;

	r->called++;
	snprintf(r->code, sizeof(r->code), "%s", err ? err->code : "none");
	pending--;
}

static void
check_head_refused(const char *key, const char *code)
{
	struct refusal r = {0};
	uint64_t       before = s3_client_requests(s3);
	int	       rc;

	rc = s3_head(s3, key, refused_head_cb, &r);
	ok(rc == 0 && r.called == 0,
	    "HEAD '%s': no callback from inside "
	    "the call",
	    key);
	if (rc == 0)
		pending++;
	wait_all();
	ok(r.called == 1 && strcmp(r.code, code) == 0,
	    "HEAD '%s' refused "
	    "with %s (got %s)",
	    key, code, r.code);
	ok(s3_client_requests(s3) == before && s3_client_inflight(s3) == 0,
	    "HEAD '%s': nothing sent", key);
}

static void
check_delete_refused(
    const char *const *keys, size_t n, const char *code, const char *what)
{
	struct refusal r = {0};
	uint64_t       before = s3_client_requests(s3);

	if (s3_delete_objects(s3, keys, n, refused_del_cb, &r) == 0)
		pending++;
	wait_all();
	ok(r.called == 1 && strcmp(r.code, code) == 0 &&
		s3_client_requests(s3) == before,
	    "DeleteObjects %s: %s, nothing "
	    "sent (got %s)",
	    what, code, r.code);
}

static void
test_refusals(void)
{
	char	    a[128], b[128], c[128], ok1[128];
	const char *mixed[2];
	char	   *many[1001];
	size_t	    i;

	snprintf(a, sizeof(a), "%s../x", prefix);
	snprintf(b, sizeof(b), "%sa//b", prefix);
	snprintf(c, sizeof(c), "other-%s/x", prefix);
	check_head_refused("../x", "outside_prefix");
	check_head_refused(a, "unsafe_key");
	check_head_refused(b, "unsafe_key");
	check_head_refused(c, "outside_prefix");
	check_head_refused(prefix, "outside_prefix");
	check_head_refused("test-/x", "outside_prefix");

	snprintf(ok1, sizeof(ok1), "%sfine", prefix);
	mixed[0] = ok1;
	mixed[1] = a;
	check_delete_refused(mixed, 2, "unsafe_key", "with one unsafe key");
	mixed[1] = "../x";
	check_delete_refused(mixed, 2, "outside_prefix",
	    "with one key "
	    "outside the prefix");
	check_delete_refused(mixed, 0, "bad_argument", "of no key");
	for (i = 0; i < nitems(many); i++)
		many[i] = xasprintf("%sk%zu", prefix, i);
	check_delete_refused((const char *const *)many, nitems(many),
	    "bad_argument", "of 1001 keys");
	for (i = 0; i < nitems(many); i++)
		free(many[i]);
}

/* Failures without a server */

static int
free_port(int do_listen, int *fdp)
{
	struct sockaddr_in sin;
	socklen_t	   len = sizeof(sin);
	int		   fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0 ||
	    (do_listen && listen(fd, 16) != 0)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (do_listen)
		*fdp = fd;
	else
		close(fd);
	return ntohs(sin.sin_port);
}

static struct s3_client *
client_with_key(
    const char *endpoint, const char *key_id, struct storage_url *su)
{
	struct s3_creds cr = {key_id, getenv("AWS_SECRET_ACCESS_KEY"), NULL};
	char		url[512], err[256];

	snprintf(url, sizeof(url), "%s/%s/%.*s", endpoint, BUCKET,
	    (int)strlen(prefix) - 1, prefix);
	if (storage_url_parse(url, NULL, su, err, sizeof(err)) != 0) {
		printf("# %s: %s\n", url, err);
		return NULL;
	}
	if (cr.access_key_id == NULL)
		cr.access_key_id = "S3RVER";
	if (cr.secret_access_key == NULL)
		cr.secret_access_key = "S3RVER";
	return s3_client_new(base, su, &cr);
}

static struct s3_client *
client_for(const char *endpoint, struct storage_url *su)
{
	return client_with_key(endpoint, getenv("AWS_ACCESS_KEY_ID"), su);
}

static void
test_dead_port(void)
{
	struct s3_client  *saved = s3;
	struct storage_url su;
	struct head_res	   h;
	char		   ep[64], key[128];
	int64_t		   t0;
	int		   port = free_port(0, NULL);

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
	s3 = client_for(ep, &su);
	s3_client_set_limits(s3, 5000, 0);
	snprintf(key, sizeof(key), "%sx", prefix);
	t0 = mono_us();
	head(key, &h);
	t0 = mono_us() - t0;
	ok(h.called == 1 && h.failed && h.err.transient &&
		strcmp(h.err.code, "connect") == 0,
	    "nothing listening: transient "
	    "connect error (%s)",
	    errstr(&h.err));
	ok(t0 < 3000000, "and no hang (%lld ms)", (long long)t0 / 1000);
	s3_client_free(s3);
	storage_url_free(&su);
	s3 = saved;
}

static void
test_silent_server(void)
{
	struct s3_client  *saved = s3;
	struct storage_url su;
	struct head_res	   h;
	char		   ep[64], key[128];
	int64_t		   t0;
	int		   fd = -1, port = free_port(1, &fd);

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
	s3 = client_for(ep, &su);
	s3_client_set_limits(s3, 300, 0);
	snprintf(key, sizeof(key), "%sx", prefix);
	t0 = mono_us();
	head(key, &h);
	t0 = mono_us() - t0;
	ok(h.called == 1 && h.failed && h.err.transient &&
		strcmp(h.err.code, "timeout") == 0,
	    "a server that never answers: "
	    "transient timeout (%s)",
	    errstr(&h.err));
	ok(t0 < 2000000, "after about the timeout (%lld ms)",
	    (long long)t0 / 1000);
	ok(strstr(h.err.message,
	       getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY")
					       : "S3RVER") == NULL &&
		strstr(h.err.message, "Authorization") == NULL &&
		strstr(h.err.message, "Signature") == NULL,
	    "the error message holds no secret");
	s3_client_free(s3);
	storage_url_free(&su);
	close(fd);
	s3 = saved;
}

/* s3rver checks the access key id (not V4 signatures): S3 errors. */
static void
test_s3_errors(void)
{
	struct s3_client  *saved = s3;
	struct storage_url su;
	struct head_res	   h;
	struct lister	   l;
	char		   key[128];

	s3 = client_with_key(getenv("S3_ENDPOINT"), "NOSUCHKEY", &su);
	list_all(&l, prefix, 10);
	ok(l.failed && l.err.http_status == 403 && !l.err.transient &&
		strcmp(l.err.code, "InvalidAccessKeyId") == 0,
	    "an unknown access "
	    "key: the S3 error document's code (%s)",
	    errstr(&l.err));
	lister_free(&l);
	snprintf(key, sizeof(key), "%sobj/00001", prefix);
	head(key, &h);
	ok(h.failed && h.err.http_status == 403 && !h.err.transient &&
		strcmp(h.err.code, "http_403") == 0,
	    "HEAD has no error "
	    "document: http_403 (%s)",
	    errstr(&h.err));
	s3_client_free(s3);
	storage_url_free(&su);
	s3 = saved;
}

/* Cancellation */

static struct s3_client *victim;
static int		 cancel_calls, cancel_cancelled;

static void
cancel_head_cb(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err)
{
	cancel_calls++;
	if (err != NULL && strcmp(err->code, "cancelled") == 0)
		cancel_cancelled++;
	if (victim != NULL) {
		struct s3_client *c = victim;
		victim = NULL;
		s3_client_free(c); /* from inside a callback */
	}
}

static void
test_cancel(void)
{
	struct storage_url su;
	struct s3_client  *c;
	char		   key[128];
	int		   i, sent = 0;

	c = client_for(getenv("S3_ENDPOINT"), &su);
	s3_client_set_limits(c, 0, 2);
	snprintf(key, sizeof(key), "%sobj/00001", prefix);
	for (i = 0; i < 6; i++)
		sent += s3_head(c, key, cancel_head_cb, NULL) == 0;
	cancel_calls = cancel_cancelled = 0;
	s3_client_free(c);
	ok(sent == 6 && cancel_calls == 6 && cancel_cancelled == 6,
	    "s3_client_free calls back every pending request with cancelled "
	    "(%d/%d)",
	    cancel_cancelled, cancel_calls);
	storage_url_free(&su);

	c = victim = client_for(getenv("S3_ENDPOINT"), &su);
	s3_client_set_limits(c, 0, 2);
	for (i = 0; i < 6; i++)
		if (s3_head(c, key, cancel_head_cb, NULL) != 0)
			break;
	cancel_calls = cancel_cancelled = 0;
	while (victim != NULL)
		event_base_loop(base, EVLOOP_ONCE);
	ok(cancel_calls == 6 && cancel_cancelled == 5,
	    "s3_client_free from "
	    "a callback: the 5 others are cancelled (%d/%d)",
	    cancel_cancelled, cancel_calls);
	/* Let the deferred HTTP teardown run. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	storage_url_free(&su);
}

int
main(void)
{
	struct timeval	   ten_ms = {0, 10000};
	struct storage_url su;
	const char	  *ep = getenv("S3_ENDPOINT");

	if (ep == NULL || *ep == '\0') {
		printf("1..0 # SKIP no S3_ENDPOINT\n");
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(prefix, sizeof(prefix), "test-%ld/", (long)getpid());
	base = event_base_new();
	tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick_ev, &ten_ms);
	if ((s3 = client_for(ep, &su)) == NULL) {
		printf("Bail out! cannot build the storage URL\n");
		return 1;
	}
	is_str(s3_client_prefix(s3), prefix, "client prefix");

	test_refusals();
	test_put_many();
	test_list_many();
	test_head();
	test_rate_limit();
	test_cancel();
	test_s3_errors();
	test_delete();
	test_weird_keys();
	test_dead_port();
	test_silent_server();

	s3_client_free(s3);
	storage_url_free(&su);
	event_free(tick_ev);
	event_base_free(base);
	return tap_done();
}
