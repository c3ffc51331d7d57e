#!/bin/sh
# qrpool-report: depth from Kafka, consumption from snapshots, cover, backlog,
# failures, quota, runs; as a table, JSON, a Prometheus textfile (checked with
# the prometheus_client parser) and a monitoring-plugin check.
. "${0%/*}/lib.sh"
. "${0%/*}/publish-lib.sh"
"$PYTHON" -c 'import prometheus_client' 2>/dev/null || skip_all "python3-prometheus-client is missing"

start_kafka --brokers 2 -t qrpool.poster:2 -t qrpool.card:1 -t qrpool.link:2
write_config
set_kafka 3s
stage poster=40 card=10 link=20
qrpool-pending --state fetched | qrpool-publish >/dev/null
# A forecast for poster: 10 codes an hour from this hour on, as far as the
# cover of a plan made in this hour reaches (--max 0 plans no code).
hour=$(date -u +%Y-%m-%dT%H:00Z)
i=0; while [ $i -le 24 ]; do
  printf 'poster\t%s\t10\n' "$(date -u -d "$hour + $i hour" +%Y-%m-%dT%H:00Z)"; i=$((i + 1))
done >"$T/demand.tsv"
qrpool-plan --max 0 "$T/demand.tsv" 2>/dev/null
qrpool-prune   # (every code is recent: it deletes none, and its run is recorded)

jq_py() {  # jq_py EXPRESSION: evaluates a Python expression over the JSON in $T/out as `r`
  "$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/out" "$1"
}

run qrpool-report --json
is "--json exits 0" "$rc" 0
next=$(($(sql "SELECT max(id) FROM codes") + 1))
is "the snapshot's floor (schema 008), nothing in flight: the next id, in every pool" \
  "$(sql "SELECT group_concat(pool || '=' || floor_id, ' ') FROM (SELECT pool, floor_id FROM depth_snapshots ORDER BY pool)")" \
  "card=$next link=$next poster=$next"
# Codes in flight in one pool for one report (removed after): its floor is the
# smallest of them.
stage card=3
first=$(sql "SELECT min(id) FROM codes WHERE pool = 'card' AND state = 'fetched'")
qrpool-report --json >/dev/null
is "... codes in flight: the smallest of them ($first), the others the next id" \
  "$(sql "SELECT group_concat(pool || '=' || floor_id, ' ') FROM (SELECT pool, floor_id FROM depth_snapshots
          WHERE taken_at = (SELECT max(taken_at) FROM depth_snapshots) ORDER BY pool)")" \
  "card=$first link=$((first + 3)) poster=$((first + 3))"
sql "DELETE FROM images WHERE code_id >= $first; DELETE FROM codes WHERE id >= $first"
is "stderr is quiet" "$(cat "$T/err")" ""
is "snapshots are taken in whole seconds, as published_at is (a code delivered in the same second is not missed)" \
  "$(sql "SELECT count(*) FROM depth_snapshots WHERE taken_at != round(taken_at)")" 0
is "JSON: the documented top-level fields" "$(jq_py 'sorted(r)')" "['generated_at', 'kafka', 'pools', 'quota', 'schema', 'stages', 'staging_db']"
is "JSON: the documented pool fields" "$(jq_py 'sorted(r["pools"][0])')" \
  "['backlog', 'consumed_per_hour', 'cover_hours', 'depth', 'failed_24h', 'group', 'lost', 'name', 'source', 'topic']"
is "JSON: depth per pool from Kafka" "$(jq_py '[(p["name"], p["depth"]) for p in r["pools"]]')" \
  "[('poster', 40), ('card', 10), ('link', 20)]"
is "JSON: no consumption known from one snapshot" "$(jq_py 'r["pools"][0]["consumed_per_hour"]["last_hour"]')" None
is "JSON: every stage, prune's included" "$(jq_py '[s["stage"] for s in r["stages"]]')" \
  "['plan', 'fetch', 'render', 'publish', 'claim', 'prune']"
is "JSON: the last prune run, which deleted nothing" "$(jq_py '[s["last_success"]["items_out"] for s in r["stages"] if s["stage"] == "prune"]')" "[0]"
is "JSON: the last publish run" "$(jq_py '[s["last_success"]["items_out"] for s in r["stages"] if s["stage"] == "publish"]')" "[70]"
ok "JSON: forecast cover of poster ~4 hours (40 codes at 10 an hour)" -- \
  "$PYTHON" -c 'import json, sys; c = json.load(open(sys.argv[1]))["pools"][0]["cover_hours"]["at_forecast"]; sys.exit(not 3 < c <= 4.01)' "$T/out"

# --- a pool moved to another consumer group (the online service's, at deployment):
# the new group's position is no consumption since the old one's (a DB of its own)
sed 's|staging\.db|moved.db|' "$QRPOOL_CONFIG" >"$T/moved.cfg"; chmod 600 "$T/moved.cfg"
kcat -C -b "$KAFKA_BROKERS" -G qr-other -X auto.offset.reset=earliest -c 30 -q \
  -f '%k\n' qrpool.poster >/dev/null
qrpool-report -c "$T/moved.cfg" -q >/dev/null
sqlite3 "$T/moved.db" "UPDATE depth_snapshots SET taken_at = taken_at - 1800"
run qrpool-report -c "$T/moved.cfg" --json
is "its own group, half an hour on, nothing taken: 0 an hour" \
  "$(jq_py 'r["pools"][0]["consumed_per_hour"]["last_hour"]')" "0.0"
sed -i 's|name = "poster";|name = "poster"; group = "qr-other";|' "$T/moved.cfg"
run qrpool-report -c "$T/moved.cfg" --json
is "... moved to a group 30 codes further on: no rate yet, not 60 an hour" \
  "$(jq_py '[r["pools"][0]["group"], r["pools"][0]["consumed_per_hour"]["last_hour"]]')" \
  "['qr-other', None]"
is "... the snapshots say what they measured" \
  "$(sqlite3 "$T/moved.db" "SELECT group_concat(DISTINCT source) FROM depth_snapshots WHERE pool = 'poster'")" \
  "qrpool.poster qrpool-online.poster,qrpool.poster qr-other"

