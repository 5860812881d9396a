//! Byte-exact tests of each framing and closing rule, in mirrored client/server pairs.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::pair::{Pair, decode_frames, frame, frame_from, frame_rsv};
use crate::Role;
use crate::close::{CloseCode, CloseFrame, Initiator};
use crate::config::Config;
use crate::error::{CloseError, Error, ProtocolError, SendError};
use crate::frame::{OpCode, RSV1, RSV2};
use crate::handshake::HandshakeError;
use crate::session::{Connection, Event, Fragment, Message, State, Transmit};

/// One side of an open pair, alone, with its pending output drained.
fn open(role: Role) -> (Connection, Instant) {
    open_with(role, Config::default())
}

fn open_with(role: Role, config: Config) -> (Connection, Instant) {
    let pair = Pair::open_with(config);
    let now = pair.now;
    let mut conn = match role {
        Role::Client => pair.client,
        Role::Server => pair.server,
    };
    while conn.poll_event().is_some() {}
    while conn.poll_transmit().is_some() {}
    (conn, now)
}

/// What the peer of `role` sends.
fn peer_frame(role: Role, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let peer = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    frame_from(peer, fin, opcode, payload)
}

struct Output {
    events: Vec<Event>,
    frames: Vec<(bool, OpCode, Bytes, bool)>,
    shutdown: bool,
}

fn drain(conn: &mut Connection) -> Output {
    let mut events = Vec::new();
    while let Some(event) = conn.poll_event() {
        events.push(event);
    }
    let mut bytes = Vec::new();
    let mut shutdown = false;
    while let Some(t) = conn.poll_transmit() {
        match t {
            Transmit::Data(b) => {
                assert!(!shutdown, "data after shutdown");
                bytes.extend_from_slice(&b);
            }
            Transmit::Shutdown => shutdown = true,
        }
    }
    Output {
        events,
        frames: decode_frames(&bytes),
        shutdown,
    }
}

/// Feeds `bytes` and checks the connection failed with `error` and sent `code`.
fn assert_fails(role: Role, bytes: &[u8], error: ProtocolError) {
    let (mut conn, now) = open(role);
    conn.receive_data(bytes, now);
    let out = drain(&mut conn);
    let code = CloseCode::from(&error);
    assert_eq!(conn.state(), State::Closed, "{role:?} {error:?}");
    assert_eq!(out.frames.len(), 1, "{role:?} {error:?}: {:?}", out.frames);
    let (fin, opcode, payload, masked) = &out.frames[0];
    assert!(*fin);
    assert_eq!(*opcode, OpCode::Close);
    assert_eq!(*masked, role == Role::Client);
    assert_eq!(&payload[..2], &code.0.to_be_bytes());
    assert!(out.shutdown);
    let info = conn.close_info().unwrap();
    assert_eq!(info.error, Some(Error::Protocol(error)));
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    // 7.1.7: nothing more is processed, not even a Close.
    conn.receive_data(&peer_frame(role, true, OpCode::Close, &[0x03, 0xe8]), now);
    let after = drain(&mut conn);
    assert!(after.events.is_empty() && after.frames.is_empty());
}

/// The violation was decided from the bytes received so far (fail-fast): the outcome is
/// known at once; once the events before it are taken the session is CLOSED and its Close
/// frame, with the violation's code, is the last thing sent.
fn assert_failed_at_once(conn: &mut Connection, error: ProtocolError) {
    let code = CloseCode::from(&error);
    assert_eq!(
        conn.close_info().and_then(|info| info.error.clone()),
        Some(Error::Protocol(error))
    );
    let out = drain(conn);
    assert_eq!(conn.state(), State::Closed);
    let (_, opcode, payload, _) = out.frames.last().expect("a Close frame");
    assert_eq!(*opcode, OpCode::Close);
    assert_eq!(&payload[..2], &code.0.to_be_bytes());
    assert!(out.shutdown);
}

// ----- masking (5.1, 5.3) -----

#[test]
fn client_receives_masked_frame() {
    assert_fails(
        Role::Client,
        &frame(true, OpCode::Text, b"hi", Some([1, 2, 3, 4])),
        ProtocolError::MaskedFrame,
    );
}

#[test]
fn server_receives_unmasked_frame() {
    assert_fails(
        Role::Server,
        &frame(true, OpCode::Text, b"hi", None),
        ProtocolError::UnmaskedFrame,
    );
}

#[test]
fn client_sends_masked_frames_with_fresh_keys() {
    let (mut conn, _) = open(Role::Client);
    conn.send(Message::Binary(Bytes::from_static(&[0u8; 8])))
        .unwrap();
    conn.send(Message::Binary(Bytes::from_static(&[0u8; 8])))
        .unwrap();
    let mut wire = Vec::new();
    while let Some(Transmit::Data(b)) = conn.poll_transmit() {
        wire.extend_from_slice(&b);
    }
    // Byte-exact header: FIN + binary, mask bit + length 8, then a key.
    assert_eq!(&wire[..2], &[0x82, 0x88]);
    assert_eq!(&wire[14..16], &[0x82, 0x88]);
    let (key1, key2) = (&wire[2..6], &wire[16..20]);
    assert_ne!(key1, key2, "a fresh key per frame");
    // Zero bytes masked show the key itself.
    assert_eq!(&wire[6..10], key1);
    let frames = decode_frames(&wire);
    assert!(frames.iter().all(|f| f.3 && f.2[..] == [0u8; 8]));
}

#[test]
fn server_sends_unmasked_frames() {
    let (mut conn, _) = open(Role::Server);
    conn.send(Message::Text("Hello".into())).unwrap();
    let Some(Transmit::Data(wire)) = conn.poll_transmit() else {
        panic!()
    };
    // RFC 6455 5.7: a single-frame unmasked text message.
    assert_eq!(&wire[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn server_receives_rfc_masked_hello() {
    let (mut conn, now) = open(Role::Server);
    conn.receive_data(
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
        now,
    );
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text("Hello".into())))
    );
}

#[test]
fn client_receives_rfc_unmasked_hello() {
    let (mut conn, now) = open(Role::Client);
    conn.receive_data(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], now);
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text("Hello".into())))
    );
}

// ----- reserved bits and opcodes (5.2) -----

#[test]
fn client_receives_rsv_bits() {
    assert_fails(
        Role::Client,
        &frame_rsv(true, RSV1, OpCode::Text, b"", None),
        ProtocolError::ReservedBits(RSV1),
    );
}

#[test]
fn server_receives_rsv_bits() {
    assert_fails(
        Role::Server,
        &frame_rsv(true, 0b011, OpCode::Binary, b"", Some([1, 2, 3, 4])),
        ProtocolError::ReservedBits(0b011),
    );
}

#[test]
fn client_receives_reserved_opcode() {
    assert_fails(
        Role::Client,
        &[0x83, 0x00],
        ProtocolError::ReservedOpcode(3),
    );
}

#[test]
fn server_receives_reserved_opcode() {
    assert_fails(
        Role::Server,
        &[0x8b, 0x80, 1, 2, 3, 4],
        ProtocolError::ReservedOpcode(0xb),
    );
}

#[test]
fn client_receives_64_bit_length_with_top_bit() {
    assert_fails(
        Role::Client,
        &[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0],
        ProtocolError::InvalidLength,
    );
}

#[test]
fn server_receives_64_bit_length_with_top_bit() {
    assert_fails(
        Role::Server,
        &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
        ProtocolError::InvalidLength,
    );
}

