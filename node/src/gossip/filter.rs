//! chitchat's UDP transport with a filter in front: what may leave, what may come in.
//! The admission gate and the client pace are both filters over one socket.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;

/// Decides on each datagram; a datagram it refuses is dropped without a word.
pub trait Filter: Send + Sync + 'static {
    /// Whether `envelope` goes out to `to`.
    fn lets_out(self: &Arc<Self>, to: SocketAddr, envelope: &ChitchatEnvelope) -> bool;
    /// Whether a datagram from `from` is read.
    fn lets_in(self: &Arc<Self>, from: SocketAddr) -> bool;
}

/// A transport whose sockets pass every datagram through `filter`.
pub struct Filtered<T, F> {
    pub inner: T,
    pub filter: Arc<F>,
}

#[async_trait]
impl<T: Transport, F: Filter> Transport for Filtered<T, F> {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = self.inner.open(listen_addr).await?;
        Ok(Box::new(FilteredSocket { inner, filter: self.filter.clone() }))
    }
}

struct FilteredSocket<F> {
    inner: Box<dyn Socket>,
    filter: Arc<F>,
}

#[async_trait]
impl<F: Filter> Socket for FilteredSocket<F> {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if self.filter.lets_out(to, &envelope) {
            self.inner.send(to, envelope).await
        } else {
            Ok(SendOutcome { num_bytes_sent: 0 })
        }
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let outcome = self.inner.recv().await?;
            if self.filter.lets_in(outcome.from_addr) {
                return Ok(outcome);
            }
        }
    }
}
