/* clockstep.so: LD_PRELOADed into a tool by the tests, it steps the wall
 * clock as NTP or an operator might in the night, leaving the monotonic
 * clock alone. QRPOOL_TEST_CLOCK_STEP="AFTER:BY": AFTER seconds after the
 * process starts, CLOCK_REALTIME, gettimeofday() and time() go back BY seconds
 * (forward if BY is negative). Lengths of time measured on the wall clock
 * then come out BY seconds long or short; those on the monotonic clock do
 * not. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static double step_after = -1, step_by;
static struct timespec started;
static int (*real_clock_gettime)(clockid_t, struct timespec *);

static void clockstep_init(void) __attribute__((constructor));
static void clockstep_init(void)
{
	const char *setting = getenv("QRPOOL_TEST_CLOCK_STEP");

	real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	if (real_clock_gettime)
		real_clock_gettime(CLOCK_MONOTONIC, &started);
	if (!setting || sscanf(setting, "%lf:%lf", &step_after, &step_by) != 2)
		step_after = -1;
}

static void clockstep_shift(struct timespec *now)
{
	struct timespec monotonic;
	long long nanoseconds;

	if (step_after < 0)
		return;
	real_clock_gettime(CLOCK_MONOTONIC, &monotonic);
	if ((double)(monotonic.tv_sec - started.tv_sec) +
	    (double)(monotonic.tv_nsec - started.tv_nsec) / 1e9 < step_after)
		return;
	nanoseconds = (long long)now->tv_sec * 1000000000LL + now->tv_nsec - (long long)(step_by * 1e9);
	now->tv_sec = (time_t)(nanoseconds / 1000000000LL);
	now->tv_nsec = (long)(nanoseconds % 1000000000LL);
}

int clock_gettime(clockid_t clock, struct timespec *now)
{
	int rc;

	if (!real_clock_gettime)
		clockstep_init();
	rc = real_clock_gettime(clock, now);
	if (!rc && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
		clockstep_shift(now);
	return rc;
}

/* (glibc's time() reads the clock itself, not through clock_gettime) */
time_t time(time_t *out)
{
	struct timespec wall;

	if (clock_gettime(CLOCK_REALTIME, &wall))
		return (time_t)-1;
	if (out)
		*out = wall.tv_sec;
	return wall.tv_sec;
}

int gettimeofday(struct timeval *restrict now, void *restrict zone)
{
	struct timespec wall;

	(void)zone;
	if (clock_gettime(CLOCK_REALTIME, &wall))
		return -1;
	now->tv_sec = wall.tv_sec;
	now->tv_usec = wall.tv_nsec / 1000;
	return 0;
}
