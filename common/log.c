#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"

static const char    *log_prog = "clipsweep";
static FILE	     *log_stream;
static int	      log_json;
static enum log_level log_min = LOG_INFO;
static const char    *level_names[] = {"debug", "info", "warn", "error"};

void
log_init(const char *progname, FILE *stream)
{
	const char *lvl = getenv("CLIPSWEEP_LOG_LEVEL");
	size_t	    i;

	log_prog = progname;
	log_stream = stream;
	log_json = !isatty(fileno(stream));
	if (lvl != NULL) {
		for (i = 0; i < nitems(level_names); i++)
			if (strcasecmp(lvl, level_names[i]) == 0)
				log_min = (enum log_level)i;
	}
}

void
log_set_json(int on)
{
	log_json = on;
}

void
log_set_default_level(enum log_level lvl)
{
	if (getenv("CLIPSWEEP_LOG_LEVEL") == NULL)
		log_min = lvl;
}

int
log_enabled(enum log_level lvl)
{
	return lvl >= log_min;
}

static void
log_emit(enum log_level lvl, const char *msg, va_list ap)
{
	FILE	   *f = log_stream != NULL ? log_stream : stderr;
	const char *k, *v;
	char	    ts[40];

	if (lvl < log_min)
		return;
	format_time_ms(now_ms(), ts, sizeof(ts));
	if (log_json) {
		cJSON *o = cJSON_CreateObject();
		char  *s;

		cJSON_AddStringToObject(o, "ts", ts);
		cJSON_AddStringToObject(o, "level", level_names[lvl]);
		cJSON_AddStringToObject(o, "msg", msg);
		while ((k = va_arg(ap, const char *)) != NULL) {
			v = va_arg(ap, const char *);
			if (v != NULL)
				cJSON_AddStringToObject(o, k, v);
		}
		s = cJSON_PrintUnformatted(o);
		fprintf(f, "%s\n", s);
		cJSON_free(s);
		cJSON_Delete(o);
	} else {
		fprintf(
		    f, "%s %s: %s: %s", ts, log_prog, level_names[lvl], msg);
		while ((k = va_arg(ap, const char *)) != NULL) {
			v = va_arg(ap, const char *);
			if (v != NULL)
				fprintf(f, " %s=%s", k, v);
		}
		fputc('\n', f);
	}
	fflush(f);
}

void
logkv(enum log_level lvl, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_emit(lvl, msg, ap);
	va_end(ap);
}

static void
log_vfmt(enum log_level lvl, const char *fmt, va_list ap)
{
	char msg[2048];

	if (lvl < log_min)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	logkv(lvl, msg, (char *)NULL);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfmt(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfmt(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfmt(LOG_WARN, fmt, ap);
	va_end(ap);
}

void
fatal_code(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfmt(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(code);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfmt(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}
