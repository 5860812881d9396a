//! Sessions against misbehaving peers over real loopback TCP: a peer that drops the
//! connection in the middle of a frame, one that never answers our Close, one that never
//! answers our keepalive Pings or a Ping on demand, and handshakes the server refuses.

mod common;

use std::time::Duration;

use common::{
    CLOSING_SENT, Call, RawPeer, Recorder, listener, server_with_raw_client,
    server_with_raw_client_on, url, within, ws_pair,
};
use sockeye::{
    ClientBuilder, CloseCode, Config, Error, Initiator, Message, Reject, ServerBuilder, State,
};
use sockeye_proto::HandshakeError;
use sockeye_proto::frame::OpCode;
use tokio::time::Instant;

fn lost() -> sockeye_proto::Error {
    sockeye_proto::Error::ConnectionLost
}

#[tokio::test]
async fn server_session_fails_with_1006_when_the_client_drops_tcp_mid_message() {
    let (mut server, mut peer) = server_with_raw_client().await;

    // The header of a 1000-byte message and only part of its payload.
    let frame = peer.encode(true, OpCode::Binary, &[7; 1000]);
    peer.write_raw(&frame[..300]).await;
    drop(peer);

    let received = within("the failure", server.next()).await;
    assert!(
        matches!(received, Some(Err(Error::Failed(ref e))) if *e == lost()),
        "{received:?}"
    );
    assert!(server.next().await.is_none());
    let info = within("the outcome", server.session().closed()).await;
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.initiator, Initiator::Abnormal);
    assert_eq!((info.sent, info.received), (None, None));
    assert!(!info.clean);
    assert_eq!(info.error, Some(lost()));
    assert_eq!(
        server.session().state_history(),
        [
            State::New,
            State::Connecting,
            State::Connected,
            State::Open,
            State::Closed
        ]
    );
}

#[tokio::test]
async fn client_session_fails_with_1006_when_the_server_drops_tcp_mid_message() {
    let (listener, addr) = listener().await;
    let url = url(addr);
    let (client, peer) = tokio::join!(sockeye::connect(&url), RawPeer::accept(&listener, b""));
    let (mut client, _) = client.unwrap();
    let mut peer = peer;

    client.send("before").await.unwrap();
    let frame = peer.expect_frame().await;
    assert!(frame.masked);
    assert_eq!(frame.payload, b"before");
    let frame = RawPeer::server_frame(OpCode::Text, "a message cut short".as_bytes());
    peer.write_raw(&frame[..8]).await;
    drop(peer);

    let received = within("the failure", client.next()).await;
    assert!(
        matches!(received, Some(Err(Error::Failed(ref e))) if *e == lost()),
        "{received:?}"
    );
    assert!(client.next().await.is_none());
    let info = within("the outcome", client.session().closed()).await;
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    assert_eq!(info.error, Some(lost()));
}

#[tokio::test]
async fn server_drops_a_client_that_never_answers_close_after_the_close_timeout_with_1006() {
    let (listener, addr) = listener().await;
    let mut config = Config::default();
    config.protocol.close_timeout = Duration::from_secs(3);
    config.linger = Duration::from_secs(1);
    let (server, mut peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new().config(config).accept(stream).await
        },
        RawPeer::connect(addr),
    );
    let mut server = server.unwrap();
    tokio::time::pause();

    // The client reads nothing and answers nothing.
    let start = Instant::now();
    let info = within("the close timeout", server.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    assert!(waited <= Duration::from_secs(5), "{waited:?}");
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.initiator, Initiator::Local);
    assert!(!info.clean);
    assert_eq!(info.error, Some(sockeye_proto::Error::CloseTimeout));
    assert_eq!(
        info.sent,
        Some(sockeye::CloseFrame::new(CloseCode::NORMAL, "bye").unwrap())
    );
    assert_eq!(info.received, None);
    // The stream reports the failure once, then ends.
    let timed_out = sockeye_proto::Error::CloseTimeout;
    assert!(matches!(server.next().await, Some(Err(Error::Failed(e))) if e == timed_out));
    assert!(server.next().await.is_none());
    assert_eq!(
        server.session().state_history().last_chunk(),
        Some(&[State::Open, CLOSING_SENT, State::Closed])
    );
    // What the client would have read: the Close, then the server's TCP close.
    assert_eq!(peer.expect_close().await, (Some(1000), "bye".into()));
    peer.expect_eof().await;
}

