#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "xmlout.h"

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

void
xml_text(struct buf *b, const char *s, size_t n)
{
	buf_add_xml_text(b, s, n);
}

static int
keep_literal(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~' || c == '/';
}

void
url_form_encode(struct buf *b, const char *s, size_t n)
{
	unsigned char c;
	char	      e[3];
	size_t	      i;

	buf_add(b, "", 0);
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (keep_literal(c))
			buf_add(b, &c, 1);
		else if (c == ' ')
			buf_add(b, "+", 1);
		else {
			e[0] = '%';
			e[1] = hex_upper[c >> 4];
			e[2] = hex_upper[c & 0xf];
			buf_add(b, e, 3);
		}
	}
}

void
xml_elem(struct buf *b, const char *name, const char *s, size_t n, int urlenc)
{
	struct buf enc;

	buf_add(b, "<", 1);
	buf_adds(b, name);
	buf_add(b, ">", 1);
	if (urlenc) {
		buf_init(&enc);
		url_form_encode(&enc, s, n);
		buf_add(b, enc.data, enc.len);
		buf_free(&enc);
	} else
		xml_text(b, s, n);
	buf_add(b, "</", 2);
	buf_adds(b, name);
	buf_add(b, ">", 1);
}

void
xml_elem_str(struct buf *b, const char *name, const char *s, int urlenc)
{
	xml_elem(b, name, s, strlen(s), urlenc);
}

void
xml_elem_int(struct buf *b, const char *name, int64_t v)
{
	char n[24];

	snprintf(n, sizeof(n), "%lld", (long long)v);
	xml_elem_str(b, name, n, 0);
}

/* gmtime, or the epoch for a time it cannot break down in 4 digits. */
static void
utc(int64_t t, struct tm *tm)
{
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, tm) == NULL || tm->tm_year + 1900 > 9999) {
		tt = 0;
		gmtime_r(&tt, tm);
	}
}

void
time_iso8601(int64_t t, char out[32])
{
	struct tm tm;
	char	  s[80]; /* what the compiler cannot prove fits in 32 */

	utc(t, &tm);
	snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02d.000Z",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
	strlcpy_(out, s, 32);
}

void
time_http(int64_t t, char out[32])
{
	static const char *const days[] = {
	    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm		 tm;
	char s[80]; /* what the compiler cannot prove fits in 32 */

	/* Not strftime: %a and %b follow the locale. */
	utc(t, &tm);
	snprintf(s, sizeof(s), "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	strlcpy_(out, s, 32);
}

void
etag_hex(const unsigned char md5[16], char out[40])
{
	size_t i;

	out[0] = '"';
	for (i = 0; i < 16; i++) {
		out[1 + 2 * i] = hex_lower[md5[i] >> 4];
		out[2 + 2 * i] = hex_lower[md5[i] & 0xf];
	}
	out[33] = '"';
	out[34] = '\0';
}

void
etag_object(const struct object *o, char out[40])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int  len = 0;

	if (o->body != NULL) {
		etag_hex(o->body->md5, out);
		return;
	}
	if (EVP_Digest(o->key, o->keylen, md, &len, EVP_md5(), NULL) != 1)
		memset(md, 0, 16);
	etag_hex(md, out);
	memcpy(&out[33], "-1\"", 4);
}

void
xml_error(struct buf *b, const char *code, const char *message,
    const char *resource, const char *request_id, const char *extra)
{
	buf_adds(b, XML_DECL "<Error>");
	xml_elem_str(b, "Code", code, 0);
	xml_elem_str(b, "Message", message, 0);
	if (resource != NULL)
		xml_elem_str(b, "Resource", resource, 0);
	if (extra != NULL)
		buf_adds(b, extra);
	xml_elem_str(b, "RequestId", request_id, 0);
	buf_adds(b, "</Error>");
}
