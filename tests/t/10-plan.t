#!/bin/sh
# qrpool-plan: the model, all-or-nothing input, capacity, output contract.
. "${0%/*}/lib.sh"
write_config
FROM=2026-11-29T10:00+08:00

demand() {  # demand POOL CODES... : consecutive hours from $FROM
  pool=$1; shift; hour=10
  for codes in "$@"; do
    printf '%s\t2026-11-29T%02d:00+08:00\t%s\n' "$pool" "$hour" "$codes"; hour=$((hour + 1))
  done
}

# --- help, usage, config errors -------------------------------------------
run qrpool-plan --help
is "--help exits 0" "$rc" 0
like "--help documents exit codes" "$(cat "$T/out")" "75 try again later"
run qrpool-plan --no-such-option
is "an unknown option exits 64" "$rc" 64
is "... said once, in the log's format, naming it" "$(cat "$T/err" | sed 's/^[0-9T:.+-]* //')" \
  "qrpool-plan error: unknown option '--no-such-option' (try --help)"
run qrpool-plan -c
is "a missing value: exit 64, naming the option" "$rc:$(sed 's/^[0-9T:.+-]* //' "$T/err")" \
  "64:qrpool-plan error: option '-c' needs a value (try --help)"
run qrpool-plan --dry-run -Zn
like "an unknown letter in a cluster: named" "$(cat "$T/err")" "unknown option '-Z'"
run qrpool-plan --dry-run=yes
like "a value to an option taking none: named" "$(cat "$T/err")" "option '--dry-run' is unknown, or takes no value"
run qrpool-plan --capacity 10 --window 01:00-06:00 /dev/null
is "--capacity with --window exits 64" "$rc" 64
run qrpool-plan --window 1:00-06:00 /dev/null
is "a bad --window exits 64" "$rc" 64
run qrpool-plan --window 22:00-22:00 /dev/null
is "a --window starting and ending at the same time (none, or a day?) exits 64" "$rc" 64
like "... saying so" "$(cat "$T/err")" "--window: '22:00-22:00' starts and ends at the same time"
run qrpool-plan --reserve 1000 /dev/null
is "--reserve without --window (it would change nothing) exits 64" "$rc" 64
like "... saying so" "$(cat "$T/err")" "--reserve is the reserve of --window's capacity: give --window too"
printf 'poster\t2026-11-29T10:00Z\t5\n' >"$T/twice.tsv"
ln -s "$T/twice.tsv" "$T/twice-link.tsv"
run qrpool-plan -n "$T/twice.tsv" "$T/twice-link.tsv"
is "a demand file given twice (by two names): exit 64, nothing planned" "$rc:$(wc -c <"$T/out")" 64:0
like "... saying so" "$(cat "$T/err")" "$T/twice.tsv and $T/twice-link.tsv are the same file: give each demand file once"
mkdir "$T/demand.d"
run qrpool-plan -n "$T/twice.tsv" "$T/demand.d"
is "a directory given as a demand file: exit 64, nothing planned" "$rc:$(wc -c <"$T/out")" 64:0
like "... saying so" "$(cat "$T/err")" "$T/demand.d is a directory, not a demand file"

cp "$QRPOOL_CONFIG" "$T/good.cfg"
sed 's/secret_file = .*/secret = "inline-secret";/' "$T/good.cfg" >"$QRPOOL_CONFIG"
chmod 644 "$QRPOOL_CONFIG"
run qrpool-plan -n /dev/null
is "an inline secret in a world-readable config exits 78" "$rc" 78
like "and says why, naming file and line" "$(cat "$T/err")" "qrpool.cfg:[0-9]+: config file .* is accessible by group or others"
sed 's|^wechat = {|wechat = { api_base = "https://gw:gateway-pass@gw.example.com";|' "$T/good.cfg" >"$QRPOOL_CONFIG"
chmod 644 "$QRPOOL_CONFIG"
run qrpool-plan -n /dev/null
is "a gateway's user:password@ in api_base, in a world-readable config: exit 78" "$rc" 78
like "... saying why, not showing it" "$(cat "$T/err"):$(grep -c gateway-pass "$T/err")" \
  "qrpool.cfg:[0-9]+: config file .* is accessible by group or others.*:0$"
chmod 600 "$QRPOOL_CONFIG"
run qrpool-plan --dump-config
is "... mode 600: fine (the dump masks it)" "$rc:$(grep -c gateway-pass "$T/out")" 0:0
cp "$T/good.cfg" "$QRPOOL_CONFIG"; chmod 600 "$QRPOOL_CONFIG"
run qrpool-plan --dump-config
like "--dump-config shows the merged config" "$(cat "$T/out")" 'reserve_per_minute = 500;'
# A link pool whose URLs cannot fit a QR code: refused before a code is minted
# (render would refuse them every night, leaving them planned).
long=https://m.example.com/$(printf '%2400s' '' | tr ' ' a)/
sed "s|url_prefix = \"https://m.example.com/q/\";|url_prefix = \"$long\";|" "$T/good.cfg" >"$T/long.cfg"
chmod 600 "$T/long.cfg"
demand link 5 >"$T/link.tsv"
run qrpool-plan -c "$T/long.cfg" --from $FROM "$T/link.tsv"
is "a url_prefix too long for a QR code: exit 78, nothing printed" "$rc:$(wc -l <"$T/out")" 78:0
like "... naming file:line, the pool and what fits" "$(cat "$T/err")" \
  "long.cfg:[0-9]+: pool 'link': url_prefix \(2423 characters\).*does not fit even QR version 40 at ec_level M.*L 2937, M 2315"
is "... before the staging DB is even made" "$(ls "$T"/staging.db* 2>/dev/null | wc -l)" 0
run qrpool-plan -c "$T/long.cfg" -n --from $FROM "$T/link.tsv"
is "... a dry run says so too: 78" "$rc" 78
# A staging DB in a directory that does not exist (a fresh host, a typo).
sed "s|path = \"$T/staging.db\"|path = \"$T/no-such-dir/staging.db\"|" "$T/good.cfg" >"$T/nodir.cfg"
chmod 600 "$T/nodir.cfg"
run qrpool-plan -c "$T/nodir.cfg" --from $FROM "$T/link.tsv"
is "the DB's directory missing: exit 74" "$rc" 74
like "... naming it, and what to do" "$(cat "$T/err")" \
  "unable to open database file \(directory $T/no-such-dir does not exist: make it, for the user that runs qrpool, mode 700\)"
