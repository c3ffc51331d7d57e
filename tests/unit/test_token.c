/* token.c: a token shared through the staging DB; a refused token dropped
 * only while it is still the cached one; the command and file sources. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"
#include "token.h"

struct fixture {
	char dir[64], config_path[96], db_path[96], token_path[96];
};

/* The monotonic clock of these runs: the wall clock less this, moving with
 * it (no step), so each test's times say both. */
#define MONO_OFFSET 1.0e9

static int get(struct token_cache *cache, double now)
{
	return token_get(cache, now, now - MONO_OFFSET);
}

static int write_file(const char *path, const char *text)
{
	FILE *file = fopen(path, "w");
	int failed = !file || fchmod(fileno(file), 0600) || fputs(text, file) == EOF;

	if (file && fclose(file))
		failed = 1;
	return failed ? -1 : 0;
}

/* A config whose token source is `source` ("file" or "command"). */
static int load(struct fixture *fx, struct config *config, const char *token_group)
{
	char text[1024];

	snprintf(text, sizeof text, "database = { path = \"%s\"; };\n"
		"wechat = { appid = \"wxunit\"; api_base = \"http://127.0.0.1:9\"; token = %s; };\n"
		"pools = ( { name = \"p\"; source = \"wechat\"; page = \"pages/i/i\"; } );\n",
		fx->db_path, token_group);
	if (write_file(fx->config_path, text) || chmod(fx->config_path, 0600))
		return -1;
	return config_load(config, fx->config_path);
}

/* One run whose token source is a file. */
struct file_run {
	struct config config;
	struct db db;
	struct token_cache cache;
};

/* Opens a run over the file holding `contents`: 0, or -1 (said). */
static int file_run_open(struct fixture *fx, struct file_run *run, const char *contents)
{
	char group[160];

	snprintf(group, sizeof group, "{ source = \"file\"; file = \"%s\"; }", fx->token_path);
	write_file(fx->token_path, contents);
	if (load(fx, &run->config, group) || db_open(&run->db, fx->db_path, 5000) ||
	    token_open(&run->cache, &run->db, &run->config)) {
		ok(0, "fixture set up");
		return -1;
	}
	return 0;
}

static void file_run_close(struct file_run *run)
{
	token_close(&run->cache);
	db_close(&run->db);
	config_free(&run->config);
}

static void test_parse_text(void)
{
	static const struct { const char *text; int status; const char *token; long long expires; } cases[] = {
		{ "abc123\n", 0, "abc123", 60 },
		{ "abc123 900\n", 0, "abc123", 900 },
		{ "  tok\t30", 0, "tok", 30 },
		{ "{\"access_token\":\"J50N\",\"expires_in\":7200}", 0, "J50N", 7200 },
		{ "{\"errcode\":40013,\"errmsg\":\"invalid appid\"}", -1, NULL, 0 },
		{ "tok soon\n", -1, NULL, 0 },
		{ "tok -5\n", -1, NULL, 0 },
		{ "\n\n", -1, NULL, 0 },
		{ "a&b\n", -1, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256], token[WECHAT_TOKEN_MAX + 1] = "";
		struct wechat_answer answer;
		int64_t expires = 0;
		int status;

		snprintf(text, sizeof text, "%s", cases[i].text);
		status = token_parse_text(text, strlen(text), 60, token, &expires, &answer);
		is_int(status, cases[i].status, "token text %zu: status", i);
		if (!status && cases[i].token) {
			is_str(token, cases[i].token, "token text %zu: token", i);
			is_int(expires, cases[i].expires, "token text %zu: lifetime", i);
		}
	}
	{
		/* A NUL after the token: not taken for its end. */
		char text[] = "abc123\0junk\n", token[WECHAT_TOKEN_MAX + 1] = "";
		struct wechat_answer answer;
		int64_t expires = 0;

		is_int(token_parse_text(text, sizeof text - 1, 60, token, &expires, &answer), -1,
			"token text with a NUL byte: refused");
		ok(strstr(answer.message, "NUL") != NULL, "... saying so: %s", answer.message);
	}
}

/* Two runs share the file source's token through the DB; a refusal of the
 * cached token makes the next get read the source again, a refusal of an
 * older token changes nothing. */
static void test_shared_file(struct fixture *fx)
{
	struct config config;
	struct token_cache a, b;
	struct db db_a, db_b;
	char group[160];
	double now = 1.8e9;
	uint64_t stale;

	snprintf(group, sizeof group, "{ source = \"file\"; file = \"%s\"; }", fx->token_path);
	write_file(fx->token_path, "first-token 600\n");
	if (load(fx, &config, group) || db_open(&db_a, fx->db_path, 5000) ||
	    db_open(&db_b, fx->db_path, 5000)) {
		ok(0, "fixture set up");
		return;
	}
	is_int(token_open(&a, &db_a, &config), 0, "run a: token cache open");
	is_int(token_open(&b, &db_b, &config), 0, "run b: token cache open");
	is_int(get(&a, now), 0, "run a gets a token");
	is_str(a.token, "first-token", "read from the file");
	write_file(fx->token_path, "second-token 600\n");
	is_int(get(&b, now + 1), 0, "run b gets a token");
	is_str(b.token, "first-token", "run b shares run a's token through the DB");
	is_int(a.refreshes + b.refreshes, 1, "one refresh between them");
	stale = a.generation;
	is_int(token_refused(&b, "first-token", b.generation), 0, "WeChat refused it in run b");
	is_int(get(&b, now + 2), 0, "run b gets a token again");
	is_str(b.token, "second-token", "the source was read again");
	is_int(token_refused(&a, "first-token", stale), 0, "run a's calls with the old token are refused too");
	is_int(get(&a, now + 3), 0, "run a gets a token");
	is_str(a.token, "second-token", "run a takes run b's new token");
	is_int(a.refreshes + b.refreshes, 2, "still only one refresh per refused token");
	is_int(get(&a, now + 500), 0, "ahead of expiry");
	is_int(a.refreshes, 2, "run a refreshed ahead of expiry");
	token_close(&a);
	token_close(&b);
	db_close(&db_a);
	db_close(&db_b);
	config_free(&config);
}

