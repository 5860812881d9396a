//! Sessions on connections whose opening handshake another HTTP implementation made: the
//! `hyper_upgrade` example (hyper serving HTTP, Sockeye checking the upgrade and running
//! the session) against Sockeye's client, and a client session after a handshake written
//! by hand against Sockeye's server.

mod common;

#[allow(dead_code, reason = "the example's `main`, which the tests do not run")]
#[path = "../examples/hyper_upgrade.rs"]
mod hyper_upgrade;

use std::net::SocketAddr;

use common::within;
use sockeye::{ClientBuilder, CloseCode, Message};
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

#[tokio::test]
async fn a_client_session_after_a_handshake_made_by_hand_talks_to_sockeyes_server() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(common::echo));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let accept = sockeye_proto::handshake::accept_key(key.as_bytes());
    assert!(head.contains(&accept), "{head}");

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
