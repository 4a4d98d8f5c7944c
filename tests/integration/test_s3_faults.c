/*
 * s3mem's fault injection seen through our S3 client (common/s3.h): each
 * fault does what tests/s3mem/s3mem.c says, and the client turns it into
 * the error a task should see.  The test starts its own s3mem (the path
 * is argv[1]) without credentials, sets the rules through /?s3mem-faults
 * and checks objects with plain HTTP requests of its own, not with the
 * client under test.
 *
 *   test_s3_faults PATH-TO-S3MEM
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "s3.h"
#include "s3batch.h"
#include "tap.h"
#include "util.h"

#define BUCKET	   "cloud-cube"
#define TIMEOUT_MS 5000 /* the client's, unless a test lowers it */

static struct event_base *base;
static struct s3_client	 *s3;
static int		  pending;
static char		  tmpdir[] = "/tmp/test_s3_faults.XXXXXX";
static pid_t		  s3mem_pid = -1;
static int		  s3mem_port;

/* s3mem */

static void
show_log(void)
{
	char  path[256], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/s3mem.log", tmpdir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	printf("# ----- s3mem's log (last requests)\n");
	while (fgets(line, sizeof(line), f) != NULL)
		printf("# %s", line);
	fclose(f);
}

static int
start_s3mem(const char *path)
{
	char  port_file[256], log_file[256], listen[] = "127.0.0.1:0";
	FILE *f;
	int   i, fd;

	snprintf(port_file, sizeof(port_file), "%s/port", tmpdir);
	snprintf(log_file, sizeof(log_file), "%s/s3mem.log", tmpdir);
	if ((s3mem_pid = fork()) < 0)
		return -1;
	if (s3mem_pid == 0) {
		fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execl(path, "s3mem", "--listen", listen, "--ready-file",
		    port_file, "--bucket", BUCKET, "--verbose", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 500; i++) {
		if ((f = fopen(port_file, "r")) != NULL) {
			if (fscanf(f, "%d", &s3mem_port) != 1)
				s3mem_port = 0;
			fclose(f);
			if (s3mem_port > 0)
				return 0;
		}
		usleep(10000);
	}
	return -1;
}

/* SIGTERM, even with requests held: exit status 0. */
static int
stop_s3mem(void)
{
	int st;

	if (s3mem_pid <= 0)
		return -1;
	kill(s3mem_pid, SIGTERM);
	if (waitpid(s3mem_pid, &st, 0) != s3mem_pid)
		return -1;
	s3mem_pid = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * One request to s3mem on a connection of its own, with blocking sockets
 * and no client library: the test's independent view.  Returns the
 * status (or -1) and leaves the body in out.
 */
static int
raw_http(
    const char *method, const char *target, const char *body, struct buf *out)
{
	struct sockaddr_in sin;
	char		   chunk[4096], *head;
	size_t		   blen = body != NULL ? strlen(body) : 0, off;
	ssize_t		   n;
	int		   fd, status = -1;

	buf_reset(out);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)s3mem_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	head = xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	    method, target, blen);
	buf_adds(out, head);
	if (body != NULL)
		buf_add(out, body, blen);
	free(head);
	for (off = 0; off < out->len; off += (size_t)n)
		if ((n = write(fd, out->data + off, out->len - off)) <= 0)
			break;
	buf_reset(out);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(out, chunk, (size_t)n);
	close(fd);
	if (out->len > 12 && strncmp(out->data, "HTTP/1.1 ", 9) == 0)
		status = atoi(out->data + 9);
	if ((head = strstr(out->data != NULL ? out->data : "", "\r\n\r\n")) !=
	    NULL) {
		off = (size_t)(head + 4 - out->data);
		memmove(out->data, out->data + off, out->len - off + 1);
		out->len -= off;
	}
	return status;
}

