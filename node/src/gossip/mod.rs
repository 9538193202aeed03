//! Gossip membership over chitchat: who is alive, where to reach them, their Raft role
//! and runner load. Liveness and load travel here, never through Raft; nothing that
//! decides membership or job ownership is taken from gossip alone.
//!
//! - `keys`: the published keys, written and read by one struct ([`NodeKeys`]).
//! - `member`: the typed [`Member`] view of a peer, built from its keys.
//! - `servers`: the pure rules of what a node is to the cluster (server or client) and
//!   which servers a client asks, from the members' keys.
//! - `filter`: chitchat's transport behind a filter (the pace, the admission gate).
//! - `pace`: a client starts its own gossip rounds less often than a server.
//! - `admission`: with a cluster secret, the transport that drops datagrams of peers
//!   that have not proven it over TCP.
//!   Its messages and pure checks are `eventide_node::protocol::admit` (in the library,
//!   so that they can be fuzzed).

mod admission;
mod filter;
mod keys;
mod member;
mod pace;
mod servers;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use eventide_consensus::auth::Secret;
use eventide_consensus::network::RpcClient;
use eventide_consensus::NodeId;
use tokio::sync::watch;
use tracing::info;

use self::admission::Gate;
use self::filter::Filtered;
use self::keys::NodeKeys;
pub use self::keys::Servers;
#[cfg(test)]
pub(crate) use self::member::member_for_test;
pub use self::member::{newest_generations, Member, Sighting};
use self::pace::Pace;
pub use self::pace::RoundCounts;
pub use self::servers::{effective_role, newest_leader, servers};
pub use eventide_api::RaftRole;

/// Separates Eventide's gossip from any other chitchat traffic on the network (with a
/// secret, the cluster id is a keyed hash of it instead).
const CLUSTER_ID: &str = "eventide";

/// What this node says about itself when it starts.
pub struct SelfInfo {
    pub id: NodeId,
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    pub name: String,
    pub slots: u32,
    pub labels: Vec<String>,
    pub seeds: Vec<String>,
    pub interval: Duration,
    /// `--client-gossip-interval`: the pace of this node's own rounds while a client.
    pub client_interval: Duration,
    /// `--server-eligible`: autopilot may make this node a Raft member.
    pub server_eligible: bool,
    /// Sends the admission handshake; its signer's secret (if any) turns admission on.
    pub rpc: RpcClient,
}

/// This node's gossip participant.
pub struct Gossip {
    handle: ChitchatHandle,
    interval: Duration,
    /// Admission of peers (with a cluster secret only).
    gate: Option<Arc<Gate>>,
    /// How often this node starts rounds of its own.
    pace: Arc<Pace>,
    /// What this node publishes; every change goes through [`Gossip::update`].
    keys: Mutex<NodeKeys>,
    /// Jobs running here, for this node's own metrics. Not gossiped: every job changed it
    /// twice and each change went to every node, half of what a busy 100-node cluster
    /// did; `status` counts a node's running jobs in the replicated state instead.
    busy: AtomicU32,
    /// Each node's keys as last parsed, with the chitchat version they were parsed at:
    /// a member is parsed again only when one of its keys changed, not on every look.
    parsed: Mutex<HashMap<ChitchatId, (u64, Option<Member>)>>,
}

impl Gossip {
    /// Starts gossiping on `listen` (UDP). The generation is the start time, so peers
    /// take a restarted node's keys over its old ones.
    pub async fn start(me: SelfInfo) -> anyhow::Result<Gossip> {
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let failure_detector = FailureDetectorConfig {
            phi_threshold: 8.0,
            sampling_window_size: 1_000,
            max_interval: Duration::from_secs(10),
            // Judge a young peer by the real gossip rate, not chitchat's 5 s default.
            initial_interval: me.interval,
            // Forget dead incarnations after a while; restarts appear as new ones.
            dead_node_grace_period: Duration::from_secs(10 * 60),
        };
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(me.id.to_string(), generation, me.advertise),
            cluster_id: me
                .rpc
                .signer()
                .secret()
                .map_or_else(|| CLUSTER_ID.to_owned(), Secret::gossip_cluster_id),
            gossip_interval: me.interval,
            listen_addr: me.listen,
            seed_nodes: me.seeds.clone(),
            failure_detector_config: failure_detector,
            marked_for_deletion_grace_period: Duration::from_secs(60 * 60),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let keys = NodeKeys {
            api: me.advertise,
            name: me.name.clone(),
            raft: RaftRole::None,
            slots: me.slots,
            labels: me.labels.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runner_paused: None,
            sandbox: None,
            limits: None,
            leaving: false,
            server_eligible: me.server_eligible,
            servers: None,
        };
        let initial =
            keys.to_pairs().into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        let gate = Gate::new(&me.rpc, me.advertise, me.listen)?;
        let pace = Pace::new(me.interval, me.client_interval);
        let started = match &gate {
            Some(gate) => {
                let inner = Filtered { inner: UdpTransport, filter: gate.clone() };
                spawn_chitchat(config, initial, &Filtered { inner, filter: pace.clone() }).await
            }
            None => {
                let transport = Filtered { inner: UdpTransport, filter: pace.clone() };
                spawn_chitchat(config, initial, &transport).await
            }
        };
        let handle =
            started.with_context(|| format!("failed to start gossip on udp {}", me.listen))?;
        info!(generation, seeds = ?me.seeds, admission = gate.is_some(), "gossip started");
        let keys = Mutex::new(keys);
        Ok(Gossip {
            handle,
            interval: me.interval,
            gate,
            pace,
            keys,
            busy: AtomicU32::new(0),
            parsed: Mutex::new(HashMap::new()),
        })
    }

