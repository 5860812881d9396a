//! permessage-deflate in the session (RFC 7692), in mirrored client/server pairs: the
//! negotiation at the handshake (including the client's 1010), RSV1 on the wire, compressed
//! and fragmented messages, context takeover, and the limits on inflated messages.

use bytes::Bytes;
use rand::{SeedableRng, rngs::StdRng};

use super::pair::{Pair, frame_rsv};
use crate::Role;
use crate::close::CloseCode;
use crate::config::Config;
use crate::error::{Error, HandshakeError, ProtocolError};
use crate::extension::deflate::PerMessageDeflate;
use crate::extension::{DeflateConfig, DeflateParams, NegotiationError};
use crate::frame::{FrameHeader, OpCode, RSV1};
use crate::handshake::{self, Accept, ClientRequest, HandshakeLimits};
use crate::mask::apply_mask;
use crate::session::{Connection, Event, Message, State, Transmit};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn deflate_config(deflate: DeflateConfig) -> Config {
    Config {
        deflate,
        ..Config::default()
    }
}

fn enabled() -> Config {
    deflate_config(DeflateConfig::enabled())
}

/// A pair where the client sends `request` (offers written by hand, say).
fn pair_with_request(request: ClientRequest, client: Config, server: Config) -> Pair {
    let mut pair = Pair::with(client.clone(), server);
    pair.client = Connection::client_with_rng(request, client, StdRng::seed_from_u64(7));
    pair
}

fn connect(mut pair: Pair) -> Pair {
    pair.client.connect(pair.now);
    pair.run();
    pair
}

/// A JSON-like text message of about `len` bytes.
fn json_text(len: usize) -> String {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"id\":{i},\"name\":\"sensor-{}\",\"value\":{}.{},\"ok\":true}},",
            i % 7,
            i * 31 % 1000,
            i % 10
        ));
        i += 1;
    }
    text.push(']');
    text
}

/// Frames in `bytes`, unmasked, with their headers (RSV bits included).
fn frames(bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((header, n)) = FrameHeader::parse(rest).unwrap() {
        let len = header.len as usize;
        let mut payload = rest[n..n + len].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        out.push((header, payload));
        rest = &rest[n + len..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    out
}

/// What `conn` wrote from now on, as frames.
fn written(conn: &mut Connection) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut bytes = Vec::new();
    while let Some(transmit) = conn.poll_transmit() {
        if let Transmit::Data(data) = transmit {
            bytes.extend_from_slice(&data);
        }
    }
    frames(&bytes)
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// One side of a pair that negotiated the extension with `config` on both sides, alone,
/// with its output drained.
fn open_side(role: Role, config: Config) -> (Connection, std::time::Instant) {
    let pair = connect(Pair::with(config.clone(), config));
    assert!(pair.client.deflate().is_some() && pair.server.deflate().is_some());
    let now = pair.now;
    let mut conn = match role {
        Role::Client => pair.client,
        Role::Server => pair.server,
    };
    events(&mut conn);
    written(&mut conn);
    (conn, now)
}

fn peer(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// A compressor of the peer of `role`, with default parameters and no threshold.
fn peer_compressor(role: Role) -> PerMessageDeflate {
    PerMessageDeflate::new(
        peer(role),
        DeflateParams::default(),
        &DeflateConfig {
            threshold: 0,
            ..DeflateConfig::enabled()
        },
    )
}

/// A frame as the peer of `role` sends it (masked toward a server).
fn peer_frame(role: Role, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mask = (role == Role::Server).then_some(MASK);
    frame_rsv(fin, rsv, opcode, payload, mask)
}

/// Checks that `conn` failed with `error`, and that its last frame is a Close with the
/// error's code.
fn assert_failed(conn: &mut Connection, error: ProtocolError) {
    let code = CloseCode::from(&error);
    let events = events(conn);
    let Some(Event::Close(info)) = events.last() else {
        panic!("no Close event: {events:?}");
    };
    assert_eq!(info.error, Some(Error::Protocol(error)));
    let frames = written(conn);
    let (header, payload) = frames.last().expect("a Close frame");
    assert_eq!(header.opcode, OpCode::Close);
    assert_eq!(header.rsv, 0, "a Close frame is never compressed");
    assert_eq!(&payload[..2], &code.0.to_be_bytes());
    assert_eq!(conn.state(), State::Closed);
}

// ----- negotiation -----

#[test]
fn deflate_is_off_by_default() {
    let pair = connect(Pair::new(Config::default()));
    assert!(!String::from_utf8_lossy(&pair.client_log.wrote).contains("Sec-WebSocket-Extensions"));
    assert_eq!(pair.client.deflate(), None);
    assert_eq!(pair.server.deflate(), None);
}

#[test]
fn pair_negotiates_deflate() {
    let pair = connect(Pair::new(enabled()));
    let request = String::from_utf8_lossy(&pair.client_log.wrote).into_owned();
    assert!(
        request.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        ),
        "{request}"
    );
    assert_eq!(
        pair.client.response().unwrap().extensions,
        ["permessage-deflate"]
    );
    assert_eq!(pair.client.deflate(), Some(&DeflateParams::default()));
    assert_eq!(pair.server.deflate(), Some(&DeflateParams::default()));
}

#[test]
fn only_a_client_offers_and_only_a_server_that_accepts_uses_it() {
    let pair = connect(Pair::with(enabled(), Config::default()));
    assert_eq!(pair.client.deflate(), None);
    assert_eq!(pair.server.deflate(), None);
    assert!(pair.client.response().unwrap().extensions.is_empty());
    let pair = connect(Pair::with(Config::default(), enabled()));
    assert_eq!(pair.client.deflate(), None);
    assert_eq!(pair.server.deflate(), None);
}

#[test]
fn pair_negotiates_every_parameter() {
    let client = deflate_config(DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(12),
        ..DeflateConfig::enabled()
    });
    let server = deflate_config(DeflateConfig {
        client_max_window_bits: Some(11),
        ..DeflateConfig::enabled()
    });
    let mut pair = connect(Pair::with(client, server));
    let agreed = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(11),
    };
    assert_eq!(pair.client.deflate(), Some(&agreed));
    assert_eq!(pair.server.deflate(), Some(&agreed));
    // Messages flow both ways with these windows.
    let text = json_text(20_000);
    pair.client.send(Message::Text(text.clone())).unwrap();
    pair.server.send(Message::Text(text.clone())).unwrap();
    pair.run();
    let expected = Message::Text(text);
    assert_eq!(pair.server_log.messages(), [&expected]);
    assert_eq!(pair.client_log.messages(), [&expected]);
}

