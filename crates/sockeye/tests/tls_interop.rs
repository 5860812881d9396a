//! `wss://` against an independent implementation, tokio-tungstenite over rustls: our
//! client against its server, its client against our server, echo and the closing
//! handshake, with certificates made at test time.
#![cfg(feature = "tls")]

#[path = "tls/pki.rs"]
mod pki;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pki::Pki;
use sockeye::{ClientBuilder, CloseCode, CloseFrame, Initiator, Message, ServerBuilder};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode as TheirCode};

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn our_client_against_a_tungstenite_wss_server() {
    let pki = Pki::new(&["localhost"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
    let acceptor = TlsAcceptor::from(pki.server_config());
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
        let mut close = None;
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                tungstenite::Message::Close(frame) => close = frame,
                data => ws.send(data).await.unwrap(),
            }
        }
        close
    });

    let (mut ws, response) = bounded(
        ClientBuilder::new()
            .tls_root_pem(&pki.ca_path)
            .unwrap()
            .connect(&url),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 101);
    for i in 0..20 {
        ws.send(Message::Text(format!("hello {i}"))).await.unwrap();
        assert_eq!(
            bounded(ws.next()).await.unwrap().unwrap(),
            Message::Text(format!("hello {i}"))
        );
    }
    let big: Vec<u8> = (0..(256 * 1024)).map(|i| (i % 253) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(
        bounded(ws.next()).await.unwrap().unwrap(),
        Message::Binary(big.into())
    );

    let info = bounded(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(info.initiator, Initiator::Local);
    assert_eq!(info.code, CloseCode::NORMAL);
    assert_eq!(
        info.sent,
        Some(CloseFrame::new(CloseCode::NORMAL, "bye").unwrap())
    );
    let theirs = bounded(peer)
        .await
        .unwrap()
        .expect("the server saw our Close");
    assert_eq!(
        (theirs.code, theirs.reason.as_str()),
        (TheirCode::Normal, "bye")
    );
}

#[tokio::test]
async fn tungstenite_client_against_our_wss_server() {
    let pki = Pki::new(&["localhost"]);
    let server = ServerBuilder::new()
        .tls_pem(&pki.cert_path, &pki.key_path)
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().unwrap().port());
    let (tx, mut outcomes) = mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |mut ws| {
        let tx = tx.clone();
        async move {
            while let Some(Ok(message)) = ws.next().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            let session = ws.session();
            let _ = tx.send((session.closed().await, session.state_history()));
        }
    }));

    let connector = tokio_tungstenite::Connector::Rustls(pki.client_config());
    let (mut peer, response) = bounded(tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        None,
        false,
        Some(connector),
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        let text = format!("hello {i}");
        peer.send(tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let echoed = bounded(peer.next()).await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    let big: Vec<u8> = (0..(256 * 1024)).map(|i| (i % 253) as u8).collect();
    peer.send(tungstenite::Message::binary(big.clone()))
        .await
        .unwrap();
    let echoed = bounded(peer.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), big.as_slice());

    bounded(peer.close(Some(tungstenite::protocol::CloseFrame {
        code: TheirCode::Away,
        reason: "leaving".into(),
    })))
    .await
    .unwrap();
    // Our reply ends their stream.
    let mut reply = None;
    while let Some(message) = bounded(peer.next()).await {
        if let Ok(tungstenite::Message::Close(frame)) = message {
            reply = frame;
        }
    }
    let reply = reply.expect("our server replied with a Close frame");
    assert_eq!(reply.code, TheirCode::Away);
    // Their stream ended at our TCP close; dropping it closes their side too.
    drop(peer);

    let (info, history) = bounded(outcomes.recv()).await.unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(info.initiator, Initiator::Remote);
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::GOING_AWAY, "leaving")
    );
    assert_eq!(history.last(), Some(&sockeye::State::Closed));
}
