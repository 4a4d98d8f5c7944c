/*
 * DeleteObjects: POST /BUCKET?delete with
 *   <Delete><Quiet>true</Quiet><Object><Key>k</Key></Object>...</Delete>
 * parsed with expat.  Like S3: Content-MD5 is required, at most 1000
 * objects, anything else is MalformedXML; Quiet lists errors only.  Keys
 * the fault rules pick (key-error, key-rate) get an Error entry and stay.
 * Elements are matched by local name whatever their namespace; a DOCTYPE
 * (and with it any entity declaration) is refused.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>

#include "ops.h"
#include "xmlout.h"

#define MAX_OBJECTS 1000
#define MAX_DEPTH   8
#define NS_SEP	    '\x01'

enum elem { E_OTHER, E_DELETE, E_QUIET, E_OBJECT, E_KEY };

struct del_key {
	char  *key;
	size_t len;
	int    too_long;
};

struct del_parse {
	XML_Parser	parser;
	int		depth;
	enum elem	stack[MAX_DEPTH];
	int		failed;
	const char     *why;
	int		quiet;
	int		in_object_key; /* this Object has its Key */
	struct buf	text;
	struct del_key *keys;
	size_t		nkeys;
};

static enum elem
classify(const char *name)
{
	const char *local = strrchr(name, NS_SEP);

	local = local != NULL ? local + 1 : name;
	if (strcmp(local, "Delete") == 0)
		return E_DELETE;
	if (strcmp(local, "Quiet") == 0)
		return E_QUIET;
	if (strcmp(local, "Object") == 0)
		return E_OBJECT;
	if (strcmp(local, "Key") == 0)
		return E_KEY;
	return E_OTHER;
}

static void
stop(struct del_parse *dp, const char *why)
{
	if (!dp->failed) {
		dp->failed = 1;
		dp->why = why;
	}
	XML_StopParser(dp->parser, XML_FALSE);
}

static enum elem
parent(const struct del_parse *dp)
{
	return dp->depth > 0 ? dp->stack[dp->depth - 1] : E_OTHER;
}

static void XMLCALL
on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct del_parse *dp = arg;
	enum elem	  e = classify(name);

	(void)attrs;
	if (dp->failed)
		return;
	if (dp->depth == MAX_DEPTH) {
		stop(dp, "the document is nested too deeply");
		return;
	}
	if (dp->depth == 0 && e != E_DELETE) {
		stop(dp, "the root element must be Delete");
		return;
	}
	if (e == E_OBJECT && parent(dp) == E_DELETE) {
		if (dp->nkeys == MAX_OBJECTS) {
			stop(dp, "more than 1000 objects");
			return;
		}
		dp->in_object_key = 0;
	}
	if (e == E_KEY && parent(dp) == E_OBJECT && dp->in_object_key) {
		stop(dp, "an Object has two Keys");
		return;
	}
	dp->stack[dp->depth++] = e;
	buf_reset(&dp->text);
}

static void XMLCALL
on_text(void *arg, const XML_Char *s, int len)
{
	struct del_parse *dp = arg;
	enum elem	  e = parent(dp);

	/* One byte past the limit is enough to know a key is too long. */
	if (!dp->failed && (e == E_KEY || e == E_QUIET) && len > 0 &&
	    dp->text.len <= S3MEM_MAX_KEY)
		buf_add(&dp->text, s,
		    (size_t)len > S3MEM_MAX_KEY + 1 - dp->text.len
			? S3MEM_MAX_KEY + 1 - dp->text.len
			: (size_t)len);
}

static void
end_key(struct del_parse *dp)
{
	struct del_key *k;

	dp->keys = xrealloc(dp->keys, (dp->nkeys + 1) * sizeof(*dp->keys));
	k = &dp->keys[dp->nkeys++];
	k->len = dp->text.len;
	k->too_long = k->len > S3MEM_MAX_KEY;
	k->key = xstrndup(dp->text.data != NULL ? dp->text.data : "", k->len);
	dp->in_object_key = 1;
}

