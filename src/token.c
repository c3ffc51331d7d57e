#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcode.h"
#include "interrupt.h"
#include "log.h"

extern char **environ;

/* A token command or file that gives no expiry is asked again after this. */
#define TOKEN_COMMAND_LIFETIME_S 300
#define TOKEN_FILE_LIFETIME_S 60
#define TOKEN_OUTPUT_MAX 4096

/* What a row of wechat_tokens holds. */
struct token_row {
	char token[WECHAT_TOKEN_MAX + 1];
	double expires_at, refresh_after, lease_until;
};

static void token_fail(struct token_cache *cache, enum wechat_action action, const char *fmt,
	const char *detail)
{
	memset(&cache->failure, 0, sizeof cache->failure);
	cache->secret_unreadable = 0;
	cache->failure.action = action;
	snprintf(cache->failure.message, sizeof cache->failure.message, fmt, detail);
}

/* The secret was readable at the start (token_open checks): what went wrong
 * is logged by config_read_secret, and is the config's, not WeChat's. */
static void token_fail_secret(struct token_cache *cache)
{
	token_fail(cache, WECHAT_POOL_STOP, "%s", "the app secret cannot be read (see above)");
	cache->secret_unreadable = 1;
}

int token_open(struct token_cache *cache, struct db *db, const struct config *config)
{
	int status;

	memset(cache, 0, sizeof *cache);
	cache->db = db;
	cache->config = config;
	cache->source = config_token_source_name(config->wechat.token_source);
	cache->backoff = 1;
	if (config->wechat.token_source == TOKEN_CLASSIC)
		log_warn("token source 'classic' (cgi-bin/token): each refresh invalidates the token of "
			"every other holder of this appid; prefer 'stable' or a central 'command'");
	if (config->wechat.token_source == TOKEN_STABLE || config->wechat.token_source == TOKEN_CLASSIC) {
		char secret[512];
		/* A missing secret is a config error now, not a refusal later. */
		status = config_read_secret(config, secret, sizeof secret);
		explicit_bzero(secret, sizeof secret);
		if (status)
			return status;
	}
	if ((status = http_check_ca(config)))
		return status;
	cache->easy = curl_easy_init();
	if (!cache->easy || http_setup(cache->easy, &config->wechat, &cache->body))
		return EXIT_INTERNAL;
	if (!db)
		return 0;   /* for token_check alone */
	if ((status = db_prepare(db, &cache->select, "SELECT token, expires_at, refresh_after, "
			"lease_until FROM wechat_tokens WHERE appid = ?1 AND source = ?2")) ||
	    (status = db_prepare(db, &cache->lease, "INSERT INTO wechat_tokens (appid, source, "
			"lease_until) VALUES (?1, ?2, ?3) ON CONFLICT (appid, source) DO UPDATE SET "
			"lease_until = excluded.lease_until")) ||
	    (status = db_prepare(db, &cache->save, "UPDATE wechat_tokens SET token = ?3, "
			"expires_at = ?4, refresh_after = ?5, fetched_at = ?6, lease_until = NULL, "
			"refreshes = refreshes + 1 WHERE appid = ?1 AND source = ?2")) ||
	    (status = db_prepare(db, &cache->unlease, "UPDATE wechat_tokens SET lease_until = NULL "
			"WHERE appid = ?1 AND source = ?2")) ||
	    (status = db_prepare(db, &cache->drop, "UPDATE wechat_tokens SET token = NULL, "
			"refresh_after = 0 WHERE appid = ?1 AND source = ?2 AND token = ?3")))
		return status;
	return 0;
}

void token_close(struct token_cache *cache)
{
	sqlite3_finalize(cache->select);
	sqlite3_finalize(cache->lease);
	sqlite3_finalize(cache->save);
	sqlite3_finalize(cache->unlease);
	sqlite3_finalize(cache->drop);
	if (cache->easy)
		curl_easy_cleanup(cache->easy);
	http_body_free(&cache->body);
	explicit_bzero(cache->token, sizeof cache->token);
	memset(cache, 0, sizeof *cache);
}

static void token_bind_key(struct token_cache *cache, sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, cache->config->wechat.appid, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, cache->source, -1, SQLITE_STATIC);
}

/* 0, or EXIT_TEMPFAIL unsaid when the DB stayed locked (the caller says it:
 * a wait, the run goes on), or an exit code said. */
