#!/usr/bin/env bash
# Checks that `--source netlink` and `--source proc` give the same
# sockets and holders on a real load (default: the medium load of
# mkload.py, about 43k sockets). Run from the project root, as root, in
# a fresh network namespace:
#
#   cargo build --release
#   ../shared/bench/in-netns.sh bench/proc-parity.sh [mkload options]
#
# Exit 0 when the only sockets missing from /proc are bound-only TCP
# sockets (its documented blind spot), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

LSPORT=${LSPORT:-target/release/lsport}

. bench/load.sh
start_load 300 "$@"

"$LSPORT" --source netlink --json -a >"$work/netlink.json" || [ $? -eq 1 ]
"$LSPORT" --source proc --json -a >"$work/proc.json" || [ $? -eq 1 ]
python3 bench/compare-sources.py "$work/netlink.json" "$work/proc.json" "$work/load.json"
