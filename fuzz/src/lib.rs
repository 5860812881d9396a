//! The harness shared by the fuzz targets of `sockeye-proto`.
//!
//! The two session targets ([`run_server_session`], [`run_client_session`]) drive one
//! [`Connection`] with bytes from the fuzzer, the way an I/O layer would, and check
//! DESIGN.md's invariants after every step, not only that nothing panics.
//!
//! # Input format of the session targets
//!
//! ```text
//! byte 0       mode: bit 0 prepend the peer's valid handshake head to the stream (server:
//!              a fixed request; client: the 101 response for the key in its request),
//!              bit 1 keepalive pings on, bit 2 small limits, bit 3 (server) refuse the
//!              request instead of accepting it
//! byte 1       n: the number of step bytes that follow (taken modulo 32)
//! n bytes      step bytes, used in a cycle until the stream is consumed
//! the rest     the byte stream the peer sends
//! ```
//!
//! Each step feeds one chunk of the stream (its length chosen by the low nibble of the
//! step byte, from 1 byte to everything left) and then does one thing chosen by the high
//! nibble: nothing, advance the fake clock and call `handle_timeout`, or issue a local
//! command (`send`, `close`, `fail`, an early `receive_eof`). With no step bytes the whole
//! stream is fed at once. After the last step the transport is closed (`receive_eof`) and
//! the clock is advanced past every deadline the connection asks for.
//!
//! A seed is therefore readable: `00 00` followed by raw wire bytes feeds those bytes in
//! one chunk; `00 01 00` followed by wire bytes feeds them one byte at a time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sockeye_proto::frame::{FrameHeader, OpCode};
use sockeye_proto::handshake::{
    Accept, ClientRequest, HandshakeLimits, Reject, encode_accept, parse_request, parse_response,
};
use sockeye_proto::mask::apply_mask;
use sockeye_proto::{
    CloseCode, CloseFrame, CloseInfo, Config, Connection, Event, Fragment, Message, Role,
    SendError, State, Transmit,
};

// The crate under test checks its own invariants with `debug_assert!`; a fuzzer that
// cannot see them misses bugs, so the targets do not build without debug assertions
// (`cargo fuzz build -a`).
const _: () = assert!(
    cfg!(debug_assertions),
    "build the fuzz targets with debug assertions (cargo fuzz build -a)"
);

/// Chunk lengths selected by the low nibble of a step byte.
const CHUNK_LENGTHS: [usize; 16] = [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    11,
    14,
    16,
    64,
    125,
    128,
    1024,
    usize::MAX,
];

/// The settings a session runs with, from the mode byte.
fn config(mode: u8) -> Config {
    let mut config = Config::default();
    if mode & 0b010 != 0 {
        config.ping_interval = Some(Duration::from_secs(3));
        config.pong_timeout = Duration::from_secs(5);
    }
    if mode & 0b100 != 0 {
        config.max_frame_size = Some(100);
        config.max_message_size = Some(300);
        // The 1100-byte message of step 11 goes out in three frames.
        config.max_send_frame_size = Some(500);
        config.handshake_limits = HandshakeLimits {
            max_head_bytes: 512,
            max_headers: 8,
            max_body_bytes: 64,
        };
    }
    config
}

/// The parsed input of a session target.
struct Script<'a> {
    mode: u8,
    steps: &'a [u8],
    stream: &'a [u8],
}