# Under a file (a DB's path with a name added after it): said as such, not
# as a directory to make or to chmod.
for under in "$T/good.cfg/staging.db" "$T/good.cfg/sub/staging.db"; do
  sed "s|path = \"$T/staging.db\"|path = \"$under\"|" "$T/good.cfg" >"$T/underfile.cfg"
  chmod 600 "$T/underfile.cfg"
  run qrpool-plan -c "$T/underfile.cfg" --from $FROM "$T/link.tsv"
  like "database.path $under: exit 74, the file named" "$rc:$(cat "$T/err")" \
    "^74:.*unable to open database file \($T/good.cfg is not a directory: database.path names a file under it\)"
done
# database.path naming a directory (the file's name left out): a config error.
sed "s|path = \"$T/staging.db\"|path = \"$T\"|" "$T/good.cfg" >"$T/dir.cfg"
chmod 600 "$T/dir.cfg"
run qrpool-plan -c "$T/dir.cfg" --from $FROM "$T/link.tsv"
is "database.path a directory: exit 78, nothing printed" "$rc:$(wc -l <"$T/out")" 78:0
like "... saying so, and what to name" "$(cat "$T/err")" \
  "$T: database.path names a directory, not the staging DB's file \(say $T/staging.db\)"

# --- the model ----------------------------------------------------------------
{ demand poster 100 100 100; demand link 50 50; forecast_end $FROM; } >"$T/d.tsv"
run qrpool-plan -n --from $FROM "$T/d.tsv"
is "dry run exits 0" "$rc" 0
like "dry run: poster demand 300, target 360" "$(grep '^poster' "$T/out")" '^poster +wechat +300 +0 +0 +360 +360 +360 '
like "dry run: link target 110" "$(grep '^link' "$T/out")" '^link +link +100 +0 +0 +110 +110 +110 '
is "dry run writes no code" "$(sql 'SELECT count(*) FROM codes')" 0

run qrpool-plan --from $FROM "$T/d.tsv"
is "plan exits 0" "$rc" 0
is "one line per code" "$(wc -l <"$T/out")" 470
is "as many planned codes staged" "$(sql "SELECT count(*) FROM codes WHERE state = 'planned'")" 470
is "the lines name the staged ids" "$(cut -f1 "$T/out" | sort | md5sum)" "$(sql 'SELECT request_id FROM codes' | sort | md5sum)"
is "lines are request_id TAB pool" "$(grep -cvE '^[0-9A-Za-z]{16}	(poster|link)$' "$T/out")" 0
is "poster got 360" "$(grep -c '	poster$' "$T/out")" 360
is "the plan records its pools" "$(sql "SELECT need || '/' || granted FROM plan_pools WHERE pool = 'poster'")" 360/360
is "the plan records its demand rows" "$(sql 'SELECT count(*) FROM plan_demand')" 6
is "the run is recorded" "$(sql "SELECT items_out || ':' || exit_status FROM runs WHERE stage = 'plan'")" 470:0
# No Kafka in these tests: the planner says it fell back to the DB estimate, and
# that card, a pool no plan had demand for, has no row; nothing else.
like "a pool with no row (none in any plan before): a warning" "$(cat "$T/err")" \
  "qrpool-plan warning: pool card: the forecast has no row for it: planned as no demand$"
is "a successful run says nothing else on stderr" \
  "$(grep -v -e 'pool depth estimated from the staging DB' -e 'pool card: the forecast has no row' "$T/err")" ""
# An export that leaves out a pool the last plan had demand for (a failed query
# for one pool): planned as no demand, but said, 75, the other pools planned.
{ demand poster 100 100 100; forecast_end $FROM; } >"$T/no-link.tsv"
run qrpool-plan -n --from $FROM "$T/no-link.tsv"
is "a pool the last plan had demand for and this forecast has no row for: a dry run exits 75" "$rc" 75
like "... naming it and the last plan's forecast" "$(cat "$T/err")" \
  "qrpool-plan error: pool link: the forecast has no row for it, though the last plan forecast 100 codes: planned as no demand \\(did the export leave the pool out\\? a pool with no demand is given rows of 0\\); exit 75$"
is "... card, which had none, only warned of" "$(grep -c 'error: pool card' "$T/err"):$(grep -c 'warning: pool card: the forecast has no row' "$T/err")" 0:1
for night in first second; do
  run qrpool-plan --from $FROM "$T/no-link.tsv"
  is "... a plan made so, the $night night: 75, said" \
    "$rc:$(grep -c 'pool link: the forecast has no row for it, though the last plan forecast 100 codes' "$T/err")" 75:1
done
{ demand link 0; cat "$T/no-link.tsv"; } >"$T/link-0.tsv"
run qrpool-plan -n --from $FROM "$T/link-0.tsv"
is "... a row of 0 for it: no demand, unsaid, exit 0" "$rc:$(grep -c 'pool link' "$T/err")" 0:0

run qrpool-plan --from $FROM "$T/d.tsv"
is "a second plan in a row adds nothing" "$(wc -l <"$T/out")" 0
is "in-flight codes are not counted twice" "$(sql 'SELECT count(*) FROM codes')" 470

sql "UPDATE codes SET state = 'published' WHERE pool = 'poster' AND id IN (SELECT id FROM codes WHERE pool = 'poster' LIMIT 60)"
run qrpool-plan -n --from $FROM "$T/d.tsv"
like "published codes count as depth, the rest as in flight" "$(grep '^poster' "$T/out")" '^poster +wechat +300 +60 +300 +360 +0 +0 '

# --- a forecast that ends before a pool's cover does ----------------------------
# The hours past its end are not known (an hour missing inside it may be a zero
# the export left out): the plan is made of what is known, and said short, 75.
rm -f "$T/staging.db"*
demand poster 100 100 100 >"$T/short.tsv"
run qrpool-plan -n --from $FROM "$T/short.tsv"
is "a forecast ending before the cover does: a dry run exits 75" "$rc" 75
like "... naming the pool, where the forecast ends, the hours past it" "$(cat "$T/err")" \
  "pool poster: the forecast ends at 2026-11-29T05:00Z, 21.0 of the pool's 24 hours of cover are past it and count as no demand, so the plan may fall short \(export a forecast that reaches as far, or lower cover_hours\); exit 75"
