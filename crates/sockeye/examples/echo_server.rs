//! An echo server in the Stream + Sink style: every message goes back to its sender.
//!
//! ```sh
//! cargo run -p sockeye --example echo_server              # ws://127.0.0.1:9001
//! cargo run -p sockeye --example echo_server -- 0.0.0.0:9001
//! ```

use futures_util::StreamExt;

#[tokio::main]
async fn main() -> sockeye::Result<()> {
    let addr = std::env::args().nth(1);
    let server = sockeye::Server::bind(addr.as_deref().unwrap_or("127.0.0.1:9001")).await?;
    println!("echo server on ws://{}", server.local_addr()?);

    // Ctrl-C: stop accepting, close every session with 1001 and return from `serve`.
    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.shutdown();
    });

    server
        .serve(|ws| async move {
            let session = ws.session();
            // The receiving half is a Stream of messages and the sending half a Sink:
            // forward one into the other until the client closes. Forwarding fails if the
            // session fails or is closing; either way the outcome is in the CloseInfo.
            let (sink, stream) = ws.split();
            let _ = stream.forward(sink).await;
            println!("session closed: {}", session.closed().await);
        })
        .await
}
