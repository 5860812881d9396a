//! Interoperability with a browser: headless Chromium's WebSocket API against Sockeye's
//! server, the client most WebSocket servers exist for. `tests/interop/node/
//! browser_client.cjs` drives it through playwright-core and prints what the page sees
//! as the other script peers' JSON lines, so the shared scenarios of `interop/scripts.rs`
//! run here too, for what a page can do (no fragments, no Pings, close codes 1000 and
//! 3000-4999 only). Checked: messages of every kind and size both ways, each side closing
//! first with both sides' view of the close, permessage-deflate (which Chromium always
//! offers) accepted with default and with server-chosen parameters or declined, the
//! subprotocol our server picks from the page's list, a refused handshake, the close code
//! a page sees when our server fails the connection, a message our server sends in parts
//! with a Ping between them, and `wss://` (Chromium's TLS against rustls, with a
//! certificate made at test time, taken when Chromium is told to and refused otherwise).
//!
//! Needs what `bash scripts/test-deps.sh` installs: Node.js with playwright-core in
//! `target/interop-node`, and Chromium at `$CHROMIUM` or `/usr/bin/chromium` (Debian's
//! package `chromium`). Without them these tests fail and say so.

#[path = "interop/browser.rs"]
mod browser;
#[path = "interop/json.rs"]
mod json;
#[path = "interop/ours.rs"]
mod ours;
#[cfg(feature = "tls")]
#[path = "tls/pki.rs"]
mod pki;
#[path = "interop/scripts.rs"]
mod scripts;

use browser::{assert_page_close, browser};
use ours::{EchoServer, assert_clean_close, assorted, bounded, close_frame, pattern, text};
use scripts::{
    Seen, action, json_text, our_deflate_settings, our_server_closes_first, run_client,
    their_client_echoes_compressible,
};
use sockeye::{CloseCode, Initiator, Message, ServerBuilder};
use sockeye_proto::handshake::{Accept, Reject};

#[tokio::test]
async fn browser_exchanges_messages_with_our_server_and_closes_first() {
    let mut server = EchoServer::start().await;
    let messages = assorted();
    let lasts: Vec<Message> = (0..20).map(|i| text(&format!("last {i}"))).collect();
    let reason = "browser done";
    let mut actions: Vec<String> = messages.iter().map(action).collect();
    actions.push(format!("recv:{}", messages.len()));
    // The page closes right after messages our server has not read yet.
    actions.extend(lasts.iter().map(action));
    actions.push(format!("close:4002:{reason}"));
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let theirs = run_client(browser(), &server.url, &[], &actions).await;

    let ours = server.report().await;
    let mut sent = messages.clone();
    sent.extend(lasts);
    assert_eq!(ours.received, sent, "every message the page sent arrived");
    assert_clean_close(
        &ours.info,
        Initiator::Remote,
        close_frame(4002, ""),
        close_frame(4002, reason),
    );
    // Chromium waits for the server to close TCP (RFC 6455 7.1.1).
    assert_eq!(ours.peer_closed_first, Some(false));

    // The echoes of the last messages arrive after the page called close(), and a page
    // gets no message events once its WebSocket is CLOSING (the WHATWG WebSocket
    // standard): it saw the echoes it waited for, in order, and those only.
    assert_eq!(theirs.messages, Seen::all(&messages));
    assert_eq!(ours.sent[..messages.len()], messages[..]);
    // The close event has the code of our reply, which has no reason.
    assert_page_close(&theirs.closed, 4002, "", true, true);
    // Chromium offers permessage-deflate, which our server declines by default.
    assert_eq!(theirs.open.get("extensions").as_str(), Some(""));
}

#[tokio::test]
async fn our_server_closes_first_with_a_browser() {
    let reason = "sockeye server done";
    let (theirs, ours) = our_server_closes_first(browser(), reason).await;
    // The page's reply echoes our code and reason.
    assert_page_close(&theirs.closed, 4001, reason, true, false);
    assert_eq!(
        ours.peer_closed_first,
        Some(false),
        "the server closes TCP first"
    );
}

#[tokio::test]
async fn browser_with_deflate_against_our_server() {
    // Chromium's offer is `permessage-deflate; client_max_window_bits`.
    for (config, agreed) in our_deflate_settings() {
        let theirs = their_client_echoes_compressible(browser(), config).await;
        assert_eq!(theirs.open.get("extensions").as_str(), Some(agreed));
        assert_page_close(&theirs.closed, 1000, "", true, true);
    }
}

