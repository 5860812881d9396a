//! Hostile peers over real loopback sockets, each next to a well-behaved client that keeps
//! echoing: what the server does about the attacker, and that the others do not notice.
//! A Ping flood and a sender that never read; an application send over the hard output
//! bound; connections beyond `max_connections`; an idle peer; resets (RST) mid-frame,
//! mid-handshake and mid-close; a slowloris handshake; a frame header claiming a huge
//! length; a server that answers our Close but never closes TCP; two hundred sessions
//! closing at once at shutdown. See `docs/robustness.md`.

mod common;

use std::time::Duration;

use common::{
    Bystander, EchoServer, RawPeer, serve_echo, small_buffer_listener, until, url, within,
};
use sockeye::{CloseCode, Config, Error, Initiator, Message, ServerBuilder, State};
use sockeye_proto::frame::OpCode;
use sockeye_proto::{HandshakeError, SendError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

// ----- the hard bound on output -----

#[tokio::test]
async fn a_ping_flood_from_a_peer_that_never_reads_is_failed_with_1008_at_the_output_bound() {
    let max = 256 * 1024;
    let mut config = Config::default();
    config.protocol.max_write_buffer = max;
    // Small kernel buffers on both ends, so that what the kernel absorbs is small next to
    // the bound.
    let (listener, addr) = small_buffer_listener(4096);
    let (_server, mut ended) = serve_echo(listener, ServerBuilder::new().config(config));
    let mut bystander = Bystander::connect(addr).await;
    bystander.round_trip().await;
    let mut bystander = bystander.keep_echoing();
    bystander.wait_for(3).await;

    // The attacker sends Pings as fast as it can and reads nothing.
    let mut peer = RawPeer::connect_with_small_buffers(addr, 4096).await;
    let mut batch = Vec::new();
    for _ in 0..64 {
        batch.extend(peer.encode(true, OpCode::Ping, &[0x5a; 125]));
    }
    let mut flooded = 0usize;
    let ended_flood = loop {
        assert!(
            flooded < 64 << 20,
            "no limit after {flooded} bytes of Pings"
        );
        tokio::select! {
            biased;
            ended = ended.recv() => break ended.unwrap(),
            () = peer.write_raw(&batch) => flooded += batch.len(),
        }
    };

    // The attacker's session failed with 1008 once its Pongs reached the bound.
    let Some(Error::Failed(sockeye_proto::Error::WriteBufferFull { queued, max: limit })) =
        ended_flood.error
    else {
        panic!("{:?}", ended_flood.error);
    };
    assert_eq!(limit, max);
    assert!(queued <= max && queued + 127 > max, "{queued}");
    let info = within("the attacker's outcome", async {
        // Reading lets the server flush what it holds; it then closes TCP.
        let mut pong_bytes = 0usize;
        loop {
            let frame = peer.expect_frame().await;
            if frame.opcode == OpCode::Close {
                let (code, reason) = frame.close_code_and_reason();
                assert_eq!(code, Some(1008));
                assert!(reason.contains("limit"), "{reason}");
                break;
            }
            assert_eq!(frame.opcode, OpCode::Pong);
            pong_bytes += 2 + frame.payload.len();
        }
        // Everything the server held for this peer, the kernel's share included, stayed
        // near the bound: it stopped answering instead of growing.
        assert!(pong_bytes + 127 > max, "{pong_bytes}");
        assert!(pong_bytes <= max + 64 * 1024, "{pong_bytes}");
        peer.expect_eof().await;
        drop(peer);
        ended_flood.session.closed().await
    })
    .await;
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(
        info.sent.and_then(|f| f.code),
        Some(CloseCode::POLICY_VIOLATION)
    );
    assert!(!info.clean);

    // The bystander echoed throughout and still does.
    let before = bystander.round_trips();
    bystander.wait_for(before + 3).await;
    bystander.stop().await.finish().await;
}

#[tokio::test]
async fn a_send_that_would_pass_the_hard_bound_fails_and_the_session_stays_open() {
    let mut config = Config {
        write_buffer_high_water: 64 * 1024,
        ..Config::default()
    };
    config.protocol.max_write_buffer = 256 * 1024;
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

    // Over the hard bound even with nothing queued: refused at once, not queued.
    let too_big = Message::Binary(vec![1; 300 * 1024].into());
    match server.send(too_big.clone()).await {
        Err(Error::Send(SendError::WriteBufferFull { size, queued, max })) => {
            assert_eq!((size, queued, max), (300 * 1024 + 10, 0, 256 * 1024));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        server.session().try_send(too_big),
        Err(Error::Send(SendError::WriteBufferFull { .. }))
    ));
    // Over the soft mark but under the hard bound: sent.
    let big = Message::Binary(vec![2; 200 * 1024].into());
    within("a send under the bound", server.send(big))
        .await
        .unwrap();
    assert_eq!(server.state(), State::Open);
    let frame = peer.expect_frame().await;
    assert_eq!(
        (frame.opcode, frame.payload.len()),
        (OpCode::Binary, 200 * 1024)
    );
    peer.send_frame(OpCode::Text, b"still here").await;
    let received = within("a message", server.recv()).await.unwrap().unwrap();
    assert_eq!(received, Message::Text("still here".into()));
    let info = within("the close", async {
        let closing = server.close(CloseCode::NORMAL, "");
        let answering = async {
            assert_eq!(peer.expect_close().await, (Some(1000), String::new()));
            peer.send_close(CloseCode::NORMAL, "").await;
        };
        tokio::join!(closing, answering).0
    })
    .await
    .unwrap();
    assert!(info.clean, "{info:?}");
}

// ----- max_connections -----

#[tokio::test]
async fn connections_beyond_max_connections_get_503_and_the_others_are_served() {
    let server = EchoServer::start(ServerBuilder::new().max_connections(3)).await;
    let (addr, handle) = (server.addr, server.handle.clone());
    let mut first = Bystander::connect(addr).await;
    first.round_trip().await;
    let mut second = Bystander::connect(addr).await;
    second.round_trip().await;
    // A connection still in its opening handshake holds a socket: it counts.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    until("the stalled handshake to count", || {
        handle.handshakes() == 1
    })
    .await;
    assert_eq!(handle.sessions(), 2);

    // Full: further connections are answered 503 and closed.
    for _ in 0..5 {
        let response = RawPeer::refused(addr, "Sec-WebSocket-Version: 13\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{response}"
        );
        assert!(
            response.ends_with("\r\n\r\ntoo many connections"),
            "{response}"
        );
    }
    // Our client reports the refusal as the handshake's status and body.
    match within("a refused connect", sockeye::connect(&url(addr))).await {
        Err(Error::Handshake(HandshakeError::UnexpectedStatus { status, body })) => {
            assert_eq!(status, 503);
            assert_eq!(&body[..], b"too many connections");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(handle.refused(), 6);
    assert_eq!(handle.accepted(), 3 + 6);
    assert_eq!((handle.sessions(), handle.handshakes()), (2, 1));
    // The sessions open were served throughout.
    first.round_trip().await;
    second.round_trip().await;

    // The stalled handshake goes away: there is room for one more.
    drop(stalled);
    until("the stalled handshake to end", || handle.handshakes() == 0).await;
    let mut third = Bystander::connect(addr).await;
    third.round_trip().await;
    assert_eq!(handle.sessions(), 3);
    assert_eq!(handle.refused(), 6);
    for bystander in [first, second, third] {
        bystander.finish().await;
    }
    server.shut_down().await;
}

// ----- idle peers -----

#[tokio::test]
async fn an_idle_peer_is_closed_with_1001_and_an_active_one_is_not() {
    let builder = ServerBuilder::new().idle_timeout(Duration::from_secs(5));
    let mut server = EchoServer::start(builder).await;
    let mut bystander = Bystander::connect(server.addr).await;
    // Taken before the connection opens, which arms the timer under test: the clock is
    // paused only after the handshake, and the timer runs from its own arming.
    let start = Instant::now();
    let mut idle = RawPeer::connect(server.addr).await;
    tokio::time::pause();

    // The idle peer says nothing; it answers the server's Close and waits for its EOF.
    let idle = tokio::spawn(async move {
        let close = idle.expect_close().await;
        let at = start.elapsed();
        idle.send_close(CloseCode::GOING_AWAY, "").await;
        idle.expect_eof().await;
        (close, at)
    });
    // The bystander talks every two seconds, for ten.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        bystander.round_trip().await;
    }
    let (close, at) = within("the idle peer's close", idle).await.unwrap();
    assert_eq!(close, (Some(1001), "idle timeout".into()));
    assert!(at >= Duration::from_secs(5), "{at:?}");
    assert!(at < Duration::from_secs(6), "{at:?}");
    let ended = server.next_ended().await;
    assert!(ended.error.is_none(), "{:?}", ended.error);
    let info = within("the idle session's end", ended.session.closed()).await;
    assert_eq!(info.initiator, Initiator::Local);
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert!(info.clean, "{info:?}");
    assert_eq!(server.handle.sessions(), 1);
    bystander.finish().await;
    server.shut_down().await;
}

