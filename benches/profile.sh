#!/usr/bin/env bash
# Where a cashe cluster spends its CPU per operation (benches/README.md,
# "Where the time goes"). Starts three release nodes on 127.0.0.1, loads them
# with three redis-benchmark processes, and prints, per node and for all three,
# CPU (user/system) per operation from /proc/<pid>/stat and syscalls and
# context switches per operation from `perf stat`, and leaves a system-wide
# `perf record -g` profile in $DIR/perf-<workload>-<mode>.data.
#
#   benches/profile.sh [set|get] [forward|aware]   (needs perf and redis-benchmark;
#                                     root or perf_event_paranoid <= 1 for perf)
# Modes (also MODE=...; default forward):
#   forward  one redis-benchmark per node: followers forward to the leader;
#   aware    all three against the leader (the master CLUSTER SLOTS names), as
#            cluster-aware clients send every command of a one-shard cluster.
#            (`redis-benchmark --cluster` refuses a cluster of one master:
#            "Invalid cluster: 1 node(s).")
# Environment: CASHE_BINARY (target/release/cashe), CASHE_ARGS (extra flags for
# every node, e.g. --read-lease off), PORT_BASE (3100: clients on
# PORT_BASE..+2, peers on PORT_BASE+1000..), REQUESTS per redis-benchmark
# (70000), DIR (target/profile). Every process it starts is killed by PID on exit.
set -euo pipefail
workload=${1:-set}
mode=${2:-${MODE:-forward}}
case "$workload" in set | get) ;; *) echo "profile: workload $workload is neither set nor get" >&2; exit 2 ;; esac
case "$mode" in forward | aware) ;; *) echo "profile: mode $mode is neither forward nor aware" >&2; exit 2 ;; esac
binary=${CASHE_BINARY:-target/release/cashe}
read -r -a extra <<< "${CASHE_ARGS:-}"
base=${PORT_BASE:-3100}
requests=${REQUESTS:-70000}
dir=${DIR:-target/profile}
rm -rf "$dir" && mkdir -p "$dir"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

for k in 0 1 2; do
    join=()
    [ "$k" -gt 0 ] && join=(--leaderaddr "127.0.0.1:$base")
    "$binary" --id "raft$k" --listenaddr "127.0.0.1:$((base + k))" --raftaddr "127.0.0.1:$((base + 1000 + k))" \
        --datadir "$dir/data$k" "${join[@]}" "${extra[@]}" > "$dir/node$k.log" 2>&1 &
    pids+=($!)
    [ "$k" -eq 0 ] && sleep 1
done
# Ready when the founder counts three voters and no learner, and every node
# names a leader: a node that has joined but not yet heard from the leader
# answers -CLUSTERDOWN, on which redis-benchmark stops.
ready=no
for _ in $(seq 50); do
    info=$(redis-cli -p "$base" cluster info 2>/dev/null | tr -d '\r')
    if grep -q "^cluster_voters:3$" <<< "$info" && grep -q "^cluster_learners:0$" <<< "$info"; then
        named=0
        for k in 0 1 2; do
            redis-cli -p "$((base + k))" cluster info 2>/dev/null | tr -d '\r' | grep -q "^cluster_leader:raft" && named=$((named + 1))
        done
        [ "$named" -eq 3 ] && ready=yes && break
    fi
    sleep 0.2
done
# A node that did not start (a port still held by an earlier run's node,
# say) would leave redis-benchmark retrying for ever: stop here instead.
for k in 0 1 2; do
    if ! kill -0 "${pids[$k]}" 2>/dev/null; then
        echo "profile: raft$k did not start; its log ($dir/node$k.log) ends:" >&2
        tail -2 "$dir/node$k.log" >&2
        exit 1
    fi
done
if [ "$ready" != yes ]; then
    echo "profile: the three nodes did not form a cluster in 10 s (logs in $dir)" >&2
    exit 1
fi
if [ "$workload" = get ]; then
    redis-benchmark -p "$base" -t set -n 100000 -r 100000 -d 64 -c 32 -q > /dev/null
