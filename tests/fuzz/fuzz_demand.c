/* libFuzzer target: the demand-line parser of qrpool-plan. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct pool_config pools[2] = {
		{ .name = "poster", .source = POOL_WECHAT, .cover_hours = 24 },
		{ .name = "link", .source = POOL_LINK, .cover_hours = 24 },
	};
	struct config config = { .pools = pools, .pool_count = 2 };
	struct demand demand = { 0 };
	char *line = malloc(size + 1), why[1280];

	log_init("fuzz_demand", -2);
	memcpy(line, data, size);
	line[size] = '\0';
	/* Lines never hold a newline: the reader splits on it first. */
	for (char *p = line; (p = strchr(p, '\n')); )
		*p = ' ';
	if (plan_parse_demand_line(&demand, &config, line, "fuzz", 1, why, sizeof why) == 0 &&
	    demand.count == 1 && (demand.rows[0].codes < 0 || demand.rows[0].pool_index > 1))
		abort();
	plan_check_duplicates(&demand, &config, size % 2);
	plan_demand_free(&demand);
	free(line);
	return 0;
}
