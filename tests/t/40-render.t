#!/bin/sh
# qrpool-render: link codes rendered, stored, and decoded back with zbarimg;
# other items passed on in order; bad lines, bad config, a full or read-only
# DB and SIGTERM each end with the documented status and a consistent DB.
. "${0%/*}/lib.sh"

write_config
PREFIX=https://m.example.com/q/
HOUR=$(date -u +%Y-%m-%dT%H:00:00Z)

# plan_codes LINK POSTER CARD > items: a plan into an emptied DB (the planner
# counts codes in flight as stock), shuffled so the pools interleave.
plan_codes() {
  [ ! -f "$T/staging.db" ] || sql "DELETE FROM images; DELETE FROM codes"
  { printf 'link\t%s\t%s\nposter\t%s\t%s\ncard\t%s\t%s\n' "$HOUR" "$1" "$HOUR" "$2" "$HOUR" "$3"
    forecast_end "$HOUR"; } | qrpool-plan --from "$HOUR" >"$T/plan.out" ||
    { echo "plan_codes: qrpool-plan exited $?" >&2; return 1; }
  sort -R "$T/plan.out"
}
link_lines() { awk -F '\t' '$2 == "link"' "$@"; }
other_lines() { awk -F '\t' '$2 != "link"' "$@"; }
state_count() { sql "SELECT count(*) FROM codes WHERE pool = '$1' AND state = '$2'"; }

# --- mixed input: link items rendered, the others untouched and in order -----
plan_codes 100 20 10 >"$T/items"
links=$(link_lines "$T/items" | wc -l)
run qrpool-render <"$T/items"
is "mixed input: exit 0" "$rc" 0
is "nothing on stderr" "$(cat "$T/err")" ""
is "every link item printed, in input order" "$(link_lines "$T/out")" "$(link_lines "$T/items")"
is "wechat items passed on untouched, in order" "$(other_lines "$T/out")" "$(other_lines "$T/items")"
is "every link code is fetched" "$(state_count link fetched)" "$links"
is "wechat codes stay planned" "$(sql "SELECT count(*) FROM codes WHERE pool != 'link' AND state != 'planned'")" 0
is "content type, sha256 and time recorded" \
  "$(sql "SELECT count(*) FROM codes JOIN images ON code_id = codes.id WHERE pool = 'link' AND content_type = 'image/png' AND length(sha256) = 64 AND fetched_at > 0")" "$links"

# --- runs of passed-through lines longer than the slot ring (1,024) between link
# lines, as a night's mix gives: each link code encoded once, none dropped ---
plan_codes 1000 6000 0 >"$T/mixed"
link_lines "$T/mixed" >"$T/mixed.link"; other_lines "$T/mixed" >"$T/mixed.other"
awk 'NR == FNR { other[NR] = $0; n = NR; next }
     { link[FNR] = $0; m = FNR }
     END { o = 1; l = 1
           while (o <= n || l <= m) {
             for (i = 0; i < 1100 && o <= n; i++) print other[o++]
             for (i = 0; i < 200 && l <= m; i++) print link[l++] } }' \
  "$T/mixed.other" "$T/mixed.link" >"$T/items"
links=$(wc -l <"$T/mixed.link")
run qrpool-render -vv -j 4 <"$T/items"
is "runs of 1,100 passed lines between link lines: exit 0" "$rc" 0
is "... every link code fetched" "$(state_count link fetched)" "$links"
is "... each encoded once" "$(grep -o '[0-9]* images encoded' "$T/err")" "$links images encoded"
is "... every link line printed, in order" "$(link_lines "$T/out")" "$(cat "$T/mixed.link")"
is "... and every other line" "$(other_lines "$T/out")" "$(cat "$T/mixed.other")"

