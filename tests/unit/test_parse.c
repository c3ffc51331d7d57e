#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "tap.h"

static void test_numbers(void)
{
	char why[PARSE_WHY_SIZE];
	int64_t value = 0;
	double real = 0;

	ok(parse_int64("42", 0, 100, &value, why) == 0 && value == 42, "parses 42");
	ok(parse_int64("-3", -5, 5, &value, why) == 0 && value == -3, "parses a negative number");
	ok(parse_int64("101", 0, 100, &value, why) != 0, "refuses out of range");
	ok(parse_int64("12abc", 0, 100, &value, why) != 0, "refuses trailing junk");
	ok(parse_int64("", 0, 100, &value, why) != 0, "refuses empty");
	ok(parse_int64(" 1", 0, 100, &value, why) != 0, "refuses leading space");
	ok(parse_int64("99999999999999999999", 0, INT64_MAX, &value, why) != 0, "refuses overflow");
	static const char *const not_whole[] = { " 5", "5 ", "+5", "--1", "-", "", "5\n", "1_000" };
	for (size_t i = 0; i < sizeof not_whole / sizeof not_whole[0]; i++)
		ok(parse_int64(not_whole[i], -10, 10, &value, why) != 0 &&
			strstr(why, "is not a whole number"), "refuses '%s', said alike (%s)", not_whole[i], why);
	ok(parse_int64("-0", 0, 100, &value, why) != 0 && strstr(why, "-0 is out of range (0 to 100)"),
		"refuses -0 where no negative may be: %s", why);
	ok(parse_int64("-0", -1, 100, &value, why) == 0 && value == 0, "... and takes it where one may");
	ok(parse_double("0.25", 0, 1, &real, why) == 0 && real == 0.25, "parses 0.25");
	ok(parse_double("nan", 0, 1, &real, why) != 0, "refuses nan");
	ok(parse_double("12", 0, 100, &real, why) == 0 && real == 12, "parses 12");
	ok(parse_double("-0.5", -1, 1, &real, why) == 0 && real == -0.5, "parses -0.5");
	static const char *const not_decimal[] = {
		"0x10", "1e3", "inf", ".5", "5.", "1.2.3", " 1", "1 ", "+1", "--1", "-", "", "0,5",
	};
	for (size_t i = 0; i < sizeof not_decimal / sizeof not_decimal[0]; i++)
		ok(parse_double(not_decimal[i], -1e6, 1e6, &real, why) != 0 &&
			strstr(why, "is not a number"), "refuses '%s' (%s)", not_decimal[i], why);
}

static void test_durations(void)
{
	static const struct { const char *text; int64_t ms; } good[] = {
		{ "90", 90000 }, { "90s", 90000 }, { "1500ms", 1500 }, { "5m", 300000 },
		{ "2h", 7200000 }, { "1d", 86400000 }, { "1h30m", 5400000 }, { "0s", 0 },
		{ "1d2h3m4s5ms", 93784005 },
	};
	static const char *const bad[] = { "", "s", "5x", "1h30", "0m30", "-5s", "1.5h", "5 m" };
	char why[PARSE_WHY_SIZE];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int64_t ms = -1;
		ok(parse_duration_ms(good[i].text, &ms, why) == 0 && ms == good[i].ms,
			"duration '%s' = %lld ms", good[i].text, (long long)good[i].ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms;
		ok(parse_duration_ms(bad[i], &ms, why) != 0, "duration '%s' refused", bad[i]);
	}
	/* A space is said as such, not as a missing unit (it has one). */
	ok(parse_duration_ms("10 s", &(int64_t){ 0 }, why) != 0 && strstr(why, "has a space in it"),
		"'10 s': %s", why);
	ok(parse_duration_ms("1h 30m", &(int64_t){ 0 }, why) != 0 && strstr(why, "has a space in it"),
		"'1h 30m': %s", why);
	/* A unit twice, or a smaller before a larger: a slip, not a sum. */
	ok(parse_duration_ms("0.5d", &(int64_t){ 0 }, why) != 0 && strstr(why, "has a fraction"),
		"duration '0.5d': said to have a fraction, not to lack a unit (%s)", why);
	ok(parse_duration_ms("1,5h", &(int64_t){ 0 }, why) != 0 && strstr(why, "has a fraction"),
		"duration '1,5h': a decimal comma too (%s)", why);
	ok(parse_duration_ms("5m5m", &(int64_t){ 0 }, why) != 0 && strstr(why, "out of order or twice"),
		"'5m5m': %s", why);
	ok(parse_duration_ms("1s1h", &(int64_t){ 0 }, why) != 0 && strstr(why, "out of order or twice"),
		"'1s1h': %s", why);
}

