//! The session state machine: one WebSocket connection, from the opening handshake to the
//! closed transport, without any I/O.
//!
//! See [`Connection`] for the API and the order in which to call it.

mod extensions;
mod state;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use rand::{Rng, rngs::StdRng};
use tracing::{debug, trace};

pub use state::State;

use crate::Role;
use crate::close::{CloseCode, CloseFrame, CloseInfo, Initiator, MAX_REASON_LEN};
use crate::config::Config;
use crate::error::{CloseError, Error, HandshakeError, ProtocolError, SendError};
use crate::extension::deflate::PerMessageDeflate;
use crate::frame::{self, FrameHeader, MAX_CONTROL_PAYLOAD, OpCode};
use crate::handshake::{self, Accept, ClientRequest, Reject, Request, Response};
use crate::mask::apply_mask;
use crate::utf8::Utf8Validator;

/// A complete message, received or to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message: always valid UTF-8.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A Ping control frame (at most 125 bytes); answered with a Pong automatically.
    Ping(Bytes),
    /// A Pong control frame (at most 125 bytes).
    Pong(Bytes),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
        }
    }

    /// Whether this is a Text or Binary message rather than a control frame.
    pub fn is_data(&self) -> bool {
        matches!(self, Message::Text(_) | Message::Binary(_))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(data.into())
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

/// One part of a data message sent in several frames (RFC 6455 5.4), for a message made
/// piece by piece, whose whole the application does not hold at once: see
/// [`Connection::send_fragment`]. The message's kind is its first fragment's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// A part of a text message. Each part is valid UTF-8 by itself, so the message is
    /// too.
    Text(String),
    /// A part of a binary message.
    Binary(Bytes),
}

impl Fragment {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Fragment::Text(text) => text.as_bytes(),
            Fragment::Binary(data) => data,
        }
    }
}

impl From<String> for Fragment {
    fn from(text: String) -> Self {
        Fragment::Text(text)
    }
}

impl From<&str> for Fragment {
    fn from(text: &str) -> Self {
        Fragment::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Fragment {
    fn from(data: Vec<u8>) -> Self {
        Fragment::Binary(data.into())
    }
}

impl From<Bytes> for Fragment {
    fn from(data: Bytes) -> Self {
        Fragment::Binary(data)
    }
}

/// Something the application must learn about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Server: a valid handshake request arrived ([`Connection::request`]); answer it with
    /// [`Connection::accept`] or [`Connection::reject`].
    Request,
    /// The opening handshake completed and the session is CONNECTED. Tell the application
    /// (`on_open`), then call [`Connection::open`].
    Connected,
    /// A message arrived.
    Message(Message),
    /// The session's outcome is settled: emitted exactly once per session, when the peer's
    /// Close frame arrives or the session fails, times out or loses its transport. Boxed:
    /// the record is large and comes once, while every message's event is moved through
    /// the queue.
    Close(Box<CloseInfo>),
}

/// What the I/O layer must do with the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Write these bytes, in order.
    Data(Bytes),
    /// Nothing more will be written: close the write side (TCP `shutdown(SHUT_WR)`, TLS
    /// close_notify). Once the state is CLOSED and no transmit is left, drop the transport.
    Shutdown,
}

/// The session's deadlines, in a module of their own so that every change goes through
/// [`Timers::set`], which counts it (see [`Connection::deadline_changes`]).
mod deadlines {
    use std::time::Instant;

    /// One of the session's deadlines.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Deadline {
        /// The opening handshake's end (4.1, 4.2).
        Handshake,
        /// The closing handshake's end (7.1.1): the peer's Close, or its EOF after it.
        Close,
        /// The next keepalive Ping.
        Ping,
        /// The awaited Pong's latest arrival.
        Pong,
        /// The latest time a protocol violation found in the input takes effect.
        Failure,
        /// When the session is idle: no complete frame received since `idle_timeout`.
        Idle,
    }

    impl Deadline {
        /// Every deadline, in the order of their slots in [`Timers`].
        pub(super) const ALL: [Deadline; 6] = [
            Deadline::Handshake,
            Deadline::Close,
            Deadline::Ping,
            Deadline::Pong,
            Deadline::Failure,
            Deadline::Idle,
        ];
    }

    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct Timers {
        /// By `Deadline`, in its order.
        at: [Option<Instant>; Deadline::ALL.len()],
        /// How many times a deadline changed.
        changes: u64,
    }

    impl Timers {
        pub(super) fn get(&self, which: Deadline) -> Option<Instant> {
            self.at[which as usize]
        }

        /// Sets or clears one deadline.
        pub(super) fn set(&mut self, which: Deadline, at: Option<Instant>) {
            let slot = &mut self.at[which as usize];
            if *slot != at {
                *slot = at;
                self.changes = self.changes.wrapping_add(1);
            }
        }

        /// Whether `which` is set and has passed at `now`; if so it is cleared (it fires
        /// once).
        pub(super) fn take_due(&mut self, which: Deadline, now: Instant) -> bool {
            let due = self.get(which).is_some_and(|at| at <= now);
            if due {
                self.set(which, None);
            }
            due
        }

        /// Clears every deadline.
        pub(super) fn clear(&mut self) {
            if self.at.iter().any(Option::is_some) {
                self.at = [None; Deadline::ALL.len()];
                self.changes = self.changes.wrapping_add(1);
            }
        }

        pub(super) fn earliest(&self) -> Option<Instant> {
            self.at.iter().flatten().min().copied()
        }

        pub(super) fn changes(&self) -> u64 {
            self.changes
        }
    }
}

use deadlines::{Deadline, Timers};

#[derive(Debug)]
enum HandshakePhase {
    /// Client: waiting for the response head. Server: waiting for the request head.
    Head,
    /// Client: a non-101 response; keeping its body for the error.
    ErrorBody {
        status: u16,
        expected: Option<usize>,
    },
    /// Server: the request is parsed; waiting for `accept` or `reject`.
    Decision,
    /// The handshake is over.
    Done,
}

#[derive(Clone, Copy, Debug)]
enum Read {
    Header,
    /// The payload of `header` is arriving at the start of `inbuf`; it stays there until
    /// the whole frame is in, and is then split off without a copy.
    Payload {
        header: FrameHeader,
        /// Bytes at the start of `inbuf` already unmasked (and, for text, validated).
        seen: usize,
    },
}

/// A protocol violation found in the input that has not taken effect yet: the events
/// before it are still to be taken (see [`Connection::poll_event`]).
#[derive(Debug)]
struct Failing {
    /// The Close frame to send when it takes effect, if one can be sent.
    frame: Option<CloseFrame>,
}

/// The most the receive buffer reserves at once for the rest of a frame (and the most
/// [`Connection::receive_size_hint`] asks for a frame's payload); larger frames grow it as
/// they arrive.
pub const MAX_FRAME_RESERVE: usize = 4 << 20;

/// Room reserved for a frame payload of `len` bytes.
fn frame_reserve(len: u64) -> usize {
    usize::try_from(len).map_or(MAX_FRAME_RESERVE, |len| len.min(MAX_FRAME_RESERVE))
}

#[derive(Debug)]
struct Partial {
    text: bool,
    buf: BytesMut,
    utf8: Utf8Validator,
    /// permessage-deflate: the message is compressed (RSV1 on its first frame); its
    /// payload is inflated into `inflated` as it arrives, and `buf` stays empty.
    compressed: bool,
    inflated: Vec<u8>,
}

/// One WebSocket session, without I/O (the role of `quinn_proto::Connection` or the
/// `Protocol` of Python's `websockets`).
///
/// # Inputs, commands and outputs
/// - Inputs: [`receive_data`](Self::receive_data) with the bytes read from the transport,
///   [`receive_eof`](Self::receive_eof) when the peer closed its side,
///   [`handle_timeout`](Self::handle_timeout) when the deadline of
///   [`poll_timeout`](Self::poll_timeout) has passed.
/// - Commands: [`connect`](Self::connect) (client), [`accept`](Self::accept) /
///   [`reject`](Self::reject) (server), [`open`](Self::open), [`send`](Self::send),
///   [`close`](Self::close), [`fail`](Self::fail).
/// - Outputs: [`poll_event`](Self::poll_event), [`poll_transmit`](Self::poll_transmit),
///   [`poll_timeout`](Self::poll_timeout).
///
/// After every input or command, drain [`poll_event`](Self::poll_event) until `None`
/// (delivering each event to the application), then [`poll_transmit`](Self::poll_transmit)
/// until `None` (writing each transmit), then re-arm the timer from
/// [`poll_timeout`](Self::poll_timeout). When [`state`](Self::state) is CLOSED and no
/// transmit is left, drop the transport. Events first, transmits second: the reply to a
/// peer's Close is produced only when its [`Event::Close`] has been taken, so it is sent
/// after the application was told (seed 000, remotely initiated close). Likewise, when
/// the peer breaks the protocol, the Close frame that fails the connection (7.1.7) is
/// produced when that failure's [`Event::Close`] is taken: frames are processed in the
/// order they arrived, so the messages received before the bad frame are delivered first
/// and the application may still answer them. Nothing after the bad frame is processed.
///
/// Time is passed in as `now`; the connection reads no clock and owns no timer.
///
/// ```
/// use std::time::Instant;
/// use sockeye_proto::{Config, Connection, Event, Message, Transmit};
/// use sockeye_proto::handshake::{Accept, ClientRequest};
///
/// let now = Instant::now();
/// let mut client = Connection::client(ClientRequest::new("example.com", "/chat"), Config::default());
/// let mut server = Connection::server(Config::default(), now);
/// client.connect(now);
///
/// // Move bytes between the two, as the I/O layer would.
/// fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
///     while let Some(t) = from.poll_transmit() {
///         if let Transmit::Data(bytes) = t {
///             to.receive_data(&bytes, now);
///         }
///     }
/// }
/// pump(&mut client, &mut server, now);
/// assert_eq!(server.poll_event(), Some(Event::Request));
/// server.accept(Accept::default(), now).unwrap();
/// pump(&mut server, &mut client, now);
/// assert_eq!(client.poll_event(), Some(Event::Connected));
/// client.open();
/// client.send(Message::Text("hello".into())).unwrap();
/// pump(&mut client, &mut server, now);
/// assert_eq!(server.poll_event(), Some(Event::Connected));
/// assert_eq!(server.poll_event(), Some(Event::Message(Message::Text("hello".into()))));
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    /// Masking keys and the handshake key; clients only. A server never masks, so it
    /// holds no generator (320 bytes less per connection).
    rng: Option<Box<StdRng>>,
    /// Reserved bits an extension has claimed.
    allowed_rsv: u8,
    // The handshake's and deflate's state, and the outcome, are boxed: an open session
    // without deflate holds none of them (about 900 bytes less per idle connection).
    /// permessage-deflate, when negotiated.
    deflate: Option<Box<PerMessageDeflate>>,

    client_request: Option<Box<ClientRequest>>,
    key: String,
    request: Option<Box<Request>>,
    response: Option<Box<Response>>,
    accepted_subprotocol: Option<String>,
    handshake: HandshakePhase,

    inbuf: BytesMut,
    /// Length of `inbuf` when it was lent with `lend_receive_buffer`.
    lent_len: usize,
    read: Read,
    message: Option<Partial>,
    control: BytesMut,
    /// Set after a failure or the peer's Close: input is ignored (7.1.7, 5.5.1).
    discard_input: bool,
    eof_received: bool,

    out_queue: VecDeque<Bytes>,
    out_buf: BytesMut,
    buffered: usize,
    /// Bytes the I/O layer took and has not written yet (`set_unwritten`).
    unwritten: usize,
    shutdown_pending: bool,

    sent_close: Option<CloseFrame>,
    received_close: Option<CloseFrame>,
    initiator: Option<Initiator>,
    reply_pending: Option<CloseFrame>,
    /// The opcode of the data message being sent in fragments (`send_fragment`), until
    /// its last fragment: no other data message may start before it ends (5.4).
    unfinished: Option<OpCode>,
    /// The peer's Close event was taken: the reply goes out at the next call into the
    /// connection, i.e. after the application's `on_close` returned.
    reply_due: bool,
    failing: Option<Failing>,
    close_info: Option<Box<CloseInfo>>,

    events: VecDeque<Event>,
    timers: Timers,
    ping_counter: u64,
    awaiting_pong: Option<[u8; 8]>,
    /// When the awaited Ping was queued, for its round trip.
    ping_sent: Option<Instant>,
    /// The round trip of the last of our Pings that was answered, and how many were.
    latency: Option<Duration>,
    pongs: u64,
    /// Every state entered, in order (at most eight: states only move forward).
    history: Vec<State>,
    /// Which end closed the transport first: `Some(true)` if the peer's EOF came before
    /// our shutdown.
    peer_closed_first: Option<bool>,
}

