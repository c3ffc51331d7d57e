#!/bin/sh
# qrpool-claim then qrpool-resolve: the round trip through Kafka, SQLite and Redis.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
start_redis
REDIS_TTL=3600500ms write_claim_config redis
publish_codes 8

# (The commands Redis receives, to see the ttl's milliseconds: 1 h and 500 ms.)
rcli MONITOR >"$T/monitor" 2>/dev/null & monitor=$!
at_exit "kill_child $monitor"
i=0; until grep -q OK "$T/monitor" || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
records 5 | { run qrpool-claim --pool poster --out "$T/codes" --wait 300ms; echo "$rc" >"$T/rc"; }
# (The monitor may not have written the last SET yet when claim ends.)
i=0; until [ "$(grep -c '"SET"' "$T/monitor")" -ge 5 ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
kill $monitor
is "claim binds 5 records: exit 0" "$(cat "$T/rc")" 0
is "stderr is quiet on success" "$(cat "$T/err")" ""
is "one 'request_id TAB file' line per record" "$(grep -cE "^[0-9A-Za-z]{16}	$T/codes/[0-9A-Za-z]{16}\.jpg\$" "$T/out")" 5
cp "$T/out" "$T/claim-out"
cut -f1 "$T/out" >"$T/claimed"
is "every id came from the pool" "$(sort "$T/claimed" "$T/published" | uniq -d | wc -l)" 5
is "no id twice" "$(sort -u "$T/claimed" | wc -l)" 5
id=$(head -1 "$T/claimed")
is "the file holds the image from Kafka" "$(cat "$T/codes/$id.jpg" | tail -c +5)" "JFIF-$id"
is "file name = request id" "$(cut -f2 "$T/out" | sed 's|.*/||; s|\.jpg$||' | sort | md5sum)" "$(sort "$T/claimed" | md5sum)"
is "no temp files left" "$(ls -A "$T/codes" | grep -c '^\.')" 0
is "bindings table: 5 rows" "$(sql "SELECT count(*) FROM bindings WHERE pool = 'poster'")" 5
is "params stored compact, in order" "$(sql "SELECT params FROM bindings WHERE request_id = '$id'")" \
  '{"listing_id":"L1","agent_id":"A1","channel":"poster"}'
is "partition and offset recorded" "$(sql "SELECT count(*) FROM bindings WHERE kafka_partition BETWEEN 0 AND 2 AND kafka_offset >= 0")" 5
is "offsets committed for the 5 codes" "$(committed_total)" 5
is "redis: key prefix + id holds the params" "$(rcli GET "qr:$id")" \
  '{"listing_id":"L1","agent_id":"A1","channel":"poster"}'
ttl=$(rcli TTL "qr:$id")
ok "redis: the key expires within the configured ttl ($ttl s)" -- test "$ttl" -gt 3500 -a "$ttl" -le 3601
is "... set to the millisecond (3600500ms, not cut to 3600 s), only if no one has (NX)" \
  "$(grep -c "\"SET\" \"qr:[0-9A-Za-z]*\" .* \"PX\" \"3600500\" \"NX\"\$" "$T/monitor")" 5

run qrpool-resolve $(cat "$T/claimed")
is "resolve: exit 0" "$rc" 0
is "resolve prints 'request_id TAB json' in order" "$(cut -f1 "$T/out")" "$(cat "$T/claimed")"
is "resolve: the bound params" "$(sed -n 2p "$T/out" | cut -f2)" '{"listing_id":"L2","agent_id":"A2","channel":"poster"}'
run sh -c "qrpool-resolve <'$T/claim-out'"
is "resolve reads claim's output on stdin" "$(cut -f1 "$T/out")" "$(cat "$T/claimed")"

# --count stops early; the rest of stdin is not read.
records 10 100 | { run qrpool-claim --pool poster --out "$T/codes2" --count 2 --wait 300ms; echo "$rc" >"$T/rc"; }
is "--count 2: exit 0" "$(cat "$T/rc")" 0
is "--count 2: two codes" "$(wc -l <"$T/out")" 2
is "committed offsets: 7 in all" "$(committed_total)" 7

# An empty pool: 1 code left, 3 records.
records 3 200 | { run qrpool-claim --pool poster --out "$T/codes3" --wait 300ms; echo "$rc" >"$T/rc"; }
is "empty pool: exit 75" "$(cat "$T/rc")" 75
is "empty pool: the last code was still bound" "$(wc -l <"$T/out")" 1
like "empty pool: says how many were bound" "$(cat "$T/err")" "pool poster is empty: bound 1 code; line 2 and after were not bound"
is "all 8 codes bound once" "$(sql 'SELECT count(DISTINCT request_id) FROM bindings')" 8

