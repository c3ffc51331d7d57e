/* The report's formats: a table for people, JSON for scripts, a Prometheus
 * textfile, and a monitoring-plugin check. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"
#include "parse.h"
#include "report.h"

static void report_format_hours(double hours, int lower_bound, char *buf, size_t size)
{
	if (hours < 0)
		snprintf(buf, size, "-");
	else if (isinf(hours))
		snprintf(buf, size, "inf");
	else
		snprintf(buf, size, "%s%.1f", lower_bound ? ">" : "", hours);
}

static void report_format_time(double t, char *buf, size_t size)
{
	if (t <= 0)
		snprintf(buf, size, "-");
	else
		parse_format_iso((time_t)t, buf, size);
}

static void report_table_pools(const struct report *report, FILE *out)
{
	fprintf(out, "%-18s %-6s %9s %6s %9s %9s %8s %8s %9s %8s %8s\n", "pool", "source", "depth",
		"lost", "used/h", "used/h24", "cover_h", "fcast_h", "planned", "fetched", "failed");
	for (size_t i = 0; i < report->pool_count; i++) {
		const struct report_pool *p = &report->pools[i];
		char depth[24] = "?", lost[24] = "?", hour[24] = "-", day[24] = "-", cover[24], fcast[24];

		if (p->measured) {
			snprintf(depth, sizeof depth, "%lld", (long long)p->depth);
			snprintf(lost, sizeof lost, "%lld", (long long)p->lost);
		}
		if (p->hour.per_hour >= 0)
			snprintf(hour, sizeof hour, "%.0f", p->hour.per_hour);
		if (p->day.per_hour >= 0)
			snprintf(day, sizeof day, "%.0f", p->day.per_hour);
		report_format_hours(p->cover_hours, 0, cover, sizeof cover);
		report_format_hours(p->forecast_cover_hours, p->forecast_beyond, fcast, sizeof fcast);
		fprintf(out, "%-18s %-6s %9s %6s %9s %9s %8s %8s %9lld %8lld %8lld\n", p->pool->name,
			config_source_name(p->pool->source), depth, lost, hour, day, cover, fcast,
			(long long)p->planned, (long long)p->fetched, (long long)p->failed);
	}
}

static void report_table_failures(const struct report *report, FILE *out)
{
	int any = 0;

	for (size_t i = 0; i < report->pool_count; i++) {
		const struct report_pool *p = &report->pools[i];
		for (int f = 0; f < p->failure_kinds; f++) {
			if (!any++)
				fprintf(out, "\nfailed in the last 24 hours:\n");
			fprintf(out, "  %-18s errcode %-6d %lld\n", p->pool->name, p->failures[f].errcode,
				(long long)p->failures[f].count);
		}
	}
}

static void report_table_stages(const struct report *report, FILE *out)
{
	fprintf(out, "\n%-8s %-25s %9s %9s %9s %s\n", "stage", "last success", "seconds", "in", "out",
		"last exit");
	for (int s = 0; s < report->stage_count; s++) {
		const struct report_stage *st = &report->stages[s];
		char when[40], last_exit[40];

		report_format_time(st->has_success ? st->success_started : 0, when, sizeof when);
		if (st->last_started <= 0)
			snprintf(last_exit, sizeof last_exit, "-");
		else if (st->last_exit < 0)   /* no end recorded: running, or gone (killed, a crash) */
			snprintf(last_exit, sizeof last_exit, "%s (pid %lld)", st->last_running ? "running" :
				"gone", (long long)st->last_pid);
		else
			snprintf(last_exit, sizeof last_exit, "%d", st->last_exit);
		if (st->has_success)
			fprintf(out, "%-8s %-25s %9.1f %9lld %9lld %s\n", st->name, when,
				st->success_ended - st->success_started, (long long)st->success_in,
				(long long)st->success_out, last_exit);
		else
			fprintf(out, "%-8s %-25s %9s %9s %9s %s\n", st->name, when, "-", "-", "-", last_exit);
	}
}

