//! Sessions on connections whose opening handshake another HTTP implementation made: the
//! `hyper_upgrade` example (hyper serving HTTP, Sockeye checking the upgrade and running
//! the session) against Sockeye's client, upgrades sent by hyper's client
//! (`ClientBuilder::upgrade`), and sessions of either role and either style
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

/// Sends each of `messages` on `ws` and expects it echoed, then closes with `code`; the
/// close must be clean. Returns its outcome.
async fn echoes_then_closes(
    ws: &mut sockeye::WebSocket,
    messages: Vec<Message>,
    code: CloseCode,
) -> sockeye::CloseInfo {
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(
            within("the echo", ws.next()).await.unwrap().unwrap(),
            message
        );
    }
    let info = within("the close", ws.close(code, "")).await.unwrap();
    assert!(info.clean, "{info:?}");
    info
}

#[tokio::test]
async fn a_session_on_a_connection_hyper_upgraded_echoes_and_closes_cleanly() {
    let addr = hyper_server().await;
    let (mut ws, response) = within("the upgrade", sockeye::connect(&format!("ws://{addr}/ws")))
        .await
        .unwrap();
    assert_eq!(response.status, 101);
    assert_eq!((response.subprotocol, response.extensions), (None, vec![]));
    let large = Message::Binary(vec![0x5a; 100 * 1024].into());
    let messages = vec![Message::Text("hello".into()), large];
    let info = echoes_then_closes(&mut ws, messages, CloseCode::NORMAL).await;
    assert_eq!(info.code, CloseCode::NORMAL);
}

