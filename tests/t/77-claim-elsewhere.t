#!/bin/sh
# A code bound elsewhere is not bound again: claim sets a code's Redis key only
# if no one has (SET NX), so a claim with another staging DB, or another
# environment sharing redis.prefix, skips a code whose key holds another
# record. The card pool's topic has one partition: its codes come in the order
# they were published.
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
  "warning: $(c 1): skipped, not handed out: its Redis key qr:$(c 1) holds another record \(bound by a claim with another staging DB"
is "... both" "$(grep -c 'skipped, not handed out' "$T/err")" 2
like "... and summed up, with what to check" "$(cat "$T/err")" \
  "warning: 2 codes skipped as bound elsewhere \(Redis held another record for each\): do two environments share redis.prefix 'qr:'"
is "... not bound in B's DB" "$(sqlite3 "$T/b.db" 'SELECT group_concat(request_id) FROM bindings')" "$(c 3)"
is "... no file for them" "$(ls "$T/b")" "$(c 3).jpg"
is "... A's records left in Redis" "$(rcli GET "qr:$(c 1)"):$(rcli GET "qr:$(c 2)")" \
  "$(params 1):$(params 2)"
is "... B's record for code 3" "$(rcli GET "qr:$(c 3)")" "$(params 101)"

# Back in A's DB, a third group reads the topic from the start too: codes 1
# and 2 are bound in this DB (redelivered, as after a crash), code 3 elsewhere;
# code 4's key already holds the very record A binds next (set by a claim of it
# that stopped before its binding): bound.
sed 's|{ name = "card";|{ name = "card"; group = "third.card";|' "$QRPOOL_CONFIG" >"$T/c.cfg"
chmod 600 "$T/c.cfg"
rcli SET "qr:$(c 4)" "$(params 3)" >/dev/null
records 1 3 | { run qrpool-claim -c "$T/c.cfg" -v --pool card --out "$T/a" --wait 300ms
  echo "$rc" >"$T/rc"; }
is "A's DB: binds code 4, whose key held this record: exit 0" "$(cat "$T/rc"):$(cut -f1 "$T/out")" \
  "0:$(c 4)"
like "... codes 1 and 2 redelivered, code 3 bound elsewhere" "$(cat "$T/err")" \
  "pool card: 1 bound, 2 redelivered and skipped, 1 bound elsewhere skipped, 0 unusable skipped"
like "... said as redelivered" "$(cat "$T/err")" "$(c 1): bound already \(redelivered"
is "... code 3's warning only" "$(grep -c 'skipped, not handed out' "$T/err")" 1
is "... code 4 bound in A's DB" \
  "$(sql "SELECT params FROM bindings WHERE request_id = '$(c 4)'")" "$(params 3)"

# A binding that fails after its key was set (the DB locked past
# busy_timeout): the key is deleted, so the code, back at the next run, is
# bound then rather than skipped as another's. A's group is past code 2: code
# 3 is B's, code 4 bound in this DB, code 5 the one to bind.
sed 's|busy_timeout = "5s"|busy_timeout = "300ms"|' "$QRPOOL_CONFIG" >"$T/locked.cfg"
chmod 600 "$T/locked.cfg"
# (The DB is locked once claim has started, its run recorded: the record
# comes through a FIFO after that.)
mkfifo "$T/in"
{ run qrpool-claim -c "$T/locked.cfg" --pool card --out "$T/a" --wait 300ms <"$T/in"
  echo "$rc" >"$T/rc"; } & claimer=$!
exec 9>"$T/in"
i=0
until [ "$(sql "SELECT count(*) FROM runs WHERE stage = 'claim' AND ended_at IS NULL")" = 1 ] ||
  [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
{ echo "BEGIN IMMEDIATE;"; echo "UPDATE bindings SET pool = pool WHERE rowid = 1;"
  echo ".print locked"; sleep 4; echo "ROLLBACK;"; } | sqlite3 "$T/staging.db" >"$T/locked" &
locker=$!
wait_locked "$T/locked"
records 1 4 >&9
exec 9>&-
wait "$claimer"
wait "$locker" 2>/dev/null || true
is "the binding of code 5 meets a locked DB: exit 75, nothing printed" \
  "$(cat "$T/rc"):$(cat "$T/out")" "75:"
is "... its key deleted again" "$(rcli EXISTS "qr:$(c 5)")" 0
records 1 4 | { run qrpool-claim --pool card --out "$T/a" --wait 300ms; echo "$rc" >"$T/rc"; }
is "... the rerun binds it: exit 0" "$(cat "$T/rc"):$(cut -f1 "$T/out")" "0:$(c 5)"
is "... with this record in Redis" "$(rcli GET "qr:$(c 5)")" "$(params 4)"
