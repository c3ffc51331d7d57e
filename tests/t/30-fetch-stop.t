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
sleep 1
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
qrpool-pending --state planned | qrpool-fetch >"$T/out.2" 2>"$T/err.2"; rc=$?
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
sleep 0.8
kill -TERM $fetch
rc=0; wait $fetch || rc=$?
is "SIGTERM: exit 75" "$rc" 75
like "SIGTERM: a one-line summary" "$(cat "$T/err")" "interrupted: fetched [0-9]+.*left planned [0-9]+"
fetched=$(count "state = 'fetched'")
is "SIGTERM: stdout lists exactly the stored codes" "$(wc -l <"$T/out" | tr -d ' ')" "$fetched"
is "SIGTERM: calls in flight were stored, none lost" "$(stats ok_total)" "$fetched"
is "SIGTERM: the rest stays planned" "$(count "state = 'planned'")" $((200 - fetched))
is "SIGTERM: the run is recorded" "$(sql "SELECT exit_status FROM runs WHERE stage = 'fetch'")" 75

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
run qrpool-fetch --until 25:00 <"$T/items"
is "--until checks its time" "$rc" 64