# The online service consumes 12 poster codes; an hour-old snapshot stands for
# the report that cron ran an hour ago.
kcat -C -b "$KAFKA_BROKERS" -G qrpool-online.poster -X auto.offset.reset=earliest -c 12 -q \
  -f '%k\n' qrpool.poster >"$T/consumed"
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('poster', strftime('%s','now') - 3600, 40, 40, 0)"
# Two failures by WeChat in the last day, one old; quota taken in the last hour.
sql "UPDATE codes SET state = 'failed', errcode = 40129, updated_at = strftime('%s','now')
     WHERE id IN (SELECT id FROM codes WHERE pool = 'card' AND state = 'published' LIMIT 2)"
sql "INSERT INTO quota_windows (appid, window_start_ms, minute_ms, budget, taken)
     VALUES ('wxtest0000000001', (strftime('%s','now') - 120) * 1000, 60000, 4500, 321)"
run qrpool-report --json
is "after consuming 12: depth 28" "$(jq_py 'r["pools"][0]["depth"]')" 28
ok "consumption over the last hour ~12 codes" -- \
  "$PYTHON" -c 'import json, sys; c = json.load(open(sys.argv[1]))["pools"][0]["consumed_per_hour"]["last_hour"]; sys.exit(not 11.5 < c < 12.5)' "$T/out"
ok "cover at that rate ~2.3 hours" -- \
  "$PYTHON" -c 'import json, sys; c = json.load(open(sys.argv[1]))["pools"][0]["cover_hours"]["at_consumption"]; sys.exit(not 2.2 < c < 2.45)' "$T/out"
# The group's first commit, where retention had dropped codes unread (counted
# lost): its position jumps over them, which is no consumption. No rate then.
sql "UPDATE depth_snapshots SET depth = 0, lost = 40 WHERE pool = 'poster' AND taken_at < strftime('%s','now') - 3000"
run qrpool-report --json
is "fewer codes lost than an hour ago (a first commit past them): no rate for the hour" \
  "$(jq_py 'r["pools"][0]["consumed_per_hour"]["last_hour"]')" None
sql "UPDATE depth_snapshots SET depth = 40, lost = 0 WHERE pool = 'poster' AND taken_at < strftime('%s','now') - 3000"
# Codes lost in between, then passed by the group (lost back to 0 at both
# ends of the hour): its position moved over them, which is no consumption
# either. (Only the hour's two ends were compared: in the review's case, 17 an
# hour where 2 were taken, and a CRITICAL page.)
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('poster', strftime('%s','now') - 1800, 40, 0, 40)"
run qrpool-report --json
is "codes lost within the hour, then passed: no rate for the hour" \
  "$(jq_py 'r["pools"][0]["consumed_per_hour"]["last_hour"]')" None
sql "DELETE FROM depth_snapshots WHERE pool = 'poster' AND lost = 40"
# A gap in the snapshots (cron stopped for two hours, Kafka out of reach): the
# newest one an hour old or more is three hours old. No rate over the gap: an
# average over it would hide the hour's peak. (The snapshots this test's runs
# took are deleted: one of them could be old enough to start a rate.)
sql "UPDATE depth_snapshots SET taken_at = taken_at - 7200 WHERE pool = 'poster' AND taken_at < strftime('%s','now') - 3000"
sql "DELETE FROM depth_snapshots WHERE pool = 'poster' AND taken_at > strftime('%s','now') - 3000"
run qrpool-report --json
is "a gap in the snapshots (none between 3 h ago and now): no rate for the hour" \
  "$(jq_py 'r["pools"][0]["consumed_per_hour"]["last_hour"]')" None
# A snapshot 20 minutes old after the gap, 6 codes taken since: the hour's
# rate starts there (18 an hour), rather than none for an hour after the
# outage, when the pool is most likely low.
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('poster', strftime('%s','now') - 1200, 40, 34, 0)"
run qrpool-report --json
ok "... a snapshot 20 minutes old after it: the rate from there, ~18 an hour" -- \
  "$PYTHON" -c 'import json, sys; c = json.load(open(sys.argv[1]))["pools"][0]["consumed_per_hour"]["last_hour"]; sys.exit(not 17.5 < c < 18.5)' "$T/out"
sql "DELETE FROM depth_snapshots WHERE pool = 'poster' AND depth = 34"
sql "UPDATE depth_snapshots SET taken_at = taken_at + 7200 WHERE pool = 'poster' AND taken_at < strftime('%s','now') - 10000"
run qrpool-report --json
is "failures by errcode over the last day" "$(jq_py 'r["pools"][1]["failed_24h"]')" "{'total': 2, 'by_errcode': {'40129': 2}}"
is "backlog by state" "$(jq_py 'r["pools"][1]["backlog"]')" "{'planned': 0, 'fetched': 0, 'failed': 2}"
is "quota taken in the last hour" "$(jq_py 'r["quota"]["last_hour"]')" 321

run qrpool-report
is "the table exits 0" "$rc" 0
like "the table shows poster's depth and cover" "$(grep '^poster' "$T/out")" '^poster +wechat +28 +0 +1[12] .* 2\.[34] '
like "the table shows the quota" "$(cat "$T/out")" "WeChat quota taken by qrpool for wxtest0000000001: 321 calls in the last hour"

# --- Prometheus textfile, read by the real parser ---------------------------------
mkdir "$T/textfile"
run qrpool-report --prom "$T/textfile/qrpool.prom"
is "--prom exits 0 and prints nothing" "$rc:$(cat "$T/out")" "0:"
is "only the textfile is left in the directory (temp file renamed)" "$(ls "$T/textfile")" qrpool.prom
# Not over anything but a file: the rename would replace it (as root, a
# device: --prom /dev/stdout). A FIFO stands in for the device here.
mkfifo "$T/textfile/fifo.prom"
run qrpool-report --prom "$T/textfile/fifo.prom"
is "--prom onto a FIFO: exit 74" "$rc" 74
like "... saying it is not a regular file" "$(cat "$T/err")" "fifo.prom: not a regular file"
ok "... and the FIFO is still one" test -p "$T/textfile/fifo.prom"
rm -f "$T/textfile/fifo.prom"
# A SIGTERM while the textfile is written (its fsync slowed by strace) leaves no
# temporary file in the collector's directory: the write ends first.
if strace -o /dev/null true 2>/dev/null; then
  strace -o /dev/null -e inject=fsync:delay_enter=2000000 qrpool-report --prom "$T/textfile/qrpool.prom" \
    >/dev/null 2>"$T/err" & tracer=$!
  i=0 writing=no
  until [ -n "$(ls "$T/textfile" | grep -v '^qrpool.prom$')" ] || [ $i -gt 500 ]; do sleep 0.02; i=$((i + 1)); done
  [ $i -gt 500 ] || writing=yes
  report=$(pgrep -P $tracer || true)
  [ -z "$report" ] || kill -TERM $report
  rc=0; wait $tracer || rc=$?
  is "SIGTERM while the textfile is written: the write ends first, then the stop; only the textfile is left" \
    "$writing:$rc:$(ls "$T/textfile")" yes:143:qrpool.prom
