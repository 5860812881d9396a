//! `sockeye bench`: a load generator for echo servers.
//!
//! Each connection sends one message, waits for its echo, records the round trip in an HDR
//! histogram and sends the next (a closed loop: one message in flight per connection). The
//! result is the echo rate, the payload throughput, the round-trip percentiles and the
//! errors.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sockeye::{ClientBuilder, CloseCode, Message, WebSocket};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Every measured echo was returned intact and every connection was made.
const EXIT_OK: u8 = 0;
/// At least one error: a failed connection, a lost session, a timeout or a wrong echo.
const EXIT_ERRORS: u8 = 1;
/// No connection could be made at all (also clap's own usage errors).
const EXIT_NO_CONNECTION: u8 = 2;

/// How long the closing handshake of each connection may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many round trips a connection collects before adding them to the shared histogram.
const SAMPLE_BATCH: usize = 512;
/// How many bytes at each end of an echo are compared with what was sent.
const CHECKED_BYTES: usize = 64;
/// The measured duration when neither --duration nor --messages is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(5);

pub(crate) const AFTER_HELP: &str = "\
Each connection keeps one message in flight: it sends, waits for the echo, records the
round trip, and sends the next. Messages echoed during the warm-up are not counted.
An echo must have the kind and length of the message sent and the same bytes at both
ends (the first and last 64); anything else counts as an error.

Output (stdout):
  messages     echoed messages counted, and messages per second
  throughput   payload megabytes (10^6 B) per second, in each direction
  latency      round-trip percentiles from an HDR histogram (3 significant digits)
  errors       connections that failed, sessions lost, echoes late or wrong
  unclean      connections whose closing handshake did not complete cleanly
  compressed   with --deflate: connections on which the server agreed to permessage-deflate

Examples:
  sockeye bench --url ws://127.0.0.1:9001 -c 100 -s 20 -d 10s
  sockeye bench -c 10 -s 16KiB -n 100000 --text
  sockeye bench -c 10 -s 1MiB --warmup 1s --json
  sockeye bench -c 10 -s 16KiB --text --deflate   against `sockeye serve --deflate`

Exit status:
  0  no errors
  1  at least one error (see the errors line)
  2  no connection could be made (also usage errors)";

// The arguments of `sockeye bench`; the subcommand's help is in main.rs.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The echo server's URL
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001/")]
    url: String,

    /// Number of connections, each with one message in flight
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,

    /// Payload size of each message: bytes, or with a unit (KiB, MiB; k and M mean the same)
    #[arg(short = 's', long, value_name = "SIZE", default_value = "20", value_parser = parse_size)]
    size: usize,

    /// How long to measure, after the warm-up: 5s, 500ms, 1m [default: 5s]
    #[arg(short = 'd', long, value_name = "TIME", value_parser = parse_duration,
          conflicts_with = "messages")]
    duration: Option<Duration>,

    /// Measure this many echoed messages in all, instead of a duration
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    messages: Option<u64>,

    /// Send text messages (ASCII) instead of binary ones
    #[arg(long)]
    text: bool,

    /// Offer permessage-deflate compression (RFC 7692) on every connection; the result
    /// says on how many the server agreed
    #[arg(long)]
    deflate: bool,

    /// Run this long before measuring; these echoes are not counted
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,

    /// Count an error and drop the connection when an echo takes longer than this
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "10s")]
    timeout: Duration,

    /// Worker threads of the load generator [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,

    /// Print the result as one JSON object on stdout instead of the text block
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    /// Worker threads asked for, if any.
    pub(crate) fn threads(&self) -> Option<usize> {
        self.threads.map(|n| n as usize)
    }
}

/// A size such as `20`, `1KiB`, `16k` or `1MiB`.
fn parse_size(arg: &str) -> Result<usize, String> {
    let arg = arg.trim();
    let split = arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len());
    let (number, unit) = arg.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{arg:?} is not a size such as 20, 1KiB or 1MiB"))?;
    let unit = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" | "KB" | "kB" => 1024,
        "M" | "m" | "MiB" | "MB" => 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?} (use KiB or MiB)")),
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{arg:?} is too large"))
}

/// A duration such as `5s`, `500ms`, `1.5s` or `2m`; a bare number is seconds.
fn parse_duration(arg: &str) -> Result<Duration, String> {
    let arg = arg.trim();
    let split = arg
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(arg.len());
    let (number, unit) = arg.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{arg:?} is not a duration such as 5s or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        other => return Err(format!("unknown time unit {other:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{arg:?} is out of range"))
}

/// A duration of at least a millisecond ([`parse_duration`]'s forms): the intervals of
/// `connect --ping` and `serve --keepalive`.
pub(crate) fn at_least_a_millisecond(arg: &str) -> Result<Duration, String> {
    let interval = parse_duration(arg)?;
    if interval < Duration::from_millis(1) {
        return Err(format!("{arg:?} is shorter than 1ms"));
    }
    Ok(interval)
}

