#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "tap.h"

static char dir[] = "/tmp/qrpool-test-config.XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* Loads `text` as a config file of `mode`; returns the status and what was
 * logged on stderr. */
static int load_path(const char *path, struct config *config, char *logged, size_t size)
{
	int status;

	tap_capture_start();
	status = config_load(config, path);
	tap_capture_end(logged, size);
	return status;
}

static int load(const char *text, mode_t mode, struct config *config, char *logged, size_t size)
{
	char path[256];

	snprintf(path, sizeof path, "%s/qrpool.cfg", dir);
	write_file(path, text, mode);
	return load_path(path, config, logged, size);
}

/* A config that cannot be read says why: libconfig keeps no errno. */
static void test_unreadable(void)
{
	char logged[2048];
	struct config config;

	is_int(load_path(dir, &config, logged, sizeof logged), EXIT_CONFIG, "a directory as the config");
	ok(strstr(logged, "cannot read the config file: it is a directory") != NULL, "says so: %s", logged);
	config_free(&config);
}

/* A pool name one character over the limit of 100: ten counted tens, and one. */
#define NAME_101 "p123456789p123456789p123456789p123456789p123456789" \
	"p123456789p123456789p123456789p123456789p123456789" "p"
/* Kafka's longest topic name, 249 characters, and one over it. */
#define TOPIC_10 "t123456789"
#define TOPIC_249 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 \
	TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 \
	TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 TOPIC_10 "t12345678"
#define TOPIC_250 TOPIC_249 "x"
#define POOLS "pools = ( { name = \"p\"; source = \"wechat\"; page = \"pages/x\"; } );\n"
#define LINK_POOL "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://a.b/q/\"; } );\n"

static void test_valid(void)
{
	char logged[2048];
	struct config config;
	int status = load("database = { path = \"/tmp/x.db\"; };\n"
		"wechat = { appid = \"wx1\"; secret = \"s3cret\"; quota_per_minute = 100;\n"
		"  reserve_per_minute = 10; };\n"
		"kafka = { brokers = \"b:9092\"; properties = [ \"linger.ms=5\" ]; };\n"
		"pools = ( { name = \"p\"; source = \"wechat\"; page = \"pages/x\";\n"
		"    topic_properties = [ \"partitioner=murmur2\" ]; },\n"
		"  { name = \"l\"; source = \"link\"; url_prefix = \"https://a.b/q/\"; ec_level = \"Q\"; } );\n",
		0600, &config, logged, sizeof logged);

	is_int(status, 0, "a valid config loads");
	if (status)
		return;
	is_int(config_wechat_budget(&config), 90, "budget is quota minus reserve");
	is_int((long long)config.pool_count, 2, "two pools");
	ok(config_pool(&config, "l") && config_pool(&config, "l")->ec_level == 'Q', "link pool settings");
	is_str(config_pool(&config, "p")->topic, "qrpool.p", "topic defaults to qrpool.<name>");
	is_str(config.kafka.properties.items[0], "linger.ms=5", "kafka properties passed as written");
	ok(config_pool(&config, "p")->topic_properties.count == 1 &&
		!strcmp(config_pool(&config, "p")->topic_properties.items[0], "partitioner=murmur2") &&
		strstr(config_pool(&config, "p")->topic_properties.places[0], "qrpool.cfg:6"),
		"a pool's topic_properties passed as written, placed at their line");
	is_int((long long)config_pool(&config, "l")->topic_properties.count, 0, "... none elsewhere");
	config_free(&config);
	/* A prefix below the rule that routes it (.../q/ registered), a query
	 * one, dark red on light green: loaded. */
	status = load("pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://a.b/q/c-\"; },\n"
		"  { name = \"k\"; source = \"link\"; url_prefix = \"http://a.b:8080/?id=%41\";\n"
		"    foreground = \"#B00000\"; background = \"#C0FFC0\"; } );\n",
		0600, &config, logged, sizeof logged);
	is_int(status, 0, "link pools with prefixes a rule can route, and enough contrast, load");
	if (!status)
		config_free(&config);
}