impl<'a> Script<'a> {
    fn parse(data: &'a [u8]) -> Script<'a> {
        let mode = data.first().copied().unwrap_or(0);
        let n = data.get(1).map_or(0, |&n| usize::from(n % 32));
        let rest = data.get(2..).unwrap_or(&[]);
        let n = n.min(rest.len());
        Script {
            mode,
            steps: &rest[..n],
            stream: &rest[n..],
        }
    }
}

/// Where the observer of our own output is in the byte stream we write.
#[derive(Debug)]
enum OutPhase {
    /// Our handshake head (the client's request or the server's response) comes next.
    Head,
    /// A refusal was written: this many body bytes remain, and nothing may follow them.
    Body(usize),
    /// Frames.
    Frames,
}

/// Parses everything the connection writes and checks it: our own handshake head parses,
/// a refusal carries exactly its Content-Length body, frames parse and are masked by the
/// client only, at most one Close frame is written and nothing after it, nothing is
/// written after the shutdown. Shared with the targets that drive a session of their own.
#[derive(Debug)]
pub struct Wire {
    role: Role,
    phase: OutPhase,
    pending: Vec<u8>,
    shutdown: bool,
    close_sent: Option<CloseFrame>,
    /// A server's: the `Sec-WebSocket-Extensions` of its 101 response.
    extensions: Option<String>,
}

impl Wire {
    /// What a connection of `role` writes, from its first byte.
    pub fn new(role: Role) -> Wire {
        Wire {
            role,
            phase: OutPhase::Head,
            pending: Vec::new(),
            shutdown: false,
            close_sent: None,
            extensions: None,
        }
    }

    /// Takes and checks one of the connection's transmits.
    pub fn observe(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Shutdown => {
                assert!(!self.shutdown, "the write side was shut down twice");
                self.shutdown = true;
            }
            Transmit::Data(bytes) => {
                assert!(
                    !self.shutdown,
                    "{} bytes written after the shutdown",
                    bytes.len()
                );
                assert!(!bytes.is_empty(), "an empty write");
                self.pending.extend_from_slice(&bytes);
                self.parse();
            }
        }
    }

    fn parse(&mut self) {
        loop {
            match self.phase {
                OutPhase::Head => {
                    let limits = HandshakeLimits::default();
                    let head = match self.role {
                        // The client writes its request.
                        Role::Client => parse_request(&self.pending, &limits)
                            .expect("our own request parses")
                            .map(|(_, n)| (n, None)),
                        // The server writes a 101 or a refusal.
                        Role::Server => parse_response(&self.pending, &limits)
                            .expect("our own response parses")
                            .map(|(response, n)| {
                                let extensions: Vec<&str> = response
                                    .headers
                                    .get_all("sec-websocket-extensions")
                                    .iter()
                                    .filter_map(|v| v.to_str().ok())
                                    .collect();
                                if response.status == 101 && !extensions.is_empty() {
                                    self.extensions = Some(extensions.join(", "));
                                }
                                let body = (response.status != 101).then(|| {
                                    response
                                        .headers
                                        .get("content-length")
                                        .and_then(|v| v.to_str().ok())
                                        .and_then(|v| v.parse::<usize>().ok())
                                        .expect("a refusal carries a Content-Length")
                                });
                                (n, body)
                            }),
                    };
                    let Some((n, body)) = head else {
                        return;
                    };
                    self.pending.drain(..n);
                    self.phase = match body {
                        Some(len) => OutPhase::Body(len),
                        None => OutPhase::Frames,
                    };
                }
                OutPhase::Body(left) => {
                    let take = left.min(self.pending.len());
                    self.pending.drain(..take);
                    self.phase = OutPhase::Body(left - take);
                    assert!(
                        self.pending.is_empty(),
                        "bytes written after the body of a refusal"
                    );
                    return;
                }
                OutPhase::Frames => {
                    let Some((header, n)) =
                        FrameHeader::parse(&self.pending).expect("our own frame header parses")
                    else {
                        return;
                    };
                    let peer = match self.role {
                        Role::Client => Role::Server,
                        Role::Server => Role::Client,
                    };
                    // 5.1: clients mask every frame, servers none; 5.2: minimal lengths.
                    header
                        .validate(peer, 0, None)
                        .expect("our frame is valid for the peer");
                    assert_eq!(n, header.encoded_len(), "a non-minimal header");
                    let len = usize::try_from(header.len).expect("a frame we wrote fits memory");
                    if self.pending.len() < n + len {
                        return;
                    }
                    // Invariants 2 and 3: no frame at all after our Close frame.
                    assert!(
                        self.close_sent.is_none(),
                        "a {:?} frame written after our Close frame",
                        header.opcode
                    );
                    if header.opcode == OpCode::Close {
                        let mut payload = self.pending[n..n + len].to_vec();
                        if let Some(key) = header.mask {
                            apply_mask(&mut payload, key, 0);
                        }
                        let frame =
                            CloseFrame::parse(&payload).expect("our Close frame is well formed");
                        self.close_sent = Some(frame);
                    }
                    self.pending.drain(..n + len);
                }
            }
        }
    }