/// When a connection may send a measured message.
#[derive(Debug)]
enum Budget {
    /// Until this instant.
    Until(Instant),
    /// While tickets are left.
    Tickets(AtomicI64),
}

/// What every connection shares: the plan and the counters.
#[derive(Debug)]
struct Run {
    /// Messages sent from this instant on are measured.
    measure_from: Instant,
    budget: Budget,
    echo_timeout: Duration,
    /// Measured echoes.
    messages: AtomicU64,
    /// Every echo, the warm-up's included.
    echoes: AtomicU64,
    /// When the last measured echo arrived, in nanoseconds after `measure_from`.
    last_echo_nanos: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    unclean: AtomicU64,
    histogram: Mutex<Histogram<u64>>,
}

impl Run {
    /// Takes the right to send one more measured message.
    fn take_ticket(&self, now: Instant) -> bool {
        match &self.budget {
            Budget::Until(end) => now < *end,
            Budget::Tickets(left) => left.fetch_sub(1, Ordering::Relaxed) > 0,
        }
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(what);
    }

    fn record(&self, samples: &mut Vec<u64>) {
        let mut histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        for &nanos in samples.iter() {
            histogram.saturating_record(nanos);
        }
        samples.clear();
    }
}

/// The message every connection sends, built once.
#[derive(Clone, Debug)]
enum Payload {
    Binary(Bytes),
    Text(String),
}

impl Payload {
    fn new(size: usize, text: bool) -> Payload {
        // Varied bytes, so that an echo from the wrong offset does not compare equal.
        let bytes: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        if text {
            Payload::Text(String::from_utf8(bytes).unwrap_or_default())
        } else {
            Payload::Binary(Bytes::from(bytes))
        }
    }

    fn message(&self) -> Message {
        match self {
            // A reference count, not a copy.
            Payload::Binary(bytes) => Message::Binary(bytes.clone()),
            Payload::Text(text) => Message::Text(text.clone()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Binary(bytes) => bytes,
            Payload::Text(text) => text.as_bytes(),
        }
    }

    /// Whether `echo` is what was sent: same kind, same length, same bytes at both ends.
    fn check(&self, echo: &Message) -> Result<(), String> {
        let same_kind = matches!(
            (self, echo),
            (Payload::Binary(_), Message::Binary(_)) | (Payload::Text(_), Message::Text(_))
        );
        if !same_kind {
            return Err("the echo is not of the kind sent (text or binary)".into());
        }
        let (sent, got) = (self.as_bytes(), echo.as_bytes());
        if sent.len() != got.len() {
            return Err(format!(
                "an echo of {} bytes arrived for a message of {}",
                got.len(),
                sent.len()
            ));
        }
        let n = CHECKED_BYTES.min(sent.len());
        if sent[..n] != got[..n] || sent[sent.len() - n..] != got[got.len() - n..] {
            return Err("an echo's bytes differ from the message sent".into());
        }
        Ok(())
    }
}

pub(crate) async fn run(args: BenchArgs) -> ExitCode {
    let payload = Payload::new(args.size, args.text);
    let connections = args.connections as usize;

    // 1. Connect everything first, so that the handshakes are not measured.
    let mut connecting = JoinSet::new();
    for _ in 0..connections {
        let url = args.url.clone();
        let deflate = args.deflate;
        connecting.spawn(async move { ClientBuilder::new().deflate(deflate).connect(&url).await });
    }
    let mut sockets = Vec::with_capacity(connections);
    let mut connect_errors = Vec::new();
    let mut compressed = 0;
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok(Ok((ws, _response))) => {
                compressed += usize::from(ws.deflate().is_some());
                sockets.push(ws);
            }
            Ok(Err(error)) => connect_errors.push(error.to_string()),
            Err(error) => connect_errors.push(error.to_string()),
        }
    }
    if sockets.is_empty() {
        let why = connect_errors.first().map_or("", String::as_str);
        eprintln!(
            "sockeye: no connection to {} could be made: {why}",
            args.url
        );
        return ExitCode::from(EXIT_NO_CONNECTION);
    }

    // 2. Run the closed loops.
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let measured_for = match args.messages {
        Some(_) => None,
        None => Some(args.duration.unwrap_or(DEFAULT_DURATION)),
    };
    let budget = match (args.messages, measured_for) {
        (Some(n), _) => Budget::Tickets(AtomicI64::new(i64::try_from(n).unwrap_or(i64::MAX))),
        (None, Some(duration)) => Budget::Until(measure_from + duration),
        (None, None) => Budget::Until(measure_from),
    };
    let histogram = match Histogram::new_with_bounds(1, 60_000_000_000, 3) {
        Ok(histogram) => histogram,
        Err(error) => {
            eprintln!("sockeye: cannot create the latency histogram: {error}");
            return ExitCode::FAILURE;
        }
    };
    let run = Arc::new(Run {
        measure_from,
        budget,
        echo_timeout: args.timeout,
        messages: AtomicU64::new(0),
        echoes: AtomicU64::new(0),
        last_echo_nanos: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        unclean: AtomicU64::new(0),
        histogram: Mutex::new(histogram),
    });
    for error in &connect_errors {
        run.error(format!("connecting: {error}"));
    }
    let progress = Progress::start(&args, run.clone(), started);
    let mut loops = JoinSet::new();
    for ws in sockets.drain(..) {
        loops.spawn(echo_loop(ws, payload.clone(), run.clone()));
    }
    while let Some(joined) = loops.join_next().await {
        if let Err(error) = joined {
            run.error(format!("a connection's task failed: {error}"));
        }
    }
    progress.finish();

    // 3. Report.
    let report = Report::new(&args, &run, connections - connect_errors.len(), compressed);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    let code = if report.errors == 0 {
        EXIT_OK
    } else {
        EXIT_ERRORS
    };
    ExitCode::from(code)
}