static void test_refusals(void)
{
	static const struct { const char *text; const char *expect; const char *what; } cases[] = {
		{ "wechat = { appid = \"a\"; secret = \"s\"; };\n" POOLS, "accessible by group or others",
		  "an inline secret in a world-readable file" },
		{ "database = { path = 1; };\n" POOLS, "qrpool.cfg:1: 'path' must be a string",
		  "a wrong type names file and line" },
		{ "database = { path = \"/tmp/x.db\"; busy_timeout = 99999999999999999L; };\n" POOLS,
		  "qrpool.cfg:1: 'busy_timeout' is too long", "whole seconds (64-bit) past int64 ms" },
		{ "database = { path = \"/tmp/x.db\";\n busy_timeout = 0; };\n" POOLS,
		  "qrpool.cfg:2: busy_timeout (0 ms) must be at least 100ms",
		  "no wait for the DB's lock: runs at once would fail each other" },
		{ "database = { path = \"/tmp/x.db\"; busy_timeout = \"50ms\"; };\n" POOLS,
		  "qrpool.cfg:1: busy_timeout (50 ms) must be at least 100ms", "nor 50 ms" },
		{ "wechat = { appid = \"a\";\n quota_per_minte = 5; };\n" POOLS,
		  "qrpool.cfg:2: unknown setting 'quota_per_minte'", "a misspelt key" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "cover_hour = 5; } );\n", "qrpool.cfg:2: unknown setting 'cover_hour' in pool 'l'",
		  "a misspelt key of a pool names the pool" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "topic_properties = [ \"linger.ms\" ]; } );\n",
		  "qrpool.cfg:2: topic_properties entry 1 must be \"key=value\"",
		  "a pool's topic property without a value" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "topic_properties = \"acks=all\"; } );\n",
		  "qrpool.cfg:2: topic_properties must be a list of \"key=value\" strings",
		  "a pool's topic properties not in a list" },
		{ "pools = ( { name = \"p\"; source = \"wechat\"; page = \"/pages/x\"; } );\n"
		  "wechat = { appid = \"a\"; };\n", "must not start with '/'", "a page with a leading slash" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"ftp://x/\"; } );\n",
		  "must be an http:// or https:// URL", "a link prefix that is not http(s)" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\"; },\n"
		  "{ name = \"l\"; source = \"link\"; url_prefix = \"https://x/\"; } );\n",
		  "defined twice", "a pool defined twice" },
		{ "pools = ( { name = \"a\"; source = \"link\"; url_prefix = \"https://x/\"; topic = \"t\"; },\n"
		  "{ name = \"b\"; source = \"link\"; url_prefix = \"https://x/\"; topic = \"t\"; } );\n",
		  "qrpool.cfg:2: pools 'a' and 'b' share topic t", "two pools sharing a topic" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "topic = \"qrpool poster\"; } );\n",
		  "qrpool.cfg:2: pool 'l': topic 'qrpool poster' is no Kafka topic name",
		  "a topic with a space (Kafka refuses it)" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "topic = \"\"; } );\n", "qrpool.cfg:2: pool 'l': topic '' is no Kafka topic name",
		  "an empty topic" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "topic = \"..\"; } );\n", "topic '..' is no Kafka topic name", "topic .." },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "topic = \"" TOPIC_250 "\"; } );\n", "is no Kafka topic name", "a topic of 250 characters" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "group = \"\"; } );\n", "qrpool.cfg:2: pool 'l': group is empty", "an empty group" },
		{ "pools = ( { name = \".\"; source = \"link\"; url_prefix = \"https://x/\"; } );\n",
		  "a pool needs a name", "a pool named ." },
		{ "wechat = { appid = \"a\"; quota_per_minute = 10; reserve_per_minute = 10; };\n" POOLS,
		  "leaves nothing", "a reserve eating the whole quota" },
		{ "pools = ( { name = \"p\" source = \"x\"; } );\n", "qrpool.cfg:1:", "a syntax error" },
		{ "database = { path = \"staging.db\"; };\n" POOLS,
		  "qrpool.cfg:1: path 'staging.db' must be an absolute path", "a relative database path" },
		{ "wechat = { appid = \"a\"; secret_file = \"secret\"; };\n" POOLS,
		  "secret_file 'secret' must be an absolute path", "a relative secret file" },
		{ "wechat = { appid = \"wx\\\"} 1\"; };\n" POOLS, "qrpool.cfg:1: appid 'wx\"} 1' must be",
		  "an appid that would break a metric label" },
		{ "pools = ( );\n", "qrpool.cfg:1: pools is empty", "an empty pool list" },
		{ "pools = ( { name = \"" NAME_101 "\"; source = \"link\"; "
		  "url_prefix = \"https://x/\"; } );\n", "a name of 1 to 100 letters",
		  "a pool name of 101 characters, the limit said" },
		{ "database = { path = \"/tmp/x.db\"; };\n", "/qrpool.cfg: no pools defined",
		  "no pools: the file named without a line 0, by its absolute path" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "  foreground = \"#FFFFFF\"; background = { r = 255; g = 255; b = 255; }; } );\n",
		  "qrpool.cfg:2: pool 'l': foreground on background has a contrast of 1.00:1; at least 2:1",
		  "a link pool drawing white on white" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "  foreground = \"#FFFFFE\"; } );\n",
		  "qrpool.cfg:2: pool 'l': foreground on background has a contrast of 1.00:1",
		  "a link pool drawing almost white on white" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "  foreground = \"#FFFFFF\"; background = \"#000000\"; } );\n",
		  "contrast of 21.00:1 the wrong way round; at least 2:1, the foreground the darker",
		  "a link pool drawing white on black" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com' has no path: the request id would join the host name", "a url_prefix without a path" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/q/ \"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/q/ ' holds a space, a control character or a non-ASCII byte", "a url_prefix with a trailing space" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/\xff/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/?/' holds a space, a control character or a non-ASCII byte", "a url_prefix with a non-ASCII byte (shown as ?)" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com?id=\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com?id=' has no path", "a url_prefix with a query but no path" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/a/./\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/a/./' has a '.' or '..' path segment", "a url_prefix with a '.' segment" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/a/../q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/a/../q/' has a '.' or '..' path segment", "a url_prefix with a '..' segment" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/a/..\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/a/..' has a '.' or '..' path segment", "a url_prefix ending in '..'" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com:443/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com:443/q/' names the scheme's default port", "a url_prefix with https's port" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"http://m.example.com:80/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'http://m.example.com:80/q/' names the scheme's default port", "a url_prefix with http's port" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com:abc/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com:abc/q/' has a port that is not a number", "a url_prefix with a port of letters" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com:/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com:/q/' has a port that is not a number", "a url_prefix with an empty port" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m%41.example.com/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m%41.example.com/q/' has a percent-escape in its host", "a url_prefix with an escaped host" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n  foreground = \"#-1-1-1\"; } );\n",
		  "qrpool.cfg:2: 'foreground' must be \"#RRGGBB\"", "a colour '#-1-1-1' (not six hex digits)" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n  foreground = \"# 0 0 0\"; } );\n",
		  "qrpool.cfg:2: 'foreground' must be \"#RRGGBB\"", "a colour '# 0 0 0' (not six hex digits)" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n  foreground = \"#0x0x0x\"; } );\n",
		  "qrpool.cfg:2: 'foreground' must be \"#RRGGBB\"", "a colour '#0x0x0x' (not six hex digits)" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n  foreground = \"#+0+0+0\"; } );\n",
		  "qrpool.cfg:2: 'foreground' must be \"#RRGGBB\"", "a colour '#+0+0+0' (not six hex digits)" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/q/#\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/q/#' holds a '#': the request id would be a fragment", "a url_prefix ending in '#'" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/q%/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/q%/' holds a '%' not followed by two hex digits", "a url_prefix with a lone '%'" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com/q|/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com/q|/' holds a character a URL must percent-encode", "a url_prefix with a '|'" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://u:p@m.example.com/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://***@m.example.com/q/' carries a user:password@", "a url_prefix with userinfo (its password not shown)" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://?id=\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://?id=' must be an http:// or https:// URL with a host",
		  "a url_prefix with a query and no host" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://m.example.com./q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://m.example.com./q/' has a host ending in '.'",
		  "a url_prefix whose host ends in a dot" },
		{ "pools = ( { name = \"l\"; source = \"link\";\n  url_prefix = \"https://M.Example.com/q/\"; } );\n",
		  "qrpool.cfg:2: pool 'l': url_prefix 'https://M.Example.com/q/' has upper-case letters in its host", "a url_prefix with an upper-case host" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\"; "
		  "cover_hours = 0; } );\n", "'cover_hours' is 0, must be 1 to 8784",
		  "a pool covering no hours" },
		{ "wechat = { secret_file = \"/etc/qrpool/wechat.secret\"; };\n" POOLS,
		  "qrpool.cfg:1: the wechat section needs an appid", "a wechat section without appid" },
		/* A section given as one value: every setting in it would take its default. */
		{ "database = \"/srv/other/staging.db\";\n" LINK_POOL, "qrpool.cfg:1: database must be a "
		  "group of settings: database = { ... };", "database given as a path" },
		{ "kafka = \"k1:9092\";\n" LINK_POOL, "qrpool.cfg:1: kafka must be a group of settings",
		  "kafka given as brokers" },
		{ "redis = \"10.0.0.5\";\n" LINK_POOL, "qrpool.cfg:1: redis must be a group of settings",
		  "redis given as a host" },
		{ "wechat = \"wx0123456789abcdef\";\n" POOLS, "qrpool.cfg:1: wechat must be a group of settings",
		  "wechat given as an appid" },
		{ "wechat = { appid = \"a\";\n  token = \"command\"; };\n" POOLS,
		  "qrpool.cfg:2: wechat.token must be a group of settings: token = { ... };",
		  "wechat.token given as a source" },
		{ "kafka = { brokers = \"127.0.0.1:9092\";\n timeout = 0; };\n" LINK_POOL,
		  "qrpool.cfg:2: kafka.timeout must be at least 1s", "a kafka.timeout of 0 (no timeout)" },
		{ "kafka = { brokers = \"127.0.0.1:9092\"; timeout = \"999ms\"; };\n" LINK_POOL,
		  "kafka.timeout must be at least 1s", "a kafka.timeout under a second" },
		{ "pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		  "  width = 430; } );\n", "qrpool.cfg:2: pool 'l' (source link): 'width' is a setting "
		  "of wechat pools", "a wechat pool's setting in a link pool" },
		{ "pools = ( { name = \"p\"; source = \"wechat\"; page = \"pages/x\";\n"
		  "  module_px = 8; } );\nwechat = { appid = \"a\"; };\n", "qrpool.cfg:2: pool 'p' "
		  "(source wechat): 'module_px' is a setting of link pools",
		  "a link pool's setting in a wechat pool" },
	};
	char logged[2048];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config config;
		int status = load(cases[i].text, i == 0 ? 0644 : 0600, &config, logged, sizeof logged);

		is_int(status, EXIT_CONFIG, "%s: exit 78", cases[i].what);
		ok(strstr(logged, cases[i].expect) != NULL, "%s: message says '%s'", cases[i].what,
			cases[i].expect);
		if (!strstr(logged, cases[i].expect))
			printf("#   logged: %s", logged);
		config_free(&config);
	}
}

