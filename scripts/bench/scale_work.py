"""The busy half of scripts/bench/scale.sh, after the idle figures (standard library only):
1,000 commits through every runner, 20 kills of the leader, 10 kills of clients that run
jobs. Each returns table rows; the nodes are reached on 127.0.0.1 only.

A killed leader is started again on its data dir with its own command line (as systemd
would), and the cluster is given back its five servers before the next kill; the
restarted processes are stopped when the probe ends. Killed clients stay down.
"""

import atexit
import os
import random
import signal
import statistics
import subprocess
import time

from benchlib import FINAL, CpuMeter, Eventide, fail, local, request, say, spread, wait_for
from pipeline_probe import fast_import_branches, git

EVENTIDE = Eventide()
STARTED = []  # processes this module started (restarted nodes), stopped at exit


@atexit.register
def _stop_started():
    for process in STARTED:
        if process.poll() is None:
            process.terminate()
    for process in STARTED:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def roles_of(doc):
    """{node id: role} of the live nodes in a status document."""
    return {n["id"]: n.get("role") or n["raft"] for n in doc["nodes"] if n["alive"]}


def status(port, timeout=2.0):
    try:
        return EVENTIDE.raw_status(port, timeout=timeout)
    except (OSError, ValueError):
        return None


def healthy(port, servers):
    """The status doc when `port` answers with a leader and `servers` live servers."""
    doc = status(port)
    if not doc or not doc.get("leader"):
        return None
    roles = roles_of(doc)
    serving = sum(1 for r in roles.values() if r in ("leader", "voter", "standby"))
    return doc if serving == servers else None


def settled(ports, servers):
    """The status doc of a random node once the cluster has `servers` live servers and
    every one of them answers with the same leader and within 5 entries of the others:
    a server that was just restarted has caught up (killing the leader while it has not
    would time a recovery from two failures, not one)."""
    doc = healthy(random.choice(ports), servers)
    if not doc:
        return None
    addrs = [n["addr"] for n in doc["nodes"]
             if n["alive"] and (n.get("role") or n["raft"]) in ("leader", "voter", "standby")]
    views = [status(int(addr.rsplit(":", 1)[1])) for addr in addrs]
    if None in views:
        return None
    leaders = {(view.get("leader") or {}).get("id") for view in views}
    indexes = [view.get("applied_index", 0) for view in views]
    if leaders != {doc["leader"]["id"]} or max(indexes) - min(indexes) > 5:
        return None
    return doc


def add_repo(port, repo, deadline):
    def added():
        code, _ = request("POST", local(port, "/api/v1/repos"), {"url": repo}, timeout=10.0)
        return code in (201, 409) or None
    wait_for(f"the repository added through :{port}", added, deadline, 0.5)
    sha = git(repo, "rev-parse", "HEAD").strip()
    wait_for(f"the head commit {sha[:10]} tested", lambda: EVENTIDE.result(port, sha),
             deadline, 0.2)


