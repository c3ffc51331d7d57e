#!/bin/sh
# qrpool-publish under faults: a broker taken down mid-run, kill -9 mid-run,
# SIGTERM mid-run. Whatever happens, a code is 'published' only if Kafka holds
# it where the DB says, and a rerun finishes the rest.
. "${0%/*}/lib.sh"
. "${0%/*}/publish-lib.sh"

start_kafka --brokers 3 -t qrpool.poster:6 -t qrpool.card:8 -t qrpool.link:3
write_config
set_kafka 3s

# Every published code of POOL sits in Kafka at the DB's partition and offset,
# with the DB's digest: prints the codes for which that is not so.
misplaced() {
  read_topic "qrpool.$1" | cut -f1-4 | sort >"$T/kafka.$1"
  sql "SELECT request_id, kafka_partition, kafka_offset, sha256 FROM codes
       WHERE pool = '$1' AND state = 'published' ORDER BY request_id" | tr '|' '\t' |
    sort | comm -23 - "$T/kafka.$1"
}
# wait_for_lines FILE N: until FILE has N lines (10 s at most).
wait_for_lines() {
  for _ in $(seq 200); do
    [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.05
  done
}
count() { sql "SELECT count(*) FROM codes WHERE pool = '$1' AND state = '$2'"; }
# publish_refused_by ERROR COUNT: qrpool-publish of $T/items (run), the cluster
# answering its next COUNT produce requests with ERROR.
publish_refused_by() {
  kafka_control produce-error "$1" "$2"
  run qrpool-publish <"$T/items"
  kafka_control clear-errors Produce
}

# publish_fed [ARGS]: qrpool-publish ARGS in the background ($publisher), its
# input the FIFO $T/in, held open here on fd 3. out and err are emptied here
# first: the child's own redirections truncate them only once the FIFO opens,
# after which a wait on them could still read the scenario before's lines.
publish_fed() {
  : >"$T/out"; : >"$T/err"
  qrpool-publish "$@" <"$T/in" >"$T/out" 2>"$T/err" &
  publisher=$!
  exec 3>"$T/in"
}

# --- a broker goes down mid-publish ------------------------------------------
# Input through a FIFO, so each step waits for the one before, however
# loaded the machine: half the items delivered, the broker down, the rest.
# The mock picks leaders at random: place them, so broker 2 leads 2 of the 6.
for partition in 0 1 2 3 4 5; do
  kafka_control leader qrpool.poster $partition $((partition % 3 + 1))
done
stage poster=600 --size 1000
qrpool-pending --state fetched --pool poster >"$T/items"
mkfifo "$T/in"
publish_fed
head -300 "$T/items" >&3
wait_for_lines "$T/out" 300
kafka_control broker-down 2
tail -n +301 "$T/items" >&3
exec 3>&-
rc=0; wait $publisher || rc=$?
is "a broker down: exit 75" "$rc" 75
like "... with the counts" "$(cat "$T/err")" "[0-9]+ of 600 codes not delivered"
ok "some codes were published before and beside the failure" test "$(count poster published)" -gt 300
ok "the codes led by the dead broker stay fetched" test "$(count poster fetched)" -gt 0
is "the items printed are exactly the published codes" "$(sort "$T/out" | cut -f1)" \
  "$(sql "SELECT request_id FROM codes WHERE pool = 'poster' AND state = 'published'" | sort)"
kafka_control broker-up 2
is "no code is marked published that Kafka does not hold there" "$(misplaced poster)" ""
qrpool-pending --state fetched --pool poster | qrpool-publish >/dev/null 2>"$T/err"
is "the broker back, a rerun publishes the rest" "$(count poster published)" 600
is "... and every one is where the DB says" "$(misplaced poster)" ""

# --- kill -9 mid-publish, then a rerun from the DB ---------------------------
stage card=6000 --size 500
qrpool-pending --state fetched --pool card >"$T/items"
# Half the input, and the kill once some are recorded: the other half is
# surely left. The brokers answer 100 ms late and take 50 codes a request,
# so the 3,000 go over some 400 ms: Kafka holds codes whose deliveries are
# not recorded yet when the kill lands (a fast machine recorded all 3,000
# first otherwise, and nothing was in flight).
set_kafka 3s batch.num.messages=50
kafka_control rtt all 100
publish_fed
head -3000 "$T/items" >&3
for _ in $(seq 200); do
  [ "$(count card published)" -gt 0 ] && break
  sleep 0.05
done
kafka_control rtt all 3000   # (the answers to what is in flight now come too late for the DB)
kill -9 $publisher
exec 3>&-
wait $publisher 2>/dev/null || true
kafka_control rtt all 0
set_kafka 3s
sql "SELECT request_id FROM codes WHERE pool = 'card' AND state = 'fetched'" | sort >"$T/unrecorded"
read_topic qrpool.card | cut -f1 | sort -u >"$T/in-kafka"
ok "killed with deliveries in flight: Kafka holds codes the DB has not recorded" \
  test "$(comm -12 "$T/in-kafka" "$T/unrecorded" | wc -l)" -gt 0
ok "killed mid-run: some codes published" test "$(count card published)" -gt 0
ok "killed mid-run: some codes left fetched" test "$(wc -l <"$T/unrecorded")" -gt 0
qrpool-pending --state fetched --pool card | qrpool-publish >/dev/null 2>"$T/err"
is "the rerun publishes every staged code" "$(count card published)" 6000
read_topic qrpool.card | cut -f1 | sort | uniq -c >"$T/copies"
is "every code is in Kafka at least once" "$(wc -l <"$T/copies")" 6000
awk '$1 > 1 { print $2 }' "$T/copies" | sort >"$T/duplicates"
is "duplicates only among the codes in flight at the kill" \
  "$(comm -23 "$T/duplicates" "$T/unrecorded")" ""
is "every recorded partition and offset holds the code" "$(misplaced card)" ""
diag "$(wc -l <"$T/unrecorded") codes were unrecorded at the kill, $(wc -l <"$T/duplicates") went twice"

# --- SIGTERM: stop reading, drain, record, exit 75 ---------------------------
stage link=100
qrpool-pending --state fetched --pool link >"$T/items"
publish_fed
cat "$T/items" >&3
wait_for_lines "$T/out" 100
started=$(date +%s)
# (The stage before stops too, as when the whole pipeline is signalled: a
# signal to publish alone has it read its input to the end, see below.)
kill -TERM $publisher; exec 3>&-
rc=0; wait $publisher || rc=$?
is "SIGTERM while waiting for input: exit 75" "$rc" 75
is "... nothing said of an input with nothing left" "$(grep -c ' 0 lines of input read' "$T/err")" 0
ok "... promptly (within 5 s)" test $(($(date +%s) - started)) -le 5
like "... saying so" "$(cat "$T/err")" "interrupted"
like "... and what it did, as a warning (the counts were for -v only)" "$(cat "$T/err")" \
  "qrpool-publish warning: read 100 lines, published 100, failed 0"
is "what was delivered is recorded" "$(count link published)" 100

# SIGTERM while a read waits for the rest of a line (the handlers restart
# system calls, so the read must not block on its own). The stage before is
# still writing: its lines are read and let go until it ends (cut off, it would
# die on a broken pipe, 74, a night read as a disk error), or the same signal
# again a second later.
publish_fed
printf 'HalfALine' >&3
wait_handles_term $publisher; sleep 0.5
kill -TERM $publisher
sleep 1.5   # (a second signal insists only a second or more after the first)
reading=no; kill -0 $publisher 2>/dev/null && reading=yes
is "... its input read on while the stage before still writes" "$reading" yes
like "... saying why it has not ended" "$(cat "$T/err")" \
  "the stage before this one is still writing: its lines are read and let go until it ends"
kill -TERM $publisher
i=0
while kill -0 $publisher 2>/dev/null && [ $i -lt 60 ]; do sleep 0.05; i=$((i + 1)); done
ok "... the same signal again: it stops promptly, not when the writer goes" test $i -lt 60
exec 3>&-
rc=0; wait $publisher || rc=$?
is "SIGTERM during half a line: exit 75" "$rc" 75

# --- backpressure: a producer queue far smaller than the input ---------------
set_kafka 10s "queue.buffering.max.messages=50"
kafka_control rtt all 20
stage card=500 --size 300
run sh -c 'qrpool-pending --state fetched --pool card | qrpool-publish'
is "a full producer queue makes publish wait, not fail" "$rc" 0
is "... and every code goes out" "$(wc -l <"$T/out")" 500
is "... recorded" "$(count card fetched)" 0
# Waiting for room, a code keeps its own image (read before the wait).
cut -f1 "$T/out" | sort >"$T/waited"
read_topic qrpool.card | cut -f1,4 | sort -u | join -t "$(printf '\t')" "$T/waited" - >"$T/sent"
is "... each with its own image" "$(cat "$T/sent")" "$(sql "SELECT request_id, sha256 FROM codes
  WHERE pool = 'card' AND state = 'published'" | tr '|' '\t' | sort | join -t "$(printf '\t')" "$T/waited" -)"
is "... all 500 of them" "$(wc -l <"$T/sent")" 500

# --- the staging DB locked by another writer longer than busy_timeout: publish
# goes on reading, the deliveries wait for their commit (tried every second) -----
set_kafka 10s
sed -i 's|busy_timeout = "5s"|busy_timeout = "1s"|' "$QRPOOL_CONFIG"
stage link=60 --size 300
qrpool-pending --state fetched --pool link >"$T/items"
# feed_locked N SECONDS: the first N items to the publish on fd 3, then the DB
# locked for SECONDS and until publish says it waits, then the rest; waits for
# both. Sets $rc.
feed_locked() {
  head -"$1" "$T/items" >&3
  wait_for_lines "$T/out" "$1"
  lock_db "$2" "deliveries wait for their commit"
  tail -n +$(($1 + 1)) "$T/items" >&3
  exec 3>&-
  rc=0; wait $publisher || rc=$?
  wait $locker
}
publish_fed
feed_locked 10 2
is "a DB locked 2 s past busy_timeout (1 s) while publishing: waited out, exit 0" "$rc" 0
like "... saying so" "$(cat "$T/err")" "locked by another process: deliveries wait for their commit"
is "... every code recorded" "$(count link fetched)" 0
is "... and printed" "$(wc -l <"$T/out")" 60
# ... and the wall clock stepped a minute forward before that wait (NTP, a VM
# resumed): the tries go on every second of the monotonic clock, not a minute on.
# (Forward: clockstep.so fakes the clock a process reads, not the kernel's, so a
# deadline taken on the wall clock then lies a minute ahead of the kernel's.)
if [ -e "$QRPOOL_BIN/clockstep.so" ]; then
  stage link=20 --size 300
  qrpool-pending --state fetched --pool link >"$T/items"
  : >"$T/out"; : >"$T/err"
  env ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD="$QRPOOL_BIN/clockstep.so" \
    QRPOOL_TEST_CLOCK_STEP=0.5:-60 qrpool-publish <"$T/in" >"$T/out" 2>"$T/err" & publisher=$!
  exec 3>"$T/in"
  started=$(date +%s)
  feed_locked 5 4
  took=$(($(date +%s) - started))
  is "... the wall clock a minute forward meanwhile: waited out all the same (took $took s, not a minute more)" \
    "$rc:$(count link fetched):$([ "$took" -le 20 ] && echo soon)" 0:0:soon
else
  skip_tests 1 "clockstep.so is not built"
fi

# A lock for 5 s in the middle of 20,000 codes: publish keeps going, the lock is
# said once, not once per batch; nothing stops (a nightly fill would lose the
# rest of its night).
# The lock is taken between two steps of the input (a committer busy all the
# time could starve the locker's own wait), then the rest comes.
stage poster=20000 --size 200
qrpool-pending --state fetched --pool poster >"$T/items"
publish_fed -v
head -10 "$T/items" >&3
wait_for_lines "$T/out" 10
lock_db 5
tail -n +11 "$T/items" >&3
exec 3>&-
rc=0; wait $publisher || rc=$?
wait $locker
all=$(sql "SELECT count(*) FROM codes WHERE pool = 'poster'")
is "locked for 5 s (busy_timeout 1 s): exit 0, every code published" "$rc:$(count poster published)" "0:$all"
is "... every line printed" "$(wc -l <"$T/out")" 20000
is "... the wait said once" "$(grep -c 'locked by another process' "$T/err")" 1
is "... and no error line per try" "$(grep -c 'database is locked' "$T/err")" 0
like "... and its end" "$(cat "$T/err")" "the staging DB is free again"

# locked_publish SECONDS: 300 card codes fed to publish through a FIFO left
# open on fd 3, while another process holds the DB locked for SECONDS (taken
# once publish has recorded its run). Sets $publisher, $locker and $before.
locked_publish() {
  stage card=300 --size 200
  qrpool-pending --state fetched --pool card >"$T/items"
  before=$(count card published)
  rm -f "$T/in"; mkfifo "$T/in"
  runs=$(sql "SELECT count(*) FROM runs WHERE stage = 'publish'")
  publish_fed
  for _ in $(seq 200); do
    [ "$(sql "SELECT count(*) FROM runs WHERE stage = 'publish'")" -gt "$runs" ] && break; sleep 0.05
  done
  kafka_end=$(topic_end qrpool.card)
  lock_db "$1"
  cat "$T/items" >&3
}

# topic_end TOPIC: the sum of its partitions' high watermarks.
topic_end() {
  kafka-offsets -b "$KAFKA_BROKERS" -t "$1" | awk '{ n += $3 } END { print n + 0 }'
}

# in_kafka N: waits (10 s at most) until the card topic holds N more messages
# than when locked_publish began: every line read and sent, whatever the load.
in_kafka() {
  i=0
  while [ "$(topic_end qrpool.card)" -lt $((kafka_end + $1)) ] && [ $i -lt 200 ]; do
    sleep 0.05; i=$((i + 1))
  done
}

# Still locked when the input ends: waited out until kafka.timeout (3 s here),
# then tried once more and left unrecorded (75); a rerun records them.
set_kafka 3s
locked_publish 12
exec 3>&-
started=$(date +%s)
rc=0; wait $publisher || rc=$?
took=$(($(date +%s) - started))
is "locked past the end of the input and kafka.timeout: exit 75" "$rc" 75
like "... the codes delivered but not recorded are said" "$(cat "$T/err")" \
  "300 codes delivered but not recorded"
is "... they stay fetched, none printed" "$(($(count card published) - before)):$(wc -l <"$T/out")" "0:0"
ok "... it gave up at kafka.timeout and one more try (${took} s), not with the lock" [ "$took" -le 9 ]
wait $locker
set_kafka 10s
qrpool-pending --state fetched --pool card | qrpool-publish >/dev/null 2>"$T/err"
is "... and a rerun records them" "$(($(count card published) - before))" 300

# SIGTERM while the DB is locked for a moment (5 s; busy_timeout 20 s): what
# Kafka confirmed is still recorded once the lock is gone (kafka.timeout allows
# it), not left to go again on the next run; the run's end is recorded too.
sed -i 's|busy_timeout = "1s"|busy_timeout = "20s"|' "$QRPOOL_CONFIG"
set_kafka 10s
locked_publish 5
in_kafka 300    # the deliveries are in, their commit waits for the lock
kill -TERM $publisher; exec 3>&-   # (the stage before stops too)
rc=0; wait $publisher || rc=$?
wait $locker
is "SIGTERM, the DB locked for 5 s: exit 75 (stopped)" "$rc" 75
is "... every code delivered is recorded once the lock is gone, and printed" \
  "$(($(count card published) - before)):$(wc -l <"$T/out")" "300:300"
is "... the run's end recorded too" "$(sql "SELECT ended_at IS NOT NULL, items_out, exit_status
  FROM runs WHERE stage = 'publish' ORDER BY id DESC LIMIT 1")" "1|300|75"

# Locked for longer: the stop waits for it until kafka.timeout (3 s here) at
# most, not the lock waits of busy_timeout (20 s) each (the commit under way,
# the last try, the run's record).
set_kafka 3s
locked_publish 30
in_kafka 300
kill -TERM $publisher; exec 3>&-
started=$(date +%s)
rc=0; wait $publisher || rc=$?
took=$(($(date +%s) - started))
is "SIGTERM, the DB locked for 30 s (busy_timeout 20 s): exit 75" "$rc" 75
ok "... by kafka.timeout and the run's end's short wait, not after lock waits (${took} s)" \
  [ "$took" -le 8 ]
is "... nothing recorded, nothing printed" "$(($(count card published) - before)):$(wc -l <"$T/out")" "0:0"
like "... the codes delivered but not recorded are said" "$(cat "$T/err")" \
  "300 codes delivered but not recorded"
kill $locker 2>/dev/null || true; pkill -f "sqlite3 $T/staging.db" 2>/dev/null || true; wait $locker 2>/dev/null || true
set_kafka 10s
qrpool-pending --state fetched --pool card | qrpool-publish >/dev/null 2>"$T/err"
is "... and a rerun records them" "$(($(count card published) - before))" 300
# ... and the same signal again ends that wait at once.
set_kafka 20s
locked_publish 30
in_kafka 300
kill -TERM $publisher; exec 3>&-
sleep 1.2; kill -TERM $publisher
started=$(date +%s)
rc=0; wait $publisher || rc=$?
took=$(($(date +%s) - started))
is "... the same signal again: exit 75" "$rc" 75
ok "... at once, not at kafka.timeout (20 s) (${took} s)" [ "$took" -le 3 ]
kill $locker 2>/dev/null || true; pkill -f "sqlite3 $T/staging.db" 2>/dev/null || true; wait $locker 2>/dev/null || true
set_kafka 10s
qrpool-pending --state fetched --pool card | qrpool-publish >/dev/null 2>"$T/err"
is "... and a rerun records them" "$(($(count card published) - before))" 300
sed -i 's|busy_timeout = "20s"|busy_timeout = "5s"|' "$QRPOOL_CONFIG"

# --- half a line from the stage before: the deliveries before it are recorded and
# printed meanwhile ---------------------------------------------------------------
stage link=3
qrpool-pending --state fetched --pool link >"$T/items"
publish_fed
head -1 "$T/items" >&3
sed -n 2p "$T/items" | cut -c1-5 | tr -d '\n' >&3
wait_for_lines "$T/out" 1
is "half a line waiting: the line before is published and printed meanwhile" "$(wc -l <"$T/out")" 1
sed -n 2p "$T/items" | cut -c6- >&3
sed -n 3p "$T/items" >&3
exec 3>&-
rc=0; wait $publisher || rc=$?
is "... and the line completed later is published too" "$rc:$(wc -l <"$T/out")" "0:3"

# --- a code listed twice in one input: sent once, the repeat skipped (65) -----------
stage link=2
qrpool-pending --state fetched --pool link >"$T/items"
cat "$T/items" "$T/items" >"$T/twice"
run qrpool-publish <"$T/twice"
is "a code listed twice: exit 65" "$rc" 65
like "... the repeat reported" "$(cat "$T/err")" "stdin:3: .* was listed before in this input"
is "... each printed once" "$(cut -f1 "$T/out" | sort)" "$(cut -f1 "$T/items" | sort)"
cut -f1 "$T/items" >"$T/ids"
is "... and sent once: each of the two in Kafka once" \
  "$(read_topic qrpool.link | cut -f1 | grep -Fx -f "$T/ids" | sort | uniq -c | awk '{ print $1 }' | tr '\n' ' ')" "1 1 "

# --- a line longer than 65536 bytes: reported and skipped (65), the rest sent -------
stage link=2
qrpool-pending --state fetched --pool link >"$T/items"
{ head -1 "$T/items"; head -c 70000 /dev/zero | tr '\0' x; echo; echo garbage
  printf 'NoSuchId00000000\tlink\n'; sed -n 2p "$T/items"; } >"$T/long"
run qrpool-publish <"$T/long"
is "a 70,000-byte line: exit 65, the two codes published and printed" "$rc:$(sort "$T/out")" \
  "65:$(sort "$T/items")"
like "... the line reported with its number" "$(cat "$T/err")" "stdin:2: longer than 65536 bytes; line skipped"
like "... and, with a line of no item and an unknown id, 3 lines skipped in the summary" \
  "$(cat "$T/err")" "error: 3 lines skipped \(see above\)"

# --- a pool's topic missing on the cluster: 69 naming it, the codes stay fetched -------
stage card=20
qrpool-pending --state fetched --pool card >"$T/items"
kafka_control topic-error qrpool.card UNKNOWN_TOPIC_OR_PART
run qrpool-publish <"$T/items"
is "a topic missing on the cluster: exit 69" "$rc" 69
like "... naming it, and what to do" "$(cat "$T/err")" \
  "topic qrpool.card does not exist on the cluster: create it"
is "... said once" "$(grep -c 'does not exist on the cluster' "$T/err")" 1
like "... the summary not saying to just try later" "$(cat "$T/err")" \
  "they stay fetched; publish them again once the refusal above is dealt with"
is "... its codes still fetched" "$(count card fetched)" 20
hour=$(date -u +%Y-%m-%dT%H:00Z)   # (once: an hour may begin between two dates)
{ printf 'card\t%s\t5\n' "$hour"; forecast_end "$hour"; } >"$T/demand.tsv"
run qrpool-plan --dry-run --from "$hour" "$T/demand.tsv"
like "... and plan says so" "$(cat "$T/err")" "pool card: topic qrpool.card does not exist on the cluster"
# Codes of other pools after the refusal are published all the same: one
# forgotten topic must not keep every pool out of Kafka for the night (the
# next fill feeds the refused pool's codes first).
stage poster=10
qrpool-pending --state fetched --pool poster >"$T/poster-items"
stage card=5
qrpool-pending --state fetched --pool card | grep -v -F -f "$T/items" >"$T/late-items"
rm -f "$T/err"
{ cat "$T/items"
  for _ in $(seq 300); do grep -q 'does not exist' "$T/err" 2>/dev/null && break; sleep 0.1; done
  cat "$T/poster-items" "$T/late-items"; } | { run qrpool-publish; echo "$rc" >"$T/rc"; }
is "... codes of another pool read after the refusal: published, exit 69" \
  "$(cat "$T/rc"):$(count poster fetched):$(count card fetched)" 69:0:25
is "... printed, the refused pool's not" "$(sort "$T/out")" "$(sort "$T/poster-items")"
like "... the refused pool's later codes counted as not delivered" "$(cat "$T/err")" \
  "25 of 35 codes not delivered \\(topic qrpool.card: Broker: Unknown topic or partition\\)"
is "... the refusal said once" "$(grep -c 'does not exist on the cluster' "$T/err")" 1
kafka_control topic-error qrpool.card NO_ERROR
qrpool-pending --state fetched --pool card | qrpool-publish >/dev/null

# --- Kafka refuses us (ACLs): 69, reading stops, the codes stay fetched ----------------
stage link=50
qrpool-pending --state fetched --pool link >"$T/items"
publish_refused_by TOPIC_AUTHORIZATION_FAILED 100000
is "not authorized for the topic: exit 69" "$rc" 69
like "... saying what to fix" "$(cat "$T/err")" \
  "Kafka refuses this client the topic qrpool.link \\(Broker: Topic authorization failed\\): its ACLs must let this client describe and write it"
is "... every code still fetched" "$(count link fetched)" 50

# --- the cluster refuses to describe the topic to us (no Describe ACL): the messages
# time out, and the topic's metadata says why: 69, not "try again later" ------------------
kafka_control topic-error qrpool.link TOPIC_AUTHORIZATION_FAILED
set_kafka 3s
run qrpool-publish <"$T/items"
set_kafka 10s
kafka_control topic-error qrpool.link NO_ERROR
is "a topic we may not describe: exit 69" "$rc" 69
like "... naming the topic, and the ACLs" "$(cat "$T/err")" \
  "Kafka refuses this client the topic qrpool.link \\(Broker: Topic authorization failed\\): its ACLs must let this client describe and write it"
is "... every code still fetched" "$(count link fetched)" 50

# --- partitions without a leader: the messages time out (75), and the topic's metadata
# says why, which librdkafka's "Message timed out" does not ----------------------------
for partition in 0 1 2; do kafka_control leader qrpool.link $partition none; done
set_kafka 3s
run qrpool-publish <"$T/items"
set_kafka 10s
for partition in 0 1 2; do kafka_control leader qrpool.link $partition $((partition + 1)); done
is "partitions without a leader: exit 75" "$rc" 75
like "... saying so, by the metadata" "$(cat "$T/err")" \
  "error: topic qrpool.link, by the cluster's metadata: partitions 0, 1, 2 have no leader \(a broker down, an election that has not ended\)"
like "... before the summary" "$(sed -n '/by the cluster.s metadata/,$p' "$T/err")" \
  "50 of 50 codes not delivered \(topic qrpool.link: Local: Message timed out\)"
is "... every code still fetched" "$(count link fetched)" 50
# One broker down too (the leaders are placed: partition N on broker N + 1): the
# others answer, so the metadata is still asked for, and partition 0 named.
kafka_control leader qrpool.link 0 none
kafka_control broker-down 3
set_kafka 3s
run qrpool-publish <"$T/items"
set_kafka 10s
kafka_control broker-up 3
kafka_control leader qrpool.link 0 1
is "... one broker down as well: exit 75" "$rc" 75
like "... partition 0 still named (one broker down is no reason not to ask)" "$(cat "$T/err")" \
  "error: topic qrpool.link, by the cluster's metadata: partition 0 has no leader"
qrpool-pending --state fetched --pool link | qrpool-publish >/dev/null 2>&1 || true
is "... and a rerun publishes them" "$(count link fetched)" 0
stage link=50
qrpool-pending --state fetched --pool link >"$T/items"

# --- a cluster whose settings refuse us (a policy, the acks): 69, not 75 ----------------
publish_refused_by POLICY_VIOLATION 100000
is "a policy violation: exit 69" "$rc" 69
like "... saying what to fix" "$(cat "$T/err")" \
  "Kafka refused the messages: .*: the topic's and the cluster's settings must take idempotent writes"
is "... every code still fetched" "$(count link fetched)" 50
# A topic whose message format predates headers and idempotence (v2).
publish_refused_by UNSUPPORTED_FOR_MESSAGE_FORMAT 100000
is "a message format too old: exit 69, not 75" "$rc" 69
like "... saying what to fix" "$(cat "$T/err")" \
  "Kafka refused the messages: .*: .*settings must take .*record headers \(message format v2\)"
is "... every code still fetched" "$(count link fetched)" 50
# A topic name the cluster takes for none (the config refuses most such names).
publish_refused_by TOPIC_EXCEPTION 100000
is "a topic name Kafka refuses: exit 69, not 75" "$rc" 69
like "... naming the topic and the fix" "$(cat "$T/err")" \
  "Kafka takes no topic named qrpool.link \(Broker: Invalid topic\): give the pool another topic"
is "... said once" "$(grep -c 'Kafka takes no topic named' "$T/err")" 1
is "... every code still fetched" "$(count link fetched)" 50
qrpool-pending --state fetched --pool link | qrpool-publish >/dev/null

# --- an image too large for Kafka: that code refused (65), the others published --------
# On the client (message.max.bytes), and on the broker (the topic's max.message.bytes).
stage link=1 --size 200000
big=$(sql "SELECT request_id FROM codes WHERE state = 'fetched'")
stage link=3 --size 100
qrpool-pending --state fetched --pool link >"$T/items"
set_kafka 10s message.max.bytes=100000
run qrpool-publish <"$T/items"
set_kafka 10s
is "an image over message.max.bytes: exit 65" "$rc" 65
like "... naming the code, its size and the limits" "$(cat "$T/err")" \
  "stdin:[0-9]+: $big: Kafka refused its message \(an image of 200000 bytes\): .*stays fetched, .*message.max.bytes in kafka.properties"
is "... said once in the summary" "$(grep -c '1 code refused by Kafka for what it is' "$T/err")" 1
is "... it stays fetched, the three others published" "$(count link fetched):$(wc -l <"$T/out")" 1:3
echo "$big	link" >"$T/items"
publish_refused_by MSG_SIZE_TOO_LARGE 1
is "refused by the broker as too large: exit 65" "$rc" 65
like "... naming the code" "$(cat "$T/err")" "$big: Kafka refused its message \(an image of 200000 bytes\)"
is "... still fetched" "$(count link fetched)" 1
qrpool-pending --state fetched --pool link | qrpool-publish >/dev/null
# Small images refused all together: the cluster measured their batch (batch.size
# over the topic's max.message.bytes). What to change said once, batch.size in it.
stage link=40 --size 100
qrpool-pending --state fetched --pool link >"$T/items"
publish_refused_by MSG_SIZE_TOO_LARGE 1
is "a batch of small images refused as too large: exit 65" "$rc" 65
like "... saying batch.size may be why" "$(cat "$T/err")" \
  "or, when the images are small, their batch was too large: batch.size in kafka.properties \\(1000000 by default\\) must not be over the topic's max.message.bytes"
is "... once, whatever the codes refused ($(grep -c 'Message size too large' "$T/err"))" \
  "$(grep -c 'batch.size' "$T/err")" 1
qrpool-pending --state fetched --pool link | qrpool-publish >/dev/null

# --- transactional.id: a config error (librdkafka would refuse every message) ----------
set_kafka 10s transactional.id=x
run qrpool-publish </dev/null
set_kafka 10s
is "transactional.id in kafka.properties: exit 78" "$rc" 78
like "... saying why" "$(cat "$T/err")" "kafka.properties sets transactional.id: qrpool does not use transactions"

# --- stdout stalled (the next stage stopped reading): no read transaction is held
# while publish waits, and SIGTERM ends the reading; the run ends when the reader drains
# wait_stalled: until publish is stuck on its stdout: the card codes published
# since $base (taken before it started) grow no more for 3 samples (0.9 s).
wait_stalled() {
  before=-1; same=0
  for _ in $(seq 150); do
    now=$(count card published)
    if [ "$now" -gt "$base" ] && [ "$now" -eq "$before" ]; then same=$((same + 1)); else same=0; fi
    [ $same -ge 3 ] && break
    before=$now; sleep 0.3
  done
  ok "stdout stalled: publish stuck on its write ($((now - base)) published first)" \
    test "$same" -ge 3
}
stage card=60000 --size 100
qrpool-pending --state fetched --pool card >"$T/items"
mkfifo "$T/stalled"
base=$(count card published)
qrpool-publish <"$T/items" >"$T/stalled" 2>"$T/err" &
publisher=$!
exec 4<"$T/stalled"
wait_stalled
is "stdout stalled: a checkpoint of the whole WAL is not held back" \
  "$(sqlite3 -cmd '.timeout 3000' "$T/staging.db" 'PRAGMA wal_checkpoint(TRUNCATE)' | cut -d'|' -f1)" 0
kill -TERM $publisher
cat <&4 >/dev/null &
drain=$!
exec 4<&-
rc=0; wait $publisher || rc=$?
wait $drain
is "stdout stalled, SIGTERM: exit 75 once the reader drains" "$rc" 75
is "... every code published or still fetched" \
  "$(($(count card published) + $(count card fetched)))" "$(sql "SELECT count(*) FROM codes WHERE pool = 'card'")"

# --- stdout stalled, and the stop insisted on (the same signal again, a second
# later): the run ends without the reader, its lines given up, the DB consistent -----
stage card=30000 --size 100
qrpool-pending --state fetched --pool card >"$T/items"
rm -f "$T/stalled"; mkfifo "$T/stalled"
base=$(count card published)
qrpool-publish -q <"$T/items" >"$T/stalled" 2>"$T/err" &
publisher=$!
exec 4<"$T/stalled"
wait_stalled
kill -TERM $publisher; sleep 1.5; kill -TERM $publisher
for _ in $(seq 50); do kill -0 $publisher 2>/dev/null || break; sleep 0.1; done
ended=yes; kill -0 $publisher 2>/dev/null && ended=no
exec 4<&-   # (a run still stuck ends here, with a broken pipe)
rc=0; wait $publisher || rc=$?
is "stdout stalled, a second SIGTERM: ended without the reader" "$ended:$rc" yes:75
is "... not silent under -q (it ends with _exit): its last warning said" "$(grep -c ' warning: ' "$T/err")" 1
is "... every code published or still fetched" \
  "$(($(count card published) + $(count card fetched)))" "$(sql "SELECT count(*) FROM codes WHERE pool = 'card'")"

# --- a second SIGTERM with stdout read (a file): the deliveries confirmed are all
# recorded; only a committer stuck on stdout is given up --------------------------------
# Small batches, so the codes go in several round trips of 300 ms: the first
# signal once some are recorded; then the cluster answers no more (a round
# trip of 60 s), so deliveries are still in flight at the second signal however
# fast the machine (at a fixed second after the start, a quick run had them
# all confirmed: exit 0).
set_kafka 10s batch.num.messages=500
stage link=20000 --size 100
qrpool-pending --state fetched --pool link >"$T/items"
base=$(count link published)
kafka_control rtt all 300
qrpool-publish -v <"$T/items" >"$T/file-out" 2>"$T/err" & publisher=$!
i=0
until [ "$(count link published)" -gt "$base" ] || [ $i -gt 300 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $publisher
kafka_control rtt all 60000
sleep 1.1; kill -TERM $publisher
rc=0; wait $publisher || rc=$?
kafka_control rtt all 0
set_kafka 10s
summary=$(grep -o 'read [0-9]* lines, published [0-9]*, failed [0-9]*' "$T/err" | tr -d ,)
set -- $summary
is "second SIGTERM, stdout a file: exit 75" "$rc" 75
is "... the committer not given up" "$(grep -c 'given up at a second signal with stdout not read' "$T/err")" 0
is "... every line read either published or failed (no delivery confirmed but unrecorded): $summary" \
  "$(($5 + $7))" "$2"
cut -f1 "$T/items" | sort >"$T/ids"
sql "SELECT request_id FROM codes WHERE state = 'published' AND pool = 'link'" | sort >"$T/published-ids"
is "... the DB has as published exactly the codes the summary counts" \
  "$(comm -12 "$T/ids" "$T/published-ids" | wc -l)" "$5"
is "... and each printed" "$(wc -l <"$T/file-out")" "$5"

# Credentials or a SASL setup the cluster refuses: no rerun fixes it, so 69
# with what to check, not 75 once the messages time out, every night.
set_kafka 3s security.protocol=SASL_PLAINTEXT sasl.mechanisms=PLAIN sasl.username=qrpool \
  sasl.password=wrong
sql "UPDATE codes SET state = 'fetched' WHERE id IN (SELECT id FROM codes LIMIT 5)"
qrpool-pending --state fetched >"$T/items"
started=$(date +%s)
run qrpool-publish <"$T/items"
is "Kafka refusing the client's authentication: exit 69" "$rc" 69
# (3 s and start-up; 8 allowed, since 5 ran out once under the load of a
# make check SAN=1 beside a measurement; what it guards against is a wait
# past the timeout, or a hang)
ok "... within kafka.timeout" test $(($(date +%s) - started)) -le 8
like "... saying what to check" "$(cat "$T/err")" \
  "Kafka refused this client's authentication \(.*SASL.*\): kafka.properties' security.protocol and sasl.\* settings must match the cluster's"
all_fetched "... the codes stay fetched"
# A TLS handshake that fails: a listener whose certificate no trusted CA
# signed (a self-signed one). 69 as well, not 75 every night.
command -v openssl >/dev/null || diag "openssl is not installed (scripts/install-deps installs it)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 1 \
  -subj /CN=127.0.0.1 2>"$T/openssl.err" || { diag "openssl req failed:"; cat "$T/openssl.err" >&2; }
"$PYTHON" - "$T/tls.crt" "$T/tls.key" >"$T/tls.port" <<'PY' &
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)
while True:
    client, _ = listener.accept()
    try:
        context.wrap_socket(client, server_side=True).close()
    except (ssl.SSLError, OSError):
        client.close()
PY
at_exit "kill_child $!"
i=0
while [ ! -s "$T/tls.port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$T/tls.port" ] || { diag "the TLS listener did not start"; echo 1 >"$T/tls.port"; }
KAFKA_BROKERS=127.0.0.1:$(cat "$T/tls.port") set_kafka 3s security.protocol=SSL
run qrpool-publish <"$T/items"
is "a TLS handshake that fails: exit 69" "$rc" 69
like "... saying what to check" "$(cat "$T/err")" \
  "the TLS handshake with Kafka failed \(.*certificate verify failed.*\): kafka.properties' security.protocol and ssl.\* settings"
all_fetched "... the codes stay fetched"
set_kafka 3s

# --- the wall clock stepped mid-run (NTP, a VM resumed): the waits for Kafka are
# timed on the monotonic clock, neither given up early nor drawn out ------------------
# new_items: the item lines of the codes staged since $staged_after (codes the tests
# above left fetched, without images, stay out of it).
new_items() { sql "SELECT request_id || char(9) || pool FROM codes WHERE id > $staged_after"; }
new_fetched() { sql "SELECT count(*) FROM codes WHERE id > $staged_after AND state = 'fetched'"; }
if [ -e "$QRPOOL_BIN/clockstep.so" ]; then
  staged_after=$(sql "SELECT max(id) FROM codes")
  stage poster=5
  new_items >"$T/items"
  set_kafka 10s
  kafka_control rtt all 1500
  run env ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD="$QRPOOL_BIN/clockstep.so" QRPOOL_TEST_CLOCK_STEP=0.7:-120 qrpool-publish <"$T/items"
  kafka_control rtt all 0
  is "the wall clock 2 minutes forward while Kafka is slow: exit 0, all published" \
    "$rc:$(new_fetched)" 0:0
  kafka_control broker-down all
  set_kafka 4s message.timeout.ms=0
  staged_after=$(sql "SELECT max(id) FROM codes")
  stage poster=5
  new_items >"$T/items"
  started=$(date +%s)
  run env ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD="$QRPOOL_BIN/clockstep.so" QRPOOL_TEST_CLOCK_STEP=2:30 qrpool-publish <"$T/items"
  took=$(($(date +%s) - started))
  kafka_control broker-up all
  set_kafka 3s
  is "... 30 s back while the brokers are down: 75 after kafka.timeout (4 s), not 34 (took $took s)" \
    "$rc:$([ "$took" -le 12 ] && echo soon)" 75:soon
  new_items | qrpool-publish >/dev/null
else
  skip_tests 2 "clockstep.so is not built"
fi

# --- two qrpool-publish at once on one DB (a resume by hand beside a fill's) ------
# Each would find the other's codes fetched and send them twice: the second
# waits for the first to end, up to kafka.timeout, then ends 75 having sent
# nothing; once the first ends within it, the second goes on, and what the
# first published meanwhile is not sent again.
set_kafka 2s
staged_after=$(sql "SELECT max(id) FROM codes")
stage link=200 --size 300
new_items >"$T/items"
rm -f "$T/in"; mkfifo "$T/in"
kafka_end=$(topic_end qrpool.link)
publish_fed
head -100 "$T/items" >&3
wait_for_lines "$T/out" 100
started=$(date +%s)
rc=0; qrpool-publish <"$T/items" >"$T/out2" 2>"$T/err2" || rc=$?
took=$(($(date +%s) - started))
is "a second qrpool-publish while one runs on the DB: exit 75" "$rc" 75
ok "... after kafka.timeout (2 s), not sooner, not much later (${took} s)" \
  test "$took" -ge 2 -a "$took" -le 6
like "... naming the one it waited for, and why" "$(cat "$T/err2")" \
  "another qrpool-publish \(pid $publisher\) is running on the staging DB .*: waiting for it to end, up to kafka.timeout \(2 s\), as two at once would send the same codes twice"
like "... nothing sent, and what to do" "$(cat "$T/err2")" \
  "error: kafka.timeout passed while another qrpool-publish \(pid $publisher\) runs on the staging DB .*: nothing was sent; run again once it has ended"
is "... nothing printed, Kafka holds only the first's 100" \
  "$(wc -l <"$T/out2"):$(($(topic_end qrpool.link) - kafka_end))" "0:100"
ok "... the lock is a file beside the DB" test -f "$T/staging.db-publish.lock"
tail -n +101 "$T/items" >&3
exec 3>&-
rc=0; wait $publisher || rc=$?
is "... the first goes on to its end: exit 0, all 200 printed" "$rc:$(wc -l <"$T/out")" "0:200"
# Now a first one on new codes, given half of them, then the rest, its
# deliveries slow (1.5 s); the second starts then (all 200: without the lock
# it would send the 100 in flight again), and the first ends while it waits.
set_kafka 20s
staged_after=$(sql "SELECT max(id) FROM codes")
stage link=200 --size 300
new_items >"$T/items"
kafka_end=$(topic_end qrpool.link)
publish_fed
head -100 "$T/items" >&3
wait_for_lines "$T/out" 100
: >"$T/err2"
kafka_control rtt all 1500
tail -n +101 "$T/items" >&3
qrpool-publish <"$T/items" >"$T/out2" 2>"$T/err2" 3>&- & second=$!   # (not holding the first's input open)
exec 3>&-
rc=0; wait $publisher || rc=$?
is "the first one, given the rest meanwhile, publishes it: exit 0" "$rc:$(wc -l <"$T/out")" "0:200"
rc=0; wait $second || rc=$?
is "... the second, its wait over, ends 0 having sent nothing again" \
  "$rc:$(wc -l <"$T/out2"):$(($(topic_end qrpool.link) - kafka_end))" "0:0:200"
like "... saying what the first did" "$(cat "$T/err2")" \
  "warning: 200 codes were published by the qrpool-publish this run waited for: not sent again"
kafka_control rtt all 0
like "... after saying it waited" "$(cat "$T/err2")" "waiting for it to end"
is "... no code in Kafka twice" "$(read_topic qrpool.link | cut -f1 | sort | uniq -d | wc -l)" 0
set_kafka 3s
# A run stopped (Kafka out of reach past kafka.timeout) that reads the rest of
# its input on, as the stage before still writes, sends nothing more: it holds
# the lock no more, and another runs beside it at once.
staged_after=$(sql "SELECT max(id) FROM codes")
stage link=5 --size 300
new_items >"$T/items"
cp "$QRPOOL_CONFIG" "$T/reachable.cfg"
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "2s"; };|' "$QRPOOL_CONFIG"
publish_fed
cat "$T/items" >&3
i=0
until grep -q "the rest of the input is read to its end" "$T/err" || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
rc=0; qrpool-publish </dev/null >/dev/null 2>"$T/err2" 3>&- || rc=$?
is "a stopped run reading the rest of its input: another runs beside it at once (exit 0)" \
  "$rc:$(grep -c 'waiting for it to end' "$T/err2")" 0:0
exec 3>&-
rc=0; wait $publisher || rc=$?
is "... the stopped one ends 75, its codes fetched" "$rc:$(new_fetched)" 75:5
cp "$T/reachable.cfg" "$QRPOOL_CONFIG"
# The lock file made by root (a run by hand) on the DB of another user (the
# one the cron runs as) is that user's, who can then write its pid in it.
rm -f "$T/staging.db-publish.lock"
chown nobody "$T/staging.db"
run qrpool-publish </dev/null
chown root "$T/staging.db"
is "the lock made by root on nobody's DB is nobody's" "$rc:$(stat -c %U "$T/staging.db-publish.lock")" "0:nobody"
# A symbolic link where the lock should be is refused, not followed.
rm -f "$T/staging.db-publish.lock"; ln -s "$T/elsewhere" "$T/staging.db-publish.lock"
run qrpool-publish </dev/null
is "... a symbolic link in its place: exit 74, not followed" "$rc:$(test -e "$T/elsewhere" && echo made)" "74:"
like "... saying so" "$(cat "$T/err")" "staging.db-publish.lock: cannot open qrpool-publish's lock on the staging DB: .* \(a symbolic link: remove it\)"
rm -f "$T/staging.db-publish.lock"
