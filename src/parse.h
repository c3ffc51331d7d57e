/* Strict parsers: the whole string must be consumed and in range, or the call
 * fails with a message in `why` (for "file:line: why" style errors). */
#ifndef QRPOOL_PARSE_H
#define QRPOOL_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PARSE_WHY_SIZE 160

int parse_int64(const char *text, int64_t min, int64_t max, int64_t *out, char *why);
int parse_double(const char *text, double min, double max, double *out, char *why);

/* "90", "90s", "1500ms", "5m", "2h", "1d", "1h30m": milliseconds. */
int parse_duration_ms(const char *text, int64_t *out_ms, char *why);

/* "HH:MM" (24-hour clock): minutes after midnight. */
int parse_time_of_day(const char *text, int *out_minutes, char *why);

/* "HH:MM-HH:MM": a daily window, which may span midnight (23:00-05:00). */
int parse_time_window(const char *text, int *start_minutes, int *end_minutes, char *why);

/* ISO-8601 date and time with an explicit offset: "2026-11-28T13:00:00+08:00",
 * "2026-11-28T05:00Z", "2026-11-28 13:00+0800". Seconds are optional. */
int parse_iso_time(const char *text, time_t *out, char *why);

/* The last instant, at or before `now`, when the local clock showed `minutes`
 * after midnight: today's or yesterday's, by the local calendar (so across a
 * DST change too; in the hour a fall-back night repeats, the later reading
 * that has passed). */
time_t parse_last_local_time(time_t now, int minutes);

/* The next instant, at or after `now`, when the local clock shows `minutes`
 * after midnight; `now` itself when that is the same minute start. */
time_t parse_next_local_time(time_t now, int minutes);

/* A daily window of local clock times, start to end (minutes after midnight;
 * past midnight when end <= start), as instants: the latest that has started,
 * or with current_or_next the one now is in, else the next one. Its length is
 * real time: an hour less or more on a DST night. */
void parse_local_window(time_t now, int start, int end, int current_or_next, time_t *from,
	time_t *to);

/* Format `t` as RFC 3339 in local time with offset, e.g. 2026-11-28T13:00:00+08:00. */
void parse_format_iso(time_t t, char *buf, size_t size);

/* 3 when `text` (length bytes) starts with a UTF-8 byte-order mark, which a
 * file saved on Windows may carry, else 0: the bytes to skip. */
size_t parse_bom_length(const char *text, size_t length);

/* The first whole number in `text`, a libconfig file (strings and comments
 * skipped), written without L that does not fit in 32 bits: libconfig 1.5
 * reads such a one cut to its low 32 bits without a word (busy_timeout =
 * 4294967301 is 5 s; a hex over 0x7fffffff is negative). Its line (from 1),
 * with the number as written in `literal`; 0 if there is none. */
int parse_config_wide_number(const char *text, size_t length, char *literal, size_t size);

#endif
