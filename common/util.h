#ifndef CLIPSWEEP_UTIL_H
#define CLIPSWEEP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define MUST_CHECK	  __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define nitems(a)	  (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is a broken invariant: these abort with a message. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) PRINTF_LIKE(1, 2);

/*
 * A growable byte buffer, always NUL-terminated so that text can be used as
 * a C string.  The buffer owns its data; buf_free() releases it.
 */
struct buf {
	char  *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *);
void buf_free(struct buf *);
void buf_reset(struct buf *);
void buf_add(struct buf *, const void *, size_t);
void buf_adds(struct buf *, const char *);
void buf_addf(struct buf *, const char *, ...) PRINTF_LIKE(2, 3);
/*
 * Append n bytes as XML character data: the five special characters and
 * control characters become references.
 */
void buf_add_xml_text(struct buf *, const char *, size_t);
/* Detach the data; the caller owns it and must free() it. */
char *buf_steal(struct buf *);

/* The value of one hex digit, or -1. */
int hex_value(unsigned char);

/* Copy with truncation, always terminating; returns strlen(src). */
size_t strlcpy_(char *, const char *, size_t);

/* Wall clock in milliseconds and monotonic clock in microseconds. */
int64_t now_ms(void);
int64_t mono_us(void);
/* RFC 3339 UTC with milliseconds into out (at least 32 bytes). */
void format_time_ms(int64_t ms, char *out, size_t outlen);

/* True when s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int utf8_valid(const char *s, size_t len);

/*
 * Replace every byte that is not part of a well-formed UTF-8 sequence
 * with '?', in place: for messages built with %.Ns from user input.
 */
void utf8_sanitize(char *);

/* A random RFC 4122 version 4 UUID into out (37 bytes). */
void uuid_v4(char out[37]);

#endif
