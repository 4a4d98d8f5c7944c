/*
 * Writing S3's XML responses: escaping, encoding-type=url, the timestamps
 * S3 uses, ETags and error documents.
 */
#ifndef S3MEM_XMLOUT_H
#define S3MEM_XMLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "util.h"

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"

/*
 * Escapes s[0..n) as XML character data.  Control characters that XML 1.0
 * cannot carry are written as character references, as S3 does; clients
 * that need them use encoding-type=url.
 */
void xml_text(struct buf *, const char *s, size_t n);
/* S3's encoding-type=url: form encoding, '/' kept, a space as '+'. */
void url_form_encode(struct buf *, const char *s, size_t n);
/* <name>s</name>, the value URL-encoded first when urlenc is set. */
void xml_elem(
    struct buf *, const char *name, const char *s, size_t n, int urlenc);
void xml_elem_str(struct buf *, const char *name, const char *s, int urlenc);
void xml_elem_int(struct buf *, const char *name, int64_t v);

/* 2009-10-12T17:50:30.000Z into out[32]. */
void time_iso8601(int64_t t, char out[32]);
/* Sun, 06 Nov 1994 08:49:37 GMT (RFC 7231 IMF-fixdate) into out[32]. */
void time_http(int64_t t, char out[32]);

/* "0123...", quotes included, into out[40]. */
void etag_hex(const unsigned char md5[16], char out[40]);
/*
 * An object's ETag into out[40]: the MD5 of its body, or for a seeded
 * object (no body) a multipart-style "MD5-OF-KEY-1", which clients do
 * not take for a checksum of the content.
 */
void etag_object(const struct object *, char out[40]);

/*
 * A whole S3 error document.  extra is more elements, already XML, or
 * NULL.
 */
void xml_error(struct buf *, const char *code, const char *message,
    const char *resource, const char *request_id, const char *extra);

#endif
