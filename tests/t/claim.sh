# Helpers for the qrpool-claim / qrpool-resolve tests, sourced after lib.sh:
# a local Kafka, a real redis-server on a unix socket, codes put into a pool
# with kcat (an independent producer), and the group's committed offsets read
# with kafka-offsets (an independent client).

# Starts local-kafka with the poster topic (3 partitions); sets $KAFKA_BROKERS.
# Extra arguments go to local-kafka (e.g. --control "$T/kafka.ctl", for
# kafka_control).
start_kafka() {
  local-kafka -t qrpool.poster:3 -t qrpool.card:1 --bootstrap-file "$T/brokers" "$@" \
    >/dev/null 2>"$T/kafka.log" &
  kafka_pid=$!
  # Waited for: it removes its bootstrap file as it exits, racing the rm of $T.
  at_exit "kill_child $kafka_pid; wait $kafka_pid"
  wait_for_kafka "$kafka_pid" "$T/brokers" "$T/kafka.log"
}

# Starts redis-server on $T/redis.sock (no TCP port: nothing to race for).
# Extra arguments go to redis-server (e.g. --requirepass).
start_redis() {
  redis-server --port 0 --unixsocket "$T/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --daemonize yes --pidfile "$T/redis.pid" --logfile "$T/redis.log" "$@"
  i=0
  while [ ! -s "$T/redis.pid" ] || [ ! -S "$T/redis.sock" ]; do
    [ $i -lt 100 ] || break
    sleep 0.05; i=$((i + 1))
  done
  at_exit "stop_redis"
}
# Waits until the server is gone: it removes its socket and pid file last.
stop_redis() {
  [ -s "$T/redis.pid" ] || return 0
  kill "$(cat "$T/redis.pid")" 2>/dev/null || true
  i=0
  while [ -e "$T/redis.pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
}
rcli() { redis-cli -s "$T/redis.sock" "$@"; }

# The config of lib.sh plus a short Kafka timeout, a short session (a killed
# claim's membership must expire quickly) and, with $1 = redis, the cache
# ($2: more of its settings; its ttl $REDIS_TTL, 1h unless set).
write_claim_config() {
  write_config
  sed -i "s|^kafka = .*|kafka = { brokers = \"$KAFKA_BROKERS\"; timeout = \"15s\"; properties = [ \"session.timeout.ms=6000\", \"heartbeat.interval.ms=500\" ]; };|" "$QRPOOL_CONFIG"
  if [ "${1:-}" = redis ]; then
    printf 'redis = { unix_socket = "%s"; prefix = "qr:"; ttl = "%s"; timeout = "500ms"; %s };\n' \
      "$T/redis.sock" "${REDIS_TTL:-1h}" "${2:-}" >>"$QRPOOL_CONFIG"
  fi
}

# Puts N fake JPEG codes into a pool's topic: key = a fresh 16-character id,
# value = a JPEG signature and the id, headers as qrpool-publish sets them.
# Appends the ids to $T/published.
publish_codes() {
  n=$1 pool=${2:-poster}
  $PYTHON -c '
import secrets, string, sys
alphabet = string.ascii_letters + string.digits
for _ in range(int(sys.argv[1])):
    print("".join(secrets.choice(alphabet) for _ in range(16)))' "$n" >"$T/new-ids"
  awk '{ printf "%s\t\377\330\377\340JFIF-%s\n", $1, $1 }' "$T/new-ids" |
    kcat -b "$KAFKA_BROKERS" -P -t "qrpool.$pool" -K '	' -H content-type=image/jpeg \
      -H "pool=$pool" -H source=wechat -H page=pages/r/index -H created=2026-11-28T00:00:00Z
  cat "$T/new-ids" >>"$T/published"
}

# The group's committed offsets summed over the topic's partitions (none: 0).
# kafka-offsets failing prints a line saying so, which no expected count is.
committed_total() {
  if ! kafka-offsets -b "$KAFKA_BROKERS" -t "qrpool.${1:-poster}" -g "qrpool-online.${1:-poster}" \
      >"$T/offsets.out"; then
    echo "committed_total: kafka-offsets could not read qrpool.${1:-poster}"
    return 1
  fi
  awk -F '\t' '{ if ($4 > 0) sum += $4 } END { print sum + 0 }' "$T/offsets.out"
}

# N parameter records on stdout, numbered from ${2:-1}.
records() {
  awk -v n="$1" -v from="${2:-1}" 'BEGIN { for (i = from; i < from + n; i++)
    printf "{\"listing_id\":\"L%d\",\"agent_id\":\"A%d\",\"channel\":\"poster\"}\n", i, i % 7 }'
}

# bound_expected ALL: the lines a claim run that may have met a rebalance
# prints: ALL, or, when it stopped (75) after its commit was refused (the mock
# refuses every commit while the group rebalances), the count its err says.
bound_expected() {
  stopped_at=$(sed -n 's/.*stopped: bound \([0-9]*\) codes*;.*/\1/p' "$T/err")
  echo "${stopped_at:-$1}"
}
