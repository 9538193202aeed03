//! One UDP socket for the node's whole life, shared by the chitchat instances that use
//! it one after the other (see [`super::Gossip`]'s re-tick): a new instance starts
//! beside the old one without binding the port again, so there is no moment where the
//! port is free for another process or a datagram finds nobody.
//!
//! Each instance reads and writes through its own [`Switch`]: the new instance stays
//! silent, dropping what it would send and what it reads, until its state has been
//! carried over from the old one.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::ChitchatEnvelope;
use tokio::sync::{watch, Mutex};

/// The node's gossip socket (chitchat's own UDP socket, opened once).
#[derive(Clone)]
pub struct Shared {
    socket: Arc<Mutex<Box<dyn Socket>>>,
    addr: SocketAddr,
}

impl Shared {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Shared> {
        let socket = UdpTransport.open(addr).await?;
        Ok(Shared { socket: Arc::new(Mutex::new(socket)), addr })
    }

    /// A transport for one chitchat instance, silent until `switch` is turned on.
    pub fn transport(&self, switch: Switch) -> SharedTransport {
        SharedTransport { shared: self.clone(), switch }
    }
}

/// Whether one instance's datagrams pass.
#[derive(Clone)]
pub struct Switch(Arc<watch::Sender<bool>>);

impl Switch {
    pub fn on() -> Switch {
        Switch(Arc::new(watch::Sender::new(true)))
    }

    pub fn off() -> Switch {
        Switch(Arc::new(watch::Sender::new(false)))
    }

    pub fn turn_on(&self) {
        self.0.send_replace(true);
    }

    pub fn turn_off(&self) {
        self.0.send_replace(false);
    }

    fn is_on(&self) -> bool {
        *self.0.borrow()
    }

    async fn until_on(&self) {
        let mut on = self.0.subscribe();
        // The sender lives as long as `self`, so this returns only once it is on.
        let _ = on.wait_for(|on| *on).await;
    }
}

pub struct SharedTransport {
    shared: Shared,
    switch: Switch,
}

#[async_trait]
impl Transport for SharedTransport {
    /// Hands out the socket opened at start (on the same address).
    async fn open(&self, listen: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        anyhow::ensure!(
            listen == self.shared.addr,
            "gossip's socket is bound to {}, not {listen}",
            self.shared.addr
        );
        Ok(Box::new(SharedSocket { shared: self.shared.clone(), switch: self.switch.clone() }))
    }
}

/// One instance's use of the shared socket. chitchat never sends while its receive is
/// pending (both need the socket mutably), so within an instance the lock is never
/// contended; between instances, the old one holds it until it stops, and the new one
/// touches it only once switched on, after the old one has stopped.
struct SharedSocket {
    shared: Shared,
    switch: Switch,
}

#[async_trait]
impl Socket for SharedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.shared.addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if !self.switch.is_on() {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        self.shared.socket.lock().await.send(to, envelope).await
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        self.switch.until_on().await;
        let mut socket = self.shared.socket.lock().await;
        loop {
            let outcome = socket.recv().await?;
            if self.switch.is_on() {
                return Ok(outcome);
            }
        }
    }
}
