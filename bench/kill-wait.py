#!/usr/bin/env python3
"""bench/kill-wait.py [--load] [--trials N]: what `lsport wait` and
`lsport kill` cost and how fast they notice, in a fresh network namespace.

- detection delay: from listen() (or the close of the last holder) to
  the line `lsport wait --listening` (or `--free`) prints, N trials each
  after a random delay; median and p99.
- CPU per second of waiting: user+system time of `lsport wait` over a
  10 s wait that is never met, for --listening and --free.
- kill: from the signal to "port free", as `lsport kill --json` reports
  it (freed_after_ms), N trials against a process holding a listener.

With --load the medium socket fixture (../shared/bench/mkload.py with its
defaults: 200 holders, 1000 listeners, 20000 connection pairs, 2000 UDP
sockets) runs in the same namespace. Run as root, from the project root;
re-runs itself under `unshare -n`. LSPORT names the binary (default
target/release/lsport). A benchmark, not a test.
"""
import json, os, random, resource, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LSPORT = os.environ.get("LSPORT", os.path.join(ROOT, "target/release/lsport"))
MKLOAD = os.environ.get("MKLOAD", os.path.join(ROOT, "../shared/bench/mkload.py"))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(name, ms):
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {pct(ms, 99):.1f} | {max(ms):.1f} |"


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def free_port(port):
    """The first port from `port` up that a bind() without SO_REUSEADDR
    takes: the fixture's listeners are spread over the low ports."""
    while True:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            port += 1
        finally:
            s.close()


def detect(condition, port, trials, quiet):
    """With `quiet`, until `lsport -q wait` exits (detection alone);
    otherwise until its line, which names the holder and so first reads
    the fds of every process (for --free, once at the start)."""
    delays = []
    for _ in range(trials):
        port = free_port(port)
        held = listener(port) if condition == "--free" else None
        argv = [LSPORT, "wait", condition, "--timeout", "20s", "-t", str(port)]
        child = subprocess.Popen(argv[:1] + ["-q"] + argv[1:] if quiet else argv,
                                 stdout=subprocess.PIPE, text=True)
        # Long enough for lsport to start and (for --free) name the
        # holder even at load, so that only the detection is timed.
        time.sleep(random.uniform(0.6, 0.9))
        t0 = time.monotonic()
        if held is None:
            held = listener(port)
        else:
            held.close()
        line = "" if quiet else child.stdout.readline()
        code = child.wait()
        delays.append((time.monotonic() - t0) * 1000)
        if code != 0 or not (quiet or line.startswith(f"port {port}")):
            sys.exit(f"unexpected answer: {code} {line!r}")
        if condition == "--listening":
            held.close()
        port += 1  # no TIME_WAIT or lingering state from the last trial
    return delays


def cpu_per_second(condition, port, seconds=10):
    port = free_port(port)
    held = listener(port) if condition == "--free" else None
    start = time.monotonic()
    child = subprocess.Popen([LSPORT, "-q", "wait", condition, "--timeout", f"{seconds}s", str(port)])
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    if held:
        held.close()
    return (usage.ru_utime + usage.ru_stime) / wall * 1000  # ms of CPU per s


def kill_times(port, trials):
    times = []
    for _ in range(trials):
        port = free_port(port)
        s = listener(port)
        holder = subprocess.Popen(["sleep", "300"], pass_fds=(s.fileno(),))
        s.close()
        # -t: the fixture's UDP sockets may share the port number.
        out = subprocess.run([LSPORT, "--json", "kill", "-t", "--respawn-window", "0", str(port)],
                             capture_output=True, text=True)
        doc = json.loads(out.stdout)
        if doc["outcome"] != "freed":
            sys.exit(f"kill did not free the port: {out.stdout}")
        times.append(doc["freed_after_ms"])
        holder.wait()
        port += 1
    return times


def main():
    trials = int(sys.argv[sys.argv.index("--trials") + 1]) if "--trials" in sys.argv else 50
    loaded = "--load" in sys.argv
    fixture = None
    if loaded:
        manifest = f"/tmp/kill-wait-bench-{os.getpid()}.json"
        fixture = subprocess.Popen([sys.executable, MKLOAD, "--manifest", manifest, "--timeout", "900"],
                                   stdout=subprocess.DEVNULL)
        while not os.path.exists(manifest + ".ready"):
            if fixture.poll() is not None:
                sys.exit("the fixture did not start")
            time.sleep(0.2)
    try:
        print(f"## lsport wait / kill, {'medium load' if loaded else 'idle'} ({os.uname().release})\n")
        print("| what | trials | median ms | p99 ms | max ms |\n|---|---|---|---|---|")
        # Ports below the fixture's ranges: 20000 upwards are free there.
        print(summary("wait -q --listening: listen() -> exit", detect("--listening", 20000, trials, True)))
        print(summary("wait -q --free: last close() -> exit", detect("--free", 21000, trials, True)))
        print(summary("wait --listening: listen() -> line naming the holder", detect("--listening", 20500, trials, False)))
        print(summary("wait --free: last close() -> line", detect("--free", 21500, trials, False)))
        print(summary("kill: signal -> port free", kill_times(22000, trials)))
        print("\n| wait, never met, 10 s | CPU ms per s of waiting |\n|---|---|")
        print(f"| --listening | {cpu_per_second('--listening', 23000):.2f} |")
        print(f"| --free (port held) | {cpu_per_second('--free', 23001):.2f} |")
    finally:
        if fixture:
            fixture.terminate()
            fixture.wait()


if __name__ == "__main__":
    if os.environ.get("KILL_WAIT_BENCH_INSIDE") != "1":
        env = dict(os.environ, KILL_WAIT_BENCH_INSIDE="1")
        os.execvpe("unshare", ["unshare", "-n", "sh", "-c",
                               'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv], env)
    main()
