//! The echo servers: Sockeye and each peer, on one runtime configuration.
//!
//! Every server runs on a multi-thread tokio runtime with two workers, sets TCP_NODELAY
//! on each accepted socket, echoes every text and binary message back to its sender, and
//! uses its library's defaults otherwise. Each prints `listening on ADDR` on stderr once
//! it is bound. Sockeye's servers can be given session timers (`Timers`) to measure what
//! a session with a ping interval or an idle timeout costs; the matrix never does.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

/// The workspace's lock file as this binary was built with it.
const LOCK_FILE: &str = include_str!("../../../Cargo.lock");

/// The versions of the package `name` in a `Cargo.lock` (one, unless the graph holds
/// several).
fn locked_versions<'a>(lock: &'a str, name: &str) -> Vec<&'a str> {
    let quoted = |line: &'a str, key: &str| {
        line.strip_prefix(key)?
            .trim()
            .strip_prefix("= \"")?
            .strip_suffix('"')
    };
    lock.split("[[package]]")
        .filter_map(|package| {
            let mut lines = package.lines().map(str::trim);
            let found = lines.clone().find_map(|line| quoted(line, "name"))?;
            (found == name).then(|| lines.find_map(|line| quoted(line, "version")))?
        })
        .collect()
}

/// The servers this crate can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Server {
    /// Sockeye's `Server::serve` with a `WebSocket` echo loop.
    Sockeye,
    /// Sockeye's `Server::serve_endpoints`: an `Endpoint` whose `on_message` echoes.
    SockeyeEndpoint,
    /// tokio-tungstenite's `accept_async` and its `WebSocketStream`.
    Tungstenite,
    /// fastwebsockets upgraded from a hyper 1 HTTP/1 connection, with `FragmentCollector`.
    Fastwebsockets,
    /// tokio-websockets' `ServerBuilder::accept`.
    TokioWebsockets,
}

impl Server {
    /// Whether this is one of Sockeye's servers (the others are the peers it is compared
    /// with).
    pub(crate) fn is_ours(self) -> bool {
        matches!(self, Server::Sockeye | Server::SockeyeEndpoint)
    }

    /// The crate a peer's server is built on, as `Cargo.lock` names it; `None` for ours.
    pub(crate) fn peer_crate(self) -> Option<&'static str> {
        match self {
            Server::Sockeye | Server::SockeyeEndpoint => None,
            Server::Tungstenite => Some("tokio-tungstenite"),
            Server::Fastwebsockets => Some("fastwebsockets"),
            Server::TokioWebsockets => Some("tokio-websockets"),
        }
    }

    /// The version of the peer's crate this binary was built with (read from the
    /// workspace's `Cargo.lock` at build time), so that a run records what it measured;
    /// `None` for ours.
    pub(crate) fn peer_version(self) -> Option<String> {
        let versions = locked_versions(LOCK_FILE, self.peer_crate()?);
        Some(versions.join(" and "))
    }

    /// The name on the command line and in the tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Server::Sockeye => "sockeye",
            Server::SockeyeEndpoint => "sockeye-endpoint",
            Server::Tungstenite => "tungstenite",
            Server::Fastwebsockets => "fastwebsockets",
            Server::TokioWebsockets => "tokio-websockets",
        }
    }
}

/// Session timers for Sockeye's servers (`sockeye_proto::Config`'s `ping_interval` and
/// `idle_timeout`); the default is none, the library's default.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timers {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
}

impl Timers {
    fn is_set(self) -> bool {
        self.ping_interval.is_some() || self.idle_timeout.is_some()
    }

    /// Sockeye's server configuration: the defaults, with these timers.
    fn builder(self) -> sockeye::ServerBuilder {
        let mut config = sockeye::Config::default();
        config.protocol.ping_interval = self.ping_interval;
        config.protocol.idle_timeout = self.idle_timeout;
        sockeye::ServerBuilder::new().config(config)
    }
}

