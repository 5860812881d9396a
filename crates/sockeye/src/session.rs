//! A cloneable handle on a running session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sockeye_proto::{CloseCode, CloseInfo, Fragment, Message, State};

use crate::driver::Shared;
use crate::error::{Error, Result};

/// A handle on a running session: send from any task, close it, ask its state.
///
/// Cloning is cheap. Dropping a `Session` does not close the session (the
/// [`WebSocket`](crate::WebSocket) or the [`Endpoint`](crate::Endpoint) owns that).
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state())
            .finish()
    }
}

/// Starts the driver of an established session with `endpoint`'s callbacks on its task,
/// and returns a handle on it.
pub(crate) fn spawn_endpoint<S, E>(shared: Arc<Shared>, stream: S, endpoint: E) -> Session
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    E: crate::Endpoint,
{
    crate::driver::spawn(
        shared.clone(),
        stream,
        crate::driver::Dispatch::Endpoint(Box::new(endpoint)),
    );
    Session::new(shared)
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Session {
        Session { shared }
    }

    /// The session's state: the six states of seed 000 with the CLOSING flags.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// Queues a message without waiting. Fails with [`Error::Full`] when the outgoing
    /// buffer is over its high-water mark, and with [`Error::Send`] once the session is
    /// closing or closed.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<()> {
        match self.shared.try_queue(message.into())? {
            None => Ok(()),
            Some(_) => Err(Error::Full(self.shared.lock().buffered())),
        }
    }

    /// Queues a message, waiting while the outgoing buffer is over its high-water mark
    /// (backpressure). Fails with [`Error::Send`] once the session is closing or closed.
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<()>> + Send + Unpin + '_ {
        self.shared.queue(message.into())
    }

    /// Queues one part of a message, the last one if `fin`, waiting while the outgoing
    /// buffer is over its high-water mark: see
    /// [`WebSocket::send_fragment`](crate::WebSocket::send_fragment).
    pub fn send_fragment(
        &self,
        fragment: impl Into<Fragment>,
        fin: bool,
    ) -> impl Future<Output = Result<()>> + Send + Unpin + '_ {
        self.shared.queue((fragment.into(), fin))
    }

    /// Checks that the peer answers, now: sends a Ping (RFC 6455 5.5.2) and waits for its
    /// Pong, returning the round trip, which [`latency`](Self::latency) then reports. If
    /// one of our Pings (a keepalive's) already awaits its Pong, that Pong answers this
    /// call too. The Pong is awaited as a keepalive's is: without it within the pong
    /// timeout (`Config::protocol.pong_timeout`, 20 s by default) the session is closed
    /// with 1011 and this fails with the session's error, as it does when the session
    /// ends first; refused at once once the session is closing.
    ///
    /// ```no_run
    /// # async fn run(session: sockeye::Session) -> sockeye::Result<()> {
    /// let rtt = session.ping().await?;
    /// println!("round trip: {rtt:?}");
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<Duration> {
        self.shared.ping().await
    }

    /// The round trip of the last of our Pings the peer answered: a keepalive Ping's
    /// (`Config::protocol.ping_interval`) or one of [`ping`](Self::ping); `None` before
    /// the first. Measured from when the Ping was queued, so it includes the time it
    /// waited behind other output.
    pub fn latency(&self) -> Option<Duration> {
        self.shared.lock().conn.latency()
    }

    /// Starts the closing handshake (RFC 6455 7.1.2). Returns at once; see
    /// [`closed`](Self::closed) to wait for the outcome. Refuses codes that may not be
    /// sent and reasons over 123 bytes; does nothing if the session is already closing.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<()> {
        self.shared.close(code, reason)
    }

    /// Fails the connection (RFC 6455 7.1.7) on the application's behalf, for a peer it
    /// will not hear out: 1003 for data it cannot accept, 1008 for a policy violation,
    /// 1011 for a condition it cannot handle. Sends a Close frame with `code` and `reason`
    /// if one can still be sent, stops reading, and closes the connection without waiting
    /// for the peer's Close (the closing handshake is what [`close`](Self::close) is
    /// for). The outcome is not clean: code 1006 unless the peer's Close had already
    /// arrived, our Close in `sent`, and [`Error::Application`] as the error, which a
    /// `WebSocket`'s stream yields (as [`Error::Failed`](crate::Error::Failed)) before its
    /// end. After `close` it stops the wait for the peer's answer; it refuses codes that
    /// may not be sent and reasons over 123 bytes, like `close`.
    ///
    /// [`Error::Application`]: sockeye_proto::Error::Application
    pub fn fail(&self, code: CloseCode, reason: &str) -> Result<()> {
        self.shared.fail(code, reason)
    }

    /// Waits until the session is CLOSED and its transport dropped; returns the outcome.
    pub async fn closed(&self) -> CloseInfo {
        self.shared.finished().await
    }

    /// The outcome, once the session's close is settled.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.close_info()
    }

    /// Every state the session entered, in order, starting with NEW.
    pub fn state_history(&self) -> Vec<State> {
        self.shared.lock().conn.history().to_vec()
    }

    /// Which end closed the TCP connection first: `Some(true)` if the peer did. RFC 6455
    /// 7.1.1 wants the server to, so that TIME_WAIT lands on the server.
    pub fn peer_closed_first(&self) -> Option<bool> {
        self.shared.lock().conn.peer_closed_first()
    }

    /// The subprotocol agreed in the handshake; `None` for a session started
    /// `after_handshake`, whose handshake this session did not see.
    pub fn subprotocol(&self) -> Option<String> {
        self.shared.lock().conn.subprotocol().map(str::to_owned)
    }
}
