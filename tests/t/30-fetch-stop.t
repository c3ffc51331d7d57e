#!/bin/sh
# Stopping: kill -9 mid-run then a rerun from qrpool-pending fetches every
# code exactly once and nothing already stored; SIGTERM and deadlines end
# cleanly with 75, leaving what is not done planned.
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"

# --- kill -9, then resume ---------------------------------------------------------
start_fake crash --latency 20 --jitter 30
config_for 'concurrency = 8;'
plan poster 400
qrpool-fetch <"$T/items" >"$T/out.1" 2>"$T/err.1" & fetch=$!
# (Killed once some codes are stored: mid-run however loaded the machine is.)
for _ in $(seq 400); do [ "$(count "state = 'fetched'")" -ge 20 ] && break; sleep 0.05; done
kill -9 $fetch
wait $fetch 2>/dev/null || true
# Calls in flight at the kill are served all the same: wait until they are.
served=-1
while [ "$served" != "$(stats ok_total)" ]; do served=$(stats ok_total); sleep 0.3; done
stored=$(count "state = 'fetched'")
planned=$(count "state = 'planned'")
ok "killed mid-run: some stored ($stored), some not ($planned)" \
  [ "$stored" -gt 0 -a "$planned" -gt 0 ]
is "killed: every printed item is stored" \
  "$(cut -f1 "$T/out.1" | while read -r id; do sql "SELECT state FROM codes WHERE request_id = '$id'"; done | sort -u)" \
  fetched
rc=0; qrpool-pending --state planned | qrpool-fetch >"$T/out.2" 2>"$T/err.2" || rc=$?
is "resumed: exit 0" "$rc" 0
is "resumed: every code stored" "$(count "state = 'fetched'")" 400
is "resumed: fetched exactly the planned ones, nothing stored fetched again" \
  "$(stats ok_total)" $((served + planned))
is "resumed: one image per code" "$(sql "SELECT count(*) FROM images")" 400
is "no item printed twice" "$(cat "$T/out.1" "$T/out.2" | sort | uniq -d | wc -l)" 0
is "the second run printed the ones it stored" "$(wc -l <"$T/out.2" | tr -d ' ')" "$planned"

# --- SIGTERM: calls in flight finish, exit 75 ----------------------------------
start_fake term --latency 100
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 200
qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetch=$!
# (Stopped with calls in flight: 4 answered and 4 more asked at least.)
wait_handles_term $fetch
for _ in $(seq 400); do [ "$(stats endpoints getwxacodeunlimit requests)" -ge 8 ] && break; sleep 0.05; done
kill -TERM $fetch
rc=0; wait $fetch || rc=$?
is "SIGTERM: exit 75" "$rc" 75
like "SIGTERM: a one-line summary" "$(cat "$T/err")" "interrupted: fetched [0-9]+.*left planned [0-9]+"
fetched=$(count "state = 'fetched'")
is "SIGTERM: stdout lists exactly the stored codes" "$(wc -l <"$T/out" | tr -d ' ')" "$fetched"
is "SIGTERM: calls in flight were stored, none lost" "$(stats ok_total)" "$fetched"
ok "... calls there were: at least 8 ($fetched)" test "$fetched" -ge 8
is "SIGTERM: the rest stays planned" "$(count "state = 'planned'")" $((200 - fetched))
is "SIGTERM: the run is recorded" "$(sql "SELECT exit_status FROM runs WHERE stage = 'fetch'")" 75
# Input still to come at the stop: the counts are of the items read, and the
# summary says where reading stopped (the items after stay as they were).
before=$(stats endpoints getwxacodeunlimit requests)
{ cat "$T/items"; sleep 3; } | qrpool-fetch >"$T/out2" 2>"$T/err2" & fetch=$!
wait_handles_term $fetch
for _ in $(seq 400); do
  [ "$(stats endpoints getwxacodeunlimit requests)" -ge $((before + 8)) ] && break; sleep 0.05
