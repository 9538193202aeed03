//! The gossip admission handshake's messages and the pure checks of its answering side
//! (in the library, so that they can be fuzzed; the node's `gossip::admission` sends and
//! answers them).
//!
//! A node that hears from, or is about to gossip to, an unknown address `to` asks it,
//! over TCP, to prove the cluster secret: a signed `POST` of [`AdmitRequest`] `{ from,
//! to, challenge }` to [`ADMIT_PATH`]. The signature (of every internal request) covers
//! the body, so the request names, unforgeably, both who asks (`from`, its gossip
//! address) and whom it asks (`to`, the address it dialled). The answer is [`proof`]:
//! `HMAC(secret, label, from, to, challenge)` under a label of its own, so a proof
//! answers exactly one direction of one handshake.
//!
//! The answering side checks, besides the signature, that the request is for itself:
//! `to` is its advertised or listen address, else it refuses. So an outsider that
//! receives a node's request (by making the node ask it) can neither relay it back to
//! that node nor to another node to get the proof: neither is `to`.
//!
//! It answers and, only if the request comes from where it says ([`comes_from`]:
//! `from`'s IP is the TCP peer's IP; ports cannot be compared, the connection comes
//! from an ephemeral port), also admits `from` without a handshake of its own. A node
//! behind NAT (its connections come from another address than it advertises) is then
//! not admitted on its word, but still proven by the answering node's own handshake
//! with it; answering it is safe, since the proof only serves the handshake that `from`
//! started with `to`.
//!
//! The older handshake ([`UNBOUND_ADMIT_PATH`], `{ from, challenge }`) bound neither;
//! it is refused with 410 so that a node of an older version says why it is not
//! admitted (see `admission` for the rolling upgrade).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use eventide_consensus::auth::Secret;
use eventide_consensus::codec::{self, CodecError};
use serde::{Deserialize, Serialize};

/// The handshake's path (under `/internal/`, so the request is signed).
pub const ADMIT_PATH: &str = "/internal/gossip/v2/admit";
/// The path of the older, unbound handshake, answered with 410 Gone.
pub const UNBOUND_ADMIT_PATH: &str = "/internal/gossip/admit";
/// What the proof is keyed on, besides the request.
const ANSWER_LABEL: &[u8] = b"eventide-gossip-admit-answer-v2";

/// The handshake's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitRequest {
    /// The asker's gossip address (its advertised address).
    pub from: SocketAddr,
    /// The address the asker dialled: the answering node's gossip address.
    pub to: SocketAddr,
    pub challenge: [u8; 32],
}

/// The answer: [`proof`] of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitResponse {
    pub proof: [u8; 32],
}

/// Why an admission request is refused.
#[derive(Debug)]
pub enum Refusal {
    Malformed(CodecError),
    /// A signed request for another address: relayed here.
    NotForThisNode {
        to: SocketAddr,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(error) => write!(f, "malformed request: {error}"),
            Refusal::NotForThisNode { to } => {
                write!(f, "the request is for {to}, not for this node")
            }
        }
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// True for a request that was relayed (well formed and signed, but for another
    /// node).
    pub fn is_relayed(&self) -> bool {
        !matches!(self, Refusal::Malformed(_))
    }
}

/// Decodes and checks a request received by the node whose gossip addresses are `me`
/// (advertised and listen): the codec's decode, then [`check_addressed`].
pub fn check_request(body: &[u8], me: &[SocketAddr]) -> Result<AdmitRequest, Refusal> {
    let request: AdmitRequest = codec::decode(body).map_err(Refusal::Malformed)?;
    check_addressed(request, me)
}

/// Checks that a decoded request is for the node whose gossip addresses are `me`.
pub fn check_addressed(request: AdmitRequest, me: &[SocketAddr]) -> Result<AdmitRequest, Refusal> {
    if !me.iter().any(|addr| same_addr(*addr, request.to)) {
        return Err(Refusal::NotForThisNode { to: request.to });
    }
    Ok(request)
}

/// Whether `request` came over a TCP connection from its asker's host (`peer`), so that
/// the asker may be admitted on its word.
pub fn comes_from(request: &AdmitRequest, peer: IpAddr) -> bool {
    request.from.ip().to_canonical() == peer.to_canonical()
}

/// Equal addresses, an IPv4 address and its IPv6-mapped form being the same.
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// The proof that answers `request`: `HMAC(secret, label, from, to, challenge)`, the
/// addresses as text (`Display` of a socket address has no newline) between newlines.
pub fn proof(secret: &Secret, request: &AdmitRequest) -> [u8; 32] {
    let (from, to) = (request.from.to_string(), request.to.to_string());
    secret.derive(&[
        ANSWER_LABEL,
        b"\n",
        from.as_bytes(),
        b"\n",
        to.as_bytes(),
        b"\n",
        &request.challenge,
    ])
}

