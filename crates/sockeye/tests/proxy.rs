//! Connecting through an HTTP proxy (`ClientBuilder::proxy`): a CONNECT proxy written here
//! tunnels to a Sockeye echo server, for `ws://` and for `wss://` (TLS end to end through
//! the tunnel), with credentials, and refusing.

mod common;
#[cfg(feature = "tls")]
#[path = "tls/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{listener, serve_echo, url, within};
use sockeye::{ClientBuilder, CloseCode, Error, Message, ServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the test proxy saw: each CONNECT request's head, and every byte the client sent
/// through its tunnels.
#[derive(Debug, Default)]
struct Seen {
    heads: Vec<String>,
    tunnelled: Vec<u8>,
}

/// A CONNECT proxy on 127.0.0.1 that answers each request with `answer` (a status line
/// and fields; a 2xx opens the tunnel to the requested target).
async fn proxy(answer: &'static str) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(tunnel(client, answer, record.clone()));
        }
    });
    (addr, seen)
}

async fn tunnel(mut client: TcpStream, answer: &'static str, seen: Arc<Mutex<Seen>>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let Ok(byte) = client.read_u8().await else {
            return;
        };
        head.push(byte);
    }
    let head = String::from_utf8(head).unwrap();
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .expect("a CONNECT request")
        .to_owned();
    seen.lock().unwrap().heads.push(head);
    client
        .write_all(format!("{answer}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    if !answer.starts_with("HTTP/1.1 2") {
        return;
    }
    let mut server = TcpStream::connect(target).await.unwrap();
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.split();
    let upstream = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = from_client.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                let _ = to_server.shutdown().await;
                return;
            }
            seen.lock().unwrap().tunnelled.extend_from_slice(&buf[..n]);
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// An echo server's address.
async fn echo_server(builder: ServerBuilder) -> SocketAddr {
    let (listener, addr) = listener().await;
    let _ = serve_echo(listener, builder);
    addr
}

/// Sends a message, expects its echo, and closes cleanly.
async fn echo_once(ws: &mut sockeye::WebSocket, text: &str) {
    ws.send(text).await.unwrap();
    assert_eq!(
        within("the echo", ws.next()).await.unwrap().unwrap(),
        Message::Text(text.into())
    );
    let info = within("the close", ws.close(CloseCode::NORMAL, "")).await;
    assert!(info.unwrap().clean);
}