    /// The admission handshake's route, to mount among the signed internal routes (none
    /// without a secret).
    pub fn admission_routes(&self) -> Router {
        self.gate.as_ref().map_or_else(Router::new, Gate::routes)
    }

    /// Proves over TCP that the node at `addr` holds the cluster secret (always true
    /// without a secret). Membership changes ask this, never gossip alone.
    pub async fn prove_peer(&self, addr: &str) -> anyhow::Result<()> {
        match &self.gate {
            Some(gate) => gate.prove(addr).await,
            None => Ok(()),
        }
    }

    /// Changes this node's keys and publishes the values that changed. The change is made
    /// under chitchat's lock, so concurrent updates cannot publish an older set of keys
    /// over a newer one.
    async fn update(&self, mut change: impl FnMut(&mut NodeKeys)) {
        self.handle
            .with_chitchat(|chitchat| {
                let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
                change(&mut keys);
                let state = chitchat.self_node_state();
                for (key, value) in keys.to_pairs() {
                    if state.get(key) != Some(value.as_str()) {
                        state.set(key, &value);
                    }
                }
            })
            .await;
    }

    /// Paces this node's own gossip rounds as a client of a formed cluster (`true`) or
    /// as a server or a node still forming one (`false`).
    pub fn set_client_pace(&self, client: bool) {
        self.pace.set_client(client);
    }

    /// How many gossip rounds this node started, and held back at the client pace.
    pub fn round_counts(&self) -> RoundCounts {
        self.pace.counts()
    }

    /// Publishes this node's role and, on the leader, its servers.
    pub async fn set_raft_role(&self, role: RaftRole, servers: Option<Servers>) {
        self.update(|keys| {
            keys.raft = role;
            keys.servers.clone_from(&servers);
        })
        .await;
    }

    /// Notes how many jobs run here (this node's `eventide_runner_busy_slots`).
    pub fn set_busy(&self, busy: u32) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// How many jobs run here, as last noted.
    pub fn busy(&self) -> u32 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Publishes why this node's runner does not claim jobs (`None`: it does).
    pub async fn set_runner_paused(&self, reason: Option<&str>) {
        self.update(|keys| keys.runner_paused = reason.map(str::to_owned)).await;
    }

    /// Publishes how this node's runner isolates jobs (`bwrap`, `cgroup v1`).
    pub async fn set_isolation(&self, sandbox: &str, limits: &str) {
        self.update(|keys| {
            keys.sandbox = Some(sandbox.to_owned());
            keys.limits = Some(limits.to_owned());
        })
        .await;
    }

    /// Every node gossip knows of (self included), one entry per node id.
    pub async fn members(&self) -> Vec<Member> {
        self.handle
            .with_chitchat(|chitchat| {
                let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
                let states = chitchat.node_states();
                let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
                parsed.retain(|id, _| states.contains_key(id));
                let sightings: Vec<Member> = states
                    .iter()
                    .filter_map(|(id, state)| {
                        let version = state.max_version();
                        let entry = parsed.entry(id.clone()).or_insert((u64::MAX, None));
                        if entry.0 != version {
                            let values = |key: &str| state.get(key).map(str::to_owned);
                            let member = Member::try_from_sighting(&Sighting {
                                node_id: &id.node_id,
                                generation: id.generation_id,
                                gossip_addr: id.gossip_advertise_addr,
                                alive: true,
                                values: &values,
                            });
                            *entry = (version, member);
                        }
                        // Liveness is the failure detector's, read on every look; a node
                        // that said it is leaving stays not alive.
                        let mut member = entry.1.clone()?;
                        member.alive = member.alive && live.contains(id);
                        Some(member)
                    })
                    .collect();
                newest_generations(sightings)
            })
            .await
    }

    /// Fires whenever a node joins, leaves or changes a key.
    pub async fn changes(&self) -> watch::Receiver<()> {
        let mut live = self.handle.with_chitchat(|chitchat| chitchat.live_nodes_watcher()).await;
        let (sender, receiver) = watch::channel(());
        tokio::spawn(async move {
            while live.changed().await.is_ok() {
                if sender.send(()).is_err() {
                    break;
                }
            }
        });
        receiver
    }

    /// Announces that this node is leaving, lets a few gossip rounds carry it, then stops.
    pub async fn leave(&self) {
        self.update(|keys| keys.leaving = true).await;
        tokio::time::sleep(self.interval * 3).await;
        if let Err(error) = self.handle.initiate_shutdown() {
            tracing::warn!(error = %error, "gossip did not stop cleanly");
        }
    }
}
