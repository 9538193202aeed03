#!/usr/bin/env python3
"""The measuring half of scripts/bench/sandbox.sh (standard library only).

  sandbox_probe.py --trials N --none PORT:REPO --bwrap PORT:REPO

Waits for both one-node clusters and their first result, then makes N commits in each
repository, alternating, and times each from just before `git commit` to the first poll
answer that shows the result. The job's started -> finished comes from its own stamps.
"""

import argparse
import statistics
import time

from benchlib import (Eventide, commit_counter, fail, git, machine, render_table, say, spread,
                      wait_for)

EVENTIDE = Eventide(runners=1)


def trial(port, repo, tag):
    sha, start = commit_counter(repo, tag)
    EVENTIDE.notify(port)
    job = wait_for(f"the result of {sha[:10]} on :{port}",
                   lambda: EVENTIDE.result(port, sha), 30, 0.002)
    if job["state"] != "passed":
        fail(f"commit {sha[:10]} on :{port} ended {job['state']}: {job.get('message')}")
    return time.monotonic() - start, job["finished_at"] - job["started_at"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--none", required=True)
    parser.add_argument("--bwrap", required=True)
    args = parser.parse_args()
    clusters = {}
    for mode in ("none", "bwrap"):
        port, repo = getattr(args, mode).split(":", 1)
        clusters[mode] = (int(port), repo)
    say(machine())
    for mode, (port, repo) in clusters.items():
        wait_for(f"the {mode} node to lead", lambda port=port: EVENTIDE.ready([port]), 60, 0.05)
        sandbox = EVENTIDE.raw_status(port)["nodes"][0].get("sandbox", "none")
        if sandbox != mode:
            fail(f"the {mode} node's runner reports sandbox {sandbox}")
        first = git(repo, "rev-parse", "HEAD")
        wait_for(f"the first result of the {mode} node",
                 lambda port=port, first=first: EVENTIDE.result(port, first), 60, 0.05)
        trial(port, repo, "warm-up")
    rows = {mode: [] for mode in clusters}
    for k in range(1, args.trials + 1):
        for mode, (port, repo) in clusters.items():
            rows[mode].append(trial(port, repo, f"trial-{k}"))
    say(f"{args.trials} commits of `command = \"true\"` each, alternating between the two "
        f"nodes; min / median / max")
    table, medians = [], {}
    for mode, samples in rows.items():
        total, _ = spread([s * 1000 for s, _ in samples], fmt=lambda v: f"{v:.1f}")
        run, runs = spread([float(r) for _, r in samples], fmt=lambda v: f"{v:.0f}")
        medians[mode] = (statistics.median(s * 1000 for s, _ in samples),
                         statistics.median(runs))
        table.append([f"--sandbox {mode}", total, run])
    render_table(["runner", "commit -> result (ms)", "job started -> finished (ms)"], table)
    added_total = medians["bwrap"][0] - medians["none"][0]
    added_run = medians["bwrap"][1] - medians["none"][1]
    verdict = "met" if added_total < 10 else "missed"
    say(f"the sandbox adds {added_total:.1f} ms to commit -> result at the median "
        f"({added_run:.0f} ms to the job's own run); goal under 10 ms: {verdict}")


if __name__ == "__main__":
    main()
