#!/bin/sh
# qrpool-claim as a member of the online services' consumer group: offsets
# committed at once, so a partition that moves to another member never
# carries a bound code; an idle stdin neither loses the offsets nor ignores a
# signal; the end of the pool is told from a rebalance and from silence; a
# code of another pool stops the run instead of being consumed.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
write_claim_config

# --- a code of another pool in the topic: stop, take nothing past it ------------
publish_codes 2 card
printf '%s\t\377\330\377\340JFIF-x\n' WrongPool0000001 |
  kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -K '	' -H content-type=image/jpeg -H pool=poster
publish_codes 1 card
records 4 | { run qrpool-claim --pool card --out "$T/codes1" --wait 300ms; echo "$rc" >"$T/rc"; }
is "another pool's code: exit 78" "$(cat "$T/rc")" 78
like "another pool's code: named, with where it is" "$(cat "$T/err")" \
  "partition 0 offset 2 holds a code of pool poster: is topic qrpool.card shared with it\\?"
is "another pool's code: the codes before it bound" "$(wc -l <"$T/out")" 2
is "another pool's code: not committed past" "$(committed_total card)" 2
run qrpool-claim --help
like "... --help says what a 78 is, this among it" "$(cat "$T/out")" "78: bad config, or a code of another pool in the topic"

# --- stdin idle longer than max.poll.interval.ms ---------------------------------
# The member is put out of the group while it waits: what it bound is already
# committed, and it joins again for the next record.
sed -i 's|"heartbeat.interval.ms=500" ]|"heartbeat.interval.ms=500", "max.poll.interval.ms=6000" ]|' \
  "$QRPOOL_CONFIG"
publish_codes 6
{ records 1 1; sleep 9; records 1 2; } |
  { run qrpool-claim --pool poster --out "$T/codes2" --wait 300ms; echo "$rc" >"$T/rc"; }
is "idle stdin: exit 0" "$(cat "$T/rc")" 0
is "idle stdin: both records bound" "$(wc -l <"$T/out")" 2
is "idle stdin: both offsets committed" "$(committed_total)" 2
write_claim_config

# claim_stopped N DIR [HALF]: claim reads record N (then HALF, with no newline)
# from a pipe that stays open; once the code is out, SIGTERM (or $stop_signal).
# Sets $rc, $took.
claim_stopped() {
  rm -f "$T/fifo" "$T/out"; mkfifo "$T/fifo"
  { records 1 "$1"; printf '%s' "${3:-}"; exec sleep 20; } >"$T/fifo" & feeder=$!
  qrpool-claim --pool poster --out "$T/$2" --wait 300ms <"$T/fifo" >"$T/out" 2>"$T/err" & claim=$!
  i=0
  until [ -s "$T/$2/$(cut -f1 "$T/out" 2>/dev/null).jpg" ] || [ $i -gt 200 ]; do
    sleep 0.05; i=$((i + 1))
  done
  sleep 0.5
  kill -"${stop_signal:-TERM}" $claim
  started=$(date +%s)
  rc=0; wait $claim || rc=$?
  took=$(($(date +%s) - started))
  kill $feeder 2>/dev/null || true
}

# --- SIGTERM while stdin is an idle pipe ------------------------------------------
claim_stopped 3 codes3
is "SIGTERM, stdin idle: exit 75" "$rc" 75
ok "SIGTERM, stdin idle: stops at once, not when the input ends (took $took s)" [ "$took" -le 3 ]
like "SIGTERM, stdin idle: says so" "$(cat "$T/err")" "interrupted: bound 1 code; line 2 and after"
is "SIGTERM, stdin idle: the code bound is committed" "$(committed_total)" 3

# --- SIGTERM with half a line read: no bad line, the resume hint names it --------
publish_codes 1   # the one this scenario binds: the scenarios after count on theirs
claim_stopped 4 codes3b '{"listing_id":'
is "SIGTERM, half a line read: exit 75" "$rc" 75
ok "... at once (took $took s)" [ "$took" -le 3 ]
ok "... the half line is no bad line" -- sh -c "! grep -q 'not JSON' '$T/err'"
like "... and the rerun starts with it" "$(cat "$T/err")" "interrupted: bound 1 code; line 2 and after"

