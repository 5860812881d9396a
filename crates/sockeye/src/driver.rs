//! The task that owns a session's transport: it moves bytes between the socket and the
//! protocol core, fires the core's deadlines, and hands events to the application. Every
//! protocol decision is the core's ([`sockeye_proto::Connection`]).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use sockeye_proto::handshake::{Accept, Reject, Request};
use sockeye_proto::{
    CloseCode, CloseInfo, Connection, Event, Fragment, Message, SendError, State, Transmit,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, trace};

use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::spare::{SPARE_MAX, SPARE_MIN, SPARE_SMALL, Spare};

/// The clock of the runtime: tokio's, so that paused time in tests drives the protocol's
/// deadlines too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How many buffers one vectored write takes at most.
const MAX_IOVECS: usize = 32;
/// How many pieces of the core's output a sender writes in place at most (see
/// [`Inner::write_now`]).
const IN_PLACE_IOVECS: usize = 4;
/// The room a read asks for, adapted between these bounds to what the reads bring.
const READ_MIN: usize = 2 * 1024;
const READ_MAX: usize = 64 * 1024;

/// Doubles the room after a read that filled it, halves it after a read that used less
/// than a quarter of it.
fn next_read_size(size: usize, read: usize) -> usize {
    if read >= size {
        (size * 2).min(READ_MAX)
    } else if read < size / 4 {
        (size / 2).max(READ_MIN)
    } else {
        size
    }
}

/// State shared by the driver task and the application's handles.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// The driver's wake-up signal, and the routing of the socket's read readiness.
    pub(crate) wakes: Arc<Wakes>,
    /// The waker a waiting `recv` reads the socket with: [`Wakes`] as a `Waker`.
    read_waker: Waker,
}

/// Who is woken when the socket becomes readable. The driver reads when nobody else
/// does; while a `recv` waits for a message, its own task reads instead (one task
/// switch per message fewer: the driver is not woken to read and then wake the reader).
/// The socket keeps one read waker, which the waiting `recv` sets to this one; a wake is
/// sent on to the reader while it waits, else to the driver, so that a session keeps
/// answering pings and closes while the application is not receiving.
#[derive(Debug, Default)]
pub(crate) struct Wakes {
    /// Wakes the driver: output was queued, a handle went away, a read was taken.
    pub(crate) driver: DriverWake,
    /// A `recv` waits and reads the socket itself.
    reader_reads: AtomicBool,
    /// The socket's readiness was signalled since the reader last tried to read: when the
    /// reader stops reading before it tried again, the driver must read.
    readable: AtomicBool,
    /// The task of the reader waiting for a message: woken when one is queued or the
    /// stream ends, and by the socket while that reader reads it.
    reader: AtomicWaker,
}

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Sequentially consistent with `stop_reading`: either the reader sees `readable`
        // once it stopped, or this sees that it stopped and wakes the driver.
        self.readable.store(true, Ordering::SeqCst);
        if self.reader_reads.load(Ordering::SeqCst) {
            self.reader.wake();
        } else {
            self.driver.notify_one();
        }
    }
}

impl Wakes {
    /// The reader stops reading (it returns a message, or its `recv` was dropped): the
    /// socket's next readiness goes to the driver, and one that came since the reader's
    /// last read wakes the driver now.
    pub(crate) fn stop_reading(&self) {
        self.reader_reads.store(false, Ordering::SeqCst);
        if self.readable.swap(false, Ordering::SeqCst) {
            self.driver.notify_one();
        }
    }
}

/// The signal that wakes the driver's task, kept outside the session lock: a flag, which
/// stays set until the driver sees it (a wake-up before the driver waits is not lost), and
/// the waker of the driver's last wait. Checking it takes a few atomic operations (the
/// flag, and the waker's registration when the flag is clear), where `tokio::sync::Notify`
/// takes the lock of its waiter list each time it is polled.
#[derive(Debug, Default)]
pub(crate) struct DriverWake {
    woken: AtomicBool,
    waker: AtomicWaker,
}

impl DriverWake {
    /// Wakes the driver, now if it waits, else at its next wait.
    pub(crate) fn notify_one(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready once, and reset, after `notify_one`; else registers the task to be woken.
    fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken.swap(false, Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A wake-up between the check and the registration found no waker to wake.
        if self.woken.swap(false, Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) conn: Connection,
    /// The runtime's own settings; the protocol's stay in `conn` (one copy per session).
    pub(crate) limits: Limits,
    /// Received messages not yet taken by the application (WebSocket mode).
    pub(crate) incoming: VecDeque<Message>,
    incoming_bytes: usize,
    /// Bytes the driver took from the core and has not written yet. The core counts them
    /// against its hard bound (`max_write_buffer`): change it with `set_inflight` only.
    inflight: usize,
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
    /// A Close event waits for the reader to handle the messages received before it.
    holding_close: bool,
    /// The application closed the session: a peer's Close no longer waits for the reader
    /// (it will not answer the messages before it), and its reply goes out at once.
    close_asked: bool,
    /// Handles that receive (a WebSocket, a receiving half). With none, received messages
    /// are dropped and nothing waits for a reader.
    readers: usize,
    /// Close at once with 1006 and drop the transport (server shutdown deadline passed).
    abort: bool,
    /// The reader asked for a message and found none: it has handled every message it
    /// took. Cleared when it takes one.
    reader_asked: bool,
    /// The driver holds back a failure until the reader asks for more: the reader's next
    /// empty ask wakes it.
    driver_waits: bool,
    /// The deadline the driver waits for, as it last looked, and the core's count of
    /// deadline changes then: until the count moves, the core's deadline is the same.
    driver_deadline: Option<Instant>,
    driver_deadline_changes: u64,
    /// The core's count of deadline changes when its deadline was last compared with the
    /// driver's: until it moves, a reader need not compare them again.
    deadline_seen: u64,
    /// The transport's write side and the bytes taken from the core for it.
    out: Output,
    /// The transport's read side and what its reads keep between them.
    input: Input,
}

/// The settings of [`Config`] that the runtime layer applies itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) write_buffer_high_water: usize,
    read_buffer_high_water: usize,
    linger: std::time::Duration,
}

/// The write side of the transport, shared so that a sender can write its message itself
/// when the transport takes it at once, instead of handing it to the driver's task (a
/// task switch per message). Whatever the transport does not take at once is left to the
/// driver, which also does the shutdown.
#[derive(Default)]
struct Output {
    /// `None` before the driver starts and after it dropped the transport.
    io: Option<WriteSide>,
    /// Bytes taken from the core, in order, not written yet.
    pending: VecDeque<Bytes>,
    /// Bytes were written since the last flush (TLS keeps records until flushed).
    unflushed: bool,
    /// The core asked to shut the transport down (after the last frame).
    shutdown_wanted: bool,
    /// A sender's write failed; the driver handles it as its own.
    failed: Option<std::io::Error>,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("open", &self.io.is_some())
            .field("pending", &self.pending.len())
            .field("unflushed", &self.unflushed)
            .field("shutdown_wanted", &self.shutdown_wanted)
            .finish_non_exhaustive()
    }
}

/// The read side of the transport, in the shared state so that whichever task reads (the
/// driver, or a receiving handle waiting for a message) feeds the core under the session
/// lock, in order.
struct Input {
    /// `None` before the driver starts and after it dropped the transport.
    io: Option<ReadSide>,
    /// The core's receive buffer, lent for the reads (they go straight into it).
    buf: BytesMut,
    /// The room a read asks for, adapted to what the reads bring.
    size: usize,
    /// A read's failure kept for the next one (see [`poll_read_some`]).
    failed: Option<std::io::Error>,
    /// The storage of the last frame, for the next one (see [`Spare`]).
    spare: Option<Spare>,
    /// The read side is done: end of stream, a read or write failure.
    eof: bool,
    /// The last read was the waiting reader's and found nothing: the socket's readiness
    /// wakes it through [`Wakes`]. Cleared when the driver reads.
    reader_registered: bool,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("open", &self.io.is_some())
            .field("buffered", &self.buf.len())
            .field("size", &self.size)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl Default for Input {
    fn default() -> Input {
        Input {
            io: None,
            buf: BytesMut::new(),
            size: READ_MIN,
            failed: None,
            spare: None,
            eof: false,
            reader_registered: false,
        }
    }
}

impl Output {
    /// Nothing is left to write or flush (the shutdown aside).
    fn written(&self) -> bool {
        self.pending.is_empty() && !self.unflushed
    }
}

impl Inner {
    /// What the `Sink`'s flush and close and a `ping` report once the session is over:
    /// `Ok` after a clean close, which wrote everything queued before its Close frame; the
    /// session's failure otherwise (what was still queued may never have been written, and
    /// the closing handshake did not complete).
    pub(crate) fn how_it_ended(&self) -> Result<()> {
        let failure = self.conn.close_info().and_then(|info| info.error.clone());
        failure.map_or(Ok(()), |error| Err(Error::from_session(error)))
    }

    /// Bytes queued for the socket, in the core and in the driver's hands.
    pub(crate) fn buffered(&self) -> usize {
        self.conn.buffered_amount() + self.inflight
    }

    /// Records the bytes taken from the core and not written yet, and tells the core, so
    /// that its hard bound on output covers the driver's write buffer too.
    fn set_inflight(&mut self, bytes: usize) {
        self.inflight = bytes;
        self.conn.set_unwritten(bytes);
    }

