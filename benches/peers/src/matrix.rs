//! The side-by-side run: every cell of the matrix against every server, servers taking
//! turns in a different order each round, then the idle memory per connection.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::idle;
use crate::servers::Server;

/// The default matrix: connections × message size.
const DEFAULT_CELLS: &[&str] = &[
    "100x20B",
    "10x1KiB",
    "10x16KiB",
    "200x16KiB",
    "500x16KiB",
    "10x1MiB",
];

/// How long a server may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(10);

// The arguments of `peers matrix`.
#[derive(Debug, clap::Args)]
pub(crate) struct MatrixArgs {
    /// The load generator: a release build of `sockeye` [default: next to this binary]
    #[arg(long, value_name = "PATH")]
    sockeye: Option<PathBuf>,

    /// Measured time of each cell (passed to `sockeye bench --duration`)
    #[arg(long, value_name = "TIME", default_value = "5s")]
    duration: String,

    /// Warm-up of each cell, not counted (passed to `sockeye bench --warmup`)
    #[arg(long, value_name = "TIME", default_value = "1s")]
    warmup: String,

    /// Rounds; the order of the servers rotates from one round to the next
    #[arg(long, value_name = "N", default_value_t = 2)]
    rounds: usize,

    /// Servers to run, comma-separated
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sockeye,sockeye-endpoint,tungstenite,fastwebsockets,tokio-websockets"
    )]
    servers: Vec<Server>,

    /// Cells, comma-separated, each CONNECTIONSxSIZE (e.g. 100x20B,10x1MiB)
    #[arg(long, value_name = "CELLS", value_delimiter = ',', value_parser = parse_cell)]
    cells: Vec<Cell>,

    /// Worker threads of the load generator
    #[arg(long, value_name = "N", default_value_t = 2)]
    threads: usize,

    /// Idle connections for the memory figure; 0 skips it
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    idle: usize,

    /// Also write every measurement as JSON to this file
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// One load: connections × message size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cell {
    pub(crate) connections: u32,
    /// As given to `sockeye bench --size`.
    pub(crate) size: String,
}

impl Cell {
    pub(crate) fn label(&self) -> String {
        let size = self.size.trim_end_matches('B');
        let size = if size.chars().all(|c| c.is_ascii_digit()) {
            format!("{size} B")
        } else {
            format!("{}B", self.size.trim_end_matches('B'))
        };
        format!("{} × {size}", self.connections)
    }
}

fn parse_cell(arg: &str) -> Result<Cell, String> {
    let (connections, size) = arg
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{arg:?} is not CONNECTIONSxSIZE, e.g. 10x1KiB"))?;
    let connections = connections
        .trim()
        .parse()
        .map_err(|_| format!("{arg:?}: {connections:?} is not a number of connections"))?;
    Ok(Cell {
        connections,
        size: size.trim().to_owned(),
    })
}

/// One `sockeye bench` result.
#[derive(Clone, Debug)]
struct Sample {
    msgs_per_s: f64,
    mb_per_s: f64,
    p99_us: f64,
    errors: u64,
    /// Server CPU time (user + system) per echo, warm-up included, in microseconds.
    cpu_us_per_echo: f64,
    /// The user-space part of it: the server's own code, where the kernel's is the rest.
    user_us_per_echo: f64,
    json: serde_json::Value,
}