// ----- control frames (5.5) -----

#[test]
fn client_receives_fragmented_ping() {
    assert_fails(
        Role::Client,
        &peer_frame(Role::Client, false, OpCode::Ping, b"x"),
        ProtocolError::FragmentedControlFrame,
    );
}

#[test]
fn server_receives_fragmented_ping() {
    assert_fails(
        Role::Server,
        &peer_frame(Role::Server, false, OpCode::Ping, b"x"),
        ProtocolError::FragmentedControlFrame,
    );
}

#[test]
fn client_receives_ping_over_125_bytes() {
    assert_fails(
        Role::Client,
        &peer_frame(Role::Client, true, OpCode::Ping, &[0; 126]),
        ProtocolError::ControlFrameTooLong(126),
    );
}

#[test]
fn server_receives_ping_over_125_bytes() {
    assert_fails(
        Role::Server,
        &peer_frame(Role::Server, true, OpCode::Ping, &[0; 126]),
        ProtocolError::ControlFrameTooLong(126),
    );
}

fn ping_is_answered_with_same_payload(role: Role) {
    let (mut conn, now) = open(role);
    conn.receive_data(&peer_frame(role, true, OpCode::Ping, b"are you there"), now);
    let out = drain(&mut conn);
    assert_eq!(
        out.events,
        [Event::Message(Message::Ping(Bytes::from_static(
            b"are you there"
        )))]
    );
    assert_eq!(
        out.frames,
        [(
            true,
            OpCode::Pong,
            Bytes::from_static(b"are you there"),
            role == Role::Client
        )]
    );
}

#[test]
fn client_answers_ping_with_pong() {
    ping_is_answered_with_same_payload(Role::Client);
}

#[test]
fn server_answers_ping_with_pong() {
    ping_is_answered_with_same_payload(Role::Server);
}

fn control_frame_inside_fragmented_message(role: Role) {
    let (mut conn, now) = open(role);
    let mut bytes = peer_frame(role, false, OpCode::Text, b"frag");
    bytes.extend(peer_frame(role, true, OpCode::Ping, b"p"));
    bytes.extend(peer_frame(role, false, OpCode::Continuation, b"men"));
    bytes.extend(peer_frame(role, true, OpCode::Pong, b""));
    bytes.extend(peer_frame(role, true, OpCode::Continuation, b"ted"));
    conn.receive_data(&bytes, now);
    let out = drain(&mut conn);
    assert_eq!(
        out.events,
        [
            Event::Message(Message::Ping(Bytes::from_static(b"p"))),
            Event::Message(Message::Pong(Bytes::new())),
            Event::Message(Message::Text("fragmented".into())),
        ]
    );
    assert_eq!(out.frames.len(), 1);
    assert_eq!(out.frames[0].1, OpCode::Pong);
}

#[test]
fn client_handles_control_frames_inside_fragmented_message() {
    control_frame_inside_fragmented_message(Role::Client);
}

#[test]
fn server_handles_control_frames_inside_fragmented_message() {
    control_frame_inside_fragmented_message(Role::Server);
}

// ----- fragmentation (5.4) -----

#[test]
fn client_receives_continuation_without_start() {
    assert_fails(
        Role::Client,
        &peer_frame(Role::Client, true, OpCode::Continuation, b"x"),
        ProtocolError::UnexpectedContinuation,
    );
}

#[test]
fn server_receives_continuation_without_start() {
    assert_fails(
        Role::Server,
        &peer_frame(Role::Server, true, OpCode::Continuation, b"x"),
        ProtocolError::UnexpectedContinuation,
    );
}

#[test]
fn client_receives_new_message_inside_fragmented_one() {
    let mut bytes = peer_frame(Role::Client, false, OpCode::Binary, b"a");
    bytes.extend(peer_frame(Role::Client, true, OpCode::Text, b"b"));
    assert_fails(Role::Client, &bytes, ProtocolError::ExpectedContinuation);
}

#[test]
fn server_receives_new_message_inside_fragmented_one() {
    let mut bytes = peer_frame(Role::Server, false, OpCode::Text, b"a");
    bytes.extend(peer_frame(Role::Server, true, OpCode::Binary, b"b"));
    assert_fails(Role::Server, &bytes, ProtocolError::ExpectedContinuation);
}

// ----- UTF-8 (8.1) -----

#[test]
fn client_receives_invalid_utf8_text() {
    assert_fails(
        Role::Client,
        &peer_frame(Role::Client, true, OpCode::Text, &[0xce, 0xba, 0xff]),
        ProtocolError::InvalidUtf8,
    );
}

#[test]
fn server_receives_invalid_utf8_text() {
    assert_fails(
        Role::Server,
        &peer_frame(Role::Server, true, OpCode::Text, &[0xed, 0xa0, 0x80]),
        ProtocolError::InvalidUtf8,
    );
}

fn invalid_utf8_fails_fast_in_first_fragment(role: Role) {
    // The first fragment holds a surrogate; the message is not finished yet.
    let (mut conn, now) = open(role);
    let first = [
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69,
    ];
    conn.receive_data(&peer_frame(role, false, OpCode::Text, &first), now);
    assert_failed_at_once(&mut conn, ProtocolError::InvalidUtf8);
}

#[test]
fn client_fails_fast_on_invalid_utf8_in_first_fragment() {
    invalid_utf8_fails_fast_in_first_fragment(Role::Client);
}

#[test]
fn server_fails_fast_on_invalid_utf8_in_first_fragment() {
    invalid_utf8_fails_fast_in_first_fragment(Role::Server);
}

fn invalid_utf8_fails_fast_inside_a_partial_frame(role: Role) {
    let (mut conn, now) = open(role);
    let bytes = peer_frame(
        role,
        true,
        OpCode::Text,
        &[b'a', b'b', 0xf4, 0x90, b'c', b'd'],
    );
    // Header plus the first four payload bytes only: F4 90 is already impossible.
    let header_len = bytes.len() - 6;
    conn.receive_data(&bytes[..header_len + 4], now);
    assert_failed_at_once(&mut conn, ProtocolError::InvalidUtf8);
}

#[test]
fn client_fails_fast_on_invalid_utf8_inside_a_partial_frame() {
    invalid_utf8_fails_fast_inside_a_partial_frame(Role::Client);
}

#[test]
fn server_fails_fast_on_invalid_utf8_inside_a_partial_frame() {
    invalid_utf8_fails_fast_inside_a_partial_frame(Role::Server);
}

#[test]
fn client_accepts_text_split_inside_a_code_point() {
    let (mut conn, now) = open(Role::Client);
    let text = "κόσμε";
    let bytes = text.as_bytes();
    let mut wire = frame(false, OpCode::Text, &bytes[..1], None);
    wire.extend(frame(false, OpCode::Continuation, &bytes[1..4], None));
    wire.extend(frame(true, OpCode::Continuation, &bytes[4..], None));
    for byte in wire {
        conn.receive_data(&[byte], now);
    }
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text(text.into())))
    );
}

#[test]
fn server_accepts_text_split_inside_a_code_point() {
    let (mut conn, now) = open(Role::Server);
    let text = "héllo wörld ✓";
    let bytes = text.as_bytes();
    let mut wire = frame_from(Role::Client, false, OpCode::Text, &bytes[..2]);
    wire.extend(frame_from(
        Role::Client,
        true,
        OpCode::Continuation,
        &bytes[2..],
    ));
    conn.receive_data(&wire, now);
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text(text.into())))
    );
}