# --- SIGHUP (the terminal or the ssh session gone): a stop, as SIGTERM ------------
if hup_ignored; then skip_tests 4 "SIGHUP is ignored by the tests (nohup)"; else
  publish_codes 1
  before=$(committed_total)
  stop_signal=HUP; claim_stopped 5 codes3c; stop_signal=TERM
  is "SIGHUP, stdin idle: exit 75" "$rc" 75
  ok "... at once (took $took s)" [ "$took" -le 3 ]
  like "... says so" "$(cat "$T/err")" "interrupted: bound 1 code; line 2 and after"
  is "... the code bound is committed" "$(committed_total)" $((before + 1))
fi

# --- --wait longer than kafka.timeout (8 s: the mock keeps a group joining for a
# departed member's session, 6 s): at the end of every partition, silence is
# the pool being empty, not Kafka being down ---------------------------------------
sed -i 's/timeout = "15s"/timeout = "8s"/' "$QRPOOL_CONFIG"
records 5 10 | { run qrpool-claim --pool poster --out "$T/codes4" --wait 10s; echo "$rc" >"$T/rc"; }
is "--wait 10s, kafka.timeout 8s: exit 75" "$(cat "$T/rc")" 75
is "--wait 10s, kafka.timeout 8s: the 3 codes left bound" "$(wc -l <"$T/out")" 3
like "--wait 10s, kafka.timeout 8s: the pool is empty" "$(cat "$T/err")" \
  "pool poster is empty: bound 3 codes; line 4 and after were not bound"
write_claim_config

# --- an online member joins while claim runs ------------------------------------------
# The group takes partitions from claim: no code claim bound may reach the
# other member, and a rebalance is not an empty pool. Enough codes that any one
# partition left to claim holds the 16 it binds (with 40, a partition could run
# out: claim then rightly says the pool is empty, as seen once in CI).
publish_codes 150
before=$(committed_total)
{ for i in $(seq 1 16); do records 1 $((100 + i)); sleep 0.4; done; } |
  { run qrpool-claim --pool poster --out "$T/codes5" --wait 3s; echo "$rc" >"$T/rc"; } &
pipeline=$!
sleep 2
timeout 15 kcat -q -b "$KAFKA_BROKERS" -G qrpool-online.poster -X enable.auto.commit=false \
  -X session.timeout.ms=6000 -f '%k\n' qrpool.poster >"$T/online" 2>/dev/null &
online=$!
wait $pipeline
wait $online || true
rc=$(cat "$T/rc")
ok "rebalance: exit 0, or 75 saying some offsets are not committed (rc $rc)" \
  [ "$rc" -eq 0 -o "$rc" -eq 75 ]
[ "$rc" -eq 0 ] || like "rebalance: the 75 is the commit" "$(cat "$T/err")" "some offsets are not committed"
# (Or those up to a commit refused in the rebalance: claim stops there, 75;
# seen in 4 of 10 runs.)
is "rebalance: every record bound, or those up to the refused commit" "$(wc -l <"$T/out")" \
  "$(bound_expected 16)"
ok "rebalance: not taken for an empty pool" -- sh -c "! grep -q 'is empty' '$T/err'"
sql 'SELECT request_id FROM bindings' | sort >"$T/bound"
sort -u "$T/online" >"$T/online.sorted"
ok "rebalance: the other member got codes ($(wc -l <"$T/online.sorted"))" [ -s "$T/online" ]
overlap=$(comm -12 "$T/bound" "$T/online.sorted" | wc -l)
# (claim says it either way: partitions going back uncommitted, or its commit
# refused before the next code and at the end.)
if grep -q -e 'partitions went back to the group before the offsets of codes bound on them were committed' \
     -e 'some offsets are not committed: until it runs again' "$T/err"; then
  # The mock refuses every commit while the group rebalances (Kafka accepts
  # the member's current generation's: README), so the codes bound since the
  # last commit may reach the other member; claim says so, and exits 75. At
  # most 8 wait for their commit's answer (README), and 76's bound, 9, is
  # kept: a code's commit sent just as the refusal comes.
  ok "rebalance: the mock refused claim's commit, and claim said so (rc $rc): at most 9 codes went to the other member ($overlap)" \
    test "$rc" -eq 75 -a "$overlap" -le 9
