//! The chaos suite: a cluster in network namespaces ([`crate::netns`]) under a steady
//! workload, a nemesis that kills nodes and cuts the network, and a checker that reads
//! every replica once everything is healed and quiet.
//!
//! ```text
//!   writer ──commits on main/side/topic, notify──> repo ──observer──> jobs
//!   monitor ──GET /api/v1/jobs on a random node──> every final result seen, kept
//!   nemesis ──kill -9 / restart / nft DROP / link down──> nodes   (seeded, replayable)
//!   checker ──after heal + quiescence──> exactly one result per commit, nothing lost,
//!                                        replicas identical, leaders came back in time
//! ```
//!
//! The invariant follows the observer's rules: the repository is first observed with
//! `main` at one commit (one job); every later commit is made on exactly one branch as a
//! fast-forward, and branches `side` and `topic` are created at heads already observed, so
//! each commit the writer makes must end as exactly one job, on the branch it was made on,
//! and no other job may exist. A job that ends in `error` because the nemesis exhausted
//! its attempts ("runner lost") is a legitimate final result and is counted, not flagged.
//! Nemesis choices follow the seed; timings depend on the machine, so a replay repeats the
//! schedule of faults, not the exact interleaving.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::Network;
use crate::repo::GitRepo;
use crate::{http, is_final, Cluster, Options};

/// How long a leader may take to appear once a majority can talk again.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(20);

/// How long the cluster may take, after the last heal, to finish every job everywhere.
const QUIESCENCE_DEADLINE: Duration = Duration::from_secs(150);

/// `--dead-voter-grace` of every node: shorter than the longest faults.
const DEAD_VOTER_GRACE: &str = "6s";

/// The port every node listens on, in its own namespace.
const PORT: u16 = 7800;

/// What a run does.
#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: usize,
    /// How long the nemesis runs.
    pub duration: Duration,
    pub seed: u64,
}

impl Settings {
    /// From `EVENTIDE_CHAOS_SECONDS`, `EVENTIDE_CHAOS_SEED` and `EVENTIDE_CHAOS_NODES`,
    /// with `default_seconds` of nemesis, 5 nodes and a seed from the clock by default.
    pub fn from_env(default_seconds: u64) -> Settings {
        let number = |name: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty()).map(|value| {
                value.parse::<u64>().unwrap_or_else(|_| panic!("{name}={value}: not a number"))
            })
        };
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let nodes = number("EVENTIDE_CHAOS_NODES").unwrap_or(5) as usize;
        assert!((3..=9).contains(&nodes), "EVENTIDE_CHAOS_NODES must be 3 to 9");
        Settings {
            nodes,
            duration: Duration::from_secs(
                number("EVENTIDE_CHAOS_SECONDS").unwrap_or(default_seconds),
            ),
            seed: number("EVENTIDE_CHAOS_SEED").unwrap_or(clock ^ u64::from(std::process::id())),
        }
    }
}

/// splitmix64: small, seeded, good enough to pick faults.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// A duration between `min_ms` and `max_ms` milliseconds.
    pub fn millis(&mut self, min_ms: u64, max_ms: u64) -> Duration {
        Duration::from_millis(min_ms + self.next_u64() % (max_ms - min_ms + 1))
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Summary {
    pub seed: u64,
    pub nodes: usize,
    pub nemesis_seconds: u64,
    pub kills: u32,
    pub leader_kills: u32,
    pub restarts: u32,
    pub partitions: u32,
    pub leader_partitions: u32,
    pub link_downs: u32,
    pub heals: u32,
    /// SIGSTOP/SIGCONT of the leader.
    pub pauses: u32,
    pub commits: usize,
    pub notifies: u32,
    pub results: usize,
    pub passed: usize,
    /// Jobs that ended in `error` because their attempts ran out.
    pub errors: usize,
    pub results_seen: usize,
    /// Time until a leader was seen, after each heal and restart.
    pub leader_waits: Vec<Duration>,
    /// How often the set of voters differed from the one before (autopilot replacements).
    pub voter_changes: u32,
    voters: Option<Vec<String>>,
    pub violations: Vec<String>,
    /// Where the node logs were kept (only when there are violations).
    pub logs: Option<PathBuf>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waits = &self.leader_waits;
        let max = waits.iter().max().copied().unwrap_or_default();
        let mean =
            waits.iter().sum::<Duration>().checked_div(waits.len() as u32).unwrap_or_default();
        writeln!(f, "chaos summary (seed {})", self.seed)?;
        writeln!(f, "  nodes:       {} for {} s of nemesis", self.nodes, self.nemesis_seconds)?;
        writeln!(
            f,
            "  kills:       {} ({} of the leader); {} pauses of the leader",
            self.kills, self.leader_kills, self.pauses
        )?;
        writeln!(f, "  restarts:    {}", self.restarts)?;
        writeln!(
            f,
            "  partitions:  {} ({} leader + runner-only node), {} link downs, {} heals",
            self.partitions, self.leader_partitions, self.link_downs, self.heals
        )?;
        writeln!(f, "  commits:     {} ({} notifies)", self.commits, self.notifies)?;
        writeln!(
            f,
            "  results:     {} ({} passed, {} error after max attempts); {} final results seen during the run",
            self.results, self.passed, self.errors, self.results_seen
        )?;
        writeln!(
            f,
            "  leader back: {} times, mean {:.1} s, max {:.1} s (deadline {} s)",
            waits.len(),
            mean.as_secs_f64(),
            max.as_secs_f64(),
            LEADER_DEADLINE.as_secs()
        )?;
        writeln!(f, "  voters:      the voter set changed {} times", self.voter_changes)?;
        writeln!(f, "  violations:  {}", self.violations.len())?;
        for violation in &self.violations {
            writeln!(f, "    - {violation}")?;
        }
        if let Some(logs) = &self.logs {
            writeln!(f, "  node logs:   {}", logs.display())?;
        }
        write!(f, "  replay with: EVENTIDE_CHAOS_SEED={}", self.seed)
    }
}