/// The reason of the Close frame sent when `idle_timeout` passes.
pub const IDLE_TIMEOUT_REASON: &str = "idle timeout";

/// Server payloads at least this long are queued as their own `Bytes` instead of being
/// copied next to their header.
const ZERO_COPY_THRESHOLD: usize = 1024;
/// An output buffer written in place is kept for the next frames (no allocation per
/// frame) while it is at most this large: a frame whose payload is copied next to its
/// header. A larger one is released once written, so a quiet connection keeps at most this.
const KEPT_OUTPUT_BUFFER: usize = ZERO_COPY_THRESHOLD + crate::frame::MAX_HEADER_LEN;

impl Connection {
    fn new(role: Role, config: Config, rng: Option<StdRng>) -> Connection {
        Connection {
            role,
            config,
            state: State::New,
            rng: rng.map(Box::new),
            allowed_rsv: 0,
            deflate: None,
            client_request: None,
            key: String::new(),
            request: None,
            response: None,
            accepted_subprotocol: None,
            handshake: HandshakePhase::Head,
            inbuf: BytesMut::new(),
            lent_len: 0,
            read: Read::Header,
            message: None,
            control: BytesMut::new(),
            discard_input: false,
            eof_received: false,
            out_queue: VecDeque::new(),
            out_buf: BytesMut::new(),
            buffered: 0,
            unwritten: 0,
            shutdown_pending: false,
            sent_close: None,
            received_close: None,
            initiator: None,
            reply_pending: None,
            unfinished: None,
            reply_due: false,
            failing: None,
            close_info: None,
            events: VecDeque::new(),
            timers: Timers::default(),
            ping_counter: 0,
            awaiting_pong: None,
            ping_sent: None,
            latency: None,
            pongs: 0,
            history: vec![State::New],
            peer_closed_first: None,
        }
    }

    /// A client session in NEW that will send `request`. Masking keys and the handshake
    /// key come from a CSPRNG seeded by the operating system.
    pub fn client(request: ClientRequest, config: Config) -> Connection {
        Connection::client_with_rng(request, config, rand::make_rng())
    }

    /// A client session taking its randomness from `rng` (a seeded [`StdRng`] makes tests
    /// deterministic).
    pub fn client_with_rng(request: ClientRequest, config: Config, rng: StdRng) -> Connection {
        let mut conn = Connection::new(Role::Client, config, Some(rng));
        conn.client_request = Some(Box::new(request));
        conn
    }

    /// A server session for a transport accepted at `now`. It waits in NEW for the first
    /// byte of the request; the handshake timeout runs from `now`.
    pub fn server(config: Config, now: Instant) -> Connection {
        // A server never masks: no generator.
        let mut conn = Connection::new(Role::Server, config, None);
        conn.start_handshake_timer(now);
        conn
    }

    /// A session whose opening handshake was made by another HTTP implementation (an
    /// upgrade in hyper, say; see [`handshake::validate_request`] and
    /// [`handshake::accept_fields`]): it starts CONNECTED at `now`, with the idle and
    /// keepalive timers of `config` running. No extension is in use, whatever the
    /// handshake said, so none may have been agreed to. A client masks its frames with
    /// keys from a CSPRNG seeded by the operating system.
    pub fn after_handshake(role: Role, config: Config, now: Instant) -> Connection {
        let rng = (role == Role::Client).then(rand::make_rng);
        let mut conn = Connection::new(role, config, rng);
        conn.connected_elsewhere(now);
        conn
    }

    /// Server: a session for a request another HTTP server read and
    /// [`validate_request`](handshake::validate_request) checked, accepted with `accept`
    /// as [`accept`](Self::accept) would: the subprotocol it selects is recorded, and
    /// permessage-deflate is agreed when `config` enables it and the client offered it
    /// (or as `accept` writes it). Returns the session, CONNECTED at `now`, and the header
    /// fields of the 101 response, which must go out before the session's first byte.
    /// Fails, with the error whose [`rejection`](HandshakeError::rejection) answers the
    /// request, if `accept` is invalid for it.
    pub fn server_upgraded(
        config: Config,
        request: &Request,
        accept: Accept,
        now: Instant,
    ) -> Result<(Connection, Vec<(String, String)>), HandshakeError> {
        let mut conn = Connection::new(Role::Server, config, None);
        let fields = conn.agree(request, accept)?;
        conn.connected_elsewhere(now);
        Ok((conn, fields))
    }

    /// Client: a session whose upgrade request another HTTP client sends (hyper's, say):
    /// returns it, CONNECTING from `now` (the handshake timeout runs), and the header
    /// fields to send with a GET of `request.path` over HTTP/1.1 (those of
    /// [`ClientRequest::fields`](handshake::ClientRequest::fields), with a fresh key and
    /// the permessage-deflate offer when `config` enables it). Give the server's response
    /// to [`client_upgraded`](Self::client_upgraded). Masking and handshake keys come from
    /// a CSPRNG seeded by the operating system.
    pub fn client_upgrade(
        request: ClientRequest,
        config: Config,
        now: Instant,
    ) -> (Connection, Vec<(String, String)>) {
        let mut conn = Connection::client(request, config);
        conn.prepare_request();
        let fields = conn
            .client_request
            .as_ref()
            .map(|request| request.fields(&conn.key))
            .unwrap_or_default();
        conn.start_handshake_timer(now);
        conn.set_state(State::Connecting);
        (conn, fields)
    }

    /// Client: the server's response to the request of
    /// [`client_upgrade`](Self::client_upgrade), as another HTTP client read it. Checks it
    /// as a response read by this session is checked (4.1,
    /// [`validate_response`](handshake::validate_response)), agrees on permessage-deflate
    /// (RFC 7692 5), and enters CONNECTED: the session's first byte may then be read from
    /// and written to the upgraded connection. A response that fails the checks (a status
    /// other than 101 among them) fails the session, which is CLOSED with that error, after
    /// queuing Close 1010 for an extension answer it cannot accept, as a session that read
    /// the response itself does; the connection must then be closed (4.1: fail the
    /// WebSocket connection).
    pub fn client_upgraded(
        &mut self,
        response: Response,
        now: Instant,
    ) -> Result<(), HandshakeError> {
        if self.role != Role::Client
            || self.state != State::Connecting
            || !matches!(self.handshake, HandshakePhase::Head)
        {
            return Err(HandshakeError::Http(
                "no upgrade request is waiting for its response".into(),
            ));
        }
        match self.take_response(response, now) {
            Ok(()) => {
                // CONNECTED is told to whoever made the handshake.
                self.events.clear();
                Ok(())
            }
            Err(error) => {
                if matches!(error, HandshakeError::UnexpectedStatus { .. }) {
                    // The other client has the refusal's body: nothing more to read.
                    self.fail_with(Error::Handshake(error.clone()), now);
                }
                Err(error)
            }
        }
    }

    /// Client: the server's response to our request, read by this session or by another
    /// HTTP client. Checked against the request (4.1, `validate_response`) and recorded;
    /// permessage-deflate agreed (RFC 7692 5), then CONNECTED. A response that fails the
    /// checks fails the session, one whose extension answer cannot be accepted with Close
    /// 1010 first; a status other than 101 is returned without failing it, for the
    /// caller to read the refusal's body or not.
    fn take_response(&mut self, response: Response, now: Instant) -> Result<(), HandshakeError> {
        let verdict = match &self.client_request {
            Some(request) => handshake::validate_response(&response, request, &self.key),
            None => Err(HandshakeError::Http("no request was sent".into())),
        };
        self.response = Some(Box::new(response));
        match verdict {
            Ok(()) => {}
            Err(error @ HandshakeError::UnexpectedStatus { .. }) => return Err(error),
            Err(error) => {
                self.fail_with(Error::Handshake(error.clone()), now);
                return Err(error);
            }
        }
        match self.agree_as_client() {
            Ok(deflate) => self.start_deflate(deflate),
            Err(error) => {
                self.refuse_extensions(error.clone(), now);
                return Err(error);
            }
        }
        self.handshake = HandshakePhase::Done;
        self.enter_connected(now);
        Ok(())
    }

    /// NEW → CONNECTING → CONNECTED for a handshake made by another implementation.
    fn connected_elsewhere(&mut self, now: Instant) {
        self.handshake = HandshakePhase::Done;
        // Through CONNECTING as any session, whose invariants hold for a moment too.
        self.start_handshake_timer(now);
        self.set_state(State::Connecting);
        self.enter_connected(now);
        // CONNECTED is told to whoever made the handshake, not to this session's user.
        self.events.clear();
    }

    /// Whether bytes given to [`receive_data`](Self::receive_data) are still processed:
    /// `false` once the peer's Close was received or the connection failed, after which
    /// what arrives is dropped (5.5.1, 7.1.7), so that reading on costs no memory.
    pub fn takes_input(&self) -> bool {
        !self.discard_input
    }

    /// Which end of the connection this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The settings of this session.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Server: the client's handshake request, once parsed.
    pub fn request(&self) -> Option<&Request> {
        self.request.as_deref()
    }

    /// Server: takes the client's handshake request out of the session, for an I/O layer
    /// that has no use for it after the handshake (its header map is most of what an idle
    /// connection would keep of it). [`request`](Self::request) returns `None` after.
    pub fn take_request(&mut self) -> Option<Request> {
        self.request.take().map(|request| *request)
    }

    /// Client: the server's handshake response, once received.
    pub fn response(&self) -> Option<&Response> {
        self.response.as_deref()
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        match self.role {
            Role::Client => self.response.as_ref()?.subprotocol.as_deref(),
            Role::Server => self.accepted_subprotocol.as_deref(),
        }
    }

    /// Every state this session entered, in order, starting with NEW. Bounded: states only
    /// move forward.
    pub fn history(&self) -> &[State] {
        &self.history
    }

    /// Which end closed the transport first (RFC 6455 7.1.1 wants the server to): `true`
    /// if the peer's EOF arrived before this endpoint shut its side down, `false` if this
    /// endpoint shut down first, `None` while neither happened.
    pub fn peer_closed_first(&self) -> Option<bool> {
        self.peer_closed_first
    }

