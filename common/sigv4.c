/*
 * AWS Signature Version 4, Authorization-header form.  See sigv4.h for the
 * canonicalisation rules; they were checked against the botocore S3 vectors
 * and the aws-c-auth test suite in tests/data/sigv4.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>

#include "log.h"
#include "sigv4.h"
#include "util.h"

#define SIGV4_ALGORITHM	 "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"

/* One canonical header while it is being built. */
struct chdr {
	char  *name;  /* lowercased */
	char  *value; /* trimmed, spaces collapsed */
	size_t order; /* position given, for a stable sort */
};

struct qparam {
	char *name; /* canonical encoding */
	char *value;
};

/*
 * The derived signing key for the last (date, region, service, secret) this
 * thread used.  Keys only change daily, so nearly every request hits.
 */
struct key_cache {
	int	      valid;
	char	      date[9];
	char	      region[64];
	char	      service[64];
	char	      secret[128];
	size_t	      secretlen;
	unsigned char key[32];
};

static _Thread_local struct key_cache key_cache;

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* RFC 9110 tchar */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
is_token(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* Safe inside the credential scope: printable ASCII but no ' ', '/', ','. */
static int
is_scope_part(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f ||
		    *s == '/' || *s == ',')
			return 0;
	return 1;
}

static void
add_pct(struct buf *b, unsigned char c)
{
	char e[3];

	e[0] = '%';
	e[1] = hex_upper[c >> 4];
	e[2] = hex_upper[c & 0xf];
	buf_add(b, e, sizeof(e));
}

static void
hex_encode(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex_lower[p[i] >> 4];
		out[2 * i + 1] = hex_lower[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/*
 * Normalise the percent-encoding of s[0..n): %XX escapes are decoded and
 * other bytes taken as they are, then every byte outside the unreserved set
 * is written as %XX with upper-case hex.  With keep_slash a literal '/'
 * stays literal; an escaped one stays %2F.
 */
static int
reencode(struct buf *b, const char *s, size_t n, int keep_slash)
{
	size_t	      i;
	unsigned char c;
	int	      hi, lo;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3 ||
			    (hi = hex_value((unsigned char)s[i + 1])) < 0 ||
			    (lo = hex_value((unsigned char)s[i + 2])) < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (is_unreserved(c))
				buf_add(b, &c, 1);
			else
				add_pct(b, c);
		} else if (is_unreserved(c) || (keep_slash && c == '/'))
			buf_add(b, &c, 1);
		else
			add_pct(b, c);
	}
	return 0;
}

/* Encode every byte but unreserved ones and '/' (so '%' becomes %25). */
static void
encode_path(struct buf *b, const char *s, size_t n)
{
	size_t	      i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (is_unreserved(c) || c == '/')
			buf_add(b, &c, 1);
		else
			add_pct(b, c);
	}
}

/*
 * RFC 3986 remove_dot_segments plus collapsing of repeated slashes, as the
 * aws-c-auth suite expects: "//example//" -> "/example/", "/a/.." -> "/".
 */
static void
normalize_path(struct buf *out, const char *path)
{
	const char **seg, *p, *e;
	size_t	    *seglen, nseg = 0, max = 1, i, l;
	int	     trailing = 0;

	for (p = path; *p != '\0'; p++)
		if (*p == '/')
			max++;
	seg = xcalloc(max, sizeof(*seg));
	seglen = xcalloc(max, sizeof(*seglen));
	for (p = path;; p = e + 1) {
		if ((e = strchr(p, '/')) == NULL)
			e = p + strlen(p);
		l = (size_t)(e - p);
		/* a final empty, "." or ".." segment leaves a directory */
		trailing = l == 0 || (l == 1 && p[0] == '.') ||
		    (l == 2 && p[0] == '.' && p[1] == '.');
		if (l == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg > 0)
				nseg--;
		} else if (l > 0 && !(l == 1 && p[0] == '.')) {
			seg[nseg] = p;
			seglen[nseg++] = l;
		}
		if (*e == '\0')
			break;
	}
	for (i = 0; i < nseg; i++) {
		buf_add(out, "/", 1);
		buf_add(out, seg[i], seglen[i]);
	}
	if (nseg == 0 || trailing)
		buf_add(out, "/", 1);
	free(seg);
	free(seglen);
}

static int
canonical_uri(struct buf *b, const struct sigv4_request *req)
{
	struct buf  norm;
	const char *path = req->path;

	if (*path == '\0')
		path = "/";
	if (*path != '/')
		return -EINVAL;
	if (req->mode == SIGV4_S3)
		return reencode(b, path, strlen(path), 1);
	if (req->normalize) {
		buf_init(&norm);
		normalize_path(&norm, path);
		encode_path(b, norm.data, norm.len);
		buf_free(&norm);
	} else
		encode_path(b, path, strlen(path));
	return 0;
}

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int		     c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return strcmp(x->value, y->value);
}