/// A running echo server of this crate.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    async fn start(server: Server) -> Result<Running, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["serve", server.name(), "--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the {} server: {e}", server.name()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(START_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return addr.trim().parse::<SocketAddr>().ok();
                }
                eprintln!("{}: {line}", server.name());
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("the {} server did not print its address", server.name()))?;
        // Keep draining its stderr so that it never blocks on a full pipe.
        let name = server.name();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{name}: {line}");
            }
        });
        Ok(Running { child, addr })
    }

    /// CPU time used so far by every thread, in seconds, from /proc: user and system.
    fn cpu_seconds(&self) -> Option<(f64, f64)> {
        let pid = self.child.id()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (user, system) = stat_ticks(&stat)?;
        let per_second = clock_ticks_per_second();
        Some((user as f64 / per_second, system as f64 / per_second))
    }

    /// Resident set size in bytes, from /proc.
    fn rss(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

pub(crate) fn run(mut args: MatrixArgs) -> ExitCode {
    if args.cells.is_empty() {
        args.cells = DEFAULT_CELLS
            .iter()
            .filter_map(|c| parse_cell(c).ok())
            .collect();
    }
    let Some(runtime) = crate::tool_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run_all(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peers: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(args: MatrixArgs) -> Result<(), String> {
    let sockeye = match &args.sockeye {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("sockeye"),
    };
    if !sockeye.exists() {
        return Err(format!(
            "no load generator at {} (build it with cargo build --release -p sockeye-cli)",
            sockeye.display()
        ));
    }
    let servers = args.servers.clone();
    // samples[cell][server] over the rounds.
    let mut samples: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); servers.len()]; args.cells.len()];
    for round in 0..args.rounds {
        for (c, cell) in args.cells.iter().enumerate() {
            for k in 0..servers.len() {
                let s = (k + round) % servers.len();
                let server = servers[s];
                eprintln!(
                    "round {}/{}: {} against {}",
                    round + 1,
                    args.rounds,
                    cell.label(),
                    server.name()
                );
                let sample = bench_one(&args, &sockeye, server, cell).await?;
                eprintln!(
                    "  {:.0} msg/s, {:.1} MB/s, p99 {:.0} µs, server CPU {:.1} µs/msg \
                     ({:.2} user), {} errors",
                    sample.msgs_per_s,
                    sample.mb_per_s,
                    sample.p99_us,
                    sample.cpu_us_per_echo,
                    sample.user_us_per_echo,
                    sample.errors
                );
                samples[c][s].push(sample);
            }
        }
    }
    let mut memory = Vec::new();
    if args.idle > 0 {
        for &server in &servers {
            eprintln!(
                "idle memory: {} with {} connections",
                server.name(),
                args.idle
            );
            memory.push((server, idle_memory(server, args.idle).await));
        }
    }
    let table = render(&args, &servers, &samples, &memory);
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| host_cpu(&text))
        .unwrap_or_default();
    println!("{table}");
    println!("Host: {}", host.describe());
    let peers = peer_versions(&servers);
    if !peers.is_empty() {
        let listed: Vec<String> = peers
            .iter()
            .map(|(name, v)| format!("{name} {v}"))
            .collect();
        println!("Peers: {}", listed.join(", "));
    }
    if let Some(path) = &args.json {
        let json = to_json(&args, &servers, &samples, &memory, &host, &peers);
        std::fs::write(path, format!("{json:#}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn bench_one(
    args: &MatrixArgs,
    sockeye: &std::path::Path,
    server: Server,
    cell: &Cell,
) -> Result<Sample, String> {
    let running = Running::start(server).await?;
    let cpu_before = running.cpu_seconds().unwrap_or_default();
    let output = Command::new(sockeye)
        .arg("bench")
        .args(["--url", &format!("ws://{}/", running.addr)])
        .args(["--connections", &cell.connections.to_string()])
        .args(["--size", &cell.size])
        .args(["--duration", &args.duration])
        .args(["--warmup", &args.warmup])
        .args(["--threads", &args.threads.to_string()])
        .arg("--json")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", sockeye.display()))?;
    let cpu_after = running.cpu_seconds().unwrap_or_default();
    let user = cpu_after.0 - cpu_before.0;
    let cpu = user + cpu_after.1 - cpu_before.1;
    running.stop().await;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "sockeye bench against {} printed no result ({e}); exit {}",
            server.name(),
            output.status
        )
    })?;
    let per_echo = |seconds: f64| match number(&json, "echoes_total") {
        Some(echoes) if echoes > 0.0 => seconds * 1e6 / echoes,
        _ => 0.0,
    };
    let (cpu_us, user_us) = (per_echo(cpu), per_echo(user));
    Ok(Sample::from_bench(json, cpu_us, user_us))
}

