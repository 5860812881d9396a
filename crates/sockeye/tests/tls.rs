//! `wss://` between our client and our server, with certificates made at test time: echo,
//! the three close scenarios of seed 000 over TLS (close_notify before the TCP close, the
//! server first), SNI, certificates refused with a clear error, a peer that drops TLS
//! without close_notify (1006), the handshake timeout covering the TLS handshake, the
//! reconnecting client over `wss://`, and PEM files that cannot be used.
#![cfg(feature = "tls")]

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::scenarios::{self, exchange_first_message};
use futures_util::{SinkExt, StreamExt};
use pki::{Pki, provider};
use sockeye::rustls::server::{ClientHello, ResolvesServerCert};
use sockeye::rustls::sign::CertifiedKey;
use sockeye::rustls::{self, CertificateError};
use sockeye::{
    ClientBuilder, CloseCode, CloseInfo, Config, Initiator, Message, ServerBuilder, State,
    WebSocket,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Every wait in these tests is bounded by [`common::WAIT`].
async fn bounded<F: Future>(future: F) -> F::Output {
    common::within("a step over TLS", future).await
}

/// A `wss://` echo server on `Server::serve`, configured from PEM files. Returns its URL
/// (by host name) and the outcome of each session it served.
async fn echo_server(pki: &Pki) -> (String, mpsc::UnboundedReceiver<CloseInfo>) {
    let server = ServerBuilder::new()
        .tls_pem(&pki.cert_path, &pki.key_path)
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |mut ws| {
        let tx = tx.clone();
        async move {
            while let Some(Ok(message)) = ws.next().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            let _ = tx.send(ws.session().closed().await);
        }
    }));
    (format!("wss://localhost:{port}/"), rx)
}

/// A client and a server of ours over TLS (`wss://localhost`), certified by `pki`, that
/// have exchanged a first message.
async fn open_pair_with_message(pki: &Pki) -> (WebSocket, WebSocket) {
    let server = ServerBuilder::new()
        .tls_pem(&pki.cert_path, &pki.key_path)
        .unwrap();
    let client = ClientBuilder::new().tls_root_pem(&pki.ca_path).unwrap();
    let url_of = |addr: SocketAddr| format!("wss://localhost:{}/", addr.port());
    exchange_first_message(common::pair_at(url_of, client, server).await).await
}

/// A client that trusts the test CA, connected to `url`.
async fn connect_trusting_the_ca(pki: &Pki, url: &str) -> WebSocket {
    let client = ClientBuilder::new().tls_root_pem(&pki.ca_path).unwrap();
    bounded(client.connect(url)).await.unwrap().0
}