// ----- size limits -----

fn small_limits() -> Config {
    Config {
        max_frame_size: Some(100),
        max_message_size: Some(150),
        ..Config::default()
    }
}

fn frame_over_limit_refused_from_header(role: Role) {
    let (mut conn, now) = open_with(role, small_limits());
    let bytes = peer_frame(role, true, OpCode::Binary, &[0; 101]);
    // Only the header: the payload is never needed to decide.
    let header_len = bytes.len() - 101;
    conn.receive_data(&bytes[..header_len], now);
    assert_failed_at_once(
        &mut conn,
        ProtocolError::FrameTooLarge {
            size: 101,
            max: 100,
        },
    );
}

#[test]
fn client_refuses_frame_over_limit_from_header() {
    frame_over_limit_refused_from_header(Role::Client);
}

#[test]
fn server_refuses_frame_over_limit_from_header() {
    frame_over_limit_refused_from_header(Role::Server);
}

fn message_over_limit_refused_from_header(role: Role) {
    let (mut conn, now) = open_with(role, small_limits());
    conn.receive_data(&peer_frame(role, false, OpCode::Binary, &[0; 100]), now);
    assert_eq!(conn.state(), State::Open);
    let bytes = peer_frame(role, true, OpCode::Continuation, &[0; 51]);
    conn.receive_data(&bytes[..bytes.len() - 51], now);
    assert_failed_at_once(
        &mut conn,
        ProtocolError::MessageTooLarge {
            size: 151,
            max: 150,
        },
    );
}

#[test]
fn client_refuses_message_over_limit_from_header() {
    message_over_limit_refused_from_header(Role::Client);
}

#[test]
fn server_refuses_message_over_limit_from_header() {
    message_over_limit_refused_from_header(Role::Server);
}

// ----- failing in stream order (7.1.7) -----

/// What the peer of `role` sends in Autobahn case 3.2, in one read: a text message, the
/// same message with RSV2 set (no extension was negotiated), then a Ping.
fn message_then_violation(role: Role) -> Vec<u8> {
    let peer_mask = (role == Role::Server).then_some([0x37, 0xfa, 0x21, 0x3d]);
    let mut wire = peer_frame(role, true, OpCode::Text, b"Hello, world!");
    wire.extend(frame_rsv(
        true,
        RSV2,
        OpCode::Text,
        b"Hello, world!",
        peer_mask,
    ));
    wire.extend(peer_frame(role, true, OpCode::Ping, b""));
    wire
}

fn transmitted(conn: &mut Connection) -> (Vec<u8>, bool) {
    let mut wire = Vec::new();
    let mut shutdown = false;
    while let Some(t) = conn.poll_transmit() {
        match t {
            Transmit::Data(b) => {
                assert!(!shutdown, "data after shutdown");
                wire.extend_from_slice(&b);
            }
            Transmit::Shutdown => shutdown = true,
        }
    }
    (wire, shutdown)
}

/// Takes the message, answers it, then takes the failure; returns what was written.
fn message_before_violation_is_answered(role: Role) -> Vec<u8> {
    let (mut conn, now) = open(role);
    conn.receive_data(&message_then_violation(role), now);
    let error = Error::Protocol(ProtocolError::ReservedBits(RSV2));
    // Fail-fast: decided at once, and nothing after the bad frame is processed (the Ping
    // gets no Pong).
    assert_eq!(
        conn.close_info().and_then(|info| info.error.clone()),
        Some(error.clone())
    );
    assert_eq!(conn.buffered_amount(), 0);
    assert!(conn.failure_pending());
    // In stream order: the message first, while the session can still answer it.
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text("Hello, world!".into())))
    );
    assert_eq!(conn.state(), State::Open);
    conn.send(Message::Text("Hello, world!".into())).unwrap();
    // Then the failure: its Close frame follows the answer.
    assert!(matches!(conn.peek_event(), Some(Event::Close(_))));
    assert!(conn.failure_pending());
    let Some(Event::Close(info)) = conn.poll_event() else {
        panic!("expected the failure's Close event");
    };
    assert_eq!(info.error, Some(error));
    assert_eq!(info.initiator, Initiator::Local);
    assert_eq!(conn.state(), State::Closed);
    assert!(!conn.failure_pending());
    assert_eq!(conn.poll_event(), None);
    let (wire, shutdown) = transmitted(&mut conn);
    assert!(shutdown);
    wire
}

fn close_1002_payload() -> Vec<u8> {
    let reason = Error::Protocol(ProtocolError::ReservedBits(RSV2)).to_string();
    let mut payload = vec![0x03, 0xea];
    payload.extend_from_slice(reason.as_bytes());
    payload
}

#[test]
fn client_answers_message_received_before_a_protocol_violation() {
    let wire = message_before_violation_is_answered(Role::Client);
    let frames = decode_frames(&wire);
    assert_eq!(
        frames,
        vec![
            (
                true,
                OpCode::Text,
                Bytes::from_static(b"Hello, world!"),
                true
            ),
            (true, OpCode::Close, Bytes::from(close_1002_payload()), true),
        ]
    );
}

#[test]
fn server_answers_message_received_before_a_protocol_violation() {
    let wire = message_before_violation_is_answered(Role::Server);
    let close = close_1002_payload();
    let mut expected = vec![0x81, 0x0d];
    expected.extend_from_slice(b"Hello, world!");
    expected.extend_from_slice(&[0x88, close.len() as u8]);
    expected.extend_from_slice(&close);
    assert_eq!(wire, expected);
}

fn violation_takes_effect_by_close_timeout(role: Role) {
    let (mut conn, now) = open(role);
    conn.receive_data(&message_then_violation(role), now);
    // The application never takes its events: the close timeout bounds the wait.
    let deadline = now + Config::default().close_timeout;
    assert_eq!(conn.poll_timeout(), Some(deadline));
    conn.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(conn.state(), State::Open);
    conn.handle_timeout(deadline);
    assert_eq!(conn.state(), State::Closed);
    let out = drain(&mut conn);
    assert!(
        matches!(out.events[..], [Event::Message(_), Event::Close(_)]),
        "{:?}",
        out.events
    );
    assert_eq!(out.frames.len(), 1);
    assert_eq!(out.frames[0].1, OpCode::Close);
    assert_eq!(out.frames[0].2[..], close_1002_payload()[..]);
    assert!(out.shutdown);
}

#[test]
fn client_violation_takes_effect_by_close_timeout() {
    violation_takes_effect_by_close_timeout(Role::Client);
}

#[test]
fn server_violation_takes_effect_by_close_timeout() {
    violation_takes_effect_by_close_timeout(Role::Server);
}

fn close_before_violation_taken_sends_its_code(role: Role) {
    let (mut conn, now) = open(role);
    conn.receive_data(&message_then_violation(role), now);
    // The application closes without reading: the violation takes effect, with 1002.
    conn.close(CloseCode::NORMAL, "bye", now).unwrap();
    assert_eq!(conn.state(), State::Closed);
    let out = drain(&mut conn);
    assert_eq!(out.events.len(), 2);
    let Event::Close(info) = &out.events[1] else {
        panic!("expected Close, got {:?}", out.events);
    };
    assert_eq!(
        info.error,
        Some(Error::Protocol(ProtocolError::ReservedBits(RSV2)))
    );
    assert_eq!(
        info.sent.as_ref().and_then(|f| f.code),
        Some(CloseCode::PROTOCOL_ERROR)
    );
    assert_eq!(out.frames.len(), 1);
    assert_eq!(out.frames[0].2[..], close_1002_payload()[..]);
    assert!(out.shutdown);
}

