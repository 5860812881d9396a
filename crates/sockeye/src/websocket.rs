//! The `Stream` + `Sink` face of a session, and its two halves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use sockeye_proto::{CloseCode, CloseInfo, Fragment, Message, State};

use crate::driver::Shared;
use crate::error::{Error, Result};
use crate::session::Session;

/// One WebSocket connection: a [`Stream`] of received messages and a [`Sink`] of messages
/// to send. The session runs on its own task; this is a handle on it.
///
/// - **Receiving** yields Text and Binary messages (Ping is answered and Pong tracked by
///   the session). The stream ends (`None`) after the peer's Close frame, or yields one
///   `Err` first if the session failed (protocol error, lost connection, timeout).
///   Receiving is cancel-safe: dropping a `next()` or `recv()` future (in
///   `tokio::select!`, say) loses nothing; the message stays queued for the next call.
///   [`recv`](Self::recv) and [`next`](Self::next) are one method under two names
///   (`ws.next()` calls it in preference to `StreamExt::next`): while it waits, its own
///   task reads the socket. Receiving through the `Stream` trait itself (its combinators,
///   `StreamExt::next(&mut ws)`) leaves the reading to the session's task, which then
///   wakes the reader (a task switch per message). Either way pings are answered while
///   nobody receives.
/// - **Sending**, by the `send` methods or the `Sink` alike, waits while the outgoing
///   buffer is over its high-water mark. Once our Close is queued, sending is an error,
///   never a silent drop. After the peer's Close, the messages that arrived before it can
///   still be answered until the stream has yielded its end; the reply to the peer's Close
///   follows those answers. The `Sink`'s flush completes once everything queued was
///   written, and fails with the session's error if it failed first (what was still
///   queued may be lost).
/// - **Closing**: [`close`](Self::close) runs the closing handshake and returns how the
///   session ended. **Dropping** every handle without closing sends a 1001 Close and
///   finishes the handshake in the background, bounded by the close timeout, so the peer
///   sees a clean close rather than a lost connection.
///
/// ```no_run
/// use sockeye::{CloseCode, Message};
///
/// # async fn run() -> sockeye::Result<()> {
/// let (mut ws, _response) = sockeye::connect("ws://127.0.0.1:9001/").await?;
/// ws.send(Message::Text("hello".into())).await?;
/// if let Some(reply) = ws.next().await {
///     println!("{:?}", reply?);
/// }
/// let info = ws.close(CloseCode::NORMAL, "done").await?;
/// assert!(info.clean);
/// # Ok(()) }
/// ```
pub struct WebSocket {
    shared: Arc<Shared>,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("state", &self.shared.state())
            .finish()
    }
}

impl WebSocket {
    pub(crate) fn new(shared: Arc<Shared>) -> WebSocket {
        shared.add_handle(true);
        WebSocket { shared }
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// A cloneable handle to send from other tasks, close, or ask the state.
    pub fn session(&self) -> Session {
        Session::new(self.shared.clone())
    }

    /// The subprotocol agreed in the handshake.
    pub fn subprotocol(&self) -> Option<String> {
        self.shared.lock().conn.subprotocol().map(str::to_owned)
    }

    /// The permessage-deflate parameters agreed in the handshake, or `None` when messages
    /// are not compressed.
    pub fn deflate(&self) -> Option<sockeye_proto::extension::DeflateParams> {
        self.shared.lock().conn.deflate().copied()
    }

    /// Runs the closing handshake with `code` and `reason` and waits until the session is
    /// CLOSED, bounded by the close timeout. Returns how it ended: `clean` tells whether
    /// both Close frames were exchanged. Calling it again, or after the peer closed,
    /// returns the same outcome.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<CloseInfo> {
        self.shared.close(code, reason)?;
        Ok(self.shared.finished().await)
    }

    /// How the session ended, once known.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.close_info()
    }

    /// Sends a Ping and waits for its Pong: the round trip. See [`Session::ping`].
    pub async fn ping(&self) -> Result<std::time::Duration> {
        self.shared.ping().await
    }

    /// The round trip of the last of our Pings the peer answered. See
    /// [`Session::latency`].
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.shared.lock().conn.latency()
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Splits into a sending and a receiving half, usable from two tasks. Closing either
    /// half closes the session once; the receiving half then ends, it does not hang.
    pub fn split(self) -> (WebSocketSender, WebSocketReceiver) {
        let sender = WebSocketSender::new(self.shared.clone());
        let receiver = WebSocketReceiver::new(self.shared.clone());
        (sender, receiver)
    }
}

