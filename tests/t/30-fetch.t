#!/bin/sh
# qrpool-fetch against the fake WeChat: the happy path (images decoded back
# to their scene), items passed through in order, bad lines, faults that must
# never be stored, a refused pool, and no secret or token in any output.
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"
command -v zbarimg >/dev/null || skip_all "zbarimg is missing"

# --- the happy path ------------------------------------------------------------
start_fake ok
config_for 'concurrency = 8;'
plan poster 12; plan link 3; plan card 4; plan link 2
run qrpool-fetch -vv <"$T/items"
is "happy path: exit 0" "$rc" 0
is "every item printed" "$(wc -l <"$T/out")" 21
is "wechat codes stored" "$(count "state = 'fetched'")" 16
is "as JPEG" "$(sql "SELECT DISTINCT content_type FROM codes WHERE state = 'fetched'")" image/jpeg
is "images decode to their request id, sha256 matches" "$(decodes_ok)" 1
is "link items passed through in their order" "$(grep -P '\tlink$' "$T/out")" \
  "$(grep -P '\tlink$' "$T/items")"
is "stored items printed as they came" "$(grep -vP '\tlink$' "$T/out" | sort)" \
  "$(grep -vP '\tlink$' "$T/items" | sort)"
is "one call per code" "$(stats endpoints getwxacodeunlimit requests)" 16
like "-v summary with the CPU per code" "$(cat "$T/err")" "fetched 16.*cpu [0-9.]+ us per code"
token=$(sql "SELECT token FROM wechat_tokens")
like "the token is cached in the DB" "$token" "^[A-Za-z0-9_-]{20,}$"
cat "$T/out" "$T/err" >"$T/all-output"
is "-vv: neither the secret nor the token in any output" \
  "$(grep -c -e "$SECRET" -e "$token" "$T/all-output")" 0
like "-vv: URLs are logged masked" "$(cat "$T/err")" \
  "debug: [A-Za-z0-9]+: POST http://127\.0\.0\.1:[0-9]+/wxa/getwxacodeunlimit\?access_token=\*\*\* \(pool poster\)"
run qrpool-fetch --dump-config
is "--dump-config does not show the secret" "$(grep -c "$SECRET" "$T/out")" 0

run qrpool-fetch <"$T/items"
is "rerun: exit 0, quiet" "$rc:$(cat "$T/err")" "0:"
is "rerun: fetched items passed on untouched" "$(cat "$T/out")" "$(cat "$T/items")"
is "rerun: no call made" "$(stats endpoints getwxacodeunlimit requests)" 16

# --- no wechat section (link pools only), on a terminal: the link items passed
# on, a progress line without a quota figure (it divided by the quota's minute,
# 0 there: SIGFPE) ------------------------------------------------------------------
cat >"$T/link-only.cfg" <<CFG
database = { path = "$T/staging.db"; };
pools = ( { name = "link"; source = "link"; url_prefix = "https://m.example.com/q/"; } );
CFG
chmod 600 "$T/link-only.cfg"
grep -P '\tlink$' "$T/items" >"$T/link-items"
rc=0; script -qec "qrpool-fetch -c $T/link-only.cfg <$T/link-items" /dev/null </dev/null \
  >"$T/tty" || rc=$?
is "no wechat section, on a terminal: exit 0" "$rc" 0
is "... the link items passed on" "$(grep -c 'link' "$T/tty")" 5
like "... and the progress line drawn" "$(tr '\r' '\n' <"$T/tty")" "no wechat pools: items passed on"
ok "... with no quota figure" -- sh -c "! grep -q 'quota [0-9]' '$T/tty'"

# --- bad lines --------------------------------------------------------------------
{ head -2 "$T/items"; echo "no tab here"; printf 'Unknown0000000ab\tposter\n'
  printf '%s\tcard\n' "$(head -1 "$T/items" | cut -f1)"; printf 'Unknown0000000cd\tposter\n'; } >"$T/bad"
