#!/bin/sh
# scripts/nightly-fill, backfill and audit: quiet on success, loud on failure,
# one run at a time (flock), the worst exit status of the whole pipeline.
. "${0%/*}/lib.sh"
. "${0%/*}/publish-lib.sh"
. "${0%/*}/fetch.sh"

# hold_flock FILE: a process in the background ($holder) holds FILE's flock
# until $T/release exists; returns once it does hold it (a run started then is
# refused for sure), 10 s at most.
hold_flock() {
  rm -f "$T/release"
  flock "$1" sh -c "until [ -e '$T/release' ]; do sleep 0.1; done" & holder=$!
  i=0
  while flock -n "$1" true && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
}

command -v flock >/dev/null || skip_all "flock is missing"
export QRPOOL_LOG_DIR="$T/log" QRPOOL_LOCK_DIR="$T"
# The tools stay dumpable, so that my_tool_pids can read their environment
# when the tests run as a user other than root.
export QRPOOL_CORE_DUMPS=1

# fresh_kafka: a new empty cluster (the depth of a pool comes from Kafka, so
# each scenario starts from empty pools).
fresh_kafka() {
  [ -n "${kafka_pid:-}" ] && { kill "$kafka_pid"; wait "$kafka_pid" 2>/dev/null || true; }
  rm -f "$T/kafka.boot"
  start_kafka --brokers 1 -t qrpool.poster:4 -t qrpool.card:2 -t qrpool.link:2
}
fresh_kafka
start_fake night --minute 1s --latency 5 --jitter 10
config_for 'quota_minute = "1s"; concurrency = 16;'
set_kafka 10s
# nightly-fill plans from the start of this hour (-f), and backfill (which
# plans from now) gets the next hour's demand: so a test running on past the
# hour's end plans as it would have before.
HOUR=$(date -u +%Y-%m-%dT%H:00Z)
NEXT_HOUR=$(date -u -d "$HOUR + 1 hour" +%Y-%m-%dT%H:00Z)
# poster and card want codes in the next hour too: the audit below, run past
# the hour's end, still finds them wanted (CRITICAL when empty).
{ printf 'poster\t%s\t100\ncard\t%s\t50\nlink\t%s\t80\n' "$HOUR" "$HOUR" "$HOUR"
  printf 'poster\t%s\t100\ncard\t%s\t50\n' "$NEXT_HOUR" "$NEXT_HOUR"; forecast_end "$HOUR"; } >"$T/demand.tsv"
deadline=$(date -d '+30 minutes' +%H:%M)

run nightly-fill -u "$deadline" -f "$HOUR" "$T/demand.tsv"
is "nightly-fill: exit 0" "$rc" 0
is "nightly-fill: nothing on stdout or stderr when all is well" "$(cat "$T/out" "$T/err")" ""
is "nightly-fill: every planned code is published" \
  "$(sql "SELECT state, count(*) FROM codes GROUP BY state")" "published|$(sql 'SELECT count(*) FROM codes')"
ok "nightly-fill: codes were planned for all three pools" -- \
  test "$(sql 'SELECT count(DISTINCT pool) FROM codes')" -eq 3
like "nightly-fill: the run is in the log" "$(cat "$T/log/nightly-fill.log")" "nightly-fill: end: exit 0"

# --- the jobs rank their stages' statuses as the tools do (README, Exit status:
# 64, 78, 70, 74, 69, 65, 75, most serious first; test_exitcode checks the C) --
is "job_worst: of two statuses, the one earlier in the README's order (the pairs that are not)" \
  "$(bash -c '. "$1/scripts/job.sh"; o=(64 78 70 74 69 65 75 0); bad=
    for ((i = 0; i < ${#o[@]}; i++)); do for ((j = i + 1; j < ${#o[@]}; j++)); do
      [ "$(job_worst "${o[j]}" "${o[i]}")" = "${o[i]}" ] && [ "$(job_worst "${o[i]}" "${o[j]}")" = "${o[i]}" ] ||
        bad="$bad ${o[i]}/${o[j]}"
    done; done; echo "${bad:-none}"' job "$ROOT")" none

# --- the demand on stdin ('-'): it reaches the plan ------------------------------------
# (card and link with rows of 0: the last plan had demand for them)
{ printf 'poster\t%s\t30\ncard\t%s\t0\nlink\t%s\t0\n' "$HOUR" "$HOUR" "$HOUR"; forecast_end "$HOUR"; } |
  { run nightly-fill -u "$deadline" -f "$HOUR" -; echo "$rc" >"$T/rc"; }
is "demand on stdin: exit 0" "$(cat "$T/rc")" 0
is "demand on stdin: the plan read it" \
  "$(sql 'SELECT sum(codes) FROM plan_demand WHERE plan_id = (SELECT max(id) FROM plans)')" 30

# --- a forecast that ends before the pools' cover does: the fill runs, and fails -------
links_before=$(sql "SELECT count(*) FROM codes WHERE pool = 'link'")
printf 'link\t%s\t500\n' "$HOUR" | { run nightly-fill -u "$deadline" -f "$HOUR" -; echo "$rc" >"$T/rc"; }
is "a forecast ending short: the fill exits 75" "$(cat "$T/rc")" 75
like "... its mail names the pool and the hours the forecast misses" "$(cat "$T/err")" \
  "qrpool-plan error: pool link: the forecast ends at .*, 23.0 of the pool's 24 hours of cover are past it"
ok "... codes were planned (550 wanted, $links_before in stock)" -- \
  test "$(sql "SELECT count(*) FROM codes WHERE pool = 'link'")" -gt "$links_before"
is "... and published all the same" "$(sql "SELECT count(*) FROM codes WHERE state != 'published'")" 0

# --- a deadline already past tonight (a morning rerun with -u 06:00): refused -----------
past=$(date -d '-5 minutes' +%H:%M)
before=$(sql 'SELECT count(*) FROM codes')
run nightly-fill -u "$past" "$T/demand.tsv"
is "a deadline 5 minutes ago: exit 75" "$rc" 75
like "a deadline 5 minutes ago: says so" "$(cat "$T/err")" "past the deadline $past"
like "... and what to do instead of a daytime fill" "$(cat "$T/err")" \
  "not starting; the next night's fill feeds on what is left first; to catch up in the day, run backfill with a reserve \(README: After a failed night\)"
is "a deadline 5 minutes ago: nothing planned" "$(sql 'SELECT count(*) FROM codes')" "$before"
run nightly-fill -u 6am "$T/demand.tsv"
is "a malformed deadline: exit 64" "$rc" 64
# The deadline's own minute: the next one is a day away, not 0h0m.
run at_clock "$(date -u -d "$(date -u +%F) 05:00:20" +%s)" UTC nightly-fill -u 05:00 "$T/demand.tsv"
like "a deadline at the current minute: 75, the next one a day away" "$rc:$(cat "$T/err")" \
  "^75:nightly-fill: it is 05:00, past the deadline 05:00 \(the next one is 24h0m away\)"
# --- before the night: an evening rerun would fetch through the evening's peak ----------
# (The clock at 18:30 in UTC; the fill lock held, so that a fill that passes
# the check stops there, 75, saying so.)
evening=$(date -u -d "$(date -u +%F) 18:30" +%s)
hold_flock "$T/qrpool-fill.lock"
run at_clock "$evening" UTC nightly-fill -u 06:00 "$T/demand.tsv"
is "nightly-fill -u 06:00 at 18:30: exit 75, nothing planned" \
  "$rc:$(sql 'SELECT count(*) FROM codes')" "75:$before"
like "... saying the night has not started, and what to run instead" "$(cat "$T/err")" \
  "^nightly-fill: it is 18:30, before the night's start 00:00 \(6 hours before the deadline 06:00; -s sets it\): not starting; .* run backfill with a reserve"
run at_clock "$(( evening + 5 * 3600 + 29 * 60 ))" UTC nightly-fill -u 06:00 "$T/demand.tsv"
like "... at 23:59 too (one minute before it)" "$rc:$(cat "$T/err")" \
  "^75:nightly-fill: it is 23:59, before the night's start 00:00 "
run at_clock "$(( evening + 4 * 3600 ))" UTC nightly-fill -u 01:00 -s 22:00 "$T/demand.tsv"
is "-s 22:00 -u 01:00 at 22:30: the night has started (the lock held: 75 for that)" \
  "$rc" 75
like "... so it went on to the lock" "$(cat "$T/err")" "another run holds .*; not starting"
run at_clock "$evening" UTC nightly-fill -u 01:00 -s 22:00 "$T/demand.tsv"
like "... and at 18:30 it is refused, naming -s" "$rc:$(cat "$T/err")" \
  "^75:nightly-fill: it is 18:30, before the night's start 22:00 \(-s\): not starting"
# A crontab whose night is longer (-w 22:00-06:00, the fill started at 22:00):
# the night starts at -w's start.
run at_clock "$(( evening + 4 * 3600 ))" UTC nightly-fill -u 06:00 -w 22:00-06:00 "$T/demand.tsv"
like "-w 22:00-06:00 at 22:30: the night has started at -w's start (on to the lock)" \
  "$rc:$(cat "$T/err")" "^75:.*another run holds .*; not starting"
run at_clock "$evening" UTC nightly-fill -u 06:00 -w 22:00-06:00 "$T/demand.tsv"
like "... and at 18:30 it is refused, naming -w" "$rc:$(cat "$T/err")" \
  "^75:nightly-fill: it is 18:30, before the night's start 22:00 \(-w's start\): not starting"
for args in "-s 9pm" "-s 06:00 -u 06:00" "-s 17:00 -u 06:00"; do
  run nightly-fill $args "$T/demand.tsv"
  is "nightly-fill $args: exit 64" "$rc" 64
  like "... saying why" "$(cat "$T/err")" "^nightly-fill: -s (9pm: expected HH:MM|06:00: the night would start at its deadline|17:00: more than 12 hours before the deadline 06:00)"
done
is "... nothing planned by any of them" "$(sql 'SELECT count(*) FROM codes')" "$before"
touch "$T/release"
wait $holder
# The options passed on to a tool are refused before the run (nothing fed on,
# nothing logged), named as typed: the plan's '--window' was never typed.
logged=$(wc -l <"$T/log/nightly-fill.log")
sql "UPDATE codes SET state = 'planned' WHERE id = (SELECT max(id) FROM codes)"
for args in "-w 1am-6am" "-w 01:00-01:00" "-f tomorrow"; do
  run nightly-fill -u "$deadline" $args "$T/demand.tsv"
  is "nightly-fill $args: exit 64, before the run" \
    "$rc:$(wc -l <"$T/log/nightly-fill.log"):$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")" \
    "64:$logged:1"
  like "... naming it as typed" "$(cat "$T/err")" "^nightly-fill: ${args%% *} '${args#* }': expected "
done
cp "$T/demand.tsv" "$T/demand-copy.tsv"   # (a campaign's file: not the same file twice)
run backfill -u "$deadline" -r lots -d "$T/demand.tsv" "$T/demand-copy.tsv"
is "backfill -r lots: exit 64, before the run" "$rc:$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")" 64:1
like "... naming it as typed" "$(cat "$T/err")" "^backfill: -r 'lots': expected a whole number"
logged=$(cat "$T/log/backfill.log" 2>/dev/null | wc -l)
run backfill -u "$deadline" -r 5000 -d "$T/demand.tsv" "$T/demand-copy.tsv"
is "backfill -r 5000 (the whole quota): exit 64, before the run (nothing logged, nothing fed)" \
  "$rc:$(cat "$T/log/backfill.log" 2>/dev/null | wc -l):$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")" \
  "64:$logged:1"
