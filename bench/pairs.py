#!/usr/bin/env python3
"""Checks and times the commands of bench/run in alternation.

Every round runs each command once, in the same order, so that a burst of
other work on the machine slows all of them alike; medians and the
per-round (paired) ratios to lsport come from those rounds. Each command
must first find the fixture's known answer, or the benchmark stops; the
commands whose answer is their exit status (`lsport -q PORT`) must give it
in every timed run too.

With --lsport-before, every lsport command also runs with a second binary
(the "before" of a change) in the same rounds, beside the one of
--lsport (the "after"); the two of a pair swap places every other round.
A second table gives paired ratios: `lsport -q PORT` to `ss -Htan 'sport =
:PORT'` (ss without -p, so neither reads any process's fds), and, with two
binaries, after to before for each lsport command.
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
    p.add_argument("--lsport-before", default=None,
                   help="a second lsport binary, timed beside --lsport in the same rounds")
    p.add_argument("--port", type=int, default=60403)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--slow-runs", type=int, default=3)
    return p.parse_args()


class Command:
    """argv, the lsport command it is compared with, and whether it is
    one of the slow full listings that run in fewer rounds. An lsport
    command has a key (which lsport command it is, whatever the binary)
    and, with two binaries, a tag ("before" or "after"). expect: the exit
    status every timed run must have (None: not checked while timing)."""

    def __init__(self, argv, ref, slow=False, show=None, key=None, tag=None,
                 expect=None):
        self.argv = argv
        self.ref = ref
        self.slow = slow
        self.show = show or " ".join(argv)
        self.key = key
        self.tag = tag
        self.expect = expect
        self.times = {}  # round -> seconds
        self.rss_kib = 0

    def cell(self):
        return f"`{self.show}`" + (f" ({self.tag})" if self.tag else "")


LP, LA, LL, LQ = "lsport PORT", "lsport -a --json", "lsport", "lsport -q PORT"
LT = "lsport -a"
PROC = ["--holders", "proc"]


def binaries(a):
    """(tag, argv prefix) of each lsport run: the binary with its holders
    from the kernel's walk where it may (auto), the same binary with
    `--holders proc`, and the binary from before. The first is the one
    compared with."""
    if a.lsport_before:
        runs = [("after", [a.lsport]), ("after, proc", [a.lsport] + PROC),
                ("before", [a.lsport_before])]
        # A before that knows --holders is timed with /proc's walk too, so
        # that each source is compared with itself.
        if "--holders" in output_of([a.lsport_before, "--help"]):
            runs.append(("before, proc", [a.lsport_before] + PROC))
        return runs
    return [(None, [a.lsport]), ("proc", [a.lsport] + PROC)]


def is_before(tag):
    return (tag or "").startswith("before")


def port_held(man):
    return bool(man["target"]["sockets"])


def commands(a, man):
    port = str(a.port)
    q_status = 0 if port_held(man) else 1
    cmds = []
    for key, args, show, expect in (
            (LP, [port], f"lsport {port}", None),
            (LA, ["-a", "--json"], "lsport -a --json > /dev/null", None),
            (LT, ["-a"], "lsport -a > /dev/null", None),
            (LL, [], "lsport", None),
            (LQ, ["-q", port], f"lsport -q {port}", q_status)):
        for tag, prefix in binaries(a):
            cmds.append(Command(prefix + args, key, show=show, key=key, tag=tag,
                                expect=expect))
    cmds += [
        Command(["ss", "-Htanp", f"sport = :{port}"], LP, show=f"ss -Htanp 'sport = :{port}'"),
        Command(["ss", "-Htan", f"sport = :{port}"], LQ, show=f"ss -Htan 'sport = :{port}'"),
        Command(["ss", "-Htanp"], LA, slow=True),
        Command(["fuser", "-n", "tcp", port], LP),
        Command(["lsof", "-nP", f"-iTCP:{port}"], LP),
    ]
    for mode, ref in (("all", LP), ("listen", LL)):
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


def free_port(man):
    """A port below the ephemeral range that no socket of the fixture has
    as its local port (connections get their client ports from inside the
    range, their server ports from listeners), confirmed free by ss."""
    low = man["kernel"]["ip_local_port_range"][0]
    used = {int(s["local"].rsplit(":", 1)[1])
            for s in man["listeners"] + man["udp"] + man["target"]["sockets"]}
    for port in range(low - 1, 1024, -1):
        if port not in used and not output_of(["ss", "-Htuan", f"sport = :{port}"]).strip():
            return port
    return None


def check_lsport(exe, tag, a, man, problems):
    """lsport (one binary, `exe` its argv prefix): the fixture's known
    answer, and the walk it says named the holders."""
    target = set(man["target"]["pids"])
    port = a.port
    name = f"lsport ({tag})" if tag else "lsport"
    from_proc = exe[-len(PROC):] == PROC
    walk = json.loads(output_of(exe + [str(port), "--json"])).get("holders_from")
    if from_proc and walk != "proc":
        problems.append(f"{name}: holders from {walk}, not proc")
    if not is_before(tag):
        print(f"bench: {name}: holders from {walk}", file=sys.stderr)

    def pids_in_json(doc):
        found = {}
        for s in doc["sockets"]:
            for h in s["holders"]:
                found.setdefault(s["inode"], set()).add(h["pid"])
        return found

    # lsport PORT: exactly the target's holders, for exactly its sockets.
    doc = json.loads(output_of(exe + [str(port), "--json"]))
    holders = {h["pid"] for s in doc["sockets"] for h in s["holders"]}
    if holders != target:
        problems.append(f"{name} {port}: holders {sorted(holders)} != {sorted(target)}")
    inodes = {s["inode"] for s in doc["sockets"] if s["state"] == "LISTEN"}
    want = {s["inode"] for s in man["target"]["sockets"] if s["state"] == "LISTEN"}
    if inodes != want:
        problems.append(f"{name} {port}: listener inodes {inodes} != {want}")
    if not all(re.search(rf"\b{p}\b", output_of(exe + [str(port)])) for p in target):
        problems.append(f"{name} {port}: table lacks a target pid")

    # lsport (listening) and lsport -a: every listener and UDP socket of
    # the fixture, each with its holder.
    known = man["listeners"] + man["udp"] + man["target"]["sockets"]
    for args in (["--json"], ["-a", "--json"]):
        found = pids_in_json(json.loads(output_of(exe + args)))
        missing = [s for s in known if s["pid"] not in found.get(s["inode"], set())]
        if missing:
            problems.append(f"{name} {' '.join(args)}: {len(missing)} "
                            f"of {len(known)} known sockets lack their holder, "
                            f"e.g. {missing[0]}")
    if len(json.loads(output_of(exe + ["-a", "--json"]))["sockets"]) < \
            man["totals"]["tcp_sockets_total"] + man["totals"]["udp"]["total"]:
        problems.append(f"{name} -a: fewer sockets than the fixture made")

    # lsport -q: the answer is the exit status alone (0: the port is held,
    # as the manifest says; 1: free), and nothing is printed. A port the
    # fixture leaves free must give 1, so that a constant 0 cannot pass.
    asked = [(port, 0 if port_held(man) else 1)]
    free = free_port(man)
    if free is None:
        problems.append("no free port below the ephemeral range to check lsport -q with")
    else:
        asked.append((free, 1))
    for p, want_status in asked:
        r = subprocess.run(exe + ["-q", str(p)], capture_output=True, text=True)
        if r.returncode != want_status:
            problems.append(f"{name} -q {p}: exit status {r.returncode}, want {want_status} "
                            f"(port {'held' if want_status == 0 else 'free'} in the fixture)")
        if r.stdout or r.stderr:
            problems.append(f"{name} -q {p}: printed {(r.stdout + r.stderr)[:80]!r}")


def ss_sockets(text):
    """(state, local, remote) of each line of `ss -Htan`; remote is None
    for listeners (ss prints a wildcard there)."""
    states = {"ESTAB": "ESTABLISHED"}
    found = []
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        state = states.get(f[0], f[0])
        found.append((state, f[3], None if state == "LISTEN" else f[4]))
    return sorted(found)


def check(cmds, a, man):
    """Every command must report the fixture's known answer."""
    target = set(man["target"]["pids"])
    problems = []
    for tag, exe in binaries(a):
        check_lsport(exe, tag, a, man, problems)

    # Everything else: each target pid named in the output; ss without -p
    # names no pid: it must list exactly the target's sockets.
    want_socks = sorted((s["state"], s["local"],
                         None if s["state"] == "LISTEN" else s.get("remote"))
                        for s in man["target"]["sockets"])
    for c in cmds:
        if c.key is not None:
            continue
        text = output_of(c.argv)
        if c.argv[:2] == ["ss", "-Htan"]:
            got = ss_sockets(text)
            if got != want_socks:
                problems.append(f"{c.show}: sockets {got} != {want_socks}")
            continue
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


