//! permessage-deflate decompression (RFC 7692) driven through a whole server session: a
//! valid request offering the extension is accepted, then the fuzzer's frames arrive, with
//! RSV1, opcode, FIN and payload (arbitrary bytes presented as compressed data) chosen by
//! the input, fed in pieces whose boundaries the input chooses too.
//!
//! # Input format
//!
//! ```text
//! byte 0     the offer: bits 0-1 client_max_window_bits (0 absent, 1 without a value,
//!            2 or 3 with the value from byte 1), bit 2 server_no_context_takeover, bit 3
//!            client_no_context_takeover, bit 4 server_max_window_bits (value from byte 1),
//!            bit 5 the server asks client_max_window_bits=9, bit 6 the server resets its
//!            compressor after every message, bit 7 an invalid offer is sent first (and
//!            must be declined in favour of the valid one)
//! byte 1     window sizes: bits 0-2 client_max_window_bits - 8, bits 3-5
//!            server_max_window_bits - 8
//! then frames, each:
//!   flags    bit 7 FIN, bit 6 RSV1, bit 5 RSV2, bit 4 a 2-byte length follows (else 1),
//!            bits 0-3 the opcode (reserved ones included)
//!   length   1 or 2 bytes, big-endian (cut to what is left of the input)
//!   feed     bits 0-3 the size of the pieces the frame's wire bytes are fed in (1 byte to
//!            all at once), bits 4-7 = 15: the frame is sent unmasked
//!   payload  the frame's payload, unmasked; the target masks it
//! ```
//!
//! Checked: nothing panics (the crate's own `debug_assert!` invariants included); the
//! extension is negotiated; the state never moves backwards; at most one Close event, and
//! nothing after it; every delivered Text message is valid UTF-8 and every Text or Binary
//! message at most `max_message_size` (64 KiB); the Close frame the server writes (parsed
//! from its output) after failing the connection carries 1002, 1007 or 1009, and one it
//! writes in answer to the peer's Close echoes the peer's code; after `receive_eof` and
//! every deadline the session is CLOSED with exactly one Close event.
//!
//! With `SOCKEYE_FUZZ_VERBOSE` set, the outcome of each input is printed to stderr (for
//! replaying a seed: `cargo fuzz run -a -s none inflate fuzz/seeds/inflate/bomb`).

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sockeye_fuzz::Wire;
use sockeye_proto::extension::DeflateConfig;
use sockeye_proto::handshake::{Accept, ClientRequest};
use sockeye_proto::{
    CloseCode, CloseFrame, CloseInfo, Config, Connection, Event, Initiator, Message, Role, State,
};

// The crate under test checks its own invariants with `debug_assert!`.
const _: () = assert!(
    cfg!(debug_assertions),
    "build the fuzz targets with debug assertions (cargo fuzz build -a)"
);

/// The message limit of the session: small, so that bombs hit it quickly.
const MAX_MESSAGE_SIZE: u64 = 64 << 10;

/// The masking key of the client's frames (RFC 6455 5.7's examples).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Piece sizes selected by the low nibble of a frame's feed byte.
const PIECES: [usize; 16] = [
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    13,
    16,
    31,
    64,
    100,
    256,
    1000,
    4096,
    usize::MAX,
];

fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("SOCKEYE_FUZZ_VERBOSE").is_some())
}

/// The offer (and the server's settings) chosen by the first two input bytes.
fn offer(flags: u8, bits: u8) -> (String, DeflateConfig) {
    let client_bits = 8 + (bits & 7);
    let server_bits = 8 + ((bits >> 3) & 7);
    let mut offer = String::from("permessage-deflate");
    if flags & 0b100 != 0 {
        offer.push_str("; server_no_context_takeover");
    }
    if flags & 0b1000 != 0 {
        offer.push_str("; client_no_context_takeover");
    }
    if flags & 0b1_0000 != 0 {
        offer.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    match flags & 0b11 {
        0 => {}
        1 => offer.push_str("; client_max_window_bits"),
        _ => offer.push_str(&format!("; client_max_window_bits={client_bits}")),
    }
    let config = DeflateConfig {
        client_max_window_bits: (flags & 0b10_0000 != 0).then_some(9),
        server_no_context_takeover: flags & 0b100_0000 != 0,
        ..DeflateConfig::enabled()
    };
    (offer, config)
}

struct Harness {
    conn: Connection,
    now: Instant,
    state: State,
    requests: usize,
    closes: usize,
    messages: usize,
    output: Wire,
}

impl Harness {
    fn check_state(&mut self) {
        let state = self.conn.state();
        assert!(
            state.follows(self.state),
            "state moved backwards: {} -> {}",
            self.state,
            state
        );
        self.state = state;
    }

    fn drain(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            assert_eq!(self.closes, 0, "{event:?} after the Close event");
            match event {
                Event::Request => {
                    self.requests += 1;
                    assert_eq!(self.requests, 1, "a second request");
                    self.conn
                        .accept(Accept::default(), self.now)
                        .expect("the request can be accepted");
                }
                Event::Connected => self.conn.open(),
                Event::Message(message) => {
                    match &message {
                        Message::Text(text) => {
                            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
                        }
                        Message::Binary(_) => {}
                        Message::Ping(p) | Message::Pong(p) => {
                            assert!(p.len() <= 125, "a control payload over 125 bytes");
                            continue;
                        }
                    }
                    self.messages += 1;
                    assert!(
                        message.as_bytes().len() as u64 <= MAX_MESSAGE_SIZE,
                        "a message of {} bytes over the limit was delivered",
                        message.as_bytes().len()
                    );
                }
                Event::Close(info) => {
                    self.closes += 1;
                    assert_eq!(self.conn.close_info(), Some(&*info));
                }
            }
            self.check_state();
        }
        while let Some(transmit) = self.conn.poll_transmit() {
            self.output.observe(transmit);
        }
        self.check_state();
    }

    fn finish(&mut self) {
        self.conn.receive_eof(self.now);
        self.drain();
        for _ in 0..8 {
            let Some(deadline) = self.conn.poll_timeout() else {
                break;
            };
            self.now = self.now.max(deadline) + Duration::from_millis(1);
            self.conn.handle_timeout(self.now);
            self.drain();
        }
        assert_eq!(self.conn.state(), State::Closed, "not CLOSED at the end");
        assert!(
            self.conn.poll_timeout().is_none(),
            "a deadline after CLOSED"
        );
        assert_eq!(self.closes, 1, "exactly one Close event per session");
        self.output.check_complete();
        let info = self
            .conn
            .close_info()
            .expect("CLOSED with an outcome")
            .clone();
        check_close(&info, self.output.close_sent());
        if verbose() {
            eprintln!(
                "inflate: {} messages; sent {:?}; error {:?}",
                self.messages,
                self.output.close_sent(),
                info.error
            );
        }
    }
}