int report_print_table(const struct report *report, const struct config *config, FILE *out)
{
	char from[40], to[40];

	report_table_pools(report, out);
	if (!report->kafka_ok)
		fprintf(out, "(depth unknown: Kafka: %s)\n", report->kafka_error);
	if (report->snapshot_status)
		fprintf(out, "(the staging DB cannot be written: %s; this depth snapshot is not "
			"recorded)\n", report->snapshot_error);
	report_table_failures(report, out);
	if (report->quota_known) {
		report_format_time(report->night_from, from, sizeof from);
		report_format_time(report->night_to, to, sizeof to);
		fprintf(out, "\nWeChat quota taken by qrpool for %s: %lld calls in the last hour, %lld in "
			"the night window %s to %s (calls charged: a little more than the calls made)\n",
			config->wechat.appid, (long long)report->quota_last_hour,
			(long long)report->quota_last_night, from, to);
	}
	report_table_stages(report, out);
	return ferror(out) ? EXIT_IO : 0;
}

/* --- JSON ---------------------------------------------------------------- */

static json_t *report_json_number(double value)
{
	return value < 0 || !isfinite(value) ? json_null() : json_real(value);
}

static json_t *report_json_time(double t)
{
	char text[40];

	if (t <= 0)
		return json_null();
	parse_format_iso((time_t)t, text, sizeof text);
	return json_string(text);
}

static json_t *report_json_pool(const struct report_pool *p)
{
	json_t *errcodes = json_object();

	for (int f = 0; f < p->failure_kinds; f++) {
		char key[16];
		snprintf(key, sizeof key, "%d", p->failures[f].errcode);
		json_object_set_new(errcodes, key, json_integer(p->failures[f].count));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:{s:o, s:o}, s:{s:o, s:b, s:o, s:b}, "
		"s:{s:I, s:I, s:I}, s:{s:I, s:o}}",
		"name", p->pool->name, "source", config_source_name(p->pool->source),
		"topic", p->pool->topic, "group", p->pool->group,
		"depth", p->measured ? json_integer(p->depth) : json_null(),
		"lost", p->measured ? json_integer(p->lost) : json_null(),
		"consumed_per_hour", "last_hour", report_json_number(p->hour.per_hour),
		"last_day", report_json_number(p->day.per_hour),
		"cover_hours", "at_consumption", report_json_number(p->cover_hours),
		"no_consumption", p->measured && p->hour.per_hour == 0,
		"at_forecast", report_json_number(p->forecast_cover_hours),
		"forecast_is_lower_bound", p->forecast_beyond,
		"backlog", "planned", (json_int_t)p->planned, "fetched", (json_int_t)p->fetched,
		"failed", (json_int_t)p->failed,
		"failed_24h", "total", (json_int_t)p->failed_24h, "by_errcode", errcodes);
}

static json_t *report_json_stage(const struct report_stage *st)
{
	json_t *success = json_null();
	const char *last_run = st->last_started <= 0 ? NULL : st->last_exit >= 0 ? "ended" :
		st->last_running ? "running" : "gone";

	if (st->has_success)
		success = json_pack("{s:o, s:o, s:f, s:I, s:I}", "started", report_json_time(st->success_started),
			"ended", report_json_time(st->success_ended),
			"duration_seconds", st->success_ended - st->success_started,
			"items_in", (json_int_t)st->success_in, "items_out", (json_int_t)st->success_out);
	return json_pack("{s:s, s:o, s:o, s:o, s:s?, s:o}", "stage", st->name, "last_success", success,
		"last_started", report_json_time(st->last_started),
		"last_exit_status", st->last_started > 0 && st->last_exit >= 0 ?
			json_integer(st->last_exit) : json_null(),
		"last_run", last_run,
		"last_pid", st->last_started > 0 ? json_integer(st->last_pid) : json_null());
}

