//! `sockeye serve --cert --key` and `sockeye connect --ca` end to end over wss://, with
//! certificates made at test time.

#[path = "../../sockeye/tests/tls/pki.rs"]
mod pki;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// Starts `sockeye serve` over TLS and returns it with its port.
async fn serve_tls(pki: &pki::Pki) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockeye"))
        .args(["serve", "--addr", "127.0.0.1:0", "--cert"])
        .arg(&pki.cert_path)
        .arg("--key")
        .arg(&pki.key_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sockeye binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = timeout(LIMIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("serve listens");
            if let Some(addr) = line.strip_prefix("listening on ") {
                let addr: std::net::SocketAddr = addr.parse().unwrap();
                return addr.port();
            }
        }
    })
    .await
    .expect("serve printed its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// Runs `sockeye connect` with `args`, feeding `input` on stdin; returns (exit code,
/// stdout, stderr).
async fn connect(args: &[&std::ffi::OsStr], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockeye"))
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sockeye binary starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = timeout(LIMIT, child.wait_with_output())
        .await
        .expect("connect exits")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn connect_with_ca_talks_to_serve_with_cert_over_wss() {
    let pki = pki::Pki::new(&["localhost"]);
    let (_serve, port) = serve_tls(&pki).await;
    let url = format!("wss://localhost:{port}/");
    let (code, stdout, stderr) = connect(
        &[url.as_ref(), "--ca".as_ref(), pki.ca_path.as_os_str()],
        "hello over tls\n",
    )
    .await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "hello over tls\n", "stderr: {stderr}");
    assert!(stderr.contains("clean true"), "{stderr}");
}

#[tokio::test]
async fn connect_refuses_an_untrusted_certificate_with_exit_code_2() {
    let pki = pki::Pki::new(&["localhost"]);
    let (_serve, port) = serve_tls(&pki).await;
    let url = format!("wss://localhost:{port}/");
    // The built-in roots do not know the test CA.
    let (code, stdout, stderr) = connect(&[url.as_ref()], "hello\n").await;
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

#[tokio::test]
async fn serve_needs_both_cert_and_key() {
    let pki = pki::Pki::new(&["localhost"]);
    let output = Command::new(env!("CARGO_BIN_EXE_sockeye"))
        .args(["serve", "--addr", "127.0.0.1:0", "--cert"])
        .arg(&pki.cert_path)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--key"));
}
