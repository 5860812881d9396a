//! `sockeye`: a WebSocket server and client on the command line.
//!
//! - `sockeye serve`: an echo server, or a broadcast chat with `--broadcast`.
//! - `sockeye connect URL`: sends each stdin line as a text message and prints what arrives.
//! - `sockeye bench`: a load generator for echo servers: rate, throughput, round-trip
//!   percentiles.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod bench;
mod connect;
mod serve;

/// WebSocket (RFC 6455) server and client.
///
/// Logs go to stderr; set RUST_LOG to choose what is logged (default: info), e.g.
/// RUST_LOG=debug or RUST_LOG=sockeye=trace.
#[derive(Debug, Parser)]
#[command(name = "sockeye", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an echo server (or a broadcast chat with --broadcast) until Ctrl-C or SIGTERM.
    ///
    /// Every client is accepted, whatever the path of its URL, with no subprotocol: a
    /// browser can connect with `new WebSocket("ws://127.0.0.1:9001")`. Each session's
    /// opening and closing (code, reason, clean) is logged on stderr. On Ctrl-C or SIGTERM
    /// the server stops accepting, closes every session with 1001 (going away), waits up to
    /// 10 s for their closing handshakes and exits; a second signal exits at once.
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::ServeArgs),
    /// Connect to a server, send each stdin line as a text message, print what arrives.
    ///
    /// At the end of stdin the client closes the connection with 1000 (normal closure).
    /// When the connection ends, the close code, reason and whether the close was clean are
    /// printed on stderr.
    #[command(after_help = connect::AFTER_HELP)]
    Connect(connect::ConnectArgs),
    /// Measure an echo server: N connections, each with one message in flight.
    ///
    /// Connects every connection first, then runs for a duration (or a number of
    /// messages), and prints the echo rate, the payload throughput, the round-trip
    /// latency percentiles (p50, p90, p99, p99.9) and the errors. A progress bar is shown
    /// while it runs when stderr is a terminal.
    #[command(after_help = bench::AFTER_HELP)]
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // The server spreads its sessions over every core; the client has one connection and
    // runs on the current thread, where `connect` hands over the WebSocket before the
    // session's task first runs.
    // The load generator spreads its connections over every core, or over --threads.
    let runtime = match &cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        Command::Connect(_) => tokio::runtime::Builder::new_current_thread(),
        Command::Bench(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.threads() {
                builder.worker_threads(threads);
            }
            builder
        }
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sockeye: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Connect(args) => runtime.block_on(connect::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (info when unset or invalid); colours only on a
/// terminal, so that piped logs stay greppable.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