#[tokio::test]
async fn an_upgrade_through_hyper_agrees_on_compression_and_a_subprotocol() {
    // The example's ServerBuilder enables permessage-deflate and selects `chat`.
    let addr = hyper_server().await;
    let client = ClientBuilder::new().deflate(true).subprotocol("chat");
    let (mut ws, response) = within("the upgrade", client.connect(&format!("ws://{addr}/ws")))
        .await
        .unwrap();
    assert_eq!(response.subprotocol.as_deref(), Some("chat"));
    assert_eq!(response.extensions.len(), 1, "{:?}", response.extensions);
    assert!(response.extensions[0].starts_with("permessage-deflate"));
    assert_eq!(ws.session().subprotocol().as_deref(), Some("chat"));
    // Compressed both ways: a compressible message, a short one and an empty one.
    let text = Message::Text("compress me ".repeat(10_000));
    let messages = vec![
        text,
        Message::Text("hi".into()),
        Message::Binary(Vec::new().into()),
    ];
    echoes_then_closes(&mut ws, messages, CloseCode::NORMAL).await;
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
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
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

/// An endpoint client against Sockeye's echo server: `on_open` first, then `text` sent
/// and echoed back.
async fn opens_and_echoes(session: &sockeye::Session, calls: &mut common::Calls, text: &str) {
    assert_eq!(calls.next().await, Call::Open(State::Connected));
    session.send(text).await.unwrap();
    assert_eq!(
        calls.next().await,
        Call::Message(Message::Text(text.into()))
    );
}

#[tokio::test]
async fn a_client_session_after_a_handshake_made_by_hand_talks_to_sockeyes_server() {
    let stream = connect_by_hand(sockeye_server().await).await;
    let mut ws = ClientBuilder::new().after_handshake(stream);
    let messages = vec![Message::Text("masked by the client".into())];
    echoes_then_closes(&mut ws, messages, CloseCode::NORMAL).await;
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
    opens_and_echoes(&session, &mut calls, "to the echo").await;
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
    let messages = vec![Message::Text("echo me".into())];
    echoes_then_closes(&mut ws, messages, CloseCode::GOING_AWAY).await;
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

#[tokio::test]
async fn server_builder_upgrade_answers_what_accept_would() {
    fn headers(extra: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("host", "example.com"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .iter()
        .chain(extra)
        {
            headers.append(*name, http::HeaderValue::from_static(value));
        }
        headers
    }
    let builder = ServerBuilder::new().on_request(|request| match request.origin() {
        Some("https://evil.example") => Err(sockeye::Reject::new(403, "not from there")),
        _ => Ok(Accept {
            subprotocol: Some("chat".into()),
            ..Accept::default()
        }),
    });
    let get = |extra| builder.upgrade("GET", http::Version::HTTP_11, "/", headers(extra));

    let upgrade = get(&[("sec-websocket-protocol", "chat")]).unwrap();
    assert_eq!(upgrade.subprotocol().as_deref(), Some("chat"));
    let fields = upgrade.fields();
    assert!(fields.contains(&(
        "Sec-WebSocket-Accept".into(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
    )));
    assert!(fields.contains(&("Sec-WebSocket-Protocol".into(), "chat".into())));
    // The callback's refusal, as it made it.
    let refused = get(&[("origin", "https://evil.example")]).unwrap_err();
    assert_eq!(
        (refused.status, &refused.body[..]),
        (403, &b"not from there"[..])
    );
    // An Accept invalid for the request (a subprotocol it did not offer): 500.
    assert_eq!(get(&[]).unwrap_err().status, 500);
    // A request that is not a valid upgrade: the status `accept` would answer with.
    let mut unversioned = headers(&[]);
    unversioned.remove("sec-websocket-version");
    let draft = builder.upgrade("GET", http::Version::HTTP_11, "/", unversioned);
    assert_eq!(draft.unwrap_err().status, 426);
    let post = builder.upgrade("POST", http::Version::HTTP_11, "/", headers(&[]));
    assert_eq!(post.unwrap_err().status, 405);
}

// ----- upgrades made by another HTTP client -----

/// Sends `upgrade`'s request to `addr` with hyper's client; returns the server's status
/// and header fields, and the connection hyper hands over after a 101 (`None` after
/// another status).
async fn hyper_client_upgrade(
    addr: SocketAddr,
    upgrade: &sockeye::ClientUpgrade,
) -> (
    u16,
    http::HeaderMap,
    Option<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection.with_upgrades());
    let mut request = http::Request::get(upgrade.path());
    for (name, value) in upgrade.fields() {
        request = request.header(name, value);
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = within("the response", sender.send_request(request))
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    if status != 101 {
        return (status, headers, None);
    }
    let upgraded = within("the upgrade", hyper::upgrade::on(response))
        .await
        .unwrap();
    (
        status,
        headers,
        Some(hyper_util::rt::TokioIo::new(upgraded)),
    )
}

#[tokio::test]
async fn an_upgrade_by_hypers_client_agrees_on_compression_and_a_subprotocol() {
    // hyper at both ends; Sockeye decides both sides (the example's server enables
    // permessage-deflate and selects `chat`).
    let addr = hyper_server().await;
    let upgrade = ClientBuilder::new()
        .deflate(true)
        .subprotocol("chat")
        .upgrade(&format!("ws://{addr}/ws"))
        .unwrap();
    assert_eq!(upgrade.path(), "/ws");
    let (status, headers, stream) = hyper_client_upgrade(addr, &upgrade).await;
    let (mut ws, response) = upgrade
        .websocket(status, headers, stream.expect("upgraded"))
        .unwrap();
    assert_eq!(response.status, 101);
    assert_eq!(response.subprotocol.as_deref(), Some("chat"));
    assert_eq!(response.extensions.len(), 1, "{:?}", response.extensions);
    assert!(response.extensions[0].starts_with("permessage-deflate"));
    assert_eq!(ws.session().subprotocol().as_deref(), Some("chat"));
    let messages = vec![
        Message::Text("compress me ".repeat(10_000)),
        Message::Binary(vec![7; 70_000].into()),
        Message::Text("hi".into()),
    ];
    echoes_then_closes(&mut ws, messages, CloseCode::NORMAL).await;
}

#[tokio::test]
async fn an_endpoint_on_an_upgrade_by_hypers_client_talks_to_sockeyes_server() {
    let addr = sockeye_server().await;
    let upgrade = ClientBuilder::new()
        .upgrade(&format!("ws://{addr}/echo?x=1"))
        .unwrap();
    assert_eq!(upgrade.path(), "/echo?x=1");
    let (status, headers, stream) = hyper_client_upgrade(addr, &upgrade).await;
    let (recorder, mut calls) = Recorder::new();
    let (session, response) = upgrade
        .endpoint(status, headers, stream.expect("upgraded"), recorder)
        .unwrap();
    assert_eq!((response.subprotocol, response.extensions), (None, vec![]));
    opens_and_echoes(&session, &mut calls, "through hyper").await;
    session.close(CloseCode::NORMAL, "").unwrap();
    let info = within("the close", session.closed()).await;
    assert!(info.clean, "{info:?}");
}

/// An upgrade by hyper's client, made with `builder`, to a server that answers with the
/// 101 head `answer` makes from the request's key (its extra fields, each ending with
/// CRLF). Returns the handshake error `websocket` gave and every byte the server then
/// read until the connection ended.
async fn refused_answer(
    builder: ClientBuilder,
    answer: impl FnOnce(&str) -> String + Send + 'static,
) -> (sockeye_proto::HandshakeError, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let head = read_head(&mut stream).await;
        let key = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim())
            })
            .expect("a key");
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\n{}\r\n",
            answer(key)
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // What the client does with the connection next.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.map(|_| rest)
    });
    let upgrade = builder.upgrade(&format!("ws://{addr}/")).unwrap();
    let (status, headers, stream) = hyper_client_upgrade(addr, &upgrade).await;
    let error = match upgrade.websocket(status, headers, stream.expect("upgraded")) {
        Err(sockeye::Error::Handshake(error)) => error,
        other => panic!("not a handshake error: {:?}", other.map(|(_, r)| r)),
    };
    let rest = within("the server's end", server).await.unwrap();
    (error, rest.unwrap())
}