run qrpool-fetch <"$T/bad"
is "bad lines: exit 65" "$rc" 65
like "malformed line named by number" "$(cat "$T/err")" "stdin:3: "
like "unknown id named by number" "$(cat "$T/err")" "stdin:4: unknown request id"
like "... the first naming the staging DB (a stage given another config finds no id)" "$(cat "$T/err")" \
  "stdin:4: unknown request id 'Unknown0000000ab' \(staging DB $T/staging.db: is it the one qrpool-plan wrote\? see database.path\); line skipped"
like "... the next ones not" "$(cat "$T/err")" "stdin:6: unknown request id 'Unknown0000000cd'; line skipped"
like "wrong pool named by number, quoted" "$(cat "$T/err")" "stdin:5: .*in pool 'poster', not 'card'"
is "good lines still passed on" "$(wc -l <"$T/out")" 2
# Many bad lines of one cause (a stage run with another config): the first 20
# said, the rest counted, not a line per code in the night's mail.
{ head -2 "$T/items"; for i in $(seq 100 149); do printf 'Unknown00000%s0\tposter\n' "$i"; done; } >"$T/many"
run qrpool-fetch <"$T/many"
is "50 bad lines: exit 65, the good ones passed on" "$rc:$(wc -l <"$T/out")" 65:2
is "... 20 of them said" "$(grep -c 'line skipped' "$T/err")" 20
like "... the last said is the 20th" "$(grep 'line skipped' "$T/err" | tail -1)" "stdin:22: unknown request id 'Unknown000001190'"
like "... the rest counted" "$(cat "$T/err")" \
  "qrpool-fetch error: \.\.\. and 30 more lines of input refused as above, not shown one by one \(a run shows the first 20\)"

# --- a code listed twice: one call, printed once, the repeat reported (65) ------
: >"$T/items"; plan poster 3
calls=$(stats endpoints getwxacodeunlimit requests)
{ cat "$T/items"; cat "$T/items"; } >"$T/twice"
run qrpool-fetch <"$T/twice"
is "a code listed twice: exit 65" "$rc" 65
is "... one call per code" "$(stats endpoints getwxacodeunlimit requests)" $((calls + 3))
is "... each printed once" "$(sort "$T/out")" "$(sort "$T/items")"
like "... the repeat named by number" "$(cat "$T/err")" \
  "stdin:4: request id '$(head -1 "$T/items" | cut -f1)' was listed before in this input \(taken once\); line skipped"
run qrpool-fetch <"$T/twice"
is "... and on a rerun, each passed on once" "$rc:$(cat "$T/out")" "65:$(cat "$T/items")"

# A 100 MB line (a file of another kind fed by mistake) is measured, not kept.
{ head -1 "$T/items"; head -c 100000000 /dev/zero | tr '\0' x; echo; sed -n '2,$p' "$T/items"; } >"$T/huge"
run_peak "$T/huge" qrpool-fetch
rm -f "$T/huge"
is "a 100 MB line: exit 65, every other line passed on" "$rc:$(cat "$T/out")" "65:$(cat "$T/items")"
like "... reported with its number" "$(cat "$T/err")" "stdin:2: longer than 65536 bytes; line skipped"
ok "... in less than 60 MB (peak $peak_kb KB)" test "$peak_kb" -lt 60000

# --- faults: -1, 5xx, truncated images, JSON labelled as an image -------------------
start_fake faults --busy-rate 0.2 --http5xx-rate 0.1 --truncate-rate 0.15 \
  --json-as-image-rate 0.15 --seed 7
config_for 'concurrency = 8; retries = 10;'
: >"$T/items"; plan poster 40
run qrpool-fetch <"$T/items"
is "faults: exit 0" "$rc" 0
is "faults: every code fetched" "$(count "state = 'fetched'")" 40
is "faults: every stored image is whole and decodes" "$(decodes_ok)" 1
faults=$(stats faults)
like "faults were injected: -1, 5xx, truncated, JSON as image" "$faults" \
  '"busy": [1-9].*"http5xx": [1-9].*"json_as_image": [1-9].*"truncate": [1-9]'
