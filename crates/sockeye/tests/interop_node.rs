//! Interoperability with Node.js's `ws` package, the WebSocket implementation most of the
//! JavaScript server world runs on: Sockeye's client against its server and its client
//! against Sockeye's server. The peers are the scripts in `tests/interop/node/`, twins of
//! the Python ones (same steering messages, actions and JSON lines). Each direction
//! exchanges text and binary messages (1 MiB and fragmented ones included), then closes
//! once from each side; both sides' view of the close is checked, and every message one
//! side sent is shown to have reached the other. With permessage-deflate (RFC 7692), each
//! direction echoes compressible messages under the parameters both sides agreed. Over
//! TLS (with the `tls` feature), rustls meets Node's OpenSSL in both roles.
//!
//! The program is `$SOCKEYE_INTEROP_NODE`, or else `node` on the PATH, with `ws` from
//! `target/interop-node`, which `bash scripts/test-deps.sh` installs. Without them these
//! tests fail and say so.

#[path = "interop/json.rs"]
mod json;
#[path = "interop/ours.rs"]
mod ours;
#[cfg(feature = "tls")]
#[path = "tls/pki.rs"]
mod pki;
#[path = "interop/scripts.rs"]
mod scripts;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use json::Json;
use ours::OUR_CLOSE_REASON;
use scripts::{
    Peer, check_peer, our_client_echoes_compressible, our_client_exchanges_then_closes,
    our_client_sends_in_fragments, our_deflate_settings, our_server_closes_first,
    their_client_echoes_compressible, their_client_exchanges_then_closes,
    their_client_without_compression, their_server_closes_first,
};
use sockeye::ClientBuilder;
use sockeye_proto::extension::DeflateConfig;

/// Node.js with `ws`, as a peer of the tests. Fails the test, saying how to install them,
/// if they are missing.
fn node() -> &'static Peer {
    static NODE: OnceLock<Result<Peer, String>> = OnceLock::new();
    let found = NODE.get_or_init(|| {
        let program = std::env::var_os("SOCKEYE_INTEROP_NODE")
            .map_or_else(|| PathBuf::from("node"), PathBuf::from);
        let modules =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-node/node_modules");
        let env = vec![("NODE_PATH", OsString::from(modules))];
        check_peer(&program, &["-e", "require('ws')"], &env)?;
        Ok(Peer {
            program,
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node"),
            server: Some("echo_server.cjs"),
            client: "client.cjs",
            env,
        })
    });
    match found {
        Ok(peer) => peer,
        Err(why) => panic!(
            "the Node.js interop tests need node with the `ws` package: {why}.\n\
             Run `bash scripts/test-deps.sh` from the workspace root to install it, or set \
             SOCKEYE_INTEROP_NODE to another node."
        ),
    }
}

/// Checks a script's "closed" event: the code and reason `ws` reports (those of the Close
/// frame it received) and whether the script sent its Close first.
fn assert_ws_close(closed: &Json, code: u16, reason: &str, initiated: bool) {
    assert_eq!(
        closed.get("code").as_u64(),
        Some(u64::from(code)),
        "{closed}"
    );
    assert_eq!(closed.get("reason").as_str(), Some(reason), "{closed}");
    assert_eq!(
        closed.get("initiated").as_bool(),
        Some(initiated),
        "{closed}"
    );
}

#[tokio::test]
async fn our_client_exchanges_messages_with_ws_server_and_closes_first() {
    // Also checks that their server closed TCP first (RFC 6455 7.1.1).
    let theirs = our_client_exchanges_then_closes(node()).await;
    assert_ws_close(&theirs, 4001, OUR_CLOSE_REASON, false);
}

#[tokio::test]
async fn ws_server_closes_first_and_our_client_keeps_every_message() {
    let theirs = their_server_closes_first(node(), "ws server done").await;
    // Our reply has their code and no reason.
    assert_ws_close(&theirs, 4002, "", true);
}

#[tokio::test]
async fn ws_client_exchanges_messages_with_our_server_and_closes_first() {
    let theirs = their_client_exchanges_then_closes(node(), "ws client done").await;
    assert_ws_close(&theirs.closed, 4002, "", true);
}

#[tokio::test]
async fn our_server_closes_first_with_ws_client() {
    let reason = "sockeye server done";
    // Who closed TCP first is not checked: ws's client ends its side of the connection
    // as soon as its reply is written, instead of waiting for the server to close first
    // (RFC 6455 7.1.1's SHOULD), so the two ends race.
    let (theirs, _) = our_server_closes_first(node(), reason).await;
    // ws's reply echoes our code and reason.
    assert_ws_close(&theirs.closed, 4001, reason, false);
}