static int token_step(struct token_cache *cache, sqlite3_stmt *stmt, const char *what)
{
	int rc = sqlite3_step(stmt);

	sqlite3_reset(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (db_error_code(cache->db, rc) == EXIT_TEMPFAIL)   /* busy or locked */
		return EXIT_TEMPFAIL;
	return db_fail(cache->db, rc, what);
}

static int token_read(struct token_cache *cache, struct token_row *row)
{
	const char *token;
	int rc;

	memset(row, 0, sizeof *row);
	token_bind_key(cache, cache->select);
	rc = sqlite3_step(cache->select);
	if (rc == SQLITE_ROW) {
		token = (const char *)sqlite3_column_text(cache->select, 0);
		if (token && wechat_token_ok(token))   /* (else none: one is fetched) */
			strcpy(row->token, token);
		row->expires_at = sqlite3_column_double(cache->select, 1);
		row->refresh_after = sqlite3_column_double(cache->select, 2);
		row->lease_until = sqlite3_column_double(cache->select, 3);
	}
	sqlite3_reset(cache->select);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(cache->db, rc, "reading the token");
}

/* Usable: present, not expired, and not the one WeChat just refused. */
static int token_usable(const struct token_cache *cache, const struct token_row *row, double now)
{
	return *row->token && now < row->expires_at && strcmp(row->token, cache->refused);
}

static void token_adopt(struct token_cache *cache, const struct token_row *row, double use_until)
{
	cache->failures = 0;   /* another process got one: the source works */
	if (strcmp(cache->token, row->token)) {
		log_add_token(row->token);   /* an answer may quote it back */
		cache->generation++;
		cache->suspect = cache->replacing;
		cache->replacing = 0;
	}
	strcpy(cache->token, row->token);
	cache->expires_at = row->expires_at;
	cache->use_until = use_until;
}

/* --- the sources -------------------------------------------------------- */

/* A stop cuts a token request short, as it does a token command: the
 * endpoint may hang for all of wechat.timeout, and the stop must not. */
static int token_http_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	curl_off_t ulnow)
{
	(void)data; (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
	return interrupt_requested() != 0;
}

static int token_http(struct token_cache *cache, const char *url, const char *post)
{
	CURL *easy = cache->easy;
	struct curl_slist *headers = NULL;
	long status = 0;
	CURLcode rc;

	cache->body.size = 0;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	if (post) {
		headers = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	} else {
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	}
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, token_http_progress);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	rc = curl_easy_perform(easy);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		token_fail(cache, WECHAT_RETRY, "%s", "token endpoint: stopped by a signal");
		return -1;
	}
	if (rc != CURLE_OK) {
		char where[320], error[CURL_ERROR_SIZE + 160];

		token_fail(cache, WECHAT_RETRY, "%s", "");
		snprintf(cache->failure.message, sizeof cache->failure.message, "token endpoint (%.140s): %s",
			http_where(cache->config->wechat.api_base, where, sizeof where),
			http_error(&cache->body, rc, error, sizeof error));
		return -1;
	}
	if (status != 200) {
		char code[16];
		snprintf(code, sizeof code, "%ld", status);
		token_fail(cache, WECHAT_RETRY, "token endpoint: HTTP %s", code);
		return -1;
	}
	return 0;
}

/* Puts `source` before what went wrong (cache->failure.message); the end of
 * a long one is cut. */
static void token_failure_of(struct token_cache *cache, const char *source)
{
	char why[sizeof cache->failure.message], *message = cache->failure.message;
	size_t used, length;

	memcpy(why, message, sizeof why);
	used = (size_t)snprintf(message, sizeof why, "%.100s: ", source);
	length = strnlen(why, sizeof why - 1 - used);
	memcpy(message + used, why, length);
	message[used + length] = '\0';
}

static int token_from_body(struct token_cache *cache, char *token, int64_t *expires_in)
{
	int failed = wechat_parse_token((const char *)cache->body.data, cache->body.size, token,
		expires_in, &cache->failure);

	/* The answer held the token: not kept until the next call. */
	if (cache->body.data)
		explicit_bzero(cache->body.data, cache->body.size);
	if (failed) {
		token_failure_of(cache, "token endpoint");
		return -1;
	}
	return 0;
}

static int token_fetch_stable(struct token_cache *cache, char *token, int64_t *expires_in)
{
	const struct wechat_config *w = &cache->config->wechat;
	char secret[512], url[1024], *body;
	json_t *request;
	int status = -1;

	if (config_read_secret(cache->config, secret, sizeof secret)) {
		token_fail_secret(cache);
		return -1;
	}
	snprintf(url, sizeof url, "%s/cgi-bin/stable_token", w->api_base);
	request = json_pack("{s:s, s:s, s:s, s:b}", "grant_type", "client_credential",
		"appid", w->appid, "secret", secret, "force_refresh", 0);
	body = request ? json_dumps(request, JSON_COMPACT) : NULL;
	explicit_bzero(secret, sizeof secret);
	json_decref(request);   /* jansson copied the secret: its strings are freed here */
	if (!body)
		token_fail(cache, WECHAT_INTERNAL, "%s", "out of memory");
	else if (!token_http(cache, url, body))
		status = token_from_body(cache, token, expires_in);
	if (body) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	return status;
}