is "faults: no whole image wasted: the server's images = the codes stored" "$(stats ok_total)" 40
is "faults: retries recorded as attempts" \
  "$(sql "SELECT sum(attempts) FROM codes")" "$(stats calls_total)"

# --- HTTP 408 and 429, and empty images: transient (WECHAT.md), never stored ---------
start_fake gateway --http-status 408,429:0.3 --empty-rate 0.2 --seed 5
config_for 'concurrency = 4; retries = 10;'
: >"$T/items"; plan poster 30
run qrpool-fetch <"$T/items"
is "408/429/empty: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:30
is "408/429/empty: every stored image is whole and decodes" "$(decodes_ok)" 1
like "408/429/empty: injected" "$(stats faults)" '"empty": [1-9].*"http_status": [1-9]'
is "408/429/empty: no whole image wasted" "$(stats ok_total)" 30

# --- a 200 with no image: a gateway's HTML page, or other bytes labelled image/jpeg ---
start_fake not-image --html-rate 0.2 --not-image-rate 0.2 --seed 11
config_for 'concurrency = 4; retries = 10;'
: >"$T/items"; plan poster 30
run qrpool-fetch <"$T/items"
is "HTML and non-image 200s: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:30
is "... every stored image is whole and decodes" "$(decodes_ok)" 1
like "... injected" "$(stats faults)" '"html": [1-9].*"not_image": [1-9]'
is "... no whole image wasted" "$(stats ok_total)" 30

# --- whole images under another label (a gateway's), or none: the bytes decide ---------
for label in application/octet-stream none; do
  start_fake "label-${label%%/*}" --image-type "$label"
  config_for 'concurrency = 4;'
  : >"$T/items"; plan poster 10
  run qrpool-fetch <"$T/items"
  is "images labelled $label: exit 0, every code fetched, no call wasted" \
    "$rc:$(count "state = 'fetched'"):$(stats calls_total)" 0:10:10
  is "... stored as what their bytes are, and they decode" \
    "$(sql "SELECT DISTINCT content_type FROM codes"):$(decodes_ok)" "image/jpeg:1"
  is "... the label said once" "$(grep -c "is labelled $([ $label = none ] && echo '(nothing)' || echo $label) but is image/jpeg" "$T/err")" 1
done

# --- a 429 with Retry-After: the retry waits that long, not the backoff's 0.25 s ---------
start_fake retry-after --http-status 429:1 --retry-after 3s
config_for 'concurrency = 4; retries = 10;'
: >"$T/items"; plan poster 1
run qrpool-fetch --for 2s <"$T/items"
is "429 with Retry-After: 3: one call in a 2 s run, the code still planned, 75" \
  "$(stats calls_total):$(count "state = 'planned'"):$rc" 1:1:75

# --- images the size of WeChat's (tens to hundreds of KB), the fake's own ~16 KB padded ---
start_fake big --image-bytes 300000
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 10
run qrpool-fetch <"$T/items"
is "300 KB images: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:10
is "... stored whole" "$(sql "SELECT min(length(bytes)) || ' ' || max(length(bytes)) FROM images")" \
  "300000 300000"
is "... and they decode" "$(decodes_ok)" 1

# --- images padded after their end marker: stored without the padding, said once ----
start_fake padded --padded-rate 0.5 --seed 3
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 20
run qrpool-fetch <"$T/items"
is "padded images: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:20
is "padded images: every stored image decodes, its sha256 of what is stored" "$(decodes_ok)" 1
is "padded images: none stored with its padding (every one ends in EOI)" \
  "$(sql "SELECT count(*) FROM images WHERE hex(substr(bytes, -2)) != 'FFD9'")" 0
like "padded images: some were ($(stats faults padded))" "$(stats faults padded)" '^[1-9]'
is "padded images: none refused, no call wasted" "$(stats calls_total)" 20
is "padded images: said once" "$(grep -c 'has 16 bytes after its end marker (those left out): stored all the same' "$T/err")" 1

