#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

void progress_init(struct progress *progress, int64_t total)
{
	/* -q asks for errors only: no progress either. */
	progress->enabled = isatty(STDERR_FILENO) && log_enabled(LOG_WARN);
	progress->total = total;
	progress->started = db_monotonic();   /* rates and ETAs are lengths of time */
	progress->last_drawn = 0;
	progress->drawn = 0;
}

void progress_update(struct progress *progress, int64_t done, const char *extra)
{
	/* Named: in a pipeline on a terminal, the stages draw on one line. */
	const char *name = log_program();
	double now, elapsed, rate;
	char eta[32] = "";

	if (!progress->enabled)
		return;
	now = db_monotonic();
	if (now - progress->last_drawn < 0.25)
		return;
	progress->last_drawn = now;
	elapsed = now - progress->started;
	rate = elapsed > 0 ? done / elapsed : 0;
	if (progress->total > 0 && rate > 0 && done <= progress->total) {
		long left = (long)((progress->total - done) / rate);
		snprintf(eta, sizeof eta, " ETA %ld:%02ld:%02ld", left / 3600, left / 60 % 60, left % 60);
	}
	if (!strncmp(name, "qrpool-", 7))
		name += 7;
	if (progress->total > 0)
		fprintf(stderr, "\r%s: %lld/%lld done, %.0f/s%s%s%s\033[K", name, (long long)done,
			(long long)progress->total, rate, extra ? ", " : "", extra ? extra : "", eta);
	else
		fprintf(stderr, "\r%s: %lld done, %.0f/s%s%s\033[K", name, (long long)done, rate,
			extra ? ", " : "", extra ? extra : "");
	progress->drawn = 1;
	log_progress_shown(1);
}

void progress_end(struct progress *progress)
{
	if (progress->enabled && progress->drawn)
		fputs("\r\033[K", stderr);
	progress->drawn = 0;
	log_progress_shown(0);
}
