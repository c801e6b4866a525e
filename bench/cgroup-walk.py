#!/usr/bin/env python3
"""bench/cgroup-walk.py [N] [ROUNDS]: what naming a socket's cgroup costs.

Makes N cgroups (default 1000) under the cgroup v2 mount, in
lsport-bench.slice (20 slices of services), and a listener in a fresh
network namespace whose cgroup was removed after it opened its socket: its
id is in no directory, so naming it walks the whole hierarchy, the worst
case. Then times, in alternating rounds, `lsport -o proto,local,pid PORT`
(no walk) and `lsport -o proto,local,pid,cgroup PORT` (the walk), and
prints the medians and the median of the per-round differences. Removes
the cgroups afterwards. Needs root. LSPORT: the binary (default
target/release/lsport). A benchmark, not a test.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

PORT = 7499


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            if after.startswith("cgroup2 "):
                return before.split(" ")[4]
    sys.exit("no cgroup v2 mount")


def make_tree(base, n):
    """n directories: 20 slices, the rest services spread over them."""
    dirs = [os.path.join(base, f"s{i}.slice") for i in range(20)]
    for i in range(n - len(dirs)):
        dirs.append(os.path.join(dirs[i % 20], f"svc{i}.service"))
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    return dirs


def remove_tree(base):
    for root, subdirs, _ in os.walk(base, topdown=False):
        for d in subdirs:
            os.rmdir(os.path.join(root, d))
    os.rmdir(base)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 41
    lsport = os.environ.get("LSPORT", "target/release/lsport")
    mount = cgroup2_mount()
    base = os.path.join(mount, "lsport-bench.slice")
    if os.path.exists(base):
        remove_tree(base)
    os.makedirs(base)
    try:
        dirs = make_tree(base, n - 1)  # with lsport-bench.slice: n
        gone = os.path.join(base, "gone.service")
        os.makedirs(gone)
        own = open("/proc/self/cgroup").read().split("0::", 1)[1].strip()
        # The holder: opens its listener in `gone`, then leaves it.
        script = (
            f"echo $$ > {gone}/cgroup.procs && ip link set lo up && "
            f"exec python3 -c 'import socket,time,sys\n"
            f"s=socket.socket(); s.bind((\"127.0.0.1\",{PORT})); s.listen()\n"
            f"open(\"{mount}{own}/cgroup.procs\",\"w\").write(str(__import__(\"os\").getpid()))\n"
            f"print(\"ready\", flush=True); time.sleep(600)'"
        )
        holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", script], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline().strip() == "ready"
        os.rmdir(gone)
        netns = f"/proc/{holder.pid}/ns/net"
        plain = [lsport, "--netns", netns, "-o", "proto,local,pid", str(PORT)]
        named = [lsport, "--netns", netns, "-o", "proto,local,pid,cgroup", str(PORT)]
        out = subprocess.run(named, capture_output=True, text=True).stdout
        assert "id:" in out, out  # the removed cgroup: a full walk, no path
        times = {"plain": [], "named": []}
        for _ in range(rounds):
            for label, cmd in (("plain", plain), ("named", named)):
                start = time.perf_counter()
                subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
                times[label].append((time.perf_counter() - start) * 1000)
        holder.kill()
        holder.wait()
        diffs = [b - a for a, b in zip(times["plain"], times["named"])]
        print(f"{n} cgroups, {rounds} alternating rounds, {lsport}")
        for label in ("plain", "named"):
            print(f"  {label:6} median {statistics.median(times[label]):7.2f} ms"
                  f"  min {min(times[label]):7.2f} ms")
        print(f"  walk: median of per-round differences {statistics.median(diffs):.2f} ms")
    finally:
        remove_tree(base)


if __name__ == "__main__":
    main()
