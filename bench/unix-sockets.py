#!/usr/bin/env python3
"""bench/unix-sockets.py [SOCKETS]    (default 10000)

Times the library's Unix socket source on one path (the unix_path
example: a sock_diag dump, stat, match by device and inode, peers
paired) against ss filtered by the same path, on a network namespace
holding SOCKETS Unix sockets. Runs itself in a fresh network and mount
namespace (needs root). The commands run in alternation, round after
round, so that noise from other work hits all of them alike; prints
median wall and CPU times (user + system, from the children's rusage:
the steadier figure on a busy machine), each with its ratio to the
library's full dump. `lsport PATH` (the whole command: the dump, the
fd walk for the holders, the table) runs beside them, against
`ss -xp` filtered by the same path.

The target is a stream listener with 3 accepted connections and 2
waiting; the rest are socketpairs, path listeners beside it, and
abstract datagram sockets. Knobs (environment): RUNS (rounds, 30),
EXAMPLE (the binary, default target/release/examples/unix_path, built
first if missing), LSPORT (default target/release/lsport; left out when
missing). A benchmark, not a test.
"""

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reexec_in_namespaces():
    if os.environ.get("LSPORT_BENCH_INSIDE"):
        return
    if os.geteuid() != 0:
        sys.exit("bench/unix-sockets.py: needs root (a fresh network namespace)")
    example = os.environ.get("EXAMPLE") or os.path.join(
        ROOT, "target/release/examples/unix_path"
    )
    if not os.path.exists(example):
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--example", "unix_path"],
            cwd=ROOT,
            check=True,
        )
    env = dict(os.environ, LSPORT_BENCH_INSIDE="1", EXAMPLE=example)
    os.execvpe("unshare", ["unshare", "-mn", sys.executable] + sys.argv, env)


def make_sockets(total, directory):
    """Returns (held sockets, the target path, the listener's inode)."""
    held = []
    path = os.path.join(directory, "app.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    held.append(listener)
    for _ in range(3):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        held += [client, listener.accept()[0]]
    for _ in range(2):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        held.append(client)
    rest = total - len(held)
    # A tenth each path listeners and abstract datagram sockets, the
    # other eight tenths connected pairs.
    for i in range(rest // 10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(directory, f"other-{i}.sock"))
        s.listen(4)
        held.append(s)
    for i in range(rest // 10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(f"\0bench/{i}")
        held.append(s)
    while len(held) + 1 < total:
        held += list(socket.socketpair())
    return held, path, os.fstat(listener.fileno()).st_ino


def count_sockets():
    with open("/proc/net/unix", "rb") as table:
        return sum(1 for _ in table) - 1


def main():
    reexec_in_namespaces()
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    runs = int(os.environ.get("RUNS", "30"))
    example = os.environ["EXAMPLE"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, total + 100), max(hard, total + 100)))
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    directory = tempfile.mkdtemp(prefix="lsport-unix-bench-")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", directory], check=True)
    held, path, inode = make_sockets(total, directory)
    commands = {
        "unix_path (full dump)": [example, path],
        "unix_path --narrow": [example, "--narrow", path],
        "unix_path --proc": [example, "--proc", path],
        "ss -x src PATH": ["ss", "-xaH", "src", path],
        "ss -xp src PATH": ["ss", "-xapH", "src", path],
    }
    lsport = os.environ.get("LSPORT") or os.path.join(ROOT, "target/release/lsport")
    if os.path.exists(lsport):
        commands["lsport PATH"] = [lsport, path]
    # Each finds the listener first.
    for name, argv in commands.items():
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        if str(inode) not in out:
            sys.exit(f"{name} did not find the listener {inode}:\n{out}")
    times = {name: [] for name in commands}
    cpu = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(
                after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            )
    base = statistics.median(times["unix_path (full dump)"])
    base_cpu = statistics.median(cpu["unix_path (full dump)"])
    print(f"{count_sockets()} Unix sockets in the namespace, {runs} rounds")
    print("| command | median ms | ratio | median CPU ms (user+sys) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        median_cpu = statistics.median(cpu[name])
        print(
            f"| `{name}` | {median * 1000:.2f} | {median / base:.2f} "
            f"| {median_cpu * 1000:.1f} | {median_cpu / base_cpu:.2f} |"
        )
    del held


if __name__ == "__main__":
    main()
