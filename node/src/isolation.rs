//! What a job may reach and use, as rules: the sandbox a job requires, its network, and
//! its resource limits as `.eventide.toml` asks for them and a runner caps them.
//!
//! The rules are pure so that the configuration parser, the runner and the tests agree:
//! a job's limits are its own within the runner's maximum ([`Limits::within`]); a
//! runner's `--job-network none` wins over a job's `network`; a job that requires a
//! sandbox carries the [`SANDBOX_LABEL`] label, which only runners that have that
//! sandbox offer, so no other runner is given the job.

use std::fmt;

use crate::units::{format_size, parse_size};

/// The label of a job that requires bubblewrap, offered by runners whose sandbox is
/// bubblewrap. Labels starting with [`RESERVED_LABEL_PREFIX`] are not for people to set.
pub const SANDBOX_LABEL: &str = "sandbox:bwrap";
pub const RESERVED_LABEL_PREFIX: &str = "sandbox:";

/// Most processes a job may ask for; a bound on a typo, not a recommendation.
pub const MAX_PIDS: u32 = 1 << 22;
/// Most CPUs a job may ask for, in thousandths of a CPU.
pub const MAX_CPUS_MILLI: u32 = 1024 * 1000;

/// Whether a job sees the host's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network, loopback included (the default: test suites install packages).
    #[default]
    Host,
    /// Only a loopback interface of the job's own.
    None,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        match text {
            "host" => Some(Network::Host),
            "none" => Some(Network::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::None => "none",
        }
    }

    /// The network a job gets on a runner: the runner's `none` wins over the job's.
    pub fn effective(job: Network, runner: Network) -> Network {
        if runner == Network::None {
            Network::None
        } else {
            job
        }
    }
}

/// Resource limits of a job; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory for all of the job's processes together.
    pub memory: Option<u64>,
    /// Processes (and threads) alive at once.
    pub pids: Option<u32>,
    /// CPU time per wall time, in thousandths of a CPU (`1500` = one and a half CPUs).
    pub cpus_milli: Option<u32>,
    /// Bytes the workspace may hold.
    pub disk: Option<u64>,
}

impl Limits {
    /// The job's limits within the runner's maximum: the smaller of both where both are
    /// set, the one that is set otherwise.
    pub fn within(self, max: Limits) -> Limits {
        fn least<T: Ord>(job: Option<T>, max: Option<T>) -> Option<T> {
            match (job, max) {
                (Some(job), Some(max)) => Some(job.min(max)),
                (job, max) => job.or(max),
            }
        }
        Limits {
            memory: least(self.memory, max.memory),
            pids: least(self.pids, max.pids),
            cpus_milli: least(self.cpus_milli, max.cpus_milli),
            disk: least(self.disk, max.disk),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}

impl fmt::Display for Limits {
    /// `memory 2 GiB, pids 256, cpus 1.5, disk 10 GiB`, or `none`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(memory) = self.memory {
            parts.push(format!("memory {}", format_size(memory)));
        }
        if let Some(pids) = self.pids {
            parts.push(format!("pids {pids}"));
        }
        if let Some(cpus) = self.cpus_milli {
            parts.push(format!("cpus {}", format_cpus(cpus)));
        }
        if let Some(disk) = self.disk {
            parts.push(format!("disk {}", format_size(disk)));
        }
        if parts.is_empty() {
            formatter.write_str("none")
        } else {
            formatter.write_str(&parts.join(", "))
        }
    }
}

/// `1.5`, `2`, `0.25`.
pub fn format_cpus(milli: u32) -> String {
    let text = format!("{}.{:03}", milli / 1000, milli % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Parses a memory or disk limit (`2GiB`, `512MiB`); more than zero.
pub fn parse_limit_size(text: &str) -> Option<u64> {
    parse_size(text).filter(|bytes| *bytes > 0)
}

/// Parses a process limit: a whole number from 1 to [`MAX_PIDS`].
pub fn parse_pids(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|pids| (1..=MAX_PIDS).contains(pids))
}

/// Parses a CPU limit (`2`, `1.5`, `0.25`) into thousandths; at least 0.01 CPU.
pub fn parse_cpus(text: &str) -> Option<u32> {
    let cpus: f64 = text.trim().parse().ok()?;
    let milli = (cpus * 1000.0).round();
    (cpus.is_finite() && (10.0..=f64::from(MAX_CPUS_MILLI)).contains(&milli))
        .then_some(milli as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_gets_its_own_limits_within_the_runners_maximum() {
        let job = Limits { memory: Some(4 << 30), pids: Some(100), cpus_milli: None, disk: None };
        let max = Limits { memory: Some(2 << 30), pids: None, cpus_milli: Some(1500), disk: None };
        assert_eq!(
            job.within(max),
            Limits { memory: Some(2 << 30), pids: Some(100), cpus_milli: Some(1500), disk: None }
        );
        assert_eq!(Limits::default().within(Limits::default()), Limits::default());
        assert_eq!(Limits::default().within(max), max);
        assert_eq!(job.within(Limits::default()), job);
    }

    #[test]
    fn the_runners_network_none_wins() {
        use Network::{Host, None};
        assert_eq!(Network::effective(Host, Host), Host);
        assert_eq!(Network::effective(None, Host), None);
        assert_eq!(Network::effective(Host, None), None);
        assert_eq!(Network::effective(None, None), None);
        assert_eq!(Network::parse("none"), Some(None));
        assert_eq!(Network::parse("host"), Some(Host));
        assert_eq!(Network::parse("off"), Option::None);
    }

    #[test]
    fn limits_parse_as_people_write_them() {
        assert_eq!(parse_limit_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_limit_size("0"), None);
        assert_eq!(parse_limit_size("lots"), None);
        assert_eq!(parse_pids("256"), Some(256));
        assert_eq!(parse_pids("0"), None);
        assert_eq!(parse_pids("-1"), None);
        assert_eq!(parse_cpus("1.5"), Some(1500));
        assert_eq!(parse_cpus("2"), Some(2000));
        assert_eq!(parse_cpus("0.001"), None);
        assert_eq!(parse_cpus("NaN"), None);
        assert_eq!(parse_cpus("inf"), None);
        assert_eq!(format_cpus(1500), "1.5");
        assert_eq!(format_cpus(2000), "2");
        assert_eq!(format_cpus(250), "0.25");
        let limits = Limits {
            memory: Some(2 << 30),
            pids: Some(64),
            cpus_milli: Some(500),
            disk: Some(10 << 30),
        };
        assert_eq!(limits.to_string(), "memory 2 GiB, pids 64, cpus 0.5, disk 10 GiB");
        assert_eq!(Limits::default().to_string(), "none");
    }
}
