//! Connecting through a proxy (`ClientBuilder::proxy`): a CONNECT proxy and a SOCKS5 proxy
//! written here tunnel to a Sockeye echo server, for `ws://` and for `wss://` (TLS end to
//! end through the tunnel), with credentials, and refusing.

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
    listen(move |client, seen| tunnel(client, answer, seen)).await
}

/// A test proxy on 127.0.0.1 that runs `serve` on each client, on a task of its own, with
/// the record of what it saw.
async fn listen<F>(
    serve: impl Fn(TcpStream, Arc<Mutex<Seen>>) -> F + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Seen>>)
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(serve(client, record.clone()));
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
    let server = TcpStream::connect(target).await.unwrap();
    relay(client, server, seen).await;
}

/// Copies both ways between a client and the server, recording what the client sent.
async fn relay(client: TcpStream, mut server: TcpStream, seen: Arc<Mutex<Seen>>) {
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

/// What a SOCKS5 test proxy asks and answers.
#[derive(Clone, Copy)]
struct Socks {
    /// The user name and password it requires (RFC 1929); none: no authentication.
    credentials: Option<(&'static str, &'static str)>,
    /// Its reply to CONNECT (RFC 1928 6): 0 opens the tunnel.
    reply: u8,
}

/// A SOCKS5 proxy on 127.0.0.1 (RFC 1928) whose tunnels lead to `server` whatever address
/// a request names (so that a name only it knows can be asked for). `Seen::heads` records
/// each request's target as "name:port" or "address:port".
async fn socks_proxy(server: SocketAddr, socks: Socks) -> (SocketAddr, Arc<Mutex<Seen>>) {
    listen(move |client, seen| socks_tunnel(client, server, socks, seen)).await
}

async fn socks_tunnel(
    mut client: TcpStream,
    server: SocketAddr,
    socks: Socks,
    seen: Arc<Mutex<Seen>>,
) {
    // The greeting: version 5 and the methods offered.
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting[0], 5);
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await.unwrap();
    let wanted = if socks.credentials.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        let _ = client.write_all(&[5, 0xff]).await;
        return;
    }
    client.write_all(&[5, wanted]).await.unwrap();
    if let Some((user, password)) = socks.credentials {
        let field = async |client: &mut TcpStream| {
            let len = client.read_u8().await.unwrap();
            let mut bytes = vec![0u8; usize::from(len)];
            client.read_exact(&mut bytes).await.unwrap();
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(client.read_u8().await.unwrap(), 1);
        let given = (field(&mut client).await, field(&mut client).await);
        let accepted = given == (user.to_owned(), password.to_owned());
        client.write_all(&[1, u8::from(!accepted)]).await.unwrap();
        if !accepted {
            return;
        }
    }
    // The request: CONNECT to an IPv4 address, a name or an IPv6 address.
    let mut head = [0u8; 4];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(head[..3], [5, 1, 0]);
    let host = match head[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await.unwrap();
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut name = vec![0u8; usize::from(client.read_u8().await.unwrap())];
            client.read_exact(&mut name).await.unwrap();
            String::from_utf8(name).unwrap()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await.unwrap();
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        other => panic!("address type {other}"),
    };
    let port = client.read_u16().await.unwrap();
    seen.lock().unwrap().heads.push(format!("{host}:{port}"));
    client
        .write_all(&[5, socks.reply, 0, 1, 127, 0, 0, 1, 0, 0])
        .await
        .unwrap();
    if socks.reply == 0 {
        relay(client, TcpStream::connect(server).await.unwrap(), seen).await;
    }
}

const SOCKS_OPEN: Socks = Socks {
    credentials: None,
    reply: 0,
};

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

