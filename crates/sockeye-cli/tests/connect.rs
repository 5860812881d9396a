//! `sockeye connect` end to end, against servers built with the library (or a raw TCP
//! socket for a lost connection): stdin lines out, replies on stdout, the close on stderr,
//! and the exit status. Each step waits for the previous one's effect, never for time.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use sockeye::{Accept, CloseCode, CloseInfo, Message, Reject, ServerBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Upper bound for every wait.
const LIMIT: Duration = Duration::from_secs(10);

/// What the test server saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Message(Message),
    Closed(CloseInfo),
}

/// A library server that answers each text message `t` with the text `echo: t` and the
/// binary bytes of `t`, and reports what it received and how each session ended.
async fn reply_server(builder: ServerBuilder) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |mut ws| {
        let tx = tx.clone();
        async move {
            let session = ws.session();
            while let Some(Ok(message)) = ws.next().await {
                let _ = tx.send(Seen::Message(message.clone()));
                if let Message::Text(text) = message
                    && (ws.send(format!("echo: {text}")).await.is_err()
                        || ws
                            .send(Message::Binary(text.into_bytes().into()))
                            .await
                            .is_err())
                {
                    break;
                }
            }
            drop(ws);
            let _ = tx.send(Seen::Closed(session.closed().await));
        }
    }));
    (addr, seen)
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    timeout(LIMIT, seen.recv())
        .await
        .expect("the server saw something in time")
        .expect("the server is running")
}

/// A running `sockeye connect`.
struct Connect {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

impl Connect {
    fn spawn(args: &[&str]) -> Connect {
        Connect::spawn_with_env(args, &[])
    }

    /// With `vars` as the only proxy variables of its environment.
    fn spawn_with_env(args: &[&str], vars: &[(&str, &str)]) -> Connect {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sockeye"));
        for scheme in ["http", "https", "all", "no"] {
            command.env_remove(format!("{scheme}_proxy"));
            command.env_remove(format!("{}_PROXY", scheme.to_uppercase()));
        }
        let mut child = command
            .envs(vars.iter().copied())
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the sockeye binary starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Connect {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn line(&mut self) -> String {
        timeout(LIMIT, self.stdout.next_line())
            .await
            .expect("a line on stdout in time")
            .unwrap()
            .expect("stdout is still open")
    }

    /// Ends stdin (unless `keep_stdin`), waits for the exit; returns the status, the rest of
    /// stdout and all of stderr.
    async fn finish(mut self, keep_stdin: bool) -> (ExitStatus, Vec<String>, String) {
        if !keep_stdin {
            drop(self.stdin.take());
        }
        let status = timeout(LIMIT, self.child.wait())
            .await
            .expect("connect exited in time")
            .unwrap();
        let mut rest = Vec::new();
        while let Some(line) = timeout(LIMIT, self.stdout.next_line())
            .await
            .unwrap()
            .unwrap()
        {
            rest.push(line);
        }
        let stderr = timeout(LIMIT, self.stderr).await.unwrap().unwrap();
        (status, rest, stderr)
    }
}

#[tokio::test]
async fn connect_sends_stdin_lines_prints_replies_and_exits_zero_on_clean_close() {
    let (addr, mut seen) = reply_server(ServerBuilder::new()).await;
    let mut connect = Connect::spawn(&[&format!("ws://{addr}/")]);

    connect.write(b"hello\n").await;
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Message(Message::Text("hello".into()))
    );
    assert_eq!(connect.line().await, "echo: hello");
    assert_eq!(connect.line().await, "binary: 68656c6c6f");

    // CRLF line ends are stripped too; other characters pass unchanged.
    connect.write("wörld \t!\r\n".as_bytes()).await;
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Message(Message::Text("wörld \t!".into()))
    );
    assert_eq!(connect.line().await, "echo: wörld \t!");
    assert_eq!(connect.line().await, "binary: 77c3b6726c64200921");

