#include <math.h>
#include <stdlib.h>

#include "plan.h"
#include "tap.h"

static struct pool_config pool_configs[3] = {
	{ .name = "a", .source = POOL_WECHAT, .cover_hours = 2, .safety = 0.5 },
	{ .name = "b", .source = POOL_WECHAT, .cover_hours = 2, .safety = 0 },
	{ .name = "l", .source = POOL_LINK, .cover_hours = 1, .safety = 0 },
};

static void setup(struct plan_pool *pools)
{
	memset(pools, 0, 3 * sizeof *pools);
	for (int i = 0; i < 3; i++)
		pools[i].pool = &pool_configs[i];
}

static void test_model(void)
{
	struct demand_row rows[] = {
		{ .pool_index = 0, .hour = 3600, .codes = 100 },
		{ .pool_index = 0, .hour = 7200, .codes = 200 },
		{ .pool_index = 0, .hour = 10800, .codes = 1000 },   /* beyond 2 cover hours */
		{ .pool_index = 2, .hour = 3600, .codes = 60 },
	};
	struct demand demand = { rows, 4, 4, 0 };
	struct plan_pool pools[3];

	setup(pools);
	pools[0].depth.depth = 50;
	pools[0].in_flight = 100;
	plan_model(pools, 3, &demand, 3600 + 1800);
	/* From 01:30: half of hour 1 (50) + hour 2 (200) + half of hour 3 (500). */
	is_int(pools[0].demand, 750, "demand prorates the hours the window cuts");
	is_int(pools[0].target, 1125, "target adds the safety margin");
	is_int(pools[0].need, 975, "need subtracts depth and in-flight");
	is_int(pools[2].demand, 30, "the link pool's one cover hour holds half an hour of demand");
	is_int(pools[1].need, 0, "no demand, no need");
	ok(isinf(pools[1].hours_of_cover), "no demand: unbounded cover");

	/* 60,000,000 x 1.1 is 66,000,000.00000001 in doubles: not 66,000,001. */
	struct demand_row big = { .pool_index = 0, .hour = 3600, .codes = 60000000 };
	struct demand one = { &big, 1, 1, 0 };
	double safety = pool_configs[0].safety;

	setup(pools);
	pool_configs[0].safety = 0.1;
	plan_model(pools, 3, &one, 3600);
	pool_configs[0].safety = safety;
	is_int(pools[0].target, 66000000, "target: floating-point noise is not a code more");
}

static void test_allocation(void)
{
	struct plan_pool pools[3];
	struct plan_limits limits = { 100, -1 };
	int64_t short_by;

	setup(pools);
	pools[0].need = 80;
	pools[0].hours_of_cover = 5;
	pools[1].need = 80;
	pools[1].hours_of_cover = 1;
	pools[2].need = 500;
	pools[2].hours_of_cover = 0;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[1].granted, 80, "the most urgent wechat pool is served first");
	is_int(pools[0].granted, 20, "the next gets what capacity is left");
	is_int(pools[2].granted, 500, "link pools are not bound by the WeChat capacity");
	is_int(short_by, 60, "the shortfall is reported");

	setup(pools);
	pools[0].need = 80;
	pools[0].planned = 70;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted, 30, "codes still planned use up capacity first");

	setup(pools);
	pools[0].need = pools[1].need = pools[2].need = 10;
	limits.capacity = -1;
	limits.max_codes = 25;
	plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted + pools[1].granted + pools[2].granted, 25, "--max caps the total");

	/* --max before the capacity: capacity is spent only on what --max lets
	 * through, and what --max cut is no capacity shortfall. */
	setup(pools);
	pools[0].need = 800;
	pools[0].hours_of_cover = 1;
	pools[1].need = 1200;
	pools[1].hours_of_cover = 2;
	limits.capacity = 1000;
	limits.max_codes = 600;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted + pools[1].granted, 600, "--max 600 under a capacity of 1000: 600 planned");
	is_int(short_by, 0, "... and no capacity shortfall");
	is_int(pools[0].cut, PLAN_CUT_MAX, "... the cut put on --max");
	limits.max_codes = -1;
	pools[0].planned = 500;   /* the capacity left: 500 */
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted, 500, "codes still planned leave 500 of the capacity: 500 granted");
	ok(pools[0].cut == PLAN_CUT_CAPACITY && pools[1].cut == PLAN_CUT_CAPACITY,
		"... each pool cut by the capacity, no --max given");
	is_int(short_by, 300 + 1200, "... short by what they lack");
}

int main(void)
{
	test_model();
	test_allocation();
	return tap_done();
}
