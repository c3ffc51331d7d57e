#!/bin/sh
# qrpool-pending: listing staged codes by state and pool, oldest first; counts.
. "${0%/*}/lib.sh"
write_config
{ printf 'poster\t2026-11-29T10:00Z\t10\nlink\t2026-11-29T10:00Z\t5\n'; forecast_end 2026-11-29T10:00Z; } >"$T/d.tsv"
qrpool-plan --from 2026-11-29T10:00Z "$T/d.tsv" >"$T/planned" 2>"$T/plan.err"
is "qrpool-plan makes the staging DB without a word" "$(grep -c 'no staging DB' "$T/plan.err")" 0
is "... private: it holds the access token" "$(stat -c %a "$T/staging.db")" 600
# 12 poster + 6 link codes; mark some as further along.
sql "UPDATE codes SET state = 'fetched' WHERE id IN (SELECT id FROM codes WHERE pool = 'poster' ORDER BY id LIMIT 4)"
sql "UPDATE codes SET state = 'published' WHERE id IN (SELECT id FROM codes WHERE pool = 'link' ORDER BY id LIMIT 2)"
sql "UPDATE codes SET state = 'failed' WHERE id = (SELECT max(id) FROM codes WHERE pool = 'poster')"

run qrpool-pending
is "no filter lists every code" "$(wc -l <"$T/out")" 18
is "oldest first (staging order)" "$(cut -f1 "$T/out" | md5sum)" "$(sql 'SELECT request_id FROM codes ORDER BY id' | md5sum)"
run qrpool-pending --state planned
is "--state planned" "$(wc -l <"$T/out")" 11
is "item lines: request_id TAB pool" "$(grep -cvE '^[0-9A-Za-z]{16}	(poster|link)$' "$T/out")" 0
run qrpool-pending --state planned --pool link
is "--pool narrows" "$(wc -l <"$T/out")" 4
run qrpool-pending -s fetched,failed
is "several states, comma-separated" "$(wc -l <"$T/out")" 5
run qrpool-pending -s fetched -s failed -l 2
is "repeated --state and --limit" "$(wc -l <"$T/out")" 2
run qrpool-pending --count
is "--count exits 0" "$rc" 0
like "--count: poster row" "$(grep '^poster' "$T/out")" '^poster +7 +4 +0 +1 +12$'
like "--count: link row" "$(grep '^link' "$T/out")" '^link +4 +0 +2 +0 +6$'
run qrpool-pending --count --limit 3
is "--count with --limit (ignored, once): a usage error" "$rc:$(cat "$T/out")" "64:"
like "... saying why" "$(cat "$T/err")" "--limit lists at most N items: it has no meaning with --count"
run qrpool-pending --state bogus
is "an unknown state exits 64" "$rc" 64
like "naming the states" "$(cat "$T/err")" "unknown state 'bogus'"
run qrpool-pending --state ''
is "an empty --state (a script's unset variable) exits 64, listing nothing" "$rc:$(wc -l <"$T/out")" 64:0
like "... saying so" "$(cat "$T/err")" "--state: no state given"
run qrpool-pending extra-arg
is "a stray argument exits 64" "$rc" 64
rc=0; qrpool-pending >/dev/full 2>"$T/err" || rc=$?
is "a full stdout exits 74" "$rc" 74

# The pending list feeds a filter: what a resumed run starts from.
qrpool-pending --state planned --pool poster | cut -f1 | sort >"$T/resume"
is "resume list = the planned poster codes" "$(md5sum <"$T/resume")" "$(sql "SELECT request_id FROM codes WHERE state = 'planned' AND pool = 'poster'" | sort | md5sum)"

# The tools of one pipeline start together: several opening a new staging DB
# at once (one switching it to WAL and migrating while the others read) must
# wait for each other, not fail with "database is locked". (An empty file: a
# DB not there at all is warned of.)
rm -f "$T/errs"
for round in $(seq 20); do
  rm -f "$T/staging.db" "$T/staging.db-wal" "$T/staging.db-shm"
  (umask 077; : >"$T/staging.db")
  pids=
  for i in 1 2 3 4 5 6; do qrpool-pending --count >/dev/null 2>>"$T/errs" & pids="$pids $!"; done
  for pid in $pids; do wait "$pid" || echo "a qrpool-pending exited $?" >>"$T/errs"; done
done
is "six tools opening a new DB at once, 20 times: no error" "$(cat "$T/errs")" ""

# A DB others may read (made by hand, with the umask's mode) holds the access
# token in their sight: said, once a run.
chmod 644 "$T/staging.db"
run qrpool-pending --count
is "a DB others can read: still read (exit 0)" "$rc" 0
like "... with a warning naming it, its mode and the fix" "$(cat "$T/err")" \
  "$T/staging.db: the staging DB is readable by others \(mode 0644\): it holds the WeChat access token; chmod 600 it"
