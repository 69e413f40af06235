#!/usr/bin/env bash
# compare.sh: the chat server against what a user would otherwise pick (Redis, NATS), one command.
#
#   tests/bench/compare.sh            full run, about 28 minutes on 2 cores
#   QUICK=1 tests/bench/compare.sh    a small run to check the set-up, under 3 minutes once built
#   TLS=1 tests/bench/compare.sh      ours in plaintext against ours with TLS (fan-out C=1000 16 B, unicast),
#                                     3 rotations, ratios TLS / plaintext; about 4 minutes
#
# It installs redis-server and nats-server from Debian packages if missing (a target that cannot be
# installed is skipped with the reason), builds chat-cli and fanbench in release, starts every
# server on 127.0.0.1 on non-default ports pinned to CPU 1 (the generator runs on CPU 0), runs each
# scenario with the targets rotated REPS times (A B C A B C ...), stops everything it started by
# PID (also on failure or Ctrl-C), prints medians and ratios, and leaves in $OUT:
#   results.txt (one RESULT line per run)  summary.md (tables)  bench.svg (chart)  machine.txt  *.log
#
# Scenarios (SCENARIOS selects some, by name):
#   fanout-c100-16B  fanout-c100-256B  fanout-c1000-16B  fanout-c1000-256B
#         1 publisher, C subscribers, MSGS messages, window WINDOW: deliveries/s, server CPU s per M
#   open-c100-16B-20k   open loop at OPEN_RATE msg/s, OPEN_MSGS messages: p50/p99/p999 latency of the
#                       messages sent after OPEN_WARMUP_MS (the start-up transient dominates p99 otherwise)
#   unicast-c100        UNICAST_CLIENTS clients each sending UNICAST_MSGS unicasts to random others,
#                       one in flight each (Redis: per-client channels, NATS: per-client subjects)
#   idle                IDLE_CLIENTS idle connections to a fresh server: RSS per connection, join time
#   log-c100-16B        ours only: --fsync batch (the default) vs --fsync never vs --no-log
#   logins              ours-tls only: STORM_ACCOUNTS accounts with a password are added to the server; then
#                       the password check alone (argon2id, the server's parameters, STORM_CHECKS times), a
#                       login storm alone (STORM_CLIENTS clients logging in over TLS for STORM_SECS s), and an
#                       open-loop fan-out (C=1000, 16 B, STORM_RATE msg/s, STORM_MSGS messages) without and
#                       with the storm, alternated REPS times: delivery latency beside logins/s
# A run counts only if every subscriber received every message (ok=1 in results.txt).
#
# Environment (full-run defaults; QUICK=1 lowers the counts and sets REPS=1):
#   REPS=5 MSGS=100000 MSGS_C1000=$MSGS WINDOW=1000 OPEN_RATE=20000 OPEN_MSGS=100000 OPEN_WARMUP_MS=1000
#   UNICAST_CLIENTS=100 UNICAST_MSGS=1000 IDLE_CLIENTS=10000 IDLE_REPS=$REPS TIMEOUT=300 (s per run)
#   TARGETS="ours redis nats"  OUT=target/bench/<date>  SKIP_BUILD=1 (use the binaries as they are)
#   STORM_ACCOUNTS=64 STORM_CLIENTS=8 STORM_SECS=10 STORM_CHECKS=30 STORM_RATE=500 STORM_MSGS=5000
#   REFERENCE=ours (the target the summary's ratios compare the others with)
#   BEFORE_RUN='command' (run before every fanbench run, e.g. to wait until another benchmark is over)
# Targets: ours (chat-cli serve), ours-tls (chat-cli serve --tls self-signed, the generator pinning the
# certificate's fingerprint; otherwise started and driven exactly as ours), redis, nats.
# TLS=1 sets TARGETS="ours ours-tls" SCENARIOS="fanout-c1000-16B unicast-c100" REPS=3 REFERENCE=ours-tls
# unless they are set.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1}; MSGS=${MSGS:-20000}; MSGS_C1000=${MSGS_C1000:-5000}; OPEN_MSGS=${OPEN_MSGS:-30000}
  OPEN_WARMUP_MS=${OPEN_WARMUP_MS:-500}; UNICAST_MSGS=${UNICAST_MSGS:-200}; IDLE_CLIENTS=${IDLE_CLIENTS:-2000}
