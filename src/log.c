#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Set once by main before any work starts; read-only afterwards. */
static const char *log_program_name = "qrpool";
static int log_verbosity;
/* Drawn by one thread, logged over by any. */
static atomic_int log_progress_line;
/* What -q kept off stderr, for the exit (log_exit_said): whether an error was
 * shown, and the last warning hidden, as it would have been written. */
static pthread_mutex_t log_hidden_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_error_shown;
static long log_hidden_count;
static char log_hidden_last[LOG_LINE_MAX];
/* Lines of input refused this run (log_line_error). */
static atomic_long log_lines_refused;

/* At exit: the lines of input refused past the first LOG_LINES_SAID,
 * counted; and with a failure status (64-78: the answers of resolve and of
 * report --check are 1-3), a -q run that has said no error shows the last
 * warning it hid: that was the reason (a deadline reached with codes left, a
 * plan short of capacity), and a failing run is never silent. Called by
 * exit() (on_exit), or before an _exit(). */
void log_exit_said(int status)
{
	long more = atomic_load(&log_lines_refused) - LOG_LINES_SAID;

	if (more > 0)
		log_error("... and %ld more line%s of input refused as above, not shown one by one "
			"(a run shows the first %d)", more, more == 1 ? "" : "s", LOG_LINES_SAID);
	if (status < 64 || status > 78 || atomic_load(&log_error_shown))
		return;
	pthread_mutex_lock(&log_hidden_lock);
	if (log_hidden_count > 1)
		fprintf(stderr, "%s (the last of %ld warnings -q hid)\n", log_hidden_last,
			log_hidden_count);
	else if (log_hidden_count)
		fprintf(stderr, "%s\n", log_hidden_last);
	pthread_mutex_unlock(&log_hidden_lock);
}

static void log_on_exit(int status, void *unused)
{
	(void)unused;
	log_exit_said(status);
}

