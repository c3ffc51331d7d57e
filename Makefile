# qrpool — see README.md.  `make check` and `make demo` install missing Debian
# packages first (scripts/install-deps), so both work on a fresh Debian 12.
.SUFFIXES:

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/qrpool
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
OPTFLAGS ?= -O2 -g
WERROR ?= -Werror
SAN ?=

# SAN=1 builds everything with ASan + UBSan into its own tree, so switching
# between the two builds never mixes objects.
ifeq ($(SAN),1)
BUILD := build/san
BIN := build/san/bin
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD := build/std
BIN := bin
SANFLAGS :=
endif

# Hardening, as Debian builds its packages: stack canaries, glibc's checked
# string and I/O functions (they need the optimiser, and the sanitizers do
# that checking themselves), and the relocations read-only once loaded.
HARDEN_CFLAGS ?= -fstack-protector-strong
HARDEN_LDFLAGS ?= -Wl,-z,relro,-z,now
# (Level 2 unless the compiler sets a level of its own, as Ubuntu's sets 3.)
ifneq ($(SAN),1)
ifneq ($(filter -O1 -O2 -O3 -Os -Og -Ofast,$(OPTFLAGS)),)
ifeq ($(shell $(CC) $(OPTFLAGS) -dM -E -x c /dev/null 2>/dev/null | grep -c _FORTIFY_SOURCE),0)
HARDEN_CFLAGS += -D_FORTIFY_SOURCE=2
endif
endif
endif

override CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers \
	$(OPTFLAGS) $(HARDEN_CFLAGS) $(SANFLAGS) -MMD -MP -Isrc -I$(BUILD) $(CFLAGS)
override LDFLAGS := $(SANFLAGS) $(HARDEN_LDFLAGS) $(LDFLAGS)

# --- objects: the shared library, one module per concern --------------------
CORE := exitcode log parse interrupt cli
STAGE := $(CORE) config config_dump db schema item rid progress sha256 store idset
STAGE_PKGS := sqlite3 libconfig libcrypto
o = $(patsubst %,$(BUILD)/%.o,$(1))

# --- tools: each names only the objects and packages it needs ---------------
TOOLS := qrpool-plan qrpool-pending qrpool-fetch qrpool-render qrpool-publish qrpool-report
TOOLS += qrpool-claim qrpool-resolve qrpool-prune
TEST_SERVERS := local-kafka fake-wechat

qrpool-plan_OBJS := $(call o,$(STAGE) kafka depth plan qrfit qrpool-plan)
qrpool-plan_PKGS := $(STAGE_PKGS) rdkafka libqrencode
qrpool-plan_LDLIBS := -pthread
qrpool-pending_OBJS := $(call o,$(STAGE) qrpool-pending)
qrpool-pending_PKGS := $(STAGE_PKGS)
qrpool-prune_OBJS := $(call o,$(STAGE) qrpool-prune)
qrpool-prune_PKGS := $(STAGE_PKGS)
qrpool-claim_OBJS := $(call o,$(STAGE) kafka params binding cache imagefile consumer claim qrpool-claim)
qrpool-claim_PKGS := $(STAGE_PKGS) rdkafka jansson hiredis
qrpool-resolve_OBJS := $(call o,$(STAGE) binding cache resolve qrpool-resolve)
qrpool-resolve_PKGS := $(STAGE_PKGS) hiredis
qrpool-publish_OBJS := $(call o,$(STAGE) kafka publish publish_committer qrpool-publish)
qrpool-publish_PKGS := $(STAGE_PKGS) rdkafka
qrpool-report_OBJS := $(call o,$(STAGE) kafka depth report report_output qrpool-report)
qrpool-report_PKGS := $(STAGE_PKGS) rdkafka jansson
qrpool-report_LDLIBS := -pthread
local-kafka_OBJS := $(call o,$(CORE) mockctl mockwake local-kafka)
local-kafka_PKGS := rdkafka
local-kafka_LDLIBS := -pthread
WECHAT := wechat http quota token
qrpool-fetch_OBJS := $(call o,$(STAGE) $(WECHAT) input multi fetch qrpool-fetch)
qrpool-fetch_PKGS := $(STAGE_PKGS) libcurl jansson
fake-wechat_OBJS := $(call o,$(CORE) rid fake_wechat_base fake_wechat_options fake_wechat_tokens fake_wechat_stats \
	fake_wechat_image fake_wechat_code fake_wechat_http fake-wechat)
