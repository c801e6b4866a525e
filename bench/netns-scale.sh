#!/usr/bin/env bash
# How --all-netns grows with the number of network namespaces.
#
# Starts N namespaces (default 100), each with one holder process that
# keeps S sockets (default 100: S/2 listeners and S/4 connected pairs on
# loopback), then times, side by side with hyperfine:
#   lsport --all-netns 60403          (one filtered dump per namespace)
#   lsport --all-netns -a --json      (every socket of every namespace)
#   lsport 60403                      (this namespace only: the /proc scan alone)
# and checks that --all-netns finds every namespace's sockets. Port 60403
# is free everywhere, so exit status 1 is expected (hyperfine -i).
#
# Run as root from the project root after `cargo build --release`:
#   bench/netns-scale.sh [N] [S]
set -euo pipefail
count=${1:-100}
sockets=${2:-100}
lsport=${LSPORT:-target/release/lsport}
work=$(mktemp -d)
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

holder='
import socket, sys, time
n = int(sys.argv[1]); ready = sys.argv[2]
keep = []
for i in range(n // 2):
    s = socket.socket(); s.bind(("127.0.0.1", 20000 + i)); s.listen(64); keep.append(s)
for i in range(n // 4):
    c = socket.create_connection(("127.0.0.1", 20000 + i)); a, _ = keep[i].accept(); keep += [c, a]
open(ready, "w").close()
time.sleep(3600)
'
for i in $(seq 1 "$count"); do
    unshare -n sh -c 'ip link set lo up && exec python3 -c "$0" "$1" "$2"' \
        "$holder" "$sockets" "$work/ready.$i" &
    pids+=($!)
done
for i in $(seq 1 "$count"); do
    while [ ! -e "$work/ready.$i" ]; do sleep 0.05; done
done
echo "namespaces: $count, sockets each: $sockets"

# Every namespace's listener on 20000 must be found.
found=$("$lsport" --all-netns --json 20000 | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print(len({s["netns"]["inode"] for s in doc["sockets"] if s["state"] == "LISTEN"}))')
echo "namespaces holding a listener on 20000, as lsport sees them: $found"
[ "$found" -ge "$count" ] || { echo "MISSING namespaces" >&2; exit 1; }

hyperfine -N -i --warmup 2 --runs "${RUNS:-10}" \
    "$lsport 60403" \
    "$lsport --all-netns 60403" \
    "$lsport --all-netns -a --json"
