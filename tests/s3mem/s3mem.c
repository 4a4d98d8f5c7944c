/*
 * s3mem: an in-memory S3 server for clipsweep's tests (never installed).
 *
 *   s3mem --listen HOST:PORT [--ready-file PATH]
 *         [--access-key ID --secret-key SECRET] [--region REGION]
 *         [--bucket NAME]... [--verbose]
 *         [--fault RULE]... [--fault-seed N] [--fail-lists N[:M]]
 *
 * --listen       address to bind; port 0 takes a free port
 * --ready-file   once listening, the port is written here (atomically)
 * --access-key, --secret-key
 *                the one key pair; with them every request must carry a
 *                valid AWS SigV4 Authorization header (checked with
 *                common/sigv4.c, see auth.h), else everyone is let in
 * --region       the signing region (default us-east-1)
 * --bucket       a bucket to create at start; repeatable
 * --verbose      one line per request on stderr: method, target, status
 *                (or reset, close, stall), handling time and the faults
 *                applied
 * --fault RULE   a fault rule (see "Fault injection" below); repeatable,
 *                kept in order
 * --fault-seed N seed of the faults' random draws (default 1)
 * --fail-lists N[:M]
 *                shorthand for --fault "op=list after=N count=M error=500"
 *                (no count without :M): after N listing requests, the
 *                next M (all) get 500 InternalError
 * SIGTERM and SIGINT stop it cleanly (exit 0).
 *
 * Unlike s3rver it lists keys in S3's order, UTF-8 byte order, for any
 * number of keys.  Path-style requests only: /BUCKET and /BUCKET/KEY.
 * Operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
 * GetBucketLocation, ListObjects (v1), ListObjectsV2, PutObject,
 * GetObject (one Range), HeadObject, DeleteObject, DeleteObjects.  Objects
 * are at most 64 MiB, request bodies (seeds) 256 MiB.  Errors are S3 error
 * documents.
 *
 * Test-only extensions:
 *   x-s3mem-last-modified: UNIX_SECONDS
 *       on PutObject sets the object's LastModified.
 *   POST /BUCKET?s3mem-seed
 *       creates objects without bodies (size and time only) from a body
 *       of lines "KEY\tSIZE\tUNIX_MTIME\n", the last newline optional.
 *       KEY is raw UTF-8, 1 to 1024 bytes, no NUL, tab or newline; SIZE
 *       is 0 to 5 TiB; UNIX_MTIME is seconds (the object's LastModified).
 *       One bad line stores nothing (400 naming the line); an existing
 *       key is replaced.  The answer is <SeedResult> with Seeded,
 *       Replaced and ObjectCount.  A seeded object reads back as SIZE NUL
 *       bytes (up to 64 MiB) and has the ETag "MD5-OF-KEY-1", which no
 *       client takes for a checksum.  10^6 objects seed in 0.3 s (keys in
 *       order) to 1.6 s (shuffled), about 105 bytes each for 44-byte keys.
 *   Like every request it must be signed when credentials are set, e.g.
 *   curl --aws-sigv4 aws:amz:us-east-1:s3 --user ID:SECRET
 *        -H "x-amz-content-sha256: $(sha256sum < seed | cut -c1-64)"
 *        --data-binary @seed "http://127.0.0.1:PORT/BUCKET?s3mem-seed="
 *   (with the '=': curl 7.88 signs a bare "?s3mem-seed" as it stands,
 *   where SigV4 wants "s3mem-seed=", and it signs the query unsorted).
 *   GET /?s3mem-faults
 *       reports the fault rules: <FaultsResult><Held>H</Held><Seed>N</Seed>
 *       then per rule <Rule><Number>I</Number><Spec>RULE</Spec>
 *       <Matched>K</Matched><Fired>F</Fired><KeyErrors>E</KeyErrors></Rule>.
 *       Held counts the requests held back now (delayed or stalled);
 *       Matched the requests the rule selected, Fired those it faulted,
 *       KeyErrors the DeleteObjects keys it failed.
 *   POST /?s3mem-faults
 *       replaces every rule with the body's, one a line ('#' comments and
 *       blank lines skipped; an empty body clears them all), counters
 *       from zero, and reseeds the random draws from a line "seed=N",
 *       else with --fault-seed.  A bad line changes nothing (400 naming
 *       it).  The answer is the new report.  Signed like any request when
 *       credentials are set (curl: "/?s3mem-faults=", as for the seed).
 *   Neither extension is ever faulted or counted by the rules.
 *
 * Fault injection.  A rule is tokens NAME=VALUE or NAME, separated by
 * spaces or commas, e.g. "op=head rate=0.1 error=503", "nth=3 reset",
 * "op=delete-objects delay=2000", "key-error=%2Fbad%2F".  Each rule counts
 * the requests it selects (k = 1, 2, ... since it was set) and fires on
 * request k when every trigger it has holds:
 *   op=OP      selects list (ListObjects v1 and v2), head (HeadObject),
 *              get (GetObject), put (PutObject), delete (DeleteObject),
 *              delete-objects (DeleteObjects), bucket (every other S3
 *              request: bucket and service level) or any (the default);
 *              op= repeated selects several
 *   after=N    k > N
 *   nth=N      k == N
 *   every=N    k is a multiple of N
 *   count=N    the rule has fired fewer than N times
 *   rate=P     a random draw is below P (0 to 1), drawn only when the
 *              other triggers hold
 * What it does (at least one of):
 *   delay=MS   the answer, or the drop, comes MS ms late (at most one
 *              hour); the operation itself happens at once.  A client
 *              that closes the connection meanwhile gets nothing.
 *   jitter=MS  a further delay, uniform from 0 to MS ms
 *   error=500  500 InternalError instead of the operation;
 *              error=503: 503 SlowDown
 *   reset      no answer: the connection is aborted (RST), the client
 *              reads "connection reset by peer"
 *   close      no answer: the connection is closed (FIN), the client
 *              reads an empty reply
 *   stall      no answer ever: the request and its connection are held
 *              until the client closes it (or s3mem exits)
 *   applied    with error, reset, close or stall: the operation is
 *              carried out first and only its answer is replaced
 *   key-error=S
 *              DeleteObjects: keys containing S (%XX-escapes decoded) get
 *              an <Error> entry with key-code and are not deleted
 *   key-rate=P DeleteObjects: so does each other key with probability P
 *   key-code=C the per-key error code (default InternalError)
 * key-error and key-rate imply op=delete-objects and exclude error, reset,
 * close and stall.  When several rules fire on one request their delays
 * add up, the first one (in order) with error, reset, close or stall
 * decides the outcome, and the first with key faults picks the keys.
 * Rules see a request once it is authenticated and parsed: one refused
 * before (403, a malformed target) is neither faulted nor counted.  One
 * generator makes every draw (rate, jitter, key-rate), in the order s3mem
 * reads the requests, so a given sequence of requests meets the same
 * faults on every run.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "ops.h"
#include "server.h"

struct options {
	char	    *host;
	int	     port;
	const char  *ready_file;
	const char  *access_key;
	const char  *secret_key;
	const char  *region;
	const char **buckets;
	size_t	     nbuckets;
	char	   **fault_rules;
	size_t	     nfault_rules;
	uint64_t     fault_seed;
	int	     verbose;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: s3mem --listen HOST:PORT [--ready-file PATH]\n"
	    "             [--access-key ID --secret-key SECRET] "
	    "[--region REGION]\n"
	    "             [--bucket NAME]... [--verbose]\n"
	    "             [--fault RULE]... [--fault-seed N] "
	    "[--fail-lists N[:M]]\n");
}

/* HOST:PORT or [V6]:PORT. */
static void
parse_listen(const char *arg, struct options *o)
{
	const char *colon = strrchr(arg, ':');
	char	   *end;
	long	    port;

	if (colon == NULL || colon == arg)
		fatal_code(64, "--listen wants HOST:PORT, not \"%s\"", arg);
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port < 0 ||
	    port > 65535)
		fatal_code(64, "--listen: bad port in \"%s\"", arg);
	if (arg[0] == '[' && colon[-1] == ']')
		o->host = xstrndup(arg + 1, (size_t)(colon - arg - 2));
	else
		o->host = xstrndup(arg, (size_t)(colon - arg));
	o->port = (int)port;
}

