/* Item lines read without ever blocking: a filter that also drives network
 * transfers must keep serving them, its deadline and signals while the tool
 * upstream is slow to write. Lines are parsed by item_parse. */
#ifndef QRPOOL_INPUT_H
#define QRPOOL_INPUT_H

#include <stddef.h>

#include "item.h"

struct input {
	int fd;
	const char *name;         /* for messages: "stdin" */
	char *buffer;
	size_t start, length, capacity;   /* unread bytes are buffer[start, length) */
	long line_number;
	long bad_lines;           /* malformed lines reported and skipped */
	int eof;
	int overlong;             /* the line being read is past ITEM_LINE_MAX: reported, dropped */
};

void input_init(struct input *input, int fd, const char *name);
void input_free(struct input *input);

/* Reads what the descriptor has now, without waiting. Returns 0, or -1 on a
 * read error (logged). */
int input_fill(struct input *input);

/* The next well-formed item already read (pointers valid until the next
 * call): 1 for an item, 0 when none is buffered (fill again, unless eof).
 * Malformed lines are logged as "name:line: why", counted and skipped. */
int input_next(struct input *input, struct item *item);

/* 1 when every line has been read and handed out. */
int input_done(const struct input *input);
/* The lines read into the buffer and not handed out (a last one without its
 * '\n' not counted: its end is still to be read). */
long long input_buffered_lines(const struct input *input);

#endif
