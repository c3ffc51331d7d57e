/* Parameter records: what qrpool-claim binds to a code. One JSON object per
 * line (any members, e.g. {"listing_id":"L1","agent_id":"A7","channel":"poster"}),
 * at most PARAMS_MAX_BYTES. Stored and cached in compact form. */
#ifndef QRPOOL_PARAMS_H
#define QRPOOL_PARAMS_H

#include <stddef.h>

#define PARAMS_MAX_BYTES 4096

/* Checks one line (without its newline; a trailing CR is ignored) and returns
 * the record's compact JSON, malloc'd, in *compact. Returns 0, or -1 with
 * `why` filled (nothing allocated). */
int params_parse(const char *line, size_t length, char **compact, char *why, size_t why_size);

/* -1 with `why` saying a record of `length` bytes is too long. */
int params_too_long(size_t length, char *why, size_t why_size);

/* 1 if the line holds only blanks: it carries no record. */
int params_blank(const char *line, size_t length);

#endif
