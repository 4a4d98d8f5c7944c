#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static void
test_redis_urls(void)
{
	struct redis_url r;
	char		 err[256];

	ok(redis_url_parse("redis://127.0.0.1:6380/3", &r, err, sizeof(err)) ==
		0,
	    "plain url");
	is_str(r.host, "127.0.0.1", "host");
	is_int(r.port, 6380, "port");
	is_int(r.db, 3, "db");
	is_int(r.tls, 0, "no tls");
	ok(r.password == NULL && r.user == NULL, "no credentials");
	redis_url_free(&r);

	ok(redis_url_parse("rediss://alice:p%40ss%3Aw0rd@cache.example:25061",
	       &r, err, sizeof(err)) == 0,
	    "tls url with credentials");
	is_int(r.tls, 1, "tls");
	is_int(r.verify, 1, "verification on by default");
	is_str(r.user, "alice", "user");
	is_str(r.password, "p@ss:w0rd", "password url-decoded");
	is_int(r.port, 25061, "port");
	is_int(r.db, 0, "default db");
	ok(strstr(r.redacted, "w0rd") == NULL, "redacted hides password: %s",
	    r.redacted);
	redis_url_free(&r);

	ok(redis_url_parse("rediss://:secret@h:1?ssl_cert_reqs=none", &r, err,
	       sizeof(err)) == 0,
	    "ssl_cert_reqs=none");
	is_int(r.verify, 0, "verification off");
	ok(r.user == NULL, "empty user is none");
	is_str(r.password, "secret", "password only");
	redis_url_free(&r);

	ok(redis_url_parse("redis://[::1]:6379", &r, err, sizeof(err)) == 0,
	    "ipv6 literal");
	is_str(r.host, "::1", "brackets removed");
	redis_url_free(&r);

	ok(redis_url_parse("http://h:1", &r, err, sizeof(err)) != 0,
	    "wrong scheme rejected: %s", err);
	ok(redis_url_parse("redis://h:99999", &r, err, sizeof(err)) != 0,
	    "bad port rejected");
	ok(redis_url_parse("redis://h/x", &r, err, sizeof(err)) != 0,
	    "bad db path rejected: %s", err);
	ok(redis_url_parse(
	       "rediss://h?ssl_cert_reqs=maybe", &r, err, sizeof(err)) != 0,
	    "bad ssl_cert_reqs rejected");
	ok(redis_url_parse(
	       "rediss://h?ssl_cert_req=none", &r, err, sizeof(err)) != 0,
	    "misspelt option rejected: %s", err);
	ok(redis_url_parse("not a url", &r, err, sizeof(err)) != 0,
	    "garbage rejected");
}

static void
test_storage_urls(void)
{
	struct storage_url s;
	char		   err[256];

	ok(storage_url_parse("https://cloud-cube-us2.s3.amazonaws.com/abcd1234",
	       NULL, &s, err, sizeof(err)) == 0,
	    "virtual-hosted url");
	is_str(s.bucket, "cloud-cube-us2", "bucket from host");
	is_str(s.prefix, "abcd1234/", "prefix from path");
	is_int(s.virtual_hosted, 1, "virtual hosted");
	is_str(s.region, "us-east-1", "known region");
	is_str(s.host_header, "cloud-cube-us2.s3.amazonaws.com", "host header");
	storage_url_free(&s);

	ok(storage_url_parse("https://cloud-cube-eu2.s3.amazonaws.com/xyz/",
	       NULL, &s, err, sizeof(err)) == 0,
	    "eu url");
	is_str(s.region, "eu-west-1", "eu region");
	is_str(s.prefix, "xyz/", "one trailing slash");
	storage_url_free(&s);

	ok(storage_url_parse("http://127.0.0.1:4568/cloud-cube/abcd1234",
	       "ap-northeast-1", &s, err, sizeof(err)) == 0,
	    "path-style url");
	is_str(s.bucket, "cloud-cube", "bucket from path");
	is_str(s.prefix, "abcd1234/", "prefix");
	is_int(s.port, 4568, "port");
	is_str(s.host_header, "127.0.0.1:4568", "host header with port");
	is_str(s.region, "ap-northeast-1", "region override");
	is_int(s.virtual_hosted, 0, "path style");
	storage_url_free(&s);

	ok(storage_url_parse("http://127.0.0.1:4568/cloud-cube", NULL, &s, err,
	       sizeof(err)) != 0,
	    "no prefix refused: %s", err);
	ok(storage_url_parse("https://cloud-cube.s3.amazonaws.com/", NULL, &s,
	       err, sizeof(err)) != 0,
	    "no cube refused");
	ok(storage_url_parse("http://h/bkt/a//b", NULL, &s, err, sizeof(err)) !=
		0,
	    "empty segment refused: %s", err);
	ok(storage_url_parse(
	       "http://h/bkt/a/%2e%2e/c", NULL, &s, err, sizeof(err)) != 0,
	    "encoded dot-dot refused");
	ok(storage_url_parse("http://u:p@h/b/c", NULL, &s, err, sizeof(err)) !=
		0,
	    "credentials in url refused");
	ok(storage_url_parse("https://.s3.amazonaws.com/cube1", NULL, &s, err,
	       sizeof(err)) != 0,
	    "empty bucket refused: %s", err);
	ok(storage_url_parse(
	       "http://h/%2E/cube1", NULL, &s, err, sizeof(err)) != 0,
	    "bucket '.' refused");
	ok(storage_url_parse(
	       "http://h/Bad_Bucket/cube1", NULL, &s, err, sizeof(err)) != 0,
	    "bucket with capitals refused");
	ok(storage_url_parse("ftp://h/b/c", NULL, &s, err, sizeof(err)) != 0,
	    "ftp refused");
}

