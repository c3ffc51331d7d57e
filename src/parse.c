#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_fail(char *why, const char *fmt, const char *text)
{
	if (why)
		snprintf(why, PARSE_WHY_SIZE, fmt, text);
	return -1;
}

int parse_int64(const char *text, int64_t min, int64_t max, int64_t *out, char *why)
{
	/* Digits, after a minus sign: not strtoll's spaces and plus sign. */
	const char *digits = text ? text + (*text == '-') : "";
	char *end;
	long long value;

	if (!*digits || strspn(digits, "0123456789") != strlen(digits))
		return parse_fail(why, "'%s' is not a whole number", text ? text : "");
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno == ERANGE || *end != '\0' || end == text)
		return parse_fail(why, "'%s' is not a whole number", text);
	/* (-0 is no count: a minus where none may be is out of range.) */
	if (value < min || value > max || (*text == '-' && min >= 0)) {
		if (why)
			snprintf(why, PARSE_WHY_SIZE, "%s is out of range (%" PRId64 " to %" PRId64 ")",
				text, min, max);
		return -1;
	}
	*out = value;
	return 0;
}

int parse_double(const char *text, double min, double max, double *out, char *why)
{
	char *end;
	double value;

	if (!text || !*text)
		return parse_fail(why, "'%s' is not a number", "");
	/* Decimal, as people write it (and scripts/audit takes it): digits,
	 * a point and digits; not strtod's hex, exponents or "inf". */
	const char *digits = text + (*text == '-');
	size_t whole = strspn(digits, "0123456789");
	size_t fraction = digits[whole] == '.' ? strspn(digits + whole + 1, "0123456789") : 0;
	if (!whole || (digits[whole] == '.' && !fraction) || digits[whole + (fraction ? fraction + 1 : 0)])
		return parse_fail(why, "'%s' is not a number (digits, and a point and digits)", text);
	errno = 0;
	value = strtod(text, &end);
	if (errno == ERANGE || *end != '\0' || end == text || !isfinite(value))
		return parse_fail(why, "'%s' is not a number", text);
	if (value < min || value > max) {
		if (why)
			snprintf(why, PARSE_WHY_SIZE, "%s is out of range (%g to %g)", text, min, max);
		return -1;
	}
	*out = value;
	return 0;
}

static int64_t parse_unit_ms(const char *unit, size_t length)
{
	static const struct { const char *name; int64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "min", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strlen(units[i].name) == length && !strncmp(units[i].name, unit, length))
			return units[i].ms;
	return -1;
}

int parse_duration_ms(const char *text, int64_t *out_ms, char *why)
{
	const char *p = text;
	int64_t total = 0, last_unit_ms = INT64_MAX;

	if (!text || !*text)
		return parse_fail(why, "'%s' is not a duration (e.g. 90s, 5m, 1h30m)", "");
	if (strchr(text, ' '))
		return parse_fail(why, "'%s' has a space in it (write 10s, 1h30m)", text);
	while (*p) {
		const char *unit;
		int64_t unit_ms = 1000, value = 0;

		if (!isdigit((unsigned char)*p))
			return parse_fail(why, "'%s' is not a duration (e.g. 90s, 5m, 1h30m)", text);
		for (; isdigit((unsigned char)*p); p++) {
			if (value > (INT64_MAX - 9) / 10)
				return parse_fail(why, "duration '%s' is too long", text);
			value = value * 10 + (*p - '0');
		}
		unit = p;
		if (*p == '.' || *p == ',')
			return parse_fail(why, "'%s' has a fraction: each unit takes a whole number "
				"(write 1h30m, not 1.5h; 500ms, not 0.5s)", text);
		while (isalpha((unsigned char)*p))
			p++;
		if (p > unit) {
			unit_ms = parse_unit_ms(unit, (size_t)(p - unit));
			if (unit_ms < 0)
				return parse_fail(why, "'%s' has an unknown unit (ms, s, m, h, d)", text);
		} else if (unit != text + strlen(text) || p != text + strlen(text) ||
			   last_unit_ms != INT64_MAX) {   /* (a number with a unit came before: "0m30") */
			/* A bare number is seconds, but only on its own: "1h30" is ambiguous. */
			return parse_fail(why, "'%s' needs a unit after each number (ms, s, m, h, d)", text);
		}
		/* "5m5m" or "1s1h": a slip, not a sum to guess at. */
		if (unit_ms >= last_unit_ms)
			return parse_fail(why, "'%s' gives its units out of order or twice (write them "
				"largest first, each once: 1h30m)", text);
		last_unit_ms = unit_ms;
		if (value > INT64_MAX / unit_ms || total > INT64_MAX - value * unit_ms)
			return parse_fail(why, "duration '%s' is too long", text);
		total += value * unit_ms;
	}
	*out_ms = total;
	return 0;
}

