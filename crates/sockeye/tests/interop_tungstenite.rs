//! Interoperability with tokio-tungstenite, an independent WebSocket implementation:
//! Sockeye's client against its server and its client against Sockeye's server. Each
//! direction exchanges text and binary messages (1 MiB and fragmented ones included), then
//! closes once from each side; both sides' view of the close is checked, and every message
//! one side sent is shown to have reached the other.

#[path = "interop/ours.rs"]
mod ours;

use futures_util::{SinkExt, StreamExt};
use ours::{
    EchoServer, Exchange, OUR_CLOSE_REASON, assert_clean_close, assorted, binary, bounded, bursts,
    close_frame, exchange_then_close, pattern, text, their_server_closes_first,
};
use sockeye::{CloseCode, CloseFrame, Initiator, Message};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TheirCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message as TheirMessage};

/// Their message as ours, to compare the two.
fn from_theirs(message: TheirMessage) -> Message {
    match message {
        TheirMessage::Text(t) => Message::Text(t.as_str().to_owned()),
        TheirMessage::Binary(b) => Message::Binary(b),
        TheirMessage::Ping(b) => Message::Ping(b),
        TheirMessage::Pong(b) => Message::Pong(b),
        other => panic!("not a message: {other:?}"),
    }
}

/// Our message as theirs, to send it with their client.
fn to_theirs(message: &Message) -> TheirMessage {
    match message {
        Message::Text(t) => TheirMessage::text(t.as_str()),
        Message::Binary(b) => TheirMessage::Binary(b.clone()),
        Message::Ping(b) => TheirMessage::Ping(b.clone()),
        Message::Pong(b) => TheirMessage::Pong(b.clone()),
    }
}

/// Their Close frame (`None`: one without a payload) as ours.
fn close_from_theirs(frame: Option<TheirCloseFrame>) -> CloseFrame {
    match frame {
        Some(frame) => CloseFrame {
            code: Some(CloseCode(frame.code.into())),
            reason: frame.reason.as_str().to_owned(),
        },
        None => CloseFrame {
            code: None,
            reason: String::new(),
        },
    }
}

fn their_close(code: u16, reason: &str) -> TheirCloseFrame {
    TheirCloseFrame {
        code: code.into(),
        reason: reason.into(),
    }
}

/// One message sent as the frames `parts` (a first frame of type `kind`, continuations).
async fn send_fragmented<S>(ws: &mut S, kind: Data, parts: &[&[u8]])
where
    S: SinkExt<TheirMessage> + Unpin,
    S::Error: std::fmt::Debug,
{
    for (i, part) in parts.iter().enumerate() {
        let opcode = OpCode::Data(if i == 0 { kind } else { Data::Continue });
        let frame = Frame::message(part.to_vec(), opcode, i + 1 == parts.len());
        ws.feed(TheirMessage::Frame(frame))
            .await
            .expect("feed a frame");
    }
    ws.flush().await.expect("flush");
}

/// What one side using tokio-tungstenite saw.
#[derive(Debug, Default)]
struct TheirReport {
    /// The data messages received, in order.
    received: Vec<Message>,
    /// The data messages sent, in order.
    sent: Vec<Message>,
    /// The Close frame received, if one was.
    close: Option<CloseFrame>,
    /// The error the stream ended with; `None` when it ended cleanly (their
    /// `ConnectionClosed`).
    error: Option<String>,
}