static void
test_keys(void)
{
	ok(key_unsafe_reason("a/b/c.mp4", 9) == NULL, "plain key ok");
	ok(key_unsafe_reason("a/../x", 6) != NULL, "dot-dot refused");
	ok(key_unsafe_reason("a//b", 4) != NULL, "empty segment refused");
	ok(key_unsafe_reason("a/./b", 5) != NULL, "dot refused");
	ok(key_unsafe_reason("a/b\n", 4) != NULL, "newline refused");
	ok(key_unsafe_reason("a\0b", 3) != NULL, "NUL refused");
	ok(key_unsafe_reason("", 0) != NULL, "empty refused");
	ok(key_unsafe_reason("a/..b/c", 7) == NULL, "..b is a name");
	ok(key_unsafe_reason("caf\xc3\xa9 x+y=z", 11) == NULL, "unicode ok");
	ok(key_unsafe_reason("a/b/", 4) == NULL, "trailing slash ok");
}

static void
test_relations(void)
{
	char *q;

	is_str(q = sql_quote_relation("jobs"), "\"jobs\"", "plain name");
	free(q);
	is_str(q = sql_quote_relation("app.job_view"), "\"app\".\"job_view\"",
	    "schema.name");
	free(q);
	ok(sql_quote_relation("jobs\"; drop table x; --") == NULL,
	    "quote refused");
	ok(sql_quote_relation("a.b.c") == NULL, "three parts refused");
	ok(sql_quote_relation(".x") == NULL, "empty schema refused");
	ok(sql_quote_relation("") == NULL, "empty refused");
}

static void
test_redact(void)
{
	char *r = url_redact(
	    "postgresql://u:hunter2@db:5432/app?sslmode=require");

	ok(strstr(r, "hunter2") == NULL, "password hidden: %s", r);
	ok(strstr(r, "db") != NULL, "host kept");
	free(r);

	r = conninfo_redact("postgres://u:hunter2@db/app");
	is_str(r, "postgres://u:***@db/app", "conninfo URL redacted as a URL");
	free(r);
	r = conninfo_redact("host=db port=5433 password='hun ter2' "
			    "user=o\\'k dbname=app sslpassword=s3cret");
	is_str(r, "host='db' port='5433' dbname='app' user='o\\'k'",
	    "key=value: only where and as whom");
	free(r);
	r = conninfo_redact("password=hunter2");
	is_str(r, "(libpq defaults)", "nothing but a password");
	free(r);
	r = conninfo_redact("host=db password='hunter2");
	is_str(r, "(unparsable connection string)",
	    "an unterminated quote is not quoted back");
	free(r);
}