/* Secrets and errors in files the config @includes, and secret Kafka properties. */
/* Relative @includes with something wrong, and what the message must say (of
 * the file's whole path). */
static const struct {
	const char *content;
	mode_t mode;
	const char *what, *said;
} relative[] = {
	{ "wechat = { appid = \"rel\";\n secret = \"s\"; };\n", 0644,
	  "a secret in a readable relative include is refused", "run chmod 600 %s\n" },
	{ "wechat = { appid = \"rel\";\n bogus = 1; };\n", 0600,
	  "an unknown setting in a relative include", "%s:2: unknown setting 'bogus'" },
	{ "wechat = { appid = ; };\n", 0600, "a syntax error in a relative include", "%s:1: " },
	{ "wechat = { appid = \"rel\"; };\n", 0602, "a relative include writable by others",
	  "run chmod go-w %s\n" },
};

/* As root (CI): a config its group may write, the group not the owner's
 * alone, or one another user owns, is refused as one others may write. */
static void test_config_shared_owner(void)
{
	/* (Their numbers kept: the code under test looks up users too.) */
	const struct group *group = getgrnam("nogroup");
	gid_t shared = group ? group->gr_gid : 0;
	const struct passwd *user = getpwnam("nobody");
	uid_t nobody = user ? user->pw_uid : 0;
	char path[256], logged[2048], text[256];
	struct config config;

	if (geteuid() != 0 || !shared || !nobody) {
		tap_skip(5, "not root, or no nogroup and nobody to give files to");
		return;
	}
	snprintf(path, sizeof path, "%s/qrpool.cfg", dir);
	write_file(path, "wechat = { appid = \"a\"; };\n" POOLS, 0664);
	ok(chown(path, 0, shared) == 0, "a config of group nogroup, mode 0664");
	is_int(load_path(path, &config, logged, sizeof logged), EXIT_CONFIG,
		"... is refused: nogroup is not root's own group");
	config_free(&config);
	ok(strstr(logged, "the config file is writable by its group (mode 0664): whoever that "
		"lets change it could make the tools run a command of theirs") != NULL,
		"... saying so: %s", logged);
	write_file(path, "wechat = { appid = \"a\"; };\n" POOLS, 0644);
	if (chown(path, nobody, 0) == 0) {
		is_int(load_path(path, &config, logged, sizeof logged), EXIT_CONFIG,
			"a config another user owns is refused");
		config_free(&config);
		snprintf(text, sizeof text, "the config file is owned by another user (uid %u): "
			"whoever that lets change it could make the tools run a command of theirs",
			(unsigned)nobody);
		ok(strstr(logged, text) && strstr(logged, "run the tools as that user (sudo -u nobody "
			"...), not as root"), "... saying so, and as root, to run them as that user: %s",
			logged);
	} else
		ok(0, "chown nobody: %s", strerror(errno));
	unlink(path);
}