#[test]
fn client_close_before_violation_taken_sends_its_code() {
    close_before_violation_taken_sends_its_code(Role::Client);
}

#[test]
fn server_close_before_violation_taken_sends_its_code() {
    close_before_violation_taken_sends_its_code(Role::Server);
}

// ----- close payloads (5.5.1, 7.4) -----

#[test]
fn client_receives_one_byte_close_payload() {
    assert_fails(
        Role::Client,
        &peer_frame(Role::Client, true, OpCode::Close, &[0x03]),
        ProtocolError::CloseFrameTooShort,
    );
}

#[test]
fn server_receives_one_byte_close_payload() {
    assert_fails(
        Role::Server,
        &peer_frame(Role::Server, true, OpCode::Close, &[0x03]),
        ProtocolError::CloseFrameTooShort,
    );
}

#[test]
fn client_receives_invalid_close_code() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_fails(
            Role::Client,
            &peer_frame(Role::Client, true, OpCode::Close, &code.to_be_bytes()),
            ProtocolError::InvalidCloseCode(code),
        );
    }
}

#[test]
fn server_receives_invalid_close_code() {
    for code in [0u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        assert_fails(
            Role::Server,
            &peer_frame(Role::Server, true, OpCode::Close, &code.to_be_bytes()),
            ProtocolError::InvalidCloseCode(code),
        );
    }
}

#[test]
fn client_receives_close_reason_with_invalid_utf8() {
    assert_fails(
        Role::Client,
        &peer_frame(Role::Client, true, OpCode::Close, &[0x03, 0xe8, 0xc0, 0x80]),
        ProtocolError::InvalidCloseReason,
    );
}

#[test]
fn server_receives_close_reason_with_invalid_utf8() {
    assert_fails(
        Role::Server,
        &peer_frame(Role::Server, true, OpCode::Close, &[0x03, 0xe8, 0xff]),
        ProtocolError::InvalidCloseReason,
    );
}

fn valid_close_codes_are_echoed(role: Role) {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        let (mut conn, now) = open(role);
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"why");
        conn.receive_data(&peer_frame(role, true, OpCode::Close, &payload), now);
        let out = drain(&mut conn);
        let Event::Close(info) = &out.events[0] else {
            panic!()
        };
        assert_eq!((info.code.0, info.reason.as_str()), (code, "why"));
        assert_eq!(
            out.frames,
            [(
                true,
                OpCode::Close,
                Bytes::copy_from_slice(&code.to_be_bytes()),
                role == Role::Client
            )]
        );
    }
}

#[test]
fn client_echoes_valid_close_codes() {
    valid_close_codes_are_echoed(Role::Client);
}

#[test]
fn server_echoes_valid_close_codes() {
    valid_close_codes_are_echoed(Role::Server);
}

fn empty_close_is_1005_and_answered_empty(role: Role) {
    let (mut conn, now) = open(role);
    conn.receive_data(&peer_frame(role, true, OpCode::Close, b""), now);
    let out = drain(&mut conn);
    let Event::Close(info) = &out.events[0] else {
        panic!()
    };
    assert_eq!(info.code, CloseCode::NO_STATUS);
    assert_eq!(info.reason, "");
    assert_eq!(
        out.frames,
        [(true, OpCode::Close, Bytes::new(), role == Role::Client)]
    );
}

#[test]
fn client_receives_empty_close_as_1005() {
    empty_close_is_1005_and_answered_empty(Role::Client);
}

#[test]
fn server_receives_empty_close_as_1005() {
    empty_close_is_1005_and_answered_empty(Role::Server);
}

fn bytes_after_close_are_discarded(role: Role) {
    let (mut conn, now) = open(role);
    let mut bytes = peer_frame(role, true, OpCode::Close, &[0x03, 0xe8]);
    bytes.extend(peer_frame(role, true, OpCode::Text, b"late"));
    bytes.extend(peer_frame(role, true, OpCode::Close, &[0x03, 0xe9]));
    conn.receive_data(&bytes, now);
    let out = drain(&mut conn);
    assert_eq!(out.events.len(), 1);
    assert!(matches!(out.events[0], Event::Close(_)));
    assert_eq!(out.frames.len(), 1);
}

#[test]
fn client_discards_bytes_after_close() {
    bytes_after_close_are_discarded(Role::Client);
}

#[test]
fn server_discards_bytes_after_close() {
    bytes_after_close_are_discarded(Role::Server);
}

fn data_after_our_close_is_still_delivered(role: Role) {
    // Invariant 4: the peer sent it before it saw our Close.
    let (mut conn, now) = open(role);
    conn.close(CloseCode::NORMAL, "", now).unwrap();
    drain(&mut conn);
    conn.receive_data(&peer_frame(role, true, OpCode::Binary, b"in flight"), now);
    conn.receive_data(&peer_frame(role, true, OpCode::Ping, b"p"), now);
    let out = drain(&mut conn);
    assert_eq!(
        out.events,
        [
            Event::Message(Message::Binary(Bytes::from_static(b"in flight"))),
            Event::Message(Message::Ping(Bytes::from_static(b"p")))
        ]
    );
    // No Pong after our Close (5.5.1: nothing after Close).
    assert!(out.frames.is_empty());
}

#[test]
fn client_delivers_data_received_after_its_close() {
    data_after_our_close_is_still_delivered(Role::Client);
}

#[test]
fn server_delivers_data_received_after_its_close() {
    data_after_our_close_is_still_delivered(Role::Server);
}

// ----- local close and send rules -----

fn close_refuses_invalid_codes_and_reasons(role: Role) {
    let (mut conn, now) = open(role);
    for code in [1005u16, 1006, 1015, 0, 999, 1004, 2000, 5000] {
        assert_eq!(
            conn.close(CloseCode(code), "", now),
            Err(CloseError::InvalidCode(code))
        );
    }
    assert_eq!(
        conn.close(CloseCode::NORMAL, &"x".repeat(124), now),
        Err(CloseError::ReasonTooLong(124))
    );
    assert_eq!(conn.state(), State::Open, "a refused close changes nothing");
    assert_eq!(conn.poll_transmit(), None);
}

#[test]
fn client_close_refuses_invalid_codes_and_reasons() {
    close_refuses_invalid_codes_and_reasons(Role::Client);
}

#[test]
fn server_close_refuses_invalid_codes_and_reasons() {
    close_refuses_invalid_codes_and_reasons(Role::Server);
}

fn send_after_close_is_an_error(role: Role) {
    let (mut conn, now) = open(role);
    conn.close(CloseCode::NORMAL, "", now).unwrap();
    assert_eq!(
        conn.send(Message::Text("late".into())),
        Err(SendError::Closing)
    );
    // A second close is a no-op: one Close frame only.
    conn.close(CloseCode::GOING_AWAY, "", now).unwrap();
    let out = drain(&mut conn);
    assert_eq!(out.frames.len(), 1);
    conn.receive_data(&peer_frame(role, true, OpCode::Close, &[0x03, 0xe8]), now);
    drain(&mut conn);
    if role == Role::Client {
        conn.receive_eof(now);
    }
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(
        conn.send(Message::Text("later".into())),
        Err(SendError::Closed)
    );
}

#[test]
fn client_send_after_close_is_an_error() {
    send_after_close_is_an_error(Role::Client);
}

