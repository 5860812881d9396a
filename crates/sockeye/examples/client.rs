//! A client: connects, sends a few messages, prints the replies, sends one message in
//! parts, measures the round trip of a Ping, closes and prints how the session ended.
//!
//! ```sh
//! cargo run -p sockeye --example echo_server &
//! cargo run -p sockeye --example client -- ws://127.0.0.1:9001
//! ```

use sockeye::{CloseCode, Message};

#[tokio::main(flavor = "current_thread")]
async fn main() -> sockeye::Result<()> {
    let url = std::env::args().nth(1);
    let url = url.as_deref().unwrap_or("ws://127.0.0.1:9001");
    let (mut ws, response) = sockeye::connect(url).await?;
    println!("connected to {url}: HTTP {}", response.status);

    let messages = [
        Message::Text("hello".into()),
        Message::Binary(vec![0x0a, 0x1b].into()),
        Message::Text("goodbye".into()),
    ];
    for message in messages {
        ws.send(message).await?;
        match ws.next().await {
            Some(reply) => println!("reply: {:?}", reply?),
            None => break, // the server closed the session
        }
    }

    // A message made piece by piece goes out in parts, as one message (RFC 6455 5.4).
    for (i, part) in ["one message, ", "sent ", "in parts"]
        .into_iter()
        .enumerate()
    {
        ws.send_fragment(part, i == 2).await?;
    }
    if let Some(reply) = ws.next().await {
        println!("reply: {:?}", reply?);
    }

    // Is the server there, and how far? A Ping, and the round trip to its Pong.
    let rtt = ws.ping().await?;
    println!("round trip: {rtt:?}");

    // The closing handshake: both Close frames, then the TCP close.
    let info = ws.close(CloseCode::NORMAL, "done").await?;
    println!("closed: {info}");
    println!(
        "  who started it: {:?}, close frame received: {:?}",
        info.initiator, info.received
    );
    Ok(())
}