#[tokio::test]
async fn an_upgrade_by_another_client_fails_on_an_answer_that_is_not_ours() {
    // The RFC's sample accept value, which is not that of our (random) key.
    let (error, rest) = refused_answer(ClientBuilder::new(), |_| {
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n".to_owned()
    })
    .await;
    assert!(
        matches!(error, sockeye_proto::HandshakeError::BadAccept(_)),
        "{error:?}"
    );
    // The connection is closed without a byte: it never became a WebSocket.
    assert_eq!(rest, b"");
}

#[tokio::test]
async fn an_upgrade_by_another_client_fails_on_an_extension_answer_with_1010() {
    // An answer to our permessage-deflate offer that cannot be agreed (a window of 16
    // bits, RFC 7692 7.1.2.2).
    let (error, rest) = refused_answer(ClientBuilder::new().deflate(true), |key| {
        format!(
            "Sec-WebSocket-Accept: {}\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16\r\n",
            accept_key(key.as_bytes())
        )
    })
    .await;
    assert!(
        matches!(
            error,
            sockeye_proto::HandshakeError::ExtensionResponse { .. }
        ),
        "{error:?}"
    );
    // As `connect` does: a masked Close with 1010 (RFC 6455 7.4.1), then the end.
    assert!(rest.len() >= 8, "{rest:?}");
    assert_eq!(rest[0], 0x88, "a final Close frame: {rest:?}");
    assert_eq!(rest[1] & 0x80, 0x80, "masked");
    let len = usize::from(rest[1] & 0x7f);
    assert_eq!(rest.len(), 6 + len, "nothing after the Close: {rest:?}");
    let key = &rest[2..6];
    let payload: Vec<u8> = rest[6..]
        .iter()
        .enumerate()
        .map(|(i, byte)| byte ^ key[i % 4])
        .collect();
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1010);
}

#[test]
fn an_upgrade_request_for_another_client_names_host_path_and_offers() {
    // wss:// too, in a build without TLS: the other client makes the connection.
    let upgrade = ClientBuilder::new()
        .subprotocol("chat")
        .origin("https://example.com")
        .upgrade("wss://example.com/feed?since=7")
        .unwrap();
    assert_eq!(upgrade.path(), "/feed?since=7");
    let fields = upgrade.fields();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    };
    // The default port of wss:// is not written (RFC 6455 4.1 item 4).
    assert_eq!(field("Host"), Some("example.com"));
    assert_eq!(field("Upgrade"), Some("websocket"));
    assert_eq!(field("Sec-WebSocket-Version"), Some("13"));
    assert_eq!(field("Sec-WebSocket-Protocol"), Some("chat"));
    assert_eq!(field("Origin"), Some("https://example.com"));
    assert_eq!(field("Sec-WebSocket-Key").map(str::len), Some(24));
    let other = ClientBuilder::new()
        .upgrade("ws://127.0.0.1:9001/")
        .unwrap();
    assert_eq!(
        other.fields()[0],
        ("Host".to_owned(), "127.0.0.1:9001".to_owned())
    );
    assert!(ClientBuilder::new().upgrade("http://example.com/").is_err());
}
