//! Real network partitions for end-to-end tests: one Linux network namespace per node.
//!
//! A [`Network`] owns a subnet `10.77.X.0/24`, a bridge `evcX` in the root namespace
//! holding `10.77.X.254` (so the test process reaches every node directly), and per host
//! `i` a namespace `evcXn<i>` joined to the bridge by a veth pair (`evcXh<i>` on the bridge
//! side, `eth0` inside) with the address `10.77.X.<i+1>`. A partition is a set of nftables
//! DROP rules inside each namespace (table `inet eventide_chaos`) against the hosts on the
//! other side; traffic with the test process is never cut.
//!
//! ```text
//!   root ns: bridge evcX 10.77.X.254 ── evcXh0 ═ eth0 [ns evcXn0] 10.77.X.1
//!                                    ── evcXh1 ═ eth0 [ns evcXn1] 10.77.X.2 ...
//! ```
//!
//! `X` is reserved atomically by creating the bridge (creating an existing link fails), and
//! the bridge's alias names the owning process. A bridge whose owner is gone is a leftover
//! of a killed run: it and the namespaces with its prefix are removed before `X` is reused.
//! Dropping a [`Network`] kills whatever still runs in its namespaces and removes them and
//! the bridge, also when the test panics.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

/// The nftables table a partition lives in, inside a host's namespace.
const TABLE: &str = "eventide_chaos";

/// What the bridge alias of a run starts with.
const OWNER_TAG: &str = "eventide-chaos";

/// One host: a namespace with one address on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    pub namespace: String,
    pub addr: Ipv4Addr,
    /// The bridge side of the veth pair (in the root namespace).
    pub veth: String,
}

/// A bridge and its hosts, removed on drop.
#[derive(Debug)]
pub struct Network {
    pub subnet: u8,
    pub bridge: String,
    pub hosts: Vec<Host>,
}

/// Runs `program args` and returns its output; panics if it cannot be started.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("failed to run {program}: {error}"))
}

/// Runs `ip args`, panicking with its stderr if it fails.
fn ip(args: &[&str]) {
    let output = run("ip", args);
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Checks what partitions need: root, `ip` and `nft`. Panics with what is missing.
pub fn require_privileges() {
    let uid = run("id", &["-u"]);
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_owned();
    assert_eq!(
        uid, "0",
        "the chaos tests create network namespaces and firewall rules: run them as root (uid is {uid})"
    );
    for tool in ["ip", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "`{tool}` not found: install iproute2 and nftables (see .ci/run)");
    }
}

/// The identity of this process: pid and start time (a reused pid has another start time).
fn owner_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time) counts from after the ")" that ends the command name.
    let rest = stat.rsplit_once(')')?.1;
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{OWNER_TAG} pid={pid} start={start}"))
}

/// True if the bridge `name`'s alias names a process that is still alive.
fn owner_alive(name: &str) -> bool {
    let output = run("ip", &["-o", "link", "show", "dev", name]);
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(alias) = text.split("alias ").nth(1).map(str::trim) else {
        // Created but not yet tagged: its owner is between two commands.
        return true;
    };
    if !alias.starts_with(OWNER_TAG) {
        // Not ours at all: never touch it.
        return true;
    }
    let pid = alias
        .split_whitespace()
        .find_map(|field| field.strip_prefix("pid="))
        .and_then(|pid| pid.parse::<u32>().ok());
    pid.and_then(owner_of).as_deref() == Some(alias)
}

/// Namespaces whose name starts with `prefix`.
fn namespaces_with(prefix: &str) -> Vec<String> {
    let output = run("ip", &["netns", "list"]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Kills every process in `namespace` and removes it (its veth pair goes with it).
fn remove_namespace(namespace: &str) {
    let pids = run("ip", &["netns", "pids", namespace]);
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = run("kill", &["-9", pid]);
    }
    let _ = run("ip", &["netns", "del", namespace]);
}

/// Removes the namespaces and veth pairs of subnet `subnet` (never the bridge).
fn remove_namespaces(subnet: u8) {
    for namespace in namespaces_with(&format!("evc{subnet}n")) {
        remove_namespace(&namespace);
    }
    // A namespace takes its veth pair with it, but asynchronously: remove them now.
    let output = run("ip", &["-o", "link", "show"]);
    let prefix = format!("evc{subnet}h");
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split(": ").nth(1).and_then(|n| n.split('@').next()).unwrap_or("");
        if name.starts_with(&prefix) {
            let _ = run("ip", &["link", "del", "dev", name]);
        }
    }
}

impl Network {
    /// Creates a bridge on a free subnet and `count` hosts on it.
    pub fn create(count: usize) -> Network {
        require_privileges();
        assert!((1..=200).contains(&count), "1 to 200 hosts");
        let owner = owner_of(std::process::id()).expect("own /proc entry");
        let first = (std::process::id() % 250) as u8;
        for offset in 0..250u8 {
            let subnet = first.wrapping_add(offset) % 250;
            let bridge = format!("evc{subnet}");
            let exists = run("ip", &["link", "show", "dev", &bridge]).status.success();
            if exists && owner_alive(&bridge) {
                continue;
            }
            if exists {
                remove_namespaces(subnet);
                let _ = run("ip", &["link", "del", "dev", &bridge]);
            }
            // Another user of this subnet (not ours): leave it alone.
            let route = run("ip", &["-4", "route", "show", &format!("10.77.{subnet}.0/24")]);
            if !String::from_utf8_lossy(&route.stdout).trim().is_empty() {
                continue;
            }
            // Creating the link is the reservation: it fails if another run won the race.
            if !run("ip", &["link", "add", "name", &bridge, "type", "bridge"]).status.success() {
                continue;
            }
            let mut network = Network { subnet, bridge, hosts: Vec::new() };
            ip(&["link", "set", "dev", &network.bridge, "alias", &owner]);
            // Leftovers of a run killed between creating its namespaces and its bridge.
            remove_namespaces(subnet);
            let root_addr = format!("10.77.{subnet}.254/24");
            ip(&["addr", "add", &root_addr, "dev", &network.bridge]);
            ip(&["link", "set", "dev", &network.bridge, "up"]);
            for index in 0..count {
                network.add_host(index);
            }
            return network;
        }
        panic!("no free subnet 10.77.X.0/24 for a test network");
    }

