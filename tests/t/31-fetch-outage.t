#!/bin/sh
# qrpool-fetch through a WeChat outage (every call answered 503 for a few
# seconds): after failure_limit calls in a row it pauses, probes with one call
# at a time, and resumes when one succeeds, so a brief outage does not cost the
# rest of the night. It used to stop making calls for good at once: a second's
# outage left a night's codes planned. Without a deadline it gives up after 5
# quota minutes of outage.
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"

outage() {  # outage MS: getwxacodeunlimit answers 503 for MS ms from now
  curl -s -X POST "$base/_control/outage?for=$1" >/dev/null
}
fetched_so_far() { sql "SELECT count(*) FROM codes WHERE state = 'fetched'" 2>/dev/null || echo 0; }

# --- with a deadline: the outage is waited out ----------------------------------
start_fake slow --latency 40
config_for 'concurrency = 4; retries = 20;'
# Enough codes (6 s of calls) that the outage, set once 30 are fetched, comes
# while the run still has work however slowly this shell gets to it.
plan poster 600
qrpool-fetch -v --for 5m <"$T/items" >"$T/out" 2>"$T/err" &
fetch=$!
i=0
until [ "$(fetched_so_far)" -ge 30 ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
outage 3000
rc=0; wait "$fetch" || rc=$?
is "an outage of 3 s in the night: exit 0" "$rc" 0
is "... every code fetched, and printed" "$(count "state = 'fetched'"):$(wc -l <"$T/out")" 600:600
like "... the outage said" "$(cat "$T/err")" \
  "warning: 100 calls in a row to $base failed \(last: .*503.*\): no new call for 2 s, then one to see whether WeChat answers again"
like "... and the end of it" "$(cat "$T/err")" \
  "warning: WeChat answers again \(an image\), after [0-9]+ s of failed calls: calls resume"
failed=$(stats faults http5xx)
# 100 in a row trip it (a call sent before the outage and answered inside it
# may start the count again); then the calls in flight, and a probe after 2 s,
# then 4 s. Calls at the full rate would be thousands in 3 s.
ok "... few calls spent on it ($failed answered 503)" test "$failed" -ge 100 -a "$failed" -le 200

# --- a burst of -1 "system busy" (WECHAT.md: persisting across retries), each call
# of it charged: the same pause and probes, so little of the quota goes on it ------
start_fake burst --latency 40
config_for 'concurrency = 4; retries = 20;'
: >"$T/items"; plan poster 600
qrpool-fetch -v --for 5m <"$T/items" >"$T/out" 2>"$T/err" &
fetch=$!
i=0
until [ "$(fetched_so_far)" -ge 30 ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
curl -s -X POST "$base/_control/busy?for=3000" >/dev/null
rc=0; wait "$fetch" || rc=$?
is "a 3 s burst of -1: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:600
like "... the pause said" "$(cat "$T/err")" \
  "warning: 100 calls in a row to $base failed \(last: errcode -1: system busy.*\): no new call for 2 s"
busy=$(stats faults busy)
ok "... few calls charged for it ($busy answered -1)" test "$busy" -ge 100 -a "$busy" -le 200
is "... each charged: the quota's count = the calls" "$(stats calls_total)" \
  "$($PYTHON -c 'import json, sys; print(sum(w["charged"] for w in json.load(open(sys.argv[1]))["windows"]))' "$T/stats.json")"

# --- a probe answered otherwise than with an image or a failure ----------------
# (the tokens invalidated meanwhile: 40001). WeChat answers: the outage is over,
# the token is refreshed, the calls resume. (No further call was made: the run
# spun until its deadline.)
start_fake tokens
config_for 'concurrency = 4; retries = 20;'
: >"$T/items"; plan poster 50
# (4 s: the first probe, 2 s into the pause, still fails however slowly the
# run starts, so the tokens are invalidated before any probe gets through.)
outage 4000
# (err emptied here, not by the redirection alone: that runs in the child, and
# the wait below could read the scenario before's warning first.)
: >"$T/err"
qrpool-fetch -v --for 2m <"$T/items" >"$T/out" 2>"$T/err" &
fetch=$!
i=0
until grep -q "calls in a row to .* failed" "$T/err" || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
curl -s -X POST "$base/_control/invalidate-tokens" >/dev/null
rc=0; wait "$fetch" || rc=$?
is "the probe refused for its token: exit 0, every code fetched" \
  "$rc:$(count "state = 'fetched'")" 0:50
like "... the outage over with that answer" "$(cat "$T/err")" \
  "WeChat answers again \(.*40001.*\), after [0-9]+ s of failed calls: calls resume"

# --- without a deadline: given up after 5 quota minutes (1 s minutes here) ------
start_fake down
config_for 'concurrency = 4; retries = 20; quota_minute = "1s";'
: >"$T/items"; plan poster 50
outage 60000
run qrpool-fetch <"$T/items"
is "an outage that lasts, no deadline: exit 75" "$rc" 75
like "... said, items planned" "$(cat "$T/err")" \
  "calls have failed for [0-9]+ s \(last: .*\), and no deadline \(--until, --for\) says how long to keep trying: no new calls, items stay planned"
is "... every code still planned" "$(count "state = 'planned'")" 50

# --- WeChat's quota spent by others every minute, no deadline: given up the same
# way after 5 quota minutes with a 45009 and no code (it went on for ever) -----
start_fake spent --minute 1s --quota 0
config_for 'concurrency = 4; quota_minute = "1s";'
: >"$T/items"; plan poster 50
rc=0; timeout 60 qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" || rc=$?
is "the quota spent every minute, no deadline: exit 75" "$rc" 75
like "... said, items planned" "$(cat "$T/err")" \
  "WeChat's minute quota was used up \(45009 or 45011\) in 5 minutes with no code fetched since, and no deadline \(--until, --for\) says how long to keep trying: no new calls, items stay planned"
is "... every code still planned" "$(count "state = 'planned'")" 50
ok "... few calls spent on it ($(stats calls_total))" test "$(stats calls_total)" -le 40
# With a deadline the run waits for the quota until then, as the night's fill does.
started=$(date +%s)
run qrpool-fetch --for 8s <"$T/items"
is "... with a deadline (8 s): kept on until it (exit 75, not given up)" \
  "$rc:$(grep -c 'no deadline' "$T/err")" 75:0
ok "... (took $(($(date +%s) - started)) s)" test $(($(date +%s) - started)) -ge 7

# --- the wall clock stepped back 40 s mid-call (an NTP step, a fix by hand): a
# call that gets no answer still ends after wechat.timeout, not 40 s later ----
# (clockstep.so steps the wall clock of the fetch alone; the monotonic clock,
# and the test's own, go on.)
start_fake silent --latency 60s
config_for 'concurrency = 1; retries = 0; timeout = "2s";'
: >"$T/items"; plan poster 1
started=$(date +%s)
rc=0; LD_PRELOAD=$QRPOOL_BIN/clockstep.so QRPOOL_TEST_CLOCK_STEP=1:40 \
  ASAN_OPTIONS=verify_asan_link_order=0 qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" || rc=$?
ended=$(date +%s); took=$((ended - started))
logged=$(date -d "$(tail -1 "$T/err" | cut -d' ' -f1)" +%s)
ok "the clock stepped back mid-call: the step took effect (the end logged at $logged, at $ended)" \
  test "$logged" -lt $((ended - 30))
is "... the call timed out: exit 75, the code still planned" "$rc:$(count "state = 'planned'")" 75:1
ok "... after wechat.timeout (2 s), not 40 s more (took $took s)" test "$took" -lt 20
like "... said as a timeout" "$(cat "$T/err")" "[Tt]imeout|timed out"
like "... the summary's time the run's, not the wall clock's (-38 s)" "$(cat "$T/err")" \
  "quota refusals; [0-9]\.[0-9] s, "

# --- nobody listening at api_base (a wrong port): the messages say where ---------
fake_base=$base; base=http://127.0.0.1:9
config_for 'connect_timeout = "1s";'
base=$fake_base
run env -u http_proxy -u all_proxy -u ALL_PROXY qrpool-fetch --check
is "api_base where nothing listens: --check exits 75" "$rc" 75
like "... naming where it tried, in libcurl's words for this call" "$(cat "$T/err")" \
  "token endpoint \(http://127\.0\.0\.1:9\): Failed to connect to 127\.0\.0\.1 port 9 after [0-9]+ ms: Couldn't connect to server"
# A proxy on this host (where nothing listens either) is said when the calls
# go through it, and not when no_proxy names api_base's host: libcurl then
# goes direct, and a message naming the proxy would send the night's
# operator to the wrong machine.
run env -u all_proxy -u ALL_PROXY -u no_proxy -u NO_PROXY http_proxy=http://127.0.0.1:8 \
  qrpool-fetch --check
like "... through a proxy on this host: said, the proxy's port too" "$(cat "$T/err")" \
  "token endpoint \(http://127\.0\.0\.1:9 via the environment's proxy\): Failed to connect to 127\.0\.0\.1 port 8 "
run env -u all_proxy -u ALL_PROXY -u NO_PROXY http_proxy=http://127.0.0.1:8 no_proxy=localhost,127.0.0.1 \
  qrpool-fetch --check
like "... with no_proxy naming the host: not said" "$(cat "$T/err")" \
  "token endpoint \(http://127\.0\.0\.1:9\): Failed to connect to 127\.0\.0\.1 port 9 "
