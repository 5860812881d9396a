//! Hostile peers over real loopback sockets, each next to a well-behaved client that keeps
//! echoing throughout: what the server does about the attacker, and that the others do
//! not notice. Resets (RST) mid-handshake, mid-frame and mid-close; a slowloris
//! handshake; a frame header claiming a huge length; a Ping flood and a sender that never
//! read; connection floods beyond `max_connections`; idle peers; a server that answers
//! our Close but never closes TCP; many sessions closing at once at shutdown.

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
    let mut config = Config::default();
    config.protocol.idle_timeout = Some(Duration::from_secs(5));
    let mut server = EchoServer::start(ServerBuilder::new().config(config)).await;
    let mut bystander = Bystander::connect(server.addr).await;
    let mut idle = RawPeer::connect(server.addr).await;
    tokio::time::pause();
    let start = Instant::now();

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