/* Replaces s3mem's rules; bails out if it refuses them. */
static void
set_faults(const char *rules)
{
	struct buf out;
	int	   st;

	buf_init(&out);
	if ((st = raw_http("POST", "/?s3mem-faults", rules, &out)) != 200) {
		printf("Bail out! s3mem refused the rules \"%s\": HTTP %d\n",
		    rules, st);
		printf("# %s\n", out.data != NULL ? out.data : "");
		stop_s3mem();
		exit(1);
	}
	buf_free(&out);
	/* A new test: the full parallelism again, whatever 503s did to it. */
	s3_client_set_limits(s3, 0, 64);
}

/* <elem> of rule number rule (1-based; 0: the top level), or -1. */
static long
report_value(int rule, const char *elem)
{
	struct buf  out;
	char	    open[64];
	const char *p;
	long	    v = -1;
	int	    i;

	buf_init(&out);
	if (raw_http("GET", "/?s3mem-faults", NULL, &out) == 200) {
		p = out.data;
		for (i = 0; i < rule && p != NULL; i++)
			if ((p = strstr(p, "<Rule>")) != NULL)
				p += 6;
		snprintf(open, sizeof(open), "<%s>", elem);
		if (p != NULL && (p = strstr(p, open)) != NULL)
			v = strtol(p + strlen(open), NULL, 10);
	}
	buf_free(&out);
	return v;
}

static int
raw_exists(const char *key)
{
	struct buf out;
	char	  *target = xasprintf("/" BUCKET "/%s", key);
	int	   st;

	buf_init(&out);
	st = raw_http("HEAD", target, NULL, &out);
	buf_free(&out);
	free(target);
	return st == 200;
}

/* Creates the objects, through s3mem's seed extension. */
static void
seed_keys(char **keys, int n)
{
	struct buf body, out;
	int	   i, st;

	buf_init(&body);
	buf_init(&out);
	for (i = 0; i < n; i++)
		buf_addf(&body, "%s\t10\t1700000000\n", keys[i]);
	st = raw_http("POST", "/" BUCKET "?s3mem-seed", body.data, &out);
	if (st != 200) {
		printf("Bail out! seeding failed: %d\n", st);
		exit(1);
	}
	buf_free(&body);
	buf_free(&out);
}

/* The client */

