//! The peers' side of the script-driven interop tests: running another implementation's
//! echo server or client as a child process and reading the JSON lines it prints. The
//! Python scripts (`interop/*.py`, on `websockets`) and the Node.js scripts
//! (`interop/node/*.cjs`, on `ws`, and a browser's WebSocket through playwright-core) take
//! the same steering messages and actions (a browser only those its API has) and print the
//! same events; what differs is how each describes its closing handshake, which the test
//! files check themselves.

#![allow(
    dead_code,
    reason = "shared by several test crates, each of which uses a part"
)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use sockeye::{ClientBuilder, CloseCode, Initiator, Message};
use sockeye_proto::extension::DeflateConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::json::Json;
use crate::ours;

/// An implementation whose scripts the tests run: the interpreter, the directory of its
/// scripts, their names (a browser has no server), and the environment they need.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) program: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) server: Option<&'static str>,
    pub(crate) client: &'static str,
    pub(crate) env: Vec<(&'static str, OsString)>,
}

impl Peer {
    /// Starts one of the peer's scripts with `args`.
    pub(crate) fn spawn(&self, name: &'static str, args: &[&str]) -> Script {
        let mut child = Command::new(&self.program)
            .arg(self.dir.join(name))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
}

/// Where a peer is missing: checks that `program` runs `check` (arguments that exit with
/// status 0 once the peer's library loads), or says what to install.
pub(crate) fn check_peer(
    program: &std::path::Path,
    check: &[&str],
    env: &[(&'static str, OsString)],
) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(check)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{} cannot load the peer's library: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("cannot run {}: {error}", program.display())),
    }
}

/// One of the scripts, running; it is killed when dropped, and stops by itself when its
/// stdin closes.
pub(crate) struct Script {
    name: &'static str,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
    _stdin: ChildStdin,
}

impl Script {
    /// Fails the test, with what the script wrote on stderr.
    pub(crate) async fn fail(&mut self, what: &str) -> ! {
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
    pub(crate) async fn event(&mut self) -> Json {
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

/// A peer's steered echo server (see `interop/echo_server.py`), steered like
/// [`ours::EchoServer`].
pub(crate) struct ScriptServer {
    script: Script,
    pub(crate) url: String,
}

impl ScriptServer {
    /// The server with these command-line options (`--compression none`, say).
    pub(crate) async fn start(peer: &Peer, options: &[&str]) -> ScriptServer {
        let server = peer.server.expect("the peer has a server script");
        let mut script = peer.spawn(server, options);
        let line = script.line().await;
        let Some(addr) = line.strip_prefix("listening on ") else {
            script.fail(&format!("printed {line:?} first")).await
        };
        let url = format!("ws://{addr}/");
        ScriptServer { script, url }
    }

    /// The "closed" event of the next connection that ended.
    pub(crate) async fn report(&mut self) -> Json {
        let event = self.script.event().await;
        assert_eq!(event.get("event").as_str(), Some("closed"), "{event}");
        event
    }
}

/// What a peer's client script printed, to its end.
#[derive(Debug)]
pub(crate) struct ClientRun {
    /// The "open" event.
    pub(crate) open: Json,
    pub(crate) messages: Vec<Seen>,
    pub(crate) pongs: usize,
    pub(crate) closed: Json,
}

/// Runs the peer's client with these command-line options (`--compression none`, say)
/// against `url`, doing `actions` (see `interop/client.py`).
pub(crate) async fn run_client(
    peer: &Peer,
    url: &str,
    options: &[&str],
    actions: &[&str],
) -> ClientRun {
    let mut args = options.to_vec();
    args.push(url);
    args.extend_from_slice(actions);
    let mut script = peer.spawn(peer.client, &args);
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

/// The client scripts' actions that send `message`.
pub(crate) fn action(message: &Message) -> String {
    match message {
        Message::Text(t) => format!("text:{t}"),
        Message::Binary(b) => {
            assert_eq!(
                b[..],
                ours::pattern(b.len())[..],
                "the scripts send the pattern only"
            );
            format!("binary:{}", b.len())
        }
        other => panic!("not a data message: {other:?}"),
    }
}

/// A message as the scripts describe it: text whole, binary by length and CRC-32.
#[derive(Debug, PartialEq)]
pub(crate) enum Seen {
    Text(String),
    Binary { len: u64, crc32: u64 },
}

impl Seen {
    pub(crate) fn of(message: &Message) -> Seen {
        match message {
            Message::Text(t) => Seen::Text(t.clone()),
            Message::Binary(b) => Seen::Binary {
                len: b.len() as u64,
                crc32: crc32(b).into(),
            },
            other => panic!("not a data message: {other:?}"),
        }
    }

    pub(crate) fn all(messages: &[Message]) -> Vec<Seen> {
        messages.iter().map(Seen::of).collect()
    }

    pub(crate) fn from_json(json: &Json) -> Seen {
        match json.get("type").as_str() {
            Some("text") => Seen::Text(json.get("text").as_str().expect("text").to_owned()),
            Some("binary") => Seen::Binary {
                len: json.get("len").as_u64().expect("len"),
                crc32: json.get("crc32").as_u64().expect("crc32"),
            },
            _ => panic!("not a message: {json}"),
        }
    }

    pub(crate) fn list(json: &Json) -> Vec<Seen> {
        json.as_array()
            .unwrap_or_else(|| panic!("not a list: {json}"))
            .iter()
            .map(Seen::from_json)
            .collect()
    }
}

/// CRC-32 (IEEE 802.3), as Python's `zlib.crc32` and Node's: table-driven, a byte at a
/// time.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
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

/// A JSON-like text of about `len` bytes, the kind of message compression is for.
pub(crate) fn json_text(len: usize) -> String {
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
pub(crate) fn compressible() -> Vec<Message> {
    let mut messages = ours::assorted();
    messages.extend([
        ours::text(&json_text(100)),
        ours::text(&json_text(60_000)),
        // The scripts send only the test pattern as binary; it repeats every 251 bytes.
        ours::binary(ours::pattern(30_000)),
        ours::text(&json_text(100)),
    ]);
    messages
}

// ----- the scenarios every script peer goes through; each test file checks the peer's
// view of the close, which each implementation reports its own way -----

/// Our client against the peer's echo server: [`ours::exchange_then_close`], then their
/// server's report, which must list every message we sent and every one we received.
/// Returns that report.
pub(crate) async fn our_client_exchanges_then_closes(peer: &Peer) -> Json {
    let mut server = ScriptServer::start(peer, &[]).await;
    let (mut ws, response) = ours::bounded("connect", sockeye::connect(&server.url))
        .await
        .expect("our handshake with their server");
    assert_eq!(response.status, 101);

    let ours::Exchange { sent, received } =
        ours::exchange_then_close(&mut ws, "pong received").await;

    let theirs = server.report().await;
    assert_eq!(Seen::list(theirs.get("received")), Seen::all(&sent));
    // Every message their server sent, including the part of the burst it sent before
    // it saw our Close, reached us, in order.
    assert_eq!(
        Seen::list(theirs.get("sent_messages")),
        Seen::all(&received)
    );
    theirs
}

/// [`ours::their_server_closes_first`] against the peer's echo server, then their
/// server's report, which must list the two messages we sent and the burst. Returns that
/// report.
pub(crate) async fn their_server_closes_first(peer: &Peer, reason: &str) -> Json {
    let mut server = ScriptServer::start(peer, &[]).await;
    let close = ours::their_server_closes_first(&server.url, reason).await;
    let theirs = server.report().await;
    assert_eq!(
        Seen::list(theirs.get("received")),
        Seen::all(&[ours::text("burst 50"), ours::text(&close)])
    );
    assert_eq!(
        Seen::list(theirs.get("sent_messages")),
        Seen::all(&ours::bursts(0..50))
    );
    theirs
}

/// The peer's client against our echo server: every kind of message echoed (fragmented
/// ones included), a Ping, then twenty messages and their Close with 4002 and `reason`
/// sent before our server read them. Checks that every message they sent arrived, that
/// every echo our server sent reached them, that the closing handshake completed (our
/// reply with their code) and that our server closed TCP first (RFC 6455 7.1.1).
pub(crate) async fn their_client_exchanges_then_closes(peer: &Peer, reason: &str) -> ClientRun {
    let mut server = ours::EchoServer::start().await;
    let big = ours::pattern(300_000);
    let mut expected_echoes = ours::assorted();
    expected_echoes.extend([ours::text("fragmented ✓"), ours::binary(big.clone())]);
    let lasts: Vec<Message> = (0..20).map(|i| ours::text(&format!("last {i}"))).collect();

    let mut actions: Vec<String> = ours::assorted().iter().map(action).collect();
    actions.push(format!("recv:{}", ours::assorted().len()));
    actions.push("fragments:frag|ment|ed ✓".into());
    actions.push(format!("binary-fragments:{}:3", big.len()));
    actions.push("recv:2".into());
    actions.push("ping".into());
    // They close right after messages our server has not read yet.
    actions.extend(lasts.iter().map(action));
    actions.push(format!("close:4002:{reason}"));
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let theirs = run_client(peer, &server.url, &[], &actions).await;

    let ours = server.report().await;
    let mut sent = expected_echoes.clone();
    sent.extend(lasts);
    assert_eq!(ours.received, sent, "every message they sent arrived");
    ours::assert_clean_close(
        &ours.info,
        Initiator::Remote,
        ours::close_frame(4002, ""),
        ours::close_frame(4002, reason),
    );
    // Our server closes TCP as soon as its reply is written, before their reading of
    // that reply could make them close.
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
    theirs
}

/// The peer's client asks our echo server for a burst and then for its Close with 4001
/// and `reason`. Checks that they received the burst and our server completed the
/// closing handshake (their reply echoing our code and reason); returns their run and
/// our server's report.
pub(crate) async fn our_server_closes_first(
    peer: &Peer,
    reason: &str,
) -> (ClientRun, ours::ServerReport) {
    let mut server = ours::EchoServer::start().await;
    let close = format!("close 4001 {reason}");
    let theirs = run_client(
        peer,
        &server.url,
        &[],
        &["text:burst 50", &format!("text:{close}")],
    )
    .await;
    assert_eq!(theirs.messages, Seen::all(&ours::bursts(0..50)));

    let ours = server.report().await;
    assert_eq!(
        ours.received,
        vec![ours::text("burst 50"), ours::text(&close)]
    );
    assert_eq!(ours.sent, ours::bursts(0..50));
    ours::assert_clean_close(
        &ours.info,
        Initiator::Local,
        ours::close_frame(4001, reason),
        ours::close_frame(4001, reason),
    );
    (theirs, ours)
}

/// Our client, built by `client`, against the peer's echo server started with
/// `options`: every [`compressible`] message echoed, then our Close with 1000. Returns
/// the extensions our handshake's response agreed and their server's report, which must
/// list every message both ways.
pub(crate) async fn our_client_echoes_compressible(
    peer: &Peer,
    options: &[&str],
    client: ClientBuilder,
) -> (Vec<String>, Json) {
    let mut server = ScriptServer::start(peer, options).await;
    let (mut ws, response) = ours::bounded("connect", client.connect(&server.url))
        .await
        .expect("our handshake with their server");
    let messages = compressible();
    for message in &messages {
        ws.send(message.clone()).await.expect("send");
        assert_eq!(&ours::next(&mut ws).await, message);
    }
    let info = ours::bounded("our close", ws.close(CloseCode::NORMAL, "done"))
        .await
        .expect("close");
    ours::assert_clean_close(
        &info,
        Initiator::Local,
        ours::close_frame(1000, "done"),
        ours::close_frame(1000, "done"),
    );

    let theirs = server.report().await;
    assert_eq!(Seen::list(theirs.get("received")), Seen::all(&messages));
    assert_eq!(
        Seen::list(theirs.get("sent_messages")),
        Seen::all(&messages)
    );
    (response.extensions, theirs)
}

/// Our client, offering permessage-deflate, against the peer's echo server started with
/// `options`: a text and a binary message each sent in parts
/// ([`sockeye::WebSocket::send_fragment`], uncompressed whatever was agreed), which their
/// server must receive whole and echo. Returns the extensions agreed.
pub(crate) async fn our_client_sends_in_fragments(peer: &Peer, options: &[&str]) -> Vec<String> {
    let mut server = ScriptServer::start(peer, options).await;
    let (mut ws, response) = ours::bounded(
        "connect",
        ClientBuilder::new().deflate(true).connect(&server.url),
    )
    .await
    .expect("our handshake with their server");
    let text = json_text(3_000);
    let (head, tail) = text.split_at(1_000);
    for (part, fin) in [(head, false), ("", false), (tail, true)] {
        ws.send_fragment(part, fin).await.expect("send a part");
    }
    let binary = ours::pattern(100_000);
    for (i, part) in binary.chunks(30_000).enumerate() {
        ws.send_fragment(part.to_vec(), i == 3)
            .await
            .expect("send a part");
    }
    let messages = [ours::text(&text), ours::binary(binary)];
    for message in &messages {
        assert_eq!(&ours::next(&mut ws).await, message);
    }
    ours::bounded("our close", ws.close(CloseCode::NORMAL, ""))
        .await
        .expect("close");
    let theirs = server.report().await;
    assert_eq!(Seen::list(theirs.get("received")), Seen::all(&messages));
    response.extensions
}

/// Our server's permessage-deflate settings for [`their_client_echoes_compressible`],
/// each with the response it gives an offer of `permessage-deflate;
/// client_max_window_bits` (what every script peer's client offers): the defaults, which
/// accept the offer as it is, and every parameter set by our server, unasked except
/// `client_max_window_bits`, which the offer allows.
pub(crate) fn our_deflate_settings() -> [(DeflateConfig, &'static str); 2] {
    [
        (DeflateConfig::enabled(), "permessage-deflate"),
        (
            DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(11),
                ..DeflateConfig::enabled()
            },
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11",
        ),
    ]
}

/// The peer's client, offering permessage-deflate (`--compression deflate`), against our
/// echo server with `deflate`: every [`compressible`] message echoed, then their Close
/// with 1000. Returns their run, whose "open" event says what they agreed.
pub(crate) async fn their_client_echoes_compressible(
    peer: &Peer,
    deflate: DeflateConfig,
) -> ClientRun {
    let mut server =
        ours::EchoServer::start_with(sockeye::ServerBuilder::new().deflate_config(deflate)).await;
    let messages = compressible();
    let mut actions: Vec<String> = messages.iter().map(action).collect();
    actions.push(format!("recv:{}", messages.len()));
    actions.push("close:1000:bye".into());
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let theirs = run_client(peer, &server.url, &["--compression", "deflate"], &actions).await;
    assert_eq!(theirs.messages, Seen::all(&messages));

    let ours = server.report().await;
    assert_eq!(ours.received, messages);
    assert_eq!(ours.sent, messages);
    ours::assert_clean_close(
        &ours.info,
        Initiator::Remote,
        ours::close_frame(1000, ""),
        ours::close_frame(1000, "bye"),
    );
    theirs
}

/// The peer's client, not offering permessage-deflate (`--compression none`), against
/// our echo server with it enabled: a compressible message echoed. Returns their run,
/// whose "open" event must show no extension.
pub(crate) async fn their_client_without_compression(peer: &Peer) -> ClientRun {
    let mut server =
        ours::EchoServer::start_with(sockeye::ServerBuilder::new().deflate(true)).await;
    let message = ours::text(&json_text(5_000));
    let theirs = run_client(
        peer,
        &server.url,
        &["--compression", "none"],
        &[&action(&message), "recv:1", "close:1000:"],
    )
    .await;
    assert_eq!(theirs.messages, Seen::all(std::slice::from_ref(&message)));
    assert_eq!(server.report().await.received, [message]);
    theirs
}
