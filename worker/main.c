/*
 * clipsweep-worker: claims cleanup tasks from Redis and runs them against
 * PostgreSQL and S3, all on one libevent loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "clipsweep_config.h"
#include "config.h"
#include "log.h"
#include "worker.h"

#define DEFAULT_CONCURRENCY	16
#define DEFAULT_DRAIN_TIMEOUT_S 20
#define MAX_CONCURRENCY		1024
#define DEFAULT_METRICS_LISTEN	"127.0.0.1:9540"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: clipsweep-worker [--concurrency N] [--queues LIST] "
	    "[--drain]\n"
	    "                        [--drain-timeout SECONDS] "
	    "[--metrics-listen ADDR:PORT]\n"
	    "\n"
	    "Claims cleanup tasks from Redis and deletes what they allow "
	    "from Cloudcube (S3).\n"
	    "\n"
	    "  -c, --concurrency N  tasks run at once (1 to %d, default %d)\n"
	    "  -q, --queues LIST    queues to claim from, in order "
	    "(default jobs,sweeps)\n"
	    "      --drain          exit 0 once the queues are empty and "
	    "nothing is in flight\n"
	    "      --drain-timeout S  after SIGTERM, give tasks in flight S "
	    "seconds, then\n"
	    "                       return them to their queues and exit "
	    "(default %d; 0 waits)\n"
	    "      --metrics-listen ADDR:PORT  serve /metrics, /livez and "
	    "/readyz there\n"
	    "                       (default $CLIPSWEEP_METRICS_LISTEN, else "
	    "%s; none: off)\n"
	    "  -h, --help           show this help\n"
	    "  -V, --version        show the version\n"
	    "\n"
	    "Configuration is read from the environment: CLIPSWEEP_REDIS_URL "
	    "(or REDIS_URL),\n"
	    "CLIPSWEEP_DATABASE_URL (or DATABASE_URL), CLOUDCUBE_URL, "
	    "CLOUDCUBE_ACCESS_KEY_ID,\n"
	    "CLOUDCUBE_SECRET_ACCESS_KEY (each secret also as NAME_FILE or a "
	    "credential);\nsee README.md.\n",
	    MAX_CONCURRENCY, DEFAULT_CONCURRENCY, DEFAULT_DRAIN_TIMEOUT_S,
	    DEFAULT_METRICS_LISTEN);
}

static int
parse_queues(const char *arg, struct worker_options *opt)
{
	char *copy = xstrdup(arg), *save = NULL, *tok;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t i;
		if (*tok == '\0' ||
		    strspn(tok,
			"abcdefghijklmnopqrstuvwxyz"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
			strlen(tok)) {
			fprintf(stderr,
			    "clipsweep-worker: --queues: '%s' is "
			    "not a queue name (letters, digits, _ and -)\n",
			    tok);
			free(copy);
			return -1;
		}
		for (i = 0; i < opt->nqueues; i++)
			if (strcmp(opt->queues[i], tok) == 0)
				break;
		if (i < opt->nqueues)
			continue;
		opt->queues = xrealloc(
		    opt->queues, (opt->nqueues + 1) * sizeof(*opt->queues));
		opt->queues[opt->nqueues++] = xstrdup(tok);
	}
	free(copy);
	if (opt->nqueues == 0) {
		fprintf(stderr,
		    "clipsweep-worker: --queues needs at least one "
		    "queue name\n");
		return -1;
	}
	return 0;
}

static int
parse_options(int argc, char **argv, struct worker_options *opt)
{
	static const struct option longopts[] = {
	    {"concurrency", required_argument, NULL, 'c'},
	    {"queues", required_argument, NULL, 'q'},
	    {"drain", no_argument, NULL, 'D'},
	    {"drain-timeout", required_argument, NULL, 'T'},
	    {"metrics-listen", required_argument, NULL, 'M'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	long  v;
	int   ch;

	opt->concurrency = DEFAULT_CONCURRENCY;
	opt->drain_timeout_ms = DEFAULT_DRAIN_TIMEOUT_S * 1000;
	opt->metrics_listen = getenv("CLIPSWEEP_METRICS_LISTEN");
	if (opt->metrics_listen == NULL || *opt->metrics_listen == '\0')
		opt->metrics_listen = DEFAULT_METRICS_LISTEN;
	while ((ch = getopt_long(argc, argv, "c:q:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || v < 1 ||
			    v > MAX_CONCURRENCY) {
				fprintf(stderr,
				    "clipsweep-worker: "
				    "--concurrency must be 1 to %d, not '%s'\n",
				    MAX_CONCURRENCY, optarg);
				return EX_USAGE;
			}
			opt->concurrency = (int)v;
			break;
		case 'q':
			if (parse_queues(optarg, opt) != 0)
				return EX_USAGE;
			break;
		case 'D':
			opt->drain = 1;
			break;
		case 'T':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || *optarg == '\0' ||
			    v < 0 || v > 3600) {
				fprintf(stderr,
				    "clipsweep-worker: --drain-timeout must be "
				    "0 to 3600 seconds, not '%s'\n",
				    optarg);
				return EX_USAGE;
			}
			opt->drain_timeout_ms = (int)v * 1000;
			break;
		case 'M':
			opt->metrics_listen = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("clipsweep-worker %s\n", CLIPSWEEP_VERSION);
			exit(0);
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "clipsweep-worker: unexpected argument '%s'\n",
		    argv[optind]);
		return EX_USAGE;
	}
	if (opt->nqueues == 0 && parse_queues("jobs,sweeps", opt) != 0)
		return EX_SOFTWARE;
	return 0;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	worker_stop(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
log_started(const struct config *cfg, const struct worker_options *opt,
    const struct worker *w)
{
	char   conc[16], queues[256] = "";
	size_t i;

	for (i = 0; i < opt->nqueues; i++) {
		if (i > 0)
			strncat(
			    queues, ",", sizeof(queues) - strlen(queues) - 1);
		strncat(queues, opt->queues[i],
		    sizeof(queues) - strlen(queues) - 1);
	}
	snprintf(conc, sizeof(conc), "%d", opt->concurrency);
	logkv(LOG_INFO, "started", "version", CLIPSWEEP_VERSION, "worker",
	    cfg->worker_id, "queues", queues, "concurrency", conc, "drain",
	    opt->drain ? "true" : "false", "redis", cfg->redis.redacted,
	    "database", cfg->database_redacted, "storage",
	    cfg->storage.redacted, "region", cfg->storage.region, "namespace",
	    cfg->namespace, "metrics", worker_metrics_address(w), (char *)NULL);
}

int
main(int argc, char **argv)
{
	struct worker_options opt;
	struct event_base    *base;
	struct evdns_base    *dns;
	struct event	     *sigterm, *sigint;
	struct worker	     *w;
	struct config	      cfg;
	char		      err[512];
	size_t		      i;
	int		      rc;

	memset(&opt, 0, sizeof(opt));
	log_init("clipsweep-worker", stdout);
	if ((rc = parse_options(argc, argv, &opt)) != 0)
		return rc;
	if (config_load(&cfg,
		CONFIG_NEED_REDIS | CONFIG_NEED_DATABASE | CONFIG_NEED_STORAGE,
		err, sizeof(err)) != 0)
		fatal_code(EX_CONFIG, "configuration: %s", err);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatal("curl_global_init failed");
	srandom((unsigned)(now_ms() ^ getpid()));

	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if ((dns = evdns_base_new(base,
		 EVDNS_BASE_INITIALIZE_NAMESERVERS |
		     EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL)
		fatal_code(EX_OSERR,
		    "cannot set up DNS resolution from "
		    "/etc/resolv.conf");
	w = worker_new(base, dns, &cfg, &opt);
	sigterm = evsignal_new(base, SIGTERM, on_signal, w);
	sigint = evsignal_new(base, SIGINT, on_signal, w);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	log_started(&cfg, &opt, w);
	worker_start(w);
	event_base_dispatch(base);

	worker_free(w);
	event_free(sigterm);
	event_free(sigint);
	evdns_base_free(dns, 0);
	event_base_free(base);
	config_free(&cfg);
	for (i = 0; i < opt.nqueues; i++)
		free(opt.queues[i]);
	free(opt.queues);
	curl_global_cleanup();
	return 0;
}