def throughput(port, repo, deadline, pid_of):
    """1,000 commits on 10 new branches in one push and one notify -> all final, with
    where the machine's CPU went meanwhile: the leader, the other servers, the clients
    and the processes the nodes started (git, the jobs)."""
    staged = fast_import_branches(repo, 0, 10, 100)
    wanted = {sha for shas in staged.values() for sha in shas}
    doc = EVENTIDE.raw_status(port)
    before = doc["queue"]
    index_before = doc.get("applied_index", 0)
    role_of_pid = {pid_of.get(int(n["addr"].rsplit(":", 1)[1])): n.get("role") or n["raft"]
                   for n in doc["nodes"] if n["alive"]}
    pids = list(pid_of.values())
    transaction = "start\n" + "".join(
        f"create refs/heads/scale-b{ref.rsplit('/b', 1)[1]} {shas[-1]}\n"
        for ref, shas in staged.items()) + "commit\n"
    profile = os.environ.get("PROFILE_BURST")
    profiler = None
    if profile:
        # The whole machine's stacks during the burst, for `perf report -i PROFILE_BURST`.
        profiler = subprocess.Popen(["perf", "record", "-F", "999", "-a", "-g", "-o", profile],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # perf's own start, before the burst it is to see
    meter = CpuMeter(pids)
    meter.start()
    start = time.monotonic()
    start_wall = time.time()
    git(repo, "update-ref", "--stdin", stdin=transaction)
    EVENTIDE.notify(port, timeout=5.0)

    def done():
        queue = EVENTIDE.raw_status(port, timeout=5.0)["queue"]
        finished = queue["finished"] - before["finished"]
        return (finished >= len(wanted) and queue["queued"] == 0 and queue["running"] == 0) \
            or None
    wait_for(f"{len(wanted)} results", done, deadline, 0.2)
    noticed = time.monotonic() - start
    cpu = meter.stop()
    entries = EVENTIDE.raw_status(port, timeout=5.0).get("applied_index", 0) - index_before
    if profiler:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
    jobs = EVENTIDE.jobs(port, 1000, timeout=20.0)
    mine = [job for job in jobs if job["commit"] in wanted]
    runners = {job["runner"] for job in mine}
    passed = sum(1 for job in mine if job["state"] == "passed")
    if passed != len(wanted):
        fail(f"expected {len(wanted)} passed jobs, found {passed} of {len(mine)}")
    # Until the last result, by the runners' own clocks (this machine's): the poll above
    # notices it up to a poll later, a tenth of a burst this short.
    seconds = max(job["finished_at"] for job in mine) / 1000.0 - start_wall
    if not 0 < seconds <= noticed:
        fail(f"the last result's time is {seconds:.3f} s after the push, noticed at {noticed:.3f} s")
    timeline = ", ".join(f"{word} {moments(mine, key, start_wall)}" for word, key in
                         (("queued", "created_at"), ("started", "started_at"),
                          ("ended", "finished_at")))
    by_role = {}
    for pid, used in cpu["by_pid_s"].items():
        role = role_of_pid.get(pid, "client")
        role = "server" if role in ("voter", "standby") else role
        by_role[role] = by_role.get(role, 0.0) + used
    split = ", ".join(f"{role} {by_role.get(role, 0.0):.1f} s"
                      for role in ("leader", "server", "client"))
    say(f"  1,000 commits: {seconds:.2f} s to the last result (noticed at {noticed:.2f} s), "
        f"{len(runners)} distinct runners; CPU until noticed: nodes "
        f"{cpu['node_cpu_s']:.1f} s ({split}), their children (git, jobs) "
        f"{cpu['child_cpu_s']:.1f} s, anything else {cpu['other_cpu_s']:.1f} s, machine "
        f"{cpu['machine_busy_pct']:.0f}% busy")
    say(f"  after the push (s, first / median / last job): {timeline}")
    say(f"  Raft entries applied meanwhile: {entries} ({entries / len(wanted):.2f} a job)")
    return [["1,000 commits of `true` through every runner",
             f"{len(wanted) / seconds:.0f} jobs/s ({seconds:.1f} s, {len(runners)} runners)"],
            ["  jobs queued, started, ended (s after the push, first / median / last)",
             timeline],
            ["  CPU meanwhile: nodes (the leader, the other servers, the clients) / their git "
             "and job processes",
             f"{cpu['node_cpu_s']:.1f} s ({split}) / {cpu['child_cpu_s']:.1f} s "
             f"(machine {cpu['machine_busy_pct']:.0f}% busy)"]]


def moments(jobs, key, since):
    """`first / median / last` of the jobs' time stamp `key` (ms), in seconds after
    `since`: whether the observer queued the commits ahead of the runners."""
    values = sorted(job[key] / 1000.0 - since for job in jobs if job.get(key) is not None)
    if not values:
        return "-"
    return f"{values[0]:.2f} / {statistics.median(values):.2f} / {values[-1]:.2f}"


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as text:
        return [part.decode() for part in text.read().split(b"\0") if part]


def leader_kills(ports, pid_of, kills, deadline):
    """kill -9 of the leader `kills` times: seconds until the nodes asked agree on
    another leader. The victim is started again and the servers restored and caught up
    each time."""
    seconds = []
    if kills <= 0:
        return []
    for kill in range(kills):
        doc = wait_for("a settled cluster before the kill", lambda: settled(ports, 5),
                       deadline, 0.2)
        leader_port = int(doc["leader"]["addr"].rsplit(":", 1)[1])
        victim = pid_of[leader_port]
        command = cmdline(victim)
        log = open(os.path.join(os.path.dirname(command[command.index("--data-dir") + 1]),
                                "node.log"), "ab")
        others = [p for p in ports if p != leader_port]
        asked = random.sample(others, min(5, len(others)))
        old = doc["leader"]["id"]
        start = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        def new_leader():
            ids = []
            for port in asked:
                view = status(port, timeout=1.0)
                ids.append(view["leader"]["id"] if view and view.get("leader") else None)
            return (None not in ids and len(set(ids)) == 1 and ids[0] != old) or None
        wait_for(f"a new leader after kill {kill + 1}", new_leader, deadline, 0.02)
        seconds.append(time.monotonic() - start)
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        STARTED.append(process)
        pid_of[leader_port] = process.pid
        say(f"  leader kill {kill + 1:2d}: new leader in {seconds[-1]:.3f} s")
    text, _ = spread(seconds, fmt=lambda v: f"{v:.3f}")
    return [[f"kill -9 of the leader -> new leader ({kills} kills, s, min / median / max)",
             text]]


def client_kills(port, ports, pid_of, repo, kills, deadline):
    """3 x `kills` jobs of `sleep 8`; kill -9 of `kills` clients running one: seconds
    until each of their jobs runs (or ended) on another runner."""
    if kills <= 0:
        return []
    with open(os.path.join(repo, ".eventide.toml"), "w") as config:
        config.write('[test]\ncommand = "sleep 8"\n')
    git(repo, "commit", "-q", "-a", "-m", "sleep 8")
    staged = fast_import_branches(repo, 1, 1, 3 * kills)
    shas = set(next(iter(staged.values())))
    git(repo, "update-ref", "refs/heads/scale-sleep", next(iter(staged.values()))[-1])
    EVENTIDE.notify(port, timeout=5.0)

    def running_on_clients():
        doc = status(port)
        if not doc:
            return None
        roles = roles_of(doc)
        addr = {n["id"]: int(n["addr"].rsplit(":", 1)[1]) for n in doc["nodes"]}
        jobs = EVENTIDE.jobs(port, 200, timeout=5.0)
        mine = [j for j in jobs if j["commit"] in shas and j["state"] == "running"
                and roles.get(j["runner"]) == "client" and addr.get(j["runner"]) in pid_of]
        by_runner = {}
        for job in mine:
            by_runner.setdefault(job["runner"], job)
        return list(by_runner.values())[:kills] if len(by_runner) >= kills else None
    jobs = wait_for(f"{kills} clients running a job", running_on_clients, deadline, 0.2)
    doc = status(port)
    addr = {n["id"]: int(n["addr"].rsplit(":", 1)[1]) for n in doc["nodes"]}
    start = time.monotonic()
    for job in jobs:
        os.kill(pid_of[addr[job["runner"]]], signal.SIGKILL)
    victims = {job["runner"] for job in jobs}
    alive_ports = [p for p in ports if p not in {addr[v] for v in victims}]
    seconds = {}

    def moved():
        for job in jobs:
            if job["id"] in seconds:
                continue
            try:
                now = EVENTIDE.job(random.choice(alive_ports), job["id"], timeout=2.0)
            except (OSError, ValueError):
                continue
            elsewhere = now["attempt"] > job["attempt"] and now["runner"] not in victims \
                and (now["state"] == "running" or now["state"] in FINAL)
            if elsewhere:
                seconds[job["id"]] = time.monotonic() - start
        return len(seconds) == len(jobs) or None
    wait_for("every killed client's job running elsewhere", moved, deadline, 0.05)
    say(f"  client kills: jobs elsewhere after {sorted(round(s, 2) for s in seconds.values())}")
    text, _ = spread(list(seconds.values()), fmt=lambda v: f"{v:.2f}")
    return [[f"kill -9 of {kills} clients mid-job -> their jobs running elsewhere (s)", text]]