static void test_includes(void)
{
	char include[256], text[512], logged[2048];
	struct config config;

	snprintf(include, sizeof include, "%s/inc.cfg", dir);
	write_file(include, "wechat = { appid = \"a\";\n secret = \"s\"; };\n", 0644);
	snprintf(text, sizeof text, "@include \"%s\"\n" POOLS, include);
	is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG,
		"an inline secret in a readable included file is refused");
	ok(strstr(logged, "inc.cfg:2: config file") && strstr(logged, "accessible by group or others"),
		"naming the included file and line: %s", logged);
	config_free(&config);
	write_file(include, "pools = ( { name = \"p\"; source = \"wechat\";\n colour = 1; } );\n", 0600);
	snprintf(text, sizeof text, "wechat = { appid = \"a\"; };\n@include \"%s\"\n", include);
	is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG, "an error in an included file");
	ok(strstr(logged, "inc.cfg:2: unknown setting 'colour'") != NULL, "is reported at its own file and line: %s",
		logged);
	config_free(&config);
	/* libconfig 1.5 cuts a number beyond 32 bits without a word. */
	is_int(load("wechat = { appid = \"a\"; };\ndatabase = { path = \"/tmp/x.db\";\n "
		"busy_timeout = 4294967301; };\n" POOLS, 0600, &config, logged, sizeof logged),
		EXIT_CONFIG, "a number beyond 32 bits (libconfig would take 4294967301 as 5): 78");
	ok(strstr(logged, "qrpool.cfg:3: the number 4294967301 does not fit in 32 bits") &&
		strstr(logged, "write it 4294967301L if it is meant"), "... at its line, saying what to "
		"write: %s", logged);
	config_free(&config);
	write_file(include, "pools = ( { name = \"p\"; source = \"wechat\"; page = \"pages/x\";\n"
		"  width = 0x100000200; } );\n", 0600);
	snprintf(text, sizeof text, "wechat = { appid = \"a\"; };\n@include \"%s\"\n", include);
	is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG,
		"a hex beyond 32 bits in an included file: 78");
	ok(strstr(logged, "inc.cfg:2: the number 0x100000200 does not fit") != NULL,
		"... at the included file's line: %s", logged);
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; secret = \"4294967301\"; }; # 4294967301\n"
		"database = { path = \"/tmp/x.db\"; busy_timeout = 4294967301L; };\n" POOLS, 0600,
		&config, logged, sizeof logged), 0, "such a number in a string or a comment, or with L: "
		"loads: %s", logged);
	is_int((int)(config.busy_timeout_ms / 1000 / 1000000), 4294, "... the L one whole");
	config_free(&config);
	/* A Kafka property is placed at its own file and line, for librdkafka's refusals. */
	write_file(include, "kafka = { brokers = \"k:9092\";\n properties = [ \"linger.ms=5\" ]; };\n",
		0600);
	snprintf(text, sizeof text, "wechat = { appid = \"a\"; };\n@include \"%s\"\n" POOLS, include);
	is_int(load(text, 0600, &config, logged, sizeof logged), 0, "Kafka properties in an included "
		"file: %s", logged);
	ok(config.kafka.properties.count == 1 && strstr(config.kafka.properties.places[0], "inc.cfg:2"),
		"each placed at its own file and line: %s", config.kafka.properties.count ?
		config.kafka.properties.places[0] : "none");
	config_free(&config);
	/* A relative @include is next to the config, wherever the tool runs from. */
	write_file(include, "wechat = { appid = \"rel\"; };\n", 0600);
	is_int(load("@include \"inc.cfg\"\n" POOLS, 0600, &config, logged, sizeof logged), 0,
		"a relative @include, from another directory: %s", logged);
	is_str(config.wechat.appid ? config.wechat.appid : "", "rel", "found next to the config file");
	config_free(&config);
	/* ... and what is wrong in it names it whole, the chmod advice too. */
	for (size_t i = 0; i < sizeof relative / sizeof relative[0]; i++) {
		write_file(include, relative[i].content, relative[i].mode);
		is_int(load("@include \"inc.cfg\"\n" POOLS, 0600, &config, logged, sizeof logged),
			EXIT_CONFIG, "%s", relative[i].what);
		snprintf(text, sizeof text, relative[i].said, include);
		ok(strstr(logged, text) != NULL, "... naming the file whole (%s): %s", include, logged);
		config_free(&config);
	}
	is_int(load("kafka = { brokers = \"k:9092\"; properties = [ \"sasl.password=p\" ]; };\n" POOLS
		"wechat = { appid = \"a\"; };\n", 0644, &config, logged, sizeof logged), EXIT_CONFIG,
		"a secret Kafka property in a readable file is refused");
	ok(strstr(logged, "accessible by group or others") != NULL, "saying why: %s", logged);
	config_free(&config);
	ok(config_property_secret("sasl.pasword", 12) && config_property_secret("Sasl.Password", 13) &&
		config_property_secret("ssl.keystore.passwd", 19), "a misspelt or capitalised secret "
		"key is a secret too");
	ok(!config_property_secret("linger.ms", 9) && !config_property_secret("ssl.key.location", 16),
		"... and other keys are not");
	/* A file anyone may write to, even with no secret: anyone could set token.command. */
	is_int(load("wechat = { appid = \"a\"; };\n" POOLS, 0646, &config, logged, sizeof logged),
		EXIT_CONFIG, "a config file writable by others is refused (78)");
	ok(strstr(logged, "qrpool.cfg: the config file is writable by others (mode 0646)") != NULL,
		"saying why: %s", logged);
	config_free(&config);
	write_file(include, "wechat = { appid = \"a\"; };\n", 0602);
	snprintf(text, sizeof text, "@include \"%s\"\n" POOLS, include);
	is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG,
		"... and so is an included one");
	ok(strstr(logged, "inc.cfg: the config file is writable by others (mode 0602)") != NULL,
		"naming it: %s", logged);
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; };\n" POOLS, 0664, &config, logged, sizeof logged), 0,
		"a config file its group may write to loads (a user's own group, umask 002)");
	config_free(&config);
	test_config_shared_owner();
	is_int(load("kafka = { brokers = \"k:9092\"; properties = [ \"linger.ms=5\" ]; };\n" POOLS
		"wechat = { appid = \"a\"; };\n", 0644, &config, logged, sizeof logged), 0,
		"other Kafka properties are fine in a readable file");
	config_free(&config);
	unlink(include);
}

