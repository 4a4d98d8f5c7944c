/*
 * clipsweep watch [--json]: print every result as it is published, until
 * interrupted.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "client.h"
#include "redis.h"

struct watch_cmd {
	struct client *c;
	struct redis  *sub;
	int	       subscribed;
};

static void
watch_message(struct redis *r, const char *payload, size_t len, void *arg)
{
	struct watch_cmd *w = arg;
	cJSON		 *o = cJSON_ParseWithLength(payload, len);

	if (o == NULL) {
		fprintf(stderr,
		    "clipsweep watch: ignoring a message that is "
		    "not JSON (%zu bytes)\n",
		    len);
		return;
	}
	client_print_result(w->c, o);
	cJSON_Delete(o);
}

static void
watch_subscribed(struct redis *r, const struct redis_reply *reply, void *arg)
{
	struct watch_cmd *w = arg;

	if (redis_reply_failed(reply))
		return;
	if (!w->subscribed && !w->c->json)
		fprintf(stderr, "clipsweep: watching %s (Ctrl-C to stop)\n",
		    w->c->keys.results);
	w->subscribed = 1;
}

static void
watch_state(struct redis *r, int up, void *arg)
{
	struct watch_cmd *w = arg;

	if (up && !w->subscribed &&
	    redis_subscribe(
		r, w->c->keys.results, watch_message, watch_subscribed, w) != 0)
		client_exit(w->c, EX_SOFTWARE);
	else if (!up && !w->subscribed) {
		fprintf(stderr,
		    "clipsweep: cannot connect to Redis at %s: %s\n",
		    w->c->cfg.redis.redacted, redis_last_error(r));
		client_exit(w->c, EX_UNAVAILABLE);
	} else if (!up)
		fprintf(stderr,
		    "clipsweep: lost Redis (%s); reconnecting, "
		    "results published meanwhile are missed\n",
		    redis_last_error(r));
}

static void
watch_signal(evutil_socket_t sig, short what, void *arg)
{
	client_exit(arg, 0);
}

static int
watch_exec(struct client *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct watch_cmd w;
	struct event	*sigint, *sigterm;
	int		 ch;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = 1;
			break;
		case 'h':
			printf("usage: clipsweep watch %s\n",
			    cmd_watch_entry.usage);
			return 0;
		default:
			fprintf(stderr, "usage: clipsweep watch %s\n",
			    cmd_watch_entry.usage);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: clipsweep watch %s\n",
		    cmd_watch_entry.usage);
		return EX_USAGE;
	}
	memset(&w, 0, sizeof(w));
	w.c = c;
	w.sub = redis_new(c->base, c->dns, &c->cfg.redis, "results");
	redis_set_state_cb(w.sub, watch_state, &w);
	sigint = evsignal_new(c->base, SIGINT, watch_signal, c);
	sigterm = evsignal_new(c->base, SIGTERM, watch_signal, c);
	evsignal_add(sigint, NULL);
	evsignal_add(sigterm, NULL);
	redis_connect(w.sub);
	event_base_dispatch(c->base);
	redis_free(w.sub);
	event_free(sigint);
	event_free(sigterm);
	return c->exit_code;
}

const struct cmd_entry cmd_watch_entry = {
    .name = "watch",
    .usage = "[--json]",
    .exec = watch_exec,
};