/// A tokio-tungstenite server for one connection on 127.0.0.1, steered like
/// [`EchoServer`]: it echoes every message except `burst N`, `close CODE REASON`,
/// `fragments A B ...` (sends "AB..." as one text message in those fragments) and `ping`
/// (sends a Ping "interop"; its Pong is answered with "pong received: interop").
async fn tungstenite_server() -> (String, JoinHandle<TheirReport>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("local address"));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp)
            .await
            .expect("their handshake");
        let mut report = TheirReport::default();
        loop {
            let message = match ws.next().await {
                None => break,
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    report.error = Some(error.to_string());
                    break;
                }
            };
            let replies = match message {
                TheirMessage::Close(frame) => {
                    report.close = Some(close_from_theirs(frame));
                    continue;
                }
                TheirMessage::Ping(_) | TheirMessage::Frame(_) => continue,
                TheirMessage::Pong(payload) => vec![text(&format!(
                    "pong received: {}",
                    String::from_utf8_lossy(&payload)
                ))],
                TheirMessage::Text(t) => {
                    report.received.push(text(&t));
                    match t.as_str().split_once(' ') {
                        Some(("burst", n)) => bursts(0..n.parse().expect("burst N")),
                        Some(("close", rest)) => {
                            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                            let code = code.parse().expect("close CODE REASON");
                            ws.close(Some(their_close(code, reason)))
                                .await
                                .expect("their close");
                            continue;
                        }
                        Some(("fragments", rest)) => {
                            let parts: Vec<&[u8]> = rest.split(' ').map(str::as_bytes).collect();
                            send_fragmented(&mut ws, Data::Text, &parts).await;
                            report.sent.push(text(&rest.replace(' ', "")));
                            continue;
                        }
                        _ if t.as_str() == "ping" => {
                            ws.send(TheirMessage::Ping(Bytes::from_static(b"interop")))
                                .await
                                .expect("their ping");
                            continue;
                        }
                        _ => vec![text(&t)],
                    }
                }
                TheirMessage::Binary(b) => {
                    report.received.push(Message::Binary(b.clone()));
                    vec![Message::Binary(b)]
                }
            };
            for reply in replies {
                ws.send(to_theirs(&reply)).await.expect("their send");
                report.sent.push(reply);
            }
        }
        report
    });
    (url, task)
}

/// Reads a tokio-tungstenite client's stream to its end.
async fn drain<S>(ws: &mut S, report: &mut TheirReport)
where
    S: StreamExt<Item = Result<TheirMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(item) = bounded("their client's next message", ws.next()).await {
        match item {
            Ok(TheirMessage::Close(frame)) => report.close = Some(close_from_theirs(frame)),
            Ok(message) => report.received.push(from_theirs(message)),
            Err(error) => {
                report.error = Some(error.to_string());
                return;
            }
        }
    }
}

/// The next message of a tokio-tungstenite client's stream.
async fn next_theirs<S>(ws: &mut S) -> Message
where
    S: StreamExt<Item = Result<TheirMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let message = bounded("their next message", ws.next())
        .await
        .expect("their stream ended early")
        .expect("their client failed");
    from_theirs(message)
}

#[tokio::test]
async fn our_client_exchanges_messages_with_tungstenite_server_and_closes_first() {
    let (url, server) = tungstenite_server().await;
    let (mut ws, response) = bounded("connect", sockeye::connect(&url))
        .await
        .expect("our handshake with their server");
    assert_eq!(response.status, 101);

    let Exchange { sent, received } = exchange_then_close(&mut ws, "pong received: interop").await;
    // The server sent the whole burst before it read our Close: none of it is lost.
    assert_eq!(received[received.len() - 50..], bursts(0..50)[..]);

    let theirs = bounded("their server", server).await.expect("their server");
    assert_eq!(theirs.received, sent);
    assert_eq!(theirs.sent, received);
    assert_eq!(theirs.close, Some(close_frame(4001, OUR_CLOSE_REASON)));
    assert_eq!(theirs.error, None);
}

#[tokio::test]
async fn tungstenite_server_closes_first_and_our_client_keeps_every_message() {
    let (url, server) = tungstenite_server().await;
    let close = their_server_closes_first(&url, "tungstenite server done").await;

    let theirs = bounded("their server", server).await.expect("their server");
    assert_eq!(theirs.received, vec![text("burst 50"), text(&close)]);
    assert_eq!(theirs.sent, bursts(0..50));
    assert_eq!(theirs.close, Some(close_frame(4002, "")));
    assert_eq!(theirs.error, None);
}