    pub(crate) fn wait(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    /// Wakes every task waiting on the session: the writers and the reader.
    fn wake_all(&mut self, wakes: &Wakes) {
        self.wake_waiters();
        wakes.reader.wake();
    }

    /// Moves the core's output to the write queue.
    fn take_output(&mut self) {
        while let Some(transmit) = self.conn.poll_transmit() {
            match transmit {
                Transmit::Data(bytes) => {
                    let inflight = self.inflight + bytes.len();
                    self.set_inflight(inflight);
                    self.out.pending.push_back(bytes);
                }
                Transmit::Shutdown => self.out.shutdown_wanted = true,
            }
        }
    }

    /// Writes the queue, up to [`MAX_IOVECS`] buffers per vectored write (the slices are
    /// built on the stack: writing allocates nothing), then flushes. Ready once everything
    /// was written and flushed.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(io) = self.out.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while let Some(first) = self.out.pending.front() {
            let written = if self.out.pending.len() == 1 {
                // One buffer (an answer, a lone message): no array of slices to fill.
                write_slices(io, cx, &[IoSlice::new(first)])
            } else if self.out.pending.len() == 2 {
                // A header and the payload it goes with (a message of 1 KiB and more): two
                // slices, not an array of `MAX_IOVECS` to fill.
                write_slices(
                    io,
                    cx,
                    &[IoSlice::new(first), IoSlice::new(&self.out.pending[1])],
                )
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slice, bytes) in slices.iter_mut().zip(&self.out.pending) {
                    *slice = IoSlice::new(bytes);
                    count += 1;
                }
                write_slices(io, cx, &slices[..count])
            };
            let mut n = match written {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            self.out.unflushed = true;
            self.inflight -= n;
            self.conn.set_unwritten(self.inflight);
            while n > 0 {
                let Some(front) = self.out.pending.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    self.out.pending.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            }
        }
        if self.out.unflushed {
            match Pin::new(io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.out.unflushed = false,
                other => return other,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// A sender's write: takes the core's output and writes what the transport takes now,
    /// without waiting. Returns whether the driver must go on (bytes left, a shutdown, a
    /// failure, or no transport yet).
    fn write_now(&mut self) -> bool {
        // The noop waker registers nobody for the transport's readiness: when it is full,
        // the driver writes, and its own poll registers it.
        let mut cx = Context::from_waker(Waker::noop());
        if self.out.pending.is_empty()
            && !self.out.shutdown_wanted
            && self.out.failed.is_none()
            && let Some(io) = self.out.io.as_mut()
        {
            // Nothing of ours waits before the core's output: write it from the core's
            // buffers, without taking it out piece by piece into our queue. A message of
            // 1 KiB and more is two pieces (its header and its payload); more than a few
            // pieces are rare, and the rest follows below.
            let mut slices = [IoSlice::new(&[]); IN_PLACE_IOVECS];
            let count = self.conn.output_slices(&mut slices);
            if count > 0 {
                match write_slices(io, &mut cx, &slices[..count]) {
                    Poll::Ready(Ok(n)) => {
                        self.out.unflushed = true;
                        self.conn.output_written(n);
                    }
                    Poll::Ready(Err(error)) => {
                        self.out.failed = Some(error);
                        return true;
                    }
                    Poll::Pending => {}
                }
            }
        }
        self.take_output();
        if self.out.io.is_none() || self.out.shutdown_wanted || self.out.failed.is_some() {
            return true;
        }
        match self.poll_write_out(&mut cx) {
            Poll::Ready(Ok(())) => false,
            Poll::Ready(Err(error)) => {
                self.out.failed = Some(error);
                true
            }
            Poll::Pending => true,
        }
    }

    /// Reads what the transport has and gives it to the core (or the end of the stream, or
    /// the failure). Ready once a read was made; pending, with `cx` registered for the
    /// socket's readiness, when nothing has arrived.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(io) = self.input.io.as_mut() else {
            return Poll::Pending;
        };
        let conn = &self.conn;
        let read = poll_read_some(
            io,
            cx,
            &mut self.input.buf,
            self.input.size,
            |first: &[u8]| conn.receive_size_hint(first),
            &mut self.input.failed,
            &mut self.input.spare,
        );
        match read {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(0)) => {
                self.input.eof = true;
                self.conn.receive_eof(now());
            }
            Poll::Ready(Ok(n)) => {
                if self.conn.state().is_closed() {
                    self.input.buf.clear();
                } else {
                    self.input.size = next_read_size(self.input.size, n);
                    let buf = std::mem::take(&mut self.input.buf);
                    self.conn.receive_buffer(buf, now());
                    self.input.buf = self.conn.lend_receive_buffer(0);
                }
            }
            Poll::Ready(Err(error)) => {
                self.input.eof = true;
                self.conn.transport_error(error.to_string(), now());
            }
        }
        Poll::Ready(())
    }

    /// Wakes the tasks waiting for buffer space or a flush (not the reader).
    fn wake_waiters(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// Whether the application is done with the messages received so far: it took them
    /// all and asked for the next one, it closed the session, or no handle is left to
    /// read.
    fn reader_caught_up(&self) -> bool {
        self.readers == 0 || self.close_asked || (self.incoming.is_empty() && self.reader_asked)
    }

    /// Whether a message must wait for buffer space: the session can still send and the
    /// queue is over its high-water mark. A session that can no longer send refuses
    /// messages at once instead (sending after close is an error, not a wait).
    pub(crate) fn must_wait_for_room(&self) -> bool {
        self.conn.can_send()
            && !self.finished
            && self.buffered() > self.limits.write_buffer_high_water
    }

    /// Whether the transport may be read: it is there, its read side is not done, and the
    /// received messages are not over their high-water mark, or reading past it is
    /// needed and bounded (see [`reads_past_high_water`](Self::reads_past_high_water)).
    fn may_read(&self) -> bool {
        self.input.io.is_some()
            && !self.input.eof
            && (!self.incoming_over_high_water() || self.reads_past_high_water())
    }

    /// Whether the transport is read although the received messages are over their
    /// high-water mark. Once the core drops what is read (after the peer's Close, or a
    /// failure), reading costs no memory and finds the peer's EOF. Once our Close is sent,
    /// the peer's Close, behind what the peer sent before it saw ours, must be read for the
    /// closing handshake to finish, so that an application that closes need not read
    /// first; up to twice the mark, which bounds a peer that goes on sending (the close
    /// timeout then ends the session).
    fn reads_past_high_water(&self) -> bool {
        !self.conn.takes_input()
            || (self.conn.state().close_sent()
                && self.incoming_bytes <= self.limits.read_buffer_high_water.saturating_mul(2))
    }

    /// The core's next deadline, for the driver: asked of the core only once its deadlines
    /// changed since the driver last asked; until then it is the one the driver waits for
    /// (`driver_deadline`, which the driver's loop sets, and which is the core's until the
    /// session is CLOSED, when the core has no deadline left and this is not asked).
    fn core_deadline(&mut self) -> Option<Instant> {
        let changes = self.conn.deadline_changes();
        if changes == self.driver_deadline_changes {
            return self.driver_deadline;
        }
        self.driver_deadline_changes = changes;
        self.conn.poll_timeout()
    }

    /// Whether the core's next deadline is nearer than the one the driver waits for, which
    /// must then wake to wait for it. Asks the core for its deadline only once the core's
    /// deadlines changed since the last look (about 100 instructions less per message read
    /// by a `WebSocket`'s reader, which asked twice).
    fn deadline_nearer(&mut self) -> bool {
        let changes = self.conn.deadline_changes();
        if changes == self.deadline_seen {
            return false;
        }
        self.deadline_seen = changes;
        self.conn
            .poll_timeout()
            .is_some_and(|at| self.driver_deadline.is_none_or(|waited| at < waited))
    }

    pub(crate) fn incoming_over_high_water(&self) -> bool {
        self.incoming_bytes > self.limits.read_buffer_high_water
    }

    pub(crate) fn pop_incoming(&mut self, wake_driver: &DriverWake) -> Option<Message> {
        let Some(message) = self.incoming.pop_front() else {
            // The reader wants the next message: a failure held back until now may take
            // effect (see `queue_events`).
            self.reader_asked = true;
            if std::mem::take(&mut self.driver_waits) {
                wake_driver.notify_one();
            }
            return None;
        };
        self.reader_asked = false;
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
    /// The state of a session whose opening handshake was made elsewhere (see
    /// [`Connection::after_handshake`]), with `config`.
    pub(crate) fn after_handshake(role: sockeye_proto::Role, config: &Config) -> Arc<Shared> {
        let conn = Connection::after_handshake(role, config.protocol.clone(), now());
        Shared::new(conn, config.clone())
    }

    pub(crate) fn new(conn: Connection, config: Config) -> Arc<Shared> {
        // The driver compares the core's deadline with its own when it first runs.
        let deadline_seen = conn.deadline_changes();
        let wakes = Arc::new(Wakes::default());
        Arc::new(Shared {
            inner: Mutex::new(Inner {
                conn,
                limits: Limits {
                    write_buffer_high_water: config.write_buffer_high_water,
                    read_buffer_high_water: config.read_buffer_high_water,
                    linger: config.linger,
                },
                incoming: VecDeque::new(),
                incoming_bytes: 0,
                inflight: 0,
                waiters: Vec::new(),
                finished: false,
                failure_reported: false,
                close_seen: false,
                handles: 0,
                readers: 0,
                holding_close: false,
                close_asked: false,
                abort: false,
                // Nothing was handed to the reader yet, so it has handled everything.
                reader_asked: true,
                driver_waits: false,
                driver_deadline: None,
                driver_deadline_changes: deadline_seen.wrapping_sub(1),
                deadline_seen,
                out: Output::default(),
                input: Input::default(),
            }),
            wakes: wakes.clone(),
            read_waker: Waker::from(wakes),
        })
    }

    /// A `recv` that found no message reads the socket itself, on its own task, and gives
    /// what arrived to the core; the driver is woken only when a read leaves it something
    /// to do (see [`Wakes`]). Reads until the socket has nothing more, whose readiness then
    /// wakes this reader (`reading` records that it reads), or until the session's read
    /// side is done or the received messages fill the queue. Once a message waits, one more
    /// read is made (usually finding nothing, which registers the reader); if it brings
    /// more, the rest is left to the driver, so that a peer that keeps sending does not
    /// keep the reader from its first message.
    pub(crate) fn read_for_reader(&self, inner: &mut Inner, cx: &Context<'_>, reading: &mut bool) {
        if !inner.may_read() {
            return;
        }
        self.wait_for_message(cx.waker());
        if !*reading {
            self.wakes.reader_reads.store(true, Ordering::SeqCst);
            *reading = true;
        }
        if inner.input.reader_registered && !self.wakes.readable.load(Ordering::SeqCst) {
            // The socket holds the reader's waker from its last read, which found nothing,
            // and nothing has arrived since: a read would find nothing either.
            return;
        }
        let mut read_cx = Context::from_waker(&self.read_waker);
        let mut message_waits = false;
        while inner.may_read() {
            self.wakes.readable.store(false, Ordering::SeqCst);
            let state = inner.conn.state();
            if inner.poll_input(&mut read_cx).is_pending() {
                inner.input.reader_registered = true;
                break;
            }
            // The messages are for this task, which is running: nobody to wake.
            queue_events(inner, &self.wakes);
            let nearer = inner.deadline_nearer();
            // Answers (a Pong, a Close) are written here; what is left, a change of state
            // (closing, closed, the end of the stream) and a nearer deadline are the
            // driver's.
            let unwritten = inner.conn.buffered_amount() > 0 && inner.write_now();
            if unwritten || inner.input.eof || inner.conn.state() != state || nearer {
                self.wake_driver();
            }
            if !inner.incoming.is_empty() {
                if message_waits {
                    // More keeps coming: the driver reads it while this task takes the
                    // first message.
                    self.wake_driver();
                    break;
                }
                message_waits = true;
            }
        }
    }

    /// Wakes the driver, now if it waits, else at its next wait.
    pub(crate) fn wake_driver(&self) {
        self.wakes.driver.notify_one();
    }

    /// Registers the task of the reader waiting for a message.
    pub(crate) fn wait_for_message(&self, waker: &Waker) {
        self.wakes.reader.register(waker);
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
    /// buffer space: they can no longer send and must be told so now. Closing again does
    /// nothing (the core's close is idempotent), but for refusing an invalid code.
    pub(crate) fn close(&self, code: CloseCode, reason: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.conn.close(code, reason, now())?;
        if inner.close_asked {
            return Ok(());
        }
        self.ended_locally(inner);
        Ok(())
    }

    /// Fails the connection on the application's behalf (the core's `fail`): our Close, if
    /// one can still be sent, then the transport closed without waiting for the peer's.
    pub(crate) fn fail(&self, code: CloseCode, reason: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.conn.fail(code, reason, now())?;
        // Even after a close: the driver stops waiting for the peer's Close.
        self.ended_locally(inner);
        Ok(())
    }

    /// After the application closed or failed the session: a held peer Close is released,
    /// and waiting senders and the driver are woken to see the new state.
    fn ended_locally(&self, mut inner: MutexGuard<'_, Inner>) {
        inner.close_asked = true;
        inner.wake_all(&self.wakes);
        drop(inner);
        self.wake_driver();
    }

    /// Drops the transport at once (server shutdown after its deadline).
    pub(crate) fn abort(&self) {
        self.lock().abort = true;
        self.wake_driver();
    }

    /// Queues a message if the buffer has room; gives it back when it has not.
    pub(crate) fn try_queue<T: Outgoing>(&self, message: T) -> Result<Option<T>> {
        self.offer(message, None)
    }

    /// Queues a message if the buffer has room, under one lock; gives it back when it has
    /// not, after registering `waiter` (if any) to be woken when room is made. Inlined, so
    /// that each caller's copy is specialised to its `waiter`.
    #[inline(always)]
    fn offer<T: Outgoing>(&self, message: T, waiter: Option<&Waker>) -> Result<Option<T>> {
        let mut inner = self.lock();
        if inner.must_wait_for_room() {
            if let Some(waker) = waiter {
                inner.wait(waker);
            }
            return Ok(Some(message));
        }
        message.queue_in(&mut inner.conn)?;
        self.written_or_handed_over(inner);
        Ok(None)
    }

    /// After output was queued in the core: writes it now if the transport takes it,
    /// else wakes the driver to write it.
    pub(crate) fn written_or_handed_over(&self, mut inner: MutexGuard<'_, Inner>) {
        if inner.write_now() {
            drop(inner);
            self.wake_driver();
        }
    }

    /// Queues a message, waiting while the buffer is over its high-water mark: see
    /// [`Queue`].
    pub(crate) fn queue<T: Outgoing>(&self, message: T) -> Queue<'_, T> {
        Queue {
            shared: self,
            message: Some(message),
        }
    }

    /// Sends a Ping now (the core's `ping`) and waits for the Pong that answers it, or the
    /// one awaited already: the round trip. Fails when the session ends first.
    pub(crate) async fn ping(&self) -> Result<Duration> {
        let answered = {
            let mut inner = self.lock();
            inner.conn.ping(now())?;
            let answered = inner.conn.pongs_received() + 1;
            self.written_or_handed_over(inner);
            answered
        };
        // The Pong's deadline is new: the driver waits for it.
        self.wake_driver();
        std::future::poll_fn(|cx| {
            let mut inner = self.lock();
            if inner.conn.pongs_received() >= answered
                && let Some(latency) = inner.conn.latency()
            {
                return Poll::Ready(Ok(latency));
            }
            if inner.conn.close_info().is_some() {
                // Ended without the Pong: its failure, or closed cleanly before it came.
                let ended = inner.how_it_ended();
                return Poll::Ready(ended.and(Err(Error::Send(SendError::Closed))));
            }
            inner.wait(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Waits until the session's transport is gone, and returns its outcome.
    pub(crate) async fn finished(&self) -> CloseInfo {
        std::future::poll_fn(|cx| {
            let mut inner = self.lock();
            if inner.finished
                && let Some(info) = inner.conn.close_info()
            {
                return std::task::Poll::Ready(info.clone());
            }
            inner.wait(cx.waker());
            std::task::Poll::Pending
        })
        .await
    }

    pub(crate) fn add_handle(&self, reader: bool) {
        let mut inner = self.lock();
        inner.handles += 1;
        inner.readers += usize::from(reader);
    }

    pub(crate) fn drop_handle(&self, reader: bool) {
        let mut inner = self.lock();
        inner.handles -= 1;
        inner.readers -= usize::from(reader);
        if inner.readers == 0 {
            // Nobody will take these: free them, and let a held Close go ahead.
            inner.incoming.clear();
            inner.incoming_bytes = 0;
        }
        drop(inner);
        self.wake_driver();
    }
}

/// The future of a send. Each poll takes the session lock once: with room in the buffer
/// (the common case, at the first poll) it queues the message and writes what the socket
/// takes; without, it registers the task to be woken when room is made, and tries again
/// then. A future of its own rather than an `async` loop over [`Shared::try_queue`] and a
/// wait for room, whose nested state machines cost the echo of a message about 60 more
/// instructions in its handler's task.
pub(crate) struct Queue<'a, T = Message> {
    shared: &'a Shared,
    /// `None` once queued.
    message: Option<T>,
}

impl<T: Outgoing + Unpin> Future for Queue<'_, T> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let Some(message) = this.message.take() else {
            return Poll::Ready(Ok(()));
        };
        match this.shared.offer(message, Some(cx.waker()))? {
            None => Poll::Ready(Ok(())),
            Some(back) => {
                this.message = Some(back);
                Poll::Pending
            }
        }
    }
}

/// What a send queues in the core: a whole message, or one fragment of a message and
/// whether it is the last ([`Connection::send_fragment`]).
pub(crate) trait Outgoing {
    fn queue_in(self, conn: &mut Connection) -> std::result::Result<(), SendError>;
}

impl Outgoing for Message {
    #[inline(always)]
    fn queue_in(self, conn: &mut Connection) -> std::result::Result<(), SendError> {
        conn.send(self)
    }
}

impl Outgoing for (Fragment, bool) {
    fn queue_in(self, conn: &mut Connection) -> std::result::Result<(), SendError> {
        conn.send_fragment(self.0, self.1)
    }
}

/// Turns Nagle's algorithm off (`TCP_NODELAY`) when `stream` is a tokio `TcpStream`, as
/// it enters a handshake or a session. Each message is written when it is sent; with
/// Nagle's algorithm on, a small write after one not yet acknowledged would wait for the
/// peer's delayed ACK (40 ms on Linux), and a peer that answers only once it has a batch
/// never sends one sooner. Other streams (TLS over TCP, an upgraded HTTP connection) are
/// the caller's to set up. Best effort: a socket that refuses the option still works.
pub(crate) fn no_delay<S: 'static>(stream: &S) {
    if let Some(tcp) = (stream as &dyn Any).downcast_ref::<tokio::net::TcpStream>()
        && let Err(error) = tcp.set_nodelay(true)
    {
        debug!(%error, "TCP_NODELAY not set");
    }
}

/// Whether the server accepts a request, and how.
pub(crate) type Decide<'a> =
    &'a mut (dyn FnMut(&Request) -> std::result::Result<Accept, Reject> + Send);

/// Runs the opening handshake on `stream` until the session is CONNECTED. Events after
/// `Connected` (frames that arrived with the response) stay queued in the core.
///
/// The handshake's state is boxed, so that the future of a connection's task (which holds
/// this one while the handshake runs) does not keep room for it for the connection's life.
pub(crate) async fn handshake<S>(
    conn: &mut Connection,
    stream: &mut S,
    decide: Option<Decide<'_>>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Box::pin(run_handshake(conn, stream, decide)).await
}

async fn run_handshake<S>(
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
                    // The request was for the decision; an open session keeps none of it.
                    drop(conn.take_request());
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

/// Writes everything the core has to transmit, its shutdown included.
pub(crate) async fn flush<S: AsyncWrite + Unpin>(
    conn: &mut Connection,
    stream: &mut S,
) -> Result<()> {
    while let Some(transmit) = conn.poll_transmit() {
        match transmit {
            Transmit::Data(bytes) => stream.write_all(&bytes).await?,
            Transmit::Shutdown => stream.shutdown().await?,
        }
    }
    stream.flush().await?;
    Ok(())
}

/// The read half of a session's transport.
enum ReadSide {
    /// A TCP stream's own read half: reading takes no lock shared with the writers.
    Tcp(tokio::net::tcp::OwnedReadHalf),
    /// Any other stream, split with a lock between its halves.
    Split(Pin<Box<dyn AsyncRead + Send>>),
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadSide::Tcp(rd) => Pin::new(rd).poll_read(cx, buf),
            ReadSide::Split(rd) => rd.as_mut().poll_read(cx, buf),
        }
    }
}

