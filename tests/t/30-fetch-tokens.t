#!/bin/sh
# Access tokens: refreshed ahead of expiry; an expired or invalidated token
# costs one refresh, not a storm; classic tokens invalidated elsewhere; a
# central token command; refused credentials stop the wechat pools.
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"

# fetch_meanwhile CALLS COMMAND...: runs qrpool-fetch on $T/items and, once the
# fake has answered CALLS of its calls (so it holds a token, however slow the
# machine), runs COMMAND (something done "elsewhere"); sets $rc, $T/out, $T/err.
fetch_meanwhile() {  # (at $FETCH_VERBOSITY, -v unless set)
  qrpool-fetch "${FETCH_VERBOSITY:--v}" <"$T/items" >"$T/out" 2>"$T/err" & fetch=$!
  calls=$1; shift
  tries=0
  while [ "$(stats endpoints getwxacodeunlimit requests)" -lt "$calls" ] && [ $tries -lt 600 ]; do
    sleep 0.05; tries=$((tries + 1))
  done
  "$@"
  rc=0; wait $fetch || rc=$?
}

# recovered WHAT N ERRCODE CONCURRENCY: exit 0, all N fetched, and only the
# calls in flight refused with ERRCODE.
recovered() {
  is "$1: exit 0" "$rc" 0
  is "$1: every code fetched" "$(count "state = 'fetched'")" "$2"
  refused=$(stats errcodes "$3")
  ok "$1: only the calls in flight were refused ($refused)" \
    [ "$refused" -ge 1 -a "$refused" -le "$4" ]
}

# --- a token that expires mid-run is refreshed ahead of time ---------------------
start_fake lifetime --token-lifetime 2s --stable-margin 600ms --latency 40
config_for 'concurrency = 4;'
plan poster 300
started=$(date +%s)
run qrpool-fetch -v <"$T/items"
took=$(($(date +%s) - started))
is "short-lived tokens: exit 0" "$rc" 0
is "short-lived tokens: every code fetched" "$(count "state = 'fetched'")" 300
issued=$(stats tokens_issued stable)
ok "refreshed along the way ($issued stable tokens)" [ "$issued" -ge 2 ]
calls=$(stats endpoints stable_token requests)
# (One a 1.4 s at most, tokens of 2 s: a slow machine's longer run may take more.)
ok "no refresh storm ($calls stable_token calls for a run of $took s)" [ "$calls" -le $((took + 5)) ]
expired=$(stats errcodes 42001)
ok "at most the calls in flight refused as expired ($expired)" [ "$expired" -le 4 ]

# --- every token expires at once: one refresh, one retry ------------------------
start_fake expire --latency 30
config_for 'concurrency = 8;'
: >"$T/items"; plan poster 300
fetch_meanwhile 20 curl -sS -o /dev/null -X POST "$base/_control/expire-tokens"
recovered "expired mid-run" 300 42001 8
is "expired mid-run: two stable_token calls in all" "$(stats endpoints stable_token requests)" 2

# --- WeChat refuses a valid stable token now and then (40014): the same token,
# handed back by stable_token, is taken again; the run goes on ----------------------
start_fake spurious --errcode 40014:0.05 --latency 50 --seed 2
config_for 'concurrency = 16;'
: >"$T/items"; plan poster 600
run qrpool-fetch --for 60s <"$T/items"
refusals=$(stats errcodes 40014)
is "spurious 40014 ($refusals): exit 0" "$rc" 0
is "spurious 40014: every code fetched" "$(count "state = 'fetched'")" 600
is "spurious 40014: no call ever went without a token" "$(stats errcodes 41001)" 0
ok "spurious 40014: no refresh storm ($(stats endpoints stable_token requests) stable_token calls)" \
  [ "$(stats endpoints stable_token requests)" -le $((2 * refusals + 1)) ]
like "spurious 40014: said" "$(cat "$T/err")" "the token endpoint gave the token WeChat refused: trying it again"
retaken=$(stats endpoints stable_token requests)
ok "... taken again more than once ($retaken stable_token calls)" [ "$retaken" -ge 3 ]
is "... and said once (a warning each, before)" \
  "$(grep -c "gave the token WeChat refused" "$T/err")" 1

# --- classic: another holder takes a new token, ours stops working ----------------
start_fake classic --token-grace 0 --latency 30
config_for 'concurrency = 4; token = { source = "classic"; };'
: >"$T/items"; plan poster 200
# At -vv: classic's token URL holds the secret, which no debug line may show.
FETCH_VERBOSITY=-vv fetch_meanwhile 20 curl -sS -o /dev/null \
  "$base/cgi-bin/token?grant_type=client_credential&appid=$APPID&secret=$SECRET"
