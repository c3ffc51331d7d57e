# Shared helpers for the shell tests (TAP). Source it first:  . "${0%/*}/lib.sh"
# Each test gets a temp dir ($T) removed on exit, the tools on $PATH from
# $QRPOOL_BIN, and small TAP functions. Style from jq's tests/setup.
set -eu
export LC_ALL=C
TESTS_DIR=$(cd "${0%/*}/.." && pwd)
ROOT=$(cd "$TESTS_DIR/.." && pwd)
QRPOOL_BIN=${QRPOOL_BIN:-$ROOT/bin}
PATH=$QRPOOL_BIN:$ROOT/scripts:$PATH
# Debian's python3 (with python3-prometheus-client), not a pyenv shim.
PYTHON=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/qrpool-test.XXXXXX")
chmod 700 "$T"
export QRPOOL_CONFIG=$T/qrpool.cfg
tap_count=0
tap_failed=0
tap_cleanups=

# Failure details go to stderr, so prove shows them without -v (in CI logs too).
# Register a command to run at exit (servers to stop), newest first.
at_exit() { tap_cleanups="$*; $tap_cleanups"; }
# kill_child PID: kills PID if it is still this shell's child: one killed and
# reaped earlier may have left its pid to another process by the end (pids
# wrap within a make check where pid_max is 32768).
kill_child() {
  [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" != "$$" ] ||
    kill "$1" 2>/dev/null || true
}
tap_finish() {
  status=$?
  eval "$tap_cleanups" >/dev/null 2>&1 || true
  if [ -e "$T/.timed-out" ]; then
    echo "# $0: still running after ${QRPOOL_TEST_TIMEOUT:-900} s: stopped (QRPOOL_TEST_TIMEOUT)" >&2
    status=1
  fi
  rm -rf "$T"
  echo "1..$tap_count"
  [ "$tap_failed" -eq 0 ] && [ "$status" -eq 0 ] || exit 1
}
trap tap_finish EXIT
trap 'exit 130' INT TERM
# A file that hangs (a tool deaf to its stop, a wait that never ends) fails
# after QRPOOL_TEST_TIMEOUT seconds (0: never) rather than holding make check
# up: the file's shell and every process under it get SIGTERM, and those still
# there 5 s later SIGKILL; the shell then ends as for a signal, its cleanups
# run. (The watchdog holds none of the test's output: prove waits on those.
# It looks each second for the file's shell, and ends with it.)
case ${QRPOOL_TEST_TIMEOUT:-900} in
  ''|*[!0-9]*) echo "Bail out! QRPOOL_TEST_TIMEOUT=$QRPOOL_TEST_TIMEOUT: whole seconds, 0 for none"; exit 1 ;;
esac
if [ "${QRPOOL_TEST_TIMEOUT:-900}" -ne 0 ]; then
  sh -c 'i=0; while [ $i -lt "$1" ]; do sleep 1; kill -0 "$3" || exit 0; i=$((i + 1)); done
    : >"$2/.timed-out"
    under() { for c in $(pgrep -P "$1"); do [ "$c" = $$ ] || { echo "$c"; under "$c"; }; done; }
    pids=$(under "$3")
    kill -TERM "$3" $pids; sleep 5; kill -KILL $pids' watchdog \
    "${QRPOOL_TEST_TIMEOUT:-900}" "$T" $$ </dev/null >/dev/null 2>&1 &
fi

