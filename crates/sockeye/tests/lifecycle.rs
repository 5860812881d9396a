//! The session lifecycle over real loopback TCP: the three traced close scenarios of
//! seed 000 between our client and our server (state sequence, close details on both
//! sides, which side closed TCP first), and the order of the `Endpoint` callbacks.

mod common;

use std::time::Duration;

use common::scenarios::{self, exchange_first_message, frame};
use common::{
    CLOSING_BOTH, CLOSING_RECEIVED, CLOSING_SENT, Call, RawPeer, Recorder, history_after_open,
    listener, stays_pending, url, within, ws_pair,
};
use sockeye::{
    ClientBuilder, CloseCode, CloseInfo, Endpoint, Initiator, Message, ServerBuilder, Session,
    State,
};
use sockeye_proto::frame::OpCode;
use tokio::io::AsyncWriteExt;

/// A client and a server of ours over loopback TCP that have exchanged a first message.
async fn open_pair_with_message() -> (sockeye::WebSocket, sockeye::WebSocket) {
    exchange_first_message(ws_pair(ClientBuilder::new(), ServerBuilder::new()).await).await
}

#[tokio::test]
async fn locally_initiated_close_between_our_client_and_server() {
    let (client, server) = open_pair_with_message().await;
    scenarios::locally_initiated_close(client, server).await;
}

#[tokio::test]
async fn remotely_initiated_close_between_our_client_and_server() {
    let (client, server) = open_pair_with_message().await;
    scenarios::remotely_initiated_close(client, server).await;
}

#[tokio::test]
async fn overlapping_close_between_our_client_and_server() {
    let (client, server) = open_pair_with_message().await;
    scenarios::overlapping_close(client, server).await;
}

#[tokio::test]
async fn endpoint_on_open_runs_before_a_message_that_came_with_the_handshake_response() {
    let (listener, addr) = listener().await;
    let early = RawPeer::server_frame(OpCode::Text, b"early");
    let (recorder, mut calls) = Recorder::new();
    let (client, url) = (ClientBuilder::new(), url(addr));
    let (session, mut peer) = tokio::join!(
        client.connect_endpoint(&url, recorder),
        RawPeer::accept(&listener, &early),
    );
    let session = session.unwrap();

    // on_open runs in CONNECTED, before the message read in the same chunk as the 101.
    assert_eq!(calls.next().await, Call::Open(State::Connected));
    assert_eq!(
        calls.next().await,
        Call::Message(Message::Text("early".into()))
    );

    peer.send_close(CloseCode::NORMAL, "done").await;
    assert_eq!(peer.expect_close().await, (Some(1000), String::new()));
    drop(peer);
    let info = within("the outcome", session.closed()).await;
    assert!(info.clean, "{info:?}");
    let rest = calls.all().await;
    assert!(
        matches!(rest.as_slice(), [Call::Close(i, _)] if *i == info),
        "{rest:?}"
    );
}

