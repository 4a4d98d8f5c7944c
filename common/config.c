#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "config.h"
#include "task.h"
#include "util.h"

static int PRINTF_LIKE(3, 4)
    seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static char *
url_part(CURLU *u, CURLUPart what, unsigned int flags)
{
	char *p = NULL, *copy;

	if (curl_url_get(u, what, &p, flags) != CURLUE_OK || p == NULL)
		return NULL;
	copy = xstrdup(p);
	curl_free(p);
	return copy;
}

static int
parse_port(const char *s, int *port)
{
	char *end;
	long  v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/*
 * Walk a URL query "a=1&b=2" with curl decoding each value.  Only the
 * options we know are accepted: an unknown one is a configuration error,
 * since a misspelt ssl_cert_reqs would silently change security.
 */
static int
redis_url_query(
    const char *query, struct redis_url *r, char *err, size_t errlen)
{
	char *q = xstrdup(query), *save = NULL, *tok;
	int   rc = 0;

	for (tok = strtok_r(q, "&", &save); tok != NULL;
	     tok = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(tok, '='), *val;
		int   n;

		if (eq == NULL) {
			rc = seterr(err, errlen,
			    "redis URL option '%s' has no value", tok);
			break;
		}
		*eq = '\0';
		val = curl_easy_unescape(NULL, eq + 1, 0, &n);
		if (val == NULL || (size_t)n != strlen(val)) {
			curl_free(val);
			rc = seterr(err, errlen,
			    "redis URL option '%s' is "
			    "badly encoded",
			    tok);
			break;
		}
		if (strcmp(tok, "ssl_cert_reqs") == 0) {
			if (strcasecmp(val, "none") == 0)
				r->verify = 0;
			else if (strcasecmp(val, "required") == 0)
				r->verify = 1;
			else
				rc = seterr(err, errlen,
				    "redis URL option "
				    "ssl_cert_reqs must be none or required");
		} else if (strcmp(tok, "ssl_ca_certs") == 0) {
			free(r->ca_file);
			r->ca_file = xstrdup(val);
		} else if (strcmp(tok, "db") == 0) {
			char *end;
			long  db = strtol(val, &end, 10);
			if (*val == '\0' || *end != '\0' || db < 0 ||
			    db > INT_MAX)
				rc = seterr(err, errlen,
				    "redis URL option db "
				    "must be a non-negative number");
			else
				r->db = (int)db;
		} else
			rc = seterr(err, errlen,
			    "redis URL option '%s' is not supported", tok);
		curl_free(val);
		if (rc != 0)
			break;
	}
	free(q);
	return rc;
}

static int
redis_url_path(const char *path, struct redis_url *r, char *err, size_t errlen)
{
	char *end;
	long  db;

	if (path == NULL || strcmp(path, "/") == 0 || *path == '\0')
		return 0;
	db = strtol(path + 1, &end, 10);
	if (path[1] == '\0' || *end != '\0' || db < 0 || db > INT_MAX)
		return seterr(err, errlen,
		    "redis URL path must be a "
		    "database number, like /0");
	r->db = (int)db;
	return 0;
}

int
redis_url_parse(const char *url, struct redis_url *r, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char  *scheme = NULL, *port = NULL, *path = NULL, *query = NULL;
	int    rc = -1;

	memset(r, 0, sizeof(*r));
	r->verify = 1;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
	    CURLUE_OK) {
		seterr(err, errlen, "redis URL is not a valid URL");
		goto out;
	}
	scheme = url_part(u, CURLUPART_SCHEME, 0);
	if (scheme != NULL && strcmp(scheme, "rediss") == 0)
		r->tls = 1;
	else if (scheme == NULL || strcmp(scheme, "redis") != 0) {
		seterr(err, errlen,
		    "redis URL scheme must be redis:// or "
		    "rediss://");
		goto out;
	}
	r->host = url_part(u, CURLUPART_HOST, 0);
	if (r->host == NULL || *r->host == '\0') {
		seterr(err, errlen, "redis URL has no host");
		goto out;
	}
	/* curl keeps the brackets of an IPv6 literal; the resolver wants none.
	 */
	if (r->host[0] == '[') {
		size_t n = strlen(r->host);
		memmove(r->host, r->host + 1, n - 2);
		r->host[n - 2] = '\0';
	}
	r->port = 6379;
	if ((port = url_part(u, CURLUPART_PORT, 0)) != NULL &&
	    parse_port(port, &r->port) != 0) {
		seterr(err, errlen, "redis URL port is not valid");
		goto out;
	}
	r->user = url_part(u, CURLUPART_USER, CURLU_URLDECODE);
	r->password = url_part(u, CURLUPART_PASSWORD, CURLU_URLDECODE);
	if (r->user != NULL && *r->user == '\0') {
		free(r->user);
		r->user = NULL;
	}
	path = url_part(u, CURLUPART_PATH, 0);
	if (redis_url_path(path, r, err, errlen) != 0)
		goto out;
	query = url_part(u, CURLUPART_QUERY, 0);
	if (query != NULL && redis_url_query(query, r, err, errlen) != 0)
		goto out;
	r->redacted = xasprintf("%s://%s%s%s%s%s%s:%d/%d",
	    r->tls ? "rediss" : "redis", r->user ? r->user : "",
	    r->password ? ":***" : "", r->user || r->password ? "@" : "",
	    strchr(r->host, ':') ? "[" : "", r->host,
	    strchr(r->host, ':') ? "]" : "", r->port, r->db);
	rc = 0;
out:
	free(scheme);
	free(port);
	free(path);
	free(query);
	curl_url_cleanup(u);
	if (rc != 0)
		redis_url_free(r);
	return rc;
}

