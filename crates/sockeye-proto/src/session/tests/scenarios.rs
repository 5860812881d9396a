//! The three traced close scenarios of seed 000, over a client/server pair in memory:
//! exact state sequences, frames on the wire, one close notification with its details on
//! each side, and which side closes the transport first.

use std::time::Duration;

use bytes::Bytes;

use super::pair::{Pair, frames_written};
use crate::close::{CloseCode, CloseFrame, Initiator};
use crate::frame::OpCode;
use crate::session::{Event, Message, State, Transmit};

const CLOSING_SENT: State = State::Closing {
    close_sent: true,
    close_received: false,
};
const CLOSING_RECEIVED: State = State::Closing {
    close_sent: false,
    close_received: true,
};
const CLOSING_BOTH: State = State::Closing {
    close_sent: true,
    close_received: true,
};
const OPENING: [State; 4] = [State::New, State::Connecting, State::Connected, State::Open];

fn history(opening_then: &[State]) -> Vec<State> {
    OPENING.iter().chain(opening_then).copied().collect()
}

fn close_payload(code: u16, reason: &str) -> Bytes {
    CloseFrame::new(CloseCode(code), reason).unwrap().payload()
}

/// Both sides exchange one message first, as in the seed ("onMessage() - received msg").
fn open_pair_with_message() -> Pair {
    let mut pair = Pair::open();
    pair.server.send(Message::Text("hello".into())).unwrap();
    pair.run();
    assert_eq!(pair.client_log.messages(), [&Message::Text("hello".into())]);
    pair
}

#[test]
fn locally_initiated_close() {
    let mut pair = open_pair_with_message();
    let now = pair.now;
    pair.client
        .close(CloseCode::NORMAL, "local close details", now)
        .unwrap();
    assert_eq!(pair.client.state(), CLOSING_SENT);
    pair.run();
    // The client waits for the server to close TCP, which it does at once (7.1.1).
    assert_eq!(pair.client.state(), State::Closed);
    assert_eq!(pair.server.state(), State::Closed);

    assert_eq!(
        pair.client.history(),
        history(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        pair.server.history(),
        history(&[CLOSING_RECEIVED, CLOSING_BOTH, State::Closed])
    );

    // Frames on the wire: one masked Close from the client, its echo from the server.
    let client_frames = frames_written(&pair.client_log);
    assert_eq!(
        client_frames,
        [(
            true,
            OpCode::Close,
            close_payload(1000, "local close details"),
            true
        )]
    );
    let server_frames = frames_written(&pair.server_log);
    assert_eq!(server_frames.len(), 2);
    assert_eq!(
        server_frames[1],
        (true, OpCode::Close, close_payload(1000, ""), false)
    );

    // The client is told the remote's details, once.
    let closes = pair.client_log.close_events();
    assert_eq!(closes.len(), 1);
    let info = closes[0];
    assert_eq!((info.code, info.reason.as_str()), (CloseCode::NORMAL, ""));
    assert_eq!(info.initiator, Initiator::Local);
    assert!(info.clean);
    assert_eq!(
        info.sent,
        Some(CloseFrame::new(CloseCode::NORMAL, "local close details").unwrap())
    );
    assert_eq!(
        info.received,
        Some(CloseFrame::new(CloseCode::NORMAL, "").unwrap())
    );
    assert_eq!(info.error, None);

    let closes = pair.server_log.close_events();
    assert_eq!(closes.len(), 1);
    let info = closes[0];
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::NORMAL, "local close details")
    );
    assert_eq!(info.initiator, Initiator::Remote);
    assert!(info.clean);

    // The server closed the transport first.
    assert_eq!(pair.server.peer_closed_first(), Some(false));
    assert_eq!(pair.client.peer_closed_first(), Some(true));
    let server_at = pair.server_log.shutdown_at.unwrap();
    let client_at = pair.client_log.shutdown_at.unwrap();
    assert!(
        server_at < client_at,
        "server {server_at} client {client_at}"
    );
}