static void test_times(void)
{
	char why[PARSE_WHY_SIZE];
	int minutes = -1;
	time_t t = 0;

	ok(parse_time_of_day("06:00", &minutes, why) == 0 && minutes == 360, "06:00 is minute 360");
	ok(parse_time_of_day("23:59", &minutes, why) == 0 && minutes == 1439, "23:59");
	ok(parse_time_of_day("24:00", &minutes, why) != 0, "24:00 refused");
	ok(parse_time_of_day("6:00", &minutes, why) != 0, "6:00 refused (HH:MM)");
	ok(parse_iso_time("2026-11-28T13:00:00+08:00", &t, why) == 0 && t == 1795842000,
		"ISO time with offset");
	ok(parse_iso_time("2026-11-28T05:00Z", &t, why) == 0 && t == 1795842000, "ISO time in Z");
	ok(parse_iso_time("2026-11-28 13:00+0800", &t, why) == 0 && t == 1795842000,
		"space separator and +0800");
	ok(parse_iso_time("2026-11-28T13:00", &t, why) != 0, "refuses a time without offset");
	ok(parse_iso_time("2026-11-28T13:00+08:", &t, why) != 0, "refuses an offset cut short at its colon");
	ok(parse_iso_time("2026-11-28T13:00+08", &t, why) == 0 && t == 1795842000,
		"an offset of hours alone (+08)");
	ok(parse_iso_time("2026-02-29T00:00Z", &t, why) != 0, "refuses 29 February 2026");
	ok(parse_iso_time("2024-02-29T00:00Z", &t, why) == 0, "accepts 29 February 2024");
	ok(parse_iso_time("2026-11-28T13:00+08:00x", &t, why) != 0, "refuses trailing junk");
}

