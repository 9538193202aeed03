//! The replicated data as snapshots of earlier versions hold it, so that they still load.
//!
//! Version 1 had four limits (no queue, repository or branch limits). Its data loads with
//! those four kept, within today's bounds, and the others at their defaults. Texts it kept
//! under older, looser per-item bounds stay as they were: they leave the state as those
//! jobs are retired.
//!
//! Version 2 had no secret store. Its data loads with an empty one. A state without
//! secrets is still written as version 2 ([`WrittenV2`]), so that a binary without the
//! secret store reads the snapshots of one with it until a secret is set, which keeps
//! rolling upgrades (and going back) working.
//!
//! Version 3 had no repository settings and no status outbox. Its data loads without
//! them; a state without them is still written as version 3 (or 2), for the same reason.
//!
//! Version 4 had no branch restrictions of secrets. Its data loads with every secret for
//! every branch; a state without restrictions is still written as version 4 (or older).
//!
//! Version 5 had no builds. Its data loads without any; a state that never had a build is
//! still written as version 5 (or older).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Deserializer, Serialize};

use super::{Cursor, Data, ForgeData, Index, Job, Limits, PipelineData, Repo, State, StoredSecret};
use crate::types::{JobId, RepoId};

#[derive(Deserialize)]
struct LimitsV1 {
    max_attempts: u32,
    output_tail_bytes: u32,
    retained_outputs: u32,
    retained_jobs: u32,
}

/// The data of versions 1 and 2: today's [`Data`] without the secret store. The two
/// differ only in their limits.
#[derive(Deserialize)]
struct OldData<L> {
    limits: L,
    last_repo_id: u64,
    last_job_id: u64,
    repos: BTreeMap<RepoId, Repo>,
    cursors: BTreeMap<RepoId, BTreeMap<String, Cursor>>,
    jobs: BTreeMap<JobId, Job>,
    finished: VecDeque<JobId>,
    outputs_kept: VecDeque<JobId>,
}

impl<L> OldData<L> {
    /// Today's data, with the limits made by `limits`, an empty secret store and no forge
    /// data.
    fn into_data(self, limits: impl FnOnce(L) -> Limits) -> Data {
        Data {
            limits: limits(self.limits),
            last_repo_id: self.last_repo_id,
            last_job_id: self.last_job_id,
            repos: self.repos,
            cursors: self.cursors,
            jobs: self.jobs,
            finished: self.finished,
            outputs_kept: self.outputs_kept,
            secrets: BTreeMap::new(),
            forge: ForgeData::default(),
            secret_branches: BTreeMap::new(),
            pipeline: PipelineData::default(),
        }
    }
}

/// The data of version 3: version 2's, then the secret store, which is today's [`Data`]
/// without its forge half and the secrets' branches.
#[derive(Deserialize)]
struct DataV3 {
    v2: OldData<Limits>,
    secrets: BTreeMap<String, StoredSecret>,
}

impl DataV3 {
    /// Today's data, with `forge` and no secret restricted to branches.
    fn into_data(self, forge: ForgeData) -> Data {
        Data { secrets: self.secrets, forge, ..self.v2.into_data(|limits| limits) }
    }
}

/// A [`State`] decoded from version 3 data: the same, with no forge settings or outbox.
pub struct StateV3(pub State);

impl<'de> Deserialize<'de> for StateV3 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = DataV3::deserialize(deserializer)?.into_data(ForgeData::default());
        let index = Index::build(&data);
        Ok(StateV3(State { data, index }))
    }
}

/// A state without forge data as version 3 encodes it, field for field.
#[derive(Serialize)]
pub struct WrittenV3<'a> {
    limits: &'a Limits,
    last_repo_id: u64,
    last_job_id: u64,
    repos: &'a BTreeMap<RepoId, Repo>,
    cursors: &'a BTreeMap<RepoId, BTreeMap<String, Cursor>>,
    jobs: &'a BTreeMap<JobId, Job>,
    finished: &'a VecDeque<JobId>,
    outputs_kept: &'a VecDeque<JobId>,
    secrets: &'a BTreeMap<String, StoredSecret>,
}

impl<'a> WrittenV3<'a> {
    /// `state` in version 3's shape; `None` when it has forge settings or statuses, or
    /// secrets restricted to branches, which version 3 cannot hold.
    pub fn of(state: &'a State) -> Option<Self> {
        let data = &state.data;
        (data.forge.is_empty() && data.secret_branches.is_empty() && data.pipeline.is_empty())
            .then(|| WrittenV3::fields(data))
    }