is "... said as fetch says it" "$(cat "$T/err")" \
  "backfill: -r '5000': --reserve 5000 leaves nothing of quota_per_minute (5000)"
run backfill -u "$deadline" -d "$T/demand.tsv" "$T/demand-copy.tsv"
is "backfill without -r: exit 64, before the run (nothing logged, nothing fed)" \
  "$rc:$(cat "$T/log/backfill.log" 2>/dev/null | wc -l):$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")" \
  "64:$logged:1"
like "... saying why: the config's reserve is the night's" "$(cat "$T/err")" \
  "^backfill: -r RESERVE is required: the calls a minute left to the online services in the day \(the config's reserve_per_minute is the night's\)"
sql "UPDATE codes SET state = 'published' WHERE state = 'planned'"
run sample-demand --help
is "sample-demand --help: exit 0, as -h" "$rc:$(head -1 "$T/out"):$(cat "$T/err")" \
  "0:Print a sample demand forecast (pool TAB hour TAB codes) with a realistic:"
# Its default start: the first whole hour from now, local time (it read "+ 1
# hour" as a zone, UTC+1: 22:00 at 14:30 in Shanghai, 17:00 in Kolkata); now
# itself when on the hour, so that plan's --from now finds it starting in time.
for tz in Asia/Shanghai Asia/Kolkata America/New_York America/St_Johns; do
  asked_at=$(date +%s)
  first=$(TZ=$tz sample-demand -n 1 x:24 | cut -f2)
  ahead=$(( $(date -d "$first" +%s) - asked_at ))
  ok "sample-demand in $tz starts at the first whole hour from now ($first, in $ahead s)" -- \
    test "$ahead" -ge 0 -a "$ahead" -le 3660
done
run "$ROOT/scripts/demo" --help
is "demo --help: what it does, and nothing started" "$rc:$(head -1 "$T/out"):$(cat "$T/err")" \
  "0:make demo: the nightly fill on sample demand, on this machine only.:"
run "$ROOT/scripts/demo" --scale 3
is "demo with an argument: exit 64, before anything starts" "$rc:$(cat "$T/out")" 64:
like "... saying what it takes" "$(cat "$T/err")" "demo: takes no arguments, '--scale' given \(DEMO_SCALE=N"
for script in nightly-fill backfill audit; do
  run $script --help
  is "$script --help: exit 0, as -h" "$rc:$(cat "$T/err")" "0:"
  is "... with its options, its log and its exit statuses" \
    "$(grep -c '^  -c CONFIG ' "$T/out"):$(grep -c '^Exit status: ' "$T/out"):$(grep -c 'log goes to ' "$T/out")" 1:1:1
done
# Run through a symlink (one in a PATH directory): job.sh is found beside the script.
mkdir "$T/linked" && ln -s "$ROOT/scripts/nightly-fill" "$T/linked/nightly-fill"
run "$T/linked/nightly-fill" -u 6am "$T/demand.tsv"
is "nightly-fill through a symlink: runs (a malformed deadline: 64, said)" "$rc:$(cat "$T/err")" \
  "64:nightly-fill: -u 6am: expected HH:MM"
run backfill -u "$past" "$T/demand.tsv"
is "backfill with a deadline 5 minutes ago: exit 75, not a 24-hour run" "$rc" 75
like "... saying so" "$(cat "$T/err")" "backfill: it is .*, past the deadline $past"
is "... nothing planned" "$(sql 'SELECT count(*) FROM codes')" "$before"
run backfill -u 6am "$T/demand.tsv"
is "backfill with a malformed deadline: exit 64" "$rc" 64
# audit's thresholds and arguments are checked before its run starts (no log
# line): qrpool-report would answer them with UNKNOWN (3), as if health were.
for args in "-w abc" "-C 5 -w 4" "-w 12 extra" "-C 2000000"; do
  lines=$(cat "$T/log/audit.log" 2>/dev/null | wc -l)
  run audit $args
  is "audit $args: exit 64" "$rc" 64
  like "... saying what is wrong" "$(cat "$T/err")" "^audit: (-w 'abc': hours|-C 5 is above -w 4|unexpected argument 'extra'|-C '2000000': hours)"
  is "... before its run starts" "$(cat "$T/log/audit.log" 2>/dev/null | wc -l)" "$lines"
done

# --- one at a time ------------------------------------------------------------------
is "a new lock file is readable by all, writable by its owner only" "$(stat -c %a "$T/qrpool-fill.lock")" 644
# (Held until both runs are refused: a slow machine may take seconds for them.)
# The lock file names a process that is alive (this shell) but does not hold
# it: the holder named is the one that does.
printf '%s someone 2020-01-01T00:00:00+0000\n' "$$" >"$T/qrpool-fill.lock"
hold_flock "$T/qrpool-fill.lock"
# (A PATH without procps, as on a minimal host: the scripts read /proc.)
mkdir "$T/noprocps"
for f in /usr/bin/* /bin/*; do
  case ${f##*/} in ps|pgrep|pkill|pidof|pwdx) ;; *) ln -sf "$f" "$T/noprocps/" ;; esac
done
NOPROCPS=$QRPOOL_BIN:$ROOT/scripts:$T/noprocps
run env PATH="$NOPROCPS" nightly-fill -u "$deadline" "$T/demand.tsv"
is "a second nightly-fill while one runs: exit 75" "$rc" 75
like "and says so, naming the holder (which may be anyone's: the lock is in a shared directory)" \
  "$(cat "$T/err")" "another run holds $T/qrpool-fill.lock \(held by (flock|sh|sleep) pid [0-9]+.*\); not starting"
