/* Item lines, the pipe contract between tools: "request_id TAB pool LF", with
 * optional further fields that a tool passes on untouched. */
#ifndef QRPOOL_ITEM_H
#define QRPOOL_ITEM_H

#include <stdio.h>
#include <sys/types.h>

/* The longest line a tool reads, in bytes, without its line end: request id,
 * pool and any further fields. A longer one is reported and skipped without
 * being kept (a file of another kind fed by mistake costs no memory). */
#define ITEM_LINE_MAX 65536

struct item {
	char *request_id;
	char *pool;
	char *rest;           /* fields after the pool, without the leading tab; NULL if none */
	long line_number;
};

struct item_reader {
	FILE *in;
	const char *name;     /* for messages: a file name or "stdin" */
	long line_number;
	long bad_lines;       /* malformed lines reported and skipped */
	char *buffer;         /* ITEM_LINE_MAX + 2 bytes, once a line was read */
};

void item_reader_init(struct item_reader *reader, FILE *in, const char *name);
void item_reader_free(struct item_reader *reader);

/* Reads the next well-formed item (pointers valid until the next call).
 * Returns 1 for an item, 0 at the end, -1 on a read error (logged).
 * Malformed lines are logged as "name:line: why", counted and skipped. */
int item_read(struct item_reader *reader, struct item *item);

/* One line of `in` without its '\n': at most `keep` bytes are kept in `line`,
 * the rest only counted, so a huge line costs no memory. Returns the whole
 * line's length (*last: its last byte, *ended: 1 if a '\n' ended it), or -1
 * at the end of the input, on a read error (ferror), or when a signal cut the
 * read (half a line then is no line: the rerun starts with it). */
ssize_t item_getline(FILE *in, char *line, size_t keep, int *last, int *ended);
/* 1 when a line item_getline measured is longer than `max` (a CR ending it
 * not counted). */
int item_overlong(ssize_t length, int last, size_t max);

/* Parses one line in place (no trailing newline). Returns 0, or -1 with `why`. */
int item_parse(char *line, size_t length, struct item *item, char *why, size_t why_size);
/* 1 for a line that carries no item: empty, or only the CR of a CRLF end. */
int item_blank(const char *line, size_t length);

/* Writes the item as a line. Returns 0 or -1 (errno set). */
int item_write(FILE *out, const struct item *item);
/* The item's line again, without line end, in memory: item_line_size bytes
 * (its NUL included) that item_line_copy fills. */
size_t item_line_size(const struct item *item);
void item_line_copy(const struct item *item, char *line);

#endif