void
redis_url_free(struct redis_url *r)
{
	free(r->host);
	free(r->ca_file);
	free(r->user);
	if (r->password != NULL)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	free(r->redacted);
	memset(r, 0, sizeof(*r));
}

const char *
cloudcube_region(const char *bucket)
{
	static const struct {
		const char *bucket, *region;
	} known[] = {
	    {"cloud-cube", "us-east-1"},
	    {"cloud-cube-us2", "us-east-1"},
	    {"cloud-cube-eu", "eu-west-1"},
	    {"cloud-cube-eu2", "eu-west-1"},
	    {"cloud-cube-jp", "ap-northeast-1"},
	};
	size_t i;

	for (i = 0; i < nitems(known); i++)
		if (strcmp(bucket, known[i].bucket) == 0)
			return known[i].region;
	return NULL;
}

const char *
key_unsafe_reason(const char *key, size_t len)
{
	size_t i, seg = 0;

	if (len == 0)
		return "the key is empty";
	if (len > 1024)
		return "the key is longer than 1024 bytes";
	for (i = 0; i <= len; i++) {
		if (i == len || key[i] == '/') {
			size_t n = i - seg;
			if (n == 0 && i != len)
				return "the key has an empty path segment";
			if ((n == 1 && key[seg] == '.') ||
			    (n == 2 && key[seg] == '.' && key[seg + 1] == '.'))
				return "the key has a '.' or '..' segment";
			seg = i + 1;
			continue;
		}
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			return "the key has a control character";
	}
	if (!utf8_valid(key, len))
		return "the key is not valid UTF-8";
	return NULL;
}

static int
host_is_amazonaws(const char *host)
{
	size_t n = strlen(host), s = strlen(".amazonaws.com");

	return n > s && strcasecmp(host + n - s, ".amazonaws.com") == 0;
}

/* Split "/a/b/c" into the first segment and the rest ("b/c/"). */
static int
storage_split_path(const char *path, int with_bucket, struct storage_url *s,
    char *err, size_t errlen)
{
	const char *p = path;
	const char *why;
	size_t	    n;

	while (*p == '/')
		p++;
	if (with_bucket) {
		const char *slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0)
			return seterr(err, errlen,
			    "CLOUDCUBE_URL has no bucket "
			    "in its path");
		s->bucket = xstrndup(p, n);
		p += n;
		while (*p == '/')
			p++;
	}
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0)
		return seterr(err, errlen,
		    "CLOUDCUBE_URL has no cube prefix "
		    "in its path: clipsweep refuses to work on a whole bucket");
	if ((why = key_unsafe_reason(p, n)) != NULL)
		return seterr(
		    err, errlen, "CLOUDCUBE_URL prefix is unsafe: %s", why);
	s->prefix = xasprintf("%.*s/", (int)n, p);
	return 0;
}

