/* A progress line on stderr (done, rate, extra, ETA), redrawn at most a few
 * times a second, and only when stderr is a terminal: silent under cron. */
#ifndef QRPOOL_PROGRESS_H
#define QRPOOL_PROGRESS_H

#include <stdint.h>

struct progress {
	int enabled;
	int64_t total;        /* 0 when unknown: no ETA */
	double started, last_drawn;
	int drawn;
};

void progress_init(struct progress *progress, int64_t total);
/* `extra` (may be NULL) is shown after the rate, e.g. "quota 4980/5000". */
void progress_update(struct progress *progress, int64_t done, const char *extra);
void progress_end(struct progress *progress);

#endif
