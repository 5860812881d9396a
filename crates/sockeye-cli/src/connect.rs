//! `sockeye connect`: stdin lines out as text messages, received messages to stdout.

use std::fmt::Write as _;
use std::io::BufRead;
use std::process::ExitCode;

use sockeye::{ClientBuilder, CloseCode, Message, Session, WebSocketReceiver};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// The connection closed cleanly: both Close frames were exchanged.
const EXIT_CLEAN: u8 = 0;
/// The connection ended without a clean close.
const EXIT_UNCLEAN: u8 = 1;
/// The connection was never established.
const EXIT_CONNECT_FAILED: u8 = 2;

pub(crate) const AFTER_HELP: &str = "\
Output:
  Each received text message is printed on stdout as it is, followed by a newline.
  Each binary message is printed on one line as \"binary: \" and lowercase hex,
  e.g. \"binary: 0a1b\" (only a text message that itself begins with \"binary: \"
  can look the same). Status and the close code, reason and clean flag go to stderr.

Examples:
  sockeye connect ws://127.0.0.1:9001
  sockeye connect ws://127.0.0.1:9001/chat --subprotocol chat.v2 --subprotocol chat.v1
  sockeye connect ws://example.com/feed --header 'Authorization: Bearer 0123'
  sockeye connect ws://127.0.0.1:9001 --deflate
  sockeye connect ws://127.0.0.1:9001 --ping 1s       print the round trip every second
  sockeye connect wss://example.com/feed --proxy http://proxy.internal:3128
  https_proxy=http://proxy.internal:3128 sockeye connect wss://example.com/feed

Exit status:
  0  the connection closed cleanly (both Close frames exchanged, any code)
  1  it ended uncleanly: connection lost, protocol error or timeout
  2  it was never established: invalid URL or header, connection refused,
     handshake refused or timed out (also clap's own usage errors)";

/// How many stdin lines may wait for the connection before reading stdin pauses.
const LINE_QUEUE: usize = 16;

// The arguments of `sockeye connect`; the subcommand's help is in main.rs.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The server's URL: ws://HOST[:PORT][/PATH][?QUERY], or wss:// for TLS
    #[arg(value_name = "URL")]
    url: String,

    /// Offer a subprotocol; repeatable
    ///
    /// Sent in Sec-WebSocket-Protocol, in the order given (the order of preference). The
    /// one the server selects, if any, is printed on stderr.
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocols: Vec<String>,

    /// Add a header to the handshake request; repeatable
    ///
    /// For example --header 'Authorization: Bearer 0123'. The headers the handshake sets
    /// itself (Host, Upgrade, Connection, Sec-WebSocket-*, Origin) cannot be given here.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<Header>,

    /// Send an Origin header, as a browser would
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,

    /// For wss://: trust only the CA certificates in this PEM file (e.g. a private CA or a
    /// self-signed server certificate) instead of the built-in root store
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,

    /// Connect through this proxy: http://, socks5:// or socks5h://[USER:PASSWORD@]HOST[:PORT]
    ///
    /// The proxy is asked for a tunnel to the server (HTTP CONNECT, or SOCKS5's CONNECT;
    /// socks5h:// has the proxy resolve the server's name); TLS for wss:// and the
    /// WebSocket handshake run through it, end to end. Without this option, the proxy
    /// the environment names is used, as curl does: https_proxy for wss://, http_proxy
    /// for ws://, else all_proxy (or their upper-case forms, but for HTTP_PROXY); servers
    /// that no_proxy lists
    /// (comma-separated domains, addresses, ranges, or *) and this machine's own
    /// (localhost, loopback addresses) are reached directly.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,

    /// Offer permessage-deflate compression (RFC 7692)
    ///
    /// If the server accepts, messages of 64 bytes or more are sent compressed and the
    /// extension is named on the "connected to" line on stderr.
    #[arg(long)]
    deflate: bool,

    /// Send a Ping every TIME (e.g. 1s, 500ms) and print its round trip on stderr
    ///
    /// Each answer is printed as "pong: 0.42 ms". A Pong that does not come within 20 s
    /// closes the connection with 1011 (the library's pong timeout).
    #[arg(long, value_name = "TIME", value_parser = crate::bench::at_least_a_millisecond)]
    ping: Option<std::time::Duration>,
}

/// A `Name: value` header from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    name: String,
    value: String,
}

fn parse_header(arg: &str) -> Result<Header, String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("{arg:?} is not of the form 'Name: value'"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{arg:?} has an empty header name"));
    }
    Ok(Header {
        name: name.to_owned(),
        value: value.trim().to_owned(),
    })
}

