#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) on 127.0.0.1.
# The broker is resolved from Maven Central with mvn (see kafka/pom.xml); its log lives
# under .local/kafka/data so a restart keeps every record.
#   kafka.sh fetch|start|stop|status
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="${WASTETRAIL_LOCAL_DIR:-$root/.local}/kafka"
libs="$root/.local/downloads/kafka-libs"
port="${WASTETRAIL_KAFKA_PORT:-9092}"
controller_port="${WASTETRAIL_KAFKA_CONTROLLER_PORT:-9093}"
pidfile="$state/kafka.pid"
# SASL/SCRAM-SHA-256 on the client listener, ACLs, no anonymous access — opt-in for a new
# log directory (WASTETRAIL_KAFKA_SASL=1; not yet the default: see docs/ARCHITECTURE.md). A log directory formatted
# before keeps what it was formatted with (the marker $state/sasl says SASL). Each
# principal's password is made here once, under .local (git-ignored), 0600.
if [ -f "$state/data/meta.properties" ]; then
  sasl=$([ -f "$state/sasl" ] && echo 1 || echo 0)
else
  sasl="${WASTETRAIL_KAFKA_SASL:-0}"
fi
credentials="${WASTETRAIL_LOCAL_DIR:-$root/.local}/kafka-credentials"
principals="admin collection transfer treatment billing audit operator"
mkdir -p "$state"

fetch() {
  if [ -f "$libs/.complete" ] && cmp -s "$here/kafka/pom.xml" "$libs/.complete"; then
    return 0
  fi
  command -v mvn >/dev/null || { echo "kafka.sh: mvn (Apache Maven) is required to fetch the broker" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh: java 17+ is required to run the broker" >&2; exit 1; }
  echo "fetching Apache Kafka from Maven Central into $libs"
  rm -rf "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"
  cp "$here/kafka/pom.xml" "$libs/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

make_credentials() {
  mkdir -p "$credentials"
  chmod 700 "$credentials"
  for name in $principals; do
    if [ ! -s "$credentials/$name" ]; then
      (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$credentials/$name")
    fi
  done
}

password() { cat "$credentials/$1"; }

sasl_config() {
  local admin; admin=$(password admin)
  cat <<CONF
listeners=SASL_PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
CONF
}

scram_arguments() {
  for name in $principals; do
    printf -- '--add-scram\nSCRAM-SHA-256=[name=%s,password=%s]\n' "$name" "$(password "$name")"
  done
}

write_config() {
  if [ "$sasl" = 1 ]; then
    make_credentials
    {
      sasl_config
      echo "controller.quorum.bootstrap.servers=127.0.0.1:$controller_port"
    } > "$state/server.properties"
  else
    cat > "$state/server.properties" <<CONF
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
CONF
  fi
  cat >> "$state/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.listener.names=CONTROLLER
log.dirs=$state/data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=$([ "$sasl" = 1 ] && echo false || echo true)
log.retention.hours=-1
log.retention.bytes=-1
CONF
  cat > "$state/log4j2.yaml" <<CONF
Configuration:
  Appenders:
    File:
      name: FILE
      fileName: "$state/server.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: FILE
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
CONF
}

start() {
  fetch
  if running; then echo "kafka already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return 0; fi
  if answers; then
    # Another checkout's broker (or one started by hand) already serves this port: use it.
    echo "kafka: a broker already answers on 127.0.0.1:$port (not started from $state); using it"
    return 0
  fi
  write_config
  local cp="$libs/*"
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$state/log4j2.yaml")
  if [ ! -f "$state/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
    local scram=()
    if [ "$sasl" = 1 ]; then mapfile -t scram < <(scram_arguments); fi
    java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format --standalone \
      -t "$cluster_id" -c "$state/server.properties" "${scram[@]}" >/dev/null
    if [ "$sasl" = 1 ]; then touch "$state/sasl"; else rm -f "$state/sasl"; fi
  fi
  nohup java -cp "$cp" "${java_opts[@]}" kafka.Kafka "$state/server.properties" \
    >"$state/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if answers; then
      echo "kafka running (pid $(cat "$pidfile")) on 127.0.0.1:$port, data in $state/data"
      if [ "$sasl" = 1 ]; then
        "$root/.venv/bin/python" -m wastetrail.devstack.acls --bootstrap "127.0.0.1:$port" \
          --credentials "$credentials"
      fi
      return 0
    fi
    running || { echo "kafka.sh: broker exited; see $state/stdout.log and $state/server.log" >&2; tail -20 "$state/stdout.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "kafka.sh: broker did not answer within 60 s" >&2; exit 1
}

stop() {
  if ! running; then rm -f "$pidfile"; echo "kafka not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$pidfile"
  echo "kafka stopped"
}

status() {
  if running; then echo "kafka: running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; else echo "kafka: stopped"; return 3; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: kafka.sh fetch|start|stop|status" >&2; exit 2 ;;
esac
