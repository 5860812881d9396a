//! permessage-deflate through the runtime layer: the builders' options, an echo with
//! compression over loopback, offers written by hand, and the client's refusal (Close 1010)
//! of a response it cannot accept.

mod common;

use std::time::Duration;

use sockeye::{ClientBuilder, CloseCode, Message, ServerBuilder};
use sockeye_proto::extension::{DeflateConfig, NegotiationError};
use sockeye_proto::{HandshakeError, handshake};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// An echo server with these builder settings; returns its URL.
async fn echo_server(builder: ServerBuilder) -> String {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(common::echo));
    format!("ws://{addr}/")
}

fn json(len: usize) -> String {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!("{{\"seq\":{i},\"kind\":\"tick\",\"ok\":true}},"));
        i += 1;
    }
    text.push(']');
    text
}

async fn echo_round_trip(ws: &mut sockeye::WebSocket, message: Message) {
    ws.send(message.clone()).await.unwrap();
    let echoed = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, message);
}

#[tokio::test]
async fn client_and_server_negotiate_deflate_and_echo() {
    let url = echo_server(ServerBuilder::new().deflate(true)).await;
    let (mut ws, response) = timeout(LIMIT, ClientBuilder::new().deflate(true).connect(&url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.extensions, ["permessage-deflate"]);
    assert_eq!(
        ws.deflate(),
        Some(sockeye_proto::extension::DeflateParams::default())
    );
    for len in [10, 100, 10_000, 1 << 20] {
        echo_round_trip(&mut ws, Message::Text(json(len))).await;
        echo_round_trip(&mut ws, Message::Binary(json(len).into_bytes().into())).await;
    }
    let info = timeout(LIMIT, ws.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap()
        .unwrap();
    assert!(info.clean, "{info:?}");
}

#[tokio::test]
async fn deflate_is_off_unless_both_sides_enable_it() {
    let url = echo_server(ServerBuilder::new()).await;
    let (mut ws, response) = ClientBuilder::new()
        .deflate(true)
        .connect(&url)
        .await
        .unwrap();
    assert!(response.extensions.is_empty());
    assert_eq!(ws.deflate(), None);
    echo_round_trip(&mut ws, Message::Text(json(1000))).await;

    let url = echo_server(ServerBuilder::new().deflate(true)).await;
    let (mut ws, response) = ClientBuilder::new().connect(&url).await.unwrap();
    assert!(response.extensions.is_empty());
    echo_round_trip(&mut ws, Message::Text(json(1000))).await;
}

#[tokio::test]
async fn configured_parameters_and_offers_in_order() {
    let server = ServerBuilder::new().deflate_config(DeflateConfig {
        server_no_context_takeover: true,
        client_max_window_bits: Some(10),
        ..DeflateConfig::enabled()
    });
    let url = echo_server(server).await;
    // The first offer is invalid (8 is the smallest window); the second is taken.
    let (mut ws, response) = ClientBuilder::new()
        .extension("permessage-deflate; server_max_window_bits=7")
        .extension("permessage-deflate; server_max_window_bits=12; client_max_window_bits")
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(
        response.extensions,
        [
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=10"
        ]
    );
    for _ in 0..3 {
        echo_round_trip(&mut ws, Message::Text(json(50_000))).await;
    }
}

/// A server that answers the handshake with `extensions` and returns what the client sent
/// after its request.
async fn raw_server(listener: TcpListener, extensions: &'static str) -> Vec<u8> {
    let (mut io, _) = listener.accept().await.unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let (parsed, head) = loop {
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed before its request");
        request.extend_from_slice(&buf[..n]);
        if let Some(parsed) =
            handshake::parse_request(&request, &handshake::HandshakeLimits::default()).unwrap()
        {
            break parsed;
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n",
        handshake::accept_key(parsed.key.as_bytes())
    );
    io.write_all(response.as_bytes()).await.unwrap();
    let mut rest = request[head..].to_vec();
    io.read_to_end(&mut rest).await.unwrap();
    rest
}

#[tokio::test]
async fn client_refuses_invalid_extension_response_with_1010() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(raw_server(
        listener,
        "permessage-deflate; server_max_window_bits=99",
    ));
    let error = timeout(LIMIT, ClientBuilder::new().deflate(true).connect(&url))
        .await
        .unwrap()
        .expect_err("the response is refused");
    let expected = HandshakeError::ExtensionResponse {
        response: "permessage-deflate; server_max_window_bits=99".into(),
        error: NegotiationError::InvalidValue {
            name: "server_max_window_bits".into(),
            value: Some("99".into()),
        },
    };
    match &error {
        sockeye::Error::Handshake(e) => assert_eq!(e, &expected),
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(
        error.to_string().contains("server_max_window_bits"),
        "{error}"
    );
    // The server got a masked Close 1010 with the reason, then the end of the stream.
    let wire = timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(wire[0], 0x88, "a final Close frame: {wire:?}");
    assert_eq!(wire[1] & 0x80, 0x80, "masked");
    let len = usize::from(wire[1] & 0x7f);
    assert_eq!(wire.len(), 6 + len);
    let key = [wire[2], wire[3], wire[4], wire[5]];
    let payload: Vec<u8> = wire[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    assert_eq!(&payload[..2], &1010u16.to_be_bytes());
    let reason = String::from_utf8(payload[2..].to_vec()).unwrap();
    assert!(reason.contains("server_max_window_bits"), "{reason}");
}
