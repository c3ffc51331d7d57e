#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "input.h"
#include "item.h"
#include "log.h"
#include "tap.h"

static void test_parse(void)
{
	char line1[] = "AbC123\tposter", line2[] = "AbC123\tposter\textra\tmore",
		line3[] = "no-tab-here", line4[] = "AbC 123\tposter", line5[] = "AbC\t",
		line6[] = "AbC\tposter\r", why[160];
	struct item item;

	ok(item_parse(line1, sizeof line1 - 1, &item, why, sizeof why) == 0 &&
		!strcmp(item.request_id, "AbC123") && !strcmp(item.pool, "poster") && !item.rest,
		"two fields");
	ok(item_parse(line2, sizeof line2 - 1, &item, why, sizeof why) == 0 &&
		!strcmp(item.rest, "extra\tmore"), "extra fields kept as they are");
	ok(item_parse(line3, sizeof line3 - 1, &item, why, sizeof why) != 0, "no tab refused");
	ok(item_parse(line4, sizeof line4 - 1, &item, why, sizeof why) != 0, "space in the id refused");
	ok(item_parse(line5, sizeof line5 - 1, &item, why, sizeof why) != 0, "empty pool refused");
	ok(item_parse(line6, sizeof line6 - 1, &item, why, sizeof why) == 0 &&
		!strcmp(item.pool, "poster"), "a CR before LF is dropped");
}

static void test_reader(void)
{
	/* A blank line, CRLF or not, carries no item and is no bad line. */
	static const char input[] = "id1\tpoolA\n\nbad line\n\r\nid2\tpoolB\tx\nid3\tpoolC";
	FILE *in = fmemopen((void *)input, sizeof input - 1, "r");
	char *written = NULL;
	size_t written_size = 0;
	FILE *out = open_memstream(&written, &written_size);
	struct item_reader reader;
	struct item item;
	int count = 0;

	item_reader_init(&reader, in, "input");
	while (item_read(&reader, &item) == 1) {
		count++;
		item_write(out, &item);
	}
	fclose(out);
	is_int(count, 3, "three items read");
	is_int(reader.bad_lines, 1, "one bad line counted");
	is_str(written, "id1\tpoolA\nid2\tpoolB\tx\nid3\tpoolC\n", "written back unchanged");
	item_reader_free(&reader);
	fclose(in);
	free(written);
}

/* Lines at and past ITEM_LINE_MAX: an item of exactly that many bytes (a CR
 * after it not counted) is read, one byte more is a bad line, skipped, and the
 * line after it is read. */
static char *limit_input(size_t *size)
{
	static const char *const tails[] = { "\r\n", "\n", "\r\n", "" };
	const size_t lengths[] = { ITEM_LINE_MAX, ITEM_LINE_MAX + 1, ITEM_LINE_MAX + 1, 0 };
	char *text = NULL;
	FILE *out = open_memstream(&text, size);

	for (int i = 0; i < 3; i++) {
		fprintf(out, "id%d\tpool\t", i);
		for (size_t n = strlen("idN\tpool\t"); n < lengths[i]; n++)
			putc('x', out);
		fputs(tails[i], out);
	}
	fputs("id3\tpool\n", out);
	fclose(out);
	return text;
}

/* The first two items' ids, and the count of all. */
static void keep_id(const struct item *item, char ids[2][16], int *count)
{
	if (*count < 2)
		snprintf(ids[*count], sizeof ids[0], "%s", item->request_id);
	++*count;
}

static void check_limit_items(const char *reader, int count, char ids[2][16], long bad_lines)
{
	is_int(count, 2, "%s: an item of ITEM_LINE_MAX bytes and the one after the long lines", reader);
	is_str(ids[0], "id0", "%s: the longest line allowed, read", reader);
	is_str(ids[1], "id3", "%s: the line after the long ones, read", reader);
	is_int(bad_lines, 2, "%s: ITEM_LINE_MAX + 1 bytes is a bad line, with a CR or not", reader);
}

static void test_line_limits(void)
{
	size_t size;
	char *text = limit_input(&size), path[] = "/tmp/test_item.XXXXXX", ids[2][16] = { "", "" };
	FILE *in = fmemopen(text, size, "r");
	struct item_reader reader;
	struct input input;
	struct item item;
	int count = 0, fd = mkstemp(path);

	item_reader_init(&reader, in, "input");
	while (item_read(&reader, &item) == 1)
		keep_id(&item, ids, &count);
	check_limit_items("item_read", count, ids, reader.bad_lines);
	item_reader_free(&reader);
	fclose(in);

	ok(fd >= 0 && write(fd, text, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0,
		"the same lines in a file");
	input_init(&input, fd, "input");
	count = 0;
	memset(ids, 0, sizeof ids);
	while (!input_done(&input) && input_fill(&input) == 0)
		while (input_next(&input, &item) == 1)
			keep_id(&item, ids, &count);
	check_limit_items("input_next", count, ids, input.bad_lines);
	is_int(input.line_number, 4, "input_next: four lines counted");
	input_free(&input);
	close(fd);
	unlink(path);
	free(text);
}

int main(void)
{
	log_init("test_item", -1);
	test_parse();
	test_reader();
	test_line_limits();
	return tap_done();
}