done
kill -TERM $fetch || true
rc=0; wait $fetch || rc=$?
like "SIGTERM, input still to come: the summary says where reading stopped" "$(cat "$T/err2")" \
  "interrupted: fetched .*; the input after line [0-9]+ was not read \(its items stay as they were\)"
# The lines after it, read ahead into fetch's buffer or not, are let go and
# counted: every line of the input is accounted for once.
after=$(sed -n 's/.*the input after line \([0-9]*\) was not read.*/\1/p' "$T/err2")
let_go=$(sed -n 's/.* \([0-9]*\) lines\{0,1\} of input read to its end.*/\1/p' "$T/err2")
is "... and the rest let go, counted ($after + ${let_go:-0})" "$((${after:-0} + ${let_go:-0}))" 200

# fetch_signalled NAME LATENCY_MS GAP SIGNAL...: 20 items fetched 4 at a time
# from a fake answering after LATENCY_MS; once 4 calls are in flight, the
# signals, GAP seconds apart, sent by this shell (other-TERM: by another
# process, /bin/kill). Sets $rc and $took (seconds, to the tenth, from the
# first signal).
fetch_signalled() {
  start_fake "$1" --latency "$2"; gap=$3; shift 3
  config_for 'concurrency = 4;'
  : >"$T/items"; plan poster 20
  qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetch=$!
  # The signals come once the first 4 calls are in flight (the fake counts a
  # call as it comes), however slow the start; $took counts from the first.
  for _ in $(seq 200); do
    [ "$(stats endpoints getwxacodeunlimit requests)" -ge 4 ] && break; sleep 0.05
  done
  started=$(date +%s.%N)
  for signal in "$@"; do
    case $signal in
      other-*) /bin/kill -"${signal#other-}" $fetch ;;
      *) kill -"$signal" $fetch ;;
    esac
    sleep "$gap"
  done
  rc=0; wait $fetch || rc=$?
  took=$(echo "$started $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
}

# --- a second SIGTERM cuts the calls in flight at once, not after the 5 s grace -----
fetch_signalled cut 20000 1.5 TERM TERM
is "a second SIGTERM: exit 75" "$rc" 75
ok "... the calls cut at once, not after the 5 s grace (took $took s)" \
  awk "BEGIN { exit !($took < 5) }"
is "... nothing stored, nothing printed" "$(count "state = 'fetched'"):$(wc -l <"$T/out" | tr -d ' ')" 0:0
is "... every item still planned" "$(count "state = 'planned'")" 20

# SIGINT then SIGTERM is one stop (a script stopped by Ctrl-C in a terminal
# passes its stages a SIGTERM after the terminal's SIGINT): the calls in flight
# still finish and are stored.
fetch_signalled one-stop 1500 0.2 INT TERM
is "SIGINT then SIGTERM: exit 75" "$rc" 75
is "... the 4 calls in flight finished and were stored, and printed" \
  "$(count "state = 'fetched'"):$(wc -l <"$T/out" | tr -d ' ')" 4:4
# The same signal twice at once is one stop too (GNU timeout and systemd signal
# a process and its group, and job.sh passes the signal on).
fetch_signalled twice-at-once 1500 0 TERM TERM
is "two SIGTERMs at once: exit 75" "$rc" 75
is "... the 4 calls in flight finished and were stored, and printed" \
  "$(count "state = 'fetched'"):$(wc -l <"$T/out" | tr -d ' ')" 4:4
# ... and so is the same signal from two senders, even a second apart
# (systemd signals every process of a unit; job.sh passes it on, late when busy).
fetch_signalled two-senders 2500 1.2 TERM other-TERM
is "SIGTERM from two senders, 1.2 s apart: exit 75" "$rc" 75
is "... the 4 calls in flight finished and were stored, and printed" \
  "$(count "state = 'fetched'"):$(wc -l <"$T/out" | tr -d ' ')" 4:4