static int
canonical_query(struct buf *b, const char *query)
{
	struct qparam *qp;
	struct buf     t;
	const char    *p, *e, *eq;
	size_t	       n = 1, np = 0, i, len;
	int	       rc = 0;

	if (query == NULL || *query == '\0')
		return 0;
	for (p = query; *p != '\0'; p++)
		if (*p == '&')
			n++;
	qp = xcalloc(n, sizeof(*qp));
	buf_init(&t);
	for (p = query;; p = e + 1) {
		if ((e = strchr(p, '&')) == NULL)
			e = p + strlen(p);
		len = (size_t)(e - p);
		if (len > 0) {
			eq = memchr(p, '=', len);
			if ((rc = reencode(&t, p,
				 eq != NULL ? (size_t)(eq - p) : len, 0)) != 0)
				goto out;
			qp[np].name = buf_steal(&t);
			if (eq != NULL &&
			    (rc = reencode(
				 &t, eq + 1, (size_t)(e - eq - 1), 0)) != 0) {
				np++;
				goto out;
			}
			qp[np++].value = buf_steal(&t);
		}
		if (*e == '\0')
			break;
	}
	qsort(qp, np, sizeof(*qp), qparam_cmp);
	for (i = 0; i < np; i++) {
		if (i > 0)
			buf_add(b, "&", 1);
		buf_adds(b, qp[i].name);
		buf_add(b, "=", 1);
		buf_adds(b, qp[i].value);
	}
out:
	for (i = 0; i < np; i++) {
		free(qp[i].name);
		free(qp[i].value);
	}
	free(qp);
	buf_free(&t);
	return rc;
}

/* Trim, collapse runs of spaces and tabs; reject CR and LF. */
static int
canonical_value(const char *v, char **out)
{
	struct buf b;
	int	   space = 0;

	buf_init(&b);
	buf_add(&b, "", 0);
	for (; *v != '\0'; v++) {
		if (*v == '\r' || *v == '\n') {
			buf_free(&b);
			return -EINVAL;
		}
		if (*v == ' ' || *v == '\t') {
			space = 1;
			continue;
		}
		if (space && b.len > 0)
			buf_add(&b, " ", 1);
		space = 0;
		buf_add(&b, v, 1);
	}
	*out = buf_steal(&b);
	return 0;
}