    /// How the session ended, once [`Event::Close`] was emitted.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_deref()
    }

    /// Bytes queued for the transport and not yet taken by
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn buffered_amount(&self) -> usize {
        self.buffered
    }

    // ----- the one transition function -----

    /// Moves to `next`, checking DESIGN.md's invariants. Every state change goes through
    /// here.
    fn set_state(&mut self, next: State) {
        debug_assert!(
            self.state.may_become(next),
            "invariant 1: {} may not become {}",
            self.state,
            next
        );
        trace!(role = ?self.role, from = %self.state, to = %next, "state");
        self.state = next;
        self.history.push(next);
        if next == State::Closed {
            self.timers.clear();
            self.discard_input = true;
            self.inbuf = BytesMut::new();
            self.message = None;
            // A reply not produced by now is never sent.
            self.reply_pending = None;
            self.shutdown_pending = true;
        }
        self.check_invariants();
    }

    /// DESIGN.md section 2, checked after every transition (debug builds) and by the
    /// property tests.
    pub(crate) fn check_invariants(&self) {
        // 2: the flags mirror the frames, one Close sent and one processed at most.
        debug_assert_eq!(
            self.state.close_sent(),
            self.sent_close.is_some() && matches!(self.state, State::Closing { .. }),
            "invariant 2: close_sent flag and sent frame disagree in {}",
            self.state
        );
        debug_assert!(
            !self.state.close_received() || self.received_close.is_some(),
            "invariant 2: close_received without a received frame"
        );
        // 6: every waiting state has a deadline.
        if matches!(
            self.state,
            State::New | State::Connecting | State::Closing { .. }
        ) && !(self.role == Role::Client && self.state == State::New)
        {
            debug_assert!(
                self.timers.earliest().is_some(),
                "invariant 6: {} without a deadline",
                self.state
            );
        }
        // 6: a violation waiting to take effect has a deadline; it never outlives the
        // session.
        debug_assert!(
            self.failing.is_none()
                || (self.timers.get(Deadline::Failure).is_some() && self.state != State::Closed),
            "invariant 6: a pending failure without a deadline in {}",
            self.state
        );
        // 5: a closed session has told its outcome exactly once.
        if self.state == State::Closed {
            debug_assert!(
                self.close_info.is_some(),
                "invariant 5: CLOSED without Close"
            );
        }
    }

    // ----- commands -----

    /// Client: starts the opening handshake (NEW → CONNECTING): queues the request and
    /// starts the handshake timeout. Call it before connecting the transport, so that the
    /// timeout covers the connection attempt too.
    pub fn connect(&mut self, now: Instant) {
        if self.role != Role::Client || self.state != State::New {
            return;
        }
        self.prepare_request();
        let Some(request) = self.client_request.as_ref() else {
            return;
        };
        let mut out = Vec::new();
        request.encode(&self.key, &mut out);
        self.push_bytes(Bytes::from(out));
        self.start_handshake_timer(now);
        self.set_state(State::Connecting);
    }

    /// Client: adds the configured extension offers to the request and draws its key
    /// (4.1 item 7).
    fn prepare_request(&mut self) {
        self.offer_extensions();
        if let Some(rng) = self.rng.as_deref_mut() {
            self.key = handshake::generate_key(rng);
        }
    }

    /// Server: accepts the request announced by [`Event::Request`] (CONNECTING →
    /// CONNECTED), writing the 101 response. Fails without any effect if `accept` is
    /// invalid for this request (e.g. a subprotocol the client did not offer).
    pub fn accept(&mut self, accept: Accept, now: Instant) -> Result<(), HandshakeError> {
        if self.state != State::Connecting || !matches!(self.handshake, HandshakePhase::Decision) {
            return Err(HandshakeError::Http(
                "no handshake request is waiting for a decision".into(),
            ));
        }
        let Some(request) = self.request.take() else {
            return Err(HandshakeError::Http("no handshake request".into()));
        };
        let agreed = self.agree(&request, accept);
        self.request = Some(request);
        let fields = agreed?;
        let mut out = Vec::new();
        handshake::write_accept(&fields, &mut out);
        self.push_bytes(Bytes::from(out));
        self.handshake = HandshakePhase::Done;
        self.enter_connected(now);
        self.process_input(now);
        Ok(())
    }

    /// Server: agrees with `request` as `accept` says (the subprotocol, the extensions:
    /// permessage-deflate when the configuration enables it and the client offered it,
    /// or as `accept` writes it) and returns the 101 response's header fields. Changes
    /// nothing on error.
    fn agree(
        &mut self,
        request: &Request,
        mut accept: Accept,
    ) -> Result<Vec<(String, String)>, HandshakeError> {
        let deflate = self.agree_as_server(request, &mut accept)?;
        let fields = handshake::accept_fields(request, &accept)?;
        self.start_deflate(deflate);
        self.accepted_subprotocol = accept.subprotocol;
        Ok(fields)
    }

    /// Server: refuses the request announced by [`Event::Request`] with an HTTP response;
    /// the session then closes.
    pub fn reject(&mut self, reject: Reject) {
        if self.state != State::Connecting || !matches!(self.handshake, HandshakePhase::Decision) {
            return;
        }
        let status = reject.status;
        let mut out = Vec::new();
        handshake::encode_reject(&reject, &mut out);
        self.push_bytes(Bytes::from(out));
        self.handshake = HandshakePhase::Done;
        self.emit_close(Some(Error::Rejected { status }));
        self.set_state(State::Closed);
    }

    /// Records that the application was told the session is open (`on_open` returned):
    /// CONNECTED → OPEN. Does nothing in any other state, so a `close()` made inside
    /// `on_open` keeps the session in CLOSING.
    pub fn open(&mut self) {
        if self.state == State::Connected {
            self.set_state(State::Open);
            // The handshake's event queue and output buffer have done their work: an idle
            // connection keeps neither (about 700 bytes).
            if self.events.is_empty() {
                self.events = VecDeque::new();
            }
            if self.out_buf.is_empty() {
                self.out_buf = BytesMut::new();
            }
        }
    }

    /// Queues a message. Allowed in CONNECTED and OPEN; an error before the handshake
    /// completes and once our Close frame is sent (5.5.1: no data after Close).
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.check_send()?;
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, Bytes::from(text)),
            Message::Binary(data) => (OpCode::Binary, data),
            Message::Ping(data) => (OpCode::Ping, data),
            Message::Pong(data) => (OpCode::Pong, data),
        };
        if opcode.is_control() {
            if payload.len() > MAX_CONTROL_PAYLOAD {
                return Err(SendError::ControlFrameTooLong(payload.len()));
            }
        } else if self.unfinished.is_some() {
            // 5.4: the fragments of one message are not interleaved with another's.
            return Err(SendError::UnfinishedMessage);
        }
        self.check_output_room(payload.len())?;
        let (rsv, payload) = self.encode_payload(opcode, payload);
        match self.config.max_send_frame_size {
            Some(max) if payload.len() > max => {
                self.queue_fragments(opcode, rsv, payload, max, true)
            }
            _ => self.queue_frame_rsv(opcode, rsv, payload),
        }
        Ok(())
    }

    /// Sends one part of a data message, the last one if `fin` (RFC 6455 5.4): the first
    /// fragment's kind makes the message's opcode, the next ones go out as continuation
    /// frames, and until the last one no other data message may be sent (`send` and a
    /// fragment of the other kind return [`SendError::UnfinishedMessage`]); Pings and
    /// Pongs may come between (5.4), and so may a Close, which ends the session with the
    /// message unfinished. A fragment longer than
    /// [`Config::max_send_frame_size`] is itself sent as several frames.
    ///
    /// Such a message is sent uncompressed even when permessage-deflate is in use, which
    /// RFC 7692 allows for any message (its RSV1 bit is clear): a compressed message's
    /// frames are parts of one DEFLATE stream, which would have to be held open across the
    /// application's fragments.
    ///
    /// ```
    /// use std::time::Instant;
    /// use sockeye_proto::handshake::{Accept, ClientRequest};
    /// use sockeye_proto::{Config, Connection, Event, Fragment, Message, SendError, Transmit};
    ///
    /// let now = Instant::now();
    /// let mut client = Connection::client(ClientRequest::new("example.com", "/"), Config::default());
    /// let mut server = Connection::server(Config::default(), now);
    /// fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    ///     while let Some(Transmit::Data(bytes)) = from.poll_transmit() {
    ///         to.receive_data(&bytes, now);
    ///     }
    /// }
    /// client.connect(now);
    /// pump(&mut client, &mut server, now);
    /// assert_eq!(server.poll_event(), Some(Event::Request));
    /// server.accept(Accept::default(), now).unwrap();
    /// pump(&mut server, &mut client, now);
    /// assert_eq!(client.poll_event(), Some(Event::Connected));
    /// client.open();
    ///
    /// client.send_fragment(Fragment::from("Hello, "), false).unwrap();
    /// client.send(Message::Ping("between".into())).unwrap();
    /// assert_eq!(client.send(Message::from("not now")), Err(SendError::UnfinishedMessage));
    /// client.send_fragment(Fragment::from("world"), true).unwrap();
    /// pump(&mut client, &mut server, now);
    /// assert_eq!(server.poll_event(), Some(Event::Connected));
    /// assert_eq!(server.poll_event(), Some(Event::Message(Message::Ping("between".into()))));
    /// assert_eq!(server.poll_event(), Some(Event::Message(Message::from("Hello, world"))));
    /// ```
    pub fn send_fragment(&mut self, fragment: Fragment, fin: bool) -> Result<(), SendError> {
        self.check_send()?;
        let (kind, payload) = match fragment {
            Fragment::Text(text) => (OpCode::Text, Bytes::from(text)),
            Fragment::Binary(data) => (OpCode::Binary, data),
        };
        let opcode = match self.unfinished {
            None => kind,
            Some(started) if started == kind => OpCode::Continuation,
            Some(_) => return Err(SendError::UnfinishedMessage),
        };
        self.check_output_room(payload.len())?;
        match self.config.max_send_frame_size {
            Some(max) if payload.len() > max => self.queue_fragments(opcode, 0, payload, max, fin),
            _ => self.queue_frame_fin(fin, opcode, 0, payload),
        }
        self.unfinished = if fin { None } else { Some(kind) };
        Ok(())
    }

    /// 5.4: a data message, or a part of one, as frames of at most `max` payload bytes:
    /// the first with `opcode` (and RSV1 if the message is compressed, RFC 7692 6), the
    /// others continuation frames, FIN on the last if `fin`. The pieces share the
    /// payload's storage. Out of line: kept out of `send`, whose every message pays for
    /// what is inlined there.
    #[inline(never)]
    fn queue_fragments(
        &mut self,
        opcode: OpCode,
        rsv: u8,
        mut payload: Bytes,
        max: usize,
        fin: bool,
    ) {
        if opcode.is_control() {
            // 5.5: control frames are never fragmented (a size under 125 bytes is no reason).
            return self.queue_frame_rsv(opcode, rsv, payload);
        }
        let max = max.max(1);
        let (mut opcode, mut rsv) = (opcode, rsv);
        loop {
            let rest = payload.split_off(payload.len().min(max));
            let last = rest.is_empty();
            self.queue_frame_fin(fin && last, opcode, rsv, payload);
            if last {
                return;
            }
            (opcode, rsv, payload) = (OpCode::Continuation, 0, rest);
        }
    }

    /// Whether a message sent in fragments ([`send_fragment`](Self::send_fragment)) still
    /// waits for its last one, so that no other data message may be sent.
    pub fn message_unfinished(&self) -> bool {
        self.unfinished.is_some()
    }

    /// Whether [`send`](Self::send) accepts a message now, and if not, the error it
    /// returns: it does in CONNECTED and OPEN, and in CLOSING while our reply to the
    /// peer's Close is still to come (5.5.1: an endpoint "MAY delay sending a Close frame
    /// until its current message is sent"); not before the handshake completed, nor once
    /// our Close is queued (5.5.1: no data after Close).
    pub fn check_send(&self) -> Result<(), SendError> {
        match self.state {
            State::Connected | State::Open => Ok(()),
            State::Closing {
                close_sent: false, ..
            } if self.reply_pending.is_some() => Ok(()),
            State::New | State::Connecting => Err(SendError::NotOpen),
            State::Closing { .. } => Err(SendError::Closing),
            State::Closed => Err(SendError::Closed),
        }
    }

    /// Whether [`send`](Self::send) accepts a message now: see
    /// [`check_send`](Self::check_send).
    pub fn can_send(&self) -> bool {
        self.check_send().is_ok()
    }

    /// Starts the closing handshake with `code` and `reason` (7.1.2).
    ///
    /// If a protocol violation of the peer was found and its [`Event::Close`] not taken
    /// yet, that failure takes effect instead, with its own code.
    ///
    /// Refuses codes that may not be sent (1005, 1006, 1015, outside 1000-1003, 1007-1014,
    /// 3000-4999) and reasons over 123 bytes. In CONNECTED or OPEN it queues our Close frame
    /// (→ CLOSING{sent}) and starts the close timeout. Before the handshake completed it
    /// abandons the connection. Once closing or closed it does nothing: closing is
    /// idempotent, and a peer's Close already received is answered by its echo.
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), CloseError> {
        let frame = CloseFrame::new(code, reason)?;
        if self.failing.is_some() {
            // A violation of the peer was already found: closing means it takes effect
            // now, with its own code.
            self.complete_failure();
            return Ok(());
        }
        match self.state {
            State::New | State::Connecting => {
                self.initiator = Some(Initiator::Local);
                self.emit_close(None);
                self.set_state(State::Closed);
            }
            State::Connected | State::Open => {
                self.queue_close_frame(frame);
                self.timers
                    .set(Deadline::Close, Some(now + self.config.close_timeout));
                self.timers.set(Deadline::Ping, None);
                self.timers.set(Deadline::Pong, None);
                self.set_state(State::Closing {
                    close_sent: true,
                    close_received: false,
                });
            }
            State::Closing { .. } | State::Closed => {}
        }
        Ok(())
    }

    /// Fails the connection (7.1.7) on the application's behalf, e.g. with 1003 or 1008:
    /// sends a Close frame with `code` if one can still be sent, stops reading and closes
    /// the transport without waiting for the peer's reply.
    pub fn fail(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), CloseError> {
        let frame = CloseFrame::new(code, reason)?;
        self.fail_with(
            Error::Application {
                code,
                reason: frame.reason,
            },
            now,
        );
        Ok(())
    }

    /// The transport failed (a read or write error): the session is over with 1006.
    pub fn transport_error(&mut self, description: impl Into<String>, now: Instant) {
        self.fail_with(Error::Transport(description.into()), now);
    }

    // ----- inputs -----

    /// Bytes read from the transport.
    pub fn receive_data(&mut self, data: &[u8], now: Instant) {
        if self.discard_input || data.is_empty() {
            return;
        }
        self.inbuf.extend_from_slice(data);
        self.input_arrived(now);
    }

    /// New bytes are at the end of `inbuf`.
    fn input_arrived(&mut self, now: Instant) {
        if self.state == State::New {
            if self.role == Role::Client {
                // Nothing is expected before the request went out.
                self.inbuf.clear();
                return;
            }
            self.set_state(State::Connecting);
        }
        self.process_input(now);
    }

    /// Lends the receive buffer, so that the I/O layer reads from the transport straight
    /// into it instead of into a buffer of its own that [`receive_data`](Self::receive_data)
    /// would copy from. Append the bytes read after its contents (a `read_buf` does) and
    /// give it back with [`receive_buffer`](Self::receive_buffer); in between, call no
    /// other input method.
    ///
    /// The buffer has room for at least `spare` more bytes, and for the rest of a frame
    /// whose payload is arriving (up to 4 MiB), so that a large payload is read in place.
    /// It holds the bytes received but not processed yet (the start of a frame): keep them.
    /// An empty buffer is always a new one: the storage of the last one may be large (after
    /// a large message) or shared with payloads still in use, and a connection that goes
    /// quiet should keep none of it.
    pub fn lend_receive_buffer(&mut self, spare: usize) -> BytesMut {
        let mut buf = std::mem::take(&mut self.inbuf);
        if buf.is_empty() {
            buf = BytesMut::new();
        }
        buf.reserve(spare);
        self.lent_len = buf.len();
        buf
    }

    /// The room a new, empty receive buffer should have to take `first`, the first bytes
    /// read into it, together with the rest of the frame they begin (up to 4 MiB), so that
    /// the frame arrives in place instead of growing the buffer, which copies it. For an
    /// I/O layer that reads into a buffer of its own before lending is worth it; without a
    /// whole frame header in `first` (or with bytes already buffered), `first.len()`.
    pub fn receive_size_hint(&self, first: &[u8]) -> usize {
        let framing = matches!(
            self.state,
            State::Connected | State::Open | State::Closing { .. }
        );
        if !framing || self.discard_input || !self.inbuf.is_empty() {
            return first.len();
        }
        let rest_of_frame = match self.read {
            Read::Header => match frame::frame_lengths(first) {
                Some((header_len, len)) => header_len.saturating_add(frame_reserve(len)),
                None => 0,
            },
            Read::Payload { header, seen } => frame_reserve(header.len).saturating_sub(seen),
        };
        rest_of_frame.max(first.len())
    }

    /// Takes back the buffer lent by [`lend_receive_buffer`](Self::lend_receive_buffer),
    /// with the bytes read from the transport appended: the same as
    /// [`receive_data`](Self::receive_data) with those bytes, without copying them.
    pub fn receive_buffer(&mut self, buf: BytesMut, now: Instant) {
        let fresh = buf.len().saturating_sub(self.lent_len);
        self.lent_len = 0;
        if self.discard_input {
            return;
        }
        self.inbuf = buf;
        if fresh > 0 {
            self.input_arrived(now);
        }
    }

    /// The peer closed its side of the transport (read returned 0).
    pub fn receive_eof(&mut self, now: Instant) {
        self.settle();
        if self.eof_received || self.state == State::Closed {
            return;
        }
        self.eof_received = true;
        self.peer_closed_first.get_or_insert(true);
        match self.state {
            State::New | State::Connecting => match self.handshake {
                HandshakePhase::ErrorBody { status, .. } => self.fail_with_status(status, now),
                _ => self.fail_with(Error::ConnectionLost, now),
            },
            // The client waits for exactly this (7.1.1).
            State::Closing {
                close_sent: true,
                close_received: true,
            } => self.set_state(State::Closed),
            // Our reply is pending until the application has taken the Close event.
            State::Closing {
                close_sent: false,
                close_received: true,
            } => {}
            _ => self.fail_with(Error::ConnectionLost, now),
        }
    }

    /// Handles every deadline that has passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.settle();
        // Each deadline is cleared once it passed, whatever the state then.
        if self.timers.take_due(Deadline::Handshake, now)
            && matches!(self.state, State::New | State::Connecting)
        {
            match self.handshake {
                HandshakePhase::ErrorBody { status, .. } => self.fail_with_status(status, now),
                _ => self.fail_with(Error::HandshakeTimeout, now),
            }
        }
        if self.timers.take_due(Deadline::Close, now) {
            match self.state {
                // The peer never answered our Close: 1006.
                State::Closing {
                    close_received: false,
                    ..
                } => self.fail_with(Error::CloseTimeout, now),
                // Client: the server did not close the TCP connection in time (7.1.1);
                // or the application never took the Close event.
                State::Closing { .. } => self.set_state(State::Closed),
                _ => {}
            }
        }
        if self.timers.take_due(Deadline::Failure, now) {
            self.complete_failure();
        }
        if self.timers.take_due(Deadline::Pong, now)
            && matches!(self.state, State::Connected | State::Open)
        {
            self.fail_with(Error::KeepaliveTimeout, now);
        }
        if self.timers.take_due(Deadline::Ping, now) {
            self.send_keepalive_ping(now);
        }
        self.handle_idle_timeout(now);
    }

    // ----- outputs -----

    /// The next thing the application must learn about.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.settle();
        let event = self.events.pop_front()?;
        if matches!(event, Event::Close(_)) {
            if self.reply_pending.is_some() {
                // Seed 000, remotely initiated close: the reply goes out after the
                // application was told, at the next call into the connection.
                self.reply_due = true;
            }
            // A violation found in the input takes effect once everything received before
            // it was taken (and possibly answered).
            self.complete_failure();
        }
        Some(event)
    }

    /// Sends the reply to the peer's Close once its event was taken. 5.5.1: "the endpoint
    /// MUST send a Close frame in response".
    fn settle(&mut self) {
        if !self.reply_due {
            return;
        }
        self.reply_due = false;
        if let Some(reply) = self.reply_pending.take() {
            self.queue_close_frame(reply);
            self.set_state(State::Closing {
                close_sent: true,
                close_received: true,
            });
            self.after_close_handshake();
        }
    }

    /// Whether the peer's Close was received and our reply is still to come: it is sent
    /// once the Close event was taken. Until then the session may still send (5.5.1: an
    /// endpoint "MAY delay sending a Close frame until its current message is sent"), for
    /// instance answers to the messages that arrived before the peer's Close.
    pub fn close_reply_pending(&self) -> bool {
        self.reply_pending.is_some()
    }

    /// The event [`poll_event`](Self::poll_event) would return next, without taking it.
    pub fn peek_event(&self) -> Option<&Event> {
        self.events.front()
    }

    /// Whether a protocol violation of the peer was found and has not taken effect yet:
    /// its [`Event::Close`] is the last event queued, and taking it queues the Close frame
    /// and closes the session. Until then the session can still send (answers to the
    /// messages that arrived before the bad frame), and nothing more is read.
    pub fn failure_pending(&self) -> bool {
        self.failing.is_some()
    }

    /// The next thing to do with the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.settle();
        if let Some(bytes) = self.out_queue.pop_front() {
            self.buffered -= bytes.len();
            return Some(Transmit::Data(bytes));
        }
        if !self.out_buf.is_empty() {
            let bytes = self.out_buf.split().freeze();
            self.buffered -= bytes.len();
            return Some(Transmit::Data(bytes));
        }
        if self.shutdown_pending {
            self.shutdown_pending = false;
            self.peer_closed_first.get_or_insert(false);
            return Some(Transmit::Shutdown);
        }
        None
    }

    /// The output in order, as slices for one vectored write from the connection's own
    /// buffers, for an I/O layer that writes in place and reports with
    /// [`output_written`](Self::output_written) instead of taking the output with
    /// [`poll_transmit`](Self::poll_transmit). Fills `slices` from the start and returns
    /// how many it filled: 0 when nothing is to be sent. Frames whose payloads were copied
    /// next to their headers are one piece; a larger payload is a piece of its own after
    /// its header's. Output beyond `slices.len()` pieces comes in a later call. A shutdown
    /// that is due after the output is still [`poll_transmit`](Self::poll_transmit)'s.
    pub fn output_slices<'a>(&'a mut self, slices: &mut [std::io::IoSlice<'a>]) -> usize {
        self.settle();
        if self.out_queue.is_empty() {
            // The common case of small frames: one piece, or nothing (the loop below
            // gives the same; this spares a 20 B echo about 15 instructions).
            return match slices.first_mut() {
                Some(slice) if !self.out_buf.is_empty() => {
                    *slice = std::io::IoSlice::new(&self.out_buf);
                    1
                }
                _ => 0,
            };
        }
        let mut filled = 0;
        for bytes in &self.out_queue {
            let Some(slice) = slices.get_mut(filled) else {
                return filled;
            };
            *slice = std::io::IoSlice::new(bytes);
            filled += 1;
        }
        if !self.out_buf.is_empty()
            && let Some(slice) = slices.get_mut(filled)
        {
            *slice = std::io::IoSlice::new(&self.out_buf);
            filled += 1;
        }
        filled
    }

    /// `n` bytes of [`output_slices`](Self::output_slices) were written, from the first
    /// slice on. Pieces written whole are released as `poll_transmit` would release them;
    /// the connection's own buffer is kept for the next frames while it is small.
    pub fn output_written(&mut self, mut n: usize) {
        while n > 0
            && let Some(front) = self.out_queue.front_mut()
        {
            let taken = n.min(front.len());
            self.buffered -= taken;
            n -= taken;
            if taken < front.len() {
                front.advance(taken);
                return;
            }
            self.out_queue.pop_front();
        }
        if !self.out_queue.is_empty() {
            return;
        }
        let n = n.min(self.out_buf.len());
        self.buffered -= n;
        if n < self.out_buf.len() {
            self.out_buf.advance(n);
        } else if self.out_buf.capacity() <= KEPT_OUTPUT_BUFFER {
            // Emptied in place: the next frame is written from the buffer's start, without
            // the reserve that would first have to move it back there.
            self.out_buf.clear();
        } else {
            self.out_buf = BytesMut::new();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// A count that changes whenever a deadline is set, moved or cleared, so that an I/O
    /// layer that sleeps until [`poll_timeout`](Self::poll_timeout) needs to ask it again
    /// only once this changed, rather than after every call into the session.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockeye_proto::{Config, Connection, Role};
    ///
    /// let now = Instant::now();
    /// let config = Config {
    ///     idle_timeout: Some(Duration::from_secs(30)),
    ///     ..Config::default()
    /// };
    /// let mut conn = Connection::after_handshake(Role::Server, config, now);
    /// let changes = conn.deadline_changes();
    /// let deadline = conn.poll_timeout();
    /// // A frame restarts the idle timer: the deadline moves.
    /// conn.receive_data(&[0x89, 0x80, 0, 0, 0, 0], now + Duration::from_secs(1));
    /// assert_ne!(conn.deadline_changes(), changes);
    /// assert!(conn.poll_timeout() > deadline);
    /// ```
    pub fn deadline_changes(&self) -> u64 {
        self.timers.changes()
    }

    /// The opening handshake must end within `handshake_timeout` of `now` (4.1, 4.2).
    fn start_handshake_timer(&mut self, now: Instant) {
        self.timers.set(
            Deadline::Handshake,
            Some(now + self.config.handshake_timeout),
        );
    }

    // ----- input processing -----

    fn process_input(&mut self, now: Instant) {
        loop {
            if self.discard_input {
                return;
            }
            match self.state {
                State::Connecting => match self.handshake {
                    HandshakePhase::Head | HandshakePhase::ErrorBody { .. } => {
                        if !self.process_handshake(now) {
                            return;
                        }
                    }
                    HandshakePhase::Decision | HandshakePhase::Done => return,
                },
                State::Connected | State::Open | State::Closing { .. } => {
                    self.process_frames(now);
                    return;
                }
                State::New | State::Closed => return,
            }
        }
    }

    /// Returns whether the state moved on and input should be processed again.
    fn process_handshake(&mut self, now: Instant) -> bool {
        let limits = self.config.handshake_limits;
        match (self.role, &self.handshake) {
            (Role::Server, HandshakePhase::Head) => {
                match handshake::parse_request(&self.inbuf, &limits) {
                    Ok(None) => false,
                    Ok(Some((request, consumed))) => {
                        self.inbuf.advance(consumed);
                        self.request = Some(Box::new(request));
                        self.handshake = HandshakePhase::Decision;
                        self.events.push_back(Event::Request);
                        false
                    }
                    Err(error) => {
                        let mut out = Vec::new();
                        handshake::encode_reject(&error.rejection(), &mut out);
                        self.push_bytes(Bytes::from(out));
                        self.fail_with(Error::Handshake(error), now);
                        false
                    }
                }
            }
            (Role::Client, HandshakePhase::Head) => {
                match handshake::parse_response(&self.inbuf, &limits) {
                    Ok(None) => false,
                    Ok(Some((response, consumed))) => {
                        self.inbuf.advance(consumed);
                        let status = response.status;
                        let expected = response
                            .headers
                            .get(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<usize>().ok());
                        match self.take_response(response, now) {
                            Ok(()) => true,
                            // A refusal: its body is read before the session ends.
                            Err(HandshakeError::UnexpectedStatus { .. }) => {
                                self.handshake = HandshakePhase::ErrorBody { status, expected };
                                true
                            }
                            Err(_) => false,
                        }
                    }
                    Err(error) => {
                        self.fail_with(Error::Handshake(error), now);
                        false
                    }
                }
            }
            (Role::Client, HandshakePhase::ErrorBody { status, expected }) => {
                let limit = limits.max_body_bytes;
                let complete = match expected {
                    Some(n) => self.inbuf.len() >= (*n).min(limit),
                    None => self.inbuf.len() >= limit,
                };
                if complete {
                    let status = *status;
                    self.fail_with_status(status, now);
                }
                false
            }
            _ => false,
        }
    }

    fn fail_with_status(&mut self, status: u16, now: Instant) {
        let limit = self.config.handshake_limits.max_body_bytes;
        let expected = match self.handshake {
            HandshakePhase::ErrorBody { expected, .. } => expected,
            _ => None,
        };
        let take = self
            .inbuf
            .len()
            .min(limit)
            .min(expected.unwrap_or(usize::MAX));
        let body = self.inbuf.split_to(take).freeze();
        self.fail_with(
            Error::Handshake(HandshakeError::UnexpectedStatus { status, body }),
            now,
        );
    }

    fn enter_connected(&mut self, now: Instant) {
        self.timers.set(Deadline::Handshake, None);
        self.restart_idle_timer(now);
        if let Some(interval) = self.config.ping_interval {
            self.timers.set(Deadline::Ping, Some(now + interval));
        }
        self.set_state(State::Connected);
        self.events.push_back(Event::Connected);
    }

    fn process_frames(&mut self, now: Instant) {
        while !self.discard_input {
            match self.read {
                Read::Header if self.inbuf.is_empty() => return,
                Read::Header => {
                    let parsed = match FrameHeader::parse(&self.inbuf) {
                        Ok(Some((header, consumed))) => header
                            .validate(self.role, self.allowed_rsv, self.config.max_frame_size)
                            .and_then(|()| self.start_frame(&header))
                            .map(|()| Some((header, consumed))),
                        Ok(None) => Ok(None),
                        Err(error) => Err(error),
                    };
                    match parsed {
                        Ok(Some((header, consumed))) => {
                            self.inbuf.advance(consumed);
                            self.read = Read::Payload { header, seen: 0 };
                        }
                        Ok(None) => return,
                        Err(error) => return self.fail_in_order(error.into(), now),
                    }
                }
                Read::Payload { header, seen } => {
                    // Within usize: the header passed the frame and message size limits,
                    // and the frame is read into memory whole either way.
                    let len = usize::try_from(header.len).unwrap_or(usize::MAX);
                    if self.inflates(&header) {
                        // RFC 7692: a compressed frame is inflated as it arrives, so the
                        // message limit bounds the output, not the frame's whole input.
                        let take = (len - seen).min(self.inbuf.len());
                        if take == 0 && seen < len {
                            return;
                        }
                        let mut chunk = self.inbuf.split_to(take);
                        if let Some(key) = header.mask {
                            apply_mask(&mut chunk, key, seen);
                        }
                        let seen = seen + take;
                        if let Err(error) = self.inflate_chunk(&header, &chunk, seen == len) {
                            return self.fail_in_order(error.into(), now);
                        }
                        if seen < len {
                            self.read = Read::Payload { header, seen };
                            return;
                        }
                        self.read = Read::Header;
                        if let Err(error) = self.finish_frame(&header, now) {
                            return self.fail_in_order(error.into(), now);
                        }
                        continue;
                    }
                    let arrived = self.inbuf.len().min(len);
                    if arrived > seen
                        && let Err(error) = self.unmask_arrived(&header, seen, arrived, len)
                    {
                        return self.fail_in_order(error.into(), now);
                    }
                    if arrived < len {
                        self.read = Read::Payload {
                            header,
                            seen: arrived,
                        };
                        // Room for the rest of the frame, so that it arrives in place.
                        self.inbuf.reserve((len - arrived).min(MAX_FRAME_RESERVE));
                        return;
                    }
                    // A payload that is all the buffer holds takes the buffer whole:
                    // splitting would make its storage shared, an allocation per frame.
                    let payload = if len == self.inbuf.len() {
                        std::mem::take(&mut self.inbuf)
                    } else {
                        self.inbuf.split_to(len)
                    };
                    self.absorb_payload(&header, payload);
                    self.read = Read::Header;
                    if let Err(error) = self.finish_frame(&header, now) {
                        return self.fail_in_order(error.into(), now);
                    }
                }
            }
        }
    }

    /// Unmasks the payload bytes `seen..arrived` of the frame at the start of `inbuf`, and
    /// checks them if they are text.
    fn unmask_arrived(
        &mut self,
        header: &FrameHeader,
        seen: usize,
        arrived: usize,
        len: usize,
    ) -> Result<(), ProtocolError> {
        let fresh = &mut self.inbuf[seen..arrived];
        if let Some(key) = header.mask {
            apply_mask(fresh, key, seen);
        }
        if header.opcode.is_control() {
            return Ok(());
        }
        let Some(partial) = self.message.as_mut() else {
            return Ok(());
        };
        // 8.1: text is checked as it arrives, so an invalid sequence fails the connection
        // at once, even in the middle of a fragment. A message that arrives whole at once
        // is checked once, when it is delivered.
        let whole_message = seen == 0 && arrived == len && header.fin && partial.buf.is_empty();
        if partial.text && !whole_message {
            partial
                .utf8
                .feed(fresh)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    /// Checks a frame header against the message in progress (5.4) and the message limit.
    fn start_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let compressed = self.starts_compressed(header)?;
        let so_far = match (header.opcode, &self.message) {
            (op, _) if op.is_control() => return Ok(()),
            // 5.4: a continuation needs a message in progress.
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            // The inflated size is checked as it is produced.
            (OpCode::Continuation, Some(partial)) if partial.compressed => return Ok(()),
            (OpCode::Continuation, Some(partial)) => partial.buf.len() as u64,
            // 5.4: a new message may not start inside a fragmented one.
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (_, None) => 0,
        };
        let size = so_far.saturating_add(header.len);
        if let Some(max) = self.config.max_message_size
            && size > max
            && !compressed
        {
            return Err(ProtocolError::MessageTooLarge { size, max });
        }
        if header.opcode != OpCode::Continuation {
            self.message = Some(Partial {
                text: header.opcode == OpCode::Text,
                buf: BytesMut::new(),
                utf8: Utf8Validator::new(),
                compressed,
                inflated: Vec::new(),
            });
        }
        Ok(())
    }

    /// Whether the payload of `header` belongs to a compressed message: it is inflated
    /// piece by piece as it arrives instead of being completed in `inbuf`.
    fn inflates(&self, header: &FrameHeader) -> bool {
        !header.opcode.is_control() && self.message.as_ref().is_some_and(|m| m.compressed)
    }

    /// Inflates an unmasked piece of a compressed message's frame (RFC 7692 section 6.2).
    fn inflate_chunk(
        &mut self,
        header: &FrameHeader,
        chunk: &[u8],
        frame_done: bool,
    ) -> Result<(), ProtocolError> {
        let Some(partial) = self.message.as_mut() else {
            return Ok(());
        };
        let max = self.config.max_message_size;
        extensions::inflate(
            &mut self.deflate,
            partial,
            chunk,
            max,
            frame_done && header.fin,
        )
    }

    /// Adds a whole frame's unmasked payload to the control frame or message it belongs to.
    fn absorb_payload(&mut self, header: &FrameHeader, payload: BytesMut) {
        if header.opcode.is_control() {
            self.control.extend_from_slice(&payload);
            return;
        }
        let Some(partial) = self.message.as_mut() else {
            return;
        };
        if partial.buf.is_empty() {
            partial.buf = payload;
        } else {
            partial.buf.extend_from_slice(&payload);
        }
    }

    fn finish_frame(&mut self, header: &FrameHeader, now: Instant) -> Result<(), ProtocolError> {
        self.restart_idle_timer(now);
        match header.opcode {
            OpCode::Ping => {
                let payload = self.control.split().freeze();
                self.events
                    .push_back(Event::Message(Message::Ping(payload.clone())));
                // 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame
                // in response", with the same payload (5.5.3), unless it already sent Close.
                if !self.state.close_sent() {
                    self.queue_automatic(OpCode::Pong, payload, now);
                }
            }
            OpCode::Pong => {
                let payload = self.control.split().freeze();
                if self.awaiting_pong.is_some_and(|p| p[..] == payload[..]) {
                    self.awaiting_pong = None;
                    self.timers.set(Deadline::Pong, None);
                    self.latency = self.ping_sent.take().map(|sent| now - sent);
                    self.pongs += 1;
                }
                self.events
                    .push_back(Event::Message(Message::Pong(payload)));
            }
            OpCode::Close => {
                let payload = self.control.split().freeze();
                let frame = CloseFrame::parse(&payload)?;
                self.receive_close(frame, now);
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if header.fin
                    && let Some(partial) = self.message.take()
                {
                    let payload = match partial.compressed {
                        true => Bytes::from(partial.inflated),
                        false => partial.buf.freeze(),
                    };
                    let message = if partial.text {
                        let text = String::from_utf8(Vec::from(payload))
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                        Message::Text(text)
                    } else {
                        Message::Binary(payload)
                    };
                    self.events.push_back(Event::Message(message));
                }
            }
        }
        Ok(())
    }

    fn receive_close(&mut self, frame: CloseFrame, now: Instant) {
        debug_assert!(
            self.received_close.is_none(),
            "invariant 2: a second Close frame processed"
        );
        trace!(role = ?self.role, ?frame, "close frame received");
        // 5.5.1: after a Close frame, nothing more is read; bytes after it are discarded.
        self.discard_input = true;
        self.inbuf = BytesMut::new();
        self.message = None;
        self.received_close = Some(frame.clone());
        self.timers.set(Deadline::Ping, None);
        self.timers.set(Deadline::Pong, None);
        match self.state {
            State::Connected | State::Open => {
                self.initiator = Some(Initiator::Remote);
                let reply = frame.reply();
                self.reply_pending = Some(reply);
                self.timers
                    .set(Deadline::Close, Some(now + self.config.close_timeout));
                self.set_state(State::Closing {
                    close_sent: false,
                    close_received: true,
                });
                self.emit_close(None);
            }
            State::Closing {
                close_sent: true,
                close_received: false,
            } => {
                self.timers
                    .set(Deadline::Close, Some(now + self.config.close_timeout));
                self.set_state(State::Closing {
                    close_sent: true,
                    close_received: true,
                });
                self.emit_close(None);
                self.after_close_handshake();
            }
            _ => {}
        }
    }

    /// Both Close frames are exchanged (7.1.1): the server closes the transport at once;
    /// the client waits for the server to do so, until the close timeout.
    fn after_close_handshake(&mut self) {
        if self.role == Role::Server || self.eof_received {
            self.set_state(State::Closed);
        }
    }

    // ----- failing -----

    /// Fails the connection (7.1.7) at once: a Close frame with the error's code if one can
    /// still be sent, no more reading, the outcome reported once, the transport closed. A
    /// violation of the peer that was waiting to take effect wins over `error`.
    fn fail_with(&mut self, error: Error, _now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.failing.is_some() {
            debug!(role = ?self.role, %error, "pending failure takes effect first");
            return self.complete_failure();
        }
        debug!(role = ?self.role, state = %self.state, %error, "failing the connection");
        if let Some(frame) = self.failure_frame(&error) {
            self.queue_close_frame(frame);
        }
        self.discard_input = true;
        self.emit_close(Some(error));
        self.set_state(State::Closed);
    }

    /// Fails the connection (7.1.7) for a violation found in the peer's input, in stream
    /// order. Frames are processed in the order they arrived, so the failure takes its
    /// place after the events already queued: nothing more of the input is processed from
    /// now on and the outcome is reported (after those events), but the Close frame is
    /// queued and the session CLOSED only when the application has taken the Close event
    /// (or closes, fails, loses the transport, or the close timeout passes). Until then
    /// it can still answer the messages that arrived before the bad frame.
    fn fail_in_order(&mut self, error: Error, now: Instant) {
        if self.state == State::Closed || self.failing.is_some() {
            return;
        }
        debug!(role = ?self.role, state = %self.state, %error, "failing the connection after the events before it");
        self.discard_input = true;
        self.inbuf = BytesMut::new();
        self.message = None;
        self.timers.set(Deadline::Ping, None);
        self.timers.set(Deadline::Pong, None);
        let frame = self.failure_frame(&error);
        if frame.is_some() && self.initiator.is_none() {
            self.initiator = Some(Initiator::Local);
        }
        self.failing = Some(Failing { frame });
        self.timers
            .set(Deadline::Failure, Some(now + self.config.close_timeout));
        self.emit_close(Some(error));
        self.check_invariants();
    }

    /// The pending failure, if any, takes effect: its Close frame is queued and the
    /// session is CLOSED.
    fn complete_failure(&mut self) {
        let Some(failing) = self.failing.take() else {
            return;
        };
        if let Some(frame) = failing.frame {
            self.queue_close_frame(frame);
        }
        self.set_state(State::Closed);
    }

    /// The Close frame that fails the connection with `error`, if one may still be sent.
    fn failure_frame(&self, error: &Error) -> Option<CloseFrame> {
        let can_send_close = matches!(self.state, State::Connected | State::Open)
            || matches!(
                self.state,
                State::Closing {
                    close_sent: false,
                    ..
                }
            );
        if !can_send_close || self.reply_pending.is_some() {
            return None;
        }
        let code = error.close_code()?;
        let mut reason = match error {
            Error::Application { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        truncate_at_char_boundary(&mut reason, MAX_REASON_LEN);
        Some(CloseFrame {
            code: Some(code),
            reason,
        })
    }

    fn emit_close(&mut self, error: Option<Error>) {
        if self.close_info.is_some() {
            return;
        }
        let info = CloseInfo::new(
            self.sent_close
                .clone()
                .or_else(|| self.reply_pending.clone())
                .or_else(|| self.failing.as_ref().and_then(|f| f.frame.clone())),
            self.received_close.clone(),
            self.initiator.unwrap_or(Initiator::Abnormal),
            error,
        );
        debug!(role = ?self.role, %info, "session outcome");
        let info = Box::new(info);
        self.close_info = Some(info.clone());
        self.events.push_back(Event::Close(info));
    }

    // ----- output -----

    fn queue_close_frame(&mut self, frame: CloseFrame) {
        debug_assert!(
            self.sent_close.is_none(),
            "invariant 2: a second Close frame sent"
        );
        if self.initiator.is_none() {
            self.initiator = Some(Initiator::Local);
        }
        self.queue_frame(OpCode::Close, frame.payload());
        self.sent_close = Some(frame);
    }

    fn queue_frame(&mut self, opcode: OpCode, payload: Bytes) {
        self.queue_frame_rsv(opcode, 0, payload);
    }

    fn queue_frame_rsv(&mut self, opcode: OpCode, rsv: u8, payload: Bytes) {
        self.queue_frame_fin(true, opcode, rsv, payload);
    }

    /// Queues one frame: its header, then its payload, masked with a fresh key by a
    /// client (5.3), copied when masked or small, else queued as it is.
    #[inline(always)]
    fn queue_frame_fin(&mut self, fin: bool, opcode: OpCode, rsv: u8, payload: Bytes) {
        debug_assert!(
            self.sent_close.is_none(),
            "invariant 3: a frame queued after our Close"
        );
        let mask = match self.role {
            Role::Client => {
                // 5.3: a fresh, unpredictable key for every frame.
                let mut key = [0u8; 4];
                if let Some(rng) = self.rng.as_deref_mut() {
                    rng.fill_bytes(&mut key);
                }
                Some(key)
            }
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        self.buffered += header.encoded_len() + payload.len();
        let copied = mask.is_some() || payload.len() < ZERO_COPY_THRESHOLD;
        let need = header.encoded_len() + if copied { payload.len() } else { 0 };
        if self.out_buf.capacity() - self.out_buf.len() < need {
            // One allocation for the frame, not one per piece written into it.
            self.out_buf.reserve(need);
        }
        header.encode(&mut self.out_buf);
        match mask {
            Some(key) => {
                let start = self.out_buf.len();
                self.out_buf.extend_from_slice(&payload);
                apply_mask(&mut self.out_buf[start..], key, 0);
            }
            None if payload.len() >= ZERO_COPY_THRESHOLD => {
                let head = self.out_buf.split().freeze();
                self.out_queue.push_back(head);
                self.out_queue.push_back(payload);
            }
            None => self.out_buf.extend_from_slice(&payload),
        }
    }

    /// Queues raw bytes (handshake messages).
    fn push_bytes(&mut self, bytes: Bytes) {
        self.buffered += bytes.len();
        self.out_buf.extend_from_slice(&bytes);
    }

    // ----- the idle timeout (`Config::idle_timeout`) -----

    /// A frame arrived (or the session just opened): the idle timeout starts over.
    fn restart_idle_timer(&mut self, now: Instant) {
        if let Some(idle) = self.config.idle_timeout {
            self.timers.set(Deadline::Idle, Some(now + idle));
        }
    }

    /// No frame for `idle_timeout`: close with 1001. Only an OPEN (or CONNECTED) session
    /// with no failure pending is closed; in any other state its own deadlines rule.
    fn handle_idle_timeout(&mut self, now: Instant) {
        if !self.timers.take_due(Deadline::Idle, now) {
            return;
        }
        if matches!(self.state, State::Connected | State::Open) && self.failing.is_none() {
            debug!(role = ?self.role, "idle timeout: closing with 1001");
            // 1001 and a short reason are always valid.
            let _ = self.close(CloseCode::GOING_AWAY, IDLE_TIMEOUT_REASON, now);
        }
    }

    // ----- the bound on output (`Config::max_write_buffer`) -----

    /// Bytes of output not written yet: queued here, or taken by the I/O layer and
    /// reported unwritten.
    fn output_held(&self) -> usize {
        self.buffered + self.unwritten
    }

    /// Whether a frame with `payload_len` bytes of payload may be queued without taking
    /// the output past `max_write_buffer`; `size` is its length on the wire.
    fn output_room(&self, payload_len: usize) -> Result<(), SendError> {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: (self.role == Role::Client).then_some([0; 4]),
            len: payload_len as u64,
        };
        let size = header.encoded_len().saturating_add(payload_len);
        let queued = self.output_held();
        let max = self.config.max_write_buffer;
        if queued.saturating_add(size) > max {
            return Err(SendError::WriteBufferFull { size, queued, max });
        }
        Ok(())
    }

    /// The application's messages: refused, with the connection left open, when they do
    /// not fit. Inlined into `send`, whose every message pays for a call (11 instructions
    /// per echo once `send_fragment` made it a function of two callers).
    #[inline(always)]
    fn check_output_room(&self, payload_len: usize) -> Result<(), SendError> {
        self.output_room(payload_len).inspect_err(|error| {
            debug!(role = ?self.role, %error, "message refused: output buffer full");
        })
    }

    /// Queues a frame the protocol sends on its own (a Pong, a keepalive Ping). One that
    /// does not fit fails the connection with 1008 instead of growing the output: the
    /// peer makes us answer faster than it reads. The failure takes its place after the
    /// events already queued, like a violation found in the input.
    fn queue_automatic(&mut self, opcode: OpCode, payload: Bytes, now: Instant) {
        match self.output_room(payload.len()) {
            Ok(()) => self.queue_frame(opcode, payload),
            Err(_) => {
                let error = Error::WriteBufferFull {
                    queued: self.output_held(),
                    max: self.config.max_write_buffer,
                };
                self.fail_in_order(error, now);
            }
        }
    }

    /// Tells the connection how many bytes the I/O layer took with
    /// [`poll_transmit`](Self::poll_transmit) and has not written yet (its write
    /// buffer), so that [`Config::max_write_buffer`] bounds them too. Call it whenever
    /// that number changes; an I/O layer that writes each transmit before taking the
    /// next need not call it.
    pub fn set_unwritten(&mut self, bytes: usize) {
        self.unwritten = bytes;
    }

    fn send_keepalive_ping(&mut self, now: Instant) {
        if !matches!(self.state, State::Connected | State::Open) {
            return;
        }
        if let Some(interval) = self.config.ping_interval {
            self.timers.set(Deadline::Ping, Some(now + interval));
        }
        if self.awaiting_pong.is_none() {
            self.ping_counter += 1;
            let payload = self.ping_counter.to_be_bytes();
            self.awaiting_pong = Some(payload);
            self.ping_sent = Some(now);
            self.timers
                .set(Deadline::Pong, Some(now + self.config.pong_timeout));
            self.queue_automatic(OpCode::Ping, Bytes::copy_from_slice(&payload), now);
        }
    }

    /// Checks now that the peer answers (RFC 6455 5.5.2): sends a Ping whose Pong is
    /// awaited as a keepalive Ping's is, within `pong_timeout` or the session is closed
    /// with 1011, and whose round trip becomes [`latency`](Self::latency). If one of our
    /// Pings is already awaiting its Pong, no other is sent: that Pong answers this call
    /// too. The keepalive's next Ping, if any, comes `ping_interval` after this one.
    /// Refused, with the session left as it is, where [`send`](Self::send) refuses a
    /// message and when the Ping would not fit the output buffer.
    pub fn ping(&mut self, now: Instant) -> Result<(), SendError> {
        if !matches!(self.state, State::Connected | State::Open) {
            return self.check_send().and(Err(SendError::Closing));
        }
        if self.awaiting_pong.is_none() {
            self.check_output_room(8)?;
            self.send_keepalive_ping(now);
        }
        Ok(())
    }

    /// The round trip of the last of our Pings that the peer answered (a keepalive Ping,
    /// or one sent by [`ping`](Self::ping)): from when the Ping was queued to when its
    /// Pong was read, so it includes the time the Ping waited to be written.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// How many of our Pings the peer has answered; it grows by one with each Pong that
    /// answers the Ping awaited.
    pub fn pongs_received(&self) -> u64 {
        self.pongs
    }
}

fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod receive_buffer_tests {
    //! The lent receive buffer: the same events as `receive_data` for any chunking, frames
    //! read in place without a copy, and the buffer's memory released after a large message.

    use proptest::prelude::*;

    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A server connection in OPEN.
    pub(super) fn open_server(now: Instant) -> Connection {
        let mut client =
            Connection::client(ClientRequest::new("example.com", "/"), Config::default());
        let mut server = Connection::server(Config::default(), now);
        client.connect(now);
        while let Some(Transmit::Data(bytes)) = client.poll_transmit() {
            server.receive_data(&bytes, now);
        }
        assert_eq!(server.poll_event(), Some(Event::Request));
        server.accept(Accept::default(), now).unwrap();
        assert_eq!(server.poll_event(), Some(Event::Connected));
        server.open();
        while server.poll_transmit().is_some() {}
        server
    }

    /// A masked frame, as a client sends it.
    fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: Some(KEY),
            len: payload.len() as u64,
        };
        let mut out = Vec::new();
        header.encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], KEY, 0);
        out
    }

    /// Reads `piece` through the lent buffer, as the runtime does.
    fn read_lent(conn: &mut Connection, piece: &[u8], spare: usize, now: Instant) {
        let mut buf = conn.lend_receive_buffer(spare);
        buf.extend_from_slice(piece);
        conn.receive_buffer(buf, now);
    }

    fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    #[test]
    fn a_frame_arriving_in_pieces_is_delivered_from_the_buffer_it_was_read_into() {
        let now = Instant::now();
        let mut server = open_server(now);
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let wire = client_frame(true, OpCode::Binary, &payload);
        // The header and a little of the payload: the buffer then has room for the rest.
        read_lent(&mut server, &wire[..100], 64, now);
        let mut buf = server.lend_receive_buffer(64);
        assert!(buf.capacity() - buf.len() >= wire.len() - 100);
        let start = buf.as_ptr() as usize;
        let end = start + buf.capacity();
        for piece in wire[100..].chunks(7_000) {
            buf.extend_from_slice(piece);
            server.receive_buffer(buf, now);
            buf = server.lend_receive_buffer(64);
        }
        let Some(Event::Message(Message::Binary(received))) = server.poll_event() else {
            panic!("a binary message");
        };
        assert_eq!(received, payload);
        let at = received.as_ptr() as usize;
        assert!(
            (start..end).contains(&at),
            "the payload was not copied out of the buffer it was read into"
        );
    }

    #[test]
    fn the_size_hint_covers_the_frame_the_first_bytes_begin() {
        let now = Instant::now();
        let mut server = open_server(now);
        let big = client_frame(true, OpCode::Binary, &vec![1u8; 100_000]);
        // 2 bytes, 8 of length, 4 of key: 14 of header.
        assert_eq!(server.receive_size_hint(&big[..20]), 14 + 100_000);
        let small = client_frame(true, OpCode::Text, b"hi");
        assert_eq!(server.receive_size_hint(&small), small.len());
        // Half a header: nothing to tell.
        assert_eq!(server.receive_size_hint(&big[..5]), 5);
        // A header that arrived alone: the next bytes are its payload.
        read_lent(&mut server, &big[..14], 0, now);
        assert_eq!(server.receive_size_hint(&big[14..100]), 100_000);
        // Before the handshake, the bytes are HTTP.
        let fresh = Connection::server(Config::default(), now);
        assert_eq!(fresh.receive_size_hint(&big[..20]), 20);
    }

    #[test]
    fn a_frame_that_fills_the_buffer_takes_it_whole() {
        let now = Instant::now();
        let mut server = open_server(now);
        let wire = client_frame(true, OpCode::Binary, &[5u8; 100]);
        let mut buf = server.lend_receive_buffer(4096);
        let start = buf.as_ptr() as usize;
        buf.extend_from_slice(&wire);
        server.receive_buffer(buf, now);
        let Some(Event::Message(Message::Binary(received))) = server.poll_event() else {
            panic!("a binary message");
        };
        assert_eq!(received, vec![5u8; 100]);
        assert_eq!(received.as_ptr() as usize, start + wire.len() - 100);
        assert_eq!(
            server.lend_receive_buffer(0).capacity(),
            0,
            "the buffer went with it"
        );
    }

    #[test]
    fn an_empty_buffer_is_released_after_a_large_message() {
        let now = Instant::now();
        let mut server = open_server(now);
        let payload = vec![7u8; 1 << 20];
        read_lent(
            &mut server,
            &client_frame(true, OpCode::Binary, &payload),
            4096,
            now,
        );
        let Some(Event::Message(Message::Binary(received))) = server.poll_event() else {
            panic!("a binary message");
        };
        assert_eq!(received.len(), 1 << 20);
        let buf = server.lend_receive_buffer(4096);
        assert!(buf.is_empty());
        assert!(
            (4096..=8192).contains(&buf.capacity()),
            "capacity {} after the message",
            buf.capacity()
        );
    }

    #[test]
    fn bytes_of_an_unfinished_frame_stay_in_the_lent_buffer() {
        let now = Instant::now();
        let mut server = open_server(now);
        let wire = client_frame(true, OpCode::Text, b"hello");
        read_lent(&mut server, &wire[..4], 16, now);
        let buf = server.lend_receive_buffer(16);
        assert_eq!(&buf[..], &wire[..4], "the start of the header is kept");
        server.receive_buffer(buf, now);
        assert!(events(&mut server).is_empty());
        read_lent(&mut server, &wire[4..], 16, now);
        assert_eq!(
            events(&mut server),
            vec![Event::Message(Message::Text("hello".into()))]
        );
    }

    #[test]
    fn invalid_text_fails_at_the_piece_that_holds_it_before_the_frame_ends() {
        let now = Instant::now();
        let mut server = open_server(now);
        let mut text = b"valid start ".to_vec();
        text.extend_from_slice(b"\xed\xa0\x80 surrogate");
        text.extend_from_slice(&[b'x'; 200]);
        let wire = client_frame(true, OpCode::Text, &text);
        // Header (8 bytes: 16-bit length and key) and the valid start.
        read_lent(&mut server, &wire[..8 + 12], 64, now);
        assert!(events(&mut server).is_empty());
        assert_eq!(server.state(), State::Open);
        // The surrogate, with most of the frame still to come.
        read_lent(&mut server, &wire[20..30], 64, now);
        let closed = events(&mut server);
        assert!(
            matches!(
                closed.as_slice(),
                [Event::Close(info)] if info.error == Some(Error::Protocol(ProtocolError::InvalidUtf8))
            ),
            "{closed:?}"
        );
    }

    /// A client's stream of frames: messages whole and fragmented, text and binary, with
    /// pings between fragments.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let message = (
            any::<bool>(),
            proptest::collection::vec(0usize..3000, 1..4),
            any::<bool>(),
        );
        proptest::collection::vec(message, 1..6).prop_map(|messages| {
            let mut wire = Vec::new();
            for (text, fragments, ping) in messages {
                let last = fragments.len() - 1;
                for (i, len) in fragments.into_iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    let payload: Vec<u8> = (0..len).map(|j| b'a' + (j % 26) as u8).collect();
                    wire.extend(client_frame(i == last, opcode, &payload));
                    if ping && i != last {
                        wire.extend(client_frame(true, OpCode::Ping, b"ping"));
                    }
                }
            }
            wire
        })
    }

    proptest! {
        #[test]
        fn lent_buffer_and_receive_data_give_the_same_events_and_output(
            wire in stream(),
            cuts in proptest::collection::vec(1usize..5000, 1..20),
            spare in 0usize..5000,
        ) {
            let now = Instant::now();
            let mut copied = open_server(now);
            let mut lent = open_server(now);
            let (mut copied_events, mut lent_events) = (Vec::new(), Vec::new());
            let mut rest = &wire[..];
            let mut cuts = cuts.into_iter().cycle();
            while !rest.is_empty() {
                let n = cuts.next().unwrap_or(1).min(rest.len());
                let (piece, tail) = rest.split_at(n);
                copied.receive_data(piece, now);
                read_lent(&mut lent, piece, spare, now);
                copied_events.extend(events(&mut copied));
                lent_events.extend(events(&mut lent));
                rest = tail;
            }
            prop_assert!(!lent_events.is_empty());
            prop_assert_eq!(&copied_events, &lent_events);
            let output = |conn: &mut Connection| {
                let mut out = Vec::new();
                while let Some(Transmit::Data(bytes)) = conn.poll_transmit() {
                    out.extend_from_slice(&bytes);
                }
                out
            };
            prop_assert_eq!(output(&mut copied), output(&mut lent));
        }
    }
}

