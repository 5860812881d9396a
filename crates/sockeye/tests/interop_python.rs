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
use ours::{
    EchoServer, Exchange, OUR_CLOSE_REASON, assert_clean_close, assorted, binary, bounded, bursts,
    close_frame, exchange_then_close, next, pattern, text,
};
use scripts::{
    Peer, ScriptServer, Seen, action, check_peer, compressible, crc32, json_text, run_client,
};
use sockeye::{ClientBuilder, CloseCode, CloseFrame, Initiator, Message, ServerBuilder};
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
            server: "echo_server.py",
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
    let mut server = ScriptServer::start(python(), &[]).await;
    let (mut ws, response) = bounded("connect", sockeye::connect(&server.url))
        .await
        .expect("our handshake with their server");
    assert_eq!(response.status, 101);

    let Exchange { sent, received } = exchange_then_close(&mut ws, "pong received").await;

    let theirs = server.report().await;
    assert_eq!(Seen::list(theirs.get("received")), Seen::all(&sent));
    // Every message their server sent, including the part of the burst it sent before
    // it saw our Close, reached us, in order.
    assert_eq!(
        Seen::list(theirs.get("sent_messages")),
        Seen::all(&received)
    );
    assert_python_close(
        &theirs,
        close_frame(4001, OUR_CLOSE_REASON),
        close_frame(4001, OUR_CLOSE_REASON),
        true,
    );
}

#[tokio::test]
async fn python_server_closes_first_and_our_client_keeps_every_message() {
    let mut server = ScriptServer::start(python(), &[]).await;
    let (mut ws, _) = bounded("connect", sockeye::connect(&server.url))
        .await
        .expect("our handshake with their server");
    let reason = "python server done";
    let close = format!("close 4002 {reason}");
    ws.send(text("burst 50")).await.expect("send");
    ws.send(text(&close)).await.expect("send");

    let mut received = Vec::new();
    while let Some(item) = bounded("our next message", ws.next()).await {
        received.push(item.expect("no failure"));
    }
    assert_eq!(received, bursts(0..50));
    let info = bounded("the session's end", ws.session().closed()).await;
    // Our reply echoes the code (RFC 6455 5.5.1), without the reason.
    assert_clean_close(
        &info,
        Initiator::Remote,
        close_frame(4002, ""),
        close_frame(4002, reason),
    );
    assert_eq!(ws.session().peer_closed_first(), Some(true));
    assert!(ws.send(text("late")).await.is_err());

    let theirs = server.report().await;
    assert_eq!(
        Seen::list(theirs.get("received")),
        Seen::all(&[text("burst 50"), text(&close)])
    );
    assert_eq!(
        Seen::list(theirs.get("sent_messages")),
        Seen::all(&bursts(0..50))
    );
    assert_python_close(
        &theirs,
        close_frame(4002, reason),
        close_frame(4002, ""),
        false,
    );
}

#[tokio::test]
async fn python_client_exchanges_messages_with_our_server_and_closes_first() {
    let mut server = EchoServer::start().await;
    let big = pattern(300_000);
    let mut expected_echoes = assorted();
    expected_echoes.extend([text("fragmented ✓"), binary(big.clone())]);
    let lasts: Vec<Message> = (0..20).map(|i| text(&format!("last {i}"))).collect();
    let reason = "python client done";

    let mut actions: Vec<String> = assorted().iter().map(action).collect();
    actions.push(format!("recv:{}", assorted().len()));
    actions.push("fragments:frag|ment|ed ✓".into());
    actions.push(format!("binary-fragments:{}:3", big.len()));
    actions.push("recv:2".into());
    actions.push("ping".into());
    // They close right after messages our server has not read yet.
    actions.extend(lasts.iter().map(action));
    actions.push(format!("close:4002:{reason}"));
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let theirs = run_client(python(), &server.url, &[], &actions).await;

    let ours = server.report().await;
    let mut sent = expected_echoes.clone();
    sent.extend(lasts);
    assert_eq!(ours.received, sent, "every message they sent arrived");
    assert_clean_close(
        &ours.info,
        Initiator::Remote,
        close_frame(4002, ""),
        close_frame(4002, reason),
    );
    assert_eq!(
        ours.peer_closed_first,
        Some(false),
        "the server closes TCP first"
    );

    assert_eq!(
        theirs.messages[..expected_echoes.len()],
        Seen::all(&expected_echoes)[..]
    );
    assert_eq!(theirs.pongs, 1, "our server answered their Ping");
    // Every echo our server sent before their Close arrived reached them, in order.
    assert_eq!(theirs.messages, Seen::all(&ours.sent));
    assert_python_close(
        &theirs.closed,
        close_frame(4002, reason),
        close_frame(4002, ""),
        false,
    );
}

