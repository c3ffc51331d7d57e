#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tap.h"

static void redacted(const char *text, const char *expected)
{
	char buffer[256];

	snprintf(buffer, sizeof buffer, "%s", text);
	log_redact(buffer);
	is_str(buffer, expected, "redacted: %s", expected);
}

static void test_redact(void)
{
	redacted("nothing registered: S3cretVAL", "nothing registered: S3cretVAL");
	log_add_secret("S3cretVAL", 9);
	log_add_secret("S3cretVAL", 9);   /* once is enough */
	log_add_secret("abc", 3);         /* too short to hide anything: not masked */
	log_add_secret("pass=wordXYZ-and", 8);   /* only the length given */
	redacted("S3cretVAL", "***");
	redacted("a S3cretVAL b S3cretVALS3cretVAL", "a *** b ******");
	redacted("S3cretVA and abc", "S3cretVA and abc");
	redacted("pass=wor pass=wordX", "*** ***dX");
	redacted("", "");
	/* A secret that holds a shorter one: masked whole, whichever came first. */
	log_add_secret("qrpool-svc", 10);
	log_add_secret("clientSecret=qrpool-svc-9f8e7d6c", 32);
	redacted("beginning at: clientSecret=qrpool-svc-9f8e7d6c; as qrpool-svc",
		"beginning at: ***; as ***");
	/* Text that only begins like a secret is left as it is. */
	redacted("in S3cre, and in pass=w", "in S3cre, and in pass=w");
}

/* The length of what log_error puts before a message. */
static size_t log_prefix_length(void)
{
	char logged[256];
	const char *at;

	tap_capture_start();
	log_error("@@");
	tap_capture_end(logged, sizeof logged);
	at = strstr(logged, "@@");
	return at ? (size_t)(at - logged) : 0;
}

/* A message longer than a line: the line ends in a mark, a secret across where
 * it is cut masked before the cut; a message that just fits is not marked. */
static void test_long_line(void)
{
	static const char mark[] = " [line cut]\n";
	static char message[LOG_LINE_MAX + 100], logged[2 * LOG_LINE_MAX];
	size_t prefix = log_prefix_length(), kept = LOG_LINE_MAX - 1 - prefix - (sizeof mark - 2);
	size_t length;

	ok(prefix > 20, "the prefix measured: %zu bytes", prefix);
	memset(message, 'x', sizeof message);
	memcpy(message + kept - 4, "S3cretVAL", 9);   /* the text kept ends in it */
	message[sizeof message - 1] = '\0';
	tap_capture_start();
	log_error("%s", message);
	tap_capture_end(logged, sizeof logged);
	length = strlen(logged);
	ok(!strstr(logged, "S3c") && strstr(logged, "x***"), "a secret across the line's cut: "
		"masked before the cut");
	ok(length == LOG_LINE_MAX && !strcmp(logged + length - (sizeof mark - 1), mark),
		"a line cut ends in a mark, at LOG_LINE_MAX: %zu bytes, ...%s", length,
		logged + (length > 20 ? length - 20 : 0));
	/* One that just fits: whole, unmarked. */
	message[LOG_LINE_MAX - 1 - prefix] = '\0';
	memset(message, 'y', LOG_LINE_MAX - 1 - prefix);
	tap_capture_start();
	log_error("%s", message);
	tap_capture_end(logged, sizeof logged);
	length = strlen(logged);
	ok(length == LOG_LINE_MAX && !strstr(logged, "[line cut]") && logged[length - 2] == 'y',
		"a message that just fits: whole, unmarked (%zu bytes)", length);
}

static void test_many(void)
{
	char value[32], text[64];

	/* More than LOG_SECRETS: the first ones stay masked, the rest are not kept. */
	for (int i = 0; i < LOG_SECRETS + 8; i++) {
		snprintf(value, sizeof value, "secret-%03d", i);
		log_add_secret(value, strlen(value));
	}
	snprintf(text, sizeof text, "secret-000 S3cretVAL");
	log_redact(text);
	is_str(text, "*** ***", "the first secrets stay registered");
	snprintf(text, sizeof text, "secret-%03d", LOG_SECRETS + 7);
	log_redact(text);
	ok(strstr(text, "secret-") != NULL, "the ones past LOG_SECRETS are not: %s", text);
}

/* Access tokens: the last LOG_TOKENS masked, older ones let go, beside the
 * config's secrets (which do not count against them). */
static void test_tokens(void)
{
	char token[32], text[64];

	for (int i = 0; i < LOG_TOKENS + 2; i++) {
		snprintf(token, sizeof token, "token-%02d-of-a-rotation", i);
		log_add_token(token);
		log_add_token(token);   /* the same one again takes no slot */
	}
	for (int i = 0; i < LOG_TOKENS + 2; i++) {
		snprintf(token, sizeof token, "token-%02d-of-a-rotation", i);
		snprintf(text, sizeof text, "[%s]", token);
		log_redact(text);
		if (i < 2)
			ok(strstr(text, token) != NULL, "token %d, one of the oldest, let go: %s", i, text);
		else
			is_str(text, "[***]", "token %d, one of the last %d, masked", i, LOG_TOKENS);
	}
	snprintf(text, sizeof text, "S3cretVAL");
	log_redact(text);
	is_str(text, "***", "the config's secrets still masked");
	log_add_token("abc");
	snprintf(text, sizeof text, "abc");
	log_redact(text);
	is_str(text, "abc", "a token too short to hide anything: not masked");
}

int main(void)
{
	char logged[1024];

	log_init("test_log", 0);
	test_redact();
	test_long_line();
	test_tokens();
	tap_capture_start();
	test_many();
	tap_capture_end(logged, sizeof logged);
	ok(strstr(logged, "more than 64 secret values in the config: the others are not masked") &&
		!strstr(strstr(logged, "masked") + 6, "more than"), "that is said, once: %s", logged);
	return tap_done();
}