elif ! command -v strace >/dev/null && [ -n "${QRPOOL_NO_SKIP:-}" ]; then
  ok "strace is installed, for a SIGTERM mid-write (scripts/install-deps should provide it)" false
else
  skip_tests 1 "a SIGTERM mid-write: strace cannot run here"
fi
cat >"$T/parse.py" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
samples = {}
for family in text_string_to_metric_families(text):
    assert family.name.startswith("qrpool_"), family.name
    for s in family.samples:
        assert s.timestamp is None, s
        # Low-cardinality labels only: never a request id.
        assert set(s.labels) <= {"pool", "state", "window", "basis", "errcode", "stage", "direction", "appid"}, s
        samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
print(int(samples[("qrpool_pool_depth_codes", (("pool", "poster"),))]))
print(int(samples[("qrpool_pool_backlog_codes", (("pool", "card"), ("state", "failed")))]))
print(samples[("qrpool_kafka_up", ())])
print(round(samples[("qrpool_pool_cover_seconds", (("basis", "consumption"), ("pool", "poster")))] / 3600, 1))
print("qrpool_stage_last_success_timestamp_seconds" in {k[0] for k in samples})
PY
is "the textfile parses as Prometheus exposition format, with the right values" \
  "$("$PYTHON" "$T/parse.py" "$T/textfile/qrpool.prom" 2>&1 | tr '\n' ' ')" "28 2 1.0 2.3 True "

# Another writer holding the DB past busy_timeout (a large plan): the report
# still reads and reports; only its depth snapshot is not recorded.
sed 's/busy_timeout = "5s"/busy_timeout = "1s"/' "$QRPOOL_CONFIG" >"$T/short-busy.cfg"
snapshots=$(sql 'SELECT count(*) FROM depth_snapshots')
rm -f "$T/locked" "$T/release"
# (Held until the last report below is done, however slow the machine.)
{ echo "BEGIN IMMEDIATE;"; echo "DELETE FROM depth_snapshots WHERE 0;"; echo ".print locked"
  i=0; until [ -e "$T/release" ] || [ $i -gt 600 ]; do sleep 0.05; i=$((i + 1)); done
  echo "COMMIT;"; } | sqlite3 "$T/staging.db" >"$T/locked" & locker=$!
wait_locked "$T/locked"
rm -f "$T/textfile/qrpool.prom"
run qrpool-report -c "$T/short-busy.cfg" --prom "$T/textfile/qrpool.prom"
is "DB locked by another writer: --prom still exits 0" "$rc" 0
is "... and writes the textfile, with the right values" \
  "$("$PYTHON" "$T/parse.py" "$T/textfile/qrpool.prom" 2>&1 | tr '\n' ' ')" "28 2 1.0 2.3 True "
like "... warning that this snapshot is not recorded" "$(cat "$T/err")" \
  "locked by another writer: this report's depth snapshot is not recorded"
run qrpool-report -c "$T/short-busy.cfg" --check --warn-hours 2 --crit-hours 1
is "... --check gives the pools' state, not UNKNOWN" "$rc" 0
# --check waits 1 s for the lock, not busy_timeout (5 s here, 10 s by default):
# with Kafka's 7 s it still answers within a monitoring agent's 10 s.
started=$(date +%s)
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "... --check with the config's busy_timeout of 5 s: answered, the lock waited 1 s" \
  "$rc:$(($(date +%s) - started <= 3))" 0:1
touch "$T/release"
wait $locker
is "... no snapshot recorded meanwhile" "$(sql 'SELECT count(*) FROM depth_snapshots')" "$snapshots"

