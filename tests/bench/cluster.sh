#!/usr/bin/env bash
# Embedded journal vs one instance on JetStream vs three instances, side by side in one run, on loopback.
#
#   tests/bench/cluster.sh                 RUNS=3 (medians over RUNS runs of each scenario)
#
# Builds chat-cli in release, starts a 3-node JetStream cluster with the pinned nats-server
# (tests/nats/cluster.sh, ports 24222..), and for each target runs `chat-cli bench` (every subscriber must
# receive every message, or the run fails):
#   ingest   4 publishers, 1 subscriber, closed loop (window 2000)   -> messages stored per second
#   fanout   1 publisher, 100 subscribers, closed loop (window 1000) -> deliveries/s, server CPU per delivery
#   latency  1 publisher, 10 subscribers, open loop at RATE msg/s    -> publish-to-delivery p50/p99
# "three" runs one bench per instance at once (each its own room; they share the stream): figures are summed
# (rates) or the worst of the three (percentiles); CPU is per instance. Every target runs with
# --no-rate-limit. Prints a table; raw JSON lines go to $OUT/raw.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-3}
RATE=${RATE:-5000}
MSGS=${MSGS:-20000}
OUT=${OUT:-$(mktemp -d /tmp/chat-cluster-bench.XXXXXX)}
cd "$root"
cargo build --release -q -p chat-cli --bin chat-cli
bin=$root/target/release/chat-cli
nats_dir=$OUT/nats
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  tests/nats/cluster.sh stop "$nats_dir" 2>/dev/null || true
}
trap cleanup EXIT
urls=$(tests/nats/cluster.sh start "$nats_dir" 24222)

serve() { # $1 = log file, rest = serve args; prints "PID ADDR"
  local log=$1; shift
  "$bin" serve --listen 127.0.0.1:0 --json --no-rate-limit "$@" >"$log.out" 2>"$log" &
  local pid=$!
  for _ in $(seq 1 300); do
    if grep -q '"listening"' "$log.out" 2>/dev/null && { [ "${1:-}" != "--cluster" ] || grep -q "serving as one instance" "$log"; }; then
      echo "$pid $(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$log.out" | head -1)"
      return
    fi
    sleep 0.1
  done
  echo "the server did not start: $(tail -3 "$log")" >&2
  exit 1
}
cpu() { # utime+stime of $1, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
bench() { # $1 = addr, $2 = scenario
  case $2 in
    ingest) "$bin" --json bench --server "$1" --subs 1 --pubs 4 --msgs $((MSGS / 4)) --window 2000 ;;
    fanout) "$bin" --json bench --server "$1" --subs 100 --pubs 1 --msgs $((MSGS / 4)) --window 1000 ;;
    latency) "$bin" --json bench --server "$1" --subs 10 --pubs 1 --msgs $((RATE * 4)) --rate "$RATE" ;;
  esac 2>>"$OUT/bench.err"
}

declare -A addr_of pid_of
dir=$(mktemp -d "$OUT/journal.XXXX")
read -r pid addr < <(serve "$OUT/embedded.log" --data-dir "$dir")
pids+=("$pid"); pid_of[embedded]=$pid; addr_of[embedded]=$addr
read -r pid addr < <(serve "$OUT/one.log" --cluster "$urls" --cluster-stream ONE)
pids+=("$pid"); pid_of[one]=$pid; addr_of[one]=$addr
for i in 1 2 3; do
  read -r pid addr < <(serve "$OUT/three$i.log" --cluster "$urls" --cluster-stream THREE)
  pids+=("$pid"); pid_of[three$i]=$pid; addr_of[three$i]=$addr
done

raw=$OUT/raw.jsonl
: >"$raw"
for run in $(seq 1 "$RUNS"); do
  for scenario in ingest fanout latency; do
    for target in embedded one three; do
      if [ "$target" = three ]; then
        members=(three1 three2 three3)
      else
        members=("$target")
      fi
      declare -A before=()
      for m in "${members[@]}"; do before[$m]=$(cpu "${pid_of[$m]}"); done
      outs=()
      for m in "${members[@]}"; do
        bench "${addr_of[$m]}" "$scenario" >"$OUT/$m.bench" &
        outs+=($!)
      done
      failed=0
      for p in "${outs[@]}"; do wait "$p" || failed=1; done
      if [ $failed -eq 1 ]; then
        echo "a bench run failed ($target $scenario, run $run): $(tail -n 2 "$OUT/bench.err" | tr '\n' ' '); skipped" >&2
        continue
      fi
      cpus=""
      for m in "${members[@]}"; do cpus="$cpus$(( $(cpu "${pid_of[$m]}") - ${before[$m]} )),"; done
      for m in "${members[@]}"; do
        python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); r.update(run=int(sys.argv[2]), scenario=sys.argv[3], target=sys.argv[4], member=sys.argv[5], cpu_ticks=[int(c) for c in sys.argv[6].strip(",").split(",")]); print(json.dumps(r))' \
          "$OUT/$m.bench" "$run" "$scenario" "$target" "$m" "$cpus" >>"$raw"
      done
    done
  done
done

python3 - "$raw" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
tck = int(sys.argv[2])
runs = defaultdict(list)  # (scenario, target) -> per-run aggregates
by = defaultdict(list)
for r in rows:
    by[(r["scenario"], r["target"], r["run"])].append(r)
for (scenario, target, run), rs in by.items():
    if not all(r["complete"] for r in rs):
        continue
    msgs = sum(r["messages"] / r["seconds"] for r in rs)
    deliv = sum(r["deliveries_per_s"] for r in rs)
    cpu = rs[0]["cpu_ticks"]  # per member, in the order of rs
    # per instance: its CPU over the deliveries to its own clients; the busiest instance
    cpu_us = max(c / tck * 1e6 / max(r["deliveries"], 1) for c, r in zip(cpu, rs))
    runs[(scenario, target)].append(dict(msgs=msgs, deliv=deliv, p50=max(r["p50_us"] for r in rs),
                                        p99=max(r["p99_us"] for r in rs), cpu=cpu_us))
med = lambda xs: statistics.median(xs)
print("| target | ingest msg/s | fan-out deliveries/s (C=100) | server CPU µs/delivery (busiest instance) | p50 / p99 µs at RATE msg/s per bench |")
print("|---|---|---|---|---|")
for t in ["embedded", "one", "three"]:
    i, f, l = runs[("ingest", t)], runs[("fanout", t)], runs[("latency", t)]
    print(f"| {t} | {med([x['msgs'] for x in i]):,.0f} | {med([x['deliv'] for x in f]):,.0f} | "
          f"{med([x['cpu'] for x in f]):.2f} | {med([x['p50'] for x in l]):,.0f} / {med([x['p99'] for x in l]):,.0f} |")
print("runs counted (complete): " + ", ".join(f"{s}/{t} {len(v)}" for (s, t), v in sorted(runs.items())))
PY
echo "raw results: $raw"