int report_print_json(const struct report *report, const struct config *config, FILE *out)
{
	json_t *root, *pools = json_array(), *stages = json_array(), *quota = json_null();
	int status;

	for (size_t i = 0; i < report->pool_count; i++)
		json_array_append_new(pools, report_json_pool(&report->pools[i]));
	for (int s = 0; s < report->stage_count; s++)
		json_array_append_new(stages, report_json_stage(&report->stages[s]));
	if (report->quota_known)
		quota = json_pack("{s:s, s:I, s:I, s:{s:o, s:o}}", "appid", config->wechat.appid,
			"last_hour", (json_int_t)report->quota_last_hour,
			"last_night", (json_int_t)report->quota_last_night, "night_window",
			"from", report_json_time(report->night_from), "to", report_json_time(report->night_to));
	root = json_pack("{s:i, s:o, s:{s:b, s:o}, s:{s:o}, s:o, s:o, s:o}", "schema", 1,
		"generated_at", report_json_time(report->now),
		"kafka", "ok", report->kafka_ok,
		"error", report->kafka_ok ? json_null() : json_string(report->kafka_error),
		"staging_db", "snapshot_error", report->snapshot_status ?
			json_string(report->snapshot_error) : json_null(),
		"pools", pools, "quota", quota, "stages", stages);
	if (!root)
		return EXIT_INTERNAL;
	status = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ? EXIT_IO : 0;
	fputc('\n', out);
	json_decref(root);
	return status || ferror(out) ? EXIT_IO : 0;
}

/* --- Prometheus textfile ------------------------------------------------- */

