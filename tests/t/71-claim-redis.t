#!/bin/sh
# The cache is best effort, the bindings table the record: Redis down, Redis
# flushed, a password, unknown and malformed ids.
. "${0%/*}/lib.sh"
. "${0%/*}/claim.sh"
start_kafka
start_redis
write_claim_config redis
publish_codes 4

# Redis down while claiming: the bindings still land in SQLite.
stop_redis
records 2 | { run qrpool-claim --pool poster --out "$T/codes" --wait 300ms; echo "$rc" >"$T/rc"; }
is "redis down: claim still exits 0 (the DB is the record)" "$(cat "$T/rc")" 0
is "redis down: both codes handed out" "$(wc -l <"$T/out")" 2
is "redis down: one warning about the cache" "$(grep -c 'warning: redis' "$T/err")" 1
like "redis down: says the bindings were not cached" "$(cat "$T/err")" "2 bindings not cached in redis"
is "redis down: bindings durable in SQLite" "$(sql 'SELECT count(*) FROM bindings')" 2
cut -f1 "$T/out" >"$T/ids"
run qrpool-resolve $(cat "$T/ids")
is "redis down: resolve falls back, exit 0" "$rc" 0
is "redis down: resolve prints both" "$(cut -f1 "$T/out")" "$(cat "$T/ids")"
like "redis down: resolve warns" "$(cat "$T/err")" "warning: redis .*redis.sock"

# Redis back but empty (a restart, a flush): resolve falls back and re-warms.
start_redis
first=$(head -1 "$T/ids")
is "redis empty: no key yet" "$(rcli EXISTS "qr:$first")" 0
run qrpool-resolve $(cat "$T/ids")
is "redis empty: resolve exit 0" "$rc" 0
is "redis empty: quiet" "$(cat "$T/err")" ""
is "redis empty: re-warmed with the params" "$(rcli GET "qr:$first")" "$(sql "SELECT params FROM bindings WHERE request_id = '$first'")"
ok "redis empty: re-warmed with the ttl" -- test "$(rcli TTL "qr:$first")" -gt 3500
rcli SET "qr:$first" '{"from":"redis"}' >/dev/null
run qrpool-resolve -v "$first"
is "redis is read first" "$(cut -f2 "$T/out")" '{"from":"redis"}'
like "-v counts the sources" "$(cat "$T/err")" "1 from redis, 0 from the database"
rcli FLUSHALL >/dev/null
run qrpool-resolve -v $(cat "$T/ids")
like "flushed: both from the database" "$(cat "$T/err")" "0 from redis, 2 from the database"
is "flushed: re-warmed" "$(rcli EXISTS "qr:$first")" 1

# A cached value that is no record (written by someone else, or torn): never
# printed, least of all a line of its own for another id; the DB answers.
second=$(sed -n 2p "$T/ids")
rcli SET "qr:$first" "$(printf '{"listing":"L3"}\n%s\t{"listing":"forged"}' "$second")" >/dev/null
run qrpool-resolve "$first"
is "a cached value holding a second line: exit 0" "$rc" 0
is "... one line, for the id asked" "$(wc -l <"$T/out"):$(cut -f1 "$T/out")" "1:$first"
is "... the bound params, from the DB" "$(cut -f2 "$T/out")" \
  "$(sql "SELECT params FROM bindings WHERE request_id = '$first'")"
like "... warned of" "$(cat "$T/err")" \
  "$first: the value cached in Redis is no record \(one JSON object on one line"
is "... and cached again from the DB" "$(rcli GET "qr:$first")" \
  "$(sql "SELECT params FROM bindings WHERE request_id = '$first'")"
rcli SET "qr:$first" 'listing=L3' >/dev/null
run qrpool-resolve -v "$first"
is "a cached value that is no JSON object: answered from the DB" "$(cut -f2 "$T/out")" \
  "$(sql "SELECT params FROM bindings WHERE request_id = '$first'")"