#[tokio::test]
async fn tungstenite_client_exchanges_messages_with_our_server_and_closes_first() {
    let mut server = EchoServer::start().await;
    let (mut ws, response) = bounded(
        "connect",
        tokio_tungstenite::connect_async_with_config(server.url.as_str(), None, true),
    )
    .await
    .expect("their handshake with our server");
    assert_eq!(response.status(), 101);

    let mut theirs = TheirReport::default();
    for message in assorted() {
        ws.send(to_theirs(&message)).await.expect("their send");
        theirs.sent.push(message.clone());
        let echo = next_theirs(&mut ws).await;
        assert_eq!(echo, message);
        theirs.received.push(echo);
    }
    // Fragmented messages are reassembled, and echoed whole.
    send_fragmented(&mut ws, Data::Text, &[b"frag", b"ment", "ed ✓".as_bytes()]).await;
    theirs.sent.push(text("fragmented ✓"));
    let big = pattern(300_000);
    send_fragmented(
        &mut ws,
        Data::Binary,
        &[&big[..1], &big[1..100_000], &big[100_000..]],
    )
    .await;
    theirs.sent.push(binary(big.clone()));
    for expected in [text("fragmented ✓"), binary(big)] {
        let echo = next_theirs(&mut ws).await;
        assert_eq!(echo, expected);
        theirs.received.push(echo);
    }
    // Our server answers their Ping.
    let ping = Bytes::from_static(b"are you there");
    ws.send(TheirMessage::Ping(ping.clone()))
        .await
        .expect("ping");
    assert_eq!(next_theirs(&mut ws).await, Message::Pong(ping));

    // They close right after messages our server has not read yet.
    for i in 0..20 {
        let message = text(&format!("last {i}"));
        ws.feed(to_theirs(&message)).await.expect("feed");
        theirs.sent.push(message);
    }
    let reason = "tungstenite client done";
    bounded("their close", ws.close(Some(their_close(4002, reason))))
        .await
        .expect("their close");
    drain(&mut ws, &mut theirs).await;
    // Their client closes its socket only when dropped; our server lingers until then.
    drop(ws);

    let ours = server.report().await;
    assert_eq!(
        ours.received, theirs.sent,
        "every message they sent arrived"
    );
    assert_clean_close(
        &ours.info,
        Initiator::Remote,
        close_frame(4002, ""),
        close_frame(4002, reason),
    );
    assert_eq!(
        ours.peer_closed_first,
        Some(false),
        "the server closes TCP first"
    );
    // Every echo our server sent before their Close arrived reached them, in order.
    assert_eq!(theirs.received, ours.sent);
    assert_eq!(theirs.close, Some(close_frame(4002, "")));
    assert_eq!(theirs.error, None);
}

#[tokio::test]
async fn our_server_closes_first_with_tungstenite_client() {
    let mut server = EchoServer::start().await;
    let (mut ws, _) = bounded(
        "connect",
        tokio_tungstenite::connect_async_with_config(server.url.as_str(), None, true),
    )
    .await
    .expect("their handshake with our server");
    let reason = "sockeye server done";
    let close = format!("close 4001 {reason}");
    let mut theirs = TheirReport::default();
    for message in [text("burst 50"), text(&close)] {
        ws.send(to_theirs(&message)).await.expect("their send");
        theirs.sent.push(message);
    }
    drain(&mut ws, &mut theirs).await;
    drop(ws);
    assert_eq!(theirs.received, bursts(0..50));
    assert_eq!(theirs.close, Some(close_frame(4001, reason)));
    assert_eq!(theirs.error, None);

    let ours = server.report().await;
    assert_eq!(ours.received, theirs.sent);
    assert_eq!(ours.sent, bursts(0..50));
    // Their reply echoes our code and reason.
    assert_clean_close(
        &ours.info,
        Initiator::Local,
        close_frame(4001, reason),
        close_frame(4001, reason),
    );
    assert_eq!(
        ours.peer_closed_first,
        Some(false),
        "the server closes TCP first"
    );
}

#[tokio::test]
async fn tungstenite_with_its_default_limits_takes_a_message_over_its_frame_limit_from_us() {
    // tokio-tungstenite accepts frames up to 16 MiB and messages up to 64 MiB by
    // default: a 20 MiB message arrives because we send it in frames of 16 MiB at most.
    let (url, server) = tungstenite_server().await;
    let mut config = sockeye::Config::default();
    // Their echo comes back as one 20 MiB frame: let ours take it.
    config.protocol.max_frame_size = None;
    let (mut ws, _) = bounded(
        "connect",
        sockeye::ClientBuilder::new().config(config).connect(&url),
    )
    .await
    .expect("our handshake with their server");
    let large = Message::Binary(
        (0..20u32 << 20)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>()
            .into(),
    );
    ws.send(large.clone()).await.expect("our send");
    let echoed = bounded("their echo", ws.next())
        .await
        .expect("an echo")
        .expect("a message");
    assert!(echoed == large, "the echo differs");
    let info = bounded("our close", ws.close(CloseCode::NORMAL, ""))
        .await
        .expect("close");
    assert!(info.clean, "{info:?}");
    let theirs = bounded("their server", server).await.expect("their server");
    assert_eq!(theirs.error, None);
    assert!(theirs.received == [large], "they received something else");
}