# Unusable messages are skipped and committed past, never handed out.
printf '{"errcode":40001,"errmsg":"invalid credential"}' >"$T/json-body"
kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -k BadBody000000001 -H content-type=image/jpeg "$T/json-body"
printf '\211PNG\r\n\032\nfake' >"$T/png"
sha=$(sha256sum "$T/png" | cut -d' ' -f1)
kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -k BadDigest0000001 -H content-type=image/png -H sha256=0000 "$T/png"
kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -k '../escape' -H content-type=image/png "$T/png"
# A scene id WeChat would take, but with a shell's characters: no file of that name.
kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -k '$(id);x' -H content-type=image/png -H "sha256=$sha" "$T/png"
# A digest header too long to be one (the right digest and more) is no digest.
kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -k LongDigest000001 -H content-type=image/png -H "sha256=${sha}012345" "$T/png"
kcat -b "$KAFKA_BROKERS" -P -t qrpool.card -k GoodPng000000001 -H content-type=image/png -H "sha256=$sha" "$T/png"
echo '{"campaign":"c1"}' | { run qrpool-claim --pool card --out "$T/codes4" --wait 300ms; echo "$rc" >"$T/rc"; }
is "unusable codes skipped: exit 0" "$(cat "$T/rc")" 0
is "the PNG code is handed out as .png" "$(cat "$T/out")" "GoodPng000000001	$T/codes4/GoodPng000000001.png"
is "a JSON body is never written as an image" "$(ls "$T/codes4")" "GoodPng000000001.png"
like "skips are warned with partition and offset" "$(cat "$T/err")" "partition 0 offset 0: skipped: the value is not a JPEG"
like "a digest mismatch is refused" "$(cat "$T/err")" "does not match its sha256"
like "a key that is not a file name is refused" "$(cat "$T/err")" "offset 2: skipped: its key is not a request id"
like "an over-long digest header is refused, not ignored" "$(cat "$T/err")" \
  "offset 4: skipped: the image does not match its sha256"
like "a key with a shell's characters is refused" "$(cat "$T/err")" "offset 3: skipped: its key is not a request id"
is "card: all 6 offsets committed" "$(committed_total card)" 6

# stdout gone after a code was bound (head took one line): that code is bound,
# so its offset is committed all the same; it never reaches anyone else. The
# second record is written only once head has gone.
publish_codes 3 card
mkfifo "$T/stdin-fifo" "$T/stdout-fifo"
head -1 <"$T/stdout-fifo" >"$T/out" & reader=$!
qrpool-claim --pool card --out "$T/codes6" --wait 300ms <"$T/stdin-fifo" >"$T/stdout-fifo" 2>"$T/err" &
claim=$!
exec 6>"$T/stdin-fifo"
records 1 300 >&6
wait $reader
records 1 301 >&6
exec 6>&-
rc=0; wait $claim || rc=$?
is "stdout closed after a binding: exit 74" "$rc" 74
second=$(sed -n 2p "$T/new-ids")
is "... the code bound when stdout failed is in bindings" \
  "$(sql "SELECT count(*) FROM bindings WHERE request_id = '$second'")" 1
like "... and the run says it is bound, not handed out again" "$(cat "$T/err")" \
  "$second is bound to line 2's record .in bindings., so it goes to no one else"
like "... and where to start again: the line after it" "$(cat "$T/err")" \
  "stopped: bound 2 codes; line 3 and after were not bound"
is "... its offset committed with the first's" "$(committed_total card)" 8
is "... the group's next code is the third, not the bound one" \
  "$(kcat -C -b "$KAFKA_BROKERS" -G qrpool-online.card -c 1 -e -q -f '%k\n' qrpool.card 2>/dev/null)" \
  "$(sed -n 3p "$T/new-ids")"

run qrpool-claim --pool nosuch --out "$T/x"
is "unknown pool: exit 64" "$rc" 64
like "naming the pools" "$(cat "$T/err")" "pools: poster, card, link"
run qrpool-claim --pool poster
is "--out missing: exit 64" "$rc" 64
run qrpool-claim --pool poster --out ''
is "--out empty: exit 64, a usage error, not 74" "$rc:$(grep -c 'an empty directory name' "$T/err")" 64:1
run qrpool-claim --dump-config
like "--dump-config shows the redis section" "$(cat "$T/out")" 'prefix = "qr:";'

# Kafka unreachable: exit 75 at once, nothing bound.
sed 's|brokers = "[^"]*"|brokers = "127.0.0.1:9"|' "$QRPOOL_CONFIG" >"$T/down.cfg"
before=$(sql 'SELECT count(*) FROM bindings')
echo '{"a":1}' | { run qrpool-claim -c "$T/down.cfg" --pool poster --out "$T/codes5"; echo "$rc" >"$T/rc"; }
is "Kafka unreachable: exit 75" "$(cat "$T/rc")" 75
like "Kafka unreachable: said so" "$(cat "$T/err")" "kafka 127.0.0.1:9: no answer"
is "Kafka unreachable: nothing bound" "$(sql 'SELECT count(*) FROM bindings')" "$before"

# --out with a trailing slash: the printed path has no '//'.
publish_codes 1
records 1 900 | { run qrpool-claim --pool poster --out "$T/slash//" --wait 300ms; echo "$rc" >"$T/rc"; }
like "--out DIR/: the path printed as DIR/ID.jpg" "$(cat "$T/out")" "	$T/slash/[0-9A-Za-z]{16}\.jpg$"
