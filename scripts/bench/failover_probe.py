#!/usr/bin/env python3
"""The measuring half of scripts/bench/failover.sh (standard library only).

The shell script starts and restarts the processes; this helper only talks HTTP to
127.0.0.1, kills the one leader PID it is handed, and keeps the clock, so that polling
costs a request rather than a process per sample.

  failover_probe.py ports N                      N distinct free TCP+UDP ports
  failover_probe.py wait  --system S --ports A,B,C --deadline SEC
                                                 healthy cluster; prints the leader's port
  failover_probe.py trial --system S --ports A,B,C --victim PORT --pid PID --trial K ...
                                                 kill -9 the leader, time the recovery
  failover_probe.py report --eventide FILE [--etcd LABEL=FILE ...]

S is `eventide` (GET /api/v1/status, POST /api/v1/repos) or `etcd` (the v3 JSON
gateway: POST /v3/maintenance/status, POST /v3/kv/put). Both go through the same trial
code: after the kill, every surviving member's status is read every POLL seconds, and a
new write is sent every POLL seconds, alternating the survivors, until one succeeds.
Only requests sent after the kill count; a time is taken when a response arrives.
"""

import argparse
import statistics
import threading
import time

from benchlib import (Etcd, Eventide, append, fail, free_ports, is_our_process, load_rows,
                      render_table, spread)

POLL = 0.01  # seconds between two status reads of one survivor, and between two writes
WRITE_TIMEOUT = 2.0  # client timeout of one write; later writes keep being sent meanwhile
MAX_WRITES_IN_FLIGHT = 200


def system_for(args):
    if args.system == "etcd":
        return Etcd()
    if not args.url_dir:
        fail("--url-dir is needed for eventide: every write adds a repository made there")
    return Eventide(args.url_dir)


def wait(args):
    system = system_for(args)
    ports = [int(p) for p in args.ports.split(",")]
    end = time.monotonic() + args.deadline
    last = "no answer yet"
    while time.monotonic() < end:
        try:
            leader = system.ready(ports)
            if leader is not None:
                ok, code = system.submit(ports[0], f"health-{time.time_ns()}", 5.0)
                if ok:
                    time.sleep(args.settle)
                    if system.ready(ports) == leader:
                        print(leader)
                        return
                last = f"health write answered {code}"
            else:
                last = "members disagree on the leader or do not all see each other alive"
        except (OSError, KeyError, ValueError) as error:
            last = str(error)
        time.sleep(0.05)
    fail(f"{system.name} cluster on ports {args.ports} not healthy within {args.deadline:.0f} s "
         f"({last})")


def trial(args):
    system = system_for(args)
    ports = [int(p) for p in args.ports.split(",")]
    survivors = [p for p in ports if p != args.victim]
    if not is_our_process(args.pid, f":{args.victim}"):
        fail(f"pid {args.pid} is not the member listening on port {args.victim}")
    try:
        before = system.status(args.victim, 1.0)
    except OSError as error:
        fail(f"member on port {args.victim} does not answer: {error}", 3)
    if before.leader != before.me:
        fail(f"member on port {args.victim} is no longer the leader", 3)
    old = before.me
    watch_dead = system.gossip

    lock = threading.Lock()
    stop = threading.Event()
    new_leader = {}  # survivor port -> (seconds after kill, leader id, term)
    dead_seen = {}  # survivor port -> seconds after kill
    first_write = []  # [(seconds after kill, survivor port)]
    failures = {}  # answer to a failed write -> count
    in_flight = [0]

    def poll_status(port):
        while not stop.is_set():
            try:
                view = system.status(port, 0.5)
            except (OSError, KeyError, ValueError):
                time.sleep(POLL)
                continue
            at = time.monotonic() - killed_at
            with lock:
                if port not in new_leader and view.leader not in (None, old):
                    new_leader[port] = (at, view.leader, view.term)
                if watch_dead and port not in dead_seen and old in view.dead:
                    dead_seen[port] = at
                if port in new_leader and (port in dead_seen or not watch_dead):
                    return
            time.sleep(POLL)

    def one_write(port, number):
        try:
            ok, code = system.submit(port, f"{system.name}-t{args.trial:03d}-w{number:05d}",
                                     WRITE_TIMEOUT)
        except OSError as error:
            ok, code = False, type(getattr(error, "reason", error)).__name__
        at = time.monotonic() - killed_at
        with lock:
            in_flight[0] -= 1
            if ok and not first_write:
                first_write.append((at, port))
            elif not ok:
                failures[str(code)] = failures.get(str(code), 0) + 1

    def send_writes():
        number = 0
        while not stop.is_set():
            with lock:
                if first_write:
                    return
                room = in_flight[0] < MAX_WRITES_IN_FLIGHT
                if room:
                    in_flight[0] += 1
            if room:
                port = survivors[number % len(survivors)]
                threading.Thread(target=one_write, args=(port, number), daemon=True).start()
                number += 1
            time.sleep(POLL)

    if not system.stop_member(args.pid, f":{args.victim}"):
        fail(f"pid {args.pid} is not the member listening on port {args.victim}")
    killed_at = time.monotonic()
    threads = [threading.Thread(target=send_writes, daemon=True)]
    threads += [threading.Thread(target=poll_status, args=(p,), daemon=True) for p in survivors]
    for thread in threads:
        thread.start()
    end = killed_at + args.deadline
    while time.monotonic() < end:
        with lock:
            done = (first_write and len(new_leader) == len(survivors)
                    and (not watch_dead or len(dead_seen) == len(survivors)))
        if done:
            break
        time.sleep(POLL)
    stop.set()
    with lock:
        ms = lambda seconds: None if seconds is None else round(seconds * 1000, 1)
        leaders = sorted(new_leader.values())
        both = len(new_leader) == len(survivors)
        result = {
            "system": system.name, "label": args.label, "trial": args.trial,
            "killed_port": args.victim, "old_term": before.term,
            "new_leader": leaders[0][1] if leaders else None,
            "new_term": leaders[0][2] if leaders else None,
            "leader_first_ms": ms(leaders[0][0]) if leaders else None,
            "leader_all_ms": ms(leaders[-1][0]) if both else None,
            "write_ms": ms(first_write[0][0]) if first_write else None,
            "dead_first_ms": ms(min(dead_seen.values())) if dead_seen else None,
            "dead_all_ms": ms(max(dead_seen.values()))
            if len(dead_seen) == len(survivors) else None,
            "failed_writes": dict(failures),
        }
    append(args.out, result)
    show = lambda value: "timeout" if value is None else f"{value:.0f}"
    line = (f"  {args.label:<14} trial {args.trial:2d}: killed :{args.victim}, term "
            f"{before.term}->{result['new_term']}; new leader {show(result['leader_first_ms'])}"
            f"/{show(result['leader_all_ms'])} ms (first/both survivors), first write "
            f"{show(result['write_ms'])} ms")
    if watch_dead:
        line += (f", gossip dead {show(result['dead_first_ms'])}/"
                 f"{show(result['dead_all_ms'])} ms")
    if failures:
        line += f"; failed writes {dict(sorted(failures.items()))}"
    print(line, flush=True)