recovered "classic invalidated elsewhere" 200 40001 4
is "classic: ours, the other holder's, and ONE refresh" "$(stats endpoints token requests)" 3
like "classic: warned about" "$(cat "$T/err")" "warning: token source 'classic'"
like "classic: at -vv (debug lines said)" "$(cat "$T/err")" "debug: "
token=$(sql "SELECT token FROM wechat_tokens WHERE source = 'classic'")
ok "classic: a token is cached" test -n "$token"
cat "$T/out" "$T/err" >"$T/all-output"
is "classic: neither the secret nor the token in any output, at -vv" \
  "$(grep -c -e "$SECRET" -e "$token" "$T/all-output")" 0

# --- tokens of WeChat's greatest length (512), from both endpoints: kept whole --------
for source in stable classic; do
  start_fake "long-$source" --token-length 512 --latency 20
  config_for "concurrency = 4; token = { source = \"$source\"; };"
  : >"$T/items"; plan poster 40
  run qrpool-fetch <"$T/items"
  is "512-character $source tokens: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:40
  is "... with no token refused" "$(stats errcodes 40001)" 0
  is "... the token cached whole" \
    "$(sql "SELECT length(token) FROM wechat_tokens WHERE source = '$source'")" 512
done

# --- a central token service (source command) ----------------------------------
start_fake command
curl -sS -o "$T/stable.json" -d "{\"grant_type\":\"client_credential\",\"appid\":\"$APPID\",\"secret\":\"$SECRET\"}" \
  "$base/cgi-bin/stable_token"
jget "$T/stable.json" access_token >"$T/central-token"
config_for "concurrency = 4; token = { source = \"command\"; command = \"cat $T/central-token\"; };"
: >"$T/items"; plan poster 20
run qrpool-fetch <"$T/items"
is "token command: exit 0" "$rc" 0
is "token command: every code fetched" "$(count "state = 'fetched'")" 20
is "token command: no token endpoint called by fetch" "$(stats endpoints stable_token requests)" 1

# Its stderr is relayed through fetch's log, masked as fetch's own lines are:
# the token it gave and the config's secrets do not reach the fill's log. A daemon
# it leaves holding its stderr holds no run.
cat >"$T/token-command" <<CMD
#!/bin/sh
echo "agent: handing out \$(cat "$T/central-token") (as kafka-pass-do-not-log)" >&2
cat "$T/central-token"
sleep 15 >/dev/null </dev/null &
printf 'agent: done\n\n' >&2
CMD
chmod +x "$T/token-command"
config_for "concurrency = 4; timeout = \"20s\"; token = { source = \"command\"; command = \"$T/token-command\"; };"
sed -i 's|^kafka = { |kafka = { properties = ( "sasl.password=kafka-pass-do-not-log" ); |' "$QRPOOL_CONFIG"
: >"$T/items"; plan poster 5
started=$(date +%s)
run qrpool-fetch <"$T/items"
is "token command with a chatty stderr: exit 0, every code fetched" "$rc:$(count "state = 'fetched'")" 0:5
like "... its stderr relayed, a line each, the token and the secret masked" "$(cat "$T/err")" \
  "qrpool-fetch warning: token command's stderr: agent: handing out \\*\\*\\* \\(as \\*\\*\\*\\)"
like "... its last line too" "$(cat "$T/err")" "qrpool-fetch warning: token command's stderr: agent: done\$"
is "... the token nowhere in the log" "$(grep -cF "$(cat "$T/central-token")" "$T/err")" 0
is "... nor the config's secret" "$(grep -cF kafka-pass-do-not-log "$T/err")" 0
ok "... the daemon it left holding its stderr held no run ($(($(date +%s) - started)) s)" \
  [ $(($(date +%s) - started)) -lt 12 ]
# A line longer than what is relayed (2 KB), the token across where it would be
# cut: not shown in part (its start would be masked by nothing).
cat >"$T/token-command" <<CMD
#!/bin/sh
{ head -c 2030 /dev/zero | tr '\\0' x; cat "$T/central-token"; echo; } >&2
cat "$T/central-token"
CMD
config_for "concurrency = 4; token = { source = \"command\"; command = \"$T/token-command\"; };"
: >"$T/items"; plan poster 2
run qrpool-fetch <"$T/items"
is "a stderr line longer than relayed, the token across its end: exit 0" "$rc" 0
is "... no start of the token in the log" "$(grep -cF "$(cut -c1-12 "$T/central-token")" "$T/err")" 0
like "... the line counted, not shown in part" "$(cat "$T/err")" \
  "token command's stderr: [0-9]+ bytes more, not shown"

# A command run again mid-run (its tokens last 2 s here) holds none of the
# connections in flight: they are close-on-exec.
cat >"$T/token-command" <<CMD
#!/bin/sh
ls -l /proc/\$\$/fd | grep -c 'socket:' >>"$T/command-sockets"
printf '%s 2\\n' "\$(cat "$T/central-token")"
CMD
chmod +x "$T/token-command"
: >"$T/command-sockets"
start_fake command-again --latency 40
curl -sS -o "$T/stable.json" -d "{\"grant_type\":\"client_credential\",\"appid\":\"$APPID\",\"secret\":\"$SECRET\"}" \
  "$base/cgi-bin/stable_token"
