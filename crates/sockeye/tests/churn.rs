//! Sockets and file descriptors across many sessions over loopback, measured from
//! `/proc/self`.
//!
//! The tests here count the whole process's file descriptors, so they run one at a time
//! (each takes [`ONE_AT_A_TIME`]) on runtimes of their own.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Mutex;

use common::{url, within};
use sockeye::{ClientBuilder, CloseCode, ServerBuilder};

/// Held by each test for its whole run: the file descriptor counts are process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Whether file descriptor `fd` of this process is open.
fn fd_is_open(fd: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
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