def binary_info(path):
    """Size in bytes, and whether the ELF file is stripped (no .symtab)."""
    with open(path, "rb") as f:
        data = f.read()
    stripped = None
    if data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1:  # ELF64, little-endian
        shoff = int.from_bytes(data[0x28:0x30], "little")
        shentsize = int.from_bytes(data[0x3a:0x3c], "little")
        shnum = int.from_bytes(data[0x3c:0x3e], "little")
        types = [int.from_bytes(data[o + 4:o + 8], "little")
                 for o in range(shoff, shoff + shnum * shentsize, shentsize)]
        stripped = 2 not in types  # SHT_SYMTAB
    return {"path": os.path.abspath(path), "bytes": len(data), "stripped": stripped}


def round_order(cmds, r):
    """The commands of round r: the same order every round, except that
    the runs of one lsport command (kernel, proc, before) reverse their
    order every other round, so that none always follows another."""
    order = list(cmds)
    if r % 2:
        i = 0
        while i < len(order):
            j = i
            while j < len(order) and order[i].key is not None and order[j].key == order[i].key:
                j += 1
            if j - i > 1:
                order[i:j] = reversed(order[i:j])
            i = max(j, i + 1)
    return order


def ratio(num, den):
    """Median of the per-round ratios num/den, ratio of the medians, rounds."""
    rounds = [r for r in num.times if r in den.times]
    paired = statistics.median(num.times[r] / den.times[r] for r in rounds)
    of_medians = statistics.median(num.times.values()) / statistics.median(den.times.values())
    return paired, of_medians, len(rounds)


