/*
 * Bucket-level operations other than listing and bulk deletes.
 */
#include <string.h>
#include <time.h>

#include "ops.h"
#include "xmlout.h"

#define OWNER_XML                                                              \
	"<Owner><ID>s3mem</ID><DisplayName>s3mem</DisplayName></Owner>"

/* S3's rules: 3 to 63 of a-z 0-9 . -, a letter or digit at each end. */
int
bucket_name_valid(const char *name)
{
	size_t len = strlen(name), i;

	if (len < 3 || len > 63)
		return 0;
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
			(name[i] >= '0' && name[i] <= '9') || name[i] == '.' ||
			name[i] == '-'))
			return 0;
	return name[0] != '.' && name[0] != '-' && name[len - 1] != '.' &&
	    name[len - 1] != '-';
}

void
op_list_buckets(struct s3req *r)
{
	const struct store *s = r->srv->store;
	struct bucket	   *b;
	struct buf	    out;
	char		    when[32];
	size_t		    i;

	buf_init(&out);
	buf_adds(&out,
	    XML_DECL "<ListAllMyBucketsResult xmlns=\"" S3_XMLNS "\">" OWNER_XML
		     "<Buckets>");
	for (i = 0; i < store_bucket_count(s); i++) {
		b = store_bucket_at(s, i);
		time_iso8601(bucket_created(b), when);
		buf_adds(&out, "<Bucket>");
		xml_elem_str(&out, "Name", bucket_name(b), 0);
		xml_elem_str(&out, "CreationDate", when, 0);
		buf_adds(&out, "</Bucket>");
	}
	buf_adds(&out, "</Buckets></ListAllMyBucketsResult>");
	reply(r, 200, &out);
	buf_free(&out);
}

/*
 * As in us-east-1, creating a bucket one already owns succeeds; in other
 * regions S3 answers BucketAlreadyOwnedByYou.
 */
void
op_create_bucket(struct s3req *r)
{
	if (!bucket_name_valid(r->bucket_name)) {
		reply_error(r, 400, "InvalidBucketName",
		    "The specified bucket is not valid: %s", r->bucket_name);
		return;
	}
	if (store_bucket_create(r->srv->store, r->bucket_name, time(NULL)) !=
		0 &&
	    strcmp(r->srv->auth.region, "us-east-1") != 0) {
		reply_error(r, 409, "BucketAlreadyOwnedByYou",
		    "Your previous request to create the named bucket "
		    "succeeded and you already own it.");
		return;
	}
	evhttp_add_header(reply_headers(r), "Location", r->path);
	reply(r, 200, NULL);
}

void
op_delete_bucket(struct s3req *r)
{
	if (store_bucket_delete(r->srv->store, r->bucket) != 0) {
		reply_error(r, 409, "BucketNotEmpty",
		    "The bucket you tried to delete is not empty.");
		return;
	}
	r->bucket = NULL;
	reply(r, 204, NULL);
}

void
op_bucket_location(struct s3req *r)
{
	struct buf out;

	buf_init(&out);
	buf_adds(&out, XML_DECL "<LocationConstraint xmlns=\"" S3_XMLNS "\">");
	/* us-east-1 is the empty constraint */
	if (strcmp(r->srv->auth.region, "us-east-1") != 0)
		xml_text(
		    &out, r->srv->auth.region, strlen(r->srv->auth.region));
	buf_adds(&out, "</LocationConstraint>");
	reply(r, 200, &out);
	buf_free(&out);
}
