//! Sockeye's side of the interop tests: an echo server steered by text messages like the
//! peers' echo servers, which reports what it received, what it sent and how it closed;
//! the messages both test files exchange, our client's side of the exchange they share,
//! and the checks both make on a [`CloseInfo`].

#![allow(
    dead_code,
    reason = "shared by several test crates, each of which uses a part"
)]

use std::future::Future;
use std::time::Duration;

use sockeye::{CloseCode, CloseFrame, CloseInfo, Initiator, Message, ShutdownHandle, WebSocket};
use tokio::sync::mpsc;

/// How long any one step of a test may take before the test fails.
pub(crate) const STEP: Duration = Duration::from_secs(15);

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// The binary payload the tests send: byte `i` is `i % 251`, as in `interop/peer.py`.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A text message.
pub(crate) fn text(s: &str) -> Message {
    Message::Text(s.to_owned())
}

/// A binary message.
pub(crate) fn binary(bytes: Vec<u8>) -> Message {
    Message::Binary(bytes.into())
}

/// The Close frame with `code` and `reason`.
pub(crate) fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: Some(CloseCode(code)),
        reason: reason.to_owned(),
    }
}

/// Checks a closing handshake that completed: who started it, the frames exchanged, and
/// the code and reason reported (those of the frame received, RFC 6455 7.1.5-7.1.6).
pub(crate) fn assert_clean_close(
    info: &CloseInfo,
    initiator: Initiator,
    sent: CloseFrame,
    received: CloseFrame,
) {
    assert_eq!(info.initiator, initiator, "{info:?}");
    assert!(info.clean, "{info:?}");
    assert_eq!(info.error, None, "{info:?}");
    assert_eq!(info.sent.as_ref(), Some(&sent), "{info:?}");
    assert_eq!(info.code, received.code.expect("a code"), "{info:?}");
    assert_eq!(info.reason, received.reason, "{info:?}");
    assert_eq!(info.received, Some(received), "{info:?}");
}

/// The text messages `burst START` ... `burst END-1`, as a steered echo server sends them.
pub(crate) fn bursts(range: std::ops::Range<usize>) -> Vec<Message> {
    range.map(|i| text(&format!("burst {i}"))).collect()
}

/// Messages of every kind and size the tests echo.
pub(crate) fn assorted() -> Vec<Message> {
    vec![
        text("hello"),
        text("héllo wörld ✓ 🦀"),
        text(""),
        binary(pattern(1000)),
        binary(Vec::new()),
        binary(pattern(1 << 20)),
    ]
}

/// The next message on our side, which must come within [`STEP`].
pub(crate) async fn next(ws: &mut WebSocket) -> Message {
    bounded("our next message", ws.next())
        .await
        .expect("the stream ended early")
        .expect("our session failed")
}

/// The reason of our client's Close in [`exchange_then_close`] (code 4001).
pub(crate) const OUR_CLOSE_REASON: &str = "sockeye client done";

/// What our client sent and received in [`exchange_then_close`], in order.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) sent: Vec<Message>,
    pub(crate) received: Vec<Message>,
}

/// Our client's side of the exchange with a peer's steered echo server: each of
/// [`assorted`] echoed, then `fragments` (one message sent in fragments), `ping` (their
/// Ping, whose Pong they acknowledge with `pong_answer`) and `burst 50`; then our Close
/// (4001, [`OUR_CLOSE_REASON`]) while the burst may still be on its way, whose handshake
/// must complete cleanly, and the rest of the burst read to the end of the stream. Checks
/// that the peer closed TCP first (7.1.1) and that nothing can be sent after the close.
pub(crate) async fn exchange_then_close(ws: &mut WebSocket, pong_answer: &str) -> Exchange {
    let mut sent = Vec::new();
    let mut received = Vec::new();
    let asks = [
        ("fragments frag ment ed", "fragmented"),
        ("ping", pong_answer),
        ("burst 50", "burst 0"),
    ];
    let echoes = assorted().into_iter().map(|m| (m.clone(), m));
    let asks = asks
        .into_iter()
        .map(|(ask, answer)| (text(ask), text(answer)));
    for (message, answer) in echoes.chain(asks) {
        ws.send(message.clone()).await.expect("send");
        sent.push(message);
        received.push(next(ws).await);
        assert_eq!(received.last(), Some(&answer));
    }

    let info = bounded("our close", ws.close(CloseCode(4001), OUR_CLOSE_REASON))
        .await
        .expect("close");
    assert_clean_close(
        &info,
        Initiator::Local,
        close_frame(4001, OUR_CLOSE_REASON),
        close_frame(4001, OUR_CLOSE_REASON),
    );
    while let Some(item) = bounded("the rest of the burst", ws.next()).await {
        received.push(item.expect("no failure"));
    }
    assert_eq!(ws.session().peer_closed_first(), Some(true));
    assert!(ws.send(text("late")).await.is_err());
    Exchange { sent, received }
}