#[tokio::test]
async fn client_gives_up_on_a_server_that_never_answers_close_after_the_close_timeout() {
    let (listener, addr) = listener().await;
    let client = ClientBuilder::new().close_timeout(Duration::from_secs(4));
    let url = url(addr);
    let (client, peer) = tokio::join!(client.connect(&url), RawPeer::accept(&listener, b""));
    let (mut client, _) = client.unwrap();
    let mut peer = peer;
    tokio::time::pause();

    let start = Instant::now();
    let closing = client.session();
    closing.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(peer.expect_close().await, (Some(1000), String::new()));
    // The server never answers: the client fails after the close timeout and closes TCP.
    peer.expect_eof().await;
    assert!(start.elapsed() >= Duration::from_secs(4));
    drop(peer);
    let info = within("the outcome", client.session().closed()).await;
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.error, Some(sockeye_proto::Error::CloseTimeout));
    assert!(!info.clean);
    let timed_out = sockeye_proto::Error::CloseTimeout;
    assert!(matches!(client.next().await, Some(Err(Error::Failed(e))) if e == timed_out));
    assert!(client.next().await.is_none());
}

#[tokio::test]
async fn client_keepalive_closes_with_1011_when_the_server_never_answers_pings() {
    let (listener, addr) = listener().await;
    let client = ClientBuilder::new().keepalive(Duration::from_secs(1), Duration::from_secs(2));
    let url = url(addr);
    // Taken before the connection opens, which arms the timer under test: the clock is
    // paused only after the handshake, and the timer runs from its own arming.
    let start = Instant::now();
    let (client, peer) = tokio::join!(client.connect(&url), RawPeer::accept(&listener, b""));
    let (mut client, _) = client.unwrap();
    let mut peer = peer;
    tokio::time::pause();

    let ping = peer.expect_frame().await;
    assert_eq!(ping.opcode, OpCode::Ping);
    let pinged = start.elapsed();
    assert!(pinged >= Duration::from_secs(1), "{pinged:?}");
    // No Pong: after the pong timeout the client fails the connection with 1011.
    let (code, _reason) = peer.expect_close().await;
    assert_eq!(code, Some(1011));
    assert!(start.elapsed() >= pinged + Duration::from_secs(2));
    peer.expect_eof().await;
    drop(peer);

    let received = within("the failure", client.next()).await;
    let timeout = sockeye_proto::Error::KeepaliveTimeout;
    assert!(
        matches!(received, Some(Err(Error::Failed(ref e))) if *e == timeout),
        "{received:?}"
    );
    let info = within("the outcome", client.session().closed()).await;
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(
        info.sent.and_then(|f| f.code),
        Some(CloseCode::INTERNAL_ERROR)
    );
    assert_eq!(info.error, Some(timeout));
    assert!(!info.clean);
}

#[tokio::test]
async fn server_keepalive_closes_with_1011_when_the_client_never_answers_pings() {
    let (listener, addr) = listener().await;
    let builder = ServerBuilder::new().keepalive(Duration::from_secs(5), Duration::from_secs(1));
    // Taken before the connection opens, which arms the timer under test: the clock is
    // paused only after the handshake, and the timer runs from its own arming.
    let start = Instant::now();
    let (server, mut peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            builder.accept(stream).await
        },
        RawPeer::connect(addr),
    );
    let server = server.unwrap();
    tokio::time::pause();

    let ping = peer.expect_frame().await;
    assert_eq!((ping.opcode, ping.masked), (OpCode::Ping, false));
    assert!(start.elapsed() >= Duration::from_secs(5));
    let (code, _reason) = peer.expect_close().await;
    assert_eq!(code, Some(1011));
    assert!(start.elapsed() >= Duration::from_secs(6));
    peer.expect_eof().await;
    drop(peer);
    let info = within("the outcome", server.session().closed()).await;
    assert_eq!(info.error, Some(sockeye_proto::Error::KeepaliveTimeout));
}