/// A read half that may be able to wait for data without a buffer.
trait ReadReady: AsyncRead + Unpin {
    /// Waits until the stream is readable, where the stream can tell without a read (a
    /// TCP socket, through its readiness); `None` for streams that can only be read.
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Option<Poll<std::io::Result<()>>> {
        None
    }
}

impl ReadReady for ReadSide {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Option<Poll<std::io::Result<()>>> {
        match self {
            ReadSide::Tcp(rd) => Some(rd.as_ref().poll_read_ready(cx)),
            ReadSide::Split(_) => None,
        }
    }
}

/// The write half of a session's transport, shared by the driver and the senders.
enum WriteSide {
    /// A TCP stream's own write half: writing takes no lock shared with the reader, and
    /// calls the socket directly.
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    /// Any other stream, split with a lock between its halves.
    Split(Pin<Box<dyn AsyncWrite + Send>>),
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(wr) => Pin::new(wr).poll_write(cx, buf),
            WriteSide::Split(wr) => wr.as_mut().poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(wr) => Pin::new(wr).poll_write_vectored(cx, bufs),
            WriteSide::Split(wr) => wr.as_mut().poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteSide::Tcp(wr) => wr.is_write_vectored(),
            WriteSide::Split(wr) => wr.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(wr) => Pin::new(wr).poll_flush(cx),
            WriteSide::Split(wr) => wr.as_mut().poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(wr) => Pin::new(wr).poll_shutdown(cx),
            WriteSide::Split(wr) => wr.as_mut().poll_shutdown(cx),
        }
    }
}

/// A write's result, with a write of zero bytes made the error it means (the transport
/// takes no more): what both the driver's and a sender's writes act on.
fn write_outcome(result: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
    match result {
        Poll::Ready(Ok(0)) => Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
        other => other,
    }
}

/// Writes `slices` (at least one) with one write: a plain write for one, a vectored write
/// for more; the outcome as [`write_outcome`] gives it. The driver's writes and a sender's
/// go through here.
fn write_slices(
    io: &mut WriteSide,
    cx: &mut Context<'_>,
    slices: &[IoSlice<'_>],
) -> Poll<std::io::Result<usize>> {
    let written = match slices {
        [one] => Pin::new(io).poll_write(cx, one),
        _ => Pin::new(io).poll_write_vectored(cx, slices),
    };
    write_outcome(written)
}

/// Splits the transport into the driver's read half and the shared write half. A plain
/// TCP stream (the common case: `Server`, `connect` to `ws://`) is split into its own
/// halves, which share no lock; any other stream goes through `tokio::io::split`, whose
/// halves take a lock at every read and write (a few percent of the instructions of a
/// small echo, measured with callgrind). The TCP halves are kept as they are, not boxed:
/// a write calls the socket directly.
fn split<S>(stream: S) -> (ReadSide, WriteSide)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn tcp(tcp: tokio::net::TcpStream) -> (ReadSide, WriteSide) {
        let (rd, wr) = tcp.into_split();
        (ReadSide::Tcp(rd), WriteSide::Tcp(wr))
    }
    let mut slot = Some(stream);
    let any: &mut dyn std::any::Any = &mut slot;
    if let Some(stream) = any
        .downcast_mut::<Option<tokio::net::TcpStream>>()
        .and_then(Option::take)
    {
        return tcp(stream);
    }
    #[cfg(feature = "tls")]
    if let Some(transport) =
        any.downcast_mut::<Option<crate::tls::Transport<tokio::net::TcpStream>>>()
        && let Some(crate::tls::Transport::Plain(_)) = transport
        && let Some(crate::tls::Transport::Plain(stream)) = transport.take()
    {
        return tcp(stream);
    }
    match slot {
        Some(stream) => {
            let (rd, wr) = tokio::io::split(stream);
            (
                ReadSide::Split(Box::pin(rd)),
                WriteSide::Split(Box::pin(wr)),
            )
        }
        // Only a TCP stream is taken out of the slot, and it returned above.
        None => unreachable!("the transport was taken for a TCP split"),
    }
}

