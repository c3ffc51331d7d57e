#!/bin/sh
# Kafka unreachable: qrpool-publish exits 75 within kafka.timeout and loses
# nothing; qrpool-plan falls back to the DB's depth estimate with a warning.
. "${0%/*}/lib.sh"
command -v kcat >/dev/null || skip_all "kcat is not installed"

# Port 9 (discard): nothing listens there on a test machine.
KAFKA_BROKERS=127.0.0.1:9
export KAFKA_BROKERS
write_config
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "3s"; };|' "$QRPOOL_CONFIG"
(umask 077; : >"$T/staging.db")   # the schema, in a file made on purpose (a missing one is warned of)
qrpool-pending --count >/dev/null
"${0%/*}/stage-fetched" "$T/staging.db" poster=40 link=10

qrpool-pending --state fetched >"$T/items"
started=$(date +%s)
run qrpool-publish <"$T/items"
took=$(($(date +%s) - started))
is "unreachable brokers: exit 75" "$rc" 75
ok "... within the 3 s timeout (took ${took} s)" test "$took" -le 5
like "... with the counts" "$(cat "$T/err")" "50 of 50 codes not delivered"
like "... by topic, so the mail names both pools, not the last error's alone" "$(cat "$T/err")" \
  "50 of 50 codes not delivered \\(by topic: qrpool\\.poster 40, qrpool\\.link 10; the last error: topic qrpool\\.(poster|link): "
like "... and how to resume them without sending them twice beside a fill" "$(cat "$T/err")" \
  "the next fill feeds them on first \(by hand, under the fills' lock: env QRPOOL_CONFIG=$T/qrpool.cfg flock -n -E 75 /run/lock/qrpool-fill.lock bash -o pipefail -c 'qrpool-pending --state fetched \| qrpool-publish'\)"
is "nothing is printed" "$(cat "$T/out")" ""
# A lock path the shell would split is quoted in the command given.
QRPOOL_FILL_LOCK="$T/fill locks/it's.lock" run qrpool-publish <"$T/items"
like "... a lock path with a space and a quote: quoted for the shell" "$(cat "$T/err")" \
  "by hand, under the fills' lock: env QRPOOL_CONFIG=$T/qrpool.cfg flock -n -E 75 '$T/fill locks/it'\\\\''s.lock' bash -o pipefail"
# The config this run read, named by its whole path (a hand run in another
# directory, or with no QRPOOL_CONFIG, would read another's).
(cd "$T" && QRPOOL_CONFIG= qrpool-publish -c qrpool.cfg <"$T/items" >/dev/null 2>"$T/err") || true
like "... -c with a relative path: the config named whole" "$(cat "$T/err")" \
  "by hand, under the fills' lock: env QRPOOL_CONFIG=$T/qrpool.cfg flock -n -E 75 /run/lock/qrpool-fill.lock"
# Long paths: the command whole, not cut where a log line once ended (~2 KB).
deep=$T$(printf '/a-directory-of-the-nightly-fill-%02d' $(seq 1 40))
mkdir -p "$deep" && cp "$QRPOOL_CONFIG" "$deep/qrpool.cfg"
QRPOOL_CONFIG=$deep/qrpool.cfg QRPOOL_FILL_LOCK="$deep/it's.lock" run qrpool-publish <"$T/items"
like "... paths of ${#deep} bytes: the command given whole" "$(cat "$T/err")" \
  "by hand, under the fills' lock: env QRPOOL_CONFIG=$deep/qrpool.cfg flock -n -E 75 '$deep/it'\\\\''s.lock' bash -o pipefail -c 'qrpool-pending --state fetched \\| qrpool-publish'\\)\$"
is "nothing is lost: every code still fetched, with its image" \
  "$(sql "SELECT count(*) FROM codes JOIN images ON code_id = codes.id WHERE state = 'fetched'")" 50