/* The source hands back the token WeChat refused: it is taken again at once,
 * then after a wait growing while no call with it succeeds; a refusal of a
 * call sent before it was taken back says nothing of it. */
static void test_refused_again(struct fixture *fx)
{
	struct file_run run;
	double now = 2.1e9;
	uint64_t first;

	if (file_run_open(fx, &run, "same-token 600\n"))
		return;
	is_int(get(&run.cache, now), 0, "a token");
	first = run.cache.generation;
	is_int(token_refused(&run.cache, "same-token", first), 0, "refused");
	is_int(get(&run.cache, now + 1), 0, "the same token handed back: taken once more");
	ok(run.cache.generation != first, "as a new generation");
	is_int(token_refused(&run.cache, "same-token", first), 0, "a call sent before, refused late");
	is_str(run.cache.token, "same-token", "changes nothing");
	token_worked(&run.cache, run.cache.generation);
	is_int(token_refused(&run.cache, "same-token", run.cache.generation), 0, "refused after a success");
	is_int(get(&run.cache, now + 2), 0, "taken again at once");
	is_int(token_refused(&run.cache, "same-token", run.cache.generation), 0, "refused with no success between");
	is_int(get(&run.cache, now + 2.5), 1, "not taken at once this time");
	ok(strstr(run.cache.failure.message, "refused token") != NULL, "why: %s", run.cache.failure.message);
	is_int(get(&run.cache, now + 10), 0, "taken again a while later");
	file_run_close(&run);
}

/* A file is read again every minute even when it gives a long expiry: the
 * agent writing it may rotate the token long before. */
static void test_file_rotated(struct fixture *fx)
{
	struct file_run run;
	double now = 2.2e9;

	if (file_run_open(fx, &run, "before-rotation 7200\n"))
		return;
	is_int(get(&run.cache, now), 0, "a token valid 2 hours");
	write_file(fx->token_path, "after-rotation 7200\n");
	is_int(get(&run.cache, now + 30), 0, "half a minute on");
	is_str(run.cache.token, "before-rotation", "the file not read again yet");
	is_int(get(&run.cache, now + 61), 0, "a minute on");
	is_str(run.cache.token, "after-rotation", "the file read again: the rotated token");
	file_run_close(&run);
}

static void test_command(struct fixture *fx)
{
	struct config config;
	struct token_cache cache;
	struct db db;

	/* $(cat) is empty: the command's stdin is /dev/null, not our items. */
	if (load(fx, &config, "{ source = \"command\"; command = \"printf 'cmd-token%s 120' \\\"$(cat)\\\"\"; }") ||
	    db_open(&db, fx->db_path, 5000)) {
		ok(0, "fixture set up");
		return;
	}
	is_int(token_open(&cache, &db, &config), 0, "command source open");
	is_int(get(&cache, 1.9e9), 0, "the command gives a token");
	is_str(cache.token, "cmd-token", "its stdout, stdin empty");
	token_close(&cache);
	config_free(&config);
	if (load(fx, &config, "{ source = \"command\"; command = \"echo oops >&2; exit 3\"; }")) {
		ok(0, "failing command config");
		db_close(&db);
		return;
	}
	token_open(&cache, &db, &config);
	is_int(get(&cache, 2.0e9), 1, "a failing command: try again later, not fatal");
	ok(strstr(cache.failure.message, "failed") != NULL, "why: %s", cache.failure.message);
	ok(cache.retry_at > 2.0e9 - MONO_OFFSET, "with a backoff");
	{
		double now = 2.0e9;
		int status = 1, calls = 1;

		while (status == 1 && calls < 50) {
			double mono = cache.retry_at;   /* (not now less the offset: rounded, it may fall short) */

			now = mono + MONO_OFFSET;
			status = token_get(&cache, now, mono);
			calls++;
		}
		is_int(status, TOKEN_GAVE_UP, "refreshes failing in a row end in giving up");
		is_int(calls, TOKEN_FAILURES_MAX, "after %d of them", TOKEN_FAILURES_MAX);
		ok(now - 2.0e9 > 120 && now - 2.0e9 < 600, "a few minutes on (%.0f s)", now - 2.0e9);
		ok(strstr(cache.failure.message, "refreshes in a row failed (the last: token command") != NULL,
			"why: %s", cache.failure.message);
	}
	token_close(&cache);
	config_free(&config);
	db_close(&db);
}

int main(void)
{
	struct fixture fx;

	log_init("test_token", -1);
	snprintf(fx.dir, sizeof fx.dir, "/tmp/qrpool-test-token.XXXXXX");
	if (!mkdtemp(fx.dir))
		return 1;
	snprintf(fx.config_path, sizeof fx.config_path, "%s/qrpool.cfg", fx.dir);
	snprintf(fx.db_path, sizeof fx.db_path, "%s/staging.db", fx.dir);
	snprintf(fx.token_path, sizeof fx.token_path, "%s/token", fx.dir);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_parse_text();
	test_shared_file(&fx);
	test_refused_again(&fx);
	test_file_rotated(&fx);
	test_command(&fx);
	curl_global_cleanup();
	{
		char command[128];
		snprintf(command, sizeof command, "rm -rf '%s'", fx.dir);
		if (system(command) != 0)
			ok(0, "temp dir removed");
	}
	return tap_done();
}
