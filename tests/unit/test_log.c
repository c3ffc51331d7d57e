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
}

int main(void)
{
	test_redact();
	test_many();
	return tap_done();
}
