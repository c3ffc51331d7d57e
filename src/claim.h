/* qrpool-claim's run: bind parameter records (stdin) to codes taken from a
 * pool's Kafka topic, durably, then hand the codes out as files. */
#ifndef QRPOOL_CLAIM_H
#define QRPOOL_CLAIM_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"

struct claim_options {
	const char *pool;
	int64_t count;            /* bind at most this many; -1: one per record */
	const char *out;          /* output directory */
	int64_t wait_ms;          /* how long an empty pool is waited on */
};

/* Returns the exit status: 0 every record bound; 65 some lines were bad (the
 * good ones are bound); 75 the pool ran empty, Kafka did not answer or the
 * run was interrupted; 74 a file, the DB or stdout failed. */
int claim_run(const struct claim_options *options, const struct config *config, FILE *in);

#endif