ok() {  # ok DESCRIPTION -- COMMAND...   passes when the command exits 0
  desc=$1; shift; [ "${1:-}" = "--" ] && shift
  tap_count=$((tap_count + 1))
  if "$@" >"$T/.ok.out" 2>&1; then echo "ok $tap_count - $desc"
  else
    tap_failed=$((tap_failed + 1)); echo "not ok $tap_count - $desc"
    sed 's/^/# /' "$T/.ok.out" | head -40 >&2
  fi
}
is() {  # is DESCRIPTION ACTUAL EXPECTED
  tap_count=$((tap_count + 1))
  if [ "$2" = "$3" ]; then echo "ok $tap_count - $1"
  else
    tap_failed=$((tap_failed + 1)); echo "not ok $tap_count - $1"
    printf '#   got:      %s\n#   expected: %s\n' "$2" "$3" | head -20 >&2
  fi
}
like() {  # like DESCRIPTION TEXT EXTENDED-REGEX
  tap_count=$((tap_count + 1))
  if printf '%s' "$2" | grep -Eq -- "$3"; then echo "ok $tap_count - $1"
  else
    tap_failed=$((tap_failed + 1)); echo "not ok $tap_count - $1"
    printf '#   text:    %s\n#   pattern: %s\n' "$2" "$3" | head -20 >&2
  fi
}
diag() { printf '# %s\n' "$*"; }
# skip_tests N REASON: N tests not run here, each said as skipped.
skip_tests() {
  for _ in $(seq "$1"); do tap_count=$((tap_count + 1)); echo "ok $tap_count # SKIP $2"; done
}
# hup_ignored: whether the tests started with SIGHUP ignored (under nohup): the
# tools they start rightly keep ignoring it, and no shell can undo that (POSIX).
hup_ignored() { [ $((0x$(awk '$1 == "SigIgn:" { print $2 }' "/proc/$$/status") & 1)) -eq 1 ]; }
# A missing tool skips the file when a test is run by hand; under `make check`
# (QRPOOL_NO_SKIP=1), which installs every dependency first, it fails it:
# a dependency install-deps forgot must not turn tests silently into skips.
skip_all() {
  trap - EXIT; rm -rf "$T"
  if [ -n "${QRPOOL_NO_SKIP:-}" ]; then echo "Bail out! $* (scripts/install-deps should provide it)"; exit 1; fi
  echo "1..0 # SKIP $*"; exit 0
}
# The tools under test are $QRPOOL_BIN's: one not built there is not looked
# for further along the PATH (an installed, older qrpool would be tested).
for tool in qrpool-plan qrpool-fetch qrpool-render qrpool-publish qrpool-report qrpool-pending \
    qrpool-prune qrpool-claim qrpool-resolve fake-wechat local-kafka kafka-offsets clockstep.so; do
  [ -e "$QRPOOL_BIN/$tool" ] || skip_all "$QRPOOL_BIN/$tool is not built (make, or QRPOOL_BIN)"
done
export QRPOOL_BIN

# wait_for_kafka PID BOOTSTRAP-FILE LOG: waits up to 30 s (a loaded machine:
# make check runs three files at once) for local-kafka's bootstrap file, and
# exports KAFKA_BROKERS. If it never comes, says why on stderr, which prove
# shows (diag's stdout it hides), and fails this file.
wait_for_kafka() {
  for _ in $(seq 300); do
    [ -s "$2" ] && break
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$2" ]; then
    { echo "# local-kafka did not start (it exited, or wrote no bootstrap file in 30 s); its log:"
      sed 's/^/#   /' "$3"; } >&2
    exit 1
  fi
  KAFKA_BROKERS=$(cat "$2")
  export KAFKA_BROKERS
}

# Runs a command, storing its exit status in $rc, stdout in $T/out, stderr in $T/err.
run() { rc=0; "$@" >"$T/out" 2>"$T/err" || rc=$?; }

