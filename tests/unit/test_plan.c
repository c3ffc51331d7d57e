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
	struct demand demand = { rows, 4, 4, 0, 4 * 3600 };   /* it ends at 04:00 */
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
	/* The forecast ends at 04:00: a's cover (to 03:30) and l's (to 02:30)
	 * are inside it, b's with no row too. */
	ok(pools[0].past_forecast == 0 && pools[1].past_forecast == 0 && pools[2].past_forecast == 0,
		"covers inside the forecast: no hour past it");

	/* Without the 03:00 row it ends at 03:00: half an hour of a's and b's
	 * cover (to 03:30) is past it; l's ends at 02:30. */
	rows[2] = rows[3];
	demand.count = 3;
	demand.end = 3 * 3600;
	setup(pools);
	plan_model(pools, 3, &demand, 3600 + 1800);
	ok(fabs(pools[0].past_forecast - 0.5) < 1e-9 && fabs(pools[1].past_forecast - 0.5) < 1e-9,
		"a cover that ends past the forecast: the hours past it");
	ok(pools[2].past_forecast == 0, "... not a cover inside it");
	/* From 01:10 a's cover ends 10 minutes past the forecast: a run that
	 * started late, not said; 11 minutes is. */
	plan_model(pools, 3, &demand, 3600 + PLAN_FORECAST_SLACK_SECONDS);
	ok(pools[0].past_forecast == 0, "a cover that ends within the slack: not past it");
	plan_model(pools, 3, &demand, 3600 + PLAN_FORECAST_SLACK_SECONDS + 60);
	ok(fabs(pools[0].past_forecast - 11.0 / 60) < 1e-9, "... a minute more: past it");

	/* 60,000,000 x 1.1 is 66,000,000.00000001 in doubles: not 66,000,001. */
	struct demand_row big = { .pool_index = 0, .hour = 3600, .codes = 60000000 };
	struct demand one = { &big, 1, 1, 0, 2 * 3600 };
	double safety = pool_configs[0].safety;

	setup(pools);
	pool_configs[0].safety = 0.1;
	plan_model(pools, 3, &one, 3600);
	pool_configs[0].safety = safety;
	is_int(pools[0].target, 66000000, "target: floating-point noise is not a code more");
}

/* A pool's stock, forecast over its cover hours (2 for a and b, 1 for l:
 * the rate is forecast / cover hours) and need. */
static void pool_is(struct plan_pool *p, int64_t stock, double forecast, int64_t need)
{
	p->depth.depth = stock;
	p->forecast = forecast;
	p->need = need;
}

static void test_allocation(void)
{
	struct plan_pool pools[3];
	struct plan_limits limits = { 100, -1, 0 };
	int64_t short_by;

	/* a: 5 hours of cover, b: 1 (100 codes an hour each). */
	setup(pools);
	pool_is(&pools[0], 500, 200, 80);
	pool_is(&pools[1], 100, 200, 80);
	pool_is(&pools[2], 0, 60, 500);
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[1].granted, 80, "the pool with the fewest hours of cover is lifted first");
	is_int(pools[0].granted, 20, "the next gets what capacity is left");
	is_int(pools[2].granted, 500, "link pools are not bound by the WeChat capacity");
	is_int(short_by, 60, "the shortfall is reported");

	/* Equal cover (none: a fresh install): the capacity is shared, not all
	 * given to the first by name. */
	setup(pools);
	pool_is(&pools[0], 0, 200, 150);
	pool_is(&pools[1], 0, 200, 150);
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted * 1000 + pools[1].granted, 50050,
		"two pools with no stock: 50 each of a capacity of 100");
	is_int(short_by, 200, "... each short by 100");

	/* Different rates: lifted to the same hours of cover (1 hour: 100 and 300). */
	setup(pools);
	pool_is(&pools[0], 0, 200, 1000);
	pool_is(&pools[1], 0, 600, 1000);
	limits.capacity = 400;
	plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted * 1000 + pools[1].granted, 100300,
		"rates of 100 and 300 an hour, 400 of capacity: 100 and 300, an hour of cover each");
	/* ... and the codes a level cannot split evenly go to the fewest hours first. */
	setup(pools);
	pool_is(&pools[0], 0, 200, 1000);
	pool_is(&pools[1], 0, 200, 1000);
	limits.capacity = 101;
	plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted + pools[1].granted, 101, "an odd capacity: every code granted");
	ok(pools[0].granted - pools[1].granted <= 1 && pools[1].granted - pools[0].granted <= 1,
		"... one pool a code ahead at most (%lld, %lld)", (long long)pools[0].granted,
		(long long)pools[1].granted);

	/* Rates far apart (a code a day and 500 million an hour): every code of
	 * the capacity granted, the slow pool's one included. */
	setup(pools);
	pool_is(&pools[0], 0, 0.0001, 1);
	pool_is(&pools[1], 0, 1e9, 1000000000);
	limits.capacity = 100000000;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted * 1000000000 + pools[1].granted, 1000000000 + 99999999,
		"rates far apart: the slowest pool's code first, the rest to the fastest");

	setup(pools);
	limits.capacity = 100;
	pool_is(&pools[0], 0, 200, 80);
	pools[0].planned = 70;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted, 30, "codes still planned use up capacity first");
	is_int(limits.planned_over, 0, "... within it: none over");
	pools[0].planned = 150;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted * 1000 + limits.planned_over, 50, "codes still planned beyond the "
		"capacity: nothing granted, the 50 over said");
	is_int(short_by, 80, "... the pool short by its need");

	setup(pools);
	pool_is(&pools[0], 0, 200, 10);
	pool_is(&pools[1], 0, 200, 10);
	pool_is(&pools[2], 0, 60, 10);
	limits.capacity = -1;
	limits.max_codes = 25;
	plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted + pools[1].granted + pools[2].granted, 25, "--max caps the total");

	/* --max before the capacity: capacity is spent only on what --max lets
	 * through, and what --max cut is no capacity shortfall. a: 1 hour of
	 * cover, b: 2 (100 an hour each); 600 lift both to 4.5 hours. */
	setup(pools);
	pool_is(&pools[0], 100, 200, 800);
	pool_is(&pools[1], 200, 200, 1200);
	limits.capacity = 1000;
	limits.max_codes = 600;
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted * 1000 + pools[1].granted, 350250,
		"--max 600 under a capacity of 1000: 350 and 250, level at 4.5 hours");
	is_int(short_by, 0, "... and no capacity shortfall");
	ok(pools[0].cut == PLAN_CUT_MAX && pools[1].cut == PLAN_CUT_MAX, "... the cuts put on --max");
	limits.max_codes = -1;
	pools[0].planned = 500;   /* the capacity left: 500 */
	short_by = plan_allocate(pools, 3, &limits);
	is_int(pools[0].granted * 1000 + pools[1].granted, 300200,
		"codes still planned leave 500 of the capacity: 300 and 200, level at 4 hours");
	ok(pools[0].cut == PLAN_CUT_CAPACITY && pools[1].cut == PLAN_CUT_CAPACITY,
		"... each pool cut by the capacity, no --max given");
	is_int(short_by, 500 + 1000, "... short by what they lack");
}

int main(void)
{
	test_model();
	test_allocation();
	return tap_done();
}
