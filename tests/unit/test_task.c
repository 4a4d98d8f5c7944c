#include <string.h>

#include <cjson/cJSON.h>

#include "tap.h"
#include "task.h"

static void
rejects(const char *raw, size_t len, const char *code, const char *what)
{
	struct task	  t;
	struct task_error err;
	int		  rc = task_parse(raw, len, &t, &err);

	ok(rc != 0, "rejects %s", what);
	is_str(err.code, code, "%s: code %s", what, code);
	ok(err.message[0] != '\0', "%s: says why (%s)", what, err.message);
}

#define REJECTS(s, code, what) rejects(s, sizeof(s) - 1, code, what)

static void
test_valid(void)
{
	struct task	  t;
	struct task_error err;
	const char	 *m =
	    "{\"type\":\"job_cleanup\",\"job_id\":\"42\","
	    "\"id\":\"abc\",\"dry_run\":true,\"enqueued_at\":1700000000.5}";

	ok(task_parse(m, strlen(m), &t, &err) == 0, "valid task parses");
	is_str(t.job_id, "42", "job_id string");
	is_str(t.id, "abc", "id kept");
	ok(t.dry_run == 1, "dry_run true");
	ok(!t.id_assigned, "id not assigned");
	ok(cJSON_IsNumber(t.enqueued_at), "enqueued_at kept");
	is_int(t.type, TASK_JOB_CLEANUP, "type");
	task_free(&t);

	m = "{\"type\":\"job_cleanup\",\"job_id\":9007199254740992}";
	ok(task_parse(m, strlen(m), &t, &err) == 0, "integer job_id at 2^53");
	is_str(t.job_id, "9007199254740992", "integer job_id as text");
	ok(t.id_assigned && strlen(t.id) == 36, "uuid assigned: %s", t.id);
	ok(t.dry_run == 0, "dry_run defaults to false");
	task_free(&t);

	m = " {\"type\":\"retention_sweep\",\"retention_days\":5,"
	    "\"min_age_hours\":24,\"force\":false,\"prefix\":\"public/\"}\n";
	ok(task_parse(m, strlen(m), &t, &err) == 0, "sweep parses");
	is_int(t.retention_days, 5, "retention_days");
	is_int(t.min_age_hours, 24, "min_age_hours");
	is_str(t.prefix, "public/", "prefix");
	task_free(&t);
}

static void
test_retry_fields(void)
{
	struct task	  t;
	struct task_error err;
	const char	 *m = "{\"type\":\"job_cleanup\",\"job_id\":\"1\","
			      "\"attempt\":3,\"first_attempt_at\":1763728560123,"
			      "\"history\":[{\"code\":\"job_not_found\"}]}";

	ok(task_parse(m, strlen(m), &t, &err) == 0, "retry bookkeeping parses");
	is_int(t.attempt, 3, "attempt");
	is_int(t.first_attempt_at, 1763728560123LL, "first_attempt_at");
	is_int(cJSON_GetArraySize(t.history), 1, "history kept");
	task_free(&t);
	m = "{\"type\":\"job_cleanup\",\"job_id\":\"1\"}";
	ok(task_parse(m, strlen(m), &t, &err) == 0 && t.attempt == 1,
	    "a first message is attempt 1");
	task_free(&t);
	m = "{\"type\":\"job_cleanup\",\"job_id\":\"1\",\"history\":{}}";
	ok(task_parse(m, strlen(m), &t, &err) != 0 &&
		strcmp(err.code, "invalid_field") == 0,
	    "history must be an array");
}

static void
test_id_reported(void)
{
	struct task	  t;
	struct task_error err;
	const char	 *m =
	    "{\"type\":\"job_cleanup\",\"id\":\"t-1\",\"dry_run\":1,"
	    "\"job_id\":\"1\"}";

	ok(task_parse(m, strlen(m), &t, &err) != 0, "bad dry_run rejected");
	is_str(err.id, "t-1", "error carries the id");
	is_str(err.code, "invalid_field", "invalid_field");
	ok(strstr(err.message, "dry_run") != NULL, "message names the field");
}