/// What [`EchoServer`] saw on one connection.
#[derive(Debug)]
pub(crate) struct ServerReport {
    /// Every message received, in order.
    pub(crate) received: Vec<Message>,
    /// Every message whose `send` succeeded, in order.
    pub(crate) sent: Vec<Message>,
    /// How the session ended.
    pub(crate) info: CloseInfo,
    /// Whether the peer closed the TCP connection first.
    pub(crate) peer_closed_first: Option<bool>,
}

/// A Sockeye server on 127.0.0.1 that echoes every message, except these text messages:
/// `burst N` sends the N text messages `burst 0` ... `burst N-1`; `close CODE REASON`
/// closes the session with CODE and REASON. It shuts down when dropped.
#[derive(Debug)]
pub(crate) struct EchoServer {
    pub(crate) url: String,
    reports: mpsc::UnboundedReceiver<ServerReport>,
    shutdown: ShutdownHandle,
}

impl EchoServer {
    pub(crate) async fn start() -> EchoServer {
        EchoServer::start_with(sockeye::ServerBuilder::new()).await
    }

    /// The same server with `builder`'s settings (permessage-deflate, say).
    pub(crate) async fn start_with(builder: sockeye::ServerBuilder) -> EchoServer {
        let server = builder.bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/", server.local_addr().expect("local address"));
        let shutdown = server.shutdown_handle();
        let (tx, reports) = mpsc::unbounded_channel();
        tokio::spawn(server.serve(move |ws| echo(ws, tx.clone())));
        EchoServer {
            url,
            reports,
            shutdown,
        }
    }

    /// The report of the next connection that ended.
    pub(crate) async fn report(&mut self) -> ServerReport {
        bounded("the Sockeye server's report", self.reports.recv())
            .await
            .expect("the server stopped")
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

async fn echo(mut ws: WebSocket, reports: mpsc::UnboundedSender<ServerReport>) {
    let session = ws.session();
    let mut received = Vec::new();
    let mut sent = Vec::new();
    while let Some(Ok(message)) = ws.next().await {
        received.push(message.clone());
        let command = match &message {
            Message::Text(t) => t.split_once(' '),
            _ => None,
        };
        let replies = match command {
            Some(("burst", n)) => {
                let n: usize = n.parse().expect("burst N");
                bursts(0..n)
            }
            Some(("close", rest)) => {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                let code = CloseCode(code.parse().expect("close CODE REASON"));
                session.close(code, reason).expect("close");
                Vec::new()
            }
            _ => vec![message],
        };
        for reply in replies {
            // Fails once the session is closing: the peer never sees such a message.
            if ws.send(reply.clone()).await.is_ok() {
                sent.push(reply);
            }
        }
    }
    let info = session.closed().await;
    let _ = reports.send(ServerReport {
        received,
        sent,
        info,
        peer_closed_first: session.peer_closed_first(),
    });
}

/// Our client's side when the peer's steered echo server at `url` closes first: it asks
/// for `burst 50`, then for a Close with 4002 and `reason`, and must receive the whole
/// burst, answer the Close with its code (RFC 6455 5.5.1), see the server close TCP first
/// (7.1.1), and refuse to send afterwards. Returns the close command it sent.
pub(crate) async fn their_server_closes_first(url: &str, reason: &str) -> String {
    let (mut ws, _) = bounded("connect", sockeye::connect(url))
        .await
        .expect("our handshake with their server");
    let close = format!("close 4002 {reason}");
    ws.send(text("burst 50")).await.expect("send");
    ws.send(text(&close)).await.expect("send");

    let mut received = Vec::new();
    while let Some(item) = bounded("our next message", ws.next()).await {
        received.push(item.expect("no failure"));
    }
    assert_eq!(received, bursts(0..50));
    let info = bounded("the session's end", ws.session().closed()).await;
    // Our reply echoes the code, without the reason.
    assert_clean_close(
        &info,
        Initiator::Remote,
        close_frame(4002, ""),
        close_frame(4002, reason),
    );
    assert_eq!(ws.session().peer_closed_first(), Some(true));
    assert!(ws.send(text("late")).await.is_err());
    close
}