/// A handshake given a 3 s timeout failed with `HandshakeTimeout` after 3 s of (paused)
/// time, not later.
fn assert_timed_out_after_three_seconds<T: std::fmt::Debug>(
    result: sockeye::Result<T>,
    start: tokio::time::Instant,
) {
    assert!(
        matches!(result, Err(sockeye::Error::HandshakeTimeout)),
        "{result:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

/// Sends `text`, checks that it comes back, then closes with 1000 and checks that the
/// closing handshake completed.
async fn echo_then_close_cleanly(ws: &mut WebSocket, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    assert_eq!(
        bounded(ws.next()).await.unwrap().unwrap(),
        Message::Text(text.into())
    );
    let info = bounded(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    assert!(info.clean, "{info:?}");
}

/// The TLS verdict inside an [`sockeye::Error::Tls`].
fn tls_verdict(error: &sockeye::Error) -> &rustls::Error {
    match error {
        sockeye::Error::Tls { source, .. } => source
            .downcast_ref::<rustls::Error>()
            .unwrap_or_else(|| panic!("not a rustls verdict: {error}")),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

fn assert_lost_without_close_notify(info: &CloseInfo) {
    assert_eq!(info.code, CloseCode::ABNORMAL, "{info:?}");
    assert!(!info.clean, "{info:?}");
    assert_eq!(info.initiator, Initiator::Abnormal);
    assert_eq!((info.sent.as_ref(), info.received.as_ref()), (None, None));
    match &info.error {
        Some(sockeye_proto::Error::Transport(what)) => {
            assert!(what.contains("close_notify"), "{what}")
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_over_wss_and_clean_close() {
    let pki = Pki::new(&["localhost"]);
    let (url, mut outcomes) = echo_server(&pki).await;
    let (mut ws, response) = bounded(
        ClientBuilder::new()
            .tls_root_pem(&pki.ca_path)
            .unwrap()
            .connect(&url),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 101);
    for i in 0..50 {
        ws.send(Message::Text(format!("hello {i}"))).await.unwrap();
        assert_eq!(
            bounded(ws.next()).await.unwrap().unwrap(),
            Message::Text(format!("hello {i}"))
        );
    }
    // Larger than a TLS record (16 KiB) and than the write buffer's high-water mark.
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(
        bounded(ws.next()).await.unwrap().unwrap(),
        Message::Binary(big.into())
    );
    let session = ws.session();
    let info = bounded(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(info.code, CloseCode::NORMAL);
    assert!(ws.next().await.is_none());
    // The client read the server's close_notify as the end of the stream (a bare TCP FIN
    // would have been a read error, not an EOF), and the server closed first.
    assert_eq!(session.peer_closed_first(), Some(true));
    let server_info = bounded(outcomes.recv()).await.unwrap();
    assert!(server_info.clean, "{server_info:?}");
    assert_eq!(
        (server_info.code, server_info.reason.as_str()),
        (CloseCode::NORMAL, "bye")
    );
}

// The close scenarios of seed 000 over TLS: the same expectations as over TCP
// (`lifecycle.rs`); the server's close_notify arrives before its TCP close, and the client
// reads it as the end of the stream.

#[tokio::test]
async fn locally_initiated_close_over_tls() {
    let pki = Pki::new(&["localhost"]);
    let (client, server) = open_pair_with_message(&pki).await;
    scenarios::locally_initiated_close(client, server).await;
}

#[tokio::test]
async fn remotely_initiated_close_over_tls() {
    let pki = Pki::new(&["localhost"]);
    let (client, server) = open_pair_with_message(&pki).await;
    scenarios::remotely_initiated_close(client, server).await;
}

#[tokio::test]
async fn overlapping_close_over_tls() {
    let pki = Pki::new(&["localhost"]);
    let (client, server) = open_pair_with_message(&pki).await;
    scenarios::overlapping_close(client, server).await;
}

/// Logs, for one side of a TLS connection, when its stream is shut down and how its reads
/// end: over rustls a clean EOF means the peer's close_notify arrived.
struct Probe<S> {
    inner: S,
    side: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    shut: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Probe<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {
                let entry = format!("{} read close_notify", this.side);
                this.log.lock().unwrap().push(entry);
            }
            Poll::Ready(Err(error)) => {
                let entry = format!("{} read error: {error}", this.side);
                this.log.lock().unwrap().push(entry);
            }
            _ => {}
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Probe<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            this.shut = true;
            let entry = format!("{} shutdown", this.side);
            this.log.lock().unwrap().push(entry);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn close_notify_goes_out_before_the_tcp_close_server_first() {
    let pki = Pki::new(&["localhost"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let (client_tls, server_tls) = bounded(async {
        tokio::join!(
            async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                TlsConnector::from(pki.client_config())
                    .connect(name, tcp)
                    .await
                    .unwrap()
            },
            async {
                let (tcp, _) = listener.accept().await.unwrap();
                TlsAcceptor::from(pki.server_config())
                    .accept(tcp)
                    .await
                    .unwrap()
            }
        )
    })
    .await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let probe = |inner, side| Probe {
        inner,
        side,
        log: log.clone(),
        shut: false,
    };
    let client_probe = probe(tokio_rustls::TlsStream::from(client_tls), "client");
    let server_probe = probe(tokio_rustls::TlsStream::from(server_tls), "server");
    // The streams are already secured: plain ws:// on top of them.
    let (client_builder, server_builder) = (ClientBuilder::new(), ServerBuilder::new());
    let (client, server) = bounded(async {
        tokio::join!(
            client_builder.connect_on(client_probe, "ws://localhost/"),
            server_builder.accept(server_probe)
        )
    })
    .await;
    let (mut client, _) = client.unwrap();
    let server = server.unwrap();
    let server_session = server.session();

    let info = bounded(client.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    let server_info = bounded(server_session.closed()).await;
    assert!(info.clean && server_info.clean, "{info:?} {server_info:?}");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "server shutdown",
            "client read close_notify",
            "client shutdown",
            "server read close_notify"
        ]
    );
    drop(server);
}

#[tokio::test]
async fn client_sees_1006_when_the_server_drops_tls_without_close_notify() {
    let pki = Pki::new(&["localhost"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
    let acceptor = TlsAcceptor::from(pki.server_config());
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
            .await
            .unwrap();
        // A TCP FIN under the TLS layer: no close_notify, no Close frame.
        ws.get_mut().get_mut().0.shutdown().await.unwrap();
        // Keep the socket until the client is done with it.
        let _ = ws.next().await;
    });

    let mut ws = connect_trusting_the_ca(&pki, &url).await;
    assert_eq!(
        bounded(ws.next()).await.unwrap().unwrap(),
        Message::Text("hello".into())
    );
    let info = bounded(ws.session().closed()).await;
    assert_lost_without_close_notify(&info);
    assert_eq!(ws.state(), State::Closed);
    // The stream reports the failure once, then ends.
    assert!(matches!(
        bounded(ws.next()).await,
        Some(Err(sockeye::Error::Failed(_)))
    ));
    assert!(bounded(ws.next()).await.is_none());
    bounded(peer).await.unwrap();
}

#[tokio::test]
async fn server_sees_1006_when_the_client_drops_tls_without_close_notify() {
    let pki = Pki::new(&["localhost"]);
    let (url, mut outcomes) = echo_server(&pki).await;
    let port = url
        .trim_start_matches("wss://localhost:")
        .trim_end_matches('/');
    let tcp = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = bounded(TlsConnector::from(pki.client_config()).connect(name, tcp))
        .await
        .unwrap();
    let (mut peer, _) = bounded(tokio_tungstenite::client_async(url.as_str(), tls))
        .await
        .unwrap();
    peer.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .unwrap();
    let echoed = bounded(peer.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello");
    // A TCP FIN under the TLS layer: no close_notify, no Close frame.
    peer.get_mut().get_mut().0.shutdown().await.unwrap();

    let info = bounded(outcomes.recv()).await.unwrap();
    assert_lost_without_close_notify(&info);

    // Not a crash: the server goes on serving.
    let mut ws = connect_trusting_the_ca(&pki, &url).await;
    echo_then_close_cleanly(&mut ws, "again").await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_issuer_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let stranger = Pki::new(&["localhost"]);
    let (url, _outcomes) = echo_server(&pki).await;
    let error = bounded(
        ClientBuilder::new()
            .tls_root_pem(&stranger.ca_path)
            .unwrap()
            .connect(&url),
    )
    .await
    .unwrap_err();
    assert_eq!(
        tls_verdict(&error),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    let text = error.to_string();
    assert!(
        text.starts_with("TLS handshake with localhost failed:") && text.contains("UnknownIssuer"),
        "{text}"
    );

    // The refused handshake did not hurt the server.
    let mut ws = connect_trusting_the_ca(&pki, &url).await;
    assert!(
        bounded(ws.close(CloseCode::NORMAL, ""))
            .await
            .unwrap()
            .clean
    );
}

#[cfg(feature = "webpki-roots")]
#[tokio::test]
async fn the_default_roots_refuse_a_private_ca() {
    let pki = Pki::new(&["localhost"]);
    let (url, _outcomes) = echo_server(&pki).await;
    let error = bounded(sockeye::connect(&url)).await.unwrap_err();
    assert_eq!(
        tls_verdict(&error),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[cfg(not(any(feature = "webpki-roots", feature = "native-roots")))]
#[tokio::test]
async fn without_a_roots_feature_the_default_client_says_what_to_trust() {
    let pki = Pki::new(&["localhost"]);
    let (url, _outcomes) = echo_server(&pki).await;
    let error = bounded(sockeye::connect(&url)).await.unwrap_err();
    match &error {
        sockeye::Error::Tls { context, .. } => assert_eq!(context, "loading root certificates"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("webpki-roots") && text.contains("tls_root_pem"),
        "{text}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let (url, _outcomes) = echo_server(&pki).await;
    let by_address = url.replace("localhost", "127.0.0.1");
    let error = bounded(
        ClientBuilder::new()
            .tls_root_pem(&pki.ca_path)
            .unwrap()
            .connect(&by_address),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            tls_verdict(&error),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("TLS handshake with 127.0.0.1 failed:")
            && text.contains("not valid for name"),
        "{text}"
    );
}

#[tokio::test]
async fn wss_to_a_plain_server_fails_with_a_tls_error() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.serve(|ws| async move { drop(ws) }));
    let pki = Pki::new(&["localhost"]);
    let error = bounded(
        ClientBuilder::new()
            .tls_root_pem(&pki.ca_path)
            .unwrap()
            .connect(&format!("wss://localhost:{port}/")),
    )
    .await
    .unwrap_err();
    match &error {
        sockeye::Error::Tls { context, .. } => {
            assert_eq!(context, "handshake with localhost", "{error}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// The SNI and the ALPN protocols of one ClientHello.
type Hello = (Option<String>, Vec<Vec<u8>>);

/// Serves one certificate and records the SNI and ALPN each client sent.
#[derive(Debug)]
struct RecordHello {
    key: Arc<CertifiedKey>,
    seen: Mutex<Vec<Hello>>,
}

impl ResolvesServerCert for RecordHello {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let alpn = hello
            .alpn()
            .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push((hello.server_name().map(str::to_owned), alpn));
        Some(self.key.clone())
    }
}

#[tokio::test]
async fn the_client_sends_sni_for_host_names_and_checks_ip_addresses() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let key = provider().key_provider.load_private_key(pki.key()).unwrap();
    let hello = Arc::new(RecordHello {
        key: Arc::new(CertifiedKey::new(vec![pki.cert.clone()], key)),
        seen: Mutex::new(Vec::new()),
    });
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(hello.clone());
    let server = ServerBuilder::new()
        .tls(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.serve(|mut ws| async move {
        while let Some(Ok(message)) = ws.next().await {
            let _ = ws.send(message).await;
        }
    }));

    let client = ClientBuilder::new().tls_roots(pki.roots());
    for host in ["localhost", "127.0.0.1"] {
        let (mut ws, _) = bounded(client.connect(&format!("wss://{host}:{port}/")))
            .await
            .unwrap();
        echo_then_close_cleanly(&mut ws, host).await;
    }
    // A host name goes out as SNI; an IP address does not (RFC 6066 section 3), yet the
    // certificate was checked against it. Both offer HTTP/1.1 by ALPN.
    let http_1_1 = vec![b"http/1.1".to_vec()];
    assert_eq!(
        *hello.seen.lock().unwrap(),
        [
            (Some("localhost".to_owned()), http_1_1.clone()),
            (None, http_1_1)
        ]
    );
}

#[tokio::test]
async fn a_whole_client_config_can_be_given() {
    let pki = Pki::new(&["localhost"]);
    let (url, _outcomes) = echo_server(&pki).await;
    let (mut ws, _) = bounded(
        ClientBuilder::new()
            .tls_config(pki.client_config())
            .connect(&url),
    )
    .await
    .unwrap();
    echo_then_close_cleanly(&mut ws, "configured").await;
}

/// An endpoint that only listens.
struct Quiet;

impl sockeye::Endpoint for Quiet {
    fn on_message(&mut self, _session: &sockeye::Session, _message: Message) {}
}

#[tokio::test]
async fn the_reconnecting_client_speaks_wss() {
    let pki = Pki::new(&["localhost"]);
    let server = ServerBuilder::new()
        .tls_pem(&pki.cert_path, &pki.key_path)
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().unwrap().port());
    let served = Arc::new(Mutex::new(0u32));
    let count = served.clone();
    // The first session is closed with 1012 (which invites a reconnect), the next with 1000.
    tokio::spawn(server.serve(move |mut ws| {
        let count = count.clone();
        async move {
            let first = {
                let mut count = count.lock().unwrap();
                *count += 1;
                *count == 1
            };
            let code = if first {
                CloseCode::SERVICE_RESTART
            } else {
                CloseCode::NORMAL
            };
            let _ = ws.close(code, "").await;
        }
    }));
    let policy = sockeye::reconnect::ReconnectPolicy {
        first_delay_max: Duration::from_millis(1),
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        max_attempts: Some(3),
        ..Default::default()
    };
    let builder = ClientBuilder::new().tls_root_pem(&pki.ca_path).unwrap();
    let mut attempts = Vec::new();
    let last = bounded(
        sockeye::reconnect::Reconnect::new(builder, url)
            .policy(policy)
            .run(|attempt| {
                attempts.push(attempt.number);
                Quiet
            }),
    )
    .await;
    assert_eq!(
        (last.code, last.clean),
        (CloseCode::NORMAL, true),
        "{last:?}"
    );
    assert_eq!(attempts, [0, 1]);
    assert_eq!(*served.lock().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_handshake_timeout_covers_the_server_tls_handshake() {
    let pki = Pki::new(&["localhost"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // A client that connects and never starts TLS.
    let _silent = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let mut config = Config::default();
    config.protocol.handshake_timeout = Duration::from_secs(3);
    let builder = ServerBuilder::new()
        .config(config)
        .tls_pem(&pki.cert_path, &pki.key_path)
        .unwrap();
    let start = tokio::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), builder.accept(tcp))
        .await
        .expect("the TLS handshake was not bounded by the handshake timeout");
    assert_timed_out_after_three_seconds(result, start);
}

#[tokio::test(start_paused = true)]
async fn the_handshake_timeout_covers_the_client_tls_handshake() {
    let pki = Pki::new(&["localhost"]);
    // A server that accepts TCP connections and never answers the TLS ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
    let accepted = tokio::spawn(async move { listener.accept().await.map(|(tcp, _)| tcp) });
    let client = ClientBuilder::new()
        .tls_root_pem(&pki.ca_path)
        .unwrap()
        .handshake_timeout(Duration::from_secs(3));
    let start = tokio::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), client.connect(&url))
        .await
        .expect("the TLS handshake was not bounded by the handshake timeout");
    assert_timed_out_after_three_seconds(result, start);
    assert!(accepted.await.unwrap().is_ok());
}

#[test]
fn unusable_pem_files_are_reported_clearly() {
    let pki = Pki::new(&["localhost"]);
    let other = Pki::new(&["localhost"]);
    let missing = pki.path("missing.pem");
    let cases = [
        (
            ServerBuilder::new().tls_pem(&missing, &pki.key_path),
            "missing.pem",
        ),
        (
            ServerBuilder::new().tls_pem(&pki.cert_path, &missing),
            "missing.pem",
        ),
        (
            ServerBuilder::new().tls_pem(&pki.key_path, &pki.key_path),
            "no CERTIFICATE",
        ),
        (
            ServerBuilder::new().tls_pem(&pki.cert_path, &pki.cert_path),
            "no private key",
        ),
        (
            ServerBuilder::new().tls_pem(&pki.cert_path, &other.key_path),
            "pairing",
        ),
    ];
    for (result, expected) in cases {
        match result {
            Err(error @ sockeye::Error::Tls { .. }) => {
                assert!(error.to_string().contains(expected), "{error}")
            }
            other => panic!("expected a TLS error about {expected:?}, got {other:?}"),
        }
    }
    for (path, expected) in [(&missing, "missing.pem"), (&pki.key_path, "no CERTIFICATE")] {
        match ClientBuilder::new().tls_root_pem(path) {
            Err(error @ sockeye::Error::Tls { .. }) => {
                assert!(error.to_string().contains(expected), "{error}")
            }
            other => panic!("expected a TLS error about {expected:?}, got {other:?}"),
        }
    }
    // The right files work.
    assert!(
        ServerBuilder::new()
            .tls_pem(&pki.cert_path, &pki.key_path)
            .is_ok()
    );
}
