/* One qrpool-render run over item lines, on every core: a reader thread looks
 * each item up and queues it in an ordered ring, encoder threads render the
 * link codes among them, and the calling thread commits images in batched
 * transactions and prints items in input order, each only after its commit. */
#ifndef QRPOOL_RENDER_RUN_H
#define QRPOOL_RENDER_RUN_H

#include <stdint.h>

#include "config.h"
#include "db.h"

struct render_run_options {
	char **inputs;          /* files of item lines; none: stdin ("-" is stdin too) */
	int input_count;
	int jobs;               /* encoder threads */
	int batch_size;         /* images per transaction at most */
	int64_t batch_ms;       /* how long a rendered image may wait for its commit */
};

struct render_run_counts {
	int64_t items_in;       /* well-formed item lines read */
	int64_t rendered;       /* images committed and printed */
	int64_t passed;         /* items passed through untouched */
	int64_t skipped;        /* rendered, but another run stored the code first */
	int64_t rejected;       /* reported and skipped (unknown id, pool, repeat; not renderable) */
	int64_t malformed;      /* lines that are no item, reported and skipped */
	int64_t buffered;       /* after a stop: stdin's lines read ahead, not taken */
	int64_t encoded;        /* images the encoders made (each code's once: -vv says) */
};

/* Runs until the input ends, a signal asks to stop (then what is rendered is
 * still committed and the status is EXIT_TEMPFAIL) or a commit fails (then
 * nothing more is printed). `db` is the writer's connection; lookups use a
 * second one of their own. Returns 0 or the worst exit code met. */
int render_run(const struct render_run_options *options, const struct config *config,
	struct db *db, struct render_run_counts *counts);

#endif
