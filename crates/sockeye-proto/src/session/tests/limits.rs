//! Resource bounds against hostile peers, in mirrored client/server pairs: the hard bound
//! on queued output (`Config::max_write_buffer`) and the idle timeout
//! (`Config::idle_timeout`), the latter on the pair's virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::pair::{Pair, decode_frames, frame_from};
use crate::Role;
use crate::close::{CloseCode, CloseFrame, Initiator};
use crate::config::Config;
use crate::error::{Error, SendError};
use crate::frame::OpCode;
use crate::session::{Connection, Event, IDLE_TIMEOUT_REASON, Message, State, Transmit};

/// One side of an open pair on `config`, alone, with its pending output drained.
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

fn peer_of(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Every event, then every frame written (unmasked), and whether the write side was shut.
fn drain(conn: &mut Connection) -> (Vec<Event>, Vec<(OpCode, Bytes)>, bool) {
    let mut events = Vec::new();
    while let Some(event) = conn.poll_event() {
        events.push(event);
    }
    let mut bytes = Vec::new();
    let mut shutdown = false;
    while let Some(transmit) = conn.poll_transmit() {
        match transmit {
            Transmit::Data(data) => {
                assert!(!shutdown, "data after shutdown");
                bytes.extend_from_slice(&data);
            }
            Transmit::Shutdown => shutdown = true,
        }
    }
    let frames = decode_frames(&bytes)
        .into_iter()
        .map(|(_, opcode, payload, _)| (opcode, payload))
        .collect();
    (events, frames, shutdown)
}

// ----- the bound on queued output -----

/// Wire size of a Pong with a 125-byte payload: 2 header bytes, plus 4 mask bytes from a
/// client.
fn pong_size(role: Role) -> usize {
    2 + 125 + if role == Role::Client { 4 } else { 0 }
}

/// The peer sends Pings and never reads the Pongs: the output grows to the bound and no
/// further; the Ping that would pass it fails the connection with 1008, after the events
/// received before it.
fn ping_flood_fails_with_1008_at_the_bound(role: Role) {
    let max = 1024;
    let config = Config {
        max_write_buffer: max,
        ..Config::default()
    };
    let (mut conn, now) = open_with(role, config);
    let fits = max / pong_size(role);
    // A message first: it fully arrived, so it must be delivered.
    let mut wire = frame_from(peer_of(role), true, OpCode::Text, b"before the flood");
    let ping = frame_from(peer_of(role), true, OpCode::Ping, &[0x5a; 125]);
    for _ in 0..fits + 5 {
        wire.extend_from_slice(&ping);
    }
    // One byte at a time: the bound is checked at every Ping, whatever the chunking.
    for byte in &wire {
        conn.receive_data(std::slice::from_ref(byte), now);
        assert!(conn.buffered_amount() <= max, "{}", conn.buffered_amount());
    }
    assert_eq!(conn.buffered_amount(), fits * pong_size(role));

    let expected_error = Error::WriteBufferFull {
        queued: fits * pong_size(role),
        max,
    };
    let (events, frames, shutdown) = drain(&mut conn);
    assert_eq!(
        events[0],
        Event::Message(Message::Text("before the flood".into()))
    );
    // Every Ping processed is reported, the one that did not fit included; then the
    // outcome, and nothing after it.
    let pings = events[1..]
        .iter()
        .take_while(|e| matches!(e, Event::Message(Message::Ping(_))))
        .count();
    assert_eq!(pings, fits + 1);
    assert_eq!(events.len(), 1 + pings + 1, "{events:?}");
    let Event::Close(info) = events.last().unwrap() else {
        panic!("{events:?}");
    };
    assert_eq!(info.error, Some(expected_error.clone()));
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    // On the wire: the Pongs that fit, then Close 1008 with the error as its reason.
    assert_eq!(frames.len(), fits + 1);
    assert!(
        frames[..fits]
            .iter()
            .all(|(op, payload)| *op == OpCode::Pong && payload[..] == [0x5a; 125])
    );
    let (op, payload) = &frames[fits];
    assert_eq!(*op, OpCode::Close);
    assert_eq!(&payload[..2], &1008u16.to_be_bytes());
    assert_eq!(
        std::str::from_utf8(&payload[2..]).unwrap(),
        expected_error.to_string()
    );
    assert!(shutdown);
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(
        info.sent.as_ref().and_then(|f| f.code),
        Some(CloseCode::POLICY_VIOLATION)
    );
}

#[test]
fn client_ping_flood_fails_with_1008_at_the_bound() {
    ping_flood_fails_with_1008_at_the_bound(Role::Client);
}

#[test]
fn server_ping_flood_fails_with_1008_at_the_bound() {
    ping_flood_fails_with_1008_at_the_bound(Role::Server);
}

/// A message that would pass the bound is refused; the connection stays open and sends
/// it once the output was taken.
fn send_over_the_bound_is_refused_and_the_session_stays_open(role: Role) {
    let config = Config {
        max_write_buffer: 1000,
        ..Config::default()
    };
    let (mut conn, now) = open_with(role, config);
    let header = if role == Role::Client { 8 } else { 4 };
    conn.send(Message::Binary(vec![1; 600].into())).unwrap();
    assert_eq!(conn.buffered_amount(), 600 + header);
    let refused = conn.send(Message::Binary(vec![2; 600].into()));
    assert_eq!(
        refused,
        Err(SendError::WriteBufferFull {
            size: 600 + header,
            queued: 600 + header,
            max: 1000,
        })
    );
    // Exactly up to the bound is allowed; then not even an empty Ping fits.
    let room = 1000 - (600 + header);
    conn.send(Message::Binary(vec![3; room - header].into()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.buffered_amount(), 1000);
    assert!(matches!(
        conn.send(Message::Ping(Bytes::new())),
        Err(SendError::WriteBufferFull { queued: 1000, .. })
    ));
    assert_eq!(conn.state(), State::Open);

    let (_, frames, _) = drain(&mut conn);
    assert_eq!(frames.len(), 2);
    conn.send(Message::Binary(vec![2; 600].into())).unwrap();
    let (events, frames, shutdown) = drain(&mut conn);
    assert!(events.is_empty() && !shutdown);
    assert_eq!(frames, [(OpCode::Binary, Bytes::from(vec![2; 600]))]);
    // A message bigger than the bound can never be sent, and says so.
    assert!(matches!(
        conn.send(Message::Binary(vec![0; 1000].into())),
        Err(SendError::WriteBufferFull { max: 1000, .. })
    ));
    conn.receive_data(
        &frame_from(peer_of(role), true, OpCode::Text, b"still open"),
        now,
    );
    assert_eq!(
        conn.poll_event(),
        Some(Event::Message(Message::Text("still open".into())))
    );
}

#[test]
fn client_send_over_the_bound_is_refused_and_the_session_stays_open() {
    send_over_the_bound_is_refused_and_the_session_stays_open(Role::Client);
}

#[test]
fn server_send_over_the_bound_is_refused_and_the_session_stays_open() {
    send_over_the_bound_is_refused_and_the_session_stays_open(Role::Server);
}

/// Bytes the I/O layer took but did not write count toward the bound.
fn unwritten_bytes_count_toward_the_bound(role: Role) {
    let config = Config {
        max_write_buffer: 4096,
        ..Config::default()
    };
    let (mut conn, now) = open_with(role, config);
    conn.set_unwritten(4096 - 10);
    assert!(matches!(
        conn.send(Message::Binary(vec![0; 10].into())),
        Err(SendError::WriteBufferFull {
            queued: 4086,
            max: 4096,
            ..
        })
    ));
    // The I/O layer wrote them: there is room again.
    conn.set_unwritten(0);
    conn.send(Message::Binary(vec![0; 10].into())).unwrap();
    // And an automatic Pong is held to the same account.
    conn.set_unwritten(4096 - 20);
    conn.receive_data(
        &frame_from(peer_of(role), true, OpCode::Ping, &[7; 10]),
        now,
    );
    let (events, frames, shutdown) = drain(&mut conn);
    assert!(matches!(
        events.last(),
        Some(Event::Close(info)) if matches!(info.error, Some(Error::WriteBufferFull { .. }))
    ));
    assert_eq!(frames[0].0, OpCode::Binary);
    assert_eq!(frames[1].0, OpCode::Close);
    assert_eq!(&frames[1].1[..2], &1008u16.to_be_bytes());
    assert!(shutdown);
}

#[test]
fn client_unwritten_bytes_count_toward_the_bound() {
    unwritten_bytes_count_toward_the_bound(Role::Client);
}

#[test]
fn server_unwritten_bytes_count_toward_the_bound() {
    unwritten_bytes_count_toward_the_bound(Role::Server);
}

/// A keepalive Ping that does not fit fails the connection too: the peer reads nothing.
fn keepalive_ping_that_does_not_fit_fails_with_1008(role: Role) {
    let config = Config {
        ping_interval: Some(Duration::from_secs(5)),
        max_write_buffer: 100,
        ..Config::default()
    };
    let (mut conn, _) = open_with(role, config);
    conn.send(Message::Binary(vec![0; 90].into())).unwrap();
    let ping_at = conn.poll_timeout().unwrap();
    conn.handle_timeout(ping_at);
    let (events, frames, shutdown) = drain(&mut conn);
    let [Event::Close(info)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert!(matches!(
        info.error,
        Some(Error::WriteBufferFull { max: 100, .. })
    ));
    assert_eq!(
        frames.iter().map(|f| f.0).collect::<Vec<_>>(),
        [OpCode::Binary, OpCode::Close]
    );
    assert!(shutdown);
    assert_eq!(conn.state(), State::Closed);
}

#[test]
fn client_keepalive_ping_that_does_not_fit_fails_with_1008() {
    keepalive_ping_that_does_not_fit_fails_with_1008(Role::Client);
}

#[test]
fn server_keepalive_ping_that_does_not_fit_fails_with_1008() {
    keepalive_ping_that_does_not_fit_fails_with_1008(Role::Server);
}

#[test]
fn the_default_bound_fits_an_echo_of_the_largest_message_accepted_by_default() {
    let config = Config::default();
    let largest = config.max_message_size.unwrap() as usize;
    // The largest frame header (14 bytes) and a soft high-water mark of 128 KiB besides.
    assert!(config.max_write_buffer >= largest + 14 + 128 * 1024);
    assert_eq!(config.max_write_buffer, 65 << 20);
}

// ----- the idle timeout -----

fn idle_config() -> Config {
    Config {
        idle_timeout: Some(Duration::from_secs(30)),
        ..Config::default()
    }
}

/// An open pair where only `role` has the idle timeout.
fn pair_with_idle_timeout(role: Role, config: Config) -> Pair {
    let mut pair = match role {
        Role::Client => Pair::with(config, Config::default()),
        Role::Server => Pair::with(Config::default(), config),
    };
    let now = pair.now;
    pair.client.connect(now);
    pair.run();
    assert_eq!(pair.client.state(), State::Open);
    assert_eq!(pair.server.state(), State::Open);
    pair
}

fn idle_close_frame() -> CloseFrame {
    CloseFrame::new(CloseCode::GOING_AWAY, IDLE_TIMEOUT_REASON).unwrap()
}

/// Nothing received for the idle timeout: a normal closing handshake with 1001, started
/// exactly when the timeout passes; the peer answers and both end cleanly.
fn idle_peer_is_closed_with_1001_after_the_idle_timeout(role: Role) {
    let mut pair = pair_with_idle_timeout(role, idle_config());
    let start = pair.now;
    assert_eq!(
        pair.side(role).0.poll_timeout(),
        Some(start + Duration::from_secs(30))
    );
    pair.advance(Duration::from_millis(29_999));
    assert_eq!(pair.side(role).0.state(), State::Open);
    pair.advance(Duration::from_millis(1));
    let (conn, log) = pair.side(role);
    assert_eq!(conn.state(), State::Closed);
    let info = conn.close_info().unwrap().clone();
    assert_eq!(info.sent, Some(idle_close_frame()));
    // The peer echoed the code (5.5.1).
    assert_eq!(
        info.received,
        Some(CloseFrame::new(CloseCode::GOING_AWAY, "").unwrap())
    );
    assert_eq!(info.initiator, Initiator::Local);
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert!(info.clean);
    assert_eq!(info.error, None);
    assert_eq!(log.close_events().len(), 1);
    let peer_info = pair.side(peer_of(role)).0.close_info().unwrap().clone();
    assert_eq!(peer_info.code, CloseCode::GOING_AWAY);
    assert_eq!(peer_info.reason, IDLE_TIMEOUT_REASON);
    assert_eq!(peer_info.initiator, Initiator::Remote);
}

#[test]
fn client_closes_an_idle_peer_with_1001_after_the_idle_timeout() {
    idle_peer_is_closed_with_1001_after_the_idle_timeout(Role::Client);
}

#[test]
fn server_closes_an_idle_peer_with_1001_after_the_idle_timeout() {
    idle_peer_is_closed_with_1001_after_the_idle_timeout(Role::Server);
}

/// Every frame received starts the timeout over, control frames included; the session
/// closes one idle timeout after the last one.
fn frames_received_restart_the_idle_timeout(role: Role) {
    let mut pair = pair_with_idle_timeout(role, idle_config());
    let peer = peer_of(role);
    for i in 0..10 {
        pair.advance(Duration::from_secs(20));
        let message = if i % 2 == 0 {
            Message::Text(format!("still here {i}"))
        } else {
            Message::Ping(Bytes::from_static(b"still here"))
        };
        pair.side(peer).0.send(message).unwrap();
        pair.run();
        assert_eq!(pair.side(role).0.state(), State::Open, "after {i}");
    }
    let last = pair.now;
    pair.advance(Duration::from_millis(29_999));
    assert_eq!(pair.side(role).0.state(), State::Open);
    pair.advance(Duration::from_millis(1));
    assert_eq!(pair.side(role).0.state(), State::Closed);
    assert_eq!(pair.now, last + Duration::from_secs(30));
    assert_eq!(
        pair.side(role).0.close_info().unwrap().sent,
        Some(idle_close_frame())
    );
}

#[test]
fn client_frames_received_restart_the_idle_timeout() {
    frames_received_restart_the_idle_timeout(Role::Client);
}

#[test]
fn server_frames_received_restart_the_idle_timeout() {
    frames_received_restart_the_idle_timeout(Role::Server);
}

/// Our own keepalive Pings keep a quiet session open: the peer's Pongs are frames.
fn keepalive_pongs_keep_a_quiet_session_open(role: Role) {
    let config = Config {
        ping_interval: Some(Duration::from_secs(10)),
        ..idle_config()
    };
    let mut pair = pair_with_idle_timeout(role, config);
    pair.advance(Duration::from_secs(600));
    assert_eq!(pair.side(role).0.state(), State::Open);
    assert_eq!(pair.side(peer_of(role)).0.state(), State::Open);
}

#[test]
fn client_keepalive_pongs_keep_a_quiet_session_open() {
    keepalive_pongs_keep_a_quiet_session_open(Role::Client);
}

#[test]
fn server_keepalive_pongs_keep_a_quiet_session_open() {
    keepalive_pongs_keep_a_quiet_session_open(Role::Server);
}

/// A peer that trickles a frame in, a byte at a time, is idle: bytes of a frame that
/// does not complete do not count.
fn a_frame_trickling_in_does_not_keep_the_session_open(role: Role) {
    let (mut conn, start) = open_with(role, idle_config());
    let frame = frame_from(peer_of(role), true, OpCode::Binary, &[9; 100]);
    let mut now = start;
    // 35 s: past the idle timeout, short of the close timeout that follows it.
    for byte in &frame[..35] {
        now += Duration::from_secs(1);
        conn.handle_timeout(now);
        conn.receive_data(std::slice::from_ref(byte), now);
    }
    assert!(now >= start + Duration::from_secs(30));
    let (events, frames, _) = drain(&mut conn);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        frames,
        [(OpCode::Close, idle_close_frame().payload())],
        "the Close went out at 30 s"
    );
    assert!(matches!(
        conn.state(),
        State::Closing {
            close_sent: true,
            close_received: false
        }
    ));
}

#[test]
fn client_frame_trickling_in_does_not_keep_the_session_open() {
    a_frame_trickling_in_does_not_keep_the_session_open(Role::Client);
}

#[test]
fn server_frame_trickling_in_does_not_keep_the_session_open() {
    a_frame_trickling_in_does_not_keep_the_session_open(Role::Server);
}

#[test]
fn without_an_idle_timeout_a_quiet_session_stays_open() {
    assert_eq!(Config::default().idle_timeout, None);
    let mut pair = Pair::open();
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.server.poll_timeout(), None);
    pair.advance(Duration::from_secs(24 * 3600));
    assert_eq!(pair.client.state(), State::Open);
    assert_eq!(pair.server.state(), State::Open);
}

/// A violation of the peer waiting for its events to be taken is not cut short by the
/// idle timeout: the failure keeps its own code.
#[test]
fn an_idle_timeout_does_not_override_a_pending_failure() {
    // An idle timeout shorter than the close timeout that bounds the pending failure.
    let config = Config {
        idle_timeout: Some(Duration::from_secs(5)),
        ..Config::default()
    };
    let (mut conn, now) = open_with(Role::Server, config);
    let mut wire = frame_from(Role::Client, true, OpCode::Text, b"hello");
    wire.extend(frame_from(Role::Client, true, OpCode::Continuation, b"x"));
    conn.receive_data(&wire, now);
    assert!(conn.failure_pending());
    conn.handle_timeout(now + Duration::from_secs(5));
    assert!(conn.failure_pending());
    let (events, frames, _) = drain(&mut conn);
    assert_eq!(events.len(), 2);
    assert_eq!(frames.len(), 1);
    assert_eq!(&frames[0].1[..2], &1002u16.to_be_bytes());
}
