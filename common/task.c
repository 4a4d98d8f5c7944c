#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "task.h"
#include "util.h"

enum field_kind {
	F_STRING,
	F_BOOL,
	F_COUNT,
	F_ID,
	F_ANY_TIME,
	F_HISTORY,
};

struct field {
	const char     *name;
	enum field_kind kind;
	int		required;
	int64_t		max; /* F_COUNT upper bound */
};

struct type_spec {
	const char	   *name;
	enum task_type	    type;
	const struct field *fields;
};

static const struct field job_cleanup_fields[] = {
    {"type", F_STRING, 1, 0},
    {"id", F_STRING, 0, 0},
    {"job_id", F_ID, 1, 0},
    {"dry_run", F_BOOL, 0, 0},
    {"enqueued_at", F_ANY_TIME, 0, 0},
    {"attempt", F_COUNT, 0, TASK_MAX_ATTEMPT},
    {"first_attempt_at", F_COUNT, 0, 1LL << 50},
    {"history", F_HISTORY, 0, 0},
    {NULL, 0, 0, 0},
};

static const struct field retention_sweep_fields[] = {
    {"type", F_STRING, 1, 0},
    {"id", F_STRING, 0, 0},
    {"retention_days", F_COUNT, 0, 3650},
    {"min_age_hours", F_COUNT, 0, 24 * 3650},
    {"dry_run", F_BOOL, 0, 0},
    {"force", F_BOOL, 0, 0},
    {"prefix", F_STRING, 0, 0},
    {"shards", F_COUNT, 0, TASK_MAX_SHARDS},
    {"enqueued_at", F_ANY_TIME, 0, 0},
    {"attempt", F_COUNT, 0, TASK_MAX_ATTEMPT},
    {"first_attempt_at", F_COUNT, 0, 1LL << 50},
    {"history", F_HISTORY, 0, 0},
    {NULL, 0, 0, 0},
};

/* Made by the worker that splits a sweep; see docs/PROTOCOL.md. */
static const struct field sweep_shard_fields[] = {
    {"type", F_STRING, 1, 0},
    {"id", F_STRING, 1, 0},
    {"sweep_id", F_STRING, 1, 0},
    {"run", F_STRING, 1, 0},
    {"phase", F_STRING, 1, 0},
    {"shard", F_COUNT, 1, TASK_MAX_SHARDS - 1},
    {"shards", F_COUNT, 1, TASK_MAX_SHARDS},
    {"after", F_STRING, 0, 0},
    {"upto", F_STRING, 0, 0},
    {"young_after_ms", F_COUNT, 1, 1LL << 50},
    {"started_ms", F_COUNT, 1, 1LL << 50},
    {"planned_candidates", F_COUNT, 0, 1LL << 50},
    {"candidate_limit", F_COUNT, 0, 1LL << 50},
    {"gave_up", F_STRING, 0, 0},
    {"retention_days", F_COUNT, 1, 3650},
    {"min_age_hours", F_COUNT, 1, 24 * 3650},
    {"dry_run", F_BOOL, 0, 0},
    {"force", F_BOOL, 0, 0},
    {"prefix", F_STRING, 0, 0},
    {"enqueued_at", F_ANY_TIME, 0, 0},
    {"attempt", F_COUNT, 0, TASK_MAX_ATTEMPT},
    {"first_attempt_at", F_COUNT, 0, 1LL << 50},
    {"history", F_HISTORY, 0, 0},
    {NULL, 0, 0, 0},
};

static const struct type_spec type_specs[] = {
    {"job_cleanup", TASK_JOB_CLEANUP, job_cleanup_fields},
    {"retention_sweep", TASK_RETENTION_SWEEP, retention_sweep_fields},
    {"sweep_shard", TASK_SWEEP_SHARD, sweep_shard_fields},
};

static int PRINTF_LIKE(3, 4)
    reject(struct task_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	utf8_sanitize(err->message);
	return -1;
}