like "... each pool short of it" "$(cat "$T/err")" "pool card: the forecast ends at 2026-11-29T05:00Z, 9.0 of the pool's 12 hours"
like "... link pools too" "$(cat "$T/err")" "pool link: the forecast ends at 2026-11-29T05:00Z, 21.0 of"
run qrpool-plan --from $FROM "$T/short.tsv"
is "... the plan is made all the same, of the hours known, and exits 75" "$rc:$(wc -l <"$T/out")" 75:360
is "... recorded as such" "$(sql "SELECT exit_status FROM runs WHERE stage = 'plan'")" 75
# With several files, the first one's end counts: a campaign's row days later
# (backfill: -d REGULAR.tsv first) does not hide a regular forecast ending short.
printf 'card\t2026-11-29T12:00+08:00\t50\ncard\t2026-12-02T10:00+08:00\t50\n' >"$T/late-campaign.tsv"
run qrpool-plan -n --sum --from $FROM "$T/short.tsv" "$T/late-campaign.tsv"
is "a campaign reaching further than the regular forecast: still 75" "$rc" 75
like "... the regular forecast's end said" "$(cat "$T/err")" "pool poster: the forecast ends at 2026-11-29T05:00Z, 21.0 of"
rm -f "$T/staging.db"*
{ demand poster 100; printf 'card\t2026-11-30T09:00+08:00\t0\n'; } >"$T/gap.tsv"
run qrpool-plan -n --from $FROM "$T/gap.tsv"
is "hours missing inside the forecast (its end a row of another pool): exit 0, unsaid" \
  "$rc:$(grep -c 'the forecast ends' "$T/err")" 0:0
run qrpool-plan -n --from 2026-11-29T10:10+08:00 "$T/gap.tsv"
is "... a run 10 minutes late: its cover 10 minutes past the forecast, unsaid" \
  "$rc:$(grep -c 'the forecast ends' "$T/err")" 0:0
run qrpool-plan -n --from 2026-11-29T10:11+08:00 "$T/gap.tsv"
is "... 11 minutes: exit 75" "$rc" 75
like "... said" "$(cat "$T/err")" "pool poster: the forecast ends at 2026-11-30T02:00Z, 0.2 of the pool's 24 hours"

# --- a forecast that starts after --from (an export refreshed after noon starts
# tomorrow: an afternoon backfill with it): the hours before it are not known ----
rm -f "$T/staging.db"*
{ demand poster 100 100 100; forecast_end $FROM; forecast_end $FROM card; forecast_end $FROM link; } >"$T/day.tsv"
run qrpool-plan -n --from 2026-11-29T07:00+08:00 "$T/day.tsv"
is "a forecast starting 3 hours after --from: a dry run exits 75" "$rc" 75
like "... naming the pool, where the forecast starts, the hours before it, and --from" "$(cat "$T/err")" \
  "pool poster: the forecast starts at 2026-11-29T02:00Z, 3.0 of the pool's 24 hours of cover from 2026-11-28T23:00Z are before it and count as no demand, so the plan may fall short \\(export a forecast that starts by then, or plan from its start: --from 2026-11-29T02:00Z\\); exit 75"
like "... each pool" "$(cat "$T/err")" "pool card: the forecast starts at 2026-11-29T02:00Z, 3.0 of the pool's 12 hours"
run qrpool-plan -n --from 2026-11-28T22:00+08:00 "$T/day.tsv"
like "... a pool whose whole cover is before it: every hour said" "$(cat "$T/err")" \
  "pool card: the forecast starts at 2026-11-29T02:00Z, 12.0 of the pool's 12 hours"
run qrpool-plan --from 2026-11-29T07:00+08:00 "$T/day.tsv"
is "... the plan is made all the same, of the hours known, and exits 75" "$rc:$(wc -l <"$T/out")" 75:360
# A forecast of the coming hours starts at the first whole one from --from: the
# rest of --from's hour before it is not said; a whole hour is.
run qrpool-plan -n --from 2026-11-29T09:01+08:00 "$T/day.tsv"
is "... starting at the next whole hour from --from: exit 0, unsaid" "$rc:$(grep -c 'the forecast starts' "$T/err")" 0:0
run qrpool-plan -n --from 2026-11-29T09:00+08:00 "$T/day.tsv"
is "... a whole hour after --from: exit 75, for each pool" "$rc:$(grep -c 'the forecast starts' "$T/err")" 75:3
like "... the hour said, and the --from that would plan from the forecast's start" "$(cat "$T/err")" \
  "pool poster: the forecast starts at 2026-11-29T02:00Z, 1.0 of the pool's 24 hours of cover from 2026-11-29T01:00Z are before it .*or plan from its start: --from 2026-11-29T02:00Z\\); exit 75"
# ... whole hours in the forecast's own offset: in +05:30 they are half past the
# hour in UTC (09:01+05:30 is 03:31Z; the next whole hour, 10:00+05:30, is 04:30Z).
{ sed -n 's/+08:00/+05:30/p' "$T/day.tsv"
  for pool in poster card link; do printf '%s\t2026-11-30T10:00+05:30\t0\n' $pool; done; } >"$T/day-ist.tsv"
run qrpool-plan -n --from 2026-11-29T09:01+05:30 "$T/day-ist.tsv"
is "... a forecast in +05:30 starting at the next whole hour from --from: exit 0, unsaid" \
  "$rc:$(grep -c 'the forecast starts' "$T/err")" 0:0
run qrpool-plan -n --from 2026-11-29T09:00+05:30 "$T/day-ist.tsv"
is "... a whole hour after --from: exit 75, for each pool" "$rc:$(grep -c 'the forecast starts' "$T/err")" 75:3
like "... the hour said" "$(cat "$T/err")" \
  "pool poster: the forecast starts at 2026-11-29T04:30Z, 1.0 of the pool's 24 hours of cover from 2026-11-29T03:30Z are before it"
# With several files, the first one's start counts, as its end does: a campaign's
# rows from --from on do not hide a regular forecast starting late.
printf 'card\t2026-11-29T07:00+08:00\t50\n' >"$T/early-campaign.tsv"
run qrpool-plan -n --sum --from 2026-11-29T07:00+08:00 "$T/day.tsv" "$T/early-campaign.tsv"
is "a campaign starting earlier than the regular forecast: still 75" "$rc" 75
like "... the regular forecast's start said" "$(cat "$T/err")" "pool poster: the forecast starts at 2026-11-29T02:00Z, 3.0 of"

run qrpool-plan -n - - <"$T/day.tsv"
is "'-' given twice (the second would read nothing): exit 64, said" \
  "$rc:$(grep -c "'-' (stdin) is given twice" "$T/err")" 64:1

