//! Once a connection has exchanged its first messages, echoing allocates nothing per
//! message. Small messages, on the server's side and the client's: the receive buffer of a
//! small frame is the storage of the last one, the output buffer is kept and written in
//! place, and the vectored write's slices live on the stack. Large messages (16 and
//! 64 KiB), on the server's side: each frame is read into the storage of the last one and
//! leaves with its message, and its echo is written from it (the client here is a raw one
//! that sends one pre-masked frame and reads into one buffer, because our own client
//! masks a large frame into an output buffer of its own). Counted with dhat's heap
//! statistics over the whole process (server, client and runtime).
//!
//! A message whose storage is still held when the next frame arrives (its echo not yet
//! written, on a loaded machine) lets that frame take a buffer of its own: a handful of
//! blocks in a thousand echoes (4 seen with six copies of this test run at once), where
//! a buffer per message would be thousands (4,000 with the storage reuse turned off).

mod common;

use bytes::Bytes;
use common::{EchoServer, RawPeer, url, within};
use sockeye::{Message, ServerBuilder};
use sockeye_proto::frame::OpCode;
use tokio::io::AsyncReadExt;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARM_UP: usize = 20;
const ECHOES: usize = 1_000;
/// Far below one block per echo; a few, for the loaded machine's occasional held message.
const AT_MOST: u64 = 20;

/// Heap blocks allocated over `echoes` calls of `echo`, after `WARM_UP` of them.
async fn blocks_over(echoes: usize, mut echo: impl AsyncFnMut()) -> u64 {
    for _ in 0..WARM_UP {
        echo().await;
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..echoes {
        echo().await;
    }
    dhat::HeapStats::get().total_blocks - before
}

/// Heap blocks allocated over `ECHOES` echoes of `payload` by our own client.
async fn blocks_per_echoes(ws: &mut sockeye::WebSocket, payload: &'static [u8]) -> u64 {
    let message = Message::Binary(Bytes::from_static(payload));
    blocks_over(ECHOES, async || {
        ws.send(message.clone()).await.unwrap();
        let echoed = within("an echo", ws.recv()).await.unwrap().unwrap();
        assert_eq!(echoed.as_bytes(), payload);
    })
    .await
}

/// Heap blocks allocated over `echoes` echoes of `payload` by a raw client, which sends
/// the same pre-masked frame each time and reads each echo into the same buffer: what is
/// counted is the server's.
async fn server_blocks_per_echoes(peer: &mut RawPeer, payload: &[u8], echoes: usize) -> u64 {
    let frame = peer.encode(true, OpCode::Binary, payload);
    let expected = RawPeer::server_frame(OpCode::Binary, payload);
    let mut echoed = vec![0u8; expected.len()];
    blocks_over(echoes, async || {
        peer.write_raw(&frame).await;
        within("an echo", peer.stream.read_exact(&mut echoed))
            .await
            .unwrap();
        assert!(echoed == expected, "the echo differs from the message");
    })
    .await
}

#[tokio::test]
async fn echoing_allocates_nothing_per_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // `Server::serve` with a handler that echoes through `recv()`.
    let server = EchoServer::start(ServerBuilder::new()).await;
    let (mut ws, _) = sockeye::connect(&url(server.addr)).await.unwrap();

    static SMALL: [u8; 20] = [7; 20];
    static KIB: [u8; 1024] = [9; 1024];
    for payload in [&SMALL[..], &KIB[..]] {
        let blocks = blocks_per_echoes(&mut ws, payload).await;
        assert!(
            blocks <= AT_MOST,
            "{blocks} heap blocks over {ECHOES} echoes of {} bytes",
            payload.len()
        );
    }

    let mut peer = RawPeer::connect(server.addr).await;
    let large: Vec<(Vec<u8>, usize)> = vec![
        ((0..16 * 1024).map(|i| (i % 251) as u8).collect(), ECHOES),
        (
            (0..64 * 1024).map(|i| (i % 241) as u8).collect(),
            ECHOES / 4,
        ),
    ];
    for (payload, echoes) in &large {
        let blocks = server_blocks_per_echoes(&mut peer, payload, *echoes).await;
        assert!(
            blocks <= AT_MOST,
            "{blocks} heap blocks over {echoes} echoes of {} bytes",
            payload.len()
        );
    }
}