/// The number under `key` in a bench result or a kept sample, if it is one.
fn number(json: &serde_json::Value, key: &str) -> Option<f64> {
    json.get(key).and_then(serde_json::Value::as_f64)
}

impl Sample {
    /// A sample from `sockeye bench --json`'s result, with the server's CPU and user time
    /// per echo measured beside it.
    fn from_bench(json: serde_json::Value, cpu_us_per_echo: f64, user_us_per_echo: f64) -> Sample {
        Sample {
            msgs_per_s: number(&json, "msgs_per_s").unwrap_or(0.0),
            mb_per_s: number(&json, "mb_per_s").unwrap_or(0.0),
            p99_us: json
                .get("latency_us")
                .and_then(|l| l.get("p99"))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            errors: json
                .get("errors")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            cpu_us_per_echo,
            user_us_per_echo,
            json,
        }
    }

    /// A sample as a run's `--json` file keeps it: the bench result with the server's
    /// times per echo added (see `to_json`).
    #[cfg(test)]
    fn from_kept(json: &serde_json::Value) -> Sample {
        let time = |key: &str| number(json, key).unwrap_or(0.0);
        let (cpu, user) = (
            time("server_cpu_us_per_echo"),
            time("server_user_us_per_echo"),
        );
        Sample::from_bench(json.clone(), cpu, user)
    }
}

/// The user and system time of a `/proc/PID/stat` line, in clock ticks: fields 14 and 15,
/// 12 and 13 after the command name (which is in parentheses and may hold spaces).
fn stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || fields.next()?.parse::<u64>().ok();
    Some((next()?, next()?))
}

/// Server RSS before and after `count` idle connections, in bytes.
#[derive(Clone, Copy, Debug)]
struct Memory {
    base: u64,
    loaded: u64,
    count: usize,
}

impl Memory {
    fn per_connection(&self) -> f64 {
        self.loaded.saturating_sub(self.base) as f64 / self.count as f64
    }
}

async fn idle_memory(server: Server, count: usize) -> Result<Memory, String> {
    let running = Running::start(server).await?;
    // A quiet moment for the runtime's threads to settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = running.rss().ok_or("cannot read the server's RSS")?;
    let sockets = idle::open(running.addr, count)
        .await
        .map_err(|e| format!("opening idle connections to {}: {e}", server.name()))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = running.rss().ok_or("cannot read the server's RSS")?;
    drop(sockets);
    running.stop().await;
    Ok(Memory {
        base,
        loaded,
        count,
    })
}

/// The kernel's USER_HZ, the unit of the CPU times in /proc (100 nearly everywhere).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn mean(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(f).sum::<f64>() / samples.len() as f64
}

/// One of Sockeye's servers (`s`) against the best peer, round by round: `ratio(ours,
/// peers)` of each round's figures (`metric`). The servers of one round run minutes apart
/// at most, so a drift of the machine's speed between rounds, which moves every server,
/// moves these ratios far less than the figures.
fn round_ratios(
    cell: &[Vec<Sample>],
    ours: &[usize],
    s: usize,
    metric: impl Fn(&Sample) -> f64,
    ratio: impl Fn(f64, &[f64]) -> Option<f64>,
) -> Vec<f64> {
    let rounds = cell.iter().map(Vec::len).min().unwrap_or(0);
    (0..rounds)
        .filter_map(|r| {
            let peers: Vec<f64> = peers(cell, ours)
                .map(|per_round| metric(&per_round[r]))
                .collect();
            ratio(metric(&cell[s][r]), &peers)
        })
        .collect()
}

/// The peers' samples of one cell: every server that is not one of Sockeye's.
fn peers<'a>(
    cell: &'a [Vec<Sample>],
    ours: &'a [usize],
) -> impl Iterator<Item = &'a Vec<Sample>> + 'a {
    cell.iter()
        .enumerate()
        .filter(|(i, _)| !ours.contains(i))
        .map(|(_, per_round)| per_round)
}

