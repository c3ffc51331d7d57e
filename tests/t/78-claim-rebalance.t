#!/bin/sh
# A rebalance that does not end within kafka.timeout, after claim was given
# partitions: in a real cluster, a member slow to rejoin (a frozen pod, one
# slow to poll) holds it up. The brokers answer: said as a rebalance waiting
# for a member, not as Kafka's silence ("no answer"), which would send the
# operator after the network. The mock cluster stands in for the slow member
# itself: a rebalance a new member starts lasts session.timeout.ms - 1 s there
# (rdkafka_mock_cgrp.c, rd_kafka_mock_cgrp_rebalance), whoever rejoins.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
write_claim_config
# Sessions of 20 s: a rebalance then lasts about 19 s, far past claim's
# kafka.timeout of 5 s (the first join alone takes the mock 3 s).
sed -i 's|timeout = "15s"; properties = \[ "session.timeout.ms=6000"|timeout = "5s"; properties = [ "session.timeout.ms=20000"|' \
  "$QRPOOL_CONFIG"
ok "(claim's config: kafka.timeout 5s, sessions of 20 s)" -- \
  grep -q 'timeout = "5s"; properties = \[ "session.timeout.ms=20000"' "$QRPOOL_CONFIG"
publish_codes 60

# claim takes a code, so the group has given it partitions; its input stays
# open (a FIFO), so it stays in the group between records.
mkfifo "$T/feed"
qrpool-claim -v --pool poster --out "$T/codes" --wait 3s <"$T/feed" >"$T/out" 2>"$T/err" & claim=$!
exec 8>"$T/feed"
records 1 >&8
i=0
until [ -s "$T/out" ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
ok "claim has bound a code (the group gave it partitions)" -- test -s "$T/out" ||
  diag "$(grep -v 'applying schema' "$T/err")"

# An online member joins: the group takes every partition back, and gives
# none for about 19 s. claim, given its next record (within the 10 s it stays
# in the group while idle), waits kafka.timeout.
kcat -q -b "$KAFKA_BROKERS" -G qrpool-online.poster -X session.timeout.ms=20000 \
  -f '%k\n' qrpool.poster >/dev/null 2>&1 & joiner=$!
at_exit "kill_child $joiner"
# (Its join starts the rebalance; claim, idle, answers within 250 ms.)
i=0; until grep -q 'partition(s) given back to the group' "$T/err" || [ $i -gt 300 ]; do
  sleep 0.05; i=$((i + 1)); done
records 1 2 >&8
exec 8>&-
rc=0; wait $claim || rc=$?
is "the rebalance outlasting kafka.timeout: exit 75, one code bound" "$rc:$(wc -l <"$T/out")" 75:1
like "... said as a rebalance waiting for a member, not as no answer" "$(cat "$T/err")" \
  "error: kafka [^ ]+: the group qrpool-online.poster took back its partitions of qrpool.poster and has assigned none again within kafka.timeout \(5000 ms\): a rebalance waiting for a member that died \(it is dropped after session.timeout.ms\) or is slow to rejoin"
is "... no 'no answer'" "$(grep -c 'no answer' "$T/err")" 0