#[tokio::test]
async fn keepalive_pongs_keep_the_session_open() {
    let (listener, addr) = listener().await;
    let client = ClientBuilder::new().keepalive(Duration::from_millis(20), Duration::from_secs(5));
    let url = url(addr);
    let (client, peer) = tokio::join!(client.connect(&url), RawPeer::accept(&listener, b""));
    let (mut client, _) = client.unwrap();
    let mut peer = peer;

    // Five pings, each answered: each carries a fresh payload and the session stays open.
    let mut payloads = Vec::new();
    for _ in 0..5 {
        let ping = peer.expect_frame().await;
        assert_eq!(ping.opcode, OpCode::Ping);
        peer.write_raw(&RawPeer::server_frame(OpCode::Pong, &ping.payload))
            .await;
        payloads.push(ping.payload);
    }
    payloads.dedup();
    assert_eq!(payloads.len(), 5, "{payloads:?}");
    assert_eq!(client.state(), State::Open);
    assert_eq!(client.close_info(), None);
    // Pongs are not messages.
    peer.write_raw(&RawPeer::server_frame(OpCode::Text, b"data"))
        .await;
    let received = within("a message", client.next()).await.unwrap().unwrap();
    assert_eq!(received, Message::Text("data".into()));
    // Each answered Ping was timed.
    assert!(client.latency().is_some());
}

#[tokio::test]
async fn ping_measures_the_round_trip_to_the_peer() {
    let (mut client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    assert_eq!(client.latency(), None);
    let start = Instant::now();
    let rtt = within("our ping", client.ping()).await.unwrap();
    // Its Pong wakes it: on loopback, at once (nothing else would for seconds).
    assert!(start.elapsed() < Duration::from_secs(1), "{rtt:?}");
    assert!(rtt <= start.elapsed(), "{rtt:?}");
    assert_eq!(client.latency(), Some(rtt));
    // The other side, through a Session handle, while its reader waits in next().
    let session = server.session();
    let (rtt, received) = tokio::join!(within("their ping", session.ping()), async {
        client.send("after the pings").await.unwrap();
        within("a message", server.next()).await
    });
    let rtt = rtt.unwrap();
    assert_eq!(session.latency(), Some(rtt));
    assert_eq!(
        received.unwrap().unwrap(),
        Message::Text("after the pings".into())
    );
    assert_eq!((client.state(), server.state()), (State::Open, State::Open));
}

#[tokio::test]
async fn ping_measures_the_round_trip_in_endpoint_mode_too() {
    // The server's session runs an endpoint: its task, not a reader, takes the Pong.
    let (listener, addr) = listener().await;
    let (recorder, mut calls) = Recorder::new();
    let url = url(addr);
    let builder = ClientBuilder::new();
    let (server, client) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new()
                .accept_endpoint(stream, recorder)
                .await
                .unwrap()
        },
        builder.connect(&url),
    );
    let (client, _) = client.unwrap();
    assert_eq!(calls.next().await, Call::Open(State::Connected));
    // Our client's session answers on its own task.
    let start = Instant::now();
    let rtt = within("the endpoint's ping", server.ping()).await;
    let took = start.elapsed();
    let rtt = rtt.unwrap();
    // Its Pong wakes it at once.
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(server.latency(), Some(rtt));
    assert_eq!(client.state(), State::Open);
}

#[tokio::test]
async fn ping_fails_with_the_keepalive_error_when_the_peer_never_answers() {
    let mut config = Config::default();
    config.protocol.pong_timeout = Duration::from_millis(200);
    let (server, mut peer) = server_with_raw_client_on(config).await;
    let (result, ping) = tokio::join!(server.ping(), peer.expect_frame());
    assert_eq!(ping.opcode, OpCode::Ping);
    assert!(
        matches!(
            result,
            Err(Error::Failed(sockeye_proto::Error::KeepaliveTimeout))
        ),
        "{result:?}"
    );
    let (code, _reason) = peer.expect_close().await;
    assert_eq!(code, Some(1011));
    // Once the session is over, refused at once.
    assert!(within("a late ping", server.ping()).await.is_err());
}