    /// The fields of `data` that version 3 has.
    fn fields(data: &'a Data) -> Self {
        WrittenV3 {
            limits: &data.limits,
            last_repo_id: data.last_repo_id,
            last_job_id: data.last_job_id,
            repos: &data.repos,
            cursors: &data.cursors,
            jobs: &data.jobs,
            finished: &data.finished,
            outputs_kept: &data.outputs_kept,
            secrets: &data.secrets,
        }
    }
}

/// The data of version 4: version 3's, then the forge half, which is today's [`Data`]
/// without the secrets' branches (bincode writes a nested struct's fields in line).
#[derive(Deserialize)]
struct DataV4 {
    v3: DataV3,
    forge: ForgeData,
}

/// A [`State`] decoded from version 4 data: the same, every secret for every branch.
pub struct StateV4(pub State);

impl<'de> Deserialize<'de> for StateV4 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let DataV4 { v3, forge } = DataV4::deserialize(deserializer)?;
        let data = v3.into_data(forge);
        let index = Index::build(&data);
        Ok(StateV4(State { data, index }))
    }
}

/// A state without restricted secrets as version 4 encodes it: version 3's fields, then
/// the forge half.
#[derive(Serialize)]
pub struct WrittenV4<'a> {
    v3: WrittenV3<'a>,
    forge: &'a ForgeData,
}

impl<'a> WrittenV4<'a> {
    /// `state` in version 4's shape; `None` when a secret is restricted to branches,
    /// which version 4 cannot hold.
    pub fn of(state: &'a State) -> Option<Self> {
        let data = &state.data;
        (data.secret_branches.is_empty() && data.pipeline.is_empty())
            .then(|| WrittenV4 { v3: WrittenV3::fields(data), forge: &data.forge })
    }
}

/// The data of version 5: version 4's, then the secrets' branches, which is today's
/// [`Data`] without its builds.
#[derive(Deserialize)]
struct DataV5 {
    v4: DataV4,
    secret_branches: BTreeMap<String, Vec<String>>,
}

/// A [`State`] decoded from version 5 data: the same, without builds.
pub struct StateV5(pub State);

impl<'de> Deserialize<'de> for StateV5 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let DataV5 { v4: DataV4 { v3, forge }, secret_branches } =
            DataV5::deserialize(deserializer)?;
        let data = Data { secret_branches, ..v3.into_data(forge) };
        let index = Index::build(&data);
        Ok(StateV5(State { data, index }))
    }
}

/// A state that never had a build as version 5 encodes it: version 4's fields, then the
/// secrets' branches.
#[derive(Serialize)]
pub struct WrittenV5<'a> {
    v4: WrittenV4<'a>,
    secret_branches: &'a BTreeMap<String, Vec<String>>,
}

impl<'a> WrittenV5<'a> {
    /// `state` in version 5's shape; `None` once it had a build.
    pub fn of(state: &'a State) -> Option<Self> {
        let data = &state.data;
        data.pipeline.is_empty().then(|| WrittenV5 {
            v4: WrittenV4 { v3: WrittenV3::fields(data), forge: &data.forge },
            secret_branches: &data.secret_branches,
        })
    }
}

/// A [`State`] decoded from version 1 data (see the module doc).
pub struct StateV1(pub State);

impl<'de> Deserialize<'de> for StateV1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let most = Limits::default();
        let data = OldData::<LimitsV1>::deserialize(deserializer)?.into_data(|old| Limits {
            max_attempts: old.max_attempts.clamp(1, most.max_attempts),
            output_tail_bytes: old.output_tail_bytes.clamp(1024, most.output_tail_bytes),
            retained_jobs: old.retained_jobs.clamp(1, most.retained_jobs),
            retained_outputs: old
                .retained_outputs
                .min(most.retained_outputs)
                .min(old.retained_jobs.clamp(1, most.retained_jobs)),
            ..most.clone()
        });
        let index = Index::build(&data);
        let mut state = State { data, index };
        // Lowered limits apply at once, as a `SetLimits` would.
        state.enforce_retention();
        Ok(StateV1(state))
    }
}

/// A [`State`] decoded from version 2 data: the same, with no secrets.
pub struct StateV2(pub State);

