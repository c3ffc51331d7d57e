/* libFuzzer target: the item-line reader, fed through a stream as tools read it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "item.h"
#include "log.h"
#include "rid.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	FILE *in = fmemopen((void *)data, size, "r");
	struct item_reader reader;
	struct item item;

	if (!in)
		return 0;
	log_init("fuzz_item", -2);
	item_reader_init(&reader, in, "fuzz");
	while (item_read(&reader, &item) == 1) {
		/* What the reader accepts must hold the contract. */
		if (!rid_is_scene(item.request_id, strlen(item.request_id)) || !*item.pool ||
		    strchr(item.pool, '\t') || strchr(item.pool, '\n'))
			abort();
	}
	item_reader_free(&reader);
	fclose(in);
	return 0;
}
