//! The end-to-end harness: real `eventide-node` processes on loopback.
//!
//! Each node gets a free port (TCP and UDP), its own data dir and a log file under one
//! temp dir. Tests wait on conditions with deadlines ([`wait_until`]), never on fixed
//! sleeps. Dropping a [`Cluster`] kills every process it started; if the test is failing
//! it first prints every node's log.

pub mod cdp;
pub mod chaos;
pub mod forge;
pub mod forge_world;
pub mod gitserver;
pub mod http;
pub mod netns;
pub mod prometheus;
pub mod repo;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use eventide_api::{JobDoc, JobState, StatusDoc};
use serde_json::Value;
use tempfile::TempDir;

/// The default deadline for a cluster to reach a condition on a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `eventide-node` binary: `EVENTIDE_NODE_BIN` if set, else the one cargo built in
/// the target dir beside this test executable.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EVENTIDE_NODE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/eventide-node
    let profile_dir =
        exe.parent().and_then(Path::parent).expect("test binary in target/<profile>/deps");
    let binary = profile_dir.join("eventide-node");
    assert!(
        binary.exists(),
        "{} not found: build it first (cargo build -p eventide-node) or set EVENTIDE_NODE_BIN",
        binary.display()
    );
    binary
}

/// A free loopback port for both TCP and UDP, never handed out twice by this process.
pub fn free_addr() -> SocketAddr {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..1000 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let addr = tcp.local_addr().expect("local addr");
        if UdpSocket::bind(addr).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().expect("port registry");
        if given.get_or_insert_with(HashSet::new).insert(addr.port()) {
            return addr;
        }
    }
    panic!("no free loopback port");
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics after `deadline`
/// saying what was awaited.
pub fn wait_until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the CLI with `args` and returns its output.
pub fn cli(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("EVENTIDE_NODE")
        .stdin(Stdio::null())
        .output()
        .expect("run eventide-node")
}

