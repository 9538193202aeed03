#!/usr/bin/env python3
"""The measuring half of scripts/bench/scale.sh (standard library only).

  scale_probe.py --started T --ports P,... --pids PID,... --idle S --deadline S --mode M

Polls every node's GET /api/v1/status until each lists every node alive (and, for a
cluster, until each answers with a leader and its own role, and the roles add up to one
leader and --servers servers, the rest clients; after --deadline it says how many do and
measures anyway), waits for every client's gossip to move to the client pace (a client
does once it has been one for 10 s), then reads every node's RSS and measures the CPU
time the nodes use over --idle seconds.
"""

import argparse
import os
import time

from benchlib import (OPENER, CpuMeter, Eventide, fail, local, machine, render_table, say,
                      spread, storage)

EVENTIDE = Eventide()


def views(ports):
    """Each answering node's status document, by port."""
    out = {}
    for port in ports:
        try:
            out[port] = EVENTIDE.raw_status(port, timeout=2.0)
        except (OSError, ValueError):
            pass
    return out


ROLE_OF_RAFT = {"leader": "leader", "voter": "voter", "learner": "standby", "none": "client"}


def own_role(doc):
    """The answering node's role, or None while it has no leader."""
    if doc.get("leader") is None:
        return None
    me = next((n for n in doc["nodes"] if n["id"] == doc["node"]["id"]), None)
    if me is None:
        return None
    return me.get("role") or ROLE_OF_RAFT.get(me["raft"])


def settle(ports, started, deadline, want_roles, servers):
    """Seconds from `started` until all see all alive, and until all have a role."""
    alive_at = role_at = None
    end = time.monotonic() + deadline
    last = ""
    while time.monotonic() < end:
        seen = views(ports)
        now = time.time() - started
        everyone = len(seen) == len(ports) and all(
            sum(1 for n in doc["nodes"] if n["alive"]) >= len(ports) for doc in seen.values())
        if everyone and alive_at is None:
            alive_at = now
        roles = {port: own_role(doc) for port, doc in seen.items()}
        with_role = sum(1 for r in roles.values() if r is not None)
        leaders = sum(1 for r in roles.values() if r == "leader")
        serving = sum(1 for r in roles.values() if r in ("leader", "voter", "standby"))
        last = (f"{len(seen)} of {len(ports)} answer, "
                f"{sum(1 for d in seen.values() if sum(n['alive'] for n in d['nodes']) >= len(ports))}"
                f" see all alive, {with_role} have a leader and a role"
                f" ({leaders} leader, {serving} servers)")
        settled = len(seen) == len(ports) and (
            not want_roles or (with_role == len(ports) and leaders == 1
                               and serving == min(servers, len(ports))))
        if everyone and settled and role_at is None:
            role_at = now
        if alive_at is not None and role_at is not None:
            return alive_at, role_at, roles
        time.sleep(0.2)
    say(f"after {deadline} s: {last}")
    return alive_at, role_at, roles


def gossip_tick(port):
    """The node's eventide_gossip_tick_seconds, or None (no answer, or a binary without it)."""
    try:
        with OPENER.open(local(port, "/metrics"), timeout=2.0) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("eventide_gossip_tick_seconds "):
            return float(line.split()[1])
    return None


