//! Property tests: chunking independence, round trips, and random event sequences that
//! must never panic, never break an invariant, and always end in CLOSED.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};

use super::pair::{Pair, frame, frame_from};
use crate::Role;
use crate::close::CloseCode;
use crate::config::Config;
use crate::frame::OpCode;
use crate::handshake::{self, Accept, ClientRequest, HandshakeLimits};
use crate::session::{Connection, Event, Fragment, Message, State, Transmit};

/// A frame the peer may send, valid or not.
#[derive(Clone, Debug)]
enum PeerFrame {
    Text(String),
    /// Text split in fragments at these byte positions (may cut code points).
    Fragmented(String, Vec<usize>),
    BadText(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Garbage(Vec<u8>),
}

fn arb_peer_frame() -> impl Strategy<Value = PeerFrame> {
    prop_oneof![
        4 => ".{0,40}".prop_map(PeerFrame::Text),
        2 => (".{1,40}", proptest::collection::vec(0usize..200, 0..4))
            .prop_map(|(t, cuts)| PeerFrame::Fragmented(t, cuts)),
        1 => proptest::collection::vec(any::<u8>(), 1..20).prop_map(PeerFrame::BadText),
        3 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(PeerFrame::Binary),
        1 => proptest::collection::vec(any::<u8>(), 0..30).prop_map(PeerFrame::Ping),
        1 => proptest::collection::vec(any::<u8>(), 0..30).prop_map(PeerFrame::Pong),
        1 => (prop_oneof![Just(1000u16), Just(1001), Just(1005), Just(3000), any::<u16>()], ".{0,20}")
            .prop_map(|(c, r)| PeerFrame::Close(c, r)),
        1 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(PeerFrame::Garbage),
    ]
}

/// The bytes the peer of `role` writes for these frames.
fn encode_peer_frames(role: Role, frames: &[PeerFrame]) -> Vec<u8> {
    let peer = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut out = Vec::new();
    for f in frames {
        match f {
            PeerFrame::Text(t) => out.extend(frame_from(peer, true, OpCode::Text, t.as_bytes())),
            PeerFrame::Fragmented(t, cuts) => {
                let bytes = t.as_bytes();
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
                cuts.sort_unstable();
                cuts.dedup();
                let mut start = 0;
                let mut first = true;
                for end in cuts.into_iter().chain([bytes.len()]) {
                    let op = if first {
                        OpCode::Text
                    } else {
                        OpCode::Continuation
                    };
                    let fin = end == bytes.len();
                    out.extend(frame_from(peer, fin, op, &bytes[start..end]));
                    start = end;
                    first = false;
                    if fin {
                        break;
                    }
                }
            }
            PeerFrame::BadText(b) => out.extend(frame_from(peer, true, OpCode::Text, b)),
            PeerFrame::Binary(b) => out.extend(frame_from(peer, true, OpCode::Binary, b)),
            PeerFrame::Ping(b) => out.extend(frame_from(peer, true, OpCode::Ping, b)),
            PeerFrame::Pong(b) => out.extend(frame_from(peer, true, OpCode::Pong, b)),
            PeerFrame::Close(code, reason) => {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                payload.truncate(125);
                out.extend(frame_from(peer, true, OpCode::Close, &payload));
            }
            PeerFrame::Garbage(b) => out.extend_from_slice(b),
        }
    }
    out
}

/// Everything one side did with a given input: events, bytes written, shutdown, state.
#[derive(Debug, PartialEq)]
struct Trace {
    events: Vec<Event>,
    wrote: Vec<u8>,
    shutdown: bool,
    state: State,
}

/// Feeds the peer's byte stream to a fresh session of `role` in the given pieces.
fn feed(role: Role, stream: &[u8], cuts: &[usize]) -> Trace {
    let now = Instant::now();
    let mut conn = match role {
        Role::Server => Connection::server(Config::default(), now),
        Role::Client => {
            let mut c = Connection::client_with_rng(
                ClientRequest::new("example.com", "/"),
                Config::default(),
                StdRng::seed_from_u64(1),
            );
            c.connect(now);
            c
        }
    };
    let mut trace = Trace {
        events: Vec::new(),
        wrote: Vec::new(),
        shutdown: false,
        state: State::New,
    };
    let drain = |conn: &mut Connection, trace: &mut Trace| {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request => conn.accept(Accept::default(), now).unwrap(),
                Event::Connected => conn.open(),
                _ => {}
            }
            trace.events.push(event);
        }
        while let Some(t) = conn.poll_transmit() {
            match t {
                Transmit::Data(b) => trace.wrote.extend_from_slice(&b),
                Transmit::Shutdown => trace.shutdown = true,
            }
        }
    };
    drain(&mut conn, &mut trace);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    for end in cuts.into_iter().chain([stream.len()]) {
        conn.receive_data(&stream[start..end], now);
        drain(&mut conn, &mut trace);
        start = end;
    }
    conn.check_invariants();
    trace.state = conn.state();
    trace
}