/// Runs `server` on `addr` until the process is killed.
pub(crate) fn run(server: Server, addr: SocketAddr, timers: Timers) -> std::io::Result<()> {
    if timers.is_set() && !server.is_ours() {
        return Err(std::io::Error::other(
            "session timers are a setting of Sockeye's servers only",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match server {
            Server::Sockeye => sockeye_server(addr, timers).await,
            Server::SockeyeEndpoint => sockeye_endpoint_server(addr, timers).await,
            other => {
                let listener = TcpListener::bind(addr).await?;
                announce(listener.local_addr()?);
                loop {
                    let (stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    match other {
                        Server::Tungstenite => tokio::spawn(tungstenite_echo(stream)),
                        Server::Fastwebsockets => tokio::spawn(fastwebsockets_connection(stream)),
                        _ => tokio::spawn(tokio_websockets_echo(stream)),
                    };
                }
            }
        }
    })
}

fn announce(addr: SocketAddr) {
    // One write, so that a reader never sees part of the address (`eprintln!` writes
    // its pieces one by one).
    let line = format!("listening on {addr}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// One of Sockeye's servers, bound with the benchmark's timers, its address announced.
async fn bind_sockeye(addr: SocketAddr, timers: Timers) -> std::io::Result<sockeye::Server> {
    let server = timers
        .builder()
        .bind(addr)
        .await
        .map_err(std::io::Error::other)?;
    announce(server.local_addr().map_err(std::io::Error::other)?);
    Ok(server)
}

/// Sockeye: the library's server (it sets TCP_NODELAY itself) and the echo loop of
/// `sockeye serve`.
async fn sockeye_server(addr: SocketAddr, timers: Timers) -> std::io::Result<()> {
    let server = bind_sockeye(addr, timers).await?;
    server
        .serve(|mut ws| async move {
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(std::io::Error::other)
}

/// Sockeye's endpoint model: the echo runs in `on_message`, on the session's own task.
async fn sockeye_endpoint_server(addr: SocketAddr, timers: Timers) -> std::io::Result<()> {
    struct Echo;
    impl sockeye::Endpoint for Echo {
        fn on_message(&mut self, session: &sockeye::Session, message: sockeye::Message) {
            let _ = session.try_send(message);
        }
    }
    let server = bind_sockeye(addr, timers).await?;
    server
        .serve_endpoints(|_peer| Echo)
        .await
        .map_err(std::io::Error::other)
}

async fn tungstenite_echo(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn fastwebsockets_connection(stream: TcpStream) {
    use hyper::service::service_fn;
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service_fn(fastwebsockets_upgrade))
        .with_upgrades()
        .await;
}

async fn fastwebsockets_upgrade(
    mut request: hyper::Request<hyper::body::Incoming>,
) -> Result<
    hyper::Response<http_body_util::Empty<hyper::body::Bytes>>,
    fastwebsockets::WebSocketError,
> {
    let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        let Ok(ws) = upgrade.await else {
            return;
        };
        let mut ws = fastwebsockets::FragmentCollector::new(ws);
        while let Ok(frame) = ws.read_frame().await {
            let echo = match frame.opcode {
                fastwebsockets::OpCode::Close => break,
                fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => frame,
                _ => continue,
            };
            if ws.write_frame(echo).await.is_err() {
                break;
            }
        }
    });
    Ok(response)
}

async fn tokio_websockets_echo(stream: TcpStream) {
    let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn a_peer_s_version_is_read_from_the_lock_file() {
        let lock = "version = 4\n\n[[package]]\nname = \"fastwebsockets\"\nversion = \"0.10.0\"\n\
                    source = \"registry\"\n\n[[package]]\nname = \"tokio\"\nversion = \"1.0.0\"\n\n\
                    [[package]]\nname = \"tokio-websockets\"\nversion = \"0.12.3\"\n\n\
                    [[package]]\nname = \"tokio-websockets\"\nversion = \"0.13.3\"\n";
        assert_eq!(locked_versions(lock, "fastwebsockets"), ["0.10.0"]);
        assert_eq!(
            locked_versions(lock, "tokio-websockets"),
            ["0.12.3", "0.13.3"]
        );
        assert!(locked_versions(lock, "tokio-tungstenite").is_empty());
        // This build's: one version of each peer's crate, none for ours.
        for server in Server::value_variants() {
            let version = server.peer_version();
            assert_eq!(version.is_none(), server.is_ours(), "{server:?}");
            if let Some(version) = version {
                assert!(
                    !version.is_empty() && !version.contains(" and "),
                    "{server:?}: {version:?}"
                );
            }
        }
    }

    #[test]
    fn timers_are_refused_for_a_peer() {
        let timers = Timers {
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: None,
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let error = run(Server::Fastwebsockets, addr, timers).unwrap_err();
        assert!(
            error.to_string().contains("Sockeye's servers only"),
            "{error}"
        );
        assert!(!Timers::default().is_set());
        assert!(timers.is_set());
    }
}
