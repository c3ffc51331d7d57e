/* Publishing ready codes to their pools' Kafka topics. A code becomes
 * 'published' only once Kafka confirmed its delivery; partition, offset and
 * time are recorded in batched transactions, and an item line is printed only
 * after its transaction committed. A failed delivery leaves the code
 * 'fetched', so a rerun picks it up: delivery is at least once. */
#ifndef QRPOOL_PUBLISH_H
#define QRPOOL_PUBLISH_H

#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "idset.h"
#include "item.h"
#include "publish_committer.h"

/* Deliveries are handed to the committer in batches of at most this many,
 * or after this long. */
#define PUBLISH_BATCH_MAX 4096
#define PUBLISH_BATCH_SECONDS 0.25

struct publish_counts {
	int64_t read;         /* items handed to publish_item */
	int64_t skipped;      /* items reported and skipped: unknown, not fetched, no image */
	int64_t produced;     /* messages handed to the producer */
	int64_t published;    /* deliveries recorded in the DB and printed */
	int64_t failed;       /* deliveries that failed or were given up: still fetched */
	int64_t refused;      /* messages Kafka refused for what they are (too large): still fetched */
	int64_t bad_lines;    /* lines that were no item: reported and skipped */
	int64_t already;      /* delivered, but another run had recorded the code first */
	int64_t meanwhile;    /* published by the run this one waited for: not sent again */
};

struct publisher {
	const struct config *config;
	struct db *db;
	sqlite3_stmt *lookup;
	sqlite3_blob *image;              /* reads the images, moved from row to row */
	sqlite3_stmt *has_image;          /* tells a missing image from a failed read */
	rd_kafka_t *producer;
	rd_kafka_topic_t **topics;        /* per configured pool, made on first use (at the
	                                   * start for a pool with topic_properties) */
	unsigned char *used;              /* ... and written to */
	int64_t *failed;                  /* ... and its deliveries failed (counts.failed's share) */
	rd_kafka_resp_err_t *refused;     /* ... and why Kafka refuses its topic (missing, or
	                                   * not for us): its later items stay fetched */
	int drop_images;                  /* --drop-images: drop every pool's images */
	char *url;                        /* a link pool's URL header, reused */
	size_t url_size;
	time_t created;                   /* the last creation time formatted... */
	char created_text[32];            /* ... and its text */
	struct publish_batch *batch;      /* deliveries gathered for the committer */
	struct publish_batch *full;       /* batches of PUBLISH_BATCH_MAX, oldest first, to hand over */
	double batch_started;             /* db_monotonic() when its first delivery came */
	struct publish_committer committer;
	double reading_since;             /* db_monotonic() when the read transaction began; 0: none */
	int64_t in_flight;                /* produced, not yet reported */
	double last_report;               /* db_monotonic() of the last delivery report */
	struct publish_counts counts;
	int status;                       /* the worst outcome so far, as an exit code */
	int stop;                         /* stop reading: Kafka gave up, or the DB failed */
	int draining;                     /* after a stop: the rest of the input read and let go */
	double waited_from;               /* when the publish this run waited for (its lock on
	                                   * the DB) began, else 0 */
	int auth_failed;                  /* the client's last complaint: its authentication refused */
	int brokers_down;                 /* all brokers down since the last delivery */
	int client_refused;               /* Kafka refuses this client every topic (said) */
	int size_advice_said;             /* what to do about a message too large, said */
	char held_type[64];               /* a code's content type copied to wait for room (publish_detach) */
	struct idset seen;                /* codes produced by this run */
	char delivery_error[256];         /* why the last delivery failed */
	char client_error[256];           /* the client's last complaint, e.g. a broker down */
	char tls_error[256];              /* its last TLS handshake failure, if any */
};

/* Prepares the lookup, starts the committer (its thread prints the item lines
 * to `out`) and the producer. Returns 0 or an exit code (EXIT_CONFIG for bad
 * kafka settings). */
int publish_open(struct publisher *publisher, const struct config *config, struct db *db,
	int drop_images, FILE *out);
void publish_close(struct publisher *publisher);

/* Checks one item and hands its message to the producer, serving delivery
 * reports and handing due batches to the committer meanwhile. An item that is unknown, of
 * another pool, not 'fetched' or without image is reported as
 * "source:line: why" and skipped (status EXIT_DATA). Returns the status so
 * far; publisher->stop says when reading should end. */
int publish_item(struct publisher *publisher, const struct item *item, const char *source);

/* Serves delivery reports for up to `timeout_ms`, and hands a due batch over:
 * for the pauses between items, so deliveries are recorded and printed while
 * the stage before us is slow. */
void publish_serve(struct publisher *publisher, int timeout_ms);

/* After the input: waits for the outstanding deliveries until kafka.timeout
 * has passed, gives up on the rest (they stay 'fetched'), lets the committer
 * finish, and logs the counts. Returns the run's exit status. */
int publish_finish(struct publisher *publisher);
/* How to publish the codes left fetched by hand, under the fills' lock (a
 * resume beside a running fill would send them twice): the lock job.sh took
 * ($QRPOOL_FILL_LOCK), else $QRPOOL_LOCK_DIR's or /run/lock's; with this
 * run's config named, unless it is the default. Whole, whatever the paths:
 * a path quoted for the shell is at most PUBLISH_WORD_MAX bytes (a quote
 * becomes four), the command at most PUBLISH_RESUME_MAX. */
#define PUBLISH_WORD_MAX (4 * PATH_MAX + 3)
#define PUBLISH_RESUME_MAX (2 * PUBLISH_WORD_MAX + 160)
const char *publish_resume_command(const struct config *config);

#endif