jget "$T/stable.json" access_token >"$T/central-token"
config_for "concurrency = 4; token = { source = \"command\"; command = \"$T/token-command\"; };"
: >"$T/items"; plan poster 300
run qrpool-fetch <"$T/items"
is "token command again: exit 0" "$rc" 0
ok "token command again: run mid-run ($(wc -l <"$T/command-sockets") runs)" \
  [ "$(wc -l <"$T/command-sockets")" -ge 2 ]
is "token command again: no socket of ours in the command" "$(sort -u "$T/command-sockets")" 0

# A command that fails says how: its exit status.
config_for "concurrency = 4; token = { source = \"command\"; command = \"echo cannot reach the token service >&2; exit 3\"; };"
: >"$T/items"; plan poster 2
run qrpool-fetch --for 2s <"$T/items"
is "a token command that fails: exit 75 at the deadline" "$rc" 75
like "... its exit status said" "$(cat "$T/err")" "token command failed: exit 3"
like "... after what it said on its stderr" "$(cat "$T/err")" \
  "token command's stderr: cannot reach the token service"
run qrpool-fetch -q --for 2s <"$T/items"
like "... under -q too: its reason, said as an error" "$(cat "$T/err")" \
  "qrpool-fetch error: token command's stderr: cannot reach the token service"

# --- refused credentials ------------------------------------------------------------
start_fake credentials
config_for 'concurrency = 4;'
printf 'another-secret\n' >"$T/secret"
: >"$T/items"; plan poster 5; plan card 5; plan link 2
run qrpool-fetch <"$T/items"
is "wrong secret: exit 69" "$rc" 69
like "wrong secret: both wechat pools named" "$(cat "$T/err")" "pool poster stopped.*credentials"
like "wrong secret: and card" "$(cat "$T/err")" "pool card stopped"
is "wrong secret: every code still planned" "$(count "state = 'planned' AND pool != 'link'")" 10
is "wrong secret: link items passed on" "$(cut -f2 "$T/out" | sort -u)" link
is "wrong secret: one token call, no retry loop" "$(stats endpoints stable_token requests)" 1
is "wrong secret: no code call" "$(stats calls_total)" 0