static int token_fetch_classic(struct token_cache *cache, char *token, int64_t *expires_in)
{
	const struct wechat_config *w = &cache->config->wechat;
	char secret[512], url[2048];
	char *appid_escaped, *secret_escaped;
	int status = -1;

	if (config_read_secret(cache->config, secret, sizeof secret)) {
		token_fail_secret(cache);
		return -1;
	}
	appid_escaped = curl_easy_escape(cache->easy, w->appid, 0);
	secret_escaped = curl_easy_escape(cache->easy, secret, 0);
	explicit_bzero(secret, sizeof secret);
	if (!appid_escaped || !secret_escaped)
		token_fail(cache, WECHAT_INTERNAL, "%s", "out of memory");
	else {
		snprintf(url, sizeof url, "%s/cgi-bin/token?grant_type=client_credential&appid=%s&secret=%s",
			w->api_base, appid_escaped, secret_escaped);
		if (!token_http(cache, url, NULL))
			status = token_from_body(cache, token, expires_in);
		explicit_bzero(url, sizeof url);
	}
	if (secret_escaped)
		explicit_bzero(secret_escaped, strlen(secret_escaped));
	curl_free(appid_escaped);
	curl_free(secret_escaped);
	return status;
}

int token_parse_text(char *text, size_t size, int64_t default_expires_s,
	char token[WECHAT_TOKEN_MAX + 1], int64_t *expires_in_s, struct wechat_answer *answer)
{
	char *word, *save = NULL, *end;
	long long expires = default_expires_s;

	memset(answer, 0, sizeof *answer);
	answer->action = WECHAT_RETRY;
	if (size && text[0] == '{')
		return wechat_parse_token(text, size, token, expires_in_s, answer);
	if (memchr(text, '\0', size)) {   /* ("TOKEN\0junk" is no token) */
		snprintf(answer->message, sizeof answer->message, "it holds a NUL byte");
		return -1;
	}
	word = strtok_r(text, " \t\r\n", &save);
	if (!word || !wechat_token_ok(word)) {
		snprintf(answer->message, sizeof answer->message, "no token in it (expected "
			"'TOKEN [EXPIRES_IN_SECONDS]', or the JSON of WeChat's answer)");
		return -1;
	}
	strcpy(token, word);
	if ((word = strtok_r(NULL, " \t\r\n", &save))) {
		errno = 0;
		expires = strtoll(word, &end, 10);
		if (errno || *end || expires <= 0) {
			snprintf(answer->message, sizeof answer->message,
				"expected 'TOKEN [EXPIRES_IN_SECONDS]', the second word is not a number of "
				"seconds over 0");
			return -1;
		}
		if ((word = strtok_r(NULL, " \t\r\n", &save))) {
			snprintf(answer->message, sizeof answer->message,
				"expected 'TOKEN [EXPIRES_IN_SECONDS]', a third word follows");
			return -1;
		}
	}
	*expires_in_s = expires;
	return 0;
}

#define TOKEN_CHILD_TICK_MS 250   /* a stop signal is looked at this often */
#define TOKEN_CHILD_STOPPED -3
/* What of a token command's stderr is relayed; the rest is counted. */
#define TOKEN_STDERR_MAX 2048
/* What of it is read once the command has exited (left in the pipe). */
#define TOKEN_LAST_WORDS_MAX (1 << 20)

/* A token command's two outputs, as read: stdout (the token) and stderr (its
 * diagnostics, relayed through our log, so masked). */
struct token_child {
	pid_t pid;
	int fds[2];   /* stdout, stderr; -1 once at their end */
	char *out, err[TOKEN_STDERR_MAX];
	size_t out_size, out_used, err_used, err_dropped;
};

/* Reads what is ready on the child's output `which` (0 stdout, 1 stderr);
 * closes it at its end. 1 when the stdout buffer is full, -1 on a read
 * error, else 0. */