/// Every job a node holds, oldest first (all pages of `GET /api/v1/jobs`).
pub fn all_jobs(addr: SocketAddr) -> Option<Vec<Value>> {
    let mut jobs: Vec<Value> = Vec::new();
    let mut before = String::new();
    loop {
        let path = format!("/api/v1/jobs?limit=1000{before}");
        let (code, body) = http::get(addr, &path).ok()?;
        if code != 200 {
            return None;
        }
        let page: Vec<Value> = serde_json::from_str(&body).ok()?;
        let full = page.len() == 1000;
        let lowest = page.iter().filter_map(|job| job["id"].as_u64()).min();
        jobs.extend(page);
        match lowest {
            Some(lowest) if full => before = format!("&before={lowest}"),
            _ => break,
        }
    }
    jobs.sort_by_key(|job| job["id"].as_u64());
    Some(jobs)
}

/// The parts of a final job that must never change once it is final.
fn fingerprint(job: &Value) -> String {
    format!(
        "branch={} commit={} state={} attempt={} runner={} exit={} finished_at={}",
        job["branch"],
        job["commit"],
        job["state"],
        job["attempt"],
        job["runner"],
        job["exit_code"],
        job["finished_at"]
    )
}

fn status(addr: SocketAddr) -> Option<Value> {
    let (code, body) = http::get(addr, "/api/v1/status").ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

/// The index of the leader that a majority of all nodes agree on and that itself says it
/// leads, if any.
pub fn agreed_leader(cluster: &Cluster) -> Option<usize> {
    let statuses: Vec<(usize, Value)> = cluster.statuses();
    let mut votes: HashMap<String, usize> = HashMap::new();
    for (_, status) in &statuses {
        if let Some(id) = status["leader"]["id"].as_str() {
            *votes.entry(id.to_owned()).or_default() += 1;
        }
    }
    let majority = cluster.nodes.len() / 2 + 1;
    let (id, _) = votes.into_iter().find(|(_, count)| *count >= majority)?;
    let leader = cluster.index_by_id(&id)?;
    let says_so = statuses.iter().any(|(index, status)| {
        *index == leader && status["node"]["id"].as_str() == Some(id.as_str())
    });
    says_so.then_some(leader)
}

/// The writer's record: every commit with the branch it was made on.
#[derive(Debug, Default)]
struct Written {
    commits: Vec<(String, String)>,
    notifies: u32,
}

/// Makes commits until `stop`, on `main` first, then also on `side` and `topic`, each
/// created at an existing head; pokes `notify` on a random node now and then.
fn write(repo: &GitRepo, addrs: &[SocketAddr], seed: u64, stop: &AtomicBool) -> Written {
    let mut rng = Rng::new(seed ^ 0x5752_4954_4552);
    let mut written = Written::default();
    let mut branches = vec!["main"];
    let mut current = "main";
    while !stop.load(Ordering::SeqCst) {
        // Pacing of the workload, not synchronisation.
        std::thread::sleep(rng.millis(250, 800));
        let count = written.commits.len();
        if count == 8 && branches.len() == 1 {
            repo.git(&["branch", "side", "main"]);
            branches.push("side");
        }
        if count == 30 && branches.len() == 2 {
            repo.git(&["branch", "topic", "side"]);
            branches.push("topic");
        }
        let branch = branches[rng.below(branches.len())];
        if branch != current {
            repo.git(&["checkout", "-q", branch]);
            current = branch;
        }
        repo.write("counter", &format!("{count} on {branch}\n"));
        let commit = repo.commit(&format!("chaos {count} on {branch}"));
        written.commits.push((branch.to_owned(), commit));
        if rng.below(5) == 0 {
            let _ = http::post(addrs[rng.below(addrs.len())], "/api/v1/notify", "");
            written.notifies += 1;
        }
    }
    written
}

/// What the monitor saw: every final result by job id, and any result that changed.
#[derive(Debug, Default)]
struct Seen {
    results: BTreeMap<u64, (String, usize)>,
    violations: Vec<String>,
}

/// Reads every job from a random node until `stop`, remembering each final result and
/// flagging one that later reads differently.
fn monitor(addrs: &[SocketAddr], seed: u64, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut rng = Rng::new(seed ^ 0x004d_4f4e_4954_4f52);
    while !stop.load(Ordering::SeqCst) {
        let index = rng.below(addrs.len());
        if let Some(jobs) = all_jobs(addrs[index]) {
            let mut seen = seen.lock().expect("seen results");
            record(&mut seen, &jobs, index);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn record(seen: &mut Seen, jobs: &[Value], index: usize) {
    for job in jobs.iter().filter(|job| is_final(job)) {
        let Some(id) = job["id"].as_u64() else { continue };
        let print = fingerprint(job);
        match seen.results.get(&id) {
            None => {
                seen.results.insert(id, (print, index));
            }
            Some((first, at)) if *first != print => {
                let message = format!(
                    "job {id} changed after it was final: n{} showed {first}, n{} shows {print}",
                    at + 1,
                    index + 1
                );
                if seen.violations.len() < 20 {
                    seen.violations.push(message);
                }
            }
            Some(_) => {}
        }
    }
}

/// The kinds of fault the nemesis injects.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    KillRandom,
    IsolateLeaderWithRunner,
    Split,
    LinkDown,
    /// SIGSTOP of the leader, SIGCONT after the hold: a leader that wakes up stale.
    PauseLeader,
    /// Kill the leader, then its successor as soon as there is one (quorum lost).
    KillTwoLeaders,
    /// Short cuts of a random minority in quick succession.
    Flap,
}

/// Runs the nemesis: cluster, network, workload, faults, then the checks.
pub fn run(settings: &Settings) -> Summary {
    eprintln!(
        "chaos: seed {} ({} nodes, {} s of nemesis; replay with EVENTIDE_CHAOS_SEED={})",
        settings.seed,
        settings.nodes,
        settings.duration.as_secs(),
        settings.seed
    );
    let mut summary = Summary {
        seed: settings.seed,
        nodes: settings.nodes,
        nemesis_seconds: settings.duration.as_secs(),
        ..Summary::default()
    };
    let network = Network::create(settings.nodes);
    let repo = GitRepo::new();
    repo.write(".eventide.toml", PIPELINE);
    let initial = repo.commit("initial");

    let addrs: Vec<SocketAddr> = network
        .hosts
        .iter()
        .map(|host| SocketAddr::V4(SocketAddrV4::new(host.addr, PORT)))
        .collect();
    let launchers = (0..settings.nodes).map(|i| network.launcher(i)).collect();
    let mut options = Options::watching(repo.url());
    // Three voters and one standby; the other nodes are clients (runners that are no
    // Raft members and answer by asking a server). A voter cut off for longer than the
    // grace is replaced by the standby, and a client becomes the next standby.
    let grace = ["--dead-voter-grace", DEAD_VOTER_GRACE];
    let sizes = ["--voters", "3", "--standby", "1"];
    options.extra.extend(sizes.into_iter().chain(grace).map(str::to_owned));
    let mut cluster = Cluster::start_at(&addrs, launchers, options);
    crate::wait_until("every node to answer with its id", Duration::from_secs(60), || {
        cluster.learn_ids();
        cluster
            .nodes
            .iter()
            .all(|node| node.id().is_some_and(|id| cluster.index_by_id(&id).is_some()))
            .then_some(())
    });
    crate::wait_until("a leader and the first result", Duration::from_secs(90), || {
        let leader = agreed_leader(&cluster)?;
        let jobs = cluster.nodes[leader].jobs("")?;
        (jobs.len() == STEPS.len() && jobs.iter().all(is_final)).then_some(())
    });

    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write(&repo, &addrs, settings.seed, &stop));
        let watcher = scope.spawn(|| monitor(&addrs, settings.seed, &stop, &seen));
        nemesis(&mut cluster, &network, settings, &mut summary);
        stop.store(true, Ordering::SeqCst);
        let written = writer.join();
        let _ = watcher.join();
        written
    });
    let written = match written {
        Ok(written) => written,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    summary.commits = written.commits.len();
    summary.notifies = written.notifies;

    // The end: everything healed and running, then quiet.
    network.heal();
    for index in 0..cluster.nodes.len() {
        if !cluster.nodes[index].is_running() {
            cluster.restart(index);
            summary.restarts += 1;
        }
    }
    wait_for_leader(&cluster, "the final heal", &mut summary);
    let mut seen = seen.into_inner().expect("seen results");
    check(&cluster, &initial, &written, &mut seen, &mut summary);
    if !summary.violations.is_empty() {
        cluster.dump_logs();
        summary.logs = keep_logs(&cluster, settings.seed);
    }
    summary
}

/// Copies every node's log to a directory that outlives the run.
fn keep_logs(cluster: &Cluster, seed: u64) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("eventide-chaos-{seed}"));
    std::fs::create_dir_all(&dir).ok()?;
    for node in &cluster.nodes {
        std::fs::write(dir.join(format!("{}.log", node.name)), node.log_text()).ok()?;
    }
    Some(dir)
}