#[test]
fn remotely_initiated_close() {
    let mut pair = open_pair_with_message();
    let now = pair.now;
    pair.server
        .close(CloseCode::GOING_AWAY, "remote close details", now)
        .unwrap();
    // Deliver the server's Close to the client by hand.
    while let Some(Transmit::Data(bytes)) = pair.server.poll_transmit() {
        pair.server_log.wrote.extend_from_slice(&bytes);
        pair.client.receive_data(&bytes, now);
    }
    assert_eq!(pair.client.state(), CLOSING_RECEIVED);
    // Seed 000: the reply is sent after on_close returns, not before.
    assert_eq!(pair.client.poll_transmit(), None);
    let Some(Event::Close(info)) = pair.client.poll_event() else {
        panic!("expected the close notification");
    };
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert_eq!(info.reason, "remote close details");
    assert_eq!(info.initiator, Initiator::Remote);
    assert!(info.clean);
    // While on_close runs the session is still CLOSING{received}: the reply follows.
    assert_eq!(pair.client.state(), CLOSING_RECEIVED);
    let Some(Transmit::Data(reply)) = pair.client.poll_transmit() else {
        panic!("expected the reply Close");
    };
    assert_eq!(pair.client.state(), CLOSING_BOTH);
    pair.client_log.wrote.extend_from_slice(&reply);
    pair.client_log.events.push(Event::Close(info));
    pair.server.receive_data(&reply, now);
    pair.run();

    assert_eq!(
        pair.client.history(),
        history(&[CLOSING_RECEIVED, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        pair.server.history(),
        history(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    // The reply echoes the code (5.5.1).
    assert_eq!(
        frames_written(&pair.client_log),
        [(true, OpCode::Close, close_payload(1001, ""), true)]
    );
    assert_eq!(pair.client_log.close_events().len(), 1);
    let server_closes = pair.server_log.close_events();
    assert_eq!(server_closes.len(), 1);
    assert_eq!(server_closes[0].code, CloseCode::GOING_AWAY);
    assert_eq!(server_closes[0].initiator, Initiator::Local);
    assert!(server_closes[0].clean);
    assert!(pair.server_log.shutdown_at.unwrap() < pair.client_log.shutdown_at.unwrap());
}

#[test]
fn overlapping_close() {
    let mut pair = open_pair_with_message();
    let now = pair.now;
    // Remote[t1]: sends its Close; it is on the wire, not yet read by the client.
    pair.server
        .close(CloseCode::GOING_AWAY, "remote close details", now)
        .unwrap();
    let mut in_flight = Vec::new();
    while let Some(Transmit::Data(bytes)) = pair.server.poll_transmit() {
        pair.server_log.wrote.extend_from_slice(&bytes);
        in_flight.extend_from_slice(&bytes);
    }
    // Client[t2]: close() → CLOSING.
    pair.client
        .close(CloseCode::NORMAL, "local close details", now)
        .unwrap();
    assert_eq!(pair.client.state(), CLOSING_SENT);
    // Client[t1]: receives the remote's Close; the move to CLOSING is a no-op and no
    // second Close is sent.
    pair.client.receive_data(&in_flight, now);
    pair.run();

    assert_eq!(
        pair.client.history(),
        history(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        pair.server.history(),
        history(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        frames_written(&pair.client_log),
        [(
            true,
            OpCode::Close,
            close_payload(1000, "local close details"),
            true
        )]
    );
    let server_frames = frames_written(&pair.server_log);
    assert_eq!(
        server_frames[1..],
        [(
            true,
            OpCode::Close,
            close_payload(1001, "remote close details"),
            false
        )]
    );

    // Each side sees the other's code (7.1.5 note): 1001 for the client, 1000 for the server.
    let client = pair.client_log.close_events();
    assert_eq!(client.len(), 1);
    assert_eq!(
        (client[0].code, client[0].reason.as_str()),
        (CloseCode::GOING_AWAY, "remote close details")
    );
    assert!(client[0].clean);
    let server = pair.server_log.close_events();
    assert_eq!(server.len(), 1);
    assert_eq!(
        (server[0].code, server[0].reason.as_str()),
        (CloseCode::NORMAL, "local close details")
    );
    assert!(server[0].clean);
    assert!(pair.server_log.shutdown_at.unwrap() < pair.client_log.shutdown_at.unwrap());
}

#[test]
fn close_inside_on_open_goes_straight_to_closing() {
    let mut pair = Pair::new(Default::default());
    pair.auto_open = false;
    let now = pair.now;
    pair.client.connect(now);
    pair.run();
    assert_eq!(pair.client.state(), State::Connected);
    // on_open calls close(): CONNECTED → CLOSING{sent}, and open() afterwards is a no-op.
    pair.client.close(CloseCode::NORMAL, "", now).unwrap();
    pair.client.open();
    assert_eq!(pair.client.state(), CLOSING_SENT);
    pair.server.open();
    pair.run();
    assert_eq!(
        pair.client.history(),
        [
            State::New,
            State::Connecting,
            State::Connected,
            CLOSING_SENT,
            CLOSING_BOTH,
            State::Closed
        ]
    );
    assert!(pair.client_log.close_events()[0].clean);
}

#[test]
fn client_waits_for_the_server_tcp_close_until_the_close_timeout() {
    let mut pair = Pair::open();
    let now = pair.now;
    pair.client.close(CloseCode::NORMAL, "", now).unwrap();
    // Deliver the client's Close, let the server answer, but lose the server's EOF.
    while let Some(Transmit::Data(bytes)) = pair.client.poll_transmit() {
        pair.server.receive_data(&bytes, now);
    }
    while pair.server.poll_event().is_some() {}
    while let Some(t) = pair.server.poll_transmit() {
        if let Transmit::Data(bytes) = t {
            pair.client.receive_data(&bytes, now);
        }
    }
    while pair.client.poll_event().is_some() {}
    assert_eq!(pair.client.state(), CLOSING_BOTH);
    assert_eq!(
        pair.client.poll_transmit(),
        None,
        "the client must not close first"
    );
    let deadline = pair.client.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(10));
    pair.client
        .handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(pair.client.state(), CLOSING_BOTH);
    pair.client.handle_timeout(deadline);
    assert_eq!(pair.client.state(), State::Closed);
    assert_eq!(pair.client.poll_transmit(), Some(Transmit::Shutdown));
    assert!(pair.client.close_info().unwrap().clean);
}

#[test]
fn peer_that_never_answers_close_is_dropped_after_close_timeout_with_1006() {
    let mut pair = Pair::open();
    let now = pair.now;
    pair.server.close(CloseCode::NORMAL, "", now).unwrap();
    // The client never reads: nothing is delivered.
    while pair.server.poll_transmit().is_some() {}
    pair.server.handle_timeout(now + Duration::from_secs(9));
    assert_eq!(pair.server.state(), CLOSING_SENT);
    pair.server.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(pair.server.state(), State::Closed);
    let info = pair.server.close_info().unwrap();
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    assert_eq!(info.error, Some(crate::Error::CloseTimeout));
    assert_eq!(info.initiator, Initiator::Local);
}

#[test]
fn take_request_hands_over_the_request_once() {
    let mut pair = Pair::open();
    let request = pair.server.take_request().expect("the parsed request");
    assert_eq!(request.path, "/chat");
    assert!(pair.server.request().is_none());
    assert!(pair.server.take_request().is_none());
    // The session goes on without it.
    pair.client
        .send(Message::Text("still open".into()))
        .unwrap();
    pair.run();
    assert_eq!(
        pair.server_log.messages(),
        vec![&Message::Text("still open".into())]
    );
}