/// Starts the driver of an established session and returns its handle. The handle is
/// counted before the driver runs, so the driver never sees a session without handles
/// (which it would close) in between.
pub(crate) fn spawn_websocket<S>(shared: Arc<Shared>, stream: S) -> WebSocket
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let ws = WebSocket::new(shared.clone());
    // This mode has no on_open: the session is OPEN as soon as the handle exists.
    shared.lock().conn.open();
    crate::driver::spawn(shared, stream, crate::driver::Dispatch::Queue);
    ws
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        self.shared.drop_handle(true);
    }
}

pub(crate) fn poll_recv(shared: &Shared, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
    take_message(shared, shared.lock(), cx)
}

/// The future of `recv`: [`poll_recv`], but while it waits its task reads the socket
/// itself (see [`Shared::read_for_reader`]), which spares the driver's task a wake-up per
/// message. Dropped while it waits, it hands the reading back to the driver; the
/// `Stream` (whose `next()` future can be dropped without a trace) leaves the reading to
/// the driver.
struct Recv<'a> {
    shared: &'a Shared,
    /// This `recv` reads the socket while it waits.
    reading: bool,
}

impl<'a> Recv<'a> {
    fn new(shared: &'a Shared) -> Recv<'a> {
        Recv {
            shared,
            reading: false,
        }
    }
}

impl Future for Recv<'_> {
    type Output = Option<Result<Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut inner = this.shared.lock();
        if inner.incoming.is_empty() && !inner.incoming_ended() {
            this.shared
                .read_for_reader(&mut inner, cx, &mut this.reading);
        }
        let poll = take_message(this.shared, inner, cx);
        if poll.is_ready() && std::mem::take(&mut this.reading) {
            this.shared.wakes.stop_reading();
        }
        poll
    }
}

impl Drop for Recv<'_> {
    fn drop(&mut self) {
        if self.reading {
            self.shared.wakes.stop_reading();
        }
    }
}

/// Takes the next received message, or the end of the stream; else registers the reader.
fn take_message(
    shared: &Shared,
    mut inner: std::sync::MutexGuard<'_, crate::driver::Inner>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message>>> {
    let was_full = inner.incoming_over_high_water();
    if let Some(message) = inner.pop_incoming(&shared.wakes.driver) {
        if was_full {
            drop(inner);
            shared.wake_driver();
        }
        return Poll::Ready(Some(Ok(message)));
    }
    if inner.incoming_ended() {
        if !inner.failure_reported {
            inner.failure_reported = true;
            let error = inner.conn.close_info().and_then(|info| info.error.clone());
            if let Some(error) = error {
                return Poll::Ready(Some(Err(Error::from_session(error))));
            }
        }
        return Poll::Ready(None);
    }
    shared.wait_for_message(cx.waker());
    Poll::Pending
}

fn poll_ready(shared: &Shared, cx: &mut Context<'_>) -> Poll<Result<()>> {
    let mut inner = shared.lock();
    // The core decides whether a message may be sent now; the buffer's room is the only
    // thing to wait for.
    inner.conn.check_send()?;
    if inner.must_wait_for_room() {
        inner.wait(cx.waker());
        return Poll::Pending;
    }
    Poll::Ready(Ok(()))
}

fn start_send(shared: &Shared, message: Message) -> Result<()> {
    let mut inner = shared.lock();
    inner.conn.send(message)?;
    shared.written_or_handed_over(inner);
    Ok(())
}

fn poll_flush(shared: &Shared, cx: &mut Context<'_>) -> Poll<Result<()>> {
    let mut inner = shared.lock();
    if inner.finished {
        return Poll::Ready(inner.how_it_ended());
    }
    if inner.buffered() == 0 {
        return Poll::Ready(Ok(()));
    }
    inner.wait(cx.waker());
    Poll::Pending
}

fn poll_close(shared: &Shared, cx: &mut Context<'_>) -> Poll<Result<()>> {
    // The first poll starts the closing handshake as `close` does; the next ones find it
    // started and wait for its end.
    shared.close(CloseCode::NORMAL, "")?;
    let mut inner = shared.lock();
    if inner.finished {
        return Poll::Ready(inner.how_it_ended());
    }
    inner.wait(cx.waker());
    Poll::Pending
}