// ----- resets -----

/// A server whose sessions outlive any reset by far unless the reset ends them: long
/// close timeout and linger.
async fn patient_server() -> EchoServer {
    let mut config = Config {
        linger: Duration::from_secs(30),
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_secs(30);
    EchoServer::start(ServerBuilder::new().config(config)).await
}

/// A bystander that has started echoing, with a few round trips done.
async fn echoing_bystander(addr: std::net::SocketAddr) -> common::Echoing {
    let mut bystander = Bystander::connect(addr).await.keep_echoing();
    bystander.wait_for(3).await;
    bystander
}

/// The bystander went on echoing after the attack, and closes cleanly.
async fn bystander_unaffected(mut bystander: common::Echoing) {
    let done = bystander.round_trips();
    bystander.wait_for(done + 3).await;
    bystander.stop().await.finish().await;
}

#[tokio::test]
async fn a_reset_in_the_middle_of_a_frame_ends_that_session_at_once_with_1006() {
    let mut server = patient_server().await;
    let bystander = echoing_bystander(server.addr).await;
    let mut peer = RawPeer::connect(server.addr).await;
    peer.send_frame(OpCode::Text, b"whole").await;
    assert_eq!(peer.expect_frame().await.payload, b"whole");
    // Half of a 1000-byte frame, then RST.
    let frame = peer.encode(true, OpCode::Binary, &[7; 1000]);
    peer.write_raw(&frame[..500]).await;
    let reset_at = Instant::now();
    peer.reset();

    let ended = server.next_ended().await;
    assert!(
        matches!(
            ended.error,
            Some(Error::Failed(sockeye_proto::Error::Transport(_)))
        ),
        "{:?}",
        ended.error
    );
    let info = within("the reset session's end", ended.session.closed()).await;
    // Neither the close timeout nor the linger (30 s each) was waited for.
    assert!(reset_at.elapsed() < Duration::from_secs(2));
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!((info.sent, info.received), (None, None));
    assert_eq!(info.initiator, Initiator::Abnormal);
    assert!(!info.clean);
    assert_eq!(server.handle.sessions(), 1);
    bystander_unaffected(bystander).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_reset_in_the_middle_of_the_handshake_leaves_nothing_behind() {
    let mut server = patient_server().await;
    let bystander = echoing_bystander(server.addr).await;
    let handle = server.handle.clone();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = common::handshake_request(server.addr);
        stream
            .write_all(&request.as_bytes()[..request.len() / 2])
            .await
            .unwrap();
        common::reset(stream);
    }
    until("the handshakes to end", || {
        handle.accepted() == 11 && handle.handshakes() == 0
    })
    .await;
    // No session was made, so the handler never ran.
    assert_eq!(handle.sessions(), 1);
    assert!(server.ended.try_recv().is_err());
    bystander_unaffected(bystander).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_reset_in_the_middle_of_the_closing_handshake_ends_it_at_once_with_1006() {
    let mut server = patient_server().await;
    let bystander = echoing_bystander(server.addr).await;
    let mut peer = RawPeer::connect(server.addr).await;
    // The server starts the closing handshake; the peer reads our Close and resets
    // instead of answering it.
    peer.send_frame(OpCode::Text, common::PLEASE_CLOSE.as_bytes())
        .await;
    assert_eq!(
        peer.expect_close().await,
        (Some(1000), common::AS_ASKED.into())
    );
    let reset_at = Instant::now();
    peer.reset();

    let ended = server.next_ended().await;
    let info = within("the session's end", ended.session.closed()).await;
    // The close timeout (30 s) was not waited for: the reset ended it.
    assert!(reset_at.elapsed() < Duration::from_secs(2));
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert_eq!(info.initiator, Initiator::Local);
    assert_eq!(
        info.sent.and_then(|f| f.code),
        Some(CloseCode::NORMAL),
        "our Close was sent"
    );
    assert_eq!(info.received, None);
    assert!(
        matches!(info.error, Some(sockeye_proto::Error::Transport(_))),
        "{:?}",
        info.error
    );
    assert!(!info.clean);
    assert_eq!(
        ended.session.state_history().last_chunk(),
        Some(&[State::Open, common::CLOSING_SENT, State::Closed])
    );
    assert_eq!(server.handle.sessions(), 1);
    bystander_unaffected(bystander).await;
    server.shut_down().await;
}

// ----- slow and lying peers -----

#[tokio::test]
async fn a_slowloris_handshake_is_dropped_at_the_handshake_timeout_without_delaying_others() {
    let builder = ServerBuilder::new().handshake_timeout(Duration::from_secs(2));
    let server = EchoServer::start(builder).await;
    let (addr, handle) = (server.addr, server.handle.clone());
    // Taken before connecting: the server's accepting, which arms the handshake timeout,
    // may come before the clock is paused, and the timer runs from its own arming.
    let start = Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    tokio::time::pause();

    // One byte of a valid request per second; it would take minutes to finish.
    let slowloris = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let request = common::handshake_request(addr);
        let (mut rd, mut wr) = slow.split();
        let trickle = async {
            for byte in request.as_bytes() {
                if wr.write_all(std::slice::from_ref(byte)).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            std::future::pending::<()>().await;
        };
        let mut answer = Vec::new();
        tokio::select! {
            () = trickle => unreachable!(),
            read = rd.read_to_end(&mut answer) => {
                // The server closes without a response (or the connection is reset, if a
                // byte arrived after the server closed).
                assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
                let _ = read;
            }
        }
        start.elapsed()
    });

    // Meanwhile other clients connect and are served at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut bystanders = Vec::new();
    for _ in 0..3 {
        let mut bystander = Bystander::connect(addr).await;
        bystander.round_trip().await;
        bystanders.push(bystander);
    }
    let served_at = start.elapsed();
    assert_eq!(
        handle.handshakes(),
        1,
        "the slowloris is still in its handshake"
    );
    assert!(served_at < Duration::from_secs(2), "{served_at:?}");

    let dropped_at = within("the slowloris to be dropped", slowloris)
        .await
        .unwrap();
    assert!(dropped_at >= Duration::from_secs(2), "{dropped_at:?}");
    assert!(dropped_at < Duration::from_secs(3), "{dropped_at:?}");
    until("the handshake to end", || handle.handshakes() == 0).await;
    for mut bystander in bystanders {
        bystander.round_trip().await;
        bystander.finish().await;
    }
    server.shut_down().await;
}

#[tokio::test]
async fn a_frame_header_claiming_a_huge_length_is_refused_with_1009_from_the_header() {
    let mut server = patient_server().await;
    let bystander = echoing_bystander(server.addr).await;
    let mut peer = RawPeer::connect(server.addr).await;
    // FIN + Binary, masked, 64-bit length 2^62 (valid: the top bit is clear), a mask key
    // and no payload: the server can only refuse it from the header.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let sent_at = Instant::now();
    peer.write_raw(&header).await;

    let (code, reason) = peer.expect_close().await;
    assert_eq!(code, Some(1009));
    assert!(reason.contains("exceeds the limit"), "{reason}");
    peer.expect_eof().await;
    assert!(sent_at.elapsed() < Duration::from_secs(2));
    let ended = server.next_ended().await;
    assert!(
        matches!(
            ended.error,
            Some(Error::Failed(sockeye_proto::Error::Protocol(
                sockeye_proto::ProtocolError::FrameTooLarge {
                    size: 0x4000_0000_0000_0000,
                    max: 0x100_0000,
                }
            )))
        ),
        "{:?}",
        ended.error
    );
    drop(peer);
    let info = within("the session's end", ended.session.closed()).await;
    assert_eq!(
        info.sent.and_then(|f| f.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
    bystander_unaffected(bystander).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_peer_that_sends_without_reading_meets_bounded_buffers_and_stays_open() {
    let high_water = 64 * 1024;
    let message_size = 16 * 1024;
    let config = Config {
        write_buffer_high_water: high_water,
        read_buffer_high_water: high_water,
        ..Config::default()
    };
    let server = EchoServer::start(ServerBuilder::new().config(config)).await;
    let handle = server.handle.clone();
    let mut bystander = Bystander::connect(server.addr).await;
    bystander.round_trip().await;
    let mut peer = RawPeer::connect_with_small_buffers(server.addr, 4096).await;
    let frame = peer.encode(true, OpCode::Binary, &vec![3; message_size]);

    // The peer writes messages until its writes block (for a whole second), reading
    // nothing: the echoes back up, the handler waits to send, the session stops reading.
    let mut written = 0usize;
    let mut largest = 0usize;
    loop {
        assert!(
            written < 64 << 20,
            "the server kept reading: {written} bytes"
        );
        let write = peer.write_raw(&frame);
        if common::stays_pending(Duration::from_secs(1), write).await {
            break;
        }
        written += frame.len();
        largest = largest.max(handle.write_buffers().into_iter().max().unwrap());
    }
    // Whatever the kernel holds, the session's own output stayed under the soft bound
    // plus one message: nothing grows with what the peer sends.
    let bound = high_water + message_size + 4;
    assert!(largest <= bound, "{largest}");
    let buffers = handle.write_buffers();
    assert!(buffers.iter().all(|&b| b <= bound), "{buffers:?}");
    // The peer sent far more than that: the rest waits in the kernel, not in the session.
    assert!(written > 2 * bound, "{written}");
    // It is a slow reader, not a violation: its session stays open, and so does the
    // bystander's, served as before.
    assert_eq!(handle.sessions(), 2);
    bystander.round_trip().await;
    bystander.finish().await;
    peer.reset();
    server.shut_down().await;
}

// ----- our client against a hostile server -----

#[tokio::test]
async fn client_closes_tcp_itself_when_the_server_answers_close_but_never_closes_tcp() {
    let (listener, addr) = common::listener().await;
    let mut config = Config {
        linger: Duration::from_secs(1),
        ..Config::default()
    };
    config.protocol.close_timeout = Duration::from_secs(3);
    let client = sockeye::ClientBuilder::new().config(config);
    let url = url(addr);
    let (client, peer) = tokio::join!(client.connect(&url), RawPeer::accept(&listener, b""));
    let (mut client, _) = client.unwrap();
    let mut peer = peer;
    peer.write_raw(&RawPeer::server_frame(OpCode::Text, b"welcome"))
        .await;
    let welcome = within("a message", client.recv()).await.unwrap().unwrap();
    assert_eq!(welcome, Message::Text("welcome".into()));
    tokio::time::pause();

    let start = Instant::now();
    let (info, eof_at) = tokio::join!(client.close(CloseCode::NORMAL, "done"), async {
        // The server answers the Close, then keeps the connection open.
        assert_eq!(peer.expect_close().await, (Some(1000), "done".into()));
        peer.send_close(CloseCode::NORMAL, "").await;
        peer.expect_eof().await;
        start.elapsed()
    });
    let info = info.unwrap();
    // 7.1.1: the client waits for the server's TCP close for the close timeout only,
    // then closes its side and lingers (1 s) for the server's, and drops the socket.
    assert!(eof_at >= Duration::from_secs(3), "{eof_at:?}");
    assert!(eof_at < Duration::from_secs(4), "{eof_at:?}");
    let closed_at = start.elapsed();
    assert!(closed_at >= Duration::from_secs(4), "{closed_at:?}");
    assert!(closed_at < Duration::from_secs(5), "{closed_at:?}");
    assert_eq!(info.code, CloseCode::NORMAL);
    assert_eq!(info.initiator, Initiator::Local);
    assert_eq!(client.session().peer_closed_first(), Some(false));
    assert_eq!(
        client.session().state_history().last_chunk(),
        Some(&[
            State::Open,
            common::CLOSING_SENT,
            common::CLOSING_BOTH,
            State::Closed
        ])
    );
}

// ----- many sessions at shutdown -----

#[tokio::test]
async fn two_hundred_sessions_closing_at_once_at_shutdown_all_see_1001() {
    let server = EchoServer::start(ServerBuilder::new()).await;
    let handle = server.handle.clone();
    let mut clients = Vec::new();
    for i in 0..200 {
        let (mut ws, _) = within("connect", sockeye::connect(&url(server.addr)))
            .await
            .unwrap();
        ws.send(format!("hello {i}")).await.unwrap();
        within("the echo", ws.recv()).await.unwrap().unwrap();
        clients.push(ws);
    }
    assert_eq!(handle.sessions(), 200);

    server.shut_down().await;
    assert_eq!(handle.sessions(), 0);
    assert_eq!(handle.handshakes(), 0);
    for mut ws in clients {
        assert!(within("the end of the stream", ws.recv()).await.is_none());
        let info = within("the outcome", ws.session().closed()).await;
        assert_eq!(info.code, CloseCode::GOING_AWAY);
        assert_eq!(info.reason, "server shutting down");
        assert_eq!(info.initiator, Initiator::Remote);
        assert!(info.clean, "{info:?}");
    }
}
