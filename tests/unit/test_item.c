#include <stdlib.h>
#include <string.h>
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

/* What a reader made of a text: the first two items' ids, the count of all. */
struct read_result {
	char ids[2][16];
	int count;
	long bad_lines, lines;
};

static void keep_id(const struct item *item, struct read_result *result)
{
	if (result->count < 2)
		snprintf(result->ids[result->count], sizeof result->ids[0], "%s", item->request_id);
	result->count++;
}

/* Reads `text` with item_read (a stream in memory) and with input_next (a file). */
static void read_both(const char *text, size_t size, struct read_result *by_reader,
	struct read_result *by_input)
{
	FILE *in = fmemopen((void *)text, size, "r"), *file = tmpfile();   /* (unnamed, gone at close) */
	struct item_reader reader;
	struct input input;
	struct item item;
	int fd = file ? fileno(file) : -1;

	memset(by_reader, 0, sizeof *by_reader);
	memset(by_input, 0, sizeof *by_input);
	item_reader_init(&reader, in, "input");
	while (item_read(&reader, &item) == 1)
		keep_id(&item, by_reader);
	by_reader->bad_lines = reader.bad_lines;
	by_reader->lines = reader.line_number;
	item_reader_free(&reader);
	fclose(in);
	if (fd < 0 || write(fd, text, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
		by_input->count = -1;
	input_init(&input, fd, "input");
	while (fd >= 0 && !input_done(&input) && input_fill(&input) == 0)
		while (input_next(&input, &item) == 1)
			keep_id(&item, by_input);
	by_input->bad_lines = input.bad_lines;
	by_input->lines = input.line_number;
	input_free(&input);
	if (file)
		fclose(file);
}

static void check_limit_items(const char *reader, const struct read_result *got)
{
	is_int(got->count, 2, "%s: an item of ITEM_LINE_MAX bytes and the one after the long lines",
		reader);
	is_str(got->ids[0], "id0", "%s: the longest line allowed, read", reader);
	is_str(got->ids[1], "id3", "%s: the line after the long ones, read", reader);
	is_int(got->bad_lines, 2, "%s: ITEM_LINE_MAX + 1 bytes is a bad line, with a CR or not", reader);
	is_int(got->lines, 4, "%s: four lines counted", reader);
}

static void test_line_limits(void)
{
	size_t size;
	char *text = limit_input(&size);
	struct read_result by_reader, by_input;

	read_both(text, size, &by_reader, &by_input);
	check_limit_items("item_read", &by_reader);
	check_limit_items("input_next", &by_input);
	free(text);
}

/* A UTF-8 byte-order mark before line 1 (a file saved on Windows) is no part
 * of the request id, for either reader. */
static void test_bom(void)
{
	static const char text[] = "\xEF\xBB\xBFid1\tpoolA\nid2\tpoolB\n";
	struct read_result by_reader, by_input;

	read_both(text, sizeof text - 1, &by_reader, &by_input);
	ok(by_reader.count == 2 && !strcmp(by_reader.ids[0], "id1") && !by_reader.bad_lines,
		"item_read: a BOM on line 1 dropped");
	ok(by_input.count == 2 && !strcmp(by_input.ids[0], "id1") && !by_input.bad_lines,
		"input_next: a BOM on line 1 dropped");
}

/* The line made again in memory: the fields tab-separated, the size exact. */
static void test_line_copy(void)
{
	struct item with_rest = { .request_id = "Ab3", .pool = "poster", .rest = "x\ty" };
	struct item bare = { .request_id = "Ab3", .pool = "poster" };
	char line[32];

	memset(line, '#', sizeof line);
	is_int((int)item_line_size(&with_rest), 15, "size with the rest: 3 + 1 + 6 + 1 + 3 + NUL");
	item_line_copy(&with_rest, line);
	is_str(line, "Ab3\tposter\tx\ty", "the line with the rest");
	is_int(line[15], '#', "nothing written past its size");
	memset(line, '#', sizeof line);
	is_int((int)item_line_size(&bare), 11, "size without a rest");
	item_line_copy(&bare, line);
	is_str(line, "Ab3\tposter", "the line without a rest");
	is_int(line[11], '#', "... nothing past its size");
}

int main(void)
{
	log_init("test_item", -1);
	test_parse();
	test_reader();
	test_line_limits();
	test_bom();
	test_line_copy();
	return tap_done();
}