    /// Every write was a whole head, body or frame.
    pub fn check_complete(&self) {
        assert!(
            self.pending.is_empty(),
            "{} bytes of an incomplete unit were written ({:?})",
            self.pending.len(),
            self.phase
        );
        if let OutPhase::Body(left) = self.phase {
            assert_eq!(left, 0, "a refusal body is {left} bytes short");
        }
    }

    /// The Close frame written, if any.
    pub fn close_sent(&self) -> Option<&CloseFrame> {
        self.close_sent.as_ref()
    }

    /// A server's: the extensions its 101 response accepted, as one header value.
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }
}

/// One session under test, with everything observed so far.
struct Harness {
    conn: Connection,
    now: Instant,
    role: Role,
    /// Server: refuse the request instead of accepting it.
    reject: bool,
    max_message_size: Option<u64>,
    state: State,
    requests: usize,
    connected: usize,
    closes: usize,
    wire: Wire,
}

impl Harness {
    fn new(conn: Connection, now: Instant, reject: bool) -> Harness {
        let role = conn.role();
        let max_message_size = conn.config().max_message_size;
        let state = conn.state();
        Harness {
            conn,
            now,
            role,
            reject,
            max_message_size,
            state,
            requests: 0,
            connected: 0,
            closes: 0,
            wire: Wire::new(role),
        }
    }

    /// The checks made after every step.
    fn check_state(&mut self) {
        let state = self.conn.state();
        // Invariant 1: states only move forward; CLOSED is final.
        assert!(
            state.follows(self.state),
            "state moved backwards: {} -> {}",
            self.state,
            state
        );
        self.state = state;
        assert_eq!(self.conn.history().last(), Some(&state), "history lags");
        // Invariant 6: every waiting state has a deadline (a client in NEW waits for
        // nothing: `connect` was called before the first step).
        if matches!(
            state,
            State::New | State::Connecting | State::Closing { .. }
        ) {
            assert!(
                self.conn.poll_timeout().is_some(),
                "{state} without a deadline"
            );
        }
        if state == State::Closed {
            assert!(self.conn.poll_timeout().is_none(), "a deadline in CLOSED");
        }
    }