# A bad line too: 65, not 75 (README: 75 ranks below 65, a rerun cannot fix a
# bad line), and both are said, the codes not delivered as above.
{ head -20 "$T/items"; echo 'not an item line'; tail -n +21 "$T/items"; } >"$T/bad-items"
run qrpool-publish <"$T/bad-items"
is "unreachable brokers and a malformed line: exit 65, not 75" "$rc" 65
like "... the bad line said with its number" "$(cat "$T/err")" \
  "stdin:21: expected 'request_id TAB pool', found no tab; line skipped"
like "... the codes not delivered said all the same" "$(cat "$T/err")" \
  "50 of 50 codes not delivered \\(by topic: qrpool\\.poster 40, qrpool\\.link 10; "
is "... nothing printed, every code still fetched" "$(cat "$T/out"):$(sql "SELECT count(*) FROM codes WHERE state = 'fetched'")" :50

# message.timeout.ms without limit, and a queue that fills: the wait for room
# ends at kafka.timeout too (it waited for ever).
cp "$QRPOOL_CONFIG" "$T/nolimit.cfg"
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "3s"; properties = [ "message.timeout.ms=0", "queue.buffering.max.messages=5" ]; };|' \
  "$T/nolimit.cfg"
started=$(date +%s)
QRPOOL_CONFIG=$T/nolimit.cfg run timeout 60 qrpool-publish <"$T/items"
took=$(($(date +%s) - started))
is "no message timeout, the queue full: exit 75" "$rc" 75
ok "... within twice the 3 s timeout (took ${took} s)" test "$took" -le 8
like "... saying why it stopped reading" "$(cat "$T/err")" \
  "the producer's queue has been full for kafka.timeout \(3 s\) with no delivery confirmed or failed"
like "... with the counts: 6 taken (5 queued)" "$(cat "$T/err")" "6 of 6 codes not delivered"
like "... the rest let go" "$(cat "$T/err")" "44 lines of input read to its end and let go"
is "... nothing lost: every code still fetched" \
  "$(sql "SELECT count(*) FROM codes JOIN images ON code_id = codes.id WHERE state = 'fetched'")" 50

# The run stops (messages timed out) while the stage before has written half a
# line and holds its end open: the half line is no bad line (75, not 65); the
# rest of the input is read to its end, when the stage before closes it.
mkfifo "$T/in"
: >"$T/err"  # (here: the child truncates it only once the fifo opens)
# (Under a fill, job.sh names the lock it took, which the hint then names.)
QRPOOL_FILL_LOCK=$T/locks/qrpool-fill.lock qrpool-publish <"$T/in" >"$T/out" 2>"$T/err" &
publisher=$!
exec 3>"$T/in"
cat "$T/items" >&3
printf 'deadbeef' >&3
i=0
until grep -q "publishing stopped" "$T/err" || [ $i -gt 200 ]; do sleep 0.05; i=$((i + 1)); done
(trap '' PIPE; printf 'beef\n' >&3) 2>/dev/null || true   # the stage before goes on (a reader gone: EPIPE)
exec 3>&-
rc=0; wait $publisher || rc=$?
is "stopped with half a line waiting: exit 75" "$rc" 75
like "... the rest read to its end, when the stage before closed it" "$(cat "$T/err")" \
  "1 line of input read to its end and let go: they stay fetched"
like "... and how to publish them, under the fill's lock that job.sh named" "$(cat "$T/err")" \
  "let go: they stay fetched \(the next fill feeds them on first; by hand, under the fills' lock: env QRPOOL_CONFIG=$T/qrpool.cfg flock -n -E 75 $T/locks/qrpool-fill.lock bash -o pipefail -c 'qrpool-pending --state fetched \| qrpool-publish'\)"
ok "... no line reported bad" sh -c "! grep -q 'line skipped' '$T/err'"

# plan: depth from the DB (codes published), with one warning.
sql "UPDATE codes SET state = 'published' WHERE id IN
     (SELECT id FROM codes WHERE pool = 'poster' LIMIT 7)"
