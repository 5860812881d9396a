//! Once a connection has exchanged its first messages, echoing small messages allocates
//! nothing per message, on the server's side or the client's: the receive buffer of a
//! small frame is the storage of the last one, the output buffer is kept and written in
//! place, and the vectored write's slices live on the stack. Counted with dhat's heap
//! statistics over the whole process (server, client and runtime).
//!
//! A message whose storage is still held when the next frame arrives (its echo not yet
//! written, on a loaded machine) lets that frame take a buffer of its own: a handful of
//! blocks in a thousand echoes (4 seen with six copies of this test run at once), where
//! a buffer per message would be thousands (4,000 with the storage reuse turned off).

mod common;

use bytes::Bytes;
use common::{EchoServer, url, within};
use sockeye::{Message, ServerBuilder};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARM_UP: usize = 20;
const ECHOES: usize = 1_000;
/// Far below one block per echo; a few, for the loaded machine's occasional held message.
const AT_MOST: u64 = 20;

/// Heap blocks allocated over `ECHOES` echoes of `payload`, after `WARM_UP` of them.
async fn blocks_per_echoes(ws: &mut sockeye::WebSocket, payload: &'static [u8]) -> u64 {
    let message = Message::Binary(Bytes::from_static(payload));
    let mut echo = async || {
        ws.send(message.clone()).await.unwrap();
        let echoed = within("an echo", ws.recv()).await.unwrap().unwrap();
        assert_eq!(echoed.as_bytes(), payload);
    };
    for _ in 0..WARM_UP {
        echo().await;
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..ECHOES {
        echo().await;
    }
    dhat::HeapStats::get().total_blocks - before
}

#[tokio::test]
async fn echoing_small_messages_allocates_nothing_per_message() {
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
}
