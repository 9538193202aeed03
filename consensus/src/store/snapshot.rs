//! The current snapshot in sled, and the format of a snapshot's data.
//!
//! A snapshot's data is `codec((PAYLOAD_V6, Payload))`: the last applied log id, the last
//! membership and the whole CI [`State`], behind the codec's format version and the
//! payload's own. A state that never had a build is written as version 5, one without
//! secrets restricted to branches either as version 4, one without forge data either as
//! version 3, and one without secrets at all as version 2 (see [`WrittenV5`],
//! [`WrittenV4`], [`WrittenV3`], [`WrittenV2`]), so that binaries from before those parts
//! read it; versions 5, 4, 3 and 2 load without them (see [`StateV5`], [`StateV4`],
//! [`StateV3`], [`StateV2`]). The meta repeats the
//! first two; a payload that disagrees with its meta is refused on install and on load.
//! A payload of version 1 (written before the state had limits per repository) has no
//! version of its own, starts with the tag of an `Option` (0 or 1) where later versions
//! have their number, and still loads (see [`StateV1`](crate::state::StateV1)).
//!
//! Only one snapshot is kept. Its meta and data are written in one atomic batch and
//! flushed before it is reported as current. A snapshot never replaces a newer one that a
//! concurrent install made current, unless it is itself being installed.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::error::StoreError;
use super::keys;
use crate::codec;
use crate::state::{
    State, StateV1, StateV2, StateV3, StateV4, StateV5, WrittenV2, WrittenV3, WrittenV4, WrittenV5,
};
use crate::types::{LogId, SnapshotMeta, StoredMembership};

/// The payload's format version, written in front of it: 6 with builds.
const PAYLOAD_V6: u8 = 6;
/// The payload version before builds, still written for a state that never had one.
const PAYLOAD_V5: u8 = 5;
/// The payload version before secrets' branches, still written for a state without them.
const PAYLOAD_V4: u8 = 4;
/// The payload version before forge data, still written for a state without it.
const PAYLOAD_V3: u8 = 3;
/// The payload version before the secret store, still written for a state without secrets.
const PAYLOAD_V2: u8 = 2;

/// What a snapshot's data holds. `S` is `&State` when building and `State` when reading.
#[derive(Serialize, Deserialize)]
pub(super) struct Payload<S> {
    pub(super) last_applied: Option<LogId>,
    pub(super) last_membership: StoredMembership,
    pub(super) state: S,
}

impl Payload<&State> {
    /// The bytes of a snapshot's data.
    pub(super) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let encoded = if let Some(state) = WrittenV2::of(self.state) {
            codec::encode(&(PAYLOAD_V2, self.with(state)))
        } else if let Some(state) = WrittenV3::of(self.state) {
            codec::encode(&(PAYLOAD_V3, self.with(state)))
        } else if let Some(state) = WrittenV4::of(self.state) {
            codec::encode(&(PAYLOAD_V4, self.with(state)))
        } else if let Some(state) = WrittenV5::of(self.state) {
            codec::encode(&(PAYLOAD_V5, self.with(state)))
        } else {
            codec::encode(&(PAYLOAD_V6, self))
        };
        encoded.map_err(StoreError::encode("snapshot data"))
    }
}

impl<S> Payload<S> {
    /// The same log id and membership with `state` in another shape.
    fn with<T>(&self, state: T) -> Payload<T> {
        Payload {
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            state,
        }
    }
}