else
  is "rebalance: none of them bound by claim, in this run or before" "$overlap" 0
fi
[ "$overlap" -eq 0 ] || { diag "claim (rc $rc) said:"; sed 's/^/# /' "$T/err" >&2; }

# --- stdin idle 10 s: claim leaves the group -----------------------------------------
# A person at claim's prompt must not hold the pool's partitions: an online
# member joining then gets all of them at once, not after max.poll.interval.ms.
publish_codes 30
mkfifo "$T/idle-in"
{ records 1 300; exec sleep 40; } >"$T/idle-in" 2>/dev/null & feeder=$!
at_exit "kill_child $feeder"
: >"$T/err"  # (here: the child truncates it only once the fifo opens)
qrpool-claim -v --pool poster --out "$T/codes6" --wait 3s <"$T/idle-in" >"$T/out" 2>"$T/err" & claim=$!
# (Waited for as said, not slept: a member of the scenario before may keep the
# mock's group joining for its 6 s session.)
i=0
until grep -q 'leaving group' "$T/err" || [ $i -gt 600 ]; do sleep 0.05; i=$((i + 1)); done
like "claim idle 10 s: says it leaves the group" "$(cat "$T/err")" \
  "stdin idle for 10 s: leaving group qrpool-online.poster"
# (A partition the group never committed is read from its start, as the online
# services do, or its codes would all be behind the member. Read to the end of
# every partition: the first codes may all come from two.)
timeout 20 kcat -q -b "$KAFKA_BROKERS" -G qrpool-online.poster -X session.timeout.ms=6000 -e \
  -X auto.offset.reset=earliest -f '%p\n' qrpool.poster >"$T/online-idle" 2>/dev/null || true
is "... an online member joining then gets codes of all 3 partitions" \
  "$(sort -u "$T/online-idle" | wc -l)" 3
kill $feeder 2>/dev/null || true
rc=0; wait $claim || rc=$?
is "... and ends at the end of its input: exit 0" "$rc" 0

# --- the online services hold every partition: claim is given none -------------------
# Said as that, not as an empty pool: the pool is full, and an operator told it
# is empty would fill it. Both members assign cooperative-sticky, so the one
# partition stays with the member holding it: the range assignor would give it
# to whichever member id sorts first, the mock's ids being addresses, and the
# online member commits what it reads (kcat does, enable.auto.commit=false or
# not), so claim given it would rightly find the pool empty (seen under load).
# Its heartbeat is frequent, and it is waited for until it has read a code (-u:
# its output unbuffered), for the same reason: a session expired under load, or
# both joining at once, would hand claim the partition too.
publish_codes 5 card
sed -i 's|"heartbeat.interval.ms=500" ]|"heartbeat.interval.ms=500", "partition.assignment.strategy=cooperative-sticky" ]|' \
  "$QRPOOL_CONFIG"
ok "(claim's config assigns cooperative-sticky too)" -- grep -q cooperative-sticky "$QRPOOL_CONFIG"
timeout 60 kcat -q -u -b "$KAFKA_BROKERS" -G qrpool-online.card \
  -X partition.assignment.strategy=cooperative-sticky -X session.timeout.ms=6000 \
  -X heartbeat.interval.ms=500 -f '%k\n' qrpool.card >"$T/online-card" 2>/dev/null & online=$!
at_exit "kill_child $online"
i=0
until [ -s "$T/online-card" ] || [ $i -gt 600 ]; do sleep 0.05; i=$((i + 1)); done
records 2 | { run qrpool-claim -q --pool card --out "$T/codes7" --wait 3s; echo "$rc" >"$T/rc"; }
is "no partition given to claim: exit 75, nothing bound" "$(cat "$T/rc"):$(wc -l <"$T/out")" 75:0
like "... said as that, even with -q, not as an empty pool" "$(cat "$T/err")" \
  "pool card: the group qrpool-online.card gave this claim no partition of qrpool.card \\(its other members, the online services, hold them all: .*\\): bound 0 codes; line 1 and after were not bound"
kill $online 2>/dev/null || true