static void
wait_all(void)
{
	while (pending > 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static const char *
errstr(const struct s3_error *err)
{
	static char s[512];

	if (err == NULL)
		return "no error";
	snprintf(s, sizeof(s), "%s (HTTP %d, %s): %s", err->code,
	    err->http_status, err->transient ? "transient" : "permanent",
	    err->message);
	return s;
}

struct result {
	int		failed;
	struct s3_error err;
	int64_t		us; /* from start to callback */
	int64_t		start_us;
};

static void
result_done(struct result *res, const struct s3_error *err)
{
	res->us = mono_us() - res->start_us;
	if (err != NULL) {
		res->err = *err;
		res->failed = 1;
	}
	pending--;
}

static void
head_cb(void *arg, int found, const struct s3_object *obj,
    const struct s3_error *err)
{
	(void)found;
	(void)obj;
	result_done(arg, err);
}

static void
start_head(const char *key, struct result *res)
{
	memset(res, 0, sizeof(*res));
	res->start_us = mono_us();
	if (s3_head(s3, key, head_cb, res) != 0) {
		res->failed = 1;
		snprintf(res->err.code, sizeof(res->err.code), "refused");
		return;
	}
	pending++;
}

static void
head(const char *key, struct result *res)
{
	start_head(key, res);
	wait_all();
}

static void
list_cb(void *arg, const struct s3_list_page *page, const struct s3_error *err)
{
	(void)page;
	result_done(arg, err);
}

static void
list(const char *prefix, struct result *res)
{
	memset(res, 0, sizeof(*res));
	res->start_us = mono_us();
	if (s3_list(s3, prefix, NULL, NULL, 10, list_cb, res) != 0) {
		res->failed = 1;
		return;
	}
	pending++;
	wait_all();
}

struct del_result {
	struct result res;
	size_t	      n;
	int	     *deleted; /* per key, in the order asked */
	char	    **codes;   /* per key: the error code, or NULL */
};

static void
del_cb(void *arg, const struct s3_delete_result *r, size_t n,
    const struct s3_error *err)
{
	struct del_result *d = arg;
	size_t		   i;

	if (r != NULL) {
		d->n = n;
		d->deleted = xcalloc(n, sizeof(*d->deleted));
		d->codes = xcalloc(n, sizeof(*d->codes));
		for (i = 0; i < n; i++) {
			d->deleted[i] = r[i].deleted;
			if (r[i].code != NULL)
				d->codes[i] = xstrdup(r[i].code);
		}
	}
	result_done(&d->res, err);
}

static void
del_result_free(struct del_result *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->codes[i]);
	free(d->codes);
	free(d->deleted);
	memset(d, 0, sizeof(*d));
}

static void
delete_keys(char **keys, size_t n, struct del_result *d)
{
	memset(d, 0, sizeof(*d));
	d->res.start_us = mono_us();
	if (s3_delete_objects(s3, (const char *const *)keys, n, del_cb, d) !=
	    0) {
		d->res.failed = 1;
		return;
	}
	pending++;
	wait_all();
}

static char prefix[64]; /* "test-PID/" */

/* "test-PID/SUB%04d" for i in [0, n). */
static char **
make_keys(const char *sub, int n)
{
	char **keys = xcalloc((size_t)n, sizeof(*keys));
	int    i;

	for (i = 0; i < n; i++)
		keys[i] = xasprintf("%s%s%04d", prefix, sub, i);
	return keys;
}

static void
free_keys(char **keys, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

static void
key(char *out, size_t len, const char *sub)
{
	snprintf(out, len, "%s%s", prefix, sub);
}

/* The tests */

/* Objects among keys[0..n) that still exist, by raw HEAD. */
static int
count_existing(char **keys, int n, int *exists)
{
	int i, c = 0;

	for (i = 0; i < n; i++) {
		exists[i] = raw_exists(keys[i]);
		c += exists[i];
	}
	return c;
}

static void
test_errors(void)
{
	struct result r;
	char	      k[128];
	int	      i, all503 = 1;

	key(k, sizeof(k), "x");
	set_faults("op=head error=503");
	for (i = 0; i < 20; i++) {
		head(k, &r);
		if (!r.failed || r.err.http_status != 503 || !r.err.transient)
			all503 = 0;
	}
	ok(all503,
	    "error=503 on every HEAD: 20 of 20 fail, 503, transient "
	    "(last: %s)",
	    errstr(&r.err));
	is_int(report_value(1, "Fired"), 20, "s3mem counts 20 fired");

	set_faults("op=list error=503");
	list(prefix, &r);
	ok(r.failed && r.err.http_status == 503 &&
		strcmp(r.err.code, "SlowDown") == 0 && r.err.transient,
	    "a listing gets 503 SlowDown, transient (%s)", errstr(&r.err));
	set_faults("op=list error=500");
	list(prefix, &r);
	ok(r.failed && r.err.http_status == 500 &&
		strcmp(r.err.code, "InternalError") == 0 && r.err.transient,
	    "error=500: InternalError, transient (%s)", errstr(&r.err));
	head(k, &r);
	ok(!r.failed, "op=list leaves HEAD alone (%s)",
	    errstr(r.failed ? &r.err : NULL));
}

/* n HEADs at once (up to the client's parallelism): how many failed. */
static int
heads_failed(int n)
{
	struct result *r = xcalloc((size_t)n, sizeof(*r));
	char	       k[128];
	int	       i, failed = 0;

	key(k, sizeof(k), "x");
	for (i = 0; i < n; i++)
		start_head(k, &r[i]);
	wait_all();
	for (i = 0; i < n; i++) {
		failed += r[i].failed;
		if (r[i].failed && r[i].err.http_status != 503)
			printf("# a HEAD failed otherwise: %s\n",
			    errstr(&r[i].err));
	}
	free(r);
	return failed;
}

static void head_pattern(int n, char *out);

static void
test_rate(void)
{
	char p1[101], p2[101], p3[101];
	int  a, b;

	set_faults("seed=42\nop=head rate=0.1 error=503");
	a = heads_failed(1000);
	ok(a >= 50 && a <= 150,
	    "rate=0.1: %d of 1000 parallel HEADs fail (50 to 150)", a);
	is_int(report_value(1, "Fired"), a, "and s3mem fired exactly those");
	set_faults("seed=42\nop=head rate=0.1 error=503");
	b = heads_failed(1000);
	is_int(b, a, "the same seed fails as many again");
	set_faults("op=head rate=0 error=503");
	is_int(heads_failed(200), 0, "rate=0: none fail");

	set_faults("seed=7\nop=head rate=0.3 error=503");
	head_pattern(100, p1);
	set_faults("seed=7\nop=head rate=0.3 error=503");
	head_pattern(100, p2);
	set_faults("seed=8\nop=head rate=0.3 error=503");
	head_pattern(100, p3);
	is_str(p2, p1, "100 HEADs in turn: the same seed fails the same ones");
	ok(strcmp(p3, p1) != 0, "another seed fails others");
}

/* Sequential HEADs as a string: '.' success, '5' 500, '3' 503, 'x'. */
static void
head_pattern(int n, char *out)
{
	struct result r;
	char	      k[128];
	int	      i;

	key(k, sizeof(k), "x");
	for (i = 0; i < n; i++) {
		head(k, &r);
		out[i] = !r.failed	       ? '.'
		    : r.err.http_status == 500 ? '5'
		    : r.err.http_status == 503 ? '3'
					       : 'x';
	}
	out[n] = '\0';
}

static void
test_counting(void)
{
	char p[64];

	set_faults("op=head nth=3 error=500\nop=head every=4 error=503");
	head_pattern(12, p);
	is_str(p, "..53...3...3", "nth=3 and every=4");
	set_faults("op=head after=2 count=3 error=503");
	head_pattern(8, p);
	is_str(p, "..333...", "after=2 count=3");
	set_faults("op=head every=2 error=503\nop=head error=500");
	head_pattern(4, p);
	is_str(p, "5353", "two rules: the first to fire decides");
	set_faults("");
	head_pattern(3, p);
	is_str(p, "...", "an empty rule set clears the faults");
}

static void
test_latency(void)
{
	struct result	  r;
	struct del_result d;
	char		  k[128], **keys;

	key(k, sizeof(k), "x");
	set_faults("op=head delay=50");
	head(k, &r);
	ok(!r.failed && r.us >= 50000, "delay=50: the HEAD took %lld ms",
	    (long long)r.us / 1000);
	set_faults("op=head delay=20 jitter=30");
	head(k, &r);
	ok(!r.failed && r.us >= 20000,
	    "delay=20 jitter=30: the HEAD took %lld ms (at least 20)",
	    (long long)r.us / 1000);

	set_faults("op=delete-objects delay=300");
	head(k, &r);
	is_int(report_value(1, "Matched"), 0,
	    "op=delete-objects: a HEAD is not even counted");
	keys = make_keys("slow/", 3);
	delete_keys(keys, 3, &d);
	ok(!d.res.failed && d.res.us >= 300000,
	    "and DeleteObjects took %lld ms (at least 300)",
	    (long long)d.res.us / 1000);
	del_result_free(&d);
	free_keys(keys, 3);
}

static void
test_dropped(void)
{
	struct result r1, r2;
	char	      k[128];
	long	      matched;

	key(k, sizeof(k), "x");
	set_faults("op=head reset");
	head(k, &r1);
	ok(r1.failed && r1.err.transient && r1.err.http_status == 0 &&
		strcmp(r1.err.code, "network") == 0,
	    "reset: a transient network error (%s)", errstr(&r1.err));
	ok(r1.us < TIMEOUT_MS * 1000LL,
	    "at once, not after the timeout "
	    "(%lld ms)",
	    (long long)r1.us / 1000);
	matched = report_value(1, "Matched");
	ok(matched >= 1,
	    "curl resent it on its idle connections: s3mem "
	    "saw it %ld times",
	    matched);

	set_faults("op=head close");
	head(k, &r1);
	ok(r1.failed && r1.err.transient && r1.err.http_status == 0 &&
		strcmp(r1.err.code, "network") == 0,
	    "close: a transient network error (%s)", errstr(&r1.err));

	/* A keep-alive connection that dies: curl tries a fresh one once. */
	set_faults("op=head nth=2 reset");
	head(k, &r1);
	head(k, &r2);
	matched = report_value(1, "Matched");
	ok(!r1.failed && !r2.failed && matched == 3,
	    "nth=2 reset on a reused connection: curl resends it on a new "
	    "one, the client sees success (%s; s3mem saw %ld HEADs)",
	    errstr(r2.failed ? &r2.err : NULL), matched);
}

static void
test_stall(void)
{
	struct result	  r;
	struct del_result d;
	char		  k[128], **keys;
	int		  i, exists[5];
	long		  held = -1;

	key(k, sizeof(k), "x");
	s3_client_set_limits(s3, 300, 0);
	set_faults("op=head stall");
	head(k, &r);
	ok(r.failed && r.err.transient && strcmp(r.err.code, "timeout") == 0,
	    "stall: the client's timeout, transient (%s)", errstr(&r.err));
	ok(r.us >= 300000, "after at least the 300 ms timeout (%lld ms)",
	    (long long)r.us / 1000);
	for (i = 0; i < 100 && held != 0; i++) {
		held = report_value(0, "Held");
		usleep(10000);
	}
	is_int(held, 0, "s3mem lets the request go when the client leaves");

	/* An answer later than the timeout: the delete happened anyway. */
	keys = make_keys("late/", 5);
	seed_keys(keys, 5);
	set_faults("op=delete-objects delay=1000");
	delete_keys(keys, 5, &d);
	ok(d.res.failed && strcmp(d.res.err.code, "timeout") == 0,
	    "DeleteObjects with delay=1000, timeout 300 ms: timeout (%s)",
	    errstr(&d.res.err));
	is_int(count_existing(keys, 5, exists), 0,
	    "yet the objects are gone: the delay is on the answer");
	del_result_free(&d);
	free_keys(keys, 5);
	s3_client_set_limits(s3, TIMEOUT_MS, 0);
}

static void
test_key_errors(void)
{
	struct del_result d;
	char		**keys;
	int		  exists[200], i, right = 1, nfail = 0;

	/* Keys 3 and 7 contain "bad". */
	keys = make_keys("kx/", 10);
	for (i = 3; i < 10; i += 4) {
		free(keys[i]);
		keys[i] = xasprintf("%skx/bad%04d", prefix, i);
	}
	seed_keys(keys, 10);
	set_faults("key-error=bad");
	delete_keys(keys, 10, &d);
	ok(!d.res.failed && d.n == 10,
	    "key-error: DeleteObjects succeeds "
	    "with 10 results (%s)",
	    errstr(d.res.failed ? &d.res.err : NULL));
	for (i = 0; i < (int)d.n; i++)
		if (d.deleted[i] != (i != 3 && i != 7) ||
		    ((i == 3 || i == 7) &&
			(d.codes[i] == NULL ||
			    strcmp(d.codes[i], "InternalError") != 0)))
			right = 0;
	ok(right, "exactly the keys with \"bad\" failed, with InternalError");
	count_existing(keys, 10, exists);
	for (i = 0; i < 10; i++)
		if (exists[i] != (i == 3 || i == 7))
			right = 0;
	ok(right, "those two objects remain, the other eight are gone");
	is_int(report_value(1, "KeyErrors"), 2, "s3mem counts 2 key errors");
	del_result_free(&d);
	free_keys(keys, 10);

	keys = make_keys("kr/", 200);
	seed_keys(keys, 200);
	set_faults("seed=5\nkey-rate=0.5 key-code=AccessDenied");
	delete_keys(keys, 200, &d);
	for (i = 0; i < (int)d.n; i++)
		if (!d.deleted[i]) {
			nfail++;
			if (d.codes[i] == NULL ||
			    strcmp(d.codes[i], "AccessDenied") != 0)
				right = 0;
		}
	ok(!d.res.failed && nfail >= 60 && nfail <= 140 && right,
	    "key-rate=0.5: %d of 200 keys fail with AccessDenied (60 to 140)",
	    nfail);
	count_existing(keys, 200, exists);
	for (i = 0; i < (int)d.n; i++)
		if (exists[i] == d.deleted[i])
			right = 0;
	ok(right, "exactly the failed ones remain");
	del_result_free(&d);
	free_keys(keys, 200);
}

static void
test_applied(void)
{
	struct del_result d;
	char		**keys;
	int		  exists[5];

	keys = make_keys("ap/", 5);
	seed_keys(keys, 5);
	set_faults("op=delete-objects error=503");
	delete_keys(keys, 5, &d);
	ok(d.res.failed && d.res.err.http_status == 503 && d.res.err.transient,
	    "DeleteObjects with error=503: transient 503 (%s)",
	    errstr(&d.res.err));
	is_int(count_existing(keys, 5, exists), 5, "and nothing was deleted");
	del_result_free(&d);

	set_faults("op=delete-objects reset applied");
	delete_keys(keys, 5, &d);
	ok(d.res.failed && strcmp(d.res.err.code, "network") == 0,
	    "reset applied: the client sees a network error (%s)",
	    errstr(&d.res.err));
	is_int(
	    count_existing(keys, 5, exists), 0, "yet every object was deleted");
	del_result_free(&d);

	seed_keys(keys, 5);
	set_faults("op=delete-objects error=500 applied");
	delete_keys(keys, 5, &d);
	ok(d.res.failed && d.res.err.http_status == 500,
	    "error=500 applied: the client sees 500 (%s)", errstr(&d.res.err));
	is_int(
	    count_existing(keys, 5, exists), 0, "yet every object was deleted");
	del_result_free(&d);
	free_keys(keys, 5);
}

static struct s3_client *
make_client(struct storage_url *su)
{
	struct s3_creds cr = {"AKIDFAULTS", "faults-secret", NULL};
	char		url[256], err[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s/%.*s", s3mem_port,
	    BUCKET, (int)strlen(prefix) - 1, prefix);
	if (storage_url_parse(url, NULL, su, err, sizeof(err)) != 0) {
		printf("Bail out! %s: %s\n", url, err);
		exit(1);
	}
	return s3_client_new(base, su, &cr);
}

/* Retries as the SDKs' standard mode: backoff, attempts, quota, window. */
static void
test_retries(void)
{
	struct result r;
	char	      k[128];
	uint64_t      before;
	int	      i, w0, w1, w2, quota;

	key(k, sizeof(k), "r");
	s3_client_set_retries(s3, 3, 20);
	set_faults("op=head count=2 error=503");
	before = s3_client_retries(s3);
	head(k, &r);
	ok(!r.failed, "two 503s, then an answer: the HEAD succeeds (%s)",
	    errstr(r.failed ? &r.err : NULL));
	is_int((long)(s3_client_retries(s3) - before), 2, "after two retries");
	is_int(report_value(1, "Fired"), 2, "s3mem saw both failed sends");

	set_faults("op=head count=3 error=500");
	head(k, &r);
	ok(r.failed && r.err.http_status == 500 &&
		strstr(r.err.message, "after 3 attempts") != NULL,
	    "three 500s: the HEAD fails after 3 attempts (%s)", errstr(&r.err));
	is_int(report_value(1, "Fired"), 3, "three sends in all, no more");

	/*
	 * The quota: 500 tokens at most, 5 a retry; a failure gives nothing
	 * back (the last HEAD left 490).  60 HEADs that keep failing: the
	 * first 49 are retried twice each, the 50th once, the rest never.
	 */
	quota = s3_client_retry_quota(s3);
	set_faults("op=head error=500");
	for (i = 0; i < 60; i++)
		head(k, &r);
	is_int(quota, 490, "the quota after a request that failed 3 times");
	is_int(report_value(1, "Fired"), 60 + quota / 5,
	    "60 failing HEADs: 158 sends (the quota allowed 98 retries)");
	is_int(s3_client_retry_quota(s3), 0, "the quota is spent");
	set_faults("");
	for (i = 0; i < 10; i++)
		head(k, &r);
	is_int(s3_client_retry_quota(s3), 10,
	    "each success without a retry gives one token back");

	/*
	 * 503s halve the requests in flight, once per round (a round: the
	 * requests already on the wire when the first 503 came back);
	 * successes grow it back.
	 */
	s3_client_set_retries(s3, 1, 0);
	set_faults("op=head error=503");
	s3_client_set_limits(s3, 0, 32);
	w0 = s3_client_window(s3);
	heads_failed(32);
	w1 = s3_client_window(s3);
	heads_failed(16);
	w2 = s3_client_window(s3);
	ok(w0 == 32 && w1 == 16 && w2 == 8,
	    "each round of 503s halves the window once: %d, %d, %d", w0, w1,
	    w2);
	set_faults("op=head count=32 error=503");
	s3_client_set_limits(s3, 0, 32);
	heads_failed(32);
	w1 = s3_client_window(s3);
	for (i = 0; i < 100; i++)
		head(k, &r);
	ok(w1 == 16 && s3_client_window(s3) > w1,
	    "100 successes grow it back: %d, then %d", w1,
	    s3_client_window(s3));
	s3_client_set_retries(s3, 1, 0);
}

/* common/s3batch.c: many callers' deletes in shared DeleteObjects. */
static void
test_batch(void)
{
	struct s3batch	  *b = s3batch_new(base, s3, 20, 1000);
	struct del_result *d = xcalloc(600, sizeof(*d));
	char		 **keys = make_keys("bt/", 1300), *out[1];
	int		   exists[1300], i, right = 1;
	size_t		   j;

	set_faults("");
	seed_keys(keys, 1300);
	/* 10 callers of 2 keys, within the flush window: one request. */
	for (i = 0; i < 10; i++) {
		d[i].res.start_us = mono_us();
		if (s3batch_delete(b, (const char *const *)&keys[2 * i], 2,
			del_cb, &d[i]) == 0)
			pending++;
	}
	wait_all();
	is_int(
	    (long)s3batch_requests(b), 1, "10 callers' deletes: one request");
	for (i = 0; i < 10; i++)
		if (d[i].res.failed || d[i].n != 2 || !d[i].deleted[0] ||
		    !d[i].deleted[1])
			right = 0;
	ok(right, "each caller got its own two results, deleted");
	is_int(
	    count_existing(keys, 20, exists), 0, "and the 20 objects are gone");
	for (i = 0; i < 10; i++)
		del_result_free(&d[i]);

	/*
	 * 580 callers of 2 keys: two requests, the first full (1000 keys).
	 * The last 10 callers ask again for a key of the second request
	 * instead of their own second key: it holds 150 distinct keys.
	 */
	for (i = 0; i < 580; i++) {
		const char *k[2] = {keys[20 + 2 * i], keys[20 + 2 * i + 1]};
		if (i >= 570)
			k[1] = keys[20 + 2 * (i - 70)]; /* asked before */
		if (s3batch_delete(b, k, 2, del_cb, &d[i]) == 0)
			pending++;
	}
	wait_all();
	is_int((long)s3batch_requests(b), 3,
	    "1160 keys from 580 callers: two more requests");
	right = 1;
	for (i = 0; i < 580; i++)
		if (d[i].res.failed || d[i].n != 2 || !d[i].deleted[0] ||
		    !d[i].deleted[1])
			right = 0;
	ok(right, "every caller's keys deleted, a repeated key for both");
	is_int((long)s3batch_keys(b), 20 + 1000 + 150,
	    "a key asked for twice in one request is sent once");
	is_int(count_existing(&keys[20], 1160, exists), 10,
	    "1150 objects gone; the 10 never asked for remain");
	for (i = 0; i < 580; i++)
		del_result_free(&d[i]);

	/* A refused caller fails alone; a per-key error is its caller's. */
	out[0] = xasprintf("other-prefix/x");
	set_faults("key-error=bt/1200");
	if (s3batch_delete(b, (const char *const *)out, 1, del_cb, &d[0]) == 0)
		pending++;
	if (s3batch_delete(
		b, (const char *const *)&keys[1200], 2, del_cb, &d[1]) == 0)
		pending++;
	if (s3batch_delete(
		b, (const char *const *)&keys[1202], 2, del_cb, &d[2]) == 0)
		pending++;
	wait_all();
	ok(d[0].res.failed && strcmp(d[0].res.err.code, "outside_prefix") == 0,
	    "a key outside the prefix is refused (%s)", errstr(&d[0].res.err));
	ok(!d[1].res.failed && d[1].n == 2 && !d[1].deleted[0] &&
		d[1].deleted[1],
	    "a key error fails that key of that caller only");
	ok(!d[2].res.failed && d[2].n == 2 && d[2].deleted[0] &&
		d[2].deleted[1],
	    "the other caller in the same request is untouched");
	for (j = 0; j < 3; j++)
		del_result_free(&d[j]);

	/* A request that fails fails every caller in it. */
	set_faults("op=delete-objects error=500");
	for (i = 0; i < 3; i++)
		if (s3batch_delete(b, (const char *const *)&keys[1204 + 2 * i],
			2, del_cb, &d[i]) == 0)
			pending++;
	wait_all();
	ok(d[0].res.failed && d[1].res.failed && d[2].res.failed &&
		d[2].res.err.http_status == 500,
	    "a failed request fails its three callers (%s)",
	    errstr(&d[2].res.err));
	is_int(count_existing(&keys[1204], 6, exists), 6,
	    "and their objects are still there");
	for (j = 0; j < 3; j++)
		del_result_free(&d[j]);

	/* Freed with a caller waiting: it is told, cancelled. */
	set_faults("");
	if (s3batch_delete(
		b, (const char *const *)&keys[1210], 2, del_cb, &d[0]) == 0)
		pending++;
	s3batch_free(b);
	ok(pending == 0 && d[0].res.failed &&
		strcmp(d[0].res.err.code, "cancelled") == 0,
	    "s3batch_free() tells a waiting caller: cancelled");
	del_result_free(&d[0]);
	free(out[0]);
	free(d);
	free_keys(keys, 1300);
}

int
main(int argc, char **argv)
{
	struct storage_url su;
	char		   cmd[300];
	int		   rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || access(argv[1], X_OK) != 0) {
		printf("1..0 # SKIP no s3mem to run\n");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL || start_s3mem(argv[1]) != 0) {
		printf("Bail out! cannot start s3mem\n");
		show_log();
		return 1;
	}
	snprintf(prefix, sizeof(prefix), "test-%ld/", (long)getpid());
	base = event_base_new();
	s3 = make_client(&su);
	s3_client_set_limits(s3, TIMEOUT_MS, 0);
	/* The server's faults as they come; test_retries() turns them on. */
	s3_client_set_retries(s3, 1, 0);

	test_errors();
	test_rate();
	test_counting();
	test_latency();
	test_dropped();
	test_stall();
	test_key_errors();
	test_applied();
	test_retries();
	test_batch();

	/* A request stalled at exit, its client still waiting. */
	set_faults("op=head stall");
	{
		struct result r;
		char	      k[128];

		key(k, sizeof(k), "x");
		start_head(k, &r);
		while (report_value(0, "Held") != 1)
			event_base_loop(base, EVLOOP_NONBLOCK);
		rc = stop_s3mem();
		is_int(rc, 0, "s3mem exits 0 on SIGTERM with a request held");
		wait_all();
		ok(r.failed && r.err.transient,
		    "and the waiting client gets a transient error (%s)",
		    errstr(&r.err));
	}

	s3_client_free(s3);
	storage_url_free(&su);
	event_base_free(base);
	if (tap_failed > 0)
		show_log();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