static void
add_fault_rule(struct options *o, char *rule)
{
	o->fault_rules = xrealloc(
	    o->fault_rules, (o->nfault_rules + 1) * sizeof(*o->fault_rules));
	o->fault_rules[o->nfault_rules++] = rule;
}

/* --fail-lists N[:M], kept for the tests that use it. */
static char *
fail_lists_rule(const char *arg)
{
	char *end;
	long  n, m = -1;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (*end == ':' && end[1] >= '0' && end[1] <= '9')
		m = strtol(end + 1, &end, 10);
	if (*arg < '0' || *arg > '9' || *end != '\0' || errno != 0)
		fatal_code(64, "--fail-lists wants N or N:M, not \"%s\"", arg);
	if (m < 0)
		return xasprintf("op=list after=%ld error=500", n);
	return xasprintf("op=list after=%ld count=%ld error=500", n, m);
}

static uint64_t
parse_seed(const char *arg)
{
	char		  *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end != '\0' || errno != 0)
		fatal_code(64, "--fault-seed wants a number, not \"%s\"", arg);
	return (uint64_t)v;
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"ready-file", required_argument, NULL, 'r'},
	    {"access-key", required_argument, NULL, 'a'},
	    {"secret-key", required_argument, NULL, 's'},
	    {"region", required_argument, NULL, 'g'},
	    {"bucket", required_argument, NULL, 'b'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"fail-lists", required_argument, NULL, 'F'},
	    {"fault", required_argument, NULL, 'f'},
	    {"fault-seed", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	o->region = "us-east-1";
	o->fault_seed = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			free(o->host);
			parse_listen(optarg, o);
			break;
		case 'r':
			o->ready_file = optarg;
			break;
		case 'a':
			o->access_key = optarg;
			break;
		case 's':
			o->secret_key = optarg;
			break;
		case 'g':
			o->region = optarg;
			break;
		case 'b':
			if (!bucket_name_valid(optarg))
				fatal_code(64, "--bucket: invalid name \"%s\"",
				    optarg);
			o->buckets = xrealloc(o->buckets,
			    (o->nbuckets + 1) * sizeof(*o->buckets));
			o->buckets[o->nbuckets++] = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'F':
			add_fault_rule(o, fail_lists_rule(optarg));
			break;
		case 'f':
			add_fault_rule(o, xstrdup(optarg));
			break;
		case 'S':
			o->fault_seed = parse_seed(optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(64);
		}
	}
	if (optind != argc || o->host == NULL) {
		usage(stderr);
		exit(64);
	}
	if ((o->access_key == NULL) != (o->secret_key == NULL) ||
	    (o->access_key != NULL &&
		(o->access_key[0] == '\0' || o->secret_key[0] == '\0')))
		fatal_code(64, "--access-key and --secret-key go together");
	if (o->region[0] == '\0' || strpbrk(o->region, "/, ") != NULL)
		fatal_code(64, "--region: invalid region \"%s\"", o->region);
}

