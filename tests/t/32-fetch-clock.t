#!/bin/sh
# qrpool-fetch's lengths of time when the wall clock steps in the night (an
# NTP step, a fix by hand): the retry pauses, the outage probes, --for, the
# grace after SIGTERM, a batch's age, the idle time after which reserved
# calls go back and a failed token refresh's pause are measured on the
# monotonic clock, so a step back of 30 s makes none of them 30 s longer,
# and a step forward does not cut --for short. (They were on the wall clock.)
# clockstep.so steps the wall clock of the fetch alone, AFTER s into its run;
# the test's own clock goes on.
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"

[ -e "$QRPOOL_BIN/clockstep.so" ] || skip_all "clockstep.so is not built"

outage() {  # outage MS: getwxacodeunlimit answers 503 for MS ms from now
  curl -s -X POST "$base/_control/outage?for=$1" >/dev/null
}

# stepped AFTER ARGS...: qrpool-fetch ARGS (stdin $T/items, stdout $T/out,
# stderr $T/err), its wall clock stepped back 30 s AFTER s into the run
# ($BY s instead when set: forward when negative).
# Sets $rc and $took (whole seconds, by the test's clock). Runs in the
# background when $BACKGROUND is set ($fetch: its pid; then `finish`).
stepped() {
  after=$1; shift
  started=$(date +%s)
  LD_PRELOAD=$QRPOOL_BIN/clockstep.so QRPOOL_TEST_CLOCK_STEP=$after:${BY:-30} \
    ASAN_OPTIONS=verify_asan_link_order=0 qrpool-fetch "$@" <"$T/items" >"$T/out" 2>"$T/err" &
  fetch=$!
  [ -n "${BACKGROUND:-}" ] || finish
}
finish() {
  rc=0; wait "$fetch" || rc=$?
  ended=$(date +%s); took=$((ended - started))
}
# step_seen: the step took effect (the run's last line is logged 30 s back).
step_seen() {
  logged=$(date -d "$(tail -1 "$T/err" | cut -d' ' -f1)" +%s)
  test "$logged" -lt $((ended - 20))
}

# through_outage NAME CONCURRENCY N MS AFTER: N planned items fetched
# CONCURRENCY at a time (--for 5m, 20 retries each), every call answered 503
# for the first MS ms, the wall clock stepped back 30 s AFTER s in.
through_outage() {
  start_fake "$1"
  config_for "concurrency = $2; retries = 20;"
  : >"$T/items"; plan poster "$3"
  outage "$4"
  stepped "$5" -v --for 5m
}

# --- --for: the run ends after its duration, not 30 s later ---------------------
# (--until, hours away, beside it: the earlier deadline counts.)
start_fake slow --latency 300
config_for 'concurrency = 1;'
plan poster 200   # a minute of calls at this latency
stepped 1 -v --for 3s --until "$(date -d '+3 hours' +%H:%M)"
ok "--for 3s, the clock stepped back 30 s: the step took effect" step_seen
like "... the deadline reached" "$(cat "$T/err")" "deadline reached: no new calls"
is "... exit 75, work left" "$rc" 75
ok "... after 3 s, not 33 s (took $took s)" test "$took" -lt 15
# Stepped forward 30 s, a minute before the clock said: --for is not cut short.
: >"$T/items"; plan poster 200
BY=-30 stepped 1 -v --for 5s
ok "--for 5s, the clock stepped forward 30 s: after 5 s, not 1 s (took $took s)" \
  test "$took" -ge 4 -a "$took" -lt 15

# --- a retry's pause: the item is tried again after its backoff -------------------
# (3 items, every call answered 503 for 3 s: each is retried after pauses of
# 0.125-0.25 s, doubling, so at the step, 1.5 s in, pauses are under way.)
through_outage retry 1 3 3000 1.5
ok "retries, the clock stepped back 30 s: the step took effect" step_seen
like "... the items were retried" "$(cat "$T/err")" "503.*retrying"
is "... exit 0, every item fetched" "$rc:$(count "state = 'fetched'")" 0:3
ok "... soon after the 3 s outage, not 30 s later (took $took s)" test "$took" -lt 15

# --- an outage's probe: the first comes after the 2 s pause -----------------------
# (50 items 4 at a time: the 100 failed calls in a row that start an outage
# come within the first second; the outage lasts 4 s, so the probe at 2 s
# fails and the one 4 s later gets an image.)
through_outage probe 4 50 4000 1
ok "an outage, the clock stepped back 30 s: the step took effect" step_seen
like "... the outage said" "$(cat "$T/err")" "calls in a row to .* failed .*: no new call for 2 s"
is "... exit 0, every item fetched" "$rc:$(count "state = 'fetched'")" 0:50
ok "... the calls resumed after the probes' pauses, not 30 s later (took $took s)" \
  test "$took" -lt 20

# --- SIGTERM's grace: calls in flight are cut after 5 s, not 35 s -----------------
# (The calls' own timeout is an hour: only the grace cuts them.)
start_fake silent --latency 120s
config_for 'concurrency = 4; timeout = "1h";'
: >"$T/items"; plan poster 20
BACKGROUND=1 stepped 2 -v
for _ in $(seq 200); do
  [ "$(stats endpoints getwxacodeunlimit requests)" -ge 4 ] && break; sleep 0.05
done
signalled=$(($(date +%s) - started))
kill -TERM "$fetch"
finish
ok "SIGTERM, the clock stepped back 30 s: the step took effect" step_seen
is "... exit 75, the items still planned" "$rc:$(count "state = 'planned'")" 75:20
# (A signal sent after the step, on a slow machine, cannot tell the clocks
# apart: the case is then skipped, and counted so.)
if [ "$signalled" -lt 2 ]; then
  ok "... the calls in flight cut after the 5 s grace, not 35 s (took $took s)" \
    test "$took" -lt 20
