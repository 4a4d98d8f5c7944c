/*
 * Streaming parsers for S3's XML responses, on top of expat.
 *
 * One core (struct sx) does what all three documents share: it matches
 * elements by local name, keeps the stack of open elements, refuses
 * DOCTYPEs and deep nesting, accumulates the text of the few elements the
 * caller asked for (bounded), and recognises an <Error> root.  The list
 * and delete parsers hang their element handlers off it and do the work
 * that needs the whole document (URL decoding) at finish time.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <expat.h>

#include "log.h"
#include "s3xml.h"
#include "util.h"

/*
 * Elements are known by their local names, whatever their namespace (S3
 * answers in its 2006-03-01 namespace, as the default one).  Namespace
 * processing would only cost time on every element, so the parser does
 * none and a prefix, if a server used one, is cut off here.
 */
#define PREFIX_SEP ':'

#define ERRLEN	     384
#define SNIPLEN	     96
#define TEXT_MAX     4096		 /* token, prefix, ... */
#define TEXT_MAX_KEY (3 * S3XML_MAX_KEY) /* every byte as %XX */
#define TEXT_MAX_NUM 64			 /* Size, LastModified, ... */
#define CODE_MAX     256
#define MESSAGE_MAX  2048

enum el {
	EL_OTHER,
	EL_LISTBUCKETRESULT,
	EL_DELETERESULT,
	EL_ERROR,
	EL_CONTENTS,
	EL_KEY,
	EL_SIZE,
	EL_LASTMODIFIED,
	EL_ISTRUNCATED,
	EL_NEXTCONTINUATIONTOKEN,
	EL_KEYCOUNT,
	EL_PREFIX,
	EL_ENCODINGTYPE,
	EL_DELETED,
	EL_CODE,
	EL_MESSAGE,
	EL_COUNT
};

static const char *const el_names[EL_COUNT] = {
    [EL_OTHER] = "?",
    [EL_LISTBUCKETRESULT] = "ListBucketResult",
    [EL_DELETERESULT] = "DeleteResult",
    [EL_ERROR] = "Error",
    [EL_CONTENTS] = "Contents",
    [EL_KEY] = "Key",
    [EL_SIZE] = "Size",
    [EL_LASTMODIFIED] = "LastModified",
    [EL_ISTRUNCATED] = "IsTruncated",
    [EL_NEXTCONTINUATIONTOKEN] = "NextContinuationToken",
    [EL_KEYCOUNT] = "KeyCount",
    [EL_PREFIX] = "Prefix",
    [EL_ENCODINGTYPE] = "EncodingType",
    [EL_DELETED] = "Deleted",
    [EL_CODE] = "Code",
    [EL_MESSAGE] = "Message",
};

#define BIT(el) (1u << (el))

struct sx {
	XML_Parser xp;
	enum el	   root; /* expected; EL_OTHER: only <Error> */
	enum el	   stack[S3XML_MAX_DEPTH + 1]; /* [1] is the root */
	int	   depth;
	int	   errdoc; /* the root is <Error> */
	int	   failed;
	int	   finished;
	size_t	   fed;

	/* Text of the element being captured. */
	int	   capturing;
	int	   captrunc; /* truncate rather than fail */
	size_t	   capmax;
	struct buf text;

	/* Code and Message of an <Error> document. */
	char *errcode;
	char *errmsg;

	/* Called for elements below the root of the expected document. */
	void (*start)(struct sx *, enum el);
	void (*end)(struct sx *, enum el);
	void *owner;

	char err[ERRLEN];
};

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The longest prefix of s[0..len) within max bytes ending on a character. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	size_t n;

	if (len <= max)
		return len;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* Printable ASCII rendition of untrusted text for an error message. */
