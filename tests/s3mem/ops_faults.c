/*
 * /?s3mem-faults: the fault rules at run time, for tests that change them
 * between steps.  GET reports them; POST replaces them with the body's
 * (see s3mem.c for the language) and reports the new set.  These requests
 * are never faulted themselves.
 */
#include <stdio.h>

#include "ops.h"
#include "xmlout.h"

static void
reply_report(struct s3req *r)
{
	struct buf out;

	buf_init(&out);
	buf_adds(&out, XML_DECL "<FaultsResult>");
	xml_elem_int(&out, "Held", delivery_held(r->srv->delivery));
	faults_report(r->srv->faults, &out);
	buf_adds(&out, "</FaultsResult>");
	reply(r, 200, &out);
	buf_free(&out);
}

void
op_faults(struct s3req *r)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(r->req);
	char		     err[512];

	if (cmd == EVHTTP_REQ_GET) {
		reply_report(r);
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		reply_error(r, 405, "MethodNotAllowed",
		    "?s3mem-faults takes GET (report) or POST (replace).");
		return;
	}
	if (faults_set(r->srv->faults, r->body, r->bodylen, err, sizeof(err)) !=
	    0) {
		reply_error(r, 400, "InvalidArgument",
		    "s3mem-faults %s; nothing was changed.", err);
		return;
	}
	if (r->srv->verbose)
		fprintf(stderr, "s3mem: fault rules replaced (%zu bytes)\n",
		    r->bodylen);
	reply_report(r);
}