#[test]
fn server_takes_the_first_acceptable_of_several_offers() {
    let request = ClientRequest::new("example.com", "/chat")
        .extension("permessage-deflate; server_max_window_bits=7")
        .extension("permessage-deflate; server_max_window_bits=10")
        .extension("permessage-deflate");
    let pair = connect(pair_with_request(request, Config::default(), enabled()));
    let agreed = DeflateParams {
        server_max_window_bits: Some(10),
        ..DeflateParams::default()
    };
    assert_eq!(pair.server.deflate(), Some(&agreed));
    assert_eq!(pair.client.deflate(), Some(&agreed));
    assert_eq!(pair.client.state(), State::Open);
}

#[test]
fn server_without_an_acceptable_offer_runs_without_the_extension() {
    let request = ClientRequest::new("example.com", "/chat")
        .extension("permessage-deflate; x-unknown")
        .extension("permessage-deflate; server_no_context_takeover=yes");
    let pair = connect(pair_with_request(request, Config::default(), enabled()));
    assert_eq!(pair.server.deflate(), None);
    assert!(pair.client.response().unwrap().extensions.is_empty());
    assert_eq!(pair.client.state(), State::Open);
}

#[test]
fn server_checks_the_response_its_application_writes() {
    let now = std::time::Instant::now();
    let request = ClientRequest::new("example.com", "/chat").extension("permessage-deflate");
    let mut client =
        Connection::client_with_rng(request, Config::default(), StdRng::seed_from_u64(1));
    client.connect(now);
    let mut server = Connection::server(Config::default(), now);
    while let Some(Transmit::Data(bytes)) = client.poll_transmit() {
        server.receive_data(&bytes, now);
    }
    assert_eq!(server.poll_event(), Some(Event::Request));
    // The offer had no client_max_window_bits: the response may not set it.
    let bad = Accept {
        extensions: vec!["permessage-deflate; client_max_window_bits=10".into()],
        ..Accept::default()
    };
    assert_eq!(
        server.accept(bad, now),
        Err(HandshakeError::ExtensionResponse {
            response: "permessage-deflate; client_max_window_bits=10".into(),
            error: NegotiationError::Unoffered("client_max_window_bits"),
        })
    );
    assert_eq!(server.state(), State::Connecting);
    // A valid one is used as it is, even with the extension disabled in the config.
    let good = Accept {
        extensions: vec!["permessage-deflate; server_no_context_takeover".into()],
        ..Accept::default()
    };
    server.accept(good, now).unwrap();
    assert_eq!(
        server.deflate(),
        Some(&DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        })
    );
}