static int
chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int		   c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int
add_chdr(struct chdr *h, size_t *n, const char *name, const char *value)
{
	char *p;
	int   rc;

	if ((rc = canonical_value(value, &h[*n].value)) != 0)
		return rc;
	h[*n].name = xstrdup(name);
	for (p = h[*n].name; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	h[*n].order = *n;
	(*n)++;
	return 0;
}

/* Headers the signer sets itself; a caller's copy is dropped. */
static int
signer_owned(const struct sigv4_request *req, const struct sigv4_creds *cr,
    const char *name)
{
	if (strcasecmp(name, "host") == 0 ||
	    strcasecmp(name, "x-amz-date") == 0 ||
	    strcasecmp(name, "authorization") == 0)
		return 1;
	if (req->mode == SIGV4_S3 &&
	    strcasecmp(name, "x-amz-content-sha256") == 0)
		return 1;
	return cr->session_token != NULL &&
	    strcasecmp(name, "x-amz-security-token") == 0;
}

/* Appends the canonical headers block and fills signed_headers. */
static int
canonical_headers(struct buf *b, struct buf *signed_headers,
    const struct sigv4_request *req, const struct sigv4_creds *cr,
    const char *amz_date)
{
	struct chdr *h;
	size_t	     n = 0, i;
	int	     rc = 0;

	h = xcalloc(req->nheaders + 4, sizeof(*h));
	for (i = 0; i < req->nheaders; i++) {
		if (!is_token(req->headers[i].name) ||
		    req->headers[i].value == NULL) {
			rc = -EINVAL;
			goto out;
		}
		if (signer_owned(req, cr, req->headers[i].name))
			continue;
		if ((rc = add_chdr(h, &n, req->headers[i].name,
			 req->headers[i].value)) != 0)
			goto out;
	}
	if ((rc = add_chdr(h, &n, "host", req->host)) != 0 ||
	    (rc = add_chdr(h, &n, "x-amz-date", amz_date)) != 0)
		goto out;
	if (req->mode == SIGV4_S3 &&
	    (rc = add_chdr(
		 h, &n, "x-amz-content-sha256", req->payload_sha256_hex)) != 0)
		goto out;
	if (cr->session_token != NULL &&
	    (rc = add_chdr(h, &n, "x-amz-security-token", cr->session_token)) !=
		0)
		goto out;
	qsort(h, n, sizeof(*h), chdr_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
			buf_add(b, ",", 1);
			buf_adds(b, h[i].value);
			continue;
		}
		if (i > 0) {
			buf_add(b, "\n", 1);
			buf_add(signed_headers, ";", 1);
		}
		buf_adds(b, h[i].name);
		buf_add(b, ":", 1);
		buf_adds(b, h[i].value);
		buf_adds(signed_headers, h[i].name);
	}
	buf_add(b, "\n", 1);
out:
	for (i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	return rc;
}

static int
valid_payload_hash(const char *s)
{
	size_t i;

	if (strcmp(s, SIGV4_UNSIGNED_PAYLOAD) == 0)
		return 1;
	if (strncmp(s, "STREAMING-", 10) == 0) {
		for (; *s != '\0'; s++)
			if (!((*s >= 'A' && *s <= 'Z') ||
				(*s >= '0' && *s <= '9') || *s == '-'))
				return 0;
		return 1;
	}
	for (i = 0; s[i] != '\0'; i++)
		if (hex_value((unsigned char)s[i]) < 0 ||
		    (s[i] >= 'A' && s[i] <= 'F'))
			return 0;
	return i == 64;
}

/*
 * OpenSSL 3 looks an algorithm up by name on every EVP_sha256() or HMAC()
 * call; a signature needs two of each, so each thread fetches SHA-256,
 * MD5 and an HMAC-SHA256 context once and keeps them.
 */
static _Thread_local struct {
	EVP_MD	    *sha256;
	EVP_MD	    *md5;
	EVP_MAC_CTX *hmac;
} algs;

static const EVP_MD *
alg_digest(EVP_MD **slot, const char *name)
{
	if (*slot == NULL && (*slot = EVP_MD_fetch(NULL, name, NULL)) == NULL)
		fatal("%s is not available (FIPS provider?)", name);
	return *slot;
}

static int
hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
    unsigned char out[32])
{
	size_t outlen = 0;

	if (algs.hmac == NULL) {
		EVP_MAC	    *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM   params[2];
		EVP_MAC_CTX *ctx;

		if (mac == NULL)
			return -EIO;
		ctx = EVP_MAC_CTX_new(mac);
		EVP_MAC_free(mac); /* the context holds a reference */
		params[0] = OSSL_PARAM_construct_utf8_string(
		    "digest", (char *)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1) {
			EVP_MAC_CTX_free(ctx);
			return -EIO;
		}
		algs.hmac = ctx;
	}
	/* A new key restarts the context; the digest stays. */
	if (EVP_MAC_init(algs.hmac, key, keylen, NULL) != 1 ||
	    EVP_MAC_update(algs.hmac, data, n) != 1 ||
	    EVP_MAC_final(algs.hmac, out, &outlen, 32) != 1 || outlen != 32)
		return -EIO;
	return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service),
 * "aws4_request"), cached per thread. */
static int
signing_key(const char *secret, const char *date, const char *region,
    const char *service, unsigned char key[32])
{
	struct key_cache *kc = &key_cache;
	unsigned char	  k[32];
	char		 *k0;
	size_t		  slen = strlen(secret);
	int		  rc, cacheable;

	cacheable = slen < sizeof(kc->secret) &&
	    strlen(region) < sizeof(kc->region) &&
	    strlen(service) < sizeof(kc->service);
	if (cacheable && kc->valid && strcmp(kc->date, date) == 0 &&
	    strcmp(kc->region, region) == 0 &&
	    strcmp(kc->service, service) == 0 && kc->secretlen == slen &&
	    CRYPTO_memcmp(kc->secret, secret, slen) == 0) {
		memcpy(key, kc->key, 32);
		return 0;
	}

	k0 = xasprintf("AWS4%s", secret);
	rc = hmac_sha256(k0, slen + 4, date, strlen(date), k);
	OPENSSL_cleanse(k0, slen + 4);
	free(k0);
	if (rc != 0 ||
	    (rc = hmac_sha256(k, 32, region, strlen(region), k)) != 0 ||
	    (rc = hmac_sha256(k, 32, service, strlen(service), k)) != 0 ||
	    (rc = hmac_sha256(k, 32, SIGV4_TERMINATOR, strlen(SIGV4_TERMINATOR),
		 key)) != 0) {
		OPENSSL_cleanse(k, sizeof(k));
		return rc;
	}
	OPENSSL_cleanse(k, sizeof(k));

	if (cacheable) {
		OPENSSL_cleanse(kc, sizeof(*kc));
		memcpy(kc->date, date, 9);
		memcpy(kc->region, region, strlen(region) + 1);
		memcpy(kc->service, service, strlen(service) + 1);
		memcpy(kc->secret, secret, slen + 1);
		kc->secretlen = slen;
		memcpy(kc->key, key, 32);
		kc->valid = 1;
	}
	return 0;
}