/* S3's bucket naming rules, which also keep the name safe in a path. */
static int
bucket_name_ok(const char *b)
{
	size_t n = strlen(b), i;

	if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) ||
	    !isalnum((unsigned char)b[n - 1]))
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)b[i]) ||
			isdigit((unsigned char)b[i]) || b[i] == '.' ||
			b[i] == '-'))
			return 0;
	return strstr(b, "..") == NULL;
}

int
storage_url_parse(const char *url, const char *region, struct storage_url *s,
    char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char  *port = NULL, *path = NULL, *user = NULL, *query = NULL;
	int    rc = -1;

	memset(s, 0, sizeof(*s));
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		seterr(err, errlen, "CLOUDCUBE_URL is not a valid URL");
		goto out;
	}
	s->scheme = url_part(u, CURLUPART_SCHEME, 0);
	if (s->scheme == NULL ||
	    (strcmp(s->scheme, "http") != 0 &&
		strcmp(s->scheme, "https") != 0)) {
		seterr(
		    err, errlen, "CLOUDCUBE_URL must be http:// or https://");
		goto out;
	}
	if ((user = url_part(u, CURLUPART_USER, 0)) != NULL) {
		seterr(err, errlen,
		    "CLOUDCUBE_URL must not carry credentials; "
		    "use CLOUDCUBE_ACCESS_KEY_ID and "
		    "CLOUDCUBE_SECRET_ACCESS_KEY");
		goto out;
	}
	if ((query = url_part(u, CURLUPART_QUERY, 0)) != NULL) {
		seterr(err, errlen, "CLOUDCUBE_URL must not have a query");
		goto out;
	}
	s->host = url_part(u, CURLUPART_HOST, 0);
	if ((port = url_part(u, CURLUPART_PORT, 0)) != NULL &&
	    parse_port(port, &s->port) != 0) {
		seterr(err, errlen, "CLOUDCUBE_URL port is not valid");
		goto out;
	}
	s->host_header = s->port ? xasprintf("%s:%d", s->host, s->port)
				 : xstrdup(s->host);
	path = url_part(u, CURLUPART_PATH, CURLU_URLDECODE);
	s->virtual_hosted = host_is_amazonaws(s->host);
	if (s->virtual_hosted) {
		const char *dot = strchr(s->host, '.');
		s->bucket = xstrndup(s->host, (size_t)(dot - s->host));
	}
	if (storage_split_path(
		path ? path : "", !s->virtual_hosted, s, err, errlen) != 0)
		goto out;
	if (!bucket_name_ok(s->bucket)) {
		seterr(err, errlen,
		    "CLOUDCUBE_URL bucket is not a valid S3 bucket name "
		    "(3 to 63 of a-z, 0-9, '.' and '-')");
		goto out;
	}
	if (region != NULL && *region != '\0')
		s->region = xstrdup(region);
	else if (cloudcube_region(s->bucket) != NULL)
		s->region = xstrdup(cloudcube_region(s->bucket));
	else
		s->region = xstrdup("us-east-1");
	s->redacted = xasprintf("%s://%s/%s%s%s", s->scheme, s->host_header,
	    s->virtual_hosted ? "" : s->bucket, s->virtual_hosted ? "" : "/",
	    s->prefix);
	rc = 0;
out:
	free(port);
	free(path);
	free(user);
	free(query);
	curl_url_cleanup(u);
	if (rc != 0)
		storage_url_free(s);
	return rc;
}

/*
 * file:///srv/app/media: the directory /srv/app/media, whose name plays
 * the cube prefix ("media/").  The path is used as given (symbolic links
 * in it are the administrator's); below it nothing follows one.
 */