# --- capacity, --max (on a fresh DB) ---------------------------------------------
rm -f "$T/staging.db"*
demand card 400 400 >"$T/card.tsv"
{ demand poster 1000; forecast_end $FROM; forecast_end $FROM link; } >>"$T/card.tsv"
run qrpool-plan -n --from $FROM --capacity 500 "$T/card.tsv"
# Both pools have no stock: the capacity lifts both to the same hours of cover
# (card's 800 over 12 hours, poster's 1000 over 24: 4.6 hours each), rather
# than the first taking it all.
like "capacity short: shared, card granted 308 (4.6 hours of its forecast)" "$(grep '^card' "$T/out")" '^card +wechat +800 +0 +0 +800 +800 +308 +0\.0$'
like "... and poster 192 (4.6 hours too)" "$(grep '^poster' "$T/out")" '^poster +wechat +1000 +0 +0 +1200 +1200 +192 +0\.0$'
is "a dry run short of capacity exits 75, as the plan would" "$rc" 75
like "... naming the pool short" "$(cat "$T/err")" "pool card: needs 800, planned 308, short by 492 \(capacity"
run qrpool-plan --from $FROM --capacity 500 "$T/card.tsv"
is "a capacity shortfall exits 75" "$rc" 75
like "and names the pool short" "$(cat "$T/err")" "pool card: needs 800, planned 308, short by 492 \(capacity, after the codes still planned\)"
is "the capacity granted is planned" "$(wc -l <"$T/out")" 500
run qrpool-plan -n --from $FROM --capacity 300 "$T/card.tsv"
is "a window that cannot fetch even the codes still planned: 75" "$rc" 75
like "... saying so: they count as stock, but not all of them will be fetched" "$(cat "$T/err")" \
  "500 codes planned earlier and not fetched yet are more than this window can fetch \(capacity 300\): 200 of them will not be fetched tonight"
run qrpool-plan -q --from $FROM --capacity 500 "$T/card.tsv"
is "-q: a shortfall still exits 75" "$rc" 75
like "... and is not silent: the last warning -q hid is shown at the exit" "$(cat "$T/err")" \
  "pool card: needs 492, planned 0, short by 492 \(capacity, after the codes still planned\) \(the last of [0-9]+ warnings -q hid\)$"
run qrpool-plan -q --from $FROM --max 0 "$T/card.tsv"
is "-q and a success: nothing on stderr, though warnings were hidden" "$rc:$(cat "$T/err")" "0:"
demand poster 10000 >"$T/big.tsv"
run qrpool-plan -n --from $FROM --window 23:59-00:00 "$T/big.tsv"
like "--window: 1 minute x (5000 - 500), less the 500 codes still planned" "$(grep '^poster' "$T/out")" ' 12000 +11808 +4000 +[0-9.-]+$'
run qrpool-plan --from $FROM --max 7 "$T/card.tsv"
is "--max caps the plan and is not a failure" "$rc:$(wc -l <"$T/out")" 0:7
sed "s|$T/staging.db|$T/max.db|" "$QRPOOL_CONFIG" >"$T/max.cfg"
run qrpool-plan -c "$T/max.cfg" --from $FROM --capacity 100000 --max 7 "$T/card.tsv"
like "--max under an ample capacity: the cut is put on --max" "$(cat "$T/err")" \
  "pool card: needs 800, planned 4, short by 796 \(--max\)"
like "... shared as the capacity is: poster 3" "$(cat "$T/err")" \
  "pool poster: needs 1200, planned 3, short by 1197 \(--max\)"
sed "s|$T/staging.db|$T/max2.db|" "$QRPOOL_CONFIG" >"$T/max2.cfg"
run qrpool-plan -n -c "$T/max2.cfg" --from $FROM --capacity 500 --max 1000 "$T/card.tsv"
like "--max and the capacity both short: each cut's share said" "$(cat "$T/err")" \
  "pool card: needs 800, planned 308, short by 492 \(--max 185, capacity 307, after the codes still planned\)"

# --- inputs ---------------------------------------------------------------------
printf 'pool\thour\tcodes\n# forecast\n\n' >"$T/header.tsv"
{ demand card 1; forecast_end $FROM; } >>"$T/header.tsv"
run qrpool-plan -n --from $FROM "$T/header.tsv"
is "comments, blank lines and a first-line header are accepted" "$rc" 0
# An export that produced nothing (or only its header) is no quiet night.
: >"$T/empty.tsv"
printf 'pool\thour\tcodes\n# forecast\n\n' >"$T/header-only.tsv"
for file in empty header-only; do
  run qrpool-plan --from $FROM "$T/$file.tsv"
  is "a forecast with no rows ($file): exit 65, nothing planned" "$rc:$(wc -l <"$T/out")" 65:0
  like "... saying so, naming it" "$(cat "$T/err")" "$file.tsv: the forecast has no demand rows \\(did the export run\\?\\): nothing planned"
done
printf 'card\t2026-11-29T10:00+08:00\t1\n' >"$T/a.tsv"
cp "$T/a.tsv" "$T/b.tsv"
run qrpool-plan -n "$T/a.tsv" "$T/b.tsv"
is "the same pool and hour in two files exits 65" "$rc" 65
like "naming both places" "$(cat "$T/err")" "b.tsv:1: pool 'card' hour .* already given at .*a.tsv:1"
# With several forecasts each must count (backfill's regular one and a campaign's):
# one stale or empty is refused, naming it, though the other's rows would plan.
printf 'card\t2020-01-01T10:00Z\t3\n' >"$T/stale.tsv"
: >"$T/empty.tsv"
demand card 3 >"$T/fresh.tsv"
run qrpool-plan -n --sum --from $FROM "$T/stale.tsv" "$T/fresh.tsv"
is "several forecasts, one stale: exit 65" "$rc" 65
like "... naming it" "$(cat "$T/err")" "stale.tsv: none of its 1 demand rows falls in the hours the pools cover from .*is it stale"
run qrpool-plan -n --sum --from $FROM "$T/fresh.tsv" "$T/empty.tsv"
is "several forecasts, one empty: exit 65" "$rc:$(grep -c 'empty.tsv: no demand rows' "$T/err")" 65:1
# --sum adds such rows, whatever the notation of the hour and the line ends
# (b.tsv saved on Windows: CRLF, and a byte-order mark).
{ printf '\357\273\277card\t2026-11-29T10:00+08:00\t3\r\n'; forecast_end $FROM; } >"$T/b.tsv"
{ printf '# extra\ncard\t2026-11-29T02:00Z\t4\ncard\t2026-11-29T02:00:00+00:00\t5\n'; forecast_end $FROM; } >"$T/c.tsv"
run qrpool-plan --sum --from $FROM "$T/b.tsv" "$T/c.tsv"
is "--sum: rows of the same pool and hour in any notation are added" "$rc:$(sql "SELECT codes FROM \
  plan_demand WHERE plan_id = (SELECT max(id) FROM plans) AND pool = 'card'")" 0:12
printf 'card\t2026-11-29T10:00+08:00\t1000000000\n' >"$T/big.tsv"
run qrpool-plan --sum -n "$T/big.tsv" "$T/b.tsv"
is "--sum: a sum over the per-hour limit exits 65" "$rc" 65
like "naming the row and the one it adds to" "$(cat "$T/err")" \
  "b.tsv:1: pool 'card' hour .*: the sum with .*big.tsv:1 and the rows before it is over 1000000000"
