//! Interoperability with a browser: headless Chromium's WebSocket API against Sockeye's
//! server, the client most WebSocket servers exist for. `tests/interop/node/
//! browser_client.cjs` drives it through playwright-core and prints what the page sees
//! as the other script peers' JSON lines, so the shared scenarios of `interop/scripts.rs`
//! run here too, for what a page can do (no fragments, no Pings, close codes 1000 and
//! 3000-4999 only). Checked: messages of every kind and size both ways, each side closing
//! first with both sides' view of the close, permessage-deflate (which Chromium always
//! offers) accepted with default and with server-chosen parameters or declined, the
//! subprotocol our server picks from the page's list, a refused handshake, and the close
//! code a page sees when our server fails the connection.
//!
//! Needs what `bash scripts/test-deps.sh` installs: Node.js with playwright-core in
//! `target/interop-node`, and Chromium at `$CHROMIUM` or `/usr/bin/chromium` (Debian's
//! package `chromium`). Without them these tests fail and say so.

#[allow(dead_code, reason = "shared with the other interop tests")]
#[path = "interop/json.rs"]
mod json;
#[allow(dead_code, reason = "shared with the other interop tests")]
#[path = "interop/ours.rs"]
mod ours;
#[allow(
    dead_code,
    reason = "shared with the other interop tests; a browser has no server"
)]
#[path = "interop/scripts.rs"]
mod scripts;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use json::Json;
use ours::{EchoServer, assert_clean_close, assorted, close_frame, pattern, text};
use scripts::{
    Peer, Seen, action, check_peer, our_deflate_settings, our_server_closes_first, run_client,
    their_client_echoes_compressible,
};
use sockeye::{CloseCode, Config, Initiator, Message, ServerBuilder};
use sockeye_proto::handshake::{Accept, Reject};

/// Chromium, driven by Node.js with playwright-core, as a peer of the tests. Fails the
/// test, saying how to install them, if they are missing.
fn browser() -> &'static Peer {
    static BROWSER: OnceLock<Result<Peer, String>> = OnceLock::new();
    let found = BROWSER.get_or_init(|| {
        let program = std::env::var_os("SOCKEYE_INTEROP_NODE")
            .map_or_else(|| PathBuf::from("node"), PathBuf::from);
        let modules =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-node/node_modules");
        let chromium = std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
        check_peer(Path::new(&chromium), &["--version"], &[])?;
        let env = vec![
            ("NODE_PATH", OsString::from(modules)),
            ("CHROMIUM", chromium),
        ];
        check_peer(&program, &["-e", "require('playwright-core')"], &env)?;
        Ok(Peer {
            program,
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node"),
            server: None,
            client: "browser_client.cjs",
            env,
        })
    });
    match found {
        Ok(peer) => peer,
        Err(why) => panic!(
            "the browser interop tests need Chromium, and node with the `playwright-core` \
             package: {why}.\nRun `bash scripts/test-deps.sh` from the workspace root to \
             install them, or set CHROMIUM to a Chromium binary."
        ),
    }
}

/// Checks the page's "closed" event: the close event's code, reason and `wasClean`, and
/// whether the page closed first.
fn assert_page_close(closed: &Json, code: u16, reason: &str, clean: bool, initiated: bool) {
    assert_eq!(
        closed.get("code").as_u64(),
        Some(u64::from(code)),
        "{closed}"
    );
    assert_eq!(closed.get("reason").as_str(), Some(reason), "{closed}");
    assert_eq!(closed.get("was_clean").as_bool(), Some(clean), "{closed}");
    assert_eq!(
        closed.get("initiated").as_bool(),
        Some(initiated),
        "{closed}"
    );
}

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
    let mut config = Config::default();
    config.protocol.max_message_size = Some(1000);
    let mut server = EchoServer::start_with(ServerBuilder::new().config(config)).await;
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
