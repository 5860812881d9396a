//! `sockeye serve` end to end: the binary listens on a free port (its `listening on` line
//! is the sync point) and is talked to with the library's client, with raw bytes where a
//! browser's exact handshake matters, and with a browser (headless Chromium, through the
//! library's interop test scripts; `bash scripts/test-deps.sh` installs it).

#[path = "../../sockeye/tests/interop/browser.rs"]
mod browser;
#[path = "../../sockeye/tests/interop/json.rs"]
mod json;
#[path = "../../sockeye/tests/interop/ours.rs"]
mod ours;
#[path = "../../sockeye/tests/interop/scripts.rs"]
mod scripts;

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use sockeye::{CloseCode, Message};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Upper bound for every wait.
const LIMIT: Duration = Duration::from_secs(10);

/// A running `sockeye serve` and the lines of its stderr.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: mpsc::UnboundedReceiver<String>,
}

impl Serve {
    async fn start(extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sockeye"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the sockeye binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, mut log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = timeout(LIMIT, async {
            loop {
                let line = log.recv().await.expect("serve exited before listening");
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return addr.parse().expect("a socket address");
                }
            }
        })
        .await
        .expect("serve printed its address");
        Serve { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Waits for a log line containing every one of `parts`; earlier lines are skipped.
    async fn wait_log(&mut self, parts: &[&str]) -> String {
        let found = timeout(LIMIT, async {
            while let Some(line) = self.log.recv().await {
                if parts.iter().all(|part| line.contains(part)) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("serve's stderr ended without a line with {parts:?}"),
            Err(_) => panic!("no log line with {parts:?} within {LIMIT:?}"),
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("serve is running");
        let status = std::process::Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {name} {pid} failed");
    }

    async fn exit_status(&mut self) -> ExitStatus {
        timeout(LIMIT, self.child.wait())
            .await
            .expect("serve exited in time")
            .expect("serve's status")
    }
}

#[tokio::test]
async fn echo_server_echoes_text_and_binary_on_any_path_and_logs_the_close() {
    let mut serve = Serve::start(&[]).await;
    let (mut ws, response) = timeout(LIMIT, sockeye::connect(&serve.url("/any/path?room=1")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.subprotocol, None);
    serve.wait_log(&["session opened"]).await;

    let messages = [
        Message::Text("hello".into()),
        Message::Binary(vec![0, 1, 2, 0xff].into()),
        Message::Text("héllo again".into()),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        let echoed = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, message);
    }

    let info = timeout(LIMIT, ws.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap()
        .unwrap();
    assert!(info.clean, "{info:?}");
    assert_eq!(info.code, CloseCode::NORMAL);
    serve
        .wait_log(&[
            "session closed",
            "code=1000",
            "reason=\"bye\"",
            "clean=true",
        ])
        .await;
}

/// Reads an HTTP response head byte by byte, up to and including the blank line.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("a complete response head"));
    }
    String::from_utf8(head).expect("an ASCII head")
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(field, _)| field.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

/// A WebSocket session with the server at `addr` over a bare TCP stream: the opening
/// handshake written by hand, its 101 read; frames are then the caller's to write and read.
async fn raw_session(addr: SocketAddr) -> TcpStream {
    let mut stream = timeout(LIMIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = timeout(LIMIT, read_head(&mut stream)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    stream
}

/// A client frame (FIN set, masked) with a payload under 126 bytes.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn echo_server_accepts_browser_handshakes() {
    let serve = Serve::start(&[]).await;
    // What Chrome and Firefox send for `new WebSocket("ws://HOST/")`: an Origin, an
    // offer of permessage-deflate, no subprotocol, and (Firefox) a Connection list.
    let browsers = [
        (
            "Upgrade",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.0.0 Safari/537.36",
        ),
        (
            "keep-alive, Upgrade",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0",
        ),
    ];
    for (connection, user_agent) in browsers {
        let mut stream = timeout(LIMIT, TcpStream::connect(serve.addr))
            .await
            .unwrap()
            .unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\n\
             Pragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: {user_agent}\r\n\
             Upgrade: websocket\r\nOrigin: http://localhost:8000\r\n\
             Sec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br\r\n\
             Accept-Language: en-US,en;q=0.9\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
            addr = serve.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = timeout(LIMIT, read_head(&mut stream)).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{user_agent}: {head}");
        // RFC 6455 1.3's sample key and its accept value.
        assert_eq!(
            header(&head, "Sec-WebSocket-Accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(header(&head, "Sec-WebSocket-Protocol"), None, "{head}");
        assert_eq!(header(&head, "Sec-WebSocket-Extensions"), None, "{head}");

        stream.write_all(&masked_frame(0x1, b"hi")).await.unwrap();
        let mut echo = [0u8; 4];
        timeout(LIMIT, stream.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, [0x81, 0x02, b'h', b'i'], "{user_agent}");

        stream
            .write_all(&masked_frame(0x8, &1000u16.to_be_bytes()))
            .await
            .unwrap();
        let mut reply = [0u8; 4];
        timeout(LIMIT, stream.read_exact(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, [0x88, 0x02, 0x03, 0xe8], "{user_agent}");
        // The server closes the TCP connection first (RFC 6455 7.1.1).
        let mut rest = Vec::new();
        timeout(LIMIT, stream.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }
}

#[tokio::test]
async fn keepalive_closes_a_client_that_stops_answering_pings_with_1011() {
    let mut serve = Serve::start(&["--keepalive", "100ms"]).await;
    let mut stream = raw_session(serve.addr).await;
    // A client that reads but never answers: a Ping (opcode 9, unmasked from a server),
    // then, a keepalive later, a Close with 1011, then the end of the connection.
    let mut frames = Vec::new();
    timeout(LIMIT, stream.read_to_end(&mut frames))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frames[0], 0x89, "a Ping first: {frames:?}");
    let ping_len = usize::from(frames[1]);
    let close = &frames[2 + ping_len..];
    assert_eq!(&close[..4], &[0x88, close[1], 0x03, 0xf3], "{frames:?}");
    // The outcome: no Close came back, so 1006 (RFC 6455 7.1.5), and why.
    serve
        .wait_log(&[
            "session closed",
            "code=1006",
            "clean=false",
            "error=keepalive ping timed out",
        ])
        .await;
}

#[tokio::test]
async fn a_browser_talks_to_the_echo_server() {
    // The README's main job: `sockeye serve`, which a page's WebSocket can talk to as it
    // is, here with compression, which Chromium offers.
    let mut serve = Serve::start(&["--deflate"]).await;
    let big = scripts::json_text(100_000);
    let actions = [
        "text:hello from a page ✓".to_owned(),
        format!("text:{big}"),
        "binary:70000".to_owned(),
        "recv:3".to_owned(),
        "close:1000:page done".to_owned(),
    ];
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let page =
        scripts::run_client(browser::browser(), &serve.url("/any/path"), &[], &actions).await;
    assert_eq!(
        page.open.get("extensions").as_str(),
        Some("permessage-deflate")
    );
    let echoes = [
        Message::Text("hello from a page ✓".into()),
        Message::Text(big),
        Message::Binary(ours::pattern(70_000).into()),
    ];
    assert_eq!(page.messages, scripts::Seen::all(&echoes));
    // The close event has our reply's code; the reply has no reason.
    browser::assert_page_close(&page.closed, 1000, "", true, true);
    serve
        .wait_log(&[
            "session closed",
            "code=1000",
            "reason=\"page done\"",
            "clean=true",
        ])
        .await;
}

#[tokio::test]
async fn broadcast_server_sends_every_message_to_every_client() {
    let mut serve = Serve::start(&["--broadcast"]).await;
    let (mut a, _) = timeout(LIMIT, sockeye::connect(&serve.url("/")))
        .await
        .unwrap()
        .unwrap();
    // A message that comes back to its sender proves the sender is in the room.
    a.send("a is here").await.unwrap();
    let got = timeout(LIMIT, a.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, Message::Text("a is here".into()));

    let (mut b, _) = timeout(LIMIT, sockeye::connect(&serve.url("/other")))
        .await
        .unwrap()
        .unwrap();
    b.send("b is here").await.unwrap();
    for ws in [&mut b, &mut a] {
        let got = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::Text("b is here".into()));
    }

    a.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    a.send("from a").await.unwrap();
    for ws in [&mut a, &mut b] {
        let got = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::Binary(vec![1, 2, 3].into()));
        let got = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::Text("from a".into()));
    }

    // B leaves; A stays alone in the room and still hears itself.
    let info = timeout(LIMIT, b.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap()
        .unwrap();
    assert!(info.clean, "{info:?}");
    serve
        .wait_log(&[
            "session closed",
            "code=1000",
            "reason=\"bye\"",
            "clean=true",
        ])
        .await;
    a.send("alone").await.unwrap();
    let got = timeout(LIMIT, a.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, Message::Text("alone".into()));
}

#[tokio::test]
async fn broadcast_server_closes_a_client_that_does_not_read_with_1008() {
    let mut serve = Serve::start(&["--broadcast"]).await;
    // The slow client is in the room (its own message came back) and then never reads.
    let (mut slow, _) = timeout(LIMIT, sockeye::connect(&serve.url("/")))
        .await
        .unwrap()
        .unwrap();
    slow.send("slow is here").await.unwrap();
    let got = timeout(LIMIT, slow.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, Message::Text("slow is here".into()));
    let (mut fast, _) = timeout(LIMIT, sockeye::connect(&serve.url("/")))
        .await
        .unwrap()
        .unwrap();

    // The fast client sends (and reads back its own copies) until the server gives up on
    // the slow one: its reader's buffer, the sockets' buffers, then the server's outgoing
    // buffer fill up. 2000 x 64 KiB bounds the loop far above what that takes.
    let chunk = Message::Binary(vec![0x5a; 64 * 1024].into());
    let flood = async {
        for _ in 0..2000 {
            fast.send(chunk.clone()).await.unwrap();
            let got = timeout(LIMIT, fast.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(got, chunk);
        }
        panic!("the slow client was never closed");
    };
    tokio::select! {
        _ = serve.wait_log(&["client too slow: closing it with 1008"]) => {}
        () = flood => {}
    }

    // Reading at last, the slow client gets what was queued for it, then the Close.
    let drained = timeout(LIMIT, async {
        let mut count = 0;
        while let Some(message) = slow.next().await {
            assert_eq!(message.unwrap(), chunk);
            count += 1;
        }
        count
    })
    .await
    .unwrap();
    assert!(drained > 0);
    let info = timeout(LIMIT, slow.session().closed()).await.unwrap();
    assert_eq!(info.code, CloseCode::POLICY_VIOLATION, "{info:?}");
    assert_eq!(info.reason, "too slow");

    // The fast client is still served.
    fast.send("still here").await.unwrap();
    loop {
        let got = timeout(LIMIT, fast.next()).await.unwrap().unwrap().unwrap();
        if got != chunk {
            assert_eq!(got, Message::Text("still here".into()));
            break;
        }
    }
}

/// `signal` makes the server close its session with 1001 and exit 0.
async fn shutdown_on(signal: &str) {
    let mut serve = Serve::start(&[]).await;
    let (mut ws, _) = timeout(LIMIT, sockeye::connect(&serve.url("/")))
        .await
        .unwrap()
        .unwrap();
    // An echo proves the session is up on the server's side.
    ws.send("ping").await.unwrap();
    let got = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, Message::Text("ping".into()));

    serve.signal(signal);
    assert!(timeout(LIMIT, ws.next()).await.unwrap().is_none());
    let info = timeout(LIMIT, ws.session().closed()).await.unwrap();
    assert_eq!(info.code, CloseCode::GOING_AWAY, "{info:?}");
    assert!(info.clean, "{info:?}");
    serve
        .wait_log(&["shutting down", &format!("signal=\"SIG{signal}\"")])
        .await;
    serve
        .wait_log(&["session closed", "code=1001", "clean=true"])
        .await;
    let status = serve.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_exits_zero() {
    shutdown_on("TERM").await;
}

#[tokio::test]
async fn ctrl_c_closes_sessions_with_1001_and_exits_zero() {
    shutdown_on("INT").await;
}

#[tokio::test]
async fn a_second_signal_exits_at_once_with_130() {
    let mut serve = Serve::start(&[]).await;
    // A client that will never answer the server's Close: the shutdown would wait for it.
    let mut stream = raw_session(serve.addr).await;
    stream.write_all(&masked_frame(0x1, b"up?")).await.unwrap();
    let mut echo = [0u8; 5];
    timeout(LIMIT, stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo, [0x81, 0x03, b'u', b'p', b'?']);

    serve.signal("TERM");
    serve
        .wait_log(&["closing sessions with 1001", "sessions=1"])
        .await;
    serve.signal("TERM");
    serve.wait_log(&["second signal"]).await;
    let status = serve.exit_status().await;
    assert_eq!(status.code(), Some(130), "{status}");
    drop(stream);
}

#[tokio::test]
async fn serve_exits_one_when_the_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = timeout(
        LIMIT,
        Command::new(env!("CARGO_BIN_EXE_sockeye"))
            .args(["serve", "--addr", &addr])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn deflate_flag_accepts_compression_offers() {
    let text = "{\"compressible\":true}".repeat(100);
    for (flag, expected) in [(true, &["permessage-deflate"][..]), (false, &[][..])] {
        let extra: &[&str] = if flag { &["--deflate"] } else { &[] };
        let serve = Serve::start(extra).await;
        let (mut ws, response) = timeout(
            LIMIT,
            sockeye::ClientBuilder::new()
                .deflate(true)
                .connect(&serve.url("/")),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(response.extensions, expected, "--deflate {flag}");
        ws.send(Message::Text(text.clone())).await.unwrap();
        let echoed = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, Message::Text(text.clone()));
    }
}
