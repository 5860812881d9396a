//! `sockeye-autobahn`: the test server and the test client that run Sockeye against the
//! Autobahn|TestSuite. `conformance/run.sh` builds this binary and runs both roles.
//!
//! ```text
//! sockeye-autobahn server [ADDR]          echo server for `wstest -m fuzzingclient`
//!                                         (default 127.0.0.1:9002)
//! sockeye-autobahn server-tls [ADDR]      the same over wss://, with a self-signed
//!                                         certificate made at start (default 127.0.0.1:9003)
//! sockeye-autobahn client [URL] [AGENT]   test client for `wstest -m fuzzingserver`
//!                                         (default ws://127.0.0.1:9001, agent sockeye)
//! ```
//!
//! Both echo every Text and Binary message back unchanged and leave every protocol
//! decision to the library: nothing here knows about individual test cases. Only the
//! message and frame size limits are raised (see [`config`]), because the largest cases of
//! section 9 send messages of 16 MiB.

use std::process::ExitCode;

use sockeye::{ClientBuilder, CloseInfo, Config, Message, ServerBuilder, WebSocket};

/// The settings of both roles: 64 MiB per frame and per message, four times the largest
/// message of the suite (cases 9.1.6 and 9.2.6 send 16 MiB in one frame), and
/// permessage-deflate enabled with its default parameters for sections 12 and 13. The
/// client then offers `permessage-deflate; client_max_window_bits`, which lets the
/// fuzzingserver set our window (13.3-13.7) and ask us not to keep context (13.2, 13.5-13.7);
/// the server accepts the first valid offer with whatever it asks for. The library's
/// defaults (16 MiB per frame, 64 MiB per message, deflate off) stay what they are.
fn config() -> Config {
    let mut config = Config::default();
    config.protocol.max_frame_size = Some(64 << 20);
    config.protocol.max_message_size = Some(64 << 20);
    config.protocol.deflate.enabled = true;
    config
}

/// Sends every received message back until the session ends; returns how it ended.
async fn echo(mut ws: WebSocket) -> CloseInfo {
    let session = ws.session();
    while let Some(received) = ws.next().await {
        let Ok(message) = received else {
            // The session failed; the library already sent the Close frame it called for.
            break;
        };
        if ws.send(message).await.is_err() {
            // The session is closing: nothing more may be sent.
            break;
        }
    }
    drop(ws);
    session.closed().await
}

/// Test server: accepts connections on `addr` and echoes on each one, until killed; over
/// TLS when `tls` is set (a self-signed certificate for 127.0.0.1 and localhost, which
/// wstest does not verify).
async fn server(addr: &str, tls: bool) -> sockeye::Result<()> {
    let mut builder = ServerBuilder::new().config(config());
    if tls {
        let dir = std::env::temp_dir().join(format!("sockeye-autobahn-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let key = rcgen::KeyPair::generate().map_err(std::io::Error::other)?;
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(std::io::Error::other)?;
        let cert = params.self_signed(&key).map_err(std::io::Error::other)?;
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        builder = builder.tls_pem(&cert_path, &key_path)?;
    }
    let server = builder.bind(addr).await?;
    eprintln!(
        "sockeye-autobahn: echo server listening on {}",
        server.local_addr()?
    );
    server
        .serve(|ws| async move {
            echo(ws).await;
        })
        .await
}

/// Test client, following the fuzzingserver's protocol: ask for the number of cases, run
/// each one as an echo session, then ask the server to write its reports.
async fn client(base: &str, agent: &str) -> Result<(), String> {
    let builder = ClientBuilder::new().config(config());

    let url = format!("{base}/getCaseCount");
    let (mut ws, _) = builder
        .connect(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let count = match ws.next().await {
        Some(Ok(Message::Text(text))) => text
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{url}: not a case count: {text:?}"))?,
        other => return Err(format!("{url}: expected the case count, got {other:?}")),
    };
    // The server closes the session once it has sent the count.
    echo(ws).await;
    eprintln!("sockeye-autobahn: {count} cases");

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match builder.connect(&url).await {
            Ok((ws, _)) => {
                let info = echo(ws).await;
                eprintln!("sockeye-autobahn: case {case}/{count}: {info}");
            }
            // The server records the case as failed; go on with the next one.
            Err(error) => eprintln!("sockeye-autobahn: case {case}/{count}: {error}"),
        }
    }

    let url = format!("{base}/updateReports?agent={agent}");
    let (ws, _) = builder
        .connect(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let info = echo(ws).await;
    eprintln!("sockeye-autobahn: reports updated: {info}");
    Ok(())
}

const USAGE: &str =
    "usage: sockeye-autobahn server [ADDR] | server-tls [ADDR] | client [URL] [AGENT]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sockeye-autobahn: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match args.as_slice() {
        ["server", rest @ ..] if rest.len() <= 1 => {
            let addr = rest.first().copied().unwrap_or("127.0.0.1:9002");
            runtime
                .block_on(server(addr, false))
                .map_err(|e| format!("server on {addr}: {e}"))
        }
        ["server-tls", rest @ ..] if rest.len() <= 1 => {
            let addr = rest.first().copied().unwrap_or("127.0.0.1:9003");
            runtime
                .block_on(server(addr, true))
                .map_err(|e| format!("TLS server on {addr}: {e}"))
        }
        ["client", rest @ ..] if rest.len() <= 2 => {
            let base = rest.first().copied().unwrap_or("ws://127.0.0.1:9001");
            let agent = rest.get(1).copied().unwrap_or("sockeye");
            runtime.block_on(client(base.trim_end_matches('/'), agent))
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sockeye-autobahn: {error}");
            ExitCode::FAILURE
        }
    }
}
