//! Chaos with real network partitions: five nodes, each in its own network namespace,
//! under a steady stream of commits while a seeded nemesis kills nodes (the leader
//! often), restarts them and cuts the network. After the final heal every commit has
//! exactly one result, nothing seen is lost, every replica is identical and a leader
//! always came back in time. Needs root (namespaces, nftables); see `eventide_tests::chaos`.
//!
//! `EVENTIDE_CHAOS_SECONDS`, `EVENTIDE_CHAOS_SEED` and `EVENTIDE_CHAOS_NODES` change the
//! run; `scripts/chaos.sh` runs it for as long as asked.

use eventide_tests::chaos::{self, Settings};

#[test]
fn faults_and_partitions_lose_and_repeat_no_result() {
    let settings = Settings::from_env(150);
    let summary = chaos::run(&settings);
    eprintln!("{summary}");
    assert!(summary.violations.is_empty(), "{summary}");
    assert!(summary.commits > 0 && summary.results > summary.commits, "{summary}");
    assert!(summary.kills + summary.partitions + summary.link_downs > 0, "{summary}");
}