like "... counted at -v" "$(cat "$T/err")" "0 from redis, 1 from the database, 0 unknown; 1 cached values were no record"
# A record of 4,096 bytes full of reals is cached much longer (17 digits each):
# still a record.
long=$("$PYTHON" -c 'print("{\"p\":[" + ",".join(["0.10000000000000001"] * 1000) + "]}")')
rcli SET "qr:$first" "$long" >/dev/null
run qrpool-resolve "$first"
is "a long cached record (reals in compact form, $(printf %s "$long" | wc -c) bytes): printed from Redis" \
  "$rc:$(cut -f2 "$T/out")" "0:$long"

# Unknown and malformed ids.
run qrpool-resolve "$first" NoSuchId00000000
is "an unknown id: exit 1" "$rc" 1
like "an unknown id: a clear message" "$(cat "$T/err")" "unknown request id 'NoSuchId00000000'"
is "the known id is still printed, the unknown one answered null" \
  "$(cut -f1 "$T/out" | tr '\n' ' ')$(tail -n 1 "$T/out" | cut -f2)" "$first NoSuchId00000000 null"
run qrpool-resolve "$first" 'not an id' NoSuchId00000000
is "an id outside the scene alphabet: exit 65 (outranks unknown)" "$rc" 65
like "naming the argument" "$(cat "$T/err")" "argument 2: 'not an id' is not a request id"
run qrpool-resolve "$(printf 'x%.0s' $(seq 33))"
is "33 characters: exit 65" "$rc" 65
printf '%s\n\nbad id here\n' "$first" >"$T/stdin-ids"
rc=0; qrpool-resolve <"$T/stdin-ids" >"$T/out" 2>"$T/err" || rc=$?
is "stdin: a bad line: exit 65" "$rc" 65
like "stdin: naming the line" "$(cat "$T/err")" "line 3: 'bad id here' is not a request id"
printf 'BBBB\000CCCC\n' | { rc=0; qrpool-resolve >"$T/out" 2>"$T/err" || rc=$?; echo "$rc" >"$T/rc"; }
is "stdin: an id with a NUL byte: exit 65" "$(cat "$T/rc")" 65
like "... said with the NUL, not as a bad 'BBBB'" "$(cat "$T/err")" "line 1: 'BBBB\\\\x00CCCC' is not a request id"
printf '%s\r\n%s\rjunk\n\033[2K\n' "$first" "$first" | { rc=0; qrpool-resolve >"$T/out" 2>"$T/err" || rc=$?; echo "$rc" >"$T/rc"; }
is "stdin: a CRLF line is its id; an id, a CR and more is not one (65)" "$(cat "$T/rc"):$(cut -f1 "$T/out")" "65:$first"
like "... said with the CR shown, not acted on" "$(cat "$T/err")" "line 2: '$first\\\\x0djunk' is not a request id"
like "... as an escape sequence is" "$(cat "$T/err")" "line 3: '\\\\x1b\\[2K' is not a request id"
printf '\357\273\277%s\n' "$first" >"$T/bom-ids"
rc=0; qrpool-resolve <"$T/bom-ids" >"$T/out" 2>"$T/err" || rc=$?
is "stdin: a BOM before the first id is dropped: answered, exit 0" "$rc:$(cut -f1 "$T/out")" "0:$first"
rc=0; qrpool-resolve "$first" >/dev/full 2>"$T/err" || rc=$?
is "a full stdout: exit 74" "$rc" 74
# As a co-process: an id written, its answer read, before the input ends.
mkfifo "$T/co-in"
qrpool-resolve <"$T/co-in" >"$T/co-out" 2>"$T/err" & resolver=$!
exec 7>"$T/co-in"
echo "$first" >&7
i=0
while [ ! -s "$T/co-out" ] && [ $i -lt 60 ]; do sleep 0.05; i=$((i + 1)); done
is "a co-process gets each answer while its input stays open" "$(cut -f1 "$T/co-out")" "$first"
echo NoSuchId00000000 >&7
i=0
while [ "$(wc -l <"$T/co-out")" -lt 2 ] && [ $i -lt 60 ]; do sleep 0.05; i=$((i + 1)); done
is "... an unknown id too (null), rather than leaving it waiting" "$(tail -n 1 "$T/co-out")" \
  "NoSuchId00000000	null"
