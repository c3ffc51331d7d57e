#!/bin/sh
# A closed stdout (`>&-`): every tool that writes to stdout exits 74 at its
# first write and says so (report --check: UNKNOWN, 3), and no socket or file
# takes fd 1's place (README, "Exit status"); what the run did is kept as each
# tool's section promises, so a rerun finishes. (qrpool-resolve's case is in
# 71-claim-redis.t.)
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"
. "${0%/*}/claim.sh"
command -v kcat >/dev/null || skip_all "kcat is not installed"

start_kafka -t qrpool.link:1
start_fake ok
config_for 'concurrency = 4;'
# (A short session: claim's group is joined once, by this file alone.)
sed -i "s|^kafka = .*|kafka = { brokers = \"$KAFKA_BROKERS\"; timeout = \"15s\"; properties = [ \"session.timeout.ms=6000\", \"heartbeat.interval.ms=500\" ]; };|" \
  "$QRPOOL_CONFIG"

# closed COMMAND...: runs COMMAND with stdout closed, its stderr in $T/err,
# its exit status in $rc.
closed() { rc=0; "$@" >&- 2>"$T/err" || rc=$?; }
# (The loop below gives its tools no stdin: they would read its list.)
# The error a write to a closed stdout gives: fd 1 held by nothing writable.
STDOUT_ERROR="error: writing to stdout: Bad file descriptor"
# lost POOL: the codes of POOL lost to a rerun: failed, or fetched without an
# image (planned and fetched ones a fill feeds on; published ones are done).
lost() {
  sql "SELECT count(*) FROM codes WHERE pool = '$1' AND (state = 'failed' OR (state = 'fetched'
       AND NOT EXISTS (SELECT 1 FROM images WHERE code_id = codes.id)))"
}
count_state() { sql "SELECT count(*) FROM codes WHERE pool = '$1' AND state = '$2'"; }

# --- qrpool-plan: the plan staged all the same, and said -------------------------
{ printf 'poster\t%s\t5\ncard\t%s\t0\nlink\t%s\t4\n' "$HOUR" "$HOUR" "$HOUR"; forecast_end "$HOUR"; } \
  >"$T/demand"
closed qrpool-plan --from "$HOUR" "$T/demand"
is "plan: exit 74" "$rc" 74
like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"
like "... the codes said to be staged all the same" "$(cat "$T/err")" \
  "the 11 codes planned are staged all the same, not all of them printed: qrpool-pending --state planned lists them"
is "... and they are: 6 poster, 5 link codes planned" \
  "$(qrpool-pending --state planned | cut -f2 | sort | uniq -c | awk '{ printf "%s %s;", $1, $2 }')" \
  "5 link;6 poster;"

# --- qrpool-fetch: what it fetched stays fetched, the rest planned; a rerun finishes -
qrpool-pending --state planned >"$T/items"
closed qrpool-fetch <"$T/items"
is "fetch: exit 74" "$rc" 74
like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"
is "... every code still planned, or fetched with its image" "$(lost poster):$(lost link)" 0:0
qrpool-pending --state planned,fetched >"$T/items"
run qrpool-fetch <"$T/items"
is "... a rerun of what is planned or fetched: exit 0, every line printed" \
  "$rc:$(sort "$T/out")" "0:$(sort "$T/items")"
is "... every poster code fetched" "$(count_state poster fetched)" 6

# --- qrpool-render: the same ------------------------------------------------------
qrpool-pending --state planned --pool link >"$T/items"
closed qrpool-render <"$T/items"
is "render: exit 74" "$rc" 74
like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"
is "... every link code still planned, or fetched with its image" "$(lost link)" 0
qrpool-pending --state planned,fetched --pool link >"$T/items"
run qrpool-render <"$T/items"
is "... a rerun: exit 0, every line printed" "$rc:$(sort "$T/out")" "0:$(sort "$T/items")"
is "... every link code fetched" "$(count_state link fetched)" 5

