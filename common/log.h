#ifndef CLIPSWEEP_LOG_H
#define CLIPSWEEP_LOG_H

#include <stdio.h>

#include "util.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/*
 * Logs go to one stream: one JSON object per line when it is not a
 * terminal (for journald and log shippers), a readable line when it is.
 * The level comes from CLIPSWEEP_LOG_LEVEL (debug, info, warn, error).
 */
void log_init(const char *progname, FILE *stream);
void log_set_json(int);
/* Unless CLIPSWEEP_LOG_LEVEL says otherwise. */
void log_set_default_level(enum log_level);
int  log_enabled(enum log_level);

/*
 * A structured event: msg, then key/value string pairs ending with NULL.
 * A NULL value skips its key.  Values are never secrets: callers pass
 * redacted URLs only.
 */
void logkv(enum log_level, const char *msg, ...) __attribute__((sentinel));

void log_debug(const char *, ...) PRINTF_LIKE(1, 2);
void log_info(const char *, ...) PRINTF_LIKE(1, 2);
void log_warnx(const char *, ...) PRINTF_LIKE(1, 2);
/* Start-up errors and broken invariants only; exits with code 70 or given. */
void fatal(const char *, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));
void fatal_code(int, const char *, ...) PRINTF_LIKE(2, 3)
    __attribute__((noreturn));

#endif