#[cfg(test)]
mod output_in_place_tests {
    //! Output written in place from the connection's buffers: the same bytes, in the same
    //! order, as `poll_transmit` gives, and a buffer kept only while it is small.

    use super::receive_buffer_tests::open_server;
    use super::*;

    /// Everything `poll_transmit` gives, concatenated.
    fn drain(conn: &mut Connection) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(Transmit::Data(bytes)) = conn.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// The pieces `output_slices` gives, at most `max` of them.
    fn pieces(conn: &mut Connection, max: usize) -> Vec<Vec<u8>> {
        let mut slices = vec![std::io::IoSlice::new(&[]); max];
        let count = conn.output_slices(&mut slices);
        slices[..count].iter().map(|slice| slice.to_vec()).collect()
    }

    /// The whole output as one piece, if it is one.
    fn one_piece(conn: &mut Connection) -> Option<Vec<u8>> {
        let mut pieces = pieces(conn, 4);
        (pieces.len() == 1).then(|| pieces.remove(0))
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: None,
            len: payload.len() as u64,
        }
        .encode(&mut out);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn small_frames_are_one_piece_and_a_partial_write_leaves_the_rest_in_order() {
        let now = Instant::now();
        let mut conn = open_server(now);
        assert!(pieces(&mut conn, 4).is_empty(), "nothing to send");
        conn.send(Message::Binary(Bytes::from_static(b"first")))
            .unwrap();
        conn.send(Message::Binary(Bytes::from_static(b"second")))
            .unwrap();
        let mut expected = frame(b"first");
        expected.extend_from_slice(&frame(b"second"));
        assert_eq!(one_piece(&mut conn), Some(expected.clone()));
        assert_eq!(conn.buffered_amount(), expected.len());

        conn.output_written(3);
        assert_eq!(conn.buffered_amount(), expected.len() - 3);
        assert_eq!(one_piece(&mut conn), Some(expected[3..].to_vec()));
        // What was not written in place comes from poll_transmit, after the written part.
        assert_eq!(drain(&mut conn), &expected[3..]);
        assert_eq!(conn.buffered_amount(), 0);
        assert!(pieces(&mut conn, 4).is_empty());
    }