    /// Takes every event, answering as an application would, then every transmit.
    fn drain(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            // The outcome is the last thing the application hears.
            assert_eq!(self.closes, 0, "{event:?} after the Close event");
            match event {
                Event::Request => {
                    assert_eq!(self.role, Role::Server, "a client got a request");
                    self.requests += 1;
                    assert_eq!(self.requests, 1, "a second request");
                    if self.reject {
                        self.conn
                            .reject(Reject::new(403, "refused by the fuzzer\n"));
                    } else {
                        self.conn
                            .accept(Accept::default(), self.now)
                            .expect("a request announced by Event::Request can be accepted");
                    }
                }
                Event::Connected => {
                    self.connected += 1;
                    assert_eq!(self.connected, 1, "a second Connected");
                    assert!(
                        self.role == Role::Client || self.requests == 1,
                        "Connected before a request"
                    );
                    self.conn.open();
                }
                Event::Message(message) => {
                    assert_eq!(self.connected, 1, "a message before Connected");
                    match &message {
                        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125),
                        Message::Text(_) | Message::Binary(_) => {
                            if let Some(max) = self.max_message_size {
                                assert!(
                                    message.as_bytes().len() as u64 <= max,
                                    "a message over the limit was delivered"
                                );
                            }
                        }
                    }
                }
                Event::Close(info) => {
                    // Invariant 2 and 5: the outcome is told exactly once.
                    self.closes += 1;
                    check_close_info(&info);
                    assert_eq!(self.conn.close_info(), Some(&*info));
                }
            }
            self.check_state();
        }
        while let Some(transmit) = self.conn.poll_transmit() {
            self.wire.observe(transmit);
        }
        assert_eq!(self.conn.buffered_amount(), 0, "bytes left after draining");
        assert_eq!(
            self.conn.close_info().is_some(),
            self.closes == 1,
            "close_info disagrees with the Close events"
        );
        self.check_state();
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.handle_timeout();
    }

    fn handle_timeout(&mut self) {
        self.conn.handle_timeout(self.now);
        self.drain();
        // Every deadline that passed was handled.
        if let Some(deadline) = self.conn.poll_timeout() {
            assert!(deadline > self.now, "a deadline left in the past");
        }
    }

    /// Checks a local `send`: accepted in CONNECTED and OPEN, refused otherwise
    /// (invariant 3: never a silent drop once closing), and a data message refused while
    /// one sent in fragments is unfinished (5.4).
    fn send(&mut self, message: Message) {
        let before = self.conn.state();
        let interleaved = message.is_data() && self.conn.message_unfinished();
        let result = self.conn.send(message);
        match before {
            State::Connected | State::Open if interleaved => {
                assert_eq!(result, Err(SendError::UnfinishedMessage));
            }
            State::Connected | State::Open => result.expect("send in CONNECTED or OPEN"),
            _ => assert!(result.is_err(), "send accepted in {before}"),
        }
        self.drain();
    }

    /// Checks a local `send_fragment` of a text message: accepted where `send` is, and
    /// the message unfinished until its last part.
    fn send_fragment(&mut self, text: &str, fin: bool) {
        let before = self.conn.state();
        let result = self.conn.send_fragment(Fragment::Text(text.into()), fin);
        match before {
            State::Connected | State::Open => {
                result.expect("send_fragment in CONNECTED or OPEN");
                assert_eq!(self.conn.message_unfinished(), !fin);
            }
            _ => assert!(result.is_err(), "send_fragment accepted in {before}"),
        }
        self.drain();
    }

    fn step(&mut self, action: u8) {
        match action {
            0..=3 => {}
            // A text message in parts (5.4), which other sends may come between.
            4 => self.send_fragment("frag", false),
            5 => self.send_fragment("ment", true),
            6 => self.advance(Duration::ZERO),
            7 => self.advance(Duration::from_millis(500)),
            8 => self.advance(Duration::from_secs(3)),
            9 => {
                if let Some(deadline) = self.conn.poll_timeout() {
                    self.now = self.now.max(deadline);
                }
                self.handle_timeout();
            }
            10 => self.send(Message::Text("sockeye".into())),
            // Over the 1024-byte threshold where the server queues the payload apart.
            11 => self.send(Message::Binary(Bytes::from(vec![0x5a; 1100]))),
            12 => self.send(Message::Ping(Bytes::from_static(b"fuzz"))),
            13 => {
                self.conn
                    .close(CloseCode::NORMAL, "bye", self.now)
                    .expect("1000 may be sent");
                self.drain();
            }
            14 => {
                self.conn
                    .fail(CloseCode::POLICY_VIOLATION, "policy", self.now)
                    .expect("1008 may be sent");
                self.drain();
            }
            _ => {
                self.conn.receive_eof(self.now);
                self.drain();
            }
        }
    }

    /// Runs the script, then closes the transport and lets every deadline pass.
    fn run(&mut self, steps: &[u8], stream: &[u8]) {
        self.drain();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() || i < steps.len() {
            // No step bytes: the whole stream in one chunk.
            let step = steps.get(i % steps.len().max(1)).copied().unwrap_or(0x0f);
            i += 1;
            let len = CHUNK_LENGTHS[usize::from(step & 0x0f)];
            let end = pos.saturating_add(len).min(stream.len());
            if end > pos {
                self.conn.receive_data(&stream[pos..end], self.now);
                self.drain();
                pos = end;
            }
            self.step(step >> 4);
        }
        self.finish();
    }

    /// The transport is closed by the peer; time passes until nothing is left to wait for.
    fn finish(&mut self) {
        self.conn.receive_eof(self.now);
        self.drain();
        // Every deadline is bounded and none re-arms once the transport is gone, so a few
        // rounds are enough; more would be a session that never ends (invariant 6).
        for _ in 0..8 {
            let Some(deadline) = self.conn.poll_timeout() else {
                break;
            };
            self.now = self.now.max(deadline);
            self.handle_timeout();
        }
        assert_eq!(self.conn.state(), State::Closed, "not CLOSED at the end");
        assert!(
            self.conn.poll_timeout().is_none(),
            "a deadline after CLOSED"
        );
        assert_eq!(self.closes, 1, "exactly one Close event per session");
        assert!(self.wire.shutdown, "the transport was never shut down");
        self.wire.check_complete();
        let info = self.conn.close_info().expect("CLOSED with an outcome");
        // What the user is told matches what was written and read.
        assert_eq!(
            info.sent, self.wire.close_sent,
            "CloseInfo::sent differs from the Close frame written"
        );
        let history = self.conn.history();
        assert_eq!(
            info.received.is_some(),
            history.iter().any(|state| state.close_received()),
            "CloseInfo::received differs from the states entered"
        );
        // Invariant 1 over every transition, including those made inside one call.
        assert_eq!(history.first(), Some(&State::New));
        for pair in history.windows(2) {
            assert!(
                pair[0] != pair[1] && pair[1].follows(pair[0]),
                "history moves backwards: {history:?}"
            );
        }
    }
}