# --- a pool WeChat refuses (41030; 85096): stopped, nothing lost -------------------
# The 41030 of a page not published; the same errcode in a body labelled
# image/jpeg (WECHAT.md: errors are told from images by a leading '{' too: a
# client that took it for a bad image would retry it until its retries ran
# out); and 85096 (scancode_time: a bug in the pool's page).
n=0
for refusal in "41030 --pages pages/other/index" "41030 --errcode 41030:1 --json-as-image-rate 1" \
    "85096 --errcode 85096:1" "40097 --errcode 40097:1"; do
  set -- $refusal; code=$1; shift; n=$((n + 1))
  start_fake "refused-$n" "$@"
  config_for 'concurrency = 4; retries = 10;'
  : >"$T/items"; plan poster 10; plan link 2
  run qrpool-fetch <"$T/items"
  is "$code ($*): exit 69" "$rc" 69
  like "... the pool and the reason are named" "$(cat "$T/err")" "pool poster stopped: .*$code"
  is "... every poster item still planned" "$(count "state = 'planned' AND pool = 'poster'")" 10
  is "... no poster item printed, link items passed on" "$(cut -f2 "$T/out" | sort -u)" link
  ok "... no more calls than in flight ($(stats calls_total)), none retried" [ "$(stats calls_total)" -le 4 ]
  like "... the summary does not say done" "$(cat "$T/err")" "warning: input read to its end: fetched 0,"
done

# --- two runs over the same codes at once (a resume typed beside a fill): both
# call WeChat, one stores each code; the other's summary says so -----------------------
start_fake twice --latency 20
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 200
qrpool-fetch -v <"$T/items" >"$T/out.a" 2>"$T/err.a" & first=$!
qrpool-fetch -v <"$T/items" >"$T/out.b" 2>"$T/err.b" & second=$!
rc_a=0; wait $first || rc_a=$?
rc_b=0; wait $second || rc_b=$?
# (A code one run fetched before the other read its line is passed on by that
# one as it is, fetched, not called for: so printed by both, and counted in
# that run's "passed through". With the quota paced, one run can get ahead.)
passed=$(cat "$T/err.a" "$T/err.b" | grep -o 'passed through [0-9]*' | awk '{ n += $3 } END { print n + 0 }')
is "two runs over the same 200 codes: both exit 0, each code printed once, but those passed on" \
  "$rc_a:$rc_b:$(cat "$T/out.a" "$T/out.b" | sort -u | wc -l):$(cat "$T/out.a" "$T/out.b" | wc -l)" \
  "0:0:200:$((200 + passed))"
twice=$(cat "$T/err.a" "$T/err.b" | grep -o 'and [0-9]* fetched by another run meanwhile: called twice' |
  awk '{ n += $2 } END { print n + 0 }')
is "... the codes called twice are said, as many as the calls over 200" "$twice" \
  "$(($(stats calls_total) - 200))"

# --- items WeChat refuses for good (40129: the scene): marked failed, exit 65 -------
start_fake scene --errcode 40129:0.3 --seed 3
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 80
run qrpool-fetch <"$T/items"
refused=$(stats errcodes 40129)
is "40129 on some items ($refused): exit 65, not 0 (a partial failure)" "$rc" 65
is "... those items marked failed with the errcode" "$(count "state = 'failed' AND errcode = 40129")" "$refused"
is "... the others fetched and printed" "$(count "state = 'fetched'"):$(wc -l <"$T/out")" \
  "$((80 - refused)):$((80 - refused))"
ok "... more than 10 of them ($refused)" [ "$refused" -gt 10 ]
is "... each said up to 10 (a night's mail is not a list of codes)" \
  "$(grep -c 'warning: .*refused by WeChat for good' "$T/err")" 10
like "... then that the rest are not each said, and where they are" "$(cat "$T/err")" \
  "more items refused for good are not each said \(-v says them\): .*qrpool-pending --state failed"