#[tokio::test]
async fn our_server_closes_first_with_python_client() {
    let mut server = EchoServer::start().await;
    let reason = "sockeye server done";
    let close = format!("close 4001 {reason}");
    let theirs = run_client(
        python(),
        &server.url,
        &[],
        &["text:burst 50", &format!("text:{close}")],
    )
    .await;
    assert_eq!(theirs.messages, Seen::all(&bursts(0..50)));
    // Their reply echoes our code and reason.
    assert_python_close(
        &theirs.closed,
        close_frame(4001, reason),
        close_frame(4001, reason),
        true,
    );

    let ours = server.report().await;
    assert_eq!(ours.received, vec![text("burst 50"), text(&close)]);
    assert_eq!(ours.sent, bursts(0..50));
    assert_clean_close(
        &ours.info,
        Initiator::Local,
        close_frame(4001, reason),
        close_frame(4001, reason),
    );
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
    let mut server = ScriptServer::start(python(), &["--compression", "deflate"]).await;
    let (mut ws, response) = bounded(
        "connect",
        ClientBuilder::new().deflate(true).connect(&server.url),
    )
    .await
    .expect("our handshake with their server");
    // Our offer leaves the window to the server; websockets sets 12 bits both ways.
    assert_eq!(
        response.extensions,
        ["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"]
    );
    let messages = compressible();
    for message in &messages {
        ws.send(message.clone()).await.expect("send");
        assert_eq!(&next(&mut ws).await, message);
    }
    let info = bounded("our close", ws.close(CloseCode::NORMAL, "done"))
        .await
        .expect("close");
    assert_clean_close(
        &info,
        Initiator::Local,
        close_frame(1000, "done"),
        close_frame(1000, "done"),
    );

    let theirs = server.report().await;
    assert_eq!(Seen::list(theirs.get("received")), Seen::all(&messages));
    assert_eq!(
        Seen::list(theirs.get("sent_messages")),
        Seen::all(&messages)
    );
    assert_eq!(
        python_deflate(theirs.get("extensions")),
        (false, false, 12, 12)
    );
}

#[tokio::test]
async fn our_client_with_deflate_asks_python_server_for_no_context_takeover() {
    let mut server = ScriptServer::start(python(), &[]).await;
    let deflate = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(9),
        ..DeflateConfig::enabled()
    };
    let (mut ws, response) = bounded(
        "connect",
        ClientBuilder::new()
            .deflate_config(deflate)
            .connect(&server.url),
    )
    .await
    .expect("our handshake with their server");
    // websockets grants every request: no context takeover both ways, at most 10 bits
    // for itself, and the 9 bits we announced for us.
    assert_eq!(
        response.extensions,
        [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        ]
    );
    let messages = compressible();
    for message in &messages {
        ws.send(message.clone()).await.expect("send");
        assert_eq!(&next(&mut ws).await, message);
    }
    bounded("our close", ws.close(CloseCode::NORMAL, ""))
        .await
        .expect("close");
    let theirs = server.report().await;
    assert_eq!(Seen::list(theirs.get("received")), Seen::all(&messages));
    assert_eq!(
        python_deflate(theirs.get("extensions")),
        (true, true, 10, 9)
    );
}

#[tokio::test]
async fn python_client_with_deflate_against_our_server() {
    let configs = [
        // Defaults: we accept their offer as it is.
        (DeflateConfig::enabled(), (false, false, 15, 15)),
        // Every parameter set by our server, unasked except client_max_window_bits,
        // which their offer allows.
        (
            DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(11),
                ..DeflateConfig::enabled()
            },
            (true, true, 11, 10),
        ),
    ];
    for (config, agreed) in configs {
        let mut server = EchoServer::start_with(ServerBuilder::new().deflate_config(config)).await;
        let messages = compressible();
        let mut actions: Vec<String> = messages.iter().map(action).collect();
        actions.push(format!("recv:{}", messages.len()));
        actions.push("close:1000:bye".into());
        let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
        let theirs = run_client(
            python(),
            &server.url,
            &["--compression", "deflate"],
            &actions,
        )
        .await;
        assert_eq!(python_deflate(theirs.open.get("extensions")), agreed);
        assert_eq!(theirs.messages, Seen::all(&messages));

        let ours = server.report().await;
        assert_eq!(ours.received, messages);
        assert_eq!(ours.sent, messages);
        assert_clean_close(
            &ours.info,
            Initiator::Remote,
            close_frame(1000, ""),
            close_frame(1000, "bye"),
        );
    }
}

#[tokio::test]
async fn python_client_without_compression_gets_none_from_our_server() {
    let mut server = EchoServer::start_with(ServerBuilder::new().deflate(true)).await;
    let message = text(&json_text(5_000));
    let theirs = run_client(
        python(),
        &server.url,
        &["--compression", "none"],
        &[&action(&message), "recv:1", "close:1000:"],
    )
    .await;
    assert_eq!(theirs.open.get("extensions").as_array(), Some(&[][..]));
    assert_eq!(theirs.messages, Seen::all(std::slice::from_ref(&message)));
    assert_eq!(server.report().await.received, [message]);
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
