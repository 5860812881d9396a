//! Connection churn against one [`sockeye::Server`] over loopback: many
//! connect/echo/close cycles leave the process's file descriptors and the server's live
//! sessions where they started, measured from `/proc/self` and the server's counts, and
//! its resident memory within a small bound. `SOCKEYE_CHURN_CYCLES` sets the number of
//! cycles (default 2,000; `docs/robustness.md` records a 10,000-cycle run).
//!
//! The tests here count the whole process's file descriptors, so they run one at a time
//! (each takes [`ONE_AT_A_TIME`]) on runtimes of their own.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Mutex;
use std::time::Instant;

use common::{until, url, within};
use sockeye::{ClientBuilder, CloseCode, Message, ServerBuilder};

/// Held by each test for its whole run: the file descriptor counts are process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const DEFAULT_CYCLES: usize = 2_000;
/// Cycles before the first measurement: the runtime's threads, the allocator's arenas
/// and the kernel's socket caches settle.
const WARM_UP: usize = 200;
/// Clients cycling at once.
const CLIENTS: usize = 4;
/// How much the resident set may grow over the measured cycles. Runs grow it by well
/// under 1 MiB; keeping one session's read buffer (16 KiB) per cycle would pass the
/// bound eight times over in the default 2,000 cycles.
const RSS_BOUND: u64 = 4 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether file descriptor `fd` of this process is open.
fn fd_is_open(fd: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
}

/// The resident set size, in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

fn cycles() -> usize {
    match std::env::var("SOCKEYE_CHURN_CYCLES") {
        Ok(n) => n.parse().expect("SOCKEYE_CHURN_CYCLES must be a number"),
        Err(_) => DEFAULT_CYCLES,
    }
}

async fn echo(mut ws: sockeye::WebSocket) {
    while let Some(Ok(message)) = ws.next().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// One cycle: connect, one echo, a clean close.
async fn cycle(url: &str, i: usize) {
    let (mut ws, _) = within("connect", sockeye::connect(url)).await.unwrap();
    let text = format!("cycle {i}");
    ws.send(text.as_str()).await.unwrap();
    let echo = within("the echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echo, Message::Text(text));
    let info = within("the close", ws.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(info.clean, "{info:?}");
}

/// `count` cycles, spread over [`CLIENTS`] clients cycling at once.
async fn cycles_against(url: &str, count: usize) {
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let url = url.to_owned();
        let share = count / CLIENTS + usize::from(client < count % CLIENTS);
        clients.push(tokio::spawn(async move {
            for i in 0..share {
                cycle(&url, client * count + i).await;
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
}

#[test]
fn churn_returns_file_descriptors_sessions_and_memory() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cycles = cycles();
    runtime().block_on(async {
        let server = ServerBuilder::new().bind("127.0.0.1:0").await.unwrap();
        let url = url(server.local_addr().unwrap());
        let handle = server.shutdown_handle();
        let serving = tokio::spawn(server.serve(echo));
        let settled = || handle.sessions() == 0 && handle.handshakes() == 0;

        cycles_against(&url, WARM_UP).await;
        until("the warm-up sessions to end", settled).await;
        let (fds_before, rss_before) = (open_fds(), rss());
        let start = Instant::now();
        cycles_against(&url, cycles).await;
        let elapsed = start.elapsed();
        // Every client's transport is dropped when its close returns; the server's
        // sessions end once their own transports are dropped.
        until("the server's sessions to end", settled).await;
        let (fds_after, rss_after) = (open_fds(), rss());
        println!(
            "churn: {cycles} cycles in {elapsed:.2?}; open fds {fds_before} -> {fds_after}; \
             RSS {:.1} MiB -> {:.1} MiB",
            rss_before as f64 / (1 << 20) as f64,
            rss_after as f64 / (1 << 20) as f64,
        );

        assert_eq!(fds_after, fds_before, "file descriptors leaked");
        assert_eq!(handle.accepted(), (WARM_UP + cycles) as u64);
        assert_eq!(handle.refused(), 0);
        assert!(
            rss_after <= rss_before + RSS_BOUND,
            "RSS grew from {rss_before} to {rss_after} bytes"
        );
        handle.shutdown();
        within("serve() to return", serving).await.unwrap().unwrap();
    });
}

/// `closed()` (and `close()`) return once the session's socket is closed, not merely
/// once the session is over: a caller counting its file descriptors, or at its limit,
/// must not see the socket still open.
#[test]
fn a_session_s_socket_is_closed_when_closed_returns() {
    use std::os::fd::AsRawFd;

    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let (listener, addr) = common::listener().await;
        for i in 0..200 {
            let client_stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server_stream, _) = listener.accept().await.unwrap();
            let (client_fd, server_fd) = (client_stream.as_raw_fd(), server_stream.as_raw_fd());
            let (client_builder, server_builder, url) =
                (ClientBuilder::new(), ServerBuilder::new(), url(addr));
            let (client, server) = tokio::join!(
                client_builder.connect_on(client_stream, &url),
                server_builder.accept(server_stream),
            );
            let (mut client, _) = client.unwrap();
            let server = server.unwrap();
            let server_session = server.session();
            // Alternate who closes, so both ends are checked after both roles.
            let (client_info, server_info) = if i % 2 == 0 {
                let info = within("the close", client.close(CloseCode::NORMAL, ""))
                    .await
                    .unwrap();
                assert!(!fd_is_open(client_fd), "cycle {i}: client socket open");
                (info, within("the server", server_session.closed()).await)
            } else {
                server_session.close(CloseCode::NORMAL, "").unwrap();
                let info = within("the server", server_session.closed()).await;
                assert!(!fd_is_open(server_fd), "cycle {i}: server socket open");
                let client_info = within("the client", client.session().closed()).await;
                (client_info, info)
            };
            assert!(!fd_is_open(client_fd), "cycle {i}: client socket open");
            assert!(!fd_is_open(server_fd), "cycle {i}: server socket open");
            assert!(client_info.clean && server_info.clean);
            drop(server);
        }
    });
}
