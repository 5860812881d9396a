//! What users of other Rust WebSocket crates trip over, each with Sockeye's documented
//! answer, over real loopback TCP: dropping a WebSocket or a Session without closing,
//! closing after `split()`, cancel-safe reads in `tokio::select!`, sending after close,
//! a peer that vanishes, memory under backpressure, and a message too large to hold whole,
//! sent in parts.

mod common;

use std::time::Duration;

use common::{
    RawPeer, listener, server_with_raw_client, server_with_raw_client_on, small_buffer_listener,
    stays_pending, until, url, within, ws_pair,
};
use futures_util::{SinkExt, StreamExt};
use sockeye::{ClientBuilder, CloseCode, Config, Error, Initiator, Message, ServerBuilder, State};
use sockeye_proto::SendError;
use sockeye_proto::frame::OpCode;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

fn is_send_error(result: &sockeye::Result<()>) -> bool {
    matches!(
        result,
        Err(Error::Send(SendError::Closing | SendError::Closed))
    )
}

// ----- dropping without closing -----

#[tokio::test]
async fn dropping_the_websocket_sends_1001_and_the_peer_sees_a_clean_close() {
    let (client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let client_session = client.session();
    drop(client);

    // The server sees a Close with 1001, not a lost connection.
    assert!(
        within("the end of the stream", server.next())
            .await
            .is_none()
    );
    let server_info = within("the server's outcome", server.session().closed()).await;
    assert_eq!(server_info.code, CloseCode::GOING_AWAY);
    assert_eq!(server_info.initiator, Initiator::Remote);
    assert!(server_info.clean, "{server_info:?}");
    assert_eq!(server_info.error, None);
    // The handshake finished in the background; a Session handle sees its outcome.
    let client_info = within("the client's outcome", client_session.closed()).await;
    assert_eq!(client_info.initiator, Initiator::Local);
    assert_eq!(
        client_info.sent.as_ref().and_then(|f| f.code),
        Some(CloseCode::GOING_AWAY)
    );
    assert!(client_info.clean, "{client_info:?}");
    assert_eq!(client_session.state(), State::Closed);
}

#[tokio::test]
async fn a_server_handler_that_returns_without_closing_sends_1001() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|ws| async move {
        // Forgets to close.
        drop(ws);
    }));
    let (mut client, _) = within("connect", sockeye::connect(&url(addr)))
        .await
        .unwrap();
    assert!(
        within("the end of the stream", client.next())
            .await
            .is_none()
    );
    let info = within("the outcome", client.session().closed()).await;
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert_eq!(info.initiator, Initiator::Remote);
    assert!(info.clean, "{info:?}");
}

#[tokio::test]
async fn dropping_the_websocket_is_bounded_by_the_close_timeout_when_the_peer_never_answers() {
    let (listener, addr) = listener().await;
    let client = ClientBuilder::new().close_timeout(Duration::from_secs(5));
    let url = url(addr);
    let (client, peer) = tokio::join!(client.connect(&url), RawPeer::accept(&listener, b""));
    let (ws, _) = client.unwrap();
    let session = ws.session();
    let mut peer = peer;
    tokio::time::pause();
    let start = Instant::now();

    drop(ws);
    // 1001 goes out...
    assert_eq!(peer.expect_close().await, (Some(1001), String::new()));
    // ...and with no answer the session ends after the close timeout, not never.
    let info = within("the close timeout", session.closed()).await;
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert_eq!(info.error, Some(sockeye_proto::Error::CloseTimeout));
    assert!(!info.clean);
    peer.expect_eof().await;
}