/// Faults until `settings.duration` has passed; leaves the network healed and may leave
/// nodes stopped (the caller restarts them).
fn nemesis(cluster: &mut Cluster, network: &Network, settings: &Settings, summary: &mut Summary) {
    let mut rng = Rng::new(settings.seed);
    let start = Instant::now();
    while start.elapsed() < settings.duration {
        let fault = match rng.below(26) {
            0..=5 => Fault::KillLeader,
            6..=8 => Fault::KillRandom,
            9..=12 => Fault::IsolateLeaderWithRunner,
            13..=16 => Fault::Split,
            17..=19 => Fault::LinkDown,
            20..=21 => Fault::PauseLeader,
            22..=23 => Fault::KillTwoLeaders,
            _ => Fault::Flap,
        };
        // Some faults outlast the dead-voter grace, so that voters get replaced as well.
        let hold = rng.millis(1_500, 9_000);
        let leader = agreed_leader(cluster);
        eprintln!(
            "chaos: {:>5.1} s {fault:?} for {:.1} s (leader {})",
            start.elapsed().as_secs_f64(),
            hold.as_secs_f64(),
            leader.map_or("none".to_owned(), |l| format!("n{}", l + 1))
        );
        match fault {
            Fault::KillLeader | Fault::KillRandom => {
                let mut victims = match (fault, leader) {
                    (Fault::KillLeader, Some(leader)) => vec![leader],
                    _ => {
                        let mut all: Vec<usize> = (0..cluster.nodes.len()).collect();
                        rng.shuffle(&mut all);
                        all.truncate(1 + rng.below(2));
                        all
                    }
                };
                victims.sort_unstable();
                for &victim in &victims {
                    cluster.kill(victim);
                    summary.kills += 1;
                    if Some(victim) == leader {
                        summary.leader_kills += 1;
                    }
                }
                if victims.len() == 1 {
                    wait_for_leader(cluster, "a kill", summary);
                }
                std::thread::sleep(hold);
                for &victim in &victims {
                    cluster.restart(victim);
                    summary.restarts += 1;
                }
                wait_for_leader(cluster, "a restart", summary);
            }
            Fault::PauseLeader | Fault::KillTwoLeaders if leader.is_none() => {}
            Fault::PauseLeader => {
                let leader = leader.expect("checked above");
                cluster.signal(leader, "STOP");
                summary.pauses += 1;
                std::thread::sleep(hold);
                cluster.signal(leader, "CONT");
                wait_for_leader(cluster, "a paused leader woke up", summary);
            }
            Fault::KillTwoLeaders => {
                let first = leader.expect("checked above");
                cluster.kill(first);
                let deadline = Instant::now() + LEADER_DEADLINE;
                let second = loop {
                    match agreed_leader(cluster) {
                        Some(next) => break Some(next),
                        None if Instant::now() > deadline => break None,
                        None => std::thread::sleep(Duration::from_millis(50)),
                    }
                };
                let victims: Vec<usize> = [Some(first), second].into_iter().flatten().collect();
                if let Some(second) = second {
                    cluster.kill(second);
                } else {
                    summary.violations.push("no leader after a kill of the leader".to_owned());
                }
                summary.kills += victims.len() as u32;
                summary.leader_kills += victims.len() as u32;
                std::thread::sleep(hold);
                for &victim in &victims {
                    cluster.restart(victim);
                    summary.restarts += 1;
                }
                wait_for_leader(cluster, "a restart of two leaders", summary);
            }
            Fault::Flap => {
                for _ in 0..5 {
                    let mut all: Vec<usize> = (0..cluster.nodes.len()).collect();
                    rng.shuffle(&mut all);
                    let rest = all.split_off(1 + rng.below((cluster.nodes.len() - 1) / 2));
                    network.partition(&[all, rest]);
                    summary.partitions += 1;
                    std::thread::sleep(rng.millis(200, 1_200));
                    network.heal();
                    summary.heals += 1;
                    std::thread::sleep(rng.millis(100, 600));
                }
                wait_for_leader(cluster, "a flapping network", summary);
            }
            Fault::IsolateLeaderWithRunner | Fault::Split | Fault::LinkDown => {
                let mut all: Vec<usize> = (0..cluster.nodes.len()).collect();
                rng.shuffle(&mut all);
                match (fault, leader) {
                    (Fault::IsolateLeaderWithRunner, Some(leader)) => {
                        let companion = runner_only(cluster, leader).unwrap_or_else(|| {
                            *all.iter().find(|&&i| i != leader).expect("2 nodes")
                        });
                        let side = vec![leader, companion];
                        let rest = (0..cluster.nodes.len()).filter(|i| !side.contains(i)).collect();
                        network.partition(&[side, rest]);
                        summary.partitions += 1;
                        summary.leader_partitions += 1;
                    }
                    (Fault::LinkDown, _) => {
                        network.link_down(all[0]);
                        summary.link_downs += 1;
                    }
                    _ => {
                        let minority = 1 + rng.below((cluster.nodes.len() - 1) / 2);
                        let rest = all.split_off(minority);
                        network.partition(&[all, rest]);
                        summary.partitions += 1;
                    }
                }
                // Now and then a node dies while the network is cut, and is back before the heal.
                if rng.below(4) == 0 {
                    let victim = rng.below(cluster.nodes.len());
                    std::thread::sleep(hold / 2);
                    eprintln!("chaos: kill n{} during the partition", victim + 1);
                    cluster.kill(victim);
                    summary.kills += 1;
                    summary.leader_kills += u32::from(Some(victim) == leader);
                    std::thread::sleep(hold / 2);
                    cluster.restart(victim);
                    summary.restarts += 1;
                } else {
                    std::thread::sleep(hold);
                }
                network.heal();
                summary.heals += 1;
                wait_for_leader(cluster, "a heal", summary);
            }
        }
        std::thread::sleep(rng.millis(300, 2_000));
    }
}