run backfill -u "$deadline" -r 2000 -d "$T/demand.tsv" "$T/demand-copy.tsv"
is "nor a backfill while a fill runs (they would fetch the same codes): exit 75" "$rc" 75
touch "$T/release"
wait $holder
# Held by a job (flock(1) itself gone, the lock held by the script's open file):
# the job wrote who it is into the lock file.
bash -c ". '$ROOT/scripts/job.sh'; job_start heldprobe; sleep 3" 2>/dev/null & holder=$!
i=0
until [ -s "$T/qrpool-heldprobe.lock" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
rc=0; bash -c ". '$ROOT/scripts/job.sh'; job_start heldprobe" >"$T/out" 2>"$T/err" || rc=$?
is "a lock a running job holds: 75" "$rc" 75
like "... naming that job's pid, user and start" "$(cat "$T/err")" \
  "another run holds $T/qrpool-heldprobe.lock \(pid $holder, user $(id -un), since 20[0-9-]+T[0-9:]+[-+][0-9]+\); not starting"
wait $holder
# The job killed with SIGKILL while its pipeline runs on (its shell and stage
# holding the lock through the descriptor they inherited): the processes that
# have it open are named, with how to stop them all. (In a session of its own,
# so that its process group is not this test's.)
setsid bash -c ". '$ROOT/scripts/job.sh'; job_start orphanprobe
  stage() { sleep 30 & echo \$! >'$T/orphan.pid'; wait; }; job_run stage" 2>/dev/null &
i=0
until [ -s "$T/orphan.pid" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
read -r script _ <"$T/qrpool-orphanprobe.lock"
kill -9 "$script"
orphan=$(cat "$T/orphan.pid")
rc=0; bash -c ". '$ROOT/scripts/job.sh'; job_start orphanprobe" >"$T/out" 2>"$T/err" || rc=$?
like "a lock held by the pipeline of a job killed with SIGKILL: 75, its processes named" \
  "$rc:$(cat "$T/err")" \
  "^75:.*another run holds $T/qrpool-orphanprobe.lock \(held by .*sleep pid $orphan.*: \`kill -- -$script\` stops them\); not starting"
like "... the pipeline's shell too" "$(cat "$T/err")" "held by .*bash pid [0-9]+"
# The same held by a job this test's shell started (no job control: its
# process group is this shell's, as is the run that finds it): no kill of
# that group is advised, which would end the caller too.
bash -c ". '$ROOT/scripts/job.sh'; job_start sameprobe
  stage() { sleep 30 & echo \$! >'$T/same.pid'; wait; }; job_run stage" 2>/dev/null &
i=0
until [ -s "$T/same.pid" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
read -r same_script _ <"$T/qrpool-sameprobe.lock"
kill -9 "$same_script"
rc=0; bash -c ". '$ROOT/scripts/job.sh'; job_start sameprobe" >"$T/out" 2>"$T/err" || rc=$?
like "... held in the caller's own process group: 75, the holders named" "$rc:$(cat "$T/err")" \
  "^75:.*another run holds $T/qrpool-sameprobe.lock \(held by .*sleep pid $(cat "$T/same.pid")"
is "... and no \`kill -- -GROUP\` advised, which would end the caller too" "$(grep -c 'kill -- -' "$T/err")" 0
pkill -P "$same_script" 2>/dev/null || true; kill "$(cat "$T/same.pid")" 2>/dev/null || true
# The line in the lock file names that stage, but since a time before it
# started (an old line, its pid reused): not taken at its word.
printf '%s someone 2020-01-01T00:00:00+0000\n' "$orphan" >"$T/qrpool-orphanprobe.lock"
rc=0; bash -c ". '$ROOT/scripts/job.sh'; job_start orphanprobe" >"$T/out" 2>"$T/err" || rc=$?
like "... an old line naming that pid is not believed" "$rc:$(cat "$T/err")" \
  "^75:.*another run holds $T/qrpool-orphanprobe.lock \(held by .*sleep pid $orphan"
# A line naming that pid with a user who does not own it (anyone may write a
# lock in /run/lock): not believed either; one believed shows what is not
# printable ASCII as '?', no terminal escape reaching cron's mail.
printf '%s nobody %s\n' "$orphan" "$(date +%Y-%m-%dT%H:%M:%S%z)" >"$T/qrpool-orphanprobe.lock"
rc=0; bash -c ". '$ROOT/scripts/job.sh'; job_start orphanprobe" >"$T/out" 2>"$T/err" || rc=$?
like "... a line naming another user than the pid's is not believed" "$rc:$(cat "$T/err")" \
  "^75:.*another run holds $T/qrpool-orphanprobe.lock \(held by .*sleep pid $orphan"
printf '%s %s \033]0;pwned\007\033[2Jnot-a-date\n' "$orphan" "$(id -un)" >"$T/qrpool-orphanprobe.lock"
rc=0; bash -c ". '$ROOT/scripts/job.sh'; job_start orphanprobe" >"$T/out" 2>"$T/err" || rc=$?
like "... escapes in a line believed show as '?'" "$rc:$(cat "$T/err")" \
  "^75:.*another run holds $T/qrpool-orphanprobe.lock \(pid $orphan, user $(id -un), since \\?]0;pwned\\?\\?\\[2Jnot-a-date\); not starting"
is "... no control byte in what was said" "$(tr -d '\n' <"$T/err" | LC_ALL=C tr -d '[:print:]' | wc -c)" 0
kill -- -"$script"
i=0
until flock -n "$T/qrpool-orphanprobe.lock" true || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
ok "... the kill it advises stops them all: the lock is free" flock -n "$T/qrpool-orphanprobe.lock" true
# A lock that is a symbolic link (planted in /run/lock, say): never used.
ln -s "$T/victim" "$T/qrpool-audit.lock"
run audit -w 1 -C 0.5
is "a lock that is a symbolic link: exit 74" "$rc" 74
like "... saying so" "$(cat "$T/err")" "qrpool-audit.lock is a symbolic link, which a lock never is: remove it"
ok "... its target not made" test ! -e "$T/victim"
rm -f "$T/qrpool-audit.lock"
# A hard link to a file of ours (planted in /run/lock, where the sticky bit
# lets anyone make one): never used, never written.
printf 'precious\n' >"$T/victim"
ln "$T/victim" "$T/qrpool-audit.lock"
run audit -w 1 -C 0.5
is "a lock that is a hard link to another file: exit 74" "$rc" 74
like "... saying so" "$(cat "$T/err")" "qrpool-audit.lock is not a lock file of its own"
is "... the file it links to untouched" "$(cat "$T/victim")" precious
rm -f "$T/qrpool-audit.lock" "$T/victim"
# A FIFO there: refused, not opened (the open would wait for a writer forever).
mkfifo "$T/qrpool-audit.lock"
rc=0; timeout 20 audit -w 1 -C 0.5 >"$T/out" 2>"$T/err" || rc=$?
is "a lock that is a FIFO: exit 74, not a hang" "$rc" 74
like "... saying so" "$(cat "$T/err")" "qrpool-audit.lock is not a lock file of its own"
rm -f "$T/qrpool-audit.lock"

# --- a failing middle stage fails the script -----------------------------------------
# WeChat refuses the page (41030): fetch exits 69, render and publish exit 0.
fresh_kafka
start_fake nopage --minute 1s --pages pages/other
config_for 'quota_minute = "1s"; concurrency = 16;'
set_kafka 10s
run nightly-fill -u "$deadline" -f "$HOUR" "$T/demand.tsv"
is "fetch refused in the middle: the script exits 69, not publish's 0" "$rc" 69
like "loud on failure: the log is printed" "$(cat "$T/err")" "nightly-fill failed \(exit 69\)"
like "the log names the pool and the errcode's meaning" "$(cat "$T/err")" "pool (poster|card).*41030|41030.*pool (poster|card)"
ok "link codes still went through" -- \
  test "$(sql "SELECT count(*) FROM codes WHERE pool = 'link' AND state = 'published'")" -gt 0
ok "the wechat codes are kept planned for the next run" -- \
  test "$(sql "SELECT count(*) FROM codes WHERE pool != 'link' AND state = 'planned'")" -gt 0

# --- audit: non-zero on trouble ---------------------------------------------------------
run audit -w 1 -C 0.5
is "audit with codes still planned, pools empty: the check's CRITICAL first (2)" "$rc" 2
like "audit prints its findings on failure: the check" "$(cat "$T/err")" "QRPOOL CRITICAL - poster empty, card empty"
like "... and the codes left planned" "$(cat "$T/err")" "poster +[1-9][0-9]* +0 +0 +0 +[1-9]"

# SIGTERM while the check waits for an unreachable Kafka: stopped, logged, the
# lock freed, no tool left behind.
KAFKA_BROKERS=127.0.0.1:9 set_kafka 30s
my_tool_pids() {   # this test's tools running (another test run may share the machine)
  for pid in $(pgrep -f "qrpool-$1"); do
    tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "QRPOOL_CONFIG=$QRPOOL_CONFIG" &&
      echo "$pid"
  done
}
my_tools() { my_tool_pids "$1" | wc -l; }   # how many
TMPDIR=$T audit >"$T/out" 2>"$T/err" & script=$!
i=0
until [ "$(my_tools report)" -gt 0 ] || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
kill -TERM $script
started=$(date +%s)
rc=0; wait $script || rc=$?
is "SIGTERM to audit: exit 75" "$rc" 75
ok "... at once, not after Kafka's 30 s" [ $(($(date +%s) - started)) -le 5 ]
like "... the log says so" "$(cat "$T/log/audit.log")" "stopped by SIGTERM"
is "... no tool left running" "$(my_tools '(report|pending)')" 0
ok "... the lock is free" -- flock -n "$T/qrpool-audit.lock" true

# SIGTERM while a listing runs (a stand-in pending that is slow to list the
# planned codes, after a report that found all well): 75, not a verdict from a
# listing cut short. The stand-ins are the tools ($QRPOOL_BIN).
mkdir -p "$T/stand-ins"
printf '#!/bin/sh
exit 0
' >"$T/stand-ins/qrpool-report"
cat >"$T/stand-ins/qrpool-pending" <<'STAND_IN'
#!/bin/sh
case "$*" in
  *planned*) touch "$STAND_IN_DIR/listing"; sleep 30 & trap 'kill $!; exit 143' TERM; wait ;;
  *failed*)   # one failure of the last day: a verdict of 65, were it reached
    printf 'pool planned fetched published failed total\nposter 0 0 0 1 1\n' ;;
esac
exit 0
STAND_IN
chmod +x "$T/stand-ins/qrpool-report" "$T/stand-ins/qrpool-pending"
STAND_IN_DIR=$T/stand-ins QRPOOL_BIN=$T/stand-ins TMPDIR=$T audit >"$T/out" 2>"$T/err" & script=$!
i=0
until [ -e "$T/stand-ins/listing" ] || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $script
rc=0; wait $script || rc=$?
is "SIGTERM during a listing: exit 75" "$rc" 75
is "... no verdict from the listing cut short" "$(grep -c 'still planned or fetched' "$T/log/audit.log")" 0
# The plan's 65 (a bad demand line) beside a pending the OOM killer ended: the
# 65 stands (a rerun meets the bad line again), the kill is said.
printf '#!/bin/sh\nexit 65\n' >"$T/stand-ins/qrpool-plan"
printf '#!/bin/sh\nkill -KILL $$\n' >"$T/stand-ins/qrpool-pending"
chmod +x "$T/stand-ins/qrpool-plan"
rc=0; QRPOOL_BIN=$T/stand-ins bash -c ". '$ROOT/scripts/job.sh'; JOB_NAME=feedprobe
  job_feed qrpool-plan demand.tsv | cat; echo \"\${PIPESTATUS[*]}\"" >"$T/out" 2>"$T/err" || rc=$?
is "plan 65, pending killed: the feed ends 65, not the kill's raw 137" "$(cat "$T/out")" "65 0"
like "... the kill said" "$(cat "$T/err")" "qrpool-pending was killed \(SIGKILL"
# A tool that crashes is a bug (70, named), not a stop (75).
printf '#!/bin/sh\nkill -SEGV $$\n' >"$T/stand-ins/qrpool-report"
printf '#!/bin/sh\nexit 0\n' >"$T/stand-ins/qrpool-pending"
QRPOOL_BIN=$T/stand-ins TMPDIR=$T run audit
is "qrpool-report crashing: audit exits 70" "$rc" 70
like "... naming it" "$(cat "$T/err")" "qrpool-report crashed \(SIGSEGV, exit 139\): a bug"
printf '#!/bin/sh\nexit 0\n' >"$T/stand-ins/qrpool-report"
printf '#!/bin/sh\nkill -KILL $$\n' >"$T/stand-ins/qrpool-pending"
QRPOOL_BIN=$T/stand-ins TMPDIR=$T run audit
is "qrpool-pending killed (the OOM killer?): 75, named" "$rc:$(grep -c 'qrpool-pending was killed' "$T/err")" "75:1"

# --- backfill: the campaign's extra demand on top of the regular forecast -----------------
fresh_kafka
start_fake day --minute 1s --latency 5 --jitter 10
config_for 'quota_minute = "1s"; concurrency = 16;'
set_kafka 10s
# (link with a row of 0: an ad-hoc plan below gives it demand, and a forecast
# without a row for a pool whose last forecast had demand is a 75)
{ printf 'poster\t%s\t40\nlink\t%s\t0\ncard\t%s\t0\n' "$NEXT_HOUR" "$NEXT_HOUR" "$NEXT_HOUR"
  forecast_end "$HOUR"; } >"$T/regular.tsv"
# The campaign's file from another system: the hour in another notation, CRLF line ends.
printf '# campaign\r\nposter\t%s\t60\r\ncard\t%s\t10\r\n' "${NEXT_HOUR%Z}:00+00:00" "$NEXT_HOUR" \
  >"$T/campaign.tsv"
run backfill -u "$deadline" -r 4000 -d "$T/regular.tsv" "$T/campaign.tsv"
is "backfill: exit 0, quiet" "$rc:$(cat "$T/out" "$T/err")" "0:"
[ "$rc" -eq 0 ] || sed 's/^/# backfill.log: /' "$T/log/backfill.log" >&2
is "backfill: the poster demand is the regular and the campaign rows summed" \
  "$(sql "SELECT sum(codes) FROM plan_demand WHERE pool = 'poster'")" 100
is "backfill: all published" "$(sql "SELECT count(*) FROM codes WHERE state != 'published'")" 0
capacity=$(sql "SELECT capacity FROM plans ORDER BY id DESC LIMIT 1")
ok "backfill -r 4000: the plan's capacity leaves the reserve too ($capacity <= 31 min x 1000)" \
  [ "$capacity" -le 31000 ]
# Codes an earlier plan left planned: the backfill's plan counts them as in
# flight, so the backfill must fetch them too (it used to leave them planned,
# the campaign's stock short by as many).
{ printf 'card\t%s\t1000\n' "$NEXT_HOUR"; forecast_end "$HOUR"; } >"$T/leftover.tsv"
qrpool-plan --max 7 "$T/leftover.tsv" >/dev/null 2>"$T/plan.err"
is "a plan leaves 7 codes planned" "$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")" 7
run backfill -u "$deadline" -r 2000 -d "$T/regular.tsv" "$T/campaign.tsv"
is "... then a backfill: exit 0" "$rc" 0
is "... and those codes published too" "$(sql "SELECT count(*) FROM codes WHERE state != 'published'")" 0
# After a night whose plan failed (the export missing): the catch-up in the
# day is a backfill of the regular forecast alone, no campaign.
last_plan="SELECT sum(codes) FROM plan_demand WHERE plan_id = (SELECT max(id) FROM plans)"
plans=$(sql 'SELECT count(*) FROM plans')
run nightly-fill -u "$deadline" "$T/missing-export.tsv"
is "a night whose export is missing: exit 74, no plan made" "$rc:$(sql 'SELECT count(*) FROM plans')" "74:$plans"
codes=$(sql 'SELECT count(*) FROM codes')
fresh_kafka   # (empty pools: the stock the plan counts is in Kafka)
set_kafka 10s
run backfill -u "$deadline" -r 3000 -d "$T/regular.tsv"
is "backfill -d REGULAR.tsv with no campaign (the catch-up): exit 0, quiet" \
  "$rc:$(cat "$T/out" "$T/err")" "0:"
