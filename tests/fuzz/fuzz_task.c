/*
 * libFuzzer target for task_parse(): the input is one raw queue message.
 *
 * Invariants checked, beyond not crashing or leaking:
 *  - an accepted message was at most 64 KiB of valid UTF-8 without NUL;
 *  - an accepted task has an id of 1 to 128 printable bytes (144 for a
 *    sweep_shard, whose id is its sweep's plus a suffix), a type whose
 *    name matches, a job_id (1 to 128 printable bytes) exactly when it is
 *    a job_cleanup, numbers in their documented ranges and a prefix that
 *    key_unsafe_reason() accepts;
 *  - an accepted task, written back as JSON, parses to the same task;
 *  - a rejection has a documented code, a non-empty UTF-8 message and an
 *    id that is empty or printable (at most 144 bytes: the message may be
 *    a sweep_shard's), and leaves nothing allocated in t;
 *  - parsing is deterministic: the same input twice gives the same answer.
 */
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "fuzz.h"
#include "task.h"
#include "util.h"

static const char *const error_codes[] = {
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "duplicate_key",
    "missing_field",
    "unknown_type",
    "unknown_field",
    "invalid_field",
};

/* 1 to max bytes of UTF-8 without C0 controls or DEL, like text_ok(). */
static int
printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1), i;

	if (n == 0 || n > max || !utf8_valid(s, n))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int
