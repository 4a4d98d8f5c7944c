/*
 * s3mem: an in-memory S3 server for clipsweep's tests (never installed).
 *
 *   s3mem --listen HOST:PORT [--ready-file PATH]
 *         [--access-key ID --secret-key SECRET] [--region REGION]
 *         [--bucket NAME]... [--verbose]
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
 *                and handling time
 * --fail-lists N[:M]
 *                fault injection: after N listing requests, the next M
 *                (all, without :M) get 500 InternalError
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
	int	     verbose;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: s3mem --listen HOST:PORT [--ready-file PATH]\n"
	    "             [--access-key ID --secret-key SECRET] "
	    "[--region REGION]\n"
	    "             [--bucket NAME]... [--verbose] "
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
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	o->region = "us-east-1";
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
		case 'F': {
			char *end;
			long  n = strtol(optarg, &end, 10), m = -1;
			if (*end == ':')
				m = strtol(end + 1, &end, 10);
			if (*optarg == '\0' || *end != '\0' || n < 0)
				fatal_code(64,
				    "--fail-lists wants N or N:M, not \"%s\"",
				    optarg);
			ops_list_fail_after(n, m);
			break;
		}
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
	free(o.buckets);
	free(o.host);
	return 0;
}
