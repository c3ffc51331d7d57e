/* A tiny TAP harness for the unit tests (after libqrencode's tests/common.h):
 * the plan is printed at the end from the count, never typed by hand. */
#ifndef QRPOOL_TAP_H
#define QRPOOL_TAP_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Unused helpers must not warn: each test uses only some. */
#define TAP_FUNCTION static __attribute__((unused))

static int tap_run, tap_failed;

#define ok(condition, ...) tap_ok(!!(condition), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, expected, ...) \
	tap_is_int((long long)(got), (long long)(expected), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, expected, ...) tap_is_str((got), (expected), __FILE__, __LINE__, __VA_ARGS__)

TAP_FUNCTION void tap_describe(int passed, const char *fmt, va_list ap)
{
	printf("%sok %d - ", passed ? "" : "not ", ++tap_run);
	vprintf(fmt, ap);
	putchar('\n');
	if (!passed)
		tap_failed++;
}

TAP_FUNCTION int tap_ok(int passed, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
TAP_FUNCTION int tap_ok(int passed, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_describe(passed, fmt, ap);
	va_end(ap);
	if (!passed)
		printf("#   at %s:%d\n", file, line);
	return passed;
}

TAP_FUNCTION int tap_is_int(long long got, long long expected, const char *file, int line,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));
TAP_FUNCTION int tap_is_int(long long got, long long expected, const char *file, int line,
	const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_describe(got == expected, fmt, ap);
	va_end(ap);
	if (got != expected)
		printf("#   at %s:%d: got %lld, expected %lld\n", file, line, got, expected);
	return got == expected;
}

TAP_FUNCTION int tap_is_str(const char *got, const char *expected, const char *file, int line,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));
TAP_FUNCTION int tap_is_str(const char *got, const char *expected, const char *file, int line,
	const char *fmt, ...)
{
	int same = got && expected ? !strcmp(got, expected) : got == expected;
	va_list ap;

	va_start(ap, fmt);
	tap_describe(same, fmt, ap);
	va_end(ap);
	if (!same)
		printf("#   at %s:%d: got '%s', expected '%s'\n", file, line, got ? got : "(null)",
			expected ? expected : "(null)");
	return same;
}

/* COUNT tests that cannot run here (not root, say), said as TAP skips. */
TAP_FUNCTION void tap_skip(int count, const char *why)
{
	while (count-- > 0)
		printf("ok %d # skip %s\n", ++tap_run, why);
}

/* What the code under test logs: stderr goes to an unnamed temporary file
 * from tap_capture_start until tap_capture_end, which reads it into `logged`.
 * Unnamed, so two runs at once (make check beside SAN=1) never share it. */
static int tap_saved_stderr = -1;
static FILE *tap_captured;

TAP_FUNCTION void tap_capture_start(void)
{
	fflush(stderr);
	tap_saved_stderr = dup(2);
	tap_captured = tmpfile();
	if (tap_captured)
		dup2(fileno(tap_captured), 2);
}

TAP_FUNCTION void tap_capture_end(char *logged, size_t size)
{
	size_t got = 0;

	fflush(stderr);
	dup2(tap_saved_stderr, 2);
	close(tap_saved_stderr);
	if (tap_captured) {
		rewind(tap_captured);
		got = fread(logged, 1, size - 1, tap_captured);
		fclose(tap_captured);
		tap_captured = NULL;
	}
	logged[got] = '\0';
}

TAP_FUNCTION int tap_done(void)
{
	printf("1..%d\n", tap_run);
	return tap_failed ? 1 : 0;
}

#endif