# A batch's worth at once (256 ids, resolve's own batch): the batch answered on
# the way is flushed too, not left in the buffer while resolve waits for more.
awk -v id="$first" 'BEGIN { for (i = 0; i < 256; i++) print id }' >&7
i=0
while [ "$(wc -l <"$T/co-out")" -lt 258 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
is "... 256 ids written at once: every answer while the input stays open" \
  "$(wc -l <"$T/co-out" | tr -d ' ')" 258
exec 7>&-
rc=0; wait $resolver || rc=$?
is "... and ends with its input: exit 1 (an unknown id)" "$rc" 1
# The DB locked past busy_timeout for an id Redis does not hold: that id gets
# no answer, and neither does any after it (a cached one included): resolve
# ends, 75, so a co-process reading one line per id sees the end rather than
# the next id's answer taken for this one's.
missing=$(sql "SELECT request_id FROM bindings WHERE request_id != '$first' LIMIT 1")
rcli DEL "qr:$missing" >/dev/null
sed 's|busy_timeout = "5s"|busy_timeout = "300ms"|' "$QRPOOL_CONFIG" >"$T/locked.cfg"
# (In WAL mode a writer blocks no reader: only a connection in exclusive
# locking mode that has written keeps readers out.)
{ echo "PRAGMA locking_mode = EXCLUSIVE;"; echo "BEGIN EXCLUSIVE;"
  echo "UPDATE bindings SET pool = pool WHERE rowid = 1;"; echo ".print locked"
  sleep 4; echo "ROLLBACK;"; } | sqlite3 "$T/staging.db" >"$T/locked" & locker=$!
wait_locked "$T/locked"
printf '%s\n%s\n' "$missing" "$first" | { rc=0; qrpool-resolve -c "$T/locked.cfg" >"$T/out" 2>"$T/err" || rc=$?; echo $rc >"$T/rc"; }
wait "$locker" 2>/dev/null || true
is "the DB locked for an id Redis misses: exit 75" "$(cat "$T/rc")" 75
is "... no answer for it, nor for the (cached) id after it" "$(cat "$T/out")" ""
# A line of 10 MB holds no id: said and skipped, never kept whole.
{ head -c 10000000 /dev/zero | tr '\0' x; echo; echo "$first"; } >"$T/long-line"
rc=0; qrpool-resolve <"$T/long-line" >"$T/out" 2>"$T/err" || rc=$?
is "a 10 MB line: exit 65" "$rc" 65
like "... naming it" "$(cat "$T/err")" "line 1: longer than 4096 bytes: not a request id"
is "... the id after it still answered" "$(cut -f1 "$T/out")" "$first"
{ head -c 4096 /dev/zero | tr '\0' x; echo; head -c 4097 /dev/zero | tr '\0' x; echo; } >"$T/limit-lines"
rc=0; qrpool-resolve <"$T/limit-lines" >"$T/out" 2>"$T/err" || rc=$?
like "a 4096-byte line is read as a line (not an id: too long for one)" "$(cat "$T/err")" \
  "line 1: 'x+' is not a request id"
like "... a 4097-byte one is over the limit" "$(cat "$T/err")" "line 2: longer than 4096 bytes"
# A closed stdout: the Redis connection must not take fd 1 and get the output
# (it did: exit 0).
rc=0; qrpool-resolve "$first" >&- 2>"$T/err" || rc=$?
is "a closed stdout: exit 74" "$rc" 74
rc=0; qrpool-resolve "$first" 2>&- >"$T/out" || rc=$?
is "a closed stderr: still answers" "$rc:$(cut -f1 "$T/out")" "0:$first"

# A long-lived co-process through a Redis restart: the lookups go to the DB
# meanwhile, and once Redis is back (5 s after the failure at most) to Redis
# again. The cache used to stay off for the process's whole life.
rm -f "$T/co-in2"; mkfifo "$T/co-in2"; : >"$T/co-out"  # (emptied here: answered reads it)
qrpool-resolve -v <"$T/co-in2" >"$T/co-out" 2>"$T/co-err" & resolver=$!
exec 8>"$T/co-in2"
answered() {  # answered N: waits for the Nth answer line
  i=0; while [ "$(wc -l <"$T/co-out")" -lt "$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
echo "$first" >&8; answered 1
stop_redis
echo "$first" >&8; answered 2
start_redis 8>&-   # (the daemon must not hold the co-process's input open)
sleep 5.5
echo "$first" >&8; answered 3   # connected again: a miss (a fresh Redis), from the DB, cached
echo "$first" >&8; answered 4   # from Redis
exec 8>&-
rc=0; wait $resolver || rc=$?
is "a co-process through a Redis restart: every id answered, exit 0" "$rc:$(wc -l <"$T/co-out" | tr -d ' ')" 0:4
like "... the cache said off" "$(cat "$T/co-err")" "GET: .*; the cache is off, tried again every 5 s"
like "... then on again" "$(cat "$T/co-err")" "connected again: the cache is on"
like "... and used again once back" "$(cat "$T/co-err")" "2 from redis, 2 from the database"

# A password: from a file, mode 600; never in argv, logs or dumps.
stop_redis
start_redis --requirepass 'redis-pass-do-not-log'
printf 'redis-pass-do-not-log\n' >"$T/redis-pass"
chmod 600 "$T/redis-pass"
write_claim_config redis "password_file = \"$T/redis-pass\";"
run qrpool-resolve -vv "$first"
is "password: resolve exit 0" "$rc" 0
is "password: no warning" "$(grep -c warning "$T/err")" 0
is "password: re-warmed through AUTH" "$(rcli --no-auth-warning -a redis-pass-do-not-log EXISTS "qr:$first")" 1
run qrpool-resolve --dump-config
like "password: masked in the dump" "$(cat "$T/out")" "password_file = \"$T/redis-pass\";"
is "password: not in the dump" "$(grep -c redis-pass-do-not-log "$T/out" "$T/err" | awk -F: '{ s += $2 } END { print s }')" 0
chmod 640 "$T/redis-pass"
run qrpool-resolve "$first"
is "a group-readable password_file: exit 78" "$rc" 78
like "saying which chmod" "$(cat "$T/err")" "chmod 600 $T/redis-pass"
chmod 600 "$T/redis-pass"
printf 'wrong-pass\n' >"$T/redis-pass"
run qrpool-resolve "$first"
is "a wrong password: warned, falls back, exit 0" "$rc" 0
like "the warning names AUTH" "$(cat "$T/err")" "AUTH: "
write_claim_config redis "password = \"inline-pass-do-not-log\";"
run qrpool-resolve --dump-config
like "an inline password is masked" "$(cat "$T/out")" 'password = "\*\*\*\*\*\*\*\*";'
is "and never printed" "$(grep -c inline-pass-do-not-log "$T/out")" 0
# A password for a Redis on another host: refused, as this hiredis has no TLS
# and AUTH would carry it in clear; plaintext = true says the network is private.
redis_at() {  # redis_at HOST [SETTINGS]: a config with a password for Redis at HOST
  write_claim_config
  printf 'redis = { host = "%s"; password_file = "%s"; %s };\n' "$1" "$T/redis-pass" "${2:-}" >>"$QRPOOL_CONFIG"
}
redis_at 192.0.2.1
run qrpool-resolve --dump-config
is "a password for Redis on another host: exit 78" "$rc" 78
like "... saying why and what to do" "$(cat "$T/err")" \
  "qrpool.cfg:[0-9]+: redis host '192\.0\.2\.1' is another machine, and the Redis client here has no TLS: the password would cross the network in clear; reach it through a TLS tunnel"
redis_at 192.0.2.1 'plaintext = true;'
run qrpool-resolve --dump-config
is "... plaintext = true: accepted" "$rc:$(grep -c 'plaintext = true;' "$T/out")" 0:1
for host in 127.0.0.1 localhost ::1; do
  redis_at $host
  run qrpool-resolve --dump-config
  is "... a password for Redis at $host: accepted" "$rc" 0
done

# The database failing does not hide what Redis knows: cached ids are printed.
printf 'redis-pass-do-not-log\n' >"$T/redis-pass"
write_claim_config redis "password_file = \"$T/redis-pass\";"
# redis.database: the keys go to that database (SELECT after AUTH), not to 0.
arcli() { rcli --no-auth-warning -a redis-pass-do-not-log "$@"; }
arcli DEL "qr:$first" >/dev/null
write_claim_config redis "password_file = \"$T/redis-pass\"; database = 3;"
run qrpool-resolve "$first"
is "redis.database 3: resolve exit 0, quiet" "$rc:$(cat "$T/err")" "0:"
is "... re-warmed into database 3" "$(arcli -n 3 GET "qr:$first")" \
  "$(sql "SELECT params FROM bindings WHERE request_id = '$first'")"
is "... not into database 0" "$(arcli EXISTS "qr:$first")" 0
arcli -n 3 SET "qr:$first" '{"from":"db3"}' >/dev/null
run qrpool-resolve -v "$first"
is "... and read from there" "$(cut -f2 "$T/out")" '{"from":"db3"}'
write_claim_config redis "password_file = \"$T/redis-pass\";"
rcli --no-auth-warning -a redis-pass-do-not-log SET qr:CachedId00000001 '{"a":1}' >/dev/null
sed "s|path = \"[^\"]*\"|path = \"$T/no-such-dir/staging.db\"|" "$QRPOOL_CONFIG" >"$T/nodb.cfg"
run qrpool-resolve -c "$T/nodb.cfg" CachedId00000001 MissingId0000001
is "DB unusable: exit 74" "$rc" 74
is "DB unusable: the cached id is still printed" "$(cat "$T/out")" 'CachedId00000001	{"a":1}'
mkdir "$T/dbdir"
sed "s|path = \"[^\"]*\"|path = \"$T/dbdir\"|" "$QRPOOL_CONFIG" >"$T/dirdb.cfg"
run qrpool-resolve -c "$T/dirdb.cfg" CachedId00000001 MissingId0000001
is "database.path a directory: exit 78, the config's mistake" "$rc" 78
like "... saying so" "$(cat "$T/err")" "dbdir: database.path names a directory, not the staging DB's file"
is "... the cached id still printed" "$(cat "$T/out")" 'CachedId00000001	{"a":1}'
# An empty file (emptied by mistake, say) is no DB either: resolve writes no
# schema into it.
(umask 077; : >"$T/empty.db")
sed "s|path = \"[^\"]*\"|path = \"$T/empty.db\"|" "$QRPOOL_CONFIG" >"$T/emptydb.cfg"
run qrpool-resolve -c "$T/emptydb.cfg" MissingId0000001
is "an empty DB file: exit 74" "$rc" 74
like "... saying so" "$(cat "$T/err")" "empty.db: the file is empty .*: no bindings to fall back on"
is "... and left empty" "$(stat -c %s "$T/empty.db")" 0
# Another app's SQLite file named by mistake: resolve reads, never writes. It
# used to switch the file to WAL and add qrpool's tables to it.
sqlite3 "$T/other.db" "CREATE TABLE t (x); INSERT INTO t VALUES (1);"
sed "s|path = \"[^\"]*\"|path = \"$T/other.db\"|" "$QRPOOL_CONFIG" >"$T/other.cfg"
run qrpool-resolve -c "$T/other.cfg" MissingId0000001
is "another app's DB: exit 74" "$rc" 74
like "... saying it is no staging DB" "$(cat "$T/err")" "other.db: no bindings table: not a qrpool staging DB"
is "... and left as it was (one table, its journal mode)" \
  "$(sqlite3 "$T/other.db" "SELECT count(*) FROM sqlite_master; PRAGMA journal_mode;" | tr '\n' ' ')" "1 delete "