/// One ratio column's entry: Sockeye's server `s` against the best peer by `ratio`, of the
/// means over the rounds, then the range of the rounds' own ratios ("n/a" with no peer
/// figure to compare with).
fn ratio_entry(
    cell: &[Vec<Sample>],
    ours: &[usize],
    s: usize,
    metric: impl Fn(&Sample) -> f64,
    ratio: impl Fn(f64, &[f64]) -> Option<f64>,
) -> String {
    let peer_means: Vec<f64> = peers(cell, ours)
        .map(|per_server| mean(per_server, &metric))
        .collect();
    match ratio(mean(&cell[s], &metric), &peer_means) {
        Some(of_means) => {
            let rounds = round_ratios(cell, ours, s, &metric, &ratio);
            format!("{}{}", ratio_text(of_means, 2), range_note(&rounds))
        }
        None => "n/a".to_string(),
    }
}

/// The rate entries of one cell of a kept run (`results`: each server's samples as
/// `--json` wrote them), for each of Sockeye's servers, as the table printed them: the
/// ratio of the means to the best peer's, and the range of the rounds' own ratios. The
/// tests compare the documents' tables of the kept runs with these.
#[cfg(test)]
pub(crate) fn kept_rate_entries(
    results: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(String, String)> {
    use clap::ValueEnum;
    let names: Vec<&String> = results.keys().collect();
    let cell: Vec<Vec<Sample>> = results
        .values()
        .map(|samples| {
            samples
                .as_array()
                .expect("a server's samples")
                .iter()
                .map(Sample::from_kept)
                .collect()
        })
        .collect();
    let ours: Vec<usize> = (0..names.len())
        .filter(|&s| {
            Server::from_str(names[s], false)
                .expect("a server")
                .is_ours()
        })
        .collect();
    ours.iter()
        .map(|&s| {
            let entry = ratio_entry(&cell, &ours, s, |x| x.msgs_per_s, rate_ratio);
            (names[s].clone(), entry)
        })
        .collect()
}

/// Rate: ours over the fastest peer's.
pub(crate) fn rate_ratio(ours: f64, peers: &[f64]) -> Option<f64> {
    let best = peers.iter().copied().fold(0.0, f64::max);
    (best > 0.0).then(|| ours / best)
}

/// CPU per echo: the most frugal peer's over ours.
fn cpu_ratio(ours: f64, peers: &[f64]) -> Option<f64> {
    let best = peers
        .iter()
        .copied()
        .filter(|cpu| *cpu > 0.0)
        .fold(f64::INFINITY, f64::min);
    (best.is_finite() && ours > 0.0).then(|| best / ours)
}

/// " (lowest-highest)" of the per-round ratios, when there are two rounds or more.
fn range_note(ratios: &[f64]) -> String {
    if ratios.len() < 2 {
        return String::new();
    }
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    format!(" ({}-{})", ratio_text(low, 2), ratio_text(high, 2))
}

/// A ratio to `places` decimal places, or, when that would round it up to 1 from below,
/// to one place more, cut rather than rounded (to two places 0.996 is "0.996" and 0.9996
/// "0.999"): a table must not show a figure below its peer's as level with it. The
/// matrix's and the pooled tables print every ratio through here.
pub(crate) fn ratio_text(ratio: f64, places: usize) -> String {
    let text = format!("{ratio:.places$}");
    if ratio < 1.0 && text.starts_with('1') {
        let more = places + 1;
        let scale = 10f64.powi(more as i32);
        format!("{:.more$}", (ratio * scale).floor() / scale)
    } else {
        text
    }
}

fn render(
    args: &MatrixArgs,
    servers: &[Server],
    samples: &[Vec<Vec<Sample>>],
    memory: &[(Server, Result<Memory, String>)],
) -> String {
    // Ratios need Sockeye and at least one peer: one column for each of Sockeye's servers.
    let ours: Vec<usize> = (0..servers.len())
        .filter(|&s| servers[s].is_ours())
        .collect();
    let ours = if ours.len() < servers.len() {
        ours
    } else {
        Vec::new()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Echo rate, msg/s (p99 round trip), mean of {} round(s) of {} after {} warm-up; \
         the ratios are of the means, with the lowest and highest of the rounds' own ratios \
         (each round's best peer) in brackets:\n",
        args.rounds, args.duration, args.warmup
    );
    let mut header = String::from("| load |");
    let mut rule = String::from("|---|");
    for server in servers {
        let _ = write!(header, " {} |", server.name());
        rule.push_str("---:|");
    }
    for &s in &ours {
        let _ = write!(header, " {} / best peer |", servers[s].name());
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for (c, cell) in args.cells.iter().enumerate() {
        let mut row = format!("| {} |", cell.label());
        for per_server in &samples[c] {
            let rate = mean(per_server, |s| s.msgs_per_s);
            let p99 = mean(per_server, |s| s.p99_us) / 1000.0;
            let errors: u64 = per_server.iter().map(|s| s.errors).sum();
            let _ = write!(row, " {rate:.0} ({p99:.2} ms)");
            if errors > 0 {
                let _ = write!(row, " **{errors} errors**");
            }
            row.push_str(" |");
        }
        for &s in &ours {
            let entry = ratio_entry(&samples[c], &ours, s, |s| s.msgs_per_s, rate_ratio);
            let _ = write!(row, " {entry} |");
        }
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(
        out,
        "\nServer CPU time (user + system) per echoed message, µs, mean of the rounds, with \
         its user-space part in brackets (lower is better; the last columns are the best \
         peer's figure over each of Sockeye's, with the range of the rounds' own ratios in \
         brackets):\n"
    );
    let mut cpu_header = String::from("| load |");
    for server in servers {
        let _ = write!(cpu_header, " {} |", server.name());
    }
    for &s in &ours {
        let _ = write!(cpu_header, " best peer / {} |", servers[s].name());
    }
    let _ = writeln!(out, "{cpu_header}\n{rule}");
    for (c, cell) in args.cells.iter().enumerate() {
        let mut row = format!("| {} |", cell.label());
        for per_server in &samples[c] {
            let _ = write!(
                row,
                " {:.1} ({:.2}) |",
                mean(per_server, |s| s.cpu_us_per_echo),
                mean(per_server, |s| s.user_us_per_echo)
            );
        }
        for &s in &ours {
            let entry = ratio_entry(&samples[c], &ours, s, |s| s.cpu_us_per_echo, cpu_ratio);
            let _ = write!(row, " {entry} |");
        }
        let _ = writeln!(out, "{row}");
    }
    if !memory.is_empty() {
        let _ = writeln!(
            out,
            "\nIdle memory: server RSS with N idle connections minus RSS with none, / N:\n"
        );
        let _ = writeln!(
            out,
            "| server | RSS, no connections | RSS, {} idle | per connection |\n|---|---:|---:|---:|",
            args.idle
        );
        for (server, result) in memory {
            match result {
                Ok(m) => {
                    let _ = writeln!(
                        out,
                        "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
                        server.name(),
                        m.base as f64 / 1048576.0,
                        m.loaded as f64 / 1048576.0,
                        m.per_connection() / 1024.0
                    );
                }
                Err(error) => {
                    let _ = writeln!(out, "| {} | failed: {error} | | |", server.name());
                }
            }
        }
    }
    out
}

/// The CPU a run was measured on, as `/proc/cpuinfo` gives it: runs on hosts with
/// different CPUs compare by their ratios, not their rates.
#[derive(Debug, Default, PartialEq)]
struct HostCpu {
    model: Option<String>,
    family: Option<u32>,
    mhz: Option<f64>,
    cpus: usize,
}

impl HostCpu {
    fn describe(&self) -> String {
        let mut parts = vec![
            self.model
                .clone()
                .unwrap_or_else(|| "unknown CPU".to_owned()),
        ];
        parts.extend(self.family.map(|family| format!("family {family}")));
        parts.extend(self.mhz.map(|mhz| format!("{mhz:.0} MHz")));
        parts.push(format!("{} CPUs", self.cpus));
        parts.join(", ")
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu_model": self.model,
            "cpu_family": self.family,
            "cpu_mhz": self.mhz,
            "cpus": self.cpus,
        })
    }
}