# A forecast off by orders of magnitude: refused before minting (it had run
# out of memory, exit 70, and recorded the run as if it had planned them all).
{ printf 'card\t2026-11-29T10:00+08:00\t1000000000\n'; forecast_end $FROM; } >"$T/huge.tsv"
codes_before=$(sql "SELECT count(*) FROM codes")
run qrpool-plan -v --from $FROM "$T/huge.tsv"
is "a plan of 10^9 codes exits 65" "$rc" 65
like "... saying how many and what to do" "$(cat "$T/err")" \
  "the plan would mint [0-9]{9,} codes, more than the 50000000 one run may .*--max N"
is "... minting and printing none" "$(sql "SELECT count(*) FROM codes"):$(wc -l <"$T/out")" "$codes_before:0"
is "... and the run records 0 out" \
  "$(sql "SELECT items_out || ':' || exit_status FROM runs WHERE stage = 'plan' ORDER BY id DESC LIMIT 1")" 0:65
ok "... with no 'planned' line" -- sh -c "! grep -q 'planned [0-9]* codes' '$T/err'"
run qrpool-plan --dry-run --from $FROM "$T/huge.tsv"
is "--dry-run exits 65 too" "$rc" 65
run qrpool-plan --max 5 --from $FROM "$T/huge.tsv"
is "--max brings it within reach" "$rc:$(wc -l <"$T/out")" 0:5
run qrpool-plan -n "$T/missing.tsv"
is "a missing file exits 74" "$rc" 74
{ demand card 1; head -c 70000 /dev/zero | tr '\0' x; echo; } >"$T/long.tsv"
run qrpool-plan -n "$T/long.tsv"
is "a 70,000-byte line exits 65" "$rc" 65
like "... naming it" "$(cat "$T/err")" "long.tsv:2: longer than 65536 bytes"

# --- data-driven bad input: all or nothing ---------------------------------------
before=$(sql 'SELECT count(*) FROM codes')
awk -v RS= '{ print }' "$TESTS_DIR/t/plan-bad-demand.cases" | grep -v '^#' >/dev/null
n=0
while IFS= read -r description; do
  case "$description" in ''|'#'*) continue ;; esac
  IFS= read -r expect_rc; IFS= read -r expect_message; IFS= read -r input
  n=$((n + 1))
  rc=0; printf '%b' "$input" | qrpool-plan --from $FROM >"$T/out" 2>"$T/err" || rc=$?
  is "case $n ($description): exit $expect_rc" "$rc" "$expect_rc"
  like "case $n ($description): message" "$(cat "$T/err")" "$expect_message"
  is "case $n ($description): nothing printed" "$(wc -c <"$T/out")" 0
done <"$TESTS_DIR/t/plan-bad-demand.cases"
is "no case wrote a code" "$(sql 'SELECT count(*) FROM codes')" "$before"
ok "the cases file was read" -- test "$n" -ge 10

# --- output errors ---------------------------------------------------------------------
{ demand link 3; forecast_end $FROM; } >"$T/l.tsv"
rm -f "$T/staging.db"*
rc=0; qrpool-plan --from $FROM "$T/l.tsv" >/dev/full 2>"$T/err" || rc=$?
is "a full stdout exits 74" "$rc" 74
is "the codes stay staged for qrpool-pending" "$(qrpool-pending --state planned | wc -l)" 4
like "... and plan says so, and where they are listed" "$(cat "$T/err")" \
  "warning: the 4 codes planned are staged all the same, not all of them printed: qrpool-pending --state planned lists them"
# A reader that goes away after one line (stdout a pipe: EPIPE, SIGPIPE not fatal):
# ~440 KB of items, far more than head's one read and the pipe's 64 KiB hold.
{ demand link 20000; forecast_end $FROM; } >"$T/l.tsv"
{ rc=0; qrpool-plan --from $FROM "$T/l.tsv" 2>"$T/err" || rc=$?; echo $rc >"$T/rc"; } | head -1 >/dev/null
is "stdout's reader gone: exit 74" "$(cat "$T/rc")" 74
like "... saying so" "$(cat "$T/err")" "error: writing to stdout: Broken pipe"
like "... and that the codes are staged" "$(cat "$T/err")" "the [0-9]+ codes planned are staged all the same"

# Kafka configured but unreachable: the depth is estimated from what the last
# qrpool-report measured plus what was published since (not every code ever
# published, which planned nothing after a busy week), and the plan exits 75
# so that cron's mail tells someone.
rm -f "$T/staging.db"*
KAFKA_BROKERS=127.0.0.1:9 write_config
(umask 077; : >"$T/staging.db")
qrpool-pending --count >/dev/null   # creates the schema (in a file made on purpose)
sql "INSERT INTO codes (request_id, pool, state, created_at, updated_at, published_at)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
     SELECT printf('OldPublished%04d', i), 'poster', 'published', 1000, 1000, 1000 FROM n;
     INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost) VALUES ('poster', 2000, 500, 5, 0);
     INSERT INTO codes (request_id, pool, state, created_at, updated_at, published_at)
     VALUES ('NewPublished0001', 'poster', 'published', 3000, 3000, 3000),
            ('NewPublished0002', 'poster', 'published', 3000, 3000, 3000),
            ('CardPublished001', 'card', 'published', 3000, 3000, 3000),
            ('CardPublished002', 'card', 'published', 3000, 3000, 3000),
            ('CardPublished003', 'card', 'published', 3000, 3000, 3000);"
{ printf 'poster\t2026-11-29T10:00Z\t100\n'; forecast_end 2026-11-29T10:00Z; } >"$T/d.tsv"
run qrpool-plan --dry-run --from 2026-11-29T10:00Z "$T/d.tsv"
like "Kafka unreachable: depth = last measured 5 + 2 published since" "$(grep '^poster' "$T/out")" \
  '^poster +wechat +[0-9]+ +7 '
like "... and a pool never measured: every code it published (3)" "$(grep '^card' "$T/out")" \
  '^card +wechat +[0-9]+ +3 '
is "... a dry run exits 75, as the plan would" "$rc" 75
like "... saying why" "$(cat "$T/err")" "would plan from an estimated pool depth"
# A snapshot that knows its floor (the smallest id then in flight: schema 008)
# is counted from there on, a range of the state index: a code below the
# floor (none can be published after the snapshot; this one is made so by
# hand) is not read, let alone counted.
sql "INSERT INTO codes (request_id, pool, state, created_at, updated_at, published_at)
     VALUES ('FetchedBefore001', 'poster', 'published', 3500, 5000, 5000);
     INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost, floor_id)
     SELECT 'poster', 4000, 600, 9, 0, id FROM codes WHERE request_id = 'FetchedBefore001';
     INSERT INTO codes (request_id, pool, state, created_at, updated_at, published_at)
     VALUES ('PublishedLate001', 'poster', 'published', 4500, 5000, 5000);
     UPDATE codes SET published_at = 5000 WHERE request_id = 'OldPublished0001'"
