#!/bin/sh
# local-kafka: librdkafka's mock cluster must serve independent clients (kcat,
# and kafka-offsets for what kcat cannot read), and its control FIFO must
# inject the faults the pipeline's tests rely on.
. "${0%/*}/lib.sh"

command -v kcat >/dev/null 2>&1 || skip_all "kcat is not installed"

# Polls COMMAND every 50 ms for up to SECONDS; fails if it never succeeds.
wait_for() {
  wait_tries=$(($1 * 20)); shift
  until "$@" >/dev/null 2>&1; do
    wait_tries=$((wait_tries - 1))
    [ "$wait_tries" -gt 0 ] || return 1
    sleep 0.05
  done
}

# Sends one line through the control FIFO and prints the result the log
# gives for it; waiting for that means the next step sees the fault in place.
control() {
  before=$(results "$*")
  printf '%s\n' "$*" >"$T/kafka.ctl"
  wait_for 5 results_above "$*" "$before" || { echo "no result for: $*"; return; }
  grep -F "control: $*: " "$T/kafka.log" | tail -n 1
}
results() { grep -cF "control: $1: " "$T/kafka.log" || true; }
results_above() { [ "$(results "$1")" -gt "$2" ]; }

# Sums a column of kafka-offsets output; -1 (no committed offset) counts as 0.
sum_column() { awk -v c="$1" '$c > 0 { s += $c } END { print s + 0 }'; }
produce() { kcat -P -b "$BOOT" -X enable.idempotence=true -X acks=all "$@"; }
# One message to t1 [PARTITION], failing after TIMEOUT ms.
produce_one() { printf 'probe\n' | produce -t t1 -p "$1" -X message.timeout.ms="$2"; }
high_watermark() { kafka-offsets -b "$BOOT" -t t1 | awk -v p="$1" '$1 == p { print $3 }'; }

# --- usage ---------------------------------------------------------------------
run local-kafka --help
is "--help exits 0" "$rc" 0
like "--help documents the control commands" "$(cat "$T/out")" "broker-down ID\|all"
usage_error() { run local-kafka "$@"; is "usage error: $*" "$rc" 64; }
usage_error --brokers 0
usage_error --topic a/b
usage_error --topic t:0
usage_error --brokers 2 --topic t:1:3
usage_error --topic t --topic t
usage_error --after "soon broker-down 1"
usage_error --after "1s broker-sideways 1"
usage_error -X no.such.property=1
usage_error --nonsense
usage_error extra

# Command parsing, as data: --after parses its command before anything
# starts and --help then exits 0, so each case is one quick run. (Three
# brokers: a broker the cluster will not have is a usage error too.)
while read -r expected command; do
  run local-kafka --brokers 3 --after "0s $command" --help
  is "parse ($expected): $command" "$rc" "$expected"
done <<'CASES'
0 broker-down 1
0 broker-down all
64 broker-down 0
64 broker-down
64 broker-down 1 2
0 rtt 2 250
64 rtt 4 250
64 broker-down 9
64 rtt 2 -1
64 rtt 2 600001
0 leader t1 0 none
0 coordinator qrpool-online.poster 2
64 coordinator qrpool-online.poster all
64 coordinator qrpool-online.poster
64 leader t1 -1 1
64 leader t/1 0 1
0 error Produce NOT_LEADER_FOR_PARTITION 5
0 error fetch request_timed_out
0 error 0 6 2
0 error Produce RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
64 error Produce NO_SUCH_ERROR
64 error Frobnicate 6
64 error Produce 6 0
0 produce-error _TRANSPORT
64 produce-error 99999
0 broker-error 2 Produce NOT_ENOUGH_REPLICAS 3 100
64 broker-error all Produce NOT_ENOUGH_REPLICAS
0 clear-errors Produce
0 topic-error t1 NO_ERROR
0 create-topic t2:6:3
64 create-topic t2:6:x
64 create-topic :3
64 # a comment is for the FIFO, not a command
CASES

