#!/bin/sh
# fake-wechat answers as tests/WECHAT.md says: tokens, getwxacodeunlimit
# (images checked with zbarimg and by their own headers), every documented
# errcode, the minute quota, each injected fault, statistics, and a load check.
. "${0%/*}/lib.sh"

command -v fake-wechat >/dev/null || skip_all "fake-wechat is not built"
for tool in curl zbarimg; do
  command -v $tool >/dev/null || skip_all "$tool is missing"
done

APPID=wxtest0000000001
SECRET=test-secret-do-not-log
printf '%s\n' "$SECRET" >"$T/secret"
chmod 600 "$T/secret"
PAGE=pages/r/index

# --- helpers -------------------------------------------------------------------

# start NAME ARGS...: starts a server and waits for its port file (a test of
# its own: a server that never announces its port ends the script); sets
# $base and $pid.
start() {
  name=$1; shift
  fake-wechat --appid $APPID --secret-file "$T/secret" --pages "$PAGE,pages/s/index" \
    --port 0 --port-file "$T/$name.port" --stats-file "$T/$name.stats" "$@" 2>"$T/$name.log" &
  pid=$!
  # Only a server still marked running is killed at exit: its pid may be reused.
  : >"$T/$name.running"
  at_exit "[ ! -e '$T/$name.running' ] || kill $pid"
  ok "$name: starts and writes its port file" -- wait_port "$T/$name.port" $pid
  [ -s "$T/$name.port" ] || { sed 's/^/# /' "$T/$name.log"; exit 1; }
  base=http://127.0.0.1:$(cat "$T/$name.port")
}

# wait_port FILE PID: up to 10 s for the port file, while the server lives.
wait_port() {
  tries=0
  until [ -s "$1" ]; do
    tries=$((tries + 1))
    [ $tries -le 200 ] && kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  grep -Eqx '[1-9][0-9]*' "$1"
}

# stop: SIGTERM the last server started; it must exit 0 (a sanitizer report
# or a failed stats write would not).
stop() {
  kill -TERM $pid
  stopped=0
  wait $pid || stopped=$?
  rm -f "$T/$name.running"
  is "$name: SIGTERM: exit status 0" "$stopped" 0
  [ "$stopped" -eq 0 ] || sed 's/^/# /' "$T/$name.log" | tail -20
}

