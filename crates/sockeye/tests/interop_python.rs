//! Interoperability with Python's `websockets` package (its asyncio API), an independent
//! WebSocket implementation: Sockeye's client against its server and its client against
//! Sockeye's server. The peers are the scripts in `tests/interop/`, which print what they
//! see as JSON lines. Each direction exchanges text and binary messages (1 MiB and
//! fragmented ones included), then closes once from each side; both sides' view of the
//! close is checked, and every message one side sent is shown to have reached the other.
//!
//! With permessage-deflate (RFC 7692) negotiated, each direction echoes compressible
//! messages, and the parameters `websockets` agreed are checked against ours.
//!
//! The interpreter is `$SOCKEYE_INTEROP_PYTHON`, or else `target/interop-venv/bin/python`
//! in the workspace, which `bash scripts/test-deps.sh` creates. Without it these tests fail
//! and say so.

#[path = "interop/json.rs"]
mod json;
#[path = "interop/ours.rs"]
mod ours;
#[path = "interop/scripts.rs"]
mod scripts;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use json::Json;
use ours::{OUR_CLOSE_REASON, close_frame, pattern};
use scripts::{
    Peer, check_peer, crc32, our_client_echoes_compressible, our_client_exchanges_then_closes,
    our_client_sends_in_fragments, our_deflate_settings, our_server_closes_first,
    their_client_echoes_compressible, their_client_exchanges_then_closes,
    their_client_without_compression, their_server_closes_first,
};
use sockeye::{ClientBuilder, CloseFrame};
use sockeye_proto::extension::DeflateConfig;

/// Python with `websockets`, as a peer of the tests. Fails the test, saying how to
/// install it, if there is none.
fn python() -> &'static Peer {
    static PYTHON: OnceLock<Result<Peer, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let program = match std::env::var_os("SOCKEYE_INTEROP_PYTHON") {
            Some(path) => PathBuf::from(path),
            None => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv/bin/python")
            }
        };
        // No __pycache__ in the source tree.
        let env = vec![("PYTHONDONTWRITEBYTECODE", OsString::from("1"))];
        let check = [
            "-c",
            "import websockets.asyncio.client, websockets.asyncio.server",
        ];
        check_peer(&program, &check, &env)?;
        Ok(Peer {
            program,
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop"),
            server: Some("echo_server.py"),
            client: "client.py",
            env,
        })
    });
    match found {
        Ok(peer) => peer,
        Err(why) => panic!(
            "the interop tests need Python with the `websockets` package: {why}.\n\
             Run `bash scripts/test-deps.sh` from the workspace root to install it, or set \
             SOCKEYE_INTEROP_PYTHON to an interpreter that has it."
        ),
    }
}

/// A Close frame as the scripts print it (`null`: none).
fn close_of(json: &Json) -> Option<CloseFrame> {
    if json.is_null() {
        return None;
    }
    let code = json.get("code").as_u64().expect("code");
    Some(close_frame(
        u16::try_from(code).expect("a u16"),
        json.get("reason").as_str().expect("reason"),
    ))
}

/// Checks a script's "closed" event: the frames it sent and received, in which order,
/// and the close code and reason `websockets` reports.
fn assert_python_close(closed: &Json, sent: CloseFrame, received: CloseFrame, rcvd_first: bool) {
    assert_eq!(close_of(closed.get("sent")), Some(sent), "{closed}");
    assert_eq!(
        close_of(closed.get("rcvd")),
        Some(received.clone()),
        "{closed}"
    );
    assert_eq!(
        closed.get("rcvd_then_sent").as_bool(),
        Some(rcvd_first),
        "{closed}"
    );
    let code = received.code.map(|c| u64::from(c.0));
    assert_eq!(closed.get("close_code").as_u64(), code, "{closed}");
    assert_eq!(
        closed.get("close_reason").as_str(),
        Some(received.reason.as_str()),
        "{closed}"
    );
}

#[tokio::test]
async fn our_client_exchanges_messages_with_python_server_and_closes_first() {
    let theirs = our_client_exchanges_then_closes(python()).await;
    assert_python_close(
        &theirs,
        close_frame(4001, OUR_CLOSE_REASON),
        close_frame(4001, OUR_CLOSE_REASON),
        true,
    );
}

#[tokio::test]
async fn python_server_closes_first_and_our_client_keeps_every_message() {
    let reason = "python server done";
    let theirs = their_server_closes_first(python(), reason).await;
    assert_python_close(
        &theirs,
        close_frame(4002, reason),
        close_frame(4002, ""),
        false,
    );
}

#[tokio::test]
async fn python_client_exchanges_messages_with_our_server_and_closes_first() {
    let reason = "python client done";
    let theirs = their_client_exchanges_then_closes(python(), reason).await;
    assert_python_close(
        &theirs.closed,
        close_frame(4002, reason),
        close_frame(4002, ""),
        false,
    );
}

