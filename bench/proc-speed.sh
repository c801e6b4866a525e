#!/usr/bin/env bash
# How long `--source proc` takes to read and parse /proc/net/tcp and
# tcp6, next to `cat` reading the same files, at the large load of
# mkload.py (about 200k sockets). A benchmark, not a test. Run from the
# project root, as root, in a fresh network namespace:
#
#   cargo build --release
#   ../shared/bench/in-netns.sh bench/proc-speed.sh [mkload options]
#
# lsport is asked about port 1, which no socket has: it reads and
# parses every line of both tables, keeps none, and so scans no
# process; the difference from cat is the parse. Needs hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."

LSPORT=${LSPORT:-$PWD/target/release/lsport}
RUNS=${RUNS:-20}
if [ $# -eq 0 ]; then
    set -- -P 500 -E 100000
fi

. bench/load.sh
start_load 600 "$@"

echo "lines: $(cat /proc/net/tcp /proc/net/tcp6 | wc -l) in tcp+tcp6, $(cat /proc/net/tcp /proc/net/tcp6 | wc -c) bytes"
# lsport exits 1 (port 1 is free): -i keeps hyperfine going.
hyperfine -N -i --warmup 3 --runs "$RUNS" --export-json "${EXPORT:-/dev/null}" \
    "cat /proc/net/tcp /proc/net/tcp6" \
    "$LSPORT --source proc -t 1" \
    "$LSPORT --source netlink -t 1"