fi
if [ "${TLS:-0}" = 1 ]; then
  TARGETS=${TARGETS:-"ours ours-tls"}; SCENARIOS=${SCENARIOS:-"fanout-c1000-16B unicast-c100"}
  REPS=${REPS:-3}; REFERENCE=${REFERENCE:-ours-tls}
fi
REPS=${REPS:-5}
MSGS=${MSGS:-100000}
MSGS_C1000=${MSGS_C1000:-$MSGS}
WINDOW=${WINDOW:-1000}
OPEN_RATE=${OPEN_RATE:-20000}
OPEN_MSGS=${OPEN_MSGS:-100000}
OPEN_WARMUP_MS=${OPEN_WARMUP_MS:-1000}  # open loop: latencies of the first second are not recorded
UNICAST_CLIENTS=${UNICAST_CLIENTS:-100}
UNICAST_MSGS=${UNICAST_MSGS:-1000}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
IDLE_REPS=${IDLE_REPS:-$REPS}  # our server needs about 30 s per 10,000 joins: IDLE_REPS=3 saves 1.5 minutes
STORM_ACCOUNTS=${STORM_ACCOUNTS:-64}
STORM_CLIENTS=${STORM_CLIENTS:-8}
STORM_SECS=${STORM_SECS:-10}
STORM_CHECKS=${STORM_CHECKS:-30}
STORM_RATE=${STORM_RATE:-500}
STORM_MSGS=${STORM_MSGS:-5000}
TIMEOUT=${TIMEOUT:-300}
TARGETS=${TARGETS:-"ours redis nats"}
REFERENCE=${REFERENCE:-ours}
BEFORE_RUN=${BEFORE_RUN:-}
SCENARIOS=${SCENARIOS:-"fanout-c100-16B fanout-c100-256B fanout-c1000-16B fanout-c1000-256B open-c100-16B-20k unicast-c100 idle log-c100-16B"}
OUT=${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}
CHAT=$ROOT/target/release/chat-cli
FB=$ROOT/target/release/fanbench
# Ports: non-default, loopback only.
P_OURS=17878 P_OURS_NEVER=17879 P_OURS_NOLOG=17880 P_OURS_IDLE=17881 P_OURS_TLS=17882 P_OURS_TLS_IDLE=17883
P_REDIS=16379 P_REDIS_IDLE=16380 P_NATS=14222 P_NATS_IDLE=14223

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RES=$OUT/results.txt
ERR=$OUT/fanbench.log
WORK=$(mktemp -d /tmp/chat-compare.XXXXXX)
STARTED=()

log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "PID $pid did not stop in 5 s; killing it"
  kill -9 "$pid" 2>/dev/null
}

cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready PID PORT LOG NAME: until the port accepts connections (ours: until it logs "listening").
wait_ready() {
  local pid=$1 port=$2 logf=$3 name=$4 i
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { log "server on port $port exited: $(tail -3 "$logf")"; return 1; }
    if [[ $name == ours* ]]; then grep -q '"listening"' "$logf" && return 0
    elif port_busy "$port"; then return 0; fi
    sleep 0.1
  done
  log "server on port $port not ready after 10 s"; return 1
}