impl Payload<State> {
    /// Decodes a snapshot's data, of any version, and checks it against the snapshot's
    /// meta.
    pub(super) fn decode_for(meta: &SnapshotMeta, data: &[u8]) -> Result<Self, StoreError> {
        // `data` is the codec's version, then the payload's (a u8 is one byte in bincode).
        let payload = match data.get(1) {
            Some(&PAYLOAD_V6) => codec::decode_stored::<(u8, Payload<State>)>(data)
                .map(|(_, payload)| payload)
                .map_err(StoreError::decode("snapshot data"))?,
            Some(&PAYLOAD_V5) => codec::decode_stored::<(u8, Payload<StateV5>)>(data)
                .map(|(_, Payload { last_applied, last_membership, state: StateV5(state) })| {
                    Payload { last_applied, last_membership, state }
                })
                .map_err(StoreError::decode("snapshot data"))?,
            Some(&PAYLOAD_V4) => codec::decode_stored::<(u8, Payload<StateV4>)>(data)
                .map(|(_, Payload { last_applied, last_membership, state: StateV4(state) })| {
                    Payload { last_applied, last_membership, state }
                })
                .map_err(StoreError::decode("snapshot data"))?,
            Some(&PAYLOAD_V3) => codec::decode_stored::<(u8, Payload<StateV3>)>(data)
                .map(|(_, Payload { last_applied, last_membership, state: StateV3(state) })| {
                    Payload { last_applied, last_membership, state }
                })
                .map_err(StoreError::decode("snapshot data"))?,
            Some(&PAYLOAD_V2) => codec::decode_stored::<(u8, Payload<StateV2>)>(data)
                .map(|(_, Payload { last_applied, last_membership, state: StateV2(state) })| {
                    Payload { last_applied, last_membership, state }
                })
                .map_err(StoreError::decode("snapshot data"))?,
            _ => match codec::decode_stored::<Payload<StateV1>>(data) {
                Ok(Payload { last_applied, last_membership, state: StateV1(state) }) => {
                    Payload { last_applied, last_membership, state }
                }
                Err(error) => return Err(StoreError::decode("snapshot data")(error)),
            },
        };
        if payload.last_applied != meta.last_log_id {
            return Err(StoreError::SnapshotMismatch { field: "last applied log id" });
        }
        if payload.last_membership != meta.last_membership {
            return Err(StoreError::SnapshotMismatch { field: "last membership" });
        }
        Ok(payload)
    }
}

/// Checks that `data` is a snapshot the state machine would install under `meta`: that it
/// decodes exactly as [`install_snapshot`](openraft::storage::RaftStateMachine::install_snapshot)
/// decodes it, and agrees with `meta` on the last applied log id and membership. Touches
/// nothing. openraft takes any error of `install_snapshot` as fatal and stops Raft on the
/// node, so what a peer streams is checked with this before openraft is handed the final
/// chunk.
pub fn check_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
    Payload::decode_for(meta, data).map(drop)
}

/// Whether a snapshot being saved may replace a newer current one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Replace {
    /// A snapshot received from the leader: it becomes current whatever was there.
    Always,
    /// A snapshot built locally: kept only if no newer snapshot is current.
    IfNotOlder,
}

/// The snapshot tree, shared by every clone of the state machine store.
#[derive(Clone)]
pub(super) struct SnapshotStore {
    tree: sled::Tree,
    /// For [`sled::Db::generate_id`], which stays unique across restarts.
    database: sled::Db,
    /// Makes "compare with the current snapshot, then replace it" one step.
    replacing: Arc<Mutex<()>>,
}

impl SnapshotStore {
    pub(super) fn new(tree: sled::Tree, database: sled::Db) -> SnapshotStore {
        SnapshotStore { tree, database, replacing: Arc::new(Mutex::new(())) }
    }

    /// A snapshot id, `{term}-{index}-{n}` with `n` unique on this node.
    pub(super) fn new_id(&self, last_applied: Option<&LogId>) -> Result<String, StoreError> {
        let n =
            self.database.generate_id().map_err(StoreError::database("generate a snapshot id"))?;
        let (term, index) =
            last_applied.map_or((0, 0), |log_id| (log_id.leader_id.term, log_id.index));
        Ok(format!("{term}-{index}-{n}"))
    }

    /// The current snapshot's meta and data, if there is one.
    pub(super) fn load(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let Some(meta) = self.load_meta()? else {
            return Ok(None);
        };
        let data = self
            .tree
            .get(keys::SNAPSHOT_DATA)
            .map_err(StoreError::database("read the snapshot data"))?
            .ok_or(StoreError::SnapshotWithoutData)?;
        Ok(Some((meta, data.to_vec())))
    }

    fn load_meta(&self) -> Result<Option<SnapshotMeta>, StoreError> {
        let Some(bytes) = self
            .tree
            .get(keys::SNAPSHOT_META)
            .map_err(StoreError::database("read the snapshot meta"))?
        else {
            return Ok(None);
        };
        codec::decode_stored(&bytes).map(Some).map_err(StoreError::decode("snapshot meta"))
    }

