#!/usr/bin/env python3
"""Checks and times the commands of bench/run in alternation.

Every round runs each command once, in the same order, so that a burst of
other work on the machine slows all of them alike; medians and the
per-round (paired) ratios to lsport come from those rounds. Each command
must first find the fixture's known answer, or the benchmark stops.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time


def parse_args():
    p = argparse.ArgumentParser()
    for name in ("lsport", "floor", "manifest", "label", "out"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--port", type=int, default=60403)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--slow-runs", type=int, default=3)
    return p.parse_args()


class Command:
    """argv, the lsport command it is compared with, and whether it is
    one of the slow full listings that run in fewer rounds."""

    def __init__(self, argv, ref, slow=False, show=None):
        self.argv = argv
        self.ref = ref
        self.slow = slow
        self.show = show or " ".join(argv)
        self.times = {}  # round -> seconds
        self.rss_kib = 0


def commands(a):
    port = str(a.port)
    lp, la, ll = "lsport PORT", "lsport -a --json", "lsport"
    cmds = [
        Command([a.lsport, port], lp, show=f"lsport {port}"),
        Command([a.lsport, "-a", "--json"], la, show="lsport -a --json > /dev/null"),
        Command([a.lsport], ll, show="lsport"),
        Command(["ss", "-Htanp", f"sport = :{port}"], lp, show=f"ss -Htanp 'sport = :{port}'"),
        Command(["ss", "-Htanp"], la, slow=True),
        Command(["fuser", "-n", "tcp", port], lp),
        Command(["lsof", "-nP", f"-iTCP:{port}"], lp),
    ]
    for mode, ref in (("all", lp), ("listen", ll)):
        for jobs in ([], ["-j2"]):
            cmds.append(Command([a.floor, port, mode] + jobs, ref,
                                show=" ".join(["floor", port, mode] + jobs)))
    return cmds


def run_once(argv):
    """Wall time and peak RSS of one run, stdout and stderr to /dev/null."""
    with open(os.devnull, "wb") as null:
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                                            (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        return time.perf_counter() - t0, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def output_of(argv):
    return subprocess.run(argv, capture_output=True, text=True).stdout


def check(cmds, a, man):
    """Every command must report the fixture's known answer."""
    target = set(man["target"]["pids"])
    port = a.port
    problems = []

    def pids_in_json(doc, want_inodes=None):
        found = {}
        for s in doc["sockets"]:
            for h in s["holders"]:
                found.setdefault(s["inode"], set()).add(h["pid"])
        return found

    # lsport PORT: exactly the target's holders, for exactly its sockets.
    doc = json.loads(output_of([a.lsport, str(port), "--json"]))
    holders = {h["pid"] for s in doc["sockets"] for h in s["holders"]}
    if holders != target:
        problems.append(f"lsport {port}: holders {sorted(holders)} != {sorted(target)}")
    inodes = {s["inode"] for s in doc["sockets"] if s["state"] == "LISTEN"}
    want = {s["inode"] for s in man["target"]["sockets"] if s["state"] == "LISTEN"}
    if inodes != want:
        problems.append(f"lsport {port}: listener inodes {inodes} != {want}")
    if not all(re.search(rf"\b{p}\b", output_of([a.lsport, str(port)])) for p in target):
        problems.append(f"lsport {port}: table lacks a target pid")

    # lsport (listening) and lsport -a: every listener and UDP socket of
    # the fixture, each with its holder.
    known = man["listeners"] + man["udp"] + man["target"]["sockets"]
    for argv in ([a.lsport, "--json"], [a.lsport, "-a", "--json"]):
        found = pids_in_json(json.loads(output_of(argv)))
        missing = [s for s in known if s["pid"] not in found.get(s["inode"], set())]
        if missing:
            problems.append(f"{' '.join(argv[1:]) or '(listening)'}: {len(missing)} "
                            f"of {len(known)} known sockets lack their holder, "
                            f"e.g. {missing[0]}")
    if len(json.loads(output_of([a.lsport, "-a", "--json"]))["sockets"]) < \
            man["totals"]["tcp_sockets_total"] + man["totals"]["udp"]["total"]:
        problems.append("lsport -a: fewer sockets than the fixture made")

    # Everything else: each target pid named in the output.
    for c in cmds:
        if c.argv[0] == a.lsport:
            continue
        text = output_of(c.argv)
        if c.argv[0] == "fuser":
            text += subprocess.run(c.argv, capture_output=True, text=True).stderr
        if c.argv[0] == a.floor and c.argv[2] == "listen":
            seen = {int(l.split()[0]) for l in text.splitlines() if l.strip()}
        else:
            seen = {int(x) for x in re.findall(r"\d+", text)}
        if not target <= seen:
            problems.append(f"{c.show}: does not name {sorted(target - seen)}")
    if problems:
        print("bench: wrong answers, not timing:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)


def peak_rss(argv):
    """Maximum resident set size (KiB) as /usr/bin/time -v reports it."""
    r = subprocess.run(["/usr/bin/time", "-v"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return int(m.group(1)) if m else 0


def fmt_ms(s):
    ms = s * 1000
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} MiB RAM, Linux {os.uname().release}"


def main():
    a = parse_args()
    man = json.load(open(a.manifest))
    cmds = commands(a)
    check(cmds, a, man)
    for c in cmds:  # warm-up: caches, page cache, dentries (the check
        if not c.slow:  # above has run the slow ones already)
            run_once(c.argv)
    for r in range(a.runs):
        for c in cmds:
            if c.slow and r >= a.slow_runs:
                continue
            c.times[r] = run_once(c.argv)[0]
        print(f"round {r + 1}/{a.runs} done", file=sys.stderr)
    for c in cmds:
        c.rss_kib = max(peak_rss(c.argv) for _ in range(1 if c.slow else 3))

    by_show = {c.show: c for c in cmds}
    refs = {"lsport PORT": cmds[0], "lsport -a --json": cmds[1], "lsport": cmds[2]}
    t = man["totals"]
    lines = [
        f"### {a.label}: {t['fds_in_holders']} sockets in {len(man['holders'])} holders "
        f"(`-P {man['params']['procs']} -E {man['params']['established']}`)",
        "",
        f"Machine: {machine()}; {sum(1 for d in os.listdir('/proc') if d.isdigit())} "
        f"processes on the host. {a.runs} alternating rounds "
        f"(`ss -Htanp`: {min(a.slow_runs, a.runs)}).",
        "",
        "| command | median ms | min ms | runs | x lsport (medians) | x lsport (paired) | compared with | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    result = {"label": a.label, "machine": machine(), "commands": []}
    for c in cmds:
        ref = refs[c.ref]
        times = list(c.times.values())
        med = statistics.median(times)
        paired = [c.times[r] / ref.times[r] for r in c.times if r in ref.times]
        ratio = med / statistics.median(ref.times.values())
        same = ref is c
        lines.append(
            f"| `{c.show}` | {fmt_ms(med)} | {fmt_ms(min(times))} | {len(times)} | "
            f"{'' if same else f'{ratio:.2f}'} | "
            f"{'' if same else f'{statistics.median(paired):.2f}'} | "
            f"{'' if same else '`' + ref.show + '`'} | {c.rss_kib / 1024:.1f} |")
        result["commands"].append({"command": c.show, "times": times, "median": med,
                                   "paired_ratio": statistics.median(paired),
                                   "ref": ref.show, "rss_kib": c.rss_kib})
    table = "\n".join(lines) + "\n"
    print(table)
    open(a.out + ".md", "w").write(table)
    json.dump(result, open(a.out + ".json", "w"), indent=1)


if __name__ == "__main__":
    main()