pub(crate) async fn run(args: ConnectArgs) -> ExitCode {
    let mut builder = ClientBuilder::new().deflate(args.deflate);
    for subprotocol in args.subprotocols {
        builder = builder.subprotocol(subprotocol);
    }
    for header in args.headers {
        builder = builder.header(header.name, header.value);
    }
    if let Some(origin) = args.origin {
        builder = builder.origin(origin);
    }
    builder = match args.proxy {
        Some(proxy) => builder.proxy(proxy),
        None => builder.proxy_from_env(),
    };
    if let Some(ca) = &args.ca {
        builder = match builder.tls_root_pem(ca) {
            Ok(builder) => builder,
            Err(error) => {
                eprintln!("sockeye: {error}");
                return ExitCode::from(EXIT_CONNECT_FAILED);
            }
        };
    }
    let (ws, response) = match builder.connect(&args.url).await {
        Ok(connected) => connected,
        Err(error) => {
            eprintln!("sockeye: {error}");
            return ExitCode::from(EXIT_CONNECT_FAILED);
        }
    };
    let mut agreed = Vec::new();
    if let Some(subprotocol) = &response.subprotocol {
        agreed.push(format!("subprotocol {subprotocol}"));
    }
    agreed.extend(response.extensions.iter().cloned());
    if agreed.is_empty() {
        eprintln!("connected to {}", args.url);
    } else {
        eprintln!("connected to {} ({})", args.url, agreed.join(", "));
    }

    let (mut sender, receiver) = ws.split();
    let session = sender.session();
    let printer = tokio::spawn(print_messages(receiver, session.clone()));
    let pinger = args
        .ping
        .map(|every| tokio::spawn(ping_every(every, session.clone())));
    let mut lines = stdin_lines();
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    // Fails only once the session is closing; its outcome follows.
                    if sender.send(Message::Text(line)).await.is_err() {
                        break;
                    }
                }
                None => {
                    // Refused only if the session is already closing: same outcome.
                    let _ = sender.close(CloseCode::NORMAL, "").await;
                    break;
                }
            },
            _ = session.closed() => break,
        }
    }
    drop(sender);
    let info = session.closed().await;
    if let Some(pinger) = pinger {
        pinger.abort();
    }
    // Every message that arrived is printed before the outcome.
    let _ = printer.await;
    eprintln!("connection closed: {info}");
    ExitCode::from(if info.clean { EXIT_CLEAN } else { EXIT_UNCLEAN })
}

/// Pings the peer every `every` and prints each round trip on stderr, until a ping fails
/// (the session is over; its outcome is printed by the caller).
async fn ping_every(every: std::time::Duration, session: Session) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match session.ping().await {
            Ok(rtt) => eprintln!("pong: {:.2} ms", rtt.as_secs_f64() * 1000.0),
            Err(_) => return,
        }
    }
}

/// Prints each received message on stdout until the stream ends (the peer's Close frame
/// or a failure; the outcome is printed by the caller). If stdout goes away, the session
/// is closed with 1001.
async fn print_messages(mut receiver: WebSocketReceiver, session: Session) {
    let mut stdout = tokio::io::stdout();
    while let Some(Ok(message)) = receiver.next().await {
        let Some(line) = render(&message) else {
            continue;
        };
        let written = async {
            stdout.write_all(line.as_bytes()).await?;
            stdout.flush().await
        };
        if let Err(error) = written.await {
            eprintln!("sockeye: cannot write to stdout: {error}");
            let _ = session.close(CloseCode::GOING_AWAY, "");
            break;
        }
    }
}

/// A received message as printed, with its newline: text as it is, binary as
/// `binary: ` and lowercase hex. Control frames are never yielded to the application.
fn render(message: &Message) -> Option<String> {
    match message {
        Message::Text(text) => Some(format!("{text}\n")),
        Message::Binary(data) => {
            let mut line = String::with_capacity(9 + 2 * data.len());
            line.push_str("binary: ");
            for byte in data.iter() {
                let _ = write!(line, "{byte:02x}");
            }
            line.push('\n');
            Some(line)
        }
        Message::Ping(_) | Message::Pong(_) => None,
    }
}

/// Reads stdin lines on a thread of their own (a blocking read must not hold the
/// runtime, nor keep the process alive once the connection is over). The channel closes
/// at the end of stdin. Lines lose their `\n` or `\r\n`; a line that is not UTF-8 cannot
/// be a text message and is reported and skipped.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    let reader = move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        for number in 1.. {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    eprintln!("sockeye: cannot read stdin: {error}");
                    break;
                }
            }
            if buf.ends_with(b"\n") {
                buf.pop();
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
            }
            match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(line) => {
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
                Err(_) => eprintln!("sockeye: stdin line {number} is not UTF-8: not sent"),
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(reader)
    {
        // The channel is closed: the session closes at once, as at the end of stdin.
        eprintln!("sockeye: cannot read stdin: {error}");
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_split_at_the_first_colon_and_trimmed() {
        assert_eq!(
            parse_header("Authorization:  Bearer a:b ").unwrap(),
            Header {
                name: "Authorization".into(),
                value: "Bearer a:b".into()
            }
        );
        assert_eq!(parse_header("X-Empty:").unwrap().value, "");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(" : value").is_err());
    }

    #[test]
    fn binary_messages_are_rendered_as_prefixed_hex() {
        assert_eq!(
            render(&Message::Binary(vec![0x0a, 0x1b, 0xff, 0x00].into())).unwrap(),
            "binary: 0a1bff00\n"
        );
        assert_eq!(
            render(&Message::Binary(Vec::new().into())).unwrap(),
            "binary: \n"
        );
        assert_eq!(render(&Message::Text("héllo".into())).unwrap(), "héllo\n");
    }
}
