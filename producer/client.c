#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "client.h"
#include "redis.h"

static void
connect_state(struct redis *r, int up, void *arg)
{
	struct client *c = arg;

	if (!up)
		c->exit_code = EX_UNAVAILABLE;
	event_base_loopexit(c->base, NULL);
}

int
client_connect(struct client *c)
{
	c->cmd = redis_new(c->base, c->dns, &c->cfg.redis, "commands");
	redis_set_reconnect(c->cmd, 0);
	redis_set_state_cb(c->cmd, connect_state, c);
	redis_connect(c->cmd);
	event_base_dispatch(c->base);
	if (!redis_is_ready(c->cmd)) {
		fprintf(stderr,
		    "clipsweep: cannot connect to Redis at %s: %s\n",
		    c->cfg.redis.redacted, redis_last_error(c->cmd));
		c->exit_code = EX_UNAVAILABLE;
		return -1;
	}
	redis_set_state_cb(c->cmd, NULL, NULL);
	redis_set_reconnect(c->cmd, 1);
	return 0;
}

void
client_exit(struct client *c, int code)
{
	c->exit_code = code;
	event_base_loopexit(c->base, NULL);
}

int
result_status_final(const char *s)
{
	return s != NULL &&
	    (strcmp(s, "ok") == 0 || strcmp(s, "partial") == 0 ||
		strcmp(s, "failed") == 0 || strcmp(s, "refused") == 0);
}

static const char *
str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
print_keys(const cJSON *o, const char *field, const char *label)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, field), *e;

	cJSON_ArrayForEach(e, arr)
	{
		if (cJSON_IsString(e))
			printf("  %-8s %s\n", label, e->valuestring);
		else if (cJSON_IsObject(e))
			printf("  %-8s %s (%s)\n", label,
			    str_field(e, "key") ? str_field(e, "key") : "?",
			    str_field(e, "reason") ? str_field(e, "reason")
						   : "?");
	}
}

void
client_print_result(struct client *c, const cJSON *r)
{
	const cJSON *errs, *e;
	const char  *type = str_field(r, "type"), *job = str_field(r, "job_id");
	const char  *msg = str_field(r, "message");

	if (c->json) {
		char *s = cJSON_PrintUnformatted(r);
		printf("%s\n", s);
		cJSON_free(s);
		fflush(stdout);
		return;
	}
	printf("%s%s%s task %s: %s%s%s%s\n", type ? type : "task",
	    job ? " for job " : "", job ? job : "",
	    str_field(r, "id") ? str_field(r, "id") : "?",
	    str_field(r, "status") ? str_field(r, "status") : "?",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "dry_run"))
		? " (dry run)"
		: "",
	    msg ? ": " : "", msg ? msg : "");
	print_keys(r, "deleted_keys",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "dry_run"))
		? "would"
		: "deleted");
	print_keys(r, "kept_keys", "kept");
	errs = cJSON_GetObjectItemCaseSensitive(r, "errors");
	cJSON_ArrayForEach(e, errs)
	{
		const char *key = str_field(e, "key");
		printf("  %-8s %s%s%s: %s\n", "error", key ? key : "",
		    key ? ": " : "",
		    str_field(e, "code") ? str_field(e, "code") : "?",
		    str_field(e, "message") ? str_field(e, "message") : "");
	}
	fflush(stdout);
}