static void report_prom_header(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void report_prom_value(FILE *out, double value)
{
	if (isinf(value))
		fputs(" +Inf\n", out);
	else
		fprintf(out, " %.17g\n", value);
}

/* A gauge per pool whose depth Kafka gave: the depth, or the codes lost. */
static void report_prom_measured(const struct report *report, FILE *out, const char *name,
	const char *help, int lost)
{
	report_prom_header(out, name, "gauge", help);
	for (size_t i = 0; i < report->pool_count; i++)
		if (report->pools[i].measured)
			fprintf(out, "%s{pool=\"%s\"} %lld\n", name, report->pools[i].pool->name,
				(long long)(lost ? report->pools[i].lost : report->pools[i].depth));
}

static void report_prom_pools(const struct report *report, FILE *out)
{
	static const char *const states[] = { "planned", "fetched", "failed" };

	report_prom_measured(report, out, "qrpool_pool_depth_codes",
		"Codes in the pool's topic not yet consumed by the online group.", 0);
	report_prom_measured(report, out, "qrpool_pool_lost_codes",
		"Codes retention dropped before the online group consumed them.", 1);
	report_prom_header(out, "qrpool_pool_consumed_codes_per_second", "gauge",
		"Codes the online group consumed per second, over the window.");
	for (size_t i = 0; i < report->pool_count; i++) {
		const struct report_pool *p = &report->pools[i];
		if (p->hour.per_hour >= 0)
			fprintf(out, "qrpool_pool_consumed_codes_per_second{pool=\"%s\",window=\"1h\"} %.6g\n",
				p->pool->name, p->hour.per_hour / 3600);
		if (p->day.per_hour >= 0)
			fprintf(out, "qrpool_pool_consumed_codes_per_second{pool=\"%s\",window=\"24h\"} %.6g\n",
				p->pool->name, p->day.per_hour / 3600);
	}
	report_prom_header(out, "qrpool_pool_cover_seconds", "gauge",
		"How long the pool's depth lasts at the last hour's consumption or at the forecast.");
	for (size_t i = 0; i < report->pool_count; i++) {
		const struct report_pool *p = &report->pools[i];
		if (p->cover_hours >= 0) {
			fprintf(out, "qrpool_pool_cover_seconds{pool=\"%s\",basis=\"consumption\"}", p->pool->name);
			report_prom_value(out, p->cover_hours * 3600);
		}
		/* Not a lower bound (the stock outlasts the forecast): an alert rule
		 * would take it for the cover. */
		if (p->forecast_cover_hours >= 0 && !p->forecast_beyond) {
			fprintf(out, "qrpool_pool_cover_seconds{pool=\"%s\",basis=\"forecast\"}", p->pool->name);
			report_prom_value(out, p->forecast_cover_hours * 3600);
		}
	}
	report_prom_header(out, "qrpool_pool_backlog_codes", "gauge", "Staged codes by state.");
	for (size_t i = 0; i < report->pool_count; i++) {
		const struct report_pool *p = &report->pools[i];
		int64_t counts[] = { p->planned, p->fetched, p->failed };
		for (int s = 0; s < 3; s++)
			fprintf(out, "qrpool_pool_backlog_codes{pool=\"%s\",state=\"%s\"} %lld\n", p->pool->name,
				states[s], (long long)counts[s]);
	}
	report_prom_header(out, "qrpool_pool_failed_last_day_codes", "gauge",
		"Codes WeChat refused for good in the last 24 hours, by errcode.");
	for (size_t i = 0; i < report->pool_count; i++)
		for (int f = 0; f < report->pools[i].failure_kinds; f++)
			fprintf(out, "qrpool_pool_failed_last_day_codes{pool=\"%s\",errcode=\"%d\"} %lld\n",
				report->pools[i].pool->name, report->pools[i].failures[f].errcode,
				(long long)report->pools[i].failures[f].count);
}

static const char *const report_watched_stages[] = { "plan", "fetch", "publish", "prune" };

static int report_stage_succeeded(const struct report *report, const char *name)
{
	for (int s = 0; s < report->stage_count; s++)
		if (!strcmp(report->stages[s].name, name))
			return report->stages[s].has_success;
	return 0;
}

static void report_prom_stages(const struct report *report, const struct config *config,
	double last_success, FILE *out)
{
	report_prom_header(out, "qrpool_kafka_up", "gauge", "1 when every pool's depth was read from Kafka.");
	fprintf(out, "qrpool_kafka_up %d\n", report->kafka_ok);
	if (report->quota_known) {
		report_prom_header(out, "qrpool_wechat_calls", "gauge",
			"getwxacodeunlimit calls qrpool charged to the appid's quota, by window (a little "
			"more than the calls made: a call near a minute's end is charged to both).");
		fprintf(out, "qrpool_wechat_calls{appid=\"%s\",window=\"last_hour\"} %lld\n",
			config->wechat.appid, (long long)report->quota_last_hour);
		fprintf(out, "qrpool_wechat_calls{appid=\"%s\",window=\"last_night\"} %lld\n",
			config->wechat.appid, (long long)report->quota_last_night);
	}
	report_prom_header(out, "qrpool_stage_last_success_timestamp_seconds", "gauge",
		"When the stage's last successful run ended; 0 for plan, fetch, publish and prune "
		"until they first end well (an alert on its age then fires).");
	for (int s = 0; s < report->stage_count; s++)
		if (report->stages[s].has_success)
			fprintf(out, "qrpool_stage_last_success_timestamp_seconds{stage=\"%s\"} %.3f\n",
				report->stages[s].name, report->stages[s].success_ended);
	/* The fills' stages and prune: with no sample, a fill that never once
	 * worked (a refused secret from the first night), or a daily prune,
	 * would alert no one. */
	for (size_t w = 0; w < sizeof report_watched_stages / sizeof *report_watched_stages; w++)
		if (!report_stage_succeeded(report, report_watched_stages[w]))
			fprintf(out, "qrpool_stage_last_success_timestamp_seconds{stage=\"%s\"} 0\n",
				report_watched_stages[w]);
	report_prom_header(out, "qrpool_stage_last_success_duration_seconds", "gauge",
		"How long the stage's last successful run took.");
	for (int s = 0; s < report->stage_count; s++)
		if (report->stages[s].has_success)
			fprintf(out, "qrpool_stage_last_success_duration_seconds{stage=\"%s\"} %.3f\n",
				report->stages[s].name,
				report->stages[s].success_ended - report->stages[s].success_started);
	report_prom_header(out, "qrpool_stage_last_success_items", "gauge",
		"Items the stage's last successful run read and wrote.");
	for (int s = 0; s < report->stage_count; s++)
		if (report->stages[s].has_success)
			fprintf(out, "qrpool_stage_last_success_items{stage=\"%s\",direction=\"in\"} %lld\n"
				"qrpool_stage_last_success_items{stage=\"%s\",direction=\"out\"} %lld\n",
				report->stages[s].name, (long long)report->stages[s].success_in,
				report->stages[s].name, (long long)report->stages[s].success_out);
	/* 0 when none is known (no report has succeeded yet: Kafka down since
	 * the install, no kafka.brokers): an alert on its age then fires, where
	 * no sample at all would leave it silent. */
	report_prom_header(out, "qrpool_report_last_success_timestamp_seconds", "gauge",
		"When the last report that exited 0 was made (Kafka read, its snapshot recorded); 0: none.");
	fprintf(out, "qrpool_report_last_success_timestamp_seconds %.3f\n", last_success);
}

/* When the report last succeeded: now, or for a report that fails (Kafka
 * unreadable, the DB not written) the time the textfile it replaces gave, so
 * that an alert on the age of it sees a report failing run after run. 0: none
 * known. */
static double report_prom_last_success(const struct report *report, const char *path)
{
	static const char name[] = "qrpool_report_last_success_timestamp_seconds ";
	char line[256];
	double when = 0;
	FILE *old;

	if (report->kafka_ok && !report->snapshot_status)
		return report->now;
	if (!(old = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof line, old))
		if (!strncmp(line, name, sizeof name - 1))
			when = strtod(line + sizeof name - 1, NULL);
	fclose(old);
	return isfinite(when) && when > 0 ? when : 0;
}

int report_write_prom(const struct report *report, const struct config *config, const char *path)
{
	char *temp = NULL;
	struct stat st;
	sigset_t stops, saved;
	FILE *out;
	int fd, failed, status = 0;
	double last_success;

	/* The textfile is replaced by a rename: over anything but a file (a
	 * device such as /dev/stdout or /dev/full, a directory) that would
	 * replace the thing itself, as root. */
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		log_error("%s: not a regular file: --prom writes a file, replaced whole each time (for "
			"the report on stdout, --json or no option)", path);
		return EXIT_IO;
	}
	/* In the same directory, so the rename is atomic and the collector never
	 * reads a half-written file. */
	if (asprintf(&temp, "%s.XXXXXX", path) < 0)
		return EXIT_INTERNAL;
	last_success = report_prom_last_success(report, path);
	/* A stop meanwhile (SIGTERM, Ctrl-C) waits for the rename or the
	 * unlink: it would leave the temporary file in the collector's
	 * directory, one more at each stop. */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stops, &saved);
	fd = mkstemp(temp);
	if (fd < 0 || !(out = fdopen(fd, "w"))) {
		log_error("%s: cannot create a temporary file: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(temp);
		}
		status = EXIT_IO;
	} else {
		report_prom_pools(report, out);
		report_prom_stages(report, config, last_success, out);
		failed = fflush(out) != 0 || ferror(out) || fsync(fd) != 0 || fchmod(fd, 0644) != 0;
		failed |= fclose(out) != 0;
		if (failed || rename(temp, path) != 0) {
			log_error("%s: cannot write the textfile: %s", path, strerror(errno));
			unlink(temp);
			status = EXIT_IO;
		}
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	free(temp);
	return status;
}