int
volume_url_parse(
    const char *url, struct storage_url *s, char *err, size_t errlen)
{
	CURLU	   *u = curl_url();
	char	   *path = NULL, *host = NULL, *query = NULL;
	const char *why, *last;
	size_t	    n;
	int	    rc = -1;

	memset(s, 0, sizeof(*s));
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS) !=
		CURLUE_OK ||
	    (s->scheme = url_part(u, CURLUPART_SCHEME, 0)) == NULL ||
	    strcmp(s->scheme, "file") != 0) {
		seterr(err, errlen,
		    "CLIPSWEEP_STORAGE_URL is not a valid file:// URL "
		    "(file:///path: a volume must be local)");
		goto out;
	}
	host = url_part(u, CURLUPART_HOST, 0);
	if (host != NULL && *host != '\0' && strcmp(host, "localhost") != 0) {
		seterr(err, errlen,
		    "CLIPSWEEP_STORAGE_URL names host '%s': a volume must be "
		    "local (file:///path)",
		    host);
		goto out;
	}
	if ((query = url_part(u, CURLUPART_QUERY, 0)) != NULL) {
		seterr(
		    err, errlen, "CLIPSWEEP_STORAGE_URL must not have a query");
		goto out;
	}
	path = url_part(u, CURLUPART_PATH, CURLU_URLDECODE);
	n = path != NULL ? strlen(path) : 0;
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	if (n < 2 || path[0] != '/' ||
	    (why = key_unsafe_reason(path + 1, n - 1)) != NULL) {
		seterr(err, errlen,
		    "CLIPSWEEP_STORAGE_URL must name a directory below / "
		    "(file:///srv/app/media)%s%s",
		    n >= 2 ? ": " : "", n >= 2 && path[0] == '/' ? why : "");
		goto out;
	}
	last = strrchr(path, '/') + 1;
	s->volume = xstrdup(path);
	s->prefix = xasprintf("%s/", last);
	s->region = xstrdup("local");
	s->redacted = xasprintf("file://%s", path);
	rc = 0;
out:
	free(path);
	free(host);
	free(query);
	curl_url_cleanup(u);
	if (rc != 0)
		storage_url_free(s);
	return rc;
}

void
storage_url_free(struct storage_url *s)
{
	free(s->scheme);
	free(s->host);
	free(s->host_header);
	free(s->bucket);
	free(s->prefix);
	free(s->region);
	free(s->redacted);
	free(s->volume);
	memset(s, 0, sizeof(*s));
}

static int
sql_ident_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '"')
			return 0;
	return utf8_valid(s, n);
}

char *
sql_quote_relation(const char *name)
{
	const char *dot = strchr(name, '.');

	if (dot == NULL)
		return sql_ident_ok(name, strlen(name))
		    ? xasprintf("\"%s\"", name)
		    : NULL;
	if (strchr(dot + 1, '.') != NULL ||
	    !sql_ident_ok(name, (size_t)(dot - name)) ||
	    !sql_ident_ok(dot + 1, strlen(dot + 1)))
		return NULL;
	return xasprintf("\"%.*s\".\"%s\"", (int)(dot - name), name, dot + 1);
}

char *
url_redact(const char *url)
{
	CURLU *u = curl_url();
	char  *out = NULL, *p = NULL;

	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) ==
	    CURLUE_OK) {
		char *pw = NULL;
		if (curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK) {
			curl_free(pw);
			curl_url_set(u, CURLUPART_PASSWORD, "***", 0);
		}
		/* Query options may hold a password too (?password=). */
		curl_url_set(u, CURLUPART_QUERY, NULL, 0);
		if (curl_url_get(u, CURLUPART_URL, &p, 0) == CURLUE_OK)
			out = xstrdup(p);
		curl_free(p);
	}
	curl_url_cleanup(u);
	return out != NULL ? out : xstrdup("(unparsable URL)");
}

/*
 * A libpq connection string for logs.  A URL goes through url_redact();
 * a key=value string is parsed by libpq and only the keywords that name
 * where and as whom are kept, so that no password (or passfile, or key)
 * is ever printed.
 */