static int token_read_some(struct token_child *child, int which)
{
	char spill[512];
	char *into = which ? child->err + child->err_used : child->out + child->out_used;
	size_t room = which ? sizeof child->err - child->err_used : child->out_size - 1 - child->out_used;
	ssize_t got = read(child->fds[which], room ? into : spill, room ? room : sizeof spill);

	if (got < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (got == 0) {
		close(child->fds[which]);
		child->fds[which] = -1;
	} else if (!which)
		child->out_used += (size_t)got;
	else if (room)
		child->err_used += (size_t)got;
	else
		child->err_dropped += (size_t)got;
	return !which && child->out_used == child->out_size - 1;
}

/* Whether the child has exited, leaving it to be reaped (token_reap). */
static int token_child_exited(pid_t pid)
{
	siginfo_t info = { 0 };

	return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

/* Reads the child's stdout to its end, and its stderr beside it: to its end,
 * or until the child has exited (a daemon it left holds no run), or until
 * stdout is full. Returns the stdout's length; -1 on a read error, -2 at the
 * deadline (db_monotonic()'s, as in token_reap), TOKEN_CHILD_STOPPED on
 * SIGINT/SIGTERM. */
static ssize_t token_read_child(struct token_child *child, double deadline)
{
	for (;;) {
		struct pollfd pollers[2];
		int wait_ms = (int)((deadline - db_monotonic()) * 1000), ready, count = 0, rc;

		if (interrupt_requested())
			return TOKEN_CHILD_STOPPED;
		if (child->fds[0] < 0 && (child->fds[1] < 0 || token_child_exited(child->pid))) {
			/* Its last words, already written: what the pipe holds, up to
			 * a bound (a daemon it left may write on without end). */
			while (child->fds[1] >= 0 && child->err_used + child->err_dropped < TOKEN_LAST_WORDS_MAX &&
			       poll(&(struct pollfd){ .fd = child->fds[1], .events = POLLIN }, 1, 0) > 0)
				if (token_read_some(child, 1) < 0)
					break;
			return (ssize_t)child->out_used;
		}
		if (wait_ms <= 0)
			return -2;
		for (int i = 0; i < 2; i++)
			if (child->fds[i] >= 0)
				pollers[count++] = (struct pollfd){ .fd = child->fds[i], .events = POLLIN };
		ready = poll(pollers, (nfds_t)count,
			wait_ms < TOKEN_CHILD_TICK_MS ? wait_ms : TOKEN_CHILD_TICK_MS);
		if (ready < 0 && errno != EINTR)
			return -1;
		for (int i = 0; ready > 0 && i < count; i++) {
			if (!pollers[i].revents)
				continue;
			if ((rc = token_read_some(child, pollers[i].fd == child->fds[1])) < 0)
				return -1;
			if (rc)   /* stdout full: no token is that long */
				return (ssize_t)child->out_used;
		}
	}
}

/* The child's stderr, a line each as a warning (an error when it failed),
 * through our log: masked as ours is (the token it gave, the config's
 * secrets). */
static void token_relay_stderr(struct token_child *child, int failed)
{
	char *line = child->err, *end = child->err + child->err_used, *next;
	enum log_level level = failed ? LOG_ERROR : LOG_WARN;   /* (its reason, under -q too) */

	/* Whole lines only: a line cut where the buffer ends could end in the
	 * start of a secret, which no mask would know. */
	if (child->err_dropped && end > line && end[-1] != '\n') {
		char *last = memrchr(line, '\n', (size_t)(end - line));
		char *cut = last ? last + 1 : line;

		child->err_dropped += (size_t)(end - cut);
		end = cut;
	}
	for (; line < end; line = next + 1) {
		if (!(next = memchr(line, '\n', (size_t)(end - line))))
			next = end;
		if (next > line)
			log_msg(level, "token command's stderr: %.*s", (int)(next - line), line);
	}
	if (child->err_dropped)
		log_msg(level, "token command's stderr: %zu bytes more, not shown", child->err_dropped);
	explicit_bzero(child->err, sizeof child->err);
}

#define TOKEN_REAP_KILLED -1
#define TOKEN_REAP_LOST -2

/* Reaps the child, killed at once if `kill_now`, else when it outlives the
 * deadline (a command that closed its output but does not exit). A kill is
 * of its whole process group: `a | b` or `a; b` under sh leaves the others
 * running if only sh dies. Returns 0, TOKEN_REAP_KILLED, or TOKEN_REAP_LOST
 * when its exit status could not be had. */
static int token_reap(pid_t pid, int *child_status, double deadline, int kill_now)
{
	int killed = kill_now;

	if (kill_now)
		kill(-pid, SIGKILL);
	for (;;) {
		pid_t done = waitpid(pid, child_status, killed ? 0 : WNOHANG);

		if (done == pid)
			return killed ? TOKEN_REAP_KILLED : 0;
		if (done < 0 && errno != EINTR)
			return killed ? TOKEN_REAP_KILLED : TOKEN_REAP_LOST;
		if (done == 0 && (db_monotonic() >= deadline || interrupt_requested())) {
			kill(-pid, SIGKILL);
			killed = 1;
		} else if (done == 0)
			usleep(10000);
	}
}

/* The command runs through /bin/sh (it is configuration, like a crontab line),
 * stdin from /dev/null (ours carries items), stdout read for the token, and
 * nothing else of ours: curl's connections and its multi handle's socketpair
 * are not close-on-exec, and a command that leaves a daemon running would
 * hold them open (a closed connection the server never sees close). */
static int token_spawn(const char *command, struct token_child *child)
{
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attributes;
	sigset_t defaults, none;
	int out_fds[2], err_fds[2], rc;

	if (pipe2(out_fds, O_CLOEXEC))
		return errno;
	if (pipe2(err_fds, O_CLOEXEC)) {
		rc = errno;
		close(out_fds[0]);
		close(out_fds[1]);
		return rc;
	}
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, out_fds[1], 1);
	posix_spawn_file_actions_adddup2(&actions, err_fds[1], 2);
	/* Signals as a shell gives them, not as ours are: SIGPIPE ignored here
	 * would outlive exec, and `producer | head -1` would never end. Its own
	 * process group, so that a kill reaches the whole command. */
	posix_spawnattr_init(&attributes);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGHUP);
	sigaddset(&defaults, SIGCHLD);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&attributes, &defaults);
	posix_spawnattr_setsigmask(&attributes, &none);
	posix_spawnattr_setpgroup(&attributes, 0);
	rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
		POSIX_SPAWN_SETPGROUP);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
	if (!rc)
		rc = posix_spawn(&child->pid, "/bin/sh", &actions, &attributes, argv, environ);
	posix_spawnattr_destroy(&attributes);
	posix_spawn_file_actions_destroy(&actions);
	close(out_fds[1]);
	close(err_fds[1]);
	if (rc) {
		close(out_fds[0]);
		close(err_fds[0]);
		return rc;
	}
	child->fds[0] = out_fds[0];
	child->fds[1] = err_fds[0];
	return 0;
}