# --- the secret file emptied mid-run (a botched rotation): a config error, 78 --------
printf '%s\n' "$SECRET" >"$T/secret"
start_fake secret-gone --token-lifetime 2s --stable-margin 600ms --latency 40
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 300
qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetcher=$!
# (Emptied once codes are being fetched: mid-run, however loaded the machine.)
tries=0; until [ "$(stats calls_total)" -ge 8 ] || [ $tries -gt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
cp "$T/secret" "$T/secret.kept"; : >"$T/secret"
rc=0; wait $fetcher || rc=$?
is "secret emptied mid-run: exit 78" "$rc" 78
like "secret emptied mid-run: says which file" "$(cat "$T/err")" "secret_file .*secret is empty"
is "secret emptied mid-run: no item lost" \
  "$(($(count "state = 'planned'") + $(count "state = 'fetched'")))" 300
mv "$T/secret.kept" "$T/secret"
rc=0; qrpool-pending --state planned | qrpool-fetch >/dev/null 2>"$T/err2" || rc=$?
is "secret restored: the rerun fetches the rest" "$rc:$(count "state = 'fetched'")" 0:300

# --- a FIFO at secret_file: refused at once (78), not waited on in open() -------------
# (where a SIGTERM would not end the wait, and the fills' lock stays held)
mv "$T/secret" "$T/secret.kept"; mkfifo -m 600 "$T/secret"
run timeout -k 1 20 qrpool-fetch --check </dev/null
is "a FIFO at secret_file: exit 78, at once" "$rc" 78
like "... saying it is no file" "$(cat "$T/err")" \
  "cannot read wechat.secret_file $T/secret: it is not a regular file \\(a FIFO"
rm "$T/secret"; mv "$T/secret.kept" "$T/secret"

# --- the staging DB locked past busy_timeout (1 s here) as the new token is saved:
# the run uses it and goes on, not "no access token" (75) --------------------------
start_fake token-locked --latency 20
curl -sS -o "$T/stable.json" -d "{\"grant_type\":\"client_credential\",\"appid\":\"$APPID\",\"secret\":\"$SECRET\"}" \
  "$base/cgi-bin/stable_token"
jget "$T/stable.json" access_token >"$T/central-token"
cat >"$T/locker.py" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE"); open(sys.argv[2], "w").close()
time.sleep(3); c.execute("ROLLBACK")
PY
# (The token is printed once the DB is locked, however slow python starts.)
cat >"$T/token-command" <<CMD
#!/bin/sh
rm -f "$T/locked"
$PYTHON "$T/locker.py" "$T/staging.db" "$T/locked" >/dev/null 2>&1 &
i=0
until [ -e "$T/locked" ] || [ \$i -gt 100 ]; do sleep 0.05; i=\$((i + 1)); done
cat "$T/central-token"
CMD
config_for "concurrency = 4; token = { source = \"command\"; command = \"$T/token-command\"; };"
sed -i 's/busy_timeout = "5s"/busy_timeout = "1s"/' "$QRPOOL_CONFIG"
: >"$T/items"; plan poster 50
run qrpool-fetch <"$T/items"
is "DB locked as the token is saved: exit 0" "$rc" 0
like "DB locked as the token is saved: waited for it" "$(cat "$T/err")" \
  "locked by another process: no token read; trying again in 1 s"
is "DB locked as the token is saved: every code fetched" "$(count "state = 'fetched'")" 50
is "... a wait, not an error: no error line in a run that succeeds" "$(grep -c ' error: ' "$T/err")" 0

# --- ... and locked as a failed refresh gives its lease back: the run backs off and
# tries again, not waiting out its own lease (wechat.timeout + 5 s, 25 s here) ---------
cat >"$T/token-command" <<CMD
#!/bin/sh
[ -e "$T/failed-once" ] && { cat "$T/central-token"; exit 0; }
: >"$T/failed-once"
rm -f "$T/locked"
$PYTHON "$T/locker.py" "$T/staging.db" "$T/locked" >/dev/null 2>&1 &
i=0
until [ -e "$T/locked" ] || [ \$i -gt 100 ]; do sleep 0.05; i=\$((i + 1)); done
echo "token service unavailable" >&2
exit 1
CMD
rm -f "$T/failed-once"
config_for "concurrency = 4; timeout = \"20s\"; token = { source = \"command\"; command = \"$T/token-command\"; };"
sed -i 's/busy_timeout = "5s"/busy_timeout = "1s"/' "$QRPOOL_CONFIG"
: >"$T/items"; plan poster 20
started=$(date +%s)
run qrpool-fetch <"$T/items"
is "DB locked as a failed refresh ends its lease: exit 0, every code fetched" \
  "$rc:$(count "state = 'fetched'")" 0:20
ok "... tried again after its backoff, not at its own lease's end ($(($(date +%s) - started)) s)" \
  [ $(($(date +%s) - started)) -lt 15 ]

# --- a token command that hangs: SIGTERM ends the run at once, and a command that
# closes its output but never exits is killed at the timeout --------------------
start_fake hang
config_for "concurrency = 4; timeout = \"20s\"; token = { source = \"command\"; command = \"sleep 60\"; };"
: >"$T/items"; plan poster 5
qrpool-fetch <"$T/items" >"$T/out" 2>"$T/err" & fetcher=$!
wait_handles_term $fetcher; sleep 1
started=$(date +%s)
kill -TERM $fetcher
rc=0; wait $fetcher || rc=$?
is "hanging token command, SIGTERM: exit 75" "$rc" 75
ok "hanging token command, SIGTERM: at once, not when the command ends" \
  [ $(($(date +%s) - started)) -le 3 ]
like "hanging token command, SIGTERM: said" "$(cat "$T/err")" "token command: stopped by a signal"
is "hanging token command, SIGTERM: every code still planned" "$(count "state = 'planned'")" 5
printf '#!/bin/sh\necho lingering-token 7200\nexec >&-\nsleep 60\n' >"$T/linger"
chmod +x "$T/linger"
config_for "concurrency = 4; timeout = \"1s\"; retries = 0; token = { source = \"command\"; command = \"exec $T/linger\"; };"
: >"$T/items"; plan poster 2
started=$(date +%s)
run qrpool-fetch --for 4s <"$T/items"
ok "a command that never exits holds no run: it ends with its deadline" [ $(($(date +%s) - started)) -le 7 ]
like "a command that never exits is killed at the timeout" "$(cat "$T/err")" "token command: timed out"

# --- a token that comes after the deadline: no call starts with it ---------------------
start_fake late
config_for "concurrency = 4; token = { source = \"command\"; command = \"sleep 2; echo late-token 7200\"; };"
: >"$T/items"; plan poster 5
run qrpool-fetch --for 1s <"$T/items"
is "token after the deadline: exit 75" "$rc" 75
is "token after the deadline: no call made" "$(stats calls_total)" 0
is "token after the deadline: every code still planned" "$(count "state = 'planned'")" 5

# --- a token file holding WeChat's error (the service writing it was refused) -------
# Said as the file's content, not as a wrong app secret: ours is not involved.
start_fake token-file-error --latency 5
printf '{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}\n' \
  >"$T/token-file"
chmod 600 "$T/token-file"
config_for "concurrency = 4; token = { source = \"file\"; file = \"$T/token-file\"; };"
: >"$T/items"; plan poster 3
run qrpool-fetch <"$T/items"
is "a token file holding an error: exit 69" "$rc" 69
like "... saying the file holds an error, not a token" "$(cat "$T/err")" \
  "token file $T/token-file holds an error, not a token: errcode 40001"
ok "... not blaming the app secret" -- sh -c "! grep -q 'wrong app secret' '$T/err'"
is "... its items stay planned" "$(count "state = 'planned'")" 3

# --- a token file others can read: the access token is a secret; 78, no call -------
# (a token the fake issued, as the agent writing the file would have it)
printf '{"grant_type":"client_credential","appid":"%s","secret":"%s"}' "$APPID" "$SECRET" |
  curl -sS -d @- "$base/cgi-bin/stable_token" | sed 's/.*"access_token":"\([^"]*\)".*/\1 7200/' \
  >"$T/token-file"
chmod 644 "$T/token-file"
before=$(stats calls_total)
run qrpool-fetch <"$T/items"
is "a token file others can read: exit 78" "$rc" 78
like "... saying so, with the fix" "$(cat "$T/err")" \
  "token file $T/token-file is accessible by others \(mode 0644\): the access token is a secret; have whatever writes it make it mode 600"
is "... no call made with it" "$(stats calls_total)" "$before"
is "... its items stay planned" "$(count "state = 'planned'")" 3
chmod 660 "$T/token-file"
run qrpool-fetch <"$T/items"
is "a token file its group can write: exit 78" "$rc" 78
like "... saying so" "$(cat "$T/err")" \
  "token file $T/token-file is writable by its group \(mode 0660\): the access token is a secret"
is "... no call made with it" "$(stats calls_total)" "$before"
chmod 640 "$T/token-file"
run qrpool-fetch <"$T/items"
is "... mode 640 (a group of readers): it serves" "$rc" 0
is "... every item fetched" "$(count "state = 'fetched'")" 3
mv "$T/token-file" "$T/token-file.kept"; mkfifo -m 600 "$T/token-file"
config_for "concurrency = 4; token = { source = \"file\"; file = \"$T/token-file\"; };"
: >"$T/items"; plan poster 2   # (a new DB: no token cached from the file before)
run timeout -k 1 20 qrpool-fetch <"$T/items"
is "a FIFO at the token file: exit 78, at once" "$rc" 78
like "... saying it is no file" "$(cat "$T/err")" \
  "token file $T/token-file: it is not a regular file \\(a FIFO, a device, a directory\\?\\): it names the file"
is "... its items stay planned" "$(count "state = 'planned'")" 2
rm "$T/token-file"; mv "$T/token-file.kept" "$T/token-file"

# --- --check: the credentials proved at once, past a cached token -----------------------
start_fake check --latency 5
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 2
run qrpool-fetch <"$T/items"
is "--check: a fetch caches a token first" "$rc:$(sql 'SELECT count(*) FROM wechat_tokens WHERE token IS NOT NULL')" 0:1
calls=$(stats endpoints getwxacodeunlimit requests)
run qrpool-fetch --check </dev/null
is "--check with the right secret: exit 0" "$rc:$(cat "$T/err")" "0:"
like "... saying so on stdout" "$(cat "$T/out")" \
  "^appid wxtest0000000001: the credentials work \(token source stable; its token is good for [0-9]+ s more\)$"
is "... one stable_token call, past the cache" "$(stats endpoints stable_token requests)" 2
is "... and no call of quota" "$(stats endpoints getwxacodeunlimit requests)" "$calls"
printf 'a-rotated-secret\n' >"$T/secret"   # the secret changed, the cached token still good
run qrpool-fetch --check </dev/null
is "--check with a wrong secret (a token still cached): exit 69" "$rc" 69
like "... saying what WeChat refused" "$(cat "$T/err")" \
  "appid wxtest0000000001, token source stable: .*40001"
is "... nothing on stdout" "$(cat "$T/out")" ""
ok "... the secret never said" -- sh -c "! grep -q 'a-rotated-secret' '$T/err'"
rm "$T/secret"
run qrpool-fetch --check </dev/null
is "--check with the secret file gone: 78" "$rc" 78
config_for 'token = { source = "command"; command = "echo from-command 600"; };'
rm -f "$T/staging.db" "$T/staging.db-wal" "$T/staging.db-shm"
run qrpool-fetch --check </dev/null
is "--check, token command: exit 0" "$rc" 0
ok "... no staging DB made (nothing kept; a root's check would leave it root's)" test ! -e "$T/staging.db"
like "... naming the source, and that WeChat was not asked" "$(cat "$T/out")" \
  "^appid wxtest0000000001: the token source works \(token source command; its token is good for 600 s more; whether WeChat takes it is not asked: a fetch of one code tells\)$"
config_for 'token = { source = "command"; command = "echo from-command 600 extra"; };'
run qrpool-fetch --check </dev/null
is "--check, a token command printing a third word: no token (75), nothing on stdout" "$rc:$(cat "$T/out")" 75:
like "... saying why" "$(cat "$T/err")" "expected 'TOKEN \[EXPIRES_IN_SECONDS\]', a third word follows"
# A token WeChat refuses, from a command: the messages name the command, not
# a token endpoint fetch never asked.
config_for 'concurrency = 2; token = { source = "command"; command = "echo not-a-token-wechat-gave 7200"; };'
: >"$T/items"; plan poster 2
run qrpool-fetch --for 3s <"$T/items"
is "a command's token WeChat refuses: 75 at the deadline, the codes planned" \
  "$rc:$(count "state = 'planned'")" 75:2
like "... the command named as what gave it" "$(cat "$T/err")" \
  "the token command gave the token WeChat refused: trying it again"
is "... no token endpoint named" "$(grep -c 'token endpoint' "$T/err")" 0
# The command runs with a shell's signals, not ours: with SIGPIPE ignored (as
# our own is), `producer | head -1` never ends.
# (Marked with this shell's pid: the pkill and pgrep below see only this run's.)
config_for 'timeout = "5s"; token = { source = "command"; command = "while :; do echo piped-token'$$' 600; done | head -1"; };'
run qrpool-fetch --check </dev/null
is "a token command 'producer | head -1': exit 0, not a timeout" "$rc:$(cat "$T/err")" "0:"
pkill -f "piped-token$$ " || true   # (what a failure here leaves spinning)
# A command killed at the timeout is killed whole: `a | b` leaves no `a` running.
config_for 'timeout = "1s"; token = { source = "command"; command = "sleep 61.'$$' | cat"; };'
run qrpool-fetch --check </dev/null
is "a pipeline that hangs: exit 75" "$rc" 75
like "... timed out" "$(cat "$T/err")" "token command: timed out"
sleep 0.2
is "... and none of it left running" "$(pgrep -fc "sleep 61\\.$$( |\$)" || true)" 0
pkill -f "sleep 61\\.$$( |\$)" || true
# The command's timeout is a length of time: a step back of the wall clock
# (clockstep.so, 40 s after 1 s) does not stretch it.
config_for 'timeout = "2s"; token = { source = "command"; command = "sleep 20.5"; };'
started=$(date +%s)
rc=0; LD_PRELOAD=$QRPOOL_BIN/clockstep.so QRPOOL_TEST_CLOCK_STEP=1:40 \
  ASAN_OPTIONS=verify_asan_link_order=0 qrpool-fetch --check </dev/null >"$T/out" 2>"$T/err" || rc=$?
took=$(($(date +%s) - started))
is "a hung command, the wall clock stepped back: timed out (75)" "$rc:$(grep -c 'timed out' "$T/err")" 75:1
ok "... after its 2 s, not 40 s more (took $took s)" test "$took" -lt 10
# Started with SIGCHLD ignored (a wrapper's), the kernel would reap the
# command: its failure must still be seen.
config_for 'token = { source = "command"; command = "echo failing-token 600; exit 3"; };'
rc=0; perl -e '$SIG{CHLD} = "IGNORE"; exec @ARGV or die' qrpool-fetch --check </dev/null >"$T/out" 2>"$T/err" || rc=$?
is "SIGCHLD ignored by whoever started fetch: a failing command still fails (75)" "$rc" 75
like "... with its exit status" "$(cat "$T/err")" "token command failed: exit 3"
# What is wrong with a token file or command is said of it, the file named.
config_for "token = { source = \"file\"; file = \"$T/no-token-file\"; };"
run qrpool-fetch --check </dev/null
is "--check, token file missing: 75" "$rc" 75
like "... naming it" "$(cat "$T/err")" "token file $T/no-token-file: No such file or directory"
printf 'TOKEN&x\n' >"$T/bad-token"; chmod 600 "$T/bad-token"
config_for "token = { source = \"file\"; file = \"$T/bad-token\"; };"
run qrpool-fetch --check </dev/null
like "--check, a token file with no token: said of the file" "$(cat "$T/err")" \
  "token file $T/bad-token: no token in it \(expected 'TOKEN \[EXPIRES_IN_SECONDS\]', or the JSON of WeChat's answer\)"
printf '{"access_token":"abc","expires_in":"7200"}\n' >"$T/bad-token"
run qrpool-fetch --check </dev/null
like "--check, a token file with JSON it cannot use: said of the file, no endpoint named" \
  "$(cat "$T/err")" "token file $T/bad-token: malformed access_token or expires_in"
config_for 'token = { source = "command"; command = "echo some-token -5"; };'
run qrpool-fetch --check </dev/null
like "--check, a token command printing a lifetime under 0: said of its output" "$(cat "$T/err")" \
  "the token command's output: expected 'TOKEN \[EXPIRES_IN_SECONDS\]', the second word is not a number of seconds over 0"
config_for 'token = { source = "classic"; };'
before=$(stats endpoints token requests)
run qrpool-fetch --check </dev/null
is "--check, classic source: a usage error (64), no token fetched" "$rc:$(stats endpoints token requests)" "64:$before"
like "... saying why" "$(cat "$T/err")" "invalidates the token of every other holder"

# --- no core file holds the token or the secret -------------------------------
# fetch killed by SIGSEGV once it holds a token (it has fetched a code, and
# waits for more lines) leaves no core; QRPOOL_CORE_DUMPS=1 lets one be
# written, to debug a crash (and shows this machine writes cores at all).
start_fake cores --latency 10
mkdir "$T/cores"; mkfifo "$T/cores.in"
crash_fetch() {  # crash_fetch [VAR=VALUE]: how many core files the crash left
  rm -f "$T/cores"/core*
  config_for ''
  : >"$T/items"; plan poster 1
  (cd "$T/cores" && ulimit -c unlimited && exec env "$@" qrpool-fetch <"$T/cores.in" >/dev/null 2>&1) &
  crashed=$!
  exec 7>"$T/cores.in"; cat "$T/items" >&7
  tries=0
  until [ "$(count "state = 'fetched'")" -ge 1 ] || [ $tries -gt 400 ]; do sleep 0.05; tries=$((tries + 1)); done
  kill -SEGV $crashed; wait $crashed 2>/dev/null || true; exec 7>&-
  ls "$T/cores" | grep -c '^core' || true
}
allowed=$(crash_fetch QRPOOL_CORE_DUMPS=1)
if [ "$allowed" = 1 ]; then
  is "a crash holding the token: no core file" "$(crash_fetch)" 0
  is "... and one with QRPOOL_CORE_DUMPS=1" "$allowed" 1
else
  skip_tests 2 "no core file written here even when allowed (ulimit -c, core_pattern $(cat /proc/sys/kernel/core_pattern))"
fi
rm -f "$T/cores"/core*

# --- WeChat refuses every token (40001 to every call): the refreshes are paced,
# not one a call (cgi-bin/token: 2,000 a day, each invalidating every other
# holder's token; 300 items made 1,297 of them in 20 s), and it is an outage:
# calls pause, and a run without a deadline gives up ----------------------------
start_fake refuse-all --errcode 40001:1 --latency 20
config_for 'concurrency = 4; retries = 20; token = { source = "classic"; };'
: >"$T/items"; plan poster 50
run qrpool-fetch --for 8s <"$T/items"
is "every token refused: exit 75, every code still planned" "$rc:$(count "state = 'planned'")" 75:50
tokens=$(stats endpoints token requests)
ok "... the refreshes paced: 1, 2, 4 ... s apart ($tokens cgi-bin/token calls in 8 s)" [ "$tokens" -le 6 ]
calls=$(stats endpoints getwxacodeunlimit requests)
ok "... few calls spent: an outage's pause and probes ($calls calls)" [ "$calls" -le 40 ]
like "... said" "$(cat "$T/err")" \
  "warning: WeChat refused the new token too, before any call with it succeeded .*no new call for 2 s"
start_fake refuse-stable --errcode 40001:1 --latency 20
config_for 'concurrency = 4; retries = 20; quota_minute = "1s";'
: >"$T/items"; plan poster 50
run timeout 60 qrpool-fetch <"$T/items"
is "... without a deadline (stable tokens): given up after 5 quota minutes (1 s here), 75" \
  "$rc:$(count "state = 'planned'")" 75:50
like "... saying so" "$(cat "$T/err")" "calls have failed for [0-9]+ s .*no deadline"

# --- a run that starts with the token an earlier run cached, invalidated since
# (tokens rotated elsewhere overnight): one refresh and one retry, at once, no
# pause and nothing said (only a token that replaced a refused one is paced) ---
start_fake cached --latency 20
config_for 'concurrency = 4;'
: >"$T/items"; plan poster 10
run qrpool-fetch <"$T/items"
is "a first run caches its token: exit 0" "$rc:$(count "state = 'fetched'")" 0:10
curl -sS -o /dev/null -X POST "$base/_control/invalidate-tokens"
: >"$T/items"; plan poster 40
run qrpool-fetch <"$T/items"
is "the next run, its cached token invalidated: exit 0, every code fetched, nothing said" \
  "$rc:$(count "state = 'fetched'"):$(cat "$T/err")" 0:50:
is "... one refresh" "$(stats endpoints stable_token requests)" 2

# --- the token endpoint refuses this server (IP not whitelisted, secret frozen, IP
# awaiting an administrator): the wechat pools stop at once with WeChat's reason --
for refusal in "40164:IP is not in the account's whitelist" "40243:app secret is frozen" \
    "89503:administrator must confirm this server's IP"; do
  errcode=${refusal%%:*} reason=${refusal#*:}
  start_fake refused-$errcode --token-errcode $errcode:1
  config_for 'concurrency = 4;'
  : >"$T/items"; plan poster 5; plan link 1
  run qrpool-fetch <"$T/items"
  is "token endpoint $errcode: exit 69, the codes still planned, link passed on" \
    "$rc:$(count "state = 'planned' AND pool = 'poster'"):$(cut -f2 "$T/out")" 69:5:link
  like "... the reason said" "$(cat "$T/err")" "pool poster stopped: .*errcode $errcode: .*$reason"
  is "... one token call, no code call" \
    "$(stats endpoints stable_token requests):$(stats calls_total)" 1:0
done

# --- the token endpoint's daily limit (45009 there: cgi-bin/token allows 2,000 a
# day): a failure tried again later, named, not taken for the minute quota ---------
start_fake daily --token-daily 0 --stable-daily 0
config_for 'concurrency = 4;'
run qrpool-fetch --check </dev/null
is "--check, the day's stable_token calls used up: exit 75" "$rc" 75
like "... naming the daily limit" "$(cat "$T/err")" \
  "errcode 45009: its daily call limit is reached \(cgi-bin/token: 2,000 a day, stable_token: 500,000\)"
config_for 'concurrency = 4; token = { source = "classic"; };'
: >"$T/items"; plan poster 5
run qrpool-fetch --for 3s <"$T/items"
is "a fetch: exit 75 at its deadline, the codes still planned, no code call" \
  "$rc:$(count "state = 'planned'"):$(stats calls_total)" 75:5:0
like "... the refresh retried later, the limit named" "$(cat "$T/err")" \
  "refreshing the access token failed, retrying in 1 s: token endpoint: errcode 45009: its daily call limit"
is "... the quota ledger untouched by it" "$(sql 'SELECT coalesce(sum(refused), 0) FROM quota_windows')" 0

# --- a gateway in front of WeChat quoting the request in its errmsg: the access
# token masked wherever it appears, whole, cut short, or as the query's value ---------
ECHOED=echoed-token-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMN
cat >"$T/echo-gateway" <<'PYEOF'
import http.server, json, sys
class Gateway(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        token = self.path.split('access_token=', 1)[-1]
        errmsg = {'path': 'gw ' + self.path, 'cut': 'gw ' + self.path[:len(self.path) - 20],
                  'bare': 'gw: ' + token + ' refused'}[open(sys.argv[2]).read().strip()]
        body = json.dumps({'errcode': 40001, 'errmsg': errmsg}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Gateway)
open(sys.argv[1], 'w').write(str(server.server_address[1]))
server.serve_forever()
PYEOF
echo path >"$T/echo-mode"
$PYTHON "$T/echo-gateway" "$T/echo.port" "$T/echo-mode" >/dev/null 2>"$T/echo.log" &
at_exit "kill_child $!"
tries=0; until [ -s "$T/echo.port" ] || [ $tries -gt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
base=http://127.0.0.1:$(cat "$T/echo.port")
for mode in path cut bare; do
  echo $mode >"$T/echo-mode"
  config_for "concurrency = 1; token = { source = \"command\"; command = \"echo $ECHOED 7200\"; };"
  : >"$T/items"; plan poster 2
  run qrpool-fetch -vv --for 5s <"$T/items"
  like "a gateway quoting the request ($mode): said" "$(cat "$T/err")" "40001: .*gw"
  is "... the token in no line, nor in part ($mode)" \
    "$(grep -c -e "$ECHOED" -e "echoed-tok" "$T/err")" 0
  is "... nor in the DB's errors ($mode)" \
    "$(sql "SELECT count(*) FROM codes WHERE last_error LIKE '%echoed-token%'")" 0
done

# --- a token endpoint that accepts and never answers: a SIGTERM still stops the
# run at once, not after wechat.timeout -------------------------------------------------
cat >"$T/mute-gateway" <<'PYEOF'
import socket, sys, time
listener = socket.socket()
listener.bind(('127.0.0.1', 0))
listener.listen(16)
open(sys.argv[1], 'w').write(str(listener.getsockname()[1]))
held = []
while True:
    held.append(listener.accept()[0])   # read nothing, answer nothing
    open(sys.argv[1] + '.accepted', 'w').write(str(len(held)))
PYEOF
$PYTHON "$T/mute-gateway" "$T/mute.port" >/dev/null 2>"$T/mute.log" &
at_exit "kill_child $!"
tries=0; until [ -s "$T/mute.port" ] || [ $tries -gt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
base=http://127.0.0.1:$(cat "$T/mute.port")
config_for 'concurrency = 1; timeout = "30s";'
: >"$T/items"; plan poster 2
qrpool-fetch -v --for 60s <"$T/items" >"$T/out" 2>"$T/err" & fetcher=$!
wait_handles_term $fetcher
# (Once the token request is sent: the gateway has accepted its connection.)
tries=0; until [ -s "$T/mute.port.accepted" ] || [ $tries -gt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
sleep 0.2
kill -TERM $fetcher
started=$(date +%s)
rc=0; wait $fetcher || rc=$?
took=$(($(date +%s) - started))
is "SIGTERM while the token endpoint hangs: exit 75" "$rc" 75
ok "... at once, not after the 30 s timeout (took $took s)" test "$took" -le 5
is "... the codes still planned" "$(count "state = 'planned'")" 2
like "... the token request it cut short" "$(cat "$T/err")" "token endpoint: stopped by a signal"