/// A live node that the leader lists as a client or a standby (a runner that does not
/// vote).
fn runner_only(cluster: &Cluster, leader: usize) -> Option<usize> {
    let status = cluster.nodes[leader].status()?;
    let nodes = status["nodes"].as_array()?;
    nodes
        .iter()
        .filter(|node| node["raft"] == "learner" || node["raft"] == "none")
        .filter(|node| node["alive"] == true)
        .filter_map(|node| cluster.index_by_id(node["id"].as_str()?))
        .find(|&index| index != leader && cluster.nodes[index].is_running())
}

/// Waits for an agreed leader and records how long it took; a violation past
/// [`LEADER_DEADLINE`]. Gives up after three deadlines.
fn wait_for_leader(cluster: &Cluster, after: &str, summary: &mut Summary) {
    let start = Instant::now();
    let mut late = false;
    while start.elapsed() < LEADER_DEADLINE * 3 {
        if let Some(leader) = agreed_leader(cluster) {
            summary.leader_waits.push(start.elapsed());
            note_voters(cluster, leader, summary);
            return;
        }
        if !late && start.elapsed() > LEADER_DEADLINE {
            late = true;
            summary.violations.push(format!(
                "no leader {} s after {after} (with a majority running and connected)",
                LEADER_DEADLINE.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    summary
        .violations
        .push(format!("still no leader {} s after {after}", (LEADER_DEADLINE * 3).as_secs()));
}

/// Counts a change of the voter set, as the leader lists it.
fn note_voters(cluster: &Cluster, leader: usize, summary: &mut Summary) {
    let Some(status) = cluster.nodes[leader].status() else { return };
    let Some(nodes) = status["nodes"].as_array() else { return };
    let mut voters: Vec<String> = nodes
        .iter()
        .filter(|node| node["raft"] == "leader" || node["raft"] == "voter")
        .filter_map(|node| node["id"].as_str().map(str::to_owned))
        .collect();
    voters.sort();
    if summary.voters.as_ref().is_some_and(|before| *before != voters) {
        summary.voter_changes += 1;
    }
    summary.voters = Some(voters);
}

/// After the final heal: waits for quiescence, then checks every invariant.
fn check(
    cluster: &Cluster,
    initial: &str,
    written: &Written,
    seen: &mut Seen,
    summary: &mut Summary,
) {
    let expected = (written.commits.len() + 1) * STEPS.len();
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|node| node.addr).collect();
    let start = Instant::now();
    let (quiet, last) = loop {
        let last: Vec<Option<Vec<Value>>> = addrs.iter().map(|&addr| all_jobs(addr)).collect();
        let applied: Vec<Option<u64>> =
            addrs.iter().map(|&a| status(a).and_then(|s| s["applied_index"].as_u64())).collect();
        let first = last[0].as_ref();
        let done = first.is_some_and(|jobs| jobs.len() >= expected && jobs.iter().all(is_final));
        let same_jobs = last.iter().all(|jobs| jobs.as_ref() == first);
        let same_applied = applied[0].is_some() && applied.iter().all(|a| *a == applied[0]);
        if done && same_jobs && same_applied {
            break (true, last);
        }
        if start.elapsed() > QUIESCENCE_DEADLINE {
            let counts: Vec<String> = last
                .iter()
                .zip(&applied)
                .enumerate()
                .map(|(i, (jobs, applied))| match jobs {
                    Some(jobs) => format!(
                        "n{}: {} jobs, {} not final, applied {applied:?}",
                        i + 1,
                        jobs.len(),
                        jobs.iter().filter(|j| !is_final(j)).count()
                    ),
                    None => format!("n{}: no answer", i + 1),
                })
                .collect();
            summary.violations.push(format!(
                "not quiet {} s after the final heal ({expected} commits): {}",
                QUIESCENCE_DEADLINE.as_secs(),
                counts.join("; ")
            ));
            break (false, last);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("chaos: quiet after {:.1} s: {quiet}", start.elapsed().as_secs_f64());

    // Replicas: identical job lists.
    let reference = last.iter().flatten().next().cloned().unwrap_or_default();
    for (index, jobs) in last.iter().enumerate() {
        if let Some(jobs) = jobs {
            if let Some(diff) = first_difference(&reference, jobs) {
                summary
                    .violations
                    .push(format!("n{} differs from the first replica: {diff}", index + 1));
            }
            record(seen, jobs, index);
        }
    }
    summary.results_seen = seen.results.len();
    summary.violations.append(&mut seen.violations);

    // Nothing seen during the run is gone.
    let by_id: BTreeMap<u64, &Value> =
        reference.iter().filter_map(|job| Some((job["id"].as_u64()?, job))).collect();
    for (id, (print, at)) in &seen.results {
        match by_id.get(id) {
            None => {
                summary.violations.push(format!("job {id} ({print}, seen on n{}) is gone", at + 1))
            }
            Some(job) if fingerprint(job) != *print => {} // flagged by record()
            Some(_) => {}
        }
    }

    // Exactly one result per commit, on the branch the commit was made on.
    let mut made: Vec<(String, String)> = written.commits.clone();
    made.push(("main".to_owned(), initial.to_owned()));
    let mut verdict = check_results(&reference, &made, &STEPS);
    match cluster.nodes.iter().find_map(|node| all_builds(node.addr)) {
        Some(builds) => verdict.violations.extend(check_builds(&builds, &reference, &made)),
        None => verdict.violations.push("no node answered the builds".to_owned()),
    }
    summary.results = reference.len();
    summary.passed = verdict.passed;
    summary.errors = verdict.errors;
    summary.violations.extend(verdict.violations);
}

/// What [`check_results`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub passed: usize,
    /// `error` because the attempts ran out ("runner lost"): legitimate.
    pub errors: usize,
    pub violations: Vec<String>,
}

/// The repository's pipeline: every commit is a build of two jobs, the second needing
/// the first, both `true`.
const PIPELINE: &str = "[[step]]\nname = \"build\"\ncommand = \"true\"\n\n\
                        [[step]]\nname = \"test\"\ndepends_on = [\"build\"]\ncommand = \"true\"\n";
/// Its jobs' names, in plan order.
const STEPS: [&str; 2] = ["build", "test"];

/// Every build `addr` keeps, oldest first.
fn all_builds(addr: SocketAddr) -> Option<Vec<Value>> {
    let (code, body) = http::get(addr, "/api/v1/builds?limit=1000").ok()?;
    let mut builds: Vec<Value> = (code == 200).then(|| serde_json::from_str(&body).ok())??;
    builds.sort_by_key(|build| build["id"].as_u64());
    Some(builds)
}

/// Checks the builds against the final jobs and the commits made: each commit has exactly
/// one build, holding exactly that commit's jobs in plan order, and its state is what
/// they give (`passed` when all passed, else `error`: a lost runner is the only failure
/// here).
pub fn check_builds(builds: &[Value], jobs: &[Value], made: &[(String, String)]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut by_commit: HashMap<&str, Vec<&Value>> = HashMap::new();
    for build in builds {
        by_commit.entry(build["commit"].as_str().unwrap_or("")).or_default().push(build);
    }
    for (branch, commit) in made {
        let found = by_commit.get(commit.as_str()).map_or(&[][..], Vec::as_slice);
        let [build] = found else {
            violations.push(format!(
                "commit {commit} on {branch} has {} builds (expected 1)",
                found.len()
            ));
            continue;
        };
        let mut own: Vec<&Value> =
            jobs.iter().filter(|job| job["commit"] == commit.as_str()).collect();
        own.sort_by_key(|job| job["id"].as_u64());
        let own_ids: Vec<Option<u64>> = own.iter().map(|job| job["id"].as_u64()).collect();
        let listed: Vec<Option<u64>> = build["jobs"]
            .as_array()
            .map(|jobs| jobs.iter().map(|job| job["id"].as_u64()).collect())
            .unwrap_or_default();
        if listed != own_ids {
            violations.push(format!(
                "build {} lists jobs {listed:?}, the commit has {own_ids:?}",
                build["id"]
            ));
        }
        let all_passed = own.iter().all(|job| job["state"] == "passed");
        let expected = if all_passed { "passed" } else { "error" };
        if build["state"] != expected {
            violations.push(format!(
                "build {} is {}, its jobs make it {expected}",
                build["id"], build["state"]
            ));
        }
    }
    if builds.len() != made.len() {
        violations.push(format!("{} builds for {} commits", builds.len(), made.len()));
    }
    violations
}

/// Checks the final jobs against the commits made, as `(branch, commit)`: each commit has
/// exactly one job per step of `steps`, in that order, on its branch; no job is for
/// anything else; every job passed or ran out of attempts (the commands are `true`), or
/// was skipped because the job before it did not pass; ids run from 1 without a gap
/// (`jobs` sorted by id).
pub fn check_results(jobs: &[Value], made: &[(String, String)], steps: &[&str]) -> Verdict {
    let mut verdict = Verdict::default();
    let made_on: HashMap<&str, &str> =
        made.iter().map(|(branch, commit)| (commit.as_str(), branch.as_str())).collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut names: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut passed_before: HashMap<&str, bool> = HashMap::new();
    for job in jobs {
        let commit = job["commit"].as_str().unwrap_or("");
        *count.entry(commit).or_default() += 1;
        names.entry(commit).or_default().push(job["name"].as_str().unwrap_or(""));
        let earlier_passed = *passed_before.entry(commit).or_insert(true);
        let skipped_after_failure = job["state"] == "skipped" && !earlier_passed;
        if job["state"] != "passed" {
            passed_before.insert(commit, false);
        }
        if skipped_after_failure {
            verdict.errors += 1;
            continue;
        }
        match made_on.get(commit) {
            None => verdict.violations.push(format!("job for a commit never made: {job}")),
            Some(branch) if job["branch"] != *branch => verdict.violations.push(format!(
                "job {} on branch {} for a commit made on {branch}",
                job["id"], job["branch"]
            )),
            Some(_) => {}
        }
        let runner_lost = job["message"].as_str().is_some_and(|m| m.contains("runner lost"));
        match job["state"].as_str() {
            Some("passed") => verdict.passed += 1,
            Some("error") if runner_lost => verdict.errors += 1,
            _ => verdict.violations.push(format!("unexpected final state: {job}")),
        }
    }
    // Job ids are given 1, 2, 3 … and jobs are never forgotten here: a gap is a lost job.
    let ids: Vec<Option<u64>> = jobs.iter().map(|job| job["id"].as_u64()).collect();
    if ids.iter().enumerate().any(|(index, id)| *id != Some(index as u64 + 1)) {
        verdict.violations.push(format!("job ids are not 1 to {}: {ids:?}", jobs.len()));
    }
    for (branch, commit) in made {
        let jobs = count.get(commit.as_str()).copied().unwrap_or(0);
        if jobs != steps.len() {
            verdict.violations.push(format!(
                "commit {commit} on {branch} has {jobs} jobs (expected {})",
                steps.len()
            ));
        } else if names.get(commit.as_str()).is_some_and(|names| names != steps) {
            verdict.violations.push(format!(
                "commit {commit} on {branch} has jobs {:?} (expected {steps:?})",
                names[commit.as_str()]
            ));
        }
    }
    verdict
}

/// The first job that differs between two lists, as text.
fn first_difference(expected: &[Value], actual: &[Value]) -> Option<String> {
    if expected == actual {
        return None;
    }
    for (a, b) in expected.iter().zip(actual) {
        if a != b {
            return Some(format!("{a} vs {b}"));
        }
    }
    Some(format!("{} jobs vs {}", expected.len(), actual.len()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(id: u64, branch: &str, commit: &str, state: &str) -> Value {
        named(id, branch, commit, state, "test")
    }

    fn named(id: u64, branch: &str, commit: &str, state: &str, name: &str) -> Value {
        json!({"id": id, "branch": branch, "commit": commit, "state": state, "attempt": 1,
               "runner": "7", "exit_code": 0, "finished_at": 5, "message": null, "name": name})
    }

    const ONE: [&str; 1] = ["test"];

    #[test]
    fn a_build_of_two_steps_per_commit_is_clean_and_a_skip_needs_a_failure_before() {
        let made = vec![("main".to_owned(), "a".to_owned())];
        let mut lost = named(1, "main", "a", "error", "build");
        lost["message"] = json!("runner lost on attempt 3 of 3: lease expired");
        let jobs = [lost, named(2, "main", "a", "skipped", "test")];
        let verdict = check_results(&jobs, &made, &STEPS);
        assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
        let skipped_for_nothing =
            [named(1, "main", "a", "passed", "build"), named(2, "main", "a", "skipped", "test")];
        assert_eq!(check_results(&skipped_for_nothing, &made, &STEPS).violations.len(), 1);
        let one_missing = [named(1, "main", "a", "passed", "build")];
        assert_eq!(check_results(&one_missing, &made, &STEPS).violations.len(), 1);
        let swapped =
            [named(1, "main", "a", "passed", "test"), named(2, "main", "a", "passed", "build")];
        assert_eq!(check_results(&swapped, &made, &STEPS).violations.len(), 1);

        let passed =
            [named(1, "main", "a", "passed", "build"), named(2, "main", "a", "passed", "test")];
        let build = |state: &str, ids: &[u64]| {
            json!({"id": 1, "commit": "a", "state": state,
                   "jobs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()})
        };
        assert!(check_builds(&[build("passed", &[1, 2])], &passed, &made).is_empty());
        assert_eq!(check_builds(&[build("error", &[1, 2])], &passed, &made).len(), 1);
        assert_eq!(check_builds(&[build("passed", &[1])], &passed, &made).len(), 1);
        assert_eq!(
            check_builds(&[build("passed", &[1, 2]), build("passed", &[1, 2])], &passed, &made)
                .len(),
            2
        );
        assert_eq!(check_builds(&[], &passed, &made).len(), 2);
    }

    fn made() -> Vec<(String, String)> {
        vec![("main".into(), "a".into()), ("side".into(), "b".into())]
    }

    #[test]
    fn one_passed_job_per_commit_on_its_branch_is_clean() {
        let jobs = [job(1, "main", "a", "passed"), job(2, "side", "b", "passed")];
        let verdict = check_results(&jobs, &made(), &ONE);
        assert_eq!(verdict, Verdict { passed: 2, errors: 0, violations: vec![] });
    }

    #[test]
    fn duplicates_gaps_strangers_and_wrong_branches_are_violations() {
        let jobs = [
            job(1, "main", "a", "passed"),
            job(2, "main", "a", "passed"),
            job(3, "main", "c", "passed"),
        ];
        let verdict = check_results(&jobs, &made(), &ONE);
        assert_eq!(verdict.violations.len(), 3, "{:#?}", verdict.violations);
        let gap = check_results(
            &[job(1, "main", "a", "passed"), job(3, "side", "b", "passed")],
            &made(),
            &ONE,
        );
        assert_eq!(gap.violations.len(), 1, "{:#?}", gap.violations);
        let wrong_branch = check_results(
            &[job(1, "main", "a", "passed"), job(2, "main", "b", "passed")],
            &made(),
            &ONE,
        );
        assert_eq!(wrong_branch.violations.len(), 1, "{:#?}", wrong_branch.violations);
    }

    #[test]
    fn only_errors_from_lost_runners_are_legitimate() {
        let mut lost = job(2, "side", "b", "error");
        lost["message"] = json!("runner lost on attempt 3 of 3: lease expired");
        let verdict = check_results(&[job(1, "main", "a", "passed"), lost.clone()], &made(), &ONE);
        assert_eq!(verdict, Verdict { passed: 1, errors: 1, violations: vec![] });
        lost["message"] = json!("checkout failed");
        let failed = job(1, "main", "a", "failed");
        assert_eq!(check_results(&[failed, lost], &made(), &ONE).violations.len(), 2);
    }

    #[test]
    fn a_final_result_that_changes_is_a_violation() {
        let mut seen = Seen::default();
        record(&mut seen, &[job(1, "main", "a", "passed"), job(2, "main", "b", "running")], 0);
        record(&mut seen, &[job(1, "main", "a", "passed")], 1);
        assert!(seen.violations.is_empty());
        assert_eq!(seen.results.len(), 1, "a running job is not a result yet");
        record(&mut seen, &[job(1, "main", "a", "failed")], 2);
        assert_eq!(seen.violations.len(), 1);
    }

    #[test]
    fn the_seed_decides_the_schedule() {
        let draws = |seed| (0..8).map(|_| Rng::new(seed).below(20)).collect::<Vec<_>>();
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_eq!(draws(7), draws(7));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