/// The first processor's model, family and clock, and the number of processors, from the
/// text of `/proc/cpuinfo`.
fn host_cpu(cpuinfo: &str) -> HostCpu {
    let mut host = HostCpu::default();
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => host.cpus += 1,
            "model name" if host.model.is_none() => host.model = Some(value.to_owned()),
            "cpu family" if host.family.is_none() => host.family = value.parse().ok(),
            "cpu MHz" if host.mhz.is_none() => host.mhz = value.parse().ok(),
            _ => {}
        }
    }
    host
}

/// The crate and version of each peer among `servers`, in their order.
fn peer_versions(servers: &[Server]) -> Vec<(&'static str, String)> {
    servers
        .iter()
        .filter_map(|server| Some((server.peer_crate()?, server.peer_version()?)))
        .collect()
}

fn to_json(
    args: &MatrixArgs,
    servers: &[Server],
    samples: &[Vec<Vec<Sample>>],
    memory: &[(Server, Result<Memory, String>)],
    host: &HostCpu,
    peers: &[(&'static str, String)],
) -> serde_json::Value {
    let cells: Vec<serde_json::Value> = args
        .cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            let results: serde_json::Map<String, serde_json::Value> = servers
                .iter()
                .enumerate()
                .map(|(s, server)| {
                    let runs: Vec<serde_json::Value> = samples[c][s]
                        .iter()
                        .map(|x| {
                            let mut run = x.json.clone();
                            run["server_cpu_us_per_echo"] = x.cpu_us_per_echo.into();
                            run["server_user_us_per_echo"] = x.user_us_per_echo.into();
                            run
                        })
                        .collect();
                    (server.name().to_owned(), serde_json::Value::Array(runs))
                })
                .collect();
            serde_json::json!({
                "connections": cell.connections,
                "size": cell.size,
                "results": results,
            })
        })
        .collect();
    let memory: serde_json::Map<String, serde_json::Value> = memory
        .iter()
        .map(|(server, result)| {
            let value = match result {
                Ok(m) => serde_json::json!({
                    "rss_base": m.base,
                    "rss_loaded": m.loaded,
                    "connections": m.count,
                    "bytes_per_connection": m.per_connection(),
                }),
                Err(error) => serde_json::json!({ "error": error }),
            };
            (server.name().to_owned(), value)
        })
        .collect();
    serde_json::json!({
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "threads": args.threads,
        "cells": cells,
        "idle_memory": memory,
        "host": host.to_json(),
        "peer_versions": peers
            .iter()
            .map(|(name, version)| ((*name).to_owned(), version.as_str().into()))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(msgs_per_s: f64, cpu_us_per_echo: f64) -> Sample {
        Sample {
            msgs_per_s,
            mb_per_s: 0.0,
            p99_us: 0.0,
            errors: 0,
            cpu_us_per_echo,
            user_us_per_echo: cpu_us_per_echo / 4.0,
            json: serde_json::Value::Null,
        }
    }

    #[test]
    fn each_rounds_ratio_is_against_that_rounds_best_peer() {
        // Server 0 is ours; the machine ran twice as fast in round 2 for everyone.
        let cell = vec![
            vec![sample(90.0, 10.0), sample(180.0, 5.0)],
            vec![sample(100.0, 9.0), sample(150.0, 6.0)],
            vec![sample(80.0, 12.0), sample(200.0, 4.0)],
        ];
        let rates = round_ratios(&cell, &[0], 0, |s| s.msgs_per_s, rate_ratio);
        assert_eq!(rates, vec![0.9, 0.9]);
        let cpu = round_ratios(&cell, &[0], 0, |s| s.cpu_us_per_echo, cpu_ratio);
        assert_eq!(cpu, vec![0.9, 0.8]);
        assert_eq!(range_note(&cpu), " (0.80-0.90)");
        // Of the means: 135 / max(125, 140); the most frugal peer's 7.5 / 7.5.
        assert_eq!(
            ratio_entry(&cell, &[0], 0, |s| s.msgs_per_s, rate_ratio),
            "0.96 (0.90-0.90)"
        );
        assert_eq!(
            ratio_entry(&cell, &[0], 0, |s| s.cpu_us_per_echo, cpu_ratio),
            "1.00 (0.80-0.90)"
        );
        assert_eq!(
            ratio_entry(&cell, &[0, 1, 2], 0, |s| s.msgs_per_s, rate_ratio),
            "n/a",
            "no peer to compare with"
        );
        assert_eq!(range_note(&[1.0]), "", "one round has no range");
    }

    #[test]
    fn a_ratio_just_below_one_is_not_printed_as_one() {
        assert_eq!(ratio_text(0.996, 2), "0.996");
        assert_eq!(ratio_text(0.9996, 2), "0.999");
        assert_eq!(ratio_text(0.994, 2), "0.99");
        assert_eq!(ratio_text(1.0, 2), "1.00");
        assert_eq!(ratio_text(1.0049, 2), "1.00");
        assert_eq!(ratio_text(1.12, 2), "1.12");
        // To three places, as the pooled means are printed.
        assert_eq!(ratio_text(0.9996, 3), "0.9996");
        assert_eq!(ratio_text(0.9994, 3), "0.999");
        assert_eq!(ratio_text(1.0004, 3), "1.000");
        assert_eq!(range_note(&[0.9951, 1.004]), " (0.995-1.00)");
        // The latest run's 1 KiB cell: 121,559 against fastwebsockets' 122,002 msg/s.
        let cell = vec![vec![sample(121_559.0, 8.2)], vec![sample(122_002.0, 7.8)]];
        assert_eq!(
            ratio_entry(&cell, &[0], 0, |s| s.msgs_per_s, rate_ratio),
            "0.996"
        );
    }

    #[test]
    fn the_host_cpu_is_read_from_the_first_processor_and_counts_them_all() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
                       model name\t: AMD EPYC\ncpu MHz\t\t: 2596.140\n\n\
                       processor\t: 1\ncpu family\t: 26\nmodel name\t: other\n\
                       cpu MHz\t\t: 1.0\n";
        let host = host_cpu(cpuinfo);
        assert_eq!(
            host,
            HostCpu {
                model: Some("AMD EPYC".to_owned()),
                family: Some(25),
                mhz: Some(2596.14),
                cpus: 2,
            }
        );
        assert_eq!(host.describe(), "AMD EPYC, family 25, 2596 MHz, 2 CPUs");
        assert_eq!(host.to_json()["cpu_family"], 25);
        assert_eq!(host_cpu("").describe(), "unknown CPU, 0 CPUs");
    }

    #[test]
    fn user_and_system_time_are_read_after_the_command_name() {
        let stat = "4242 (peers (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 2000000 900 18446744073709551615";
        assert_eq!(stat_ticks(stat), Some((1234, 567)));
        assert_eq!(stat_ticks("4242 (peers) S 1 2"), None, "a line cut short");
        assert_eq!(stat_ticks("no command name"), None);
    }

    #[test]
    fn cells_are_connections_by_size() {
        let cell = parse_cell("500x16KiB").unwrap();
        assert_eq!(cell.connections, 500);
        assert_eq!(cell.size, "16KiB");
        assert_eq!(cell.label(), "500 × 16KiB");
        assert_eq!(parse_cell("100x20B").unwrap().label(), "100 × 20 B");
        assert!(parse_cell("100").is_err());
        assert!(parse_cell("ax20").is_err());
    }
}