#[tokio::test]
async fn browser_takes_a_message_our_server_sends_in_parts_and_answers_its_ping() {
    let server = ServerBuilder::new()
        .deflate(true)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |mut ws| {
        let done = done.clone();
        async move {
            // Parts, with a Ping between them: Chromium answers it mid-message.
            ws.send_fragment("sent in ", false).await.unwrap();
            let rtt = ws.ping().await.unwrap();
            ws.send_fragment(json_text(100_000), false).await.unwrap();
            ws.send_fragment(" parts", true).await.unwrap();
            let info = ws.session().closed().await;
            let _ = done.send((rtt, ws.latency(), info));
        }
    }));
    let theirs = run_client(browser(), &url, &[], &["recv:1", "close:1000:"]).await;
    let expected = text(&format!("sent in {} parts", json_text(100_000)));
    assert_eq!(theirs.messages, Seen::all(std::slice::from_ref(&expected)));
    let (rtt, latency, info) = bounded("the server's session", finished.recv())
        .await
        .unwrap();
    assert_eq!(latency, Some(rtt));
    assert!(info.clean, "{info:?}");
}

#[tokio::test]
async fn browser_gets_the_subprotocol_our_server_picks() {
    let builder = ServerBuilder::new().on_request(|request| {
        Ok(Accept {
            subprotocol: request.select_subprotocol(&["chat"]),
            ..Accept::default()
        })
    });
    let mut server = EchoServer::start_with(builder).await;
    let message = text("hello");
    let theirs = run_client(
        browser(),
        &server.url,
        &["--protocols", "chat.v2,chat"],
        &[&action(&message), "recv:1", "close:1000:"],
    )
    .await;
    assert_eq!(theirs.open.get("subprotocol").as_str(), Some("chat"));
    assert_eq!(theirs.messages, Seen::all(std::slice::from_ref(&message)));
    assert_eq!(server.report().await.received, [message]);
}

#[tokio::test]
async fn browser_sees_a_refused_handshake_as_1006() {
    let builder = ServerBuilder::new().on_request(|_| Err(Reject::new(403, "not from this page")));
    let server = EchoServer::start_with(builder).await;
    let mut script = browser().spawn("browser_client.cjs", &[&server.url, "text:never"]);
    // No "open": the page's WebSocket fails (RFC 6455 4.1) and reports 1006.
    let closed = script.event().await;
    assert_eq!(closed.get("event").as_str(), Some("closed"), "{closed}");
    assert_eq!(closed.get("opened").as_bool(), Some(false), "{closed}");
    assert_page_close(&closed, 1006, "", false, false);
}

#[tokio::test]
async fn browser_sees_our_1009_for_a_message_over_the_limit() {
    let mut server = EchoServer::start_with(ServerBuilder::new().max_message_size(1000)).await;
    let small = sockeye::Message::Binary(pattern(1000).into());
    let theirs = run_client(
        browser(),
        &server.url,
        &[],
        &[&action(&small), "recv:1", "binary:1001"],
    )
    .await;
    assert_eq!(theirs.messages, Seen::all(std::slice::from_ref(&small)));
    let ours = server.report().await;
    assert_eq!(ours.received, [small]);
    // Our server fails the connection with 1009 (RFC 6455 7.4.1), and the page's close
    // event has that code and our reason.
    let sent = ours.info.sent.expect("our Close");
    assert_eq!(sent.code, Some(CloseCode::MESSAGE_TOO_BIG));
    assert!(sent.reason.contains("1000"), "{sent:?}");
    assert_page_close(&theirs.closed, 1009, &sent.reason, true, false);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn browser_talks_to_our_server_over_tls() {
    // A certificate made now, which Chromium is told to take (no root of its own vouches
    // for it): Chromium's TLS against rustls, with compression on top.
    let pki = pki::Pki::new(&["localhost", "127.0.0.1"]);
    let builder = ServerBuilder::new().deflate(true).tls(pki.server_config());
    let mut server = EchoServer::start_with(builder).await;
    let url = server.url.replacen("ws://", "wss://", 1);
    let big = pattern(200_000);
    let messages = [text("over TLS ✓"), sockeye::Message::Binary(big.into())];
    let mut actions: Vec<String> = messages.iter().map(action).collect();
    actions.push("recv:2".into());
    actions.push("close:1000:".into());
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let theirs = run_client(browser(), &url, &["--certificates", "any"], &actions).await;
    assert_eq!(
        theirs.open.get("extensions").as_str(),
        Some("permessage-deflate")
    );
    assert_eq!(theirs.messages, Seen::all(&messages));
    assert_page_close(&theirs.closed, 1000, "", true, true);
    let ours = server.report().await;
    assert_eq!(ours.received, messages);
    assert!(ours.info.clean, "{:?}", ours.info);

    // Without being told, Chromium refuses that certificate: the page sees 1006 and our
    // server no session.
    let mut script = browser().spawn("browser_client.cjs", &[&url, "text:never"]);
    let closed = script.event().await;
    assert_eq!(closed.get("opened").as_bool(), Some(false), "{closed}");
    assert_page_close(&closed, 1006, "", false, false);
}
