//! `.eventide.toml` from arbitrary text, through every entry point the node uses.
//!
//! Parsing must end in a configuration or a one-line error, never a panic; whatever it
//! accepts must satisfy the limits the runner relies on.

#![no_main]

use eventide_node::repo_config::{self, MAX_LABELS, MAX_TIMEOUT, RESERVED_ENV_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = repo_config::labels_of(Some(text));
    let _ = repo_config::resolve(Some(text), true);
    match repo_config::parse(text) {
        Ok(config) => {
            assert!(!config.command.trim().is_empty());
            assert!(!config.command.contains('\0'));
            assert!(!config.timeout.is_zero() && config.timeout <= MAX_TIMEOUT);
            assert!(config.labels.len() <= MAX_LABELS);
            assert!(config.env.keys().all(|name| !name.starts_with(RESERVED_ENV_PREFIX)));
            for pattern in &config.junit {
                assert!(!pattern.starts_with('/'), "{pattern:?} is relative");
                assert!(
                    pattern.split(['/', '\\']).all(|part| part != ".."),
                    "{pattern:?} stays inside"
                );
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.contains('\n'), "error is one line: {message:?}");
        }
    }
});