/// The time of one turn of the driver's loop: read from the clock when first needed (most
/// turns need none), then the same for every decision of that turn.
#[derive(Default)]
struct TurnClock(Option<Instant>);

impl TurnClock {
    fn now(&mut self) -> Instant {
        *self.0.get_or_insert_with(now)
    }
}

/// Who hears about the session's events.
pub(crate) enum Dispatch {
    /// Messages are queued for the `WebSocket` stream.
    Queue,
    /// The seed's endpoint model: callbacks on the driver's task.
    Endpoint(Box<dyn Endpoint>),
}

/// Runs [`drive`] on a task of its own, for a session whose stream the application handed
/// over (after a handshake of ours, or one made elsewhere, which is why `TCP_NODELAY` is
/// set here too).
pub(crate) fn spawn<S>(shared: Arc<Shared>, stream: S, dispatch: Dispatch)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    no_delay(&stream);
    tokio::spawn(drive(shared, stream, dispatch));
}

/// Drives an established session until its transport is closed.
pub(crate) async fn drive<S>(shared: Arc<Shared>, stream: S, mut dispatch: Dispatch)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (rd, wr) = split(stream);
    {
        let mut inner = shared.lock();
        inner.out.io = Some(wr);
        inner.input.io = Some(rd);
        // Reads go straight into the core's receive buffer, lent for the time of the read.
        inner.input.buf = inner.conn.lend_receive_buffer(0);
    }
    let mut shutdown_done = false;
    let mut linger_until: Option<Instant> = None;
    let mut flush_until: Option<Instant> = None;
    let mut timer = None;
    let session = Session::new(shared.clone());

    // Seed 000: on_open runs in CONNECTED; the session is OPEN once it returns, unless
    // it closed the session.
    if let Dispatch::Endpoint(endpoint) = &mut dispatch {
        endpoint.on_open(&session);
    }
    shared.lock().conn.open();

    loop {
        // A sender's write failed: the same as the driver's own. In Queue mode this and
        // the events are handled in the lock of step 2.
        if let Dispatch::Endpoint(endpoint) = &mut dispatch {
            let failed = shared.lock().out.failed.take();
            if let Some(error) = failed {
                write_failed(&mut shared.lock(), error, &mut shutdown_done);
            }
            // 1. Events, one at a time, outside the lock: a callback may use the session
            // (answer a message, close) before the next event is taken, and a failure of
            // the peer takes effect only when its Close event is taken, after the messages
            // before it were handled.
            loop {
                let Some(event) = shared.lock().conn.poll_event() else {
                    break;
                };
                match event {
                    Event::Message(message) if message.is_data() => {
                        endpoint.on_message(&session, message);
                    }
                    // Ping and Pong were answered and tracked by the core; on_message is for
                    // Text and Binary only, as in WebSocket mode. A `ping` may be waiting
                    // for the Pong.
                    Event::Message(Message::Pong(_)) => shared.lock().wake_waiters(),
                    Event::Message(_) => {}
                    Event::Close(info) => {
                        // The session can no longer send: senders waiting for buffer space
                        // must fail now rather than wait for room.
                        shared.lock().wake_all(&shared.wakes);
                        if let Some(error) = &info.error {
                            endpoint.on_error(&session, error);
                        }
                        endpoint.on_close(&session, &info);
                    }
                    Event::Request | Event::Connected => {}
                }
            }
        }

        // 2. Output, and what to wait for. The clock is read once in a turn, if at all.
        let mut clock = TurnClock::default();
        let (want_read, deadline, closed, flushed, aborted, read_eof) = {
            let mut inner = shared.lock();
            if let Dispatch::Queue = dispatch {
                if let Some(error) = inner.out.failed.take() {
                    write_failed(&mut inner, error, &mut shutdown_done);
                }
                // 1. Events.
                queue_events(&mut inner, &shared.wakes);
                if !inner.incoming.is_empty() || inner.close_seen {
                    shared.wakes.reader.wake();
                }
            }
            if inner.abort && !inner.conn.state().is_closed() {
                inner
                    .conn
                    .transport_error("aborted by server shutdown", clock.now());
                inner.out.pending.clear();
                inner.set_inflight(0);
            }
            if inner.handles == 0
                && matches!(dispatch, Dispatch::Queue)
                && matches!(inner.conn.state(), State::Connected | State::Open)
            {
                // Every handle was dropped without closing: close in the background so
                // the peer sees a Close, not a lost connection.
                debug!("all handles dropped; closing with 1001");
                let _ = inner.conn.close(CloseCode::GOING_AWAY, "", clock.now());
            }
            inner.take_output();
            let closed = inner.conn.state().is_closed();
            // Only received messages waiting for a reader stop reading (none are queued
            // in Endpoint mode or without a receiving handle).
            let want_read = inner.may_read();
            if closed && linger_until.is_none() && shutdown_done {
                linger_until = Some(clock.now() + inner.limits.linger);
            }
            if closed && flush_until.is_none() {
                // The core's deadlines are over. What is left to write (data queued before
                // our Close, the Close itself) gets one close timeout, so that a peer that
                // never reads cannot keep the transport forever.
                flush_until = Some(clock.now() + inner.conn.config().close_timeout);
            }
            // Everything written, the shutdown included when one was asked for.
            let flushed = inner.out.written() && (shutdown_done || !inner.out.shutdown_wanted);
            let deadline = match (closed, flushed) {
                (true, true) => linger_until,
                (true, false) => flush_until,
                (false, _) => inner.core_deadline(),
            };
            inner.driver_deadline = deadline;
            inner.deadline_seen = inner.conn.deadline_changes();
            (
                want_read,
                deadline,
                closed,
                flushed,
                inner.abort,
                inner.input.eof,
            )
        };
        if closed && !flushed && flush_until.is_some_and(|t| t <= clock.now()) {
            debug!("output not written within the close timeout; dropping the transport");
            break;
        }
        if closed && flushed {
            if read_eof || linger_until.is_some_and(|t| t <= clock.now()) || aborted {
                break;
            }
            if linger_until.is_none() {
                // No shutdown was asked for (the transport failed): nothing to linger for.
                break;
            }
        }

        // 3. Wait for the socket, a deadline or the application.
        let outcome = {
            let must_write = !flushed;
            let write = std::future::poll_fn(|cx| {
                let mut inner = shared.lock();
                if !inner.out.written() {
                    return inner.poll_write_out(cx).map(Outcome::Wrote);
                }
                match inner.out.io.as_mut() {
                    Some(io) => Pin::new(io).poll_shutdown(cx).map(Outcome::Shut),
                    None => Poll::Ready(Outcome::Shut(Ok(()))),
                }
            });
            tokio::select! {
                biased;
                outcome = write, if must_write => outcome,
                () = std::future::poll_fn(|cx| {
                    let mut inner = shared.lock();
                    inner.input.reader_registered = false;
                    inner.poll_input(cx)
                }), if want_read => Outcome::Read,
                () = sleep_until(&mut timer, deadline), if deadline.is_some() => Outcome::Timer,
                () = std::future::poll_fn(|cx| shared.wakes.driver.poll_woken(cx)) => Outcome::Woken,
            }
        };

        match outcome {
            Outcome::Wrote(Ok(())) => {
                // Writers wait for room or a flush; the reader waits for messages, which
                // a write does not bring.
                shared.lock().wake_waiters();
            }
            Outcome::Wrote(Err(error)) | Outcome::Shut(Err(error)) => {
                write_failed(&mut shared.lock(), error, &mut shutdown_done);
            }
            Outcome::Shut(Ok(())) => shutdown_done = true,
            // The read was given to the core; its events are taken in the next turn.
            Outcome::Read => {}
            Outcome::Timer => {
                if !closed {
                    shared.lock().conn.handle_timeout(now());
                }
            }
            Outcome::Woken => {}
        }
    }

    // The transport is closed before anyone waiting for the end is woken: `finished`
    // means the socket is gone, so a caller of `closed()` that counts its file
    // descriptors, or is at its limit, never sees it still open.
    let mut inner = shared.lock();
    inner.input = Input::default();
    inner.out.io = None;
    inner.finished = true;
    inner.incoming_bytes = inner.incoming.iter().map(|m| m.as_bytes().len()).sum();
    inner.wake_all(&shared.wakes);
    trace!(state = %inner.conn.state(), "driver finished");
}

/// Moves the core's events to the queue the `WebSocket` reads from (the caller wakes the
/// reader, unless it is the reader).
///
/// A protocol violation of the peer takes effect when its Close event is taken (see
/// [`Connection::poll_event`]). That event is held back until the application has taken
/// every message received before it and asks for the next one (or closes the session
/// itself, or no handle is left), so that it can still answer them: then the Close frame
/// follows the answers. The core's close timeout bounds the wait; the reader's next ask,
/// the application's close or its handle's drop wakes the driver.
fn queue_events(inner: &mut Inner, wakes: &Wakes) {
    loop {
        if (inner.conn.failure_pending() || inner.conn.close_reply_pending())
            && matches!(inner.conn.peek_event(), Some(Event::Close(_)))
        {
            // Messages received before the Close are still waiting for the reader: let it
            // take and answer them first (bounded by the close timeout).
            if !inner.incoming.is_empty() && inner.readers > 0 {
                inner.holding_close = true;
            }
            if inner.holding_close && !inner.reader_caught_up() {
                inner.driver_waits = true;
                break;
            }
        }
        let Some(event) = inner.conn.poll_event() else {
            break;
        };
        match event {
            Event::Message(message) => {
                if message.is_data() {
                    if inner.readers > 0 {
                        inner.incoming_bytes += message.as_bytes().len();
                        inner.incoming.push_back(message);
                    }
                } else if matches!(message, Message::Pong(_)) {
                    // A `ping` may be waiting for it.
                    inner.wake_waiters();
                }
            }
            Event::Close(_) => {
                inner.close_seen = true;
                // Senders waiting for buffer space must fail now rather than wait.
                inner.wake_all(wakes);
            }
            Event::Request | Event::Connected => {}
        }
    }
}

/// A write failed, the driver's or a sender's: the session is over (1006), and nothing
/// more is read or written.
fn write_failed(inner: &mut Inner, error: std::io::Error, shutdown_done: &mut bool) {
    trace!(%error, "write failed");
    inner.conn.transport_error(error.to_string(), now());
    inner.set_inflight(0);
    inner.out.pending.clear();
    inner.out.unflushed = false;
    *shutdown_done = true;
    inner.input.eof = true;
}

/// Bytes a read takes on the stack when the receive buffer is empty and recent reads were
/// not all small: as many as the largest read, so that one read takes a whole 16 KiB
/// message. A read that returns less than it asked for tells tokio the socket is drained,
/// which saves the next read's `EAGAIN`; a smaller probe that a message fills costs a
/// second read and that `EAGAIN` (three `recvfrom` per 16 KiB message instead of one,
/// measured with `strace -c`).
const PROBE: usize = READ_MAX;

