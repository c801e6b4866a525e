#!/usr/bin/env python3
"""bench/watch.py: the figures of `lsport watch`, measured.

Run as root, in a fresh network namespace:

    ../shared/bench/in-netns.sh python3 bench/watch.py [LSPORT]

1. share: 100 connections per second for 5 s to a listener, each living
   1 ms, 10 ms or 100 ms; how many `lsport watch --json PORT` reported
   (the accepted end, matched by the client's port), how many of those
   came with a holder pid, and how many of the others with a likely one
   (the listener's sole holder: this script).
2. rate: UDP sockets bound and closed at rising rates for 2 s each on
   watched ports; the highest rate with no notification lost.
3. cpu: the CPU `lsport watch PORT` uses over 20 s at the default
   interval, with the medium fixture of ../shared/bench/mkload.py loaded
   in a namespace of its own (the steps before leave TIME_WAIT entries
   whose ports the fixture may want) and 100 connections per second of
   10 ms. The fixture
   is started only once no other mkload.py runs (polled every 30 s, up
   to 15 minutes), so that two big loads never share the machine.

4. load (`--load SIZE LSPORT [OTHER...]`, SIZE medium or large): the
   CPU and peak RSS of `lsport watch` with the fixture loaded at that
   size in a namespace of its own: `watch 60403` (the fixture's target
   port) and `watch 1-65535` (every socket of the load) idle for 20 s,
   and `watch PORT` with 100 connections/s of 10 ms. With several
   binaries (the build before a change, and after), each scenario runs
   them one after the other, in alternation over ROUNDS rounds (env,
   default 1), in the same namespace, and reports each. The fixture
   waits for other loads as the cpu step does.

A benchmark, not a test: nothing here runs under `cargo test`.
"""

import heapq
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] in ("--load", "--load-here") else None
ARGS = [a for a in sys.argv[1:] if a not in ("--cpu-only", "--load", "--load-here", LOAD)]
LSPORT = os.path.abspath(ARGS[0]) if ARGS else os.path.join(ROOT, "target/release/lsport")
# The shared fixture, beside the project root unless SHARED_BENCH says
# where (a worktree elsewhere).
SHARED = os.environ.get("SHARED_BENCH", os.path.join(ROOT, "..", "shared", "bench"))
IN_NETNS = os.path.join(SHARED, "in-netns.sh")
MKLOAD = os.path.join(SHARED, "mkload.py")
# Below the ephemeral range: no client of the steps before takes it.
PORT = 7000