# --- a staging DB that cannot take the snapshot (its disk full: Kafka down, the
# night's images kept): the report is made all the same, and says so -----------------
if mkdir "$T/fullfs" && mount -t tmpfs -o size=8m tmpfs "$T/fullfs" 2>/dev/null; then
  at_exit "umount '$T/fullfs'"
  sqlite3 "$T/staging.db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
  cp "$T/staging.db" "$T/fullfs/staging.db"
  sed "s|$T/staging.db|$T/fullfs/staging.db|" "$QRPOOL_CONFIG" >"$T/full.cfg"; chmod 600 "$T/full.cfg"
  run qrpool-report -c "$T/full.cfg" --prom "$T/textfile/full.prom"
  success=$(sed -n 's/^qrpool_report_last_success_timestamp_seconds //p' "$T/textfile/full.prom")
  is "before the disk fills: exit 0, the report's success time written" "$rc:${success:+set}" 0:set
  # A reader keeps it open, as a night's stage or a claim does (its -wal and -shm
  # stay: the open needs no room), then the disk fills.
  rm -f "$T/held" "$T/unhold"
  { echo "SELECT count(*) || ' held' FROM codes;"; i=0; until [ -e "$T/unhold" ] || [ $i -gt 600 ]; do sleep 0.05; i=$((i + 1)); done
  } | sqlite3 "$T/fullfs/staging.db" >"$T/held" & holder=$!
  at_exit "touch '$T/unhold'; kill_child $holder"
  i=0; until grep -q held "$T/held" 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
  dd if=/dev/zero of="$T/fullfs/filler" bs=4k 2>/dev/null || true   # (until ENOSPC)
  sleep 1.1   # (the success time is to the millisecond: a later run's would differ)
  touch "$T/before-full"
  run qrpool-report -c "$T/full.cfg" --prom "$T/textfile/full.prom"
  is "disk full: --prom exits 74, and writes the textfile anew, with the right values" \
    "$rc:$([ "$T/textfile/full.prom" -nt "$T/before-full" ] && echo new):$("$PYTHON" "$T/parse.py" "$T/textfile/full.prom" 2>&1 | tr '\n' ' ')" \
    "74:new:28 2 1.0 2.3 True "
  is "... the report's success time that of the run before (an alert on its age sees this)" \
    "$(sed -n 's/^qrpool_report_last_success_timestamp_seconds //p' "$T/textfile/full.prom")" "$success"
  like "... said: the snapshot not recorded, why, the report made all the same" "$(cat "$T/err")" \
    "error: $T/fullfs/staging.db: this report's depth snapshot is not recorded \\(database or disk is full\\): the report is made all the same"
  run qrpool-report -c "$T/full.cfg" --check --warn-hours 2 --crit-hours 1
  is "... --check: WARNING (the pools are fine), saying the DB cannot be written" \
    "$rc:$(cut -d'|' -f1 "$T/out")" \
    "1:QRPOOL WARNING - the staging DB cannot be written (database or disk is full): depth snapshot not recorded; cover unknown (no consumption history or plan yet): card, link "
  run qrpool-report -c "$T/full.cfg" --check --warn-hours 3 --crit-hours 1
  like "... after a pool's WARNING" "$rc:$(cut -d'|' -f1 "$T/out")" \
    "^1:QRPOOL WARNING - poster 2\\.[34]h of cover; the staging DB cannot be written \\(database or disk is full\\)"
  run qrpool-report -c "$T/full.cfg" --json
  is "... --json: exit 74, the report whole, the DB's error in it" \
    "$rc:$(jq_py 'r["pools"][0]["depth"], r["staging_db"]["snapshot_error"]')" "74:(28, 'database or disk is full')"
  run qrpool-report -c "$T/full.cfg"
  is "... the table: exit 74, the pools and the DB's error" \
    "$rc:$(grep -c '^poster ' "$T/out"):$(grep '^(the staging' "$T/out")" \
    "74:1:(the staging DB cannot be written: database or disk is full; this depth snapshot is not recorded)"
  rm -f "$T/fullfs/filler"
  run qrpool-report -c "$T/full.cfg" --prom "$T/textfile/full.prom"
  now_success=$(sed -n 's/^qrpool_report_last_success_timestamp_seconds //p' "$T/textfile/full.prom")
  ok "... room again: exit 0, the success time now's" [ "$rc" = 0 -a "$now_success" != "$success" ]
  touch "$T/unhold"; wait $holder
  is "... no snapshot recorded meanwhile but the last one's" \
    "$(sqlite3 "$T/fullfs/staging.db" 'SELECT count(DISTINCT taken_at) FROM depth_snapshots') " \
    "$(($(sql 'SELECT count(DISTINCT taken_at) FROM depth_snapshots') + 2)) "
else
  skip_tests 10 "cannot mount a tmpfs to fill"
fi

# --- monitoring-plugin check: each state reached by its thresholds ------------------
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "--check OK above the thresholds: exit 0" "$rc" 0
like "--check OK: one line, perfdata after |" "$(cat "$T/out")" "^QRPOOL OK - .* \| .*'poster_depth'=28;;;0 .*'poster_cover_hours'=2\.[34][0-9];2:;1:;0"
is "--check prints one line" "$(wc -l <"$T/out")" 1
like "--check OK names the pools whose cover is unknown, rather than 'every one above'" \
  "$(cat "$T/out")" "^QRPOOL OK - no pool below 2h of cover; cover unknown \(no consumption history or plan yet\): card, link \|"
run qrpool-report --check --warn-hours 1000000 --crit-hours 0.00001
like "... thresholds at the extremes in fixed point (not 1e+06), as perfdata parsers read them" \
  "$(cat "$T/out")" "'poster_cover_hours'=[0-9.]+;1000000:;0\.00001:;0"
run qrpool-report --check --warn-hours 3 --crit-hours 1
is "--check WARNING below --warn-hours: exit 1" "$rc" 1
like "--check WARNING names the pool" "$(cat "$T/out")" "^QRPOOL WARNING - poster 2\.[34]h of cover"
run qrpool-report --check --warn-hours 5 --crit-hours 3
is "--check CRITICAL below --crit-hours: exit 2" "$rc" 2
# A forecast that ends before the stock does (evening, with a day's forecast):
# card's codes outlast its last 2 forecast hours at 1 an hour. That cover is
# only a lower bound: no shortage. With card consuming 1 an hour (9 hours of
# cover) the check is OK; it used to say "card 1.xh of cover" every evening.
{ cat "$T/demand.tsv"
  for i in 0 1; do printf 'card\t%s\t1\n' "$(date -u -d "$hour + $i hour" +%Y-%m-%dT%H:00Z)"; done
} >"$T/evening.tsv"
qrpool-plan --max 0 "$T/evening.tsv" 2>/dev/null
run qrpool-report --json
is "a forecast the stock outlasts: a lower bound in the JSON" "$(jq_py 'r["pools"][1]["cover_hours"]["forecast_is_lower_bound"]')" True
# ... and no consumption to tell the cover (the night's plan did not run?): a WARNING, said so.
run qrpool-report --check --warn-hours 2 --crit-hours 1
like "... no consumption known: WARNING, the forecast's end said" "$rc:$(cut -d'|' -f1 "$T/out")" \
  "^1:QRPOOL WARNING - card: the last plan's forecast ends in [0-9.]+h, and no consumption to tell the cover"
# ... and once it has ended (no plan since): still a WARNING, the check said OK then.
sql "UPDATE plan_demand SET hour = hour - 86400 WHERE pool = 'card'
     AND plan_id = (SELECT max(plan_id) FROM plan_pools WHERE pool = 'card')"
run qrpool-report --check --warn-hours 2 --crit-hours 1
like "... the forecast ended, no consumption: WARNING, said so" "$rc:$(cut -d'|' -f1 "$T/out")" \
  "^1:QRPOOL WARNING - card: the last plan's forecast has ended, and no consumption to tell the cover"
run qrpool-report --json
is "... in the JSON: 0 hours at the forecast, a lower bound" \
  "$(jq_py 'r["pools"][1]["cover_hours"]["at_forecast"], r["pools"][1]["cover_hours"]["forecast_is_lower_bound"]')" \
  "(0.0, True)"