/* A command's output or a file that holds WeChat's error, not a token: the
 * service behind it was refused, and our app secret is not involved (the
 * message would otherwise say "wrong app secret"). */
static void token_source_refused(struct token_cache *cache, const char *source)
{
	int errcode = cache->failure.errcode;

	if (errcode)
		snprintf(cache->failure.message, sizeof cache->failure.message, "%.100s holds an error, "
			"not a token: errcode %d (whatever writes it was refused by WeChat)", source, errcode);
	else
		token_failure_of(cache, source);
}

static int token_fetch_command(struct token_cache *cache, char *token, int64_t *expires_in)
{
	const struct wechat_config *w = &cache->config->wechat;
	char output[TOKEN_OUTPUT_MAX];
	struct token_child child = { .fds = { -1, -1 }, .out = output, .out_size = sizeof output };
	ssize_t length;
	int rc, child_status = 0, killed;
	double deadline;

	if ((rc = token_spawn(w->token_command, &child))) {
		token_fail(cache, WECHAT_RETRY, "token command: cannot start /bin/sh: %s", strerror(rc));
		return -1;
	}
	deadline = db_monotonic() + (double)w->timeout_ms / 1000;
	length = token_read_child(&child, deadline);
	for (int i = 0; i < 2; i++)
		if (child.fds[i] >= 0)
			close(child.fds[i]);
	killed = token_reap(child.pid, &child_status, deadline,
		length == -2 || length == TOKEN_CHILD_STOPPED);
	rc = -1;
	if (length == TOKEN_CHILD_STOPPED)
		token_fail(cache, WECHAT_RETRY, "%s", "token command: stopped by a signal");
	else if (length == -2 || killed == TOKEN_REAP_KILLED)
		token_fail(cache, WECHAT_RETRY, "%s", "token command: timed out (wechat.timeout)");
	else if (killed == TOKEN_REAP_LOST)
		token_fail(cache, WECHAT_RETRY, "token command: its exit status is lost (%s): its "
			"output is not trusted", strerror(errno));
	else if (length < 0)
		token_fail(cache, WECHAT_RETRY, "%s", "token command: its output could not be read");
	else if (!WIFEXITED(child_status) || WEXITSTATUS(child_status)) {
		char why[96];

		if (WIFSIGNALED(child_status))
			snprintf(why, sizeof why, "killed by signal %d (%s)", WTERMSIG(child_status),
				strsignal(WTERMSIG(child_status)));
		else
			snprintf(why, sizeof why, "exit %d", WIFEXITED(child_status) ?
				WEXITSTATUS(child_status) : -1);
		token_fail(cache, WECHAT_RETRY, "token command failed: %s", why);
	}
	else {
		output[length] = '\0';
		rc = token_parse_text(output, (size_t)length, TOKEN_COMMAND_LIFETIME_S, token, expires_in,
			&cache->failure);
		if (rc)
			token_source_refused(cache, "the token command's output");
		else
			log_add_token(token);   /* masked in its stderr too */
	}
	token_relay_stderr(&child, rc != 0);
	explicit_bzero(output, sizeof output);
	return rc;
}

