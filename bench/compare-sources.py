#!/usr/bin/env python3
"""Compares two `lsport --json -a` documents, one from each source.

Usage: compare-sources.py NETLINK.json PROC.json [MANIFEST.json]

Sockets are compared on everything but `v6only`, which /proc cannot
show. Sockets only netlink lists must all be bound-only TCP sockets
(BOUND_INACTIVE), the one blind spot of /proc/net/tcp; /proc may list
nothing netlink does not. Prints the counts and exits 0 when that
holds, 1 otherwise.
"""

import json
import sys
from collections import Counter


def key(s):
    holders = tuple(sorted((h["pid"], h["fd"], h["command"]) for h in s["holders"]))
    return (
        s["protocol"], s["family"], s["state"], s["role"],
        s["local"]["address"], s["local"]["port"],
        s["remote"]["address"], s["remote"]["port"],
        s["uid"], s["inode"], s["risky"], holders,
    )


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    netlink_doc, proc_doc = load(sys.argv[1]), load(sys.argv[2])
    assert netlink_doc["source"] == "netlink", netlink_doc["source"]
    assert proc_doc["source"] == "proc", proc_doc["source"]
    netlink = Counter(key(s) for s in netlink_doc["sockets"])
    proc = Counter(key(s) for s in proc_doc["sockets"])
    only_netlink = netlink - proc
    only_proc = proc - netlink
    holders = lambda c: sum(len(k[-1]) * n for k, n in c.items())
    print(f"netlink: {sum(netlink.values())} sockets, {holders(netlink)} holder fds")
    print(f"proc:    {sum(proc.values())} sockets, {holders(proc)} holder fds")
    print(f"proc blind_spots: {proc_doc['blind_spots']}")
    states = Counter(k[2] for k in only_netlink.elements())
    print(f"only in netlink: {sum(only_netlink.values())} {dict(states)}")
    print(f"only in proc:    {sum(only_proc.values())}")
    if len(sys.argv) > 3:
        manifest = load(sys.argv[3])
        totals = manifest["totals"]
        print(f"manifest: fds_in_holders={totals['fds_in_holders']}, "
              f"tcp_sockets_total={totals['tcp_sockets_total']}")
    allowed = all(k[0] == "tcp" and k[2] == "BOUND_INACTIVE" for k in only_netlink)
    for k in list(only_proc)[:5]:
        print("  only in proc:", k)
    for k in [k for k in only_netlink if k[2] != "BOUND_INACTIVE"][:5]:
        print("  only in netlink:", k)
    equal = allowed and not only_proc
    print("EQUAL apart from the documented blind spot" if equal else "DIFFERENT")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
