//! Compressed echo against uncompressed: bytes on the wire and messages per second.
//!
//! ```text
//! cargo run --release -p sockeye-proto --example deflate_bench [ROUND_TRIPS]
//! ```
//!
//! A client and a server `Connection` run in memory (no sockets: what is measured is the
//! protocol's own cost, compression included). The client sends JSON-like text messages,
//! the server echoes each one, the client receives the echo. Messages differ from one
//! another (ids, values, timestamps), as a feed's do, and cycle through 64 variants.
//! For each size and setting it prints the round trips per second and the bytes each
//! message takes on the wire, frame headers and masks included, in each direction.

use std::time::{Duration, Instant};

use sockeye_proto::extension::DeflateConfig;
use sockeye_proto::handshake::{Accept, ClientRequest};
use sockeye_proto::{Config, Connection, Event, Message, Transmit};

/// A JSON message of about `len` bytes, variant `n`.
fn json(len: usize, n: usize) -> String {
    let mut text = format!("{{\"seq\":{n},\"type\":\"update\",\"items\":[");
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"id\":{},\"symbol\":\"SYM{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\
             \"volume\":{},\"ts\":\"2024-05-01T12:{:02}:{:02}.{:03}Z\"}},",
            n * 1000 + i,
            (n + i) % 97,
            100 + (n * 7 + i * 13) % 900,
            (n + i * 31) % 100,
            101 + (n * 7 + i * 13) % 900,
            (n * 3 + i * 17) % 100,
            (n * 7919 + i * 104_729) % 1_000_000,
            (n + i) % 60,
            (n * 3 + i) % 60,
            (n * 37 + i * 11) % 1000
        ));
        i += 1;
    }
    text.push_str("]}");
    text
}

/// Moves every transmit of `from` into `to`; returns the bytes moved.
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) -> usize {
    let mut moved = 0;
    while let Some(transmit) = from.poll_transmit() {
        if let Transmit::Data(bytes) = transmit {
            moved += bytes.len();
            to.receive_data(&bytes, now);
        }
    }
    moved
}

/// An open pair with `deflate` on both sides.
fn open_pair(deflate: &DeflateConfig) -> (Connection, Connection, Instant) {
    let now = Instant::now();
    let config = Config {
        deflate: deflate.clone(),
        ..Config::default()
    };
    let mut client = Connection::client(ClientRequest::new("bench", "/"), config.clone());
    let mut server = Connection::server(config, now);
    client.connect(now);
    pump(&mut client, &mut server, now);
    assert_eq!(server.poll_event(), Some(Event::Request));
    server.accept(Accept::default(), now).expect("accept");
    pump(&mut server, &mut client, now);
    assert_eq!(client.poll_event(), Some(Event::Connected));
    assert_eq!(server.poll_event(), Some(Event::Connected));
    client.open();
    server.open();
    assert_eq!(client.deflate().is_some(), deflate.enabled);
    (client, server, now)
}

struct Run {
    per_second: f64,
    up: f64,
    down: f64,
}

fn run(deflate: &DeflateConfig, size: usize, round_trips: usize) -> Run {
    let messages: Vec<String> = (0..64).map(|n| json(size, n)).collect();
    let (mut client, mut server, now) = open_pair(deflate);
    let (mut up, mut down) = (0usize, 0usize);
    let start = Instant::now();
    for i in 0..round_trips {
        let message = Message::Text(messages[i % messages.len()].clone());
        client.send(message.clone()).expect("client send");
        up += pump(&mut client, &mut server, now);
        let Some(Event::Message(received)) = server.poll_event() else {
            panic!("the server received no message")
        };
        server.send(received).expect("server send");
        down += pump(&mut server, &mut client, now);
        let Some(Event::Message(echoed)) = client.poll_event() else {
            panic!("the client received no echo")
        };
        assert_eq!(echoed, message);
    }
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    Run {
        per_second: round_trips as f64 / elapsed.as_secs_f64(),
        up: up as f64 / round_trips as f64,
        down: down as f64 / round_trips as f64,
    }
}

fn main() {
    let round_trips: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("ROUND_TRIPS is a number"))
        .unwrap_or(20_000);
    let settings = [
        ("uncompressed", DeflateConfig::default()),
        ("deflate", DeflateConfig::enabled()),
        (
            "deflate level 1",
            DeflateConfig {
                level: 1,
                ..DeflateConfig::enabled()
            },
        ),
        (
            "deflate no context",
            DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                ..DeflateConfig::enabled()
            },
        ),
    ];
    println!(
        "{:<20} {:>8} {:>14} {:>14} {:>14} {:>8}",
        "setting", "size", "round trips/s", "wire up (B)", "wire down (B)", "ratio"
    );
    for size in [256, 1024, 16 * 1024, 64 * 1024] {
        let count = (round_trips * 1024 / size.max(1024)).max(200);
        let mut plain = None;
        for (name, deflate) in &settings {
            let run = run(deflate, size, count);
            let base = *plain.get_or_insert(run.up);
            println!(
                "{:<20} {:>8} {:>14.0} {:>14.0} {:>14.0} {:>8.3}",
                name,
                size,
                run.per_second,
                run.up,
                run.down,
                run.up / base
            );
        }
    }
}
