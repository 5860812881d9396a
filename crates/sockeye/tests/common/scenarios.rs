//! The three traced close scenarios of seed 000 between one of our clients and one of our
//! servers: the state sequence, the close details on both sides and which side closed TCP
//! first. The same expectations hold over any transport; `lifecycle.rs` runs them over
//! loopback TCP, `tls.rs` over TLS.

use futures_util::StreamExt;
use sockeye::{CloseCode, CloseFrame, CloseInfo, Initiator, Message, State, WebSocket};

use super::{CLOSING_BOTH, CLOSING_RECEIVED, CLOSING_SENT, history_after_open, within};

/// A Close frame's code and reason.
pub(crate) fn frame(code: CloseCode, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame::new(code, reason).unwrap())
}

/// The server sends a first message and the client receives it, as in the seed
/// ("onMessage() - received msg"), so that each scenario starts from a session in use.
pub(crate) async fn exchange_first_message(
    (mut client, mut server): (WebSocket, WebSocket),
) -> (WebSocket, WebSocket) {
    server.send("hello").await.unwrap();
    let received = within("the first message", client.next()).await;
    assert_eq!(received.unwrap().unwrap(), Message::Text("hello".into()));
    (client, server)
}

/// Seed 000, locally initiated: the client closes, the server replies.
pub(crate) async fn locally_initiated_close(mut client: WebSocket, mut server: WebSocket) {
    let (client_session, server_session) = (client.session(), server.session());

    let client_info = within(
        "the client's close",
        client.close(CloseCode::NORMAL, "local close details"),
    )
    .await
    .unwrap();
    assert!(
        within("the end of the server's stream", server.next())
            .await
            .is_none()
    );
    let server_info = within("the server's outcome", server_session.closed()).await;

    // The client is told the server's details: its reply echoes the code, no reason.
    assert_eq!(
        client_info,
        CloseInfo {
            code: CloseCode::NORMAL,
            reason: String::new(),
            sent: frame(CloseCode::NORMAL, "local close details"),
            received: frame(CloseCode::NORMAL, ""),
            initiator: Initiator::Local,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        server_info,
        CloseInfo {
            code: CloseCode::NORMAL,
            reason: "local close details".into(),
            sent: frame(CloseCode::NORMAL, ""),
            received: frame(CloseCode::NORMAL, "local close details"),
            initiator: Initiator::Remote,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        client_session.state_history(),
        history_after_open(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        server_session.state_history(),
        history_after_open(&[CLOSING_RECEIVED, CLOSING_BOTH, State::Closed])
    );
    // RFC 6455 7.1.1: the server closes the TCP connection first.
    assert_eq!(server_session.peer_closed_first(), Some(false));
    assert_eq!(client_session.peer_closed_first(), Some(true));
}

/// Seed 000, remotely initiated: the server closes, the client replies.
pub(crate) async fn remotely_initiated_close(mut client: WebSocket, mut server: WebSocket) {
    let (client_session, server_session) = (client.session(), server.session());

    let server_info = within(
        "the server's close",
        server.close(CloseCode::GOING_AWAY, "remote close details"),
    )
    .await
    .unwrap();
    assert!(
        within("the end of the client's stream", client.next())
            .await
            .is_none()
    );
    let client_info = within("the client's outcome", client_session.closed()).await;

    // The reply echoes the code (5.5.1), without the reason.
    assert_eq!(
        client_info,
        CloseInfo {
            code: CloseCode::GOING_AWAY,
            reason: "remote close details".into(),
            sent: frame(CloseCode::GOING_AWAY, ""),
            received: frame(CloseCode::GOING_AWAY, "remote close details"),
            initiator: Initiator::Remote,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        server_info,
        CloseInfo {
            code: CloseCode::GOING_AWAY,
            reason: String::new(),
            sent: frame(CloseCode::GOING_AWAY, "remote close details"),
            received: frame(CloseCode::GOING_AWAY, ""),
            initiator: Initiator::Local,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        client_session.state_history(),
        history_after_open(&[CLOSING_RECEIVED, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        server_session.state_history(),
        history_after_open(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    // The server closes first here too: it is the server.
    assert_eq!(server_session.peer_closed_first(), Some(false));
    assert_eq!(client_session.peer_closed_first(), Some(true));
}

/// Seed 000, overlapping: both sides close before either reads the other's Close. Needs
/// a single-threaded runtime, so that neither driver runs between the two closes.
pub(crate) async fn overlapping_close(client: WebSocket, server: WebSocket) {
    let (client_session, server_session) = (client.session(), server.session());

    // Both close before either task runs again, so both Close frames are on the wire at
    // the same time.
    server_session
        .close(CloseCode::GOING_AWAY, "remote close details")
        .unwrap();
    client_session
        .close(CloseCode::NORMAL, "local close details")
        .unwrap();
    assert_eq!(
        (client_session.state(), server_session.state()),
        (CLOSING_SENT, CLOSING_SENT)
    );

    let client_info = within("the client's outcome", client_session.closed()).await;
    let server_info = within("the server's outcome", server_session.closed()).await;

    // Each side sees the other's code (7.1.5 note) and both started the close; no second
    // Close was sent.
    assert_eq!(
        client_info,
        CloseInfo {
            code: CloseCode::GOING_AWAY,
            reason: "remote close details".into(),
            sent: frame(CloseCode::NORMAL, "local close details"),
            received: frame(CloseCode::GOING_AWAY, "remote close details"),
            initiator: Initiator::Local,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        server_info,
        CloseInfo {
            code: CloseCode::NORMAL,
            reason: "local close details".into(),
            sent: frame(CloseCode::GOING_AWAY, "remote close details"),
            received: frame(CloseCode::NORMAL, "local close details"),
            initiator: Initiator::Local,
            clean: true,
            error: None,
        }
    );
    let expected = history_after_open(&[CLOSING_SENT, CLOSING_BOTH, State::Closed]);
    assert_eq!(client_session.state_history(), expected);
    assert_eq!(server_session.state_history(), expected);
    assert_eq!(server_session.peer_closed_first(), Some(false));
    assert_eq!(client_session.peer_closed_first(), Some(true));
    // The handles lived until here: dropping one earlier would close with 1001.
    drop((client, server));
}
