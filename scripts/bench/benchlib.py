#!/usr/bin/env python3
"""What the benchmark probes share (standard library only).

  ports, CpuMeter, machine   loopback ports, CPU accounting, the machine line
  storage                    the file system the nodes' data dirs are on
  request, get_json          JSON over HTTP to 127.0.0.1, never through a proxy
  wait_for, fail, say        bounded waits whose failure names what was awaited
  append, load_rows, spread  one JSON object per trial; min / median / max
  is_our_process             a PID is checked before it is signalled
  git, commit_counter        git as the benchmarks' author; a commit of counter.txt
  System                     the peers compared: Eventide, Etcd, Buildbot

The shell scripts start the processes and record their PIDs; a probe only talks HTTP,
kills a PID it is handed once it has checked that it is one of ours, and keeps the clock.

  benchlib.py ports N        N distinct free TCP+UDP ports on 127.0.0.1
  benchlib.py machine        the machine line the benchmarks print first
  benchlib.py storage PATH   the file system holding PATH, as the scale benchmark prints it
"""

import base64
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# Never route loopback traffic through a proxy named in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PROGRAM = os.path.splitext(os.path.basename(sys.argv[0]))[0]
# Errors a poll treats as "not yet": no answer, an unexpected or partial document.
NOT_YET = (OSError, KeyError, ValueError, TypeError)


# --- the machine ----------------------------------------------------------------------

def free_ports(count):
    """Ports free for both TCP and UDP on 127.0.0.1 (an Eventide node listens on both)."""
    held, ports = [], []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held += [tcp, udp]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def machine():
    """'machine: N CPUs, model, M GiB memory, Linux release', as `nproc`, /proc and
    `uname -r` say."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return (f"machine: {len(os.sched_getaffinity(0))} CPUs, {model}, {kib / 1048576:.1f} GiB "
            f"memory, Linux {platform.release()}")


def storage(path):
    """'data dirs: FSTYPE at MOUNTPOINT (SOURCE...)' for the file system holding `path`:
    what a node's workspaces, logs and Raft log are written to. For ext4 it says whether
    the file system has a journal (without one, the kernel skips inodes freed in the last
    30 s when it allocates one, which makes files dearer the more were just deleted) and
    whether it is mounted with `discard`."""
    try:
        device = os.stat(path).st_dev
    except OSError as error:
        return f"data dirs: {path} ({error.strerror})"
    real = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            major, minor = (int(part) for part in fields[2].split(":"))
            target = fields[4]
            inside = real == target or real.startswith(target.rstrip("/") + "/")
            if os.makedev(major, minor) != device or not inside:
                continue
            if found is not None and len(found[0]) > len(target):
                continue
            dash = fields.index("-")
            # The mount's own options, then the file system's (after the separator).
            options = fields[5].split(",") + fields[dash + 3].split(",")
            found = (target, options, fields[dash + 1], fields[dash + 2])
    if found is None:
        return f"data dirs: {path} (file system not found in /proc/self/mountinfo)"
    target, options, fstype, source = found
    notes = [source]
    if fstype == "ext4":
        name = os.path.basename(source)
        journal = any(entry.startswith(f"{name}-") for entry in _listdir("/proc/fs/jbd2"))
        notes.append("journal" if journal else "no journal")
    if "discard" in options:
        notes.append("discard")
    return f"data dirs: {fstype} at {target} ({'; '.join(notes)})"


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


class CpuMeter:
    """CPU time used between start() and stop(): by the given processes (their own time,
    and that of the children they reaped) and by the whole machine, to tell a CPU-bound
    run from one that waits."""

    def __init__(self, pids):
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")
        self.first = None

    def sample(self):
        own = children = 0
        self.last_by_pid = {}
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            own += int(fields[11]) + int(fields[12])
            children += int(fields[13]) + int(fields[14])
            self.last_by_pid[pid] = int(fields[11]) + int(fields[12])
        with open("/proc/stat") as stat:
            cpu = [int(v) for v in stat.readline().split()[1:]]
        idle = cpu[3] + cpu[4]
        return own, children, sum(cpu) - idle, sum(cpu), time.monotonic()

    def start(self):
        self.first = self.sample()
        self.first_by_pid = self.last_by_pid

    def stop(self):
        last = self.sample()
        own, children, busy, total, at = (b - a for a, b in zip(self.first, last))
        by_pid = {pid: (ticks - self.first_by_pid[pid]) / self.tick
                  for pid, ticks in self.last_by_pid.items() if pid in self.first_by_pid}
        return {"node_cpu_s": own / self.tick, "child_cpu_s": children / self.tick,
                "by_pid_s": by_pid,
                "other_cpu_s": max(0.0, (busy - own - children) / self.tick),
                "machine_busy_pct": 100 * busy / total if total else None,
                "wall_s": at, "cpus": os.cpu_count()}


def is_our_process(pid, needle):
    """Whether `needle` (a port, a directory) is in the command line of `pid`: a PID
    handed over by the script is checked before it is signalled."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return needle.encode() in cmdline.read()
    except OSError:
        return False