int parse_time_of_day(const char *text, int *out_minutes, char *why)
{
	int hours, minutes, consumed = 0;

	if (!text || strlen(text) != 5 || !isdigit((unsigned char)text[0]) ||
	    !isdigit((unsigned char)text[1]) || text[2] != ':' ||
	    !isdigit((unsigned char)text[3]) || !isdigit((unsigned char)text[4]) ||
	    sscanf(text, "%2d:%2d%n", &hours, &minutes, &consumed) != 2 || consumed != 5)
		return parse_fail(why, "'%s' is not a time of day (HH:MM)", text ? text : "");
	if (hours > 23 || minutes > 59)
		return parse_fail(why, "'%s' is not a time of day (00:00 to 23:59)", text);
	*out_minutes = hours * 60 + minutes;
	return 0;
}

int parse_time_window(const char *text, int *start_minutes, int *end_minutes, char *why)
{
	char start[6];

	if (!text || strlen(text) != 11 || text[5] != '-')
		return parse_fail(why, "'%s' is not a window HH:MM-HH:MM", text ? text : "");
	memcpy(start, text, 5);
	start[5] = '\0';
	if (parse_time_of_day(start, start_minutes, why) ||
	    parse_time_of_day(text + 6, end_minutes, why))
		return -1;
	if (*start_minutes == *end_minutes)   /* no time at all, or a whole day? */
		return parse_fail(why, "'%s' starts and ends at the same time", text);
	return 0;
}