#[tokio::test]
async fn endpoint_on_close_runs_exactly_once_with_the_close_info() {
    let (listener, addr) = listener().await;
    let (recorder, calls) = Recorder::new();
    let url = url(addr);
    let (client, server) = tokio::join!(sockeye::connect(&url), async {
        let (stream, _) = listener.accept().await.unwrap();
        let mut recorder = recorder;
        recorder.echo = true;
        ServerBuilder::new().accept_endpoint(stream, recorder).await
    });
    let (mut client, _) = client.unwrap();
    let server = server.unwrap();

    client.send("one").await.unwrap();
    client.send("two").await.unwrap();
    for expected in ["one", "two"] {
        let echoed = within("an echo", client.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::Text(expected.into()));
    }
    // Close twice and ask again afterwards: still one on_close.
    let client_info = within("the close", client.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap();
    assert_eq!(
        client.close(CloseCode::NORMAL, "again").await.unwrap(),
        client_info
    );
    let server_info = within("the server's outcome", server.closed()).await;
    assert_eq!(server.close_info(), Some(server_info.clone()));

    let all = calls.all().await;
    assert_eq!(
        all,
        [
            Call::Open(State::Connected),
            Call::Message(Message::Text("one".into())),
            Call::Message(Message::Text("two".into())),
            // Seed 000: on_close runs in CLOSING{received}; the reply (and, on the
            // server, the TCP close) follows once it returned.
            Call::Close(server_info.clone(), CLOSING_RECEIVED),
        ]
    );
    assert_eq!(server_info.code, CloseCode::NORMAL);
    assert_eq!(server_info.reason, "bye");
    assert_eq!(server_info.initiator, Initiator::Remote);
    assert!(server_info.clean);
}

#[tokio::test]
async fn endpoint_on_error_runs_before_on_close_when_the_peer_breaks_the_protocol() {
    let (listener, addr) = listener().await;
    let (recorder, calls) = Recorder::new();
    let (session, mut peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new().accept_endpoint(stream, recorder).await
        },
        RawPeer::connect(addr),
    );
    let session = session.unwrap();

    // A client frame without a mask: the server fails the connection with 1002 (5.1).
    peer.write_raw(&RawPeer::server_frame(OpCode::Text, b"unmasked"))
        .await;
    let (code, _reason) = peer.expect_close().await;
    assert_eq!(code, Some(1002));
    peer.expect_eof().await;
    // The server lingers until the client closes too.
    drop(peer);

    let info = within("the outcome", session.closed()).await;
    let error = sockeye_proto::Error::Protocol(sockeye_proto::ProtocolError::UnmaskedFrame);
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.initiator, Initiator::Local);
    assert!(!info.clean);
    assert_eq!(info.error, Some(error.clone()));
    assert_eq!(
        calls.all().await,
        [
            Call::Open(State::Connected),
            Call::Error(error),
            Call::Close(info, State::Closed),
        ]
    );
}

#[tokio::test]
async fn endpoint_close_inside_on_open_goes_straight_to_closing() {
    let (listener, addr) = listener().await;
    let (mut recorder, calls) = Recorder::new();
    recorder.close_in_open = Some((CloseCode::NORMAL, "not today"));
    let (client, url) = (ClientBuilder::new(), url(addr));
    let (session, server) = tokio::join!(client.connect_endpoint(&url, recorder), async {
        let (stream, _) = listener.accept().await.unwrap();
        sockeye::accept(stream).await
    });
    let session = session.unwrap();
    let mut server = server.unwrap();

    assert!(
        within("the end of the server's stream", server.next())
            .await
            .is_none()
    );
    let info = within("the client's outcome", session.closed()).await;
    assert_eq!(
        session.state_history(),
        [
            State::New,
            State::Connecting,
            State::Connected,
            CLOSING_SENT,
            CLOSING_BOTH,
            State::Closed,
        ]
    );
    assert_eq!(info.sent, frame(CloseCode::NORMAL, "not today"));
    assert_eq!(info.initiator, Initiator::Local);
    assert!(info.clean);
    let server_info = server.close_info().unwrap();
    assert_eq!(server_info.reason, "not today");
    assert_eq!(
        server.session().state_history(),
        history_after_open(&[CLOSING_RECEIVED, CLOSING_BOTH, State::Closed])
    );
    let all = calls.all().await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], Call::Open(State::Connected));
    assert!(matches!(&all[1], Call::Close(i, _) if *i == info));
}

/// An endpoint whose `on_close` reports that it started, then blocks until released.
struct BlockingOnClose {
    entered: tokio::sync::mpsc::UnboundedSender<CloseInfo>,
    release: std::sync::mpsc::Receiver<()>,
}

impl Endpoint for BlockingOnClose {
    fn on_message(&mut self, _session: &Session, _message: Message) {}

    fn on_close(&mut self, _session: &Session, info: &CloseInfo) {
        let _ = self.entered.send(info.clone());
        // Blocks the session's task on purpose; the session runs on a runtime of its own.
        let _ = self.release.recv();
    }
}

#[tokio::test]
async fn endpoint_reply_to_a_remote_close_is_sent_after_on_close_returns() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let endpoint = BlockingOnClose {
        entered: entered_tx,
        release: release_rx,
    };
    // The server session on its own thread and runtime, so that blocking in on_close
    // stops only that session's task.
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let session = ServerBuilder::new()
                .accept_endpoint(stream, endpoint)
                .await
                .unwrap();
            session.closed().await
        })
    });
    let mut peer = RawPeer::connect(addr).await;

    peer.send_close(CloseCode::GOING_AWAY, "leaving").await;
    let info = within("on_close", entered.recv()).await.unwrap();
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert_eq!(info.reason, "leaving");
    assert_eq!(info.initiator, Initiator::Remote);

    // Seed 000: no reply while on_close runs.
    assert!(stays_pending(Duration::from_millis(200), peer.read_frame()).await);
    release.send(()).unwrap();
    // Then the reply, echoing the code (5.5.1), and the server closes TCP (7.1.1).
    assert_eq!(peer.expect_close().await, (Some(1001), String::new()));
    peer.expect_eof().await;
    drop(peer);
    let joined = within(
        "the server thread",
        tokio::task::spawn_blocking(move || server.join()),
    )
    .await;
    let outcome = joined.unwrap().unwrap();
    assert_eq!(outcome, info);
    assert!(outcome.clean);
}

