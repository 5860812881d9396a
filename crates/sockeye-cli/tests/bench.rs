//! `sockeye bench` end to end against servers of the library on loopback: the counts and
//! percentiles of its JSON result, and the errors it must count when echoes are wrong.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::Duration;

use sockeye::Message;
use tokio::process::Command;
use tokio::time::timeout;

/// Upper bound for a whole bench run.
const LIMIT: Duration = Duration::from_secs(30);

/// Starts a library server whose sessions answer each message with `reply(message)`.
async fn server(reply: fn(Message) -> Message) -> SocketAddr {
    server_with(sockeye::ServerBuilder::new(), reply).await
}

async fn server_with(builder: sockeye::ServerBuilder, reply: fn(Message) -> Message) -> SocketAddr {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(move |mut ws| async move {
        while let Some(Ok(message)) = ws.next().await {
            if ws.send(reply(message)).await.is_err() {
                break;
            }
        }
    }));
    addr
}

async fn bench(addr: SocketAddr, extra: &[&str]) -> Output {
    let run = Command::new(env!("CARGO_BIN_EXE_sockeye"))
        .arg("bench")
        .args(["--url", &format!("ws://{addr}/")])
        .args(extra)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    timeout(LIMIT, run)
        .await
        .expect("sockeye bench finished in time")
        .expect("the sockeye binary runs")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn number(value: &serde_json::Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_every_echo_of_a_message_budget_with_zero_errors() {
    let addr = server(|message| message).await;
    let output = bench(
        addr,
        &[
            "--connections",
            "3",
            "--size",
            "100",
            "--messages",
            "300",
            "--json",
        ],
    )
    .await;
    assert!(output.status.success(), "exit status {}", output.status);
    let result = json(&output);
    assert_eq!(result["messages"], 300);
    assert_eq!(result["errors"], 0);
    assert_eq!(result["unclean"], 0);
    assert_eq!(result["connected"], 3);
    assert_eq!(result["kind"], "binary");
    assert!(number(&result, "msgs_per_s") > 0.0);
    let expected_mb = number(&result, "msgs_per_s") * 100.0 / 1e6;
    assert!((number(&result, "mb_per_s") - expected_mb).abs() < 1e-6);
    let latency = &result["latency_us"];
    let percentiles: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|p| number(latency, p))
        .collect();
    assert!(percentiles[0] > 0.0, "a round trip takes time: {latency}");
    assert!(
        percentiles.windows(2).all(|w| w[0] <= w[1]),
        "percentiles ascend: {latency}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mode_prints_a_result_block_with_zero_errors() {
    let addr = server(|message| message).await;
    let output = bench(addr, &["-c", "2", "-s", "1KiB", "-n", "200", "--text"]).await;
    assert!(output.status.success(), "exit status {}", output.status);
    let block = String::from_utf8(output.stdout).unwrap();
    assert!(block.contains("1024 B text messages"), "{block}");
    assert!(
        block
            .lines()
            .any(|l| l.starts_with("messages") && l.contains("200 echoed")),
        "{block}"
    );
    assert!(block.lines().any(|l| l == "errors       0"), "{block}");
    assert!(block.contains("p99.9"), "{block}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_run_stops_by_itself() {
    let addr = server(|message| message).await;
    let output = bench(
        addr,
        &["-c", "2", "-s", "20", "--duration", "300ms", "--json"],
    )
    .await;
    assert!(output.status.success(), "exit status {}", output.status);
    let result = json(&output);
    assert!(result["messages"].as_u64().unwrap() > 0);
    let elapsed = number(&result, "elapsed_s");
    assert!((0.25..5.0).contains(&elapsed), "measured for {elapsed} s");
    assert_eq!(result["errors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_echoes_are_counted_as_errors_and_fail_the_exit_status() {
    // Echoes one byte short: every connection's first echo is wrong.
    let addr = server(|message| {
        let mut bytes = message.as_bytes().to_vec();
        bytes.pop();
        Message::Binary(bytes.into())
    })
    .await;
    let output = bench(addr, &["-c", "2", "-s", "64", "-n", "100", "--json"]).await;
    assert_eq!(output.status.code(), Some(1));
    let result = json(&output);
    assert_eq!(result["errors"], 2, "one error per connection: {result}");
    assert_eq!(result["messages"], 0);
    assert!(
        result["first_error"]
            .as_str()
            .unwrap()
            .contains("63 bytes arrived for a message of 64"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_means_exit_status_2() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let output = bench(addr, &["-c", "1", "-n", "10"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_is_offered_and_counted_where_the_server_agrees() {
    let args = [
        "--connections",
        "2",
        "--size",
        "4KiB",
        "--text",
        "--messages",
        "100",
        "--deflate",
        "--json",
    ];
    let compressing = server_with(sockeye::ServerBuilder::new().deflate(true), |m| m).await;
    let output = bench(compressing, &args).await;
    assert!(output.status.success(), "exit status {}", output.status);
    let result = json(&output);
    assert_eq!(result["deflate_offered"], true);
    assert_eq!(result["compressed_connections"], 2);
    assert_eq!(result["messages"], 100);
    assert_eq!(result["errors"], 0);

    // A server without compression declines the offer; the run goes on uncompressed.
    let plain = server(|m| m).await;
    let result = json(&bench(plain, &args).await);
    assert_eq!(result["compressed_connections"], 0);
    assert_eq!(result["errors"], 0);
}