else
  skip_tests 1 "the signal came $signalled s into the run, after the step: the clocks cannot be told apart"
fi


# fifo_stepped AFTER ARGS...: qrpool-fetch ARGS in the background ($fetch), as
# stepped does, its input a pipe kept open (fd 7) once $T/items is written to it.
# $t0: when it started, by the test's clock (since_start: seconds since then).
fifo_stepped() {
  after=$1; shift
  rm -f "$T/in"; mkfifo "$T/in"; : >"$T/out"; : >"$T/err"  # (emptied here: the waits below read them)
  t0=$(date +%s.%N); started=${t0%.*}
  LD_PRELOAD=$QRPOOL_BIN/clockstep.so QRPOOL_TEST_CLOCK_STEP=$after:30 \
    ASAN_OPTIONS=verify_asan_link_order=0 qrpool-fetch "$@" <"$T/in" >"$T/out" 2>"$T/err" &
  fetch=$!
  exec 7>"$T/in"
  cat "$T/items" >&7
}
since_start() { echo "$t0 $(date +%s.%N)" | awk '{ printf "%.2f", $2 - $1 }'; }
within() {  # within SECONDS CMD...: waits until CMD succeeds, SECONDS since the start at most
  max=$1; shift
  until "$@" || awk -v t="$(since_start)" -v max="$max" 'BEGIN { exit !(t >= max) }'; do sleep 0.05; done
}

# --- calls of quota reserved and left unused go back after 1 s idle, not 31 s -------
# (A budget of 1000 a minute reserves a few calls at a time: one item is fetched,
# then the input stays open with nothing more. The wall clock steps back 30 s
# 0.7 s into the run, after the call and before the 1 s of idleness is up.)
start_fake idle --minute 60s --quota 5000 --latency 5
QUOTA=1000 config_for 'quota_minute = "60s"; concurrency = 4;'
: >"$T/items"; plan poster 1
fifo_stepped 0.7 -vv
within 10 test -s "$T/out"
fetched=$(since_start)
within 6 grep -q 'giving back' "$T/err"
given_back=$(since_start)
exec 7>&-
finish
ok "idle quota, the clock stepped back 30 s: the step took effect" step_seen
is "... exit 0, the item fetched" "$rc:$(cat "$T/out")" "0:$(cat "$T/items")"
like "... the unused calls given back" "$(cat "$T/err")" "giving back [0-9]* unused calls of quota"
# (A call made after the step, on a slow machine, cannot tell the clocks apart:
# the case is then skipped, and counted so.)
if awk -v t="$fetched" 'BEGIN { exit !(t < 0.6) }'; then
  ok "... after 1 s of idleness, not 31 s (given back $given_back s in)" \
    awk -v t="$given_back" 'BEGIN { exit !(t < 5) }'
else
  skip_tests 1 "the item was fetched $fetched s in, after the step: the clocks cannot be told apart"
fi

# --- an outcome waits 0.25 s at most for its commit, not 30.25 s ---------------------
# (One item, answered after 500 ms: its outcome comes about 0.6 s into the run,
# the wall clock steps back 30 s at 0.7 s, before the batch is 0.25 s old; the
# input stays open, so only the batch's age commits and prints it.)
start_fake late --latency 500
config_for 'concurrency = 1;'
: >"$T/items"; plan poster 1
fifo_stepped 0.7 -vv
within 5 test -s "$T/out"
printed=$(since_start)
exec 7>&-
finish
posted=$(grep -m1 'POST' "$T/err" | cut -d' ' -f1)
posted=$(echo "$t0 $(date -d "$posted" +%s.%N)" | awk '{ printf "%.2f", $2 - $1 }')
ok "a batch's age, the clock stepped back 30 s: the step took effect" step_seen
is "... exit 0, the item fetched" "$rc:$(cat "$T/out")" "0:$(cat "$T/items")"
if awk -v t="$posted" 'BEGIN { exit !(t >= 0 && t < 0.15) }'; then
  ok "... printed once 0.25 s old, not 30 s later ($printed s in)" \
    awk -v t="$printed" 'BEGIN { exit !(t < 4) }'
else
  skip_tests 1 "the call was sent $posted s in: its answer did not come just before the step"
fi

# --- a failed token refresh's pause: tried again after 1 s, then 2 s, not 30 s more --
# (The token command fails twice, then gives the fake's token. The wall clock
# steps back 30 s 2 s in, in the middle of the second pause.)
start_fake token
curl -sS -o "$T/stable.json" -d "{\"grant_type\":\"client_credential\",\"appid\":\"$APPID\",\"secret\":\"$SECRET\"}" \
  "$base/cgi-bin/stable_token"
jget "$T/stable.json" access_token >"$T/central-token"
cat >"$T/token-command" <<CMD
#!/bin/sh
echo x >>"$T/token-tries"
[ "\$(wc -l <"$T/token-tries")" -gt 2 ] || exit 3
cat "$T/central-token"
CMD
chmod +x "$T/token-command"
rm -f "$T/token-tries"
config_for "concurrency = 1; token = { source = \"command\"; command = \"$T/token-command\"; };"
: >"$T/items"; plan poster 1
stepped 2 -v
ok "token refresh failing, the clock stepped back 30 s: the step took effect" step_seen
like "... the refresh tried again" "$(cat "$T/err")" "refreshing the access token failed, retrying in 2 s"
is "... exit 0, the item fetched after the third try" "$rc:$(count "state = 'fetched'"):$(wc -l <"$T/token-tries")" 0:1:3
ok "... after the pauses of 1 and 2 s, not 30 s later (took $took s)" test "$took" -lt 15