/* --- monitoring plugin ---------------------------------------------------- */

/* The shorter of the two covers that are known; < 0 when neither is. A
 * forecast cover the stock outlasts (the forecast ends first: evening, with a
 * day's forecast) is only a lower bound: no shortage, so it counts as none. */
static double report_worst_cover(const struct report_pool *p)
{
	double a = p->cover_hours, b = p->forecast_beyond ? INFINITY : p->forecast_cover_hours;

	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/* The check's parts, each grown as it is written: a report of many pools is
 * said whole (fixed buffers cut the tail off past ~40 pools). The pools in
 * trouble are said CRITICAL ones first (text[2]), then the WARNING ones
 * (text[1]): the line's start says why it pages, however long it is. */
struct report_check_text {
	FILE *text[3], *unknown, *perf;   /* (text[0], OK, is not said) */
	char *text_data[3], *unknown_data, *perf_data;
	size_t text_size[3], unknown_size, perf_size;
};

static int report_check_open(struct report_check_text *c)
{
	memset(c, 0, sizeof *c);
	for (int i = 1; i < 3; i++)
		c->text[i] = open_memstream(&c->text_data[i], &c->text_size[i]);
	c->unknown = open_memstream(&c->unknown_data, &c->unknown_size);
	c->perf = open_memstream(&c->perf_data, &c->perf_size);
	return c->text[1] && c->text[2] && c->unknown && c->perf ? 0 : -1;
}

/* Ends the writing: 0, or -1 when memory ran out (the parts are then unusable). */
static int report_check_close(struct report_check_text *c)
{
	FILE **files[] = { &c->text[1], &c->text[2], &c->unknown, &c->perf };
	char **data[] = { &c->text_data[1], &c->text_data[2], &c->unknown_data, &c->perf_data };
	int failed = 0;

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (*files[i])
			failed |= ferror(*files[i]) | fclose(*files[i]);
		*files[i] = NULL;
		failed |= !*data[i];
	}
	return failed ? -1 : 0;
}