    fn add_host(&mut self, index: usize) {
        let namespace = format!("evc{}n{index}", self.subnet);
        let veth = format!("evc{}h{index}", self.subnet);
        let addr = Ipv4Addr::new(10, 77, self.subnet, index as u8 + 1);
        ip(&["netns", "add", &namespace]);
        // Recorded before the next step so that a failure still removes it on drop.
        self.hosts.push(Host { namespace: namespace.clone(), addr, veth: veth.clone() });
        ip(&[
            "link", "add", "name", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &namespace,
        ]);
        ip(&["link", "set", "dev", &veth, "master", &self.bridge, "up"]);
        let inside = ["netns", "exec", namespace.as_str(), "ip"];
        let cidr = format!("{addr}/24");
        ip(&[&inside[..], &["addr", "add", &cidr, "dev", "eth0"]].concat());
        ip(&[&inside[..], &["link", "set", "dev", "eth0", "up"]].concat());
        ip(&[&inside[..], &["link", "set", "dev", "lo", "up"]].concat());
    }

    /// The command prefix that runs a program inside host `index`'s namespace.
    pub fn launcher(&self, index: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.hosts[index].namespace.clone()]
    }

    /// Cuts the network into `groups` (indices of hosts): a host keeps talking to the hosts
    /// of its own group only. A host in no group talks to nobody. Replaces any partition.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        self.heal();
        for index in 0..self.hosts.len() {
            let group = groups.iter().find(|g| g.contains(&index));
            let others: Vec<String> = (0..self.hosts.len())
                .filter(|&other| other != index && group.is_none_or(|g| !g.contains(&other)))
                .map(|other| self.hosts[other].addr.to_string())
                .collect();
            if others.is_empty() {
                continue;
            }
            let set = others.join(", ");
            let rules = format!(
                "table inet {TABLE} {{\n\
                 chain input {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} drop; }}\n\
                 chain output {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} drop; }}\n\
                 }}\n"
            );
            self.nft(index, &rules);
        }
    }

    fn nft(&self, index: usize, rules: &str) {
        let namespace = &self.hosts[index].namespace;
        let mut child = Command::new("ip")
            .args(["netns", "exec", namespace, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft");
        child.stdin.take().expect("nft stdin").write_all(rules.as_bytes()).expect("nft rules");
        let output = child.wait_with_output().expect("wait for nft");
        assert!(
            output.status.success(),
            "nft in {namespace}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    /// Removes every partition rule and brings every link up.
    pub fn heal(&self) {
        for host in &self.hosts {
            // Fails harmlessly where there is no table.
            let _ = run(
                "ip",
                &["netns", "exec", &host.namespace, "nft", "delete", "table", "inet", TABLE],
            );
            self.set_link(host, "up");
        }
    }

    /// Takes host `index`'s veth down: it is cut from everyone, the test process included.
    pub fn link_down(&self, index: usize) {
        self.set_link(&self.hosts[index], "down");
    }

    fn set_link(&self, host: &Host, state: &str) {
        ip(&["link", "set", "dev", &host.veth, state]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &self.hosts {
            remove_namespace(&host.namespace);
        }
        remove_namespaces(self.subnet);
        let _ = run("ip", &["link", "del", "dev", &self.bridge]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subnet [`Network::create`] never picks (it uses 0 to 249).
    const SPARE: u8 = 251;

    #[test]
    fn leftovers_of_a_dead_run_are_recognised_and_removed() {
        require_privileges();
        let bridge = format!("evc{SPARE}");
        let namespace = format!("evc{SPARE}n0");
        remove_namespaces(SPARE);
        let _ = run("ip", &["link", "del", "dev", &bridge]);

        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        assert!(owner_alive(&bridge), "an untagged bridge may be another run's, mid-setup");
        let mine = owner_of(std::process::id()).expect("own /proc entry");
        ip(&["link", "set", "dev", &bridge, "alias", &mine]);
        assert!(owner_alive(&bridge), "this process is alive");
        // pid_max is at most 2^22: this pid never exists.
        let dead = format!("{OWNER_TAG} pid=99999999 start=1");
        ip(&["link", "set", "dev", &bridge, "alias", &dead]);
        assert!(!owner_alive(&bridge));

        ip(&["netns", "add", &namespace]);
        let veth = format!("evc{SPARE}h0");
        ip(&[
            "link", "add", "name", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &namespace,
        ]);
        remove_namespaces(SPARE);
        assert!(namespaces_with(&format!("evc{SPARE}n")).is_empty());
        assert!(!run("ip", &["link", "show", "dev", &veth]).status.success(), "veth removed");
        ip(&["link", "del", "dev", &bridge]);
    }
}