/// Checks, in constant time, that `answer` proves `request`.
pub fn verify(secret: &Secret, request: &AdmitRequest, answer: &AdmitResponse) -> bool {
    let (from, to) = (request.from.to_string(), request.to.to_string());
    secret.verify_derived(
        &[ANSWER_LABEL, b"\n", from.as_bytes(), b"\n", to.as_bytes(), b"\n", &request.challenge],
        &answer.proof,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    fn request(from: &str, to: &str) -> AdmitRequest {
        AdmitRequest { from: addr(from), to: addr(to), challenge: [7; 32] }
    }

    fn body(request: &AdmitRequest) -> Vec<u8> {
        codec::encode(request).expect("encode")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an ip")
    }

    #[test]
    fn a_request_for_this_node_passes() {
        let me = [addr("10.0.0.2:7800"), addr("0.0.0.0:7800")];
        let asked = request("10.0.0.1:7800", "10.0.0.2:7800");
        assert_eq!(check_request(&body(&asked), &me).expect("passes"), asked);
        // The listen address counts too (an advertised address behind a port mapping).
        let me = [addr("192.0.2.9:17800"), addr("10.0.0.2:7800")];
        assert!(check_request(&body(&asked), &me).is_ok());
        // The same address IPv6-mapped.
        let mapped = request("10.0.0.1:7800", "[::ffff:10.0.0.2]:7800");
        assert!(check_request(&body(&mapped), &me).is_ok());
    }

    #[test]
    fn a_request_for_another_address_is_refused() {
        let me = [addr("10.0.0.2:7800"), addr("10.0.0.2:7800")];
        // The asker dialled an outsider, who relayed the request here.
        let relayed = request("10.0.0.2:7800", "10.0.0.66:7800");
        let refusal = check_request(&body(&relayed), &me).expect_err("refused");
        assert!(matches!(refusal, Refusal::NotForThisNode { .. }) && refusal.is_relayed());
        // Same host, other port: another node.
        let other_port = request("10.0.0.1:7800", "10.0.0.2:7801");
        assert!(check_request(&body(&other_port), &me).is_err());
    }

    #[test]
    fn only_a_request_from_the_host_it_names_admits_its_asker() {
        let asked = request("10.0.0.1:7800", "10.0.0.2:7800");
        assert!(comes_from(&asked, ip("10.0.0.1")));
        // IPv4 peers of a dual-stack socket show up IPv6-mapped.
        assert!(comes_from(&asked, ip("::ffff:10.0.0.1")));
        // Relayed, or from behind NAT: answered, but the asker is not admitted on its word.
        assert!(!comes_from(&asked, ip("10.0.0.66")));
        assert!(!comes_from(&request("[::1]:7800", "10.0.0.2:7800"), ip("10.0.0.1")));
    }

    #[test]
    fn malformed_and_older_requests_are_refused() {
        let me = [addr("10.0.0.2:7800")];
        for bytes in [Vec::new(), vec![1], vec![1; 100], vec![9, 0, 10, 0, 0, 1, 0x60, 0x1e]] {
            let refusal = check_request(&bytes, &me).expect_err("refused");
            assert!(!refusal.is_relayed());
        }
        // The older request, `{ from, challenge }`, does not decode as this one.
        let older = codec::encode(&(addr("10.0.0.1:7800"), [7u8; 32])).expect("encode");
        assert!(matches!(check_request(&older, &me), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn a_proof_answers_one_direction_of_one_handshake() {
        let secret = Secret::try_new(b"a secret of enough length").expect("secret");
        let asked = request("10.0.0.1:7800", "10.0.0.2:7800");
        let answer = AdmitResponse { proof: proof(&secret, &asked) };
        assert!(verify(&secret, &asked, &answer));
        let reversed = request("10.0.0.2:7800", "10.0.0.1:7800");
        assert!(!verify(&secret, &reversed, &answer), "the other direction");
        let elsewhere = request("10.0.0.1:7800", "10.0.0.3:7800");
        assert!(!verify(&secret, &elsewhere, &answer), "another answering node");
        let mut other_challenge = asked.clone();
        other_challenge.challenge[0] ^= 1;
        assert!(!verify(&secret, &other_challenge, &answer));
        let other = Secret::try_new(b"another secret of enough length").expect("secret");
        assert!(!verify(&other, &asked, &answer));
    }
}