static void test_next_local_time(void)
{
	time_t now = 1795842000, next;   /* 2026-11-28T05:00Z */

	setenv("TZ", "UTC", 1);
	tzset();
	next = parse_next_local_time(now, 6 * 60);
	is_int(next - now, 3600, "06:00 is an hour after 05:00");
	next = parse_next_local_time(now, 4 * 60);
	is_int(next - now, 23 * 3600, "04:00 is tomorrow");
	is_int(parse_next_local_time(now, 5 * 60), now, "05:00 at 05:00 is now");
	is_int(now - parse_last_local_time(now, 4 * 60), 3600, "today's 04:00 was an hour ago");
	is_int(now - parse_last_local_time(now, 6 * 60), 23 * 3600, "... 06:00 last showed yesterday");

	/* The eve of a spring-forward: tomorrow's 06:00 is 23 hours after
	 * today's, so "a day minus a bit ahead" does not mean "just passed". */
	setenv("TZ", "America/New_York", 1);
	tzset();
	now = 1772881201;   /* 2026-03-07T06:00:01-05:00, a Saturday */
	is_int(now - parse_last_local_time(now, 6 * 60), 1,
		"today's 06:00 one second ago, the eve of a DST change");
	is_int(parse_next_local_time(now, 6 * 60) - now, 23 * 3600 - 1, "... tomorrow's is 23 h away");

	/* The night after a 23-hour day: yesterday's 23:58 was 7 minutes ago
	 * (24 hours back is the day before: a deadline then a day away). */
	now = 1805083500;   /* 2027-03-15T00:05-04:00 */
	is_int(now - parse_last_local_time(now, 23 * 60 + 58), 420,
		"at 00:05 after a spring-forward day, 23:58 showed 7 minutes ago");
	/* A fall-back night shows 01:00-01:59 twice: at the second 01:35, the
	 * last 01:30 is 5 minutes ago and the next 01:40 in 5, not a day away. */
	now = 1825569300;   /* 2027-11-07T01:35-05:00 */
	is_int(now - parse_last_local_time(now, 90), 300, "the second 01:35 of a fall-back night: 01:30 5 minutes ago");
	is_int(parse_next_local_time(now, 100) - now, 300, "... 01:40 in 5 minutes");
	now = 1825565700;   /* 2027-11-07T01:35-04:00, the first */
	is_int(parse_next_local_time(now, 100) - now, 300, "the first 01:35: 01:40 in 5 minutes, the first one");

	/* A night window of 01:00-06:00 in real minutes. */
	time_t from, to;
	parse_local_window(1805004000, 60, 360, 1, &from, &to);   /* 2027-03-14T01:00-05:00 */
	is_int((to - from) / 60, 240, "01:00-06:00 on a spring-forward night: 240 minutes");
	parse_local_window(1825563600, 60, 360, 1, &from, &to);   /* 2027-11-07T01:00-04:00 */
	is_int((to - from) / 60, 360, "... on a fall-back night: 360");
	parse_local_window(1805043600, 60, 360, 0, &from, &to);   /* 2027-03-14T13:00-04:00 */
	is_int(from, 1805004000, "at 13:00, the latest window started is the night's");
	parse_local_window(1805043600, 60, 360, 1, &from, &to);
	is_int((to - from) / 60, 300, "... the current or next one: the next night's, 300 minutes");
	ok(from > 1805043600, "... which starts later");
	/* At 10:00 after a fall-back night, the window began at the first 01:00. */
	parse_local_window(1825599600, 60, 360, 0, &from, &to);   /* 2027-11-07T10:00-05:00 */
	is_int(from, 1825563600, "the night window of a fall-back night starts at its first 01:00 (EDT)");
	is_int((to - from) / 60, 360, "... and is 360 minutes long");
	parse_local_window(1805043600, 23 * 60, 2 * 60, 1, &from, &to);
	is_int((to - from) / 60, 180, "23:00-02:00 spans midnight: 180 minutes");
	/* A window wholly in the hour the clocks skip (02:00 to 03:00) is empty. */
	parse_local_window(1805004000, 2 * 60, 2 * 60 + 59, 1, &from, &to);
	is_int((to - from) / 60, 0, "02:00-02:59 on a spring-forward night: 0 minutes, not a day");
	parse_local_window(1805004000, 2 * 60 + 15, 2 * 60 + 45, 1, &from, &to);
	is_int((to - from) / 60, 0, "... 02:15-02:45: 0");
	parse_local_window(1805004000, 2 * 60, 3 * 60, 1, &from, &to);
	is_int((to - from) / 60, 0, "... 02:00-03:00: 0");
	parse_local_window(1805004000, 2 * 60 + 30, 4 * 60, 1, &from, &to);
	is_int((to - from) / 60, 60, "... 02:30-04:00: 60, from when the clocks change");
	parse_local_window(1805004000, 2 * 60, 2 * 60 + 59, 0, &from, &to);
	is_int(from, 1804921200, "... the latest started (at 01:00): yesterday's 02:00");
	is_int((to - from) / 60, 59, "... 59 minutes long");
	/* One across midnight that starts at or in the gap runs to the next
	 * day's end (at 13:00, the window started that day). */
	parse_local_window(1805043600, 3 * 60, 2 * 60, 0, &from, &to);
	is_int((to - from) / 60, 23 * 60, "... 03:00-02:00, across midnight: 1,380 minutes, not 0");
	parse_local_window(1805043600, 2 * 60 + 30, 2 * 60 + 15, 0, &from, &to);
	is_int((to - from) / 60, 23 * 60 + 15, "... 02:30-02:15: from when the clocks change to the next 02:15");
	/* ... and the one that started the day before ends as the clocks change. */
	parse_local_window(1805004000, 2 * 60 + 30, 2 * 60 + 15, 1, &from, &to);
	is_int((to - from) / 60, 23 * 60 + 30, "... 02:30-02:15 at 01:00: the day before's, 1,410 minutes");

	/* Dublin's clocks go from 01:00 to 02:00 (tzdata calls its winter time
	 * the DST): 01:00 that night is the moment they change, not an hour
	 * before, and 01:00-06:00 is 240 minutes. */
	setenv("TZ", "Europe/Dublin", 1);
	tzset();
	parse_local_window(1806159600, 60, 360, 1, &from, &to);   /* 2027-03-27T15:00Z */
	is_int(from, 1806195600, "Dublin: the night's 01:00 is when the clocks change");
	is_int((to - from) / 60, 240, "... and 01:00-06:00 is 240 minutes");
	now = 1806192300;   /* 2027-03-28T00:05Z */
	is_int(now - parse_last_local_time(now, 60), 23 * 3600 + 5 * 60, "... at 00:05, 01:00 last showed yesterday");
	is_int(parse_next_local_time(now, 60) - now, 55 * 60, "... and next shows in 55 minutes");
	/* Almaty went from UTC+6 to UTC+5 at midnight of 2024-02-29, both sides
	 * standard time: 23:00-23:59 came twice. */
	setenv("TZ", "Asia/Almaty", 1);
	tzset();
	now = 1709231700;   /* the second 23:35 */
	is_int(parse_next_local_time(now, 23 * 60 + 40) - now, 300, "Almaty's repeated hour: 23:40 in 5 minutes");
	is_int(now - parse_last_local_time(now, 23 * 60 + 30), 300, "... 23:30 5 minutes ago");
	/* Lord Howe's clocks go forward half an hour, 02:00 to 02:30. */
	setenv("TZ", "Australia/Lord_Howe", 1);
	tzset();
	is_int(parse_next_local_time(1822490940, 2 * 60 + 15), 1822491000,
		"Lord Howe: 02:15, in the gap, is when the clocks change");
	setenv("TZ", "UTC", 1);
	tzset();
}

