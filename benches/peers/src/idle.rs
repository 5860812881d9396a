//! Idle connections, for the memory figure: a plain WebSocket handshake on raw TCP, then
//! nothing, so that the client side costs the server nothing but the connection itself.

use std::net::SocketAddr;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Handshakes in progress at once.
const CONCURRENCY: usize = 200;

/// Opens `count` WebSocket connections to `addr` and returns their sockets, every one past
/// a `101 Switching Protocols` response.
pub(crate) async fn open(addr: SocketAddr, count: usize) -> std::io::Result<Vec<TcpStream>> {
    let opened: Vec<std::io::Result<TcpStream>> = futures_util::stream::iter(0..count)
        .map(|_| handshake(addr))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    opened.into_iter().collect()
}

async fn handshake(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    // The key of RFC 6455's example: any 16 bytes in base64 will do, and the server's
    // Sec-WebSocket-Accept is not checked here.
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the server closed during the handshake",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        let status = String::from_utf8_lossy(&head[..head.len().min(40)]).into_owned();
        return Err(std::io::Error::other(format!(
            "handshake refused: {status}"
        )));
    }
    Ok(stream)
}