impl<'de> Deserialize<'de> for StateV2 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = OldData::<Limits>::deserialize(deserializer)?.into_data(|limits| limits);
        let index = Index::build(&data);
        Ok(StateV2(State { data, index }))
    }
}

/// A state without secrets as version 2 encodes it, field for field.
#[derive(Serialize)]
pub struct WrittenV2<'a> {
    limits: &'a Limits,
    last_repo_id: u64,
    last_job_id: u64,
    repos: &'a BTreeMap<RepoId, Repo>,
    cursors: &'a BTreeMap<RepoId, BTreeMap<String, Cursor>>,
    jobs: &'a BTreeMap<JobId, Job>,
    finished: &'a VecDeque<JobId>,
    outputs_kept: &'a VecDeque<JobId>,
}

impl<'a> WrittenV2<'a> {
    /// `state` in version 2's shape; `None` when it holds secrets or forge data, which
    /// version 2 cannot hold.
    pub fn of(state: &'a State) -> Option<Self> {
        let data = &state.data;
        let plain =
            data.secrets.is_empty() && data.secret_branches.is_empty() && data.pipeline.is_empty();
        (plain && data.forge.is_empty()).then_some(WrittenV2 {
            limits: &data.limits,
            last_repo_id: data.last_repo_id,
            last_job_id: data.last_job_id,
            repos: &data.repos,
            cursors: &data.cursors,
            jobs: &data.jobs,
            finished: &data.finished,
            outputs_kept: &data.outputs_kept,
        })
    }
}

/// Version 1 data exactly as it was encoded (the same fields with four limits), for
/// tests of the loading path.
#[cfg(test)]
#[derive(serde::Serialize)]
pub(crate) struct WrittenV1<'a> {
    limits: (u32, u32, u32, u32),
    last_repo_id: u64,
    last_job_id: u64,
    repos: &'a BTreeMap<RepoId, Repo>,
    cursors: &'a BTreeMap<RepoId, BTreeMap<String, Cursor>>,
    jobs: &'a BTreeMap<JobId, Job>,
    finished: &'a VecDeque<JobId>,
    outputs_kept: &'a VecDeque<JobId>,
}

