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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use json::Json;
use ours::{
    EchoServer, Exchange, OUR_CLOSE_REASON, assert_clean_close, assorted, binary, bounded, bursts,
    close_frame, exchange_then_close, next, pattern, text,
};
use sockeye::{ClientBuilder, CloseCode, CloseFrame, Initiator, Message, ServerBuilder};
use sockeye_proto::extension::DeflateConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The Python interpreter that has `websockets`. Fails the test, saying how to install it,
/// if there is none.
fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let path = match std::env::var_os("SOCKEYE_INTEROP_PYTHON") {
            Some(path) => PathBuf::from(path),
            None => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv/bin/python")
            }
        };
        let check = std::process::Command::new(&path)
            .args([
                "-c",
                "import websockets.asyncio.client, websockets.asyncio.server",
            ])
            .stdin(Stdio::null())
            .output();
        match check {
            Ok(output) if output.status.success() => Ok(path),
            Ok(output) => Err(format!(
                "{} cannot import websockets: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => Err(format!("cannot run {}: {error}", path.display())),
        }
    });
    match found {
        Ok(path) => path,
        Err(why) => panic!(
            "the interop tests need Python with the `websockets` package: {why}.\n\
             Run `bash scripts/test-deps.sh` from the workspace root to install it, or set \
             SOCKEYE_INTEROP_PYTHON to an interpreter that has it."
        ),
    }
}

/// One of the Python scripts, running; it is killed when dropped, and stops by itself
/// when its stdin closes.
struct Script {
    name: &'static str,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
    _stdin: ChildStdin,
}

impl Script {
    fn spawn(name: &'static str, args: &[&str]) -> Script {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop")
            .join(name);
        let mut child = Command::new(python())
            .arg(path)
            .args(args)
            // No __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Script {
            name,
            child,
            stdout,
            stderr: Some(stderr),
            _stdin: stdin,
        }
    }

    /// Fails the test, with what the script wrote on stderr.
    async fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.start_kill();
        let stderr = match self.stderr.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        panic!("{}: {what}\n--- its stderr:\n{stderr}", self.name);
    }

    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(ours::STEP, self.stdout.next_line()).await;
        match line {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => self.fail("ended its output early").await,
            Ok(Err(e)) => self.fail(&format!("unreadable output: {e}")).await,
            Err(_) => self.fail("printed nothing in time").await,
        }
    }

    /// The next JSON line; an "error" event fails the test.
    async fn event(&mut self) -> Json {
        let line = self.line().await;
        let event = match Json::parse(&line) {
            Ok(event) => event,
            Err(e) => self.fail(&format!("{e} in {line:?}")).await,
        };
        if event.get("event").as_str() == Some("error") {
            self.fail(&format!("reported {event}")).await;
        }
        event
    }
}

/// The echo server of `interop/echo_server.py`, steered like [`EchoServer`] (see the
/// script's doc comment).
struct PythonServer {
    script: Script,
    url: String,
}

impl PythonServer {
    async fn start() -> PythonServer {
        PythonServer::start_with(&[]).await
    }

    /// The server with these command-line options (`--compression none`, say).
    async fn start_with(options: &[&str]) -> PythonServer {
        let mut script = Script::spawn("echo_server.py", options);
        let line = script.line().await;
        let Some(addr) = line.strip_prefix("listening on ") else {
            script.fail(&format!("printed {line:?} first")).await
        };
        let url = format!("ws://{addr}/");
        PythonServer { script, url }
    }

    /// The "closed" event of the next connection that ended.
    async fn report(&mut self) -> Json {
        let event = self.script.event().await;
        assert_eq!(event.get("event").as_str(), Some("closed"), "{event}");
        event
    }
}

/// What `interop/client.py` printed, to its end.
#[derive(Debug)]
struct ClientRun {
    /// The "open" event.
    open: Json,
    messages: Vec<Seen>,
    pongs: usize,
    closed: Json,
}

async fn run_python_client(url: &str, actions: &[&str]) -> ClientRun {
    run_python_client_with(url, &[], actions).await
}

