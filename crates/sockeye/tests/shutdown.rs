//! Graceful shutdown of a [`sockeye::Server`] over real loopback TCP: every open session
//! gets 1001 Going Away and closes cleanly, `serve()` returns, and a client that never
//! answers is dropped once the shutdown timeout has passed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Call, Calls, RawPeer, Recorder, url, within};
use sockeye::{CloseCode, Error, Initiator, ServerBuilder};
use tokio::time::Instant;

const CLIENTS: usize = 3;

async fn echo(mut ws: sockeye::WebSocket) {
    while let Some(Ok(message)) = ws.next().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

#[tokio::test]
async fn graceful_shutdown_closes_every_open_session_with_1001() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(echo));

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (mut ws, _) = within("connect", sockeye::connect(&url(addr)))
            .await
            .unwrap();
        // A round trip: the session is running on the server.
        ws.send(format!("hello {i}")).await.unwrap();
        within("the echo", ws.next()).await.unwrap().unwrap();
        clients.push(ws);
    }

    shutdown.shutdown();
    within("serve() to return", serving).await.unwrap().unwrap();
    for mut ws in clients {
        assert!(within("the end of the stream", ws.next()).await.is_none());
        let info = within("the outcome", ws.session().closed()).await;
        assert_eq!(info.code, CloseCode::GOING_AWAY);
        assert_eq!(info.reason, "server shutting down");
        assert_eq!(info.initiator, Initiator::Remote);
        assert!(info.clean, "{info:?}");
        // The server closed TCP first (7.1.1).
        assert_eq!(ws.session().peer_closed_first(), Some(true));
    }
    // The listener is gone.
    let refused = sockeye::connect(&url(addr)).await;
    assert!(matches!(refused, Err(Error::Connect { .. })), "{refused:?}");
}

#[tokio::test]
async fn graceful_shutdown_tells_every_endpoint_on_close() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let calls: Arc<Mutex<Vec<Calls>>> = Arc::default();
    let made = calls.clone();
    let serving = tokio::spawn(server.serve_endpoints(move |_peer| {
        let (mut recorder, calls) = Recorder::new();
        recorder.echo = true;
        made.lock().unwrap().push(calls);
        recorder
    }));

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (mut ws, _) = within("connect", sockeye::connect(&url(addr)))
            .await
            .unwrap();
        ws.send("hello").await.unwrap();
        within("the echo", ws.next()).await.unwrap().unwrap();
        clients.push(ws);
    }
    shutdown.shutdown();
    within("serve() to return", serving).await.unwrap().unwrap();

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(calls.len(), CLIENTS);
    for calls in calls {
        let calls = calls.all().await;
        let closes: Vec<_> = calls
            .iter()
            .filter_map(|call| match call {
                Call::Close(info, _) => Some(info),
                _ => None,
            })
            .collect();
        assert_eq!(closes.len(), 1, "{calls:?}");
        let info = closes[0];
        // The client echoed the server's 1001.
        assert_eq!(info.code, CloseCode::GOING_AWAY);
        assert_eq!(info.initiator, Initiator::Local);
        assert!(info.clean, "{info:?}");
    }
    for mut ws in clients {
        assert!(within("the end of the stream", ws.next()).await.is_none());
        assert!(ws.close_info().unwrap().clean);
    }
}

#[tokio::test]
async fn shutdown_drops_a_client_that_never_answers_after_the_shutdown_timeout() {
    let shutdown_timeout = Duration::from_millis(500);
    let server = ServerBuilder::new()
        .shutdown_timeout(shutdown_timeout)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(echo));

    // One client that never reads nor answers, one that behaves.
    let mut silent = RawPeer::connect(addr).await;
    let (mut polite, _) = within("connect", sockeye::connect(&url(addr)))
        .await
        .unwrap();
    polite.send("hello").await.unwrap();
    within("the echo", polite.next()).await.unwrap().unwrap();

    let start = Instant::now();
    shutdown.shutdown();
    // The polite client is closed cleanly without waiting for the silent one.
    assert!(
        within("the polite client's end", polite.next())
            .await
            .is_none()
    );
    let info = within("the polite outcome", polite.session().closed()).await;
    assert!(info.clean, "{info:?}");
    assert!(start.elapsed() < shutdown_timeout, "{:?}", start.elapsed());
    // serve() returns once the shutdown timeout has passed, well before the close
    // timeout (10 s) would have ended the silent session.
    within("serve() to return", serving).await.unwrap().unwrap();
    let waited = start.elapsed();
    assert!(waited >= shutdown_timeout, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // What the silent client would have read: 1001, then the dropped connection.
    assert_eq!(
        silent.expect_close().await,
        (Some(1001), "server shutting down".into())
    );
    silent.expect_eof().await;
}