/// The client's side of a handshake answered by a raw 101 with these extension lines.
fn client_given_response(config: Config, extensions: &str) -> Connection {
    let now = std::time::Instant::now();
    let mut client = Connection::client_with_rng(
        ClientRequest::new("example.com", "/chat"),
        config,
        StdRng::seed_from_u64(3),
    );
    client.connect(now);
    let mut request = Vec::new();
    while let Some(Transmit::Data(bytes)) = client.poll_transmit() {
        request.extend_from_slice(&bytes);
    }
    let (request, _) = handshake::parse_request(&request, &HandshakeLimits::default())
        .unwrap()
        .unwrap();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extensions}\r\n",
        handshake::accept_key(request.key.as_bytes())
    );
    client.receive_data(response.as_bytes(), now);
    client
}

/// RFC 7692 5: the client fails the connection: Close 1010 (masked) saying why, no
/// `Connected`, and the handshake error in the outcome.
fn assert_client_refuses(extensions: &str, error: NegotiationError) {
    let mut client = client_given_response(enabled(), extensions);
    let response = extensions
        .trim_end()
        .rsplit(": ")
        .next()
        .unwrap()
        .rsplit(", ")
        .next()
        .unwrap()
        .to_owned();
    let expected = HandshakeError::ExtensionResponse { response, error };
    let events = events(&mut client);
    assert_eq!(events.len(), 1, "{events:?}");
    let Event::Close(info) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(info.error, Some(Error::Handshake(expected.clone())));
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    let sent = info.sent.as_ref().expect("a Close frame was sent");
    assert_eq!(sent.code, Some(CloseCode::MANDATORY_EXTENSION));
    assert_eq!(client.state(), State::Closed);
    let mut bytes = Vec::new();
    let mut shutdown = false;
    while let Some(transmit) = client.poll_transmit() {
        match transmit {
            Transmit::Data(data) => bytes.extend_from_slice(&data),
            Transmit::Shutdown => shutdown = true,
        }
    }
    assert!(shutdown);
    let frames = frames(&bytes);
    assert_eq!(frames.len(), 1);
    let (header, payload) = &frames[0];
    assert_eq!(header.opcode, OpCode::Close);
    assert!(header.mask.is_some());
    assert_eq!(&payload[..2], &1010u16.to_be_bytes());
    let reason = std::str::from_utf8(&payload[2..]).unwrap();
    assert!(reason.starts_with("extension response"), "{reason}");
    assert_eq!(reason, sent.reason);
    assert_eq!(sent.reason, {
        let mut text = expected.to_string();
        text.truncate(123);
        text
    });
}

#[test]
fn client_refuses_response_with_unknown_parameter() {
    assert_client_refuses(
        "Sec-WebSocket-Extensions: permessage-deflate; x-unknown\r\n",
        NegotiationError::UnknownParameter("x-unknown".into()),
    );
}

#[test]
fn client_refuses_response_with_duplicate_parameter() {
    assert_client_refuses(
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; server_max_window_bits=10\r\n",
        NegotiationError::DuplicateParameter("server_max_window_bits".into()),
    );
}

#[test]
fn client_refuses_response_with_invalid_value() {
    assert_client_refuses(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16\r\n",
        NegotiationError::InvalidValue {
            name: "client_max_window_bits".into(),
            value: Some("16".into()),
        },
    );
}

#[test]
fn client_refuses_response_that_does_not_grant_its_request() {
    let config = deflate_config(DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::enabled()
    });
    let mut client =
        client_given_response(config, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    let Some(Event::Close(info)) = client.poll_event() else {
        panic!("no Close")
    };
    assert_eq!(
        info.error,
        Some(Error::Handshake(HandshakeError::ExtensionResponse {
            response: "permessage-deflate".into(),
            error: NegotiationError::NotGranted {
                asked: "server_no_context_takeover".into(),
                given: "context takeover".into()
            }
        }))
    );
    assert_eq!(
        info.sent.unwrap().code,
        Some(CloseCode::MANDATORY_EXTENSION)
    );
}