def start_watch(args):
    """Starts lsport watch --json ARGS; returns once it has made its
    first dump (its first line). Its output is read on as it comes: a
    full pipe would stall the watch."""
    proc = subprocess.Popen([LSPORT, "watch", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(proc.stdout.readline())
    assert first["event"] == "started", first
    proc.lines = []
    proc.reader = threading.Thread(target=lambda: proc.lines.extend(proc.stdout))
    proc.reader.start()
    return proc


def finish_watch(proc):
    err = proc.stderr.read()
    proc.wait()
    proc.reader.join()
    lines = [json.loads(line) for line in proc.lines]
    return lines, err


def connections(listener, rate, life_s, seconds):
    """rate connections per second, each closed life_s after it opened.
    Returns the clients' ports."""
    port = listener.getsockname()[1]
    open_ = []  # (close_at, seq, client, server)
    ports = []
    start = time.monotonic()
    n = int(rate * seconds)
    seq = 0
    for i in range(n):
        at = start + i / rate
        while True:
            now = time.monotonic()
            while open_ and open_[0][0] <= now:
                _, _, c, s = heapq.heappop(open_)
                c.close()
                s.close()
            if now >= at:
                break
            upcoming = min(at, open_[0][0]) if open_ else at
            time.sleep(max(0, upcoming - now))
        c = socket.create_connection(("127.0.0.1", port))
        s, _ = listener.accept()
        ports.append(c.getsockname()[1])
        seq += 1
        heapq.heappush(open_, (time.monotonic() + life_s, seq, c, s))
    while open_:
        close_at, _, c, s = heapq.heappop(open_)
        time.sleep(max(0, close_at - time.monotonic()))
        c.close()
        s.close()
    return ports


def first_free_listener(port):
    while True:
        try:
            return listener_on(port)
        except OSError:
            port += 1


def listener_on(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    return s


def share(life_ms):
    port = PORT + life_ms
    listener = listener_on(port)
    watch = start_watch(["--for", "7s", str(port)])
    ports = connections(listener, 100, life_ms / 1000, 5)
    lines, _ = finish_watch(watch)
    listener.close()
    closed = {}
    for line in lines:
        if line["event"] == "closed" and line["role"] == "accepted":
            closed[line["remote"]["port"]] = line
    reported = [closed[p] for p in ports if p in closed]
    with_pid = sum(1 for line in reported if line["holders"])
    likely = sum(1 for line in reported if not line["holders"] and line.get("likely_holder"))
    return {
        "life_ms": life_ms,
        "connections": len(ports),
        "reported": len(reported),
        "reported_share": round(len(reported) / len(ports), 4),
        "with_holder_pid": with_pid,
        "holder_share": round(with_pid / len(ports), 4),
        "with_likely_holder": likely,
        "seen_only_at_close": sum(1 for line in reported if line["seen_only_at_close"]),
    }


def udp_churn(rate, seconds, lo, hi):
    """Binds and closes UDP sockets on ports lo..hi at `rate` per second;
    returns the rate achieved."""
    n = int(rate * seconds)
    start = time.monotonic()
    port = lo
    for i in range(n):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0.001:
            time.sleep(ahead)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            pass
        s.close()
        port = lo if port >= hi else port + 1
    return n / (time.monotonic() - start)


def rate_steps():
    results = []
    for rate in (1000, 2000, 5000, 10000, 20000, 40000, 80000):
        watch = start_watch(["--for", "3s", "-u", "20000-29999"])
        achieved = udp_churn(rate, 2, 20000, 29999)
        lines, _ = finish_watch(watch)
        summary = lines[-1]
        results.append({
            "asked_per_s": rate,
            "achieved_per_s": round(achieved),
            "closed_reported": summary["closed"],
            "lost": summary["lost"],
        })
        if summary["lost"] > 0 or achieved < rate * 0.8:
            break
    return results


def wait_for_other_loads():
    for _ in range(30):
        busy = subprocess.run(["pgrep", "-f", "mkload.py"], capture_output=True, text=True)
        others = [p for p in busy.stdout.split() if int(p) != os.getpid()]
        if not others:
            return True
        print(f"waiting: another mkload.py runs ({len(others)} processes)", file=sys.stderr)
        time.sleep(30)
    return False


def cpu_at_medium_load():
    if not wait_for_other_loads():
        return {"skipped": "another mkload.py ran for 15 minutes"}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, "medium.json")
        load = subprocess.Popen([sys.executable, MKLOAD, "--manifest", manifest, "--timeout", "300"])
        try:
            while not os.path.exists(manifest + ".ready"):
                if load.poll() is not None:
                    raise SystemExit(f"mkload.py exited with {load.returncode}")
                time.sleep(0.2)
            results = {}
            # The fixture binds ports across the whole range, and its
            # clients take ephemeral ones: watch the first port below
            # the ephemeral range that it left free.
            listener = first_free_listener(7000)
            port = listener.getsockname()[1]
            listener.close()
            results["watched_port"] = port
            for name, args in (("port", [str(port)]), ("listeners", [])):
                listener = listener_on(port)
                timed = subprocess.Popen(
                    ["/usr/bin/time", "-f", "%U %S %e", LSPORT, "watch", "--for", "20s", *args],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(0.5)
                churn = threading.Thread(target=connections, args=(listener, 100, 0.010, 18))
                churn.start()
                churn.join()
                _, err = timed.communicate()
                listener.close()
                user, system, elapsed = map(float, err.strip().splitlines()[-1].split())
                results[name] = {
                    "user_s": user, "system_s": system, "elapsed_s": elapsed,
                    "cpu_percent": round(100 * (user + system) / elapsed, 1),
                }
            return results
        finally:
            load.terminate()
            load.wait()


SIZES = {
    "medium": [],
    "large": ["-P", "500", "-E", "100000"],
}


def timed_watch(binary, args, seconds, churn_listener=None):
    """Runs `binary watch --for SECONDS ARGS` under /usr/bin/time, with
    100 connections/s of 10 ms to churn_listener meanwhile if given;
    returns its CPU share and peak RSS."""
    timed = subprocess.Popen(
        ["/usr/bin/time", "-f", "%U %S %e %M", binary, "watch", "--for", f"{seconds}s", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if churn_listener is not None:
        time.sleep(1.0)
        connections(churn_listener, 100, 0.010, seconds - 2)
    _, err = timed.communicate()
    user, system, elapsed, rss_kb = err.strip().splitlines()[-1].split()
    user, system, elapsed = float(user), float(system), float(elapsed)
    return {
        "cpu_percent": round(100 * (user + system) / elapsed, 1),
        "user_s": user, "system_s": system, "elapsed_s": elapsed,
        "max_rss_mib": round(int(rss_kb) / 1024, 1),
    }


def load_here(size, binaries):
    """The load step, in the namespace it runs in."""
    if not wait_for_other_loads():
        return {"skipped": "another mkload.py ran for 15 minutes"}
    rounds = int(os.environ.get("ROUNDS", "1"))
    seconds = int(os.environ.get("SECONDS_EACH", "20"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, f"{size}.json")
        load = subprocess.Popen([sys.executable, MKLOAD, "--manifest", manifest,
                                 "--timeout", "3000", *SIZES[size]])
        try:
            while not os.path.exists(manifest + ".ready"):
                if load.poll() is not None:
                    raise SystemExit(f"mkload.py exited with {load.returncode}")
                time.sleep(0.2)
            with open(manifest) as f:
                facts = json.load(f)
            target = str(facts["target"]["port"])
            churn_port = first_free_listener(7000)
            port = churn_port.getsockname()[1]
            scenarios = {
                f"watch {target} (idle)": ([target], False),
                "watch 1-65535 (idle)": (["1-65535"], False),
                f"watch {port}, 100 connections/s of 10 ms": ([str(port)], True),
            }
            results = {"size": size, "sockets": facts["totals"], "seconds": seconds,
                       "rounds": rounds, "binaries": binaries, "scenarios": {}}
            for name, (args, churn) in scenarios.items():
                runs = {b: [] for b in binaries}
                for _ in range(rounds):
                    for binary in binaries:
                        runs[binary].append(
                            timed_watch(binary, args, seconds, churn_port if churn else None))
                results["scenarios"][name] = runs
            churn_port.close()
            return results
        finally:
            load.terminate()
            load.wait()


def load_in_fresh_namespace(size, binaries):
    done = subprocess.run([IN_NETNS, sys.executable, os.path.abspath(__file__), "--load-here",
                           size, *binaries], capture_output=True, text=True)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-3:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_in_fresh_namespace():
    """The cpu step, run by a copy of this script in a new namespace."""
    done = subprocess.run([IN_NETNS, sys.executable, os.path.abspath(__file__), LSPORT, "--cpu-only"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-3:]}
    # The fixture says READY on the same output: the report is the last line.
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    if LOAD is not None:
        binaries = [os.path.abspath(b) for b in ARGS] or [LSPORT]
        if sys.argv[1] == "--load-here":
            print(json.dumps(load_here(LOAD, binaries)))
        else:
            print(json.dumps(load_in_fresh_namespace(LOAD, binaries), indent=2))
        return
    if "--cpu-only" in sys.argv[1:]:
        print(json.dumps(cpu_at_medium_load()))
        return
    report = {
        "share": [share(life) for life in (1, 10, 100)],
        "rate": rate_steps(),
        "cpu_medium_load": cpu_in_fresh_namespace(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