/* The token file could not be opened or read (`err`): tried again later. */
static int token_file_unreadable(struct token_cache *cache, int err)
{
	char why[160];

	snprintf(why, sizeof why, "%.88s: %s", cache->config->wechat.token_file, strerror(err));
	token_fail(cache, WECHAT_RETRY, "token file %s", why);
	return -1;
}

/* The token file is refused as it is (its mode, its kind): the config's
 * error (78), `why` said at the first failure. */
static int token_file_refused(struct token_cache *cache)
{
	token_fail_secret(cache);
	snprintf(cache->failure.message, sizeof cache->failure.message,
		"the token file is refused as it is (see above)");
	return -1;
}

static int token_fetch_file(struct token_cache *cache, char *token, int64_t *expires_in)
{
	char text[TOKEN_OUTPUT_MAX];
	int fd = config_open_file(cache->config->wechat.token_file), rc, read_errno;
	struct stat st;
	ssize_t length;

	if (fd == -2) {
		log_error("token file %s: %s: it names the file the agent writes the token to",
			cache->config->wechat.token_file, CONFIG_NOT_A_FILE);
		return token_file_refused(cache);
	}
	if (fd < 0)
		return token_file_unreadable(cache, errno);
	/* The token is a secret, as the app secret is: the agent's group may
	 * read it, not write it (another app's token in it would mint codes of
	 * another mini-program); others nothing. Said as the config's error (78). */
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXO | S_IWGRP))) {
		close(fd);
		log_error("token file %s is %s (mode %04o): the access token is a secret; have "
			"whatever writes it make it mode 600 (or 640, for a group of its readers)",
			cache->config->wechat.token_file, st.st_mode & S_IRWXO ? "accessible by others" :
			"writable by its group", (unsigned)(st.st_mode & 07777));
		return token_file_refused(cache);
	}
	length = config_read_secret_fd(fd, text, sizeof text - 1);
	read_errno = errno;
	close(fd);
	if (length < 0)
		return token_file_unreadable(cache, read_errno);
	text[length] = '\0';
	rc = token_parse_text(text, (size_t)length, TOKEN_FILE_LIFETIME_S, token, expires_in,
		&cache->failure);
	explicit_bzero(text, sizeof text);
	if (rc) {
		char what[112];

		snprintf(what, sizeof what, "token file %.88s", cache->config->wechat.token_file);
		token_source_refused(cache, what);
	}
	return rc;
}

static int token_fetch(struct token_cache *cache, char *token, int64_t *expires_in)
{
	switch (cache->config->wechat.token_source) {
	case TOKEN_STABLE: return token_fetch_stable(cache, token, expires_in);
	case TOKEN_CLASSIC: return token_fetch_classic(cache, token, expires_in);
	case TOKEN_COMMAND: return token_fetch_command(cache, token, expires_in);
	default: return token_fetch_file(cache, token, expires_in);
	}
}

/* The exit code a failed fetch from the source ends in (refused credentials,
 * an unreadable secret, a bug), or 0 when it is worth trying again. */
static int token_failure_status(const struct token_cache *cache)
{
	if (cache->failure.action == WECHAT_POOL_STOP)
		return cache->secret_unreadable ? EXIT_CONFIG : EXIT_UPSTREAM;
	return cache->failure.action == WECHAT_INTERNAL ? EXIT_INTERNAL : 0;
}

/* Asks the source now, past the cache and the lease, and keeps nothing: the
 * stable endpoint without force_refresh hands out the current token, so
 * other holders are not disturbed (never called for classic). */
int token_check(struct token_cache *cache, int64_t *expires_in)
{
	char token[WECHAT_TOKEN_MAX + 1];
	int rc = token_fetch(cache, token, expires_in);

	explicit_bzero(token, sizeof token);
	if (!rc)
		return 0;
	return (rc = token_failure_status(cache)) ? rc : EXIT_TEMPFAIL;
}