def main():
    a = parse_args()
    man = json.load(open(a.manifest))
    cmds = commands(a, man)
    check(cmds, a, man)
    for c in cmds:  # warm-up: caches, page cache, dentries (the check
        if not c.slow:  # above has run the slow ones already)
            run_once(c.argv)
    for r in range(a.runs):
        for c in round_order(cmds, r):
            if c.slow and r >= a.slow_runs:
                continue
            c.times[r], _, status = run_once(c.argv)
            if c.expect is not None and status != c.expect:
                print(f"bench: {c.cell()} exited {status} in round {r + 1}, want "
                      f"{c.expect}: wrong answer, stopping", file=sys.stderr)
                sys.exit(1)
        print(f"round {r + 1}/{a.runs} done", file=sys.stderr)
    for c in cmds:
        c.rss_kib = max(peak_rss(c.argv) for _ in range(1 if c.slow else 3))

    tags = binaries(a)
    first = tags[0][0]
    refs = {c.key: c for c in cmds if c.key is not None and c.tag == first}
    sizes = {tag: binary_info(prefix[0]) for tag, prefix in tags if prefix[-len(PROC):] != PROC}

    def size_text(info):
        strip = {True: "stripped", False: "not stripped", None: "?"}[info["stripped"]]
        return f"{info['bytes']:,} bytes ({strip})"

    if a.lsport_before:
        size_line = (f"Binary size: after {size_text(sizes['after'])}, before "
                     f"{size_text(sizes['before'])}; after/before "
                     f"{sizes['after']['bytes'] / sizes['before']['bytes']:.3f}.")
    else:
        size_line = f"Binary size: lsport {size_text(sizes[None])}."
    t = man["totals"]
    lines = [
        f"### {a.label}: {t['fds_in_holders']} sockets in {len(man['holders'])} holders "
        f"(`-P {man['params']['procs']} -E {man['params']['established']}`)",
        "",
        f"Machine: {machine()}; {sum(1 for d in os.listdir('/proc') if d.isdigit())} "
        f"processes on the host. {a.runs} alternating rounds "
        f"(`ss -Htanp`: {min(a.slow_runs, a.runs)}).",
        "",
        size_line,
        "",
        "| command | median ms | min ms | runs | x lsport (medians) | x lsport (paired) | compared with | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    result = {"label": a.label, "machine": machine(),
              "binaries": {tag or "lsport": info for tag, info in sizes.items()},
              "commands": [], "ratios": []}
    for c in cmds:
        ref = refs[c.ref]  # a before row: its after row
        times = list(c.times.values())
        med = statistics.median(times)
        paired, of_medians, _ = ratio(c, ref)
        same = ref is c
        lines.append(
            f"| {c.cell()} | {fmt_ms(med)} | {fmt_ms(min(times))} | {len(times)} | "
            f"{'' if same else f'{of_medians:.2f}'} | "
            f"{'' if same else f'{paired:.2f}'} | "
            f"{'' if same else ref.cell()} | {c.rss_kib / 1024:.1f} |")
        result["commands"].append({"command": c.show, "binary": c.tag, "argv": c.argv,
                                   "times": times, "median": med,
                                   "paired_ratio": paired,
                                   "ref": ref.show, "ref_binary": ref.tag,
                                   "rss_kib": c.rss_kib})

    # Paired ratios: lsport -q to ss without -p (per binary), and after to
    # before for each lsport command.
    ss_q = next(c for c in cmds if c.argv[:2] == ["ss", "-Htan"])
    ss_p = next(c for c in cmds if c.argv == ["ss", "-Htanp"])
    floor_all = next(c for c in cmds if c.show == f"floor {a.port} all")
    floor_all2 = next(c for c in cmds if c.show == f"floor {a.port} all -j2")
    floor_listen = next(c for c in cmds if c.show == f"floor {a.port} listen")
    pairs = [(c, ss_q, "≤ 1.2") for c in cmds if c.key == LQ]
    # The targets of the kernel's walk, for each source of the binary
    # measured (the kernel's walk where it may, and --holders proc).
    own = [c for c in cmds if c.key is not None and not is_before(c.tag)]
    for c in own:
        proc = c.tag is not None and "proc" in c.tag
        if c.key == LP:
            pairs += [(c, ss_q, "≤ 2"), (c, floor_all, "" if proc else "≤ 0.3 (large)"),
                      (c, floor_all2, "")]
        elif c.key == LA:
            pairs.append((c, ss_p, "" if proc else "≤ 0.025 (40x faster)"))
        elif c.key == LL:
            pairs.append((c, floor_listen, "≤ 1.1 (medium)" if proc else "≤ 0.5 (medium)"))
        elif c.key == LT:
            json_row = next(j for j in own if j.key == LA and j.tag == c.tag)
            pairs.append((c, json_row, "≤ 1"))
    if a.lsport_before:
        before = {(c.key, c.tag): c for c in cmds if is_before(c.tag)}
        for c in own:
            proc = "proc" in c.tag
            # After's /proc walk against before's, where before has one.
            den = before.get((c.key, "before, proc" if proc else "before"), before[(c.key, "before")])
            pairs.append((c, den, "≤ 1 (no capabilities)" if proc else ""))
    lines += [
        "",
        "Paired ratios (median of the per-round ratios; ratio of the medians beside it):",
        "",
        "| ratio | paired | of medians | rounds | peak RSS ratio | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for num, den, target in pairs:
        paired, of_medians, n = ratio(num, den)
        if num.key == den.key:  # one lsport command, two runs
            name = f"`{num.show}`: {num.tag} / {den.tag}"
        else:
            name = f"{num.cell()} / {den.cell()}"
        rss = num.rss_kib / den.rss_kib if den.rss_kib else float("nan")
        lines.append(f"| {name} | {paired:.2f} | {of_medians:.2f} | {n} | {rss:.2f} | {target} |")
        result["ratios"].append({"num": num.show, "num_binary": num.tag,
                                 "den": den.show, "den_binary": den.tag,
                                 "paired": paired, "of_medians": of_medians, "rounds": n,
                                 "rss_ratio": rss, "target": target or None})
    table = "\n".join(lines) + "\n"
    print(table)
    open(a.out + ".md", "w").write(table)
    json.dump(result, open(a.out + ".json", "w"), indent=1)


if __name__ == "__main__":
    main()