is "... planned from the regular forecast alone" "$(sql "$last_plan"):$(sql 'SELECT count(*) FROM plans')" \
  "40:$((plans + 1))"
ok "... codes planned and all published" -- \
  test "$(sql "SELECT count(*) FROM codes")" -gt "$codes" -a "$(sql "SELECT count(*) FROM codes WHERE state != 'published'")" -eq 0
# The campaign on stdin ('-'), as nightly-fill and qrpool-plan take it.
run backfill -u "$deadline" -r 2000 -d "$T/regular.tsv" - <"$T/campaign.tsv"
is "backfill with the campaign on stdin: exit 0" "$rc:$(cat "$T/err")" "0:"
is "... the plan read it (40 regular + 60 + 10 campaign)" "$(sql "$last_plan")" 110
run backfill -u "$deadline" -r 2000 -d - - <"$T/campaign.tsv"
is "backfill with stdin given twice: exit 64" "$rc:$(cat "$T/err")" "64:backfill: '-' (stdin) given twice"
# Codes fetched but not published (publish did not run, or Kafka was down):
# not in the pool, so the audit reports them as it does planned ones.
{ printf 'link\t%s\t5\n' "$NEXT_HOUR"; forecast_end "$HOUR"; } | qrpool-plan 2>"$T/plan.err" | qrpool-render 2>"$T/render.err" |
  qrpool-publish >/dev/null 2>"$T/publish.err"   # no pool empty: the check itself is OK
qrpool-plan --max 3 "$T/leftover.tsv" 2>"$T/plan.err" | qrpool-fetch >/dev/null 2>"$T/fetch.err"
is "3 codes fetched, not published" "$(sql "SELECT count(*) FROM codes WHERE state = 'fetched'")" 3
run audit -w 0 -C 0
is "audit: codes fetched after the night: 65" "$rc" 65
like "... saying so" "$(cat "$T/log/audit.log")" "3 codes are still planned or fetched \(not in Kafka\) after the night"
# The same while a fill holds the fills' lock (one still publishing after its
# deadline): its codes are in flight, not left over.
hold_flock "$T/qrpool-fill.lock"
run audit -w 0 -C 0
is "audit while a fill runs: its codes in flight are not left over: 0" "$rc:$(cat "$T/err")" 0:
like "... said in the log, with the fill's holder" "$(tail -3 "$T/log/audit.log")" \
  "a fill is still running \(held by ([a-z]+ pid [0-9]+, )*flock pid [0-9]+.*\): its 3 codes planned or fetched are in flight"
touch "$T/release"
wait $holder
# ... and where the fills take it when the lock directory cannot be used: in a
# directory of this user's own, as the audit's own lock then is.
: >"$T/no-lock-dir"
mkdir -p -m 700 "$T/qrpool-locks.$(id -u)"
hold_flock "$T/qrpool-locks.$(id -u)/qrpool-fill.lock"
rc=0; QRPOOL_LOCK_DIR=$T/no-lock-dir TMPDIR=$T audit -w 0 -C 0 >"$T/out" 2>"$T/err" || rc=$?
is "audit while a fill runs, both locking in this user's own directory: 0" "$rc" 0
like "... the fill's codes in flight, said in the log" "$(tail -3 "$T/log/audit.log")" \
  "a fill is still running \(held by ([a-z]+ pid [0-9]+, )*flock pid [0-9]+.*\): its 3 codes planned or fetched are in flight"
touch "$T/release"
wait $holder
rm -f "$T/no-lock-dir"
# The pool of those codes dropped from the config (by mistake): they are
# still left over, and said to be (the listing skips such pools; audit said 0).
cp "$QRPOOL_CONFIG" "$T/with-card.cfg"
sed -i '/name = "card"/d' "$QRPOOL_CONFIG"
run audit -w 0 -C 0
is "audit: codes of a pool no longer in the config: still 65" "$rc" 65
like "... naming the pool" "$(cat "$T/log/audit.log")" \
  "among them codes of pools no longer in the config: card \(qrpool-pending --pool NAME lists them; to retire them, so they stop coming back every morning: sqlite3 STAGING.db \"UPDATE codes SET state = 'failed', last_error = 'pool removed' WHERE pool = 'NAME' AND state IN \('planned', 'fetched'\)\"\)"