#[cfg(test)]
impl<'a> WrittenV1<'a> {
    /// `state` as version 1 wrote it, with these four limits.
    pub(crate) fn of(state: &'a State, limits: (u32, u32, u32, u32)) -> Self {
        let data = &state.data;
        WrittenV1 {
            limits,
            last_repo_id: data.last_repo_id,
            last_job_id: data.last_job_id,
            repos: &data.repos,
            cursors: &data.cursors,
            jobs: &data.jobs,
            finished: &data.finished,
            outputs_kept: &data.outputs_kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::command::{Command, Observe, ObservedCommit};
    use crate::types::{CommitId, Timestamp};

    /// A repository with one queued job.
    fn sample() -> State {
        let mut state = State::default();
        state.apply(&Command::AddRepo { url: "file:///srv/app.git".into(), at: Timestamp(1) });
        let head = CommitId::try_new(&"ab".repeat(20)).expect("a commit id");
        state.apply(&Command::Observe(Observe {
            repo: RepoId(1),
            branch: "main".into(),
            expected_head: None,
            new_head: head.clone(),
            commits: vec![ObservedCommit { commit: head, labels: Vec::new() }],
            skipped: Vec::new(),
            at: Timestamp(2),
        }));
        state
    }

    #[test]
    fn version_1_data_loads_with_its_limits_and_the_new_ones_at_their_defaults() {
        let state = sample();
        let bytes = codec::encode(&WrittenV1::of(&state, (2, 2048, 10, 20))).expect("encodes");

        let StateV1(loaded) = codec::decode_stored(&bytes).expect("version 1 decodes");

        let limits = Limits {
            max_attempts: 2,
            output_tail_bytes: 2048,
            retained_outputs: 10,
            retained_jobs: 20,
            ..Limits::default()
        };
        assert_eq!(*loaded.limits(), limits);
        assert_eq!(loaded.data.jobs, state.data.jobs);
        assert_eq!(loaded.index, state.index, "the indexes are rebuilt");
    }

    #[test]
    fn version_1_limits_beyond_todays_bounds_are_brought_within_them() {
        let state = sample();
        let bytes =
            codec::encode(&WrittenV1::of(&state, (9, 1 << 20, 5_000, 1 << 30))).expect("encodes");
        let StateV1(loaded) = codec::decode_stored(&bytes).expect("version 1 decodes");
        assert_eq!(*loaded.limits(), Limits::default());
        assert_eq!(loaded.limits().problem(), None);
    }

    #[test]
    fn version_2_data_loads_with_no_secrets_and_a_state_without_secrets_writes_it() {
        let state = sample();
        let written = WrittenV2::of(&state).expect("no secrets");
        let bytes = codec::encode(&written).expect("encodes");
        let StateV2(loaded) = codec::decode_stored(&bytes).expect("version 2 decodes");
        assert_eq!(loaded, state);
        assert!(loaded.secrets().is_empty());

        // Version 2 is today's data without the secrets map, the forge data and the
        // secrets' branches and the builds, which bincode writes last: when all are
        // empty, nine bytes (the lengths of the secrets, settings, outbox, refusals,
        // branches, builds and steps maps, a last status id and a last build id of 0).
        let today = codec::encode(&state.data).expect("encodes");
        assert_eq!(today[..today.len() - 9], bytes[..], "only the empty parts differ");

        let mut with_secret = state;
        with_secret.apply(&Command::SetSecret {
            name: "TOKEN".into(),
            sealed: crate::auth::Sealed { nonce: [7; 24], ciphertext: vec![1; 20] },
            at: Timestamp(3),
        });
        assert!(WrittenV2::of(&with_secret).is_none(), "version 2 cannot hold a secret");
    }

    #[test]
    fn version_4_data_loads_with_every_secret_for_every_branch() {
        let mut state = sample();
        let sealed = crate::auth::Sealed { nonce: [7; 24], ciphertext: vec![1; 20] };
        state.apply(&Command::SetSecret { name: "TOKEN".into(), sealed, at: Timestamp(3) });
        let written = WrittenV4::of(&state).expect("no restricted secret");
        let bytes = codec::encode(&written).expect("encodes");
        let StateV4(loaded) = codec::decode_stored(&bytes).expect("version 4 decodes");
        assert_eq!(loaded, state);
        assert_eq!(loaded.secrets()[0].branches, Vec::<String>::new());

        // Version 4 is today's data without the branches map and the builds, written
        // last: four bytes.
        let today = codec::encode(&state.data).expect("encodes");
        assert_eq!(today[..today.len() - 4], bytes[..], "only the empty parts differ");

        let mut restricted = state;
        restricted.apply(&Command::SetRestrictedSecret {
            name: "TOKEN".into(),
            sealed: crate::auth::Sealed { nonce: [8; 24], ciphertext: vec![2; 20] },
            branches: vec!["main".into()],
            at: Timestamp(4),
        });
        assert!(WrittenV4::of(&restricted).is_none(), "version 4 cannot hold a restriction");
        assert!(WrittenV3::of(&restricted).is_none() && WrittenV2::of(&restricted).is_none());
    }

    #[test]
    fn version_5_data_loads_without_builds_and_a_state_that_never_had_one_writes_it() {
        let state = sample();
        let written = WrittenV5::of(&state).expect("no build");
        let bytes = codec::encode(&written).expect("encodes");
        let StateV5(loaded) = codec::decode_stored(&bytes).expect("version 5 decodes");
        assert_eq!(loaded, state);
        // Version 5 is today's data without the builds, written last: three bytes.
        let today = codec::encode(&state.data).expect("encodes");
        assert_eq!(today[..today.len() - 3], bytes[..], "only the empty builds differ");

        let mut with_build = state;
        let plan = crate::command::BuildPlan {
            commit: crate::CommitId::try_new(&"ab".repeat(20)).expect("a commit"),
            subject: String::new(),
            author: String::new(),
            jobs: vec![crate::command::PlannedJob {
                step: "test".into(),
                matrix: Vec::new(),
                needs: Vec::new(),
                labels: Vec::new(),
                concurrency: None,
            }],
            cancel_superseded: false,
        };
        let repo = with_build.repos().next().map(|repo| repo.id).expect("a repository");
        let reply = with_build.apply(&Command::RerunBuild {
            repo,
            branch: "main".into(),
            plan,
            by: None,
            at: Timestamp(4),
        });
        assert!(reply.refusal().is_none(), "{reply:?}");
        assert!(WrittenV5::of(&with_build).is_none(), "version 5 cannot hold a build");
        assert!(WrittenV4::of(&with_build).is_none());
        assert!(WrittenV3::of(&with_build).is_none());
        assert!(WrittenV2::of(&with_build).is_none());
    }
}