/* Written to a temporary name and renamed, so readers never see half. */
static void
write_ready_file(const char *path, int port)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *f;

	if ((f = fopen(tmp, "w")) == NULL)
		fatal("cannot write %s: %s", tmp, strerror(errno));
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		fatal("cannot write %s: %s", path, strerror(errno));
	free(tmp);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)sig;
	(void)what;
	event_base_loopexit(srv->base, NULL);
}

int
main(int argc, char **argv)
{
	struct options o;
	struct server  srv;
	struct event  *sigterm, *sigint;
	char	       err[256];
	int	       port;
	size_t	       i;

	log_init("s3mem", stderr);
	parse_options(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);

	memset(&srv, 0, sizeof(srv));
	srv.verbose = o.verbose;
	srv.auth.access_key = o.access_key;
	srv.auth.secret_key = o.secret_key;
	srv.auth.region = o.region;
	srv.store = store_create();
	srv.faults = faults_new(o.fault_seed);
	for (i = 0; i < o.nfault_rules; i++)
		if (faults_add(
			srv.faults, o.fault_rules[i], err, sizeof(err)) != 0)
			fatal_code(64, "--fault %s", err);
	for (i = 0; i < o.nbuckets; i++)
		(void)store_bucket_create(srv.store, o.buckets[i], time(NULL));
	if ((srv.base = event_base_new()) == NULL)
		fatal("event_base_new failed");
	sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
	sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
	if (sigterm == NULL || sigint == NULL ||
	    event_add(sigterm, NULL) != 0 || event_add(sigint, NULL) != 0)
		fatal("cannot set up signal events");
	if (server_listen(&srv, o.host, o.port, &port, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (o.ready_file != NULL)
		write_ready_file(o.ready_file, port);
	if (o.verbose)
		fprintf(stderr, "s3mem: listening on %s:%d\n", o.host, port);

	event_base_dispatch(srv.base);

	server_close(&srv);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(srv.base);
	store_free(srv.store);
	faults_free(srv.faults);
	for (i = 0; i < o.nfault_rules; i++)
		free(o.fault_rules[i]);
	free(o.fault_rules);
	free(o.buckets);
	free(o.host);
	return 0;
}