/* --- refresh under the lease --------------------------------------------- */

/* Takes the lease if the row still needs a refresh and nobody holds it (or
 * only this process, whose release found the DB locked). Returns 0 (lease
 * taken), 1 (not needed or not ours: *row says why), or an exit code. */
static int token_take_lease(struct token_cache *cache, double now, struct token_row *row)
{
	double lease_s = (double)cache->config->wechat.timeout_ms / 1000 + 5;
	int status;

	if ((status = db_begin_immediate_quietly(cache->db)))   /* a lock: said by the caller */
		return status;
	if ((status = token_read(cache, row)))
		goto fail;
	if ((token_usable(cache, row, now) && now < row->refresh_after) ||
	    (row->lease_until > now && row->lease_until != cache->leased_until)) {
		if ((status = db_commit(cache->db)))
			goto fail;
		return 1;
	}
	token_bind_key(cache, cache->lease);
	sqlite3_bind_double(cache->lease, 3, now + lease_s);
	if ((status = token_step(cache, cache->lease, "leasing the token refresh")) ||
	    (status = db_commit(cache->db)))
		goto fail;
	cache->leased_until = now + lease_s;
	return 0;
fail:
	db_rollback(cache->db);
	return status;
}

static int token_save(struct token_cache *cache, const char *token, int64_t expires_in, double now)
{
	/* Ahead of expiry by a fifth of the lifetime, at most 5 minutes (WeChat
	 * rotates stable tokens 5 minutes before they expire). */
	double ahead = expires_in / 5.0 < 300 ? expires_in / 5.0 : 300;
	struct token_row row;

	snprintf(row.token, sizeof row.token, "%s", token);
	row.expires_at = now + (double)expires_in;
	row.refresh_after = now + ((double)expires_in - ahead > 0.5 ? (double)expires_in - ahead : 0.5);
	/* A file is read again every minute, whatever the expiry it gives: the
	 * agent writing it may rotate the token before then. */
	if (cache->config->wechat.token_source == TOKEN_FILE && row.refresh_after > now + TOKEN_FILE_LIFETIME_S)
		row.refresh_after = now + TOKEN_FILE_LIFETIME_S;
	token_bind_key(cache, cache->save);
	sqlite3_bind_text(cache->save, 3, token, -1, SQLITE_STATIC);
	sqlite3_bind_double(cache->save, 4, row.expires_at);
	sqlite3_bind_double(cache->save, 5, row.refresh_after);
	sqlite3_bind_double(cache->save, 6, now);
	token_adopt(cache, &row, row.refresh_after);
	explicit_bzero(row.token, sizeof row.token);
	return token_step(cache, cache->save, "saving the token");
}

/* A failed refresh: credentials refused end the run; anything else is tried
 * again later, meanwhile the current token serves while it lasts. */
static int token_refresh_failed(struct token_cache *cache, double now, double mono)
{
	int status;

	token_bind_key(cache, cache->unlease);
	/* Locked past busy_timeout: the lease stays, ours to take again (else
	 * the run would wait for its end as for another holder's), and the
	 * backoff below still holds. */
	if ((status = token_step(cache, cache->unlease, "releasing the token lease")) &&
	    status != EXIT_TEMPFAIL)
		return status;
	if ((status = token_failure_status(cache)))
		return status;
	log_warn("refreshing the access token failed, retrying in %.0f s: %s", cache->backoff,
		cache->failure.message);
	cache->retry_at = mono + cache->backoff;
	cache->backoff = cache->backoff * 2 < 60 ? cache->backoff * 2 : 60;
	if (*cache->token && now < cache->expires_at && strcmp(cache->token, cache->refused))
		return 0;
	if (++cache->failures >= TOKEN_FAILURES_MAX) {
		char last[sizeof cache->failure.message];

		snprintf(last, sizeof last, "%s", cache->failure.message);
		snprintf(cache->failure.message, sizeof cache->failure.message,
			"%d refreshes in a row failed (the last: %.150s)", cache->failures, last);
		return TOKEN_GAVE_UP;   /* retry_at is set: the caller may go on trying */
	}
	return 1;
}

/* What gave the token, to name in a message: the source the config says. */
static const char *token_giver(const struct token_cache *cache)
{
	switch (cache->config->wechat.token_source) {
	case TOKEN_COMMAND: return "the token command";
	case TOKEN_FILE: return "the token file";
	default: return "the token endpoint";
	}
}

/* Asks the source for a token and keeps it, or backs off; `now` and `mono`
 * as token_get's. */
