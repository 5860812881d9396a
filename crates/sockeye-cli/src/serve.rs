//! `sockeye serve`: an echo server, or a broadcast chat.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockeye::{CloseCode, CloseInfo, Endpoint, Error, Message, ServerBuilder, Session, WebSocket};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How long a graceful shutdown waits for the sessions' closing handshakes.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit status when the server cannot start.
const EXIT_CANNOT_SERVE: u8 = 1;

pub(crate) const AFTER_HELP: &str = "\
Examples:
  sockeye serve                          echo server on 127.0.0.1:9001
  sockeye serve --addr 0.0.0.0:9001 --broadcast
  sockeye serve --deflate                compress messages for clients that offer it
  sockeye serve --keepalive 30s          close clients that stop answering pings
  RUST_LOG=debug sockeye serve --addr 127.0.0.1:0

Exit status:
  0  stopped by Ctrl-C or SIGTERM after closing the sessions
  1  the address could not be bound (or the server failed)
  130  a second signal arrived during the shutdown";

// The arguments of `sockeye serve`; the subcommand's help is in main.rs.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on
    ///
    /// With port 0 the system picks a free port. The address bound is always printed on
    /// stderr as a line `listening on ADDR`, whatever RUST_LOG says.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9001")]
    addr: String,

    /// Broadcast chat: send every message to all connected clients
    ///
    /// Every message from one client goes to all connected clients, the sender included,
    /// instead of back to its sender only. A client too slow to keep up (its outgoing
    /// buffer full) is closed with 1008.
    #[arg(long)]
    broadcast: bool,

    /// Serve wss:// with this certificate chain (PEM); needs --key
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --cert; needs --cert
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,

    /// Accept permessage-deflate compression (RFC 7692) when a client offers it
    ///
    /// The first valid offer is accepted with the parameters it asks for; messages of 64
    /// bytes or more are then sent compressed. Without this flag offers are declined.
    #[arg(long)]
    deflate: bool,

    /// Ping every client every TIME (e.g. 30s) and close one whose Pong has not come
    /// within TIME with 1011
    ///
    /// Finds clients that went away without closing (a closed laptop, a lost network),
    /// which TCP alone can take hours to notice. Off by default.
    #[arg(long, value_name = "TIME", value_parser = crate::bench::at_least_a_millisecond)]
    keepalive: Option<std::time::Duration>,
}

pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    // Handlers first, so that a signal arriving as soon as the address is printed is ours.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("sockeye: cannot install signal handlers: {error}");
            return ExitCode::from(EXIT_CANNOT_SERVE);
        }
    };
    let mut builder = ServerBuilder::new()
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .deflate(args.deflate);
    if let Some(every) = args.keepalive {
        builder = builder.keepalive(every, every);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        builder = match builder.tls_pem(cert, key) {
            Ok(builder) => builder,
            Err(error) => {
                eprintln!("sockeye: {error}");
                return ExitCode::from(EXIT_CANNOT_SERVE);
            }
        };
    }
    let server = match builder.bind(args.addr.as_str()).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("sockeye: cannot listen on {}: {error}", args.addr);
            return ExitCode::from(EXIT_CANNOT_SERVE);
        }
    };
    let addr = match server.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("sockeye: cannot read the bound address: {error}");
            return ExitCode::from(EXIT_CANNOT_SERVE);
        }
    };
    // A plain line, whatever RUST_LOG says: scripts and tests wait for it. Written with
    // one write (`eprintln!` writes its pieces one by one, and a reader could see
    // `listening on 127.0` before the rest of the address).
    let line = format!("listening on {addr}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    let mode = if args.broadcast { "broadcast" } else { "echo" };
    info!(%addr, mode, deflate = args.deflate, "serving; Ctrl-C or SIGTERM to stop");

    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        let signal = signals.recv().await;
        info!(signal, "signal received: shutting down");
        shutdown.shutdown();
        let signal = signals.recv().await;
        warn!(
            signal,
            "second signal: exiting without waiting for the sessions"
        );
        std::process::exit(130);
    });

    let served = if args.broadcast {
        let room = Room::default();
        server
            .serve_endpoints(move |peer| Member {
                room: room.clone(),
                peer,
            })
            .await
    } else {
        // `serve` returns once every session is closed, which can be just before their
        // handlers log it: wait for the handlers too.
        let (running, _) = watch::channel(0usize);
        let running = Arc::new(running);
        let counted = running.clone();
        let served = server
            .serve(move |ws| {
                let running = Running::enter(counted.clone());
                async move {
                    echo(ws).await;
                    drop(running);
                }
            })
            .await;
        let mut handlers = running.subscribe();
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, handlers.wait_for(|n| *n == 0)).await;
        served
    };
    match served {
        Ok(()) => {
            info!("server stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            error!(%error, "server failed");
            ExitCode::from(EXIT_CANNOT_SERVE)
        }
    }
}

/// Numbers the echo sessions in the log.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Echoes every message back to its sender. Sending waits while the client is not reading,
/// and the session stops reading while replies are waiting: a client that floods without
/// reading is slowed down, not buffered without bound.
async fn echo(mut ws: WebSocket) {
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    info!(session = id, "session opened");
    let session = ws.session();
    // The stream ends after the peer's Close frame, or with an error if the session
    // failed; a send fails once the session is closing. Either way the outcome is below.
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
    drop(ws);
    log_close(id, &session.closed().await);
}

/// One running echo handler, counted while it lives.
struct Running(Arc<watch::Sender<usize>>);

impl Running {
    fn enter(count: Arc<watch::Sender<usize>>) -> Running {
        count.send_modify(|n| *n += 1);
        Running(count)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

fn log_close(session: impl Display, info: &CloseInfo) {
    let code = info.code.as_u16();
    match &info.error {
        None => info!(%session, code, reason = ?info.reason, clean = info.clean, "session closed"),
        Some(error) => info!(
            %session, code, reason = ?info.reason, clean = info.clean, %error,
            "session closed"
        ),
    }
}

/// The clients of the broadcast chat.
#[derive(Clone, Debug, Default)]
struct Room {
    members: Arc<Mutex<HashMap<SocketAddr, Session>>>,
}

impl Room {
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Session>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `message` to every member without waiting: a member whose outgoing buffer
    /// is full is closed rather than allowed to hold the others back or grow without bound.
    fn broadcast(&self, message: &Message) {
        let members: Vec<(SocketAddr, Session)> = self
            .members()
            .iter()
            .map(|(peer, session)| (*peer, session.clone()))
            .collect();
        for (peer, session) in members {
            match session.try_send(message.clone()) {
                Ok(()) => {}
                Err(Error::Full(queued)) => {
                    warn!(%peer, queued, "client too slow: closing it with 1008");
                    let _ = session.close(CloseCode::POLICY_VIOLATION, "too slow");
                }
                // Closing or closed: it is leaving the room.
                Err(_) => {}
            }
        }
    }
}

/// One client of the broadcast chat.
#[derive(Debug)]
struct Member {
    room: Room,
    peer: SocketAddr,
}

impl Endpoint for Member {
    fn on_open(&mut self, session: &Session) {
        let members = {
            let mut members = self.room.members();
            members.insert(self.peer, session.clone());
            members.len()
        };
        info!(session = %self.peer, members, "session opened");
    }

    fn on_message(&mut self, _session: &Session, message: Message) {
        self.room.broadcast(&message);
    }

    fn on_close(&mut self, _session: &Session, info: &CloseInfo) {
        self.room.members().remove(&self.peer);
        log_close(self.peer, info);
    }
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the next signal and names it.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}