# --- calls in flight in several connection groups (concurrency 150: three groups
# of 50, each with its own connections): calls go on in every group as slots
# free up; one SIGTERM lets every group's calls finish, and they are stored; a
# second one cuts them all at once -------------------------------------------------
# groups_in_flight NAME LATENCY_MS ANSWERED: 3200 items fetched 150 at a time
# (the signal must come before they are all done, however slow the polling: a
# run of 1600 was once done before it); returns once the fake has 150
# connections open and ANSWERED calls answered. Sets $fetch.
GROUP_ITEMS=3200
groups_in_flight() {
  start_fake "$1" --latency "$2"
  config_for 'concurrency = 150;'
  : >"$T/items"; plan poster $GROUP_ITEMS
  qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetch=$!
  i=0
  until [ "$(stats connections open)" -ge 150 ] && [ "$(stats ok_total)" -ge "$3" ] ||
        [ $i -gt 300 ]; do
    sleep 0.1; i=$((i + 1))
  done
}
groups_in_flight groups 400 300
# Every call that reached the fake before the signal finishes and is stored
# (about 150 in flight beyond the 300 answered; fewer when the machine stalls
# the run, but never one lost).
sent=$(stats endpoints getwxacodeunlimit requests)
kill -TERM $fetch 2>/dev/null || true   # (gone already: its status says why)
rc=0; wait $fetch || rc=$?
fetched=$(count "state = 'fetched'")
is "three connection groups, SIGTERM: exit 75" "$rc" 75
ok "... slots were used again, and the calls in flight finished and were stored ($fetched of the $sent sent before the signal)" \
  test "$sent" -gt 300 -a "$fetched" -ge "$sent"
is "... each stored code printed once" "$(sort -u "$T/out" | wc -l | tr -d ' ')" "$fetched"
is "... every call answered was stored" "$(stats ok_total)" "$fetched"
is "... the rest stays planned" "$(count "state = 'planned'")" $((GROUP_ITEMS - fetched))
groups_in_flight groups-cut 20000 0
started=$(date +%s.%N)
kill -TERM $fetch 2>/dev/null || true; sleep 1.2; kill -TERM $fetch 2>/dev/null || true
rc=0; wait $fetch || rc=$?
took=$(echo "$started $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
is "three connection groups, a second SIGTERM: exit 75" "$rc" 75
ok "... every group's calls cut at once, not after the 5 s grace (took $took s)" \
  awk "BEGIN { exit !($took < 5) }"
is "... nothing stored, every item still planned" \
  "$(count "state = 'fetched'"):$(count "state = 'planned'")" 0:$GROUP_ITEMS

# --- deadline: no call after it, the rest of the input still passed on -----------
start_fake deadline --latency 50
config_for 'concurrency = 2;'
: >"$T/items"; plan poster 200; plan link 3
start=$(date +%s)
run qrpool-fetch --for 1s <"$T/items"
is "deadline: exit 75" "$rc" 75
ok "deadline: stopped in time" [ $(($(date +%s) - start)) -le 3 ]
like "deadline: a one-line summary" "$(cat "$T/err")" "deadline reached: fetched [0-9]+.*left planned [0-9]+"
fetched=$(count "state = 'fetched' AND pool = 'poster'")
ok "deadline: some fetched ($fetched), the rest planned" \
  [ "$fetched" -gt 0 -a "$(count "state = 'planned' AND pool = 'poster'")" -eq $((200 - fetched)) ]
is "deadline: link items after it still passed on" "$(grep -c 'link$' "$T/out")" 3
run qrpool-fetch -q --for 1s <"$T/items"
is "deadline with -q: exit 75" "$rc" 75
like "... not silent: the summary -q hid is shown at the exit" "$(cat "$T/err")" \
  "qrpool-fetch warning: deadline reached: fetched [0-9]+.*left planned [0-9]+"
run qrpool-fetch --until 25:00 <"$T/items"
is "--until checks its time" "$rc" 64

# --- SIGTERM while stdout is a full pipe: the blocked write goes on once the
# next stage reads, and every stored code is printed (a signal used to fail
# the write with EINTR: exit 74, codes stored but never printed) ----------------
start_fake blocked --latency 1
config_for 'concurrency = 32;'
: >"$T/items"; plan poster 3000; plan link 300
mkfifo "$T/blocked"
qrpool-fetch <"$T/items" >"$T/blocked" 2>"$T/err" & fetcher=$!
exec 8<"$T/blocked"
# The 3,300 lines (about 24 bytes each) do not fit in the pipe (64 KB): fetch
# stalls on its write. Wait for that (the count stops growing, and the kernel
# says fetch waits in a pipe write), however slow the machine, so the signal
# comes to a blocked write. (The count alone misled: a slow moment of a loaded
# machine is no stall; and under SAN fetch stalled anywhere from 1,850 codes
# to 2,400.)
writing() {  # fetch waits in a write to its stdout (a pipe)
  case "$(cat "/proc/$fetcher/wchan" 2>/dev/null)" in *pipe_write*) return 0 ;; esac
  case "$(cut -d' ' -f1-2 "/proc/$fetcher/syscall" 2>/dev/null)" in "1 0x1") return 0 ;; esac
  return 1
}
i=0; stored=-1; same=0
until { [ "$same" -ge 3 ] && writing; } || [ $i -gt 120 ]; do
  sleep 0.5; i=$((i + 1))
  now=$(count "state = 'fetched'")
  if [ "$now" -gt 0 ] && [ "$now" -eq "$stored" ]; then same=$((same + 1)); else same=0; fi
  stored=$now
