#!/bin/sh
# A code bound elsewhere is not handed out again: once a code is bound, claim
# sets its Redis key only if no one has (SET NX), so a claim with another
# staging DB, or another environment sharing redis.prefix, finds the key set,
# removes its binding and skips the code. The card pool's topic has one
# partition: its codes come in the order they were published.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
start_redis
write_claim_config redis
publish_codes 6 card
c() { sed -n "${1}p" "$T/published"; }   # the Nth code published
params() { records 1 "$1"; }              # the record `records` numbers N

# A, the first environment: binds codes 1 and 2.
records 2 | { run qrpool-claim --pool card --out "$T/a" --wait 300ms; echo "$rc" >"$T/rc"; }
is "A binds codes 1 and 2" "$(cat "$T/rc"):$(cut -f1 "$T/out" | tr '\n' ' ')" "0:$(c 1) $(c 2) "

# B: another staging DB, another group (a second environment, or a claim host
# with a DB of its own): the topic from the start.
sed -e "s|$T/staging.db|$T/b.db|" \
  -e 's|{ name = "card";|{ name = "card"; group = "other.card";|' "$QRPOOL_CONFIG" >"$T/b.cfg"
chmod 600 "$T/b.cfg"
records 1 101 | { run qrpool-claim -c "$T/b.cfg" --pool card --out "$T/b" --wait 300ms
  echo "$rc" >"$T/rc"; }
is "B skips codes 1 and 2 (A's) and binds code 3: exit 0" \
  "$(cat "$T/rc"):$(cut -f1 "$T/out")" "0:$(c 3)"
like "... each skipped code named, with its key" "$(cat "$T/err")" \
  "warning: $(c 1): skipped, not handed out: its Redis key qr:$(c 1) was set already \(by a claim with another staging DB"
is "... both" "$(grep -c 'skipped, not handed out' "$T/err")" 2
like "... and summed up, with what to check" "$(cat "$T/err")" \
  "warning: 2 codes skipped as bound elsewhere \(their Redis keys were set already\): do two environments share redis.prefix 'qr:'"
is "... their bindings in B's DB removed again" "$(sqlite3 "$T/b.db" 'SELECT group_concat(request_id) FROM bindings')" "$(c 3)"
is "... no file for them" "$(ls "$T/b")" "$(c 3).jpg"
is "... A's records left in Redis" "$(rcli GET "qr:$(c 1)"):$(rcli GET "qr:$(c 2)")" \
  "$(params 1):$(params 2)"
is "... B's record for code 3" "$(rcli GET "qr:$(c 3)")" "$(params 101)"

# Back in A's DB, a third group reads the topic from the start too: codes 1
# and 2 are bound in this DB (redelivered, as after a crash), code 3
# elsewhere (B's); code 4's key already holds the very record A binds next
# (the same batch of records run on another host): elsewhere too. Code 5 is
# bound.
sed 's|{ name = "card";|{ name = "card"; group = "third.card";|' "$QRPOOL_CONFIG" >"$T/c.cfg"
chmod 600 "$T/c.cfg"
rcli SET "qr:$(c 4)" "$(params 3)" >/dev/null
records 1 3 | { run qrpool-claim -c "$T/c.cfg" -v --pool card --out "$T/a" --wait 300ms
  echo "$rc" >"$T/rc"; }
is "A's DB: binds code 5: exit 0" "$(cat "$T/rc"):$(cut -f1 "$T/out")" "0:$(c 5)"
like "... codes 1 and 2 redelivered, codes 3 and 4 bound elsewhere" "$(cat "$T/err")" \
  "pool card: 1 bound, 2 redelivered and skipped, 2 bound elsewhere skipped, 0 unusable skipped"
like "... said as redelivered" "$(cat "$T/err")" "$(c 1): bound already \(redelivered"
is "... codes 3 and 4 warned of" "$(grep -c 'skipped, not handed out' "$T/err")" 2
is "... A's DB binds codes 1, 2 and 5, not 3 nor 4" \
  "$(sql "SELECT group_concat(request_id, ' ') FROM (SELECT request_id FROM bindings ORDER BY kafka_offset)")" \
  "$(c 1) $(c 2) $(c 5)"
is "... code 5's key set to the record" "$(rcli GET "qr:$(c 5)")" "$(params 3)"

# A binding that fails (the DB locked past busy_timeout): no key is set, as
# the key comes after the binding. A's group is past code 2: code 3 is the
# next it meets, its key deleted first (as if B's had expired), so that it is
# A's to bind. (The DB is locked once claim has started, its run recorded:
# the record comes through a FIFO after that.)
sed 's|busy_timeout = "5s"|busy_timeout = "300ms"|' "$QRPOOL_CONFIG" >"$T/locked.cfg"
chmod 600 "$T/locked.cfg"
rcli DEL "qr:$(c 3)" >/dev/null
mkfifo "$T/in"
{ run qrpool-claim -c "$T/locked.cfg" --pool card --out "$T/a" --wait 300ms <"$T/in"
  echo "$rc" >"$T/rc"; } & claimer=$!
exec 9>"$T/in"
i=0
until [ "$(sql "SELECT count(*) FROM runs WHERE stage = 'claim' AND ended_at IS NULL")" = 1 ] ||
  [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
lock_db 1 "recording a binding"   # (held until claim has said so: no race with its join)
records 1 4 >&9
exec 9>&-
wait "$claimer"
wait "$locker" 2>/dev/null || true
is "the binding of code 3 meets a locked DB: exit 75, nothing printed" \
  "$(cat "$T/rc"):$(cat "$T/out")" "75:"
is "... no key set for it" "$(rcli EXISTS "qr:$(c 3)")" 0
records 1 4 | { run qrpool-claim -v --pool card --out "$T/a" --wait 300ms; echo "$rc" >"$T/rc"; }
is "... the rerun binds it (its key free now), exit 0" "$(cat "$T/rc"):$(cut -f1 "$T/out")" "0:$(c 3)"
is "... with this record in Redis" "$(rcli GET "qr:$(c 3)")" "$(params 4)"

# A key of another kind (a hash someone else keeps under the prefix) is set
# too: the code is skipped, not bound. (SET NX finds any key; nothing is read.)
# A's group meets code 4 (elsewhere), 5 (bound here by the third group), then 6.
publish_codes 1 card
rcli HSET "qr:$(c 6)" owner elsewhere >/dev/null
records 1 5 | { run qrpool-claim --pool card --out "$T/a" --wait 300ms; echo "$rc" >"$T/rc"; }
is "a key that is a hash: that code skipped, the next bound" "$(cat "$T/rc"):$(cut -f1 "$T/out")" "0:$(c 7)"
is "... the hash left as it was" "$(rcli HGET "qr:$(c 6)" owner)" elsewhere

# Without Redis: no key, no word of a cache.
sed -e "s|$T/staging.db|$T/d.db|" -e 's|{ name = "card";|{ name = "card"; group = "plain.card";|' \
  -e '/^redis = /d' "$QRPOOL_CONFIG" >"$T/d.cfg"
chmod 600 "$T/d.cfg"
records 1 6 | { run qrpool-claim -c "$T/d.cfg" --pool card --out "$T/d" --wait 300ms; echo "$rc" >"$T/rc"; }
is "no redis section: code 1 bound, stderr quiet (no 'not cached in redis')" \
  "$(cat "$T/rc"):$(cut -f1 "$T/out"):$(cat "$T/err")" "0:$(c 1):"
