# Sourced by the bench scripts: start_load TIMEOUT [mkload options]
# starts the socket fixture (../shared/bench/mkload.py, or $MKLOAD) in
# the current network namespace, waits until it is ready, and stops it
# when the script exits. Sets $work (a scratch directory, removed on
# exit) and $work/load.json (the fixture's manifest).
start_load() {
    local timeout=$1
    shift
    work=$(mktemp -d)
    python3 "${MKLOAD:-../shared/bench/mkload.py}" --manifest "$work/load.json" \
        --timeout "$timeout" "$@" >"$work/mkload.log" 2>&1 &
    load=$!
    trap stop_load EXIT
    while [ ! -e "$work/load.json.ready" ]; do
        if ! kill -0 "$load" 2>/dev/null; then
            cat "$work/mkload.log" >&2
            exit 2
        fi
        sleep 0.2
    done
}

stop_load() {
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    rm -rf "$work"
}