/// The probe of a stream whose reads have lately been small (its adapted read room is
/// the least, [`READ_MIN`]): it fits in one page of stack, which needs no probing. A
/// larger message than it holds is read on in place, into the room its header asks for.
const SMALL_PROBE: usize = READ_MIN;

/// Reads into `buf` (the core's lent receive buffer) without holding memory while the
/// read waits. When `buf` is empty (no frame in progress), the read goes to a buffer on
/// the stack first, and `buf` is allocated only once bytes arrived, with the room `hint`
/// asks for them (the core sizes it for the rest of the frame they begin, so that the
/// frame arrives in place) or else `size`; a read that fills the probe goes on straight
/// into `buf` (a failure of that second read is kept in `failed` for the next call). When
/// `buf` holds the start of a frame, the read goes straight into the room the core
/// reserved for it. After reads of [`FRESH_MIN`] bytes and more (`size`), a stream that can
/// wait without a buffer skips the probe (see [`read_fresh`], which may reuse the storage
/// kept in `spare`; a probed read gives a large `spare` back, and keeps a small one: see
/// [`small_buffer`]). Cancel-safe, as `read_buf` is.
fn poll_read_some<R: ReadReady>(
    rd: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    size: usize,
    hint: impl Fn(&[u8]) -> usize,
    failed: &mut Option<std::io::Error>,
    spare: &mut Option<Spare>,
) -> Poll<std::io::Result<usize>> {
    {
        if let Some(error) = failed.take() {
            return Poll::Ready(Err(error));
        }
        if !buf.is_empty() {
            if buf.capacity() == buf.len() {
                buf.reserve(size);
            }
            return std::pin::pin!(rd.read_buf(&mut *buf)).poll(cx);
        }
        if size >= FRESH_MIN
            && let Some(ready) = rd.poll_read_ready(cx)
        {
            return read_fresh(rd, cx, ready, buf, &hint, spare);
        }
        // The reads have turned small: the storage of a large frame is not kept for them.
        if spare.as_ref().is_some_and(Spare::is_large) {
            *spare = None;
        }
        if size <= SMALL_PROBE {
            read_probed::<SMALL_PROBE, R>(rd, cx, buf, size, &hint, failed, spare)
        } else {
            read_probed::<PROBE, R>(rd, cx, buf, size, &hint, failed, spare)
        }
    }
}

/// The read of [`poll_read_some`] when no frame is in progress: into `P` bytes on the
/// stack, then into a buffer allocated for what arrived. Out of line, each size in a
/// function of its own: a stack frame over a page is probed page by page at every call
/// (about 64 instructions for 64 KiB), which the small probe's reads should not pay.
#[inline(never)]
fn read_probed<const P: usize, R: ReadReady>(
    rd: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    size: usize,
    hint: &impl Fn(&[u8]) -> usize,
    failed: &mut Option<std::io::Error>,
    spare: &mut Option<Spare>,
) -> Poll<std::io::Result<usize>> {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); P];
    let mut probe = tokio::io::ReadBuf::uninit(&mut probe);
    match std::pin::Pin::new(&mut *rd).poll_read(cx, &mut probe) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        Poll::Ready(Ok(())) => {}
    }
    let n = probe.filled().len();
    // A frame that goes on past the bytes that arrived gets its room; bytes that hold
    // whole frames get no more room than they take. Under 4 KiB that room is found in
    // the storage of the last small frame (see `small_buffer`).
    let frame = hint(probe.filled());
    let room = frame.max(n);
    if n < P && room < SPARE_MIN {
        *buf = small_buffer(room, spare);
        buf.extend_from_slice(probe.filled());
        return Poll::Ready(Ok(n));
    }
    *buf = BytesMut::with_capacity(room);
    buf.extend_from_slice(probe.filled());
    if n < P {
        return Poll::Ready(Ok(n));
    }
    // More may be waiting: read it in place rather than in another turn.
    if buf.capacity() == buf.len() {
        buf.reserve(size);
    }
    match std::pin::pin!(rd.read_buf(&mut *buf)).poll(cx) {
        Poll::Ready(Ok(more)) => Poll::Ready(Ok(n + more)),
        Poll::Pending => Poll::Ready(Ok(n)),
        // The probe's bytes are delivered first; the failure comes with the next read.
        Poll::Ready(Err(error)) => {
            *failed = Some(error);
            Poll::Ready(Ok(n))
        }
    }
}

/// [`poll_read_some`] as a future.
#[cfg(test)]
async fn read_some<R: ReadReady>(
    rd: &mut R,
    buf: &mut BytesMut,
    size: usize,
    hint: impl Fn(&[u8]) -> usize,
    failed: &mut Option<std::io::Error>,
) -> std::io::Result<usize> {
    read_some_keeping(rd, buf, size, hint, failed, &mut None).await
}

/// [`read_some`] with a connection's [`Spare`].
#[cfg(test)]
async fn read_some_keeping<R: ReadReady>(
    rd: &mut R,
    buf: &mut BytesMut,
    size: usize,
    hint: impl Fn(&[u8]) -> usize,
    failed: &mut Option<std::io::Error>,
    spare: &mut Option<Spare>,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_some(rd, cx, buf, size, &hint, failed, spare)).await
}

/// A buffer with room for `room` bytes (under [`SPARE_MIN`]) of small frames: the storage
/// kept in `spare`, once the message last read into it is gone, or else a new one, which
/// is kept in its place. An echo then takes no allocation per message: a reclaim and a
/// split instead of an allocation and a free (callgrind, 20,000 echoes of 20 bytes over
/// 10 connections: 94.3 → 93.4 M instructions).
fn small_buffer(room: usize, spare: &mut Option<Spare>) -> BytesMut {
    if let Some(kept) = spare.as_mut()
        && kept.fits(room)
        && let Some(mut storage) = kept.reuse()
    {
        kept.hold(&mut storage);
        return storage;
    }
    let mut buf = BytesMut::with_capacity(room.max(SPARE_SMALL));
    Spare::keep_in(spare, &mut buf);
    buf
}

/// Room a kept buffer has past its frame: the read that completes a frame then asks for
/// more than it gets, which tells tokio the socket is drained (a read that fills its room
/// exactly leaves the readiness set, and the next read finds nothing).
const TAIL_ROOM: usize = 64;

/// Whether a new buffer with `room` bytes for its frame is kept for the next one.
fn kept_size(room: usize) -> bool {
    (SPARE_MIN..SPARE_MAX).contains(&room)
}

/// The room of a new buffer for `room` bytes of frame: with [`TAIL_ROOM`] when it is kept
/// for the next frame (see [`Spare`]).
fn with_tail_room(room: usize) -> usize {
    if kept_size(room) {
        room + TAIL_ROOM
    } else {
        room
    }
}

/// Reads of at least this size lately (the adapted read room) make a readable TCP socket
/// read straight into a new buffer rather than through the stack probe.
pub(crate) const FRESH_MIN: usize = 4 * 1024;

/// The read of a stream that can wait without a buffer, once `ready` says it is readable:
/// the bytes go into a new buffer of [`PROBE`] bytes, which is then cut to the room `hint`
/// asks for (the allocator shrinks it in place), so that a large message lands where it
/// is kept, without the probe's copy, and an idle connection still holds no buffer. A
/// frame of [`SPARE_MIN`] bytes and more leaves its storage in `spare`, where the next
/// large read finds it once its message was dropped (see [`Spare`]).
fn read_fresh<R: ReadReady>(
    rd: &mut R,
    cx: &mut Context<'_>,
    ready: Poll<std::io::Result<()>>,
    buf: &mut BytesMut,
    hint: &impl Fn(&[u8]) -> usize,
    spare: &mut Option<Spare>,
) -> Poll<std::io::Result<usize>> {
    match ready {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        Poll::Ready(Ok(())) => {}
    }
    if let Some(kept) = spare.as_mut()
        && let Some(storage) = kept.reuse()
    {
        return read_into_spare(rd, cx, buf, hint, kept, storage);
    }
    let mut fresh = Vec::with_capacity(PROBE);
    // Pending here (the readiness was stale) registers the waker; the buffer is dropped.
    let n = match std::pin::pin!(rd.read_buf(&mut fresh)).poll(cx) {
        Poll::Ready(Ok(n)) => n,
        other => return other,
    };
    if n == 0 {
        return Poll::Ready(Ok(0));
    }
    let room = with_tail_room(hint(&fresh).max(n));
    if room > fresh.capacity() {
        fresh.reserve_exact(room - n);
    } else {
        fresh.shrink_to(room);
    }
    // Collecting a vector's own iterator keeps its allocation: no copy.
    *buf = fresh.into_iter().collect();
    if kept_size(room) {
        Spare::keep_in(spare, buf);
    }
    Poll::Ready(Ok(n))
}

/// [`read_fresh`] into the kept `storage` of an earlier large frame. A frame that fits it
/// without leaving most of it unused is read in place, and the storage is kept again;
/// other bytes are copied into a buffer of their own, and the storage goes back unused
/// (or, for a larger frame, is replaced by that frame's).
fn read_into_spare<R: ReadReady>(
    rd: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    hint: &impl Fn(&[u8]) -> usize,
    kept: &mut Spare,
    mut storage: BytesMut,
) -> Poll<std::io::Result<usize>> {
    let n = match std::pin::pin!(rd.read_buf(&mut storage)).poll(cx) {
        Poll::Ready(Ok(n)) if n > 0 => n,
        other => {
            kept.put_back(storage);
            return other;
        }
    };
    let room = hint(&storage).max(n);
    if kept.fits(room) {
        kept.hold(&mut storage);
        *buf = storage;
        return Poll::Ready(Ok(n));
    }
    let larger = room > kept.capacity() && kept_size(room);
    *buf = BytesMut::with_capacity(if larger { with_tail_room(room) } else { room });
    buf.extend_from_slice(&storage);
    kept.put_back(storage);
    if larger && let Some(larger) = Spare::keep(buf) {
        *kept = larger;
    }
    Poll::Ready(Ok(n))
}

enum Outcome {
    Wrote(std::io::Result<()>),
    Shut(std::io::Result<()>),
    Read,
    Timer,
    Woken,
}

/// Waits until `deadline` on the session's one timer, made at the first deadline and
/// kept. A new `Sleep` at every turn would register with the runtime's timer and be
/// cancelled again once per message: about 600 instructions per 20-byte echo for a
/// session with a ping interval (callgrind). A deadline that moved later (the idle
/// timeout, restarted by every frame) is not followed at once: the timer fires at the
/// earlier one, the core finds nothing due, and the timer is set again from there. Boxed,
/// so that a session without deadlines (the default) holds no room for one.
async fn sleep_until(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>, deadline: Option<Instant>) {
    let Some(deadline) = deadline.map(tokio::time::Instant::from_std) else {
        return std::future::pending().await;
    };
    let sleep = match timer {
        Some(sleep) => {
            let moved = deadline != sleep.deadline();
            if moved && (deadline < sleep.deadline() || sleep.is_elapsed()) {
                sleep.as_mut().reset(deadline);
            }
            sleep
        }
        None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
    };
    sleep.as_mut().await
}

