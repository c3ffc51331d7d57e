#!/bin/sh
# Bad parameter lines: reported with their line number, and no code is taken
# for them (nothing bound, the group's committed offsets do not move for them).
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
write_claim_config
publish_codes 6

n=0
while IFS= read -r description; do
  case "$description" in ''|'#'*) continue ;; esac
  IFS= read -r expect_rc; IFS= read -r expect_message; IFS= read -r input
  n=$((n + 1))
  rc=0; printf '%b' "$input" | qrpool-claim --pool poster --out "$T/codes" >"$T/out" 2>"$T/err" || rc=$?
  is "case $n ($description): exit $expect_rc" "$rc" "$expect_rc"
  like "case $n ($description): message" "$(tr '\n' ' ' <"$T/err")" "$expect_message"
  is "case $n ($description): nothing printed" "$(wc -c <"$T/out")" 0
done <"$TESTS_DIR/t/claim-bad-params.cases"
ok "the cases file was read" -- test "$n" -ge 10
is "no case bound a code" "$(sql 'SELECT count(*) FROM bindings')" 0
is "no case committed an offset" "$(committed_total)" 0

# The size limit: 4096 bytes is a record, 4097 is not.
pad() { printf '{"p":"%s"}' "$(head -c $(($1 - 8)) /dev/zero | tr '\0' x)"; }
{ pad 4097; echo; } | { run qrpool-claim --pool poster --out "$T/codes"; echo "$rc" >"$T/rc"; }
is "a 4097-byte record: exit 65" "$(cat "$T/rc")" 65
like "saying the limit" "$(cat "$T/err")" "line 1: the record is 4097 bytes, more than 4096"
# A 200 MB line is counted, not kept: claim's peak memory stays far below it.
{ head -c 200000000 /dev/zero | tr '\0' x; echo; echo oops; } >"$T/huge"
run_peak "$T/huge" qrpool-claim --pool poster --out "$T/codes"
rm -f "$T/huge"
is "a 200 MB line, then a bad one: exit 65" "$rc" 65
like "... saying its length" "$(cat "$T/err")" "line 1: the record is 200000000 bytes, more than 4096"
like "... and the next line read on, as line 2" "$(cat "$T/err")" "line 2: not JSON"
ok "... in less than 100 MB (peak $peak_kb KB)" test "$peak_kb" -lt 100000

# Good and bad lines mixed: the good ones are bound, in order, the bad ones
# take nothing. (The longest record, with a BOM before it and a CR after, is one.)
{ printf '\357\273\277'; pad 4096; printf '\r\n'; echo 'oops'; records 1 7; echo '[]'; printf '\357\273\277{"crlf":true}\r\n'; } >"$T/mixed"
rc=0; qrpool-claim --pool poster --out "$T/codes" --wait 300ms <"$T/mixed" >"$T/out" 2>"$T/err" || rc=$?
is "mixed: exit 65" "$rc" 65
is "mixed: three codes for the three good lines" "$(wc -l <"$T/out")" 3
like "mixed: line 2 named" "$(cat "$T/err")" "line 2: not JSON"
like "mixed: line 4 named" "$(cat "$T/err")" "line 4: a record must be a JSON object"
like "mixed: the summary" "$(cat "$T/err")" "2 bad parameter lines: no code taken for them"
is "mixed: params bound in input order" "$(sql 'SELECT length(params) FROM bindings ORDER BY rowid' | tr '\n' ' ')" "4096 54 13 "
is "mixed: a CR before the LF is dropped, and a UTF-8 BOM before the record" "$(sql 'SELECT params FROM bindings ORDER BY rowid DESC LIMIT 1')" '{"crlf":true}'
is "mixed: exactly three offsets committed" "$(committed_total)" 3
# The other three are still there for the online services (and for us).
records 5 | { run qrpool-claim --pool poster --out "$T/codes2" --wait 300ms; echo "$rc" >"$T/rc"; }
is "the three codes not taken are still in the pool" "$(wc -l <"$T/out")" 3
is "then the pool is empty (75)" "$(cat "$T/rc")" 75
is "all six bound once" "$(sql 'SELECT count(DISTINCT request_id) FROM bindings')" 6

# A kafka.properties entry librdkafka does not know: 78 at once, even with no
# record to bind, before any run is recorded or --out is made.
sed 's|^kafka = { \(.*\)properties = \[|kafka = { \1properties = [ "no.such.property=1", |' "$QRPOOL_CONFIG" >"$T/typo.cfg"
runs=$(sql "SELECT count(*) FROM runs WHERE stage = 'claim'")
rc=0; qrpool-claim -c "$T/typo.cfg" --pool poster --out "$T/never" </dev/null >"$T/out" 2>"$T/err" || rc=$?
is "a kafka.properties typo, empty input: exit 78" "$rc" 78
like "... naming the property" "$(cat "$T/err")" 'no.such.property'
ok "... no --out directory made" test ! -e "$T/never"
is "... no run recorded" "$(sql "SELECT count(*) FROM runs WHERE stage = 'claim'")" "$runs"