/// The handshake the peer of `role` sends before its frames.
fn peer_handshake(role: Role) -> Vec<u8> {
    match role {
        Role::Server => {
            let mut out = Vec::new();
            ClientRequest::new("example.com", "/").encode("dGhlIHNhbXBsZSBub25jZQ==", &mut out);
            out
        }
        Role::Client => {
            // The client's key comes from its seeded generator: read it from its request.
            let now = Instant::now();
            let mut c = Connection::client_with_rng(
                ClientRequest::new("example.com", "/"),
                Config::default(),
                StdRng::seed_from_u64(1),
            );
            c.connect(now);
            let Some(Transmit::Data(request)) = c.poll_transmit() else {
                unreachable!("the request is queued by connect")
            };
            let (request, _) = handshake::parse_request(&request, &HandshakeLimits::default())
                .unwrap()
                .unwrap();
            let mut out = Vec::new();
            handshake::encode_accept(&request, &Accept::default(), &mut out).unwrap();
            out
        }
    }
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any chunking of the same bytes gives the same events, output and state.
    #[test]
    fn any_chunking_gives_the_same_events(
        role in arb_role(),
        frames in proptest::collection::vec(arb_peer_frame(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let mut stream = peer_handshake(role);
        stream.extend(encode_peer_frames(role, &frames));
        let whole = feed(role, &stream, &[]);
        let pieces = feed(role, &stream, &cuts);
        prop_assert_eq!(&whole, &pieces);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        let one_by_one = feed(role, &stream, &bytewise);
        prop_assert_eq!(&whole, &one_by_one);
    }

    /// Valid frames from the peer arrive as the messages they encode.
    #[test]
    fn encode_then_decode_round_trips(
        role in arb_role(),
        texts in proptest::collection::vec(".{0,50}", 0..8),
        binaries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70_000), 0..3),
    ) {
        let (sent, received) = one_way(&mut Pair::open(), role, |sender| {
            let mut sent = Vec::new();
            for t in &texts {
                sender.send(Message::Text(t.clone())).unwrap();
                sent.push(Message::Text(t.clone()));
            }
            for b in &binaries {
                sender.send(Message::Binary(Bytes::from(b.clone()))).unwrap();
                sent.push(Message::Binary(Bytes::from(b.clone())));
            }
            sent
        });
        prop_assert_eq!(received, sent);
    }

    /// A message sent as any number of fragments, with Pings between them, arrives whole
    /// and in order with the whole messages around it.
    #[test]
    fn messages_sent_in_fragments_arrive_whole(
        role in arb_role(),
        parts in proptest::collection::vec(proptest::collection::vec(".{0,20}", 1..6), 1..5),
        frame_size in prop_oneof![Just(None), (1usize..8).prop_map(Some)],
    ) {
        let config = Config { max_send_frame_size: frame_size, ..Config::default() };
        let (sent, received) = one_way(&mut Pair::open_with(config), role, |sender| {
            let mut sent = Vec::new();
            for (i, message) in parts.iter().enumerate() {
                for (j, part) in message.iter().enumerate() {
                    let fin = j + 1 == message.len();
                    if i % 2 == 0 {
                        sender.send_fragment(Fragment::Text(part.clone()), fin).unwrap();
                    } else {
                        let bytes = Bytes::from(part.clone().into_bytes());
                        sender.send_fragment(Fragment::Binary(bytes), fin).unwrap();
                    }
                    if fin {
                        let whole = message.concat();
                        sent.push(if i % 2 == 0 {
                            Message::Text(whole)
                        } else {
                            Message::Binary(Bytes::from(whole.into_bytes()))
                        });
                    }
                    // 5.4: a control frame between fragments arrives before the message.
                    sender.send(Message::Ping(Bytes::from(vec![j as u8]))).unwrap();
                    sent.push(Message::Ping(Bytes::from(vec![j as u8])));
                }
                sender.send(Message::Text(format!("whole {i}"))).unwrap();
                sent.push(Message::Text(format!("whole {i}")));
            }
            sent
        });
        prop_assert_eq!(received, sent);
    }

    /// Random sequences of events never panic (the invariants are debug assertions in the
    /// transition function), and the session always reaches CLOSED, with exactly one Close
    /// event per side, once the transport is closed and the deadlines pass.
    #[test]
    fn random_event_sequences_keep_the_invariants(ops in proptest::collection::vec(arb_op(), 0..30)) {
        let config = Config {
            ping_interval: Some(Duration::from_secs(3)),
            pong_timeout: Duration::from_secs(2),
            ..Config::default()
        };
        let mut pair = Pair::new(config);
        let now = pair.now;
        pair.client.connect(now);
        for op in ops {
            apply(&mut pair, op);
            pair.client.check_invariants();
            pair.server.check_invariants();
        }
        pair.run();
        // The transport goes away: both sides see EOF, then time passes.
        let now = pair.now;
        pair.client.receive_eof(now);
        pair.server.receive_eof(now);
        pair.run();
        pair.advance(Duration::from_secs(120));
        pair.run();
        prop_assert_eq!(pair.client.state(), State::Closed);
        prop_assert_eq!(pair.server.state(), State::Closed);
        prop_assert_eq!(pair.client_log.close_events().len(), 1);
        prop_assert_eq!(pair.server_log.close_events().len(), 1);
        prop_assert_eq!(pair.client.poll_timeout(), None);
        prop_assert_eq!(pair.server.poll_timeout(), None);
    }
}