fake-wechat_PKGS := libmicrohttpd libqrencode libpng libjpeg jansson zlib
qrpool-render_OBJS := $(call o,$(STAGE) qrfit render render_run qrpool-render)
qrpool-render_PKGS := $(STAGE_PKGS) libqrencode libpng
qrpool-render_LDLIBS := -pthread

# Test helpers: small independent clients the shell tests use, built next to
# the tools so $QRPOOL_BIN finds them, and never installed.
TEST_HELPERS := kafka-offsets
kafka-offsets_OBJS := $(call o,$(CORE) kafka-offsets)
kafka-offsets_PKGS := rdkafka

ALL_BINS := $(addprefix $(BIN)/,$(TOOLS) $(TEST_SERVERS) $(TEST_HELPERS))
# clockstep.so, LD_PRELOADed by tests to step the wall clock: built without
# the sanitizers (it runs before their runtime is set up).
ALL_BINS += $(BIN)/clockstep.so

all: $(ALL_BINS)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CFLAGS) $(shell $(PKG_CONFIG) --cflags $(ALL_PKGS)) -c -o $@ $<

# Helper objects share $(BUILD) with the library's: a helper never takes a
# module's name.
$(BUILD)/%.o: tests/helpers/%.c | $(BUILD)
	$(CC) $(CFLAGS) $(shell $(PKG_CONFIG) --cflags $(ALL_PKGS)) -c -o $@ $<

$(BUILD)/schema.o: $(BUILD)/schema.c
	$(CC) $(CFLAGS) -c -o $@ $<

