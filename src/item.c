#include "item.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "interrupt.h"
#include "log.h"
#include "parse.h"
#include "rid.h"

void item_reader_init(struct item_reader *reader, FILE *in, const char *name)
{
	memset(reader, 0, sizeof *reader);
	reader->in = in;
	reader->name = name;
}

void item_reader_free(struct item_reader *reader)
{
	free(reader->buffer);
	reader->buffer = NULL;
}

int item_parse(char *line, size_t length, struct item *item, char *why, size_t why_size)
{
	char *tab, *pool, *end;

	if (length && line[length - 1] == '\r')
		line[--length] = '\0';
	if (strlen(line) != length) {
		snprintf(why, why_size, "line contains a NUL byte");
		return -1;
	}
	tab = strchr(line, '\t');
	if (!tab) {
		snprintf(why, why_size, "expected 'request_id TAB pool', found no tab");
		return -1;
	}
	if (!rid_is_scene(line, (size_t)(tab - line))) {
		snprintf(why, why_size, "request id '%.*s' is not 1 to 32 scene characters",
			(int)(tab - line > 40 ? 40 : tab - line), line);
		return -1;
	}
	pool = tab + 1;
	end = strchr(pool, '\t');
	if ((end ? end : line + length) == pool) {
		snprintf(why, why_size, "the pool field is empty");
		return -1;
	}
	*tab = '\0';
	item->request_id = line;
	item->pool = pool;
	item->rest = NULL;
	if (end) {
		*end = '\0';
		item->rest = end + 1;
	}
	return 0;
}

ssize_t item_getline(FILE *in, char *line, size_t keep, int *last, int *ended)
{
	size_t length = 0;
	int c;

	*last = 0;
	while ((c = getc_unlocked(in)) != EOF && c != '\n') {
		if (length < keep)
			line[length] = (char)c;
		length++;
		*last = c;
	}
	*ended = c == '\n';
	if (c == EOF && ferror(in) && interrupt_requested())
		return -1;
	return c == EOF && length == 0 ? -1 : (ssize_t)length;
}

int item_overlong(ssize_t length, int last, size_t max)
{
	return (size_t)length - (last == '\r') > max;
}

int item_read(struct item_reader *reader, struct item *item)
{
	if (!reader->buffer && !(reader->buffer = malloc(ITEM_LINE_MAX + 2))) {
		log_error("%s: out of memory for input lines", reader->name);
		return -1;
	}
	for (;;) {
		char why[160];
		ssize_t length;
		size_t bom;   /* a UTF-8 byte-order mark on line 1 (a file saved on Windows) */
		int last, ended;

		errno = 0;
		length = item_getline(reader->in, reader->buffer, ITEM_LINE_MAX + 1, &last, &ended);
		if (length < 0 || (!ended && ferror(reader->in))) {
			/* A read that ended on EINTR was stopped on purpose (a
			 * signal, or the tool's own stop); half a line then is no
			 * bad line, nor is it an item: the input ends there. */
			int stopped = errno == EINTR || interrupt_requested();

			if (!ferror(reader->in) || (stopped && interrupt_requested()))
				return 0;
			if (!stopped)
				log_error("%s: read error: %s", reader->name, strerror(errno ? errno : EIO));
			return -1;
		}
		/* Half a line cut by a stop is no bad line: the input ends there. */
		if (!ended && interrupt_requested())
			return 0;
		reader->line_number++;
		if (item_overlong(length, last, ITEM_LINE_MAX)) {
			log_line_error("%s:%ld: longer than %d bytes; line skipped", reader->name,
				reader->line_number, ITEM_LINE_MAX);
			reader->bad_lines++;
			continue;
		}
		reader->buffer[length] = '\0';
		bom = reader->line_number == 1 ? parse_bom_length(reader->buffer, (size_t)length) : 0;
		if (item_blank(reader->buffer + bom, (size_t)length - bom))
			continue;
		if (item_parse(reader->buffer + bom, (size_t)length - bom, item, why, sizeof why) == 0) {
			item->line_number = reader->line_number;
			return 1;
		}
		log_line_error("%s:%ld: %s; line skipped", reader->name, reader->line_number, why);
		reader->bad_lines++;
	}
}

int item_blank(const char *line, size_t length)
{
	return length == 0 || (length == 1 && line[0] == '\r');
}

size_t item_line_size(const struct item *item)
{
	return strlen(item->request_id) + 1 + strlen(item->pool) +
		(item->rest ? 1 + strlen(item->rest) : 0) + 1;
}

void item_line_copy(const struct item *item, char *line)
{
	const char *fields[] = { item->request_id, item->pool, item->rest };

	for (int i = 0; i < 3 && fields[i]; i++) {
		size_t length = strlen(fields[i]);

		if (i)
			*line++ = '\t';
		memcpy(line, fields[i], length);
		line += length;
	}
	*line = '\0';
}

int item_write(FILE *out, const struct item *item)
{
	if (fputs(item->request_id, out) == EOF || putc('\t', out) == EOF ||
	    fputs(item->pool, out) == EOF)
		return -1;
	if (item->rest && (putc('\t', out) == EOF || fputs(item->rest, out) == EOF))
		return -1;
	return putc('\n', out) == EOF ? -1 : 0;
}