is "... counted" "$(grep -c '3 codes are still planned or fetched' "$T/log/audit.log")" 2
# A fill running does not excuse them: no fill feeds a pool not in the config.
hold_flock "$T/qrpool-fill.lock"
lines=$(wc -l <"$T/log/audit.log")
run audit -w 0 -C 0
is "... nor while a fill runs (no fill feeds them): still 65" "$rc" 65
like "... counted as left, not in flight" "$(tail -n +$((lines + 1)) "$T/log/audit.log")" \
  "3 codes are still planned or fetched \(not in Kafka\) after the night"
is "... and no word of a fill's codes in flight" \
  "$(tail -n +$((lines + 1)) "$T/log/audit.log" | grep -c 'in flight, not left')" 0
touch "$T/release"
wait $holder
cp "$T/with-card.cfg" "$QRPOOL_CONFIG"
echo "not a directory" >"$T/not-a-dir"
rc=0; QRPOOL_LOG_DIR=$T/not-a-dir/log TMPDIR=$T audit -w 0 -C 0 >"$T/out" 2>"$T/err" || rc=$?
is "a log that cannot be written: the run goes on (65 as above)" "$rc" 65
like "... saying so, and where it logs instead" "$(cat "$T/err")" \
  "audit: cannot write the log $T/not-a-dir/log/audit.log \(Not a directory: its directory cannot be made; make it, writable by [a-z]+\); logging to $T/qrpool-logs.$(id -u)/audit.log"
