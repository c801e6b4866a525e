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

MKLOAD=${MKLOAD:-../shared/bench/mkload.py}
LSPORT=${LSPORT:-target/release/lsport}

work=$(mktemp -d)
python3 "$MKLOAD" --manifest "$work/load.json" --timeout 300 "$@" >"$work/mkload.log" 2>&1 &
load=$!
cleanup() {
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

while [ ! -e "$work/load.json.ready" ]; do
    if ! kill -0 "$load" 2>/dev/null; then
        cat "$work/mkload.log" >&2
        exit 2
    fi
    sleep 0.2
done

"$LSPORT" --source netlink --json -a >"$work/netlink.json" || [ $? -eq 1 ]
"$LSPORT" --source proc --json -a >"$work/proc.json" || [ $? -eq 1 ]
python3 bench/compare-sources.py "$work/netlink.json" "$work/proc.json" "$work/load.json"