static int token_refresh(struct token_cache *cache, double now, double mono)
{
	char token[WECHAT_TOKEN_MAX + 1];
	int64_t expires_in = 0;
	double started = db_monotonic(), took;
	int status, failed = token_fetch(cache, token, &expires_in);

	/* A slow source (a command, a token endpoint taking seconds): what
	 * follows counts from its answer, on both clocks. */
	took = db_monotonic() - started;
	now += took;
	mono += took;
	if (failed)
		return token_refresh_failed(cache, now, mono);
	if (!strcmp(token, cache->refused)) {
		if (mono < cache->refused_again_at) {
			/* Refused again with no call succeeding since: using it
			 * at once would loop. Wait and ask. */
			token_fail(cache, WECHAT_RETRY, "%s gave the refused token again",
				token_giver(cache));
			explicit_bzero(token, sizeof token);
			return token_refresh_failed(cache, now, mono);
		}
		/* WeChat refuses a valid token at times: take it again, but
		 * later and later while it keeps being refused. Said once a
		 * run (a night of spurious refusals would say it hundreds of
		 * times), then counted at -v. */
		if (!cache->retaken++)
			log_warn("%s gave the token WeChat refused: trying it again (WeChat refuses a "
				"valid token at times; said once a run, counted at -v)", token_giver(cache));
		else
			log_info("%s gave the token WeChat refused: trying it again (%lld times this run)",
				token_giver(cache), (long long)cache->retaken);
		cache->refused_backoff = cache->refused_backoff ? cache->refused_backoff * 2 : 1;
		if (cache->refused_backoff > 60)
			cache->refused_backoff = 60;
		cache->refused_again_at = mono + cache->refused_backoff;
		*cache->refused = '\0';
	}
	status = token_save(cache, token, expires_in, now);
	explicit_bzero(token, sizeof token);
	if (status)
		return status;
	cache->refreshes++;
	cache->backoff = 1;
	cache->failures = 0;
	log_info("access token refreshed (source %s, valid %lld s)", cache->source,
		(long long)expires_in);
	return 0;
}

/* The cached token, trusted without reading the DB. */
static int token_fresh(const struct token_cache *cache, double now)
{
	return *cache->token && now < cache->use_until;
}

int token_cached(const struct token_cache *cache, double now, double mono)
{
	return token_fresh(cache, now) || mono < cache->retry_at;
}

int token_get(struct token_cache *cache, double now, double mono)
{
	struct token_row row;
	int status;

	if (token_fresh(cache, now))
		return 0;
	if (mono < cache->retry_at)
		return *cache->token && now < cache->expires_at ? 0 : 1;
	if ((status = token_read(cache, &row)))
		return status;
	if (token_usable(cache, &row, now) && now < row.refresh_after) {
		token_adopt(cache, &row, row.refresh_after);
		return 0;
	}
	status = token_take_lease(cache, now, &row);
	if (status == 0)
		return token_refresh(cache, now, mono);
	if (status != 1)
		return status;
	if (token_usable(cache, &row, now)) {
		/* Fresh, or refreshed by another process soon: look again shortly. */
		token_adopt(cache, &row, now < row.refresh_after ? row.refresh_after : now + 0.2);
		return 0;
	}
	*cache->token = '\0';
	cache->retry_at = mono + 0.1;
	return 1;
}

void token_worked(struct token_cache *cache, uint64_t generation)
{
	if (generation != cache->generation)
		return;
	cache->refused_again_at = cache->refused_backoff = 0;
	cache->suspect = 0;
	cache->suspect_backoff = 0;
}

int token_refused(struct token_cache *cache, const char *token, uint64_t generation)
{
	if (generation != cache->generation || strcmp(token, cache->token))
		return 0;   /* already replaced: this process refreshed or read a newer one */
	snprintf(cache->refused, sizeof cache->refused, "%s", token);
	*cache->token = '\0';
	cache->use_until = 0;
	cache->retry_at = 0;
	if (cache->suspect) {
		if (!cache->suspect_backoff)
			log_warn("WeChat refused the new token too, before any call with it succeeded: the "
				"next refresh waits 1 s, then 2, 4 ... 60 s while new tokens keep being refused");
		cache->suspect_backoff = cache->suspect_backoff ? cache->suspect_backoff * 2 : 1;
		if (cache->suspect_backoff > 60)
			cache->suspect_backoff = 60;
		cache->retry_at = db_monotonic() + cache->suspect_backoff;
	}
	cache->replacing = 1;
	token_bind_key(cache, cache->drop);
	sqlite3_bind_text(cache->drop, 3, token, -1, SQLITE_STATIC);
	return token_step(cache, cache->drop, "dropping a refused token");
}
