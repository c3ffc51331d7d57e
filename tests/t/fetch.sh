# Helpers of the qrpool-fetch tests (30-fetch*.t), sourced after lib.sh:
# the fake WeChat on loopback, planned items, the server's statistics.

command -v fake-wechat >/dev/null || skip_all "fake-wechat is not built"
command -v qrpool-fetch >/dev/null || skip_all "qrpool-fetch is not built"
for tool in curl sqlite3; do
  command -v $tool >/dev/null || skip_all "$tool is missing"
done

APPID=wxtest0000000001
SECRET=test-secret-do-not-log
# Plans cover from the start of this hour (--from), so a test running on past
# the hour's end still plans the same codes.
HOUR=$(date -u +%Y-%m-%dT%H:00Z)
write_config   # the secret file, for the fake

# wait_port_file FILE WHAT LOG: waits (10 s at most) for a server's port
# file; when it does not come, says WHAT did not start, and its LOG.
wait_port_file() {
  tries=0
  until [ -s "$1" ]; do
    tries=$((tries + 1))
    if [ $tries -gt 200 ]; then
      diag "$2 did not start:"; sed 's/^/# /' "$3"; return 1
    fi
    sleep 0.05
  done
}

# start_fake NAME ARGS...: starts fake-wechat (pages/r/index published unless
# ARGS say otherwise); sets $port and $base. Its kill is registered at exit.
start_fake() {
  name=$1; shift
  fake-wechat --appid $APPID --secret-file "$T/secret" --pages pages/r/index \
    --port 0 --port-file "$T/$name.port" -q "$@" >/dev/null 2>"$T/$name.log" &
  at_exit "kill_child $!"
  wait_port_file "$T/$name.port" "fake-wechat $name" "$T/$name.log" || return 1
  port=$(cat "$T/$name.port")
  base=http://127.0.0.1:$port
}

# config_for EXTRA: a config pointing at the last fake started, with EXTRA
# wechat settings, $QUOTA and $RESERVE if set; a fresh staging DB.
config_for() {
  rm -f "$T/staging.db" "$T/staging.db-wal" "$T/staging.db-shm"
  write_config "api_base = \"$base\"; $1"
  sed -i "s/quota_per_minute = 5000;/quota_per_minute = ${QUOTA:-5000};/
          s/reserve_per_minute = 500;/reserve_per_minute = ${RESERVE:-500};/" "$QRPOOL_CONFIG"
}

# plan POOL N: stages N planned codes of POOL and appends their lines to $T/items.
plan() {
  # (the config's other pools with rows of 0: a pool the last plan had demand
  # for and this forecast leaves out is an error, 75)
  { printf '%s\t%s\t1000000\n' "$1" "$HOUR"; forecast_end "$HOUR"
    grep -o 'name = "[^"]*"' "$QRPOOL_CONFIG" | cut -d'"' -f2 | grep -vx "$1" |
      while read -r other; do printf '%s\t%s\t0\n' "$other" "$HOUR"; done; } >"$T/demand.tsv"
  qrpool-plan --from "$HOUR" --max "$2" "$T/demand.tsv" >>"$T/items" 2>"$T/plan.err" ||
    { diag "qrpool-plan failed:"; sed 's/^/# /' "$T/plan.err" >&2; return 1; }
}

# stats KEY...: a value of the fake's /_stats (JSON), saved to $T/stats.json.
stats() {
  curl -sS -o "$T/stats.json" "$base/_stats" && jget "$T/stats.json" "$@"
}

jget() {
  $PYTHON -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value.get(key, 0) if isinstance(value, dict) else value[int(key)]
print(json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value)' "$@"
}

# windows_over BUDGET: the windows of $T/stats.json that charged more calls.
windows_over() {
  $PYTHON -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(sum(1 for w in s["windows"] if w["charged"] > int(sys.argv[2])))' "$T/stats.json" "$1"
}

# ledger_short: the minutes (start, server's count, ledger's) where the fake
# charged more calls than the quota ledger took; "[]" when none. After stats.
ledger_short() {
  sql "SELECT window_start_ms, taken FROM quota_windows" >"$T/ledger"
  $PYTHON -c 'import json, sys
ledger = dict(map(int, line.split("|")) for line in open(sys.argv[2]))
print([(w["start_ms"], w["charged"], ledger.get(w["start_ms"], 0))
       for w in json.load(open(sys.argv[1]))["windows"] if w["charged"] > ledger.get(w["start_ms"], 0)])' \
    "$T/stats.json" "$T/ledger"
}

count() { sql "SELECT count(*) FROM codes WHERE $1"; }

# decodes_ok: 1 if every stored image decodes (zbarimg) to its request id
# and its bytes match the stored sha256.
decodes_ok() {
  mkdir -p "$T/img"
  sql "SELECT c.request_id, c.sha256, writefile('$T/img/' || c.request_id, i.bytes)
       FROM codes c JOIN images i ON i.code_id = c.id" >"$T/img.list"
  [ -s "$T/img.list" ] || { echo 0; return; }
  good=1
  while IFS='|' read -r id digest size; do
    got=$(zbarimg -q --raw "$T/img/$id" 2>/dev/null || true)
    sum=$(sha256sum <"$T/img/$id" | cut -d' ' -f1)
    if [ "$got" != "$id" ] || [ "$sum" != "$digest" ]; then good=0; diag "bad image $id"; fi
  done <"$T/img.list"
  echo $good
}
