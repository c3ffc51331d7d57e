#include "render_run.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "exitcode.h"
#include "idset.h"
#include "interrupt.h"
#include "item.h"
#include "log.h"
#include "progress.h"
#include "render.h"
#include "store.h"

/* Slots between the reader and the writer: enough to keep the encoders busy
 * while the writer commits a full batch. */
#define RENDER_RUN_RING 1024
/* Slots the writer takes per lock, so it does not lock once per item. */
#define RENDER_RUN_TAKE 256
/* Longest the writer (or the reader, polling its input) sleeps before looking
 * at signals, the stop flag and deadlines again. */
#define RENDER_RUN_TICK 0.2
/* How long the writer waits to gather more ready slots once it has some. */
#define RENDER_RUN_NAP 0.005
#define RENDER_RUN_SKIP (-1)

enum render_slot_state { SLOT_QUEUED, SLOT_CLAIMED, SLOT_DONE, SLOT_FAILED };

struct render_slot {
	int render;                     /* 1: a planned link code; 0: passed through */
	enum render_slot_state state;
	const struct pool_config *pool;
	int64_t code_id;
	const char *input;              /* file name for messages */
	long line_number;
	char *line;                     /* the item line as read, without its newline */
	size_t line_capacity;
	size_t id_length;               /* the request id begins the line */
	struct render_image image;
	char error[RENDER_ERROR_SIZE];
};

/* Slot i is the reader's until tail passes it, then (for a code to render)
 * an encoder's while SLOT_CLAIMED, then the writer's until head passes it. */
struct render_run {
	const struct render_run_options *options;
	const struct config *config;
	pthread_mutex_t lock;
	pthread_cond_t space, work, ready;  /* waited on by the reader, encoders, writer */
	struct render_slot *slots;
	uint64_t tail, claim, head;         /* next to fill, to look at for work, to take */
	int input_over;                     /* the reader has finished */
	int stopping;                       /* a signal or a failed commit: no new work */
	int writer_idle;                    /* the writer waits for the head slot */
	pthread_t reader_thread;
	int reader_started;
	/* the reader's own: its DB connection, input and findings */
	struct db lookup_db;
	struct store lookup;
	struct idset seen;                  /* the codes of the lines taken so far */
	struct item_reader reader;
	int in_fd;                          /* the input being read */
	int lookups_open;                   /* a read transaction spans the lookups */
	int reader_status;
	int64_t items_in, rejected, malformed;
	int64_t buffered;          /* counts.buffered */
	int64_t encoded;           /* counts.encoded, under the lock */
};

struct render_writer {
	struct store store;
	struct store_batch batch;
	struct progress progress;
	double deadline;                    /* commit the open batch by then */
	double commit_after;                /* the DB was locked: no commit before then (but the last) */
	int fatal;                          /* a commit failed: print nothing more */
	int unflushed;                      /* passed lines not yet flushed to stdout */
	int status;
	int64_t passed;
	int64_t failed;                     /* items whose code could not be rendered */
};

static double render_run_clock(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static void render_run_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, double until)
{
	struct timespec at;

	at.tv_sec = (time_t)until;
	at.tv_nsec = (long)((until - (double)at.tv_sec) * 1e9);
	pthread_cond_timedwait(cond, lock, &at);
}

/* No new work after this. */
static void render_run_stop(struct render_run *run)
{
	pthread_mutex_lock(&run->lock);
	run->stopping = 1;
	pthread_cond_broadcast(&run->space);
	pthread_cond_broadcast(&run->work);
	pthread_cond_broadcast(&run->ready);
	pthread_mutex_unlock(&run->lock);
}

static int render_run_stopping(struct render_run *run)
{
	int stopping;

	pthread_mutex_lock(&run->lock);
	stopping = run->stopping;
	pthread_mutex_unlock(&run->lock);
	return stopping;
}

/* --- the reader: item lines to slots, in order ------------------------------ */