fi
# Where each redis-benchmark sends its load.
ports=("$base" "$((base + 1))" "$((base + 2))")
if [ "$mode" = aware ]; then
    # CLUSTER SLOTS of one shard: 0, 16383, then the master's host and port.
    leader=""
    for _ in $(seq 50); do
        leader=$(redis-cli -p "$base" --raw cluster slots 2>/dev/null | sed -n 4p)
        [ -n "$leader" ] && break
        sleep 0.2
    done
    case "$leader" in
        "$base" | "$((base + 1))" | "$((base + 2))") ;;
        *) echo "profile: CLUSTER SLOTS named no master among the three nodes (got '$leader')" >&2; exit 1 ;;
    esac
    ports=("$leader" "$leader" "$leader")
    echo "profile: aware: all three redis-benchmark processes against raft$((leader - base)) (:$leader), the master CLUSTER SLOTS names"
fi
cpu() { for pid in "${pids[@]}"; do awk '{printf "%d %d ", $14, $15}' "/proc/$pid/stat"; done; }
before=$(cpu)
stats=()
for k in 0 1 2; do
    perf stat -x, -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_io_uring_enter,context-switches' \
        -p "${pids[$k]}" -o "$dir/perf-stat-raft$k.txt" &
    stats+=($!)
done
perf record -a -g -o "$dir/perf-$workload-$mode.data" -- sleep 5 > /dev/null 2>&1 &
recording=$!
load=()
for k in 0 1 2; do
    redis-benchmark -p "${ports[$k]}" -t "$workload" -c 21 -n "$requests" -r 100000 -d 64 -q > "$dir/load$k.txt" 2>&1 &
    load+=($!)
done
for pid in "${load[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
done
after=$(cpu)
for pid in "${stats[@]}"; do kill -INT "$pid"; done
for pid in "${stats[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
done
ops=$((requests * 3))
roles=()
for k in 0 1 2; do
    roles+=("$(redis-cli -p "$((base + k))" info replication 2>/dev/null | tr -d '\r' | sed -n 's/^raft_role://p')")
done
echo "$ops operations ($workload, $mode), per operation:"
# Per node: CPU from the two /proc readings, the perf counts from its stat file.
{
    echo "cpu $before | $after"
    for k in 0 1 2; do
        awk -F, -v k="$k" -v role="${roles[$k]:-?}" '$3 ~ /sys_enter|context-switches/ {
            sub(/^syscalls:sys_enter_/, "", $3); printf "count %d %s %s %s\n", k, role, $3, $1 }' "$dir/perf-stat-raft$k.txt"
    done
} | awk -v ops="$ops" '
    $1 == "cpu" { line = $0; sub(/^cpu /, "", line); split(line, halves, "|"); split(halves[1], a, " "); split(halves[2], b, " ")
        for (k = 0; k < 3; k++) { user[k] = b[2*k+1] - a[2*k+1]; sys[k] = b[2*k+2] - a[2*k+2] } }
    $1 == "count" { role[$2] = $3; count[$2, $4] += $5; total[$4] += $5 }
    END {
        # /proc/<pid>/stat counts clock ticks of 1/100 s: 1e4 us each.
        printf "  %-6s %-9s %8s %8s %8s | %8s %9s %15s %9s\n", "node", "role", "CPU us", "user", "system", "sendto", "recvfrom", "io_uring_enter", "cswitch"
        for (k = 0; k < 3; k++) {
            printf "  raft%-2d %-9s %8.1f %8.1f %8.1f | %8.2f %9.2f %15.2f %9.2f\n", k, role[k],
                (user[k] + sys[k]) * 1e4 / ops, user[k] * 1e4 / ops, sys[k] * 1e4 / ops,
                count[k, "sendto"] / ops, count[k, "recvfrom"] / ops, count[k, "io_uring_enter"] / ops, count[k, "context-switches"] / ops
            u += user[k]; s += sys[k]
        }
        printf "  %-6s %-9s %8.1f %8.1f %8.1f | %8.2f %9.2f %15.2f %9.2f\n", "all", "", (u + s) * 1e4 / ops, u * 1e4 / ops, s * 1e4 / ops,
            total["sendto"] / ops, total["recvfrom"] / ops, total["io_uring_enter"] / ops, total["context-switches"] / ops
    }'
for k in 0 1 2; do
    echo "  redis-benchmark $((k + 1)) (:${ports[$k]}): $(tr '\r' '\n' < "$dir/load$k.txt" | grep "per second" | tail -1 || true)"
done
# perf record runs for 5 s; a load that ended sooner must not leave its
# file half-written ("data size field is 0") for the report below.
wait "$recording" || true
echo "profile: perf report -i $dir/perf-$workload-$mode.data --no-children --sort comm,dso"