#[tokio::test]
async fn a_violation_behind_a_message_takes_effect_at_the_close_timeout_without_another_recv() {
    let mut config = Config::default();
    config.protocol.close_timeout = Duration::from_millis(300);
    let (mut server, mut peer) = server_with_raw_client_on(config).await;
    // A message, then a frame with a reserved opcode (3), in one write: the reader reads
    // both at once.
    let mut bytes = peer.encode(true, OpCode::Text, b"first");
    bytes.extend_from_slice(&[0x83, 0x80, 0, 0, 0, 0]);
    peer.write_raw(&bytes).await;
    let received = within("the message", server.recv()).await.unwrap().unwrap();
    assert_eq!(received, Message::Text("first".into()));
    // The failure waits for the application to ask for more (it may answer "first"
    // first), but no longer than the close timeout: the driver, which waits for the
    // session's deadlines, learned of the new one from the reader.
    let start = Instant::now();
    assert_eq!(peer.expect_close().await.0, Some(1002));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    drop(server);
}

#[tokio::test]
async fn handshake_rejected_by_the_server_reaches_the_client_with_status_and_body() {
    let (listener, addr) = listener().await;
    let server = ServerBuilder::new().on_request(|request| {
        assert_eq!(request.path, "/");
        Err(Reject::new(403, "members only"))
    });
    let url = url(addr);
    let (client, server) = tokio::join!(sockeye::connect(&url), async {
        let (stream, _) = listener.accept().await.unwrap();
        server.accept(stream).await
    });

    match client {
        Err(Error::Handshake(HandshakeError::UnexpectedStatus { status, body })) => {
            assert_eq!(status, 403);
            assert_eq!(&body[..], b"members only");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(server, Err(Error::Rejected(403))), "{server:?}");
}

#[tokio::test]
async fn handshake_rejection_is_an_http_response_then_the_tcp_close() {
    let server = ServerBuilder::new()
        .on_request(|_| Err(Reject::new(401, "who are you?").header("WWW-Authenticate", "Basic")))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(|_ws| async {
        panic!("a rejected handshake reached the handler");
    }));

    let response = RawPeer::refused(addr, "Sec-WebSocket-Version: 13\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{response}"
    );
    assert!(
        response.contains("WWW-Authenticate: Basic\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nwho are you?"), "{response}");
    // A request the server cannot accept at all is refused by the protocol, not the callback.
    let response = RawPeer::refused(addr, "Sec-WebSocket-Version: 8\r\n").await;
    assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
    assert!(
        response.contains("Sec-WebSocket-Version: 13\r\n"),
        "{response}"
    );

    shutdown.shutdown();
    within("serve() to return", serving).await.unwrap().unwrap();
}

#[tokio::test]
async fn endpoint_client_is_told_on_error_then_on_close_when_the_handshake_is_refused() {
    let (listener, addr) = listener().await;
    let (recorder, calls) = common::Recorder::new();
    let (client, url) = (ClientBuilder::new(), url(addr));
    let (session, _) = tokio::join!(client.connect_endpoint(&url, recorder), async {
        let (stream, _) = listener.accept().await.unwrap();
        ServerBuilder::new()
            .on_request(|_| Err(Reject::new(503, "later")))
            .accept(stream)
            .await
    });
    assert!(
        matches!(
            session,
            Err(Error::Handshake(HandshakeError::UnexpectedStatus {
                status: 503,
                ..
            }))
        ),
        "{session:?}"
    );
    let calls = calls.all().await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        matches!(
            &calls[0],
            common::Call::Error(sockeye_proto::Error::Handshake(_))
        ),
        "{calls:?}"
    );
    let common::Call::Close(info, _) = &calls[1] else {
        panic!("{calls:?}");
    };
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
}