# --- start ---------------------------------------------------------------------
local-kafka --brokers 3 --topic t1:3 --bootstrap-file "$T/kafka.boot" --control "$T/kafka.ctl" \
  --after "200ms create-topic late:2" >"$T/kafka.out" 2>"$T/kafka.log" &
kafka_pid=$!
at_exit "kill_child $kafka_pid"
ok "bootstrap file appears" -- wait_for 10 test -s "$T/kafka.boot"
BOOT=$(cat "$T/kafka.boot")
like "three loopback brokers" "$BOOT" '^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$'
is "stdout carries the same line" "$(cat "$T/kafka.out")" "$BOOT"
like "logs where it listens" "$(cat "$T/kafka.log")" "info: listening on $BOOT \(3 brokers\)"
ok "the control FIFO exists" -- test -p "$T/kafka.ctl"

# --- metadata ------------------------------------------------------------------
run kcat -L -b "$BOOT"
like "kcat -L lists 3 brokers" "$(cat "$T/out")" " 3 brokers:"
like "kcat -L lists t1 with 3 partitions" "$(cat "$T/out")" 'topic "t1" with 3 partitions'
ok "--after created a topic" -- wait_for 5 grep -q "control: create-topic late:2: ok" "$T/kafka.log"
run kcat -L -b "$BOOT" -t late
like "the scheduled topic has 2 partitions" "$(cat "$T/out")" 'topic "late" with 2 partitions'

# --- produce and read back -----------------------------------------------------
seq 1 100 | sed 's/.*/key&:value&/' >"$T/messages"
run produce -t t1 -K: -H pool=poster -H source=test -l "$T/messages"
is "idempotent producer delivers 100 keyed messages" "$rc" 0
run kcat -C -b "$BOOT" -t t1 -e -q -f '%k %s %h\n'
is "reads back 100 messages" "$(wc -l <"$T/out" | tr -d ' ')" 100
is "every key once, with its own value" \
  "$(sort -u "$T/out" | awk '{ sub("key", "", $1); sub("value", "", $2); print $1 == $2 ? $1 : "bad" }' |
    sort -n | tr '\n' ' ')" "$(seq 1 100 | tr '\n' ' ')"
is "every message carries both headers" "$(awk '{ print $3 }' "$T/out" | sort -u)" \
  "pool=poster,source=test"
run kafka-offsets -b "$BOOT" -t t1
is "watermarks: nothing dropped" "$(awk '{ print $2 }' "$T/out" | sort -u)" 0
is "watermarks: 100 messages in all" "$(sum_column 3 <"$T/out")" 100

# --- consumer group and committed offsets ----------------------------------------
# session.timeout.ms: when the last member leaves, the mock keeps the group
# "Joining" for the leaver's session timeout (45 s by default) before the next
# member is admitted.
group() {
  kcat -b "$BOOT" -G grp -q -f '%k\n' -X auto.offset.reset=earliest \
    -X session.timeout.ms=6000 "$@" t1
}
run group -c 40
is "the group consumes 40 messages" "$(wc -l <"$T/out" | tr -d ' ')" 40
mv "$T/out" "$T/first"
run kafka-offsets -b "$BOOT" -t t1 -g grp
is "another client sees 40 committed" "$(sum_column 4 <"$T/out")" 40
run group -e
is "the group resumes with the other 60" "$(wc -l <"$T/out" | tr -d ' ')" 60
is "no message twice, none lost" "$(sort -u "$T/first" "$T/out" | wc -l | tr -d ' ')" 100
run kafka-offsets -b "$BOOT" -t t1 -g grp
is "all 100 committed" "$(sum_column 4 <"$T/out")" 100