#[test]
fn server_send_after_close_is_an_error() {
    send_after_close_is_an_error(Role::Server);
}

#[test]
fn client_send_before_handshake_is_an_error() {
    let mut pair = Pair::new(Config::default());
    assert_eq!(
        pair.client.send(Message::Text("early".into())),
        Err(SendError::NotOpen)
    );
    pair.client.connect(pair.now);
    assert_eq!(
        pair.client.send(Message::Text("early".into())),
        Err(SendError::NotOpen)
    );
}

#[test]
fn server_send_before_handshake_is_an_error() {
    let mut pair = Pair::new(Config::default());
    assert_eq!(
        pair.server.send(Message::Binary(Bytes::new())),
        Err(SendError::NotOpen)
    );
}

#[test]
fn ping_payload_over_125_bytes_is_refused() {
    let (mut conn, _) = open(Role::Client);
    assert_eq!(
        conn.send(Message::Ping(Bytes::from(vec![0; 126]))),
        Err(SendError::ControlFrameTooLong(126))
    );
}

// ----- transport loss and timeouts -----

fn eof_while_open_is_1006(role: Role) {
    let (mut conn, now) = open(role);
    conn.receive_eof(now);
    assert_eq!(conn.state(), State::Closed);
    let info = conn.close_info().unwrap();
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.initiator, Initiator::Abnormal);
    assert_eq!(info.error, Some(Error::ConnectionLost));
    assert!(!info.clean);
    let out = drain(&mut conn);
    assert!(out.frames.is_empty());
    assert!(out.shutdown);
}

#[test]
fn client_sees_eof_while_open_as_1006() {
    eof_while_open_is_1006(Role::Client);
}

#[test]
fn server_sees_eof_while_open_as_1006() {
    eof_while_open_is_1006(Role::Server);
}

#[test]
fn partial_message_is_dropped_but_complete_ones_are_kept_at_eof() {
    let (mut conn, now) = open(Role::Server);
    let mut bytes = frame_from(Role::Client, true, OpCode::Text, b"whole");
    bytes.extend(frame_from(Role::Client, true, OpCode::Text, b"partial"));
    conn.receive_data(&bytes[..bytes.len() - 3], now);
    conn.receive_eof(now);
    let out = drain(&mut conn);
    assert_eq!(out.events[0], Event::Message(Message::Text("whole".into())));
    assert!(matches!(out.events[1], Event::Close(_)));
    assert_eq!(out.events.len(), 2);
}

#[test]
fn client_handshake_timeout_reports_1006() {
    let mut pair = Pair::new(Config::default());
    let now = pair.now;
    pair.client.connect(now);
    let deadline = pair.client.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(10));
    pair.client.handle_timeout(deadline);
    assert_eq!(pair.client.state(), State::Closed);
    let info = pair.client.close_info().unwrap();
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.error, Some(Error::HandshakeTimeout));
}

#[test]
fn server_handshake_timeout_drops_a_slow_client() {
    let now = Instant::now();
    let mut server = Connection::server(Config::default(), now);
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n", now);
    assert_eq!(server.state(), State::Connecting);
    server.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(server.state(), State::Closed);
    assert_eq!(
        server.close_info().unwrap().error,
        Some(Error::HandshakeTimeout)
    );
}

fn keepalive_without_pong_closes_with_1011(role: Role) {
    let config = Config {
        ping_interval: Some(Duration::from_secs(5)),
        pong_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let (mut conn, now) = open_with(role, config);
    let ping_at = conn.poll_timeout().unwrap();
    assert_eq!(ping_at, now + Duration::from_secs(5));
    conn.handle_timeout(ping_at);
    let out = drain(&mut conn);
    assert_eq!(out.frames.len(), 1);
    assert_eq!(out.frames[0].1, OpCode::Ping);
    conn.handle_timeout(ping_at + Duration::from_secs(3));
    assert_eq!(conn.state(), State::Closed);
    let out = drain(&mut conn);
    assert_eq!(&out.frames[0].2[..2], &1011u16.to_be_bytes());
    assert_eq!(
        conn.close_info().unwrap().error,
        Some(Error::KeepaliveTimeout)
    );
}

#[test]
fn client_keepalive_without_pong_closes_with_1011() {
    keepalive_without_pong_closes_with_1011(Role::Client);
}

#[test]
fn server_keepalive_without_pong_closes_with_1011() {
    keepalive_without_pong_closes_with_1011(Role::Server);
}

#[test]
fn keepalive_pong_keeps_the_session_open() {
    let config = Config {
        ping_interval: Some(Duration::from_secs(5)),
        pong_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut pair = Pair::open_with(config);
    pair.advance(Duration::from_secs(60));
    assert_eq!(pair.client.state(), State::Open);
    assert_eq!(pair.server.state(), State::Open);
    let pings = pair
        .server_log
        .messages()
        .iter()
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    assert!(pings >= 10, "{pings} pings");
}

#[test]
fn application_fail_sends_its_code_and_closes_at_once() {
    let (mut conn, now) = open(Role::Server);
    conn.fail(CloseCode::UNSUPPORTED_DATA, "binary only", now)
        .unwrap();
    assert_eq!(conn.state(), State::Closed);
    let out = drain(&mut conn);
    assert_eq!(
        out.frames[0].2,
        CloseFrame::new(CloseCode(1003), "binary only")
            .unwrap()
            .payload()
    );
    assert!(out.shutdown);
    assert_eq!(
        conn.fail(CloseCode::NO_STATUS, "", now),
        Err(CloseError::InvalidCode(1005))
    );
}

fn answers_message_received_before_the_peers_close(role: Role) {
    // A message and the peer's Close in one read: the application takes the message,
    // answers it, then takes the Close; the answer goes out before the reply Close.
    let (mut conn, now) = open(role);
    let mut bytes = peer_frame(role, true, OpCode::Text, b"last words");
    bytes.extend(peer_frame(role, true, OpCode::Close, &[0x03, 0xe8]));
    conn.receive_data(&bytes, now);
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text("last words".into())))
    );
    assert!(conn.close_reply_pending());
    conn.send(Message::Text("echo: last words".into())).unwrap();
    let Some(Event::Close(info)) = conn.poll_event() else {
        panic!("expected the close notification")
    };
    assert!(info.clean);
    // on_close runs now: still CLOSING{received}, the reply not yet queued.
    assert_eq!(
        conn.state(),
        State::Closing {
            close_sent: false,
            close_received: true
        }
    );
    let out = drain(&mut conn);
    let masked = role == Role::Client;
    assert_eq!(
        out.frames,
        [
            (
                true,
                OpCode::Text,
                Bytes::from_static(b"echo: last words"),
                masked
            ),
            (
                true,
                OpCode::Close,
                Bytes::from_static(&[0x03, 0xe8]),
                masked
            ),
        ]
    );
    assert_eq!(
        conn.send(Message::Text("late".into())),
        Err(if role == Role::Server {
            SendError::Closed
        } else {
            SendError::Closing
        })
    );
}

#[test]
fn client_answers_message_received_before_the_peers_close() {
    answers_message_received_before_the_peers_close(Role::Client);
}

#[test]
fn server_answers_message_received_before_the_peers_close() {
    answers_message_received_before_the_peers_close(Role::Server);
}