# --- qrpool-publish: the codes delivered are recorded; a rerun sends each once ------
qrpool-pending --state fetched >"$T/ready"
# (In two parts, a second apart: two batches, the second committed after the
# first one's lines could not be written.)
{ head -5 "$T/ready"; sleep 1; tail -n +6 "$T/ready"; } | { closed qrpool-publish; echo "$rc" >"$T/rc"; }
is "publish: exit 74" "$(cat "$T/rc")" 74
is "... stdout named, once" "$(grep -c "$STDOUT_ERROR" "$T/err")" 1
# in_kafka: the ids in the pools' topics, one line each time one is there.
in_kafka() {
  for topic in qrpool.poster qrpool.link; do
    kcat -C -b "$KAFKA_BROKERS" -t "$topic" -e -q -f '%k\n'
  done | sort
}
is "... the codes recorded as published are those in Kafka" \
  "$(in_kafka)" "$(sql "SELECT request_id FROM codes WHERE state = 'published'" | sort)"
is "... the others still fetched, with their images" "$(lost poster):$(lost link)" 0:0
qrpool-pending --state fetched | qrpool-publish >/dev/null
is "... after a rerun every code published, each sent once" "$(in_kafka)" "$(cut -f1 "$T/ready" | sort)"

# --- qrpool-report: its snapshot recorded all the same; --check answers UNKNOWN -----
snapshots=$(sql "SELECT count(*) FROM depth_snapshots")
closed qrpool-report
is "report: exit 74" "$rc" 74
like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"
is "... its depth snapshot recorded all the same, one per pool" \
  "$(sql "SELECT count(*) FROM depth_snapshots")" $((snapshots + 3))
closed qrpool-report --check
is "report --check: UNKNOWN (3), the plugin's range, not 74" "$rc" 3
like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"

# --- the tools' other writes to stdout: 74 and said --------------------------------
codes=$(sql "SELECT count(*) FROM codes")
n=0
while read -r command; do
  n=$((n + 1))
  closed sh -c "exec $command" </dev/null
  is "${command%% $T/*}: exit 74" "$rc" 74
  like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"
done <<EOF
qrpool-pending --state published
qrpool-pending --count
qrpool-plan --dry-run --from $HOUR $T/demand
qrpool-prune --dry-run
qrpool-report --json
qrpool-fetch --check
EOF
is "... none of them made or deleted a code" "$(sql "SELECT count(*) FROM codes")" "$codes"

# --- qrpool-claim: the code bound and committed past, no file holds its line --------
records 3 >"$T/records"
closed qrpool-claim --pool poster --out "$T/codes" --wait 300ms <"$T/records"
is "claim: exit 74" "$rc" 74
like "... stdout named" "$(cat "$T/err")" "$STDOUT_ERROR"
id=$(sql "SELECT request_id FROM bindings")
is "... one code bound, to the first record" "$(sql "SELECT count(*), min(params) FROM bindings")" \
  '1|{"listing_id":"L1","agent_id":"A1","channel":"poster"}'
like "... named as bound but not printed" "$(cat "$T/err")" \
  "$id is bound to line 1's record \(in bindings\), so it goes to no one else, but its line was not printed"
like "... where a rerun starts said" "$(cat "$T/err")" "stopped: bound 1 code; line 2 and after were not bound"
is "... its offset committed" "$(committed_total)" 1
is "... its file in place, the image published" \
  "$(ls -A "$T/codes"):$(sha256sum <"$T/codes/$id.jpg" | cut -d' ' -f1)" \
  "$id.jpg:$(sql "SELECT sha256 FROM codes WHERE request_id = '$id'")"
is "... no file under --out holds its line" "$(grep -rlF "$T/codes/$id" "$T/codes" || true)" ""

is "the staging DB intact" "$(sql "PRAGMA integrity_check")" ok
ok "the list of other writes was read" -- test "$n" -ge 6