is "... and logging there" "$(grep -c "audit: start (pid" "$T/qrpool-logs.$(id -u)/audit.log")" 1
like "... the failed run's part of it printed" "$(cat "$T/err")" "audit: end: exit 65"
# A log whose disk is full: it opens, its writes fail. Said on stderr (cron's
# mail), whatever the run's status: the log holds nothing of the run.
if mkdir "$T/logfs" && mount -t tmpfs -o size=64k tmpfs "$T/logfs" 2>/dev/null; then
  at_exit "umount '$T/logfs' 2>/dev/null"
  head -c 100000 /dev/zero >"$T/logfs/filler" 2>/dev/null || true
  rc=0; QRPOOL_LOG_DIR=$T/logfs audit -w 0 -C 0 >"$T/out" 2>"$T/err" || rc=$?
  is "a log on a full disk: its writes fail (the report's too: 3, unknown), the log empty" \
    "$rc:$(wc -c <"$T/logfs/audit.log")" 3:0
  like "... saying the log could not be written, and how it ended" "$(cat "$T/err")" \
    "audit: the log $T/logfs/audit.log could not be written \(is its disk full\? df -h $T/logfs\): what this run said is lost; it ended with exit 3"
  umount "$T/logfs"
else
  skip_tests 2 "cannot mount a tmpfs to fill"
fi
mkdir -p "$T/my dir" && cp "$T/regular.tsv" "$T/my dir/regular.tsv"
logged=$(wc -l <"$T/log/backfill.log")
run backfill -u "$deadline" -r 2000 -d "$T/my dir" "$T/campaign.tsv"
is "backfill -d DIR: exit 64, before the run (nothing logged)" \
  "$rc:$(wc -l <"$T/log/backfill.log")" "64:$logged"
like "... saying so" "$(cat "$T/err")" "backfill: $T/my dir is a directory, not a demand file"
logged=$(wc -l <"$T/log/nightly-fill.log")
run nightly-fill -u "$deadline" "$T/campaign.tsv" "$T/my dir"
is "nightly-fill with a directory for a demand file: exit 64, before the run (nothing logged)" \
  "$rc:$(wc -l <"$T/log/nightly-fill.log")" "64:$logged"
like "... saying so" "$(cat "$T/err")" "nightly-fill: $T/my dir is a directory, not a demand file"
# A demand file given twice (under two names too): plan would refuse it, after
# the run had started, been logged and fed the leftovers.
ln -s "$T/campaign.tsv" "$T/campaign-link.tsv"
run nightly-fill -u "$deadline" "$T/campaign.tsv" "$T/campaign-link.tsv"
is "nightly-fill with a demand file given twice: exit 64, before the run (nothing logged)" \
  "$rc:$(wc -l <"$T/log/nightly-fill.log")" "64:$logged"
like "... saying so" "$(cat "$T/err")" \
  "^nightly-fill: $T/campaign.tsv and $T/campaign-link.tsv are the same file: give each demand file once$"
logged=$(wc -l <"$T/log/backfill.log")
run backfill -u "$deadline" -r 2000 -d "$T/campaign.tsv" "$T/campaign.tsv"
is "backfill with the regular forecast given as the campaign's too: exit 64, before the run" \
  "$rc:$(wc -l <"$T/log/backfill.log")" "64:$logged"
like "... saying so" "$(cat "$T/err")" "^backfill: $T/campaign.tsv and $T/campaign.tsv are the same file"
run backfill -u "$deadline" -r 2000 -d "$T/my dir/regular.tsv" "$T/campaign.tsv"
is "backfill: a regular forecast whose path has a space" "$rc" 0
run backfill -u "$deadline" -r 2000 "$T/campaign.tsv"
is "backfill without the regular forecast: exit 64" "$rc" 64
like "... saying why" "$(cat "$T/err")" "backfill: -d REGULAR.tsv is required"
# A regular forecast that is stale (yesterday's file) while the campaign's rows
# count: refused, not a plan of the campaign against the whole stock.
printf 'poster\t2020-01-01T10:00Z\t40\n' >"$T/stale.tsv"
run backfill -u "$deadline" -r 2000 -d "$T/stale.tsv" "$T/campaign.tsv"
is "backfill with a stale regular forecast: exit 65" "$rc" 65
like "... naming it" "$(cat "$T/err")" "stale.tsv: none of its 1 demand rows falls in the hours the pools cover"
run backfill "$T/campaign.tsv"
is "backfill without a deadline: exit 64" "$rc" 64
printf 'poster\t%s\tmany\n' "$HOUR" >"$T/bad-campaign.tsv"
run backfill -u "$deadline" -r 2000 -d "$T/regular.tsv" "$T/bad-campaign.tsv"
is "backfill with a bad campaign line: exit 65" "$rc" 65
like "... naming the campaign's file and line" "$(cat "$T/err")" "bad-campaign.tsv:1: bad codes count"

# --- SIGTERM to the script: the pipeline is stopped, the run logged, the lock freed --
fresh_kafka
start_fake slow --minute 1s --latency 400 --jitter 100
config_for 'quota_minute = "1s"; concurrency = 4;'
set_kafka 10s
{ printf 'poster\t%s\t2000\n' "$HOUR"; forecast_end "$HOUR"; } >"$T/big.tsv"
PATH=$NOPROCPS TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/big.tsv" >"$T/out" 2>"$T/err" &
script=$!
i=0
done_codes() { sql "SELECT count(*) FROM codes WHERE state = 'fetched' OR state = 'published'" 2>/dev/null || true; }
until [ "$(done_codes)" -gt 0 ] 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
# (tail -f follows a night, and a run killed leaves what it said)
is "the log is written as the run goes" "$(grep -c "nightly-fill: start (pid $script)" "$T/log/nightly-fill.log")" 1
mv "$T/log/nightly-fill.log" "$T/log/nightly-fill.log.1"   # logrotate, in the middle of the run
kill -TERM $script
started=$(date +%s)
rc=0; wait $script || rc=$?
is "SIGTERM to nightly-fill: exit 75" "$rc" 75
ok "SIGTERM to nightly-fill: it stops within the tools' grace time" [ $(($(date +%s) - started)) -le 10 ]
like "SIGTERM to nightly-fill: the failure is printed, for cron's mail" "$(cat "$T/err")" \
  "nightly-fill failed \(exit 75\)"
like "SIGTERM to nightly-fill: the log says so" "$(cat "$T/log/nightly-fill.log.1")" "stopped by SIGTERM"
like "... and the run's part of it is printed, though the log was rotated" "$(cat "$T/err")" \
  "nightly-fill: start \(pid $script\)"
is "SIGTERM to nightly-fill: no tool left running" "$(my_tools '(pending|plan|fetch|render|publish)')" 0
is "... with no procps (pgrep, ps) on its PATH" "$(grep -c 'command not found' "$T/log/nightly-fill.log.1")" 0
ok "SIGTERM to nightly-fill: the lock is free" -- flock -n "$T/qrpool-fill.lock" true

# --- the same signal again, a second later, insists: with Kafka down, publish
# gives up its deliveries rather than wait out kafka.timeout ---------------------------
sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
set_kafka 30s
kafka_control broker-down 1
TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/big.tsv" >"$T/out" 2>"$T/err" & script=$!
i=0
until [ "$(done_codes)" -gt 0 ] 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $script
sleep 1.5
kill -TERM $script
started=$(date +%s)
rc=0; wait $script || rc=$?
took=$(($(date +%s) - started))
is "SIGTERM twice, Kafka down: exit 75" "$rc" 75
ok "... the second ends the run, not kafka.timeout's 30 s (took $took s)" [ "$took" -le 10 ]
like "... the log says so" "$(cat "$T/log/nightly-fill.log")" "SIGTERM again: every stage told to stop now"
is "... no tool left running" "$(my_tools '(pending|plan|fetch|render|publish)')" 0
kafka_control broker-up 1
set_kafka 10s

# --- Kafka down past kafka.timeout early in the night, back before fetch is done:
# publish gives up (75), and the codes fetched after it are published once more
# at the end, not left for the next night ---------------------------------------------
# (Down once the plan is made, from Kafka's depth: planned from an estimate, the
# plan would exit 75 itself.)
fresh_kafka
start_fake outage --minute 1s --latency 150 --jitter 10
config_for 'quota_minute = "1s"; concurrency = 4;'
set_kafka 2s
{ printf 'poster\t%s\t200\n' "$HOUR"; forecast_end "$HOUR"; } >"$T/outage.tsv"
logged=$(cat "$T/log/nightly-fill.log" 2>/dev/null | wc -l)
TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/outage.tsv" >"$T/out" 2>"$T/err" & script=$!
i=0
until [ "$(done_codes)" -gt 0 ] 2>/dev/null || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
kafka_control broker-down 1
i=0
until tail -n +$((logged + 1)) "$T/log/nightly-fill.log" 2>/dev/null | grep -q 'publishing stopped after line' ||
  [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
kafka_control broker-up 1
rc=0; wait $script || rc=$?
tail -n +$((logged + 1)) "$T/log/nightly-fill.log" >"$T/this-run.log"
is "Kafka down past kafka.timeout, then back: exit 0" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/this-run.log" >&2
like "... publish gave up while fetch went on" "$(cat "$T/this-run.log")" "publishing stopped after line"
planned=$(count 1)
ok "... fetch went on to the end ($planned codes planned)" [ "$(count "state <> 'planned'")" -eq "$planned" ]
like "... which are published once more at the end" "$(cat "$T/this-run.log")" \
  "qrpool-publish ended 75 \\(Kafka down past kafka.timeout\\?\\): the codes fetched since are published once more"
like "... and said to be" "$(cat "$T/this-run.log")" "and they are: every code fetched is published"
is "... every code published" "$(count "state = 'published'")" "$planned"
# Kafka still down then: 75 again, within kafka.timeout, and the codes stay fetched.
# (The plan's 75 too, from an estimated depth.)
sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
kafka_control broker-down 1
run nightly-fill -u "$deadline" -f "$HOUR" "$T/outage.tsv"
is "Kafka down all along: exit 75" "$rc" 75
is "... every code fetched, none published" "$(count "state = 'fetched'")" "$planned"
like "... the second try said" "$(cat "$T/err")" "the codes fetched since are published once more"
# ... and a SIGTERM to the process group while that second try waits for Kafka
# (timeout(1), systemd): the stop, 75, nothing left running.
sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
set_kafka 8s
logged=$(cat "$T/log/nightly-fill.log" 2>/dev/null | wc -l)
TMPDIR=$T setsid nightly-fill -u "$deadline" -f "$HOUR" "$T/outage.tsv" >"$T/out" 2>"$T/err" &
script=$!
i=0
until tail -n +$((logged + 1)) "$T/log/nightly-fill.log" 2>/dev/null |
  grep -q 'published once more' || [ $i -gt 1200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.5
kill -TERM -"$script"
rc=0; wait $script || rc=$?
is "SIGTERM during the second try: exit 75" "$rc" 75
like "... the log says so" "$(tail -n +$((logged + 1)) "$T/log/nightly-fill.log")" "stopped by SIGTERM"
is "... no tool left running" "$(my_tools '(pending|plan|fetch|render|publish)')" 0
is "... every code still fetched" "$(count "state = 'fetched'")" "$planned"
set_kafka 3s
kafka_control broker-up 1
set_kafka 10s

# --- a setting only publish refuses: the fill does not start (the quota is not
# spent on codes that could not be published) -------------------------------------------
sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
set_kafka 3s linger.ms=5000
calls=$(stats calls_total)
run nightly-fill -u "$deadline" -f "$HOUR" "$T/outage.tsv"
is "linger.ms past kafka.timeout: nightly-fill exits 78" "$rc" 78
like "... publish's words, then the script's, in the mail" "$(cat "$T/err")" \
  "linger.ms \\(5000\\) must be shorter than kafka.timeout.*"
like "... the fill not started" "$(cat "$T/err")" \
  "qrpool-publish refuses the configuration \\(exit 78, above\\): the fill does not start"
is "... no WeChat call made, every code still planned" \
  "$(($(stats calls_total) - calls)):$(count "state <> 'planned'")" 0:0
set_kafka 10s

# --- SIGTERM or SIGHUP to the whole process group (timeout(1), systemd, an ssh
# session dropped): the same clean stop, exit 75 -------------------------------------
# (The tests themselves under nohup: the script cannot trap SIGHUP, POSIX.)
signals="TERM HUP"
if hup_ignored; then signals=TERM; skip_tests 5 "SIGHUP is ignored by the tests (nohup)"; fi
for signal in $signals; do
  sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
  logged=$(cat "$T/log/nightly-fill.log" 2>/dev/null | wc -l)   # (rotated above: none yet)
  TMPDIR=$T setsid nightly-fill -u "$deadline" -f "$HOUR" "$T/big.tsv" >"$T/out" 2>"$T/err" & script=$!
  i=0
  until [ "$(done_codes)" -gt 0 ] 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
  kill -"$signal" -"$script"
  rc=0; wait $script || rc=$?
  is "SIG$signal to nightly-fill's process group: exit 75" "$rc" 75
  tail -n +$((logged + 1)) "$T/log/nightly-fill.log" >"$T/this-run.log"
  like "... the log says so" "$(cat "$T/this-run.log")" "stopped by SIG$signal"
  like "... fetch stopped cleanly, saying so" "$(cat "$T/this-run.log")" "qrpool-fetch warning: interrupted: "
  is "... no error from any stage (a stage stopping breaks the pipe of the one before: part of the stop)" \
    "$(grep -c ' error: ' "$T/this-run.log")" 0
  is "... no tool left running" "$(my_tools '(pending|plan|fetch|render|publish)')" 0
done

# --- the plan is made at the start, not once fetch has taken the leftovers (they
# wait in the pipe): its window starts now, a bad demand file is said at once ---
sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
  INSERT INTO codes (request_id, pool, state, created_at, updated_at)
  SELECT printf('lft%013d', i), 'poster', 'planned', unixepoch(), unixepoch() FROM n"
started=$(date +%s)
TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/big.tsv" >"$T/out" 2>"$T/err" & script=$!
i=0
until [ "$(sql "SELECT count(*) FROM runs WHERE stage = 'plan' AND started_at >= $started")" -gt 0 ] ||
  [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
planned_after=$(sql "SELECT coalesce(CAST(min(started_at) - $started AS INTEGER), 'none')
  FROM runs WHERE stage = 'plan' AND started_at >= $started")
kill -TERM $script; wait $script 2>/dev/null || true
ok "20,000 leftovers and a slow fetch: the plan started at once (after $planned_after s)" \
  sh -c '[ "$1" != none ] && [ "$1" -le 5 ]' - "$planned_after"
sql "DELETE FROM codes WHERE request_id LIKE 'lft%'"

# --- a stage killed by a signal the script did not send (the OOM killer): 75,
# the stage named (the raw 137 is in no exit table) ----------------------------------
# fill_killing TOOL: a nightly fill of big.tsv, every code planned again, whose
# TOOL gets SIGKILL once some code is done; sets rc and $T/this-run.log.
fill_killing() {
  sql "UPDATE codes SET state = 'planned' WHERE state <> 'planned'; DELETE FROM images"
  logged=$(wc -l <"$T/log/nightly-fill.log")
  TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/big.tsv" >"$T/out" 2>"$T/err" & script=$!
  i=0
  until [ "$(done_codes)" -gt 0 ] 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
  for pid in $(my_tool_pids "$1"); do kill -KILL "$pid"; done
  rc=0; wait $script || rc=$?
  tail -n +$((logged + 1)) "$T/log/nightly-fill.log" >"$T/this-run.log"
}
fill_killing fetch
is "fetch killed by SIGKILL: nightly-fill exits 75, not 137" "$rc" 75
like "... the log names the stage and the signal" "$(cat "$T/this-run.log")" \
  "qrpool-fetch was killed \(SIGKILL, exit 137: the OOM killer\?\): what it did is staged; a rerun finishes the rest"

# The last stage killed: the stages before it lose their reader and exit 74 (a
# closed stdout), which is that kill's echo, not a disk error: still 75.
fill_killing publish
is "publish killed by SIGKILL: nightly-fill exits 75, not its upstream stages' 74" "$rc" 75
like "... the stage before it lost its reader, and the log says what that 74 is" \
  "$(cat "$T/this-run.log")" "qrpool-(fetch|render) exited 74 after a signal ended qrpool-publish \(its output lost its reader\): not counted"
# Only the 74s right before the killed stage: one that ended on its own in
# between read all its input, so a 74 before it (a disk error) is real.
is "... but a 74 before a stage that ended well still counts" \
  "$(bash -c ". '$ROOT/scripts/job.sh'; JOB_NAME=t; job_stages 'plan fetch render publish' 74 0 0 137" 2>/dev/null)" 74
# The stage after a killed one may read the line it was writing, cut off, as a
# bad one (65): that is the kill's echo too, 75; a 65 elsewhere still counts.
stages() { bash -c ". '$ROOT/scripts/job.sh'; JOB_NAME=t; job_stages 'plan fetch render publish' $*" 2>"$T/stages.err"; }
is "a 65 right after a stage killed by SIGKILL: counted as 75" "$(stages 0 0 137 65)" 75
like "... and said" "$(cat "$T/stages.err")" \
  "publish exited 65 after a signal ended render \(the line it was writing, cut off, reads as a bad one\): counted as 75"
is "... a 65 of a stage after one that ended on its own still counts" "$(stages 0 137 0 65)" 65
is "... and so does the killed stage's own upstream 65 (plan's bad demand)" "$(stages 65 0 137 0)" 65

# A stage that crashes (here a stand-in render, SIGSEGV): 70, a bug a rerun
# meets again, not 75; named in the log.
mkdir -p "$T/crash-bin"
for tool in "$QRPOOL_BIN"/qrpool-*; do ln -sf "$tool" "$T/crash-bin/"; done
rm -f "$T/crash-bin/qrpool-render"
printf '#!/bin/sh\ncat >/dev/null\nkill -SEGV $$\n' >"$T/crash-bin/qrpool-render"
chmod +x "$T/crash-bin/qrpool-render"
{ printf 'link\t%s\t5\n' "$HOUR"; forecast_end "$HOUR"; } >"$T/link.tsv"
# Without the killed run's leftovers (fetched first, from the slow fake).
sql "DELETE FROM images WHERE code_id IN (SELECT id FROM codes WHERE state IN ('planned', 'fetched'));
     DELETE FROM codes WHERE state IN ('planned', 'fetched')"
logged=$(wc -l <"$T/log/nightly-fill.log")
rc=0; QRPOOL_BIN=$T/crash-bin TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/link.tsv" \
  >"$T/out" 2>"$T/err" || rc=$?
is "a stage that crashed (SIGSEGV): nightly-fill exits 70" "$rc" 70
like "... the log names it" "$(tail -n +$((logged + 1)) "$T/log/nightly-fill.log")" \
  "qrpool-render crashed \(SIGSEGV, exit 139\): a bug"

# A tool missing from the PATH (not installed, a crontab's PATH without it): the
# shell's 127 counts as 78, a setup to fix, and the log says what to check.
mkdir -p "$T/missing-bin"
for tool in "$QRPOOL_BIN"/qrpool-*; do ln -sf "$tool" "$T/missing-bin/"; done
rm -f "$T/missing-bin/qrpool-render"
logged=$(wc -l <"$T/log/nightly-fill.log")
rc=0; PATH=$(echo "$PATH" | tr ':' '\n' | grep -vxF "$QRPOOL_BIN" | paste -sd:) \
  QRPOOL_BIN=$T/missing-bin TMPDIR=$T nightly-fill -u "$deadline" -f "$HOUR" "$T/link.tsv" \
  >"$T/out" 2>"$T/err" || rc=$?
is "a tool not on the PATH: nightly-fill exits 78, not 127" "$rc" 78
like "... the log names the stage and what to check" "$(tail -n +$((logged + 1)) "$T/log/nightly-fill.log")" \
  "qrpool-render: exit 127, a tool not found: is qrpool installed, its directory on the PATH"
rm -f "$T/missing-bin/qrpool-report"
rc=0; PATH=$(echo "$PATH" | tr ':' '\n' | grep -vxF "$QRPOOL_BIN" | paste -sd:) \
  QRPOOL_BIN=$T/missing-bin TMPDIR=$T audit >"$T/out" 2>"$T/err" || rc=$?
is "... audit too: 78, not 127" "$rc" 78
like "... saying what to check" "$(cat "$T/err")" \
  "qrpool-report: exit 127, a tool not found: is qrpool installed, its directory on the PATH"
ln -sf "$QRPOOL_BIN/qrpool-report" "$T/missing-bin/"; rm -f "$T/missing-bin/qrpool-pending"
rc=0; PATH=$(echo "$PATH" | tr ':' '\n' | grep -vxF "$QRPOOL_BIN" | paste -sd:) \
  QRPOOL_BIN=$T/missing-bin TMPDIR=$T audit >"$T/out" 2>"$T/err" || rc=$?
# (the check's own verdict, if a pool is short, comes first: 78 or that; the
# check's line is in audit's log)
case $(grep -o 'QRPOOL [A-Z]*' "$T/err" | head -1) in
  "QRPOOL OK") verdict=0 ;; "QRPOOL WARNING") verdict=1 ;; "QRPOOL CRITICAL") verdict=2 ;;
  "QRPOOL UNKNOWN") verdict=3 ;; *) verdict=none ;;