// ----- permessage-deflate -----

#[tokio::test]
async fn our_client_with_deflate_against_ws_server() {
    let offers = [
        // Our default offer leaves the window to the server.
        (DeflateConfig::enabled(), "permessage-deflate"),
        // Every parameter asked for; ws grants them.
        (
            DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(9),
                ..DeflateConfig::enabled()
            },
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9",
        ),
    ];
    for (config, agreed) in offers {
        let (extensions, theirs) = our_client_echoes_compressible(
            node(),
            &["--compression", "deflate"],
            ClientBuilder::new().deflate_config(config),
        )
        .await;
        assert_eq!(extensions, [agreed]);
        assert_eq!(theirs.get("extensions").as_str(), Some(agreed));
    }
}

#[tokio::test]
async fn our_client_offering_deflate_to_ws_server_without_it_talks_uncompressed() {
    let (extensions, theirs) = our_client_echoes_compressible(
        node(),
        &["--compression", "none"],
        ClientBuilder::new().deflate(true),
    )
    .await;
    assert!(extensions.is_empty(), "{extensions:?}");
    assert!(theirs.get("extensions").is_null(), "{theirs}");
}

#[tokio::test]
async fn ws_client_with_deflate_against_our_server() {
    for (config, agreed) in our_deflate_settings() {
        let theirs = their_client_echoes_compressible(node(), config).await;
        assert_eq!(theirs.open.get("extensions").as_str(), Some(agreed));
    }
}

#[tokio::test]
async fn ws_client_without_compression_gets_none_from_our_server() {
    let theirs = their_client_without_compression(node()).await;
    assert!(theirs.open.get("extensions").is_null(), "{}", theirs.open);
}

#[tokio::test]
async fn ws_server_takes_messages_our_client_sends_in_parts() {
    for (options, agreed) in [(&["--compression", "deflate"][..], 1), (&[][..], 0)] {
        let extensions = our_client_sends_in_fragments(node(), options).await;
        assert_eq!(extensions.len(), agreed, "{extensions:?}");
    }
}

// ----- over TLS: rustls against Node's OpenSSL -----

#[cfg(feature = "tls")]
#[tokio::test]
async fn our_client_talks_to_ws_server_over_tls() {
    let pki = pki::Pki::new(&["localhost", "127.0.0.1"]);
    let options = [
        "--cert",
        pki.cert_path.to_str().unwrap(),
        "--key",
        pki.key_path.to_str().unwrap(),
    ];
    let mut server = scripts::ScriptServer::start(node(), &options).await;
    let url = server.url.replacen("ws://", "wss://", 1);
    let (mut ws, _) = ours::bounded(
        "connect",
        ClientBuilder::new().tls_roots(pki.roots()).connect(&url),
    )
    .await
    .expect("our handshake over TLS with their server");
    let messages = ours::assorted();
    for message in &messages {
        ws.send(message.clone()).await.expect("send");
        assert_eq!(&ours::next(&mut ws).await, message);
    }
    let info = ours::bounded(
        "our close",
        ws.close(sockeye::CloseCode::NORMAL, "tls done"),
    )
    .await
    .expect("close");
    assert!(info.clean, "{info:?}");
    let theirs = server.report().await;
    assert_eq!(
        scripts::Seen::list(theirs.get("received")),
        scripts::Seen::all(&messages)
    );
    assert_ws_close(&theirs, 1000, "tls done", false);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn ws_client_talks_to_our_server_over_tls() {
    let pki = pki::Pki::new(&["localhost", "127.0.0.1"]);
    let builder = sockeye::ServerBuilder::new().tls(pki.server_config());
    let mut server = ours::EchoServer::start_with(builder).await;
    let url = server.url.replacen("ws://", "wss://", 1);
    let messages = ours::assorted();
    let mut actions: Vec<String> = messages.iter().map(scripts::action).collect();
    actions.push(format!("recv:{}", messages.len()));
    actions.push("close:4000:tls done".into());
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let options = ["--ca", pki.ca_path.to_str().unwrap()];
    let theirs = scripts::run_client(node(), &url, &options, &actions).await;
    assert_eq!(theirs.messages, scripts::Seen::all(&messages));
    assert_ws_close(&theirs.closed, 4000, "", true);
    let ours = server.report().await;
    assert_eq!(ours.received, messages);
    ours::assert_clean_close(
        &ours.info,
        sockeye::Initiator::Remote,
        ours::close_frame(4000, ""),
        ours::close_frame(4000, "tls done"),
    );
}