chmod 640 "$T/staging.db"
run qrpool-pending --count
is "a DB its group can read: no warning (a monitoring group)" "$rc:$(cat "$T/err")" "0:"
chmod 600 "$T/staging.db"
# The first night: no file at all, the pipeline's stages making it at once.
for round in $(seq 10); do
  rm -f "$T/staging.db" "$T/staging.db-wal" "$T/staging.db-shm"
  pids=
  for i in 1 2 3 4 5 6; do qrpool-render </dev/null 2>>"$T/errs" & pids="$pids $!"; done
  for pid in $pids; do wait "$pid" || echo "a qrpool-render exited $?" >>"$T/errs"; done
done
is "six stages making a missing DB at once, 10 times: no error, no warning" "$(cat "$T/errs")" ""
is "... the DB private" "$(stat -c %a "$T/staging.db")" 600

# A stop while opening waits for another's lock (a DB another process holds
# EXCLUSIVE in rollback-journal mode: the switch to WAL waits) ends the wait at
# once, said as such; it used to be heard only after busy_timeout (20 s here).
sed -e "s|$T/staging.db|$T/held.db|" -e 's|busy_timeout = "5s"|busy_timeout = "20s"|' \
  "$QRPOOL_CONFIG" >"$T/held.cfg"
chmod 600 "$T/held.cfg"
sqlite3 "$T/held.db" "PRAGMA journal_mode = DELETE; CREATE TABLE other (a);" >/dev/null
chmod 600 "$T/held.db"
rm -f "$T/held"
sqlite3 -cmd ".timeout 10000" "$T/held.db" "BEGIN EXCLUSIVE;" "INSERT INTO other VALUES (1);" \
  ".shell touch $T/held; sleep 12" "COMMIT" >/dev/null 2>&1 & holder=$!