/// Polls `future` once, as the driver's `select!` polls each branch before it waits, and
/// says whether it is pending; the future is dropped, as a branch is when another wins.
#[cfg(test)]
fn pending_at_first_poll(future: impl Future) -> bool {
    let mut future = std::pin::pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending()
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn a_write_of_nothing_is_a_write_zero_error_and_other_outcomes_pass_through() {
        match write_outcome(Poll::Ready(Ok(0))) {
            Poll::Ready(Err(error)) => assert_eq!(error.kind(), std::io::ErrorKind::WriteZero),
            other => panic!("expected WriteZero, got {other:?}"),
        }
        assert!(matches!(
            write_outcome(Poll::Ready(Ok(5))),
            Poll::Ready(Ok(5))
        ));
        assert!(write_outcome(Poll::Pending).is_pending());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        match write_outcome(Poll::Ready(Err(reset))) {
            Poll::Ready(Err(error)) => {
                assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset)
            }
            other => panic!("expected the error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod timer_tests {
    use std::time::Duration;

    use super::*;

    type Timer = Option<Pin<Box<tokio::time::Sleep>>>;

    /// Waits on the timer for `deadline` and returns how long after `start` it fired.
    async fn fired(timer: &mut Timer, deadline: Instant, start: Instant) -> Duration {
        sleep_until(timer, Some(deadline)).await;
        now() - start
    }

    /// Sets the timer for `deadline` and leaves it: a turn of the driver that another
    /// branch ended.
    fn arm(timer: &mut Timer, deadline: Instant) {
        assert!(pending_at_first_poll(sleep_until(timer, Some(deadline))));
    }

    /// The timer is made once and kept; a deadline moved later fires first at the earlier
    /// one (the core then finds nothing due) and then at its own; one moved earlier is
    /// followed at once.
    #[tokio::test(start_paused = true)]
    async fn one_timer_is_kept_and_fires_no_later_than_the_deadline() {
        let start = now();
        let at = |secs| start + Duration::from_secs(secs);
        let secs = Duration::from_secs;
        let mut timer: Timer = None;
        assert_eq!(fired(&mut timer, at(5), start).await, secs(5));
        let kept = timer.as_deref().map(std::ptr::from_ref);
        assert!(kept.is_some(), "the timer is made at the first deadline");

        // Armed for 10 s, then the deadline moves to 12 s: it fires at 10, then at 12.
        arm(&mut timer, at(10));
        assert_eq!(fired(&mut timer, at(12), start).await, secs(10));
        assert_eq!(fired(&mut timer, at(12), start).await, secs(12));

        // Armed for 20 s, then the deadline moves to 14 s: it fires at 14.
        arm(&mut timer, at(20));
        assert_eq!(fired(&mut timer, at(14), start).await, secs(14));

        let now_kept = timer.as_deref().map(std::ptr::from_ref);
        assert_eq!(now_kept, kept, "the same timer throughout");
    }

    /// Without a deadline the wait never ends and no timer is made.
    #[tokio::test(start_paused = true)]
    async fn no_deadline_makes_no_timer_and_never_fires() {
        let mut timer: Timer = None;
        let waited =
            tokio::time::timeout(Duration::from_secs(3600), sleep_until(&mut timer, None)).await;
        assert!(waited.is_err());
        assert!(timer.is_none());
    }
}

#[cfg(test)]
mod wake_tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A wake-up before the driver waits is kept for its next wait, a wake-up while it
    /// waits wakes its task, and each is seen once: the next wait is pending again.
    #[test]
    fn a_wake_up_is_kept_until_seen_and_seen_once() {
        let signal = DriverWake::default();
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);

        assert!(signal.poll_woken(&mut cx).is_pending());
        signal.notify_one();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the waiting task is woken"
        );
        assert!(signal.poll_woken(&mut cx).is_ready());
        assert!(
            signal.poll_woken(&mut cx).is_pending(),
            "one wake-up, seen once"
        );

        // Two wake-ups before the next wait are one.
        signal.notify_one();
        signal.notify_one();
        assert!(signal.poll_woken(&mut cx).is_ready());
        assert!(signal.poll_woken(&mut cx).is_pending());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "only the registered wait is woken"
        );
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod footprint_tests {
    /// Every idle connection holds one `Inner` (with the core's `Connection` in it): the
    /// protocol's settings are kept once, in the core (1,080 bytes on x86_64 when this was
    /// written, 2,192 before the core boxed its rarely used state and this its copy of
    /// the settings).
    #[test]
    fn a_sessions_shared_state_is_under_one_and_a_quarter_kibibytes() {
        let size = std::mem::size_of::<super::Inner>();
        assert!(size <= 1280, "Inner is {size} bytes");
    }
}

#[cfg(test)]
mod read_tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    impl ReadReady for tokio::io::DuplexStream {}

    /// Two ends of a loopback TCP connection.
    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (ours.unwrap(), theirs.unwrap().0)
    }

    /// Writes `frame` from `peer` and reads it whole on `rd` (after reads of `size`, with
    /// the connection's `spare`), a frame at a time: the message, split off the buffer.
    async fn send_and_read(
        peer: &mut tokio::net::TcpStream,
        rd: &mut ReadSide,
        frame: &[u8],
        size: usize,
        spare: &mut Option<Spare>,
    ) -> bytes::Bytes {
        peer.write_all(frame).await.unwrap();
        let mut buf = BytesMut::new();
        let mut failed = None;
        while buf.len() < frame.len() {
            read_some_keeping(rd, &mut buf, size, |_| frame.len(), &mut failed, spare)
                .await
                .unwrap();
        }
        assert_eq!(buf.len(), frame.len(), "one frame at a time");
        buf.split().freeze()
    }

    /// A TCP stream, bare or as a plain transport, is split into its own halves (no lock
    /// between them); any other stream through `tokio::io::split`. Both carry the bytes.
    #[tokio::test]
    async fn a_tcp_stream_is_split_into_its_own_halves() {
        // Both halves carry bytes; the write half's vectored write, flush and shutdown
        // reach the stream.
        async fn echo_through(
            rd: &mut ReadSide,
            wr: &mut WriteSide,
            peer: &mut (impl AsyncRead + AsyncWrite + Unpin),
        ) {
            wr.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            peer.write_all(b"pong").await.unwrap();
            rd.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"pong");
            let slices = [IoSlice::new(b"ve"), IoSlice::new(b"ct")];
            let n = std::future::poll_fn(|cx| write_slices(wr, cx, &slices))
                .await
                .unwrap();
            assert!(n > 0);
            let mut got = vec![0u8; n];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(got, &b"vect"[..n]);
            wr.shutdown().await.unwrap();
            let mut rest = Vec::new();
            peer.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "the peer sees the end after our shutdown");
        }

        let (ours, mut theirs) = pair().await;
        let (mut rd, mut wr) = split(ours);
        assert!(matches!((&rd, &wr), (ReadSide::Tcp(_), WriteSide::Tcp(_))));
        echo_through(&mut rd, &mut wr, &mut theirs).await;

        #[cfg(feature = "tls")]
        {
            let (ours, mut theirs) = pair().await;
            let (mut rd, mut wr) = split(crate::tls::Transport::Plain(ours));
            assert!(matches!((&rd, &wr), (ReadSide::Tcp(_), WriteSide::Tcp(_))));
            echo_through(&mut rd, &mut wr, &mut theirs).await;
        }

        let (ours, mut theirs) = tokio::io::duplex(1024);
        let (mut rd, mut wr) = split(ours);
        assert!(matches!(
            (&rd, &wr),
            (ReadSide::Split(_), WriteSide::Split(_))
        ));
        echo_through(&mut rd, &mut wr, &mut theirs).await;
    }

    #[tokio::test]
    async fn a_waiting_read_holds_no_buffer_and_a_ready_one_keeps_its_bytes() {
        let (mut peer, mut ours) = tokio::io::duplex(64 * 1024);
        let mut buf = BytesMut::new();
        let mut failed = None;
        assert!(pending_at_first_poll(read_some(
            &mut ours,
            &mut buf,
            READ_MIN,
            <[u8]>::len,
            &mut failed
        )));
        assert_eq!(buf.capacity(), 0, "nothing to read: no buffer was taken");
        peer.write_all(b"hello").await.unwrap();
        let n = read_some(&mut ours, &mut buf, READ_MIN, <[u8]>::len, &mut failed)
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(&buf[..], b"hello");
        // Whole frames take no more room than they need.
        assert!(buf.capacity() < READ_MIN, "capacity {}", buf.capacity());
        // Bytes already held (the start of a frame) stay while the read waits.
        assert!(pending_at_first_poll(read_some(
            &mut ours,
            &mut buf,
            READ_MIN,
            <[u8]>::len,
            &mut failed
        )));
        assert_eq!(&buf[..], b"hello");
    }

    #[tokio::test]
    async fn a_read_larger_than_the_probe_continues_in_the_buffer() {
        let (mut peer, mut ours) = tokio::io::duplex(4 * PROBE);
        let sent: Vec<u8> = (0..3 * PROBE).map(|i| i as u8).collect();
        peer.write_all(&sent).await.unwrap();
        let mut buf = BytesMut::new();
        let mut failed = None;
        let n = read_some(&mut ours, &mut buf, 16 * 1024, <[u8]>::len, &mut failed)
            .await
            .unwrap();
        assert!(n > PROBE, "one read took {n} bytes");
        assert_eq!(&buf[..], &sent[..n]);
        assert!(failed.is_none());
    }

    /// After small reads the probe is small; a frame larger than it still arrives in one
    /// call, the rest read in place into the room its header asks for.
    #[tokio::test]
    async fn a_frame_larger_than_the_small_probe_is_read_on_into_its_room() {
        let (mut peer, mut ours) = tokio::io::duplex(64 * 1024);
        let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).await.unwrap();
        let mut buf = BytesMut::new();
        let mut failed = None;
        let n = read_some(&mut ours, &mut buf, READ_MIN, |_| 10_000, &mut failed)
            .await
            .unwrap();
        assert!(n > SMALL_PROBE, "one call took {n} bytes");
        assert_eq!(&buf[..], &sent[..n]);
        assert_eq!(buf.capacity(), 10_000, "the room the hint asks for");
        assert!(failed.is_none());
    }

    #[tokio::test]
    async fn a_new_buffer_has_the_room_the_hint_asks_for() {
        let (mut peer, mut ours) = tokio::io::duplex(64 * 1024);
        peer.write_all(&[7u8; 100]).await.unwrap();
        let mut buf = BytesMut::new();
        let mut failed = None;
        let n = read_some(&mut ours, &mut buf, READ_MIN, |_| 50_000, &mut failed)
            .await
            .unwrap();
        assert_eq!(n, 100);
        assert!(buf.capacity() >= 50_000, "capacity {}", buf.capacity());
    }
    /// After large reads, a TCP socket is read straight into a new buffer once readable:
    /// none is held while it waits, and the buffer is cut to the bytes (or to the room the
    /// hint asks for).
    #[tokio::test]
    async fn a_tcp_read_after_large_ones_lands_in_a_buffer_of_its_own_size() {
        let (ours, mut peer) = pair().await;
        let (mut rd, _wr) = split(ours);
        let mut buf = BytesMut::new();
        let mut failed = None;
        assert!(pending_at_first_poll(read_some(
            &mut rd,
            &mut buf,
            FRESH_MIN,
            <[u8]>::len,
            &mut failed
        )));
        assert_eq!(buf.capacity(), 0, "nothing to read: no buffer was taken");

        let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).await.unwrap();
        let mut got = BytesMut::new();
        while got.len() < sent.len() {
            let n = read_some(&mut rd, &mut buf, FRESH_MIN, <[u8]>::len, &mut failed)
                .await
                .unwrap();
            assert_eq!(buf.len(), n);
            assert_eq!(buf.capacity(), with_tail_room(n), "cut to what arrived");
            got.extend_from_slice(&buf.split());
        }
        assert_eq!(&got[..], &sent[..]);

        peer.write_all(&[9u8; 100]).await.unwrap();
        let mut buf = BytesMut::new();
        let n = read_some(&mut rd, &mut buf, FRESH_MIN, |_| 50_000, &mut failed)
            .await
            .unwrap();
        assert_eq!(n, 100);
        assert_eq!(
            buf.capacity(),
            50_000 + TAIL_ROOM,
            "the room the hint asks for"
        );

        drop(peer);
        let n = read_some(
            &mut rd,
            &mut BytesMut::new(),
            FRESH_MIN,
            <[u8]>::len,
            &mut failed,
        )
        .await
        .unwrap();
        assert_eq!(n, 0, "end of stream");
        assert!(failed.is_none());
    }

    /// A large frame's storage is read into again by the next large frame once its
    /// message was dropped, and never while the message lives.
    #[tokio::test]
    async fn a_large_frame_s_storage_is_reused_once_its_message_is_gone() {
        const FRAME: usize = 300_000;
        let (ours, mut peer) = pair().await;
        let (mut rd, _wr) = split(ours);
        let mut spare = None;
        let mut read_frame = async |fill: u8, spare: &mut Option<Spare>| {
            send_and_read(&mut peer, &mut rd, &vec![fill; FRAME], FRESH_MIN, spare).await
        };
        let first = read_frame(1, &mut spare).await;
        assert!(spare.is_some(), "the storage of a large frame is kept");
        let second = read_frame(2, &mut spare).await;
        assert_ne!(
            second.as_ptr(),
            first.as_ptr(),
            "the first message still holds its storage"
        );
        assert!(first.iter().all(|&b| b == 1), "and it is intact");
        let at = second.as_ptr();
        drop(second);
        let third = read_frame(3, &mut spare).await;
        assert_eq!(
            third.as_ptr(),
            at,
            "the second frame's storage, read into again"
        );
        assert!(third.iter().all(|&b| b == 3));
        assert!(first.iter().all(|&b| b == 1));
    }

    /// A frame whose room is the core's cap (it may be larger) leaves no spare, one of a
    /// known size below it does, and a connection whose reads turn small gives it back.
    #[tokio::test]
    async fn spares_are_kept_for_known_frame_sizes_and_given_back_after_small_reads() {
        let (ours, mut peer) = pair().await;
        let (mut rd, _wr) = split(ours);
        let mut spare = None;
        let mut failed = None;
        for (room, kept) in [(SPARE_MAX, false), (10_000, true)] {
            peer.write_all(&[7u8; 5_000]).await.unwrap();
            let mut buf = BytesMut::new();
            let n = read_some_keeping(
                &mut rd,
                &mut buf,
                FRESH_MIN,
                |_| room,
                &mut failed,
                &mut spare,
            )
            .await
            .unwrap();
            assert_eq!(n, 5_000);
            assert_eq!(spare.is_some(), kept, "room {room}");
        }
        peer.write_all(b"small").await.unwrap();
        let mut buf = BytesMut::new();
        read_some_keeping(
            &mut rd,
            &mut buf,
            READ_MIN,
            <[u8]>::len,
            &mut failed,
            &mut spare,
        )
        .await
        .unwrap();
        assert_eq!(&buf[..], b"small");
        assert!(
            spare.as_ref().is_some_and(|kept| !kept.is_large()),
            "small reads give the large spare back and keep a small one"
        );
    }

    /// A small frame's storage is read into again by the next small frame once its
    /// message was dropped, and never while the message lives.
    #[tokio::test]
    async fn a_small_frame_s_storage_is_reused_once_its_message_is_gone() {
        let (ours, mut peer) = pair().await;
        let (mut rd, _wr) = split(ours);
        let mut spare = None;
        let mut read_frame = async |text: &[u8], spare: &mut Option<Spare>| {
            send_and_read(&mut peer, &mut rd, text, READ_MIN, spare).await
        };
        let first = read_frame(b"first", &mut spare).await;
        let second = read_frame(b"second", &mut spare).await;
        assert_ne!(
            second.as_ptr(),
            first.as_ptr(),
            "the first message still holds its storage"
        );
        let at = second.as_ptr();
        drop(second);
        // Were the storage freed, the allocator would hand it to this allocation.
        let decoy = Vec::<u8>::with_capacity(SPARE_SMALL);
        let third = read_frame(b"third", &mut spare).await;
        assert_eq!(
            third.as_ptr(),
            at,
            "the second frame's storage, read into again"
        );
        assert_eq!(&third[..], b"third");
        assert_eq!(&first[..], b"first", "a held message is never written over");
        drop(decoy);
    }

    /// The fresh read's buffer becomes the `BytesMut` without a copy.
    #[test]
    fn collecting_a_vector_into_bytes_keeps_its_allocation() {
        let mut fresh = Vec::with_capacity(PROBE);
        fresh.extend_from_slice(&[1u8; 16 * 1024 + 6]);
        fresh.shrink_to(fresh.len());
        let at = fresh.as_ptr();
        let buf: BytesMut = fresh.into_iter().collect();
        assert_eq!(buf.as_ptr(), at);
        assert_eq!(buf.len(), 16 * 1024 + 6);
    }

    #[test]
    fn read_room_grows_while_reads_fill_it_and_shrinks_back() {
        let mut size = READ_MIN;
        while size < READ_MAX {
            let grown = next_read_size(size, size);
            assert_eq!(grown, size * 2);
            size = grown;
        }
        assert_eq!(next_read_size(READ_MAX, READ_MAX), READ_MAX);
        // A read of half the room keeps it; a small one halves it, down to the minimum.
        assert_eq!(next_read_size(READ_MAX, READ_MAX / 2), READ_MAX);
        assert_eq!(next_read_size(READ_MAX, 100), READ_MAX / 2);
        let mut size = READ_MAX;
        for _ in 0..10 {
            size = next_read_size(size, 26);
        }
        assert_eq!(size, READ_MIN);
    }
}

