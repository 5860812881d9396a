//! `peers`: the echo servers of Sockeye and its peers, and the runner of the side-by-side
//! benchmark (`benches/run.sh` builds and calls it).
//!
//! - `peers serve NAME [--addr HOST:PORT]`: one echo server; prints `listening on ADDR`.
//! - `peers matrix`: every server against the matrix of loads, with `sockeye bench` as the
//!   load generator, then the idle memory per connection; prints the tables.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod idle;
mod matrix;
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
    },
    /// Run the benchmark matrix against every server and print the tables.
    Matrix(matrix::MatrixArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { server, addr } => match servers::run(server, addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("peers: {} server failed: {error}", server.name());
                ExitCode::FAILURE
            }
        },
        Command::Matrix(args) => matrix::run(args),
    }
}
