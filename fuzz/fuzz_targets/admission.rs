//! The gossip admission handshake's answering side, from arbitrary bodies and peers.
//!
//! The first input byte picks the TCP peer's address among a few (the asker's host, a
//! stranger, IPv6 forms); the rest is the body. Checking must end in a request or a
//! refusal, never a panic. A request that passes is for this node, admits its asker
//! only from the asker's host, and its proof verifies in that direction only.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use eventide_consensus::auth::Secret;
use eventide_consensus::codec;
use eventide_node::protocol::admit::{self as admit_rpc, AdmitRequest, AdmitResponse};
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 4] = ["10.0.0.1", "10.0.0.66", "::ffff:10.0.0.1", "::1"];

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let me: [SocketAddr; 2] =
        ["10.0.0.2:7800".parse().expect("addr"), "[::1]:7800".parse().expect("addr")];
    let peer: IpAddr = PEERS[usize::from(which) % PEERS.len()].parse().expect("ip");
    let _ = codec::decode::<AdmitResponse>(body);
    let Ok(request) = admit_rpc::check_request(body, &me) else { return };
    assert!(me.iter().any(|addr| addr.port() == request.to.port()));
    let from_peer = request.from.ip().to_canonical() == peer.to_canonical();
    assert_eq!(admit_rpc::comes_from(&request, peer), from_peer);
    let secret = Secret::try_new(b"the fuzzing cluster secret").expect("secret");
    let answer = AdmitResponse { proof: admit_rpc::proof(&secret, &request) };
    assert!(admit_rpc::verify(&secret, &request, &answer));
    let reversed = AdmitRequest { from: request.to, to: request.from, ..request.clone() };
    assert!(reversed == request || !admit_rpc::verify(&secret, &reversed, &answer));
    let again = codec::encode(&request).expect("a request encodes");
    assert_eq!(admit_rpc::check_request(&again, &me).expect("passes again"), request);
});