sql "UPDATE plan_demand SET hour = hour + 86400 WHERE pool = 'card'
     AND plan_id = (SELECT max(plan_id) FROM plan_pools WHERE pool = 'card')"
kcat -C -b "$KAFKA_BROKERS" -G qrpool-online.card -X auto.offset.reset=earliest -c 1 -q \
  -f '%k\n' qrpool.card >/dev/null
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('card', strftime('%s','now') - 3600, 10, 10, 0)"
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "... consuming 1 an hour: OK, the lower bound not taken for the cover" \
  "$rc:$(cut -d'|' -f1 "$T/out" | grep -c card)" 0:0
run qrpool-report --prom "$T/textfile/evening.prom"
is "... --prom: no forecast cover for it, which an alert rule would read as the cover" \
  "$rc:$(grep -c 'qrpool_pool_cover_seconds{pool="card",basis="forecast"}' "$T/textfile/evening.prom")" 0:0
# card as it was: no forecast, no consumption history. (75: the last plan had
# demand for card, and this forecast has no row for it; planned all the same.)
rc=0; qrpool-plan --max 0 "$T/demand.tsv" 2>/dev/null || rc=$?
is "(a plan of poster's forecast alone, after one with card's: 75)" "$rc" 75
sql "DELETE FROM depth_snapshots WHERE pool = 'card' AND taken_at < strftime('%s','now') - 3000"
# One topic without a leader: the measured pool's CRITICAL still pages (it was
# UNKNOWN, which many setups do not page on); below CRITICAL it stays UNKNOWN.
kafka_control topic-error qrpool.card LEADER_NOT_AVAILABLE
run qrpool-report --check --warn-hours 5 --crit-hours 3
is "one pool unreadable, another CRITICAL: CRITICAL" "$rc" 2
like "... naming the pool and what could not be read" "$(cut -d'|' -f1 "$T/out")" \
  "^QRPOOL CRITICAL - poster 2\.[34]h of cover; depth unreadable: pool card: .*"
run qrpool-report --check --warn-hours 3 --crit-hours 1
is "one pool unreadable, another WARNING: UNKNOWN" "$rc:$(cut -c1-44 "$T/out")" \
  "3:QRPOOL UNKNOWN - pool depth unreadable: pool"
like "... saying the WARNING too" "$(cut -d'|' -f1 "$T/out")" \
  "^QRPOOL UNKNOWN - pool depth unreadable: pool card: .*; WARNING: poster 2\.[34]h of cover $"
kafka_control topic-error qrpool.card NO_ERROR
# The first pool's leader down: its requests wait out the timeout, and the
# pools after it are measured all the same (they went unmeasured, and plan
# filled them from the DB's upper bound).
for partition in 0 1; do
  kafka_control leader qrpool.poster $partition 2
  kafka_control leader qrpool.link $partition 1
done
kafka_control leader qrpool.card 0 1
for pool in poster card link; do kafka_control coordinator qrpool-online.$pool 1; done
kafka_control broker-down 2
run qrpool-report --json
is "a pool's leader down: its depth unknown, the pools after it measured" \
  "$(jq_py '[(p["name"], p["depth"]) for p in r["pools"]]')" "[('poster', None), ('card', 9), ('link', 20)]"
like "... the error names the pool" "$(jq_py 'r["kafka"]["error"]')" "^pool poster: topic qrpool.poster, "
# A newest measure of 7 that the DB's estimate would use (removed after).
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) SELECT name, strftime('%s','now') + 10, 0, 7, 0
     FROM (SELECT 'card' AS name UNION SELECT 'link')"
run qrpool-plan --dry-run "$T/demand.tsv"
sql "DELETE FROM depth_snapshots WHERE depth = 7"
is "plan: the pools after it measured in Kafka, not estimated" \
  "$(awk '$1 == "card" || $1 == "link" { printf "%s=%s ", $1, $4 }' "$T/out")" "card=9 link=20 "
is "... one warning, for that pool" \
  "$(grep -c 'depth estimated from the staging DB' "$T/err"):$(grep -c 'pool poster: ' "$T/err")" 1:1
kafka_control broker-up 2
# Every link code taken, and no history to tell a rate: an empty pool warns.
kcat -C -b "$KAFKA_BROKERS" -G qrpool-online.link -X auto.offset.reset=earliest -c 20 -q \
  -f '%k\n' qrpool.link >/dev/null
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "--check: an empty pool of unknown cover is a WARNING" "$rc:$(cut -d'|' -f1 "$T/out")" \
  "1:QRPOOL WARNING - link empty, cover unknown; cover unknown (no consumption history or plan yet): card "
# An hour later, nothing taken since: the rate is 0 and the cover infinite,
# but an empty pool still warns.
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('link', strftime('%s','now') - 3600, 20, 0, 0)"
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "--check: an empty pool nobody drew from in the last hour still warns" "$rc:$(cut -d'|' -f1 "$T/out")" \
  "1:QRPOOL WARNING - link empty; cover unknown (no consumption history or plan yet): card "
# It was full two hours ago: codes were taken over the day, and none were
# left to take in the last hour. It ran dry: CRITICAL (its cover was infinite).
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('link', strftime('%s','now') - 7200, 20, 20, 0)"
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "--check: an empty pool drawn from over the day is CRITICAL" "$rc:$(cut -d'|' -f1 "$T/out")" \
  "2:QRPOOL CRITICAL - link empty; cover unknown (no consumption history or plan yet): card "
run qrpool-report --check --warn-hours 3 --crit-hours 1
like "--check: the CRITICAL pools are said first, then the WARNING ones" "$rc:$(cut -d'|' -f1 "$T/out")" \
  "^2:QRPOOL CRITICAL - link empty, poster 2\.[34]h of cover; cover unknown"
run qrpool-report --json
is "... its cover at consumption 0, with nothing consumed in the last hour" \
  "$(jq_py '[r["pools"][2]["cover_hours"][k] for k in ("at_consumption", "no_consumption")]')" "[0.0, True]"
