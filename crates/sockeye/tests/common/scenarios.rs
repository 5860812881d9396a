//! The three traced close scenarios of seed 000 between one of our clients and one of our
//! servers: the state sequence, the close details on both sides and which side closed TCP
//! first. The same expectations hold over any transport; `lifecycle.rs` runs them over
//! loopback TCP, `tls.rs` over TLS.

use sockeye::{CloseCode, CloseFrame, CloseInfo, Initiator, Message, Session, State, WebSocket};

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
pub(crate) async fn locally_initiated_close(client: WebSocket, server: WebSocket) {
    let (client, server) =
        one_side_closes(client, server, CloseCode::NORMAL, "local close details").await;
    server_closed_tcp_first(&client, &server);
}

/// Seed 000, remotely initiated: the server closes, the client replies.
pub(crate) async fn remotely_initiated_close(client: WebSocket, server: WebSocket) {
    let (server, client) = one_side_closes(
        server,
        client,
        CloseCode::GOING_AWAY,
        "remote close details",
    )
    .await;
    server_closed_tcp_first(&client, &server);
}

/// `closer` closes with `code` and `reason`, `replier` answers; both end clean, each told
/// the other's Close. Returns their sessions, `(closer, replier)`.
async fn one_side_closes(
    mut closer: WebSocket,
    mut replier: WebSocket,
    code: CloseCode,
    reason: &str,
) -> (Session, Session) {
    let (closer_session, replier_session) = (closer.session(), replier.session());

    let closer_info = within("the close", closer.close(code, reason))
        .await
        .unwrap();
    assert!(
        within("the end of the other side's stream", replier.next())
            .await
            .is_none()
    );
    let replier_info = within("the other side's outcome", replier_session.closed()).await;

    // The reply echoes the code, without the reason (5.5.1).
    assert_eq!(
        closer_info,
        CloseInfo {
            code,
            reason: String::new(),
            sent: frame(code, reason),
            received: frame(code, ""),
            initiator: Initiator::Local,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        replier_info,
        CloseInfo {
            code,
            reason: reason.into(),
            sent: frame(code, ""),
            received: frame(code, reason),
            initiator: Initiator::Remote,
            clean: true,
            error: None,
        }
    );
    assert_eq!(
        closer_session.state_history(),
        history_after_open(&[CLOSING_SENT, CLOSING_BOTH, State::Closed])
    );
    assert_eq!(
        replier_session.state_history(),
        history_after_open(&[CLOSING_RECEIVED, CLOSING_BOTH, State::Closed])
    );
    (closer_session, replier_session)
}

/// RFC 6455 7.1.1: the server closes the TCP connection first, whoever started the close.
fn server_closed_tcp_first(client: &Session, server: &Session) {
    assert_eq!(server.peer_closed_first(), Some(false));
    assert_eq!(client.peer_closed_first(), Some(true));
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
    server_closed_tcp_first(&client_session, &server_session);
    // The handles lived until here: dropping one earlier would close with 1001.
    drop((client, server));
}