#[tokio::test]
async fn our_server_closes_first_with_python_client() {
    let reason = "sockeye server done";
    let (theirs, ours) = our_server_closes_first(python(), reason).await;
    // Their reply echoes our code and reason.
    assert_python_close(
        &theirs.closed,
        close_frame(4001, reason),
        close_frame(4001, reason),
        true,
    );
    // websockets' client waits for the server to close TCP (RFC 6455 7.1.1).
    assert_eq!(
        ours.peer_closed_first,
        Some(false),
        "the server closes TCP first"
    );
}

// ----- permessage-deflate -----

/// What `websockets` agreed for permessage-deflate, from its side: (local
/// no_context_takeover, remote no_context_takeover, local window bits, remote window bits).
fn python_deflate(extensions: &Json) -> (bool, bool, u64, u64) {
    let list = extensions
        .as_array()
        .unwrap_or_else(|| panic!("no extensions: {extensions}"));
    assert_eq!(list.len(), 1, "{extensions}");
    let deflate = &list[0];
    assert_eq!(
        deflate.get("name").as_str(),
        Some("permessage-deflate"),
        "{extensions}"
    );
    let flag = |name| deflate.get(name).as_bool().expect(name);
    let bits = |name| deflate.get(name).as_u64().expect(name);
    (
        flag("local_no_context_takeover"),
        flag("remote_no_context_takeover"),
        bits("local_max_window_bits"),
        bits("remote_max_window_bits"),
    )
}

#[tokio::test]
async fn our_client_with_deflate_against_python_server() {
    let (extensions, theirs) = our_client_echoes_compressible(
        python(),
        &["--compression", "deflate"],
        ClientBuilder::new().deflate(true),
    )
    .await;
    // Our offer leaves the window to the server; websockets sets 12 bits both ways.
    assert_eq!(
        extensions,
        ["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"]
    );
    assert_eq!(
        python_deflate(theirs.get("extensions")),
        (false, false, 12, 12)
    );
}

#[tokio::test]
async fn our_client_with_deflate_asks_python_server_for_no_context_takeover() {
    let deflate = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(9),
        ..DeflateConfig::enabled()
    };
    let (extensions, theirs) =
        our_client_echoes_compressible(python(), &[], ClientBuilder::new().deflate_config(deflate))
            .await;
    // websockets grants every request: no context takeover both ways, at most 10 bits
    // for itself, and the 9 bits we announced for us.
    assert_eq!(
        extensions,
        [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        ]
    );
    assert_eq!(
        python_deflate(theirs.get("extensions")),
        (true, true, 10, 9)
    );
}

#[tokio::test]
async fn python_client_with_deflate_against_our_server() {
    // What websockets agreed, from its side, for each of our settings.
    let agreed = [(false, false, 15, 15), (true, true, 11, 10)];
    for ((config, _), agreed) in our_deflate_settings().into_iter().zip(agreed) {
        let theirs = their_client_echoes_compressible(python(), config).await;
        assert_eq!(python_deflate(theirs.open.get("extensions")), agreed);
    }
}

#[tokio::test]
async fn python_client_without_compression_gets_none_from_our_server() {
    let theirs = their_client_without_compression(python()).await;
    assert_eq!(theirs.open.get("extensions").as_array(), Some(&[][..]));
}

#[tokio::test]
async fn python_server_takes_messages_our_client_sends_in_parts() {
    for (options, agreed) in [(&[][..], 1), (&["--compression", "none"][..], 0)] {
        let extensions = our_client_sends_in_fragments(python(), options).await;
        assert_eq!(extensions.len(), agreed, "{extensions:?}");
    }
}

#[test]
fn json_reader_reads_what_the_scripts_print() {
    let line = r#"{"event": "closed", "rcvd": {"code": 4001, "reason": "h\u00e9llo \u2713 \ud83e\udd80 \"q\" \\ \n"}, "sent": null, "rcvd_then_sent": true, "list": [1, -2.5e1, [], {}], "crc32": 4010696788}"#;
    let event = Json::parse(line).expect("valid JSON");
    assert_eq!(event.get("event").as_str(), Some("closed"));
    assert_eq!(
        close_of(event.get("rcvd")),
        Some(close_frame(4001, "héllo ✓ 🦀 \"q\" \\ \n"))
    );
    assert_eq!(close_of(event.get("sent")), None);
    assert_eq!(event.get("rcvd_then_sent").as_bool(), Some(true));
    assert_eq!(event.get("crc32").as_u64(), Some(4_010_696_788));
    let list = event.get("list").as_array().expect("a list");
    assert_eq!(list[1], Json::Number(-25.0));
    assert_eq!(list[1].as_u64(), None);
    assert_eq!(list[2], Json::Array(Vec::new()));
    assert!(event.get("missing").is_null());
    for bad in [
        "",
        "{",
        r#"{"a" 1}"#,
        "[1,]",
        r#""\ud800""#,
        "nul",
        "{} x",
        r#""\x""#,
    ] {
        assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn crc32_matches_python_zlib() {
    // zlib.crc32(b"123456789") and the 1 MiB pattern, as Python computes them.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(&pattern(1 << 20)), 4_010_696_788);
    assert_eq!(crc32(b""), 0);
}