# wait_signal PID FIELD SIGNUM: until PID's FIELD in /proc/PID/status (SigCgt:
# the signal is caught, SigIgn: ignored) has SIGNUM, so a signal sent then is
# handled as the test means, not fatal; 10 s at most. Not while PID is still
# this shell's fork, before its exec: it has this shell's INT/TERM trap there
# (SigCgt), and a signal then is taken by the trap and lost at the exec.
wait_signal() {
  tries=0; shell=$(readlink "/proc/$$/exe")
  while [ $tries -lt 200 ]; do
    if [ "$(readlink "/proc/$1/exe" 2>/dev/null)" != "$shell" ]; then
      mask=$(awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status" 2>/dev/null) || mask=
      [ -n "$mask" ] && [ $((0x$mask >> ($3 - 1) & 1)) -eq 1 ] && return 0
    fi
    sleep 0.05; tries=$((tries + 1))
  done
}

# wait_handles_term PID: until PID catches SIGTERM (its handlers installed).
wait_handles_term() { wait_signal "$1" SigCgt 15; }

# kafka_control COMMAND: e.g. "broker-down 2" (see local-kafka --help), to the
# local-kafka started with --control "$T/kafka.ctl" 2>"$T/kafka.log" (not -q);
# returns once it logged that it applied the command.
kafka_control() {
  before=$(grep -c "control: $*: " "$T/kafka.log" || true)
  echo "$*" >"$T/kafka.ctl"
  for _ in $(seq 100); do
    [ "$(grep -c "control: $*: " "$T/kafka.log" || true)" -gt "$before" ] && return 0
    sleep 0.05
  done
  diag "local-kafka did not apply '$*'"
  return 1
}

# run_peak FILE COMMAND...: as run, with FILE as stdin; also sets peak_kb, the
# command's peak memory (resident, in KB).
run_peak() {
  set -- $("$PYTHON" - "$T/out" "$T/err" "$@" <<'PY'
import resource, subprocess, sys
out, err, stdin, command = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rc = subprocess.call(command, stdin=open(stdin, "rb"), stdout=open(out, "wb"),
                     stderr=open(err, "wb"))
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)
  rc=$1 peak_kb=$2
}

# (It waits out a tool's write lock, as the tools do: a reader in WAL mode may
# still meet one for a moment, say while the WAL restarts.)
sql() { sqlite3 -batch -noheader -cmd ".timeout 10000" "$T/staging.db" "$@"; }

# wait_locked FILE: waits (10 s at most) for the word `locked` in FILE, which a
# sqlite3 holding the DB prints (.print locked) once its lock is taken: a fixed
# sleep may end before the lock is, on a loaded machine.
wait_locked() {
  i=0; until grep -q locked "$1" 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
}

# lock_db SECONDS [PATTERN]: another process holds the staging DB locked
# (BEGIN IMMEDIATE) for SECONDS from when this returns, and then until $T/err
# has PATTERN (20 s at most), if given. Sets $locker. (fd 3, a FIFO feeding
# a tool, is not held open by it: the tool's end would wait.)
lock_db() {
  rm -f "$T/locked"
  (exec 3>&-; { echo ".timeout 5000"; echo "BEGIN IMMEDIATE;"; echo ".print locked"; sleep "$1"
    i=0
    while [ -n "${2:-}" ] && ! grep -q "$2" "$T/err" && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    echo "COMMIT;"; } | sqlite3 "$T/staging.db" >"$T/locked") &
  locker=$!
  wait_locked "$T/locked"
}

# A minimal valid config: two wechat pools and one link pool, DB in $T; Kafka
# only when $KAFKA_BROKERS is set (else the planner falls back at once to the
# DB's estimate of depth instead of waiting for brokers that are not there).
# Extra text in $1 is appended inside the wechat section (e.g. api_base).
write_config() {
  kafka_brokers=
  [ -n "${KAFKA_BROKERS:-}" ] && kafka_brokers="brokers = \"$KAFKA_BROKERS\"; "
  cat >"$QRPOOL_CONFIG" <<CFG
database = { path = "$T/staging.db"; busy_timeout = "5s"; };
wechat = {
  appid = "wxtest0000000001";
  secret_file = "$T/secret";
  quota_per_minute = 5000;
  reserve_per_minute = 500;
  ${1:-}
};
kafka = { ${kafka_brokers}timeout = "60s"; };
pools = (
  { name = "poster"; source = "wechat"; page = "pages/r/index"; cover_hours = 24; safety = 0.2; },
  { name = "card"; source = "wechat"; page = "pages/r/index"; cover_hours = 12; safety = 0; },
  { name = "link"; source = "link"; url_prefix = "https://m.example.com/q/"; cover_hours = 24; safety = 0.1; }
);
CFG
  chmod 600 "$QRPOOL_CONFIG"
  printf 'test-secret-do-not-log\n' >"$T/secret"
  chmod 600 "$T/secret"
}

# at_clock EPOCH ZONE COMMAND...: runs COMMAND with its wall clock set to EPOCH
# (clockstep.so, from its start) in time zone ZONE. (ASan wants to be the first
# preload; it need not be.)
at_clock() {
  at_epoch=$1 at_zone=$2; shift 2
  LD_PRELOAD=$QRPOOL_BIN/clockstep.so QRPOOL_TEST_CLOCK_STEP=0:$(( $(date +%s) - at_epoch )) \
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 TZ=$at_zone "$@"
}

# forecast_end FROM [POOL]: a row of no codes a day after FROM (of poster, or
# POOL), so that a forecast of a few hours reaches the whole cover of
# write_config's pools (at most 24 h) from FROM; a forecast that ends short of
# a pool's cover is a 75.
forecast_end() {
  printf '%s\t%s\t0\n' "${2:-poster}" "$(date -u -d "$1 + 24 hours" +%Y-%m-%dT%H:00Z)"
}

# all_fetched DESCRIPTION: a test that every code is still 'fetched', as
# many as $T/items lists (a run that published nothing).
all_fetched() {
  is "$1" "$(sql "SELECT count(*) FROM codes WHERE state = 'fetched'")" "$(wc -l <"$T/items")"
}