const char *
task_type_name(enum task_type type)
{
	size_t i;

	for (i = 0; i < nitems(type_specs); i++)
		if (type_specs[i].type == type)
			return type_specs[i].name;
	return NULL;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * cJSON keeps the first of two equal keys and says nothing; a producer bug
 * that sends {"dry_run":true,"dry_run":false} must not be guessed at.
 */
static const char *
find_duplicate_key(const cJSON *node, int depth)
{
	const cJSON *c;
	const char **names, *dup = NULL;
	size_t	     n = 0, i;

	if (depth > 64)
		return NULL;
	for (c = node->child; c != NULL; c = c->next) {
		if (cJSON_IsObject(c) || cJSON_IsArray(c))
			if ((dup = find_duplicate_key(c, depth + 1)) != NULL)
				return dup;
		n++;
	}
	if (!cJSON_IsObject(node) || n < 2)
		return NULL;
	names = xcalloc(n, sizeof(*names));
	for (i = 0, c = node->child; c != NULL; c = c->next)
		names[i++] = c->string;
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 1; i < n && dup == NULL; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			dup = names[i];
	free(names);
	return dup;
}

static int
text_ok(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int
parse_id_field(const cJSON *v, struct task *t, struct task_error *err)
{
	double d;

	if (cJSON_IsString(v)) {
		if (!text_ok(v->valuestring, TASK_JOB_ID_MAX))
			return reject(err, "invalid_field",
			    "field 'job_id' "
			    "must be 1 to %d printable characters",
			    TASK_JOB_ID_MAX);
		t->job_id = xstrdup(v->valuestring);
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return reject(err, "invalid_field",
		    "field 'job_id' must be a "
		    "string or an integer");
	d = v->valuedouble;
	if (d < 0 || d > 9007199254740992.0 || d != floor(d))
		return reject(err, "invalid_field",
		    "field 'job_id' must be an "
		    "integer from 0 to 2^53");
	t->job_id = xasprintf("%.0f", d);
	return 0;
}

/* Where a string field goes; NULL for type, id (the envelope's). */
static char **
string_slot(struct task *t, const char *name)
{
	if (strcmp(name, "prefix") == 0)
		return &t->prefix;
	if (strcmp(name, "sweep_id") == 0)
		return &t->shard.sweep_id;
	if (strcmp(name, "run") == 0)
		return &t->shard.run;
	if (strcmp(name, "after") == 0)
		return &t->shard.after;
	if (strcmp(name, "upto") == 0)
		return &t->shard.upto;
	return NULL;
}

static int
parse_string(const struct field *f, const char *v, struct task *t,
    struct task_error *err)
{
	const char *why;
	char	  **slot;

	if (strcmp(f->name, "phase") == 0) {
		if (strcmp(v, "plan") != 0 && strcmp(v, "execute") != 0)
			return reject(err, "invalid_field",
			    "field 'phase' must be \"plan\" or \"execute\"");
		t->shard.phase = v[0] == 'p' ? SHARD_PLAN : SHARD_EXECUTE;
		return 0;
	}
	if (strcmp(f->name, "gave_up") == 0) {
		if (strcmp(v, "redelivery_limit") != 0)
			return reject(err, "invalid_field",
			    "field 'gave_up' must be \"redelivery_limit\"");
		t->shard.gave_up = 1;
		return 0;
	}
	if ((slot = string_slot(t, f->name)) == NULL)
		return 0;
	if (strcmp(f->name, "prefix") == 0 &&
	    (why = key_unsafe_reason(v, strlen(v))) != NULL)
		return reject(
		    err, "invalid_field", "field 'prefix' is unsafe: %s", why);
	if ((strcmp(f->name, "sweep_id") == 0 || strcmp(f->name, "run") == 0) &&
	    !text_ok(v, TASK_ID_MAX))
		return reject(err, "invalid_field",
		    "field '%s' must be 1 to %d printable characters", f->name,
		    TASK_ID_MAX);
	if (strlen(v) > TASK_SHARD_KEY_MAX)
		return reject(err, "invalid_field",
		    "field '%s' is longer than %d bytes", f->name,
		    TASK_SHARD_KEY_MAX);
	*slot = xstrdup(v);
	return 0;
}

/* Where a number field goes, but for attempt and shard (ints). */
static int64_t *
count_slot(struct task *t, const char *name)
{
	if (strcmp(name, "retention_days") == 0)
		return &t->retention_days;
	if (strcmp(name, "min_age_hours") == 0)
		return &t->min_age_hours;
	if (strcmp(name, "shards") == 0)
		return &t->shards;
	if (strcmp(name, "young_after_ms") == 0)
		return &t->shard.young_after_ms;
	if (strcmp(name, "started_ms") == 0)
		return &t->shard.started_ms;
	if (strcmp(name, "planned_candidates") == 0)
		return &t->shard.planned;
	if (strcmp(name, "candidate_limit") == 0)
		return &t->shard.limit;
	return &t->first_attempt_at;
}

static int
parse_field(const struct field *f, const cJSON *v, struct task *t,
    struct task_error *err)
{
	switch (f->kind) {
	case F_STRING:
		if (!cJSON_IsString(v))
			return reject(err, "invalid_field",
			    "field '%s' must be "
			    "a string",
			    f->name);
		return parse_string(f, v->valuestring, t, err);
	case F_BOOL:
		if (!cJSON_IsBool(v))
			return reject(err, "invalid_field",
			    "field '%s' must be "
			    "true or false",
			    f->name);
		if (strcmp(f->name, "dry_run") == 0)
			t->dry_run = cJSON_IsTrue(v);
		else
			t->force = cJSON_IsTrue(v);
		return 0;
	case F_COUNT:
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
		    v->valuedouble > (double)f->max ||
		    v->valuedouble != floor(v->valuedouble))
			return reject(err, "invalid_field",
			    "field '%s' must be "
			    "an integer from 0 to %lld",
			    f->name, (long long)f->max);
		if (strcmp(f->name, "attempt") == 0)
			t->attempt = (int)v->valuedouble;
		else if (strcmp(f->name, "shard") == 0)
			t->shard.index = (int)v->valuedouble;
		else
			*count_slot(t, f->name) = (int64_t)v->valuedouble;
		return 0;
	case F_HISTORY:
		if (!cJSON_IsArray(v) ||
		    cJSON_GetArraySize(v) > TASK_MAX_ATTEMPT)
			return reject(err, "invalid_field",
			    "field 'history' must be an array of at most %d "
			    "entries",
			    TASK_MAX_ATTEMPT);
		t->history = cJSON_Duplicate(v, 1);
		return 0;
	case F_ID:
		return parse_id_field(v, t, err);
	case F_ANY_TIME:
		if ((!cJSON_IsString(v) && !cJSON_IsNumber(v)) ||
		    (cJSON_IsNumber(v) && !isfinite(v->valuedouble)))
			return reject(err, "invalid_field",
			    "field '%s' must be "
			    "a timestamp string or a number",
			    f->name);
		t->enqueued_at = cJSON_Duplicate(v, 1);
		return 0;
	}
	return reject(
	    err, "invalid_field", "field '%s' has no parser", f->name);
}

static int
parse_fields(const struct type_spec *spec, const cJSON *root, struct task *t,
    struct task_error *err)
{
	const struct field *f;
	const cJSON	   *c;

	for (c = root->child; c != NULL; c = c->next) {
		for (f = spec->fields; f->name != NULL; f++)
			if (strcmp(f->name, c->string) == 0)
				break;
		if (f->name == NULL)
			return reject(err, "unknown_field",
			    "field '%.64s' is "
			    "not part of a %s task",
			    c->string, spec->name);
		if (parse_field(f, c, t, err) != 0)
			return -1;
	}
	for (f = spec->fields; f->name != NULL; f++)
		if (f->required &&
		    cJSON_GetObjectItemCaseSensitive(root, f->name) == NULL)
			return reject(err, "missing_field",
			    "field '%s' is "
			    "required in a %s task",
			    f->name, spec->name);
	return 0;
}

static int
parse_envelope(const cJSON *root, struct task *t, struct task_error *err,
    const struct type_spec **specp)
{
	const cJSON *id, *type;
	size_t	     i, idmax;

	type = cJSON_GetObjectItemCaseSensitive(root, "type");
	idmax = cJSON_IsString(type) &&
		strcmp(type->valuestring, "sweep_shard") == 0
	    ? TASK_SHARD_ID_MAX
	    : TASK_ID_MAX;
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (id != NULL) {
		if (!cJSON_IsString(id) || !text_ok(id->valuestring, idmax))
			return reject(err, "invalid_field",
			    "field 'id' must be "
			    "1 to %zu printable characters",
			    idmax);
		strlcpy_(t->id, id->valuestring, sizeof(t->id));
		strlcpy_(err->id, id->valuestring, sizeof(err->id));
	}
	if (type == NULL)
		return reject(err, "missing_field", "field 'type' is required");
	if (!cJSON_IsString(type))
		return reject(err, "invalid_field",
		    "field 'type' must be a "
		    "string");
	for (i = 0; i < nitems(type_specs); i++)
		if (strcmp(type_specs[i].name, type->valuestring) == 0) {
			*specp = &type_specs[i];
			return 0;
		}
	return reject(err, "unknown_type",
	    "type '%.64s' is not a task type "
	    "this worker knows",
	    type->valuestring);
}

static int
has_escaped_nul(const char *raw, size_t len)
{
	size_t i;

	for (i = 0; i + 6 <= len; i++)
		if (raw[i] == '\\' &&
		    (raw[i + 1] == 'u' || raw[i + 1] == 'U') &&
		    strncmp(raw + i + 2, "0000", 4) == 0)
			return 1;
	return 0;
}

int
task_parse(const char *raw, size_t len, struct task *t, struct task_error *err)
{
	const struct type_spec *spec = NULL;
	const char	       *end = NULL, *dup;
	cJSON		       *root;
	int			rc = -1;

	memset(t, 0, sizeof(*t));
	memset(err, 0, sizeof(*err));
	t->retention_days = t->min_age_hours = t->shards = -1;
	t->attempt = 1;
	if (len > TASK_MAX_BYTES)
		return reject(err, "too_large",
		    "message is %zu bytes, more than "
		    "the %d allowed",
		    len, TASK_MAX_BYTES);
	if (memchr(raw, '\0', len) != NULL)
		return reject(
		    err, "invalid_json", "message contains a NUL byte");
	if (!utf8_valid(raw, len))
		return reject(
		    err, "invalid_utf8", "message is not valid UTF-8");
	/*
	 * cJSON decodes \u0000 into its C strings, which then end early:
	 * "job_id":"42\u0000x" would read as 42.  Refuse it outright.
	 */
	if (has_escaped_nul(raw, len))
		return reject(err, "invalid_json",
		    "message contains an escaped NUL (\\u0000)");
	root = cJSON_ParseWithLengthOpts(raw, len, &end, 0);
	if (root == NULL) {
		size_t at = end != NULL && end >= raw
		    ? (size_t)(end - raw)
		    : (cJSON_GetErrorPtr() != NULL
			      ? (size_t)(cJSON_GetErrorPtr() - raw)
			      : 0);
		return reject(err, "invalid_json",
		    "message is not valid JSON "
		    "(near byte %zu)",
		    at);
	}
	while (end != NULL && end < raw + len && strchr(" \t\r\n", *end))
		end++;
	if (end != raw + len) {
		reject(err, "invalid_json",
		    "message has trailing data after "
		    "the JSON value (at byte %zu)",
		    (size_t)(end - raw));
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		reject(err, "invalid_json", "message must be a JSON object");
		goto out;
	}
	if ((dup = find_duplicate_key(root, 0)) != NULL) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
		/* The id is still worth reporting when it is not the dup. */
		if (strcmp(dup, "id") != 0 && cJSON_IsString(id) &&
		    text_ok(id->valuestring, TASK_ID_MAX))
			strlcpy_(err->id, id->valuestring, sizeof(err->id));
		reject(err, "duplicate_key", "key '%.64s' appears twice", dup);
		goto out;
	}
	if (parse_envelope(root, t, err, &spec) != 0)
		goto out;
	t->type = spec->type;
	t->type_name = spec->name;
	if (parse_fields(spec, root, t, err) != 0)
		goto out;
	if (t->attempt < 1)
		t->attempt = 1;
	if (t->shards == 0) {
		reject(err, "invalid_field",
		    "field 'shards' must be an integer from 1 to %d",
		    TASK_MAX_SHARDS);
		goto out;
	}
	if (t->type == TASK_SWEEP_SHARD)
		t->shard.count = (int)t->shards;
	if (t->type == TASK_SWEEP_SHARD &&
	    (t->shard.count < 2 || t->shard.index >= t->shard.count)) {
		reject(err, "invalid_field",
		    "field 'shard' must be below 'shards', and 'shards' at "
		    "least 2");
		goto out;
	}
	if (t->id[0] == '\0') {
		uuid_v4(t->id);
		t->id_assigned = 1;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc != 0)
		task_free(t);
	return rc;
}

void
task_free(struct task *t)
{
	free(t->job_id);
	free(t->prefix);
	free(t->shard.sweep_id);
	free(t->shard.run);
	free(t->shard.after);
	free(t->shard.upto);
	memset(&t->shard, 0, sizeof(t->shard));
	cJSON_Delete(t->enqueued_at);
	cJSON_Delete(t->history);
	t->history = NULL;
	t->job_id = t->prefix = NULL;
	t->enqueued_at = NULL;
}