char *
conninfo_redact(const char *conninfo)
{
	static const char *const keep[] = {"host", "hostaddr", "port", "dbname",
	    "user", "sslmode", "application_name"};
	PQconninfoOption	*opts, *o;
	struct buf		 b;
	size_t			 i;

	if (strncmp(conninfo, "postgres://", 11) == 0 ||
	    strncmp(conninfo, "postgresql://", 13) == 0)
		return url_redact(conninfo);
	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return xstrdup("(unparsable connection string)");
	buf_init(&b);
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		for (o = opts; o->keyword != NULL; o++) {
			const char *v;

			if (strcmp(o->keyword, keep[i]) != 0 || o->val == NULL)
				continue;
			buf_addf(
			    &b, "%s%s='", b.len > 0 ? " " : "", o->keyword);
			for (v = o->val; *v != '\0'; v++) {
				if (*v == '\'' || *v == '\\')
					buf_add(&b, "\\", 1);
				buf_add(&b, v, 1);
			}
			buf_add(&b, "'", 1);
		}
	}
	PQconninfoFree(opts);
	if (b.len == 0)
		buf_adds(&b, "(libpq defaults)");
	return buf_steal(&b);
}

static const char *
env2(const char *a, const char *b)
{
	const char *v = getenv(a);

	if ((v == NULL || *v == '\0') && b != NULL)
		v = getenv(b);
	return v != NULL && *v != '\0' ? v : NULL;
}

#define SECRET_FILE_MAX 65536

