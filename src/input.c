#include "input.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"

#define INPUT_READ_SIZE 65536

void input_init(struct input *input, int fd, const char *name)
{
	memset(input, 0, sizeof *input);
	input->fd = fd;
	input->name = name;
}

void input_free(struct input *input)
{
	free(input->buffer);
	input->buffer = NULL;
}

/* Keeps room for one more read: moves the unread bytes to the front, then grows. */
static int input_make_room(struct input *input)
{
	if (input->start) {
		memmove(input->buffer, input->buffer + input->start, input->length - input->start);
		input->length -= input->start;
		input->start = 0;
	}
	if (input->capacity - input->length < INPUT_READ_SIZE) {
		size_t capacity = input->capacity + INPUT_READ_SIZE;
		char *buffer = realloc(input->buffer, capacity + 1);   /* +1: a final line's NUL */
		if (!buffer)
			return -1;
		input->buffer = buffer;
		input->capacity = capacity;
	}
	return 0;
}

int input_fill(struct input *input)
{
	struct pollfd poller = { .fd = input->fd, .events = POLLIN };
	ssize_t got;

	if (input->eof || poll(&poller, 1, 0) <= 0)
		return 0;
	if (input_make_room(input)) {
		log_error("%s: out of memory for input lines", input->name);
		return -1;
	}
	got = read(input->fd, input->buffer + input->length, input->capacity - input->length);
	if (got < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (got < 0) {
		log_error("%s: read error: %s", input->name, strerror(errno));
		return -1;
	}
	if (got == 0)
		input->eof = 1;
	input->length += (size_t)got;
	return 0;
}

static void input_overlong(struct input *input)
{
	log_line_error("%s:%ld: longer than %d bytes; line skipped", input->name, input->line_number,
		ITEM_LINE_MAX);
	input->bad_lines++;
}

/* The next line in place, NUL-terminated, or NULL when no whole line is
 * buffered. A line past ITEM_LINE_MAX is reported as soon as it is, and its
 * bytes are dropped as they come, so it costs no memory. */
static char *input_line(struct input *input, size_t *length)
{
	for (;;) {
		char *line = input->buffer + input->start;
		size_t buffered = input->length - input->start;
		char *newline = buffered ? memchr(line, '\n', buffered) : NULL;

		if (!newline && !(input->eof && buffered)) {
			if (!input->overlong && buffered > ITEM_LINE_MAX + 1) {   /* +1: a CR */
				input->line_number++;
				input_overlong(input);
				input->overlong = 1;
			}
			if (input->overlong)
				input->start = input->length;
			return NULL;
		}
		*length = newline ? (size_t)(newline - line) : buffered;   /* else a last line unended */
		input->start += *length + (newline != NULL);
		if (input->overlong) {
			input->overlong = 0;   /* the tail of a line already reported */
			continue;
		}
		line[*length] = '\0';
		input->line_number++;
		return line;
	}
}

int input_next(struct input *input, struct item *item)
{
	char *line, why[160];
	size_t length;

	while ((line = input_line(input, &length))) {
		if (input->line_number == 1) {   /* a UTF-8 byte-order mark (a file saved on Windows) */
			size_t bom = parse_bom_length(line, length);

			line += bom;
			length -= bom;
		}
		if (item_blank(line, length))
			continue;
		if (item_overlong((ssize_t)length, length ? (unsigned char)line[length - 1] : 0,
				ITEM_LINE_MAX)) {
			input_overlong(input);
			continue;
		}
		if (item_parse(line, length, item, why, sizeof why) == 0) {
			item->line_number = input->line_number;
			return 1;
		}
		log_line_error("%s:%ld: %s; line skipped", input->name, input->line_number, why);
		input->bad_lines++;
	}
	return 0;
}

int input_done(const struct input *input)
{
	return input->eof && input->start >= input->length;
}

long long input_buffered_lines(const struct input *input)
{
	long long lines = 0;

	for (size_t i = input->start; i < input->length; i++)
		lines += input->buffer[i] == '\n';
	return lines;
}
