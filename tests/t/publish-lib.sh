# Helpers for the publish tests, sourced after lib.sh: a local Kafka (the
# mock cluster of bin/local-kafka), staged ready codes, and reading a topic
# back with kcat, an independent client.
LOCAL_KAFKA=${LOCAL_KAFKA:-$QRPOOL_BIN/local-kafka}
[ -x "$LOCAL_KAFKA" ] || skip_all "no local-kafka at $LOCAL_KAFKA"
command -v kcat >/dev/null || skip_all "kcat is not installed"

# start_kafka LOCAL-KAFKA-OPTIONS...: starts the cluster, waits for its
# bootstrap file and exports KAFKA_BROKERS. Stopped at exit.
start_kafka() {
  "$LOCAL_KAFKA" --bootstrap-file "$T/kafka.boot" --control "$T/kafka.ctl" "$@" \
    >/dev/null 2>"$T/kafka.log" &
  kafka_pid=$!
  at_exit "kill_child $kafka_pid"
  wait_for_kafka "$kafka_pid" "$T/kafka.boot" "$T/kafka.log"
}

# set_kafka DURATION [PROPERTY...]: kafka.timeout and kafka.properties in
# the config that write_config made.
set_kafka() {
  timeout=$1; shift
  props=
  for p in "$@"; do props="$props${props:+, }\"$p\""; done
  sed -i "s|^kafka = .*|kafka = { brokers = \"$KAFKA_BROKERS\"; timeout = \"$timeout\"; properties = [ $props ]; };|" \
    "$QRPOOL_CONFIG"
}

# stage POOL=COUNT... [--size BYTES]: ready codes with random images.
stage() {
  # The schema, in a file made on purpose (a DB not there at all is warned of).
  [ -e "$T/staging.db" ] || (umask 077; : >"$T/staging.db")
  qrpool-pending --count >/dev/null
  "$TESTS_DIR/t/stage-fetched" "$T/staging.db" "$@"
}

# read_topic TOPIC: one line per message, sorted: key, partition, offset,
# sha256 of the value, then the headers (name=value,...). kcat failing prints
# a line saying so, which no expected value holds.
read_topic() {
  if ! kcat -C -b "$KAFKA_BROKERS" -t "$1" -e -q -f '%k\t%p\t%o\t%h\t%S\t%s\n' >"$T/topic.out"; then
    echo "read_topic: kcat could not read $1"
    return 1
  fi
  "$PYTHON" "$TESTS_DIR/t/kafka-digest" <"$T/topic.out" | sort
}