/* Values WeChat would refuse, or that would hang a run, are config errors. */
static void test_wechat_values(void)
{
	static const struct { const char *text, *logged, *what; } cases[] = {
		{ "wechat = { appid = \"a\"; timeout = \"0s\"; };\n" POOLS,
		  "wechat.timeout must be 100ms to 1h", "a timeout of 0 (no timeout at all)" },
		{ "wechat = { appid = \"a\"; connect_timeout = \"0s\"; };\n" POOLS,
		  "wechat.connect_timeout must be 100ms to 1h", "a connect_timeout of 0" },
		{ "wechat = { appid = \"a\"; timeout = \"30d\"; };\n" POOLS,
		  "wechat.timeout must be 100ms to 1h", "a timeout of 30 days (past an int of ms)" },
		{ "wechat = { appid = \"a\"; };\npools = ( { name = \"p\"; source = \"wechat\"; page = \"\"; } );\n",
		  "pool 'p': page is empty", "an empty page" },
		{ "wechat = { appid = \"a\"; };\npools = ( { name = \"p\"; source = \"wechat\"; "
		  "page = \"pages/\xff\xfe\"; } );\n", "page holds a space or a byte that is not printable ASCII",
		  "a page of bytes not ASCII" },
		{ "wechat = { appid = \"a\"; };\npools = ( { name = \"p\"; source = \"wechat\"; "
		  "page = \"pages/a\\\"b\"; } );\n", "page holds a '\"' or a '\\'",
		  "a page with a quote (JSON-escaped, it would outgrow the page limit)" },
	};
	static const struct { const char *base; int status; } bases[] = {
		{ "http://192.0.2.2:8080", EXIT_CONFIG }, { "http://api.weixin.qq.com", EXIT_CONFIG },
		{ "http://127.0.0.1.example.com", EXIT_CONFIG }, { "http://[::2]:80", EXIT_CONFIG },
		{ "http://localhost:8090/gw", 0 }, { "http://127.0.0.2", 0 }, { "http://[::1]:9", 0 },
		{ "https://api.weixin.qq.com", 0 },
	};
	char logged[2048], path[256], secret[128], text[512];
	struct config config;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		is_int(load(cases[i].text, 0600, &config, logged, sizeof logged), EXIT_CONFIG, "%s: 78",
			cases[i].what);
		ok(strstr(logged, cases[i].logged) != NULL, "... saying so: %s", logged);
		config_free(&config);
	}
	/* A user:password@ in api_base is masked where it is shown. */
	is_str(config_url_shown("https://gw:pass@gw.example.com/x@y", text, sizeof text),
		"https://***@gw.example.com/x@y", "api_base's password masked when shown");
	is_str(config_url_shown("https://gw.example.com/x@y", text, sizeof text),
		"https://gw.example.com/x@y", "... an @ past the host left alone");
	is_int(load("wechat = { appid = \"a\"; api_base = \"http://gw:pass@gw.example.com\"; };\n"
		POOLS, 0600, &config, logged, sizeof logged), EXIT_CONFIG, "api_base with a password, plain http: 78");
	ok(!strstr(logged, "pass") && strstr(logged, "'http://***@gw.example.com'"),
		"... its password not said: %s", logged);
	config_free(&config);
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		snprintf(text, sizeof text, "wechat = { appid = \"a\"; api_base = \"%s\"; };\n" POOLS,
			bases[i].base);
		is_int(load(text, 0600, &config, logged, sizeof logged), bases[i].status,
			"api_base %s: %s", bases[i].base, bases[i].status ? "78, the secret would go in clear" :
			"loads");
		if (bases[i].status)
			ok(strstr(logged, "plain http to another host") != NULL, "... saying why: %s", logged);
		config_free(&config);
	}
	is_int(load("wechat = { appid = \"a\"; quota_minute = \"2s\"; };\n" POOLS, 0600,
		&config, logged, sizeof logged), EXIT_CONFIG, "a 2 s quota minute against WeChat: 78");
	ok(strstr(logged, "quota_minute is shorter than WeChat's minute (60s) with api_base "
		"'https://api.weixin.qq.com'") != NULL, "... saying why: %s", logged);
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; quota_minute = \"2s\"; api_base = \"http://[::1]:9\"; "
		"};\n" POOLS, 0600, &config, logged, sizeof logged), 0,
		"... against a local stand-in: loads");
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; };\ndatabase = { path = \"/tmp/x.db\"; busy_timeout = 20L; "
		"};\n" POOLS, 0600, &config, logged, sizeof logged), 0,
		"a duration in whole seconds with L (64-bit): loads");
	is_int((int)config.busy_timeout_ms, 20000, "... as seconds");
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; quota_minute = \"90s\"; };\n" POOLS, 0600,
		&config, logged, sizeof logged), EXIT_CONFIG, "a quota minute of 90s against WeChat: 78");
	ok(strstr(logged, "quota_minute is not a whole number of WeChat's minute (60s) with api_base "
		"'https://api.weixin.qq.com': its windows would straddle WeChat's minutes") != NULL,
		"... saying why: %s", logged);
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; quota_minute = \"2m\"; };\n" POOLS, 0600,
		&config, logged, sizeof logged), 0, "quota_minute 2m (whole minutes: a slower rate) "
		"against WeChat: loads");
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; quota_minute = \"1m\"; };\n" POOLS, 0600,
		&config, logged, sizeof logged), 0, "quota_minute 1m against WeChat: loads");
	config_free(&config);
	snprintf(text, sizeof text, "wechat = { appid = \"a\"; api_base = \"http://127.0.0.1:9/%0*d\"; "
		"};\n" POOLS, CONFIG_API_BASE_MAX, 0);
	is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG,
		"an api_base over %d characters: 78", CONFIG_API_BASE_MAX);
	ok(strstr(logged, "api_base is longer than 256 characters") != NULL, "... saying so: %s",
		logged);
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; api_base = \"http://127.0.0.1:9/gw?key=v\"; };\n" POOLS,
		0600, &config, logged, sizeof logged), EXIT_CONFIG, "an api_base with a query: 78");
	ok(strstr(logged, "api_base must not have a query or a fragment ('?')") != NULL,
		"... saying why: %s", logged);
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; api_base = \"https://gw.example/wx#x\"; };\n" POOLS,
		0600, &config, logged, sizeof logged), EXIT_CONFIG, "... or a fragment: 78");
	config_free(&config);
	is_int(load("wechat = { appid = \"a\"; api_base = \"http://127.0.0.1:9/\"; };\n" POOLS, 0600,
		&config, logged, sizeof logged), 0, "an api_base ending in '/'");
	is_str(config.wechat.api_base, "http://127.0.0.1:9", "... has it dropped (no '//cgi-bin')");
	config_free(&config);
	snprintf(path, sizeof path, "%s/latin1-secret", dir);
	write_file(path, "test-secret-\xe9\n", 0600);
	snprintf(text, sizeof text, "wechat = { appid = \"a\"; secret_file = \"%s\"; };\n" POOLS, path);
	is_int(load(text, 0600, &config, logged, sizeof logged), 0, "a secret_file in Latin-1 loads");
	is_int(config_read_secret(&config, secret, sizeof secret), EXIT_CONFIG,
		"... but reading the secret is a config error (78), not out of memory (70)");
	config_free(&config);
	unlink(path);
	/* An empty secret is none: the config loads (even readable by others:
	 * it holds no secret), and a tool that needs one says so, 78, rather
	 * than WeChat refusing "" after a call spent. */
	is_int(load("wechat = { appid = \"a\"; secret = \"\"; };\n" POOLS, 0644, &config, logged,
		sizeof logged), 0, "an empty secret loads, as none");
	is_int(config_read_secret(&config, secret, sizeof secret), EXIT_CONFIG,
		"... and reading it is a config error (78)");
	config_free(&config);
}

static void test_secret_file(void)
{
	char secret_path[256], text[512], logged[2048], secret[128];
	struct config config;

	snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
	snprintf(text, sizeof text, "wechat = { appid = \"a\"; secret_file = \"%s\"; };\n" POOLS,
		secret_path);
	write_file(secret_path, "topsecret\n", 0640);
	is_int(load(text, 0644, &config, logged, sizeof logged), EXIT_CONFIG,
		"a group-readable secret_file is refused");
	config_free(&config);
	chmod(secret_path, 0600);
	is_int(load(text, 0644, &config, logged, sizeof logged), 0,
		"a private secret_file in a readable config is fine");
	ok(config_read_secret(&config, secret, sizeof secret) == 0 && !strcmp(secret, "topsecret"),
		"the secret is read without its newline");
	{
		char echoed[64] = "echoed: secret=topsecret&appid=a";

		log_redact(echoed);
		is_str(echoed, "echoed: secret=***&appid=a", "... and masked in log lines from then on");
	}
	config_free(&config);
	unlink(secret_path);
	is_int(load(text, 0644, &config, logged, sizeof logged), 0,
		"a secret_file that is not there: the config loads (report and resolve need no secret)");
	tap_capture_start();
	is_int(config_read_secret(&config, secret, sizeof secret), EXIT_CONFIG,
		"... reading the secret is a config error");
	tap_capture_end(logged, sizeof logged);
	ok(strstr(logged, "cannot read wechat.secret_file") && strstr(logged, secret_path),
		"... naming the file: %s", logged);
	/* It comes later, readable by others: refused as it is read. */
	write_file(secret_path, "topsecret\n", 0644);
	tap_capture_start();
	is_int(config_read_secret(&config, secret, sizeof secret), EXIT_CONFIG,
		"a secret_file made after the load, mode 644: refused as it is read");
	tap_capture_end(logged, sizeof logged);
	ok(strstr(logged, "accessible by group or others (mode 0644)") != NULL,
		"... saying which chmod: %s", logged);
	/* A NUL in it, or more than fits (even when what is cut off follows a
	 * blank): refused, not cut short. */
	{
		static const char with_nul[] = "abcd1234\0garbage\n";
		char longer[sizeof secret + 16];
		FILE *file = fopen(secret_path, "w");

		fwrite(with_nul, 1, sizeof with_nul - 1, file);
		fclose(file);
		chmod(secret_path, 0600);
		tap_capture_start();
		is_int(config_read_secret(&config, secret, sizeof secret), EXIT_CONFIG,
			"a secret_file holding a NUL byte: refused");
		tap_capture_end(logged, sizeof logged);
		ok(strstr(logged, "holds a NUL byte") != NULL, "... saying so: %s", logged);
		memset(longer, 'a', sizeof longer);
		longer[sizeof secret - 2] = ' ';
		longer[sizeof longer - 1] = '\0';
		write_file(secret_path, longer, 0600);
		tap_capture_start();
		is_int(config_read_secret(&config, secret, sizeof secret), EXIT_CONFIG,
			"a secret_file longer than fits, a blank where it would be cut: refused");
		tap_capture_end(logged, sizeof logged);
		ok(strstr(logged, "is too long") != NULL, "... saying so: %s", logged);
		memset(longer, 'b', sizeof secret - 1);
		strcpy(longer + sizeof secret - 1, "\n");
		write_file(secret_path, longer, 0600);
		ok(config_read_secret(&config, secret, sizeof secret) == 0 &&
			strlen(secret) == sizeof secret - 1, "... as long as fits, and its newline: taken");
	}
	config_free(&config);
	unlink(secret_path);
}

