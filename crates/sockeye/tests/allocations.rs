//! Once a connection has exchanged its first messages, echoing small messages allocates
//! nothing per message, on the server's side or the client's: the receive buffer of a
//! small frame is the storage of the last one, the output buffer is kept and written in
//! place, and the vectored write's slices live on the stack. Counted with dhat's heap
//! statistics over the whole process (server, client and runtime).

use std::time::Duration;

use bytes::Bytes;
use sockeye::{Message, ServerBuilder};
use tokio::time::timeout;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const LIMIT: Duration = Duration::from_secs(10);
const WARM_UP: usize = 20;
const ECHOES: usize = 1_000;

/// Heap blocks allocated over `ECHOES` echoes of `payload`, after `WARM_UP` of them.
async fn blocks_per_echoes(ws: &mut sockeye::WebSocket, payload: &'static [u8]) -> u64 {
    let message = Message::Binary(Bytes::from_static(payload));
    let mut echo = async || {
        ws.send(message.clone()).await.unwrap();
        let echoed = timeout(LIMIT, ws.recv()).await.unwrap().unwrap().unwrap();
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
    let server = ServerBuilder::new().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    let (mut ws, _) = sockeye::connect(&format!("ws://{addr}/")).await.unwrap();

    static SMALL: [u8; 20] = [7; 20];
    static KIB: [u8; 1024] = [9; 1024];
    for payload in [&SMALL[..], &KIB[..]] {
        let blocks = blocks_per_echoes(&mut ws, payload).await;
        assert_eq!(
            blocks,
            0,
            "{blocks} heap blocks over {ECHOES} echoes of {} bytes",
            payload.len()
        );
    }
}