# --- scene refusals in a row with no code between (40169 also says "the data is not
# json string": WeChat mangled calls, not bad ids): the pool stops, nothing failed --
start_fake mangled --errcode 40169:1
config_for 'concurrency = 8;'
: >"$T/items"; plan poster 300; plan link 2
run qrpool-fetch <"$T/items"
is "every call refused as a scene: exit 69, no item failed, all 300 still planned" \
  "$rc:$(count "state = 'failed'"):$(count "state = 'planned' AND pool = 'poster'")" 69:0:300
calls=$(stats calls_total)
ok "... after 20 refusals and the calls then in flight ($calls calls)" [ "$calls" -ge 20 -a "$calls" -le 28 ]
like "... the pool, the streak, WeChat's words and the likely cause said" "$(cat "$T/err")" \
  "error: pool poster stopped: WeChat refused 20 request ids in a row as scenes, with no code fetched between \\(errcode 40169: .*\\): the ids are minted valid, so something changes the calls on the way \\(a proxy or gateway rewriting their body\\?\\) .*none is marked failed; its items stay planned"
is "... no item said refused for good, the link items passed on" \
  "$(grep -c 'refused by WeChat for good' "$T/err"):$(cut -f2 "$T/out" | sort -u)" 0:link
start_fake mended
sed -i "s|api_base = \"[^\"]*\"|api_base = \"$base\"|" "$QRPOOL_CONFIG"
run qrpool-fetch <"$T/items"
is "... a rerun once the calls go through: all 300 fetched" "$rc:$(count "state = 'fetched'")" 0:300

# Fewer in a row than that, and the run ends: failed, as WECHAT.md says.
start_fake few --errcode 40169:1
config_for 'concurrency = 8;'
: >"$T/items"; plan poster 19
run qrpool-fetch <"$T/items"
is "19 items, every one refused as a scene: exit 65, the 19 failed with the errcode" \
  "$rc:$(count "state = 'failed' AND errcode = 40169")" 65:19

# Many refusals, but codes between them: each streak ends with a code, and every
# refusal is the item's (failed); the pool is not stopped.
start_fake scattered --errcode 40169:0.3 --seed 4
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 200
run qrpool-fetch <"$T/items"
refused=$(stats errcodes 40169)
is "scene refusals scattered among codes ($refused, more than 20): exit 65, each failed, the rest fetched" \
  "$rc:$(count "state = 'failed' AND errcode = 40169"):$(count "state = 'fetched'")" \
  "65:$refused:$((200 - refused))"
ok "... more than a streak's 20 in all" [ "$refused" -gt 20 ]

# A scene refusal is judged by what comes after it in its pool: a code (the
# refusal is the item's: failed), 20 in a row (the calls': planned), another
# stop of the pool (41030 here: planned with the rest), or a signal (the streak
# cut short, not judged: planned, for the rerun to judge).
start_fake page-after --errcode 40169:0.7 --seed 7 --pages pages/other/index
config_for 'concurrency = 1;'
: >"$T/items"; plan poster 40
run qrpool-fetch <"$T/items"
held=$(stats errcodes 40169)
is "scene refusals, then a 41030: exit 69, the refusals before it planned, none failed" \
  "$rc:$(count "state = 'failed'"):$(count "state = 'planned'")" 69:0:40
