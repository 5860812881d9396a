//! A quick end-to-end check: echo over loopback and a clean close.

mod common;

use sockeye::{CloseCode, Message};

#[tokio::test]
async fn echo_round_trip_and_clean_close() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(common::echo));
    let (mut ws, response) = sockeye::connect(&format!("ws://{addr}/")).await.unwrap();
    assert_eq!(response.status, 101);
    for i in 0..100 {
        ws.send(Message::Text(format!("hello {i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text(format!("hello {i}"))
        );
    }
    let big = vec![7u8; 1 << 20];
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(big.into())
    );
    let info = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(info.code, CloseCode::NORMAL);
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn echo_of_a_message_sent_just_before_close_still_arrives() {
    // The message and our Close leave in one write; the server's echo loop answers the
    // message before it takes the Close (its reply waits, RFC 6455 5.5.1), and our
    // client delivers the echo that arrived while it was closing (invariant 4).
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws| async move {
        while let Some(Ok(message)) = ws.next().await {
            ws.send(message).await.unwrap();
        }
    }));
    for round in 0..20 {
        let (mut ws, _) = sockeye::connect(&format!("ws://{addr}/")).await.unwrap();
        ws.send(Message::Text(format!("last words {round}")))
            .await
            .unwrap();
        let info = ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(info.clean, "{info:?}");
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text(format!("last words {round}"))
        );
        assert!(ws.next().await.is_none());
    }
}