/// Runs `send` on `role`'s side of `pair`, then the pair: the messages `send` says it
/// sent, and those the other side received.
fn one_way(
    pair: &mut Pair,
    role: Role,
    send: impl FnOnce(&mut Connection) -> Vec<Message>,
) -> (Vec<Message>, Vec<Message>) {
    let sender = match role {
        Role::Client => &mut pair.client,
        Role::Server => &mut pair.server,
    };
    let sent = send(sender);
    pair.run();
    let log = match role {
        Role::Client => &pair.server_log,
        Role::Server => &pair.client_log,
    };
    (sent, log.messages().into_iter().cloned().collect())
}

#[derive(Clone, Debug)]
enum Op {
    Send(Role, Message),
    SendFragment(Role, Fragment, bool),
    Close(Role, u16),
    Fail(Role),
    Eof(Role),
    Garbage(Role, Vec<u8>),
    Raw(Role, Vec<PeerFrame>),
    Advance(u64),
    Run,
    Transmits(Role),
    Events(Role),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let message = prop_oneof![
        ".{0,10}".prop_map(Message::Text),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|b| Message::Binary(b.into())),
        proptest::collection::vec(any::<u8>(), 0..130).prop_map(|b| Message::Ping(b.into())),
    ];
    let fragment = prop_oneof![
        ".{0,10}".prop_map(Fragment::Text),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|b| Fragment::Binary(b.into())),
    ];
    prop_oneof![
        4 => (arb_role(), message).prop_map(|(r, m)| Op::Send(r, m)),
        2 => (arb_role(), fragment, any::<bool>()).prop_map(|(r, f, fin)| Op::SendFragment(r, f, fin)),
        2 => (arb_role(), prop_oneof![Just(1000u16), Just(1001), Just(1005), Just(4000)])
            .prop_map(|(r, c)| Op::Close(r, c)),
        1 => arb_role().prop_map(Op::Fail),
        1 => arb_role().prop_map(Op::Eof),
        1 => (arb_role(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(r, g)| Op::Garbage(r, g)),
        1 => (arb_role(), proptest::collection::vec(arb_peer_frame(), 1..3))
            .prop_map(|(r, f)| Op::Raw(r, f)),
        2 => (0u64..15).prop_map(Op::Advance),
        4 => Just(Op::Run),
        2 => arb_role().prop_map(Op::Transmits),
        2 => arb_role().prop_map(Op::Events),
    ]
}