# The same two hours later, no snapshot between (the report's cron stopped):
# the last hour's rate is unknown (a gap), the day's is not: still CRITICAL.
sql "UPDATE depth_snapshots SET taken_at = taken_at - 7200 WHERE pool = 'link' AND taken_at < strftime('%s','now') - 3000"
sql "DELETE FROM depth_snapshots WHERE pool = 'link' AND taken_at >= strftime('%s','now') - 3000"
run qrpool-report --check --warn-hours 2 --crit-hours 1
is "--check: an empty pool drawn from over the day, the hour's rate unknown: still CRITICAL" \
  "$rc:$(cut -d'|' -f1 "$T/out")" \
  "2:QRPOOL CRITICAL - link empty; cover unknown (no consumption history or plan yet): card "
sql "UPDATE depth_snapshots SET taken_at = taken_at + 7200 WHERE pool = 'link' AND taken_at < strftime('%s','now') - 10000"
run qrpool-report --check --warn-hours 3
is "--warn-hours alone below the default 4: --crit-hours follows it (no usage error)" \
  "$rc:$(cut -c1-15 "$T/out")" "2:QRPOOL CRITICAL"
for thresholds in "--warn-hours 5" "--crit-hours 2" "--json --warn-hours 5"; do
  run qrpool-report $thresholds
  is "$thresholds without --check: exit 64, nothing printed" "$rc:$(cat "$T/out")" 64:
  like "... saying so" "$(cat "$T/err")" "--(warn|crit)-hours: the thresholds of --check, which is not given"
done
run qrpool-report --check --warn-hours 1 --crit-hours 2
is "--check with crit above warn is a usage error, UNKNOWN" "$rc" 3
is "... with its one line" "$(cat "$T/out")" "QRPOOL UNKNOWN - bad command line (exit 64; see stderr)"
for args in "--warn-hours abc --check" "--chec --warn-hours abc"; do
  run qrpool-report $args
  is "a bad command line ($args): UNKNOWN too, with its line" "$rc:$(cat "$T/out")" \
    "3:QRPOOL UNKNOWN - bad command line (exit 64; see stderr)"
done
run qrpool-report --prom --check --bogus
is "... but not when --check is --prom's file name" "$rc:$(cat "$T/out")" "64:"
# A stray output option must not turn a check into JSON the monitor reads as OK.
for args in "--check --json" "--json --check" "--check --prom $T/x.prom"; do
  run qrpool-report $args
  is "two outputs ($args): UNKNOWN, with its line" "$rc:$(cat "$T/out")" \
    "3:QRPOOL UNKNOWN - bad command line (exit 64; see stderr)"
done
like "... saying which options clash" "$(cat "$T/err")" "--json, --prom and --check each choose the output: give one"
run qrpool-report --prom ''
is "--prom '': a usage error (64, not an I/O error)" "$rc" 64
like "... saying what is missing" "$(cat "$T/err")" "--prom: needs the textfile's name"
run qrpool-report --json --prom "$T/x.prom"
is "--json with --prom: a usage error" "$rc:$(cat "$T/out")" "64:"
ok "... writing no textfile" -- test ! -e "$T/x.prom"
rc=0; qrpool-report --check --warn-hours 2 --crit-hours 1 >/dev/full 2>"$T/err" || rc=$?
is "--check whose line cannot be written: UNKNOWN (3), within the plugin's 0-3, not 74" "$rc" 3
like "... saying why on stderr" "$(cat "$T/err")" "stdout"

# A property librdkafka does not know is a config error, not Kafka down.
set_kafka 3s no.such.property=1
run qrpool-report --prom "$T/typo.prom"
is "a kafka.properties typo: --prom exits 78" "$rc" 78
like "... naming the property, at its file and line" "$(cat "$T/err")" \
  'qrpool.cfg:[0-9]+: kafka.properties: No such configuration property: "no.such.property"'
ok "... and writes no textfile (kafka_up 0 would page for Kafka)" -- test ! -e "$T/typo.prom"
run qrpool-report --check
is "... --check: UNKNOWN, exit 3" "$rc:$(cat "$T/out")" \
  "3:QRPOOL UNKNOWN - bad configuration, or a staging DB of a newer qrpool (see stderr) (exit 78)"
typo_hour=$(date -u +%Y-%m-%dT%H:00Z)   # (once: an hour may begin between two dates)
{ printf 'poster\t%s\t5\n' "$typo_hour"; forecast_end "$typo_hour"; } >"$T/typo.tsv"
run qrpool-plan --dry-run --from "$typo_hour" "$T/typo.tsv"
is "... plan exits 78 too, rather than estimating depth" "$rc" 78
set_kafka 3s

# A database.path naming no file (a typo) while Kafka has stock: UNKNOWN, not
# the OK that Kafka's depth alone gives (the morning audit would pass a night
# with nothing fetched, failed or left over).
sed "s|$T/staging.db|$T/typo.db|" "$QRPOOL_CONFIG" >"$T/typodb.cfg"
chmod 600 "$T/typodb.cfg"
run qrpool-report -c "$T/typodb.cfg" --check --warn-hours 0.01 --crit-hours 0.001
is "no staging DB at database.path: --check UNKNOWN (3)" "$rc" 3
like "... saying where and why" "$(cat "$T/out")" \
  "^QRPOOL UNKNOWN - no run recorded in the staging DB $T/typo.db: database.path names the wrong file"
# ... and so on every later run, though the first made an empty DB there (the
# crontab's report every 5 minutes makes it before the morning audit's check).
run qrpool-report -c "$T/typodb.cfg" -q --prom "$T/typo.prom"
run qrpool-report -c "$T/typodb.cfg" --check --warn-hours 0.01 --crit-hours 0.001
is "... on every run after, the empty DB there found: still UNKNOWN" "$rc:$(cut -c1-50 "$T/out")" \
  "3:QRPOOL UNKNOWN - no run recorded in the staging DB"

# A staging DB that cannot be read, and one another process keeps locked: each
# UNKNOWN says which (a lock is for a retry, not for a look at the disk).
printf 'not a database, %.0s' $(seq 1 300) >"$T/garbage.db"
sed "s|$T/staging.db|$T/garbage.db|" "$QRPOOL_CONFIG" >"$T/garbage.cfg"
chmod 600 "$T/garbage.cfg" "$T/garbage.db"
run qrpool-report -c "$T/garbage.cfg" --check
is "a file that is no database: --check UNKNOWN (3), saying so" "$rc:$(cat "$T/out")" \
  "3:QRPOOL UNKNOWN - the staging DB cannot be opened or read (see stderr) (exit 74)"