static int parse_digits(const char **p, int count, int *out)
{
	int value = 0;

	for (int i = 0; i < count; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		value = value * 10 + (**p - '0');
	}
	*out = value;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t parse_days_from_civil(int year, int month, int day)
{
	int64_t y = year - (month <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static int parse_days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 ? 28 + leap : days[month - 1];
}

static int parse_offset(const char **p, int *out_seconds)
{
	int sign, hours, minutes = 0;

	if (**p == 'Z') {
		(*p)++;
		*out_seconds = 0;
		return 0;
	}
	if (**p != '+' && **p != '-')
		return -1;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (parse_digits(p, 2, &hours))
		return -1;
	/* +08, +0800 or +08:00; a colon must have its minutes ("+08:" is cut short). */
	if (**p == ':') {
		(*p)++;
		if (parse_digits(p, 2, &minutes))
			return -1;
	} else if (**p && parse_digits(p, 2, &minutes)) {
		return -1;
	}
	if (hours > 14 || minutes > 59)
		return -1;
	*out_seconds = sign * (hours * 3600 + minutes * 60);
	return 0;
}

int parse_iso_time(const char *text, time_t *out, char *why)
{
	const char *p = text;
	int year, month, day, hour, minute, second = 0, offset;
	static const char *const bad = "'%s' is not an ISO-8601 time with offset "
		"(e.g. 2026-11-28T13:00+08:00 or 2026-11-28T05:00Z)";

	if (!text || parse_digits(&p, 4, &year) || *p++ != '-' || parse_digits(&p, 2, &month) ||
	    *p++ != '-' || parse_digits(&p, 2, &day) || (*p != 'T' && *p != ' '))
		return parse_fail(why, bad, text ? text : "");
	p++;
	if (parse_digits(&p, 2, &hour) || *p++ != ':' || parse_digits(&p, 2, &minute))
		return parse_fail(why, bad, text);
	if (*p == ':') {
		p++;
		if (parse_digits(&p, 2, &second))
			return parse_fail(why, bad, text);
	}
	if (parse_offset(&p, &offset) || *p)
		return parse_fail(why, bad, text);
	if (month < 1 || month > 12 || day < 1 || day > parse_days_in_month(year, month) ||
	    hour > 23 || minute > 59 || second > 59)
		return parse_fail(why, "'%s' is not a valid date and time", text);
	*out = (time_t)(parse_days_from_civil(year, month, day) * 86400 + hour * 3600 +
		minute * 60 + second - offset);
	return 0;
}

/* What the local clock shows at t, read as if it were UTC. */
static time_t parse_wall(time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	return timegm(&tm);
}

/* The instants at which the local clock shows `minutes` after midnight on
 * the day `days` after now's (by the local calendar): one; two in an hour a
 * night repeats (clocks set back); in a gap (clocks set forward past it), the
 * moment the clocks change. Found by the offsets in force a day either side,
 * not by tm_isdst (zones have changed offset with it 0 on both sides, and
 * Dublin's winter time is its "DST"). Returns how many, in order. */
static int parse_local_instants(time_t now, int days, int minutes, time_t out[2])
{
	struct tm tm;
	time_t wall, t, lo, hi;
	long offsets[2];
	int count = 0;

	localtime_r(&now, &tm);
	tm.tm_mday += days;
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_sec = 0;
	wall = timegm(&tm);   /* (normalizes the day) */
	offsets[0] = (long)(parse_wall(wall - 86400) - (wall - 86400));
	offsets[1] = (long)(parse_wall(wall + 86400) - (wall + 86400));
	for (int i = 0; i < 2; i++) {
		t = wall - offsets[i];
		if (parse_wall(t) == wall && (!count || out[0] != t))
			out[count++] = t;
	}
	if (count == 2 && out[1] < out[0]) {
		t = out[0];
		out[0] = out[1];
		out[1] = t;
	}
	if (count)
		return count;
	/* A gap: the first instant whose clock shows that time or later. */
	lo = wall - (offsets[0] > offsets[1] ? offsets[0] : offsets[1]);
	hi = wall - (offsets[0] < offsets[1] ? offsets[0] : offsets[1]);
	if (parse_wall(hi) < wall)
		return 0;
	while (lo < hi) {
		t = lo + (hi - lo) / 2;
		if (parse_wall(t) >= wall)
			hi = t;
		else
			lo = t + 1;
	}
	out[0] = hi;
	return 1;
}

/* The latest instant at or before now (after: the earliest at or after) at
 * which the local clock shows `minutes`: yesterday's, today's or tomorrow's. */
static time_t parse_nearest_local_time(time_t now, int minutes, int after)
{
	time_t best = (time_t)-1, found[2];

	for (int days = -1; days <= 1; days++) {
		int count = parse_local_instants(now, days, minutes, found);

		for (int i = 0; i < count; i++)
			if (after ? found[i] >= now && (best == (time_t)-1 || found[i] < best) :
			            found[i] <= now && (best == (time_t)-1 || found[i] > best))
				best = found[i];
	}
	return best;
}

time_t parse_last_local_time(time_t now, int minutes)
{
	return parse_nearest_local_time(now, minutes, 0);
}

time_t parse_next_local_time(time_t now, int minutes)
{
	return parse_nearest_local_time(now, minutes, 1);
}

/* The first instant of the day `days` after now's at which the local clock
 * shows `minutes` (of two in a fall-back night's repeated hour, the earlier:
 * cron runs a job of that hour then). */
static time_t parse_day_first(time_t now, int days, int minutes)
{
	time_t found[2];

	return parse_local_instants(now, days, minutes, found) ? found[0] : (time_t)-1;
}

/* A window's end: the first `end` after its start `from`. A window wholly in
 * a spring-forward gap (02:00-02:59, 02:00-03:00 when the clocks go from 02:00
 * to 03:00) starts and ends at the moment they change: empty, not a day long.
 * One across midnight (03:00-02:00) ends the next day, even when its end that
 * day is in the gap. */
static time_t parse_window_end(time_t from, int start, int end)
{
	time_t to = parse_next_local_time(from, end);

	return to == from && end > start ? to : parse_next_local_time(from + 1, end);
}

void parse_local_window(time_t now, int start, int end, int current_or_next, time_t *from,
	time_t *to)
{
	/* The latest that has started: today's, if its start has come, else yesterday's. */
	*from = parse_day_first(now, 0, start);
	if (*from == (time_t)-1 || *from > now)
		*from = parse_day_first(now, -1, start);
	*to = parse_window_end(*from, start, end);
	if (current_or_next && *to <= now) {   /* over: the next one, today's or tomorrow's */
		*from = parse_day_first(now, 0, start);
		if (*from == (time_t)-1 || *from <= now)
			*from = parse_day_first(now, 1, start);
		*to = parse_window_end(*from, start, end);
	}
}

void parse_format_iso(time_t t, char *buf, size_t size)
{
	struct tm tm;
	size_t length;

	localtime_r(&t, &tm);
	length = strftime(buf, size, "%Y-%m-%dT%H:%M:%S%z", &tm);
	/* RFC 3339 (what Python before 3.11 reads, say) wants the offset as +08:00;
	 * no room for it, no time at all rather than half of one. */
	if (length >= 5 && length + 1 < size) {
		memmove(buf + length - 1, buf + length - 2, 3);
		buf[length - 2] = ':';
	} else if (size > 0) {
		buf[0] = '\0';
	}
}

size_t parse_bom_length(const char *text, size_t length)
{
	return length >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

/* The end of the number that starts at `p` (a sign, digits, a hex, a float's
 * dot or exponent, an L suffix), as libconfig's scanner would take it; *wide
 * set when it is a whole number without L that does not fit in 32 bits. */
static const char *parse_config_number(const char *p, const char *end, int *wide)
{
	const char *start = p, *digits;
	char copy[32];
	long long value;

	*wide = 0;
	if (*p == '-' || *p == '+')
		p++;
	if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && isxdigit((unsigned char)p[2])) {
		for (p += 2; p < end && *p == '0'; p++)
			;
		for (digits = p; p < end && isxdigit((unsigned char)*p); p++)
			;
		/* (libconfig 1.5 reads a hex into an int: over 0x7fffffff is negative) */
		*wide = p - digits > 8 || (p - digits == 8 && strchr("89abcdefABCDEF", *digits));
	} else {
		while (p < end && *p == '0')
			p++;
		for (digits = p; p < end && isdigit((unsigned char)*p); p++)
			;
		if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {   /* a float */
			for (; p < end && (isdigit((unsigned char)*p) || (*p && strchr(".eE", *p)) ||
					((*p == '-' || *p == '+') && strchr("eE", p[-1]))); p++)
				;
			return p;
		}
		if (p - digits >= (ptrdiff_t)sizeof copy)
			*wide = 1;
		else {
			copy[0] = *start;
			snprintf(copy + (*start == '-'), sizeof copy - 1, "%.*s", (int)(p - digits), digits);
			errno = 0;
			value = strtoll(copy, NULL, 10);
			*wide = errno == ERANGE || value < INT32_MIN || value > INT32_MAX;
		}
	}
	if (p < end && *p == 'L') {   /* a 64-bit one: read whole */
		*wide = 0;
		while (p < end && *p == 'L')
			p++;
	}
	return p;
}

int parse_config_wide_number(const char *text, size_t length, char *literal, size_t size)
{
	const char *p = text, *end = text + length;

	while (p < end) {
		const char *start = p;
		int wide;

		if (*p == '"') {   /* a string, to its closing quote */
			for (p++; p < end && *p != '"'; p++)
				p += *p == '\\' && p + 1 < end;
			p += p < end;
		} else if (*p == '#' || (*p == '/' && p + 1 < end && p[1] == '/')) {
			p = memchr(p, '\n', (size_t)(end - p));
			p = p ? p : end;
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			for (p += 2; p + 1 < end && !(p[0] == '*' && p[1] == '/'); p++)
				;
			p = p + 1 < end ? p + 2 : end;
		} else if (isalpha((unsigned char)*p) || *p == '*') {   /* a name */
			while (p < end && (isalnum((unsigned char)*p) || (*p && strchr("-_*", *p))))
				p++;
		} else if (isdigit((unsigned char)*p) || ((*p == '-' || *p == '+') && p + 1 < end &&
				isdigit((unsigned char)p[1]))) {
			p = parse_config_number(p, end, &wide);
			if (wide) {
				int line = 1;

				for (const char *q = text; q < start; q++)
					line += *q == '\n';
				snprintf(literal, size, "%.*s", (int)(p - start), start);
				return line;
			}
		} else
			p++;
	}
	return 0;
}
