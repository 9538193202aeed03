#!/usr/bin/env python3
"""The measuring half of scripts/bench/steps.sh (standard library only).

  steps_probe.py --trials N --ports "P1 P2 P3" NAME=REPO...

Waits for the cluster (a leader, three runners) and every repository's first build,
then goes round the variants TRIALS times: a commit, a notify, and polls of
GET /api/v1/builds?commit=SHA until the build is final; the commit -> final time is the
probe's clock, a job's run its own started_at -> finished_at.
"""

import argparse
import statistics
import time

from benchlib import (Eventide, commit_counter, fail, get_json, git, local, machine, render_table,
                      say, spread, wait_for)

EVENTIDE = Eventide(runners=3)
BUILD_FINAL = {"passed", "failed", "error", "cancelled"}


def build_of(port, sha):
    builds = get_json(local(port, f"/api/v1/builds?commit={sha}&limit=5"))
    return next((b for b in builds if b["state"] in BUILD_FINAL), None)


def trial(port, name, repo, tag):
    sha, start = commit_counter(repo, tag)
    EVENTIDE.notify(port)
    build = wait_for(f"the build of {sha[:10]} ({name})", lambda: build_of(port, sha), 300, 0.002)
    if build["state"] != "passed":
        failed = [(j["name"], j["state"], j.get("message")) for j in build["jobs"]
                  if j["state"] != "passed"]
        fail(f"the {name} build of {sha[:10]} ended {build['state']}: {failed}")
    return time.monotonic() - start, build


def run_ms(job):
    return float(job["finished_at"] - job["started_at"])


def gaps_ms(build):
    """Each job's start after the finish of the job it needs."""
    by_id = {job["id"]: job for job in build["jobs"]}
    return [float(job["started_at"] - max(by_id[n]["finished_at"] for n in job["needs"]))
            for job in build["jobs"] if job["needs"]]


def ms(values):
    return spread(values, fmt=lambda v: f"{v:.0f}")[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--ports", required=True)
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split()]
    variants = [tuple(v.split("=", 1)) for v in args.variants]
    say(machine())
    port = wait_for("a leader and three runners", lambda: EVENTIDE.ready(ports), 90, 0.05)
    for name, repo in variants:
        first = git(repo, "rev-parse", "HEAD")
        wait_for(f"the first build of {name}", lambda first=first: build_of(port, first), 300, 0.05)
        trial(port, name, repo, "warm-up")
    results = {name: [] for name, _ in variants}
    for k in range(1, args.trials + 1):
        for name, repo in variants:
            results[name].append(trial(port, name, repo, f"trial-{k}"))
        say(f"round {k} of {args.trials} done")
    say(f"{args.trials} builds per variant, round robin, 3 nodes x 1 slot on loopback; "
        f"min / median / max, ms")

    rows = []
    for name, samples in results.items():
        totals = [s * 1000 for s, _ in samples]
        runs = [sum(run_ms(j) for j in b["jobs"]) for _, b in samples]
        gaps = [g for _, b in samples for g in gaps_ms(b)]
        rows.append([name, len(samples[0][1]["jobs"]), ms(totals), ms(runs), ms(gaps) if gaps else "-"])
    render_table(["variant", "jobs", "commit -> build final", "sum of job runs",
                  "need finished -> job started"], rows)
    median_total = {name: statistics.median(s for s, _ in samples) * 1000
                    for name, samples in results.items()}
    added = (median_total["three"] - median_total["one"]) / 2
    say(f"a step that needs the step before adds {added:.0f} ms to a build at the median "
        f"((three - one) / 2)")

    sizes = sorted({int(name.split("-", 1)[1]) for name in results if name.startswith("art-")})
    if not sizes:
        return
    rows = []
    for size in sizes:
        art, plain = results[f"art-{size}"], results[f"plain-{size}"]
        make = lambda samples: [run_ms(b["jobs"][0]) for _, b in samples]
        use = lambda samples: [run_ms(b["jobs"][1]) for _, b in samples]
        store = statistics.median(make(art)) - statistics.median(make(plain))
        fetch = statistics.median(use(art)) - statistics.median(use(plain))
        # Where the consumer's copy came from: its own node held one, or it fetched it.
        local_copy = sum(1 for _, b in art
                         if b["jobs"][1]["runner"] in b["jobs"][0]["artifacts"][0]["holders"])
        holders = statistics.median(len(b["jobs"][0]["artifacts"][0]["holders"]) for _, b in art)
        rate = size / (store / 1000) if store > 0 else float("inf")
        rows.append([f"{size} MiB", ms(make(plain)), ms(make(art)), f"{store:.0f}",
                     f"{rate:.0f}", f"{holders:.0f}", ms(use(plain)), ms(use(art)),
                     f"{fetch:.0f}", f"{local_copy}/{len(art)}"])
    render_table(["artifact", "make, none", "make, artifact", "store+copy (median)",
                  "MiB/s", "holders", "use, none", "use, artifact", "fetch (median)",
                  "use on a holder"], rows)
    say("store+copy: the producing step's median run with the artifact minus without it "
        "(hash, store, copy to a second node, record); fetch: the same for the consuming "
        "step (on a holder: a local copy; else a fetch from a holder)")


if __name__ == "__main__":
    main()