done
ok "stdout full: fetch stalled on its write, most codes stored ($stored)" writing
kill -TERM $fetcher
sleep 0.5
cat <&8 >"$T/out"
exec 8<&-
rc=0; wait $fetcher || rc=$?
is "SIGTERM, stdout full: exit 75" "$rc" 75
is "SIGTERM, stdout full: every stored code printed" \
  "$(grep -c 'poster' "$T/out")" "$(count "state = 'fetched'")"
like "SIGTERM, stdout full: interrupted" "$(cat "$T/err")" "interrupted: fetched"
ok "SIGTERM, stdout full: not a write error" -- sh -c "! grep -q 'writing to stdout' '$T/err'"

# --- another process holds the staging DB longer than the busy timeout (5 s):
# the outcomes wait for their commit; none is lost, the run ends well. 14 s:
# long enough for the calls left unused to be given back (after 1 s idle) while
# it is held, once the first wait for the outcomes' commit is over -------------
start_fake locked --latency 100
config_for 'concurrency = 8;'
: >"$T/items"; plan poster 200
qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetcher=$!
# (Locked mid-run: once some calls are answered, however loaded the machine.)
for _ in $(seq 400); do [ "$(stats ok_total)" -ge 16 ] && break; sleep 0.05; done
lock_db 14
wait $locker
rc=0; wait $fetcher || rc=$?
is "DB locked 14 s: exit 0" "$rc" 0
like "DB locked 14 s: said so" "$(cat "$T/err")" "the staging DB is locked by another process"
is "DB locked 14 s: a warning, no error line (the run ends well)" "$(grep -c ' error: ' "$T/err")" 0
is "DB locked 14 s: every code fetched" "$(count "state = 'fetched'")" 200
is "DB locked 14 s: every code printed" "$(wc -l <"$T/out" | tr -d ' ')" 200
is "DB locked 14 s: no call made twice" "$(stats ok_total)" 200

# --- the same with calls that time out (2 s) sooner than a lock is waited for
# (busy_timeout 5 s): the answers that came meanwhile are read, not timed out and
# fetched again (the time fetch spends waiting for the DB is not a call's) -----
start_fake stalled --latency 300
config_for 'concurrency = 8; timeout = "2s";'
: >"$T/items"; plan poster 200
qrpool-fetch -v <"$T/items" >"$T/out" 2>"$T/err" & fetcher=$!
for _ in $(seq 400); do [ "$(stats calls_total)" -ge 8 ] && break; sleep 0.05; done
lock_db 8
wait $locker
rc=0; wait $fetcher || rc=$?
is "DB locked 8 s, calls timing out after 2 s: exit 0" "$rc" 0
is "... every code fetched" "$(count "state = 'fetched'")" 200
is "... no call made twice (none timed out)" "$(stats ok_total):$(stats calls_total)" 200:200
like "... the time held up said in the summary" "$(grep 'done: fetched' "$T/err")" \
  "held up [0-9]+\.[0-9] s away from its calls \(a locked staging DB"

