//! The internal RPC handlers, fed arbitrary bodies in process.
//!
//! The Raft routes (`/internal/raft/{append,vote,snapshot,write}`) are the real axum
//! router of a real single-node Raft with its sled store in a temp dir, called with
//! tower's `oneshot`: a body that decodes reaches openraft (and, for `write`, the state
//! machine) as it would on a node. The dispatcher's routes (claim, finish-and-claim,
//! renew) need a whole node, so their bodies go through the same decode function the
//! handlers' extractor calls.
//!
//! Every answer must be a 2xx or a 4xx: bad input is never a 5xx, a hang or a panic.
//!
//! One class of input is out of reach of any handler: a well-formed message from a
//! forged leader (a higher term, another node's id) that contradicts what the node has
//! committed. Raft trusts its peers; only authenticated RPC keeps such messages out.
//! openraft checks its invariants with debug assertions, which such a message trips in
//! its core task. Those panics (in openraft's own code) are counted and the node is
//! rebuilt instead of failing the run; a panic anywhere else still aborts it.

#![no_main]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use eventide_consensus::network::{
    decode_request, raft_routes, HttpNetwork, APPEND_PATH, CODEC_CONTENT_TYPE, SNAPSHOT_PATH,
    VOTE_PATH, WRITE_PATH,
};
use eventide_consensus::store;
use eventide_consensus::types::Raft;
use eventide_consensus::{NodeId, NodeInfo, RaftTiming};
use eventide_node::protocol::dispatch::{
    ClaimRequest, FinishAndClaimRequest, RenewRequest, CLAIM_PATH, FINISH_AND_CLAIM_PATH,
    RENEW_PATH,
};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Target {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

/// Set when openraft's core panicked on the last input: the node must be rebuilt.
static OPENRAFT_TRIPPED: AtomicBool = AtomicBool::new(false);
static OPENRAFT_PANICS: AtomicU64 = AtomicU64::new(0);

/// Lets panics raised in openraft's own source through (counted), and hands every other
/// panic to the fuzzer's hook, which aborts the run.
fn install_panic_filter() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_openraft = info.location().is_some_and(|l| l.file().contains("/openraft-"));
            if in_openraft {
                OPENRAFT_TRIPPED.store(true, Ordering::SeqCst);
                let count = OPENRAFT_PANICS.fetch_add(1, Ordering::SeqCst) + 1;
                if count.is_power_of_two() {
                    eprintln!("openraft assertion #{count} (forged leader input): {info}");
                }
            } else {
                fuzzer_hook(info);
            }
        }));
    });
}

fn start() -> Target {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let router = runtime.block_on(async {
        let (log_store, state_machine) = store::open(dir.path()).expect("a store");
        let config = RaftTiming::default().to_config("fuzz").expect("default timing");
        let network =
            HttpNetwork::new(eventide_consensus::auth::Signer::new(None)).expect("an http client");
        let raft = Raft::new(NodeId(1), Arc::new(config), network, log_store, state_machine)
            .await
            .expect("raft starts");
        // A cluster of one, so that writes commit and reach the state machine.
        let me = BTreeMap::from([(NodeId(1), NodeInfo::new("127.0.0.1:1", "fuzz"))]);
        raft.initialize(me).await.expect("initialize");
        raft.wait(Some(Duration::from_secs(10)))
            .metrics(|m| m.current_leader == Some(NodeId(1)), "leader")
            .await
            .expect("leads itself");
        raft_routes(raft)
    });
    Target { runtime, router, _dir: dir }
}

const RAFT_PATHS: [&str; 4] = [APPEND_PATH, VOTE_PATH, SNAPSHOT_PATH, WRITE_PATH];

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 7 {
        4 => {
            let _ = decode_request::<ClaimRequest>("dispatcher", CLAIM_PATH, body);
        }
        5 => {
            let _ = decode_request::<RenewRequest>("dispatcher", RENEW_PATH, body);
        }
        6 => {
            let path = FINISH_AND_CLAIM_PATH;
            let _ = decode_request::<FinishAndClaimRequest>("dispatcher", path, body);
        }
        route => {
            install_panic_filter();
            static TARGET: Mutex<Option<Target>> = Mutex::new(None);
            let mut slot = TARGET.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.is_none() || OPENRAFT_TRIPPED.swap(false, Ordering::SeqCst) {
                *slot = None;
                *slot = Some(start());
            }
            let target = slot.as_ref().expect("just started");
            let path = RAFT_PATHS[usize::from(route)];
            // The content type is not what decides: garbage under the right one too.
            let content_type = if which & 0x80 == 0 { CODEC_CONTENT_TYPE } else { "text/plain" };
            let request = Request::post(path)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body.to_vec()))
                .expect("a valid request");
            let status = target.runtime.block_on(async {
                let call = target.router.clone().oneshot(request);
                match tokio::time::timeout(Duration::from_secs(30), call).await {
                    Ok(Ok(response)) => response.status(),
                    Ok(Err(infallible)) => match infallible {},
                    Err(_) => panic!("{path} did not answer within 30 s"),
                }
            });
            assert!(
                status.is_success() || status.is_client_error(),
                "{path} answered {status} to {} bytes",
                body.len()
            );
            assert_ne!(status, StatusCode::NOT_FOUND, "{path} is routed");
        }
    }
});