i=0; until [ -e "$T/held" ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
qrpool-render -c "$T/held.cfg" </dev/null >"$T/out" 2>"$T/err" & render=$!
wait_handles_term $render
# (Once it has the DB open, then a little: in the lock wait.)
i=0; until ls -l /proc/$render/fd 2>/dev/null | grep -q 'held\.db$' || [ $i -gt 200 ]; do
  sleep 0.05; i=$((i + 1)); done
sleep 0.3
kill -TERM $render
started=$(date +%s); rc=0; wait $render || rc=$?; took=$(($(date +%s) - started))
kill_child $holder; wait $holder 2>/dev/null || true
is "a stop while opening waits for another's lock (held 12 s, busy_timeout 20 s): 75, at once" \
  "$rc:$([ "$took" -le 3 ] && echo soon)" 75:soon
like "... said as such" "$(cat "$T/err")" \
  "held.db: stopped while waiting for another process's lock to open the staging DB: nothing was done"
is "... and no lock error" "$(grep -c 'database is locked' "$T/err")" 0

# database.path naming no file (a typo): the empty DB every tool but plan would
# make is warned of, or an audit of it would look clean.
sed "s|$T/staging.db|$T/typo.db|" "$QRPOOL_CONFIG" >"$T/typo.cfg"
chmod 600 "$T/typo.cfg"
for tool in qrpool-pending qrpool-report; do
  run $tool -c "$T/typo.cfg"
  like "$tool on a missing DB: warned, naming the file" "$(cat "$T/err")" \
    "warning: $T/typo.db: there was no staging DB, so an empty one was made: if codes were expected, database.path names the wrong file"
  run $tool -c "$T/typo.cfg"
  is "... once: the next run finds it" "$(grep -c 'no staging DB' "$T/err")" 0
  rm -f "$T/typo.db" "$T/typo.db-wal" "$T/typo.db-shm"
done
# The stages of the nightly pipeline all start at once, before plan has made
# the DB on the first night: they make it without a word.
# (Its input held open, so that it holds the DB open: the last connection to
# close removes the -wal.)
mkfifo "$T/render.in"
qrpool-render -c "$T/typo.cfg" <"$T/render.in" >"$T/out" 2>"$T/err" & render=$!
exec 4>"$T/render.in"
i=0; until [ -e "$T/typo.db-wal" ] || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
is "... the DB it made private, its WAL too, while it runs" \
  "$(stat -c %a "$T/typo.db" "$T/typo.db-wal" 2>&1 | sort -u)" 600
exec 4>&-
rc=0; wait "$render" || rc=$?
is "qrpool-render on a missing DB: exit 0, no warning" "$rc:$(cat "$T/err")" 0:

# A long list into a slow next stage: pending reads in pages, so while it is
# blocked on a full pipe it holds no read snapshot and checkpoints can run
# (one open snapshot kept the WAL growing by the whole night's writes).
{ printf 'poster\t2026-11-29T10:00Z\t12000\n'; forecast_end 2026-11-29T10:00Z; } >"$T/d.tsv"
qrpool-plan --from 2026-11-29T10:00Z "$T/d.tsv" >/dev/null
total=$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")
run qrpool-pending --state planned --limit 4500
is "--limit across pages: exactly that many" "$(wc -l <"$T/out")" 4500
is "and the oldest, in order" "$(cut -f1 "$T/out" | md5sum)" \
  "$(sql "SELECT request_id FROM codes WHERE state = 'planned' ORDER BY id LIMIT 4500" | md5sum)"
mkfifo "$T/slow"
qrpool-pending --state planned >"$T/slow" & lister=$!
exec 6<"$T/slow"
IFS= read -r first <&6   # it has started writing; the pipe fills up
printf '%s\n' "$first" >"$T/slow.out"
sleep 0.5
sql "UPDATE codes SET updated_at = updated_at + 1 WHERE id = 1"   # a write after its start
is "while pending is blocked, a checkpoint completes" \
  "$(sql 'PRAGMA wal_checkpoint(TRUNCATE)' | cut -d'|' -f1)" 0
cat <&6 >>"$T/slow.out"
exec 6<&-
wait $lister
is "and the whole list still came" "$(($(wc -l <"$T/slow.out") + 0))" "$total"

# --since: only codes whose state changed within the duration (the audit counts
# the failures of the last day, not every code that ever failed).
sql "UPDATE codes SET state = 'failed', updated_at = strftime('%s', 'now') - 40 * 86400
     WHERE id = (SELECT min(id) FROM codes WHERE state = 'planned')"
sql "UPDATE codes SET state = 'failed', updated_at = strftime('%s', 'now') - 3600
     WHERE id = (SELECT min(id) FROM codes WHERE state = 'planned')"
run qrpool-pending --state failed --since 24h
is "--since 24h: the failure of an hour ago, not the one of 40 days ago" \
  "$(cut -f1 "$T/out")" "$(sql "SELECT request_id FROM codes WHERE state = 'failed' AND updated_at > strftime('%s', 'now') - 86400")"
run qrpool-pending --count --state failed --since 24h
like "--since with --count" "$(grep '^poster' "$T/out")" '^poster +0 +0 +0 +1 +1$'
run qrpool-pending --since soon
is "--since needs a duration: exit 64" "$rc" 64
run qrpool-pending --pool link --pool poster --count
is "--pool twice: exit 64, not the last one taken without a word" "$rc:$(cat "$T/out")" 64:
like "... saying so" "$(cat "$T/err")" "--pool given twice \('link', then 'poster'\): give it once"
run qrpool-pending --state fetched -s planned --count
is "--state twice: taken, as a list" "$rc" 0
# Every tool: an option with a value given twice is 64, said, not the last
# taken (-c too: a second config would be read instead of the first).
for tool_args in "qrpool-prune --older-than 30d --older-than 3d -n" "qrpool-claim -p link -n 1 -n 2" \
    "qrpool-fetch --until 05:00 --until 06:00" "qrpool-plan --max 5 --max 6 -n" \
    "qrpool-render -j 1 -j 2" "qrpool-report --night 22:00-06:00 --night 23:00-06:00" \
    "qrpool-publish -c $QRPOOL_CONFIG --config /etc/qrpool/qrpool.cfg" "qrpool-resolve -c a -c b"; do
  # shellcheck disable=SC2086
  run $tool_args
  tool=${tool_args%% *}
  is "$tool: an option given twice: exit 64, nothing on stdout" "$rc:$(cat "$T/out")" 64:
  like "... naming it and both values" "$(cat "$T/err")" "given twice \('[^']+', then '[^']+'\): give it once"
done
run qrpool-pending --pool postr
is "--pool naming no pool of the config: exit 64" "$rc" 64
like "naming the pools" "$(cat "$T/err")" "no pool 'postr'.*pools: poster"
# A config given by a relative path is named whole in every message, as its
# own file:line ones name it (to act on from anywhere, as cron's mail is).
(cd "$T" && QRPOOL_CONFIG= qrpool-pending -c ./qrpool.cfg --pool postr >/dev/null 2>"$T/err") || true
like "... the config named by its whole path, given as a relative one" "$(cat "$T/err")" \
  "no pool 'postr' in $T/qrpool.cfg \(pools:"

# The next stage gone (head): a write error, 74, not SIGPIPE (with more lines
# than a pipe holds, so the write must fail).
{ printf 'link\t2026-11-29T10:00Z\t20000\n'; forecast_end 2026-11-29T10:00Z; } | qrpool-plan --from 2026-11-29T10:00Z >/dev/null
{ rc=0; qrpool-pending 2>"$T/err" || rc=$?; echo $rc >"$T/rc"; } | head -1 >/dev/null
is "stdout closed early: exit 74" "$(cat "$T/rc")" 74
# ... said as what it is, even while another connection writes to the DB
# (SQLite's close then fails to take a lock, EAGAIN, after the write).
rm -f "$T/locked"
{ echo 'BEGIN IMMEDIATE;'; echo '.print locked'; sleep 4; } | sqlite3 "$T/staging.db" >"$T/locked" & holder=$!
wait_locked "$T/locked"
{ rc=0; qrpool-pending 2>"$T/err" || rc=$?; echo $rc >"$T/rc"; } | head -1 >/dev/null
is "... another writer at work: exit 74" "$(cat "$T/rc")" 74
like "... said as a broken pipe" "$(cat "$T/err")" "writing to stdout: Broken pipe"
kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true

# --- a pool removed from the config: its codes are not listed (every stage would
# refuse them, night after night), and said; --pool still lists them -----------------
links=$(sql "SELECT count(*) FROM codes WHERE pool = 'link'")
posters=$(sql "SELECT count(*) FROM codes WHERE pool = 'poster'")
cp "$QRPOOL_CONFIG" "$T/with-link.cfg"
sed -i -e '/name = "link"/d' -e '/name = "card"/s/},$/}/' "$QRPOOL_CONFIG"
run qrpool-pending
is "pool removed from the config: exit 0, only the other pools' codes" "$rc:$(cut -f2 "$T/out" | sort -u)" "0:poster"
is "... all of them" "$(wc -l <"$T/out")" "$posters"
like "... the others said, with their count" "$(cat "$T/err")" \
  "$links codes of pool 'link', which is not in the config, are not listed \\(qrpool-pending --pool link lists them\\)"
run qrpool-pending --pool link
is "--pool of a pool removed, with codes staged: listed" "$rc:$(wc -l <"$T/out")" "0:$links"
like "... saying it is not in the config" "$(cat "$T/err")" "pool 'link' is not in .*: its codes are listed"
run qrpool-pending --count
like "--count marks it" "$(cat "$T/out")" "link +[0-9 ]+  \\(not in the config\\)"
cp "$T/with-link.cfg" "$QRPOOL_CONFIG"
# The oldest planned codes are poster's: with poster removed, --limit counts
# only the link codes listed.
sed -i -e '/name = "poster"/d' "$QRPOOL_CONFIG"
run qrpool-pending --state planned --limit 10
is "--limit counts only the codes listed, not the older ones left out" \
  "$rc:$(cut -f2 "$T/out" | sort | uniq -c | tr -s ' ')" "0: 10 link"
cp "$T/with-link.cfg" "$QRPOOL_CONFIG"

# --- statistics in the DB (an ANALYZE, a PRAGMA optimize, an operator's sqlite3
# session) do not turn the queries into scans of every code ever made: with
# the estimates of a year of codes, SQLite would rather read the whole table
# in id order than sort one state's range, and --count reads every row for
# the time of its change. -vv shows the query plans. ----------------------------
listed=$(qrpool-pending --state fetched)
counted=$(qrpool-pending --count)
sql "ANALYZE; UPDATE sqlite_stat1 SET stat = CASE idx
       WHEN 'codes_by_state' THEN '15000000 3750000 1250000'
       WHEN 'sqlite_autoindex_codes_1' THEN '15000000 1' ELSE stat END WHERE tbl = 'codes'"
run qrpool-pending -vv --state fetched
is "a year's statistics: the same list" "$rc:$(cat "$T/out")" "0:$listed"
like "... read from the state index" "$(cat "$T/err")" \
  "listing codes: query plan: SEARCH codes USING INDEX codes_by_state \\(state=\\?\\)"
ok "... not by a scan of every code" -- sh -c "! grep -q 'query plan: SCAN codes' '$T/err'"
run qrpool-pending -vv --count
is "... the same counts" "$rc:$(cat "$T/out")" "0:$counted"
like "... from the state index alone (no row read)" "$(cat "$T/err")" \
  "counting codes: query plan: SEARCH codes USING COVERING INDEX codes_by_state \\(state=\\?\\)"
run qrpool-pending -vv --count --since 1h
like "--count --since reads the rows' times, by the state index" "$(cat "$T/err")" \
  "counting codes: query plan: SEARCH codes USING INDEX codes_by_state \\(state=\\?\\)"
sql "DROP TABLE sqlite_stat1"
