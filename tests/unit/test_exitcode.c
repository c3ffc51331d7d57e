#include "exitcode.h"
#include "tap.h"

/* exitcode_worst against what the README promises (section "Exit status"):
 * "A partial failure is never 0. When several things go wrong, the most
 * serious is reported, in this order, most serious first: 64, 78, 70, 74,
 * 69, 65, 75". 75, "try again later", is the only status of the table a
 * rerun mends, so it ranks last. */

/* The statuses of the README's table. */
static const int statuses[] = { 0, 64, 65, 69, 70, 74, 75, 78 };
enum { STATUS_COUNT = sizeof statuses / sizeof statuses[0] };

/* 0 is the identity: one thing going wrong is reported as it is. */
static void test_done_is_identity(void)
{
	for (int i = 1; i < STATUS_COUNT; i++) {
		int status = statuses[i];

		is_int(exitcode_worst(0, status), status, "worst(0, %d) is %d", status, status);
		is_int(exitcode_worst(status, 0), status, "worst(%d, 0) is %d", status, status);
	}
}

/* Every pair: the same answer either way round, and one of the two. */
static void test_pairs_symmetric(void)
{
	for (int i = 0; i < STATUS_COUNT; i++)
		for (int j = i; j < STATUS_COUNT; j++) {
			int a = statuses[i], b = statuses[j];
			int ab = exitcode_worst(a, b), ba = exitcode_worst(b, a);

			if (!ok(ab == ba && (ab == a || ab == b),
					"worst(%d, %d) and worst(%d, %d): the same, one of the two", a, b, b, a))
				printf("#   got %d and %d\n", ab, ba);
		}
}

/* 75 ranks below every other failure. */
static void test_tempfail_lowest(void)
{
	for (int i = 0; i < STATUS_COUNT; i++) {
		int status = statuses[i];

		if (status == 0 || status == EXIT_TEMPFAIL)
			continue;
		is_int(exitcode_worst(EXIT_TEMPFAIL, status), status,
			"worst(75, %d) is %d: 75 ranks below every other failure", status, status);
	}
}

/* One ranking, whatever the grouping: the worst of a pipeline's stages does
 * not depend on the order they are folded in (no cycle among the statuses). */
static void test_grouping(void)
{
	int bad = 0, first[5] = { 0 };

	for (int i = 0; i < STATUS_COUNT; i++)
		for (int j = 0; j < STATUS_COUNT; j++)
			for (int k = 0; k < STATUS_COUNT; k++) {
				int a = statuses[i], b = statuses[j], c = statuses[k];
				int left = exitcode_worst(exitcode_worst(a, b), c);
				int right = exitcode_worst(a, exitcode_worst(b, c));

				if (left != right && bad++ == 0) {
					first[0] = a, first[1] = b, first[2] = c;
					first[3] = left, first[4] = right;
				}
			}
	if (!is_int(bad, 0, "every triple: the same worst whatever the grouping"))
		printf("#   the first: worst(worst(%d, %d), %d) is %d, worst(%d, worst(%d, %d)) %d\n",
			first[0], first[1], first[2], first[3], first[0], first[1], first[2], first[4]);
}

/* The README's order, most serious first: the worst of two is the one
 * earlier in it. */
static void test_order(void)
{
	static const int order[] = { 64, 78, 70, 74, 69, 65, 75, 0 };
	enum { ORDER_COUNT = sizeof order / sizeof order[0] };

	for (int i = 0; i < ORDER_COUNT; i++)
		for (int j = i + 1; j < ORDER_COUNT; j++)
			is_int(exitcode_worst(order[j], order[i]), order[i], "worst(%d, %d) is %d",
				order[j], order[i], order[i]);
}

int main(void)
{
	test_order();
	test_done_is_identity();
	test_pairs_symmetric();
	test_tempfail_lowest();
	test_grouping();
	return tap_done();
}