/// One `eventide-node run` process and what it needs to be restarted.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    /// A command the node is started under, e.g. `ip netns exec NS` (empty: none).
    launcher: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `GET /api/v1/status` of this node as JSON, if it answers.
    pub fn status(&self) -> Option<Value> {
        self.get_json("/api/v1/status")
    }

    /// `GET /api/v1/status` of this node, typed, if it answers with a valid document.
    pub fn status_doc(&self) -> Option<StatusDoc> {
        serde_json::from_value(self.status()?).ok()
    }

    /// `GET /api/v1/jobs?...` of this node as JSON, if it answers.
    pub fn jobs(&self, query: &str) -> Option<Vec<Value>> {
        serde_json::from_value(self.get_json(&format!("/api/v1/jobs?limit=1000&{query}"))?).ok()
    }

    /// `GET /api/v1/jobs?...` of this node, typed, if it answers with valid documents.
    pub fn job_docs(&self, query: &str) -> Option<Vec<JobDoc>> {
        serde_json::from_value(self.get_json(&format!("/api/v1/jobs?limit=1000&{query}"))?).ok()
    }

    fn get_json(&self, path: &str) -> Option<Value> {
        let (code, body) = http::get(self.addr, path).ok()?;
        (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    /// `POST /api/v1/notify`: an immediate observer round.
    pub fn notify(&self) {
        let _ = http::post(self.addr, "/api/v1/notify", "");
    }

    /// This node's id, as its status reports it.
    pub fn id(&self) -> Option<String> {
        self.status_doc().map(|status| status.node.id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The one job of `commit` among `jobs` (a test fails if there is not exactly one).
pub fn job_for<'a>(jobs: &'a [Value], commit: &str) -> &'a Value {
    let matching: Vec<&Value> = jobs.iter().filter(|j| j["commit"] == commit).collect();
    assert_eq!(matching.len(), 1, "exactly one job for {commit}: {jobs:#?}");
    matching[0]
}

/// `GET /api/v1/jobs/{id}` of `node`, which must answer 200.
pub fn job_detail(node: &Node, id: &Value) -> Value {
    let (code, body) = http::get(node.addr, &format!("/api/v1/jobs/{id}")).expect("get job");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("job json")
}

/// `GET /api/v1/jobs/{id}/log` of `node`, which must answer 200.
pub fn job_log(node: &Node, id: &Value) -> String {
    let (code, body) = http::get(node.addr, &format!("/api/v1/jobs/{id}/log")).expect("get log");
    assert_eq!(code, 200, "{body}");
    body
}

/// True for the states a job ends in.
pub fn is_final(job: &Value) -> bool {
    job["state"].as_str().and_then(JobState::try_parse).is_some_and(JobState::is_final)
}

/// Waits until node `index` lists at least `count` jobs and all of them are final;
/// returns them, newest first.
pub fn wait_for_final_jobs(
    cluster: &Cluster,
    index: usize,
    count: usize,
    deadline: Duration,
) -> Vec<Value> {
    wait_until(&format!("{count} final jobs on {}", cluster.nodes[index].name), deadline, || {
        let jobs = cluster.nodes[index].jobs("")?;
        (jobs.len() >= count && jobs.iter().all(is_final)).then_some(jobs)
    })
}

/// Options for the nodes of a cluster.
#[derive(Clone, Debug)]
pub struct Options {
    pub bootstrap_expect: usize,
    /// Extra `run` flags for every node.
    pub extra: Vec<String>,
    /// A cluster secret: written to a file per node and passed as `--secret-file`.
    pub secret: Option<String>,
    /// Extra environment variables for every node process.
    pub env: Vec<(String, String)>,
    /// Extra `run` flags for the node at each index (after `extra`); nodes past the end
    /// get none.
    pub per_node: Vec<Vec<String>>,
}

impl Options {
    /// Nodes that watch the repository at `url` and poll it every 200 ms.
    pub fn watching(url: String) -> Options {
        let extra = vec!["--repo".into(), url, "--poll-interval".into(), "200ms".into()];
        Options { extra, ..Options::default() }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bootstrap_expect: 3,
            extra: Vec::new(),
            secret: None,
            env: Vec::new(),
            per_node: Vec::new(),
        }
    }
}

/// A set of node processes sharing one temp dir.
pub struct Cluster {
    pub nodes: Vec<Node>,
    options: Options,
    dir: TempDir,
    /// Node ids by index, as learned by [`Cluster::learn_ids`].
    ids: Mutex<Vec<Option<String>>>,
}

impl Cluster {
    /// Starts `count` nodes, each seeded with every other's address.
    pub fn start(count: usize, options: Options) -> Cluster {
        let addrs: Vec<SocketAddr> = (0..count).map(|_| free_addr()).collect();
        Cluster::start_at(&addrs, vec![Vec::new(); count], options)
    }

    /// Starts one node per address, node `i` under the command `launchers[i]` (e.g.
    /// `ip netns exec NS` for a node in a network namespace), each seeded with every
    /// other's address.
    pub fn start_at(
        addrs: &[SocketAddr],
        launchers: Vec<Vec<String>>,
        options: Options,
    ) -> Cluster {
        let dir = tempfile::Builder::new().prefix("eventide-e2e-").tempdir().expect("temp dir");
        let mut cluster = Cluster { nodes: Vec::new(), options, dir, ids: Mutex::new(Vec::new()) };
        for ((index, addr), launcher) in addrs.iter().enumerate().zip(launchers) {
            let seeds: Vec<SocketAddr> = addrs.iter().copied().filter(|a| a != addr).collect();
            cluster.add_node(&format!("n{}", index + 1), *addr, &seeds, launcher);
        }
        cluster
    }

    /// Starts one more node seeded with the existing ones; returns its index.
    pub fn add(&mut self) -> usize {
        let seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let name = format!("n{}", self.nodes.len() + 1);
        self.add_node(&name, free_addr(), &seeds, Vec::new());
        self.nodes.len() - 1
    }

    /// Three servers with no runner slots (a cluster secret, polling every 200 ms) and
    /// then one node with `--server-eligible false`, the only runner; returns the cluster,
    /// the client's index and its id once it answers as a client served by a server.
    pub fn servers_and_a_client_runner(secret: &str) -> (Cluster, usize, String) {
        let servers_only = vec!["--runner-slots".to_owned(), "0".to_owned()];
        let options = Options {
            secret: Some(secret.to_owned()),
            extra: vec!["--poll-interval".into(), "200ms".into()],
            per_node: vec![servers_only.clone(), servers_only.clone(), servers_only],
            ..Options::default()
        };
        let mut cluster = Cluster::start(3, options);
        cluster.wait_for_agreed_leader();
        let client = cluster.add_with(&["--server-eligible", "false"]);
        let client_id = wait_until("the client to answer", DEADLINE, || {
            let status = cluster.nodes[client].status()?;
            let nodes = status["nodes"].as_array()?;
            let me = nodes.iter().find(|n| n["id"] == status["node"]["id"])?;
            (me["role"] == "client" && status["served_by"]["id"] != status["node"]["id"])
                .then(|| status["node"]["id"].as_str().map(str::to_owned))
                .flatten()
        });
        (cluster, client, client_id)
    }

    /// Like [`Cluster::add`], with extra `run` flags for the new node only.
    pub fn add_with(&mut self, flags: &[&str]) -> usize {
        let index = self.nodes.len();
        self.options.per_node.resize(index + 1, Vec::new());
        self.options.per_node[index] = flags.iter().map(|f| f.to_string()).collect();
        self.add()
    }

    fn add_node(
        &mut self,
        name: &str,
        addr: SocketAddr,
        seeds: &[SocketAddr],
        launcher: Vec<String>,
    ) {
        let data_dir = self.dir.path().join(name);
        let log = self.dir.path().join(format!("{name}.log"));
        let mut args: Vec<String> = vec![
            "run".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            addr.to_string(),
            "--name".into(),
            name.into(),
            "--bootstrap-expect".into(),
            self.options.bootstrap_expect.to_string(),
        ];
        for seed in seeds {
            args.push("--seed".into());
            args.push(seed.to_string());
        }
        if let Some(secret) = &self.options.secret {
            let path = self.dir.path().join(format!("{name}.secret"));
            std::fs::write(&path, format!("{secret}\n")).expect("write secret file");
            args.push("--secret-file".into());
            args.push(path.display().to_string());
        }
        args.extend(self.options.extra.iter().cloned());
        if let Some(flags) = self.options.per_node.get(self.nodes.len()) {
            args.extend(flags.iter().cloned());
        }
        let env = self.options.env.clone();
        let mut node =
            Node { name: name.into(), addr, data_dir, log, args, launcher, env, child: None };
        spawn(&mut node);
        self.nodes.push(node);
    }

    /// kill -9.
    pub fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status.
    pub fn stop(&mut self, index: usize) -> std::process::ExitStatus {
        let node = &mut self.nodes[index];
        let mut child = node.child.take().expect("node is running");
        let sent = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "failed to send SIGTERM");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop after SIGTERM", node.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to a running node.
    pub fn signal(&self, index: usize, signal: &str) {
        let pid = self.nodes[index].pid().expect("node is running");
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "failed to send SIG{signal}");
    }

    /// The index of the node whose id is `id`, whether it answers or not (from the ids
    /// nodes reported while they answered).
    pub fn index_by_id(&self, id: &str) -> Option<usize> {
        self.ids.lock().expect("ids").iter().position(|known| known.as_deref() == Some(id))
    }

    /// Records every running node's id, so that later a dead node can still be named.
    pub fn learn_ids(&self) {
        let mut ids = self.ids.lock().expect("ids");
        ids.resize(self.nodes.len(), None);
        for (index, node) in self.nodes.iter().enumerate() {
            if ids[index].is_none() && node.is_running() {
                ids[index] = node.id();
            }
        }
    }

    /// Starts a stopped node again with the same data dir and flags.
    pub fn restart(&mut self, index: usize) {
        assert!(!self.nodes[index].is_running(), "restart of a running node");
        spawn(&mut self.nodes[index]);
    }

    /// Statuses of every running node that answers, as JSON.
    pub fn statuses(&self) -> Vec<(usize, Value)> {
        self.running().filter_map(|i| self.nodes[i].status().map(|s| (i, s))).collect()
    }

    /// Statuses of every running node that answers, typed.
    pub fn status_docs(&self) -> Vec<(usize, StatusDoc)> {
        self.running().filter_map(|i| self.nodes[i].status_doc().map(|s| (i, s))).collect()
    }

    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].is_running())
    }

    /// Waits until every running node reports the same leader, itself a running node;
    /// returns its index.
    pub fn wait_for_agreed_leader(&self) -> usize {
        let running: Vec<usize> = self.running().collect();
        wait_until("every running node to agree on a running leader", DEADLINE, || {
            let ids: Vec<Option<String>> = running
                .iter()
                .map(|&i| self.nodes[i].status_doc().and_then(|s| s.leader).map(|leader| leader.id))
                .collect();
            let first = ids.first()?.clone()?;
            if !ids.iter().all(|id| id.as_deref() == Some(first.as_str())) {
                return None;
            }
            self.index_of(&first)
        })
    }

    /// The index of the node with id `id`, asking each running node for its own id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.running().find(|&i| self.nodes[i].id().as_deref() == Some(id))
    }

    /// Prints every node's log to stderr (the test's captured output).
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            eprintln!("===== log of {} ({}) =====", node.name, node.addr);
            let text = node.log_text();
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(300)..] {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn(node: &mut Node) {
    let log: File = OpenOptions::new().create(true).append(true).open(&node.log).expect("open log");
    let mut command = match node.launcher.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary());
            command
        }
        None => Command::new(binary()),
    };
    let child = command
        .args(&node.args)
        .env("EVENTIDE_LOG", "info,openraft=error,chitchat=warn")
        // The suite's jobs run unsandboxed unless a test asks for the sandbox (with
        // `--sandbox`, which beats this, or in its own environment): many of them wait
        // on files of the test or look at the runner's processes.
        .env("EVENTIDE_SANDBOX", "none")
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn eventide-node");
    node.child = Some(child);
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
