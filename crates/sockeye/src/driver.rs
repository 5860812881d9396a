//! The task that owns a session's transport: it moves bytes between the socket and the
//! protocol core, fires the core's deadlines, and hands events to the application. Every
//! protocol decision is the core's ([`sockeye_proto::Connection`]).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use sockeye_proto::handshake::{Accept, Reject, Request};
use sockeye_proto::{CloseCode, CloseInfo, Connection, Event, Message, State, Transmit};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::{debug, trace};

use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::session::Session;

/// The clock of the runtime: tokio's, so that paused time in tests drives the protocol's
/// deadlines too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How many buffers one vectored write takes at most.
const MAX_IOVECS: usize = 32;
/// Read size.
const READ_CHUNK: usize = 16 * 1024;

/// State shared by the driver task and the application's handles.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the driver: output was queued, a handle went away, a read was taken.
    pub(crate) wake_driver: Notify,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) conn: Connection,
    pub(crate) config: Config,
    /// Received messages not yet taken by the application (WebSocket mode).
    pub(crate) incoming: VecDeque<Message>,
    incoming_bytes: usize,
    /// Bytes the driver took from the core and has not written yet.
    inflight: usize,
    /// The task reading messages, waiting for one.
    pub(crate) reader: Option<Waker>,
    /// Tasks waiting for buffer space, a flush, or the end of the session.
    waiters: Vec<Waker>,
    /// The driver has dropped the transport.
    pub(crate) finished: bool,
    /// The failure, if any, was already returned to the reader.
    pub(crate) failure_reported: bool,
    /// The driver has taken the core's Close event: every message before it is in
    /// `incoming`.
    pub(crate) close_seen: bool,
    /// Application handles (WebSocket, its halves) alive; when it drops to zero the session
    /// is closed in the background.
    pub(crate) handles: usize,
    /// Close at once with 1006 and drop the transport (server shutdown deadline passed).
    abort: bool,
}

impl Inner {
    /// Bytes queued for the socket, in the core and in the driver's hands.
    pub(crate) fn buffered(&self) -> usize {
        self.conn.buffered_amount() + self.inflight
    }

    pub(crate) fn wait(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    fn wake_all(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
    }

    /// Whether a message must wait for buffer space: the session can still send and the
    /// queue is over its high-water mark. A session that is closing or closed refuses
    /// messages at once instead (sending after close is an error, not a wait).
    fn must_wait_for_room(&self) -> bool {
        matches!(self.conn.state(), State::Connected | State::Open)
            && !self.finished
            && self.buffered() > self.config.write_buffer_high_water
    }

    pub(crate) fn incoming_over_high_water(&self) -> bool {
        self.incoming_bytes > self.config.read_buffer_high_water
    }

    pub(crate) fn pop_incoming(&mut self) -> Option<Message> {
        let message = self.incoming.pop_front()?;
        self.incoming_bytes -= message.as_bytes().len();
        Some(message)
    }

    /// Whether the stream of received messages has ended: the session's outcome is known
    /// and everything received before it was taken.
    pub(crate) fn incoming_ended(&self) -> bool {
        self.incoming.is_empty() && (self.close_seen || self.finished)
    }
}

impl Shared {
    pub(crate) fn new(conn: Connection, config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            inner: Mutex::new(Inner {
                conn,
                config,
                incoming: VecDeque::new(),
                incoming_bytes: 0,
                inflight: 0,
                reader: None,
                waiters: Vec::new(),
                finished: false,
                failure_reported: false,
                close_seen: false,
                handles: 0,
                abort: false,
            }),
            wake_driver: Notify::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data: every update
        // is a single step of the core.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> State {
        self.lock().conn.state()
    }

    pub(crate) fn close_info(&self) -> Option<CloseInfo> {
        self.lock().conn.close_info().cloned()
    }

    /// Starts the closing handshake and wakes the driver, and the senders waiting for
    /// buffer space: they can no longer send and must be told so now.
    pub(crate) fn close(&self, code: CloseCode, reason: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.conn.close(code, reason, now())?;
        inner.wake_all();
        drop(inner);
        self.wake_driver.notify_one();
        Ok(())
    }

