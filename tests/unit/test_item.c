#include <stdlib.h>

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

int main(void)
{
	log_init("test_item", -1);
	test_parse();
	test_reader();
	return tap_done();
}