# start NAME PORT [extra args]: starts a server pinned to CPU 1; sets SERVER_PID (and, for ours-tls,
# FINGERPRINT: the certificate's, from the server's "listening" line).
start() {
  local name=$1 port=$2; shift 2
  local logf=$OUT/$name-$port.log
  SERVER_PID= FINGERPRINT=
  if port_busy "$port"; then log "port $port is already in use: not starting $name"; return 1; fi
  case $name in
    redis) taskset -c 1 redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
             --maxclients 19000 --daemonize no "$@" >"$logf" 2>&1 & ;;
    nats)  taskset -c 1 "$NATS_BIN" -a 127.0.0.1 -p "$port" "$@" >"$logf" 2>&1 & ;;
    ours-tls) mkdir -p "$WORK/data-$port"
           taskset -c 1 "$CHAT" serve --listen "127.0.0.1:$port" --data-dir "$WORK/data-$port" --json --no-rate-limit \
             --tls self-signed "$@" >"$logf" 2>&1 & ;;
    ours*) mkdir -p "$WORK/data-$port"
           taskset -c 1 "$CHAT" serve --listen "127.0.0.1:$port" --data-dir "$WORK/data-$port" --json --no-rate-limit "$@" \
             >"$logf" 2>&1 & ;;
  esac
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  wait_ready "$SERVER_PID" "$port" "$logf" "$name" || return 1
  if [ "$name" = ours-tls ]; then
    FINGERPRINT=$(grep -o '"fingerprint":"SHA256:[0-9a-f]*"' "$logf" | head -1 | cut -d'"' -f4)
    [ -n "$FINGERPRINT" ] || { log "no certificate fingerprint in $logf"; return 1; }
  fi
}

# ---------------------------------------------------------------- peers
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x "$NATS_BIN" ] || need+=(nats-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]} from Debian packages"
    apt-get update -qq >"$OUT/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nats-server >>"$OUT/apt.log" 2>&1 \
      || log "apt-get install failed (see $OUT/apt.log)"
  else
    log "cannot install ${need[*]}: needs root and apt-get"
  fi
  NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
fi
AVAILABLE=()
for t in $TARGETS; do
  case $t in
    redis) command -v redis-server >/dev/null && AVAILABLE+=(redis) || echo "SKIP redis: redis-server is not installed" ;;
    nats)  [ -x "$NATS_BIN" ] && AVAILABLE+=(nats) || echo "SKIP nats: nats-server is not installed" ;;
    *)     AVAILABLE+=("$t") ;;
  esac
done

# ---------------------------------------------------------------- build
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building chat-cli and fanbench (release)"
  cargo build --release -p chat-cli -p tests --bin chat-cli --bin fanbench >"$OUT/build.log" 2>&1 \
    || { log "build failed: see $OUT/build.log"; tail -20 "$OUT/build.log"; exit 1; }
fi

# 10,000 idle clients need 10,000 descriptors in the generator and in each server.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
log "open files limit: $(ulimit -n)"

{
  echo "date: $(date -Is)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null) (files modified in the tree: $(git status --short 2>/dev/null | wc -l))"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r)"
  echo "redis: $(redis-server --version 2>/dev/null)"
  echo "nats: $("$NATS_BIN" --version 2>/dev/null)"
  echo "targets: $TARGETS; scenarios: $SCENARIOS"
  echo "settings: QUICK=$QUICK REPS=$REPS MSGS=$MSGS MSGS_C1000=$MSGS_C1000 WINDOW=$WINDOW OPEN_RATE=$OPEN_RATE OPEN_MSGS=$OPEN_MSGS OPEN_WARMUP_MS=$OPEN_WARMUP_MS UNICAST_CLIENTS=$UNICAST_CLIENTS UNICAST_MSGS=$UNICAST_MSGS IDLE_CLIENTS=$IDLE_CLIENTS IDLE_REPS=$IDLE_REPS STORM_ACCOUNTS=$STORM_ACCOUNTS STORM_CLIENTS=$STORM_CLIENTS STORM_SECS=$STORM_SECS STORM_CHECKS=$STORM_CHECKS STORM_RATE=$STORM_RATE STORM_MSGS=$STORM_MSGS"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- long-running servers
declare -A PID ADDR FP
for t in "${AVAILABLE[@]}"; do
  case $t in
    ours)  start ours "$P_OURS" && { PID[ours]=$SERVER_PID; ADDR[ours]=127.0.0.1:$P_OURS; } ;;
    ours-tls) start ours-tls "$P_OURS_TLS" \
             && { PID[ours-tls]=$SERVER_PID; ADDR[ours-tls]=127.0.0.1:$P_OURS_TLS; FP[ours-tls]=$FINGERPRINT; } ;;
    redis) start redis "$P_REDIS" && { PID[redis]=$SERVER_PID; ADDR[redis]=127.0.0.1:$P_REDIS; } ;;
    nats)  start nats "$P_NATS" && { PID[nats]=$SERVER_PID; ADDR[nats]=127.0.0.1:$P_NATS; } ;;
  esac