/* RFC 3339: the offset with its colon (+08:00), as its parsers want it. */
static void test_format_iso(void)
{
	char buf[64];

	setenv("TZ", "Asia/Shanghai", 1);
	tzset();
	parse_format_iso(1795842000, buf, sizeof buf);
	is_str(buf, "2026-11-28T13:00:00+08:00", "a local time with its offset as +08:00");
	setenv("TZ", "America/St_Johns", 1);
	tzset();
	parse_format_iso(1795842000, buf, sizeof buf);
	is_str(buf, "2026-11-28T01:30:00-03:30", "a half-hour offset as -03:30");
	parse_format_iso(1795842000, buf, 25);
	is_str(buf, "", "a buffer too small gives no half time");
}

static void test_bom(void)
{
	is_int(parse_bom_length("\xEF\xBB\xBFposter", 9), 3, "a UTF-8 BOM is 3 bytes to skip");
	is_int(parse_bom_length("poster", 6), 0, "no BOM, nothing to skip");
	is_int(parse_bom_length("\xEF\xBB\xBF", 2), 0, "a BOM past the given length is not one");
	is_int(parse_bom_length("\xEF\xBB", 2), 0, "two bytes of one are not one");
}

/* Each case: config text, the line of its first wide number (0: none), that number. */
static void test_config_wide_numbers(void)
{
	static const struct {
		const char *text;
		int line;
		const char *number;
	} cases[] = {
		{ "a = 4294967301;", 1, "4294967301" },
		{ "a = 2147483647;\nb = -2147483648;", 0, "" },
		{ "a = 2147483648;", 1, "2147483648" },
		{ "a = -2147483649;", 1, "-2147483649" },
		{ "a = +4294972296;", 1, "+4294972296" },
		{ "a = 4294967301L;\nb = 99999999999LL;", 0, "" },
		{ "a = 99999999999999999999999999999999999999;", 1,
			"99999999999999999999999999999999999999" },
		{ "a = 000000000000000000000000000000000005;", 0, "" },
		{ "a = 0x7fffffff; b = 0x0000000012;", 0, "" },
		{ "a = 0x80000000;", 1, "0x80000000" },
		{ "a = 0x100001388;", 1, "0x100001388" },
		{ "a = 0x100001388L;", 0, "" },
		{ "a = 1e10; b = 12345678901.5; c = 1.5e+99999999999; d = .5;", 0, "" },
		{ "a = \"4294967301\"; # 4294967301\n// 4294967301\n/* 4294967301\n */ b = 1;", 0, "" },
		{ "a = \"x\\\" 4294967301\";\nb = [1, 2,\n 4294967296];", 3, "4294967296" },
		{ "name99999999999 = 1; x-4294967301 = 2;", 0, "" },
		{ "/* unended 4294967301", 0, "" },
	};
	char number[48];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		number[0] = '\0';
		is_int(parse_config_wide_number(cases[i].text, strlen(cases[i].text), number,
			sizeof number), cases[i].line, "wide number in config text %zu: line %d", i,
			cases[i].line);
		is_str(number, cases[i].number, "... the number as written");
	}
	/* (the length bounds the text: no NUL needed) */
	is_int(parse_config_wide_number("a = 42949673010", 14, number, sizeof number), 1,
		"read to the given length only");
	is_str(number, "4294967301", "... the number cut there");
}

int main(void)
{
	test_numbers();
	test_durations();
	test_times();
	test_next_local_time();
	test_format_iso();
	test_bom();
	test_config_wide_numbers();
	return tap_done();
}
