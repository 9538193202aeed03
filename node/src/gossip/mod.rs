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
//! - `socket`: the one UDP socket the node's chitchat instances share.
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
mod socket;
#[cfg(test)]
mod tick_test;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use chitchat::transport::Transport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, Heartbeat,
    NodeState,
};
use eventide_consensus::auth::Secret;
use eventide_consensus::network::RpcClient;
use eventide_consensus::NodeId;
use tokio::sync::{watch, RwLock};
use tracing::{info, warn};

use self::admission::Gate;
use self::filter::Filtered;
use self::keys::NodeKeys;
pub use self::keys::Servers;
#[cfg(test)]
pub(crate) use self::member::member_for_test;
pub use self::member::{newest_generations, Member, Sighting};
use self::pace::Pace;
pub use self::pace::RoundCounts;
use self::servers::leader_among;
pub use self::servers::{effective_role, servers};
use self::socket::{Shared, Switch};
pub use eventide_api::RaftRole;

/// Separates Eventide's gossip from any other chitchat traffic on the network (with a
/// secret, the cluster id is a keyed hash of it instead).
const CLUSTER_ID: &str = "eventide";

/// How long a node must have been a client of a formed cluster before its gossip ticks
/// at the client pace: a node that is only passing through the client role on its way
/// to a server (while a cluster forms, or while autopilot adds it) keeps the full pace.
const SLOW_AFTER: Duration = Duration::from_secs(10);

/// After a re-tick, the peers that were alive count as alive for at most this long
/// while the new instance hears from them again (chitchat judges a peer alive from its
/// third heartbeat on, which takes a few messages).
const CARRY_GRACE: Duration = Duration::from_secs(5);

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
///
/// chitchat ticks at the interval it was started with: every tick it updates the
/// liveness of every member and builds a digest naming all of them, so on a client of a
/// large cluster its tick is most of what the node does at idle. A node that settles as
/// a client (for [`SLOW_AFTER`]) therefore runs a chitchat instance that ticks at
/// `--client-gossip-interval`, and a node that becomes a server one that ticks at
/// `--gossip-interval` again ([`Gossip::set_client_pace`]). The new instance keeps the
/// node's identity (same id and generation: peers see one node throughout) and the
/// socket, and starts from what the old one knew: every live member's keys at their
/// versions, this node's own keys at newer versions, its heartbeat where the old one
/// left it.
pub struct Gossip {
    /// The running chitchat instance. Readers share it; a re-tick replaces it.
    instance: RwLock<Instance>,
    /// What starting an instance needs.
    spawn: Spawn,
    interval: Duration,
    client_interval: Duration,
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
    /// Fires when any instance's live members or their keys change.
    changed: watch::Sender<()>,
    /// Keys of any node taken in by gossip so far, counted as they arrive.
    key_changes: Arc<AtomicU64>,
    /// The leader as last worked out, for the next look that comes before a change.
    leader_seen: Mutex<LeaderSeen>,
    /// Since when this node has been a client of a formed cluster, as last told.
    client_since: Mutex<Option<Instant>>,
    /// The members alive before the last re-tick, until the new instance sees as many.
    carried: Mutex<Option<Carried>>,
    /// Set by [`Gossip::leave`]: no more re-ticks.
    leaving: AtomicBool,
}

/// The leader [`Gossip::leader`] found last, and how far gossip had got when it looked.
struct LeaderSeen {
    /// Marked unchanged at each look: changed since means look again.
    changes: watch::Receiver<()>,
    /// `Gossip::key_changes` at the last look.
    keys_seen: u64,
    /// Whether `leader` is the answer of a look (false until the first).
    looked: bool,
    leader: Option<Member>,
}

/// A running chitchat instance and how often it ticks.
struct Instance {
    handle: ChitchatHandle,
    interval: Duration,
    /// Whether this instance's datagrams pass.
    switch: Switch,
}

/// Everything an instance is started from, but its tick.
struct Spawn {
    chitchat_id: ChitchatId,
    cluster_id: String,
    listen: SocketAddr,
    seeds: Vec<String>,
    socket: Shared,
}

/// Peers alive in the instance before a re-tick.
struct Carried {
    until: Instant,
    alive: HashSet<ChitchatId>,
}

/// What an instance knew, to start the next one from.
struct Knowledge {
    heartbeat: Heartbeat,
    max_version: u64,
    others: Vec<NodeState>,
    alive: HashSet<ChitchatId>,
}