/// The sending side of a handle: `send` and `send_fragment`, through the session's send
/// future.
macro_rules! send_over_shared {
    ($handle:ty) => {
        impl $handle {
            /// Sends a message, waiting while the outgoing buffer is full.
            pub fn send(
                &mut self,
                message: impl Into<Message>,
            ) -> impl Future<Output = Result<()>> + Send + Unpin + '_ {
                self.shared.queue(message.into())
            }

            /// Sends one part of a message, the last one if `fin`, waiting while the
            /// outgoing buffer is full: for a message made piece by piece, which is then
            /// never held whole on this side (RFC 6455 5.4). Until the last part, `send`
            /// and a part of the other kind fail with
            /// [`SendError::UnfinishedMessage`](sockeye_proto::SendError); Pings, Pongs
            /// and a close may come between. Such a message is not compressed. See
            /// [`Connection::send_fragment`](sockeye_proto::Connection::send_fragment).
            ///
            /// ```no_run
            /// # async fn run(ws: &mut sockeye::WebSocket) -> sockeye::Result<()> {
            /// use sockeye::Fragment;
            /// for row in ["[1,", "2,", "3]"] {
            ///     ws.send_fragment(Fragment::from(row), false).await?;
            /// }
            /// // The last part: the peer receives "[1,2,3]".
            /// ws.send_fragment(Fragment::from(""), true).await?;
            /// # Ok(()) }
            /// ```
            pub fn send_fragment(
                &mut self,
                fragment: impl Into<Fragment>,
                fin: bool,
            ) -> impl Future<Output = Result<()>> + Send + Unpin + '_ {
                self.shared.queue((fragment.into(), fin))
            }
        }
    };
}

send_over_shared!(WebSocket);
send_over_shared!(WebSocketSender);

/// The receiving side of a handle: `recv()`, the same method as `next()`, and the
/// [`Stream`] for combinators.
macro_rules! receive_over_shared {
    ($handle:ty) => {
        impl $handle {
            /// Receives the next message; `None` once the session is closing or closed.
            /// Cancel-safe. While it waits, the calling task reads the socket itself (the
            /// session's own task reads whenever no `recv` waits, and when one is dropped).
            pub fn recv(&mut self) -> impl Future<Output = Option<Result<Message>>> + Unpin + '_ {
                Recv::new(&self.shared)
            }

            /// [`recv`](Self::recv) under the name of `StreamExt::next`, which `.next()`
            /// calls in preference to the trait's method: the idiomatic receive loop reads
            /// the socket on its own task while it waits. The [`Stream`] implementation,
            /// for combinators, leaves the reading to the session's task.
            ///
            /// ```no_run
            /// # async fn run(mut ws: sockeye::WebSocket) {
            /// while let Some(Ok(message)) = ws.next().await {
            ///     println!("{message:?}");
            /// }
            /// # }
            /// ```
            #[expect(
                clippy::should_implement_trait,
                reason = "the receiving counterpart of `StreamExt::next`, which it shadows"
            )]
            pub fn next(&mut self) -> impl Future<Output = Option<Result<Message>>> + Unpin + '_ {
                self.recv()
            }
        }

        impl Stream for $handle {
            type Item = Result<Message>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                poll_recv(&self.shared, cx)
            }
        }
    };
}

/// The `Sink` of a handle: waits for buffer space, queues into the session, flushes until
/// the socket took everything, and closes with 1000 Normal Closure, completing once the
/// session is CLOSED. Flush and close fail with the session's error when it ended
/// otherwise than by a clean close (a lost connection, a close timeout, a violation).
macro_rules! sink_over_shared {
    ($handle:ty) => {
        impl Sink<Message> for $handle {
            type Error = Error;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                poll_ready(&self.shared, cx)
            }

            fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
                start_send(&self.shared, item)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                poll_flush(&self.shared, cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                poll_close(&self.shared, cx)
            }
        }
    };
}

receive_over_shared!(WebSocket);

sink_over_shared!(WebSocket);

/// The sending half of a [`WebSocket`]: a [`Sink`] of messages.
pub struct WebSocketSender {
    shared: Arc<Shared>,
}

impl fmt::Debug for WebSocketSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketSender").finish_non_exhaustive()
    }
}

impl WebSocketSender {
    fn new(shared: Arc<Shared>) -> Self {
        shared.add_handle(false);
        WebSocketSender { shared }
    }

    /// Closes the session (once, for both halves) and waits for the outcome.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<CloseInfo> {
        self.shared.close(code, reason)?;
        Ok(self.shared.finished().await)
    }

    /// A cloneable handle on the session.
    pub fn session(&self) -> Session {
        Session::new(self.shared.clone())
    }
}

impl Drop for WebSocketSender {
    fn drop(&mut self) {
        self.shared.drop_handle(false);
    }
}

sink_over_shared!(WebSocketSender);

/// The receiving half of a [`WebSocket`]: a [`Stream`] of messages.
pub struct WebSocketReceiver {
    shared: Arc<Shared>,
}

impl fmt::Debug for WebSocketReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReceiver").finish_non_exhaustive()
    }
}

impl WebSocketReceiver {
    fn new(shared: Arc<Shared>) -> Self {
        shared.add_handle(true);
        WebSocketReceiver { shared }
    }

    /// A cloneable handle on the session.
    pub fn session(&self) -> Session {
        Session::new(self.shared.clone())
    }
}

impl Drop for WebSocketReceiver {
    fn drop(&mut self) {
        self.shared.drop_handle(true);
    }
}

receive_over_shared!(WebSocketReceiver);