static void report_check_free(struct report_check_text *c)
{
	free(c->text_data[1]);
	free(c->text_data[2]);
	free(c->unknown_data);
	free(c->perf_data);
}

/* A threshold as perfdata takes it: fixed point, no exponent (%g gives
 * 1e+06, which many parsers do not read), no trailing zeros. */
static void report_perf_number(FILE *out, double value)
{
	char text[64];
	size_t length = (size_t)snprintf(text, sizeof text, "%.6f", value);

	while (length > 1 && text[length - 1] == '0')
		text[--length] = '\0';
	if (length > 1 && text[length - 1] == '.')
		text[--length] = '\0';
	fputs(text, out);
}

/* Adds one pool to the parts; returns its state (0 OK, 1 WARNING, 2 CRITICAL). */
static int report_check_pool(struct report_check_text *c, const struct report_pool *p,
	double warn_hours, double crit_hours)
{
	double cover = report_worst_cover(p);
	/* An empty pool warns whatever its cover says: its cover is 0 (so
	 * CRITICAL) when codes were taken over the day, the hours until codes
	 * are next wanted by the forecast, infinite when nobody asks for its
	 * codes. Cover unknown (no consumption history, no plan yet) is said,
	 * not passed off as enough. */
	int empty = p->measured && p->depth == 0;
	int by_cover = cover < 0 ? 0 : cover < crit_hours ? 2 : cover < warn_hours ? 1 : 0;
	/* The forecast ends within warn_hours, and no consumption says how long
	 * the stock lasts (the night's plan did not run?): at least a WARNING. */
	int forecast_ends = !by_cover && p->forecast_beyond && p->forecast_cover_hours < warn_hours &&
		!(p->cover_hours >= 0 && isfinite(p->cover_hours));
	FILE *text = c->text[by_cover == 2 ? 2 : 1];
	const char *comma = ftell(text) ? ", " : "";

	if (by_cover && empty)
		fprintf(text, "%s%s empty", comma, p->pool->name);
	else if (by_cover)
		/* (rounded down: a 3.298 that fired at 3.3 is not said as 3.3) */
		fprintf(text, "%s%s %.1fh of cover", comma, p->pool->name, floor(cover * 10) / 10);
	else if (empty)
		fprintf(text, "%s%s empty%s", comma, p->pool->name, cover < 0 ? ", cover unknown" : "");
	else if (forecast_ends && p->forecast_cover_hours <= 0)
		fprintf(text, "%s%s: the last plan's forecast has ended, and no consumption to tell "
			"the cover", comma, p->pool->name);
	else if (forecast_ends)
		fprintf(text, "%s%s: the last plan's forecast ends in %.1fh, and no consumption "
			"to tell the cover", comma, p->pool->name, p->forecast_cover_hours);
	else if (cover < 0 && p->measured)
		fprintf(c->unknown, "%s%s", ftell(c->unknown) ? ", " : "", p->pool->name);
	if (p->measured)
		fprintf(c->perf, " '%s_depth'=%lld;;;0 '%s_lost'=%lld;;;0", p->pool->name,
			(long long)p->depth, p->pool->name, (long long)p->lost);
	if (cover >= 0 && isfinite(cover)) {
		fprintf(c->perf, " '%s_cover_hours'=%.2f;", p->pool->name, floor(cover * 100) / 100);
		report_perf_number(c->perf, warn_hours);
		fputs(":;", c->perf);
		report_perf_number(c->perf, crit_hours);
		fputs(":;0", c->perf);
	}
	return by_cover ? by_cover : empty || forecast_ends;
}

