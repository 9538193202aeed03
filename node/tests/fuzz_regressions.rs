//! Inputs that broke the node's parsers under `cargo fuzz` (see `fuzz/` and
//! `scripts/fuzz.sh`), and hand-made malformed ones, replayed in the normal test suite.
//!
//! `fuzz_corpus/repo_config/` holds `.eventide.toml` texts, `fuzz_corpus/dispatch_rpc/`
//! dispatcher request bodies and `fuzz_corpus/admission/` gossip admission request
//! bodies. Files named `malformed-*` must be refused with an error; every other file
//! must be accepted; none may panic.
//!
//! - `admission/malformed-relayed-to-another-node.bin`: a node's signed request relayed
//!   by an outsider (issue 10) was answered, which let the outsider pass the handshake;
//!   a request must now be for the receiving node. `request-from-another-host.bin` is
//!   answered, but does not admit its asker on its word.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use axum::http::StatusCode;
use eventide_consensus::network::decode_request;
use eventide_consensus::testing::fuzz_corpus_for_test;
use eventide_node::protocol::admit as admit_rpc;
use eventide_node::protocol::dispatch::{
    ClaimRequest, FinishAndClaimRequest, RenewRequest, CLAIM_PATH, FINISH_AND_CLAIM_PATH,
    RENEW_PATH,
};
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
        let claim = decode_request::<ClaimRequest>("dispatcher", CLAIM_PATH, &bytes);
        let renew = decode_request::<RenewRequest>("dispatcher", RENEW_PATH, &bytes);
        let finish = FINISH_AND_CLAIM_PATH;
        let combined = decode_request::<FinishAndClaimRequest>("dispatcher", finish, &bytes);
        if refused {
            for answer in [claim.err(), renew.err(), combined.err()] {
                let response = answer.unwrap_or_else(|| panic!("{name} was accepted"));
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
            }
        }
    }
}

#[test]
fn admission_corpus_is_refused_unless_for_this_node() {
    // The receiving node and the asker's host the corpus is written for.
    let me: [SocketAddr; 2] =
        ["10.0.0.2:7800".parse().expect("addr"), "10.0.0.2:7800".parse().expect("addr")];
    let peer: IpAddr = "10.0.0.1".parse().expect("ip");
    for (name, bytes, refused) in corpus("admission") {
        match admit_rpc::check_request(&bytes, &me) {
            Ok(request) => {
                assert!(!refused, "{name} was accepted: {request:?}");
                let from_elsewhere = name.contains("another-host");
                assert_eq!(admit_rpc::comes_from(&request, peer), !from_elsewhere, "{name}");
            }
            Err(refusal) => assert!(refused, "{name} was refused: {refusal}"),
        }
        if let Some((_, rest)) = bytes.split_first() {
            let _ = admit_rpc::check_request(rest, &me);
        }
    }
}