#[test]
fn sessions_after_a_handshake_made_elsewhere_talk_and_close_cleanly() {
    let mut pair = Pair::after_handshake(Config::default());
    for conn in [&mut pair.client, &mut pair.server] {
        assert_eq!(
            conn.history(),
            [State::New, State::Connecting, State::Connected]
        );
        assert!(conn.poll_transmit().is_none(), "no handshake is written");
    }
    pair.client.open();
    pair.server.open();
    pair.client.send(Message::Text("hello".into())).unwrap();
    pair.run();
    assert_eq!(pair.server_log.messages(), [&Message::Text("hello".into())]);
    pair.server
        .send(Message::Binary(Bytes::from_static(b"\x01\x02")))
        .unwrap();
    pair.client
        .close(CloseCode::NORMAL, "done", pair.now)
        .unwrap();
    pair.run();
    assert_eq!(
        pair.client_log.messages(),
        [&Message::Binary(Bytes::from_static(b"\x01\x02"))]
    );
    // Each side keeps its role's rules: the client masks, the server does not.
    let client_frames = decode_frames(&pair.client_log.wrote);
    let server_frames = decode_frames(&pair.server_log.wrote);
    assert!(
        client_frames.iter().all(|frame| frame.3),
        "{client_frames:?}"
    );
    assert!(
        server_frames.iter().all(|frame| !frame.3),
        "{server_frames:?}"
    );
    for (conn, log) in [
        (&pair.client, &pair.client_log),
        (&pair.server, &pair.server_log),
    ] {
        assert_eq!(conn.state(), State::Closed);
        let infos = log.close_events();
        assert_eq!(infos.len(), 1);
        assert!(infos[0].clean, "{:?}", infos[0]);
        assert_eq!(infos[0].code, CloseCode::NORMAL);
    }
}

#[test]
fn a_server_after_a_handshake_made_elsewhere_refuses_unmasked_frames() {
    let mut pair = Pair::after_handshake(Config::default());
    pair.server.open();
    let now = pair.now;
    pair.server
        .receive_data(&frame(true, OpCode::Text, b"unmasked", None), now);
    pair.drain_events(Role::Server);
    pair.drain_transmits(Role::Server);
    let out = decode_frames(&pair.server_log.wrote);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, OpCode::Close);
    assert_eq!(&out[0].2[..2], &1002u16.to_be_bytes());
}

#[test]
fn input_is_taken_until_the_peers_close_and_dropped_after() {
    for role in [Role::Client, Role::Server] {
        let (mut conn, now) = open(role);
        assert!(conn.takes_input());
        conn.receive_data(&peer_frame(role, true, OpCode::Text, b"before"), now);
        assert!(conn.takes_input());
        conn.receive_data(&peer_frame(role, true, OpCode::Close, &[0x03, 0xe8]), now);
        assert!(!conn.takes_input(), "{role:?}");
        // What follows the Close is dropped: no message, however much arrives.
        conn.receive_data(&peer_frame(role, true, OpCode::Text, b"after"), now);
        let messages: Vec<_> = std::iter::from_fn(|| conn.poll_event())
            .filter(|event| matches!(event, Event::Message(_)))
            .collect();
        assert_eq!(messages.len(), 1, "{role:?}");
    }
}

/// Header fields as another HTTP implementation carries them.
fn header_map(fields: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// A client session whose upgrade another HTTP client makes, and the fields it sends.
fn client_upgrade(config: Config, now: Instant) -> (Connection, Vec<(String, String)>) {
    let request = crate::handshake::ClientRequest::new("example.com", "/chat")
        .subprotocol("chat")
        .subprotocol("superchat");
    Connection::client_upgrade(request, config, now)
}

#[test]
fn a_client_upgrade_made_by_another_http_client_agrees_as_connect_does() {
    let config = Config {
        deflate: crate::extension::DeflateConfig::enabled(),
        ..Config::default()
    };
    let mut pair = Pair::after_handshake(config.clone());
    let now = pair.now;
    let (mut client, fields) = client_upgrade(config.clone(), now);
    assert_eq!(client.history(), [State::New, State::Connecting]);
    assert!(
        client.poll_transmit().is_none(),
        "the HTTP client writes the request"
    );
    let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Host",
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions"
        ]
    );

    // The server decides on the request those fields make, as Sockeye's server does.
    let request = crate::handshake::validate_request(
        "GET",
        http::Version::HTTP_11,
        "/chat",
        header_map(&fields),
    )
    .expect("a valid upgrade request");
    let accept = crate::handshake::Accept {
        subprotocol: Some("superchat".into()),
        ..Default::default()
    };
    let (server, answer) = Connection::server_upgraded(config, &request, accept, now).unwrap();
    client
        .client_upgraded(
            crate::handshake::Response::from_head(101, header_map(&answer)),
            now,
        )
        .expect("the server's 101 answers our request");
    assert_eq!(
        client.history(),
        [State::New, State::Connecting, State::Connected]
    );
    assert_eq!(client.subprotocol(), Some("superchat"));
    assert!(
        client.poll_transmit().is_none(),
        "nothing written before a message"
    );

    // Both sides compress: a message of 10,000 repeated bytes crosses in far fewer.
    pair.client = client;
    pair.server = server;
    pair.client.open();
    pair.server.open();
    let text = "a".repeat(10_000);
    pair.client.send(Message::Text(text.clone())).unwrap();
    pair.server.send(Message::Text(text.clone())).unwrap();
    pair.client.close(CloseCode::NORMAL, "", now).unwrap();
    pair.run();
    assert_eq!(pair.server_log.messages(), [&Message::Text(text.clone())]);
    assert_eq!(pair.client_log.messages(), [&Message::Text(text)]);
    for log in [&pair.client_log, &pair.server_log] {
        let frames = decode_frames(&log.wrote);
        assert!(frames[0].2.len() < 100, "{} bytes", frames[0].2.len());
        assert!(log.close_events()[0].clean);
    }
}