METRICS = [
    ("leader_first_ms", "kill -> new leader, first survivor's status"),
    ("leader_all_ms", "kill -> new leader, both survivors' status"),
    ("write_ms", "kill -> first write committed via a survivor"),
    ("dead_all_ms", "kill -> victim alive:false on every survivor"),
]


def report(args):
    columns = [("eventide", load_rows(args.eventide))]
    for item in args.etcd or []:
        label, path = item.split("=", 1)
        columns.append((label, load_rows(path)))
    column = lambda rows, key: spread([row.get(key) for row in rows], timeouts=True)
    headers = ["metric (ms)"] + [f"{label} min / median / max" for label, _ in columns]
    table = []
    for key, title in METRICS:
        cells = []
        for label, rows in columns:
            if key.startswith("dead") and label != "eventide":
                cells.append("n/a (no gossip)")
            else:
                cells.append(column(rows, key)[0])
        table.append([title] + cells)
    table.append(["trials"] + [str(len(rows)) for _, rows in columns])
    render_table(headers, table)

    rows = columns[0][1]
    print("\nTargets (eventide)")
    verdicts = []
    for key, title in [("write_ms", "failover, kill -> first write"),
                       ("leader_first_ms", "failover, kill -> new leader")]:
        _, values = column(rows, key)
        timeouts = sum(1 for row in rows if row.get(key) is None)
        if not values:
            print(f"  {title}: no successful trial")
            verdicts.append(False)
            continue
        median, worst = statistics.median(values), max(values)
        median_ok, max_ok = median <= 500, worst <= 1000 and not timeouts
        verdicts += [median_ok, max_ok]
        worst_text = f"{worst:.0f} ms" + (f" + {timeouts} timeouts" if timeouts else "")
        print(f"  {title}: median {median:.0f} ms (target <= 500: "
              f"{'met' if median_ok else 'MISSED'}), max {worst_text} (target <= 1000: "
              f"{'met' if max_ok else 'MISSED'})")
    _, dead = column(rows, "dead_all_ms")
    if dead:
        median = statistics.median(dead)
        print(f"  gossip dead-detection, every survivor: median {median:.0f} ms vs serf "
              f"5830 ms median (reference figure, 5 agents, LAN profile; not re-run here): "
              f"{'faster' if median < 5830 else 'SLOWER'}")
    else:
        print("  gossip dead-detection: no successful trial")
    print("  overall: " + ("all failover targets met" if all(verdicts)
                           else "failover targets MISSED (see above)"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ports = commands.add_parser("ports")
    ports.add_argument("count", type=int)
    for name in ("wait", "trial"):
        command = commands.add_parser(name)
        command.add_argument("--system", choices=["eventide", "etcd"], required=True)
        command.add_argument("--ports", required=True, help="client/API ports, comma-separated")
        command.add_argument("--deadline", type=float, required=True, help="seconds")
        command.add_argument("--url-dir", help="eventide: the directory repo urls are made in")
    commands.choices["wait"].add_argument("--settle", type=float, default=1.0)
    trial_args = commands.choices["trial"]
    trial_args.add_argument("--victim", type=int, required=True)
    trial_args.add_argument("--pid", type=int, required=True)
    trial_args.add_argument("--trial", type=int, required=True)
    trial_args.add_argument("--label", required=True)
    trial_args.add_argument("--out", required=True)
    summary = commands.add_parser("report")
    summary.add_argument("--eventide", required=True)
    summary.add_argument("--etcd", action="append", help="LABEL=FILE, repeatable")
    args = parser.parse_args()
    if args.command == "ports":
        print(" ".join(str(p) for p in free_ports(args.count)))
    elif args.command == "wait":
        wait(args)
    elif args.command == "trial":
        trial(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
