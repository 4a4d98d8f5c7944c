/*
 * Streaming parsers for the XML that S3 (and Cloudcube, and s3rver) send
 * back: ListObjectsV2 pages, DeleteObjects results and error documents.
 *
 * The list and delete parsers are created per HTTP response, fed the body
 * in whatever chunks curl hands over, then finished.  Elements are matched
 * by local name whatever their namespace.  Documents with a DOCTYPE are
 * refused, as are documents nested deeper than S3XML_MAX_DEPTH or larger
 * than S3XML_MAX_DOCUMENT.  A failed call leaves a message for the caller
 * in the parser's error accessor; nothing is printed.
 *
 * Strings returned by accessors belong to the parser and live until it is
 * freed.  Accessors answer only after a successful finish; before that
 * (or after a failure) they return 0, -1 or NULL.
 */
#ifndef CLIPSWEEP_S3XML_H
#define CLIPSWEEP_S3XML_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define S3XML_MAX_KEY	   1024	 /* bytes of a decoded key, S3's limit */
#define S3XML_MAX_OBJECTS  10000 /* entries in one page or result */
#define S3XML_MAX_DEPTH	   16	 /* element nesting */
#define S3XML_MAX_DOCUMENT (16 * 1024 * 1024) /* bytes fed in all */

struct s3_object {
	const char *key; /* NUL-terminated, valid UTF-8 */
	size_t	    key_len;
	int64_t	    size;
	int64_t	    last_modified_ms; /* ms since epoch UTC */
};

/*
 * ListObjectsV2 (<ListBucketResult>).  Key and Prefix are URL-decoded when
 * the page says <EncodingType>url</EncodingType>, wherever it says so.
 * Every Contents needs Key, Size and LastModified.  An <Error> document
 * fails with a message naming its Code.
 */
struct s3xml_list;

struct s3xml_list *s3xml_list_create(void);
void		   s3xml_list_free(struct s3xml_list *);
int s3xml_list_feed(struct s3xml_list *, const char *, size_t) MUST_CHECK;
int s3xml_list_finish(struct s3xml_list *) MUST_CHECK;
/* The reason the last feed or finish failed, "" when none did. */
const char *s3xml_list_error(const struct s3xml_list *);

/* IsTruncated; a missing element counts as false. */
int s3xml_list_is_truncated(const struct s3xml_list *);
/* NextContinuationToken, NULL when absent (never when truncated). */
const char *s3xml_list_next_token(const struct s3xml_list *);
/* KeyCount, -1 when absent. */
int64_t s3xml_list_key_count(const struct s3xml_list *);
/* The top-level Prefix, decoded; NULL when absent. */
const char *s3xml_list_prefix(const struct s3xml_list *);
size_t	    s3xml_list_count(const struct s3xml_list *);
/* The i-th Contents in document order, NULL when out of range. */
const struct s3_object *s3xml_list_object(const struct s3xml_list *, size_t);

/*
 * DeleteObjects (<DeleteResult>).  A Deleted entry has deleted = 1 and
 * NULL code and message; an Error entry has deleted = 0, a Code and a
 * Message ("" when absent).  Both need a Key.
 */
struct s3_delete_result {
	const char *key;
	int	    deleted;
	const char *code;
	const char *message;
};

struct s3xml_delete;

struct s3xml_delete *s3xml_delete_create(void);
void		     s3xml_delete_free(struct s3xml_delete *);
int s3xml_delete_feed(struct s3xml_delete *, const char *, size_t) MUST_CHECK;
int s3xml_delete_finish(struct s3xml_delete *) MUST_CHECK;
const char		      *s3xml_delete_error(const struct s3xml_delete *);
size_t			       s3xml_delete_count(const struct s3xml_delete *);
const struct s3_delete_result *s3xml_delete_result(
    const struct s3xml_delete *, size_t);

/*
 * An S3 error document (<Error><Code>..</Code><Message>..</Message>..).
 * Returns 0 when body is one with a non-empty Code, copying Code and
 * Message (possibly empty) truncated at a UTF-8 boundary to fit; returns
 * -1 and empties both buffers otherwise.  Either buffer may be NULL.
 */
int s3xml_error_parse(const char *body, size_t len, char *code, size_t codelen,
    char *msg, size_t msglen) MUST_CHECK;

#endif