    /// Drops the transport at once (server shutdown after its deadline).
    pub(crate) fn abort(&self) {
        self.lock().abort = true;
        self.wake_driver.notify_one();
    }

    /// Queues a message if the buffer has room; gives it back when it has not. Once the
    /// session is closing the core refuses the message, whatever the buffer holds.
    pub(crate) fn try_queue(&self, message: Message) -> Result<Option<Message>> {
        let mut inner = self.lock();
        if inner.must_wait_for_room() {
            return Ok(Some(message));
        }
        inner.conn.send(message)?;
        drop(inner);
        self.wake_driver.notify_one();
        Ok(None)
    }

    /// Queues a message, waiting while the buffer is over its high-water mark.
    pub(crate) async fn queue(&self, mut message: Message) -> Result<()> {
        loop {
            self.writable().await;
            match self.try_queue(message)? {
                None => return Ok(()),
                Some(back) => message = back,
            }
        }
    }

    /// Waits until the session's transport is gone, and returns its outcome.
    pub(crate) async fn finished(&self) -> CloseInfo {
        std::future::poll_fn(|cx| {
            let mut inner = self.lock();
            if inner.finished {
                if let Some(info) = inner.conn.close_info() {
                    return std::task::Poll::Ready(info.clone());
                }
            }
            inner.wait(cx.waker());
            std::task::Poll::Pending
        })
        .await
    }

    /// Waits until the queued bytes are below the high-water mark (or the session can no
    /// longer send at all).
    pub(crate) async fn writable(&self) {
        std::future::poll_fn(|cx| {
            let mut inner = self.lock();
            if !inner.must_wait_for_room() {
                return std::task::Poll::Ready(());
            }
            inner.wait(cx.waker());
            std::task::Poll::Pending
        })
        .await
    }

    pub(crate) fn add_handle(&self) {
        self.lock().handles += 1;
    }

    pub(crate) fn drop_handle(&self) {
        let mut inner = self.lock();
        inner.handles -= 1;
        if inner.handles == 0 {
            drop(inner);
            self.wake_driver.notify_one();
        }
    }
}

/// Whether the server accepts a request, and how.
pub(crate) type Decide<'a> =
    &'a mut (dyn FnMut(&Request) -> std::result::Result<Accept, Reject> + Send);

/// Runs the opening handshake on `stream` until the session is CONNECTED. Events after
/// `Connected` (frames that arrived with the response) stay queued in the core.
pub(crate) async fn handshake<S>(
    conn: &mut Connection,
    stream: &mut S,
    mut decide: Option<Decide<'_>>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request => {
                    let verdict = match (decide.as_mut(), conn.request()) {
                        (Some(decide), Some(request)) => decide(request),
                        (None, Some(_)) => Ok(Accept::default()),
                        (_, None) => continue,
                    };
                    match verdict {
                        Ok(accept) => {
                            if let Err(error) = conn.accept(accept, now()) {
                                // The application's answer is invalid for this request.
                                conn.reject(error.rejection());
                            }
                        }
                        Err(reject) => conn.reject(reject),
                    }
                }
                Event::Connected => {
                    flush(conn, stream).await?;
                    return Ok(());
                }
                Event::Close(info) => {
                    let _ = flush(conn, stream).await;
                    let _ = stream.shutdown().await;
                    return Err(info
                        .error
                        .map(Error::from_session)
                        .unwrap_or(Error::HandshakeTimeout));
                }
                Event::Message(_) => {}
            }
        }
        flush(conn, stream).await?;
        let deadline = conn.poll_timeout();
        buf.reserve(4096);
        let read = async {
            match deadline {
                Some(deadline) => {
                    tokio::time::timeout_at(deadline.into(), stream.read_buf(&mut buf)).await
                }
                None => Ok(stream.read_buf(&mut buf).await),
            }
        };
        match read.await {
            Ok(Ok(0)) => conn.receive_eof(now()),
            Ok(Ok(_)) => {
                conn.receive_data(&buf, now());
                buf.clear();
            }
            Ok(Err(error)) => conn.transport_error(error.to_string(), now()),
            Err(_elapsed) => conn.handle_timeout(now()),
        }
    }
}