static void
test_config_env(void)
{
	struct config c;
	char	      err[256];

	setenv("REDIS_URL", "redis://r1:1/0", 1);
	setenv("CLIPSWEEP_REDIS_URL", "redis://r2:2/0", 1);
	setenv("CLIPSWEEP_WORKER_ID", "w-1", 1);
	ok(config_load(&c, CONFIG_NEED_REDIS, err, sizeof(err)) == 0,
	    "redis-only config");
	is_str(c.redis.host, "r2", "CLIPSWEEP_REDIS_URL wins");
	is_str(c.namespace, "clipsweep", "default namespace");
	is_str(c.worker_id, "w-1", "worker id from env");
	ok(c.lease_s == 60, "default lease 60 s");
	config_free(&c);

	setenv("CLIPSWEEP_LEASE_SECONDS", "3600", 1);
	ok(config_load(&c, CONFIG_NEED_REDIS, err, sizeof(err)) == 0 &&
		c.lease_s == 3600,
	    "lease 3600 s accepted");
	config_free(&c);
	setenv("CLIPSWEEP_LEASE_SECONDS", "0", 1);
	ok(config_load(&c, CONFIG_NEED_REDIS, err, sizeof(err)) != 0 &&
		strstr(err, "CLIPSWEEP_LEASE_SECONDS") != NULL,
	    "lease 0 refused: %s", err);
	setenv("CLIPSWEEP_LEASE_SECONDS", "3601", 1);
	ok(config_load(&c, CONFIG_NEED_REDIS, err, sizeof(err)) != 0,
	    "lease 3601 refused");
	unsetenv("CLIPSWEEP_LEASE_SECONDS");

	unsetenv("CLIPSWEEP_REDIS_URL");
	ok(config_load(&c, CONFIG_NEED_REDIS, err, sizeof(err)) == 0,
	    "REDIS_URL fallback");
	is_str(c.redis.host, "r1", "REDIS_URL used");
	config_free(&c);

	unsetenv("CLIPSWEEP_DATABASE_URL");
	unsetenv("DATABASE_URL");
	ok(config_load(&c, CONFIG_NEED_DATABASE, err, sizeof(err)) != 0,
	    "missing database url: %s", err);
	setenv("DATABASE_URL", "postgresql://x@h/db", 1);
	setenv("CLIPSWEEP_JOBS_TABLE", "bad\"name", 1);
	ok(config_load(&c, CONFIG_NEED_DATABASE, err, sizeof(err)) != 0,
	    "bad table name: %s", err);
	unsetenv("CLIPSWEEP_JOBS_TABLE");

	setenv("CLOUDCUBE_URL", "https://cloud-cube.s3.amazonaws.com/c1", 1);
	unsetenv("CLOUDCUBE_SECRET_ACCESS_KEY");
	setenv("CLOUDCUBE_ACCESS_KEY_ID", "AKID", 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) != 0,
	    "missing secret: %s", err);
	setenv("CLOUDCUBE_SECRET_ACCESS_KEY", "s3cr3t", 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) == 0,
	    "storage config");
	is_str(c.storage.prefix, "c1/", "prefix");
	ok(strstr(c.storage.redacted, "s3cr3t") == NULL, "no secret in url");
	config_free(&c);
}

static char secret_dir[] = "/tmp/clipsweep-test-secrets.XXXXXX";

/* A file in secret_dir with the given contents; returns its path. */
static const char *
secret_file(const char *name, const char *contents, size_t len)
{
	static char path[256];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", secret_dir, name);
	f = fopen(path, "w");
	if (f == NULL || fwrite(contents, 1, len, f) != len || fclose(f) != 0) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	return path;
}