# --- output and waiting ---------------------------------------------------------------

def fail(message, code=1):
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def say(message):
    print(message, flush=True)


def wait_for(what, predicate, deadline, step):
    """Calls predicate until it returns a truthy value; fails naming `what` after
    `deadline` seconds. Connection errors count as 'not yet'."""
    end = time.monotonic() + deadline
    last = "no answer yet"
    while True:
        try:
            value = predicate()
            if value:
                return value
        except NOT_YET as error:
            last = str(error) or type(error).__name__
        if time.monotonic() >= end:
            fail(f"timed out after {deadline:.0f} s waiting for {what} (last: {last})")
        time.sleep(step)


def append(path, row):
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")


def load_rows(path):
    """The rows `append` wrote to `path`; none when the file does not exist."""
    if not os.path.exists(path):
        return []
    with open(path) as rows:
        return [json.loads(line) for line in rows if line.strip()]


def spread(values, fmt=lambda v: f"{v:.0f}", timeouts=False):
    """('min / median / max', the values present). None stands for a trial where nothing
    happened before its deadline: with `timeouts` such trials are named, not hidden
    ('timeout' when all timed out, '(N timed out)' after the figures)."""
    present = [v for v in values if v is not None]
    missing = len(values) - len(present) if timeouts else 0
    if not present:
        return ("timeout" if missing else "-"), None
    text = f"{fmt(min(present))} / {fmt(statistics.median(present))} / {fmt(max(present))}"
    if missing:
        text += f" ({missing} timed out)"
    return text, present