/// Connects to `server` through `proxy_url`, which must fail with `Error::Proxy`: the
/// proxy's address and the reason.
async fn refusal(proxy_url: String, server: SocketAddr) -> (String, String) {
    let client = ClientBuilder::new().proxy(proxy_url);
    match within("connect", client.connect(&url(server))).await {
        Err(Error::Proxy { addr, reason }) => (addr, reason),
        other => panic!("{:?}", other.map(|(_, response)| response)),
    }
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
    // RFC 7617: base64 of "alice:open sesame", the password percent-decoded.
    let expected = "Proxy-Authorization: Basic YWxpY2U6b3BlbiBzZXNhbWU=\r\n";
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
    let (addr, reason) = refusal(format!("http://{proxy}"), server).await;
    assert_eq!(addr, proxy.to_string());
    assert_eq!(reason, "HTTP status 407 Proxy Authentication Required");
    // Not a proxy URL we speak, and a proxy that is not there.
    let client = ClientBuilder::new().proxy("https://127.0.0.1:3128");
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
        assert_eq!(refusal(format!("http://{proxy}"), server).await.1, reason);
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

/// A `wss://` session to a TLS echo server through the proxy `start` runs (given the
/// server's address), named as `scheme://` and its address: checks that the proxy saw
/// only TLS (a handshake record first, never the request or the message), and returns
/// the server's port and what the proxy saw.
#[cfg(feature = "tls")]
async fn wss_through<F: Future<Output = (SocketAddr, Arc<Mutex<Seen>>)>>(
    scheme: &str,
    start: impl FnOnce(SocketAddr) -> F,
) -> (u16, Seen) {
    let pki = pki::Pki::new(&["localhost"]);
    let server = echo_server(ServerBuilder::new().tls(pki.server_config())).await;
    let (proxy, seen) = start(server).await;
    let client = ClientBuilder::new()
        .tls_roots(pki.roots())
        .proxy(format!("{scheme}://{proxy}"));
    let url = format!("wss://localhost:{}/", server.port());
    let (mut ws, _) = within("connect", client.connect(&url)).await.unwrap();
    echo_once(&mut ws, "secret through the proxy").await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.tunnelled.first(), Some(&0x16));
    let tunnelled = String::from_utf8_lossy(&seen.tunnelled);
    assert!(!tunnelled.contains("Upgrade: websocket"));
    assert!(!tunnelled.contains("secret through the proxy"));
    (server.port(), seen)
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_runs_tls_end_to_end_through_the_tunnel() {
    let (port, seen) = wss_through("http", |_| proxy("HTTP/1.1 200 Connection established")).await;
    assert!(
        seen.heads[0].starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{:?}",
        seen.heads[0]
    );
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

#[tokio::test]
async fn a_client_reaches_the_server_through_a_socks5_proxy_by_name_or_by_address() {
    let server = echo_server(ServerBuilder::new()).await;
    let port = server.port();
    let (proxy, seen) = socks_proxy(server, SOCKS_OPEN).await;
    // socks5h: the proxy resolves the name, which only it knows here.
    let client = ClientBuilder::new().proxy(format!("socks5h://{proxy}"));
    let url = format!("ws://echo.test:{port}/");
    let (mut ws, response) = within("connect", client.connect(&url)).await.unwrap();
    assert_eq!(response.status, 101);
    echo_once(&mut ws, "through the SOCKS proxy").await;
    // socks5: the name is resolved here and the proxy is given the address.
    let client = ClientBuilder::new().proxy(format!("socks5://{proxy}"));
    let url = format!("ws://localhost:{port}/");
    let (mut ws, _) = within("connect", client.connect(&url)).await.unwrap();
    echo_once(&mut ws, "resolved here").await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.heads[0], format!("echo.test:{port}"));
    assert!(
        seen.heads[1] == format!("127.0.0.1:{port}") || seen.heads[1] == format!("[::1]:{port}"),
        "{:?}",
        seen.heads
    );
    let tunnelled = String::from_utf8_lossy(&seen.tunnelled);
    assert!(tunnelled.starts_with("GET / HTTP/1.1\r\n"), "{tunnelled}");
}

#[tokio::test]
async fn socks5_credentials_are_sent_and_a_refusal_is_a_proxy_error() {
    let server = echo_server(ServerBuilder::new()).await;
    let guarded = Socks {
        credentials: Some(("alice", "open sesame")),
        reply: 0,
    };
    let (proxy, seen) = socks_proxy(server, guarded).await;
    let client = ClientBuilder::new().proxy(format!("socks5://alice:open sesame@{proxy}"));
    let (mut ws, _) = within("connect", client.connect(&url(server)))
        .await
        .unwrap();
    echo_once(&mut ws, "with credentials").await;
    assert_eq!(seen.lock().unwrap().heads, [server.to_string()]);

    assert_eq!(
        refusal(format!("socks5://alice:guess@{proxy}"), server)
            .await
            .1,
        "it refused the user name and password"
    );
    assert_eq!(
        refusal(format!("socks5://{proxy}"), server).await.1,
        "it takes none of the authentication methods offered"
    );
    let closed = Socks {
        credentials: None,
        reply: 2,
    };
    let (strict, _) = socks_proxy(server, closed).await;
    assert_eq!(
        refusal(format!("socks5://{strict}"), server).await.1,
        "SOCKS5 reply 0x02: connection not allowed by ruleset"
    );
    // Only the first attempt reached the point of asking for a tunnel.
    assert_eq!(seen.lock().unwrap().heads.len(), 1);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_runs_tls_end_to_end_through_a_socks5_tunnel() {
    let (port, seen) = wss_through("socks5h", |server| socks_proxy(server, SOCKS_OPEN)).await;
    assert_eq!(seen.heads, [format!("localhost:{port}")]);
}
