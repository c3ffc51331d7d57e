#!/bin/sh
# qrpool-claim whose commit fails just before it waits for input: the commit
# is tried again while it waits, the group's rebalances are answered meanwhile,
# and only once the offsets are committed does it leave the group. It used to
# wait on stdin without a retry and without polling, in the group, until
# librdkafka put it out (max.poll.interval.ms): the online member that joined
# meanwhile waited that long, then got the code claim had bound; and claim's
# exit could crash in the revocation rd_kafka_consumer_close makes.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka --control "$T/kafka.ctl"
write_claim_config
# librdkafka puts a member that polls for nothing this long out of the group.
sed -i 's|"heartbeat.interval.ms=500" \]|"heartbeat.interval.ms=500", "max.poll.interval.ms=8000" ]|' \
  "$QRPOOL_CONFIG"
publish_codes 30
mkfifo "$T/fifo"
# One record, then stdin stays open and idle (a service between requests).
{ records 1 1; exec sleep 40; } >"$T/fifo" 2>/dev/null &
feeder=$!
at_exit "kill_child $feeder"
kafka_control error OffsetCommit REQUEST_TIMED_OUT 100
qrpool-claim -v --pool poster --out "$T/codes" --wait 3s <"$T/fifo" >"$T/out" 2>"$T/err" &
claim=$!
i=0
until [ -s "$T/out" ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
is "the record is bound" "$(wc -l <"$T/out")" 1
sleep 1
kafka_control clear-errors OffsetCommit   # Kafka answers again
# (A retry in the rebalance the online member starts would fail here: the mock
# refuses every commit while a group rebalances, where Kafka takes those of the
# current generation. So the member joins once the retry has gone through.)
i=0
until grep -q 'are committed, after' "$T/err" || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
# An online member joins and reads what the group has left: the partitions
# claim keeps while it idles come to it once claim leaves the group.
timeout 40 kcat -q -b "$KAFKA_BROKERS" -G qrpool-online.poster -X enable.auto.commit=false \
  -X session.timeout.ms=6000 -X auto.offset.reset=earliest -c 29 -f '%k\n' qrpool.poster \
  >"$T/online" 2>/dev/null || true
bound=$(cut -f1 "$T/out")
is "the online member got every other code" "$(wc -l <"$T/online")" 29
is "... and not the one claim bound" "$(grep -c "^$bound\$" "$T/online")" 0
errors=$(grep -c "error: kafka .*committing the offsets of pool poster: .*imed out" "$T/err")
is "the failed commit is said once, not once a try" "$errors" 1
like "... then its retry that went through" "$(cat "$T/err")" \
  "the offsets of pool poster are committed, after (a failed try|[0-9]+ failed tries)"
kill "$feeder" 2>/dev/null
rc=0; wait "$claim" || rc=$?
is "claim ends 0 at the end of its input (the commit went through)" "$rc" 0
like "... having left the group while idle" "$(cat "$T/err")" \
  "stdin idle for 10 s: leaving group qrpool-online.poster"

# Commits that keep failing while an online member joins: the partitions go to
# it with claim's code not committed past (the double hand-out this all
# guards against). Claim says so, and exits 75 even after it has left the
# group idle (leaving forgot it, and claim exited 0).
kafka_control error OffsetCommit REQUEST_TIMED_OUT 100000
publish_codes 10
: >"$T/out"
{ records 1 2; exec sleep 40; } >"$T/fifo" &
feeder=$!
qrpool-claim -v --pool poster --out "$T/codes" --wait 3s <"$T/fifo" >"$T/out" 2>"$T/err" &
claim=$!
i=0
until [ -s "$T/out" ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
sleep 1
timeout 12 kcat -q -b "$KAFKA_BROKERS" -G qrpool-online.poster -X enable.auto.commit=false \
  -X session.timeout.ms=6000 -X auto.offset.reset=earliest -c 1 -f '%k\n' qrpool.poster \
  >/dev/null 2>&1 || true
i=0
until grep -q "stdin idle" "$T/err" || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill "$feeder" 2>/dev/null
rc=0; wait "$claim" || rc=$?
like "commits failing in a rebalance: said" "$(cat "$T/err")" \
  "partitions went back to the group before the offsets of codes bound on them were committed"
is "... and 75 at the end, though claim left the group idle meanwhile" \
  "$rc:$(grep -c 'stdin idle for 10 s' "$T/err")" 75:1
kafka_control clear-errors OffsetCommit

# Kafka answering fetches but refusing every commit: claim used to go on
# binding and printing codes, each of them uncommitted (200 of 200 in the
# review's run), every one of which the group could then hand to an online
# member too. Once 8 codes wait for Kafka to acknowledge their commit, or a
# commit it sent is refused, it commits and waits for the answer before the
# next code: refused too, it stops, a few codes in (none, when codes bound
# earlier come back first: skipped, their offsets are to be committed past too).
publish_codes 60
kafka_control error OffsetCommit REQUEST_TIMED_OUT 100000
: >"$T/out"
rc=0
records 50 100 | qrpool-claim --pool poster --out "$T/codes" --wait 3s >"$T/out" 2>"$T/err" || rc=$?
kafka_control clear-errors OffsetCommit
handed=$(wc -l <"$T/out" | tr -d ' ')
is "commits refused: exit 75" "$rc" 75
ok "... at most 9 codes handed out (CONSUMER_UNACKED_MAX + 1), not the 50 asked ($handed)" test "$handed" -le 9
like "... the refusal said, before the next code" "$(cat "$T/err")" \
  "committing the offsets of pool poster before the next code: .*imed out"