    // The end of stdin closes the connection with 1000.
    let (status, rest, stderr) = connect.finish(false).await;
    let Seen::Closed(info) = next_seen(&mut seen).await else {
        panic!("the session closed");
    };
    assert_eq!(info.code, CloseCode::NORMAL, "{info:?}");
    assert!(info.clean, "{info:?}");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        stderr.contains("connection closed: code 1000 (normal closure) reason \"\" clean true"),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_offers_subprotocols_headers_and_origin() {
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let builder = ServerBuilder::new().on_request(move |request| {
        let _ = requests_tx.send(request.clone());
        Ok(Accept {
            subprotocol: request.select_subprotocol(&["chat.v1"]),
            ..Accept::default()
        })
    });
    let (addr, mut seen) = reply_server(builder).await;
    let url = format!("ws://{addr}/room/7?x=1");
    let connect = Connect::spawn(&[
        &url,
        "--subprotocol",
        "chat.v2",
        "--subprotocol",
        "chat.v1",
        "--header",
        "X-Token:  abc:def ",
        "--header",
        "X-Other: 2",
        "--origin",
        "http://example.test",
    ]);
    let request = timeout(LIMIT, requests.recv()).await.unwrap().unwrap();
    assert_eq!(request.path, "/room/7?x=1");
    assert_eq!(request.subprotocols, ["chat.v2", "chat.v1"]);
    assert_eq!(request.headers["x-token"], "abc:def");
    assert_eq!(request.headers["x-other"], "2");
    assert_eq!(request.origin(), Some("http://example.test"));

    let (status, _, stderr) = connect.finish(false).await;
    assert!(matches!(next_seen(&mut seen).await, Seen::Closed(_)));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("connected to {url} (subprotocol chat.v1)")),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_deflate_offers_compression_and_names_it() {
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let builder = ServerBuilder::new()
        .deflate(true)
        .on_request(move |request| {
            let _ = requests_tx.send(request.clone());
            Ok(Accept::default())
        });
    let (addr, mut seen) = reply_server(builder).await;
    let url = format!("ws://{addr}/");
    let mut connect = Connect::spawn(&[&url, "--deflate"]);
    let request = timeout(LIMIT, requests.recv()).await.unwrap().unwrap();
    assert_eq!(
        request.extensions,
        ["permessage-deflate; client_max_window_bits"]
    );
    let line = "{\"compressible\":true}".repeat(50);
    echo_line(&mut connect, &mut seen, &line).await;
    let (status, _, stderr) = connect.finish(false).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("connected to {url} (permessage-deflate)")),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_pings_at_the_interval_and_prints_each_round_trip() {
    let (addr, mut seen) = reply_server(ServerBuilder::new()).await;
    let url = format!("ws://{addr}/");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockeye"))
        .args(["connect", &url, "--ping", "20ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    // Three round trips, each on a line of its own, while stdin stays open.
    let mut round_trips = Vec::new();
    while round_trips.len() < 3 {
        let line = timeout(LIMIT, stderr.next_line())
            .await
            .expect("a line on stderr in time")
            .unwrap()
            .expect("stderr is open");
        if let Some(ms) = line.strip_prefix("pong: ") {
            let ms: f64 = ms.strip_suffix(" ms").unwrap().parse().unwrap();
            assert!((0.0..1000.0).contains(&ms), "{line}");
            round_trips.push(ms);
        } else {
            assert!(line.starts_with("connected to "), "{line}");
        }
    }
    drop(child.stdin.take());
    let status = timeout(LIMIT, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    // Pings are not messages: the server saw only the clean close.
    match next_seen(&mut seen).await {
        Seen::Closed(info) => assert!(info.clean, "{info:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connect_refuses_a_ping_interval_under_a_millisecond() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sockeye"))
        .args(["connect", "ws://127.0.0.1:9/", "--ping", "0s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("shorter than 1ms"), "{stderr}");
}

#[tokio::test]
async fn connect_exits_zero_when_the_server_closes_cleanly_while_stdin_is_open() {
    let server = sockeye::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws| async move {
        if let Some(Ok(_)) = ws.next().await {
            let _ = ws.close(CloseCode(4000), "done").await;
        }
    }));
    let mut connect = Connect::spawn(&[&format!("ws://{addr}")]);
    connect.write(b"please close\n").await;
    // stdin stays open: the connection's end alone ends the process.
    let (status, rest, stderr) = connect.finish(true).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        stderr.contains("connection closed: code 4000 (private) reason \"done\" clean true"),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_exits_one_when_the_connection_is_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut connect = Connect::spawn(&[&format!("ws://{addr}/")]);
    let (mut stream, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
    // Complete the handshake by hand, then vanish without a Close frame.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(timeout(LIMIT, stream.read_u8()).await.unwrap().unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim())
        .expect("a key");
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        sockeye_proto::handshake::accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    connect.write(b"anyone there?\n").await;
    let mut frame_start = [0u8; 1];
    timeout(LIMIT, stream.read_exact(&mut frame_start))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame_start[0], 0x81, "a text frame");
    drop(stream);

    let (status, rest, stderr) = connect.finish(true).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(stderr.contains("code 1006 (abnormal closure)"), "{stderr}");
    assert!(stderr.contains("clean false"), "{stderr}");
}

/// Sends `text` as a line to `connect`, and checks that the server received it and that
/// `connect` printed its echo.
async fn echo_line(connect: &mut Connect, seen: &mut mpsc::UnboundedReceiver<Seen>, text: &str) {
    connect.write(format!("{text}\n").as_bytes()).await;
    assert_eq!(
        next_seen(seen).await,
        Seen::Message(Message::Text(text.into()))
    );
    assert_eq!(connect.line().await, format!("echo: {text}"));
}

/// Checks that the next request head a test proxy read asked for a tunnel to `target`.
async fn tunnel_asked(heads: &mut mpsc::UnboundedReceiver<String>, target: &str) {
    let head = timeout(LIMIT, heads.recv()).await.unwrap().unwrap();
    assert!(
        head.starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")),
        "{head}"
    );
}

#[tokio::test]
async fn connect_takes_the_proxy_the_environment_names_but_not_for_this_machine() {
    let (addr, mut seen) = reply_server(ServerBuilder::new()).await;
    // A proxy that opens a tunnel to that server whatever host it is asked for.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let (heads_tx, mut heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = proxy.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(client.read_u8().await.unwrap());
            }
            let _ = heads_tx.send(String::from_utf8(head).unwrap());
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
            let mut server = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });

    // A host name that only the proxy knows: the session can only go through it. The
    // proxies named for wss:// and in HTTP_PROXY (never read: a CGI request can set it)
    // are closed ports; ALL_PROXY names the test proxy.
    let port = addr.port();
    let url = format!("ws://echo.test:{port}/");
    let mut connect = Connect::spawn_with_env(
        &[&url],
        &[
            ("https_proxy", "http://127.0.0.1:1"),
            ("HTTP_PROXY", "http://127.0.0.1:1"),
            ("ALL_PROXY", &proxy_url),
        ],
    );
    echo_line(&mut connect, &mut seen, "via the environment's proxy").await;
    let (status, _, stderr) = connect.finish(false).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    tunnel_asked(&mut heads, &format!("echo.test:{port}")).await;
    assert!(matches!(next_seen(&mut seen).await, Seen::Closed(_)));

    // This machine's server is reached directly, whatever the variables say.
    let url = format!("ws://{addr}/");
    let vars = [
        ("http_proxy", proxy_url.as_str()),
        ("all_proxy", &proxy_url),
    ];
    let mut connect = Connect::spawn_with_env(&[&url], &vars);
    echo_line(&mut connect, &mut seen, "straight to the server").await;
    let (status, _, stderr) = connect.finish(false).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        heads.try_recv().is_err(),
        "the proxy was asked for a tunnel"
    );
}

#[tokio::test]
async fn connect_goes_through_the_proxy_and_exits_two_when_it_refuses() {
    let (addr, mut seen) = reply_server(ServerBuilder::new()).await;
    let url = format!("ws://{addr}/");
    // A proxy that opens the first tunnel it is asked for and refuses the second.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let (heads_tx, mut heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for answer in ["200 Connection established", "403 Forbidden"] {
            let (mut client, _) = proxy.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(client.read_u8().await.unwrap());
            }
            let _ = heads_tx.send(String::from_utf8(head).unwrap());
            let reply = format!("HTTP/1.1 {answer}\r\n\r\n");
            client.write_all(reply.as_bytes()).await.unwrap();
            if answer.starts_with("200") {
                let mut server = tokio::net::TcpStream::connect(addr).await.unwrap();
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        }
    });
    let proxy_url = format!("http://{proxy_addr}");
    let mut connect = Connect::spawn(&[&url, "--proxy", &proxy_url]);
    echo_line(&mut connect, &mut seen, "via the proxy").await;
    let (status, _, stderr) = connect.finish(false).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    tunnel_asked(&mut heads, &addr.to_string()).await;

    let (status, _, stderr) = Connect::spawn(&[&url, "--proxy", &proxy_url])
        .finish(true)
        .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "proxy {proxy_addr} did not open a tunnel: HTTP status 403 Forbidden"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_exits_two_when_the_connection_is_refused() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (status, rest, stderr) = Connect::spawn(&[&format!("ws://{addr}/")])
        .finish(true)
        .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        stderr.contains(&format!("could not connect to {addr}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_exits_two_when_the_handshake_is_refused() {
    let builder = ServerBuilder::new().on_request(|_| Err(Reject::new(403, "members only")));
    let (addr, _seen) = reply_server(builder).await;
    let (status, _, stderr) = Connect::spawn(&[&format!("ws://{addr}/")])
        .finish(true)
        .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
}

#[tokio::test]
async fn connect_exits_two_for_an_invalid_url_or_header() {
    for args in [
        &["http://127.0.0.1:9/"][..],
        &["ws://127.0.0.1:9/", "--header", "no colon here"][..],
        &["ws://127.0.0.1:9/", "--header", "Upgrade: h2c"][..],
    ] {
        let (status, _, stderr) = Connect::spawn(args).finish(true).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("connected"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn connect_reports_and_skips_lines_that_are_not_utf8() {
    let (addr, mut seen) = reply_server(ServerBuilder::new()).await;
    let mut connect = Connect::spawn(&[&format!("ws://{addr}/")]);
    connect.write(b"caf\xe9\nok\n").await;
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Message(Message::Text("ok".into()))
    );
    assert_eq!(connect.line().await, "echo: ok");
    assert_eq!(connect.line().await, "binary: 6f6b");
    let (status, _, stderr) = connect.finish(false).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stdin line 1 is not UTF-8: not sent"),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_help_documents_the_output_and_exit_codes() {
    let output = timeout(
        LIMIT,
        Command::new(env!("CARGO_BIN_EXE_sockeye"))
            .args(["connect", "--help"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for documented in [
        "\"binary: \" and lowercase hex",
        "0  the connection closed cleanly",
        "1  it ended uncleanly",
        "2  it was never established",
        "--subprotocol <NAME>",
        "--header <NAME: VALUE>",
    ] {
        assert!(
            help.contains(documented),
            "{documented:?} missing from:\n{help}"
        );
    }
}
