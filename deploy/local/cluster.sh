#!/usr/bin/env bash
# A local three-broker Apache Kafka cluster (KRaft, each node broker+controller) on
# 127.0.0.1 with replication factor 3 and min.insync.replicas 2, then two replicas of every
# service in their consumer groups. Separate from the single broker of kafka.sh (other
# ports, state under .local/cluster/), so both can run at once.
#   cluster.sh start|stop|status|brokers|stop-brokers
# Settings: WASTETRAIL_CLUSTER_DIR (state), WASTETRAIL_CLUSTER_PORT (first client port;
# the three brokers listen on PORT..PORT+2, their controllers on PORT+10..PORT+12).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="${WASTETRAIL_CLUSTER_DIR:-$root/.local/cluster}"
libs="$root/.local/downloads/kafka-libs"
base="${WASTETRAIL_CLUSTER_PORT:-19092}"
nodes=(1 2 3)
cluster_id_file="$state/cluster.id"
mkdir -p "$state"

port_of() { echo $((base + $1 - 1)); }
controller_port_of() { echo $((base + 9 + $1)); }
pidfile_of() { echo "$state/node$1/kafka.pid"; }
bootstrap() { local IFS=,; local a=(); for n in "${nodes[@]}"; do a+=("127.0.0.1:$(port_of "$n")"); done; echo "${a[*]}"; }
voters() { local IFS=,; local a=(); for n in "${nodes[@]}"; do a+=("$n@127.0.0.1:$(controller_port_of "$n")"); done; echo "${a[*]}"; }

running() { local p; p=$(pidfile_of "$1"); [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  local n=$1 dir="$state/node$1"
  mkdir -p "$dir"
  cat > "$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port_of "$n"),CONTROLLER://127.0.0.1:$(controller_port_of "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
auto.create.topics.enable=true
log.retention.hours=-1
log.retention.bytes=-1
CONF
  # warnings and errors only, into the node's server.log
  printf '%s\n' "appender.f.type=File" "appender.f.name=F" "appender.f.fileName=$dir/server.log" \
    "appender.f.layout.type=PatternLayout" "appender.f.layout.pattern=[%d] %p %m (%c)%n" \
    "rootLogger.level=WARN" "rootLogger.appenderRef.f.ref=F" > "$dir/log4j2.properties"
}

java_opts() {
  echo "-Xms128m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true -Dlog4j2.configurationFile=$state/node$1/log4j2.properties"
}

start_brokers() {
  bash "$here/kafka.sh" fetch
  [ -f "$cluster_id_file" ] || python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' > "$cluster_id_file"
  local cluster_id; cluster_id=$(cat "$cluster_id_file")
  local formats=()
  for n in "${nodes[@]}"; do
    if running "$n"; then continue; fi
    if answers "$(port_of "$n")"; then
      echo "cluster.sh: port $(port_of "$n") is taken by something else" >&2; exit 1
    fi
    write_config "$n"
    if [ ! -f "$state/node$n/data/meta.properties" ]; then  # format the three at once
      # shellcheck disable=SC2046
      java -cp "$libs/*" $(java_opts "$n") kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$state/node$n/server.properties" >/dev/null &
      formats+=($!)
    fi
  done
  for pid in "${formats[@]}"; do wait "$pid"; done
  for n in "${nodes[@]}"; do
    if running "$n"; then continue; fi
    local dir="$state/node$n"
    # shellcheck disable=SC2046
    nohup java -cp "$libs/*" $(java_opts "$n") kafka.Kafka "$dir/server.properties" \
      >"$dir/stdout.log" 2>&1 &
    echo $! > "$(pidfile_of "$n")"
  done
  for _ in $(seq 1 240); do
    local up=0
    for n in "${nodes[@]}"; do
      running "$n" || { echo "cluster.sh: broker $n exited; see $state/node$n/" >&2; tail -20 "$state/node$n/stdout.log" >&2; exit 1; }
      answers "$(port_of "$n")" && up=$((up + 1))
    done
    if [ "$up" -eq "${#nodes[@]}" ]; then
      echo "kafka cluster running on $(bootstrap) (RF 3, min.insync.replicas 2), state in $state"
      return 0
    fi
    sleep 0.5
  done
  echo "cluster.sh: brokers did not answer within 120 s" >&2; exit 1
}

stop_brokers() {
  for n in "${nodes[@]}"; do
    local p; p=$(pidfile_of "$n")
    if running "$n"; then
      local pid; pid=$(cat "$p")
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "broker $n stopped"
    fi
    rm -f "$p"
  done
}

python_bin() {
  if [ -x "$root/.venv/bin/python" ]; then echo "$root/.venv/bin/python"; else echo python3; fi
}

case "${1:-}" in
  brokers) start_brokers ;;
  stop-brokers) stop_brokers ;;
  start)
    start_brokers
    WASTETRAIL_CLUSTER_BOOTSTRAP=$(bootstrap) WASTETRAIL_CLUSTER_DIR="$state" \
      "$(python_bin)" -m wastetrail.devstack.cluster up
    ;;
  stop)
    WASTETRAIL_CLUSTER_DIR="$state" "$(python_bin)" -m wastetrail.devstack.cluster down || true
    stop_brokers
    ;;
  status)
    for n in "${nodes[@]}"; do
      if running "$n"; then echo "broker $n: running (pid $(cat "$(pidfile_of "$n")")) on 127.0.0.1:$(port_of "$n")"; else echo "broker $n: stopped"; fi
    done
    WASTETRAIL_CLUSTER_DIR="$state" "$(python_bin)" -m wastetrail.devstack.cluster status || true
    ;;
  bootstrap) bootstrap ;;
  *) echo "usage: cluster.sh start|stop|status|brokers|stop-brokers|bootstrap" >&2; exit 2 ;;
esac
