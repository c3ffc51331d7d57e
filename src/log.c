#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Set once by main before any work starts; read-only afterwards. */
static const char *log_program_name = "qrpool";
static int log_verbosity;
/* Drawn by one thread, logged over by any. */
static atomic_int log_progress_line;

void log_init(const char *program, int verbosity)
{
	const char *slash = strrchr(program, '/');

	log_program_name = slash ? slash + 1 : program;
	log_verbosity = verbosity;
}

void log_progress_shown(int shown)
{
	atomic_store(&log_progress_line, shown);
}

const char *log_program(void)
{
	return log_program_name;
}

int log_enabled(enum log_level level)
{
	switch (level) {
	case LOG_ERROR: return log_verbosity >= -1;
	case LOG_WARN: return log_verbosity >= 0;
	case LOG_INFO: return log_verbosity >= 1;
	default: return log_verbosity >= 2;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char stamp[40], line[2048];
	struct timeval now;
	struct tm tm;
	va_list ap;
	size_t used;

	if (!log_enabled(level))
		return;
	gettimeofday(&now, NULL);
	localtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	used = (size_t)snprintf(line, sizeof line, "%s.%03ld", stamp, (long)now.tv_usec / 1000);
	strftime(line + used, sizeof line - used, "%z", &tm);
	used = strlen(line);
	used += (size_t)snprintf(line + used, sizeof line - used, " %s %s: ",
		log_program_name, names[level]);
	va_start(ap, fmt);
	if (used < sizeof line)
		vsnprintf(line + used, sizeof line - used, fmt, ap);
	va_end(ap);
	/* One write per line, so lines of concurrent processes do not interleave;
	 * newlines inside a message would break the one-line contract. Other
	 * control characters (quoted from bad input) would reach a terminal as
	 * escape sequences: shown as '?'. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if ((*p > 0 && *p < ' ' && *p != '\t') || *p == 0x7f)
			*p = '?';
	fprintf(stderr, "%s%s\n", atomic_load(&log_progress_line) ? "\r\033[K" : "", line);
}