# The schema is compiled into the tools, so an installed tool never depends on
# finding schema/ at run time; schema/ stays the readable source of truth.
$(BUILD)/schema.c: scripts/embed-schema $(sort $(wildcard schema/*.sql)) | $(BUILD)
	scripts/embed-schema $(sort $(wildcard schema/*.sql)) > $@.tmp && mv $@.tmp $@

define tool_rule
$(BIN)/$(1): $$($(1)_OBJS) | $(BIN)
	$$(CC) $$(LDFLAGS) -o $$@ $$($(1)_OBJS) $$(shell $$(PKG_CONFIG) --libs $$($(1)_PKGS)) $$($(1)_LDLIBS) -lm
endef
$(foreach t,$(TOOLS) $(TEST_SERVERS) $(TEST_HELPERS),$(eval $(call tool_rule,$(t))))

ALL_PKGS := $(sort $(foreach t,$(TOOLS) $(TEST_SERVERS) $(TEST_HELPERS),$($(t)_PKGS)))

$(BUILD) $(BIN) $(BUILD)/tests:
	mkdir -p $@

$(BIN)/clockstep.so: tests/helpers/clockstep.c | $(BIN)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -O2 -fPIC -shared -o $@ $< -ldl

# --- tests: unit tests (TAP, one per module) and shell tests (TAP, per tool) --
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_BINS := $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))
test_OBJS := $(call o,$(STAGE) kafka depth plan publish publish_committer)
test_PKGS := $(STAGE_PKGS) rdkafka
test_OBJS += $(call o,params imagefile $(WECHAT) input multi qrfit render)
test_PKGS += jansson libcurl libqrencode libpng

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(test_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(test_OBJS) \
		$(shell $(PKG_CONFIG) --libs $(test_PKGS)) -pthread -lm

deps:
	@scripts/install-deps

build-deps:
	@scripts/install-deps --build

# The tests mostly wait (compressed quota minutes, Kafka's timers): three at
# a time on two cores, the longest started first so none is left to run
# alone at the end (their order otherwise does not matter).
PROVE_JOBS ?= 3
TESTS_LONGEST := 61-scripts 51-publish-faults 74-claim-group 30-fetch-stop 30-fetch-tokens \
	10-plan 20-fake-wechat 60-report 31-fetch-outage 30-fetch-quota 75-claim-outage
TESTS := $(TESTS_LONGEST:%=tests/t/%.t) \
	$(filter-out $(TESTS_LONGEST:%=tests/t/%.t),$(sort $(wildcard tests/t/*.t)))
check test: deps
	$(MAKE) all units $(BUILD)/bench/render_floor fuzz-seeds
	QRPOOL_BIN=$(CURDIR)/$(BIN) QRPOOL_NO_SKIP=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		prove -j$(PROVE_JOBS) --timer --directives $(TESTS) $(UNIT_BINS)

units: $(UNIT_BINS)

# bench-render's floor: render_code() in a bare loop, no staging.
RENDER_FLOOR_OBJS := $(call o,exitcode log parse cli interrupt config qrfit render)
$(BUILD)/bench/render_floor: tests/bench/render_floor.c $(RENDER_FLOOR_OBJS)
	mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(RENDER_FLOOR_OBJS) \
		$(shell $(PKG_CONFIG) --libs libconfig libqrencode libpng) -pthread -lm

bench: deps
	$(MAKE) all
	QRPOOL_BIN=$(CURDIR)/$(BIN) tests/bench/run-all

demo: deps
	$(MAKE) all
	QRPOOL_BIN=$(CURDIR)/$(BIN) scripts/demo

# Fuzz targets (libFuzzer, clang) over the parsers: `make fuzz` runs each for
# FUZZ_SECONDS; `make check` builds them and runs each over its seeds once
# (fuzz-seeds), so a target that no longer links or a seed that crashes
# fails CI rather than the next fuzzing session.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
FUZZ_SOURCES := $(addprefix src/,$(addsuffix .c,exitcode log parse cli interrupt config config_dump db item rid sha256 kafka depth plan))
FUZZ_ENV := LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_SOURCES) $(wildcard src/*.h) $(BUILD)/schema.c
	mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -I$(BUILD) -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ $< $(FUZZ_SOURCES) $(BUILD)/schema.c \
		$$($(PKG_CONFIG) --cflags --libs $(STAGE_PKGS) rdkafka) -pthread -lm

# (Leaks are left to make fuzz and make check SAN=1: LeakSanitizer needs ptrace,
# which some CI containers refuse; ASan and UBSan do not.)
fuzz-seeds: $(FUZZ_BINS)
	for target in $(FUZZ_TARGETS); do \
		$(BUILD)/fuzz/$$target -runs=0 -timeout=10 -detect_leaks=0 \
			-artifact_prefix=$(BUILD)/fuzz/$$target- tests/fuzz/seeds/$$target || exit 1; \
	done

fuzz: deps
	$(MAKE) $(FUZZ_BINS)
	for target in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/fuzz/$$target.corpus; \
		$(FUZZ_ENV) $(BUILD)/fuzz/$$target -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-artifact_prefix=$(BUILD)/fuzz/$$target- $(BUILD)/fuzz/$$target.corpus \
			tests/fuzz/seeds/$$target || exit 1; \
	done

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/schema $(DESTDIR)$(DATADIR)/scripts \
		$(DESTDIR)$(DATADIR)/cron
	install -m 755 $(addprefix $(BIN)/,$(TOOLS)) $(DESTDIR)$(BINDIR)
	install -m 644 schema/*.sql $(DESTDIR)$(DATADIR)/schema
	install -m 755 $(INSTALL_SCRIPTS) $(DESTDIR)$(DATADIR)/scripts
	for f in $(CRON_FILES); do \
		sed -e 's|/usr/local/share/qrpool|@DATADIR@|g' -e 's|/usr/local/bin|@BINDIR@|g' \
			-e 's|/usr/local|$(PREFIX)|g' -e 's|@DATADIR@|$(DATADIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
			$$f >$(DESTDIR)$(DATADIR)/cron/$${f##*/} && \
		chmod 644 $(DESTDIR)$(DATADIR)/cron/$${f##*/} || exit 1; \
	done
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(wildcard man/*.5) $(DESTDIR)$(MANDIR)/man5

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(wildcard man/*.1)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(wildcard man/*.5)))
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/schema/,$(notdir $(wildcard schema/*.sql)))
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/scripts/,$(notdir $(INSTALL_SCRIPTS)))
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/cron/,$(notdir $(CRON_FILES)))
	-rmdir $(DESTDIR)$(DATADIR)/schema $(DESTDIR)$(DATADIR)/scripts $(DESTDIR)$(DATADIR)/cron \
		$(DESTDIR)$(DATADIR) 2>/dev/null

INSTALL_SCRIPTS := $(filter-out scripts/embed-schema scripts/demo,$(wildcard scripts/*))
CRON_FILES := $(wildcard cron/*)

clean:
	rm -rf build $(addprefix bin/,$(TOOLS) $(TEST_SERVERS) $(TEST_HELPERS))

.PHONY: all check test units bench demo fuzz fuzz-seeds install uninstall clean deps build-deps

-include $(wildcard $(BUILD)/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d)