    #[test]
    fn a_zero_copy_payload_is_a_piece_of_its_own_and_partial_writes_keep_the_order() {
        let now = Instant::now();
        let mut conn = open_server(now);
        let payload = Bytes::from(vec![7u8; ZERO_COPY_THRESHOLD]);
        conn.send(Message::Binary(payload.clone())).unwrap();
        let whole = frame(&payload);
        let header = whole[..whole.len() - payload.len()].to_vec();
        assert_eq!(
            pieces(&mut conn, 4),
            vec![header.clone(), payload.to_vec()],
            "the header, then the payload as it was sent"
        );
        assert_eq!(
            pieces(&mut conn, 1),
            vec![header.clone()],
            "one slice given"
        );

        // A small frame after it goes into the connection's buffer, after the payload.
        conn.send(Message::Binary(Bytes::from_static(b"tail")))
            .unwrap();
        let mut expected = whole.clone();
        expected.extend_from_slice(&frame(b"tail"));
        assert_eq!(pieces(&mut conn, 4).concat(), expected);
        assert_eq!(conn.buffered_amount(), expected.len());

        // Written up to the middle of the payload: the rest starts there.
        let written = header.len() + 10;
        conn.output_written(written);
        assert_eq!(conn.buffered_amount(), expected.len() - written);
        assert_eq!(pieces(&mut conn, 4).concat(), &expected[written..]);
        assert_eq!(
            pieces(&mut conn, 4).len(),
            2,
            "the payload's rest and the tail"
        );

        // Up to the end of the payload exactly, then the rest from poll_transmit.
        conn.output_written(payload.len() - 10);
        assert_eq!(pieces(&mut conn, 4), vec![frame(b"tail")]);
        assert_eq!(drain(&mut conn), frame(b"tail"));
        assert_eq!(conn.buffered_amount(), 0);
        assert!(pieces(&mut conn, 4).is_empty());
    }