/// One connection's closed loop, then its closing handshake.
async fn echo_loop(mut ws: WebSocket, payload: Payload, run: Arc<Run>) {
    let mut samples = Vec::with_capacity(SAMPLE_BATCH);
    let mut healthy = true;
    loop {
        let sent_at = Instant::now();
        let measured = sent_at >= run.measure_from;
        if measured && !run.take_ticket(sent_at) {
            break;
        }
        if let Err(error) = ws.send(payload.message()).await {
            run.error(format!("sending: {error}"));
            healthy = false;
            break;
        }
        let echo = match timeout(run.echo_timeout, ws.next()).await {
            Ok(Some(Ok(echo))) => echo,
            Ok(Some(Err(error))) => {
                run.error(format!("receiving: {error}"));
                healthy = false;
                break;
            }
            Ok(None) => {
                run.error("the server closed the connection".into());
                healthy = false;
                break;
            }
            Err(_) => {
                run.error(format!("no echo within {:?}", run.echo_timeout));
                healthy = false;
                break;
            }
        };
        let arrived = Instant::now();
        if let Err(error) = payload.check(&echo) {
            run.error(error);
            healthy = false;
            break;
        }
        run.echoes.fetch_add(1, Ordering::Relaxed);
        if measured {
            let nanos = u64::try_from((arrived - sent_at).as_nanos()).unwrap_or(u64::MAX);
            samples.push(nanos.max(1));
            if samples.len() == SAMPLE_BATCH {
                run.record(&mut samples);
            }
            run.messages.fetch_add(1, Ordering::Relaxed);
            let since = u64::try_from((arrived - run.measure_from).as_nanos()).unwrap_or(u64::MAX);
            run.last_echo_nanos.fetch_max(since, Ordering::Relaxed);
        }
    }
    run.record(&mut samples);
    if !healthy {
        return;
    }
    match timeout(CLOSE_TIMEOUT, ws.close(CloseCode::NORMAL, "")).await {
        Ok(Ok(info)) if info.clean => {}
        _ => {
            run.unclean.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The progress bar on stderr, only when stderr is a terminal.
struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(args: &BenchArgs, run: Arc<Run>, started: Instant) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let (length, by_count) = match (args.messages, args.duration) {
            (Some(n), _) => (n, true),
            (None, duration) => {
                let total = args.warmup + duration.unwrap_or(DEFAULT_DURATION);
                (u64::try_from(total.as_millis()).unwrap_or(u64::MAX), false)
            }
        };
        let bar = ProgressBar::new(length);
        let template = if by_count {
            "{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}"
        } else {
            "{elapsed_precise} [{wide_bar}] {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut last = (Instant::now(), 0u64);
            loop {
                tick.tick().await;
                let now = Instant::now();
                let count = run.messages.load(Ordering::Relaxed);
                let rate = (count - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
                last = (now, count);
                let errors = run.errors.load(Ordering::Relaxed);
                let phase = if now < run.measure_from {
                    "warming up"
                } else {
                    "measuring"
                };
                shown.set_message(format!(
                    "{phase}: {count} msgs, {rate:.0} msg/s, {errors} errors"
                ));
                if by_count {
                    shown.set_position(count);
                } else {
                    let elapsed = (now - started).as_millis();
                    shown.set_position(u64::try_from(elapsed).unwrap_or(u64::MAX));
                }
            }
        });
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The figures of a finished run.
#[derive(Debug)]
struct Report {
    url: String,
    connections: u32,
    connected: usize,
    size: usize,
    text: bool,
    warmup: Duration,
    elapsed: Duration,
    messages: u64,
    /// Every echo, the warm-up's included.
    echoes: u64,
    /// Round trips in nanoseconds: p50, p90, p99, p99.9, max, mean.
    latency: [f64; 6],
    errors: u64,
    first_error: Option<String>,
    unclean: u64,
    /// Whether permessage-deflate was offered, and on how many connections it was agreed.
    deflate: bool,
    compressed: usize,
}

impl Report {
    fn new(args: &BenchArgs, run: &Run, connected: usize, compressed: usize) -> Report {
        let histogram = run.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let latency = if histogram.is_empty() {
            [0.0; 6]
        } else {
            [
                histogram.value_at_quantile(0.50) as f64,
                histogram.value_at_quantile(0.90) as f64,
                histogram.value_at_quantile(0.99) as f64,
                histogram.value_at_quantile(0.999) as f64,
                histogram.max() as f64,
                histogram.mean(),
            ]
        };
        Report {
            url: args.url.clone(),
            connections: args.connections,
            connected,
            size: args.size,
            text: args.text,
            warmup: args.warmup,
            elapsed: Duration::from_nanos(run.last_echo_nanos.load(Ordering::Relaxed)),
            messages: run.messages.load(Ordering::Relaxed),
            echoes: run.echoes.load(Ordering::Relaxed),
            latency,
            errors: run.errors.load(Ordering::Relaxed),
            first_error: run
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            unclean: run.unclean.load(Ordering::Relaxed),
            deflate: args.deflate,
            compressed,
        }
    }

    fn messages_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.messages as f64 / seconds
        } else {
            0.0
        }
    }

    fn megabytes_per_second(&self) -> f64 {
        self.messages_per_second() * self.size as f64 / 1e6
    }

    fn kind(&self) -> &'static str {
        if self.text { "text" } else { "binary" }
    }

    fn text(&self) -> String {
        let ms = |nanos: f64| nanos / 1e6;
        let [p50, p90, p99, p999, max, _] = self.latency;
        let mut out = String::new();
        out.push_str(&format!("url          {}\n", self.url));
        out.push_str(&format!(
            "load         {} connections ({} connected), {} B {} messages, one in flight each\n",
            self.connections,
            self.connected,
            self.size,
            self.kind()
        ));
        out.push_str(&format!(
            "measured     {:.2} s (after {:.2} s warm-up)\n",
            self.elapsed.as_secs_f64(),
            self.warmup.as_secs_f64()
        ));
        out.push_str(&format!(
            "messages     {} echoed, {:.0} msg/s\n",
            self.messages,
            self.messages_per_second()
        ));
        out.push_str(&format!(
            "throughput   {:.2} MB/s each way\n",
            self.megabytes_per_second()
        ));
        out.push_str(&format!(
            "latency      p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms\n",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(p999),
            ms(max)
        ));
        out.push_str(&format!("errors       {}\n", self.errors));
        if let Some(first) = &self.first_error {
            out.push_str(&format!("first error  {first}\n"));
        }
        out.push_str(&format!("unclean      {}\n", self.unclean));
        if self.deflate {
            out.push_str(&format!(
                "compressed   {} of {} connections (permessage-deflate)\n",
                self.compressed, self.connected
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let us = |nanos: f64| (nanos / 10.0).round() / 100.0;
        let [p50, p90, p99, p999, max, mean] = self.latency;
        serde_json::json!({
            "url": self.url,
            "connections": self.connections,
            "connected": self.connected,
            "size": self.size,
            "kind": self.kind(),
            "warmup_s": self.warmup.as_secs_f64(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "messages": self.messages,
            "echoes_total": self.echoes,
            "msgs_per_s": self.messages_per_second(),
            "mb_per_s": self.megabytes_per_second(),
            "latency_us": {
                "p50": us(p50),
                "p90": us(p90),
                "p99": us(p99),
                "p99_9": us(p999),
                "max": us(max),
                "mean": us(mean),
            },
            "errors": self.errors,
            "first_error": self.first_error,
            "unclean": self.unclean,
            "deflate_offered": self.deflate,
            "compressed_connections": self.compressed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("20"), Ok(20));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("16k"), Ok(16 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("KiB").is_err());
    }

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn an_echo_must_match_kind_length_and_ends() {
        let payload = Payload::new(200, false);
        assert!(payload.check(&payload.message()).is_ok());
        let text = Payload::new(200, true);
        assert!(payload.check(&text.message()).is_err());
        assert!(
            payload
                .check(&Message::Binary(Bytes::from(vec![b'a'; 199])))
                .is_err()
        );
        let mut wrong_end = payload.as_bytes().to_vec();
        wrong_end[199] ^= 1;
        assert!(payload.check(&Message::Binary(wrong_end.into())).is_err());
        let empty = Payload::new(0, true);
        assert!(empty.check(&Message::Text(String::new())).is_ok());
    }
}