    /// Makes `(meta, data)` the current snapshot, durably. Returns `false` if it was not
    /// stored because a newer snapshot is current and `replace` is
    /// [`Replace::IfNotOlder`].
    pub(super) async fn save(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        replace: Replace,
    ) -> Result<bool, StoreError> {
        let meta_bytes = codec::encode(meta).map_err(StoreError::encode("snapshot meta"))?;
        {
            let _replacing = self.replacing.lock().unwrap_or_else(PoisonError::into_inner);
            if replace == Replace::IfNotOlder {
                if let Some(current) = self.load_meta()? {
                    if current.last_log_id > meta.last_log_id {
                        debug!(
                            current = %current.snapshot_id,
                            built = %meta.snapshot_id,
                            "a newer snapshot is current; keeping it"
                        );
                        return Ok(false);
                    }
                }
            }
            let mut batch = sled::Batch::default();
            batch.insert(keys::SNAPSHOT_META, meta_bytes);
            batch.insert(keys::SNAPSHOT_DATA, data);
            self.tree.apply_batch(batch).map_err(StoreError::database("write the snapshot"))?;
        }
        self.tree.flush_async().await.map_err(StoreError::database("flush the database"))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::state::WrittenV1;
    use crate::types::{NodeId, Timestamp};

    fn meta(last_applied: Option<LogId>) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: last_applied,
            last_membership: StoredMembership::default(),
            snapshot_id: "1-7-1".to_owned(),
        }
    }

    fn sample() -> State {
        let mut state = State::default();
        state.apply(&Command::AddRepo { url: "file:///srv/app.git".into(), at: Timestamp(1) });
        state
    }

    #[test]
    fn a_payload_decodes_and_a_version_1_payload_still_does() {
        let state = sample();
        let last_applied = Some(LogId::new(openraft::CommittedLeaderId::new(1, NodeId(1)), 7));
        let membership = StoredMembership::default();
        let current =
            Payload { last_applied, last_membership: membership.clone(), state: &state }.encode();
        let decoded = Payload::decode_for(&meta(last_applied), &current.expect("encodes"));
        assert_eq!(decoded.expect("decodes").state, state);

        let written = WrittenV1::of(&state, (3, 65_536, 1_000, 100_000));
        let old =
            codec::encode(&Payload { last_applied, last_membership: membership, state: written })
                .expect("encodes");
        let decoded = Payload::decode_for(&meta(last_applied), &old).expect("version 1 decodes");
        assert_eq!(decoded.state, state);
        assert_eq!(decoded.last_applied, last_applied);
    }

    #[test]
    fn a_state_with_secrets_is_version_3_and_one_without_is_still_version_2() {
        let last_applied = Some(LogId::new(openraft::CommittedLeaderId::new(1, NodeId(1)), 7));
        let membership = StoredMembership::default();
        let plain = sample();
        let data = Payload { last_applied, last_membership: membership.clone(), state: &plain }
            .encode()
            .expect("encodes");
        assert_eq!(data[1], PAYLOAD_V2, "what binaries without a secret store read");

        let mut with_secret = sample();
        let sealed = crate::auth::Sealed { nonce: [7; 24], ciphertext: vec![1; 20] };
        with_secret.apply(&Command::SetSecret { name: "TOKEN".into(), sealed, at: Timestamp(2) });
        let data =
            Payload { last_applied, last_membership: membership, state: &with_secret }.encode();
        let data = data.expect("encodes");
        assert_eq!(data[1], PAYLOAD_V3);
        let decoded = Payload::decode_for(&meta(last_applied), &data).expect("decodes");
        assert_eq!(decoded.state, with_secret);
        assert_eq!(decoded.state.secrets().len(), 1);
    }

    #[test]
    fn a_state_with_forge_data_is_version_4_and_round_trips() {
        let last_applied = Some(LogId::new(openraft::CommittedLeaderId::new(1, NodeId(1)), 7));
        let membership = StoredMembership::default();
        let mut state = sample();
        let settings = crate::state::RepoSettings {
            forge: Some(crate::state::ForgeKind::Gitea),
            token: Some("GITEA_TOKEN".into()),
            branches: vec!["main".into()],
            ..Default::default()
        };
        let reply = state.apply(&Command::SetRepoSettings {
            repo: crate::types::RepoId(1),
            settings,
            at: Timestamp(3),
        });
        assert!(reply.refusal().is_none(), "{reply:?}");
        state.apply(&Command::Rerun {
            repo: crate::types::RepoId(1),
            branch: "main".into(),
            commit: crate::types::CommitId::try_new(&"cd".repeat(20)).expect("an id"),
            labels: Vec::new(),
            at: Timestamp(4),
        });
        assert_eq!(state.status_outbox().count(), 1);
        let data = Payload { last_applied, last_membership: membership, state: &state }
            .encode()
            .expect("encodes");
        assert_eq!(data[1], PAYLOAD_V4);
        let decoded = Payload::decode_for(&meta(last_applied), &data).expect("decodes");
        assert_eq!(decoded.state, state, "settings, outbox and its index come back");
    }

    #[test]
    fn a_state_with_a_restricted_secret_is_version_5_and_an_old_version_4_still_loads() {
        let last_applied = Some(LogId::new(openraft::CommittedLeaderId::new(1, NodeId(1)), 7));
        let membership = StoredMembership::default();
        let mut state = sample();
        state.apply(&Command::SetRepoSettings {
            repo: crate::types::RepoId(1),
            settings: crate::state::RepoSettings {
                forge: Some(crate::state::ForgeKind::Github),
                ..Default::default()
            },
            at: Timestamp(2),
        });
        let sealed = crate::auth::Sealed { nonce: [7; 24], ciphertext: vec![1; 20] };
        state.apply(&Command::SetSecret { name: "PYPI".into(), sealed, at: Timestamp(3) });
        let version_4 =
            Payload { last_applied, last_membership: membership.clone(), state: &state }
                .encode()
                .expect("encodes");
        assert_eq!(version_4[1], PAYLOAD_V4, "what binaries without restrictions read");
        let decoded = Payload::decode_for(&meta(last_applied), &version_4).expect("decodes");
        assert_eq!(decoded.state, state);

        let sealed = crate::auth::Sealed { nonce: [8; 24], ciphertext: vec![2; 20] };
        let branches = vec!["main".to_owned(), "release/*".to_owned()];
        let reply = state.apply(&Command::SetRestrictedSecret {
            name: "PYPI".into(),
            sealed,
            branches: branches.clone(),
            at: Timestamp(4),
        });
        assert!(reply.refusal().is_none(), "{reply:?}");
        let data = Payload { last_applied, last_membership: membership, state: &state }
            .encode()
            .expect("encodes");
        assert_eq!(data[1], PAYLOAD_V5);
        let decoded = Payload::decode_for(&meta(last_applied), &data).expect("decodes");
        assert_eq!(decoded.state, state);
        assert_eq!(decoded.state.secret_branches("PYPI"), branches);
    }

    #[test]
    fn a_state_with_a_build_is_version_6_and_round_trips_with_its_indexes() {
        let last_applied = Some(LogId::new(openraft::CommittedLeaderId::new(1, NodeId(1)), 7));
        let mut state = sample();
        let step = |name: &str, needs: Vec<u16>| crate::command::PlannedJob {
            step: name.into(),
            matrix: vec![("python".into(), "3.12".into())],
            needs,
            labels: Vec::new(),
            concurrency: Some("deploy".into()),
        };
        let reply = state.apply(&Command::RerunBuild {
            repo: crate::types::RepoId(1),
            branch: "main".into(),
            plan: crate::command::BuildPlan {
                commit: crate::types::CommitId::try_new(&"cd".repeat(20)).expect("an id"),
                subject: "Add a pipeline".into(),
                author: "Ada <ada@example.org>".into(),
                jobs: vec![step("build", vec![]), step("test", vec![0])],
                cancel_superseded: true,
            },
            by: Some("cli".into()),
            at: Timestamp(4),
        });
        assert!(reply.refusal().is_none(), "{reply:?}");
        let data =
            Payload { last_applied, last_membership: StoredMembership::default(), state: &state }
                .encode()
                .expect("encodes");
        assert_eq!(data[1], PAYLOAD_V6);
        let decoded = Payload::decode_for(&meta(last_applied), &data).expect("decodes");
        assert_eq!(decoded.state, state, "builds, steps and the open-build index come back");
    }

    #[test]
    fn a_snapshot_is_checked_as_it_would_be_installed() {
        let state = sample();
        let last_applied = Some(LogId::new(openraft::CommittedLeaderId::new(1, NodeId(1)), 7));
        let data =
            Payload { last_applied, last_membership: StoredMembership::default(), state: &state }
                .encode()
                .expect("encodes");
        assert!(check_snapshot(&meta(last_applied), &data).is_ok());
        assert!(matches!(
            check_snapshot(&meta(None), &data),
            Err(StoreError::SnapshotMismatch { field: "last applied log id" })
        ));
        for bad in [&b""[..], b"not a snapshot", &data[..data.len() - 1]] {
            assert!(matches!(
                check_snapshot(&meta(last_applied), bad),
                Err(StoreError::Decode { value: "snapshot data", .. })
            ));
        }
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(check_snapshot(&meta(last_applied), &trailing).is_err(), "a byte too many");
    }

    #[test]
    fn a_payload_that_is_no_version_is_refused() {
        let garbage = codec::encode(&(9u8, "not a snapshot")).expect("encodes");
        assert!(matches!(
            Payload::decode_for(&meta(None), &garbage),
            Err(StoreError::Decode { value: "snapshot data", .. })
        ));
    }
}