known_code(const char *code)
{
	size_t i;

	for (i = 0; i < nitems(error_codes); i++)
		if (code != NULL && strcmp(code, error_codes[i]) == 0)
			return 1;
	return 0;
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Numbers compare with ==, since cJSON_Compare() finds inf unequal to
 * itself; or, when written out and read back, within cJSON's printing
 * precision (15 significant digits).
 */
static int
same_json_scalar(const cJSON *a, const cJSON *b, int printed)
{
	double x, y;

	if (a == NULL || b == NULL)
		return a == b;
	if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
		return cJSON_Compare(a, b, 1);
	x = a->valuedouble;
	y = b->valuedouble;
	return x == y || (printed && fabs(x - y) <= fabs(x) * 1e-14);
}

/*
 * Equal as tasks; an assigned id is random, so ids compare only if given;
 * printed: b was parsed from a written out.
 */
static int
same_task(
    const struct task *a, const struct task *b, int compare_ids, int printed)
{
	return a->type == b->type && same_str(a->type_name, b->type_name) &&
	    (!compare_ids || strcmp(a->id, b->id) == 0) &&
	    same_str(a->job_id, b->job_id) && a->dry_run == b->dry_run &&
	    a->force == b->force && a->retention_days == b->retention_days &&
	    a->min_age_hours == b->min_age_hours &&
	    same_str(a->prefix, b->prefix) &&
	    same_json_scalar(a->enqueued_at, b->enqueued_at, printed);
}

static void
check_accepted(const uint8_t *data, size_t size, const struct task *t)
{
	FUZZ_CHECK(size <= TASK_MAX_BYTES);
	FUZZ_CHECK(memchr(data, '\0', size) == NULL);
	FUZZ_CHECK(utf8_valid((const char *)data, size));
	FUZZ_CHECK(printable(t->id,
	    t->type == TASK_SWEEP_SHARD ? TASK_SHARD_ID_MAX : TASK_ID_MAX));
	FUZZ_CHECK(!t->id_assigned || strlen(t->id) == 36);
	FUZZ_CHECK(same_str(t->type_name, task_type_name(t->type)));
	FUZZ_CHECK(t->dry_run == 0 || t->dry_run == 1);
	FUZZ_CHECK(t->force == 0 || t->force == 1);
	FUZZ_CHECK(t->retention_days >= -1 && t->retention_days <= 3650);
	FUZZ_CHECK(t->min_age_hours >= -1 && t->min_age_hours <= 24 * 3650);
	FUZZ_CHECK(t->prefix == NULL ||
	    key_unsafe_reason(t->prefix, strlen(t->prefix)) == NULL);
	FUZZ_CHECK(t->enqueued_at == NULL || cJSON_IsString(t->enqueued_at) ||
	    cJSON_IsNumber(t->enqueued_at));
	switch (t->type) {
	case TASK_JOB_CLEANUP:
		FUZZ_CHECK(
		    t->job_id != NULL && printable(t->job_id, TASK_JOB_ID_MAX));
		FUZZ_CHECK(t->prefix == NULL && !t->force);
		FUZZ_CHECK(t->retention_days == -1 && t->min_age_hours == -1);
		break;
	case TASK_RETENTION_SWEEP:
		FUZZ_CHECK(t->job_id == NULL);
		break;
	default:
		FUZZ_CHECK(!"unknown task type");
	}
}

/* The task as the message a producer would send for it. */
static char *
task_to_json(const struct task *t)
{
	cJSON *o = cJSON_CreateObject();
	char  *s;

	cJSON_AddStringToObject(o, "type", t->type_name);
	cJSON_AddStringToObject(o, "id", t->id);
	if (t->job_id != NULL)
		cJSON_AddStringToObject(o, "job_id", t->job_id);
	cJSON_AddBoolToObject(o, "dry_run", t->dry_run);
	if (t->type == TASK_RETENTION_SWEEP)
		cJSON_AddBoolToObject(o, "force", t->force);
	if (t->retention_days != -1)
		cJSON_AddNumberToObject(
		    o, "retention_days", (double)t->retention_days);
	if (t->min_age_hours != -1)
		cJSON_AddNumberToObject(
		    o, "min_age_hours", (double)t->min_age_hours);
	if (t->prefix != NULL)
		cJSON_AddStringToObject(o, "prefix", t->prefix);
	if (t->enqueued_at != NULL)
		cJSON_AddItemToObject(
		    o, "enqueued_at", cJSON_Duplicate(t->enqueued_at, 1));
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	FUZZ_CHECK(s != NULL);
	return s;
}

static void
check_round_trip(const struct task *t)
{
	struct task	  again;
	struct task_error err;
	char		 *json = task_to_json(t);

	if (task_parse(json, strlen(json), &again, &err) != 0) {
		fprintf(stderr, "re-parse of %s failed: %s: %s\n", json,
		    err.code, err.message);
		FUZZ_CHECK(!"an accepted task round-trips");
	}
	if (!same_task(t, &again, 1, 1))
		fprintf(stderr, "re-parse of %s gave a different task\n", json);
	FUZZ_CHECK(!again.id_assigned);
	FUZZ_CHECK(same_task(t, &again, 1, 1));
	task_free(&again);
	cJSON_free(json);
}

static void
check_rejected(const struct task *t, const struct task_error *err)
{
	FUZZ_CHECK(known_code(err->code));
	FUZZ_CHECK(err->message[0] != '\0');
	FUZZ_CHECK(utf8_valid(err->message, strlen(err->message)));
	FUZZ_CHECK(err->id[0] == '\0' || printable(err->id, TASK_SHARD_ID_MAX));
	FUZZ_CHECK(
	    t->job_id == NULL && t->prefix == NULL && t->enqueued_at == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	 *raw = (const char *)data;
	struct task	  t, t2;
	struct task_error err, err2;
	int		  rc, rc2;

	rc = task_parse(raw, size, &t, &err);
	rc2 = task_parse(raw, size, &t2, &err2);
	FUZZ_CHECK(rc == rc2);
	if (rc == 0) {
		check_accepted(data, size, &t);
		FUZZ_CHECK(t.id_assigned == t2.id_assigned);
		FUZZ_CHECK(same_task(&t, &t2, !t.id_assigned, 0));
		/*
		 * known finding 1 (README.md): an enqueued_at beyond the range
		 * of a double (1e400) is accepted as inf, which cJSON
		 * writes back as null.
		 */
		if (!FUZZ_TOLERATE(1) || !cJSON_IsNumber(t.enqueued_at) ||
		    isfinite(t.enqueued_at->valuedouble))
			check_round_trip(&t);
		task_free(&t);
		task_free(&t2);
		return 0;
	}
	FUZZ_CHECK(rc == -1);
	check_rejected(&t, &err);
	FUZZ_CHECK(same_str(err.code, err2.code));
	FUZZ_CHECK(strcmp(err.message, err2.message) == 0);
	FUZZ_CHECK(strcmp(err.id, err2.id) == 0);
	return 0;
}
