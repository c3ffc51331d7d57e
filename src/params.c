#include "params.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

int params_blank(const char *line, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return 0;
	return 1;
}

int params_too_long(size_t length, char *why, size_t why_size)
{
	snprintf(why, why_size, "the record is %zu bytes, more than %d", length, PARAMS_MAX_BYTES);
	return -1;
}

int params_parse(const char *line, size_t length, char **compact, char *why, size_t why_size)
{
	json_error_t error;
	json_t *record;
	size_t bom;

	if (length && line[length - 1] == '\r')
		length--;
	bom = parse_bom_length(line, length);   /* a Windows export */
	line += bom;
	length -= bom;
	if (length > PARAMS_MAX_BYTES)
		return params_too_long(length, why, why_size);
	if (memchr(line, '\0', length)) {
		snprintf(why, why_size, "the line contains a NUL byte");
		return -1;
	}
	/* Duplicate names would make the middle page and the record disagree on
	 * which value counts. Any value is decoded, so that "42" is reported as
	 * not an object rather than as broken JSON. */
	record = json_loadb(line, length, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
	if (!record && strstr(error.text, "too big integer")) {
		snprintf(why, why_size, "an integer too big for 64 bits at column %d: pass it as a string",
			error.column);
		return -1;
	}
	if (!record && strstr(error.text, "\\u0000")) {   /* jansson names its flag: not ours to set */
		snprintf(why, why_size, "a \\u0000 (NUL) escape at column %d: a record holds no NUL "
			"character", error.column);
		return -1;
	}
	if (!record) {
		snprintf(why, why_size, "not JSON: %s at column %d", error.text, error.column);
		return -1;
	}
	if (!json_is_object(record)) {
		snprintf(why, why_size, "a record must be a JSON object {...}");
		json_decref(record);
		return -1;
	}
	/* 17 digits: a real read back from the record is the same double. */
	*compact = json_dumps(record, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(record);
	if (!*compact) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	return 0;
}
