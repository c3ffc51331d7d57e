/* Diagnostics on stderr: one line each, "ISO-time program level: message".
 * stdout is for data only. */
#ifndef QRPOOL_LOG_H
#define QRPOOL_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
/* The longest line written, with its stamp and program name; a longer one is
 * cut and ends in " [line cut]". Room for two whole paths and more. */
#define LOG_LINE_MAX 16384

/* verbosity: 0 = errors and warnings (default), -1 = errors only (-q),
 * -2 = nothing (fuzzing),
 * 1 = info (-v), 2 = debug (-vv). With -q, a process exiting with a failure
 * status (64-78) that has said no error writes the last warning it hid. */
void log_init(const char *program, int verbosity);
/* What exit() does for -q (see above), and the count of lines of input
 * refused past those said (log_line_error); for a process ending with
 * _exit(). */
void log_exit_said(int status);
const char *log_program(void);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A line of input refused (skipped, or its code refused), an error: the
 * first LOG_LINES_SAID of a run are said, the rest counted, and their number
 * said at the exit, as plan's 20: one cause (a pool renamed, a message size
 * limit) would otherwise write a line for each of 300,000 codes into the
 * night's log and mail. Safe from any thread. */
#define LOG_LINES_SAID 20
void log_line_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether a progress line is on stderr (a terminal): a message then clears it
 * first, rather than being written after it on the same line. */
void log_progress_shown(int shown);

/* A secret no line may show (an app secret, a Kafka or Redis password, the
 * words of a sasl.oauthbearer.config): from now on each occurrence of it in
 * a log line, or in a text given to log_redact, is written "***". Values
 * shorter than LOG_SECRET_MIN are not registered (masking them would garble
 * every line, and they hide nothing); at most LOG_SECRETS are kept. Safe
 * from any thread. */
#define LOG_SECRET_MIN 4
#define LOG_SECRETS 64
void log_add_secret(const char *value, size_t length);
/* An access token, masked as a secret is, while it is one of the last
 * LOG_TOKENS given (tokens rotate: old ones are let go). Safe from any
 * thread. */
#define LOG_TOKENS 8
void log_add_token(const char *token);
/* Masks the registered secrets in the NUL-terminated `text`, in place, the
 * longest first. Mask a text before cutting it short (log_msg does). */
void log_redact(char *text);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