/// DESIGN.md section 3: the code and reason follow 7.1.5 and 7.1.6, `clean` means both
/// Close frames were exchanged without a failure.
fn check_close_info(info: &CloseInfo) {
    match &info.received {
        Some(frame) => {
            assert_eq!(info.code, frame.code.unwrap_or(CloseCode::NO_STATUS));
            assert_eq!(info.reason, frame.reason);
        }
        None => {
            assert_eq!(info.code, CloseCode::ABNORMAL);
            assert!(info.reason.is_empty());
        }
    }
    assert_eq!(
        info.clean,
        info.sent.is_some() && info.received.is_some() && info.error.is_none()
    );
}

/// The server session target: `Connection::server` fed the fuzzer's bytes, optionally
/// behind a valid request.
pub fn run_server_session(data: &[u8]) {
    let script = Script::parse(data);
    let now = Instant::now();
    let conn = Connection::server(config(script.mode), now);
    let mut harness = Harness::new(conn, now, script.mode & 0b1000 != 0);
    let mut stream = Vec::new();
    if script.mode & 1 != 0 {
        // The fuzzer then spends its time on frames rather than on the request, which the
        // handshake_request target covers.
        ClientRequest::new("example.com", "/chat")
            .subprotocol("chat")
            .encode("dGhlIHNhbXBsZSBub25jZQ==", &mut stream);
    }
    stream.extend_from_slice(script.stream);
    harness.run(script.steps, &stream);
}

/// The request the client session target sends.
fn client_request() -> ClientRequest {
    ClientRequest::new("example.com", "/chat").subprotocol("chat")
}

/// The client session target: `Connection::client_with_rng` with a seeded generator, after
/// `connect`, fed the fuzzer's bytes, optionally behind a valid 101 response.
pub fn run_client_session(data: &[u8]) {
    let script = Script::parse(data);
    let now = Instant::now();
    let mut conn = Connection::client_with_rng(
        client_request(),
        config(script.mode),
        StdRng::seed_from_u64(0x50c4e7e),
    );
    conn.connect(now);
    let Some(Transmit::Data(request_bytes)) = conn.poll_transmit() else {
        panic!("connect queues the request");
    };
    let mut harness = Harness::new(conn, now, false);
    let mut stream = Vec::new();
    if script.mode & 1 != 0 {
        // Answer the key found in the request, so that the session gets past the
        // handshake and the fuzzer spends its time on frames.
        let (request, _) = parse_request(&request_bytes, &HandshakeLimits::default())
            .expect("our own request parses")
            .expect("our own request is complete");
        encode_accept(&request, &Accept::default(), &mut stream)
            .expect("the default answer is valid");
    }
    harness.wire.observe(Transmit::Data(request_bytes));
    stream.extend_from_slice(script.stream);
    harness.run(script.steps, &stream);
}