rm -f "$T/locked" "$T/release"
{ echo "PRAGMA locking_mode = EXCLUSIVE;"; echo "BEGIN EXCLUSIVE;"; echo ".print locked"
  i=0; until [ -e "$T/release" ] || [ $i -gt 600 ]; do sleep 0.05; i=$((i + 1)); done
  echo "COMMIT;"; } | sqlite3 "$T/staging.db" >"$T/locked" & locker=$!
wait_locked "$T/locked"
run qrpool-report -c "$T/short-busy.cfg" --check
is "the DB kept locked (exclusive mode): --check UNKNOWN (3), saying a lock" "$rc:$(cat "$T/out")" \
  "3:QRPOOL UNKNOWN - the staging DB is locked by another process: try again (see stderr) (exit 75)"
touch "$T/release"
wait $locker

run qrpool-report -q --prom "$T/down.prom"
success=$(sed -n 's/^qrpool_report_last_success_timestamp_seconds //p' "$T/down.prom")
kill "$kafka_pid"; wait "$kafka_pid" 2>/dev/null || true
run qrpool-report -q --prom "$T/down.prom"
is "Kafka down, -q (the crontab's line): exit 75" "$rc" 75
is "... the textfile says kafka_up 0, and the report's last success is still the run's before" \
  "$(grep '^qrpool_kafka_up ' "$T/down.prom"):$(sed -n 's/^qrpool_report_last_success_timestamp_seconds //p' "$T/down.prom")" \
  "qrpool_kafka_up 0:$success"
# Kafka out of reach for 9 days: every snapshot of card past the 8 kept is
# deleted but its newest, which plan's DB-only estimate starts from.
sql "UPDATE depth_snapshots SET taken_at = taken_at - 9 * 86400 WHERE pool = 'card'"
newest=$(sql "SELECT max(taken_at) FROM depth_snapshots WHERE pool = 'card'")
ok "... (card has more than one snapshot)" -- test "$(sql "SELECT count(*) FROM depth_snapshots WHERE pool = 'card'")" -gt 1
run qrpool-report -q
is "... Kafka down 9 days: a pool's newest snapshot is kept, the older ones deleted" \
  "$(sql "SELECT count(*), max(taken_at) = $newest FROM depth_snapshots WHERE pool = 'card'")" "1|1"
run qrpool-report -q --prom "$T/first.prom"
is "... a first textfile with Kafka down (no success known): the last success 0, not absent" \
  "$rc:$(sed -n 's/^qrpool_report_last_success_timestamp_seconds //p' "$T/first.prom")" "75:0.000"
like "... and the log says why (an error, which -q does not hide)" "$(cat "$T/err")" \
  "error: pool depth unknown: Kafka"
start=$(date +%s)
run qrpool-report --check
is "--check UNKNOWN when Kafka is down: exit 3" "$rc" 3
like "UNKNOWN says why" "$(cat "$T/out")" "^QRPOOL UNKNOWN - pool depth unreadable"
ok "within the Kafka timeout" -- test $(( $(date +%s) - start )) -le 12
run qrpool-report
is "the table with Kafka down exits 75" "$rc" 75
like "and says depth is unknown" "$(cat "$T/out")" "depth unknown: Kafka"
mv "$T/staging.db" "$T/moved.db"; mkdir "$T/staging.db"
run qrpool-report --check
is "--check UNKNOWN when the DB cannot be read" "$rc" 3

# --- 100 pools: the check's line is whole (fixed buffers cut it past ~40) ----
rm -f "$T/kafka.boot"
set --; i=1; while [ $i -le 100 ]; do set -- "$@" -t "many.$i:1"; i=$((i + 1)); done
start_kafka --brokers 1 "$@"
{ echo "database = { path = \"$T/many.db\"; };"
  echo "kafka = { brokers = \"$KAFKA_BROKERS\"; timeout = \"5s\"; };"
  echo "pools = ("
  i=1; while [ $i -le 100 ]; do
    printf '  { name = "pool_%03d"; source = "link"; url_prefix = "https://m.example.com/q/"; topic = "many.%d"; }%s\n' \
      $i $i "$([ $i -lt 100 ] && echo ,)"
    i=$((i + 1))
  done
  echo ");"; } >"$T/many.cfg"
chmod 600 "$T/many.cfg"
# (a DB with a run: one without would be UNKNOWN)
qrpool-pending -c "$T/many.cfg" --count >/dev/null 2>&1
sqlite3 "$T/many.db" "INSERT INTO runs (stage, pid, started_at, ended_at, exit_status) VALUES ('plan', 1, unixepoch(), unixepoch(), 0)"
run qrpool-report -c "$T/many.cfg" --check --warn-hours 2 --crit-hours 1
is "100 empty pools: --check WARNING" "$rc" 1
is "... on one line" "$(wc -l <"$T/out")" 1
like "... naming the last pool too" "$(cut -d'|' -f1 "$T/out")" "pool_099 empty, cover unknown, pool_100 empty, cover unknown $"
is "... with the perfdata of all 100" "$(cut -d'|' -f2 "$T/out" | grep -o "'pool_[0-9]*_depth'=0;;;0" | wc -l)" 100
like "... the last at the end" "$(cat "$T/out")" "'pool_100_lost'=0;;;0$"
# fetch only ever failed (a secret refused from the first night), publish never
# ran: their last-success series are 0, not absent, so that the README's
# QrpoolNoGoodNight rule (its age over 26 hours) fires for them.
sqlite3 "$T/many.db" "INSERT INTO runs (stage, pid, started_at, ended_at, exit_status) VALUES ('fetch', 1, unixepoch() - 90000, unixepoch() - 89990, 69)"
run qrpool-report -c "$T/many.cfg" --prom "$T/textfile/many.prom"
is "never ended well: the fills' stages' and prune's last success 0, plan's its time" \
  "$(sed -n 's/^qrpool_stage_last_success_timestamp_seconds{stage="\([a-z]*\)"} \([0-9]*\).*/\1=\2/p' \
    "$T/textfile/many.prom" | sed 's/=[1-9][0-9]*$/=time/' | sort | tr '\n' ' ')" \
  "fetch=0 plan=time prune=0 publish=0 "