/// The Close frame written: after a failure 1002, 1007 or 1009 (nothing else can go wrong
/// here: no keepalive, no local close); in answer to the peer's, the peer's code.
fn check_close(info: &CloseInfo, written: Option<&CloseFrame>) {
    assert_eq!(
        info.sent.as_ref(),
        written,
        "CloseInfo::sent differs from the wire"
    );
    let Some(frame) = written else {
        return;
    };
    match info.initiator {
        Initiator::Local => {
            let code = frame.code.expect("a failure is sent with a code");
            assert!(
                [
                    CloseCode::PROTOCOL_ERROR,
                    CloseCode::INVALID_PAYLOAD,
                    CloseCode::MESSAGE_TOO_BIG
                ]
                .contains(&code),
                "failed with {code:?} ({:?})",
                info.error
            );
            assert!(info.error.is_some(), "a local close without an error");
        }
        Initiator::Remote => {
            let received = info.received.as_ref().expect("a remote close was received");
            assert_eq!(
                frame.code, received.code,
                "the Close reply changed the code"
            );
        }
        Initiator::Abnormal => panic!("a Close frame written in an abnormal closure"),
    }
}

/// Appends one client frame to `wire`.
fn frame(wire: &mut Vec<u8>, flags: u8, masked: bool, payload: &[u8]) {
    wire.push((flags & 0xe0) | (flags & 0x0f));
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        wire.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        wire.push(mask_bit | 126);
        wire.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        wire.push(mask_bit | 127);
        wire.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        wire.extend_from_slice(&MASK);
        wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        wire.extend_from_slice(payload);
    }
}

fn run(data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let bits = data.get(1).copied().unwrap_or(0);
    let (offer, deflate) = offer(flags, bits);
    let config = Config {
        deflate,
        max_message_size: Some(MAX_MESSAGE_SIZE),
        ..Config::default()
    };
    let now = Instant::now();
    let conn = Connection::server(config, now);
    let state = conn.state();
    let mut h = Harness {
        conn,
        now,
        state,
        requests: 0,
        closes: 0,
        messages: 0,
        output: Wire::new(Role::Server),
    };
    h.drain();

    let mut request = ClientRequest::new("example.com", "/chat");
    if flags & 0x80 != 0 {
        // RFC 7692 5: an offer the server cannot accept is declined, the next considered.
        request = request.extension("permessage-deflate; client_max_window_bits=7");
    }
    let mut head = Vec::new();
    request
        .extension(offer)
        .encode("dGhlIHNhbXBsZSBub25jZQ==", &mut head);
    h.conn.receive_data(&head, h.now);
    h.drain();
    assert_eq!(h.conn.state(), State::Open, "the session did not open");
    assert!(
        h.output
            .extensions()
            .is_some_and(|v| v.trim_start().starts_with("permessage-deflate")),
        "permessage-deflate was not negotiated"
    );

    let mut rest = data.get(2..).unwrap_or(&[]);
    let mut wire = Vec::new();
    while let Some((&flags, tail)) = rest.split_first() {
        rest = tail;
        let len = if flags & 0x10 != 0 {
            let n = rest
                .get(..2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            rest = rest.get(2..).unwrap_or(&[]);
            usize::from(n)
        } else {
            let n = rest.first().copied().unwrap_or(0);
            rest = rest.get(1..).unwrap_or(&[]);
            usize::from(n)
        };
        let feed = rest.first().copied().unwrap_or(0x0f);
        rest = rest.get(1..).unwrap_or(&[]);
        let len = len.min(rest.len());
        let (payload, tail) = rest.split_at(len);
        rest = tail;
        wire.clear();
        frame(&mut wire, flags, feed >> 4 != 15, payload);
        for piece in wire.chunks(PIECES[usize::from(feed & 0x0f)].min(wire.len())) {
            h.conn.receive_data(piece, h.now);
            h.drain();
        }
    }
    h.finish();
}

fuzz_target!(|data: &[u8]| run(data));
