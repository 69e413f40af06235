#!/usr/bin/env bash
# A 3-node NATS JetStream cluster on loopback, for trying cluster mode by hand and for the benchmarks.
# (The tests start their own nodes, on free ports, from chat-cli/tests/common/nats.rs.)
#
#   tests/nats/cluster.sh start   DIR [BASE]   install the pinned nats-server, write DIR/n{1,2,3}.conf, start the
#                                              nodes, wait until they agree on a JetStream meta leader
#   tests/nats/cluster.sh stop    DIR          SIGTERM the PIDs in DIR/n*.pid (SIGKILL after 5 s)
#   tests/nats/cluster.sh kill    DIR I        kill -9 node I (1..3)
#   tests/nats/cluster.sh restart DIR I        start node I again (same config and store)
#
# Ports (BASE defaults to 14222): clients BASE..BASE+2, routes BASE+2000.., monitoring BASE+4000..; all on
# 127.0.0.1. Stores in DIR/n{1,2,3}, logs in DIR/n{1,2,3}.log. Clients: nats://127.0.0.1:BASE,... .
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop|kill|restart DIR [ARG]}
dir=${2:?DIR missing}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
nats=${NATS_SERVER:-$("$(dirname "$0")/install.sh")}

conf() { # $1 = node, $2 = base
  local i=$1 base=$2 routes="" j
  for j in 1 2 3; do
    [ "$j" -eq "$i" ] && continue
    routes="${routes:+$routes, }nats-route://127.0.0.1:$((base + 2000 + j - 1))"
  done
  cat >"$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((base + i - 1))
http: 127.0.0.1:$((base + 4000 + i - 1))
cluster {
  name: chat
  listen: 127.0.0.1:$((base + 2000 + i - 1))
  routes: [$routes]
}
jetstream {
  store_dir: "$dir/n$i"
  max_memory_store: 256MB
  max_file_store: 4GB
}
CONF
}

start_node() {
  "$nats" -c "$dir/n$1.conf" -l "$dir/n$1.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/n$1.pid"
}

leader() { # the meta leader node $1 sees
  local mon=$(( $(cat "$dir/base") + 4000 + $1 - 1 ))
  curl -s --max-time 1 "http://127.0.0.1:$mon/jsz" 2>/dev/null | sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -1 || true
}

case $cmd in
  start)
    base=${3:-14222}
    echo "$base" >"$dir/base"
    for i in 1 2 3; do conf "$i" "$base"; start_node "$i"; done
    for _ in $(seq 1 300); do
      l1=$(leader 1); l2=$(leader 2); l3=$(leader 3)
      if [ -n "$l1" ] && [ "$l1" = "$l2" ] && [ "$l2" = "$l3" ]; then
        echo "nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
        exit 0
      fi
      sleep 0.1
    done
    echo "the nodes did not agree on a meta leader within 30 s" >&2
    exit 1 ;;
  stop)
    for f in "$dir"/n*.pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      alive=0
      for f in "$dir"/n*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
      [ $alive -eq 0 ] && break
      sleep 0.1
    done
    for f in "$dir"/n*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; done ;;
  kill) kill -KILL "$(cat "$dir/n${3:?node}.pid")" ;;
  restart) start_node "${3:?node}" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
