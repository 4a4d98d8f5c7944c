/*
 * Results for people: one summary per result, by task type.  With --json,
 * the result as it came, on one line.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "client.h"

#define SAMPLE_MAX    10 /* keys shown per list */
#define BREAKDOWN_MAX 12 /* entries shown per breakdown */
#define JOB_W	      8	 /* label widths */
#define SWEEP_W	      12

int
result_status_final(const char *s)
{
	return s != NULL &&
	    (strcmp(s, "ok") == 0 || strcmp(s, "partial") == 0 ||
		strcmp(s, "failed") == 0 || strcmp(s, "refused") == 0);
}

const char *
client_str_field(const cJSON *o, const char *name, const char *none)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : none;
}

static const char *
str_field(const cJSON *o, const char *name)
{
	return client_str_field(o, name, NULL);
}

static int
is_dry_run(const cJSON *r)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "dry_run"));
}

const char *
client_fmt_count(double v, char *out, size_t len)
{
	char   digits[32];
	size_t n, i, o = 0;

	if (!(v >= 0 && v <= 9e15)) {
		snprintf(out, len, "?");
		return out;
	}
	n = (size_t)snprintf(digits, sizeof(digits), "%.0f", v);
	for (i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	return out;
}

static const char *
fmt_count(const cJSON *v, char *out, size_t len)
{
	return client_fmt_count(
	    cJSON_IsNumber(v) ? v->valuedouble : -1, out, len);
}

static const char *
count_field(const cJSON *o, const char *name, char *out, size_t len)
{
	return fmt_count(cJSON_GetObjectItemCaseSensitive(o, name), out, len);
}

static void
print_headline(const cJSON *r)
{
	const char *type = str_field(r, "type"), *job = str_field(r, "job_id");
	const char *msg = str_field(r, "message");

	printf("%s%s%s task %s: %s%s%s%s\n", type ? type : "task",
	    job ? " for job " : "", job ? job : "",
	    str_field(r, "id") ? str_field(r, "id") : "?",
	    str_field(r, "status") ? str_field(r, "status") : "?",
	    is_dry_run(r) ? " (dry run)" : "", msg ? ": " : "", msg ? msg : "");
}

/* Keys as strings or {key, reason}; at most max of them, then a count. */
static void
print_keys(const cJSON *o, const char *field, const char *label, int w, int max)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, field), *e;
	int	     n = 0, total = cJSON_GetArraySize(arr);

	cJSON_ArrayForEach(e, arr)
	{
		if (max > 0 && n == max) {
			printf("  %-*s ... and %d more\n", w, "", total - n);
			break;
		}
		if (cJSON_IsString(e))
			printf("  %-*s %s\n", w,
			    n == 0 || max == 0 ? label : "", e->valuestring);
		else if (cJSON_IsObject(e))
			printf("  %-*s %s (%s)\n", w,
			    n == 0 || max == 0 ? label : "",
			    str_field(e, "key") ? str_field(e, "key") : "?",
			    str_field(e, "reason") ? str_field(e, "reason")
						   : "?");
		n++;
	}
}

static void
print_errors(const cJSON *r, int w)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "errors"))
	{
		const char *key = str_field(e, "key");
		printf("  %-*s %s%s%s: %s\n", w, "error", key ? key : "",
		    key ? ": " : "",
		    str_field(e, "code") ? str_field(e, "code") : "?",
		    str_field(e, "message") ? str_field(e, "message") : "");
	}
}

static void
print_job_result(const cJSON *r)
{
	print_headline(r);
	print_keys(
	    r, "deleted_keys", is_dry_run(r) ? "would" : "deleted", JOB_W, 0);
	print_keys(r, "kept_keys", "kept", JOB_W, 0);
	print_errors(r, JOB_W);
}

/*
 * An object's members on one line, "name 12, other 3"; numbers, strings
 * and booleans only, at most BREAKDOWN_MAX of them.
 */