#[tokio::test]
async fn dropping_a_session_handle_does_not_close_the_session() {
    let (mut client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    drop(client.session());
    drop(server.session());
    client.send("ping").await.unwrap();
    let received = within("a message", server.next()).await.unwrap().unwrap();
    server.send(received).await.unwrap();
    let echoed = within("the echo", client.next()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::Text("ping".into()));
    assert_eq!((client.state(), server.state()), (State::Open, State::Open));
}

#[tokio::test]
async fn dropping_every_session_handle_of_an_endpoint_does_not_close_it() {
    let (listener, addr) = listener().await;
    let (mut recorder, mut calls) = common::Recorder::new();
    recorder.echo = true;
    let (client, url) = (ClientBuilder::new(), url(addr));
    let (session, server) = tokio::join!(client.connect_endpoint(&url, recorder), async {
        let (stream, _) = listener.accept().await.unwrap();
        sockeye::accept(stream).await
    });
    // The endpoint owns the session; the application keeps no handle at all.
    drop(session.unwrap());
    let mut server = server.unwrap();

    assert_eq!(calls.next().await, common::Call::Open(State::Connected));
    server.send("still here").await.unwrap();
    let echoed = within("the echo", server.next()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::Text("still here".into()));
    let info = within("the close", server.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
    let rest = calls.all().await;
    assert!(
        matches!(rest.as_slice(), [common::Call::Message(_), common::Call::Close(i, _)] if i.clean),
        "{rest:?}"
    );
}

// ----- split -----

#[tokio::test]
async fn closing_the_sender_half_ends_the_receiver_half() {
    let (client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let (mut sender, mut receiver) = client.split();
    let reading = tokio::spawn(async move {
        let mut messages = Vec::new();
        while let Some(message) = receiver.next().await {
            messages.push(message.unwrap());
        }
        messages
    });
    server.send("before the close").await.unwrap();

    let info = within("the close", sender.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
    // The other half sees the end of the stream, after what arrived before the Close.
    let messages = within("the receiving half to end", reading).await.unwrap();
    assert_eq!(messages, [Message::Text("before the close".into())]);
    assert!(within("the server's end", server.next()).await.is_none());
}

#[tokio::test]
async fn closing_the_receiver_half_makes_the_sender_half_fail() {
    let (client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let (mut sender, receiver) = client.split();
    receiver
        .session()
        .close(CloseCode::NORMAL, "from the reader")
        .unwrap();

    let result = sender.send("too late").await;
    assert!(is_send_error(&result), "{result:?}");
    let result = SinkExt::send(&mut sender, Message::Text("too late".into())).await;
    assert!(is_send_error(&result), "{result:?}");
    // Nothing reached the server: its stream ends without a message.
    assert!(within("the server's end", server.next()).await.is_none());
    assert_eq!(server.close_info().unwrap().reason, "from the reader");
    // Closing the sending half as a Sink waits for the same, single close.
    within("Sink::close", SinkExt::close(&mut sender))
        .await
        .unwrap();
    assert_eq!(sender.session().state(), State::Closed);
    assert!(sender.session().close_info().unwrap().clean);
    let mut receiver = receiver;
    assert!(
        within("the receiving half's end", receiver.next())
            .await
            .is_none()
    );
}

#[tokio::test]
async fn closing_both_halves_sends_one_close_frame() {
    let (listener, addr) = listener().await;
    let url = url(addr);
    let (client, peer) = tokio::join!(sockeye::connect(&url), RawPeer::accept(&listener, b""));
    let (mut sender, mut receiver) = client.unwrap().0.split();
    let mut peer = peer;

    sender.session().close(CloseCode::NORMAL, "sender").unwrap();
    receiver
        .session()
        .close(CloseCode::GOING_AWAY, "receiver")
        .unwrap();
    assert_eq!(peer.expect_close().await, (Some(1000), "sender".into()));
    peer.send_close(CloseCode::NORMAL, "").await;
    peer.stream.shutdown().await.unwrap();
    // The client closes its side next: no second Close frame before that.
    peer.expect_eof().await;

    let info = within("the close", sender.close(CloseCode::NORMAL, "again"))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
    assert!(
        within("the receiving half to end", receiver.next())
            .await
            .is_none()
    );
}

#[tokio::test]
async fn dropping_both_halves_sends_1001() {
    let (client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let (sender, receiver) = client.split();
    drop(receiver);
    server.send("still open").await.unwrap();
    let mut sender = sender;
    sender.send("one half is enough").await.unwrap();
    let received = within("a message", server.next()).await.unwrap().unwrap();
    assert_eq!(received, Message::Text("one half is enough".into()));
    drop(sender);

    assert!(
        within("the end of the stream", server.next())
            .await
            .is_none()
    );
    let info = server.close_info().unwrap();
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert!(within("the outcome", server.session().closed()).await.clean);
}

// ----- cancel safety -----

#[tokio::test]
async fn next_futures_dropped_in_select_lose_no_message() {
    dropped_receives_lose_no_message(Receive::Next, 10_000).await;
}

/// The same with `recv()`, whose waiting future reads the socket on its own task and
/// gives the reading back to the driver when it is dropped.
#[tokio::test]
async fn recv_futures_dropped_in_select_lose_no_message() {
    dropped_receives_lose_no_message(Receive::Recv, 5_000).await;
}

#[derive(Clone, Copy)]
enum Receive {
    /// `StreamExt::next`.
    Next,
    /// `WebSocket::recv`.
    Recv,
}

async fn receive(ws: &mut sockeye::WebSocket, how: Receive) -> Option<sockeye::Result<Message>> {
    match how {
        // Through the trait: `ws.next()` is `recv()` under another name.
        Receive::Next => StreamExt::next(ws).await,
        Receive::Recv => ws.recv().await,
    }
}

async fn dropped_receives_lose_no_message(how: Receive, messages: u32) {
    const BATCH: u32 = 5;
    let (mut client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;

    // The server sends a numbered sequence in batches, waiting for an acknowledgement
    // between batches, so that the client's queue runs empty thousands of times.
    let sending = tokio::spawn(async move {
        for batch in 0..messages / BATCH {
            for i in batch * BATCH..(batch + 1) * BATCH {
                // Some messages are long enough to arrive in several reads.
                let padding = if i % 97 == 0 {
                    40_000
                } else {
                    (i % 13) as usize
                };
                server
                    .send(format!("{i} {}", "x".repeat(padding)))
                    .await
                    .unwrap();
            }
            let ack = server.next().await.unwrap().unwrap();
            assert_eq!(ack, Message::Text("ack".into()));
        }
        server.close(CloseCode::NORMAL, "done").await.unwrap()
    });

    let mut expected = 0u32;
    let mut cancelled = 0u32;
    loop {
        // Race the read against a future that is ready on its second poll, and now and
        // then against a short timer: whenever the read is pending, it is dropped.
        let received = if expected.is_multiple_of(64) {
            tokio::select! {
                biased;
                () = tokio::time::sleep(Duration::from_micros(100)) => continue,
                received = receive(&mut client, how) => received,
            }
        } else {
            tokio::select! {
                biased;
                () = tokio::task::yield_now() => { cancelled += 1; continue }
                received = receive(&mut client, how) => received,
            }
        };
        let Some(message) = received else { break };
        let Message::Text(text) = message.unwrap() else {
            panic!("not text");
        };
        let number: u32 = text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(number, expected, "lost or reordered");
        expected += 1;
        if expected.is_multiple_of(BATCH) {
            client.send("ack").await.unwrap();
        }
    }
    assert_eq!(expected, messages);
    assert!(
        cancelled >= messages / BATCH / 2,
        "{cancelled} cancellations only"
    );
    let info = within("the server", sending).await.unwrap();
    assert!(info.clean);
    assert_eq!(client.close_info().unwrap().reason, "done");
}

// ----- sending after close -----

#[tokio::test]
async fn sending_after_close_is_an_error_never_ok() {
    let (mut client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let session = client.session();

    // CLOSING: our Close is queued.
    session.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(
        session.try_send("x"),
        Err(Error::Send(SendError::Closing))
    ));
    assert!(matches!(
        session.send("x").await,
        Err(Error::Send(SendError::Closing))
    ));
    let result = client.send("x").await;
    assert!(is_send_error(&result), "{result:?}");
    let result = client.feed(Message::Text("x".into())).await;
    assert!(is_send_error(&result), "{result:?}");

    // CLOSED.
    within("the close", client.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(matches!(
        session.try_send("x"),
        Err(Error::Send(SendError::Closed))
    ));
    assert!(matches!(
        client.send("x").await,
        Err(Error::Send(SendError::Closed))
    ));
    // And the server, closed by its peer, cannot send either.
    assert!(server.next().await.is_none());
    let result = server.send("x").await;
    assert!(is_send_error(&result), "{result:?}");
    let result = server.session().try_send("x");
    assert!(is_send_error(&result), "{result:?}");
}

#[tokio::test]
async fn the_sink_answers_what_arrived_before_the_peers_close_as_send_does() {
    // Two messages and the peer's Close in one write: the server's core has taken in the
    // Close (CLOSING, its reply still to come) when the application reads the first
    // message. Its answers go out before the reply (RFC 6455 5.5.1: an endpoint may
    // delay its Close until its current message is sent), through the Sink as through
    // `send`; once the reply is out, both refuse with the same error.
    let (mut server, mut peer) = server_with_raw_client().await;
    let mut batch = peer.encode(true, OpCode::Text, b"by the sink");
    batch.extend(peer.encode(true, OpCode::Text, b"by send"));
    batch.extend(peer.encode(true, OpCode::Close, &1000u16.to_be_bytes()));
    peer.write_raw(&batch).await;

    let first = within("the first message", server.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.session().state(),
        State::Closing {
            close_sent: false,
            close_received: true
        }
    );
    within("the Sink's send", SinkExt::send(&mut server, first))
        .await
        .unwrap();
    let second = within("the second message", server.next())
        .await
        .unwrap()
        .unwrap();
    server.send(second).await.unwrap();
    // Taking the Close sends the reply: from then on neither way may send.
    assert!(within("the Close", server.next()).await.is_none());
    let result = SinkExt::send(&mut server, Message::Text("too late".into())).await;
    assert!(is_send_error(&result), "{result:?}");
    let result = server.send("too late").await;
    assert!(is_send_error(&result), "{result:?}");

    for expected in ["by the sink", "by send"] {
        let frame = peer.expect_frame().await;
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (OpCode::Text, expected.as_bytes())
        );
    }
    assert_eq!(peer.expect_close().await.0, Some(1000));
}

/// Runs `closing` (the server's close) beside `peer`, which expects a Close with 1000 and
/// then the server's EOF (the server closes TCP first, 7.1.1) before it closes too; the
/// close must end cleanly within a second. Returns its outcome.
async fn closes_at_once_and_cleanly(
    closing: impl Future<Output = sockeye::CloseInfo>,
    mut peer: RawPeer,
) -> sockeye::CloseInfo {
    let start = Instant::now();
    let (info, ()) = tokio::join!(within("the close", closing), async move {
        assert_eq!(peer.expect_close().await.0, Some(1000));
        peer.expect_eof().await;
    });
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(info.clean, "{info:?}");
    info
}

#[tokio::test]
async fn closing_with_unread_messages_before_the_peers_close_answers_it_at_once() {
    ending_with_unread_messages_before_the_peers_close(Ending::Close).await;
}

#[tokio::test]
async fn closing_the_sink_with_unread_messages_before_the_peers_close_answers_it_at_once() {
    ending_with_unread_messages_before_the_peers_close(Ending::SinkClose).await;
}

#[tokio::test]
async fn other_endings_with_unread_messages_before_the_peers_close_answer_it_at_once() {
    for ending in [Ending::SessionClose, Ending::Drop, Ending::DropReceiver] {
        ending_with_unread_messages_before_the_peers_close(ending).await;
    }
}

/// How the application ends a session without reading what it received.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// `WebSocket::close`.
    Close,
    /// `SinkExt::close`.
    SinkClose,
    /// `Session::close` on a handle, the `WebSocket` kept.
    SessionClose,
    /// Dropping the `WebSocket`.
    Drop,
    /// Dropping the receiving half, the sending half kept.
    DropReceiver,
}

/// A message and the peer's Close in one write; the application ends the session as
/// `ending` says without reading the message. The reply to the peer's Close goes out now,
/// not after the close timeout; the message is still delivered before the end while a
/// receiving handle is left, and the sending half left after `DropReceiver` can no longer
/// send.
async fn ending_with_unread_messages_before_the_peers_close(ending: Ending) {
    let (server, mut peer) = server_with_raw_client().await;
    let mut batch = peer.encode(true, OpCode::Text, b"unread");
    batch.extend(peer.encode(true, OpCode::Close, &1000u16.to_be_bytes()));
    peer.write_raw(&batch).await;
    until("the peer's Close to be read", || {
        server.session().state() != State::Open
    })
    .await;

    let session = server.session();
    let mut receiver = Some(server);
    let mut sender = None;
    match ending {
        Ending::Close | Ending::SinkClose => {}
        Ending::SessionClose => session.close(CloseCode::NORMAL, "").unwrap(),
        Ending::Drop => receiver = None,
        Ending::DropReceiver => {
            let (tx, rx) = receiver.take().unwrap().split();
            drop(rx);
            sender = Some(tx);
        }
    }
    let closing = async {
        match (ending, receiver.as_mut()) {
            (Ending::Close, Some(ws)) => ws.close(CloseCode::NORMAL, "").await.unwrap(),
            (Ending::SinkClose, Some(ws)) => {
                SinkExt::close(ws).await.unwrap();
                ws.close_info().unwrap()
            }
            _ => session.closed().await,
        }
    };
    let info = closes_at_once_and_cleanly(closing, peer).await;
    assert_eq!(info.initiator, Initiator::Remote, "{ending:?}");
    if let Some(mut ws) = receiver {
        assert_eq!(
            within("the unread message", ws.next())
                .await
                .unwrap()
                .unwrap(),
            Message::Text("unread".into())
        );
        assert!(ws.next().await.is_none());
    }
    if let Some(mut tx) = sender {
        let result = tx.send("too late").await;
        assert!(is_send_error(&result), "{result:?}");
    }
}

#[tokio::test]
async fn sending_after_the_connection_was_lost_is_an_error() {
    let (mut server, peer) = server_with_raw_client().await;
    drop(peer);
    within("the outcome", server.session().closed()).await;
    assert!(matches!(
        server.send("x").await,
        Err(Error::Send(SendError::Closed))
    ));
    assert!(matches!(
        server.session().try_send("x"),
        Err(Error::Send(SendError::Closed))
    ));
}

/// A server session on `config` with a raw client that never reads, both on small kernel
/// buffers so that what the kernel absorbs is small next to what is measured.
async fn server_with_a_client_that_never_reads(config: Config) -> (sockeye::WebSocket, RawPeer) {
    let (listener, addr) = small_buffer_listener(4096);
    let (server, peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new().config(config).accept(stream).await
        },
        RawPeer::connect_with_small_buffers(addr, 4096),
    );
    (server.unwrap(), peer)
}

/// Sends `message` until the session holds it back: `try_send` says `Full` and `send`
/// makes no progress while time passes (on paused time, a second passes as soon as
/// nothing else can happen). Returns the bytes it accepted; fails past `bound`.
async fn fill(ws: &mut sockeye::WebSocket, message: &Message, bound: usize) -> usize {
    let high_water = 64 * 1024;
    let mut accepted = 0;
    loop {
        assert!(accepted < bound, "the writer accepted {accepted} bytes");
        match ws.session().try_send(message.clone()) {
            Ok(()) => accepted += message.as_bytes().len(),
            Err(Error::Full(queued)) => {
                // The queue never holds more than the high-water mark plus one message.
                assert!(
                    queued <= high_water + message.as_bytes().len() + 14,
                    "{queued}"
                );
                let send = ws.send(message.clone());
                match tokio::time::timeout(Duration::from_secs(1), send).await {
                    Ok(result) => {
                        result.unwrap();
                        accepted += message.as_bytes().len();
                    }
                    Err(_) => return accepted,
                }
            }
            Err(other) => panic!("{other}"),
        }
    }
}

#[tokio::test]
async fn send_waits_and_memory_stays_bounded_when_the_peer_never_reads() {
    let config = Config {
        write_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    let (mut server, mut peer) = server_with_a_client_that_never_reads(config).await;
    let message = Message::Binary(vec![0xab; 8 * 1024].into());
    tokio::time::pause();

    let accepted = fill(&mut server, &message, 1 << 20).await;
    // Whatever the kernel buffers hold, the session's own queue is bounded: repeated
    // attempts keep failing with Full and a send stays pending.
    for _ in 0..100 {
        match server.session().try_send(message.clone()) {
            Err(Error::Full(queued)) => assert!(queued <= 64 * 1024 + 8 * 1024 + 14),
            other => panic!("{other:?}"),
        }
        tokio::task::yield_now().await;
    }
    let session = server.session();
    let blocked = {
        let message = message.clone();
        tokio::spawn(async move { session.send(message).await })
    };
    let mut blocked = blocked;
    assert!(stays_pending(Duration::from_secs(30), &mut blocked).await);

    // Once the peer reads, the waiting send goes through, and everything arrives.
    tokio::time::resume();
    let count = accepted / message.as_bytes().len() + 1;
    let reading = tokio::spawn(async move {
        for _ in 0..count {
            let frame = peer.read_frame().await.unwrap();
            assert_eq!(
                (frame.opcode, frame.payload.len()),
                (OpCode::Binary, 8 * 1024)
            );
        }
        peer
    });
    within("the blocked send", blocked).await.unwrap().unwrap();
    let mut peer = within("the reader", reading).await.unwrap();
    server.session().close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(peer.expect_close().await, (Some(1000), String::new()));
}

#[tokio::test]
async fn an_application_that_does_not_read_stops_the_session_reading() {
    let config = Config {
        read_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    let (listener, addr) = small_buffer_listener(4096);
    let (server, peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new().config(config).accept(stream).await
        },
        RawPeer::connect_with_small_buffers(addr, 4096),
    );
    let mut server = server.unwrap();
    let mut peer = peer;
    let frame = peer.encode(true, OpCode::Binary, &[1; 16 * 1024]);
    tokio::time::pause();

    // The peer writes until its writes block: the session stopped reading.
    let mut written = 0usize;
    loop {
        assert!(
            written < 1 << 20,
            "the session kept reading: {written} bytes"
        );
        let write = peer.write_raw(&frame);
        if stays_pending(Duration::from_secs(1), write).await {
            break;
        }
        written += frame.len();
    }
    tokio::time::resume();
    // Nothing was lost: every complete message is delivered in order.
    let mut received = 0usize;
    while received + frame.len() <= written {
        let message = within("a message", server.next()).await.unwrap().unwrap();
        assert_eq!(message.as_bytes().len(), 16 * 1024);
        received += frame.len();
    }
    assert_eq!(server.state(), State::Open);
}

#[tokio::test]
async fn closing_while_unread_messages_stopped_the_reading_still_reads_the_peers_close() {
    // 128 KiB of messages against a 64 KiB high-water mark, then the peer's Close: the
    // session stops reading before it. The application closes without reading: the
    // session must read on to the peer's Close to finish the handshake, not wait out the
    // close timeout; and the messages are all still delivered.
    let config = Config {
        read_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    let (mut server, mut peer) = server_with_raw_client_on(config).await;
    let mut batch = Vec::new();
    for _ in 0..8 {
        batch.extend(peer.encode(true, OpCode::Binary, &[1; 16 * 1024]));
    }
    batch.extend(peer.encode(true, OpCode::Close, &1000u16.to_be_bytes()));
    peer.write_raw(&batch).await;
    // Reads of at most 64 KiB stop past the mark, before the Close: it is not read yet.
    assert_eq!(server.session().state(), State::Open);

    let closing = async { server.close(CloseCode::NORMAL, "").await.unwrap() };
    closes_at_once_and_cleanly(closing, peer).await;
    for _ in 0..8 {
        let message = within("a message", server.next()).await.unwrap().unwrap();
        assert_eq!(message.as_bytes().len(), 16 * 1024);
    }
    assert!(server.next().await.is_none());
}

// ----- a peer that vanishes -----

#[tokio::test]
async fn server_session_is_closed_promptly_with_1006_when_the_peer_vanishes() {
    let mut config = Config::default();
    // Long timeouts: the session must end because the peer is gone, not because one
    // passed.
    config.protocol.close_timeout = Duration::from_secs(30);
    config.linger = Duration::from_secs(30);
    let (server, peer) = server_with_raw_client_on(config).await;
    let session = server.session();
    drop(peer);

    let info = tokio::time::timeout(Duration::from_secs(2), session.closed())
        .await
        .expect("the session's task did not finish");
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.error, Some(sockeye_proto::Error::ConnectionLost));
    assert_eq!(session.state(), State::Closed);
}

/// A server session whose output buffer is over its high-water mark (64 KiB) in front of
/// a client that never reads, with the close timeout and linger long enough not to end
/// the session by themselves; the message it was filled with.
async fn a_full_buffer_before_a_peer_that_never_reads() -> (sockeye::WebSocket, RawPeer, Message) {
    let mut config = Config {
        write_buffer_high_water: 64 * 1024,
        linger: Duration::from_secs(30),
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_secs(30);
    let (mut server, peer) = server_with_a_client_that_never_reads(config).await;
    let message = Message::Binary(vec![0xab; 8 * 1024].into());
    tokio::time::pause();
    fill(&mut server, &message, 1 << 20).await;
    tokio::time::resume();
    (server, peer, message)
}

#[tokio::test]
async fn a_blocked_send_fails_when_the_peer_that_never_read_vanishes() {
    let (server, peer, message) = a_full_buffer_before_a_peer_that_never_reads().await;

    let session = server.session();
    let blocked = tokio::spawn(async move { session.send(message).await });
    // The peer goes away with unread data: its kernel resets the connection.
    drop(peer);
    let result = tokio::time::timeout(Duration::from_secs(2), blocked)
        .await
        .expect("the blocked send did not end")
        .unwrap();
    assert!(is_send_error(&result), "{result:?}");
    let info = tokio::time::timeout(Duration::from_secs(2), server.session().closed())
        .await
        .expect("the session's task did not finish");
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(info.error.is_some());
}

/// Whether `result` is the failure of a session whose connection was lost (reset or
/// closed under it).
fn is_connection_lost(result: &sockeye::Result<()>) -> bool {
    matches!(
        result,
        Err(Error::Failed(
            sockeye_proto::Error::Transport(_) | sockeye_proto::Error::ConnectionLost
        ))
    )
}

#[tokio::test]
async fn a_flush_fails_when_the_peer_vanishes_before_the_output_was_written() {
    // The Sink's flush is done when everything queued was written; when the transport
    // ends first, what was queued is lost, and the flush says so.
    let (mut server, peer, _) = a_full_buffer_before_a_peer_that_never_reads().await;

    let flushing = tokio::spawn(async move { SinkExt::flush(&mut server).await });
    drop(peer);
    let result = tokio::time::timeout(Duration::from_secs(2), flushing)
        .await
        .expect("the flush did not end")
        .unwrap();
    assert!(is_connection_lost(&result), "{result:?}");
}

#[tokio::test]
async fn closing_the_sink_fails_when_the_peer_vanishes_before_the_closing_handshake() {
    // The Sink's close is done when the closing handshake is; when the transport ends
    // before our Close could even be written, the close says how the session ended.
    let (mut server, peer, _) = a_full_buffer_before_a_peer_that_never_reads().await;

    let closing = tokio::spawn(async move {
        let result = SinkExt::close(&mut server).await;
        (result, server)
    });
    drop(peer);
    let (result, server) = tokio::time::timeout(Duration::from_secs(2), closing)
        .await
        .expect("the close did not end")
        .unwrap();
    assert!(is_connection_lost(&result), "{result:?}");
    let info = server.close_info().expect("the session ended");
    assert!(!info.clean);
    assert_eq!(info.code, CloseCode::ABNORMAL);
}

#[tokio::test]
async fn closing_the_sink_fails_when_the_peer_never_answers_the_close() {
    // A peer that reads but never answers our Close: the close timeout ends the session,
    // and the Sink's close reports it rather than a clean end.
    let mut config = Config {
        linger: Duration::from_millis(100),
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_millis(200);
    let (mut server, mut peer) = server_with_raw_client_on(config).await;

    let closing = tokio::spawn(async move { SinkExt::close(&mut server).await });
    // The peer sees our Close and stays silent.
    let (code, _) = peer.expect_close().await;
    assert_eq!(code, Some(1000));
    let result = within("the close", closing).await.unwrap();
    assert!(
        matches!(
            result,
            Err(Error::Failed(sockeye_proto::Error::CloseTimeout))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn send_after_close_fails_at_once_even_when_the_buffer_is_full() {
    let config = Config {
        write_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    let (mut server, _peer) = server_with_a_client_that_never_reads(config).await;
    let message = Message::Binary(vec![0xab; 8 * 1024].into());
    tokio::time::pause();
    fill(&mut server, &message, 1 << 20).await;
    let session = server.session();
    let mut blocked = {
        let (session, message) = (session.clone(), message.clone());
        tokio::spawn(async move { session.send(message).await })
    };
    assert!(stays_pending(Duration::from_secs(1), &mut blocked).await);

    // The Close is stuck behind the full buffer, but no send may wait for room it could
    // never use: the one already waiting and any later one fail now.
    session.close(CloseCode::NORMAL, "").unwrap();
    let start = Instant::now();
    let result = within("the waiting send", blocked).await.unwrap();
    assert!(is_send_error(&result), "{result:?}");
    let result = within("a later send", session.send(message.clone())).await;
    assert!(is_send_error(&result), "{result:?}");
    let result = within("a later send", server.send(message.clone())).await;
    assert!(is_send_error(&result), "{result:?}");
    let result = session.try_send(message);
    assert!(is_send_error(&result), "{result:?}");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn a_waiting_send_fails_at_once_when_the_peer_closes() {
    let config = Config {
        write_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    let (mut server, mut peer) = server_with_a_client_that_never_reads(config).await;
    let message = Message::Binary(vec![0xab; 8 * 1024].into());
    tokio::time::pause();
    fill(&mut server, &message, 1 << 20).await;
    let mut blocked = {
        let (session, message) = (server.session(), message.clone());
        tokio::spawn(async move { session.send(message).await })
    };
    assert!(stays_pending(Duration::from_secs(1), &mut blocked).await);

    let start = Instant::now();
    peer.send_close(CloseCode::NORMAL, "bye").await;
    // The waiting send fails as soon as the peer's Close is read.
    let result = within("the waiting send", blocked).await.unwrap();
    assert!(is_send_error(&result), "{result:?}");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn a_peer_that_never_reads_cannot_keep_a_closed_session_alive() {
    let mut config = Config {
        write_buffer_high_water: 64 * 1024,
        linger: Duration::from_secs(2),
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_secs(5);
    let (mut server, mut peer) = server_with_a_client_that_never_reads(config).await;
    let message = Message::Binary(vec![0xab; 8 * 1024].into());
    tokio::time::pause();
    fill(&mut server, &message, 1 << 20).await;

    // The peer's Close makes the server CLOSED at once (it replies and closes TCP), but
    // the reply sits behind data the peer never reads.
    let start = Instant::now();
    peer.send_close(CloseCode::NORMAL, "bye").await;
    let info = within("the session's end", server.session().closed()).await;
    assert_eq!(info.code, CloseCode::NORMAL);
    assert_eq!(server.state(), State::Closed);
    // Writing what is left gets one close timeout, then the transport is dropped.
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(5), "{waited:?}");
    assert!(waited <= Duration::from_secs(7), "{waited:?}");
}

#[tokio::test]
async fn closing_in_front_of_a_peer_that_never_reads_ends_in_bounded_time() {
    let mut config = Config {
        write_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_secs(3);
    let (mut server, _peer) = server_with_a_client_that_never_reads(config).await;
    let message = Message::Binary(vec![0xab; 8 * 1024].into());
    tokio::time::pause();
    fill(&mut server, &message, 1 << 20).await;

    // Our Close cannot even be written: the close timeout fails the session, and what is
    // left to write gets one more close timeout before the transport is dropped.
    let start = Instant::now();
    let info = within("the close", server.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert_eq!(info.error, Some(sockeye_proto::Error::CloseTimeout));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    // Two close timeouts, give or take the timer's millisecond ticks.
    assert!(waited <= Duration::from_millis(6_100), "{waited:?}");
}

// ----- Nagle's algorithm -----

/// A second descriptor of `stream`'s socket, to read its options once the stream itself
/// has been handed over.
#[cfg(unix)]
fn socket_of(stream: &tokio::net::TcpStream) -> std::net::TcpStream {
    use std::os::fd::AsFd;
    std::net::TcpStream::from(stream.as_fd().try_clone_to_owned().unwrap())
}

#[cfg(unix)]
#[tokio::test]
async fn tcp_streams_handed_in_get_tcp_nodelay() {
    // Through a handshake: `accept` and `connect_on`.
    let (listener, addr) = listener().await;
    let client_tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (server_tcp, _) = listener.accept().await.unwrap();
    let (client_socket, server_socket) = (socket_of(&client_tcp), socket_of(&server_tcp));
    // The sockets start with Nagle's algorithm on, as the system makes them.
    assert!(!client_socket.nodelay().unwrap());
    assert!(!server_socket.nodelay().unwrap());
    let (client_builder, server_builder, url) =
        (ClientBuilder::new(), ServerBuilder::new(), url(addr));
    let (client, server) = within("the handshake", async {
        tokio::join!(
            client_builder.connect_on(client_tcp, &url),
            server_builder.accept(server_tcp)
        )
    })
    .await;
    let (_client, _server) = (client.unwrap(), server.unwrap());
    assert!(client_socket.nodelay().unwrap());
    assert!(server_socket.nodelay().unwrap());

    // After a handshake made elsewhere.
    let client_tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (server_tcp, _) = listener.accept().await.unwrap();
    let (client_socket, server_socket) = (socket_of(&client_tcp), socket_of(&server_tcp));
    let _client = ClientBuilder::new().after_handshake(client_tcp);
    let _server = ServerBuilder::new().after_handshake(server_tcp);
    assert!(client_socket.nodelay().unwrap());
    assert!(server_socket.nodelay().unwrap());
}

#[tokio::test]
async fn batches_of_small_messages_are_not_held_back_for_the_peers_delayed_ack() {
    // The server sends five small messages, then waits for the client's answer, which
    // comes once all five arrived. With Nagle's algorithm on the accepted socket, the
    // second message would wait for the ACK of the first, which the client delays (40 ms
    // on Linux) having nothing to send: 25 rounds would take a second or more.
    const ROUNDS: usize = 25;
    let (mut client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let start = Instant::now();
    for round in 0..ROUNDS {
        for i in 0..5 {
            server.send(format!("{round}.{i}")).await.unwrap();
        }
        for i in 0..5 {
            let message = within("a message", client.next()).await.unwrap().unwrap();
            assert_eq!(message, Message::Text(format!("{round}.{i}")));
        }
        client.send("next").await.unwrap();
        let answer = within("the answer", server.next()).await.unwrap().unwrap();
        assert_eq!(answer, Message::Text("next".into()));
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(500),
        "{ROUNDS} rounds took {elapsed:?}"
    );
}

// ----- messages larger than a frame may be -----

#[tokio::test]
async fn a_message_over_the_peers_frame_limit_but_within_its_message_limit_arrives() {
    // Default settings on both sides: frames up to 16 MiB and messages up to 64 MiB are
    // accepted. A 20 MiB message must go out in several frames (RFC 6455 5.4) to arrive,
    // both ways: the echo is as long.
    let (mut client, mut server) = ws_pair(ClientBuilder::new(), ServerBuilder::new()).await;
    let message = Message::Binary(
        (0..20 << 20)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into(),
    );
    client.send(message.clone()).await.unwrap();
    let received = within("the message", server.next()).await.unwrap().unwrap();
    assert!(received == message, "the message differs");
    server.send(received).await.unwrap();
    let echoed = within("the echo", client.next()).await.unwrap().unwrap();
    assert!(echoed == message, "the echo differs");
    let info = within("the close", client.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
}

#[tokio::test]
async fn the_client_builder_sets_the_largest_frame_sent() {
    // A server that takes frames of 1 KiB at most: a client sending 4 KiB messages in
    // frames of 1 KiB reaches it, one sending them whole fails with 1009.
    let mut config = Config::default();
    config.protocol.max_frame_size = Some(1024);
    let message = Message::Binary(vec![7u8; 4096].into());
    for (frame, fits) in [(Some(1024), true), (None, false)] {
        let client = ClientBuilder::new().max_send_frame_size(frame);
        let (mut client, mut server) =
            ws_pair(client, ServerBuilder::new().config(config.clone())).await;
        client.send(message.clone()).await.unwrap();
        let received = within("the message", server.next()).await;
        if fits {
            assert_eq!(received.unwrap().unwrap(), message);
        } else {
            assert!(received.is_none_or(|r| r.is_err()), "{frame:?}");
            let info = within("the outcome", client.session().closed()).await;
            assert_eq!(info.code, CloseCode::MESSAGE_TOO_BIG, "{info:?}");
        }
    }
}

// ----- a message made piece by piece -----

#[tokio::test]
async fn a_message_made_piece_by_piece_goes_out_in_fragments_and_arrives_whole() {
    // With permessage-deflate agreed: such a message goes out uncompressed, which the
    // peer takes as well.
    let (mut client, server) = ws_pair(
        ClientBuilder::new().deflate(true),
        ServerBuilder::new().deflate(true),
    )
    .await;
    assert!(client.deflate().is_some());
    client.send_fragment("[1,", false).await.unwrap();
    // Any handle of the session continues it.
    client.session().send_fragment("2,", false).await.unwrap();
    // Another data message cannot start before the last part (RFC 6455 5.4): refused,
    // nothing queued, the session open.
    let refused = client.send("whole").await;
    assert!(
        matches!(refused, Err(Error::Send(SendError::UnfinishedMessage))),
        "{refused:?}"
    );
    let refused = client.send_fragment(vec![0u8], true).await;
    assert!(
        matches!(refused, Err(Error::Send(SendError::UnfinishedMessage))),
        "{refused:?}"
    );
    assert_eq!(client.state(), State::Open);
    client.send_fragment("3]", true).await.unwrap();
    client.send("whole").await.unwrap();

    // The server's sending half streams 1 MB in 64 KB parts.
    let (mut tx, mut rx) = server.split();
    let part: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    for i in 0..16 {
        tx.send_fragment(part.clone(), i == 15).await.unwrap();
    }
    assert_eq!(
        within("the parts", rx.next()).await.unwrap().unwrap(),
        Message::Text("[1,2,3]".into())
    );
    assert_eq!(
        within("the next message", rx.next())
            .await
            .unwrap()
            .unwrap(),
        Message::Text("whole".into())
    );
    let Message::Binary(whole) = within("the 1 MB", client.next()).await.unwrap().unwrap() else {
        panic!("not binary");
    };
    assert_eq!(whole.len(), 16 * part.len());
    assert!(whole.chunks(part.len()).all(|chunk| chunk == part));
}

#[tokio::test]
async fn the_parts_of_a_message_are_continuation_frames_on_the_wire() {
    let (mut ws, mut peer) = server_with_raw_client().await;
    ws.send_fragment("ab", false).await.unwrap();
    ws.send(Message::Ping("p".into())).await.unwrap();
    ws.send_fragment("", false).await.unwrap();
    ws.send_fragment("cd", true).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let frame = peer.expect_frame().await;
        seen.push((frame.fin, frame.opcode, frame.payload));
    }
    assert_eq!(
        seen,
        [
            (false, OpCode::Text, b"ab".to_vec()),
            (true, OpCode::Ping, b"p".to_vec()),
            (false, OpCode::Continuation, Vec::new()),
            (true, OpCode::Continuation, b"cd".to_vec()),
        ]
    );
}
