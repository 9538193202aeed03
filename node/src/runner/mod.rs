//! The runner role.

pub mod exec;