static int render_run_reject(struct render_run *run, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int render_run_reject(struct render_run *run, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	log_line_error("%s:%ld: %s; line skipped", run->reader.name, run->reader.line_number, message);
	run->reader_status = exitcode_worst(run->reader_status, EXIT_DATA);
	run->rejected++;
	return RENDER_RUN_SKIP;
}

static int render_run_copy_line(struct render_slot *slot, const struct item *item)
{
	size_t length = strlen(item->request_id) + 1 + strlen(item->pool) +
		(item->rest ? 1 + strlen(item->rest) : 0);

	if (length + 1 > slot->line_capacity) {
		char *line = realloc(slot->line, length + 1);
		if (!line)
			return EXIT_INTERNAL;
		slot->line = line;
		slot->line_capacity = length + 1;
	}
	snprintf(slot->line, slot->line_capacity, "%s\t%s%s%s", item->request_id, item->pool,
		item->rest ? "\t" : "", item->rest ? item->rest : "");
	slot->id_length = strlen(item->request_id);
	return 0;
}

/* Lookups share one read transaction until the reader might block (it ends
 * before each read of input and before waiting for room): SQLite takes and
 * drops its file locks once per transaction, not once per lookup. */
static int render_run_lookup(struct render_run *run, const char *request_id, struct code_row *row)
{
	int status;

	if (!run->lookups_open) {
		if ((status = db_exec(&run->lookup_db, "BEGIN")))
			return status;
		run->lookups_open = 1;
	}
	return store_lookup(&run->lookup, request_id, row);
}

static void render_run_end_lookups(struct render_run *run)
{
	if (run->lookups_open)
		db_exec(&run->lookup_db, "COMMIT");   /* reads only: nothing to lose */
	run->lookups_open = 0;
}

/* Decides from the DB row, the truth, whether the item is rendered or passed
 * on. Returns 0, RENDER_RUN_SKIP (reported), or an exit code. */
static int render_run_classify(struct render_run *run, const struct item *item,
	struct render_slot *slot)
{
	const struct pool_config *pool;
	struct code_row row;
	int found = render_run_lookup(run, item->request_id, &row);

	if (found == 1)
		return render_run_reject(run, "unknown request id '%s'%s", item->request_id,
			db_unknown_id_hint(&run->lookup_db));
	if (found)
		return found;
	if (strcmp(row.pool, item->pool))
		return render_run_reject(run, "request id '%s' belongs to pool '%s' in the staging DB, "
			"not '%s'", item->request_id, row.pool, item->pool);
	if (!(pool = config_pool(run->config, row.pool)))
		return render_run_reject(run, "request id '%s': pool '%s' is not in the config",
			item->request_id, row.pool);
	/* A repeat in another batch would find its code fetched by then, and be
	 * passed on: printed twice. */
	if ((found = idset_add(&run->seen, row.id)) <= 0)
		return found ? EXIT_INTERNAL : render_run_reject(run, "request id '%s' was listed "
			"before in this input (taken once)", item->request_id);
	slot->render = pool->source == POOL_LINK && row.state == STATE_PLANNED;
	slot->state = SLOT_QUEUED;
	slot->pool = pool;
	slot->code_id = row.id;
	slot->input = run->reader.name;
	slot->line_number = item->line_number;
	return render_run_copy_line(slot, item);
}

/* The slot at the tail once there is room; NULL when the run is stopping. */
static struct render_slot *render_run_next_free(struct render_run *run)
{
	struct render_slot *slot = NULL;

	pthread_mutex_lock(&run->lock);
	while (!run->stopping && run->tail - run->head == RENDER_RUN_RING) {
		if (run->lookups_open) {
			pthread_mutex_unlock(&run->lock);
			render_run_end_lookups(run);
			pthread_mutex_lock(&run->lock);
			continue;
		}
		pthread_cond_wait(&run->space, &run->lock);
	}
	if (!run->stopping)
		slot = &run->slots[run->tail % RENDER_RUN_RING];
	pthread_mutex_unlock(&run->lock);
	return slot;
}

static void render_run_publish(struct render_run *run, const struct render_slot *slot)
{
	pthread_mutex_lock(&run->lock);
	run->tail++;
	if (slot->render)
		pthread_cond_signal(&run->work);
	if (run->writer_idle && run->tail - 1 == run->head)
		pthread_cond_signal(&run->ready);
	pthread_mutex_unlock(&run->lock);
}

static int render_run_read_items(struct render_run *run)
{
	struct render_slot *slot;
	struct item item;
	int got, status;

	while ((slot = render_run_next_free(run))) {
		got = item_read(&run->reader, &item);
		if (got < 0 && render_run_stopping(run))
			return 0;   /* the run's own stop: its status says why */
		if (got <= 0)
			return got < 0 ? EXIT_IO : 0;
		run->items_in++;
		status = render_run_classify(run, &item, slot);
		if (status == 0)
			render_run_publish(run, slot);
		else if (status != RENDER_RUN_SKIP)
			return status;
	}
	return 0;
}

static int render_run_stopped(void *run)
{
	return render_run_stopping(run);
}

/* The read function under the reader's FILE: it waits for input in short
 * polls and ends the reading once the run stops (EINTR: half a line then is
 * the end of the input, not an item), so a pipe whose writer never finishes
 * cannot hold the reader (and the run) for ever. */
static ssize_t render_run_read_input(void *cookie, char *buffer, size_t size)
{
	struct render_run *run = cookie;

	render_run_end_lookups(run);
	return interrupt_read_blocking(run->in_fd, buffer, size, (int)(RENDER_RUN_TICK * 1000),
		render_run_stopped, run);
}

static int render_run_read_file(struct render_run *run, const char *name)
{
	static const cookie_io_functions_t input_functions = { .read = render_run_read_input };
	int is_stdin = !strcmp(name, "-");
	FILE *in;
	int status;

	run->in_fd = cli_open_input(name);
	if (run->in_fd < 0 || !(in = fopencookie(run, "r", input_functions))) {
		log_error("%s: %s", name, strerror(errno));
		if (run->in_fd > STDIN_FILENO)
			close(run->in_fd);
		return EXIT_IO;
	}
	item_reader_init(&run->reader, in, is_stdin ? "stdin" : name);
	status = render_run_read_items(run);
	if (run->reader.bad_lines)
		status = exitcode_worst(status, EXIT_DATA);
	run->malformed += run->reader.bad_lines;
	item_reader_free(&run->reader);
	/* After a stop, what the FILE read ahead is let go with the rest of
	 * stdin: counted here (its read function reads nothing more now). */
	if (is_stdin && render_run_stopping(run))
		for (int c; (c = getc(in)) != EOF;)
			run->buffered += c == '\n';
	fclose(in);
	if (!is_stdin)
		close(run->in_fd);
	return status;
}

static void render_run_input_over(struct render_run *run)
{
	pthread_mutex_lock(&run->lock);
	run->input_over = 1;
	pthread_cond_broadcast(&run->work);
	pthread_cond_broadcast(&run->ready);
	pthread_mutex_unlock(&run->lock);
}

static void *render_run_read(void *arg)
{
	struct render_run *run = arg;
	int status = 0;

	if (!run->options->input_count)
		status = render_run_read_file(run, "-");
	for (int i = 0; i < run->options->input_count && (!status || status == EXIT_DATA); i++)
		status = exitcode_worst(status, render_run_read_file(run, run->options->inputs[i]));
	run->reader_status = exitcode_worst(run->reader_status, status);
	render_run_end_lookups(run);
	render_run_input_over(run);
	return NULL;
}

/* --- the encoders ------------------------------------------------------------ */

static struct render_slot *render_run_claim(struct render_run *run)
{
	struct render_slot *slot = NULL;

	pthread_mutex_lock(&run->lock);
	while (!slot && !run->stopping) {
		/* Lines passed through wake no encoder: the writer may take them,
		 * and the reader fill their slots again, before the encoders look.
		 * Slots behind the head hold later items now, which are not theirs
		 * to take until the look reaches them. */
		if (run->claim < run->head)
			run->claim = run->head;
		if (run->claim < run->tail) {
			struct render_slot *next = &run->slots[run->claim++ % RENDER_RUN_RING];
			if (next->render && next->state == SLOT_QUEUED) {
				slot = next;
				slot->state = SLOT_CLAIMED;
			}
		} else if (run->input_over)
			break;
		else
			pthread_cond_wait(&run->work, &run->lock);
	}
	pthread_mutex_unlock(&run->lock);
	return slot;
}

static int render_run_render_slot(struct renderer *renderer, struct render_slot *slot)
{
	const char *prefix = slot->pool->url_prefix;
	size_t prefix_length = strlen(prefix);
	char url[4096];

	if (prefix_length + slot->id_length >= sizeof url) {
		snprintf(slot->error, sizeof slot->error, "the URL is too long");
		return -1;
	}
	memcpy(url, prefix, prefix_length);
	memcpy(url + prefix_length, slot->line, slot->id_length);
	if (render_code(renderer, slot->pool, url, prefix_length + slot->id_length, &slot->image)) {
		memcpy(slot->error, renderer->error, sizeof slot->error);
		return -1;
	}
	return 0;
}

static void *render_run_encode(void *arg)
{
	struct render_run *run = arg;
	struct render_slot *slot;
	struct renderer renderer;

	render_init(&renderer);
	while ((slot = render_run_claim(run))) {
		int failed = render_run_render_slot(&renderer, slot);

		pthread_mutex_lock(&run->lock);
		run->encoded++;
		slot->state = failed ? SLOT_FAILED : SLOT_DONE;
		if (run->writer_idle && (uint64_t)(slot - run->slots) == run->head % RENDER_RUN_RING)
			pthread_cond_signal(&run->ready);
		pthread_mutex_unlock(&run->lock);
	}
	render_free(&renderer);
	return NULL;
}

/* --- the writer: the calling thread ------------------------------------------ */

static int render_run_slot_ready(const struct render_run *run, const struct render_slot *slot)
{
	return !slot->render || slot->state == SLOT_DONE || slot->state == SLOT_FAILED ||
		(slot->state == SLOT_QUEUED && run->stopping);
}

/* Waits, at most until `until`, for slots at the head to be ready; returns
 * how many in a row are. *over: the reader has finished and all is taken.
 * With a few ready it naps once to gather more: waking per item would cost
 * two context switches per code. */
static size_t render_run_wait(struct render_run *run, double until, int *over)
{
	size_t count = 0;
	int napped = 0;

	pthread_mutex_lock(&run->lock);
	for (;;) {
		double now;

		while (count < RENDER_RUN_TAKE && run->head + count < run->tail &&
		       render_run_slot_ready(run, &run->slots[(run->head + count) % RENDER_RUN_RING]))
			count++;
		*over = run->input_over && run->head == run->tail;
		now = render_run_clock();
		if (*over || count == RENDER_RUN_TAKE || (count && napped) || now >= until ||
		    (interrupt_requested() && !run->stopping))
			break;
		run->writer_idle = !count;
		render_run_wait_until(&run->ready, &run->lock,
			count && now + RENDER_RUN_NAP < until ? now + RENDER_RUN_NAP : until);
		run->writer_idle = 0;
		napped = count > 0;
	}
	pthread_mutex_unlock(&run->lock);
	return count;
}

/* Records a problem; anything worse than bad data ends the run. */
static void render_run_note(struct render_run *run, struct render_writer *writer, int status)
{
	if (!status)
		return;
	writer->status = exitcode_worst(writer->status, status);
	if (status != EXIT_DATA) {
		writer->fatal = 1;
		render_run_stop(run);
	}
}

static int render_run_take_slot(const struct render_run *run, struct render_writer *writer,
	const struct render_slot *slot)
{
	if (!slot->render) {
		writer->passed++;
		writer->unflushed = 1;
		if (printf("%s\n", slot->line) >= 0)
			return 0;
		return cli_stdout_failed();
	}
	if (slot->state == SLOT_FAILED) {
		log_line_error("%s:%ld: request id '%.*s': %s; line skipped", slot->input, slot->line_number,
			(int)slot->id_length, slot->line, slot->error);
		writer->failed++;
		return EXIT_DATA;
	}
	if (slot->state != SLOT_DONE)
		return 0;   /* dropped by a stop before an encoder took it: stays planned */
	if (!writer->batch.count)
		writer->deadline = render_run_clock() + (double)run->options->batch_ms / 1000;
	return store_add_image(&writer->batch, slot->code_id, slot->line, RENDER_CONTENT_TYPE,
		slot->image.bytes, slot->image.size, 1);
}

/* A batch the DB's lock kept out waits for the next commit, unless this is
 * the last one (`over`). */
static void render_run_commit(struct render_run *run, struct render_writer *writer, int over)
{
	size_t count = writer->batch.count;
	int64_t done_before = writer->batch.stored + writer->batch.skipped;
	int status;

	if (!over && render_run_clock() < writer->commit_after)
		return;
	status = store_flush(&writer->store, &writer->batch, stdout);
	if (status == STORE_BUSY && !over) {
		log_warn("the staging DB is locked by another process: %zu rendered codes wait "
			"for their commit", count);
		writer->deadline = writer->commit_after = render_run_clock() + 1.0;
		return;
	}
	if (status == STORE_BUSY) {
		log_error("the staging DB stayed locked by another process");
		store_batch_free(&writer->batch);
		status = EXIT_TEMPFAIL;
	}
	/* After a commit, only stdout can have failed (said already): the codes
	 * are stored. */
	if (status && writer->batch.stored + writer->batch.skipped == done_before)
		log_error("a batch of %zu rendered codes was not committed; they stay planned for a "
			"rerun", count);
	render_run_note(run, writer, status);
	writer->unflushed = 0;
}

static void render_run_take(struct render_run *run, struct render_writer *writer, size_t count)
{
	for (size_t i = 0; i < count && !writer->fatal; i++) {
		render_run_note(run, writer, render_run_take_slot(run, writer,
			&run->slots[(run->head + i) % RENDER_RUN_RING]));
		if (writer->batch.count >= (size_t)run->options->batch_size)
			render_run_commit(run, writer, 0);
	}
	pthread_mutex_lock(&run->lock);
	run->head += count;
	/* The reader waits only on a full ring; waking it for a quarter of the
	 * ring at a time lets it read in runs rather than a line per wake-up. */
	if (run->tail - run->head <= RENDER_RUN_RING - RENDER_RUN_RING / 4)
		pthread_cond_signal(&run->space);
	pthread_mutex_unlock(&run->lock);
}

/* Commits the batch when it is due or the last one; flushes passed lines
 * whenever the writer is about to wait, so a slow pipe still flows. */
static void render_run_flush(struct render_run *run, struct render_writer *writer, int idle,
	int over)
{
	if (writer->batch.count && (over || render_run_clock() >= writer->deadline))
		render_run_commit(run, writer, over);
	if ((idle || over) && writer->unflushed && !writer->fatal) {
		writer->unflushed = 0;
		if (fflush(stdout) != 0)
			render_run_note(run, writer, cli_stdout_failed());
	}
}

static void render_run_write(struct render_run *run, struct render_writer *writer)
{
	char extra[64];
	int over = 0;

	progress_init(&writer->progress, 0);
	while (!over) {
		double until = render_run_clock() + RENDER_RUN_TICK;
		size_t count;

		if (writer->batch.count && writer->deadline < until)
			until = writer->deadline;
		count = render_run_wait(run, until, &over);
		render_run_take(run, writer, count);
		if (interrupt_requested())
			render_run_stop(run);
		render_run_flush(run, writer, count == 0, over);
		snprintf(extra, sizeof extra, "%lld rendered", (long long)writer->batch.stored);
		progress_update(&writer->progress, writer->batch.stored + writer->passed, extra);
	}
	progress_end(&writer->progress);
}

/* --- setting up and tearing down ------------------------------------------- */

static int render_run_open(struct render_run *run, const struct render_run_options *options,
	const struct config *config)
{
	pthread_condattr_t monotonic;
	int status;

	run->options = options;
	run->config = config;
	pthread_mutex_init(&run->lock, NULL);
	pthread_cond_init(&run->space, NULL);
	pthread_cond_init(&run->work, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&run->ready, &monotonic);
	pthread_condattr_destroy(&monotonic);
	if (!(run->slots = calloc(RENDER_RUN_RING, sizeof *run->slots)))
		return EXIT_INTERNAL;
	if ((status = db_open(&run->lookup_db, config->db_path, config->busy_timeout_ms)))
		return status;
	if ((status = store_open(&run->lookup, &run->lookup_db))) {
		db_close(&run->lookup_db);
		return status;
	}
	return 0;
}

static void render_run_close(struct render_run *run)
{
	if (run->lookup_db.handle) {
		store_close(&run->lookup);
		db_close(&run->lookup_db);
	}
	idset_free(&run->seen);
	for (size_t i = 0; run->slots && i < RENDER_RUN_RING; i++) {
		free(run->slots[i].line);
		render_image_free(&run->slots[i].image);
	}
	free(run->slots);
	pthread_mutex_destroy(&run->lock);
	pthread_cond_destroy(&run->space);
	pthread_cond_destroy(&run->work);
	pthread_cond_destroy(&run->ready);
}

/* Starts the reader and the encoders with SIGINT and SIGTERM blocked, so the
 * signals reach the writer, which winds the run down; returns encoders started. */
static int render_run_start(struct render_run *run, pthread_t *encoders)
{
	sigset_t stop, saved;
	int started = 0;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, &saved);
	run->reader_started = !pthread_create(&run->reader_thread, NULL, render_run_read, run);
	while (run->reader_started && started < run->options->jobs &&
	       !pthread_create(&encoders[started], NULL, render_run_encode, run))
		started++;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return started;
}