# No broker configured: 78 at once, naming kafka.brokers, not a wait of
# kafka.timeout ended by "no answer" (75, which says a retry might help).
sed 's|^kafka = { brokers = "[^"]*";|kafka = {|' "$QRPOOL_CONFIG" >"$T/nobrokers.cfg"
rc=0; records 1 | qrpool-claim -c "$T/nobrokers.cfg" --pool poster --out "$T/never" >"$T/out" 2>"$T/err" || rc=$?
is "no kafka.brokers: exit 78" "$rc" 78
like "... naming the setting" "$(cat "$T/err")" "nobrokers.cfg: kafka.brokers is not set"
ok "... no --out directory made" test ! -e "$T/never"
is "... no run recorded" "$(sql "SELECT count(*) FROM runs WHERE stage = 'claim'")" "$runs"

# --out refused before any code is taken: a path whose parent is missing (one
# level is made, not more), a directory others may write to (they could replace
# the codes handed out). Exit 74, nothing bound, no offset committed.
publish_codes 1
bound=$(sql 'SELECT count(*) FROM bindings'); committed=$(committed_total)
rc=0; records 1 | qrpool-claim --pool poster --out "$T/no/such" >"$T/out" 2>"$T/err" || rc=$?
is "--out in a directory that does not exist: exit 74" "$rc" 74
like "... saying to make that first" "$(cat "$T/err")" \
  "--out $T/no/such: the directory it would be made in does not exist \(only the last level is made\)"
mkdir "$T/open"; chmod 0777 "$T/open"
rc=0; records 1 | qrpool-claim --pool poster --out "$T/open" >"$T/out" 2>"$T/err" || rc=$?
is "--out writable by others: exit 74" "$rc" 74
like "... saying why" "$(cat "$T/err")" "--out $T/open: the directory is writable by others \(mode 0777\)"
is "... nothing printed" "$(wc -c <"$T/out")" 0
is "... no code bound" "$(sql 'SELECT count(*) FROM bindings')" "$bound"
is "... no offset committed" "$(committed_total)" "$committed"
# A shared sticky one (/tmp) is not to be chmod'ed: one made in it is the advice.
mkdir "$T/shared"; chmod 1777 "$T/shared"
rc=0; records 1 | qrpool-claim --pool poster --out "$T/shared" >"$T/out" 2>"$T/err" || rc=$?
like "--out a sticky shared directory: 74, a directory made in it advised, not chmod" \
  "$rc:$(cat "$T/err")" "^74:.*one made in it will do: mkdir -m 755 $T/shared/qrpool-codes\)"
# One made by this run and refused (under another user's directory) is not left behind.
if id nobody >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  mkdir "$T/theirs"; chown nobody "$T/theirs"
  rc=0; records 1 | qrpool-claim --pool poster --out "$T/theirs/out" >"$T/out" 2>"$T/err" || rc=$?
  is "--out made under another user's directory: 74, and removed again" \
    "$rc:$(ls "$T/theirs" | wc -l)" 74:0
else
  skip_tests 1 "not root, or no user nobody"
fi
chmod 0755 "$T/open"
records 1 | { run qrpool-claim --pool poster --out "$T/open" --wait 300ms; echo "$rc" >"$T/rc"; }
is "... once mended, the code is there to take" "$(cat "$T/rc"):$(wc -l <"$T/out")" "0:1"

# Kafka refusing this client's authentication (a SASL setup the cluster does not
# speak): said as such, 69 (no rerun helps), not "no answer (all brokers down)", 75.
sed "s|^kafka = .*|kafka = { brokers = \"$KAFKA_BROKERS\"; timeout = \"5s\"; properties = [ \"security.protocol=SASL_PLAINTEXT\", \"sasl.mechanisms=PLAIN\", \"sasl.username=u\", \"sasl.password=p\" ]; };|" \
  "$QRPOOL_CONFIG" >"$T/sasl.cfg"
chmod 600 "$T/sasl.cfg"
records 1 | { run qrpool-claim -c "$T/sasl.cfg" --pool poster --out "$T/open"; echo "$rc" >"$T/rc"; }
is "Kafka refusing the SASL setup: exit 69, nothing printed" "$(cat "$T/rc"):$(wc -l <"$T/out")" "69:0"
like "... naming the authentication and the settings" "$(cat "$T/err")" \
  "pool poster: Kafka refused this client's authentication \(.*SASL.*\): kafka.properties' security.protocol and sasl.\* settings must match the cluster's"
