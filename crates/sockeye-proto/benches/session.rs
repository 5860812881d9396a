//! The core's receive path, as a server sees it: whole messages and fragmented ones
//! through `Connection::receive_data`, and the echo (receive, send back, take the bytes).

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::frame::{FrameHeader, OpCode};
use sockeye_proto::handshake::{Accept, ClientRequest};
use sockeye_proto::mask::apply_mask;
use sockeye_proto::{Config, Connection, Event, Message, Transmit};

/// A server connection in OPEN, its handshake done with a client connection.
fn open_server() -> Connection {
    let now = Instant::now();
    let mut client = Connection::client(ClientRequest::new("bench", "/"), Config::default());
    let mut server = Connection::server(Config::default(), now);
    client.connect(now);
    pump(&mut client, &mut server, now);
    assert_eq!(server.poll_event(), Some(Event::Request));
    server.accept(Accept::default(), now).unwrap();
    assert_eq!(server.poll_event(), Some(Event::Connected));
    server.open();
    while server.poll_transmit().is_some() {}
    server
}

fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    while let Some(transmit) = from.poll_transmit() {
        if let Transmit::Data(bytes) = transmit {
            to.receive_data(&bytes, now);
        }
    }
}

/// A message of `size` bytes as a client sends it, cut into `fragments` masked frames.
fn client_frames(opcode: OpCode, size: usize, fragments: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let piece = size.div_ceil(fragments).max(1);
    let mut wire = Vec::new();
    let pieces: Vec<&[u8]> = if size == 0 {
        vec![&[][..]]
    } else {
        payload.chunks(piece).collect()
    };
    let last = pieces.len() - 1;
    for (i, chunk) in pieces.into_iter().enumerate() {
        let key = [0x11, 0x22, 0x33, i as u8];
        let header = FrameHeader {
            fin: i == last,
            rsv: 0,
            opcode: if i == 0 { opcode } else { OpCode::Continuation },
            mask: Some(key),
            len: chunk.len() as u64,
        };
        header.encode(&mut wire);
        let start = wire.len();
        wire.extend_from_slice(chunk);
        apply_mask(&mut wire[start..], key, 0);
    }
    wire
}

fn receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("receive_message");
    let now = Instant::now();
    let cases = [
        ("binary_20B_whole", OpCode::Binary, 20, 1),
        ("binary_16KiB_whole", OpCode::Binary, 16 * 1024, 1),
        ("binary_64KiB_16_fragments", OpCode::Binary, 64 * 1024, 16),
        ("text_64KiB_16_fragments", OpCode::Text, 64 * 1024, 16),
        ("binary_1MiB_whole", OpCode::Binary, 1 << 20, 1),
    ];
    for (name, opcode, size, fragments) in cases {
        let wire = client_frames(opcode, size, fragments);
        let mut server = open_server();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("receive_data", name), |b| {
            b.iter(|| {
                server.receive_data(black_box(&wire), now);
                match server.poll_event() {
                    Some(Event::Message(message)) => black_box(message),
                    other => panic!("expected a message, got {other:?}"),
                }
            })
        });
    }
    // A large message as reads cut it: 16 KiB at a time.
    let size = 1 << 20;
    let wire = client_frames(OpCode::Binary, size, 1);
    let mut server = open_server();
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function(
        BenchmarkId::new("receive_data", "binary_1MiB_in_16KiB_reads"),
        |b| {
            b.iter(|| {
                for piece in wire.chunks(16 * 1024) {
                    server.receive_data(black_box(piece), now);
                }
                match server.poll_event() {
                    Some(Event::Message(message)) => black_box(message),
                    other => panic!("expected a message, got {other:?}"),
                }
            })
        },
    );
    group.finish();
}

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo");
    let now = Instant::now();
    for size in [20usize, 1024, 16 * 1024] {
        let wire = client_frames(OpCode::Binary, size, 1);
        let mut server = open_server();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("binary", size), |b| {
            b.iter(|| {
                server.receive_data(black_box(&wire), now);
                while let Some(event) = server.poll_event() {
                    if let Event::Message(message @ Message::Binary(_)) = event {
                        server.send(message).unwrap();
                    }
                }
                let mut written = 0;
                while let Some(Transmit::Data(bytes)) = server.poll_transmit() {
                    written += black_box::<Bytes>(bytes).len();
                }
                written
            })
        });
    }
    group.finish();
}

criterion_group!(benches, receive, echo);
criterion_main!(benches);