# --- a lock that outlasts the run (SIGTERM while it is held, busy_timeout 1 s): the
# outcomes it kept out are let go, said, and counted as left planned ------------------
# (Answers after 1 s: the calls in flight when the lock is taken are answered
# under it, however loaded the machine; with 100 ms they could all be answered
# and recorded before it, and fetch, asking the locked DB for quota, then had
# none kept out.)
start_fake outlasted --latency 1000
config_for 'concurrency = 8;'
sed -i 's/busy_timeout = "5s"/busy_timeout = "1s"/' "$QRPOOL_CONFIG"
: >"$T/items"; plan poster 1000
qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetcher=$!
i=0; until [ "$(wc -l <"$T/out")" -ge 16 ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
# The lock taken while calls are in flight (the fake has more than it answered,
# in one reading of its counts): fetch may be between calls, waiting for quota,
# and then none would come in under the lock (a fresh clone's run saw that).
i=0
until { curl -sS -o "$T/stats.json" "$base/_stats" &&
        [ "$(jget "$T/stats.json" calls_total)" -gt "$(jget "$T/stats.json" ok_total)" ]; } ||
      [ $i -gt 400 ]; do
  sleep 0.02; i=$((i + 1))
done
lock_db 12
# Outcomes come in under the lock (the fake answered more calls than are
# recorded), and wait for their commit.
i=0; until [ "$(stats ok_total)" -gt "$(count "state = 'fetched'")" ] || [ $i -gt 200 ]; do
  sleep 0.05; i=$((i + 1)); done
sleep 0.3
wait_handles_term $fetcher
kill -TERM $fetcher
rc=0; wait $fetcher || rc=$?
wait $locker
summary=$(grep 'interrupted: fetched' "$T/err")
left=$(echo "$summary" | sed -n 's/.* left planned \([0-9]*\) .*/\1/p')
unread=0
after=$(echo "$summary" | sed -n 's/.*the input after line \([0-9]*\) was not read.*/\1/p')
[ -z "$after" ] || unread=$((1000 - after))
is "a lock outlasting the run: exit 75" "$rc" 75
like "... the outcomes it kept out let go, said" "$(cat "$T/err")" \
  "error: the staging DB stayed locked: [1-9][0-9]* outcomes not recorded \(their codes stay planned\)"
is "... the summary's fetched are the codes fetched and printed" \
  "$(echo "$summary" | sed -n 's/.*interrupted: fetched \([0-9]*\),.*/\1/p'):$(wc -l <"$T/out" | tr -d ' ')" \
  "$(count "state = 'fetched'"):$(count "state = 'fetched'")"
is "... its left planned (with the lines not read) are the codes still planned" \
  "$((left + unread))" "$(count "state = 'planned'")"

# --- items passed on to a slow next stage: a write blocked on the full pipe
# holds no read snapshot of the staging DB, so checkpoints still run ----------
start_fake slowpipe
config_for 'concurrency = 4;'
: >"$T/items"; plan link 20000
mkfifo "$T/slowpipe"
qrpool-fetch <"$T/items" >"$T/slowpipe" 2>"$T/err" & fetcher=$!
exec 8<"$T/slowpipe"
IFS= read -r first <&8
sleep 0.5
sql "UPDATE codes SET updated_at = updated_at + 1 WHERE id = 1"
is "passing on into a full pipe: a checkpoint completes meanwhile" \
  "$(sql 'PRAGMA wal_checkpoint(TRUNCATE)' | cut -d'|' -f1)" 0
cat <&8 >"$T/out"
exec 8<&-
rc=0; wait $fetcher || rc=$?
is "passing on into a full pipe: exit 0" "$rc" 0
is "passing on into a full pipe: every line, in order" "$first
$(cat "$T/out")" "$(cat "$T/items")"