done
RUNNING=()
for t in "${AVAILABLE[@]}"; do
  if [ -n "${PID[$t]:-}" ]; then RUNNING+=("$t"); else echo "SKIP $t: its server did not start (see $OUT)"; fi
done

# run SCENARIO LABEL KIND PID ADDR TARGET-PROTOCOL ARGS...: one fanbench run, RESULT appended to $RES.
# TARGET-PROTOCOL ours-tls is ours over TLS, pinning the fingerprint in $FINGERPRINT_ARG.
run() {
  local scenario=$1 label=$2 kind=$3 pid=$4 addr=$5 proto=$6; shift 6
  local line rc
  if [ "$proto" = ours-tls ]; then set -- --tls-fingerprint "$FINGERPRINT_ARG" "$@"; proto=ours; fi
  [ -z "$BEFORE_RUN" ] || bash -c "$BEFORE_RUN"
  line=$(timeout $((TIMEOUT + 60)) taskset -c 0 "$FB" "$kind" --target "$proto" --addr "$addr" \
           --server-pid "$pid" --scenario "$scenario" --label "$label" --timeout "$TIMEOUT" "$@" 2>>"$ERR")
  rc=$?
  if [[ $line != RESULT* ]]; then
    line="RESULT scenario=$scenario target=$label kind=$kind ok=0 err=fanbench_exit_$rc"
  fi
  echo "$line" >>"$RES"
  echo "$line" | tr ' ' '\n' | grep -E '^(scenario|target|deliv_per_s|p50_us|p99_us|p999_us|cpu_s_per_M|gen_util|join_ms|rss_per_conn_b|logins_per_s|login_p99_us|ok)=' \
    | tr '\n' ' ' >&2
  echo >&2
}

rotate() {  # rotate SCENARIO ARGS...: the running targets, A B C A B C ..., REPS times
  local scenario=$1 r t; shift
  log "scenario $scenario (load average $(cut -d' ' -f1 /proc/loadavg))"
  for r in $(seq 1 "$REPS"); do
    for t in "${RUNNING[@]}"; do
      FINGERPRINT_ARG=${FP[$t]:-}
      run "$scenario" "$t" bench "${PID[$t]}" "${ADDR[$t]}" "$t" "$@"
    done
  done
}

idle_rotation() {
  local r t port
  log "scenario idle: $IDLE_CLIENTS connections to a fresh server each run"
  for r in $(seq 1 "$IDLE_REPS"); do
    for t in "${RUNNING[@]}"; do
      case $t in
        ours) port=$P_OURS_IDLE ;; ours-tls) port=$P_OURS_TLS_IDLE ;; redis) port=$P_REDIS_IDLE ;; nats) port=$P_NATS_IDLE ;;
      esac
      rm -rf "$WORK/data-$port"
      if start "$t" "$port"; then
        FINGERPRINT_ARG=$FINGERPRINT
        run "idle-$IDLE_CLIENTS" "$t" idle "$SERVER_PID" "127.0.0.1:$port" "$t" --clients "$IDLE_CLIENTS"
        stop_pid "$SERVER_PID"
      fi
    done
  done
}

log_rotation() {
  [ -n "${PID[ours]:-}" ] || { echo "SKIP log-c100-16B: our server is not running"; return; }
  local never nolog r
  start ours "$P_OURS_NEVER" --fsync never && never=$SERVER_PID || return
  start ours "$P_OURS_NOLOG" --no-log && nolog=$SERVER_PID || return
  log "scenario log-c100-16B (load average $(cut -d' ' -f1 /proc/loadavg))"
  for r in $(seq 1 "$REPS"); do
    run log-c100-16B ours-fsync-batch bench "${PID[ours]}" "${ADDR[ours]}" ours --subs 100 --msgs "$MSGS" --size 16 --window "$WINDOW"
    run log-c100-16B ours-fsync-never bench "$never" "127.0.0.1:$P_OURS_NEVER" ours --subs 100 --msgs "$MSGS" --size 16 --window "$WINDOW"
    run log-c100-16B ours-no-log bench "$nolog" "127.0.0.1:$P_OURS_NOLOG" ours --subs 100 --msgs "$MSGS" --size 16 --window "$WINDOW"
  done
  stop_pid "$never"; stop_pid "$nolog"
}

