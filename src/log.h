/* Diagnostics on stderr: one line each, "ISO-time program level: message".
 * stdout is for data only. */
#ifndef QRPOOL_LOG_H
#define QRPOOL_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* verbosity: 0 = errors and warnings (default), -1 = errors only (-q),
 * -2 = nothing (fuzzing),
 * 1 = info (-v), 2 = debug (-vv). With -q, a process exiting with a failure
 * status (64-78) that has said no error writes the last warning it hid. */
void log_init(const char *program, int verbosity);
/* What exit() does for -q (see above); for a process ending with _exit(). */
void log_exit_said(int status);
const char *log_program(void);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Whether a progress line is on stderr (a terminal): a message then clears it
 * first, rather than being written after it on the same line. */
void log_progress_shown(int shown);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