static int
valid_request(const struct sigv4_request *req, const struct sigv4_creds *cr)
{
	if (req == NULL || cr == NULL || !is_token(req->method) ||
	    req->host == NULL || req->host[0] == '\0' || req->path == NULL ||
	    req->payload_sha256_hex == NULL ||
	    (req->headers == NULL && req->nheaders > 0) ||
	    (req->mode != SIGV4_S3 && req->mode != SIGV4_GENERIC) ||
	    !valid_payload_hash(req->payload_sha256_hex) ||
	    !is_scope_part(req->region) || !is_scope_part(req->service) ||
	    !is_scope_part(cr->access_key_id) ||
	    cr->secret_access_key == NULL || cr->secret_access_key[0] == '\0')
		return 0;
	return 1;
}

int
sigv4_sign(const struct sigv4_request *req, const struct sigv4_creds *cr,
    struct sigv4_signed *out)
{
	struct buf    creq, sh;
	struct tm     tm;
	char	      date[9], scope[256], creq_hash[65], *sts;
	unsigned char key[32], sig[32];
	int	      rc;

	memset(out, 0, sizeof(*out));
	if (!valid_request(req, cr))
		return -EINVAL;
	if (gmtime_r(&req->when, &tm) == NULL || tm.tm_year + 1900 < 1970 ||
	    tm.tm_year + 1900 > 9999 ||
	    strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ",
		&tm) != 16) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	if ((size_t)snprintf(scope, sizeof(scope), "%s/%s/%s/" SIGV4_TERMINATOR,
		date, req->region, req->service) >= sizeof(scope)) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}

	buf_init(&creq);
	buf_init(&sh);
	buf_adds(&creq, req->method);
	buf_add(&creq, "\n", 1);
	if ((rc = canonical_uri(&creq, req)) != 0)
		goto fail;
	buf_add(&creq, "\n", 1);
	if ((rc = canonical_query(&creq, req->query)) != 0)
		goto fail;
	buf_add(&creq, "\n", 1);
	if ((rc = canonical_headers(&creq, &sh, req, cr, out->amz_date)) != 0)
		goto fail;
	buf_add(&creq, "\n", 1);
	buf_add(&creq, sh.data, sh.len);
	buf_add(&creq, "\n", 1);
	buf_adds(&creq, req->payload_sha256_hex);

	sha256_hex(creq.data, creq.len, creq_hash);
	sts = xasprintf(
	    SIGV4_ALGORITHM "\n%s\n%s\n%s", out->amz_date, scope, creq_hash);
	if ((rc = signing_key(cr->secret_access_key, date, req->region,
		 req->service, key)) != 0 ||
	    (rc = hmac_sha256(key, sizeof(key), sts, strlen(sts), sig)) != 0) {
		OPENSSL_cleanse(key, sizeof(key));
		free(sts);
		goto fail;
	}
	OPENSSL_cleanse(key, sizeof(key));
	hex_encode(sig, sizeof(sig), out->signature);
	out->authorization = xasprintf(SIGV4_ALGORITHM
	    " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
	    cr->access_key_id, scope, sh.data, out->signature);
	out->canonical_request = buf_steal(&creq);
	out->string_to_sign = sts;
	buf_free(&sh);
	return 0;

fail:
	buf_free(&creq);
	buf_free(&sh);
	memset(out, 0, sizeof(*out));
	return rc;
}

void
sigv4_signed_free(struct sigv4_signed *s)
{
	if (s == NULL)
		return;
	free(s->authorization);
	free(s->canonical_request);
	free(s->string_to_sign);
	memset(s, 0, sizeof(*s));
}

void
sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int  len = 0;

	if (EVP_Digest(n > 0 ? p : "", n, md, &len,
		alg_digest(&algs.sha256, "SHA256"), NULL) != 1 ||
	    len != 32)
		fatal("SHA-256 is not available");
	hex_encode(md, 32, out);
}

void
md5_base64(const void *p, size_t n, char out[25])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int  len = 0;

	/* MD5 is missing under a FIPS-only provider; Content-MD5 needs it. */
	if (EVP_Digest(n > 0 ? p : "", n, md, &len,
		alg_digest(&algs.md5, "MD5"), NULL) != 1 ||
	    len != 16)
		fatal("MD5 is not available (FIPS provider?)");
	EVP_EncodeBlock((unsigned char *)out, md, 16);
}