/* Secrets of the config are masked in log lines as soon as it is loaded: a
 * Kafka property's value, and the words of one made of words. */
static void test_secrets_masked(void)
{
	char logged[2048], text[256];
	struct config config;

	is_int(load("kafka = { brokers = \"k:9092\"; properties = [ \"sasl.password=Pa55word-kafka\", "
		"\"sasl.oauthbearer.config=principal=me clientSecret=OAuthS3cretVAL scope=kafka\" ]; };\n"
		"redis = { password = \"redisPa55\"; };\n"
		"wechat = { appid = \"a\"; secret = \"0123456789abcdef\"; };\n" POOLS, 0600, &config,
		logged, sizeof logged), 0, "a private config with secrets loads");
	snprintf(text, sizeof text, "auth Pa55word-kafka; beginning at: clientSecret=OAuthS3cretVAL "
		"scope=kafka; redisPa55; secret=0123456789abcdef; principal=me, OAuthS3cretVAL");
	log_redact(text);
	is_str(text, "auth ***; beginning at: *** scope=kafka; ***; secret=***; principal=me, ***",
		"each secret masked, and in a value of words each one whose key names a secret, and "
		"its value; not the others: %s", text);
	config_free(&config);
}

/* `dir_given` given to user `nobody`: the config `text` (as load writes it)
 * or the one at `path` is refused for it (78), naming it; `dir_given` given
 * back to root. Four tests. */
static void refused_in_nobodys(const char *dir_given, uid_t nobody, const char *text,
	const char *path, const char *what)
{
	char logged[2048], said[600];
	struct config config;

	ok(chown(dir_given, nobody, 0) == 0, "%s", what);
	is_int(text ? load(text, 0644, &config, logged, sizeof logged) :
		load_path(path, &config, logged, sizeof logged), EXIT_CONFIG, "... is refused");
	config_free(&config);
	snprintf(said, sizeof said, "in a directory owned by another user (uid %u): %s",
		(unsigned)nobody, dir_given);
	ok(strstr(logged, said) != NULL, "... saying so: %s", logged);
	ok(chown(dir_given, 0, 0) == 0, "(given back to root)");
}

/* A CA bundle others can write, or put in a directory others can write to
 * (not sticky) or own, could vouch for anyone: refused. */
static void test_ca_writable(void)
{
	static const char wechat_ca[] = "wechat = { appid = \"a\"; ca_bundle = \"%s\"; };\n" POOLS;
	static const char kafka_ca[] = "kafka = { brokers = \"k:9092\"; properties = "
		"[ \"ssl.ca.location=%s\" ]; };\nwechat = { appid = \"a\"; };\n" POOLS;
	static const struct {
		const char *format;
		mode_t file, dir;
		const char *expect;  /* NULL: it loads */
		const char *what;
	} cases[] = {
		{ wechat_ca, 0646, 0700, "is writable by others (mode 0646): whoever that lets change "
		  "it could add a CA of theirs and pose as the server; run chmod go-w",
		  "a ca_bundle writable by others" },
		{ kafka_ca, 0646, 0700, "ssl.ca.location", "kafka's ssl.ca.location writable by others" },
		{ kafka_ca, 0644, 0700, NULL, "... not once it is 0644" },
		{ kafka_ca, 0644, 0777, "is in a directory writable by others (mode 0777): ",
		  "a CA bundle in a directory others can write to" },
		{ kafka_ca, 0644, 01777, NULL, "... but for a sticky one (/tmp)" },
	};
	const struct passwd *user = getpwnam("nobody");
	char ca_dir[256], ca[300], text[512], logged[2048];
	struct config config;

	snprintf(ca_dir, sizeof ca_dir, "%s/ca", dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", ca_dir);
	mkdir(ca_dir, 0700);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_file(ca, "-----BEGIN CERTIFICATE-----\n", cases[i].file);
		chmod(ca_dir, cases[i].dir);
		snprintf(text, sizeof text, cases[i].format, ca);
		is_int(load(text, 0644, &config, logged, sizeof logged),
			cases[i].expect ? EXIT_CONFIG : 0, "%s: %s", cases[i].what,
			cases[i].expect ? "78" : "loads");
		if (cases[i].expect)
			ok(strstr(logged, cases[i].expect) != NULL, "... saying so: %s", logged);
		config_free(&config);
	}
	/* Root's bundle in another user's directory: its owner may rename another
	 * over it, whatever its mode. */
	chmod(ca_dir, 0755);
	if (geteuid() != 0 || !user)
		tap_skip(4, "not root, or no nobody to give a directory to");
	else {
		snprintf(text, sizeof text, wechat_ca, ca);
		refused_in_nobodys(ca_dir, user->pw_uid, text, NULL,
			"a CA bundle of root's, 0644, in nobody's directory");
	}
	unlink(ca);
	rmdir(ca_dir);
}

/* A POSIX ACL (the kernel's xattr form) granting user `uid` rwx, others r-x:
 * the mode's group bits, its mask, show rwx. */
#define ACL_GRANTING_SIZE (4 + 5 * 8)
static const void *acl_granting(uid_t uid)
{
	static unsigned char acl[ACL_GRANTING_SIZE];
	static const struct { uint16_t tag, perm; } entries[] = {
		{ 0x01, 7 }, { 0x02, 7 }, { 0x04, 5 }, { 0x10, 7 }, { 0x20, 5 },
	};
	uint32_t version = 2;

	memcpy(acl, &version, 4);
	for (size_t i = 0; i < 5; i++) {
		uint32_t id = entries[i].tag == 0x02 ? (uint32_t)uid : UINT32_MAX;

		memcpy(acl + 4 + 8 * i, &entries[i].tag, 2);
		memcpy(acl + 4 + 8 * i + 2, &entries[i].perm, 2);
		memcpy(acl + 4 + 8 * i + 4, &id, 4);
	}
	return acl;
}

/* The config's directories, as written and as resolved, may be changed by
 * this user and root alone: a rename in one swaps another file in between
 * libconfig's read and the look at the file's mode and owner. */
