#!/usr/bin/env bash
# Where a cashe cluster spends its CPU per operation (benches/README.md,
# "Where the time goes"). Starts three release nodes on 127.0.0.1, loads them
# with one redis-benchmark per node, and prints CPU (user/system) per
# operation from /proc/<pid>/stat, syscalls per operation from `perf stat`,
# and leaves a system-wide `perf record -g` profile in $DIR/perf-<workload>.data.
#
#   benches/profile.sh [set|get]     (needs perf and redis-benchmark; root or
#                                     perf_event_paranoid <= 1 for perf)
# Environment: CASHE_BINARY (target/release/cashe), PORT_BASE (3100: clients on
# PORT_BASE..+2, peers on PORT_BASE+1000..), REQUESTS per node (70000),
# DIR (target/profile). Every process it starts is killed by PID on exit.
set -euo pipefail
workload=${1:-set}
binary=${CASHE_BINARY:-target/release/cashe}
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
        --datadir "$dir/data$k" "${join[@]}" > "$dir/node$k.log" 2>&1 &
    pids+=($!)
    [ "$k" -eq 0 ] && sleep 1
done
ready=no
for _ in $(seq 50); do
    redis-cli -p "$base" cluster info 2>/dev/null | grep -q "cluster_known_nodes:3" && ready=yes && break
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
cpu() { for pid in "${pids[@]}"; do awk '{printf "%d %d ", $14, $15}' "/proc/$pid/stat"; done; }
node_pids=$(IFS=,; echo "${pids[*]}")
before=$(cpu)
perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_io_uring_enter,context-switches' \
    -p "$node_pids" -o "$dir/perf-stat.txt" &
stat_pid=$!
perf record -a -g -o "$dir/perf-$workload.data" -- sleep 5 > /dev/null 2>&1 &
load=()
for k in 0 1 2; do
    redis-benchmark -p "$((base + k))" -t "$workload" -c 21 -n "$requests" -r 100000 -d 64 -q > "$dir/load$k.txt" 2>&1 &
    load+=($!)
done
for pid in "${load[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
done
after=$(cpu)
kill -INT "$stat_pid"
while kill -0 "$stat_pid" 2>/dev/null; do sleep 0.2; done
ops=$((requests * 3))
echo "$before | $after" | awk -F'|' -v ops="$ops" '{split($1,a," "); split($2,b," "); u=0; s=0;
    for (i = 1; i <= 6; i += 2) { u += b[i] - a[i]; s += b[i+1] - a[i+1] }
    printf "%d operations: cashe CPU per operation %.1f us (user %.1f, system %.1f), all three nodes\n",
        ops, (u + s) * 1e4 / ops, u * 1e4 / ops, s * 1e4 / ops }'
awk -v ops="$ops" '/sys_enter|context-switches/ { gsub(",", "", $1); printf "  %-40s %.2f per operation\n", $2, $1 / ops }' "$dir/perf-stat.txt"
tr '\r' '\n' < "$dir/load0.txt" | grep "per second" || true
echo "profile: perf report -i $dir/perf-$workload.data --no-children --sort comm,dso"