#[tokio::test]
async fn messages_that_arrive_while_closing_are_still_delivered() {
    let (listener, addr) = listener().await;
    let url = url(addr);
    let (client, peer) = tokio::join!(sockeye::connect(&url), RawPeer::accept(&listener, b""));
    let (mut client, _) = client.unwrap();
    let mut peer = peer;

    client.session().close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(peer.expect_close().await, (Some(1000), String::new()));
    // The server sent these before it saw our Close (DESIGN.md invariant 4).
    peer.write_raw(&RawPeer::server_frame(OpCode::Text, b"late 1"))
        .await;
    peer.write_raw(&RawPeer::server_frame(OpCode::Binary, b"late 2"))
        .await;
    peer.send_close(CloseCode::NORMAL, "").await;
    peer.stream.shutdown().await.unwrap();
    peer.expect_eof().await;

    let mut received = Vec::new();
    while let Some(message) = within("the stream", client.next()).await {
        received.push(message.unwrap());
    }
    assert_eq!(
        received,
        [
            Message::Text("late 1".into()),
            Message::Binary("late 2".into())
        ]
    );
    assert!(client.close_info().unwrap().clean);
}

/// A session made by `accept`, `connect` or `connect_on` must start OPEN even when its
/// task starts on another thread before the call returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_start_open_on_a_multi_thread_runtime() {
    let (listener, addr) = listener().await;
    let url = url(addr);
    for round in 0..100 {
        let (client, server) = tokio::join!(
            async {
                if round % 2 == 0 {
                    ClientBuilder::new().connect(&url).await
                } else {
                    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    ClientBuilder::new().connect_on(stream, &url).await
                }
            },
            async {
                let (stream, _) = listener.accept().await.unwrap();
                sockeye::accept(stream).await
            }
        );
        let (mut client, _) = client.unwrap();
        let mut server = server.unwrap();
        client.send("to server").await.unwrap();
        server.send("to client").await.unwrap();
        let received = within("a message", server.next()).await;
        assert!(
            matches!(received, Some(Ok(_))),
            "round {round}: {received:?}"
        );
        let received = within("a message", client.next()).await;
        assert!(
            matches!(received, Some(Ok(_))),
            "round {round}: {received:?}"
        );
        let info = within("the close", client.close(CloseCode::NORMAL, ""))
            .await
            .unwrap();
        assert_eq!(info.initiator, Initiator::Local, "round {round}: {info:?}");
        assert_eq!(info.code, CloseCode::NORMAL, "round {round}: {info:?}");
    }
}

#[tokio::test]
async fn endpoint_on_message_is_not_called_for_ping_and_pong() {
    let (listener, addr) = listener().await;
    let (recorder, calls) = Recorder::new();
    let (session, mut peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new().accept_endpoint(stream, recorder).await
        },
        RawPeer::connect(addr),
    );
    let session = session.unwrap();

    peer.send_frame(OpCode::Ping, b"are you there").await;
    let pong = peer.expect_frame().await;
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OpCode::Pong, &b"are you there"[..])
    );
    peer.send_frame(OpCode::Pong, b"unsolicited").await;
    peer.send_frame(OpCode::Binary, b"data").await;
    peer.send_close(CloseCode::NORMAL, "").await;
    assert_eq!(peer.expect_close().await, (Some(1000), String::new()));
    peer.expect_eof().await;
    drop(peer);

    let info = within("the outcome", session.closed()).await;
    // Ping and Pong are the session's business (Endpoint docs): only data reaches on_message.
    assert_eq!(
        calls.all().await,
        [
            Call::Open(State::Connected),
            Call::Message(Message::Binary("data".into())),
            Call::Close(info, CLOSING_RECEIVED),
        ]
    );
}