logins_rotation() {
  [ -n "${PID[ours-tls]:-}" ] || { echo "SKIP logins: needs the ours-tls target (TARGETS=\"ours ours-tls\")"; return; }
  local dir=$WORK/data-$P_OURS_TLS pw=$WORK/storm-password r line
  local accounts=(--accounts "$STORM_ACCOUNTS" --password-file "$pw")
  local fanout=(--subs 1000 --msgs "$STORM_MSGS" --size 16 --rate "$STORM_RATE" --warmup-ms 1000)
  echo "a storm password $RANDOM$RANDOM" >"$pw"
  log "scenario logins: $STORM_ACCOUNTS accounts (argon2id hashing)"
  taskset -c 1 "$FB" accounts --data-dir "$dir" "${accounts[@]}" 2>>"$ERR" || { log "cannot make the accounts"; return; }
  line=$(taskset -c 1 "$FB" argon2 --data-dir "$dir" --count "$STORM_CHECKS" "${accounts[@]}" 2>>"$ERR")
  echo "$line" >>"$RES"; echo "$line" >&2
  FINGERPRINT_ARG=${FP[ours-tls]}
  for r in $(seq 1 "$REPS"); do
    run logins-alone ours-tls logins "${PID[ours-tls]}" "${ADDR[ours-tls]}" ours-tls \
      --clients "$STORM_CLIENTS" --secs "$STORM_SECS" "${accounts[@]}"
  done
  log "scenario logins-open-c1000 (load average $(cut -d' ' -f1 /proc/loadavg))"
  for r in $(seq 1 "$REPS"); do
    run logins-open-c1000 ours-tls bench "${PID[ours-tls]}" "${ADDR[ours-tls]}" ours-tls "${fanout[@]}"
    run logins-open-c1000 ours-tls+storm bench "${PID[ours-tls]}" "${ADDR[ours-tls]}" ours-tls "${fanout[@]}" \
      --storm "$STORM_CLIENTS" "${accounts[@]}"
  done
}

for s in $SCENARIOS; do
  case $s in
    fanout-c100-16B)   rotate "$s" --subs 100 --msgs "$MSGS" --size 16 --window "$WINDOW" ;;
    fanout-c100-256B)  rotate "$s" --subs 100 --msgs "$MSGS" --size 256 --window "$WINDOW" ;;
    fanout-c1000-16B)  rotate "$s" --subs 1000 --msgs "$MSGS_C1000" --size 16 --window "$WINDOW" ;;
    fanout-c1000-256B) rotate "$s" --subs 1000 --msgs "$MSGS_C1000" --size 256 --window "$WINDOW" ;;
    open-c100-16B-20k) rotate "$s" --subs 100 --msgs "$OPEN_MSGS" --size 16 --rate "$OPEN_RATE" --warmup-ms "$OPEN_WARMUP_MS" ;;
    unicast-c100)      rotate "$s" --pattern unicast --subs "$UNICAST_CLIENTS" --msgs "$UNICAST_MSGS" --size 32 --window 1 ;;
    idle)              idle_rotation ;;
    log-c100-16B)      log_rotation ;;
    logins)            logins_rotation ;;
    *)                 echo "SKIP $s: unknown scenario" ;;
  esac
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
"$FB" summarize --reference "$REFERENCE" "$RES" | tee "$OUT/summary.md"
"$FB" chart "$RES" --out "$OUT/bench.svg" 2>>"$ERR" && echo "chart: $OUT/bench.svg"
echo "results: $RES"
