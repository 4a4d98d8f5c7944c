#include <stdlib.h>
#include <string.h>

#include "query.h"

int
pct_decode(struct buf *out, const char *s, size_t n, int plus_space)
{
	size_t	      i;
	unsigned char c;
	int	      hi, lo;

	buf_add(out, "", 0);
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3 ||
			    (hi = hex_value((unsigned char)s[i + 1])) < 0 ||
			    (lo = hex_value((unsigned char)s[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_space)
			c = ' ';
		buf_add(out, &c, 1);
	}
	return 0;
}

static int
add_param(struct query *q, const char *p, size_t len)
{
	struct query_param *qp;
	struct buf	    b;
	const char	   *eq;
	size_t		    nlen;

	eq = memchr(p, '=', len);
	nlen = eq != NULL ? (size_t)(eq - p) : len;
	q->params = xrealloc(q->params, (q->n + 1) * sizeof(*q->params));
	qp = &q->params[q->n];
	memset(qp, 0, sizeof(*qp));
	buf_init(&b);
	if (pct_decode(&b, p, nlen, 1) != 0) {
		buf_free(&b);
		return -1;
	}
	qp->name = buf_steal(&b);
	q->n++;
	if (eq != NULL) {
		qp->has_value = 1;
		if (pct_decode(&b, eq + 1, len - nlen - 1, 1) != 0) {
			buf_free(&b);
			return -1;
		}
	} else
		buf_add(&b, "", 0);
	qp->value_len = b.len;
	qp->value = buf_steal(&b);
	return 0;
}

int
query_parse(struct query *q, const char *raw)
{
	const char *p, *e;

	memset(q, 0, sizeof(*q));
	if (raw == NULL)
		return 0;
	for (p = raw;; p = e + 1) {
		if ((e = strchr(p, '&')) == NULL)
			e = p + strlen(p);
		if (e > p && add_param(q, p, (size_t)(e - p)) != 0)
			return -1;
		if (*e == '\0')
			break;
	}
	return 0;
}

void
query_free(struct query *q)
{
	size_t i;

	for (i = 0; i < q->n; i++) {
		free(q->params[i].name);
		free(q->params[i].value);
	}
	free(q->params);
	memset(q, 0, sizeof(*q));
}

const struct query_param *
query_find(const struct query *q, const char *name)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->params[i].name, name) == 0)
			return &q->params[i];
	return NULL;
}

const char *
query_get(const struct query *q, const char *name)
{
	const struct query_param *qp = query_find(q, name);

	return qp != NULL ? qp->value : NULL;
}