printf 'poster\t2030-01-01T00:00Z\t1\ncard\t2030-01-01T00:00Z\t0\nlink\t2030-01-01T00:00Z\t0\n' >"$T/demand"
run qrpool-plan --dry-run --from 2030-01-01T00:00Z "$T/demand"
is "plan --dry-run: 75, as the plan would (its depth estimated)" "$rc" 75
like "... warning that Kafka cannot be reached" "$(cat "$T/err")" \
  "warning: Kafka cannot be reached .*: pool depth estimated from the staging DB"
is "... once" "$(grep -c warning "$T/err")" 1
is "... and uses the published count as depth" \
  "$(awk '$1 == "poster" { print $4 }' "$T/out")" 7

# A config without brokers: no wait at all, the estimate with a warning.
sed -i 's|^kafka = .*|kafka = { timeout = "3s"; };|' "$QRPOOL_CONFIG"
printf 'poster\t2030-01-01T00:00Z\t1\ncard\t2030-01-01T00:00Z\t0\nlink\t2030-01-01T00:00Z\t0\n' >"$T/demand"
run qrpool-plan --dry-run --from 2030-01-01T00:00Z "$T/demand"
like "no brokers configured: the estimate, with a warning" "$(cat "$T/err")" "kafka.brokers is not set"
run qrpool-publish <"$T/items"
is "publish without brokers is a config error" "$rc" 78

# Messages time out while most of the input is still unread: the run says
# where it stopped reading, and those items stay fetched too.
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "2s"; properties = [ "queue.buffering.max.messages=10" ]; };|' "$QRPOOL_CONFIG"
qrpool-pending --state fetched >"$T/items"
run qrpool-publish <"$T/items"
is "timed out with input unread: exit 75" "$rc" 75
like "... saying where reading stopped" "$(cat "$T/err")" \
  "publishing stopped after line 11: the items after it are not published and stay fetched; the rest of the input is read to its end"
all_fetched "... every code still fetched"
like "... and the rest of the input read and counted" "$(cat "$T/err")" \
  "[0-9]+ lines of input read to its end and let go: they stay fetched"
# In a pipeline, the stages before publish are not cut off by its stop: they
# finish their work (fetch used to die on a broken pipe, with the night's quota).
head -5 "$T/items" >"$T/first"; tail -n +6 "$T/items" >"$T/rest"
rc=0
{ cat "$T/first"; sleep 4; cat "$T/rest" && touch "$T/upstream-done"; } |
  qrpool-publish >/dev/null 2>"$T/err" || rc=$?
is "publish stopped while the stage before it still writes: 75" "$rc" 75
ok "... that stage wrote all it had, not cut off by a broken pipe" test -e "$T/upstream-done"

# SIGTERM while the producer's queue is full (10 messages, each allowed 60 s
# to find a broker): the run still ends within kafka.timeout, not when the
# messages time out, and loses nothing.
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "3s"; properties = [ "queue.buffering.max.messages=10", "message.timeout.ms=60000" ]; };|' "$QRPOOL_CONFIG"
qrpool-pending --state fetched >"$T/items"
fetched=$(wc -l <"$T/items")
# publish_signalled SIGNAL...: publish the items; each signal 1.5 s after the
# last. Sets $rc and $took (whole seconds).
publish_signalled() {
  started=$(date +%s)
  qrpool-publish <"$T/items" >"$T/out" 2>"$T/err" & pid=$!
  for signal in "$@"; do sleep 1.5; kill -"$signal" "$pid"; done
  rc=0; wait "$pid" || rc=$?
  took=$(($(date +%s) - started))
}
publish_signalled TERM
is "SIGTERM with the producer's queue full: exit 75" "$rc" 75
ok "... within the 3 s timeout and the purge (took ${took} s)" test "$took" -le 8
is "... nothing printed" "$(cat "$T/out")" ""
is "... every code still fetched" "$(sql "SELECT count(*) FROM codes WHERE state = 'fetched'")" "$fetched"