# --- faults --------------------------------------------------------------------
like "leader t1 0 2" "$(control leader t1 0 2)" ": ok$"
like "leader t1 1 1" "$(control leader t1 1 1)" ": ok$"
before=$(high_watermark 0)
like "broker-down 2" "$(control broker-down 2)" ": ok$"
run produce_one 0 1500
is "a delivery to broker 2's partition fails" "$rc" 1
like "... by message timeout" "$(cat "$T/err")" "Message timed out"
run produce_one 1 5000
is "broker 1's partition still takes messages" "$rc" 0
like "broker-up 2" "$(control broker-up 2)" ": ok$"
run produce_one 0 10000
is "after broker-up the delivery succeeds" "$rc" 0
is "exactly one message landed" "$(high_watermark 0)" "$((before + 1))"

like "produce-error NOT_LEADER_FOR_PARTITION 3" \
  "$(control produce-error NOT_LEADER_FOR_PARTITION 3)" ": ok$"
run produce_one 1 10000
is "retriable produce errors are retried" "$rc" 0
like "produce-error 29 (by number)" "$(control produce-error 29)" ": ok$"
run produce_one 1 10000
is "a fatal produce error fails the delivery" "$rc" 1
like "... with the injected error" "$(cat "$T/err")" "Topic authorization failed"

like "rtt all 600" "$(control rtt all 600)" ": ok$"
start=$(date +%s%N)
run kcat -L -b "$BOOT" -t t1
is "kcat -L still works" "$rc" 0
ok "... but takes at least the round trip" -- test $(($(date +%s%N) - start)) -ge 600000000
like "rtt all 0" "$(control rtt all 0)" ": ok$"

like "an unknown command is reported" "$(control broker-sideways 1)" \
  "warning: control: broker-sideways 1: unknown command"
like "a refused command is reported with the reason" "$(control broker-down 9)" \
  "warning: control: broker-down 9: failed: no broker 9"
ok "and the cluster keeps serving" -- kcat -L -b "$BOOT" -t t1

# FIFO framing: several lines in one write, comments and blank lines skipped,
# CRLF accepted, a line split across two writes joined, an overlong line
# reported once and dropped whole.
printf '# a comment\n\n   \nrtt 1 5\r\nrtt 3 ' >"$T/kafka.ctl"
sleep 0.2
printf '5\n' >"$T/kafka.ctl"
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "x"; print "" }' >"$T/kafka.ctl"
like "the FIFO still answers after them" "$(control rtt all 0)" ": ok$"
ok "a CRLF line runs" -- grep -q "control: rtt 1 5: ok" "$T/kafka.log"
ok "a line split across writes" -- grep -q "control: rtt 3 5: ok" "$T/kafka.log"
is "an overlong line is reported once" "$(grep -c "longer than 512 bytes" "$T/kafka.log")" 1
ok "comments are skipped silently" -- sh -c "! grep -q 'comment' '$T/kafka.log'"

# librdkafka 2.0.2's mock thread misses the wake-up for an op after it has
# been idle, and then serves each op at its 1 s idle poll: 100 topics once took
# 30 s to create, and a test waiting for the bootstrap file gave up. 50
# commands after an idle spell took 7 to 10 s that way; well under 1 s woken.
sleep 1.5
before=$(results "rtt 2 0")
i=0; while [ $i -lt 50 ]; do echo "rtt 2 0"; i=$((i + 1)); done >"$T/kafka.ctl"
ok "50 commands after an idle spell all apply within 5 s (not one a second)" -- \
  wait_for 5 results_above "rtt 2 0" $((before + 49))

# --- stop ----------------------------------------------------------------------
start=$(date +%s%N)
kill -TERM "$kafka_pid"
(sleep 5; kill -KILL "$kafka_pid") >/dev/null 2>&1 &
watchdog=$!
rc=0; wait "$kafka_pid" || rc=$?
kill "$watchdog" 2>/dev/null || true
is "SIGTERM: exit status 0" "$rc" 0
ok "... within 4.5 s (the watchdog's KILL comes at 5)" -- test $((($(date +%s%N) - start) / 1000000)) -lt 4500
ok "the bootstrap file is removed" -- test ! -e "$T/kafka.boot"
ok "the FIFO is removed" -- test ! -e "$T/kafka.ctl"
is "no errors logged" "$(grep -c ' error: ' "$T/kafka.log" || true)" 0