#[tokio::test]
async fn a_client_reaches_the_server_through_a_connect_tunnel() {
    let server = echo_server(ServerBuilder::new()).await;
    let (proxy, seen) = proxy("HTTP/1.1 200 Connection established").await;
    let client = ClientBuilder::new().proxy(format!("http://{proxy}"));
    let (mut ws, response) = within("connect", client.connect(&url(server)))
        .await
        .unwrap();
    assert_eq!(response.status, 101);
    echo_once(&mut ws, "through the proxy").await;
    let seen = seen.lock().unwrap();
    // One CONNECT to the server's address, no credentials; the opening handshake and
    // the frames went through the tunnel.
    assert_eq!(seen.heads.len(), 1);
    assert!(
        seen.heads[0].starts_with(&format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n")),
        "{:?}",
        seen.heads[0]
    );
    assert!(!seen.heads[0].contains("Proxy-Authorization"));
    let tunnelled = String::from_utf8_lossy(&seen.tunnelled);
    assert!(tunnelled.starts_with("GET / HTTP/1.1\r\n"), "{tunnelled}");
}

#[tokio::test]
async fn credentials_in_the_proxy_url_go_as_basic_proxy_authorization() {
    let server = echo_server(ServerBuilder::new()).await;
    let (proxy, seen) = proxy("HTTP/1.1 200 OK").await;
    let client = ClientBuilder::new().proxy(format!("http://alice:open%20sesame@{proxy}/"));
    let (mut ws, _) = within("connect", client.connect(&url(server)))
        .await
        .unwrap();
    echo_once(&mut ws, "with credentials").await;
    // RFC 7617: base64 of "alice:open%20sesame", as written in the URL.
    let expected = "Proxy-Authorization: Basic YWxpY2U6b3BlbiUyMHNlc2FtZQ==\r\n";
    assert!(
        seen.lock().unwrap().heads[0].contains(expected),
        "{:?}",
        seen.lock().unwrap().heads
    );
    // The builder's Debug form does not show the password.
    let shown = format!("{client:?}");
    assert!(!shown.contains("open%20sesame"), "{shown}");
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_is_a_proxy_error() {
    let server = echo_server(ServerBuilder::new()).await;
    let (proxy, _) = proxy("HTTP/1.1 407 Proxy Authentication Required").await;
    let client = ClientBuilder::new().proxy(format!("http://{proxy}"));
    let error = within("connect", client.connect(&url(server)))
        .await
        .unwrap_err();
    match &error {
        Error::Proxy { addr, reason } => {
            assert_eq!(addr, &proxy.to_string());
            assert_eq!(reason, "HTTP status 407 Proxy Authentication Required");
        }
        other => panic!("{other:?}"),
    }
    // Not a proxy URL, and a proxy that is not there.
    let client = ClientBuilder::new().proxy("socks5://127.0.0.1:1080");
    let error = client.connect(&url(server)).await.unwrap_err();
    assert!(matches!(error, Error::InvalidUrl { .. }), "{error:?}");
    let (gone, addr) = listener().await;
    drop(gone);
    let client = ClientBuilder::new().proxy(format!("http://{addr}"));
    let error = client.connect(&url(server)).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn a_proxy_answer_that_is_not_a_clean_http_head_is_refused() {
    let server = echo_server(ServerBuilder::new()).await;
    let oversized: &'static str =
        Box::leak(format!("HTTP/1.1 200 OK\r\nX: {}", "y".repeat(9000)).into_boxed_str());
    let cases = [
        ("SSH-2.0-OpenSSH_9.2", "its answer is not HTTP"),
        (
            "HTTP/1.1 200 OK\r\n\r\nearly bytes",
            "it sent data before the tunnel was used",
        ),
        (oversized, "its answer's head passed 8192 bytes"),
    ];
    for (answer, reason) in cases {
        let (proxy, _) = proxy(answer).await;
        let client = ClientBuilder::new().proxy(format!("http://{proxy}"));
        match within("connect", client.connect(&url(server))).await {
            Err(Error::Proxy { reason: got, .. }) => assert_eq!(got, reason),
            other => panic!("{:?}", other.map(|(_, response)| response)),
        }
    }
}

#[tokio::test]
async fn a_proxy_that_never_answers_is_bounded_by_the_handshake_timeout() {
    // It accepts the connection and reads the request, and says nothing.
    let (silent, addr) = listener().await;
    let held = tokio::spawn(async move {
        let (mut stream, _) = silent.accept().await.unwrap();
        let mut request = Vec::new();
        let _ = stream.read_to_end(&mut request).await;
        request
    });
    let client = ClientBuilder::new()
        .handshake_timeout(std::time::Duration::from_millis(200))
        .proxy(format!("http://{addr}"));
    let error = within("connect", client.connect("ws://127.0.0.1:9/"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::HandshakeTimeout), "{error:?}");
    // The attempt was dropped with its connection: the proxy read our CONNECT, then EOF.
    let request = within("the proxy's end", held).await.unwrap();
    assert!(request.starts_with(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n"));
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_runs_tls_end_to_end_through_the_tunnel() {
    let pki = pki::Pki::new(&["localhost"]);
    let server = echo_server(ServerBuilder::new().tls(pki.server_config())).await;
    let (proxy, seen) = proxy("HTTP/1.1 200 Connection established").await;
    let client = ClientBuilder::new()
        .tls_roots(pki.roots())
        .proxy(format!("http://{proxy}"));
    let url = format!("wss://localhost:{}/", server.port());
    let (mut ws, _) = within("connect", client.connect(&url)).await.unwrap();
    echo_once(&mut ws, "secret through the proxy").await;
    let seen = seen.lock().unwrap();
    let port = server.port();
    assert!(
        seen.heads[0].starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{:?}",
        seen.heads[0]
    );
    // The proxy saw a TLS handshake (a handshake record first), never the request.
    assert_eq!(seen.tunnelled.first(), Some(&0x16));
    let tunnelled = String::from_utf8_lossy(&seen.tunnelled);
    assert!(!tunnelled.contains("Upgrade: websocket"));
    assert!(!tunnelled.contains("secret through the proxy"));
}

#[tokio::test]
async fn reconnect_goes_through_the_proxy_too() {
    use sockeye::reconnect::{Attempt, Reconnect};
    use sockeye_proto::ReconnectPolicy;
    let server = echo_server(ServerBuilder::new()).await;
    let (proxy, seen) = proxy("HTTP/1.1 200 Connection established").await;
    let builder = ClientBuilder::new().proxy(format!("http://{proxy}"));
    // One session that closes itself normally: no reconnect after a 1000 close.
    struct CloseAtOnce;
    impl sockeye::Endpoint for CloseAtOnce {
        fn on_open(&mut self, session: &sockeye::Session) {
            session.close(CloseCode::NORMAL, "done").unwrap();
        }
        fn on_message(&mut self, _: &sockeye::Session, _: Message) {}
    }
    let info = within(
        "the reconnecting client",
        Reconnect::new(builder, url(server))
            .policy(ReconnectPolicy::default())
            .run(|_: Attempt| CloseAtOnce),
    )
    .await;
    assert!(info.clean, "{info:?}");
    assert_eq!(seen.lock().unwrap().heads.len(), 1);
}