def settle_ticks(ports, roles, deadline):
    """Seconds until every client's gossip ticks at the client pace (a client moves to it
    once settled), or None when the nodes do not report their tick."""
    clients = [port for port in ports if roles.get(port) in (None, "client")]
    servers = [port for port in ports if port not in clients]
    fast = next((t for t in map(gossip_tick, servers[:1]) if t is not None), None)
    if fast is None or not clients:
        return None
    start = time.monotonic()
    waiting = clients
    while waiting and time.monotonic() - start < deadline:
        waiting = [port for port in waiting if (gossip_tick(port) or 0) <= fast]
        if waiting:
            time.sleep(0.5)
    if waiting:
        say(f"after {deadline} s, {len(waiting)} clients still tick every {fast} s")
    return time.monotonic() - start


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def rss_mib(pid, field="VmRSS"):
    """`field` of /proc/PID/status in MiB: VmRSS, or RssAnon (the node's own memory; the
    rest of its RSS is mostly the binary's pages, shared by every node of the machine)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--started", type=float, required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--pids", required=True)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--deadline", type=float, default=180)
    parser.add_argument("--mode", default="cluster")
    parser.add_argument("--repo", help="a repository of `true` jobs: measure work too")
    parser.add_argument("--leader-kills", type=int, default=20)
    parser.add_argument("--client-kills", type=int, default=10)
    parser.add_argument("--data", help="the directory holding the nodes' data dirs")
    parser.add_argument("--servers", type=int, default=5,
                        help="voters + standbys the cluster should settle on")
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    pids = [int(p) for p in args.pids.split(",")]
    say(machine())
    if args.data:
        say(storage(args.data))
    say(f"{len(ports)} nodes ({args.mode}), each seeded with the first three")
    alive_at, role_at, roles = settle(ports, args.started, args.deadline, args.mode == "cluster",
                                     args.servers)
    rows = [["all alive in every node's gossip", "timeout" if alive_at is None
             else f"{alive_at:.1f} s after the last start"]]
    if args.mode == "cluster":
        counts = {}
        for role in (roles or {}).values():
            role = role or "no leader"
            counts[role] = counts.get(role, 0) + 1
        text = ", ".join(f"{n} {role}" for role, n in sorted(counts.items()))
        when = "timeout" if role_at is None else f"{role_at:.1f} s"
        rows.append(["every node has a leader and its role", f"{when} ({text})"])
    if alive_at is None:
        render_table(["figure", "value"], rows)
        fail("the nodes did not all see each other")
    if args.mode == "cluster" and roles:
        paced = settle_ticks(ports, roles, 60)
        if paced is not None:
            rows.append(["every client's gossip at the client pace", f"{paced:.1f} s later"])
    time.sleep(2)
    rss, _ = spread([rss_mib(pid) for pid in pids], fmt=lambda v: f"{v:.1f}")
    rows.append(["RSS per node (MiB, min / median / max)", rss])
    anon, _ = spread([rss_mib(pid, "RssAnon") for pid in pids], fmt=lambda v: f"{v:.1f}")
    rows.append(["  of which its own (anonymous; the rest is the shared binary)", anon])
    meter = CpuMeter(pids)
    first = {pid: cpu_ticks(pid) for pid in pids}
    meter.start()
    time.sleep(args.idle)
    cpu = meter.stop()
    spent = {pid: cpu_ticks(pid) - first[pid] for pid in pids}
    tick = os.sysconf("SC_CLK_TCK")
    core_pct = 100 * cpu["node_cpu_s"] / cpu["wall_s"]
    rows.append([f"idle CPU over {cpu['wall_s']:.0f} s, all nodes",
                 f"{core_pct:.1f}% of one core ({core_pct / len(pids):.2f}% per node)"])
    per_node = sorted(100 * spent[pid] / tick / cpu["wall_s"] for pid in pids)
    text, _ = spread(per_node, fmt=lambda v: f"{v:.2f}")
    rows.append(["idle CPU per node (% of one core, min / median / max)", text])
    if args.mode == "cluster" and roles:
        by_role = {}
        for port, pid in zip(ports, pids):
            kind = "clients" if roles.get(port) in (None, "client") else "servers"
            by_role.setdefault(kind, []).append(100 * spent[pid] / tick / cpu["wall_s"])
        text = ", ".join(f"{kind} {sum(v):.1f}% ({len(v)} nodes, {sum(v) / len(v):.2f}% each)"
                         for kind, v in sorted(by_role.items(), reverse=True))
        rows.append(["idle CPU by role (% of one core)", text])
    if args.repo and args.mode == "cluster":
        render_table(["figure", "value"], rows)
        rows += work(args, ports, pids)
    render_table(["figure", "value"], rows)


def work(args, ports, pids):
    """The busy figures, asked through a client (the last node)."""
    import scale_work
    port = ports[-1]
    pid_of = dict(zip(ports, pids))
    say(f"work through the client on :{port}")
    scale_work.add_repo(port, args.repo, args.deadline)
    rows = scale_work.throughput(port, args.repo, args.deadline, pid_of)
    rows += scale_work.leader_kills(ports, pid_of, args.leader_kills, args.deadline)
    rows += scale_work.client_kills(port, ports, pid_of, args.repo, args.client_kills,
                                    args.deadline)
    return rows


if __name__ == "__main__":
    main()