static void XMLCALL
on_end(void *arg, const XML_Char *name)
{
	struct del_parse *dp = arg;
	enum elem	  e;

	(void)name;
	/* expat may still report the end of an element after a stop */
	if (dp->failed || dp->depth == 0)
		return;
	e = dp->stack[--dp->depth];
	if (e == E_KEY && parent(dp) == E_OBJECT)
		end_key(dp);
	else if (e == E_QUIET && parent(dp) == E_DELETE)
		dp->quiet = dp->text.len == 4 &&
		    strncasecmp(dp->text.data, "true", 4) == 0;
	else if (e == E_OBJECT && parent(dp) == E_DELETE && !dp->in_object_key)
		stop(dp, "an Object has no Key");
	buf_reset(&dp->text);
}

static void XMLCALL
on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	stop(arg, "a DOCTYPE is not allowed");
}

static void
del_parse_free(struct del_parse *dp)
{
	size_t i;

	for (i = 0; i < dp->nkeys; i++)
		free(dp->keys[i].key);
	free(dp->keys);
	buf_free(&dp->text);
	if (dp->parser != NULL)
		XML_ParserFree(dp->parser);
}

/* Returns 0, or -1 with dp->why set. */
static int
del_parse_run(struct del_parse *dp, const char *body, size_t len)
{
	memset(dp, 0, sizeof(*dp));
	buf_init(&dp->text);
	if ((dp->parser = XML_ParserCreateNS("UTF-8", NS_SEP)) == NULL) {
		dp->why = "out of memory";
		return -1;
	}
	XML_SetUserData(dp->parser, dp);
	XML_SetElementHandler(dp->parser, on_start, on_end);
	XML_SetCharacterDataHandler(dp->parser, on_text);
	XML_SetStartDoctypeDeclHandler(dp->parser, on_doctype);
	if (len > (size_t)INT32_MAX ||
	    XML_Parse(dp->parser, body, (int)len, XML_TRUE) != XML_STATUS_OK) {
		if (!dp->failed)
			dp->why = XML_ErrorString(XML_GetErrorCode(dp->parser));
		return -1;
	}
	if (dp->failed)
		return -1;
	if (dp->nkeys == 0) {
		dp->why = "no Object to delete";
		return -1;
	}
	return 0;
}

static void
add_error(struct buf *out, const struct del_key *k, const char *code,
    const char *message)
{
	buf_adds(out, "<Error>");
	xml_elem(out, "Key", k->key, k->len, 0);
	xml_elem_str(out, "Code", code, 0);
	xml_elem_str(out, "Message", message, 0);
	buf_adds(out, "</Error>");
}

static void
add_result(struct buf *out, const struct del_parse *dp, const struct del_key *k,
    struct s3req *r)
{
	const char *code;

	if (k->too_long || k->len == 0) {
		add_error(out, k,
		    k->too_long ? "KeyTooLongError" : "InvalidArgument",
		    k->too_long ? "Your key is too long" : "The key is empty");
		return;
	}
	if ((code = faults_key_error(
		 r->srv->faults, &r->fault, k->key, k->len)) != NULL) {
		add_error(
		    out, k, code, "s3mem fault: this key was not deleted");
		return;
	}
	bucket_delete(r->bucket, k->key, k->len);
	if (dp->quiet)
		return;
	buf_adds(out, "<Deleted>");
	xml_elem(out, "Key", k->key, k->len, 0);
	buf_adds(out, "</Deleted>");
}

void
op_delete_objects(struct s3req *r)
{
	struct del_parse dp;
	struct buf	 out;
	size_t		 i;

	if (check_content_md5(r, 1) != 0)
		return;
	if (del_parse_run(&dp, r->body, r->bodylen) != 0) {
		reply_error(r, 400, "MalformedXML",
		    "The XML you provided was not well-formed or did not "
		    "validate against our published schema (%s).",
		    dp.why);
		del_parse_free(&dp);
		return;
	}
	buf_init(&out);
	buf_adds(&out, XML_DECL "<DeleteResult xmlns=\"" S3_XMLNS "\">");
	for (i = 0; i < dp.nkeys; i++)
		add_result(&out, &dp, &dp.keys[i], r);
	buf_adds(&out, "</DeleteResult>");
	reply(r, 200, &out);
	buf_free(&out);
	del_parse_free(&dp);
}