void log_init(const char *program, int verbosity)
{
	static int exit_registered;
	const char *slash = strrchr(program, '/');

	log_program_name = slash ? slash + 1 : program;
	log_verbosity = verbosity;
	if (!exit_registered++)
		on_exit(log_on_exit, NULL);
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

/* Registered secrets, under the lock: the config's, each kept for the run;
 * the access tokens, the last LOG_TOKENS of them (a token rotates every two
 * hours or so, and an old one may still be quoted back while its successor
 * serves). */
static pthread_mutex_t log_secret_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_secrets[LOG_SECRETS];
static int log_secret_count;
static char *log_tokens[LOG_TOKENS];
static unsigned log_token_next;

static int log_secret_known(char *const *list, int count, const char *value, size_t length)
{
	for (int i = 0; i < count; i++)
		if (list[i] && strlen(list[i]) == length && !memcmp(list[i], value, length))
			return 1;
	return 0;
}

void log_add_secret(const char *value, size_t length)
{
	int full = 0;
	char *copy;

	if (length < LOG_SECRET_MIN || memchr(value, '\0', length))
		return;
	pthread_mutex_lock(&log_secret_lock);
	if (log_secret_known(log_secrets, log_secret_count, value, length))
		;
	else if (log_secret_count == LOG_SECRETS)
		full = 1;
	else if ((copy = strndup(value, length)))
		log_secrets[log_secret_count++] = copy;
	pthread_mutex_unlock(&log_secret_lock);
	if (full) {
		static atomic_int said;

		if (!atomic_exchange(&said, 1))
			log_warn("more than %d secret values in the config: the others are not masked "
				"in log lines", LOG_SECRETS);
	}
}

void log_add_token(const char *token)
{
	size_t length = strlen(token);
	char *copy;

	if (length < LOG_SECRET_MIN)
		return;
	pthread_mutex_lock(&log_secret_lock);
	if (!log_secret_known(log_tokens, LOG_TOKENS, token, length) &&
	    (copy = strndup(token, length))) {
		char **slot = &log_tokens[log_token_next++ % LOG_TOKENS];

		if (*slot) {
			explicit_bzero(*slot, strlen(*slot));
			free(*slot);
		}
		*slot = copy;
	}
	pthread_mutex_unlock(&log_secret_lock);
}

/* Masks each occurrence of `secret` in `text`. "***" is shorter than any
 * secret: the text only shrinks. (A text must be masked before it is cut:
 * the start of a secret left at a cut is not masked, as text that merely
 * begins like one, "redis" of "redisPa55", must not be.) */
static void log_redact_one(char *text, const char *secret)
{
	size_t length = strlen(secret);
	char *at = text;

	while ((at = strstr(at, secret))) {
		memcpy(at, "***", 3);
		memmove(at + 3, at + length, strlen(at + length) + 1);
		at += 3;
	}
}

void log_redact(char *text)
{
	const char *sorted[LOG_SECRETS + LOG_TOKENS];
	int count = 0;

	pthread_mutex_lock(&log_secret_lock);
	/* Longest first: a secret that holds a shorter one is masked whole. */
	for (int i = 0; i < log_secret_count + LOG_TOKENS; i++) {
		const char *secret = i < log_secret_count ? log_secrets[i] :
			log_tokens[i - log_secret_count];
		int at = count;

		if (!secret)   /* (a token slot not used yet) */
			continue;
		count++;
		for (; at > 0 && strlen(sorted[at - 1]) < strlen(secret); at--)
			sorted[at] = sorted[at - 1];
		sorted[at] = secret;
	}
	for (int i = 0; i < count; i++)
		log_redact_one(text, sorted[i]);
	pthread_mutex_unlock(&log_secret_lock);
}

/* The length of the well-formed UTF-8 sequence at `s`, its character in
 * *code; 0 if the bytes there are no such sequence. */
static size_t log_utf8_length(const unsigned char *s, uint32_t *code)
{
	size_t length = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;

	if (!length || s[0] > 0xf4)
		return 0;
	*code = s[0] & (0x7f >> length);
	for (size_t i = 1; i < length; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*code = *code << 6 | (s[i] & 0x3f);
	}
	if (*code < (length == 2 ? 0x80u : length == 3 ? 0x800u : 0x10000u) || *code > 0x10ffff ||
	    (*code >= 0xd800 && *code <= 0xdfff))
		return 0;
	return length;
}

/* One write per line, so lines of concurrent processes do not interleave: a
 * newline inside a message becomes a space. Other control characters (C1
 * ones too: a terminal may take U+009B for an escape), bytes that are not
 * UTF-8, and byte order marks (unseen), quoted from bad input, are each
 * shown as '?'. */
static void log_sanitize(char *line)
{
	unsigned char *in = (unsigned char *)line, *out = in;

	while (*in) {
		uint32_t code = 0;
		size_t length = *in >= 0x80 ? log_utf8_length(in, &code) : 0;

		if (length && code >= 0xa0 && code != 0xfeff) {
			memmove(out, in, length);
			out += length;
			in += length;
			continue;
		}
		if (*in == '\n')
			*out++ = ' ';
		else if (*in >= 0x80 || (*in < ' ' && *in != '\t') || *in == 0x7f)
			*out++ = '?';
		else
			*out++ = *in;
		in += length ? length : 1;
	}
	*out = '\0';
}

/* A line longer than LOG_LINE_MAX ends in a mark, not silently mid-word
 * (a command given to copy, cut, would run as another). */
static void log_mark_cut(char *line, size_t size)
{
	static const char mark[] = " [line cut]";

	memcpy(line + size - sizeof mark, mark, sizeof mark);
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char stamp[40], line[LOG_LINE_MAX];
	struct timeval now;
	struct tm tm;
	va_list again;
	size_t used;
	char *message;
	int length;
	int hide = !log_enabled(level);

	if (hide && !(level == LOG_WARN && log_verbosity == -1))
		return;
	gettimeofday(&now, NULL);
	localtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	used = (size_t)snprintf(line, sizeof line, "%s.%03ld", stamp, (long)now.tv_usec / 1000);
	strftime(line + used, sizeof line - used, "%z", &tm);
	used = strlen(line);
	used += (size_t)snprintf(line + used, sizeof line - used, " %s %s: ",
		log_program_name, names[level]);
	/* Masked whole, then cut to the line: a secret across the cut would
	 * otherwise keep its start. */
	va_copy(again, ap);
	if ((length = vasprintf(&message, fmt, ap)) >= 0) {
		log_redact(message);
		if (used < sizeof line &&
		    snprintf(line + used, sizeof line - used, "%s", message) >= (int)(sizeof line - used))
			log_mark_cut(line, sizeof line);
		explicit_bzero(message, (size_t)length);   /* (what masking moved left behind) */
		free(message);
	} else if (used < sizeof line) {
		if (vsnprintf(line + used, sizeof line - used, fmt, again) >= (int)(sizeof line - used))
			log_mark_cut(line, sizeof line);
		log_redact(line + used);
	}
	va_end(again);
	log_sanitize(line);
	if (hide) {
		pthread_mutex_lock(&log_hidden_lock);
		log_hidden_count++;
		memcpy(log_hidden_last, line, sizeof line);
		pthread_mutex_unlock(&log_hidden_lock);
		return;
	}
	if (level == LOG_ERROR)
		atomic_store(&log_error_shown, 1);
	fprintf(stderr, "%s%s\n", atomic_load(&log_progress_line) ? "\r\033[K" : "", line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_line_error(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&log_lines_refused, 1) >= LOG_LINES_SAID)
		return;
	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, fmt, ap);
	va_end(ap);
}