static void
free_secret(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * The contents of a secret's file, without one trailing newline.  Errors
 * name the variable and the file, never what is in it.
 */
static char *
read_secret_file(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char	   *data;
	ssize_t	    n;
	size_t	    len = 0;
	int	    fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		seterr(err, errlen, "%s: cannot open %s: %s", what, path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		seterr(err, errlen, "%s: %s is not a regular file", what, path);
		return NULL;
	}
	data = xmalloc(SECRET_FILE_MAX + 1);
	while (len < SECRET_FILE_MAX &&
	    (n = read(fd, data + len, SECRET_FILE_MAX - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			seterr(err, errlen, "%s: cannot read %s: %s", what,
			    path, strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	if (len == SECRET_FILE_MAX) {
		seterr(err, errlen, "%s: %s is larger than %d bytes", what,
		    path, SECRET_FILE_MAX);
		goto fail;
	}
	close(fd);
	data[len] = '\0';
	if (len > 0 && data[len - 1] == '\n')
		data[--len] = '\0';
	if (len > 0 && data[len - 1] == '\r')
		data[--len] = '\0';
	if (len == 0 || memchr(data, '\0', len) != NULL ||
	    strpbrk(data, "\r\n") != NULL) {
		seterr(err, errlen,
		    "%s: %s must hold one line (the value), "
		    "not %s",
		    what, path,
		    len == 0 ? "nothing" : "several lines or NUL bytes");
		free_secret(data);
		return NULL;
	}
	return data;
fail:
	close(fd);
	explicit_bzero(data, len);
	free(data);
	return NULL;
}

/*
 * A setting that may be a secret: NAME itself, the file NAME_FILE names,
 * or the credential NAME that systemd's LoadCredential= put in
 * $CREDENTIALS_DIRECTORY, in that order.  *out is NULL when none is set.
 */
static int
env_secret(const char *name, char **out, char *err, size_t errlen)
{
	const char *v = env2(name, NULL), *dir;
	char	    file_var[64], *path;

	*out = NULL;
	snprintf(file_var, sizeof(file_var), "%s_FILE", name);
	if (env2(file_var, NULL) != NULL) {
		if (v != NULL)
			return seterr(err, errlen, "set %s or %s, not both",
			    name, file_var);
		*out = read_secret_file(
		    file_var, env2(file_var, NULL), err, errlen);
		return *out != NULL ? 0 : -1;
	}
	if (v != NULL) {
		*out = xstrdup(v);
		return 0;
	}
	if ((dir = env2("CREDENTIALS_DIRECTORY", NULL)) == NULL)
		return 0;
	path = xasprintf("%s/%s", dir, name);
	if (access(path, F_OK) == 0)
		*out = read_secret_file(name, path, err, errlen);
	else if (errno != ENOENT)
		seterr(err, errlen, "%s: cannot look for %s: %s", name, path,
		    strerror(errno));
	else {
		free(path);
		return 0;
	}
	free(path);
	return *out != NULL ? 0 : -1;
}

/* The first of two names that is set in any of env_secret()'s ways. */
static int
env_secret2(const char *a, const char *b, char **out, char *err, size_t errlen)
{
	if (env_secret(a, out, err, errlen) != 0)
		return -1;
	if (*out == NULL && b != NULL)
		return env_secret(b, out, err, errlen);
	return 0;
}

static char *
default_worker_id(void)
{
	const char *dyno = getenv("DYNO"), *inst = getenv("CLIPSWEEP_INSTANCE");
	char	    host[256];

	if (dyno != NULL && *dyno != '\0')
		return xstrdup(dyno);
	if (gethostname(host, sizeof(host)) != 0)
		strlcpy_(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	if (inst != NULL && *inst != '\0')
		return xasprintf("%s@%s", host, inst);
	return xstrdup(host);
}

static int
config_tables(struct config *c, char *err, size_t errlen)
{
	const char *jobs = env2("CLIPSWEEP_JOBS_TABLE", NULL);
	const char *clips = env2("CLIPSWEEP_CLIPS_TABLE", NULL);
	const char *v;

	c->jobs_table = sql_quote_relation(jobs ? jobs : "jobs");
	if (c->jobs_table == NULL)
		return seterr(err, errlen,
		    "CLIPSWEEP_JOBS_TABLE is not a valid "
		    "relation name (name or schema.name)");
	c->clips_table = sql_quote_relation(clips ? clips : "clips");
	if (c->clips_table == NULL)
		return seterr(err, errlen,
		    "CLIPSWEEP_CLIPS_TABLE is not a "
		    "valid relation name (name or schema.name)");
	if ((v = env2("CLIPSWEEP_AUDIT", NULL)) != NULL &&
	    strcmp(v, "off") != 0 && strcmp(v, "postgres") != 0)
		return seterr(err, errlen,
		    "CLIPSWEEP_AUDIT must be off or postgres, not '%s'", v);
	c->audit = v != NULL && strcmp(v, "postgres") == 0;
	v = env2("CLIPSWEEP_AUDIT_TABLE", NULL);
	c->audit_table = sql_quote_relation(v ? v : "clipsweep_audit");
	if (c->audit_table == NULL)
		return seterr(err, errlen,
		    "CLIPSWEEP_AUDIT_TABLE is not a "
		    "valid relation name (name or schema.name)");
	return 0;
}

static int
config_storage(struct config *c, char *err, size_t errlen)
{
	const char *url = env2("CLOUDCUBE_URL", NULL);
	const char *vol = env2("CLIPSWEEP_STORAGE_URL", NULL);

	if (vol != NULL) {
		/* One storage, named once: both set is a mistake. */
		if (url != NULL)
			return seterr(err, errlen,
			    "CLIPSWEEP_STORAGE_URL and CLOUDCUBE_URL are both "
			    "set; set one");
		return volume_url_parse(vol, &c->storage, err, errlen);
	}
	if (url == NULL)
		return seterr(err, errlen,
		    "CLOUDCUBE_URL is not set (or CLIPSWEEP_STORAGE_URL "
		    "for a local volume)");
	if (env_secret("CLOUDCUBE_ACCESS_KEY_ID", &c->access_key_id, err,
		errlen) != 0 ||
	    env_secret("CLOUDCUBE_SECRET_ACCESS_KEY", &c->secret_access_key,
		err, errlen) != 0 ||
	    env_secret(
		"CLOUDCUBE_SESSION_TOKEN", &c->session_token, err, errlen) != 0)
		return -1;
	if (c->access_key_id == NULL || c->secret_access_key == NULL)
		return seterr(err, errlen,
		    "CLOUDCUBE_ACCESS_KEY_ID and "
		    "CLOUDCUBE_SECRET_ACCESS_KEY must both be set "
		    "(or their _FILE variants, or credentials)");
	return storage_url_parse(
	    url, env2("CLIPSWEEP_S3_REGION", NULL), &c->storage, err, errlen);
}

/* An integer setting from the environment, with its default and bounds. */
static int
config_int(const char *name, int def, int min, int max, int *out, char *err,
    size_t errlen)
{
	const char *v = env2(name, NULL);
	char	   *end;
	long	    n;

	*out = def;
	if (v == NULL)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return seterr(err, errlen,
		    "%s must be a whole number from %d "
		    "to %d, not '%s'",
		    name, min, max, v);
	*out = (int)n;
	return 0;
}

int
config_load(struct config *c, int need, char *err, size_t errlen)
{
	const char *v;
	char	   *s;

	memset(c, 0, sizeof(*c));
	if (need & CONFIG_NEED_REDIS) {
		int rc;

		if (env_secret2("CLIPSWEEP_REDIS_URL", "REDIS_URL", &s, err,
			errlen) != 0)
			goto fail;
		rc = redis_url_parse(
		    s ? s : "redis://127.0.0.1:6379/0", &c->redis, err, errlen);
		free_secret(s);
		if (rc != 0)
			goto fail;
	}
	if (need & CONFIG_NEED_DATABASE) {
		if (env_secret2("CLIPSWEEP_DATABASE_URL", "DATABASE_URL", &s,
			err, errlen) != 0)
			goto fail;
		if (s == NULL) {
			seterr(err, errlen,
			    "CLIPSWEEP_DATABASE_URL or "
			    "DATABASE_URL must be set");
			goto fail;
		}
		c->database_url = s;
		c->database_redacted = conninfo_redact(s);
		if (config_tables(c, err, errlen) != 0)
			goto fail;
	}
	if ((need & CONFIG_NEED_STORAGE) && config_storage(c, err, errlen) != 0)
		goto fail;
	c->max_delete_ratio = 0.5;
	if ((v = env2("CLIPSWEEP_MAX_DELETE_RATIO", NULL)) != NULL) {
		char *end;
		errno = 0;
		c->max_delete_ratio = strtod(v, &end);
		if (errno != 0 || *end != '\0' || end == v ||
		    !(c->max_delete_ratio >= 0.0 &&
			c->max_delete_ratio <= 1.0)) {
			seterr(err, errlen,
			    "CLIPSWEEP_MAX_DELETE_RATIO must be "
			    "a number from 0 to 1, like 0.5");
			goto fail;
		}
	}
	if ((v = env2("CLIPSWEEP_S3_MAX_RPS", NULL)) != NULL) {
		char *end;
		errno = 0;
		c->s3_max_rps = strtod(v, &end);
		if (errno != 0 || *end != '\0' || end == v ||
		    !(c->s3_max_rps >= 0.0 && c->s3_max_rps <= 1e6)) {
			seterr(err, errlen,
			    "CLIPSWEEP_S3_MAX_RPS must be a "
			    "number of requests per second (0 for no cap)");
			goto fail;
		}
	}
	if (config_int("CLIPSWEEP_MAX_ATTEMPTS", 5, 1, TASK_MAX_ATTEMPT,
		&c->max_attempts, err, errlen) != 0 ||
	    config_int("CLIPSWEEP_NOT_READY_RETRY_SECONDS", 600, 0, 86400,
		&c->not_ready_retry_s, err, errlen) != 0 ||
	    config_int("CLIPSWEEP_RETRY_BASE_MS", 1000, 1, 3600000,
		&c->retry_base_ms, err, errlen) != 0 ||
	    config_int("CLIPSWEEP_LEASE_SECONDS", 60, 1, 3600, &c->lease_s, err,
		errlen) != 0 ||
	    config_int("CLIPSWEEP_S3_MAX_ATTEMPTS", 3, 1, 10,
		&c->s3_max_attempts, err, errlen) != 0)
		goto fail;
	v = env2("CLIPSWEEP_NAMESPACE", NULL);
	c->namespace = xstrdup(v ? v : "clipsweep");
	v = env2("CLIPSWEEP_WORKER_ID", NULL);
	c->worker_id = v ? xstrdup(v) : default_worker_id();
	return 0;
fail:
	config_free(c);
	return -1;
}

void
config_free(struct config *c)
{
	redis_url_free(&c->redis);
	free_secret(c->database_url);
	free(c->database_redacted);
	storage_url_free(&c->storage);
	free(c->access_key_id);
	free_secret(c->secret_access_key);
	free_secret(c->session_token);
	free(c->namespace);
	free(c->worker_id);
	free(c->jobs_table);
	free(c->clips_table);
	free(c->audit_table);
	memset(c, 0, sizeof(*c));
}
