//! `peers`: the echo servers of Sockeye and its peers, and the runner of the side-by-side
//! benchmark (`benches/run.sh` builds and calls it).
//!
//! - `peers serve NAME [--addr HOST:PORT] [--ping-interval SECS] [--idle-timeout SECS]`:
//!   one echo server; prints `listening on ADDR`. The timers are for Sockeye's servers.
//! - `peers matrix`: every server against the matrix of loads, with `sockeye bench` as the
//!   load generator, then the idle memory per connection; prints the tables.
//! - `peers pool FILE...`: the rounds of several `matrix --json` runs taken together, each
//!   of Sockeye's servers against each peer with an interval (see [`pool`]).
//! - `peers idle ADDR N`: opens N idle WebSocket connections to ADDR and holds them until
//!   stdin closes (to look at a server's memory by hand, e.g. under a heap profiler).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod idle;
mod matrix;
mod pool;
mod servers;

/// Echo servers of Sockeye and its peers, and the side-by-side benchmark.
#[derive(Debug, Parser)]
#[command(name = "peers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one echo server until killed (multi-thread runtime, 2 workers, TCP_NODELAY).
    Serve {
        /// Which library serves
        #[arg(value_enum)]
        server: servers::Server,
        /// Address to listen on; the bound address is printed as `listening on ADDR`
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Sockeye's servers only: send a Ping after this many seconds without one
        /// (`ping_interval`), to measure a session's timer
        #[arg(long, value_name = "SECS")]
        ping_interval: Option<u64>,
        /// Sockeye's servers only: close a session after this many seconds without a
        /// frame (`idle_timeout`)
        #[arg(long, value_name = "SECS")]
        idle_timeout: Option<u64>,
    },
    /// Run the benchmark matrix against every server and print the tables.
    Matrix(matrix::MatrixArgs),
    /// Pool the rounds of several `matrix --json` runs: ratios to each peer, with intervals.
    Pool(pool::PoolArgs),
    /// Open idle connections to a server and hold them until stdin closes.
    Idle {
        /// The server's address
        addr: SocketAddr,
        /// How many connections
        connections: usize,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve {
            server,
            addr,
            ping_interval,
            idle_timeout,
        } => {
            let timers = servers::Timers {
                ping_interval: ping_interval.map(Duration::from_secs),
                idle_timeout: idle_timeout.map(Duration::from_secs),
            };
            serve(server, addr, timers)
        }
        Command::Matrix(args) => matrix::run(args),
        Command::Pool(args) => pool::run(args),
        Command::Idle { addr, connections } => hold_idle(addr, connections),
    }
}

fn serve(server: servers::Server, addr: SocketAddr, timers: servers::Timers) -> ExitCode {
    match servers::run(server, addr, timers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peers: {} server failed: {error}", server.name());
            ExitCode::FAILURE
        }
    }
}

/// The current-thread runtime of the tools that drive the servers (the matrix, the idle
/// connections); `None` once it has said why it could not start.
fn tool_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .inspect_err(|error| eprintln!("peers: cannot start the runtime: {error}"))
        .ok()
}

fn hold_idle(addr: SocketAddr, connections: usize) -> ExitCode {
    let Some(runtime) = crate::tool_runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        match idle::open(addr, connections).await {
            Ok(sockets) => {
                eprintln!(
                    "holding {} idle connections; close stdin to end",
                    sockets.len()
                );
                let mut rest = Vec::new();
                let _ =
                    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut rest).await;
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("peers: opening idle connections: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
