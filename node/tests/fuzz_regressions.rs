//! Inputs that broke the node's parsers under `cargo fuzz` (see `fuzz/` and
//! `scripts/fuzz.sh`), and hand-made malformed ones, replayed in the normal test suite.
//!
//! `fuzz_corpus/repo_config/` holds `.eventide.toml` texts and `fuzz_corpus/dispatch_rpc/`
//! dispatcher request bodies. Files named `malformed-*` must be refused with an error;
//! every other file must be accepted; none may panic.

use std::path::PathBuf;

use axum::http::StatusCode;
use eventide_consensus::testing::fuzz_corpus_for_test;
use eventide_node::dispatch_rpc::{self, ClaimRequest, RenewRequest, CLAIM_PATH, RENEW_PATH};
use eventide_node::repo_config;

fn corpus(target: &str) -> Vec<(String, Vec<u8>, bool)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(target);
    fuzz_corpus_for_test(&dir)
}

#[test]
fn repo_config_corpus_is_refused_with_one_line_errors() {
    for (name, bytes, refused) in corpus("repo_config") {
        let text = String::from_utf8_lossy(&bytes);
        let _ = repo_config::labels_of(Some(&text));
        match repo_config::parse(&text) {
            Ok(config) => assert!(!refused, "{name} was accepted: {config:?}"),
            Err(error) => {
                assert!(!refused || !error.to_string().is_empty());
                assert!(refused, "{name} was refused: {error}");
                assert!(!error.to_string().contains('\n'), "{name}: {error:?} is one line");
            }
        }
    }
}

#[test]
fn dispatch_corpus_is_answered_with_400() {
    for (name, bytes, refused) in corpus("dispatch_rpc") {
        let claim = dispatch_rpc::decode_request::<ClaimRequest>(CLAIM_PATH, &bytes);
        let renew = dispatch_rpc::decode_request::<RenewRequest>(RENEW_PATH, &bytes);
        if refused {
            for answer in [claim.err(), renew.err()] {
                let response = answer.unwrap_or_else(|| panic!("{name} was accepted"));
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
            }
        }
    }
}