#[test]
fn client_refuses_extension_accepted_twice() {
    assert_client_refuses(
        "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
        NegotiationError::DuplicateExtension("permessage-deflate"),
    );
}

#[test]
fn client_accepts_valid_response() {
    let mut client = client_given_response(
        enabled(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits=9\r\n",
    );
    assert_eq!(client.poll_event(), Some(Event::Connected));
    assert_eq!(
        client.deflate(),
        Some(&DeflateParams {
            client_no_context_takeover: true,
            client_max_window_bits: Some(9),
            ..DeflateParams::default()
        })
    );
}

// ----- messages on the wire -----

#[test]
fn client_sends_compressed_message_with_rsv1() {
    let (mut conn, _) = open_side(Role::Client, enabled());
    let text = json_text(4000);
    conn.send(Message::Text(text.clone())).unwrap();
    let frames = written(&mut conn);
    assert_eq!(frames.len(), 1);
    let (header, payload) = &frames[0];
    assert_eq!(
        (header.fin, header.rsv, header.opcode),
        (true, RSV1, OpCode::Text)
    );
    assert!(header.mask.is_some());
    assert!(payload.len() < text.len() / 3, "{} bytes", payload.len());
    let mut inflater = peer_compressor(Role::Server);
    let mut out = Vec::new();
    inflater.inflate(payload, &mut out, None, true).unwrap();
    assert_eq!(out, text.as_bytes());
}

#[test]
fn server_sends_compressed_message_with_rsv1() {
    let (mut conn, _) = open_side(Role::Server, enabled());
    let data = Bytes::from(json_text(4000));
    conn.send(Message::Binary(data.clone())).unwrap();
    let frames = written(&mut conn);
    assert_eq!(frames.len(), 1);
    let (header, payload) = &frames[0];
    assert_eq!(
        (header.fin, header.rsv, header.opcode),
        (true, RSV1, OpCode::Binary)
    );
    assert!(header.mask.is_none());
    let mut inflater = peer_compressor(Role::Client);
    let mut out = Vec::new();
    inflater.inflate(payload, &mut out, None, true).unwrap();
    assert_eq!(out, data);
}

#[test]
fn small_messages_and_control_frames_are_not_compressed() {
    for role in [Role::Client, Role::Server] {
        let (mut conn, _) = open_side(role, enabled());
        conn.send(Message::Text("short".into())).unwrap();
        conn.send(Message::Ping(Bytes::from(vec![b'p'; 125])))
            .unwrap();
        conn.send(Message::Pong(Bytes::from(vec![b'p'; 125])))
            .unwrap();
        conn.close(
            CloseCode::NORMAL,
            &"r".repeat(123),
            std::time::Instant::now(),
        )
        .unwrap();
        let frames = written(&mut conn);
        assert_eq!(frames.len(), 4);
        assert!(
            frames.iter().all(|(h, _)| h.rsv == 0),
            "{role:?}: {frames:?}"
        );
        assert_eq!(frames[0].1, b"short");
    }
}

#[test]
fn pair_echoes_compressed_messages_both_ways() {
    let mut pair = connect(Pair::new(enabled()));
    let messages = [
        Message::Text(json_text(100)),
        Message::Binary(Bytes::from(json_text(70_000))),
        Message::Text("tiny".into()),
        Message::Text(String::new()),
        Message::Text(json_text(100)),
    ];
    for message in &messages {
        pair.client.send(message.clone()).unwrap();
        pair.server.send(message.clone()).unwrap();
    }
    pair.run();
    let expected: Vec<&Message> = messages.iter().collect();
    assert_eq!(pair.server_log.messages(), expected);
    assert_eq!(pair.client_log.messages(), expected);
}

fn assert_receives_fragmented_compressed_message(role: Role) {
    let (mut conn, now) = open_side(role, enabled());
    let text = json_text(3000);
    let compressed = peer_compressor(role).compress(text.as_bytes()).unwrap();
    let third = compressed.len() / 3;
    let mut wire = peer_frame(role, false, RSV1, OpCode::Text, &compressed[..third]);
    // A control frame in the middle is not compressed.
    wire.extend(peer_frame(role, true, 0, OpCode::Ping, b"p"));
    wire.extend(peer_frame(
        role,
        false,
        0,
        OpCode::Continuation,
        &compressed[third..2 * third],
    ));
    wire.extend(peer_frame(
        role,
        false,
        0,
        OpCode::Continuation,
        &compressed[2 * third..],
    ));
    wire.extend(peer_frame(role, true, 0, OpCode::Continuation, b""));
    conn.receive_data(&wire, now);
    assert_eq!(
        events(&mut conn),
        [
            Event::Message(Message::Ping(Bytes::from_static(b"p"))),
            Event::Message(Message::Text(text))
        ]
    );
    assert_eq!(conn.state(), State::Open);
}

#[test]
fn client_receives_fragmented_compressed_message() {
    assert_receives_fragmented_compressed_message(Role::Client);
}

#[test]
fn server_receives_fragmented_compressed_message() {
    assert_receives_fragmented_compressed_message(Role::Server);
}

#[test]
fn client_receives_uncompressed_message_after_compressed_ones() {
    let (mut conn, now) = open_side(Role::Client, enabled());
    let mut compressor = peer_compressor(Role::Client);
    let first = compressor.compress(b"Hello, Hello, Hello").unwrap();
    let mut wire = peer_frame(Role::Client, true, RSV1, OpCode::Text, &first);
    wire.extend(peer_frame(Role::Client, true, 0, OpCode::Text, b"plain"));
    let second = compressor.compress(b"Hello, Hello, Hello").unwrap();
    wire.extend(peer_frame(Role::Client, true, RSV1, OpCode::Text, &second));
    conn.receive_data(&wire, now);
    let hello = Event::Message(Message::Text("Hello, Hello, Hello".into()));
    assert_eq!(
        events(&mut conn),
        [
            hello.clone(),
            Event::Message(Message::Text("plain".into())),
            hello
        ]
    );
}

#[test]
fn client_receives_rsv1_on_control_frame() {
    let (mut conn, now) = open_side(Role::Client, enabled());
    conn.receive_data(
        &peer_frame(Role::Client, true, RSV1, OpCode::Ping, b""),
        now,
    );
    assert_failed(&mut conn, ProtocolError::CompressedControlFrame);
}

#[test]
fn server_receives_rsv1_on_control_frame() {
    let (mut conn, now) = open_side(Role::Server, enabled());
    conn.receive_data(
        &peer_frame(Role::Server, true, RSV1, OpCode::Close, &[0x03, 0xe8]),
        now,
    );
    assert_failed(&mut conn, ProtocolError::CompressedControlFrame);
}

#[test]
fn client_receives_rsv1_on_continuation_frame() {
    let (mut conn, now) = open_side(Role::Client, enabled());
    let mut wire = peer_frame(Role::Client, false, RSV1, OpCode::Text, &[0xf2, 0x48]);
    wire.extend(peer_frame(
        Role::Client,
        true,
        RSV1,
        OpCode::Continuation,
        &[0xcd],
    ));
    conn.receive_data(&wire, now);
    assert_failed(&mut conn, ProtocolError::CompressedContinuation);
}

#[test]
fn server_receives_rsv1_on_continuation_frame() {
    let (mut conn, now) = open_side(Role::Server, enabled());
    let mut wire = peer_frame(Role::Server, false, 0, OpCode::Binary, b"ab");
    wire.extend(peer_frame(
        Role::Server,
        true,
        RSV1,
        OpCode::Continuation,
        b"cd",
    ));
    conn.receive_data(&wire, now);
    assert_failed(&mut conn, ProtocolError::CompressedContinuation);
}

#[test]
fn client_receives_rsv2_with_deflate() {
    let (mut conn, now) = open_side(Role::Client, enabled());
    conn.receive_data(
        &peer_frame(Role::Client, true, RSV1 | 0b010, OpCode::Text, b""),
        now,
    );
    assert_failed(&mut conn, ProtocolError::ReservedBits(0b110));
}

#[test]
fn server_receives_corrupt_compressed_data() {
    let (mut conn, now) = open_side(Role::Server, enabled());
    conn.receive_data(
        &peer_frame(Role::Server, true, RSV1, OpCode::Binary, &[0xff; 8]),
        now,
    );
    assert_failed(&mut conn, ProtocolError::InvalidCompressedData);
}

// ----- limits -----

/// A compressed message of 4 MiB of zeros (some 4 KiB on the wire), from the peer of
/// `role`.
fn bomb_frame(role: Role) -> Vec<u8> {
    let compressed = peer_compressor(role).compress(&vec![0u8; 4 << 20]).unwrap();
    assert!(compressed.len() < 8 << 10);
    peer_frame(role, true, RSV1, OpCode::Binary, &compressed)
}

fn assert_bomb_fails_with_1009(role: Role) {
    const MAX: u64 = 64 << 10;
    let config = Config {
        max_message_size: Some(MAX),
        ..enabled()
    };
    let (mut conn, now) = open_side(role, config);
    let wire = bomb_frame(role);
    // The first bytes of the frame already inflate past the limit: the connection fails
    // before the rest arrives.
    let head = 1024.min(wire.len() / 2);
    conn.receive_data(&wire[..head], now);
    assert_failed(
        &mut conn,
        ProtocolError::MessageTooLarge {
            size: MAX + 1,
            max: MAX,
        },
    );
}

#[test]
fn client_receives_compression_bomb() {
    assert_bomb_fails_with_1009(Role::Client);
}

#[test]
fn server_receives_compression_bomb() {
    assert_bomb_fails_with_1009(Role::Server);
}

#[test]
fn compressed_message_within_the_limit_is_delivered() {
    // The limit applies to the inflated size, not the compressed one.
    let text = json_text(60_000);
    let config = Config {
        max_message_size: Some(text.len() as u64),
        ..enabled()
    };
    let mut pair = connect(Pair::new(config));
    pair.client.send(Message::Text(text.clone())).unwrap();
    pair.run();
    assert_eq!(pair.server_log.messages(), [&Message::Text(text)]);
}

fn assert_invalid_utf8_fails_fast(role: Role) {
    let (mut conn, now) = open_side(role, enabled());
    let mut bytes = b"valid text, then ".to_vec();
    bytes.push(0xff);
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    bytes.extend_from_slice(&noise);
    let compressed = peer_compressor(role).compress(&bytes).unwrap();
    let wire = peer_frame(role, true, RSV1, OpCode::Text, &compressed);
    // 8.1: the invalid byte is seen as soon as it is inflated, long before the frame ends.
    conn.receive_data(&wire[..wire.len() / 4], now);
    assert_failed(&mut conn, ProtocolError::InvalidUtf8);
}

#[test]
fn client_receives_invalid_utf8_in_compressed_text() {
    assert_invalid_utf8_fails_fast(Role::Client);
}

#[test]
fn server_receives_invalid_utf8_in_compressed_text() {
    assert_invalid_utf8_fails_fast(Role::Server);
}

// ----- context takeover -----

/// The payload sizes of two identical messages sent by `role` in a pair with `client` and
/// `server` configs.
fn repeated_sizes(role: Role, client: DeflateConfig, server: DeflateConfig) -> (usize, usize) {
    let mut pair = connect(Pair::with(deflate_config(client), deflate_config(server)));
    let conn = match role {
        Role::Client => &mut pair.client,
        Role::Server => &mut pair.server,
    };
    let text = json_text(2000);
    let mut sizes = Vec::new();
    for _ in 0..2 {
        conn.send(Message::Text(text.clone())).unwrap();
        let frames = written(conn);
        assert_eq!(frames[0].0.rsv, RSV1);
        sizes.push(frames[0].1.len());
    }
    (sizes[0], sizes[1])
}

#[test]
fn context_takeover_makes_a_repeated_message_smaller() {
    for role in [Role::Client, Role::Server] {
        let (first, second) =
            repeated_sizes(role, DeflateConfig::enabled(), DeflateConfig::enabled());
        assert!(second * 10 < first, "{role:?}: {first} then {second}");
    }
}

#[test]
fn no_context_takeover_compresses_each_message_alone() {
    // The client asks the server for it; the server asks the client for it.
    let client = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::enabled()
    };
    let server = DeflateConfig {
        client_no_context_takeover: true,
        ..DeflateConfig::enabled()
    };
    for role in [Role::Client, Role::Server] {
        let (first, second) = repeated_sizes(role, client.clone(), server.clone());
        assert_eq!(first, second, "{role:?}");
    }
}

#[test]
fn no_context_takeover_messages_are_delivered() {
    let config = deflate_config(DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::enabled()
    });
    let mut pair = connect(Pair::new(config));
    let text = Message::Text(json_text(5000));
    for _ in 0..3 {
        pair.client.send(text.clone()).unwrap();
        pair.server.send(text.clone()).unwrap();
    }
    pair.run();
    assert_eq!(pair.server_log.messages(), [&text, &text, &text]);
    assert_eq!(pair.client_log.messages(), [&text, &text, &text]);
}
