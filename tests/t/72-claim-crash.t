#!/bin/sh
# kill -9 in the middle of a claim, then a rerun: no code is handed out twice,
# none is lost, every handed-out code resolves.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
start_redis
write_claim_config redis
total=3000
publish_codes $total

records $total >"$T/records"
: >"$T/out1"
qrpool-claim --pool poster --out "$T/run1" --wait 300ms <"$T/records" >"$T/out1" 2>"$T/err1" &
pid=$!
# Wait for some codes to be handed out, then kill mid-way. Offsets are
# committed asynchronously after each code, so the commit usually trails the
# bindings by a code or so: then the rerun meets those again (redelivered and
# skipped). When it does not, there is nothing to redeliver, and the counts
# below still agree (0).
i=0
while [ "$(cat "$T/out1" | wc -l)" -lt 137 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
handed1=$(wc -l <"$T/out1")
bound1=$(sql 'SELECT count(*) FROM bindings')
committed1=$(committed_total)
diag "killed after $handed1 lines, $bound1 bindings, $committed1 offsets committed"
ok "killed mid-way (some, not all, handed out)" -- test "$handed1" -gt 0 -a "$bound1" -lt $total
ok "the commit never passes the bindings" -- test "$committed1" -le "$bound1"
ok "a visible file is always bound" -- test "$(ls "$T/run1" | wc -l)" -le "$bound1"

records $total 100000 | { run qrpool-claim -v --pool poster --out "$T/run2" --wait 300ms; echo "$rc" >"$T/rc"; }
cp "$T/out" "$T/out2"
is "rerun: ends on the empty pool (exit 75)" "$(cat "$T/rc")" 75
redelivered=$(sed -n 's/.* bound, \([0-9]*\) redelivered and skipped.*/\1/p' "$T/err")
is "rerun: the codes bound but not committed came back and were skipped" "$redelivered" $((bound1 - committed1))
is "bindings: every published code bound exactly once" "$(sql 'SELECT count(*), count(DISTINCT request_id) FROM bindings')" "$total|$total"
is "no code lost: bindings = published" "$(sql 'SELECT request_id FROM bindings' | sort | md5sum)" "$(sort "$T/published" | md5sum)"
is "offsets: all committed" "$(committed_total)" $total
ls "$T/run1" "$T/run2" | grep -E '^[0-9A-Za-z]{16}\.jpg$' | sort >"$T/files"
is "no file id in both runs" "$(uniq -d "$T/files" | wc -l)" 0
is "no stdout id in both runs" "$(cut -f1 "$T/out1" "$T/out2" | sort | uniq -d | wc -l)" 0
is "every file of run 2 was printed" "$(ls "$T/run2" | grep -c '\.jpg$')" "$(wc -l <"$T/out2")"
sed 's/\.jpg$//' "$T/files" >"$T/file-ids"
rcli FLUSHALL >/dev/null
rc=0; qrpool-resolve <"$T/file-ids" >"$T/resolved" 2>"$T/err" || rc=$?
is "every handed-out code resolves (from SQLite)" "$rc" 0
is "one answer per file" "$(wc -l <"$T/resolved")" "$(wc -l <"$T/file-ids")"
rc=0; qrpool-resolve <"$T/file-ids" >"$T/resolved2" 2>"$T/err" || rc=$?
is "and again from the re-warmed Redis, the same" "$(md5sum <"$T/resolved2")" "$(md5sum <"$T/resolved")"

# A rerun right after a kill -9, while the group still waits for the dead
# member (its session has not expired): the brokers answer, the group assigns
# nothing. Said as such, not as Kafka's silence ("no answer"), which would send
# the operator after the network at 3 a.m.
publish_codes 20
sed -i 's|^kafka = .*|kafka = { brokers = "'"$KAFKA_BROKERS"'"; timeout = "8s"; properties = [ "session.timeout.ms=40000", "heartbeat.interval.ms=500" ]; };|' "$QRPOOL_CONFIG"
mkfifo "$T/feed"
qrpool-claim --pool poster --out "$T/run3" <"$T/feed" >"$T/out3" 2>"$T/err3" &
pid=$!
exec 8>"$T/feed"   # held open: claim waits for its next record, in the group
records 1 200000 >&8
i=0
while [ ! -s "$T/out3" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ok "the first claim was in the group, with a code handed out, when killed" -- test -s "$T/out3"
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
exec 8>&-
records 1 300000 | { run qrpool-claim --pool poster --out "$T/run4"; echo "$rc" >"$T/rc"; }
is "a rerun while the group waits out a killed member: 75" "$(cat "$T/rc")" 75
like "... saying the group assigned nothing, not that Kafka is silent" "$(cat "$T/err")" \
  "the group qrpool-online.poster assigned no partition of qrpool.poster within kafka.timeout \(8000 ms\): a rebalance waiting for a member that died"