static void
print_breakdown(const cJSON *r, const char *field, const char *label)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(r, field), *e;
	int	     n = 0, total = cJSON_GetArraySize(o);
	char	     num[32];

	if (!cJSON_IsObject(o) || o->child == NULL)
		return;
	printf("  %-12s", label);
	cJSON_ArrayForEach(e, o)
	{
		if (n == BREAKDOWN_MAX) {
			printf(", ... and %d more", total - n);
			break;
		}
		printf("%s%s ", n++ ? ", " : " ", e->string);
		if (cJSON_IsNumber(e))
			printf("%s", fmt_count(e, num, sizeof(num)));
		else if (cJSON_IsString(e))
			printf("%s", e->valuestring);
		else if (cJSON_IsBool(e))
			printf("%s", cJSON_IsTrue(e) ? "yes" : "no");
		else
			printf("...");
	}
	printf("\n");
}

static void
print_sweep_counts(const cJSON *r)
{
	const cJSON *ratio = cJSON_GetObjectItemCaseSensitive(
	    r, "delete_ratio");
	const cJSON *mb = cJSON_GetObjectItemCaseSensitive(
	    r, "deleted_size_mb");
	char a[32], b[32];

	printf("  %-12s %s objects; the database refers to %s keys\n",
	    "scanned", count_field(r, "total_objects_scanned", a, sizeof(a)),
	    count_field(r, "objects_in_database", b, sizeof(b)));
	printf("  %-12s %s (%.2f MB)",
	    is_dry_run(r) ? "would delete" : "deleted",
	    count_field(r, "deleted_count", a, sizeof(a)),
	    cJSON_IsNumber(mb) ? mb->valuedouble : 0.0);
	if (cJSON_IsNumber(ratio))
		printf(", %.1f%% of the objects scanned",
		    ratio->valuedouble * 100.0);
	printf("\n  %-12s %s\n", "retained",
	    count_field(r, "retained_count", a, sizeof(a)));
}

static void
print_sweep_result(const cJSON *r)
{
	const char  *refused = str_field(r, "refused_reason");
	const char  *prefix = str_field(r, "scan_prefix");
	const cJSON *shards = cJSON_GetObjectItemCaseSensitive(r, "shards");
	const cJSON *w;

	print_headline(r);
	if (cJSON_GetObjectItemCaseSensitive(r, "total_objects_scanned") ==
	    NULL) {
		/* Failed before it scanned anything: the errors say why. */
		print_errors(r, SWEEP_W);
		return;
	}
	if (refused != NULL)
		printf("  %-12s %s\n  %-12s nothing was deleted\n",
		    "REFUSED:", refused, "");
	printf("  %-12s %s\n", "prefix", prefix ? prefix : "?");
	if (cJSON_IsNumber(shards))
		printf("  %-12s %d key ranges\n", "shards", shards->valueint);
	print_sweep_counts(r);
	print_breakdown(r, "candidates_by_reason", "by reason");
	print_breakdown(r, "candidates_by_prefix", "by prefix");
	print_breakdown(r, "kept_by_reason", "kept");
	print_breakdown(r, "plan", "plan");
	print_breakdown(r, "execution", "execution");
	print_keys(r, "sample_candidate_keys",
	    is_dry_run(r) ? "would delete" : "candidates", SWEEP_W, SAMPLE_MAX);
	if (!is_dry_run(r))
		print_keys(
		    r, "deleted_files_sample", "deleted", SWEEP_W, SAMPLE_MAX);
	cJSON_ArrayForEach(w,
	    cJSON_GetObjectItemCaseSensitive(
		r, "warnings")) if (cJSON_IsString(w))
	    printf("  %-12s %s\n", "WARNING:", w->valuestring);
	print_errors(r, SWEEP_W);
}

void
client_print_result(struct client *c, const cJSON *r)
{
	const char *type = str_field(r, "type");

	if (c->json) {
		char *s = cJSON_PrintUnformatted(r);
		printf("%s\n", s);
		cJSON_free(s);
	} else if (type != NULL && strcmp(type, "retention_sweep") == 0)
		print_sweep_result(r);
	else
		print_job_result(r);
	fflush(stdout);
}