static void test_config_directories(void)
{
	const struct passwd *user = getpwnam("nobody");
	char sub[256], path[320], link[256], include[320], text[1200], logged[2048];
	struct config config;

	snprintf(sub, sizeof sub, "%s/etc", dir);
	snprintf(path, sizeof path, "%s/qrpool.cfg", sub);
	mkdir(sub, 0700);
	write_file(path, "wechat = { appid = \"a\"; };\n" POOLS, 0600);
	chmod(sub, 0777);
	is_int(load_path(path, &config, logged, sizeof logged), EXIT_CONFIG,
		"a config in a directory others can write to is refused (78)");
	config_free(&config);
	snprintf(text, sizeof text, "qrpool.cfg: the config file is in a directory writable by others "
		"(mode 0777): %s: whoever that lets change it could make the tools run a command of "
		"theirs (token.command) or send the app secret elsewhere (api_base); run chmod go-w %s",
		sub, sub);
	ok(strstr(logged, text) != NULL, "... naming the directory and the fix: %s", logged);
	chmod(sub, 01777);
	is_int(load_path(path, &config, logged, sizeof logged), 0, "... but for a sticky one of "
		"this user's (as /tmp): loads");
	config_free(&config);
	/* A directory before "..": what is in it is not on the way. */
	chmod(sub, 0700);
	snprintf(link, sizeof link, "%s/open", dir);
	mkdir(link, 0777);
	chmod(link, 0777);
	snprintf(include, sizeof include, "%s/../etc/qrpool.cfg", link);
	is_int(load_path(include, &config, logged, sizeof logged), 0,
		"a config named through an open directory's \"..\": loads (%s)", logged);
	config_free(&config);
	rmdir(link);
	/* A POSIX ACL letting another user write: the group bits are its mask. */
	if (user && setxattr(sub, "system.posix_acl_access", acl_granting(user->pw_uid),
			ACL_GRANTING_SIZE, 0) == 0) {
		is_int(load_path(path, &config, logged, sizeof logged), EXIT_CONFIG,
			"a config in a directory whose ACL lets nobody write is refused");
		config_free(&config);
		ok(strstr(logged, "in a directory writable by its group or the users its ACL names") !=
			NULL, "... saying so: %s", logged);
		removexattr(sub, "system.posix_acl_access");
		chmod(sub, 0700);
	} else
		tap_skip(2, "no nobody, or no POSIX ACLs on this file system");
	/* An include in such a directory, the config itself in a safe one. */
	chmod(sub, 0777);
	snprintf(include, sizeof include, "%s/inc.cfg", sub);
	write_file(include, "wechat = { appid = \"a\"; };\n", 0600);
	snprintf(text, sizeof text, "@include \"%s\"\n" POOLS, include);
	is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG,
		"an included file in a directory others can write to is refused");
	config_free(&config);
	ok(strstr(logged, "inc.cfg: the config file is in a directory writable by others") != NULL,
		"... naming it: %s", logged);
	unlink(include);
	chmod(sub, 0700);
	if (geteuid() != 0 || !user) {
		tap_skip(7, "not root, or no nobody to give a directory or a link to");
	} else {
		/* Root's config named through another user's link: read where it
		 * leads, but the link chose which file. */
		snprintf(link, sizeof link, "%s/main-link.cfg", dir);
		if (symlink(path, link) != 0 || lchown(link, user->pw_uid, 0) != 0)
			ok(0, "a link of nobody's: %s", strerror(errno));
		is_int(load_path(link, &config, logged, sizeof logged), EXIT_CONFIG,
			"root's config named through a symbolic link another user owns is refused");
		config_free(&config);
		unlink(link);
		/* Root's file included through another user's link (libconfig opens an
		 * include as named), or in their directory. */
		write_file(include, "wechat = { appid = \"a\"; };\n", 0600);
		snprintf(link, sizeof link, "%s/link.cfg", dir);
		if (symlink(include, link) != 0 || lchown(link, user->pw_uid, 0) != 0)
			ok(0, "a link of nobody's: %s", strerror(errno));
		snprintf(text, sizeof text, "@include \"%s\"\n" POOLS, link);
		is_int(load(text, 0600, &config, logged, sizeof logged), EXIT_CONFIG,
			"root's include through a symbolic link another user owns is refused");
		config_free(&config);
		unlink(include);
		snprintf(text, sizeof text, "reached through a symbolic link owned by another user "
			"(uid %u): %s", (unsigned)user->pw_uid, link);
		ok(strstr(logged, text) != NULL, "... saying so: %s", logged);
		unlink(link);
		refused_in_nobodys(sub, user->pw_uid, NULL, path, "root's config in nobody's directory");
	}
	unlink(path);
	rmdir(sub);
}

/* Files kafka.properties names: absolute, as every path of the config (the
 * tool opens them from wherever it runs); private keys private. */
static void test_property_files(void)
{
	static const struct {
		const char *property;
		mode_t mode;
		const char *expect;  /* NULL: it loads */
		const char *what;
	} cases[] = {
		{ "ssl.ca.location=ca.pem", 0644, "kafka.properties ssl.ca.location 'ca.pem' must be an "
		  "absolute path", "a relative ssl.ca.location" },
		{ "ssl.ca.location=probe", 0644, NULL, "ssl.ca.location=probe (the system's CAs)" },
		{ "sasl.kerberos.keytab=krb5.keytab", 0600, "must be an absolute path",
		  "a relative keytab" },
		{ "ssl.key.location=%s", 0640, "ssl.key.location %s is accessible by group or others "
		  "(mode 0640): it holds a secret; run chmod 600", "a private key its group can read" },
		{ "ssl.keystore.location=%s", 0604, "accessible by group or others",
		  "a keystore others can read" },
		{ "ssl.key.location=%s", 0600, NULL, "... a private key of mode 600 loads" },
		{ "ssl.certificate.location=%s", 0644, NULL, "a certificate may be read by all" },
	};
	char file[256], property[512], expect[512], text[1024], logged[2048];
	struct config config;

	snprintf(file, sizeof file, "%s/client.pem", dir);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_file(file, "-----BEGIN PRIVATE KEY-----\n", cases[i].mode);
		snprintf(property, sizeof property, cases[i].property, file);
		snprintf(text, sizeof text, "kafka = { brokers = \"k:9092\"; properties = [ \"%s\" ]; };\n"
			"wechat = { appid = \"a\"; };\n" POOLS, property);
		is_int(load(text, 0644, &config, logged, sizeof logged), cases[i].expect ? EXIT_CONFIG : 0,
			"%s: %s", cases[i].what, cases[i].expect ? "78" : "loads");
		if (cases[i].expect) {
			snprintf(expect, sizeof expect, cases[i].expect, file);
			ok(strstr(logged, expect) != NULL, "... saying so: %s", logged);
		}
		config_free(&config);
	}
	unlink(file);
}

/* --dump-config's output, into `out` (NUL-ended). */
static void dump_config(const struct config *config, char *out, size_t size)
{
	FILE *dump;

	memset(out, 0, size);
	if ((dump = fmemopen(out, size - 1, "w"))) {
		config_dump(config, dump);
		fclose(dump);
	}
}