# --- a sample decoded by zbarimg, checked by pngcheck and sha256sum -----------
mkdir "$T/png"
sql "SELECT writefile('$T/png/' || request_id || '.png', bytes) FROM codes JOIN images ON code_id = codes.id WHERE pool = 'link' ORDER BY random() LIMIT 12" >/dev/null
check_sample() {  # check_sample [DIR PREFIX]: the PNGs in DIR, of codes of PREFIX
  for png in "${1:-$T/png}"/*.png; do
    id=$(basename "$png" .png)
    # One thread: ImageMagick's OpenMP workers spin-wait, which on a busy
    # machine turned 12 decodes into minutes. No D-Bus: there is none here.
    decoded=$(MAGICK_THREAD_LIMIT=1 OMP_NUM_THREADS=1 zbarimg -q --raw --nodbus "$png") ||
      { echo "$id: zbarimg found no code"; return 1; }
    [ "$decoded" = "${2:-$PREFIX}$id" ] || { echo "$id: decoded '$decoded'"; return 1; }
    pngcheck -q "$png" || { echo "$id: pngcheck"; return 1; }
    [ "$(sha256sum <"$png" | cut -d' ' -f1)" = "$(sql "SELECT sha256 FROM codes WHERE request_id = '$id'")" ] ||
      { echo "$id: sha256 differs"; return 1; }
  done
}
ok "12 sampled codes: zbarimg reads url_prefix + request_id, pngcheck passes, sha256 matches" -- check_sample
is "148 x 148 pixels (version 3, 4 px modules, margin 4)" \
  "$(file -b "$(ls "$T"/png/*.png | head -1)" | cut -d, -f2)" " 148 x 148"

# --- a rerun passes everything on: nothing is rendered twice ------------------
run qrpool-render -v -j 1 <"$T/items"
is "rerun: exit 0" "$rc" 0
is "rerun: every line passed on untouched, in order" "$(cat "$T/out")" "$(cat "$T/items")"
like "rerun: nothing rendered again (-v counts)" "$(cat "$T/err")" \
  "$(wc -l <"$T/items") items: 0 rendered, $(wc -l <"$T/items") passed on, 0 already stored"

run qrpool-render "$T/items" - </dev/null
is "items from a file argument (and '-', empty): exit 0, all passed on" "$rc:$(cat "$T/out")" "0:$(cat "$T/items")"
run qrpool-render "$T/missing" </dev/null
is "a missing input file: exit 74" "$rc" 74
like "named in the error" "$(cat "$T/err")" "missing: No such file or directory"
# Every FILE is opened first: one that cannot be is said before anything is done.
run qrpool-render "$T/items" "$T/missing" </dev/null
is "a good file, then a missing one: exit 74" "$rc" 74
like "... saying nothing was rendered" "$(cat "$T/err")" "missing: No such file or directory: nothing rendered"
is "... and nothing passed on from the good one" "$(cat "$T/out")" ""
# A directory: refused before anything is done (64), as plan refuses one.
run qrpool-render "$T/items" "$T" </dev/null
is "a good file, then a directory: exit 64, nothing passed on" "$rc:$(cat "$T/out")" "64:"
like "... saying what it is" "$(cat "$T/err")" "$T is a directory, not a file of item lines: nothing rendered"
"$PYTHON" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/items.sock"
run qrpool-render "$T/items" "$T/items.sock" </dev/null
is "... a socket: exit 64 too, nothing passed on" "$rc:$(cat "$T/out"):$(grep -c 'items.sock is neither a file nor a pipe' "$T/err")" "64::1"
# A FIFO as FILE is read once: it was opened and closed first, its writer then
# writing into a pipe nobody read (SIGPIPE, or its lines lost), and the read's
# own open waited for a writer for ever.
mkfifo "$T/items.fifo"
{ cat "$T/items" >"$T/items.fifo"; echo $? >"$T/writer.rc"; } & writer=$!
run timeout -k 5 20 qrpool-render "$T/items.fifo" </dev/null
wait $writer || true
is "a FIFO as FILE: exit 0, its writer's every line passed on, the writer's exit 0" \
  "$rc:$(cat "$T/out" | wc -l):$(cat "$T/writer.rc")" "0:$(wc -l <"$T/items"):0"
# ... and one nobody writes to yet: a SIGTERM ends the wait.
qrpool-render "$T/items.fifo" </dev/null >"$T/out" 2>"$T/err" & pid=$!
wait_signal $pid SigCgt 15
sleep 0.5
kill -TERM $pid
for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
alive=no; kill -0 $pid 2>/dev/null && { alive=yes; kill -9 $pid; }
rc=0; wait $pid || rc=$?
is "a FIFO nobody writes to: a SIGTERM ends the wait for its writer, exit 75" "$alive:$rc" no:75

# --- bad lines are reported with their number, the rest is rendered -----------
plan_codes 30 5 0 >"$T/fresh"
poster=$(awk -F '\t' '$2 == "poster" { print $1; exit }' "$T/fresh")
{ sed -n 1,2p "$T/fresh"; echo "no tab here"; printf 'AAAAAAAAAAAAAAAA\tlink\n'
  printf '%s\tlink\n' "$poster"; sed -n '3,$p' "$T/fresh"; } >"$T/bad"
run qrpool-render -v <"$T/bad"
is "bad lines: exit 65" "$rc" 65
like "... the summary counts the 3 bad ones (one malformed) among the items" "$(cat "$T/err")" \
  "$(wc -l <"$T/bad") items: $(link_lines "$T/fresh" | wc -l) rendered, $(other_lines "$T/fresh" | wc -l) passed on, 0 already stored by another run, 3 skipped as bad$"

like "malformed line reported with its number" "$(cat "$T/err")" "stdin:3: .*no tab"
like "unknown id reported with its number, and the staging DB's path" "$(cat "$T/err")" \
  "stdin:4: unknown request id 'AAAAAAAAAAAAAAAA' \(staging DB $T/staging.db: is it the one qrpool-plan wrote\? see database.path\); line skipped"
like "wrong pool reported" "$(cat "$T/err")" "stdin:5: request id '$poster' belongs to pool 'poster'"
is "the good link items are all rendered and printed" "$(link_lines "$T/out")" "$(link_lines "$T/fresh")"
is "and all fetched" "$(state_count link fetched)" "$(link_lines "$T/fresh" | wc -l)"
# A 100 MB line (a file of another kind fed by mistake) is measured, not kept.
{ head -1 "$T/fresh"; head -c 100000000 /dev/zero | tr '\0' x; echo; sed -n '2,$p' "$T/fresh"; } >"$T/huge"
sql "UPDATE codes SET state = 'planned'; DELETE FROM images"
run_peak "$T/huge" qrpool-render
rm -f "$T/huge"
is "a 100 MB line: exit 65" "$rc" 65
like "... reported with its number" "$(cat "$T/err")" "stdin:2: longer than 65536 bytes; line skipped"
is "... every other line printed" "$(sort "$T/out")" "$(sort "$T/fresh")"
ok "... in less than 60 MB (peak $peak_kb KB)" test "$peak_kb" -lt 60000
printf 'BBBBBBBBBBBBBBBB\tlink\n' >"$T/unknown"
run qrpool-render <"$T/unknown"
is "an unknown id alone: exit 65" "$rc" 65

# --- the DB locked by another writer at the start (a plan beside the pipeline): the
# start waits a few busy_timeouts, then the run goes on --------------------------------
sed 's|busy_timeout = "5s"|busy_timeout = "1s"|' "$QRPOOL_CONFIG" >"$T/busy.cfg"
chmod 600 "$T/busy.cfg"
{ echo 'BEGIN IMMEDIATE;'; sleep 2.5; echo 'COMMIT;'; } | sqlite3 "$T/staging.db" & holder=$!
# Until the holder has the lock: a write of ours fails at once.
for _ in $(seq 50); do
  sqlite3 "$T/staging.db" 'BEGIN IMMEDIATE; ROLLBACK;' 2>/dev/null || break
  sleep 0.05
done
run qrpool-render -c "$T/busy.cfg" <"$T/unknown"
wait $holder
is "DB locked 2.5 s at the start, busy_timeout 1 s: the run goes on (65 for its unknown id)" "$rc" 65
like "... the wait said" "$(cat "$T/err")" "locked by another process: waiting to record the run"

# --- a code listed twice: taken once, the repeat reported (65) ------------------
# One code per batch, so a repeat finds its code already fetched: it would be
# passed on, printed a second time, and the next stage would refuse it.
plan_codes 6 2 0 >"$T/once"
{ cat "$T/once"; sed -n 1,3p "$T/once"; } >"$T/twice"
run qrpool-render -j 1 --batch 1 <"$T/twice"
is "a code listed twice: exit 65" "$rc" 65
is "... every code printed once, in input order" "$(cat "$T/out")" "$(cat "$T/once")"
like "... the repeat reported with its line number" "$(cat "$T/err")" \
  "stdin:$(($(wc -l <"$T/once") + 1)): request id '$(sed -n 1p "$T/once" | cut -f1)' was listed before in this input \(taken once\); line skipped"
is "... 3 repeats reported" "$(grep -c 'listed before' "$T/err")" 3
is "... every link code fetched" "$(state_count link fetched)" "$(link_lines "$T/once" | wc -l)"

# --- on a terminal: a progress line, cleared before a message, none with -q -------
# script(1) gives the run a terminal; a bad line comes a second in, once the
# progress line is drawn.
plan_codes 300 0 0 >"$T/tty-items"
head -100 "$T/tty-items" >"$T/tty-a"; tail -n +101 "$T/tty-items" >"$T/tty-b"
cat >"$T/tty-feed" <<SH
{ cat "$T/tty-a"; sleep 1; echo 'no tab here'; cat "$T/tty-b"; } | qrpool-render \$1 >/dev/null
SH
on_tty() {  # on_tty [OPTION] > the terminal's bytes, each \r a line end
  rc=0; script -qec "sh $T/tty-feed $*" /dev/null </dev/null >"$T/tty" || rc=$?
  tr '\r' '\n' <"$T/tty"
}
on_tty >"$T/tty-lines"
is "on a terminal: exit 65 for the bad line" "$rc" 65
like "... a progress line is drawn" "$(cat "$T/tty-lines")" "^render: [0-9]+ done, [0-9]+/s, [0-9]+ rendered"
like "... the message is said" "$(cat "$T/tty-lines")" "error: stdin:101: "
is "... on a line of its own, the progress line cleared first" \
  "$(grep -a 'error: stdin:101' "$T/tty-lines" | grep -c 'done,')" 0
on_tty -q >"$T/tty-lines"
like "-q on a terminal: the message is said" "$(cat "$T/tty-lines")" "error: stdin:101: "
is "... and no progress line drawn" "$(grep -ac 'done,' "$T/tty-lines")" 0
# Typed at a prompt with nothing piped in, the tools that read stdin say where
# their input comes from (64) rather than wait silently.
for tool in plan fetch render publish; do
  rc=0; timeout 20 script -qec "qrpool-$tool" /dev/null </dev/null >"$T/tty" || rc=$?
  is "qrpool-$tool, stdin a terminal: exit 64" "$rc" 64
  like "... saying where the input comes from" "$(cat "$T/tty")" "from (files or )?a pipe.*and stdin is a terminal"
done
for tool in plan render; do
  rc=0; timeout 20 script -qec "qrpool-$tool -" /dev/null </dev/null >"$T/tty" || rc=$?
  is "qrpool-$tool -, stdin a terminal: exit 64 too" "$rc:$(grep -c 'stdin is a terminal' "$T/tty")" 64:1
done

# --- config: a prefix too long for the level or min_version -----------------------
config_with() {  # config_with 'url_prefix = ...;' > file
  sed "s|url_prefix = \"$PREFIX\";|$1|" "$QRPOOL_CONFIG"
}
long=https://m.example.com/$(printf '%2400s' '' | tr ' ' a)/
config_with "url_prefix = \"$long\"; ec_level = \"M\";" >"$T/long.cfg"
chmod 600 "$T/long.cfg"
run qrpool-render -c "$T/long.cfg" </dev/null
is "prefix too long: exit 78" "$rc" 78
like "names file:line and what fits" "$(cat "$T/err")" \
  "long.cfg:[0-9]+: pool 'link': url_prefix \(2423 characters\).*does not fit even QR version 40 at ec_level M.*L 2937, M 2315"
# The pools in an @included file: that file named (its whole path), not the main one.
awk -v pools="$T/long-pools.cfg" '/^pools = \(/ { inpools = 1 }
     inpools { print > pools; if (/^\);/) inpools = 0; next } { print }' "$T/long.cfg" >"$T/long-main.cfg"
echo "@include \"long-pools.cfg\"" >>"$T/long-main.cfg"
chmod 600 "$T/long-main.cfg" "$T/long-pools.cfg"
run qrpool-render -c "$T/long-main.cfg" </dev/null
like "... in an @included file: that file named, by its whole path" "$rc:$(cat "$T/err")" \
  "^78:.* $T/long-pools.cfg:[0-9]+: pool 'link': url_prefix \(2423 characters\)"
config_with "url_prefix = \"$PREFIX\"; min_version = 2;" >"$T/v2.cfg"
chmod 600 "$T/v2.cfg"
run qrpool-render -c "$T/v2.cfg" </dev/null
is "prefix beyond min_version: exit 78" "$rc" 78
like "says which version it needs" "$(cat "$T/err")" "needs QR version 3 at ec_level M, above min_version = 2; raise min_version to 3"

# --- a query prefix, a percent-encoded path and colours: decoded back exactly ------
QPREFIX='https://m.example.com/%E4%BE%8B/q?a=1&id='
config_with "url_prefix = \"$(printf '%s' "$QPREFIX" | sed 's/&/\\&/g')\"; foreground = \"#1A237E\"; background = \"#FFF8E1\";" >"$T/query.cfg"   # (sed's & escaped)
chmod 600 "$T/query.cfg"
QRPOOL_CONFIG=$T/query.cfg plan_codes 3 0 0 >"$T/query-items" 2>"$T/plan.err" ||
  { cat "$T/plan.err" >&2; exit 1; }
run env QRPOOL_CONFIG="$T/query.cfg" qrpool-render <"$T/query-items"
is "a query prefix with a percent-encoded path, coloured: exit 0, every one rendered" \
  "$rc:$(wc -l <"$T/out")" "0:$(wc -l <"$T/query-items")"
rm -rf "$T/qpng"; mkdir "$T/qpng"
sql "SELECT writefile('$T/qpng/' || request_id || '.png', bytes) FROM codes JOIN images ON code_id = codes.id WHERE pool = 'link'" >/dev/null
ok "... each decodes to exactly url_prefix + request_id (pngcheck, sha256 too)" -- \
  check_sample "$T/qpng" "$QPREFIX"

# --- SIGTERM: what is rendered is stored and printed, exit 75 --------------------
plan_codes 40 0 0 >"$T/term"
mkfifo "$T/fifo" "$T/term.fifo"
{ cat "$T/term.fifo" >"$T/term.out"; touch "$T/term.eof"; } &
reader=$!
qrpool-render <"$T/fifo" >"$T/term.fifo" 2>"$T/term.err" &
pid=$!
exec 3>"$T/fifo"
cat "$T/term" >&3
# The signal once every item sent is rendered and printed (however slow the
# machine), its input still open: the stage before still writing.
for _ in $(seq 200); do [ "$(wc -l <"$T/term.out")" -ge 44 ] && break; sleep 0.05; done
kill -TERM "$pid"
# Its stdout is closed within a tick (the next stage is not held up); its
# input is read on, to let it go, until the stage before ends it (a broken
# pipe would end that stage, 74), or the same signal again a second later.
for tick in $(seq 20); do [ -e "$T/term.eof" ] || sleep 0.5; done
sleep 1.5   # (and a second signal insists only a second or more after the first)
drained=no; kill -0 "$pid" 2>/dev/null && drained=yes
ok "SIGTERM: stdout closed at once, though its input is still open" test -e "$T/term.eof"
is "... its input read on (the stage before still writes: not cut off)" "$drained" yes
like "... saying why it has not ended yet" "$(cat "$T/term.err")" \
  "the stage before this one is still writing: its lines are read and let go until it ends"
kill -TERM "$pid"
for tick in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null && sleep 0.5; done
stopped=yes; kill -0 "$pid" 2>/dev/null && stopped=no
exec 3>&-
rc=0; wait "$pid" || rc=$?
wait "$reader" || true
is "... the same signal again, a second later: stopped with its input still open" "$stopped" yes
is "SIGTERM: exit 75" "$rc" 75
is "SIGTERM: the printed items are exactly the codes fetched" \
  "$(sort "$T/term.out" | cut -f1)" \
  "$(sql "SELECT request_id FROM codes WHERE state = 'fetched'" | sort)"
is "SIGTERM: all 40 were read and rendered before the signal" "$(wc -l <"$T/term.out")" 44
like "SIGTERM: the 75 explains itself without -v (cron mails it)" "$(cat "$T/term.err")" \
  "warning: stopped by a signal: 44 items: 44 rendered, 0 passed on, .*stay planned"

# --- SIGTERM with items read but not rendered yet: the summary counts them -------
# (One encoder, a long input: the reader stays ahead of it, so at the stop
# items wait in its queue; they stay planned, and the summary says how many.
# The input is a pipe kept open, so the run cannot end before the signal.)
plan_codes 20000 0 0 >"$T/many"
mkfifo "$T/many.fifo"
qrpool-render -j 1 <"$T/many.fifo" >"$T/many.out" 2>"$T/many.err" &
pid=$!
exec 6>"$T/many.fifo"
(trap '' PIPE; cat "$T/many" >&6) 2>/dev/null &
feeder=$!
for _ in $(seq 400); do [ "$(state_count link fetched)" -gt 0 ] && break; sleep 0.05; done
kill -TERM "$pid" 2>/dev/null || true   # (ended already, on an error: the status says so)
exec 6>&-
rc=0; wait "$pid" || rc=$?
feeder_rc=0; wait "$feeder" || feeder_rc=$?
is "SIGTERM mid-queue: exit 75" "$rc" 75
# A signal to render alone: the stage before it would die on a broken pipe
# (74), and the night with it; the rest of stdin is read and let go instead.
is "... the stage before it is not cut off: it wrote all its lines (exit 0)" "$feeder_rc" 0
like "... the lines let go are said" "$(cat "$T/many.err")" \
  "[0-9]+ lines of input read to its end and let go: their codes stay as they were"
summary=$(grep -o '[0-9]* items: [0-9]* rendered, 0 passed on, 0 already stored by another run, 0 skipped as bad, [0-9]* read but not rendered (left planned)' "$T/many.err" || true)
like "... the summary counts the items read but not rendered" "$summary" "read but not rendered"
read_in=$(echo "$summary" | cut -d' ' -f1); rendered=$(echo "$summary" | cut -d' ' -f3)
left=$(echo "$summary" | awk -F', ' '{ print $5 + 0 }')
is "... the items read add up: rendered + not rendered ($rendered + $left)" \
  "$((${rendered:-0} + ${left:-0}))" "${read_in:--}"
is "... the rendered ones are the codes stored, and printed" \
  "$(state_count link fetched):$(wc -l <"$T/many.out" | tr -d ' ')" "$rendered:$rendered"
ok "... fewer read than planned: the rest was not read ($read_in of $(wc -l <"$T/many"))" \
  test "${read_in:-none}" -lt "$(wc -l <"$T/many")"
let_go=$(grep -o '[0-9]* lines of input read to its end' "$T/many.err" | cut -d' ' -f1)
is "... every line counted once: the items read + the lines let go ($read_in + $let_go)" \
  "$((${read_in:-0} + ${let_go:-0}))" "$(wc -l <"$T/many" | tr -d ' ')"

# --- SIGHUP: a stop like SIGTERM (75); under nohup, ignored (the run goes on, 0) ----
plan_codes 5 0 0 >"$T/hup-items"
# (The tests themselves under nohup: ignored in both, as it should be.)
plain=SigCgt plain_rc=75
if hup_ignored; then plain=SigIgn plain_rc=0; diag "SIGHUP ignored by the tests: plain is nohup"; fi
for how in plain nohup; do
  rm -f "$T/hup"; mkfifo "$T/hup"
  if [ $how = nohup ]; then nohup qrpool-render <"$T/hup" >"$T/hup.out" 2>"$T/hup.err" & pid=$!
  else qrpool-render <"$T/hup" >"$T/hup.out" 2>"$T/hup.err" & pid=$!; fi
  exec 5>"$T/hup"
  # Caught (plain), or ignored once nohup has run: a SIGHUP then is not fatal.
  if [ $how = nohup ]; then wait_signal $pid SigIgn 1; else wait_signal $pid $plain 1; fi
  sleep 0.5; kill -HUP $pid; sleep 0.5
  cat "$T/hup-items" >&5 2>/dev/null || true; exec 5>&-
  rc=0; wait $pid || rc=$?
  echo "$how:$rc" >>"$T/hup.rc"
done
is "SIGHUP: 75, as SIGTERM; under nohup, ignored: 0" "$(cat "$T/hup.rc" | tr '\n' ' ')" \
  "plain:$plain_rc nohup:0 "

# --- the next stage gone (head): 74, said as a write error; the codes committed
# are stored, not said to stay planned ------------------------------------------
plan_codes 3000 0 0 >"$T/many"
{ rc=0; qrpool-render <"$T/many" 2>"$T/err" || rc=$?; echo $rc >"$T/rc"; } | head -1 >/dev/null
is "stdout closed early: exit 74" "$(cat "$T/rc")" 74
like "... saying so" "$(cat "$T/err")" "writing to stdout: Broken pipe"
is "... not that a committed batch stays planned" "$(grep -c 'stay planned' "$T/err")" 0

# --- a full or read-only staging DB: exit 74, nothing printed, still planned ------
if mkdir "$T/fs" && mount -t tmpfs -o size=1m tmpfs "$T/fs" 2>/dev/null; then
  at_exit "umount '$T/fs'"
  sed "s|$T/staging.db|$T/fs/staging.db|" "$QRPOOL_CONFIG" >"$T/fs.cfg"
  chmod 600 "$T/fs.cfg"
  { printf 'link\t%s\t100\n' "$HOUR"; forecast_end "$HOUR"; } | qrpool-plan -c "$T/fs.cfg" --from "$HOUR" >"$T/full"
  planned=$(sqlite3 "$T/fs/staging.db" "SELECT count(*) FROM codes WHERE state = 'planned'")
  # Leave 64 KiB: room to open the DB and record the run, not for the images.
  dd if=/dev/zero of="$T/fs/filler" bs=1k count=$(($(df -k --output=avail "$T/fs" | tail -1) - 64)) 2>/dev/null
  run qrpool-render -c "$T/fs.cfg" --batch-time 60s <"$T/full"
  is "full disk: exit 74" "$rc" 74
  like "full disk: the DB error" "$(cat "$T/err")" "fs/staging.db: database or disk is full"
  like "... said as the file system being full, with what is left" "$(cat "$T/err")" \
    "\(the file system holding $T/fs is full: [0-9]+ KB free; free some space and run again"
  like "full disk: what it means for the codes" "$(cat "$T/err")" \
    "a batch of [0-9]+ rendered codes was not committed; they stay planned"
  is "full disk: no item printed" "$(cat "$T/out")" ""
  is "full disk: every code still planned" \
    "$(sqlite3 "$T/fs/staging.db" "SELECT count(*) FROM codes WHERE state = 'planned'")" "$planned"
  # Mid-run: the first batches fit, a later one does not. What was printed is
  # exactly what was committed; everything else is still planned.
  rm -f "$T/fs/filler"
  sqlite3 "$T/fs/staging.db" "DELETE FROM images; DELETE FROM codes"
  { printf 'link\t%s\t400\n' "$HOUR"; forecast_end "$HOUR"; } | qrpool-plan -c "$T/fs.cfg" --from "$HOUR" >"$T/full"
  dd if=/dev/zero of="$T/fs/filler" bs=1k count=$(($(df -k --output=avail "$T/fs" | tail -1) - 256)) 2>/dev/null
  run qrpool-render -c "$T/fs.cfg" --batch 50 <"$T/full"
  is "disk full mid-run: exit 74" "$rc" 74
  is "disk full mid-run: the printed items are exactly the codes fetched" "$(cut -f1 "$T/out" | sort)" \
    "$(sqlite3 "$T/fs/staging.db" "SELECT request_id FROM codes JOIN images ON code_id = codes.id WHERE state = 'fetched'" | sort)"
  ok "disk full mid-run: some batches were committed first" -- test -s "$T/out"
  is "disk full mid-run: the rest still planned" \
    "$(sqlite3 "$T/fs/staging.db" "SELECT count(*) FROM codes WHERE state = 'planned'")" \
    "$(($(wc -l <"$T/full") - $(wc -l <"$T/out")))"
  # Not a byte left: SQLite cannot make the -shm, and says "disk I/O error".
  dd if=/dev/zero of="$T/fs/filler2" bs=1k 2>/dev/null || true
  run qrpool-render -c "$T/fs.cfg" <"$T/full"
  is "a disk with no byte left: exit 74" "$rc" 74
  like "... said as the file system being full" "$(cat "$T/err")" \
    "\(the file system holding $T/fs is full: 0 KB free"
  rm -f "$T/fs/filler" "$T/fs/filler2"
  mount -o remount,ro "$T/fs"
  run qrpool-render -c "$T/fs.cfg" <"$T/full"
  is "read-only DB: exit 74" "$rc" 74
  like "read-only DB: says the file system is mounted read-only" "$(cat "$T/err")" \
    "fs/staging.db is on a file system mounted read-only\)"
  is "read-only DB: no item printed" "$(cat "$T/out")" ""
else
  skip_tests 15 "cannot mount a tmpfs to fill"
fi

# --- the command line -----------------------------------------------------------
run qrpool-render --help
like "--help documents --jobs and the exit codes" "$(cat "$T/out")" "--jobs N.*"
like "--help names every exit status" "$(cat "$T/out")" "78 bad config"
run qrpool-render --jobs 0 </dev/null
is "--jobs 0: usage error" "$rc" 64