static void
test_rejects(void)
{
	static char big[TASK_MAX_BYTES + 64];

	REJECTS("", "invalid_json", "empty");
	REJECTS("nope", "invalid_json", "not json");
	REJECTS("[1,2]", "invalid_json", "array");
	REJECTS("\"job\"", "invalid_json", "string");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"1\"} x", "invalid_json",
	    "trailing garbage");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"1\"", "invalid_json",
	    "truncated");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"\xff\"}",
	    "invalid_utf8", "invalid utf-8");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"\xc0\xaf\"}",
	    "invalid_utf8", "overlong utf-8");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"\xed\xa0\x80\"}",
	    "invalid_utf8", "surrogate");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"1\",\"dry_run\":false,"
		"\"dry_run\":true}",
	    "duplicate_key", "duplicate key");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"1\",\"enqueued_at\":1,"
		"\"x\":{\"a\":1,\"a\":2}}",
	    "duplicate_key", "nested duplicate");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"42\\u0000 x\"}",
	    "invalid_json", "escaped NUL in a value");
	REJECTS("{\"type\":\"job_cleanup\\u0000x\",\"job_id\":\"42\"}",
	    "invalid_json", "escaped NUL in the type");
	REJECTS("{\"type\":\"rm_rf\",\"job_id\":\"1\"}", "unknown_type",
	    "unknown type");
	REJECTS("{\"job_id\":\"1\"}", "missing_field", "missing type");
	REJECTS(
	    "{\"type\":\"job_cleanup\"}", "missing_field", "missing job_id");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"1\",\"dryrun\":true}",
	    "unknown_field", "misspelt dry_run");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":-1}", "invalid_field",
	    "negative job_id");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":1.5}", "invalid_field",
	    "fractional job_id");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":9007199254740994}",
	    "invalid_field", "job_id above 2^53");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"\"}", "invalid_field",
	    "empty job_id");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"a\\nb\"}",
	    "invalid_field", "control char in job_id");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":null}", "invalid_field",
	    "null job_id");
	REJECTS(
	    "{\"type\":7,\"job_id\":\"1\"}", "invalid_field", "numeric type");
	REJECTS("{\"type\":\"job_cleanup\",\"job_id\":\"1\",\"id\":\"\"}",
	    "invalid_field", "empty id");
	REJECTS("{\"type\":\"retention_sweep\",\"retention_days\":-1}",
	    "invalid_field", "negative retention");
	REJECTS("{\"type\":\"retention_sweep\",\"retention_days\":100000}",
	    "invalid_field", "absurd retention");
	REJECTS("{\"type\":\"retention_sweep\",\"prefix\":\"../x\"}",
	    "invalid_field", "dot-dot prefix");
	rejects("{\"type\":\"job_cleanup\",\"job_id\":\"1\0\"}", 30,
	    "invalid_json", "NUL byte");

	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"job_cleanup\",\"job_id\":\"1\"}", 36);
	rejects(big, sizeof(big), "too_large", "over 64 KiB");
}

static void
test_shards(void)
{
	struct task	  t;
	struct task_error err;
	const char	 *m;

	m = "{\"type\":\"retention_sweep\",\"shards\":16}";
	ok(task_parse(m, strlen(m), &t, &err) == 0, "sweep with shards parses");
	is_int(t.shards, 16, "shards");
	task_free(&t);
	m = "{\"type\":\"retention_sweep\"}";
	ok(task_parse(m, strlen(m), &t, &err) == 0 && t.shards == -1,
	    "shards absent: -1");
	task_free(&t);

	m = "{\"type\":\"sweep_shard\",\"id\":\""
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ":execute:255\",\"sweep_id\":\"s1\",\"run\":\"r1\","
	    "\"phase\":\"execute\",\"shard\":255,\"shards\":256,"
	    "\"after\":\"a/b\",\"upto\":\"a/c\",\"young_after_ms\":5,"
	    "\"started_ms\":4,\"planned_candidates\":7,\"candidate_limit\":8,"
	    "\"retention_days\":30,\"min_age_hours\":0,\"dry_run\":false}";
	ok(task_parse(m, strlen(m), &t, &err) == 0,
	    "a shard with a 128-byte sweep id parses: %s", err.message);
	is_int(t.type, TASK_SWEEP_SHARD, "type sweep_shard");
	is_int(strlen(t.id), 140, "the shard's id is kept whole");
	is_str(t.shard.sweep_id, "s1", "sweep_id");
	is_str(t.shard.run, "r1", "run");
	is_int(t.shard.phase, SHARD_EXECUTE, "phase");
	is_int(t.shard.index, 255, "shard");
	is_int(t.shard.count, 256, "shards");
	is_str(t.shard.after, "a/b", "after");
	is_str(t.shard.upto, "a/c", "upto");
	ok(t.shard.young_after_ms == 5 && t.shard.started_ms == 4 &&
		t.shard.planned == 7 && t.shard.limit == 8,
	    "the times and the plan");
	task_free(&t);

	REJECTS("{\"type\":\"retention_sweep\",\"shards\":0}", "invalid_field",
	    "zero shards");
	REJECTS("{\"type\":\"retention_sweep\",\"shards\":257}",
	    "invalid_field", "257 shards");
	REJECTS("{\"type\":\"retention_sweep\",\"shards\":2.5}",
	    "invalid_field", "fractional shards");
	REJECTS("{\"type\":\"sweep_shard\",\"id\":\"x\",\"sweep_id\":"
		"\"s\",\"run\":\"r\",\"phase\":\"plan\",\"shard\":2,"
		"\"shards\":2,\"young_after_ms\":1,\"started_ms\":1,"
		"\"retention_days\":1,\"min_age_hours\":1}",
	    "invalid_field", "a shard index not below shards");
	REJECTS("{\"type\":\"sweep_shard\",\"id\":\"x\",\"sweep_id\":"
		"\"s\",\"run\":\"r\",\"phase\":\"delete\",\"shard\":0,"
		"\"shards\":2,\"young_after_ms\":1,\"started_ms\":1,"
		"\"retention_days\":1,\"min_age_hours\":1}",
	    "invalid_field", "an unknown phase");
	REJECTS("{\"type\":\"sweep_shard\",\"id\":\"x\",\"sweep_id\":"
		"\"s\",\"phase\":\"plan\",\"shard\":0,\"shards\":2,"
		"\"young_after_ms\":1,\"started_ms\":1,"
		"\"retention_days\":1,\"min_age_hours\":1}",
	    "missing_field", "a shard without its run");
	REJECTS(
	    "{\"type\":\"job_cleanup\",\"job_id\":\"1\",\"id\":\""
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "a\"}",
	    "invalid_field", "a 129-byte id outside a shard");
}

int
main(void)
{
	test_valid();
	test_id_reported();
	test_retry_fields();
	test_rejects();
	test_shards();
	return tap_done();
}