/* Runs the threads over an opened run and gathers what they found. */
static int render_run_threads(struct render_run *run, struct render_writer *writer,
	struct render_run_counts *counts)
{
	pthread_t *encoders = calloc((size_t)run->options->jobs, sizeof *encoders);
	int started = encoders ? render_run_start(run, encoders) : 0;
	int status = 0;

	if (started < run->options->jobs) {
		log_error("cannot start %d encoder threads and a reader", run->options->jobs);
		status = EXIT_INTERNAL;
		render_run_stop(run);
	} else
		render_run_write(run, writer);
	for (int i = 0; i < started; i++)
		pthread_join(encoders[i], NULL);
	if (run->reader_started)
		pthread_join(run->reader_thread, NULL);
	free(encoders);
	counts->items_in = run->items_in;
	counts->rejected = run->rejected + writer->failed;
	counts->malformed = run->malformed;
	counts->buffered = run->buffered;
	counts->encoded = run->encoded;
	counts->rendered = writer->batch.stored;
	counts->skipped = writer->batch.skipped;
	counts->passed = writer->passed;
	if (interrupt_requested())
		status = exitcode_worst(status, EXIT_TEMPFAIL);
	return exitcode_worst(status, exitcode_worst(writer->status, run->reader_status));
}

int render_run(const struct render_run_options *options, const struct config *config,
	struct db *db, struct render_run_counts *counts)
{
	struct render_run *run = calloc(1, sizeof *run);
	struct render_writer writer = { 0 };
	int status;

	memset(counts, 0, sizeof *counts);
	if (!run)
		return EXIT_INTERNAL;
	if (!(status = render_run_open(run, options, config)) &&
	    !(status = db_stream_images(db)) && !(status = store_open(&writer.store, db))) {
		status = render_run_threads(run, &writer, counts);
		store_batch_free(&writer.batch);
		store_close(&writer.store);
	}
	render_run_close(run);
	free(run);
	return status;
}