ok "... $held scene refusals came first" [ "$held" -gt 0 ]
like "... the stop is the 41030's" "$(cat "$T/err")" "pool poster stopped: WeChat errcode 41030"
is "... no item said refused for good" "$(grep -c 'refused by WeChat for good' "$T/err")" 0
start_fake term-held --errcode 40169:1 --latency 300
config_for 'concurrency = 2;'
: >"$T/items"; plan poster 12
qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetch=$!
i=0; until [ "$(stats calls_total)" -ge 4 ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM $fetch
rc=0; wait $fetch || rc=$?
is "scene refusals cut short by SIGTERM: exit 75, none failed, every item planned" \
  "$rc:$(count "state = 'failed'"):$(count "state = 'planned'")" 75:0:12
ok "... after $(stats calls_total) refusals" [ "$(stats calls_total)" -ge 4 ]

# --- a full disk: the batch not committed is said, its codes (refused ones too) stay
# planned, and the summary counts them so ----------------------------------------------
if mkdir "$T/fs" && mount -t tmpfs -o size=16m tmpfs "$T/fs" 2>/dev/null; then
  at_exit "umount '$T/fs'"
  # Images of 100 KB: not one fits. (The calls in flight at the failure may end in
  # a last batch of refusals alone, which can fit: the summary must say so too.)
  start_fake full --errcode 40129:0.5 --seed 3 --image-bytes 100000
  config_for 'concurrency = 4;'
  sed -i "s|$T/staging.db|$T/fs/staging.db|" "$QRPOOL_CONFIG"
  : >"$T/items"; plan poster 40
  # Leave 64 KiB: room to open the DB and record the run, not for an image.
  dd if=/dev/zero of="$T/fs/filler" bs=1k count=$(($(df -k --output=avail "$T/fs" | tail -1) - 64)) 2>/dev/null
  run qrpool-fetch <"$T/items"
  fsdb() { sqlite3 "$T/fs/staging.db" "SELECT count(*) FROM codes WHERE state = '$1'"; }
  planned=$(fsdb planned); failed=$(fsdb failed)
  is "full disk: exit 74, no item printed, none fetched, the rest still planned" \
    "$rc:$(wc -l <"$T/out"):$(fsdb fetched):$((planned + failed))" 74:0:0:40
  like "... the batch let go said" "$(cat "$T/err")" \
    "error: [0-9]+ fetched and [0-9]+ refused codes were not committed; they stay planned for a rerun"
  like "... the summary counting them as left planned, not as fetched or failed" "$(cat "$T/err")" \
    "stopped by an error: fetched 0, failed $failed, left planned $planned "
  rm -f "$T/fs/filler"
  run qrpool-fetch <"$T/items"
  is "... a rerun once there is room: every code fetched or refused" \
    "$rc:$(sqlite3 "$T/fs/staging.db" "SELECT count(*) FROM codes WHERE state = 'planned'")" 65:0
else
  skip_tests 4 "cannot mount a tmpfs to fill"
fi

# --- the account refused (48001, 45063): every wechat pool stopped, 69 --------------
for refusal in 48001:unauthorized 45063:permission; do
  start_fake "refused-${refusal%%:*}" --errcode "${refusal%%:*}:1"
  config_for 'concurrency = 4;'
  : >"$T/items"; plan poster 10; plan card 5; plan link 2
  run qrpool-fetch <"$T/items"
  is "${refusal%%:*}: exit 69" "$rc" 69
  like "${refusal%%:*}: the pool and the reason are named" "$(cat "$T/err")" \
    "pool poster stopped: .*${refusal%%:*}.*${refusal#*:}"
  like "${refusal%%:*}: the account named, and so every wechat pool stopped at once" "$(cat "$T/err")" \
    "pool card stopped: WeChat refused the account of appid $APPID"
  ok "${refusal%%:*}: no more calls than were in flight ($(stats calls_total))" [ "$(stats calls_total)" -le 4 ]
  is "${refusal%%:*}: every wechat item still planned" "$(count "state = 'planned' AND pool != 'link'")" 15
  is "${refusal%%:*}: link items passed on" "$(cut -f2 "$T/out" | sort -u)" link
done

# --- WeChat saying the call itself was malformed (47001: the body is not JSON;
# 41001: no token): a bug of ours, so the run stops, 70, nothing marked failed ---------
for bug in 47001 41001; do
  start_fake "bug-$bug" --errcode "$bug:1"
  config_for 'concurrency = 4;'
  : >"$T/items"; plan poster 10
  run qrpool-fetch <"$T/items"
  is "$bug: exit 70 (a bug)" "$rc" 70
  like "... said as one" "$(cat "$T/err")" "WeChat answered .*$bug.*: a bug in qrpool-fetch; stopping"
  is "... every item still planned, none failed" "$(count "state = 'planned' AND pool = 'poster'")" 10
  ok "... no more calls than were in flight ($(stats calls_total))" [ "$(stats calls_total)" -le 4 ]
done

# --- --until at a time already past today: the deadline is tomorrow's, and said -------
# In a zone where it is now about 02:00, whatever the hour in UTC: an hour ago
# is then today's, and 13 hours ahead still today.
early_tz=EARLY-$(( (26 - $(date -u +%-H)) % 24 ))
run env TZ=$early_tz qrpool-fetch --until "$(TZ=$early_tz date -d '1 hour ago' +%H:%M)" </dev/null
is "--until an hour ago: exit 0 (nothing to do)" "$rc" 0
like "... warns that the deadline is tomorrow's" "$(cat "$T/err")" \
  "--until [0-9:]+: that time has passed today, so the deadline is tomorrow's, [0-9.]+ hours from now"
# A minute ago (a fill started at 05:59:59, its fetch at 06:00:01): reached,
# not tomorrow's (it fetched all day, through the peak). No call; the wechat
# items stay planned, the others pass on; 75 as at any deadline. (In $early_tz:
# at 00:00 a minute ago is 23:59, today's, nearly a day ahead.)
: >"$T/items"; plan poster 3; plan link 1
calls_before=$(stats calls_total)
planned_before=$(count "state = 'planned' AND pool != 'link'")
run env TZ=$early_tz qrpool-fetch --until "$(TZ=$early_tz date -d '1 minute ago' +%H:%M)" <"$T/items"
is "--until a minute ago: the deadline is reached: exit 75" "$rc" 75
like "... saying so" "$(cat "$T/err")" \
  "--until [0-9:]+: that time passed [0-9]+ s ago: the deadline is reached, no call starts"
is "... no call made" "$(stats calls_total)" "$calls_before"
is "... the wechat items still planned" "$(count "state = 'planned' AND pool != 'link'")" "$planned_before"
is "... other items passed on" "$(cat "$T/out")" "$(grep -P '\tlink$' "$T/items")"
# The same across midnight: at 00:05, --until 23:58 passed 7 minutes ago (it
# was today's 23:58, a day of fetching ahead). In a zone where it is 00:05 now.
utc_hm=$(date -u '+%-H %-M')   # (read once: the hour may turn between two reads)
off=$(( (5 - ${utc_hm% *} * 60 - ${utc_hm#* }) % 1440 + 1440 ))
midnight_tz=LATE-$(( off % 1440 / 60 )):$(( off % 60 ))
run env TZ=$midnight_tz qrpool-fetch --until 23:58 </dev/null
like "--until 23:58 at 00:05 ($midnight_tz): yesterday's, reached" "$(cat "$T/err")" \
  "--until 23:58: that time passed [0-9]+ s ago: the deadline is reached"
run qrpool-fetch --until "$(date -d '1 hour' +%H:%M)" </dev/null
is "--until in an hour: no warning" "$(cat "$T/err")" ""
run env TZ=$early_tz qrpool-fetch --until "$(TZ=$early_tz date -d '13 hours' +%H:%M)" </dev/null
is "--until 13 hours ahead, later today (a daytime backfill): no warning ($early_tz)" \
  "$(cat "$T/err")" ""

# --- a page too long for the request: a config error before any call ---------------
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 3
long_page=pages/$(printf '%02100d' 0 | tr 0 a)
sed -i "0,/page = \"pages\/r\/index\"/s||page = \"$long_page\"|" "$QRPOOL_CONFIG"
run qrpool-fetch <"$T/items"
is "page too long: exit 78" "$rc" 78
like "... naming the file, the line and the pool" "$(cat "$T/err")" \
  "qrpool.cfg:[0-9]+: pool 'poster': page is too long \\(2106 bytes, at most 1024"
is "... no quota taken" "$(sqlite3 "$T/staging.db" 'SELECT coalesce(sum(taken), 0) FROM quota_windows')" 0
is "... every item still planned" "$(count "state = 'planned'")" 3
run qrpool-plan -n /dev/null
is "... and plan refuses the config too: no code minted for a pool fetch refuses" "$rc" 78

# --- CRLF line ends, a CRLF blank line among them: no bad line ----------------------
start_fake crlf
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 2
{ sed 's/$/\r/' "$T/items"; printf '\r\n'; } >"$T/crlf"
run qrpool-fetch <"$T/crlf"
is "CRLF items and a CRLF blank line: exit 0" "$rc:$(cat "$T/err")" "0:"
is "... both fetched" "$(wc -l <"$T/out")" 2

# --- a proxy named in the environment: the calls, the token's too, go through it,
# and without one they go direct -------------------------------------------------------
start_fake proxied
"$PYTHON" "$TESTS_DIR/t/http-proxy" "$T/proxy.port" "$T/proxy.count" >/dev/null 2>"$T/proxy.log" &
at_exit "kill_child $!"
tries=0
until [ -s "$T/proxy.port" ] || [ $tries -gt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 5
# (the runs' own environment is cleared of proxy settings, which would change them)
noproxy="-u no_proxy -u NO_PROXY -u http_proxy -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY"
run env $noproxy http_proxy="http://127.0.0.1:$(cat "$T/proxy.port")" qrpool-fetch <"$T/items"
is "http_proxy: exit 0" "$rc:$(cat "$T/err")" "0:"
is "... every code fetched" "$(count "state = 'fetched'")" 5
is "... through the proxy: the token and the 5 calls" "$(cat "$T/proxy.count")" 6
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 3
run env $noproxy qrpool-fetch <"$T/items"
is "no proxy: exit 0, direct" "$rc:$(count "state = 'fetched'"):$(cat "$T/proxy.count")" "0:3:6"
# A proxy on another host (TEST-NET-1, where nothing answers) is not used for
# the http:// stand-in: the secret would go to it in clear. The calls go direct.
config_for 'concurrency = 4; connect_timeout = "1s";'
: >"$T/items"; plan poster 3
run env $noproxy http_proxy=http://192.0.2.1:3128 all_proxy=http://192.0.2.1:3128 \
  qrpool-fetch --for 20s <"$T/items"
is "http_proxy on another host, api_base http:// on this one: exit 0, direct" \
  "$rc:$(count "state = 'fetched'"):$(cat "$T/err")" "0:3:"

# --- an api_base with a path (a gateway): the calls go under it, direct and
# through a proxy (the fake, which serves no such path, logs what it was asked) ----
start_fake prefixed -vv
curl -sS -d "{\"grant_type\":\"client_credential\",\"appid\":\"$APPID\",\"secret\":\"$SECRET\"}" \
  "$base/cgi-bin/stable_token" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' \
  >"$T/central-token"
config_for "concurrency = 2; token = { source = \"command\"; command = \"cat $T/central-token\"; };"
sed -i "s|api_base = \"$base\"|api_base = \"$base/gw\"|" "$QRPOOL_CONFIG"
: >"$T/items"; plan poster 1
under_gw() { grep -ac "POST /gw/wxa/getwxacodeunlimit" "$T/prefixed.log"; }
run env $noproxy qrpool-fetch --for 2s <"$T/items"
direct=$(under_gw)
proxied=$(cat "$T/proxy.count")
ok "api_base with a path: the call goes under it ($direct)" test "$direct" -gt 0
run env $noproxy http_proxy="http://127.0.0.1:$(cat "$T/proxy.port")" qrpool-fetch --for 2s <"$T/items"
ok "... and through a proxy too ($(under_gw))" test "$(under_gw)" -gt "$direct"
ok "... which it went through ($(cat "$T/proxy.count") requests)" test "$(cat "$T/proxy.count")" -gt "$proxied"
