/*
 * A minimal TAP producer for unit tests.  Each check prints one "ok N" or
 * "not ok N" line; tap_done() prints the plan and returns the exit status.
 * meson runs these with protocol 'tap' and counts every check.
 */
#ifndef CLIPSWEEP_TAP_H
#define CLIPSWEEP_TAP_H

#include <stdio.h>
#include <stdarg.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

static inline int __attribute__((format(printf, 5, 6))) tap_ok(int pass,
    const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%sok %d - ", pass ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("#   failed at %s:%d: %s\n", file, line, expr);
	}
	fflush(stdout);
	return pass;
}

#define is_str(got, want, ...)                                                 \
	do {                                                                   \
		const char *g_ = (got), *w_ = (want);                          \
		int	    p_ = (g_ == NULL && w_ == NULL) ||                 \
		    (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0);         \
		if (!ok(p_, __VA_ARGS__))                                      \
			printf("#   got:  '%s'\n#   want: '%s'\n",             \
			    g_ ? g_ : "(null)", w_ ? w_ : "(null)");           \
	} while (0)

#define is_int(got, want, ...)                                                 \
	do {                                                                   \
		long long g_ = (got), w_ = (want);                             \
		if (!ok(g_ == w_, __VA_ARGS__))                                \
			printf("#   got:  %lld\n#   want: %lld\n", g_, w_);    \
	} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed == 0 && tap_n > 0 ? 0 : 1;
}

#endif