impl Gossip {
    /// Starts gossiping on `listen` (UDP). The generation is the start time, so peers
    /// take a restarted node's keys over its old ones.
    pub async fn start(me: SelfInfo) -> anyhow::Result<Gossip> {
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let cluster_id = me
            .rpc
            .signer()
            .secret()
            .map_or_else(|| CLUSTER_ID.to_owned(), Secret::gossip_cluster_id);
        let socket = Shared::bind(me.listen)
            .await
            .with_context(|| format!("failed to start gossip on udp {}", me.listen))?;
        let spawn = Spawn {
            chitchat_id: ChitchatId::new(me.id.to_string(), generation, me.advertise),
            cluster_id,
            listen: me.listen,
            seeds: me.seeds.clone(),
            socket,
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
        let (changed, _) = watch::channel(());
        let switch = Switch::on();
        let handle = start_instance(&spawn, me.interval, initial, &gate, &pace, &switch)
            .await
            .with_context(|| format!("failed to start gossip on udp {}", me.listen))?;
        let key_changes = Arc::new(AtomicU64::new(0));
        forward_changes(&handle, &changed, &key_changes).await;
        info!(generation, seeds = ?me.seeds, admission = gate.is_some(), "gossip started");
        Ok(Gossip {
            instance: RwLock::new(Instance { handle, interval: me.interval, switch }),
            spawn,
            interval: me.interval,
            client_interval: me.client_interval,
            gate,
            pace,
            keys: Mutex::new(keys),
            busy: AtomicU32::new(0),
            parsed: Mutex::new(HashMap::new()),
            key_changes,
            leader_seen: Mutex::new(LeaderSeen {
                changes: changed.subscribe(),
                keys_seen: 0,
                looked: false,
                leader: None,
            }),
            changed,
            client_since: Mutex::new(None),
            carried: Mutex::new(None),
            leaving: AtomicBool::new(false),
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
        let instance = self.instance.read().await;
        instance
            .handle
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
    /// as a server or a node still forming one (`false`). A node that has been a client
    /// for [`SLOW_AFTER`] moves to an instance that ticks at the client pace; one that
    /// stops being a client moves back at once.
    pub async fn set_client_pace(&self, client: bool) {
        self.pace.set_client(client);
        let tick = {
            let mut since = self.client_since.lock().unwrap_or_else(PoisonError::into_inner);
            wanted_tick(client, &mut since, Instant::now(), self.interval, self.client_interval)
        };
        if self.instance.read().await.interval != tick {
            self.retick(tick).await;
        }
    }

    /// How often this node's chitchat ticks now.
    pub async fn tick_interval(&self) -> Duration {
        self.instance.read().await.interval
    }

    /// Replaces the running instance with one that ticks every `tick`. The new one
    /// starts silent beside the old, is given what the old one knew, and speaks once
    /// the old one has stopped; if it cannot start, the old one keeps running.
    async fn retick(&self, tick: Duration) {
        if self.leaving.load(Ordering::Relaxed) {
            return;
        }
        // Started before taking the lock (resolving seed names may take a while); it
        // stays silent until switched on.
        let switch = Switch::off();
        let started =
            start_instance(&self.spawn, tick, Vec::new(), &self.gate, &self.pace, &switch).await;
        let handle = match started {
            Ok(handle) => handle,
            Err(error) => {
                warn!(error = %error, tick_ms = tick.as_millis(), "gossip could not change its pace");
                return;
            }
        };
        let mut instance = self.instance.write().await;
        if instance.interval == tick {
            drop(instance);
            let _ = handle.shutdown().await;
            return;
        }
        // The old instance falls silent and stops; what it knew last is then final.
        instance.switch.turn_off();
        let old = std::mem::replace(
            &mut *instance,
            Instance { handle, interval: tick, switch: switch.clone() },
        );
        let old_chitchat = old.handle.chitchat();
        if let Err(error) = old.handle.shutdown().await {
            warn!(error = %error, "the previous gossip instance did not stop cleanly");
        }
        let known = knowledge(&mut *old_chitchat.lock().await);
        drop(old_chitchat);
        let pairs = self.keys.lock().unwrap_or_else(PoisonError::into_inner).to_pairs();
        instance
            .handle
            .with_chitchat(|chitchat| {
                for node in &known.others {
                    let values = node
                        .key_values_including_deleted()
                        .map(|(key, value)| (key.to_owned(), value.clone()));
                    chitchat.reset_node_state_if_update(
                        node.chitchat_id(),
                        values,
                        node.max_version(),
                        node.last_gc_version(),
                    );
                }
                let me = chitchat.self_node_state();
                me.set_max_version(known.max_version);
                for (key, value) in &pairs {
                    me.set(*key, value);
                }
                // Peers take this node's heartbeat only when it grows: the new instance
                // goes on from the old one's last (its own ticks and messages raise it).
                me.try_set_heartbeat(known.heartbeat);
            })
            .await;
        *self.carried.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Carried { until: Instant::now() + CARRY_GRACE, alive: known.alive });
        switch.turn_on();
        forward_changes(&instance.handle, &self.changed, &self.key_changes).await;
        drop(instance);
        self.changed.send_replace(());
        give_back_freed_memory();
        info!(tick_ms = tick.as_millis(), "gossip ticks at a new pace");
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
        self.look(|sightings| {
            newest_generations(sightings.iter().map(|&(member, alive)| {
                let mut member = member.clone();
                member.alive = alive;
                member
            }))
        })
        .await
    }

    /// The live leader of the newest term gossip shows, as [`newest_leader`] picks it from
    /// [`Gossip::members`], without copying every member: what a client asks before each
    /// claim and each write. Worked out again only after gossip changed (a member's keys
    /// or who is alive): a busy client asks several times a job, and the answer changes
    /// only with a failover.
    pub async fn leader(&self) -> Option<Member> {
        {
            let mut seen = self.leader_seen.lock().unwrap_or_else(PoisonError::into_inner);
            let keys = self.key_changes.load(Ordering::Relaxed);
            // Members carried over a re-tick stop counting as alive by time, which no
            // change announces: while there are any, every call looks.
            let carrying = self.carried.lock().unwrap_or_else(PoisonError::into_inner).is_some();
            let unchanged = keys == seen.keys_seen && !seen.changes.has_changed().unwrap_or(true);
            if seen.looked && !carrying && unchanged {
                return seen.leader.clone();
            }
            // Marked before the look: a change during it makes the next call look again.
            seen.changes.mark_unchanged();
            seen.keys_seen = keys;
        }
        let leader = self
            .look(|sightings| {
                leader_among(sightings).map(|leader| Member { alive: true, ..leader.clone() })
            })
            .await;
        let mut seen = self.leader_seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.looked = true;
        seen.leader = leader.clone();
        leader
    }

    /// Calls `look` with every sighting of a node that chitchat holds, parsed (once per
    /// version of its keys) and whether it is alive now: the failure detector's
    /// liveness, read on every look, and not leaving.
    async fn look<R>(&self, mut look: impl FnMut(&[(&Member, bool)]) -> R) -> R {
        let instance = self.instance.read().await;
        instance
            .handle
            .with_chitchat(|chitchat| {
                let mut live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
                let mut carried = self.carried.lock().unwrap_or_else(PoisonError::into_inner);
                let over = carried.as_ref().is_some_and(|before| {
                    Instant::now() >= before.until || live.len() >= before.alive.len()
                });
                if over {
                    *carried = None;
                }
                if let Some(before) = carried.as_ref() {
                    live.extend(before.alive.iter().filter(|id| states_has(chitchat, id)));
                }
                let states = chitchat.node_states();
                let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
                parsed.retain(|id, _| states.contains_key(id));
                for (id, state) in states {
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
                }
                // A node that said it is leaving stays not alive.
                let sightings: Vec<(&Member, bool)> = parsed
                    .iter()
                    .filter_map(|(id, (_, member))| {
                        let member = member.as_ref()?;
                        Some((member, member.alive && live.contains(id)))
                    })
                    .collect();
                look(&sightings)
            })
            .await
    }

    /// Fires whenever a node joins, leaves or changes a key.
    pub async fn changes(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Announces that this node is leaving, lets a few gossip rounds carry it, then stops.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::Relaxed);
        self.update(|keys| keys.leaving = true).await;
        let tick = self.instance.read().await.interval;
        tokio::time::sleep(tick * 3).await;
        if let Err(error) = self.instance.read().await.handle.initiate_shutdown() {
            tracing::warn!(error = %error, "gossip did not stop cleanly");
        }
    }
}

/// How often a node's chitchat should tick: every `interval`, or every
/// `client_interval` once the node has been a client of a formed cluster for
/// [`SLOW_AFTER`] (`since`, kept by the caller, is when that began).
fn wanted_tick(
    client: bool,
    since: &mut Option<Instant>,
    now: Instant,
    interval: Duration,
    client_interval: Duration,
) -> Duration {
    if !client {
        *since = None;
        return interval;
    }
    let since = *since.get_or_insert(now);
    if now.saturating_duration_since(since) >= SLOW_AFTER {
        client_interval
    } else {
        interval
    }
}

/// Starts a chitchat instance that ticks every `tick`, on the node's socket behind the
/// pace, the admission gate (if any) and `switch`.
async fn start_instance(
    spawn: &Spawn,
    tick: Duration,
    initial: Vec<(String, String)>,
    gate: &Option<Arc<Gate>>,
    pace: &Arc<Pace>,
    switch: &Switch,
) -> anyhow::Result<ChitchatHandle> {
    let failure_detector = FailureDetectorConfig {
        phi_threshold: 8.0,
        // The mean of the last 100 intervals between a peer's heartbeats (10 to 30 s of
        // them); each member's window is allocated whole, 8 bytes an interval, so 1,000
        // kept 800 KB on every node of a 100-node cluster.
        sampling_window_size: 100,
        max_interval: Duration::from_secs(10),
        // Judge a young peer by the real gossip rate, not chitchat's 5 s default.
        initial_interval: pace.interval(),
        // Forget dead incarnations after a while; restarts appear as new ones.
        dead_node_grace_period: Duration::from_secs(10 * 60),
    };
    let config = ChitchatConfig {
        chitchat_id: spawn.chitchat_id.clone(),
        cluster_id: spawn.cluster_id.clone(),
        gossip_interval: tick,
        listen_addr: spawn.listen,
        seed_nodes: spawn.seeds.clone(),
        failure_detector_config: failure_detector,
        marked_for_deletion_grace_period: Duration::from_secs(60 * 60),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    };
    let socket = spawn.socket.transport(switch.clone());
    let transport: Box<dyn Transport> = match gate {
        Some(gate) => {
            let inner = Filtered { inner: socket, filter: gate.clone() };
            Box::new(Filtered { inner, filter: pace.clone() })
        }
        None => Box::new(Filtered { inner: socket, filter: pace.clone() }),
    };
    spawn_chitchat(config, initial, transport.as_ref()).await
}

/// What `chitchat` knows that the next instance starts from: this node's heartbeat and
/// version, and the state of every live peer.
fn knowledge(chitchat: &mut chitchat::Chitchat) -> Knowledge {
    let me = chitchat.self_chitchat_id().clone();
    let alive: HashSet<ChitchatId> = chitchat.live_nodes().cloned().collect();
    let others = chitchat
        .node_states()
        .iter()
        .filter(|(id, _)| **id != me && alive.contains(id))
        .map(|(_, state)| state.clone())
        .collect();
    let own = chitchat.self_node_state();
    Knowledge { heartbeat: own.heartbeat(), max_version: own.max_version(), others, alive }
}

/// Returns the heap pages the old instance freed to the system: its state was
/// allocated on other threads' arenas, which glibc keeps otherwise (about 1 MiB a node).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether `chitchat` holds a state for `id`.
fn states_has(chitchat: &chitchat::Chitchat, id: &ChitchatId) -> bool {
    chitchat.node_states().contains_key(id)
}

/// Passes the instance's live-member changes on to `changed` until the instance stops,
/// and counts in `key_changes` every key of any node it takes in, as it takes it in
/// (the live members' watch fires only at the instance's next round).
async fn forward_changes(
    handle: &ChitchatHandle,
    changed: &watch::Sender<()>,
    key_changes: &Arc<AtomicU64>,
) {
    let mut live = handle
        .with_chitchat(|chitchat| {
            let counter = key_changes.clone();
            // Called with chitchat's state locked: a counter is all it touches.
            chitchat
                .subscribe_event("", move |_| {
                    counter.fetch_add(1, Ordering::Relaxed);
                })
                .forever();
            chitchat.live_nodes_watcher()
        })
        .await;
    let changed = changed.clone();
    tokio::spawn(async move {
        while live.changed().await.is_ok() {
            changed.send_replace(());
        }
    });
}