fn apply(pair: &mut Pair, op: Op) {
    let now = pair.now;
    match op {
        Op::Send(role, message) => {
            let (conn, _) = pair.side(role);
            let state = conn.state();
            // Invariant 3: nothing after our Close; before our reply to the peer's Close,
            // sending is still allowed (5.5.1).
            let replying = !state.close_sent() && conn.close_reply_pending();
            let checked = conn.check_send();
            // 5.4: no data message while one sent in fragments is unfinished.
            let interleaved = message.is_data() && conn.message_unfinished();
            let result = conn.send(message.clone());
            let allowed = matches!(state, State::Connected | State::Open) || replying;
            let too_long = !message.is_data() && message.as_bytes().len() > 125;
            assert_eq!(
                result.is_ok(),
                allowed && !too_long && !interleaved,
                "{state} {result:?}"
            );
            // The check the runtime's Sink makes before a send is the send's own: it
            // allows what the send allows and refuses with the send's error.
            assert_eq!(checked.is_ok(), allowed, "{state} {checked:?}");
            if let Err(refused) = checked {
                assert_eq!(result, Err(refused), "{state}");
            }
        }
        Op::SendFragment(role, fragment, fin) => {
            let (conn, _) = pair.side(role);
            let state = conn.state();
            let replying = !state.close_sent() && conn.close_reply_pending();
            let allowed = matches!(state, State::Connected | State::Open) || replying;
            let unfinished = conn.message_unfinished();
            let result = conn.send_fragment(fragment, fin);
            // A fragment of the other kind would start a second message; this one's kind
            // is unknown here, so only the allowed-state rule and the end of the message
            // are checked.
            if !allowed {
                assert!(result.is_err(), "{state} {result:?}");
            }
            match result {
                Ok(()) => assert_eq!(conn.message_unfinished(), !fin),
                Err(_) => assert_eq!(conn.message_unfinished(), unfinished),
            }
        }
        Op::Close(role, code) => {
            let (conn, _) = pair.side(role);
            let result = conn.close(CloseCode(code), "bye", now);
            assert_eq!(result.is_ok(), CloseCode(code).is_sendable());
        }
        Op::Fail(role) => {
            let (conn, _) = pair.side(role);
            conn.fail(CloseCode::POLICY_VIOLATION, "policy", now)
                .unwrap();
        }
        Op::Eof(role) => pair.side(role).0.receive_eof(now),
        Op::Garbage(role, bytes) => pair.side(role).0.receive_data(&bytes, now),
        Op::Raw(role, frames) => {
            let bytes = encode_peer_frames(role, &frames);
            pair.side(role).0.receive_data(&bytes, now);
        }
        Op::Advance(secs) => pair.advance(Duration::from_secs(secs)),
        Op::Run => pair.run(),
        Op::Transmits(role) => {
            pair.drain_transmits(role);
        }
        Op::Events(role) => {
            pair.drain_events(role);
        }
    }
}

#[test]
fn unmasked_stream_helper_matches_rfc_layout() {
    // Guards the test helpers themselves: a server-side frame is unmasked.
    assert_eq!(
        frame(true, OpCode::Text, b"Hi", None),
        [0x81, 0x02, b'H', b'i']
    );
}