/// The client with these command-line options (`--compression none`, say).
async fn run_python_client_with(url: &str, options: &[&str], actions: &[&str]) -> ClientRun {
    let mut args = options.to_vec();
    args.push(url);
    args.extend_from_slice(actions);
    let mut script = Script::spawn("client.py", &args);
    let open = script.event().await;
    assert_eq!(open.get("event").as_str(), Some("open"), "{open}");
    let mut run = ClientRun {
        open,
        messages: Vec::new(),
        pongs: 0,
        closed: Json::Null,
    };
    loop {
        let event = script.event().await;
        match event.get("event").as_str() {
            Some("message") => run.messages.push(Seen::from_json(&event)),
            Some("pong") => run.pongs += 1,
            Some("closed") => {
                run.closed = event;
                return run;
            }
            _ => script.fail(&format!("printed {event}")).await,
        }
    }
}

/// A message as the scripts describe it: text whole, binary by length and CRC-32.
#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    Binary { len: u64, crc32: u64 },
}

impl Seen {
    fn of(message: &Message) -> Seen {
        match message {
            Message::Text(t) => Seen::Text(t.clone()),
            Message::Binary(b) => Seen::Binary {
                len: b.len() as u64,
                crc32: crc32(b).into(),
            },
            other => panic!("not a data message: {other:?}"),
        }
    }

    fn all(messages: &[Message]) -> Vec<Seen> {
        messages.iter().map(Seen::of).collect()
    }

    fn from_json(json: &Json) -> Seen {
        match json.get("type").as_str() {
            Some("text") => Seen::Text(json.get("text").as_str().expect("text").to_owned()),
            Some("binary") => Seen::Binary {
                len: json.get("len").as_u64().expect("len"),
                crc32: json.get("crc32").as_u64().expect("crc32"),
            },
            _ => panic!("not a message: {json}"),
        }
    }

    fn list(json: &Json) -> Vec<Seen> {
        json.as_array()
            .unwrap_or_else(|| panic!("not a list: {json}"))
            .iter()
            .map(Seen::from_json)
            .collect()
    }
}

/// CRC-32 (IEEE 802.3), as Python's `zlib.crc32`: table-driven, a byte at a time.
fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (n, entry) in (0u32..).zip(table.iter_mut()) {
            let mut crc = n;
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
            *entry = crc;
        }
        table
    });
    !bytes.iter().fold(!0u32, |crc, &byte| {
        table[usize::from((crc as u8) ^ byte)] ^ (crc >> 8)
    })
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

/// The client script's actions that send `message`.
fn action(message: &Message) -> String {
    match message {
        Message::Text(t) => format!("text:{t}"),
        Message::Binary(b) => {
            assert_eq!(
                b[..],
                pattern(b.len())[..],
                "the scripts send the pattern only"
            );
            format!("binary:{}", b.len())
        }
        other => panic!("not a data message: {other:?}"),
    }
}

#[tokio::test]
async fn our_client_exchanges_messages_with_python_server_and_closes_first() {
    let mut server = PythonServer::start().await;
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
    let mut server = PythonServer::start().await;
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
    let theirs = run_python_client(&server.url, &actions).await;

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
    let theirs = run_python_client(&server.url, &["text:burst 50", &format!("text:{close}")]).await;
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

/// A JSON-like text of about `len` bytes, the kind of message compression is for.
fn json_text(len: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0;
    while out.len() < len {
        out.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user-{}\",\"score\":{},\"tags\":[\"a\",\"b\"]}},",
            i % 13,
            i * 37 % 1000
        ));
        i += 1;
    }
    out.push(']');
    out
}

/// Messages that exercise compression: small ones under the threshold, compressible
/// text and binary of several sizes, and the same message twice (context takeover).
fn compressible() -> Vec<Message> {
    let mut messages = assorted();
    messages.extend([
        text(&json_text(100)),
        text(&json_text(60_000)),
        // The scripts send only the test pattern as binary; it repeats every 251 bytes.
        binary(pattern(30_000)),
        text(&json_text(100)),
    ]);
    messages
}

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
    let mut server = PythonServer::start_with(&["--compression", "deflate"]).await;
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
    let mut server = PythonServer::start().await;
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
        let theirs =
            run_python_client_with(&server.url, &["--compression", "deflate"], &actions).await;
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
    let theirs = run_python_client_with(
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