run qrpool-plan -vv --dry-run --from 2026-11-29T10:00Z "$T/d.tsv"
like "a snapshot with its floor: depth = 9 + the 2 published since, from the floor on" \
  "$(grep '^poster' "$T/out")" '^poster +wechat +[0-9]+ +11 '
like "... the count a range of the state index from the floor" "$(cat "$T/err")" \
  "the depth estimated from the last snapshot: query plan: SEARCH c USING INDEX codes_by_state \(state=\? AND pool=\? AND rowid>\?\)"
# A newer snapshot of another group (the pool moved to this one since): that
# group's depth is not this one's; this group's last one is taken.
sql "INSERT INTO depth_snapshots (pool, taken_at, end_offsets, depth, lost, floor_id, source)
     VALUES ('poster', 4600, 900, 50, 0, NULL, 'qrpool.poster another-group')"
run qrpool-plan --dry-run --from 2026-11-29T10:00Z "$T/d.tsv"
like "... a newer snapshot of another group: not taken" "$(grep '^poster' "$T/out")" '^poster +wechat +[0-9]+ +11 '
sql "DELETE FROM depth_snapshots WHERE taken_at IN (4000, 4600);
     DELETE FROM codes WHERE request_id IN ('FetchedBefore001', 'PublishedLate001');
     UPDATE codes SET published_at = 1000 WHERE request_id = 'OldPublished0001'"
run qrpool-plan --from 2026-11-29T10:00Z "$T/d.tsv"
is "Kafka unreachable: the plan is made, and exits 75" "$rc" 75
ok "Kafka unreachable: codes planned ($(wc -l <"$T/out"))" [ "$(wc -l <"$T/out")" -gt 0 ]
like "Kafka unreachable: says why" "$(cat "$T/err")" "planned from an estimated pool depth"