#[test]
fn a_client_upgrade_fails_on_a_response_that_does_not_answer_it() {
    let now = Instant::now();
    let accept_of = |fields: &[(String, String)]| {
        let key = &fields
            .iter()
            .find(|(name, _)| name == "Sec-WebSocket-Key")
            .unwrap()
            .1;
        crate::handshake::accept_key(key.as_bytes())
    };
    let upgrade = |accept: &str, extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("Upgrade".to_owned(), "websocket".to_owned()),
            ("Connection".to_owned(), "Upgrade".to_owned()),
            ("Sec-WebSocket-Accept".to_owned(), accept.to_owned()),
        ];
        fields.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        header_map(&fields)
    };
    // Each case: what it is, its response from the right accept value, its error.
    type Respond = Box<dyn Fn(&str) -> (u16, http::HeaderMap)>;
    type Check = fn(&HandshakeError) -> bool;
    let cases: [(&str, Respond, Check); 4] = [
        (
            "a refusal",
            Box::new(|_| (403, http::HeaderMap::new())),
            |e| matches!(e, HandshakeError::UnexpectedStatus { status: 403, .. }),
        ),
        (
            "another key's accept value",
            Box::new(move |_| (101, upgrade("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &[]))),
            |e| matches!(e, HandshakeError::BadAccept(_)),
        ),
        (
            "a subprotocol not offered",
            Box::new(move |accept| (101, upgrade(accept, &[("Sec-WebSocket-Protocol", "other")]))),
            |e| matches!(e, HandshakeError::UnofferedSubprotocol(_)),
        ),
        (
            "compression not offered",
            Box::new(move |accept| {
                (
                    101,
                    upgrade(
                        accept,
                        &[("Sec-WebSocket-Extensions", "permessage-deflate")],
                    ),
                )
            }),
            |e| matches!(e, HandshakeError::UnofferedExtension(_)),
        ),
    ];
    for (what, response, check) in cases {
        let (mut client, fields) = client_upgrade(Config::default(), now);
        let (status, headers) = response(&accept_of(&fields));
        let error = client
            .client_upgraded(crate::handshake::Response::from_head(status, headers), now)
            .expect_err(what);
        assert!(check(&error), "{what}: {error:?}");
        assert_eq!(client.state(), State::Closed, "{what}");
        // No Close frame: the connection is no WebSocket yet; only closing it is left.
        assert!(
            matches!(client.poll_transmit(), Some(Transmit::Shutdown)),
            "{what}"
        );
        assert!(client.poll_transmit().is_none(), "{what}");
        let info = client.close_info().expect("the outcome");
        assert_eq!(info.error, Some(Error::Handshake(error)), "{what}");
        // A second response changes nothing.
        let again = client.client_upgraded(
            crate::handshake::Response::from_head(101, http::HeaderMap::new()),
            now,
        );
        assert!(matches!(again, Err(HandshakeError::Http(_))), "{what}");
    }
}

/// A frame header as written: FIN, RSV, opcode, payload length and masking key.
type Written = (bool, u8, OpCode, usize, Option<[u8; 4]>);

/// The headers of the frames `log` wrote after the handshake.
fn headers_written(log: &super::pair::Log) -> Vec<Written> {
    let mut rest = &log.wrote[log.wrote.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let mut headers = Vec::new();
    while let Some((header, n)) = crate::frame::FrameHeader::parse(rest).unwrap() {
        let len = header.len as usize;
        headers.push((header.fin, header.rsv, header.opcode, len, header.mask));
        rest = &rest[n + len..];
    }
    headers
}

#[test]
fn data_messages_longer_than_the_send_frame_size_go_out_as_fragments() {
    let config = Config {
        max_send_frame_size: Some(16),
        ..Config::default()
    };
    let mut pair = Pair::open_with(config);
    let binary = Bytes::from((0..40u8).collect::<Vec<u8>>());
    pair.client.send(Message::Binary(binary.clone())).unwrap();
    // Exactly the size: one frame. A control frame is never split.
    pair.client.send(Message::Text("x".repeat(16))).unwrap();
    pair.client
        .send(Message::Ping(Bytes::from(vec![7; 100])))
        .unwrap();
    pair.server.send(Message::Text("é".repeat(10))).unwrap();
    pair.run();

    let client = headers_written(&pair.client_log);
    let shape: Vec<(bool, u8, OpCode, usize)> =
        client.iter().map(|h| (h.0, h.1, h.2, h.3)).collect();
    assert_eq!(
        shape,
        [
            (false, 0, OpCode::Binary, 16),
            (false, 0, OpCode::Continuation, 16),
            (true, 0, OpCode::Continuation, 8),
            (true, 0, OpCode::Text, 16),
            (true, 0, OpCode::Ping, 100),
        ]
    );
    // 5.3: every frame of a client masked, each with a key of its own.
    let keys: std::collections::HashSet<[u8; 4]> =
        client.iter().map(|h| h.4.expect("masked")).collect();
    assert_eq!(keys.len(), client.len());
    // The server splits too, whatever the pieces do to the UTF-8 (a text message is
    // valid as a whole: 20 bytes of two-byte characters, cut at 16).
    let server: Vec<(bool, OpCode, usize)> = headers_written(&pair.server_log)
        .iter()
        .map(|h| (h.0, h.2, h.3))
        .collect();
    assert_eq!(
        &server[..2],
        [(false, OpCode::Text, 16), (true, OpCode::Continuation, 4)]
    );
    assert_eq!(
        pair.server_log.messages()[..2],
        [&Message::Binary(binary), &Message::Text("x".repeat(16))]
    );
    assert_eq!(
        pair.client_log.messages()[..2],
        [
            &Message::Text("é".repeat(10)),
            &Message::Pong(Bytes::from(vec![7; 100]))
        ]
    );
}

#[test]
fn a_compressed_message_is_split_after_compression_with_rsv1_on_its_first_frame() {
    let config = Config {
        max_send_frame_size: Some(64),
        deflate: crate::extension::DeflateConfig::enabled(),
        ..Config::default()
    };
    let mut pair = Pair::open_with(config);
    // Bytes that do not compress: the compressed payload is longer than 64 bytes.
    let noise: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    pair.server
        .send(Message::Binary(noise.clone().into()))
        .unwrap();
    pair.run();
    let frames = headers_written(&pair.server_log);
    assert!(frames.len() >= 5, "{frames:?}");
    let (first, others) = frames.split_first().unwrap();
    assert_eq!(
        (first.0, first.1, first.2),
        (false, crate::frame::RSV1, OpCode::Binary)
    );
    for (i, frame) in others.iter().enumerate() {
        assert_eq!((frame.1, frame.2), (0, OpCode::Continuation), "frame {i}");
        assert!(frame.3 <= 64);
        assert_eq!(frame.0, i == others.len() - 1);
    }
    assert_eq!(pair.client_log.messages(), [&Message::Binary(noise.into())]);
}

#[test]
fn a_client_upgrade_refuses_an_extension_answer_as_its_own_handshake_does() {
    // RFC 7692 5, one rule for both ways a response arrives: Close 1010 saying why, then
    // the session CLOSED with the handshake error.
    let config = Config {
        deflate: crate::extension::DeflateConfig::enabled(),
        ..Config::default()
    };
    let now = Instant::now();
    let (mut client, fields) = client_upgrade(config, now);
    let key = &fields
        .iter()
        .find(|(name, _)| name == "Sec-WebSocket-Key")
        .unwrap()
        .1;
    let answer = [
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        (
            "Sec-WebSocket-Accept".to_owned(),
            crate::handshake::accept_key(key.as_bytes()),
        ),
        (
            "Sec-WebSocket-Extensions".to_owned(),
            "permessage-deflate; client_max_window_bits=16".to_owned(),
        ),
    ];
    let error = client
        .client_upgraded(
            crate::handshake::Response::from_head(101, header_map(&answer)),
            now,
        )
        .expect_err("an invalid window size");
    assert!(
        matches!(error, HandshakeError::ExtensionResponse { .. }),
        "{error:?}"
    );
    assert_eq!(client.state(), State::Closed);
    let info = client.close_info().expect("the outcome");
    assert_eq!(info.error, Some(Error::Handshake(error)));
    assert_eq!(
        info.sent.as_ref().and_then(|frame| frame.code),
        Some(CloseCode::MANDATORY_EXTENSION)
    );
    let Some(Transmit::Data(close)) = client.poll_transmit() else {
        panic!("no Close frame to write")
    };
    let frames = decode_frames(&close);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1, OpCode::Close);
    assert!(frames[0].3, "masked");
    assert!(matches!(client.poll_transmit(), Some(Transmit::Shutdown)));
}

#[test]
fn a_message_sent_in_fragments_goes_out_as_continuation_frames_and_arrives_whole() {
    let config = Config {
        max_send_frame_size: Some(16),
        ..Config::default()
    };
    let mut pair = Pair::open_with(config);
    let c = &mut pair.client;
    c.send_fragment(Fragment::from("Hello, "), false).unwrap();
    // 5.4: control frames between fragments.
    c.send(Message::Ping(Bytes::from_static(b"between")))
        .unwrap();
    // An empty fragment is a frame too; a long one is split at the frame size.
    c.send_fragment(Fragment::from(""), false).unwrap();
    c.send_fragment(Fragment::from("wörld".repeat(4)), false)
        .unwrap();
    c.send_fragment(Fragment::from("!"), true).unwrap();
    // Then a binary message in fragments, and a whole one.
    c.send_fragment(Fragment::from(vec![1, 2, 3]), false)
        .unwrap();
    c.send_fragment(Fragment::from(Bytes::new()), true).unwrap();
    c.send(Message::Binary(Bytes::from_static(b"whole")))
        .unwrap();
    pair.run();

    let shape: Vec<(bool, OpCode, usize)> = headers_written(&pair.client_log)
        .iter()
        .map(|h| (h.0, h.2, h.3))
        .collect();
    assert_eq!(
        shape,
        [
            (false, OpCode::Text, 7),
            (true, OpCode::Ping, 7),
            (false, OpCode::Continuation, 0),
            (false, OpCode::Continuation, 16),
            (false, OpCode::Continuation, 8),
            (true, OpCode::Continuation, 1),
            (false, OpCode::Binary, 3),
            (true, OpCode::Continuation, 0),
            (true, OpCode::Binary, 5),
        ]
    );
    assert_eq!(
        pair.server_log.messages(),
        [
            &Message::Ping(Bytes::from_static(b"between")),
            &Message::Text(format!("Hello, {}!", "wörld".repeat(4))),
            &Message::Binary(Bytes::from_static(&[1, 2, 3])),
            &Message::Binary(Bytes::from_static(b"whole")),
        ]
    );
}

#[test]
fn no_other_data_message_starts_before_the_last_fragment() {
    let mut pair = Pair::open();
    let s = &mut pair.server;
    s.send_fragment(Fragment::from("one "), false).unwrap();
    let refused = [
        s.send(Message::Text("another".into())),
        s.send(Message::Binary(Bytes::from_static(b"another"))),
        s.send_fragment(Fragment::from(vec![0]), true),
    ];
    assert_eq!(refused, [const { Err(SendError::UnfinishedMessage) }; 3]);
    s.send(Message::Pong(Bytes::new())).unwrap();
    s.send_fragment(Fragment::from("message"), true).unwrap();
    // Finished: a new message may start, whole or in fragments.
    s.send(Message::Text("next".into())).unwrap();
    s.send_fragment(Fragment::from(vec![9]), true).unwrap();
    pair.run();
    assert_eq!(
        pair.client_log.messages(),
        [
            &Message::Pong(Bytes::new()),
            &Message::Text("one message".into()),
            &Message::Text("next".into()),
            &Message::Binary(Bytes::from_static(&[9])),
        ]
    );
    assert_eq!(pair.server.state(), State::Open);
}

#[test]
fn a_fragmented_message_goes_out_uncompressed_under_deflate_and_stops_at_close() {
    let config = Config {
        deflate: crate::extension::DeflateConfig::enabled(),
        ..Config::default()
    };
    let mut pair = Pair::open_with(config);
    assert!(pair.server.deflate().is_some());
    let text = "compressible ".repeat(20);
    pair.server
        .send_fragment(Fragment::from(text.clone()), false)
        .unwrap();
    pair.server
        .send_fragment(Fragment::from(text.clone()), true)
        .unwrap();
    pair.server.send(Message::Text(text.clone())).unwrap();
    // A Close may come in the middle of a message: nothing of it follows.
    pair.server
        .send_fragment(Fragment::from("never finished"), false)
        .unwrap();
    let now = pair.now;
    pair.server.close(CloseCode::NORMAL, "", now).unwrap();
    assert_eq!(
        pair.server.send_fragment(Fragment::from("late"), true),
        Err(SendError::Closing)
    );
    pair.run();
    let frames: Vec<(bool, u8, OpCode)> = headers_written(&pair.server_log)
        .iter()
        .map(|h| (h.0, h.1, h.2))
        .collect();
    // RSV1 (RFC 7692 6) on the whole message only.
    assert_eq!(
        frames,
        [
            (false, 0, OpCode::Text),
            (true, 0, OpCode::Continuation),
            (true, RSV1, OpCode::Text),
            (false, 0, OpCode::Text),
            (true, 0, OpCode::Close),
        ]
    );
    assert_eq!(
        pair.client_log.messages(),
        [&Message::Text(text.repeat(2)), &Message::Text(text)]
    );
}

#[test]
fn a_send_frame_size_of_zero_is_taken_as_one() {
    let config = Config {
        max_send_frame_size: Some(0),
        ..Config::default()
    };
    let mut pair = Pair::open_with(config);
    pair.server.send(Message::Text("abc".into())).unwrap();
    pair.run();
    let frames: Vec<(bool, OpCode, usize)> = headers_written(&pair.server_log)
        .iter()
        .map(|h| (h.0, h.2, h.3))
        .collect();
    assert_eq!(
        frames,
        [
            (false, OpCode::Text, 1),
            (false, OpCode::Continuation, 1),
            (true, OpCode::Continuation, 1),
        ]
    );
    assert_eq!(pair.client_log.messages(), [&Message::Text("abc".into())]);
}

#[test]
fn a_ping_on_demand_measures_the_round_trip_of_its_pong() {
    let mut pair = Pair::open();
    assert_eq!(pair.client.latency(), None);
    let now = pair.now;
    pair.client.ping(now).unwrap();
    // A second call while the first Ping awaits its Pong sends nothing more.
    pair.client.ping(now).unwrap();
    pair.drain_transmits(Role::Client);
    let pings: Vec<OpCode> = headers_written(&pair.client_log)
        .iter()
        .map(|h| h.2)
        .collect();
    assert_eq!(pings, [OpCode::Ping]);
    // The Pong comes back 30 ms later.
    pair.now += Duration::from_millis(30);
    pair.run();
    assert_eq!(pair.client.latency(), Some(Duration::from_millis(30)));
    assert_eq!(pair.client.pongs_received(), 1);
    // A Pong that answers no Ping of ours (unsolicited, 5.5.3) changes nothing.
    pair.server
        .send(Message::Pong(Bytes::from_static(b"unsolicited")))
        .unwrap();
    pair.now += Duration::from_millis(50);
    pair.run();
    assert_eq!(pair.client.latency(), Some(Duration::from_millis(30)));
    assert_eq!(pair.client.pongs_received(), 1);
    // The next Ping is measured on its own.
    let now = pair.now;
    pair.server.ping(now).unwrap();
    pair.now += Duration::from_millis(7);
    pair.run();
    assert_eq!(pair.server.latency(), Some(Duration::from_millis(7)));
    assert_eq!(pair.server.pongs_received(), 1);
    assert_eq!(pair.client.state(), State::Open);
}

#[test]
fn a_ping_on_demand_without_pong_closes_with_1011_and_is_refused_once_closing() {
    let config = Config {
        pong_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let (mut conn, now) = open_with(Role::Server, config);
    // No keepalive configured: the Ping's Pong is awaited all the same.
    conn.ping(now).unwrap();
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(3)));
    drain(&mut conn);
    conn.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(
        conn.close_info().unwrap().error,
        Some(Error::KeepaliveTimeout)
    );
    assert_eq!(conn.ping(now), Err(SendError::Closed));

    let (mut conn, now) = open_with(Role::Client, Config::default());
    conn.close(CloseCode::NORMAL, "", now).unwrap();
    assert_eq!(conn.ping(now), Err(SendError::Closing));
    assert_eq!(conn.latency(), None);
}