#[tokio::test]
async fn client_handshake_times_out_when_the_server_never_answers() {
    let (listener, addr) = listener().await;
    let (stream, _accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), async {
        // Accept the TCP connection and say nothing.
        listener.accept().await.unwrap()
    });
    tokio::time::pause();
    let start = Instant::now();
    let client = ClientBuilder::new().handshake_timeout(Duration::from_secs(3));
    let result = within(
        "the handshake timeout",
        client.connect_on(stream.unwrap(), &url(addr)),
    )
    .await;
    assert!(matches!(result, Err(Error::HandshakeTimeout)), "{result:?}");
    assert!(start.elapsed() >= Duration::from_secs(3));
}

// ----- failing the connection on the application's behalf -----

/// A server session whose close timeout and linger are long: nothing in these tests may
/// wait for either (the peer closes its end once it has read our EOF).
async fn patient_server_with_raw_client() -> (sockeye::WebSocket, RawPeer) {
    let mut config = Config {
        linger: Duration::from_secs(30),
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_secs(30);
    common::server_with_raw_client_on(config).await
}

#[tokio::test]
async fn an_application_fails_the_connection_without_waiting_for_the_peer() {
    let (mut server, mut peer) = patient_server_with_raw_client().await;
    // A message arrives that the application will not take.
    peer.send_frame(OpCode::Binary, b"\x00\x01").await;
    let received = within("the message", server.recv()).await.unwrap().unwrap();
    assert_eq!(received, Message::Binary(vec![0, 1].into()));
    let start = Instant::now();
    server
        .session()
        .fail(CloseCode::UNSUPPORTED_DATA, "no binary here")
        .unwrap();

    // 7.1.7: our Close with the code, then the connection closed; the peer's answer is not
    // awaited.
    assert_eq!(
        peer.expect_close().await,
        (Some(1003), "no binary here".into())
    );
    peer.expect_eof().await;
    // The peer closes its end on our EOF, without a Close frame of its own.
    drop(peer);
    let info = within("the outcome", server.session().closed()).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    assert_eq!(info.initiator, sockeye::Initiator::Local);
    assert_eq!(
        info.sent.as_ref().and_then(|frame| frame.code),
        Some(CloseCode::UNSUPPORTED_DATA)
    );
    assert_eq!(info.received, None);
    assert_eq!(
        info.error,
        Some(sockeye_proto::Error::Application {
            code: CloseCode::UNSUPPORTED_DATA,
            reason: "no binary here".into(),
        })
    );
    assert_eq!(server.state(), State::Closed);
    // Nothing more can be sent; the stream reports the failure, then ends.
    assert!(server.session().try_send("late").is_err());
    let rest = within("the failure", server.recv()).await;
    assert!(
        matches!(
            rest,
            Some(Err(Error::Failed(sockeye_proto::Error::Application { .. })))
        ),
        "{rest:?}"
    );
    assert!(within("the end", server.recv()).await.is_none());
}

#[tokio::test]
async fn failing_after_a_close_stops_waiting_for_the_peers_answer() {
    let (server, mut peer) = patient_server_with_raw_client().await;
    let session = server.session();
    session.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(peer.expect_close().await, (Some(1000), "bye".into()));
    // The peer never answers; the application gives up on it before the close timeout.
    let start = Instant::now();
    session.fail(CloseCode::POLICY_VIOLATION, "").unwrap();
    peer.expect_eof().await;
    drop(peer);
    let info = within("the outcome", session.closed()).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(!info.clean);
    // Only one Close was sent: the first.
    assert_eq!(
        info.sent.as_ref().and_then(|frame| frame.code),
        Some(CloseCode::NORMAL)
    );
    assert!(matches!(
        info.error,
        Some(sockeye_proto::Error::Application { .. })
    ));
}

#[tokio::test]
async fn fail_refuses_what_close_refuses() {
    let (server, _peer) = patient_server_with_raw_client().await;
    let session = server.session();
    for (code, reason) in [
        (CloseCode::NO_STATUS, String::new()),
        (CloseCode::ABNORMAL, String::new()),
        (CloseCode::POLICY_VIOLATION, "x".repeat(124)),
    ] {
        let refused = session.fail(code, &reason);
        assert!(
            matches!(refused, Err(Error::Close(_))),
            "{code:?}: {refused:?}"
        );
    }
    // Refusals change nothing.
    assert_eq!(session.state(), State::Open);
    session.send("still open").await.unwrap();
}
