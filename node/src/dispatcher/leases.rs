//! Leases of running jobs, kept in the leader's memory (a renewal is not a Raft write).
//!
//! Pure: the replicated list of running jobs, gossip's dead runners and the current
//! time go in; the jobs to requeue come out. A job the leader has no lease for (after a
//! failover, or a job assigned by an earlier leader) is adopted with a full lease
//! period, so live runners get one period to renew before anything is requeued.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use eventide_consensus::{JobId, NodeId};

/// A running job as the replicated state records it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RunningJob {
    pub job: JobId,
    pub runner: NodeId,
    pub attempt: u32,
}

/// A job to send back to the queue, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub job: JobId,
    pub attempt: u32,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    runner: NodeId,
    attempt: u32,
    expires: Instant,
}

/// The leader's lease table.
#[derive(Debug)]
pub struct Leases {
    period: Duration,
    leases: BTreeMap<JobId, Lease>,
}

impl Leases {
    pub fn new(period: Duration) -> Leases {
        Leases { period, leases: BTreeMap::new() }
    }

    /// Forgets every lease (this node stopped leading).
    pub fn clear(&mut self) {
        self.leases.clear();
    }

    /// Records a lease for a job just assigned.
    pub fn grant(&mut self, running: RunningJob, now: Instant) {
        let lease =
            Lease { runner: running.runner, attempt: running.attempt, expires: now + self.period };
        self.leases.insert(running.job, lease);
    }

    /// Extends the leases `runner` holds for `jobs`; returns the jobs it must stop:
    /// those the state no longer shows running on it with that attempt.
    pub fn renew(
        &mut self,
        runner: NodeId,
        jobs: &[(JobId, u32)],
        running: &[RunningJob],
        now: Instant,
    ) -> Vec<JobId> {
        let mut revoked = Vec::new();
        for &(job, attempt) in jobs {
            let current =
                running.iter().any(|r| r.job == job && r.runner == runner && r.attempt == attempt);
            if current {
                self.grant(RunningJob { job, runner, attempt }, now);
            } else {
                revoked.push(job);
            }
        }
        revoked
    }

    /// Brings the table in line with the replicated running jobs and returns those to
    /// requeue: the runner is dead by gossip, or the lease ran out.
    pub fn expire(
        &mut self,
        running: &[RunningJob],
        dead_runners: &BTreeSet<NodeId>,
        now: Instant,
    ) -> Vec<Expired> {
        let current: BTreeSet<JobId> = running.iter().map(|r| r.job).collect();
        self.leases.retain(|job, _| current.contains(job));
        let mut expired = Vec::new();
        for running in running {
            let lease = self.leases.entry(running.job).or_insert(Lease {
                runner: running.runner,
                attempt: running.attempt,
                expires: now + self.period,
            });
            if lease.attempt != running.attempt || lease.runner != running.runner {
                // A newer assignment than the lease knows: adopt it with a fresh period.
                *lease = Lease {
                    runner: running.runner,
                    attempt: running.attempt,
                    expires: now + self.period,
                };
            }
            let reason = if dead_runners.contains(&running.runner) {
                Some(format!("runner {} is dead", running.runner))
            } else if lease.expires <= now {
                Some(format!("lease of runner {} expired", running.runner))
            } else {
                None
            };
            if let Some(reason) = reason {
                expired.push(Expired { job: running.job, attempt: running.attempt, reason });
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(5);

    fn running(job: u64, runner: u64, attempt: u32) -> RunningJob {
        RunningJob { job: JobId(job), runner: NodeId(runner), attempt }
    }

    #[test]
    fn a_renewed_lease_does_not_expire() {
        let mut leases = Leases::new(PERIOD);
        let start = Instant::now();
        let jobs = [running(1, 7, 1)];
        leases.grant(jobs[0], start);
        let revoked = leases.renew(NodeId(7), &[(JobId(1), 1)], &jobs, start + PERIOD / 2);
        assert!(revoked.is_empty());
        assert!(leases.expire(&jobs, &BTreeSet::new(), start + PERIOD).is_empty());
    }

    #[test]
    fn an_unrenewed_lease_expires_after_one_period() {
        let mut leases = Leases::new(PERIOD);
        let start = Instant::now();
        let jobs = [running(1, 7, 1)];
        leases.grant(jobs[0], start);
        assert!(leases.expire(&jobs, &BTreeSet::new(), start + PERIOD / 2).is_empty());
        let expired = leases.expire(&jobs, &BTreeSet::new(), start + PERIOD);
        assert_eq!(
            expired,
            vec![Expired { job: JobId(1), attempt: 1, reason: "lease of runner 7 expired".into() }]
        );
    }

    #[test]
    fn a_dead_runner_loses_its_jobs_at_once() {
        let mut leases = Leases::new(PERIOD);
        let start = Instant::now();
        let jobs = [running(1, 7, 1), running(2, 8, 2)];
        for job in jobs {
            leases.grant(job, start);
        }
        let dead = BTreeSet::from([NodeId(8)]);
        let expired = leases.expire(&jobs, &dead, start);
        assert_eq!(
            expired,
            vec![Expired { job: JobId(2), attempt: 2, reason: "runner 8 is dead".into() }]
        );
    }

    #[test]
    fn after_a_failover_running_jobs_get_one_full_period() {
        let mut leases = Leases::new(PERIOD);
        let start = Instant::now();
        let jobs = [running(1, 7, 1)];
        // The new leader has no lease: the job is adopted, not requeued.
        assert!(leases.expire(&jobs, &BTreeSet::new(), start).is_empty());
        assert!(leases.expire(&jobs, &BTreeSet::new(), start + PERIOD / 2).is_empty());
        assert_eq!(leases.expire(&jobs, &BTreeSet::new(), start + PERIOD).len(), 1);
    }

    #[test]
    fn renewing_a_job_that_is_no_longer_yours_revokes_it() {
        let mut leases = Leases::new(PERIOD);
        let now = Instant::now();
        let jobs = [running(1, 7, 2)];
        // Attempt 1 was requeued; attempt 2 runs elsewhere or here.
        assert_eq!(leases.renew(NodeId(7), &[(JobId(1), 1)], &jobs, now), vec![JobId(1)]);
        assert_eq!(leases.renew(NodeId(9), &[(JobId(1), 2)], &jobs, now), vec![JobId(1)]);
        assert_eq!(leases.renew(NodeId(7), &[(JobId(3), 1)], &jobs, now), vec![JobId(3)]);
        assert!(leases.renew(NodeId(7), &[(JobId(1), 2)], &jobs, now).is_empty());
    }

    #[test]
    fn finished_jobs_leave_the_table() {
        let mut leases = Leases::new(PERIOD);
        let start = Instant::now();
        leases.grant(running(1, 7, 1), start);
        assert!(leases.expire(&[], &BTreeSet::new(), start + PERIOD * 2).is_empty());
        // Re-running it later is a new adoption, not an old expiry.
        assert!(leases
            .expire(&[running(1, 7, 1)], &BTreeSet::new(), start + PERIOD * 2)
            .is_empty());
    }
}