# req METHOD PATH [BODY [CURL-ARGS...]]: the body goes to $T/body; sets $http
# (status; curl's exit status as "curl-N" when no answer came) and $ctype.
req() {
  method=$1 path=$2 data=${3-}
  shift 2; [ $# -gt 0 ] && shift
  answer=$(curl -sS --max-time 20 -o "$T/body" -w '%{http_code} %{content_type}' -X "$method" \
    ${data:+--data-binary "$data"} "$@" "$base$path" 2>"$T/curl.err") || answer="curl-$? -"
  http=${answer%% *}
  ctype=${answer#* }
}

# code TOKEN BODY [CURL-ARGS...]: POST /wxa/getwxacodeunlimit
code() {
  token=$1 data=$2; shift 2
  req POST "/wxa/getwxacodeunlimit?access_token=$token" "$data" \
    -H 'Content-Type: application/json' "$@"
}

# jget FILE KEY...: a value from a JSON file (list indexes as numbers).
jget() {
  $PYTHON -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value)' "$@"
}

errcode() { jget "$T/body" errcode 2>&1; }

# width FILE: the width an image declares (PNG IHDR or JPEG SOF), else fails.
width() {
  $PYTHON -c 'import struct, sys
data = open(sys.argv[1], "rb").read()
if data[:8] == b"\x89PNG\r\n\x1a\n":
    print(struct.unpack(">I", data[16:20])[0]); sys.exit(0)
at = 2 if data[:2] == b"\xff\xd8" else len(data)
while at + 9 <= len(data) and data[at] == 0xFF:
    marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
    if marker in (0xC0, 0xC1, 0xC2):
        print(struct.unpack(">H", data[at + 7:at + 9])[0]); sys.exit(0)
    at += 2 + length
sys.exit("no image size in " + sys.argv[1])' "$1"
}

# 1 if FILE is a JPEG that ends with its end-of-image marker.
jpeg_whole() {
  $PYTHON -c 'import sys; d = open(sys.argv[1], "rb").read()
print(int(d[:2] == b"\xff\xd8" and d[-2:] == b"\xff\xd9"))' "$1"
}

# corner_alpha FILE: the alpha (0-255) of a PNG's top-left pixel, from its
# chunks: every PNG filter leaves the first pixel's bytes as they are.
corner_alpha() {
  $PYTHON -c 'import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
at, chunks, idat = 8, {}, b""
while at < len(data):
    length, kind = struct.unpack(">I4s", data[at:at + 8])
    body = data[at + 8:at + 8 + length]
    chunks[kind] = body
    idat += body if kind == b"IDAT" else b""
    at += 12 + length
width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
first = zlib.decompress(idat)[1:9]
if color == 6: print(first[3 * depth // 8])
elif color == 4: print(first[depth // 8])
elif color == 3:
    index, alpha = first[0] >> (8 - depth), chunks.get(b"tRNS", b"")
    print(alpha[index] if index < len(alpha) else 255)
else: print(255)' "$1"
}

# sleep_until EXPRESSION: sleeps until that time (seconds since the epoch).
sleep_until() { sleep "$($PYTHON -c "import time; print(max(0, $1 - time.time()))")"; }

decode() { zbarimg -q --raw "$1" 2>/dev/null; }

# classic, stable [FORCE]: fetch a token into $tok (not in $(...): req sets $http);
# $tok is empty when an error came (errcode tells which).
classic() {
  req GET "/cgi-bin/token?grant_type=client_credential&appid=$APPID&secret=$SECRET"
  tok=$(jget "$T/body" access_token 2>/dev/null) || tok=
}

stable() {
  req POST /cgi-bin/stable_token \
    "{\"grant_type\":\"client_credential\",\"appid\":\"$APPID\",\"secret\":\"$SECRET\",\"force_refresh\":${1:-false}}"
  tok=$(jget "$T/body" access_token 2>/dev/null) || tok=
}

# day_start MS: the next start of a period of MS milliseconds (its days and
# minutes start at multiples of it: midnight UTC+8 is one, for 8 h divides).
day_start() { $PYTHON -c "import time; print((int(time.time() * 1000) // $1 + 1) * $1 / 1000 + 0.05)"; }

stats() { curl -sS --max-time 20 -o "$T/stats" "$base/_stats" && jget "$T/stats" "$@"; }

# --- usage -------------------------------------------------------------------

# A server that starts when it should refuse would never return: timeout.
run timeout 10 fake-wechat --help
is "--help exits 0" "$rc" 0
like "--help documents the faults" "$(cat "$T/out")" "--drop-rate P"
for bad in "--listen 192.168.1.10" "--listen localhost" "--minute 0" "--busy-rate 1.5" \
    "--latency 10x" "--quota -1" "--quota-errcode 45010" "--bogus"; do
  # shellcheck disable=SC2086
  run timeout 10 fake-wechat --appid $APPID --secret-file "$T/secret" $bad
  is "usage error exits 64: $bad" "$rc" 64
done
run timeout 10 fake-wechat --secret-file "$T/secret"
is "--appid is required" "$rc" 64
run timeout 10 fake-wechat --appid $APPID
is "a secret is required" "$rc" 64
run timeout 10 fake-wechat --appid $APPID --secret-file "$T/missing"
is "an unreadable secret file is an I/O error" "$rc" 74

# --- tokens --------------------------------------------------------------------

start main --token-grace 1s -v
like "the port is announced on stderr" "$(cat "$T/main.log")" \
  "info: listening on 127\.0\.0\.1:$(cat "$T/main.port")$"

classic; t1=$tok
is "classic token: HTTP 200" "$http" 200
like "classic token: a token" "$t1" '^[A-Za-z0-9_]{32,512}$'
is "classic token: expires_in 7200" "$(jget "$T/body" expires_in)" 7200
code "$t1" '{"scene":"abc"}'
is "a fresh classic token works" "$ctype" image/jpeg
classic; t2=$tok
like "each classic fetch issues a new token" "$t2" "^fk_"
ok "the second classic token differs" -- [ "$t1" != "$t2" ]
code "$t1" '{"scene":"abc"}'
is "the replaced classic token works during the grace period" "$ctype" image/jpeg
sleep 1.2
code "$t1" '{"scene":"abc"}'
is "the replaced classic token is refused after the grace period" "$(errcode)" 40001
code "$t2" '{"scene":"abc"}'
is "the latest classic token still works" "$ctype" image/jpeg

stable; s1=$tok
is "stable token: expires_in" "$(jget "$T/body" expires_in)" 7200
stable; s2=$tok
is "stable token: the same token on a second call" "$s2" "$s1"
left=$(jget "$T/body" expires_in)
ok "stable token: expires_in counts down ($left)" -- [ "$left" -lt 7200 -a "$left" -gt 7100 ]
ok "stable tokens are not classic ones" -- [ "$s1" != "$t2" ]
classic; t3=$tok
code "$s1" '{"scene":"abc"}'
is "a classic fetch does not disturb the stable token" "$ctype" image/jpeg
stable true; s3=$tok
ok "force_refresh issues a new stable token" -- [ "$s3" != "$s1" ]
code "$s1" '{"scene":"abc"}'
is "the old stable token is invalid at once (WECHAT.md), with no grace period" "$(errcode)" 40001
stable
is "a plain stable call now returns the forced one" "$tok" "$s3"

while IFS='|' read -r expected query; do
  req GET "/cgi-bin/token?$query"
  is "cgi-bin/token $query" "$(errcode)" "$expected"
done <<EOF
40002|grant_type=password&appid=$APPID&secret=$SECRET
40002|appid=$APPID&secret=$SECRET
40013|grant_type=client_credential&appid=wxother&secret=$SECRET
40125|grant_type=client_credential&appid=$APPID&secret=
40001|grant_type=client_credential&appid=$APPID&secret=wrong
EOF
while IFS='|' read -r expected body; do
  req POST /cgi-bin/stable_token "$body"
  is "cgi-bin/stable_token $body" "$(errcode)" "$expected"
done <<EOF
47001|grant_type=client_credential&appid=$APPID
47001|{"grant_type":"client_credential","appid":"$APPID","secret":"$SECRET","force_refresh":"yes"}
40002|{"grant_type":"x","appid":"$APPID","secret":"$SECRET"}
40013|{"grant_type":"client_credential","appid":"wxother","secret":"$SECRET"}
40001|{"grant_type":"client_credential","appid":"$APPID","secret":"wrong"}
EOF

# --- getwxacodeunlimit: images ---------------------------------------------------

code "$t3" "{\"scene\":\"Ab9-._~!\$&'()*+,/:;=?@#\",\"page\":\"$PAGE\",\"check_path\":true,\"env_version\":\"release\"}"
cp "$T/body" "$T/code.jpeg"
is "image: HTTP 200" "$http" 200
is "image: Content-Type image/jpeg" "$ctype" image/jpeg
is "image: decodes to the scene (every allowed punctuation)" "$(decode "$T/code.jpeg")" \
  "Ab9-._~!\$&'()*+,/:;=?@#"
is "image: default width 430" "$(width "$T/code.jpeg")" 430
is "image: a whole JPEG" "$(jpeg_whole "$T/code.jpeg")" 1
code "$t3" '{"scene":"abc"}' -D "$T/headers"
like "image: Content-disposition attachment with a .jpeg name" "$(cat "$T/headers")" \
  '[Cc]ontent-[Dd]isposition: attachment; filename="[^"]+\.jpeg"'

while read -r request_width expected; do
  scene=w$(printf '%s' "$request_width" | tr -dc 0-9)
  code "$t3" "{\"scene\":\"$scene\",\"width\":$request_width}"
  cp "$T/body" "$T/w.jpeg"
  is "width $request_width gives $expected px" "$(width "$T/w.jpeg")" "$expected"
  is "width $request_width decodes" "$(decode "$T/w.jpeg")" "$scene"
done <<EOF
280 280
333 333
1280 1280
"640" 640
100 280
5000 1280
EOF

code "$t3" '{"scene":"clear1","is_hyaline":true,"width":500}'
cp "$T/body" "$T/code.png"
is "is_hyaline: Content-Type image/png" "$ctype" image/png
is "is_hyaline: 500 px" "$(width "$T/code.png")" 500
is "is_hyaline: decodes" "$(decode "$T/code.png")" clear1
is "is_hyaline: the corner (quiet zone) is transparent" "$(corner_alpha "$T/code.png")" 0
code "$t3" '{"scene":"red","line_color":{"r":"200","g":0,"b":0}}'
cp "$T/body" "$T/red.jpeg"
is "line_color with strings: an image that decodes" "$(decode "$T/red.jpeg")" red
code "$t3" '{"scene":"half","is_hyaline":true,"width":"500.7","line_color":{"r":"200.5","g":"0","b":0}}'
cp "$T/body" "$T/half.png"
is "numbers with a fraction in strings: an image, as the numbers would give (width 500)" \
  "$ctype $(width "$T/half.png") $(decode "$T/half.png")" "image/png 500 half"
code "$t3" "{\"scene\":\"x\",\"page\":\"pages/unpublished\",\"check_path\":false,\"env_version\":\"develop\"}"
is "check_path false allows an unpublished page" "$ctype" image/jpeg
code "$t3" '{"scene":"12345678901234567890123456789012","env_version":"trial"}'
cp "$T/body" "$T/long.jpeg"
is "a 32-character scene decodes" "$(decode "$T/long.jpeg")" 12345678901234567890123456789012

# --- getwxacodeunlimit: every documented errcode --------------------------------

while IFS='|' read -r expected body; do
  code "$t3" "$body"
  is "errcode $expected for $body" "$(errcode)" "$expected"
done <<EOF
40169|{"page":"$PAGE"}
40169|{"scene":""}
40169|{"scene":"123456789012345678901234567890123"}
40129|{"scene":"a b"}
40129|{"scene":"a%b"}
40129|{"scene":"\u4e2d"}
40129|{"scene":"\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d"}
40169|{"scene":"\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d\u4e2d"}
41030|{"scene":"abc","page":"/$PAGE"}
41030|{"scene":"abc","page":"$PAGE?x=1"}
41030|{"scene":"abc","page":"/$PAGE","check_path":false}
41030|{"scene":"abc","page":"pages/unpublished?x=1","check_path":false}
41030|{"scene":"abc","page":"pages/unpublished"}
41030|{"scene":"abc","page":"pages/unpublished","check_path":true}
40097|{"scene":"abc","env_version":"prod"}
47001|["scene","abc"]
47001|{"scene":"abc","width":"wide"}
47001|{"scene":"abc","is_hyaline":"yes"}
EOF
req POST "/wxa/getwxacodeunlimit?access_token=$t3" 'scene=abc&page=pages/r/index'
is "47001 for a form post" "$(errcode)" 47001
# A JSON body in a form post (libcurl's Content-Type for a POST unless told): refused as well.
req POST "/wxa/getwxacodeunlimit?access_token=$t3" '{"scene":"abc"}'
is "47001 for JSON posted as a form (application/x-www-form-urlencoded)" "$(errcode)" 47001
req POST "/wxa/getwxacodeunlimit?access_token=$t3" '' -F 'scene=abc'
is "... and as multipart/form-data" "$(errcode)" 47001
is "errors: HTTP 200" "$http" 200
is "errors: Content-Type as WeChat's" "$ctype" "application/json; encoding=utf-8"
like "errors: errmsg ends with a rid" "$(jget "$T/body" errmsg)" \
  '^data format error rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$'
req POST /wxa/getwxacodeunlimit '{"scene":"abc"}'
is "41001 without access_token" "$(errcode)" 41001
code "" '{"scene":"abc"}'
is "41001 with an empty access_token" "$(errcode)" 41001
code "not-a-token" '{"scene":"abc"}'
is "40001 for an unknown token" "$(errcode)" 40001

req POST /_control/invalidate-tokens
is "invalidate-tokens answers 200" "$http" 200
code "$t3" '{"scene":"abc"}'
is "40001 after invalidate-tokens" "$(errcode)" 40001
classic; t4=$tok
code "$t4" '{"scene":"abc"}'
is "a token fetched afterwards works" "$ctype" image/jpeg
req POST /_control/expire-tokens
code "$t4" '{"scene":"abc"}'
is "42001 after expire-tokens" "$(errcode)" 42001
stable; s4=$tok
ok "stable_token replaces an expired token" -- [ "$s4" != "$s3" ]

# More classic tokens than the server remembers (1024) leave the stable one alone.
$PYTHON - "${base##*:}" "$APPID" "$SECRET" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(1100):
    c.request("GET", "/cgi-bin/token?grant_type=client_credential&appid=%s&secret=%s" % tuple(sys.argv[2:4]))
    c.getresponse().read()
PY
code "$s4" '{"scene":"abc"}'
is "1,100 classic tokens later, the stable token still works" "$ctype" image/jpeg

req GET /wxa/getwxacodeunlimit
is "the wrong method: 405" "$http" 405
req GET /cgi-bin/nothing
is "an unknown path: 404" "$http" 404

is "stats: tokens issued (classic)" "$(stats tokens_issued classic)" 1104
is "stats: tokens issued (stable, forced)" \
  "$(jget "$T/stats" tokens_issued stable) $(jget "$T/stats" tokens_issued stable_forced)" "2 1"
is "stats: 41030 answers counted" "$(jget "$T/stats" endpoints getwxacodeunlimit errcodes 41030)" 6
is "stats: no quota violation" "$(jget "$T/stats" quota_violations)" 0

live=$(stats calls_total)
stop
is "SIGTERM: the stats file holds every call" "$(jget "$T/main.stats" calls_total)" "$live"
is "stats: every call is an image or an errcode" "$($PYTHON -c 'import json, sys
s = json.load(open(sys.argv[1])); e = s["endpoints"]["getwxacodeunlimit"]
print(e["requests"] == e["ok"] + sum(e["errcodes"].values()) == s["calls_total"] > 30)' "$T/main.stats")" True
like "the log says it stopped" "$(cat "$T/main.log")" "stopping on signal 15"
ok "-v logs requests" -- grep -q "POST /wxa/getwxacodeunlimit" "$T/main.log"
leaks=$(grep -c -e "$SECRET" -e "$t1" -e "$s1" -e fk_ "$T/main.log" || true)
is "no secret or token in the log" "$leaks" 0

# --- the stable token rotates before it expires -----------------------------------

# Times are absolute (from t0), so a slow machine shifts nothing by accident.
# r1 lives from t0 to t0+4 and is due for rotation from t0+1; r2 lives from
# t0+1.5 to t0+5.5. Each check has half a second or more to spare.
start rotate --token-lifetime 4s --stable-margin 3s
t0=$($PYTHON -c 'import time; print(time.time())')
stable; r1=$tok
is "lifetime 4s: expires_in 4" "$(jget "$T/body" expires_in)" 4
sleep_until "$t0 + 1.5"
stable; r2=$tok
ok "within the margin a new stable token is issued" -- [ "$r2" != "$r1" ]
code "$r1" '{"scene":"abc"}'
is "the rotated-out token works until it expires" "$ctype" image/jpeg
sleep_until "$t0 + 4.5"
code "$r1" '{"scene":"abc"}'
is "42001 once it has expired" "$(errcode)" 42001
code "$r2" '{"scene":"abc"}'
is "the rotated-in token still works" "$ctype" image/jpeg
stop

# --- the token endpoints' own limits (WECHAT.md), counted per day and minute --------

# A 10 s day with 5 s minutes, from t0 (a day's start, so a minute's too): the
# calls up to the third stable_token's must fall in one minute, about 15 curl
# and python runs (2 s minutes were seen too short on a loaded machine).
start limits --token-daily 2 --stable-per-minute 2 --stable-daily 3 --minute 5s --day 10s
t0=$(day_start 10000)
sleep_until "$t0"
classic; classic; c2=$tok
classic
is "cgi-bin/token: the third call of a 2-a-day limit answers 45009" "$(errcode)" 45009
like "... with WeChat's errmsg" "$(jget "$T/body" errmsg)" "^reach max api daily quota limit rid: "
code "$c2" '{"scene":"abc"}'
is "... and replaces no token: the last one still works" "$ctype" image/jpeg
stable; stable
ok "stable_token: two calls in a minute of 2" -- [ -n "$tok" ]
stable
is "stable_token: the third in that minute answers 45011" "$(errcode)" 45011
sleep_until "$t0 + 5"
stable
ok "stable_token: the next minute, a token again" -- [ -n "$tok" ]
stable
is "stable_token: the fourth of a 3-a-day limit answers 45009" "$(errcode)" 45009
sleep_until "$t0 + 10"
classic; c3=$tok
stable; s4=$tok
ok "the next day, both endpoints answer again" -- [ -n "$c3" -a -n "$s4" ]
is "refused calls issue nothing" "$(stats tokens_issued classic) $(jget "$T/stats" errcodes 45009)" "3 2"
stop

start forced --forced-daily 2 --forced-gap 1s
# Its day ends at midnight in Beijing (16:00 UTC): not within the next ~4 s.
to_midnight=$(( 86400 - ($(date +%s) + 28800) % 86400 ))
[ $to_midnight -gt 10 ] || sleep $((to_midnight + 1))
stable true; f1=$tok
stable true; f2=$tok
is "force_refresh again within --forced-gap does not refresh: the same token" "$f2" "$f1"
code "$f1" '{"scene":"abc"}'
is "... which still works" "$ctype" image/jpeg
sleep 1.2
stable true; f3=$tok
ok "after the gap, force_refresh refreshes" -- [ -n "$f3" -a "$f3" != "$f1" ]
sleep 1.2
stable true
is "the third refresh of a 2-a-day limit answers 45009" "$(errcode)" 45009
stable
is "... and a plain call still gets the current token" "$tok" "$f3"
is "forced refreshes counted: 2" "$(stats tokens_issued stable_forced)" 2
stop

# --token-errcode: the token endpoints' own refusals, instead of a token.
for refusal in 40164 40243 89503; do
  start token-$refusal --token-errcode $refusal:1
  classic
  is "--token-errcode $refusal:1: cgi-bin/token answers $refusal" "$(errcode)" $refusal
  stable
  is "... and stable_token too" "$(errcode)" $refusal
  is "... counted as token_errcode faults" "$(stats faults token_errcode)" 2
  stop
done
run fake-wechat --appid $APPID --secret x --token-errcode 41030:1
is "--token-errcode with an errcode of getwxacodeunlimit: exit 64" "$rc" 64

# --- quota per minute ------------------------------------------------------------

start quota --minute 2s --quota 5
stable; q=$tok
# Start just after a window boundary, so the six calls share one window.
sleep_until "(int(time.time()) // 2 + 1) * 2 + 0.05"
answers=
for n in 1 2 3 4 5 6; do
  code "$q" "{\"scene\":\"q$n\"}"
  answers="$answers ${ctype%%;*}"
done
is "five calls in a window succeed" "$answers" \
  " image/jpeg image/jpeg image/jpeg image/jpeg image/jpeg application/json"
is "the sixth is refused with 45009" "$(errcode)" 45009
is "stats: over_budget_attempts" "$(stats over_budget_attempts)" 1
is "stats: the window's counts" \
  "$(jget "$T/stats" windows 0 calls) $(jget "$T/stats" windows 0 charged) $(jget "$T/stats" windows 0 ok) $(jget "$T/stats" windows 0 quota_refused)" \
  "6 5 5 1"
is "stats: the window asked for over the quota" "$(jget "$T/stats" quota_violations)" 1
# (Counted over every window: a loaded machine may send it in the next.)
calls_all() {
  stats >/dev/null && $PYTHON -c 'import json, sys
print(sum(w["calls"] for w in json.load(open(sys.argv[1]))["windows"]))' "$T/stats"
}
before=$(calls_all)
code "garbage" '{"scene":"q"}'
is "stats: a refused token is not charged ($before calls before it)" "$(calls_all)" "$before"
sleep 2
code "$q" '{"scene":"again"}'
is "calls work again in the next window" "$ctype" image/jpeg
stop

# A call counts in the minute it arrives in (--quota-at arrival, the default), even
# when its answer leaves in the next; with --quota-at answer, in the answer's.
# (0.75 s before the boundary, answered 1.5 s later: a curl late or early by
# up to 0.75 s, on a loaded machine, still arrives before it and is answered after.)
for at in arrival answer; do
  start quota-$at --minute 4s --quota 1 --latency 1500 --quota-at $at
  stable; q=$tok
  sleep_until "(int(time.time()) // 4 + 1) * 4 + 3.25"
  code "$q" '{"scene":"late"}'
  first=${ctype%%;*}
  code "$q" '{"scene":"next"}'
  second=${ctype%%;*}
  [ $at = arrival ] && want="image/jpeg image/jpeg" || want="image/jpeg application/json"
  is "--quota-at $at: a call sent 0.75 s before a boundary, then one after it" "$first $second" "$want"
  stop
done

# --quota-window rolling: the quota counts the minute before each call, not
# the clock's: calls spent in the middle of one window still count at the
# start of the next, and work again a minute after them.
start rolling --minute 2s --quota 3 --quota-window rolling
stable; q=$tok
t0=$(day_start 2000)
sleep_until "$t0 + 0.95"
for n in 1 2 3; do code "$q" "{\"scene\":\"r$n\"}"; printf '%s\n' "${ctype%%;*}"; done >"$T/rolling"
code "$q" '{"scene":"r4"}'
is "rolling: 3 images, then 45009 in the same window" "$(sort -u "$T/rolling") $(errcode)" "image/jpeg 45009"
sleep_until "$t0 + 2.05"
code "$q" '{"scene":"r5"}'
is "... still 45009 as the next window of the clock starts (a second after them)" "$(errcode)" 45009
sleep_until "$t0 + 3.5"
code "$q" '{"scene":"r6"}'
is "... an image a minute after them" "$ctype" image/jpeg
is "... the clock's windows counted as ever" "$(stats windows 0 charged) $(jget "$T/stats" windows 1 charged) $(jget "$T/stats" windows 1 quota_refused)" "3 1 1"
stop

# ... and a slow call, counted as it arrived but charged once answered, after a
# quicker call that arrived later (--seed 1: the first call is the slow one),
# is the older of the two: a minute after it, the quota has room again.
# (A 4-second minute, so that each moment below has 0.4 s of slack either way.)
start rolling-slow --minute 4s --quota 2 --quota-window rolling --seed 1 --slow-rate 0.5 --slow 3s
stable; q=$tok
t0=$(day_start 1000)
sleep_until "$t0 + 0.2"
curl -sS --max-time 20 -o "$T/slow.body" -w '%{content_type}' -X POST -H 'Content-Type: application/json' \
  --data-binary '{"scene":"s1"}' "$base/wxa/getwxacodeunlimit?access_token=$q" >"$T/slow.ctype" & slow=$!
sleep_until "$t0 + 1.2"
code "$q" '{"scene":"s2"}'; quick=${ctype%%;*}
wait $slow
is "rolling: a slow call, then a quick one answered first: two images, one slow" \
  "$(cut -d';' -f1 "$T/slow.ctype") $quick $(stats faults slow)" "image/jpeg image/jpeg 1"
sleep_until "$t0 + 4.6"
code "$q" '{"scene":"s3"}'
is "... a minute after the slow one arrived: an image (one call in that minute)" "${ctype%%;*}" image/jpeg
code "$q" '{"scene":"s4"}'
is "... and then 45009 (the quick one and this)" "$(errcode)" 45009
stop

start quota11 --quota 0 --quota-errcode 45011
stable; code "$tok" '{"scene":"abc"}'
is "--quota-errcode 45011" "$(errcode)" 45011
like "... with WECHAT.md's errmsg" "$(jget "$T/body" errmsg)" \
  "^api minute-quota reach limit, must slower, retry next minute rid: "
stop

# --- faults at rate 1.0 ------------------------------------------------------------

start busy --busy-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "busy: errcode -1" "$(errcode)" -1
like "... with WECHAT.md's errmsg" "$(jget "$T/body" errmsg)" "^system busy rid: "
is "busy: counted" "$(stats faults busy)" 1
stop

start errcode --errcode 48001:1
stable; code "$tok" '{"scene":"abc"}'
is "--errcode 48001:1: errcode 48001" "$(errcode)" 48001
is "... counted as a fault and an answer" \
  "$(stats faults errcode) $(jget "$T/stats" endpoints getwxacodeunlimit errcodes 48001)" "1 1"
stop
run fake-wechat --appid $APPID --secret x --errcode 12345:1
is "--errcode with a code outside WECHAT.md's table: exit 64" "$rc" 64

start http5xx --http5xx-rate 1
stable; code "$tok" '{"scene":"abc"}'
like "http5xx: a 5xx status" "$http" '^50[023]$'
is "http5xx: counted" "$(stats faults http5xx)" 1
stop

start http_status --http-status 408,429:1 --seed 1   # (seeded: 8 draws of one code would be 0.8%)
stable
statuses=
for i in 1 2 3 4 5 6 7 8; do
  code "$tok" '{"scene":"abc"}'
  statuses="$statuses $http"
done
like "--http-status 408,429:1: each answer one of them" "$statuses" '^( (408|429)){8}$'
like "... both drawn" "$statuses" '408.*429|429.*408'
is "... counted as http_status faults" "$(stats faults http_status)" 8
stop
start retry_after --http-status 429:1 --retry-after 2500ms
stable; code "$tok" '{"scene":"abc"}' -D "$T/headers"
is "--retry-after 2500ms: a 429 says Retry-After: 3 (whole seconds, rounded up)" \
  "$http $(tr -d '\r' <"$T/headers" | sed -n 's/^[Rr]etry-[Aa]fter: //p')" "429 3"
curl -sS -o /dev/null -X POST "$base/_control/outage?for=5000"
code "$tok" '{"scene":"abc"}' -D "$T/headers"
is "... and the outage's 503 too" \
  "$http $(tr -d '\r' <"$T/headers" | sed -n 's/^[Rr]etry-[Aa]fter: //p')" "503 3"
stop
run fake-wechat --appid $APPID --secret x --http-status 200:1
is "--http-status 200: exit 64" "$rc" 64
run fake-wechat --appid $APPID --secret x --http-status 408
is "--http-status without a probability: exit 64" "$rc" 64
like "... saying the form" "$(cat "$T/err")" "error: --http-status: CODE\\[,CODE\\.\\.\\.\\]:P, as 408:0.5 "

start empty --empty-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "empty: HTTP 200, labelled image/jpeg" "$http $ctype" "200 image/jpeg"
ok "empty: no bytes" -- [ ! -s "$T/body" ]
is "empty: not counted as ok" "$(stats ok_total) $(jget "$T/stats" faults empty)" "0 1"
stop

start padded --padded-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "padded: ends in 16 zero bytes" "$(tail -c 16 "$T/body" | od -An -tx1 | tr -d ' \n')" \
  00000000000000000000000000000000
head -c -16 "$T/body" >"$T/unpadded"
is "... after a whole JPEG" "$(jpeg_whole "$T/unpadded")" 1
is "... of the scene" "$(decode "$T/unpadded")" abc
is "padded: counted as ok and as a fault" "$(stats ok_total) $(jget "$T/stats" faults padded)" "1 1"
stop

start big --image-bytes 200000
stable; code "$tok" '{"scene":"abc"}'
is "--image-bytes 200000: a JPEG of 200,000 bytes" "$ctype $(wc -c <"$T/body" | tr -d ' ')" "image/jpeg 200000"
is "... whole, of the scene" "$(jpeg_whole "$T/body") $(decode "$T/body")" "1 abc"
code "$tok" '{"scene":"abc","is_hyaline":true}'
cp "$T/body" "$T/big.png"
is "... a PNG too" "$ctype $(wc -c <"$T/big.png" | tr -d ' ')" "image/png 200000"
ok "... whole (pngcheck: chunks and CRCs)" -- pngcheck -q "$T/big.png"
is "... of the scene" "$(decode "$T/big.png")" abc
stop

start truncate --truncate-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "truncate: still labelled image/jpeg" "$ctype" image/jpeg
is "truncate: the JPEG stops short" "$(jpeg_whole "$T/body")" 0
ok "truncate: the body is not empty" -- [ -s "$T/body" ]
is "truncate: not counted as ok" "$(stats ok_total) $(jget "$T/stats" faults truncate)" "0 1"
stop

start json_as_image --json-as-image-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "json-as-image: labelled image/jpeg" "$ctype" image/jpeg
is "json-as-image: the body is an errcode" "$(errcode)" -1
stop
start json_as_image_errcode --json-as-image-rate 1 --errcode 45009:1
stable; code "$tok" '{"scene":"abc"}'
is "json-as-image with --errcode: that errcode, labelled image/jpeg" "$ctype $(errcode)" "image/jpeg 45009"
stop

start html --html-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "html: HTTP 200, an HTML page" "$http $ctype" "200 text/html; charset=utf-8"
like "... no image in it" "$(cat "$T/body")" "^<html>"
is "... counted as a fault, not an image" "$(stats ok_total) $(jget "$T/stats" faults html)" "0 1"
stop
start not_image --not-image-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "not-image: HTTP 200, labelled image/jpeg" "$http $ctype" "200 image/jpeg"
is "... the bytes are a GIF's" "$(head -c 6 "$T/body")" GIF89a
is "... counted as a fault, not an image" "$(stats ok_total) $(jget "$T/stats" faults not_image)" "0 1"
stop

start long_tokens --token-length 512
stable
is "--token-length 512: tokens of 512 characters" "${#tok}" 512
code "$tok" '{"scene":"abc"}'
is "... which work" "$ctype $(decode "$T/body")" "image/jpeg abc"
code "${tok%?}" '{"scene":"abc"}'
is "... one a character short does not" "$(errcode)" 40001
stop

start drop --drop-rate 1
stable; code "$tok" '{"scene":"abc"}'
is "drop: no answer (curl: empty reply)" "$http" curl-52
is "drop: counted" "$(stats faults drop)" 1
stop

start slow --slow-rate 1 --slow 1s --latency 100 --jitter 50
stable; token=$tok
answer=$(curl -sS --max-time 20 -o /dev/null -w '%{time_total} %{content_type}' \
  --data-binary '{"scene":"abc"}' -H 'Content-Type: application/json' \
  "$base/wxa/getwxacodeunlimit?access_token=$token")
elapsed=${answer%% *}
is "slow + latency: at least 1.1 s ($elapsed), for an image" \
  "$($PYTHON -c "print(int(1.1 <= $elapsed < 5))") ${answer#* }" "1 image/jpeg"
elapsed=$(curl -sS --max-time 20 -o /dev/null -w '%{time_total}' "$base/_stats")
is "latency applies to getwxacodeunlimit only ($elapsed)" \
  "$($PYTHON -c "print(int($elapsed < 0.6))")" 1
stop

start fail_after --fail-after 2
stable; token=$tok
answers=
for n in 1 2 3; do
  code "$token" '{"scene":"abc"}'
  answers="$answers ${ctype%%;*}"
done
is "fail-after 2: two images, then errors" "$answers" " image/jpeg image/jpeg application/json"
is "fail-after 2: the third is errcode -1" "$(errcode)" -1
stop

# The same seed replays the same faults on one connection.
for round in 1 2; do
  start "seed$round" --seed 7 --busy-rate 0.5
  stable; token=$tok
  curl -sS --max-time 20 -o /dev/null -w '%{stderr}%{content_type}\n' --data-binary '{"scene":"abc"}' -H 'Content-Type: application/json' \
    "$base/wxa/getwxacodeunlimit?access_token=$token&n=[1-24]" 2>"$T/seed$round.types" >/dev/null
  stop
done
ok "--seed replays the same faults" -- cmp -s "$T/seed1.types" "$T/seed2.types"
is "--seed 7, rate 0.5: both answers occur" "$(sort -u "$T/seed1.types" | wc -l)" 2

# --- load sanity: 200 concurrent keep-alive connections, 2,000 calls ------------------

start load --latency 50
stable; token=$tok
curl -sS --max-time 60 --no-progress-meter --parallel --parallel-max 200 -o /dev/null \
  -w '%{stderr}%{http_code} %{content_type}\n' --data-binary '{"scene":"load"}' -H 'Content-Type: application/json' \
  "$base/wxa/getwxacodeunlimit?access_token=$token&n=[1-2000]" 2>"$T/load.answers" >/dev/null || true
is "load: 2,000 images" "$(grep -c '^200 image/jpeg$' "$T/load.answers")" 2000
is "load: the server counted 2,000" "$(stats ok_total)" 2000
concurrent=$(jget "$T/stats" connections max_concurrent)
ok "load: at least 100 connections at once ($concurrent)" -- [ "$concurrent" -ge 100 ]
ok "load: connections were kept alive" -- [ "$(jget "$T/stats" connections total)" -le 210 ]
stop