# A second SIGTERM gives up the deliveries in flight at once: with a 30 s
# kafka.timeout the run ends in seconds, and still loses nothing.
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "30s"; };|' "$QRPOOL_CONFIG"
publish_signalled TERM TERM
is "a second SIGTERM: exit 75" "$rc" 75
ok "... at once, not at the 30 s timeout (took ${took} s)" test "$took" -le 8
like "... saying why it gave up" "$(cat "$T/err")" "deliver(y|ies) unconfirmed at a second signal: given up"
is "... nothing printed" "$(cat "$T/out")" ""
is "... every code still fetched" "$(sql "SELECT count(*) FROM codes WHERE state = 'fetched'")" "$fetched"

# --dump-config masks every property that holds a secret, in the config's
# list and in librdkafka's merged settings alike.
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; properties = [ "ssl.key.pem=PEM-KEY-9f2c", "sasl.oauthbearer.config=principal=p clientSecret=OAUTH-7d1e", "sasl.password=PASS-31ab", "client.id=shown-4411" ]; };|' "$QRPOOL_CONFIG"
run qrpool-publish --dump-config
is "--dump-config: exit 0" "$rc" 0
is "... no secret value shown" "$(grep -c -e PEM-KEY-9f2c -e OAUTH-7d1e -e PASS-31ab "$T/out")" 0
is "... each secret property masked, twice (config and librdkafka)" \
  "$(grep -o -e 'ssl.key.pem[ =]*\*\*\*\*\*\*\*\*' -e 'sasl.oauthbearer.config[ =]*\*\*\*\*\*\*\*\*' \
     -e 'sasl.password[ =]*\*\*\*\*\*\*\*\*' "$T/out" | wc -l)" 6
like "... other properties shown" "$(cat "$T/out")" "client.id=shown-4411"
# A URL's password in a property no key names as secret (an OAuth token
# endpoint's, which Debian's librdkafka is built without: client.id takes any
# text): masked in both lists too, the rest of the URL shown.
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; properties = [ "client.id=https://client:URLPASS-5c0d@idp.example.com/token" ]; };|' "$QRPOOL_CONFIG"
run qrpool-publish --dump-config
is "a URL with a password in a property: exit 0, the password nowhere" \
  "$rc:$(grep -c URLPASS-5c0d "$T/out")" 0:0
is "... the URL shown with its password masked, twice (config and librdkafka)" \
  "$(grep -c 'https://client:\*\*\*\*\*\*\*\*@idp.example.com/token' "$T/out")" 2

# A Kafka secret in librdkafka's own words (it quotes a sasl.oauthbearer.config
# it cannot read from the word it stumbled on): masked in every line, like the
# config's other secrets.
cp "$QRPOOL_CONFIG" "$T/plain.cfg"
sed -i 's|^kafka = .*|kafka = { brokers = "127.0.0.1:9"; timeout = "2s"; properties = [ "security.protocol=SASL_PLAINTEXT", "sasl.mechanisms=OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt=true", "sasl.oauthbearer.config=principal=qrpool clientSecret=OAuthS3cretVAL-417" ]; };|' "$QRPOOL_CONFIG"
chmod 600 "$QRPOOL_CONFIG"
qrpool-pending --state fetched | head -3 >"$T/items"
run qrpool-publish <"$T/items"
is "an unreadable oauthbearer config: exit 69 (authentication refused)" "$rc" 69
like "... librdkafka's complaint said" "$(cat "$T/err")" "Unrecognized sasl.oauthbearer.config beginning at: \*\*\*"
ok "... its secret nowhere" sh -c "! grep -q 'S3cretVAL' '$T/err' '$T/out'"
cp "$T/plain.cfg" "$QRPOOL_CONFIG"