/* A URL's password in any Kafka property (an OAuth token endpoint's, whose
 * key names no secret): masked in log lines and in the dump. */
static void test_url_password_masked(void)
{
	char logged[2048], text[256], dumped[4096];
	struct config config;

	is_int(load("kafka = { brokers = \"k:9092\"; properties = [ "
		"\"sasl.oauthbearer.token.endpoint.url=https://client:Url:Pa55@idp.example.com:8443/t\", "
		"\"client.id=https://nouser.example.com/\" ]; };\n" LINK_POOL, 0600, &config, logged,
		sizeof logged), 0, "a config with a URL's password in a property loads");
	snprintf(text, sizeof text, "fetching https://client:Url:Pa55@idp.example.com:8443/t failed");
	log_redact(text);
	is_str(text, "fetching https://client:***@idp.example.com:8443/t failed",
		"the URL's password masked in a log line: %s", text);
	dump_config(&config, dumped, sizeof dumped);
	ok(strstr(dumped, "https://client:********@idp.example.com:8443/t") && !strstr(dumped, "Pa55"),
		"... and in the dump, the rest of the URL shown");
	ok(strstr(dumped, "client.id=https://nouser.example.com/") != NULL,
		"a URL without a password shown as it is");
	config_free(&config);
}

/* The redis section: defaults, refusals and the password's rules. */
static void test_redis(void)
{
	static const struct { const char *text; const char *expect; const char *what; } refusals[] = {
		{ "redis = { unix_socket = \"/r.sock\"; port = 6380; };\n" LINK_POOL, "not both",
		  "redis: a socket and a port" },
		{ "redis = { ttl = \"500ms\"; };\n" LINK_POOL, "at least 1s", "redis: a ttl under a second" },
		{ "redis = {\n prefx = \"x\"; };\n" LINK_POOL, "qrpool.cfg:2: unknown setting 'prefx' in redis",
		  "redis: a misspelt key" },
		{ "redis = { password = \"p\"; };\n" LINK_POOL, "accessible by group or others",
		  "redis: an inline password in a world-readable file" },
		{ "redis = { password = \"p\"; password_file = \"/x\"; };\n" LINK_POOL,
		  "password or password_file, not both", "redis: both password forms" },
		{ "redis = { timeout = \"2m\"; };\n" LINK_POOL, "redis timeouts must be above zero and at most 1m",
		  "redis: a command timeout of 2 minutes" },
		{ "redis = {\n host = \"[::1]\"; };\n" LINK_POOL, "qrpool.cfg:2: redis host '[::1]': an IPv6 "
		  "address goes without brackets (host = \"::1\")", "redis: an IPv6 host in brackets" },
		{ "redis = { host = \"cache.local:6380\"; };\n" LINK_POOL, "redis host 'cache.local:6380': "
		  "the port goes apart (port = 6380)", "redis: a port in host" },
	};
	char logged[2048], password[64], dumped[4096];
	struct config config;

	is_int(load("redis = { };\n" LINK_POOL, 0600, &config, logged, sizeof logged), 0,
		"an empty redis section loads");
	ok(config.has_redis && !strcmp(config.redis.host, "127.0.0.1") && config.redis.port == 6379 &&
		!strcmp(config.redis.prefix, "qrpool:rid:") && config.redis.ttl_ms == 30LL * 86400000,
		"redis defaults: 127.0.0.1:6379, prefix qrpool:rid:, ttl 30 days");
	ok(config_read_redis_password(&config, password, sizeof password) == 0 && !password[0],
		"no password: an empty one");
	config_free(&config);
	is_int(load("redis = { host = \"::1\"; port = 6380; };\n" LINK_POOL, 0600, &config, logged,
		sizeof logged), 0, "an IPv6 host, bare, loads");
	config_free(&config);
	is_int(load("redis = { password = \"\"; };\n" LINK_POOL, 0644, &config, logged, sizeof logged), 0,
		"an empty password loads, as none (no AUTH), in a file others may read");
	ok(!config.redis.password && config_read_redis_password(&config, password, sizeof password) == 0 &&
		!password[0], "... no password");
	config_free(&config);
	for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
		is_int(load(refusals[i].text, i == 3 ? 0644 : 0600, &config, logged, sizeof logged),
			EXIT_CONFIG, "%s: exit 78", refusals[i].what);
		ok(strstr(logged, refusals[i].expect) != NULL, "%s: message says '%s'", refusals[i].what,
			refusals[i].expect);
		config_free(&config);
	}
	is_int(load("redis = { password = \"hunter2\"; };\n" LINK_POOL, 0600, &config, logged,
		sizeof logged), 0, "an inline password in a private file loads");
	ok(config_read_redis_password(&config, password, sizeof password) == 0 &&
		!strcmp(password, "hunter2"), "the inline password is read");
	dump_config(&config, dumped, sizeof dumped);
	ok(strstr(dumped, "password = \"********\"") && !strstr(dumped, "hunter2"),
		"the dump masks the password");
	config_free(&config);
	/* The dump is what the tools use: the cache's PX is in milliseconds. */
	is_int(load("redis = { ttl = \"1500ms\"; };\n" LINK_POOL, 0600, &config, logged, sizeof logged),
		0, "a ttl of 1500ms loads");
	dump_config(&config, dumped, sizeof dumped);
	ok(strstr(dumped, "ttl = \"1500ms\";") != NULL, "... dumped as 1500ms, not 1s");
	config_free(&config);
	/* So is a password in wechat.api_base (a gateway's). */
	is_int(load("wechat = { appid = \"a\"; api_base = \"https://gw:gw-pass@gw.example.com\"; };\n"
		LINK_POOL, 0600, &config, logged, sizeof logged), 0, "api_base with a user:password@ loads");
	dump_config(&config, dumped, sizeof dumped);
	ok(strstr(dumped, "api_base = \"https://***@gw.example.com\"") && !strstr(dumped, "gw-pass"),
		"the dump masks api_base's user and password");
	config_free(&config);
}

static void test_topic_limit(void)
{
	char logged[2048];
	struct config config;

	is_int(load("pools = ( { name = \"l\"; source = \"link\"; url_prefix = \"https://x/\";\n"
		"topic = \"" TOPIC_249 "\"; } );\n", 0600, &config, logged, sizeof logged), 0,
		"a topic of 249 characters, Kafka's longest: taken");
	ok(config.pool_count == 1 && strlen(config.pools[0].topic) == 249, "... as it is");
	config_free(&config);
}

int main(void)
{
	char path[256];

	if (!mkdtemp(dir))
		return 1;
	log_init("test_config", 0);
	test_valid();
	test_refusals();
	test_topic_limit();
	test_secret_file();
	test_secrets_masked();
	test_url_password_masked();
	test_ca_writable();
	test_config_directories();
	test_property_files();
	test_wechat_values();
	test_includes();
	test_redis();
	test_unreadable();
	snprintf(path, sizeof path, "%s/qrpool.cfg", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