async fn flush<S: AsyncWrite + Unpin>(conn: &mut Connection, stream: &mut S) -> Result<()> {
    while let Some(transmit) = conn.poll_transmit() {
        match transmit {
            Transmit::Data(bytes) => stream.write_all(&bytes).await?,
            Transmit::Shutdown => stream.shutdown().await?,
        }
    }
    stream.flush().await?;
    Ok(())
}

/// Who hears about the session's events.
pub(crate) enum Dispatch {
    /// Messages are queued for the `WebSocket` stream.
    Queue,
    /// The seed's endpoint model: callbacks on the driver's task.
    Endpoint(Box<dyn Endpoint>),
}

/// Drives an established session until its transport is closed.
pub(crate) async fn drive<S>(shared: Arc<Shared>, stream: S, mut dispatch: Dispatch)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut rbuf = BytesMut::new();
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    let mut shutdown_wanted = false;
    let mut shutdown_done = false;
    let mut read_eof = false;
    let mut linger_until: Option<Instant> = None;
    let mut flush_until: Option<Instant> = None;
    let session = Session::new(shared.clone());

    // Seed 000: on_open runs in CONNECTED; the session is OPEN once it returns, unless
    // it closed the session.
    if let Dispatch::Endpoint(endpoint) = &mut dispatch {
        endpoint.on_open(&session);
    }
    shared.lock().conn.open();

    loop {
        // 1. Events, delivered outside the lock (callbacks may use the session).
        let events: Vec<Event> = {
            let mut inner = shared.lock();
            let mut events = Vec::new();
            while let Some(event) = inner.conn.poll_event() {
                if matches!(event, Event::Close(_)) {
                    // The session can no longer send: senders waiting for buffer space
                    // must fail now rather than wait for room.
                    inner.wake_all();
                }
                match (&dispatch, event) {
                    (Dispatch::Queue, Event::Message(message)) => {
                        if message.is_data() && inner.handles > 0 {
                            inner.incoming_bytes += message.as_bytes().len();
                            inner.incoming.push_back(message);
                        }
                    }
                    (Dispatch::Queue, Event::Close(_)) => inner.close_seen = true,
                    (_, event) => events.push(event),
                }
            }
            if !inner.incoming.is_empty() || inner.close_seen {
                if let Some(reader) = inner.reader.take() {
                    reader.wake();
                }
            }
            events
        };
        if let Dispatch::Endpoint(endpoint) = &mut dispatch {
            for event in events {
                match event {
                    Event::Message(message) if message.is_data() => {
                        endpoint.on_message(&session, message);
                    }
                    // Ping and Pong were answered and tracked by the core; on_message is for
                    // Text and Binary only, as in WebSocket mode.
                    Event::Message(_) => {}
                    Event::Close(info) => {
                        if let Some(error) = &info.error {
                            endpoint.on_error(&session, error);
                        }
                        endpoint.on_close(&session, &info);
                    }
                    Event::Request | Event::Connected => {}
                }
            }
        }

        // 2. Output, and what to wait for.
        let (want_read, deadline, closed) = {
            let mut inner = shared.lock();
            let now = now();
            if inner.abort && !inner.conn.state().is_closed() {
                inner
                    .conn
                    .transport_error("aborted by server shutdown", now);
                pending.clear();
                inner.inflight = 0;
            }
            if inner.handles == 0
                && matches!(dispatch, Dispatch::Queue)
                && matches!(inner.conn.state(), State::Connected | State::Open)
            {
                // Every handle was dropped without closing: close in the background so
                // the peer sees a Close, not a lost connection.
                debug!("all handles dropped; closing with 1001");
                let _ = inner.conn.close(CloseCode::GOING_AWAY, "", now);
            }
            while let Some(transmit) = inner.conn.poll_transmit() {
                match transmit {
                    Transmit::Data(bytes) => {
                        inner.inflight += bytes.len();
                        pending.push_back(bytes);
                    }
                    Transmit::Shutdown => shutdown_wanted = true,
                }
            }
            let closed = inner.conn.state().is_closed();
            let reading_allowed = inner.handles == 0
                || !matches!(dispatch, Dispatch::Queue)
                || inner.incoming_bytes <= inner.config.read_buffer_high_water;
            let want_read = !read_eof && reading_allowed;
            if closed && linger_until.is_none() && shutdown_done {
                linger_until = Some(now + inner.config.linger);
            }
            if closed && flush_until.is_none() {
                // The core's deadlines are over. What is left to write (data queued before
                // our Close, the Close itself) gets one close timeout, so that a peer that
                // never reads cannot keep the transport forever.
                flush_until = Some(now + inner.config.protocol.close_timeout);
            }
            let flushed = pending.is_empty() && (shutdown_done || !shutdown_wanted);
            let deadline = match (closed, flushed) {
                (true, true) => linger_until,
                (true, false) => flush_until,
                (false, _) => inner.conn.poll_timeout(),
            };
            (want_read, deadline, closed)
        };

        let flushed = pending.is_empty() && (shutdown_done || !shutdown_wanted);
        if closed && !flushed && flush_until.is_some_and(|t| t <= now()) {
            debug!("output not written within the close timeout; dropping the transport");
            break;
        }
        if closed && flushed {
            if read_eof || linger_until.is_some_and(|t| t <= now()) || inner_aborted(&shared) {
                break;
            }
            if linger_until.is_none() {
                // No shutdown was asked for (the transport failed): nothing to linger for.
                break;
            }
        }

        // 3. Wait for the socket, a deadline or the application.
        let outcome = {
            let must_write = !pending.is_empty() || (shutdown_wanted && !shutdown_done);
            let write = async {
                if pending.is_empty() {
                    Outcome::Shut(wr.shutdown().await)
                } else {
                    let slices: Vec<IoSlice<'_>> = pending
                        .iter()
                        .take(MAX_IOVECS)
                        .map(|b| IoSlice::new(b))
                        .collect();
                    Outcome::Wrote(wr.write_vectored(&slices).await)
                }
            };
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
                rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                outcome = write, if must_write => outcome,
                result = rd.read_buf(&mut rbuf), if want_read => Outcome::Read(result),
                () = sleep_until(deadline), if deadline.is_some() => Outcome::Timer,
                () = shared.wake_driver.notified() => Outcome::Woken,
            }
        };

        match outcome {
            Outcome::Wrote(Ok(mut n)) => {
                shared.lock().inflight -= n;
                while n > 0 {
                    let Some(front) = pending.front_mut() else {
                        break;
                    };
                    if n >= front.len() {
                        n -= front.len();
                        pending.pop_front();
                    } else {
                        front.advance(n);
                        n = 0;
                    }
                }
                if pending.is_empty() {
                    let _ = wr.flush().await;
                }
                shared.lock().wake_all();
            }
            Outcome::Wrote(Err(error)) | Outcome::Shut(Err(error)) => {
                trace!(%error, "write failed");
                let mut inner = shared.lock();
                inner.conn.transport_error(error.to_string(), now());
                inner.inflight = 0;
                pending.clear();
                shutdown_done = true;
                read_eof = true;
            }
            Outcome::Shut(Ok(())) => shutdown_done = true,
            Outcome::Read(Ok(0)) => {
                read_eof = true;
                shared.lock().conn.receive_eof(now());
            }
            Outcome::Read(Ok(_)) => {
                let mut inner = shared.lock();
                if !closed {
                    inner.conn.receive_data(&rbuf, now());
                }
                rbuf.clear();
            }
            Outcome::Read(Err(error)) => {
                read_eof = true;
                shared.lock().conn.transport_error(error.to_string(), now());
            }
            Outcome::Timer => {
                if !closed {
                    shared.lock().conn.handle_timeout(now());
                }
            }
            Outcome::Woken => {}
        }
    }

    let mut inner = shared.lock();
    inner.finished = true;
    inner.incoming_bytes = inner.incoming.iter().map(|m| m.as_bytes().len()).sum();
    inner.wake_all();
    trace!(state = %inner.conn.state(), "driver finished");
}

fn inner_aborted(shared: &Shared) -> bool {
    shared.lock().abort
}

enum Outcome {
    Wrote(std::io::Result<usize>),
    Shut(std::io::Result<()>),
    Read(std::io::Result<usize>),
    Timer,
    Woken,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
