#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "tap.h"

/* Returns the compact form, or the reason prefixed with "!" (static buffer). */
static const char *parse(const char *line, size_t length)
{
	static char result[PARAMS_MAX_BYTES + 200];
	char why[200], *compact = NULL;

	if (params_parse(line, length, &compact, why, sizeof why)) {
		snprintf(result, sizeof result, "!%s", why);
		return result;
	}
	snprintf(result, sizeof result, "%s", compact);
	free(compact);
	return result;
}

#define PARSE(text) parse(text, sizeof text - 1)

static void test_records(void)
{
	is_str(PARSE("{\"listing_id\":\"L1\", \"agent_id\" : \"A7\",\t\"channel\":\"poster\"}"),
		"{\"listing_id\":\"L1\",\"agent_id\":\"A7\",\"channel\":\"poster\"}",
		"a record is stored compact, names in their order");
	is_str(PARSE("{}"), "{}", "an empty object is a record");
	is_str(PARSE("{\"a\":0.1,\"n\":-12,\"b\":[true,null]}\r"), "{\"a\":0.10000000000000001,"
		"\"n\":-12,\"b\":[true,null]}", "reals keep 17 digits; a CR is dropped");
	is_str(PARSE("{\"t\":\"caf\\u00e9 \\t\"}"), "{\"t\":\"caf\xc3\xa9 \\t\"}",
		"escapes are decoded to UTF-8, control characters stay escaped (no raw tab)");
	is_str(PARSE("[1]"), "!a record must be a JSON object {...}", "an array is refused");
	is_str(PARSE("\"s\""), "!a record must be a JSON object {...}", "a string is refused");
	ok(PARSE("{\"a\":1,\"a\":2}")[0] == '!', "duplicate names are refused");
	ok(parse("{\"a\":\"x\0\"}", 9)[0] == '!', "a NUL byte is refused");
}

static void test_limits(void)
{
	char *line = malloc(PARAMS_MAX_BYTES + 2);
	size_t n;

	for (n = PARAMS_MAX_BYTES; n <= PARAMS_MAX_BYTES + 1; n++) {
		memset(line, 'x', n);
		memcpy(line, "{\"p\":\"", 6);
		memcpy(line + n - 2, "\"}", 2);
		ok((parse(line, n)[0] == '!') == (n > PARAMS_MAX_BYTES), "a %zu-byte record is %s", n,
			n > PARAMS_MAX_BYTES ? "refused" : "accepted");
	}
	free(line);
	ok(params_blank(" \t\r", 3) && params_blank("", 0) && !params_blank(" {", 2),
		"blank lines are told apart");
}

int main(void)
{
	test_records();
	test_limits();
	return tap_done();
}