esac
is "... audit without qrpool-pending: the check's verdict if not OK, else 78" "$rc" \
  "$(case $verdict in 0) echo 78 ;; *) echo "$verdict" ;; esac)"
like "... saying what to check" "$(cat "$T/err")" \
  "qrpool-pending: exit 127, a tool not found: is qrpool installed"
sql "DELETE FROM images WHERE code_id IN (SELECT id FROM codes WHERE state IN ('planned', 'fetched'));
     DELETE FROM codes WHERE state IN ('planned', 'fetched')"

# --- kill -9 of the whole run (a power loss, as far as the log can tell): no end
# line, so the next run says so as it starts ---------------------------------------
TMPDIR=$T setsid nightly-fill -u "$deadline" -f "$HOUR" "$T/big.tsv" >"$T/out" 2>"$T/err" & script=$!
i=0
until [ "$(done_codes)" -gt 0 ] 2>/dev/null || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -KILL -"$script"
wait $script 2>/dev/null || true
i=0
while [ "$(my_tools '(pending|plan|fetch|render|publish)')" -gt 0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
started=$(grep "nightly-fill: start (pid $script)" "$T/log/nightly-fill.log" | cut -d' ' -f1 | sed 's/+/\\+/')
sql "DELETE FROM images WHERE code_id IN (SELECT id FROM codes WHERE state IN ('planned', 'fetched'));
     DELETE FROM codes WHERE state IN ('planned', 'fetched')"
logged=$(wc -l <"$T/log/nightly-fill.log")
run nightly-fill -u "$deadline" -f "$HOUR" "$T/link.tsv"
is "the run after a kill -9: exit 0" "$rc" 0
said="nightly-fill: the run that started at $started \(pid $script\) has no end in $T/log/nightly-fill.log: it was ended with no chance to log \(kill -9"
like "... its log says the run before has no end, naming when it started" \
  "$(tail -n +$((logged + 1)) "$T/log/nightly-fill.log")" "$said"
like "... and so does its stderr, for cron's mail (nothing was mailed for that run)" "$(cat "$T/err")" "^$said"
is "... that line only" "$(wc -l <"$T/err")" 1
# A power loss can leave NUL bytes at the log's end: the start line is still found.
{ printf '2026-11-29T01:00:00+0000 nulprobe: start (pid 4242)\n'; head -c 4096 /dev/zero; } >"$T/nul.log"
rc=0; QRPOOL_LOG=$T/nul.log bash -c ". '$ROOT/scripts/job.sh'; job_start nulprobe; job_finish 0" \
  >"$T/out" 2>"$T/err" || rc=$?
like "a log ending in NUL bytes (a power loss): the run with no end still said" "$rc:$(cat "$T/err")" \
  "^0:nulprobe: the run that started at 2026-11-29T01:00:00\+0000 \(pid 4242\) has no end"
# A run of the job still going under another lock (QRPOOL_LOCK_DIR set for cron,
# dropped by sudo for a hand run), writing the same log: not joined.
mkdir "$T/lock-a" "$T/lock-b"
QRPOOL_LOCK_DIR=$T/lock-a QRPOOL_LOG=$T/twin.log \
  bash -c ". '$ROOT/scripts/job.sh'; job_start twinprobe; sleep 3; job_finish 0" 2>/dev/null & holder=$!
i=0
until grep -q "twinprobe: start" "$T/twin.log" 2>/dev/null || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
rc=0; QRPOOL_LOCK_DIR=$T/lock-b QRPOOL_LOG=$T/twin.log \
  bash -c ". '$ROOT/scripts/job.sh'; job_start twinprobe; job_finish 0" >"$T/out" 2>"$T/err" || rc=$?
like "a run of the same job going on under another lock: 75, not started beside it" \
  "$rc:$(cat "$T/err")" "^75:twinprobe: the run that started at .* \(pid $holder\) is still running, under another lock than $T/lock-b/qrpool-twinprobe.lock \(is QRPOOL_LOCK_DIR set"
wait $holder
is "... (that run ended well)" "$(grep -c 'twinprobe: end: exit 0' "$T/twin.log")" 1
# The same with the log rotated while that run goes on (it writes on into .1).
QRPOOL_LOCK_DIR=$T/lock-a QRPOOL_LOG=$T/twin.log \
  bash -c ". '$ROOT/scripts/job.sh'; job_start twinprobe; sleep 3; job_finish 0" 2>/dev/null & holder=$!
i=0
until [ "$(grep -c "twinprobe: start" "$T/twin.log" 2>/dev/null)" -eq 2 ] || [ $i -gt 100 ]; do
  sleep 0.05; i=$((i + 1)); done
mv "$T/twin.log" "$T/twin.log.1" && : >"$T/twin.log"
rc=0; QRPOOL_LOCK_DIR=$T/lock-b QRPOOL_LOG=$T/twin.log \
  bash -c ". '$ROOT/scripts/job.sh'; job_start twinprobe; job_finish 0" >"$T/out" 2>"$T/err" || rc=$?
like "... its log rotated meanwhile: still 75" "$rc:$(cat "$T/err")" \
  "^75:twinprobe: the run that started at .* \(pid $holder\) is still running"
wait $holder
# The log rotated between the killed run and the next (logrotate, weekly): the
# start with no end is found in the rotated log, which delaycompress keeps plain.
printf '2026-11-29T01:00:00+0000 rotprobe: start (pid 4343)\n' >"$T/rot.log.1"
: >"$T/rot.log"
rc=0; QRPOOL_LOG=$T/rot.log bash -c ". '$ROOT/scripts/job.sh'; job_start rotprobe; job_finish 0" \
  >"$T/out" 2>"$T/err" || rc=$?
like "a log rotated since the run with no end: still said, from the rotated log" "$rc:$(cat "$T/err")" \
  "^0:rotprobe: the run that started at 2026-11-29T01:00:00\+0000 \(pid 4343\) has no end in $T/rot.log.1"
rc=0; QRPOOL_LOG=$T/rot.log bash -c ". '$ROOT/scripts/job.sh'; job_start rotprobe; job_finish 0" \
  >"$T/out" 2>"$T/err" || rc=$?
is "... once: the run after, whose log has its run's end, says nothing" "$rc:$(cat "$T/err")" 0:
logged=$(wc -l <"$T/log/nightly-fill.log")
run nightly-fill -u "$deadline" -f "$HOUR" "$T/link.tsv"
is "... and the run after that, which follows a run that ended, says nothing of it" \
  "$(tail -n +$((logged + 1)) "$T/log/nightly-fill.log" | grep -c 'has no end')" 0
# The fills' lock taken (in a directory of this user's own when the lock
# directory cannot be used) is named to the stages, for publish's hints.
: >"$T/no-lock-dir"
rc=0; QRPOOL_LOCK_DIR=$T/no-lock-dir TMPDIR=$T bash -c ". '$ROOT/scripts/job.sh'; job_start fillprobe fill
  echo \"\$QRPOOL_FILL_LOCK\"; job_finish 0" >"$T/out" 2>"$T/err" || rc=$?
is "a fill's lock, where it had to be taken, is named to its stages" "$rc:$(cat "$T/out")" \
  "0:$T/qrpool-locks.$(id -u)/qrpool-fill.lock"
like "... and the fallback is warned of, as another user's run would take another lock" \
  "$(cat "$T/err")" "fillprobe: warning: $T/no-lock-dir is not a directory this user can write to \(is QRPOOL_LOCK_DIR right\?\): locking $T/qrpool-locks.$(id -u)/qrpool-fill.lock instead"
# A new log (and its directory) is the operators' to read, not everyone's, under
# cron's usual umask.
rc=0; (umask 022 && QRPOOL_LOG=$T/newlogs/probe.log bash -c \
  ". '$ROOT/scripts/job.sh'; job_start modeprobe; job_finish 0") >"$T/out" 2>"$T/err" || rc=$?
is "a new log under umask 022: mode 640, its directory 750" \
  "$rc:$(stat -c %a "$T/newlogs/probe.log"):$(stat -c %a "$T/newlogs")" 0:640:750

# --- a stage that cannot start (the staging DB locked past busy_timeout) still
# reads its input to its end: the stage before it, cut off, would exit 74 on
# its broken pipe, and a night that only has to run again would read as an
# I/O error (seen with more leftovers than a pipe holds) -----------------------
sed 's|busy_timeout = "5s"|busy_timeout = "100ms"|' "$QRPOOL_CONFIG" >"$T/locked.cfg"
rm -f "$T/locked"
{ echo "BEGIN EXCLUSIVE;"; echo ".print locked"; sleep 12; echo "ROLLBACK;"; } |
  sqlite3 "$T/staging.db" >"$T/locked" & locker=$!
wait_locked "$T/locked"
for tool in qrpool-fetch qrpool-render qrpool-publish; do
  rc=0
  { yes "$(printf 'AAAAAAAAAAAAAAAA\tposter')" | head -n 20000; echo $? >"$T/feeder.rc"; } |
    $tool -c "$T/locked.cfg" >/dev/null 2>"$T/err" || rc=$?
  is "$tool, the DB locked at its start: exit 75" "$rc" 75
  is "... the stage before it is not cut off (exit 0, no broken pipe)" "$(cat "$T/feeder.rc")" 0
  like "... the lines let go are said" "$(cat "$T/err")" "20000 lines of input read to its end and let go"
done
kill "$locker" 2>/dev/null || true; wait "$locker" 2>/dev/null || true

# --- likewise after a signal to that stage alone (an operator's kill PID, a
# supervisor): the stage before it used to die on its broken pipe, 74, and the
# night read as an I/O error where SIGKILL gave 75. Its stdout is let go first:
# the stage after it sees the end at once, not once the stage before ends ------
rm -f "$T/out.fifo"; mkfifo "$T/out.fifo"
for tool in qrpool-fetch qrpool-render qrpool-publish; do
  rc=0; rm -f "$T/feeder.rc" "$T/after.eof"
  { cat "$T/out.fifo" >/dev/null; touch "$T/after.eof"; } & after=$!
  { sleep 3; yes "$(printf 'AAAAAAAAAAAAAAAA\tposter')" | head -n 20000; echo $? >"$T/feeder.rc"; } |
    $tool >"$T/out.fifo" 2>"$T/err" & pid=$!
  wait_handles_term $pid; kill -TERM $pid
  for _ in $(seq 60); do [ -e "$T/after.eof" ] && break; sleep 0.05; done
  ok "$tool, SIGTERM to it alone: the stage after it sees its end at once" test -e "$T/after.eof"
  wait $pid || rc=$?
  wait $after || true
  for _ in $(seq 100); do [ -s "$T/feeder.rc" ] && break; sleep 0.05; done
  is "... exit 75" "$rc" 75
  is "... the stage before it is not cut off (exit 0, no broken pipe)" "$(cat "$T/feeder.rc")" 0
  like "... the lines let go are said" "$(cat "$T/err")" "20000 (more )?lines (of input )?read to (its|the) end"
done

# --- a lock file another user made (root running a job by hand) does not lock the
# qrpool user out: the lock is opened for reading ------------------------------------
lockdir=$T/locks
mkdir -p "$lockdir" "$T/nobody" && chmod 755 "$lockdir" && chmod 777 "$T/nobody" && chmod 755 "$T"
: >"$lockdir/qrpool-probe.lock" && chmod 644 "$lockdir/qrpool-probe.lock"
# nobody sources a copy: the checkout may be where nobody cannot go (under /root).
cp "$ROOT/scripts/job.sh" "$T/nobody/job.sh" && chmod 644 "$T/nobody/job.sh"
# (Last in the file: when they cannot run, as another user than root, only
# they are skipped, and counted.)
if ! runuser -u nobody -- test -r "$T/nobody/job.sh" 2>/dev/null; then
  if [ -n "${QRPOOL_NO_SKIP:-}" ] && [ "$(id -u)" -eq 0 ]; then
    ok "as root, user nobody can reach $T (TMPDIR: ${TMPDIR:-unset})" false
  else
    skip_tests 9 "the tests as another user: runuser -u nobody cannot run here (not root, or $T out of nobody's reach)"
  fi
  exit 0
fi
# as_nobody JOB: job_start JOB as user nobody (locks in $lockdir, its own TMPDIR),
# printing the lock it took; sets rc, $T/out and $T/err.
as_nobody() {
  rc=0
  runuser -u nobody -- env QRPOOL_LOCK_DIR="$lockdir" QRPOOL_LOG_DIR="$T/nobody" TMPDIR="$T/nobody" \
    bash -c ". '$T/nobody/job.sh'; job_start $1; echo \"\$JOB_LOCK\"; job_finish 0" \
    >"$T/out" 2>"$T/err" || rc=$?
}
as_nobody probe
is "a root-owned 0644 lock: another user still takes it" "$rc:$(cat "$T/out")" \
  "0:$lockdir/qrpool-probe.lock"
hold_flock "$lockdir/qrpool-probe.lock"
as_nobody probe
is "and while root's run holds it, the other user's run waits its turn: exit 75" "$rc" 75
touch "$T/release"
wait $holder
# Root's lock made under a strict umask (a `flock` run by hand) in a directory
# open to all, as /run/lock: the other user cannot open it, and is told what to do.
: >"$lockdir/qrpool-strict.lock" && chmod 600 "$lockdir/qrpool-strict.lock" && chmod 1777 "$lockdir"
as_nobody strict
chmod 755 "$lockdir"
is "a lock root made mode 600: exit 74" "$rc" 74
like "... saying whose it is and what to do" "$(cat "$T/err")" \
  "cannot open lock $lockdir/qrpool-strict.lock \(it is root's, mode 600\): make it readable by all \(chmod 644\) or remove it"

# The lock directory not writable and no lock in it: a directory of the user's own
# in TMPDIR, never a file in TMPDIR itself that anyone could make and hold.
chmod 555 "$lockdir"
as_nobody other
is "no writable lock directory: a private one in TMPDIR" "$rc:$(cat "$T/out")" \
  "0:$T/nobody/qrpool-locks.$(id -u nobody)/qrpool-other.lock"
is "... made for that user only" "$(stat -c '%a %U' "$T/nobody/qrpool-locks.$(id -u nobody)")" \
  "700 nobody"
rm -rf "$T/nobody/qrpool-locks.$(id -u nobody)"
mkdir -m 755 "$T/nobody/qrpool-locks.$(id -u nobody)"   # made by another user (root)
as_nobody other
is "... and one another user made there is refused: exit 74" "$rc" 74
like "... saying why" "$(cat "$T/err")" "not a directory of this user's"
chmod 755 "$lockdir"
rm -rf "$T/nobody/qrpool-locks.$(id -u nobody)"
# A log another user made (root running the job by hand), in a directory the
# user may write to: the file is what to fix, and said so.
: >"$T/nobody/rootlog.log" && chmod 644 "$T/nobody/rootlog.log"
as_nobody rootlog
like "a log file of root's: said, with what to do" "$(cat "$T/err")" \
  "rootlog: cannot write the log $T/nobody/rootlog.log \(Permission denied: it is root's, mode 644; chown nobody it\); logging to $T/nobody/qrpool-logs.$(id -u nobody)/rootlog.log"