# A last run with no end recorded: still running (a claim serving), or gone
# (killed, crashed, or stopped while another process held the DB's lock),
# told by whether its pid runs (the DB is this host's).
sleep 60 >/dev/null 2>&1 & alive=$!
at_exit "kill_child $alive"
gone=2147483600   # (no process: above any pid_max)
sqlite3 "$T/many.db" "INSERT INTO runs (stage, pid, started_at) VALUES ('claim', $alive, unixepoch() - 60), ('render', $gone, unixepoch() - 50)"
run qrpool-report -c "$T/many.cfg"
is "a last run with no end, its pid running: 'running (pid N)'" \
  "$(awk '$1 == "claim" { print $NF, $(NF-1), $(NF-2) }' "$T/out")" "$alive) (pid running"
is "... its pid gone: 'gone (pid N)'" \
  "$(awk '$1 == "render" { print $NF, $(NF-1), $(NF-2) }' "$T/out")" "$gone) (pid gone"
is "... a run that ended: its exit status" "$(awk '$1 == "fetch" { print $NF }' "$T/out")" 69
run qrpool-report -c "$T/many.cfg" --json
is "JSON: last_run, last_exit_status and last_pid of each stage" \
  "$(jq_py '" ".join("%s=%s/%s/%s" % (s["stage"], s["last_run"], s["last_exit_status"], s["last_pid"]) for s in r["stages"])')" \
  "plan=ended/0/1 fetch=ended/69/1 render=gone/None/$gone publish=None/None/None claim=running/None/$alive prune=None/None/None"
kill "$alive"; wait "$alive" 2>/dev/null || true

# --- no Kafka configured: a config matter, not a passing outage -------------------
sed -e '/^kafka = /d' -e 's|staging\.db|nokafka.db|' "$QRPOOL_CONFIG" >"$T/nokafka.cfg"
chmod 600 "$T/nokafka.cfg"
run qrpool-report -c "$T/nokafka.cfg"
is "kafka.brokers not set: exit 78 (config), not 75 (try again later)" "$rc" 78
like "... the rest reported all the same" "$(cat "$T/out")" "poster +[a-z]+ +\\? "
like "... and said" "$(cat "$T/err")" "kafka.brokers is not set"
run qrpool-report -c "$T/nokafka.cfg" --check
is "... --check: UNKNOWN" "$rc" 3

# --- --check answers within a monitoring agent's usual 10 s (check_nrpe's default) ----
# Kafka down and kafka.timeout 30 s: the check's own UNKNOWN line comes after
# 7 s of waiting, not the agent's "socket timeout" after its 10.
sed -e 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "30s"; };|' \
  -e 's|staging\.db|kdown.db|' "$QRPOOL_CONFIG" >"$T/kdown.cfg"
chmod 600 "$T/kdown.cfg"
started=$(date +%s)
run qrpool-report -c "$T/kdown.cfg" --check
took=$(($(date +%s) - started))
is "--check, Kafka down, kafka.timeout 30 s: UNKNOWN" "$rc" 3
ok "... within 9 s (took $took s)" test "$took" -le 9
like "... saying why" "$(cat "$T/out")" "QRPOOL UNKNOWN - .*pool depth unreadable"
ok "... no ' |' closing the line where there is no perfdata" -- sh -c "! grep -q ' |\$' '$T/out'"

# --- Kafka refusing this client's authentication (a SASL setup the cluster does
# not speak): said as such, 69 (no rerun helps), not "Broker transport failure" --
sed -e "s|^kafka = .*|kafka = { brokers = \"$KAFKA_BROKERS\"; timeout = \"3s\"; properties = [ \"security.protocol=SASL_PLAINTEXT\", \"sasl.mechanisms=PLAIN\", \"sasl.username=u\", \"sasl.password=p\" ]; };|" \
  -e 's|staging\.db|sasl.db|' "$QRPOOL_CONFIG" >"$T/sasl.cfg"
chmod 600 "$T/sasl.cfg"
run qrpool-report -c "$T/sasl.cfg"
is "Kafka refusing the SASL setup: exit 69, the table still printed" "$rc:$(grep -c '^poster' "$T/out")" 69:1
like "... naming the authentication and the settings" "$(cat "$T/err")" \
  "pool depth unknown: Kafka: pool .*: Kafka refused this client's authentication \(.*SASL.*\): kafka.properties' security.protocol and sasl.\* settings must match the cluster's"
run qrpool-report -c "$T/sasl.cfg" --check
like "... --check: UNKNOWN, saying so" "$rc:$(cat "$T/out")" "^3:QRPOOL UNKNOWN - .*Kafka refused this client's authentication"

# --- the night window in real time, on and after DST nights (New York) -------------
# The report's clock set by clockstep.so; no Kafka, a DB of its own.
sed -e '/^kafka = /d' -e 's|staging\.db|dst.db|' "$QRPOOL_CONFIG" >"$T/dst.cfg"
chmod 600 "$T/dst.cfg"
night_window() {  # night_window EPOCH: the JSON's night window, from-to, at that time
  at_clock "$1" America/New_York qrpool-report -c "$T/dst.cfg" --json >"$T/out" 2>"$T/err" || true
  jq_py 'r["quota"]["night_window"]["from"] + " " + r["quota"]["night_window"]["to"]'
}
is "10:00 after a spring-forward night: 01:00 EST to 06:00 EDT (4 hours)" "$(night_window 1805032800)" \
  "2027-03-14T01:00:00-05:00 2027-03-14T06:00:00-04:00"
is "10:00 after a fall-back night: from the first 01:00 (EDT) to 06:00 EST (6 hours)" \
  "$(night_window 1825599600)" "2027-11-07T01:00:00-04:00 2027-11-07T06:00:00-05:00"
is "01:30 the night after a spring-forward day: that night's window, begun" \
  "$(night_window 1805088600)" "2027-03-15T01:00:00-04:00 2027-03-15T06:00:00-04:00"
is "00:30 the night after a fall-back day: the last night's, not one to come" \
  "$(night_window 1825651800)" "2027-11-07T01:00:00-04:00 2027-11-07T06:00:00-05:00"