    /// One step of a sender and a driver sharing a connection's output.
    #[derive(Debug, Clone)]
    enum Step {
        /// A message with this many bytes of payload.
        Send(usize),
        /// An in-place write of at most `limit` bytes from at most `slices` slices.
        Write { limit: usize, slices: usize },
        /// One piece taken with `poll_transmit`.
        Take,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0usize..3000).prop_map(Step::Send),
            (1usize..6000, 1usize..6).prop_map(|(limit, slices)| Step::Write { limit, slices }),
            Just(Step::Take),
        ]
    }

    proptest::proptest! {
        #[test]
        fn in_place_writes_and_takes_in_any_mix_keep_the_bytes_and_their_order(
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let now = Instant::now();
            let mut conn = open_server(now);
            let mut reference = open_server(now);
            let mut out = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Send(len) => {
                        let payload: Bytes = (0..len).map(|j| (j as u8) ^ (i as u8)).collect();
                        conn.send(Message::Binary(payload.clone())).unwrap();
                        reference.send(Message::Binary(payload)).unwrap();
                    }
                    Step::Write { limit, slices } => {
                        let mut taken = pieces(&mut conn, slices).concat();
                        taken.truncate(limit);
                        conn.output_written(taken.len());
                        out.extend_from_slice(&taken);
                    }
                    Step::Take => {
                        if let Some(Transmit::Data(bytes)) = conn.poll_transmit() {
                            out.extend_from_slice(&bytes);
                        }
                    }
                }
                proptest::prop_assert_eq!(
                    conn.buffered_amount() + out.len(),
                    reference.buffered_amount()
                );
            }
            out.extend(drain(&mut conn));
            proptest::prop_assert_eq!(out, drain(&mut reference));
        }
    }

    #[test]
    fn output_written_in_place_in_any_steps_is_what_poll_transmit_gives() {
        let now = Instant::now();
        let messages: Vec<Bytes> = [3, 2000, 40, 5000, 1, 1024]
            .iter()
            .enumerate()
            .map(|(i, &len)| Bytes::from(vec![i as u8; len]))
            .collect();
        let mut reference = open_server(now);
        for message in &messages {
            reference.send(Message::Binary(message.clone())).unwrap();
        }
        let expected = drain(&mut reference);
        for step in [1, 7, 100, 1500, 4096, usize::MAX] {
            for max in [1, 2, 3, 8] {
                let mut conn = open_server(now);
                for message in &messages {
                    conn.send(Message::Binary(message.clone())).unwrap();
                }
                let mut out = Vec::new();
                loop {
                    let mut taken = pieces(&mut conn, max).concat();
                    if taken.is_empty() {
                        break;
                    }
                    taken.truncate(step);
                    conn.output_written(taken.len());
                    out.extend_from_slice(&taken);
                    assert_eq!(conn.buffered_amount(), expected.len() - out.len());
                }
                assert_eq!(out, expected, "steps of {step}, {max} slices");
            }
        }
    }

    #[test]
    fn a_small_buffer_is_kept_for_the_next_frame_and_a_large_one_released() {
        let now = Instant::now();
        let mut conn = open_server(now);
        conn.send(Message::Binary(Bytes::from_static(b"small")))
            .unwrap();
        let len = one_piece(&mut conn).map(|piece| piece.len()).unwrap();
        let start = conn.out_buf.as_ptr();
        let capacity = conn.out_buf.capacity();
        conn.output_written(len);
        assert!(capacity > len);
        assert_eq!(
            conn.out_buf.capacity(),
            capacity,
            "the storage is kept, all of it"
        );
        conn.send(Message::Binary(Bytes::from_static(b"again")))
            .unwrap();
        assert_eq!(
            conn.out_buf.as_ptr(),
            start,
            "the next frame is written from the storage's start"
        );
        assert_eq!(one_piece(&mut conn), Some(frame(b"again")));

        // A client masks, so its large frames are one piece too; their storage is released.
        let mut client =
            Connection::client(ClientRequest::new("example.com", "/"), Config::default());
        let mut server = Connection::server(Config::default(), now);
        client.connect(now);
        while let Some(Transmit::Data(bytes)) = client.poll_transmit() {
            server.receive_data(&bytes, now);
        }
        assert_eq!(server.poll_event(), Some(Event::Request));
        server.accept(Accept::default(), now).unwrap();
        while let Some(Transmit::Data(bytes)) = server.poll_transmit() {
            client.receive_data(&bytes, now);
        }
        assert_eq!(client.poll_event(), Some(Event::Connected));
        client.open();
        client
            .send(Message::Binary(Bytes::from(vec![1u8; 16 * 1024])))
            .unwrap();
        let len = one_piece(&mut client).map(|piece| piece.len()).unwrap();
        assert_eq!(
            len,
            16 * 1024 + 8,
            "header with the 16-bit length and the key"
        );
        client.output_written(len);
        assert_eq!(client.out_buf.capacity(), 0, "a large buffer is not kept");
    }

    #[test]
    fn the_reply_to_a_close_is_output_once_its_event_was_taken() {
        let now = Instant::now();
        let mut conn = open_server(now);
        let mut close = Vec::new();
        let payload = CloseFrame::new(CloseCode::NORMAL, "bye").unwrap().payload();
        let key = [1, 2, 3, 4];
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Close,
            mask: Some(key),
            len: payload.len() as u64,
        }
        .encode(&mut close);
        let start = close.len();
        close.extend_from_slice(&payload);
        apply_mask(&mut close[start..], key, 0);
        conn.receive_data(&close, now);
        assert!(matches!(conn.poll_event(), Some(Event::Close(_))));
        let reply = one_piece(&mut conn);
        let reply = reply.expect("the reply is output");
        assert_eq!(reply[0], 0x88, "a Close frame");
        assert_eq!(&reply[2..4], &1000u16.to_be_bytes());
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod footprint_tests {
    use super::*;

    /// Every idle connection holds a `Connection`: the handshake's, deflate's and the
    /// outcome's state are boxed so that an open session without deflate carries none of
    /// them inline (1,800 bytes before they were, 856 after, on x86_64).
    #[test]
    fn a_connection_is_under_one_kibibyte() {
        let size = std::mem::size_of::<Connection>();
        assert!(size <= 1024, "Connection is {size} bytes");
    }

    /// Every message is moved through the event queue as an `Event`: the close record is
    /// boxed so that an event is a message's size, moved inline rather than by `memcpy`.
    #[test]
    fn an_event_is_no_larger_than_a_message_and_its_tag() {
        let event = std::mem::size_of::<Event>();
        let message = std::mem::size_of::<Message>();
        assert!(
            event <= message + 8,
            "Event is {event} bytes, Message {message}"
        );
    }
}