def render_table(headers, rows):
    """Columns padded to their widest cell, separated by ' | ', a rule under the header."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    render = lambda row: " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
    say(render(headers))
    say("-+-".join("-" * width for width in widths))
    for row in rows:
        say(render(row))


# --- git ------------------------------------------------------------------------------

def git(repo, *args, timeout=60):
    """`git -C repo args` as the benchmarks' author; its stdout, stripped."""
    done = subprocess.run(["git", "-C", repo, "-c", "user.name=bench",
                           "-c", "user.email=bench@example.invalid", *args],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        fail(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_counter(repo, tag):
    """Writes `tag` to the repository's counter.txt and commits it: (sha, the monotonic
    clock just before the commit)."""
    with open(os.path.join(repo, "counter.txt"), "w") as counter:
        counter.write(f"{tag}\n")
    start = time.monotonic()
    git(repo, "commit", "-q", "-a", "-m", tag)
    return git(repo, "rev-parse", "HEAD"), start


# --- HTTP -----------------------------------------------------------------------------

def local(port, path):
    return f"http://127.0.0.1:{port}{path}"


def request(method, url, body=None, form=None, timeout=2.0):
    """(http status, decoded json or None); raises OSError when nothing answers."""
    headers, data = {}, None
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with OPENER.open(req, timeout=timeout) as response:
            raw = response.read()
            try:
                return response.status, (json.loads(raw) if raw else None)
            except ValueError:
                return response.status, None
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, None


def get_json(url, timeout=2.0):
    code, doc = request("GET", url, timeout=timeout)
    if code != 200 or doc is None:
        raise OSError(f"GET {url} answered {code}")
    return doc


# --- the systems compared -------------------------------------------------------------

class Status:
    """One member's view, reduced to what the failover trials compare."""

    def __init__(self, me, leader, term, dead=(), alive=(), index=0):
        self.me, self.leader, self.term = me, leader, term
        self.dead, self.alive, self.index = set(dead), set(alive), index


class System:
    """A system under test, seen through its HTTP API on 127.0.0.1.

    Laws: `ready` is true only when every member answers and the members agree (a
    leader, where there is one); `submit` is answered by one member and is durable when
    it says so; `result` is None until the work is final and then stays the same; a
    member is stopped only by `stop_member`, after checking the PID is that member's.
    Starting members is the calling script's part: it records the PIDs it starts."""

    name = "system"
    gossip = False  # whether members report each other dead

    def ready(self, ports):
        raise NotImplementedError

    def submit(self, port, key, timeout):
        """(ok, http status) of one unit of work named `key`."""
        raise NotImplementedError

    def result(self, port, key):
        """The outcome of work `key` once final, else None (systems that run work)."""
        raise NotImplementedError

    def stop_member(self, pid, needle):
        """SIGKILL to `pid` once its command line shows `needle`; False when it does not."""
        if not is_our_process(pid, needle):
            return False
        os.kill(pid, signal.SIGKILL)
        return True


FINAL = {"passed", "failed", "timed_out", "error", "cancelled"}


class Eventide(System):
    """GET /api/v1/status; a write is POST /api/v1/repos (each adds a repository made
    under `url_dir`); work is a commit, its result the first final job for it."""

    name = "eventide"
    gossip = True

    def __init__(self, url_dir=None, runners=None):
        self.url_dir, self.runners = url_dir, runners

    @staticmethod
    def raw_status(port, timeout=1.0):
        return get_json(local(port, "/api/v1/status"), timeout)

    def status(self, port, timeout=1.0):
        doc = self.raw_status(port, timeout)
        leader = doc["leader"]["id"] if doc.get("leader") else None
        nodes = doc.get("nodes", [])
        return Status(doc["node"]["id"], leader, doc.get("term", 0),
                      dead=[n["id"] for n in nodes if not n["alive"]],
                      alive=[n["id"] for n in nodes if n["alive"]],
                      index=doc.get("applied_index", 0))

    def ready(self, ports):
        """The leader's port when every node answers, all agree on the leader, every node
        sees every node alive and (given `runners`) that many nodes offer slots."""
        views = {port: self.raw_status(port) for port in ports}
        by_id = {view["node"]["id"]: port for port, view in views.items()}
        leaders = {(view.get("leader") or {}).get("id") for view in views.values()}
        if len(leaders) != 1 or None in leaders or next(iter(leaders)) not in by_id:
            return None
        for view in views.values():
            alive = {node["id"] for node in view["nodes"] if node["alive"]}
            if not set(by_id) <= alive:
                return None
            if self.runners is not None and sum(
                    1 for node in view["nodes"] if node["alive"] and node["slots"] > 0) \
                    != self.runners:
                return None
        return by_id[next(iter(leaders))]

    def submit(self, port, key, timeout):
        path = os.path.join(self.url_dir, key)
        os.makedirs(path, exist_ok=True)  # a real directory, as `repo add` would need
        code, _ = request("POST", local(port, "/api/v1/repos"), {"url": path}, timeout=timeout)
        return code == 201, code

    @staticmethod
    def jobs_of(port, sha, timeout=1.0):
        return get_json(local(port, f"/api/v1/jobs?commit={sha}&limit=10"), timeout)

    @staticmethod
    def job(port, job_id, timeout=1.0):
        return get_json(local(port, f"/api/v1/jobs/{job_id}"), timeout)

    @staticmethod
    def jobs(port, limit, timeout=2.0):
        return get_json(local(port, f"/api/v1/jobs?limit={limit}"), timeout)

    def result(self, port, sha):
        return next((job for job in self.jobs_of(port, sha) if job["state"] in FINAL), None)

    def idle(self, port):
        queue = self.raw_status(port)["queue"]
        return queue["queued"] == 0 and queue["running"] == 0

    @staticmethod
    def notify(port, timeout=2.0):
        return request("POST", local(port, "/api/v1/notify"), body={}, timeout=timeout)[0]

    def cancel(self, port, job_id, deadline):
        """Cancels a job through `port`, retrying while the cluster has no leader."""
        def ended():
            if self.job(port, job_id)["state"] in FINAL:
                return True
            request("POST", local(port, f"/api/v1/jobs/{job_id}/cancel"), body={}, timeout=6.0)
            return None
        wait_for(f"job {job_id} to be cancelled", ended, deadline, 0.1)


class Etcd(System):
    """The v3 JSON gateway: POST /v3/maintenance/status, writes POST /v3/kv/put."""

    name = "etcd"

    @staticmethod
    def status(port, timeout=1.0):
        code, doc = request("POST", local(port, "/v3/maintenance/status"), {}, timeout=timeout)
        if code != 200 or doc is None:
            raise OSError(f"status answered {code}")
        leader = str(doc.get("leader", "0"))
        header = doc["header"]
        # etcd reports the term of its last applied entry: it can lag the election by
        # one term until the new leader's first entry is applied.
        term = doc.get("raftTerm", header.get("raft_term", 0))
        return Status(str(header["member_id"]), None if leader == "0" else leader,
                      int(term), index=int(doc.get("raftIndex", 0)))

    def ready(self, ports):
        """The leader's port when all members answer, agree on it and are within 5
        entries of each other."""
        views = {port: self.status(port) for port in ports}
        ids = {view.me: port for port, view in views.items()}
        leaders = {view.leader for view in views.values()}
        if len(leaders) != 1 or None in leaders or next(iter(leaders)) not in ids:
            return None
        indexes = [view.index for view in views.values()]
        if max(indexes) - min(indexes) > 5:
            return None
        return ids[next(iter(leaders))]

    @staticmethod
    def submit(port, key, timeout):
        encode = lambda text: base64.b64encode(text.encode()).decode()
        code, _ = request("POST", local(port, "/v3/kv/put"),
                          {"key": encode("failover/" + key), "value": encode(key)},
                          timeout=timeout)
        return code == 200, code


class Buildbot(System):
    """Buildbot's REST API (/api/v2) on its www port; there is one master, so `ready`
    means that `workers` workers are connected. Work is a commit (its post-commit hook
    or GitPoller makes the change), its result the first finished build after a mark."""

    name = "buildbot"

    def __init__(self, workers=0):
        self.workers = workers

    @staticmethod
    def get(port, path, timeout=2.0):
        return get_json(local(port, f"/api/v2{path}"), timeout)

    def ready(self, ports):
        workers = self.get(ports[0], "/workers")["workers"]
        return sum(1 for w in workers if w.get("connected_to")) >= self.workers

    def builds(self, port, limit=20):
        return self.get(port, f"/builds?order=-buildid&limit={limit}")["builds"]

    @staticmethod
    def max_id(rows, key):
        return max((row[key] for row in rows), default=0)

    def result(self, port, after_build_id):
        return next((b for b in self.builds(port, 5)
                     if b["buildid"] > after_build_id and b["complete"]), None)

    def revision(self, port, build_id):
        props = self.get(port, f"/builds/{build_id}/properties")["properties"]
        return (props[0].get("got_revision") or [""])[0] if props else ""

    def idle(self, port):
        requests = self.get(port, "/buildrequests?complete=false&limit=10")["buildrequests"]
        builds = self.get(port, "/builds?complete=false&limit=10")["builds"]
        return not requests and not builds


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "ports" and len(sys.argv) == 3:
        print(" ".join(str(p) for p in free_ports(int(sys.argv[2]))))
    elif command == "machine" and len(sys.argv) == 2:
        print(machine())
    elif command == "storage" and len(sys.argv) == 3:
        print(storage(sys.argv[2]))
    else:
        fail("usage: benchlib.py ports N | machine | storage PATH", 2)


if __name__ == "__main__":
    main()