#[cfg(test)]
mod tests {
    //! The runtime's side of failing in stream order (Autobahn cases 3.2, 4.1.3, 5.15...):
    //! a message that arrived before a protocol violation, in the same read, can still be
    //! answered, in both dispatch modes and both roles.

    use std::time::Duration;

    use futures_util::StreamExt;
    use sockeye_proto::frame::{FrameHeader, OpCode, RSV2};
    use sockeye_proto::mask::apply_mask;
    use sockeye_proto::{Error as ProtocolFailure, ProtocolError};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

    use crate::{ClientBuilder, Endpoint, Message, ServerBuilder, Session};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A frame as the peer writes it: masked with `KEY` when the peer is a client.
    fn frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mask_bit = if masked { 0x80 } else { 0 };
        let mut out = match u16::try_from(payload.len()) {
            Ok(len @ 0..=125) => vec![first_byte, len as u8 | mask_bit],
            Ok(len) => {
                let [high, low] = len.to_be_bytes();
                vec![first_byte, 126 | mask_bit, high, low]
            }
            Err(_) => panic!("test frames are under 64 KiB"),
        };
        let start = if masked {
            out.extend_from_slice(&KEY);
            out.len()
        } else {
            out.len()
        };
        out.extend_from_slice(payload);
        if masked {
            apply_mask(&mut out[start..], KEY, 0);
        }
        out
    }

    /// Case 3.2 in one write: a text message, the same with RSV2 set, then a Ping.
    fn message_then_violation(masked: bool) -> Vec<u8> {
        let mut wire = frame(0x81, b"Hello, world!", masked);
        wire.extend(frame(0x81 | (RSV2 << 4), b"Hello, world!", masked));
        wire.extend(frame(0x89, b"", masked));
        wire
    }

    fn close_1002_payload() -> Vec<u8> {
        let reason = ProtocolFailure::Protocol(ProtocolError::ReservedBits(RSV2)).to_string();
        let mut payload = vec![0x03, 0xea];
        payload.extend_from_slice(reason.as_bytes());
        payload
    }

    /// Reads until the end of the HTTP head; returns it.
    async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = tokio::time::timeout(LIMIT, io.read_u8())
                .await
                .unwrap()
                .unwrap();
            head.push(byte);
        }
        String::from_utf8(head).unwrap()
    }

    /// Everything the peer writes until it closes its side.
    async fn read_to_end<S: AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
        let mut rest = Vec::new();
        tokio::time::timeout(LIMIT, io.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        rest
    }

    /// (opcode, unmasked payload, masked) of each frame.
    fn decode(mut wire: &[u8]) -> Vec<(OpCode, Vec<u8>, bool)> {
        let mut frames = Vec::new();
        while let Some((header, n)) = FrameHeader::parse(wire).unwrap() {
            let len = header.len as usize;
            let mut payload = wire[n..n + len].to_vec();
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key, 0);
            }
            frames.push((header.opcode, payload, header.mask.is_some()));
            wire = &wire[n + len..];
        }
        assert!(wire.is_empty(), "trailing bytes");
        frames
    }

    /// A raw client: handshake, then case 3.2; returns what the server wrote after its
    /// 101 response.
    async fn raw_client(mut io: DuplexStream) -> Vec<u8> {
        raw_handshake(&mut io).await;
        io.write_all(&message_then_violation(true)).await.unwrap();
        read_to_end(&mut io).await
    }

    /// A raw client's opening handshake.
    async fn raw_handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
        io.write_all(
            b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let head = read_head(io).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    }

    /// An open server `WebSocket` whose driver has started, and the raw client's end.
    async fn accepted_by_raw_client() -> (crate::WebSocket, DuplexStream) {
        let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (ws, ()) = tokio::join!(
            async { ServerBuilder::new().accept(server_io).await.unwrap() },
            raw_handshake(&mut client_io)
        );
        while ws.shared().lock().input.io.is_none() {
            tokio::task::yield_now().await;
        }
        (ws, client_io)
    }

    /// Polls `future` once with a waker that does nothing.
    fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// The Pong a server writes for a Ping with `payload`, read by the raw client.
    async fn expect_pong(peer: &mut DuplexStream, payload: &[u8]) {
        let mut pong = vec![0u8; 2 + payload.len()];
        tokio::time::timeout(LIMIT, peer.read_exact(&mut pong))
            .await
            .expect("no Pong: nobody read the Ping")
            .unwrap();
        assert_eq!(pong, frame(0x8a, payload, false));
    }

    /// A `recv` that waits reads the socket on its own task: on a current-thread runtime
    /// that never ran the driver in between, its next poll returns the message.
    #[tokio::test]
    async fn a_waiting_recv_reads_the_socket_itself() {
        let (mut ws, mut peer) = accepted_by_raw_client().await;
        let mut recv = Box::pin(ws.recv());
        assert!(poll_once(&mut recv).is_pending());
        peer.write_all(&frame(0x81, b"hi", true)).await.unwrap();
        match poll_once(&mut recv) {
            Poll::Ready(Some(Ok(Message::Text(text)))) => assert_eq!(text, "hi"),
            other => panic!("the waiting recv did not read: {other:?}"),
        }
        drop(recv);
        // A Ping read by the recv is answered too.
        let mut recv = Box::pin(ws.recv());
        assert!(poll_once(&mut recv).is_pending());
        peer.write_all(&frame(0x89, b"p", true)).await.unwrap();
        assert!(poll_once(&mut recv).is_pending(), "a Ping is no message");
        expect_pong(&mut peer, b"p").await;
    }

    /// Over TCP, a waiting `recv` is woken once per message, by the socket (not through
    /// the driver, which would have queued the message before waking it), and takes the
    /// message on the poll that follows: two polls per message, small and large alike.
    #[tokio::test]
    async fn a_waiting_recv_over_tcp_is_woken_once_per_message_and_reads_it_itself() {
        a_waiting_receive_over_tcp_reads_itself(false).await;
    }

    /// The same for `ws.next()` with `StreamExt` in scope: the method, not the trait's.
    #[tokio::test]
    async fn a_waiting_next_over_tcp_is_the_method_that_reads_the_socket_itself() {
        a_waiting_receive_over_tcp_reads_itself(true).await;
    }

    async fn a_waiting_receive_over_tcp_reads_itself(next: bool) {
        #[derive(Default)]
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut peer, mut ws) = tokio::join!(
            async {
                let mut io = tokio::net::TcpStream::connect(addr).await.unwrap();
                raw_handshake(&mut io).await;
                io
            },
            async {
                let (tcp, _) = listener.accept().await.unwrap();
                ServerBuilder::new().accept(tcp).await.unwrap()
            }
        );
        let shared = ws.shared().clone();
        while shared.lock().input.io.is_none() {
            tokio::task::yield_now().await;
        }
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        for (i, size) in [20, 16 * 1024].into_iter().cycle().take(20).enumerate() {
            let mut recv: Pin<Box<dyn Future<Output = _>>> = if next {
                Box::pin(ws.next())
            } else {
                Box::pin(ws.recv())
            };
            let mut cx = Context::from_waker(&waker);
            assert!(recv.as_mut().poll(&mut cx).is_pending(), "message {i}");
            let woken = count.0.load(Ordering::SeqCst);
            let payload = vec![i as u8; size];
            peer.write_all(&frame(0x82, &payload, true)).await.unwrap();
            tokio::time::timeout(LIMIT, async {
                while count.0.load(Ordering::SeqCst) == woken {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the waiting recv was not woken");
            assert!(
                shared.lock().incoming.is_empty(),
                "message {i} went through the driver"
            );
            match recv.as_mut().poll(&mut cx) {
                Poll::Ready(Some(Ok(message))) => assert_eq!(message.as_bytes(), &payload[..]),
                other => panic!("message {i}: {other:?}"),
            }
            assert_eq!(count.0.load(Ordering::SeqCst), woken + 1, "message {i}");
        }
    }

    /// A waiting `recv` whose peer keeps sending returns the first message after two reads,
    /// and leaves the rest to the driver, which still reads all of it.
    #[tokio::test]
    async fn a_waiting_recv_takes_two_reads_at_most_and_leaves_a_flood_to_the_driver() {
        // 900 KB: all of it fits the pipe and stays under the received messages' high-water
        // mark (1 MiB), so only the bound on reads stops the waiting recv.
        const MESSAGES: usize = 900;
        let (client_io, server_io) = tokio::io::duplex(1024 * 1024);
        let mut peer = client_io;
        let (mut ws, ()) = tokio::join!(
            async { ServerBuilder::new().accept(server_io).await.unwrap() },
            raw_handshake(&mut peer)
        );
        while ws.shared().lock().input.io.is_none() {
            tokio::task::yield_now().await;
        }
        let shared = ws.shared().clone();
        let mut recv = Box::pin(ws.recv());
        assert!(poll_once(&mut recv).is_pending());
        let payload = [b'x'; 1000];
        let mut wire = Vec::new();
        for _ in 0..MESSAGES {
            wire.extend(frame(0x82, &payload, true));
        }
        peer.write_all(&wire).await.unwrap();
        let first = poll_once(&mut recv);
        assert!(
            matches!(first, Poll::Ready(Some(Ok(Message::Binary(_))))),
            "{first:?}"
        );
        drop(recv);
        let queued = shared.lock().incoming.len();
        assert!(
            queued < MESSAGES / 2,
            "the waiting recv read {queued} more messages before returning"
        );
        for _ in 1..MESSAGES {
            let message = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
            assert_eq!(message.unwrap().unwrap().as_bytes(), &payload[..]);
        }
    }

    /// A `recv` dropped while it waits (a lost `select!` race, a timeout) gives the reading
    /// back to the driver: a Ping that arrives later is still answered.
    #[tokio::test]
    async fn a_recv_dropped_while_it_waits_leaves_the_reading_to_the_driver() {
        let (mut ws, mut peer) = accepted_by_raw_client().await;
        let mut recv = Box::pin(ws.recv());
        assert!(poll_once(&mut recv).is_pending());
        drop(recv);
        peer.write_all(&frame(0x89, b"later", true)).await.unwrap();
        expect_pong(&mut peer, b"later").await;
        assert_eq!(ws.state(), State::Open);
    }

    /// A `recv` woken by the socket and dropped before it was polled again (its task took
    /// another branch) hands the unread bytes to the driver.
    #[tokio::test]
    async fn a_recv_woken_and_dropped_unpolled_hands_its_read_to_the_driver() {
        let (mut ws, mut peer) = accepted_by_raw_client().await;
        let shared = ws.shared().clone();
        let mut recv = Box::pin(ws.recv());
        assert!(poll_once(&mut recv).is_pending());
        peer.write_all(&frame(0x89, b"now", true)).await.unwrap();
        assert!(
            shared.wakes.readable.load(Ordering::SeqCst),
            "the socket's wake-up went to the waiting recv"
        );
        drop(recv);
        expect_pong(&mut peer, b"now").await;
    }

    /// A raw server: answers the handshake, then case 3.2; returns what the client wrote
    /// after its request.
    async fn raw_server<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> Vec<u8> {
        let head = read_head(&mut io).await;
        let key = head
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key");
        let accept = sockeye_proto::handshake::accept_key(key.trim().as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        io.write_all(response.as_bytes()).await.unwrap();
        io.write_all(&message_then_violation(false)).await.unwrap();
        read_to_end(&mut io).await
    }

    /// The application: takes the message, answers it, then sees the failure.
    async fn echo_then_failure(mut ws: crate::WebSocket) {
        let message = StreamExt::next(&mut ws).await.unwrap().unwrap();
        assert_eq!(message, Message::Text("Hello, world!".into()));
        ws.send(message).await.unwrap();
        let failure = StreamExt::next(&mut ws).await.unwrap().unwrap_err();
        assert!(
            matches!(
                failure,
                crate::Error::Failed(ProtocolFailure::Protocol(ProtocolError::ReservedBits(RSV2)))
            ),
            "{failure}"
        );
        assert!(StreamExt::next(&mut ws).await.is_none());
    }

    struct Echo;

    impl Endpoint for Echo {
        fn on_message(&mut self, session: &Session, message: Message) {
            session.try_send(message).unwrap();
        }
    }

    #[tokio::test]
    async fn server_websocket_answers_message_received_before_a_protocol_violation() {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let app = tokio::spawn(async move {
            let ws = ServerBuilder::new().accept(server_io).await.unwrap();
            echo_then_failure(ws).await;
        });
        let wire = raw_client(client_io).await;
        let mut expected = vec![0x81, 0x0d];
        expected.extend_from_slice(b"Hello, world!");
        let close = close_1002_payload();
        expected.extend_from_slice(&[0x88, close.len() as u8]);
        expected.extend_from_slice(&close);
        assert_eq!(wire, expected);
        tokio::time::timeout(LIMIT, app).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn server_endpoint_answers_message_received_before_a_protocol_violation() {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let session = tokio::spawn(async move {
            ServerBuilder::new()
                .accept_endpoint(server_io, Echo)
                .await
                .unwrap()
        });
        let wire = raw_client(client_io).await;
        let mut expected = vec![0x81, 0x0d];
        expected.extend_from_slice(b"Hello, world!");
        let close = close_1002_payload();
        expected.extend_from_slice(&[0x88, close.len() as u8]);
        expected.extend_from_slice(&close);
        assert_eq!(wire, expected);
        let session = tokio::time::timeout(LIMIT, session).await.unwrap().unwrap();
        let info = tokio::time::timeout(LIMIT, session.closed()).await.unwrap();
        assert_eq!(
            info.error,
            Some(ProtocolFailure::Protocol(ProtocolError::ReservedBits(RSV2)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn server_websocket_not_reading_fails_by_close_timeout() {
        let mut config = crate::Config::default();
        config.protocol.close_timeout = Duration::from_secs(1);
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let app = tokio::spawn(async move {
            ServerBuilder::new()
                .config(config)
                .accept(server_io)
                .await
                .unwrap()
        });
        let start = tokio::time::Instant::now();
        let wire = raw_client(client_io).await;
        // Nobody read the message, so nothing answered it; the failure waited for the
        // close timeout, no longer.
        assert!(start.elapsed() >= Duration::from_secs(1));
        let close = close_1002_payload();
        let mut expected = vec![0x88, close.len() as u8];
        expected.extend_from_slice(&close);
        assert_eq!(wire, expected);
        // The message that arrived before the violation is not lost.
        let mut ws = tokio::time::timeout(LIMIT, app).await.unwrap().unwrap();
        assert_eq!(
            StreamExt::next(&mut ws).await.unwrap().unwrap(),
            Message::Text("Hello, world!".into())
        );
        assert!(StreamExt::next(&mut ws).await.unwrap().is_err());
        assert!(StreamExt::next(&mut ws).await.is_none());
    }

    fn expected_from_client() -> Vec<(OpCode, Vec<u8>, bool)> {
        vec![
            (OpCode::Text, b"Hello, world!".to_vec(), true),
            (OpCode::Close, close_1002_payload(), true),
        ]
    }

    #[tokio::test]
    async fn client_websocket_answers_message_received_before_a_protocol_violation() {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let peer = tokio::spawn(raw_server(server_io));
        let (ws, _) = ClientBuilder::new()
            .connect_on(client_io, "ws://example.com/")
            .await
            .unwrap();
        echo_then_failure(ws).await;
        let wire = tokio::time::timeout(LIMIT, peer).await.unwrap().unwrap();
        assert_eq!(decode(&wire), expected_from_client());
    }

    #[tokio::test]
    async fn client_endpoint_answers_message_received_before_a_protocol_violation() {
        // The endpoint API dials TCP itself: a raw server on loopback.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            raw_server(stream).await
        });
        let session = ClientBuilder::new()
            .connect_endpoint(&format!("ws://{addr}/"), Echo)
            .await
            .unwrap();
        let wire = tokio::time::timeout(LIMIT, peer).await.unwrap().unwrap();
        assert_eq!(decode(&wire), expected_from_client());
        let info = tokio::time::timeout(LIMIT, session.closed()).await.unwrap();
        assert_eq!(
            info.error,
            Some(ProtocolFailure::Protocol(ProtocolError::ReservedBits(RSV2)))
        );
    }
}