static const char *
snip(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	      i, o = 0;
	unsigned char c;

	for (i = 0; i < len && o + 4 < outlen; i++) {
		c = (unsigned char)s[i];
		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static const char *
sx_text(const struct sx *s)
{
	return s->text.data != NULL ? s->text.data : "";
}

/* Record a failure found outside expat's callbacks. */
static void PRINTF_LIKE(2, 3) sx_setf(struct sx *s, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return;
	s->failed = 1;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

/* Record a failure found in a callback, with its line, and stop expat. */
static void PRINTF_LIKE(2, 3) sx_fail(struct sx *s, const char *fmt, ...)
{
	va_list ap;
	int	n;

	if (s->failed)
		return;
	s->failed = 1;
	n = snprintf(s->err, sizeof(s->err),
	    "line %lu: ", (unsigned long)XML_GetCurrentLineNumber(s->xp));
	if (n < 0 || (size_t)n >= sizeof(s->err))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(s->err + n, sizeof(s->err) - (size_t)n, fmt, ap);
	va_end(ap);
	XML_StopParser(s->xp, XML_FALSE);
}

static void
sx_xmlerr(struct sx *s)
{
	sx_setf(s, "XML error at line %lu column %lu: %s",
	    (unsigned long)XML_GetCurrentLineNumber(s->xp),
	    (unsigned long)XML_GetCurrentColumnNumber(s->xp),
	    XML_ErrorString(XML_GetErrorCode(s->xp)));
}

static void
sx_capture(struct sx *s, size_t max, int truncate)
{
	s->capturing = 1;
	s->capmax = max;
	s->captrunc = truncate;
	buf_reset(&s->text);
}

/* Called for every element of every page: compare lengths first. */
static enum el
el_lookup(const char *local)
{
	static size_t lens[EL_COUNT];
	size_t	      len = strlen(local);
	int	      i;

	if (lens[EL_COUNT - 1] == 0)
		for (i = 0; i < EL_COUNT; i++)
			lens[i] = strlen(el_names[i]);
	for (i = EL_OTHER + 1; i < EL_COUNT; i++)
		if (lens[i] == len && memcmp(local, el_names[i], len) == 0)
			return i;
	return EL_OTHER;
}

static void XMLCALL
sx_start(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct sx  *s = arg;
	const char *local;
	char	    sn[SNIPLEN];
	enum el	    el;

	(void)atts;
	if (s->failed)
		return;
	if ((local = strrchr(name, PREFIX_SEP)) != NULL)
		local++;
	else
		local = name;
	if (s->capturing) {
		sx_fail(s, "unexpected element <%s> inside <%s>",
		    snip(local, strlen(local), sn, sizeof(sn)),
		    el_names[s->stack[s->depth]]);
		return;
	}
	if (s->depth >= S3XML_MAX_DEPTH) {
		sx_fail(s, "elements nested deeper than %d", S3XML_MAX_DEPTH);
		return;
	}
	el = el_lookup(local);
	s->stack[++s->depth] = el;
	if (s->depth == 1) {
		if (el == EL_ERROR)
			s->errdoc = 1;
		else if (el != s->root || el == EL_OTHER)
			sx_fail(s, "unexpected root element <%s>",
			    snip(local, strlen(local), sn, sizeof(sn)));
		return;
	}
	if (s->errdoc) {
		if (s->depth == 2 && el == EL_CODE)
			sx_capture(s, CODE_MAX, 1);
		else if (s->depth == 2 && el == EL_MESSAGE)
			sx_capture(s, MESSAGE_MAX, 1);
		return;
	}
	if (s->start != NULL)
		s->start(s, el);
}

static void XMLCALL
sx_end(void *arg, const XML_Char *name)
{
	struct sx *s = arg;
	enum el	   el;

	(void)name;
	if (s->failed)
		return;
	el = s->stack[s->depth];
	if (s->errdoc) {
		if (s->capturing && el == EL_CODE && s->errcode == NULL)
			s->errcode = xstrndup(sx_text(s), s->text.len);
		else if (s->capturing && el == EL_MESSAGE && s->errmsg == NULL)
			s->errmsg = xstrndup(sx_text(s), s->text.len);
	} else if (s->depth > 1 && s->end != NULL)
		s->end(s, el);
	s->capturing = 0;
	buf_reset(&s->text);
	s->depth--;
}

static void XMLCALL
sx_chars(void *arg, const XML_Char *data, int len)
{
	struct sx *s = arg;
	size_t	   n = (size_t)len, room;

	if (s->failed || !s->capturing || len <= 0)
		return;
	room = s->capmax - s->text.len;
	if (n > room) {
		if (!s->captrunc) {
			sx_fail(s, "<%s> longer than %zu bytes",
			    el_names[s->stack[s->depth]], s->capmax);
			return;
		}
		/* Expat never splits a character between callbacks. */
		n = utf8_cut(data, n, room);
		s->capmax = s->text.len + n;
	}
	buf_add(&s->text, data, n);
}

static void XMLCALL
sx_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	sx_fail(arg, "DOCTYPE declarations are not allowed");
}

static void XMLCALL
sx_entity(void *arg, const XML_Char *name, int is_param, const XML_Char *value,
    int value_len, const XML_Char *base, const XML_Char *sysid,
    const XML_Char *pubid, const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	sx_fail(arg, "entity declarations are not allowed");
}

static void
sx_init(struct sx *s, enum el root, void (*start)(struct sx *, enum el),
    void (*end)(struct sx *, enum el), void *owner)
{
	memset(s, 0, sizeof(*s));
	if ((s->xp = XML_ParserCreate(NULL)) == NULL)
		fatal("out of memory creating an XML parser");
	s->root = root;
	s->start = start;
	s->end = end;
	s->owner = owner;
	buf_init(&s->text);
	XML_SetUserData(s->xp, s);
	XML_SetElementHandler(s->xp, sx_start, sx_end);
	XML_SetCharacterDataHandler(s->xp, sx_chars);
	XML_SetStartDoctypeDeclHandler(s->xp, sx_doctype);
	XML_SetEntityDeclHandler(s->xp, sx_entity);
	XML_SetParamEntityParsing(s->xp, XML_PARAM_ENTITY_PARSING_NEVER);
}

static void
sx_free(struct sx *s)
{
	if (s->xp != NULL)
		XML_ParserFree(s->xp);
	s->xp = NULL;
	buf_free(&s->text);
	free(s->errcode);
	free(s->errmsg);
	s->errcode = s->errmsg = NULL;
}

static int
sx_feed(struct sx *s, const char *data, size_t len)
{
	if (s->failed)
		return -1;
	if (s->finished) {
		sx_setf(s, "data fed after finish");
		return -1;
	}
	if (len > S3XML_MAX_DOCUMENT - s->fed) {
		sx_setf(s, "document larger than %d bytes", S3XML_MAX_DOCUMENT);
		return -1;
	}
	if (len == 0)
		return 0;
	/*
	 * UTF-8 XML never holds a NUL; a body that does is UTF-16 or worse,
	 * and expat would guess its encoding differently depending on how
	 * the body was split.  Refuse it whatever the split.
	 */
	if (memchr(data, '\0', len) != NULL) {
		sx_setf(s, "document holds a NUL byte (not UTF-8 XML)");
		return -1;
	}
	s->fed += len;
	/* len <= S3XML_MAX_DOCUMENT, well within an int. */
	if (XML_Parse(s->xp, data, (int)len, XML_FALSE) != XML_STATUS_OK) {
		sx_xmlerr(s);
		return -1;
	}
	return s->failed ? -1 : 0;
}

/* Ends the document; an <Error> root fails unless it was expected. */
static int
sx_finish(struct sx *s)
{
	char sc[SNIPLEN], sm[SNIPLEN * 2];

	s->finished = 1;
	if (s->failed)
		return -1;
	if (XML_Parse(s->xp, "", 0, XML_TRUE) != XML_STATUS_OK) {
		sx_xmlerr(s);
		return -1;
	}
	if (s->failed)
		return -1;
	if (s->errdoc && s->root != EL_OTHER) {
		if (s->errcode == NULL || s->errcode[0] == '\0')
			sx_setf(s, "S3 error document without a Code");
		else
			sx_setf(s, "S3 error %s: %s",
			    snip(
				s->errcode, strlen(s->errcode), sc, sizeof(sc)),
			    s->errmsg == NULL
				? ""
				: snip(s->errmsg, strlen(s->errmsg), sm,
				      sizeof(sm)));
		return -1;
	}
	return 0;
}

/* A non-negative decimal integer, nothing else. */
static int
parse_uint(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;
	size_t	i;
	int	d;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
parse_2(const char *s, int *out)
{
	if (!is_digit(s[0]) || !is_digit(s[1]))
		return -1;
	*out = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

/* YYYY-MM-DDTHH:MM:SS[.fraction]Z into milliseconds since the epoch. */
static int
parse_time_ms(const char *s, size_t len, int64_t *out)
{
	static const int mdays[12] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	struct tm tm;
	time_t	  t;
	int	  c, y, mo, d, h, mi, sec, ms = 0, nfrac = 0, leap, dim;
	size_t	  p;

	if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	if (parse_2(s, &c) == -1 || parse_2(s + 2, &y) == -1 ||
	    parse_2(s + 5, &mo) == -1 || parse_2(s + 8, &d) == -1 ||
	    parse_2(s + 11, &h) == -1 || parse_2(s + 14, &mi) == -1 ||
	    parse_2(s + 17, &sec) == -1)
		return -1;
	y += c * 100;
	p = 19;
	if (s[p] == '.') {
		for (p++; p < len && is_digit(s[p]); p++) {
			if (nfrac < 3)
				ms = ms * 10 + (s[p] - '0');
			nfrac++;
		}
		if (nfrac == 0 || nfrac > 9)
			return -1;
		for (; nfrac < 3; nfrac++)
			ms *= 10;
	}
	if (p != len - 1 || s[p] != 'Z')
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60)
		return -1;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	dim = mdays[mo - 1] + (mo == 2 && leap);
	if (d < 1 || d > dim)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = (int64_t)t * 1000 + ms;
	return 0;
}

/*
 * Undo S3's encoding-type=url: form encoding, where a space is '+' and a
 * literal '+' is %2B.  The '+' are mapped first, then curl decodes the
 * %XX escapes.  A '%' not followed by two hex digits is malformed.
 */
static int
url_decode(const char *in, size_t inlen, char **out, size_t *outlen)
{
	char  *tmp, *dec;
	size_t i;
	int    n;

	for (i = 0; i < inlen; i++)
		if (in[i] == '%' &&
		    (inlen - i < 3 || !is_hex(in[i + 1]) || !is_hex(in[i + 2])))
			return -1;
	if (inlen > INT_MAX)
		return -1;
	if (inlen == 0) {
		/* curl would take a length of 0 to mean strlen(). */
		*out = xstrdup("");
		*outlen = 0;
		return 0;
	}
	tmp = xstrndup(in, inlen);
	for (i = 0; i < inlen; i++)
		if (tmp[i] == '+')
			tmp[i] = ' ';
	dec = curl_easy_unescape(NULL, tmp, (int)inlen, &n);
	free(tmp);
	if (dec == NULL)
		fatal("out of memory URL-decoding a key");
	*out = xstrndup(dec, (size_t)n);
	*outlen = (size_t)n;
	curl_free(dec);
	return 0;
}

/*
 * Finish a key: decode it when asked, then check it is a key S3 could
 * have: at most S3XML_MAX_KEY bytes of UTF-8 without NUL.  On success
 * *key is replaced by the result.
 */
static int
key_fix(char **key, size_t *len, int encoded, const char **why)
{
	char  *dec;
	size_t declen;

	if (encoded) {
		if (url_decode(*key, *len, &dec, &declen) == -1) {
			*why = "malformed URL encoding";
			return -1;
		}
		free(*key);
		*key = dec;
		*len = declen;
	}
	if (*len == 0) {
		*why = "empty";
		return -1;
	}
	if (*len > S3XML_MAX_KEY) {
		*why = "longer than 1024 bytes";
		return -1;
	}
	if (memchr(*key, '\0', *len) != NULL) {
		*why = "contains NUL";
		return -1;
	}
	if (!utf8_valid(*key, *len)) {
		*why = "not valid UTF-8";
		return -1;
	}
	return 0;
}

/*
 * ListObjectsV2.
 */

#define HAVE_KEY   0x1
#define HAVE_SIZE  0x2
#define HAVE_MTIME 0x4

struct list_ent {
	struct s3_object obj;
	char		*key; /* owned; obj.key points here */
	int		 have;
};

struct s3xml_list {
	struct sx	 sx;
	struct list_ent *ents;
	size_t		 nents;
	size_t		 cap;
	unsigned int	 seen; /* BIT(el) of top-level elements */
	int		 ok;   /* finished without error */
	int		 encoded;
	int		 truncated;
	int64_t		 key_count;
	char		*token;
	char		*prefix;
	size_t		 prefix_len;
};

static void
list_start(struct sx *s, enum el el)
{
	struct s3xml_list *l = s->owner;
	struct list_ent	  *e;

	if (s->depth == 2) {
		switch (el) {
		case EL_CONTENTS:
			if (l->nents >= S3XML_MAX_OBJECTS) {
				sx_fail(s, "more than %d Contents",
				    S3XML_MAX_OBJECTS);
				return;
			}
			if (l->nents == l->cap) {
				l->cap = l->cap == 0 ? 64 : l->cap * 2;
				l->ents = xrealloc(
				    l->ents, l->cap * sizeof(*l->ents));
			}
			e = &l->ents[l->nents++];
			memset(e, 0, sizeof(*e));
			break;
		case EL_ISTRUNCATED:
		case EL_KEYCOUNT:
			sx_capture(s, TEXT_MAX_NUM, 0);
			break;
		case EL_NEXTCONTINUATIONTOKEN:
		case EL_PREFIX:
		case EL_ENCODINGTYPE:
			sx_capture(s, TEXT_MAX, 0);
			break;
		default:
			break;
		}
	} else if (s->depth == 3 && s->stack[2] == EL_CONTENTS) {
		if (el == EL_KEY)
			sx_capture(s, TEXT_MAX_KEY, 0);
		else if (el == EL_SIZE || el == EL_LASTMODIFIED)
			sx_capture(s, TEXT_MAX_NUM, 0);
	}
}

static void
list_end_top(struct s3xml_list *l, enum el el)
{
	struct sx	*s = &l->sx;
	struct list_ent *e;
	const char	*t = sx_text(s);
	size_t		 n = s->text.len;
	char		 sn[SNIPLEN];

	if (el == EL_CONTENTS) {
		e = &l->ents[l->nents - 1];
		if (!(e->have & HAVE_KEY))
			sx_fail(s, "Contents #%zu has no Key", l->nents);
		else if (!(e->have & HAVE_SIZE))
			sx_fail(s, "Contents #%zu has no Size", l->nents);
		else if (!(e->have & HAVE_MTIME))
			sx_fail(
			    s, "Contents #%zu has no LastModified", l->nents);
		return;
	}
	if (!s->capturing)
		return;
	if (l->seen & BIT(el)) {
		sx_fail(s, "more than one <%s>", el_names[el]);
		return;
	}
	l->seen |= BIT(el);
	switch (el) {
	case EL_ISTRUNCATED:
		if (strcmp(t, "true") == 0)
			l->truncated = 1;
		else if (strcmp(t, "false") == 0)
			l->truncated = 0;
		else
			sx_fail(s, "bad IsTruncated '%s'",
			    snip(t, n, sn, sizeof(sn)));
		break;
	case EL_KEYCOUNT:
		if (parse_uint(t, n, &l->key_count) == -1)
			sx_fail(
			    s, "bad KeyCount '%s'", snip(t, n, sn, sizeof(sn)));
		break;
	case EL_NEXTCONTINUATIONTOKEN:
		if (n == 0)
			sx_fail(s, "empty NextContinuationToken");
		else if (memchr(t, '\0', n) != NULL)
			sx_fail(s, "NUL in NextContinuationToken");
		else
			l->token = xstrndup(t, n);
		break;
	case EL_PREFIX:
		l->prefix = xstrndup(t, n);
		l->prefix_len = n;
		break;
	case EL_ENCODINGTYPE:
		if (strcmp(t, "url") == 0)
			l->encoded = 1;
		else
			sx_fail(s, "unsupported EncodingType '%s'",
			    snip(t, n, sn, sizeof(sn)));
		break;
	default:
		break;
	}
}

static void
list_end(struct sx *s, enum el el)
{
	struct s3xml_list *l = s->owner;
	struct list_ent	  *e;
	const char	  *t = sx_text(s);
	size_t		   n = s->text.len;
	char		   sn[SNIPLEN];
	int		   bit;

	if (s->depth == 2) {
		list_end_top(l, el);
		return;
	}
	if (s->depth != 3 || s->stack[2] != EL_CONTENTS || !s->capturing)
		return;
	e = &l->ents[l->nents - 1];
	bit = el == EL_KEY ? HAVE_KEY : el == EL_SIZE ? HAVE_SIZE : HAVE_MTIME;
	if (e->have & bit) {
		sx_fail(s, "Contents #%zu has more than one <%s>", l->nents,
		    el_names[el]);
		return;
	}
	e->have |= bit;
	switch (el) {
	case EL_KEY:
		if (n == 0) {
			sx_fail(s, "Contents #%zu has an empty Key", l->nents);
			return;
		}
		e->key = xstrndup(t, n);
		e->obj.key_len = n;
		break;
	case EL_SIZE:
		if (parse_uint(t, n, &e->obj.size) == -1)
			sx_fail(s, "Contents #%zu: bad Size '%s'", l->nents,
			    snip(t, n, sn, sizeof(sn)));
		break;
	case EL_LASTMODIFIED:
		if (parse_time_ms(t, n, &e->obj.last_modified_ms) == -1)
			sx_fail(s, "Contents #%zu: bad LastModified '%s'",
			    l->nents, snip(t, n, sn, sizeof(sn)));
		break;
	default:
		break;
	}
}

struct s3xml_list *
s3xml_list_create(void)
{
	struct s3xml_list *l;

	l = xcalloc(1, sizeof(*l));
	l->key_count = -1;
	sx_init(&l->sx, EL_LISTBUCKETRESULT, list_start, list_end, l);
	return l;
}

void
s3xml_list_free(struct s3xml_list *l)
{
	size_t i;

	if (l == NULL)
		return;
	sx_free(&l->sx);
	for (i = 0; i < l->nents; i++)
		free(l->ents[i].key);
	free(l->ents);
	free(l->token);
	free(l->prefix);
	free(l);
}

int
s3xml_list_feed(struct s3xml_list *l, const char *data, size_t len)
{
	return sx_feed(&l->sx, data, len);
}

int
s3xml_list_finish(struct s3xml_list *l)
{
	struct list_ent *e;
	char		*dec;
	const char	*why;
	size_t		 i, declen;

	if (l->sx.finished)
		return l->ok && !l->sx.failed ? 0 : -1;
	if (sx_finish(&l->sx) == -1)
		return -1;
	if (l->truncated && l->token == NULL) {
		sx_setf(&l->sx, "IsTruncated without NextContinuationToken");
		return -1;
	}
	if (l->prefix != NULL && l->encoded) {
		if (url_decode(l->prefix, l->prefix_len, &dec, &declen) == -1) {
			sx_setf(&l->sx, "Prefix: malformed URL encoding");
			return -1;
		}
		free(l->prefix);
		l->prefix = dec;
		l->prefix_len = declen;
	}
	if (l->prefix != NULL &&
	    memchr(l->prefix, '\0', l->prefix_len) != NULL) {
		sx_setf(&l->sx, "Prefix contains NUL");
		return -1;
	}
	for (i = 0; i < l->nents; i++) {
		e = &l->ents[i];
		if (key_fix(&e->key, &e->obj.key_len, l->encoded, &why) == -1) {
			sx_setf(&l->sx, "Contents #%zu: Key %s", i + 1, why);
			return -1;
		}
		e->obj.key = e->key;
	}
	l->ok = 1;
	return 0;
}

const char *
s3xml_list_error(const struct s3xml_list *l)
{
	return l->sx.err;
}

int
s3xml_list_is_truncated(const struct s3xml_list *l)
{
	return l->ok ? l->truncated : 0;
}

const char *
s3xml_list_next_token(const struct s3xml_list *l)
{
	return l->ok ? l->token : NULL;
}

int64_t
s3xml_list_key_count(const struct s3xml_list *l)
{
	return l->ok ? l->key_count : -1;
}

const char *
s3xml_list_prefix(const struct s3xml_list *l)
{
	return l->ok ? l->prefix : NULL;
}

size_t
s3xml_list_count(const struct s3xml_list *l)
{
	return l->ok ? l->nents : 0;
}

const struct s3_object *
s3xml_list_object(const struct s3xml_list *l, size_t i)
{
	if (!l->ok || i >= l->nents)
		return NULL;
	return &l->ents[i].obj;
}

/*
 * DeleteObjects.
 */

#define HAVE_CODE    0x2
#define HAVE_MESSAGE 0x4

struct delete_ent {
	struct s3_delete_result r;
	char		       *key; /* owned; r.key etc. point here */
	size_t			key_len;
	char		       *code;
	char		       *message;
	int			have;
};

struct s3xml_delete {
	struct sx	   sx;
	struct delete_ent *ents;
	size_t		   nents;
	size_t		   cap;
	int		   ok;
	int		   encoded;
	int		   seen_encoding;
};

static void
delete_start(struct sx *s, enum el el)
{
	struct s3xml_delete *d = s->owner;
	struct delete_ent   *e;

	if (s->depth == 2) {
		if (el == EL_DELETED || el == EL_ERROR) {
			if (d->nents >= S3XML_MAX_OBJECTS) {
				sx_fail(s, "more than %d results",
				    S3XML_MAX_OBJECTS);
				return;
			}
			if (d->nents == d->cap) {
				d->cap = d->cap == 0 ? 64 : d->cap * 2;
				d->ents = xrealloc(
				    d->ents, d->cap * sizeof(*d->ents));
			}
			e = &d->ents[d->nents++];
			memset(e, 0, sizeof(*e));
			e->r.deleted = el == EL_DELETED;
		} else if (el == EL_ENCODINGTYPE)
			sx_capture(s, TEXT_MAX, 0);
		return;
	}
	if (s->depth != 3 ||
	    (s->stack[2] != EL_DELETED && s->stack[2] != EL_ERROR))
		return;
	if (el == EL_KEY)
		sx_capture(s, TEXT_MAX_KEY, 0);
	else if (s->stack[2] == EL_ERROR && el == EL_CODE)
		sx_capture(s, CODE_MAX, 1);
	else if (s->stack[2] == EL_ERROR && el == EL_MESSAGE)
		sx_capture(s, MESSAGE_MAX, 1);
}

static void
delete_end(struct sx *s, enum el el)
{
	struct s3xml_delete *d = s->owner;
	struct delete_ent   *e;
	const char	    *t = sx_text(s);
	size_t		     n = s->text.len;
	char		     sn[SNIPLEN];
	int		     bit;

	if (s->depth == 2 && el == EL_ENCODINGTYPE && s->capturing) {
		if (d->seen_encoding++)
			sx_fail(s, "more than one <EncodingType>");
		else if (strcmp(t, "url") == 0)
			d->encoded = 1;
		else
			sx_fail(s, "unsupported EncodingType '%s'",
			    snip(t, n, sn, sizeof(sn)));
		return;
	}
	if (s->depth == 2 && (el == EL_DELETED || el == EL_ERROR)) {
		e = &d->ents[d->nents - 1];
		if (!(e->have & HAVE_KEY))
			sx_fail(
			    s, "%s #%zu has no Key", el_names[el], d->nents);
		else if (el == EL_ERROR &&
		    (e->code == NULL || e->code[0] == '\0'))
			sx_fail(s, "Error #%zu has no Code", d->nents);
		return;
	}
	if (s->depth != 3 || !s->capturing)
		return;
	e = &d->ents[d->nents - 1];
	bit = el == EL_KEY  ? HAVE_KEY
	    : el == EL_CODE ? HAVE_CODE
			    : HAVE_MESSAGE;
	if (e->have & bit) {
		sx_fail(s, "result #%zu has more than one <%s>", d->nents,
		    el_names[el]);
		return;
	}
	e->have |= bit;
	switch (el) {
	case EL_KEY:
		if (n == 0) {
			sx_fail(s, "result #%zu has an empty Key", d->nents);
			return;
		}
		e->key = xstrndup(t, n);
		e->key_len = n;
		break;
	case EL_CODE:
		e->code = xstrndup(t, n);
		break;
	case EL_MESSAGE:
		e->message = xstrndup(t, n);
		break;
	default:
		break;
	}
}

struct s3xml_delete *
s3xml_delete_create(void)
{
	struct s3xml_delete *d;

	d = xcalloc(1, sizeof(*d));
	sx_init(&d->sx, EL_DELETERESULT, delete_start, delete_end, d);
	return d;
}

void
s3xml_delete_free(struct s3xml_delete *d)
{
	size_t i;

	if (d == NULL)
		return;
	sx_free(&d->sx);
	for (i = 0; i < d->nents; i++) {
		free(d->ents[i].key);
		free(d->ents[i].code);
		free(d->ents[i].message);
	}
	free(d->ents);
	free(d);
}

int
s3xml_delete_feed(struct s3xml_delete *d, const char *data, size_t len)
{
	return sx_feed(&d->sx, data, len);
}

int
s3xml_delete_finish(struct s3xml_delete *d)
{
	struct delete_ent *e;
	const char	  *why;
	size_t		   i;

	if (d->sx.finished)
		return d->ok && !d->sx.failed ? 0 : -1;
	if (sx_finish(&d->sx) == -1)
		return -1;
	for (i = 0; i < d->nents; i++) {
		e = &d->ents[i];
		if (key_fix(&e->key, &e->key_len, d->encoded, &why) == -1) {
			sx_setf(&d->sx, "result #%zu: Key %s", i + 1, why);
			return -1;
		}
		e->r.key = e->key;
		if (!e->r.deleted) {
			if (e->message == NULL)
				e->message = xstrdup("");
			e->r.code = e->code;
			e->r.message = e->message;
		}
	}
	d->ok = 1;
	return 0;
}

const char *
s3xml_delete_error(const struct s3xml_delete *d)
{
	return d->sx.err;
}

size_t
s3xml_delete_count(const struct s3xml_delete *d)
{
	return d->ok ? d->nents : 0;
}

const struct s3_delete_result *
s3xml_delete_result(const struct s3xml_delete *d, size_t i)
{
	if (!d->ok || i >= d->nents)
		return NULL;
	return &d->ents[i].r;
}

/*
 * Error documents.
 */

static void
copy_cut(char *dst, size_t dstlen, const char *src)
{
	size_t n;

	if (dst == NULL || dstlen == 0)
		return;
	n = utf8_cut(src, strlen(src), dstlen - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int
s3xml_error_parse(const char *body, size_t len, char *code, size_t codelen,
    char *msg, size_t msglen)
{
	struct sx s;
	int	  rv = -1;

	copy_cut(code, codelen, "");
	copy_cut(msg, msglen, "");
	sx_init(&s, EL_OTHER, NULL, NULL, NULL);
	if (sx_feed(&s, body, len) == 0 && sx_finish(&s) == 0 && s.errdoc &&
	    s.errcode != NULL && s.errcode[0] != '\0') {
		copy_cut(code, codelen, s.errcode);
		copy_cut(msg, msglen, s.errmsg != NULL ? s.errmsg : "");
		rv = 0;
	}
	sx_free(&s);
	return rv;
}
