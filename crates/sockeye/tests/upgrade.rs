//! Sessions on connections whose opening handshake another HTTP implementation made: the
//! `hyper_upgrade` example (hyper serving HTTP, Sockeye checking the upgrade and running
//! the session) against Sockeye's client, and sessions of either role and either style
//! (`WebSocket`, `Endpoint`) after a handshake written by hand.

mod common;

#[allow(dead_code, reason = "the example's `main`, which the tests do not run")]
#[path = "../examples/hyper_upgrade.rs"]
mod hyper_upgrade;

use std::net::SocketAddr;

use common::{Call, Recorder, within};
use sockeye::{Accept, ClientBuilder, CloseCode, Message, ServerBuilder, State};
use sockeye_proto::handshake::{HandshakeLimits, accept_key, encode_accept, parse_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The example's hyper server on a free port.
async fn hyper_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_upgrade::serve(listener));
    addr
}

/// Reads one HTTP head, byte by byte so that nothing after it is taken.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = within("the response head", stream.read_u8()).await.unwrap();
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn a_session_on_a_connection_hyper_upgraded_echoes_and_closes_cleanly() {
    let addr = hyper_server().await;
    let (mut ws, response) = within("the upgrade", sockeye::connect(&format!("ws://{addr}/ws")))
        .await
        .unwrap();
    assert_eq!(response.status, 101);
    let large = Message::Binary(vec![0x5a; 100 * 1024].into());
    for message in [Message::Text("hello".into()), large] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(
            within("the echo", ws.next()).await.unwrap().unwrap(),
            message
        );
    }
    let info = within("the close", ws.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(info.code, CloseCode::NORMAL);
}

#[tokio::test]
async fn hyper_answers_a_bad_upgrade_with_the_status_sockeye_gives() {
    let addr = hyper_server().await;
    // Version 8 (a draft's): 426 with the version the server speaks (RFC 6455 4.4).
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    // And a request that is not an upgrade is hyper's to answer.
    let url = format!("ws://{addr}/elsewhere");
    let refused = within("the refusal", sockeye::connect(&url)).await;
    assert!(
        matches!(
            refused,
            Err(sockeye::Error::Handshake(
                sockeye_proto::HandshakeError::UnexpectedStatus { status: 200, .. }
            ))
        ),
        "{refused:?}"
    );
}

/// An echo server of Sockeye's on a free port.
async fn sockeye_server() -> SocketAddr {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(common::echo));
    addr
}

/// The client side of an opening handshake written by hand: the request, and the 101
/// response checked for the key's accept value.
async fn connect_by_hand(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(&accept_key(key.as_bytes())), "{head}");
    stream
}

/// The server side of an opening handshake written by hand, on `listener`'s next
/// connection: the request read and checked, the 101 response written.
async fn accept_by_hand(listener: &TcpListener) -> TcpStream {
    let (mut stream, _) = within("a connection", listener.accept()).await.unwrap();
    let head = read_head(&mut stream).await;
    let (request, _) = parse_request(head.as_bytes(), &HandshakeLimits::default())
        .unwrap()
        .unwrap();
    let mut response = Vec::new();
    encode_accept(&request, &Accept::default(), &mut response).unwrap();
    stream.write_all(&response).await.unwrap();
    stream
}

#[tokio::test]
async fn a_client_session_after_a_handshake_made_by_hand_talks_to_sockeyes_server() {
    let stream = connect_by_hand(sockeye_server().await).await;
    let mut ws = ClientBuilder::new().after_handshake(stream);
    ws.send("masked by the client").await.unwrap();
    assert_eq!(
        within("the echo", ws.next()).await.unwrap().unwrap(),
        Message::Text("masked by the client".into())
    );
    let info = within("the close", ws.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
    assert!(
        ws.session().peer_closed_first().unwrap(),
        "the server closes TCP first"
    );
}

#[tokio::test]
async fn an_endpoint_client_after_a_handshake_made_by_hand_gets_its_callbacks() {
    let stream = connect_by_hand(sockeye_server().await).await;
    let (recorder, mut calls) = Recorder::new();
    let session = ClientBuilder::new().after_handshake_endpoint(stream, recorder);
    assert_eq!(calls.next().await, Call::Open(State::Connected));
    session.send("to the echo").await.unwrap();
    assert_eq!(
        calls.next().await,
        Call::Message(Message::Text("to the echo".into()))
    );
    session.close(CloseCode::NORMAL, "").unwrap();
    match calls.all().await.as_slice() {
        // Told while the client waits for the server to close TCP (7.1.1).
        [
            Call::Close(
                info,
                State::Closing {
                    close_sent: true,
                    close_received: true,
                },
            ),
        ] => {
            assert!(info.clean, "{info:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_endpoint_server_after_a_handshake_made_by_hand_gets_its_callbacks() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("ws://{addr}/");
    let (client, stream) = tokio::join!(sockeye::connect(&url), accept_by_hand(&listener));
    let (mut recorder, calls) = Recorder::new();
    recorder.echo = true;
    let session = ServerBuilder::new().after_handshake_endpoint(stream, recorder);
    let (mut ws, _) = client.unwrap();
    ws.send("echo me").await.unwrap();
    assert_eq!(
        within("the echo", ws.next()).await.unwrap().unwrap(),
        Message::Text("echo me".into())
    );
    let info = within("the close", ws.close(CloseCode::GOING_AWAY, ""))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
    match calls.all().await.as_slice() {
        [
            Call::Open(State::Connected),
            Call::Message(message),
            // A remotely initiated close: told before the reply goes out (seed 000).
            Call::Close(
                info,
                State::Closing {
                    close_sent: false,
                    close_received: true,
                },
            ),
        ] => {
            assert_eq!(message, &Message::Text("echo me".into()));
            assert!(info.clean, "{info:?}");
            assert_eq!(info.code, CloseCode::GOING_AWAY);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(session.state(), State::Closed);
}