# --reserve: the window's capacity leaves that many calls a minute (as fetch --reserve).
rm -f "$T/staging.db"*
write_config
{ printf 'poster\t2026-11-29T10:00Z\t100000\n'; forecast_end 2026-11-29T10:00Z; } >"$T/d.tsv"
run qrpool-plan --from 2026-11-29T10:00Z --window 01:00-02:00 --reserve 4000 "$T/d.tsv"
is "--reserve 4000 of 5000: capacity 60 minutes x 1000" "$(sql 'SELECT capacity FROM plans')" 60000
# A window is counted in real minutes: 01:00-06:00 in New York on the nights
# its clocks spring forward and fall back is 240 and 360 (the plan's clock
# set to 01:00 of that night by clockstep.so).
for night in 1805004000:240 1825563600:360; do
  at_clock "${night%:*}" America/New_York qrpool-plan --from 2026-11-29T10:00Z --window 01:00-06:00 \
    "$T/d.tsv" >/dev/null 2>"$T/err" || true
  is "--window 01:00-06:00 on a DST night in New York: ${night#*:} minutes" \
    "$(sql 'SELECT capacity FROM plans ORDER BY id DESC LIMIT 1')" $(( ${night#*:} * 4500 ))
done
run qrpool-plan --window 01:00-02:00 --reserve 5000 "$T/d.tsv"
is "--reserve leaving nothing: exit 64" "$rc" 64

# A forecast of last week (an export that did not run): nothing in the covered
# hours is an error, not a quiet night with nothing planned.
before=$(sql 'SELECT count(*) FROM codes')
printf 'poster\t2026-11-20T10:00Z\t500\ncard\t2026-11-20T11:00Z\t50\n' >"$T/stale.tsv"
run qrpool-plan --from 2026-11-29T10:00Z "$T/stale.tsv"
is "a stale forecast: exit 65" "$rc" 65
like "a stale forecast: says so, naming it" "$(cat "$T/err")" "stale.tsv: none of the 2 demand rows falls in the hours the pools cover from 2026-11-29T10:00Z"
is "a stale forecast: nothing planned" "$(sql 'SELECT count(*) FROM codes')" "$before"

# The next stage gone (head, a crashed filter): a write error, 74, not SIGPIPE.
{ demand link 20000; forecast_end $FROM; } >"$T/many.tsv"
{ rc=0; qrpool-plan --from $FROM "$T/many.tsv" 2>"$T/err" || rc=$?; echo $rc >"$T/rc"; } | head -1 >/dev/null
is "stdout closed early: exit 74" "$(cat "$T/rc")" 74
like "... saying so" "$(cat "$T/err")" "writing to stdout: Broken pipe"
is "... and the run is recorded with it" "$(sql 'SELECT exit_status FROM runs ORDER BY id DESC LIMIT 1')" 74

# --- a DB the user cannot write: the error names the file, its mode, the fix -----
# SQLite gives -wal and -shm the DB's mode when it makes them, so a run while
# the DB was read-only leaves a read-only -shm, and every later writer fails
# with "attempt to write a readonly database" though the DB is writable again.
# (Run as nobody: file modes do not stop root.)
NOBODY_TESTS=17
as_nobody() {
  setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups \
    env QRPOOL_CONFIG="$D/q.cfg" LSAN_OPTIONS="suppressions=$D/lsan.supp" "$@"
}
nobody_setup() {  # the tools, a config and a demand file in $D, owned by nobody
  [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null || return 1
  D=$T/nobody
  mkdir "$D" && chmod 711 "$T" || return 1
  # The checkout may be closed to others: the tools (and, for an ASan build,
  # the leak suppressions) are copied.
  cp "$QRPOOL_BIN/qrpool-plan" "$QRPOOL_BIN/qrpool-pending" "$QRPOOL_BIN/qrpool-resolve" \
    "$TESTS_DIR/lsan.supp" "$D/" || return 1
  cat >"$D/q.cfg" <<CFG || return 1
database = { path = "$D/staging.db"; };
pools = ( { name = "link"; source = "link"; url_prefix = "https://m.example.com/q/"; cover_hours = 24; safety = 0; } );
CFG
  { printf 'link\t2026-11-29T10:00Z\t5\n'; forecast_end 2026-11-29T10:00Z link; } >"$D/d.tsv"
  chmod 600 "$D/q.cfg" && chmod 644 "$D/d.tsv" "$D/lsan.supp" && chown -R nobody "$D" || return 1
  as_nobody test -r "$D/q.cfg"   # (a TMPDIR nobody cannot reach, no uid 65534 in a namespace)
}
if nobody_setup; then
  run as_nobody "$D/qrpool-pending" --count
  is "as nobody: pending makes the DB" "$rc:$(stat -c %a "$D/staging.db")" 0:600
  chmod 400 "$D/staging.db"
  run as_nobody "$D/qrpool-pending" --count
  is "a read-only DB can be read" "$rc" 0
  is "... and SQLite leaves its -shm read-only" "$(stat -c %a "$D/staging.db-shm")" 400
  chmod 600 "$D/staging.db"
  run as_nobody "$D/qrpool-plan" --from 2026-11-29T10:00Z "$D/d.tsv"
  is "the DB writable again, the read-only -shm still fails a writer: 74" "$rc" 74
  like "... naming the file, its mode and the fix" "$(cat "$T/err")" \
    "staging.db-shm is not writable by this user: mode 0400, SQLite made it with the DB's mode, read-only then; chmod 600 it, or remove it while nothing has the DB open \(no qrpool tool, no sqlite3 shell\): SQLite makes it again\)"
  rm -f "$D/staging.db-shm"
  run as_nobody "$D/qrpool-plan" --from 2026-11-29T10:00Z "$D/d.tsv"
  is "the -shm removed: the plan is made" "$rc:$(wc -l <"$T/out")" 0:5
  chmod 400 "$D/staging.db"
  run as_nobody "$D/qrpool-plan" --from 2026-11-29T10:00Z "$D/d.tsv"
  is "a read-only DB fails a writer: 74" "$rc:$(wc -l <"$T/out")" 74:0
  like "... naming the DB and its mode" "$(cat "$T/err")" \
    "staging.db is not writable by this user: mode 0400; chmod 600 it and any -wal and -shm beside it, which SQLite made with its mode\)"
  # That run left a read-only -wal (empty: it wrote nothing) and -shm again.
  chmod 600 "$D/staging.db"; rm -f "$D/staging.db-wal" "$D/staging.db-shm"
  as_nobody "$D/qrpool-pending" --count >/dev/null
  is "a writable DB's last connection removes -wal and -shm" \
    "$(ls "$D"/staging.db-* 2>/dev/null | wc -l)" 0
  chown root "$D/staging.db"
  run as_nobody "$D/qrpool-pending" --count
  is "a DB of another user: 74" "$rc" 74
  like "... naming its owner and the fix" "$(cat "$T/err")" \
    "staging.db is not writable by this user: owner uid 0, mode 0600; give it to the user that runs qrpool, chown and chmod 600\)"
  chown nobody "$D/staging.db"
  chmod 555 "$D"
  run as_nobody "$D/qrpool-pending" --count
  is "a directory the user cannot write: even a reader fails, 74" "$rc" 74
  like "... saying SQLite needs it" "$(cat "$T/err")" \
    "directory $D is not writable by this user: SQLite makes the DB's -wal and -shm files beside it, even to read\)"
  chmod 755 "$D"
  mkdir -m 700 "$T/closed"
  sed "s|$D/staging.db|$T/closed/staging.db|" "$D/q.cfg" >"$D/closed.cfg"
  chown nobody "$D/closed.cfg"; chmod 600 "$D/closed.cfg"
  run as_nobody "$D/qrpool-pending" -c "$D/closed.cfg" --count
  is "a directory the user cannot enter: 74" "$rc" 74
  like "... saying so, not that it cannot be written" "$(cat "$T/err")" \
    "directory $T/closed cannot be entered by this user: its mode, or a parent directory's, keeps it out\)"
  # A reader (resolve, for the middle page) of a DB it may not write, in a
  # directory where it cannot make the -wal and -shm: told that, not to
  # chown the DB (which would lock its writer out).
  mkdir -m 755 "$T/ro"
  sqlite3 "$D/staging.db" ".backup '$T/ro/staging.db'" && chmod 644 "$T/ro/staging.db"
  sed "s|$D/staging.db|$T/ro/staging.db|" "$D/q.cfg" >"$T/ro/q.cfg" && chmod 644 "$T/ro/q.cfg"
  run as_nobody env QRPOOL_CONFIG="$T/ro/q.cfg" "$D/qrpool-resolve" AAAAAAAAAAAAAAAA
  like "a reader that cannot make the -wal and -shm: 74, the directory named" "$rc:$(cat "$T/err")" \
    "^74:.*directory $T/ro is not writable by this user: SQLite makes the DB's -wal and -shm files beside it, even to read; a reader that may not make them reads while a qrpool tool has the DB open\)"
  is "... no chown of the DB advised" "$(grep -c 'chown' "$T/err")" 0
else
  skip_tests $NOBODY_TESTS "needs root, user nobody and setpriv"
fi

# --- SIGTERM: a plan stops where it can stop cleanly, says so, and is recorded
# as 75 (report showed a killed plan as "running?" until the next) ------------
sed "s|path = \"[^\"]*\"|path = \"$T/signals.db\"|" "$QRPOOL_CONFIG" >"$T/signals.cfg"
(umask 077; : >"$T/signals.db")
# Waiting for more demand on stdin: nothing planned.
rm -f "$T/demand.fifo"; mkfifo "$T/demand.fifo"
{ demand card 10; sleep 20; } >"$T/demand.fifo" & feeder=$!
qrpool-plan -c "$T/signals.cfg" --from $FROM - <"$T/demand.fifo" >"$T/out" 2>"$T/err" & planner=$!
wait_handles_term $planner; sleep 1
kill -TERM $planner || true
started=$(date +%s); rc=0; wait $planner || rc=$?; took=$(($(date +%s) - started))
kill $feeder 2>/dev/null || true
is "SIGTERM while the demand is read: exit 75, at once (took $took s)" "$rc:$([ "$took" -le 3 ] && echo soon)" 75:soon
like "... saying nothing was planned" "$(cat "$T/err")" "interrupted while reading the demand: nothing planned"
is "... and nothing was" "$(sqlite3 "$T/signals.db" 'SELECT count(*) FROM codes' 2>/dev/null || echo 0)" 0
# The same for a FIFO named as a FILE (a process substitution, <(curl ...)),
# before its writer comes and while it writes: SIGTERM is heard.
for when in before after; do
  rm -f "$T/demand.fifo"; mkfifo "$T/demand.fifo"
  feeder=
  [ $when = after ] && { { demand card 10; sleep 20; } >"$T/demand.fifo" & feeder=$!; }
  qrpool-plan -c "$T/signals.cfg" --from $FROM "$T/demand.fifo" >"$T/out" 2>"$T/err" & planner=$!
  wait_handles_term $planner; sleep 1
  kill -TERM $planner || true
  { sleep 10; kill -KILL $planner 2>/dev/null; } & dog=$!   # (a deaf one would wait for ever)
  started=$(date +%s); rc=0; wait $planner || rc=$?; took=$(($(date +%s) - started))
  kill $dog 2>/dev/null || true
  [ -z "$feeder" ] || kill $feeder 2>/dev/null || true
  is "SIGTERM while a FIFO as FILE waits ($when its writer came): exit 75, at once (took $took s)" \
    "$rc:$([ "$took" -le 3 ] && echo soon)" 75:soon
  like "... saying nothing was planned" "$(cat "$T/err")" "interrupted while reading the demand: nothing planned"
done
# Printing into a stage that does not read yet: the lines stop between two,
# every code stays staged, and the run is recorded as ended, with 75.
rm -f "$T/items.fifo"; mkfifo "$T/items.fifo"
{ demand card 100000; forecast_end $FROM; } >"$T/big.tsv"
qrpool-plan -c "$T/signals.cfg" --from $FROM "$T/big.tsv" >"$T/items.fifo" 2>"$T/err" & planner=$!
{ sleep 3; cat; } <"$T/items.fifo" >"$T/printed" & reader=$!
for _ in $(seq 100); do
  [ "$(sqlite3 "$T/signals.db" "SELECT count(*) FROM runs WHERE stage = 'plan'" 2>/dev/null)" = 1 ] && break
  sleep 0.05
done
wait_handles_term $planner; sleep 1
kill -TERM $planner || true
rc=0; wait $planner || rc=$?
wait $reader
staged=$(sqlite3 "$T/signals.db" 'SELECT count(*) FROM codes')
is "SIGTERM while printing: exit 75" "$rc" 75
ok "... fewer lines printed ($(wc -l <"$T/printed")) than codes staged ($staged)" \
  test "$(wc -l <"$T/printed")" -lt "$staged"
is "... each line whole" "$(grep -cvP '^[0-9A-Za-z]{16}\tcard$' "$T/printed")" 0
like "... saying so" "$(cat "$T/err")" "interrupted: $staged codes planned and staged, [0-9]+ of them printed"
is "... the run recorded as ended, with 75" \
  "$(sqlite3 "$T/signals.db" "SELECT exit_status, ended_at IS NOT NULL FROM runs WHERE stage = 'plan'")" "75|1"
# A signal while Kafka is asked for the pools' depth (no broker answers here):
# stopped before the plan is made.
sed 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "5s"; };|' "$T/signals.cfg" >"$T/nokafka.cfg"
grep -q '^kafka = { brokers = "127.0.0.1:9"' "$T/nokafka.cfg" || echo 'kafka = { brokers = "127.0.0.1:9"; timeout = "5s"; };' >>"$T/nokafka.cfg"
before=$(sqlite3 "$T/signals.db" 'SELECT count(*) FROM codes')
{ demand poster 10; forecast_end $FROM; } >"$T/small.tsv"
qrpool-plan -c "$T/nokafka.cfg" --from $FROM "$T/small.tsv" >"$T/out" 2>"$T/err" & planner=$!
wait_handles_term $planner; sleep 1
kill -TERM $planner || true
rc=0; wait $planner || rc=$?
is "SIGTERM while the depth is measured: exit 75" "$rc" 75
like "... nothing planned" "$(cat "$T/err")" "interrupted before the plan was made: nothing planned"
is "... and nothing was" "$(sqlite3 "$T/signals.db" 'SELECT count(*) FROM codes')" "$before"

# The DB locked by another writer past busy_timeout: 75, said as a lock held
# too long (SQLite's "database is locked" alone named neither), nothing planned.
sed 's/busy_timeout = "5s"/busy_timeout = "1s"/' "$QRPOOL_CONFIG" >"$T/locked.cfg"
chmod 600 "$T/locked.cfg"
before=$(sql 'SELECT count(*) FROM codes')
# (The plan waits up to 6 busy_timeouts to record its run: 6 s here.)
rm -f "$T/locked"
sqlite3 -cmd ".timeout 10000" "$T/staging.db" "BEGIN IMMEDIATE;" ".shell touch $T/locked; sleep 12" \
  "COMMIT" >/dev/null 2>&1 & holder=$!   # (its sleep, left when it is killed, holds no output of ours)
i=0; until [ -e "$T/locked" ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
run qrpool-plan -c "$T/locked.cfg" --from $FROM "$T/small.tsv"
kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true
is "the DB locked past busy_timeout: exit 75, nothing planned" "$rc:$(sql 'SELECT count(*) FROM codes')" "75:$before"
like "... said as a lock held past busy_timeout" "$(cat "$T/err")" \
  "staging.db: .*database is locked \(another process held it past busy_timeout, 1000 ms; \`fuser -v $T/staging.db\` shows which have it open\)"
# A signal while it waits for that lock: it stops there, nothing planned (it
# waited the lock out, then planned, committed and printed nothing: 75 all the
# same, but a plan made after the operator's Ctrl-C).
{ demand link 100000; forecast_end $FROM link; } >"$T/more.tsv"   # (more than the stock)
before=$(sql 'SELECT count(*) FROM codes')
rm -f "$T/locked"
sqlite3 -cmd ".timeout 10000" "$T/staging.db" "BEGIN IMMEDIATE;" ".shell touch $T/locked; sleep 12" \
  "COMMIT" >/dev/null 2>&1 & holder=$!   # (its sleep, left when it is killed, holds no output of ours)
i=0; until [ -e "$T/locked" ] || [ $i -gt 400 ]; do sleep 0.05; i=$((i + 1)); done
qrpool-plan --from $FROM "$T/more.tsv" >"$T/out" 2>"$T/err" & planner=$!
wait_handles_term $planner
# (Once it has the DB open, then a little: in the lock wait, not before it.)
i=0; until ls -l /proc/$planner/fd 2>/dev/null | grep -q 'staging\.db$' || [ $i -gt 200 ]; do
  sleep 0.05; i=$((i + 1)); done
sleep 0.5
kill -TERM $planner || true
started=$(date +%s); rc=0; wait $planner || rc=$?; took=$(($(date +%s) - started))
kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true
is "SIGTERM while waiting for another's lock (held 12 s): exit 75, at once (took $took s)" \
  "$rc:$([ "$took" -le 5 ] && echo soon)" 75:soon
is "... saying nothing was planned, once (in the wait to record the run, or after)" \
  "$(grep -c -e 'interrupted before the plan was made: nothing planned' \
    -e "stopped while waiting for another process's lock to record the plan run: nothing was done" "$T/err")" 1
is "... and nothing was, the lock gone" "$(sql 'SELECT count(*) FROM codes')" "$before"
is "... no error said (the stop is no lock held too long)" "$(grep -c ' error: ' "$T/err")" 0
is "... no plan run left looking as if it still ran (recorded as ended, or not at all)" \
  "$(sql "SELECT count(*) FROM runs WHERE stage = 'plan' AND ended_at IS NULL")" 0