#[tokio::test]
async fn shutdown_requested_before_serve_runs_still_stops_the_server() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let shutdown = server.shutdown_handle();
    // Spawned, not yet running: the request must not be lost.
    let serving = tokio::spawn(server.serve(echo));
    shutdown.shutdown();
    within("serve() to return", serving).await.unwrap().unwrap();

    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    server.shutdown_handle().shutdown();
    within("serve() to return", server.serve(echo))
        .await
        .unwrap();
}

/// A server whose `on_request` reports each request and then waits, without holding up the
/// runtime, until the test lets it accept.
async fn server_with_a_held_decision(
    shutdown_timeout: Duration,
) -> (
    std::net::SocketAddr,
    sockeye::ShutdownHandle,
    tokio::task::JoinHandle<sockeye::Result<()>>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let server = ServerBuilder::new()
        .shutdown_timeout(shutdown_timeout)
        .on_request(move |_request| {
            let _ = entered_tx.send(());
            // Waits on this worker thread while the runtime goes on with the others.
            let _ = tokio::task::block_in_place(|| release_rx.lock().unwrap().recv());
            Ok(sockeye::Accept::default())
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(echo));
    (addr, shutdown, serving, entered, release)
}

/// Opens a TCP connection and sends the first line of a handshake request only.
async fn half_a_request(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_in_progress_at_shutdown_are_finished_or_refused_before_serve_returns() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, shutdown, mut serving, mut entered, release) =
        server_with_a_held_decision(Duration::from_secs(5)).await;
    // `late` connects first, so it is accepted before `decided`'s request is being decided.
    let mut late = half_a_request(addr).await;
    let url = url(addr);
    let decided = tokio::spawn(async move { sockeye::connect(&url).await });
    within("the decision to start", entered.recv())
        .await
        .unwrap();

    shutdown.shutdown();
    // The accepted request is still being decided: serve() must wait for it.
    assert!(common::stays_pending(Duration::from_millis(200), &mut serving).await);
    // A request completed after the shutdown began is refused.
    late.write_all(
        b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    within("the refusal", late.read_to_end(&mut response))
        .await
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503 "), "{response}");

    // The request decided before is accepted, then closed with 1001 like every session.
    release.send(()).unwrap();
    let (mut ws, _) = within("the held handshake", decided)
        .await
        .unwrap()
        .unwrap();
    assert!(within("the end of the stream", ws.next()).await.is_none());
    let info = ws.close_info().unwrap();
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert!(info.clean, "{info:?}");
    within("serve() to return", serving).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_dropped_at_the_shutdown_timeout() {
    use tokio::io::AsyncReadExt;
    let shutdown_timeout = Duration::from_millis(300);
    let (addr, shutdown, serving, mut entered, release) =
        server_with_a_held_decision(shutdown_timeout).await;
    let mut stalled = half_a_request(addr).await;
    let url = url(addr);
    let decided = tokio::spawn(async move { sockeye::connect(&url).await });
    within("the decision to start", entered.recv())
        .await
        .unwrap();

    let start = Instant::now();
    shutdown.shutdown();
    release.send(()).unwrap();
    let (mut ws, _) = within("the held handshake", decided)
        .await
        .unwrap()
        .unwrap();
    assert!(within("the end of the stream", ws.next()).await.is_none());
    // The stalled request holds serve() up to the shutdown timeout, no longer.
    within("serve() to return", serving).await.unwrap().unwrap();
    let waited = start.elapsed();
    assert!(waited >= shutdown_timeout, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let mut rest = Vec::new();
    within("the dropped connection", stalled.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}