/* A snapshot the DB could not take, said in the check's line. */
static void report_check_snapshot(const struct report *report, int after, FILE *out)
{
	if (report->snapshot_status)
		fprintf(out, "%sthe staging DB cannot be written (%s): depth snapshot not recorded",
			after ? "; " : "", report->snapshot_error);
}

/* The line's end: ` |` and the perfdata, when there is any (none: no pool's
 * depth was read), then the newline. */
static void report_check_end(struct report_check_text *c, FILE *out)
{
	fprintf(out, "%s%s\n", *c->perf_data ? " |" : "", c->perf_data);
	report_check_free(c);
}

int report_check(const struct report *report, double warn_hours, double crit_hours, FILE *out)
{
	static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
	struct report_check_text c;
	int state = 0;

	if (report_check_open(&c) == 0)
		for (size_t i = 0; i < report->pool_count; i++) {
			int pool_state = report_check_pool(&c, &report->pools[i], warn_hours, crit_hours);
			state = pool_state > state ? pool_state : state;
		}
	if (report_check_close(&c)) {
		report_check_free(&c);
		fprintf(out, "QRPOOL UNKNOWN - out of memory writing the check\n");
		return 3;
	}
	/* A DB that cannot take the snapshot (a full disk) is at least a
	 * WARNING: the night's fill needs it written too. */
	if (report->snapshot_status && state < 1)
		state = 1;
	/* Depth unreadable somewhere, or no run in the staging DB (a
	 * database.path naming another file: Kafka's stock alone would pass a
	 * night with nothing fetched): UNKNOWN, unless a pool measured is CRITICAL.
	 * UNKNOWN ranks below CRITICAL (as Nagios orders states), and one
	 * leaderless topic must not silence a pool running dry. A WARNING is
	 * said in the UNKNOWN's text. */
	if ((!report->kafka_ok || report->db_unused) && state < 2) {
		fputs("QRPOOL UNKNOWN - ", out);
		if (report->db_unused)
			fprintf(out, "no run recorded in the staging DB %s: database.path names the "
				"wrong file, or no night has run yet%s", report->db_unused,
				report->kafka_ok ? "" : "; ");
		if (!report->kafka_ok)
			fprintf(out, "pool depth unreadable: %s", report->kafka_error);
		if (state && *c.text_data[1])
			fprintf(out, "; WARNING: %s", c.text_data[1]);
		report_check_snapshot(report, 1, out);
		report_check_end(&c, out);
		return 3;
	}
	fprintf(out, "QRPOOL %s - ", names[state]);
	if (state) {
		fprintf(out, "%s%s%s", c.text_data[2], *c.text_data[2] && *c.text_data[1] ? ", " : "",
			c.text_data[1]);
		report_check_snapshot(report, *c.text_data[2] || *c.text_data[1], out);
	} else if (!*c.unknown_data)
		fprintf(out, report->pool_count == 1 ? "%zu pool, above %gh of cover" :
			"%zu pools, every one above %gh of cover", report->pool_count, warn_hours);
	else
		fprintf(out, "no pool below %gh of cover", warn_hours);
	if (!report->kafka_ok)
		fprintf(out, "; depth unreadable: %s", report->kafka_error);
	if (report->db_unused)
		fprintf(out, "; no run recorded in the staging DB %s", report->db_unused);
	if (*c.unknown_data)
		fprintf(out, "; cover unknown (no consumption history or plan yet): %s", c.unknown_data);
	report_check_end(&c, out);
	return state;
}