static void
test_secret_files(void)
{
	struct config c;
	char	      err[512];

	if (mkdtemp(secret_dir) == NULL) {
		printf("Bail out! cannot make %s\n", secret_dir);
		exit(1);
	}
	setenv("CLOUDCUBE_URL", "https://cloud-cube.s3.amazonaws.com/c1", 1);
	setenv("CLOUDCUBE_ACCESS_KEY_ID", "AKID", 1);
	unsetenv("CLOUDCUBE_SECRET_ACCESS_KEY");
	setenv("CLOUDCUBE_SECRET_ACCESS_KEY_FILE",
	    secret_file("s3", "from-a-file\n", 12), 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) == 0,
	    "_FILE: loaded (%s)", err);
	is_str(c.secret_access_key, "from-a-file",
	    "_FILE: the file's one line, without its newline");
	config_free(&c);

	secret_file("s3", "crlf\r\n", 6);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) == 0 &&
		strcmp(c.secret_access_key, "crlf") == 0,
	    "_FILE: a CRLF line end is dropped too");
	config_free(&c);

	secret_file("s3", "two\nlines\n", 10);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) != 0 &&
		strstr(err, "CLOUDCUBE_SECRET_ACCESS_KEY_FILE") != NULL &&
		strstr(err, "one line") != NULL && strstr(err, "two") == NULL,
	    "_FILE: two lines refused, naming the variable, not the value: %s",
	    err);
	secret_file("s3", "", 0);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) != 0 &&
		strstr(err, "not nothing") != NULL,
	    "_FILE: an empty file refused: %s", err);
	setenv("CLOUDCUBE_SECRET_ACCESS_KEY_FILE", "/nonexistent/s3", 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) != 0 &&
		strstr(err, "cannot open /nonexistent/s3") != NULL,
	    "_FILE: a missing file refused: %s", err);
	setenv("CLOUDCUBE_SECRET_ACCESS_KEY_FILE", secret_dir, 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) != 0 &&
		strstr(err, "not a regular file") != NULL,
	    "_FILE: a directory refused: %s", err);
	setenv(
	    "CLOUDCUBE_SECRET_ACCESS_KEY_FILE", secret_file("s3", "x\n", 2), 1);
	setenv("CLOUDCUBE_SECRET_ACCESS_KEY", "also-set", 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) != 0 &&
		strstr(err, "not both") != NULL,
	    "NAME and NAME_FILE both set: refused: %s", err);
	unsetenv("CLOUDCUBE_SECRET_ACCESS_KEY");
	unsetenv("CLOUDCUBE_SECRET_ACCESS_KEY_FILE");

	/* systemd's LoadCredential=: a file named after the variable. */
	setenv("CREDENTIALS_DIRECTORY", secret_dir, 1);
	secret_file("CLOUDCUBE_SECRET_ACCESS_KEY", "credential\n", 11);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) == 0 &&
		strcmp(c.secret_access_key, "credential") == 0,
	    "a credential in $CREDENTIALS_DIRECTORY (%s)", err);
	config_free(&c);
	setenv("CLOUDCUBE_SECRET_ACCESS_KEY", "env-wins", 1);
	ok(config_load(&c, CONFIG_NEED_STORAGE, err, sizeof(err)) == 0 &&
		strcmp(c.secret_access_key, "env-wins") == 0,
	    "the variable itself comes before a credential");
	config_free(&c);
	unsetenv("CLOUDCUBE_SECRET_ACCESS_KEY");

	unsetenv("CLIPSWEEP_REDIS_URL");
	setenv("REDIS_URL", "redis://plain:1/0", 1);
	secret_file("CLIPSWEEP_REDIS_URL", "redis://:pw@cred:2/0", 20);
	ok(config_load(&c, CONFIG_NEED_REDIS, err, sizeof(err)) == 0 &&
		strcmp(c.redis.host, "cred") == 0,
	    "CLIPSWEEP_REDIS_URL as a credential comes before REDIS_URL");
	config_free(&c);
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("REDIS_URL");
	setenv("DATABASE_URL_FILE",
	    secret_file("db", "postgresql://u:hunter2@db/app\n", 30), 1);
	unsetenv("CLIPSWEEP_DATABASE_URL");
	unsetenv("DATABASE_URL");
	ok(config_load(&c, CONFIG_NEED_DATABASE, err, sizeof(err)) == 0 &&
		strcmp(c.database_url, "postgresql://u:hunter2@db/app") == 0 &&
		strstr(c.database_redacted, "hunter2") == NULL,
	    "DATABASE_URL_FILE, redacted for the log: %s", c.database_redacted);
	config_free(&c);
	unsetenv("DATABASE_URL_FILE");
	unlink(secret_file("s3", "", 0));
	unlink(secret_file("db", "", 0));
	unlink(secret_file("CLOUDCUBE_SECRET_ACCESS_KEY", "", 0));
	unlink(secret_file("CLIPSWEEP_REDIS_URL", "", 0));
	ok(rmdir(secret_dir) == 0, "secret files cleaned up");
}

int
main(void)
{
	test_redis_urls();
	test_storage_urls();
	test_keys();
	test_relations();
	test_redact();
	test_config_env();
	test_secret_files();
	return tap_done();
}
