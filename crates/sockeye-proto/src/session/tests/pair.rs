//! A client and a server connected in memory, with a virtual clock.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::{SeedableRng, rngs::StdRng};

use crate::Role;
use crate::close::CloseInfo;
use crate::config::Config;
use crate::frame::{FrameHeader, OpCode};
use crate::handshake::{Accept, ClientRequest};
use crate::mask::apply_mask;
use crate::session::{Connection, Event, Message, State, Transmit};

/// What one side saw and did.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<Event>,
    /// Every byte this side wrote, in order.
    pub(crate) wrote: Vec<u8>,
    /// Set when this side shut its write side down, with the pair's step counter.
    pub(crate) shutdown_at: Option<u64>,
}

impl Log {
    pub(crate) fn close_events(&self) -> Vec<&CloseInfo> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Close(info) => Some(&**info),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn messages(&self) -> Vec<&Message> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

pub(crate) struct Pair {
    pub(crate) client: Connection,
    pub(crate) server: Connection,
    pub(crate) now: Instant,
    pub(crate) client_log: Log,
    pub(crate) server_log: Log,
    step: u64,
    /// Call `open()` as soon as `Connected` is seen (the application's `on_open` returned).
    pub(crate) auto_open: bool,
}

impl Pair {
    pub(crate) fn new(config: Config) -> Pair {
        Pair::with(config.clone(), config)
    }

    pub(crate) fn with(client_config: Config, server_config: Config) -> Pair {
        let now = Instant::now();
        let client = Connection::client_with_rng(
            ClientRequest::new("example.com", "/chat"),
            client_config,
            StdRng::seed_from_u64(7),
        );
        let server = Connection::server(server_config, now);
        Pair {
            client,
            server,
            now,
            client_log: Log::default(),
            server_log: Log::default(),
            step: 0,
            auto_open: true,
        }
    }

    /// A pair whose opening handshake was made elsewhere: both sides CONNECTED from the
    /// start ([`Connection::after_handshake`]), nothing written yet.
    pub(crate) fn after_handshake(config: Config) -> Pair {
        let now = Instant::now();
        Pair {
            client: Connection::after_handshake(Role::Client, config.clone(), now),
            server: Connection::after_handshake(Role::Server, config, now),
            now,
            client_log: Log::default(),
            server_log: Log::default(),
            step: 0,
            auto_open: true,
        }
    }

    /// A pair that has completed the opening handshake, both sides OPEN.
    pub(crate) fn open() -> Pair {
        Pair::open_with(Config::default())
    }

    pub(crate) fn open_with(config: Config) -> Pair {
        let mut pair = Pair::new(config);
        pair.client.connect(pair.now);
        pair.run();
        assert_eq!(pair.client.state(), State::Open);
        assert_eq!(pair.server.state(), State::Open);
        pair
    }

    pub(crate) fn side(&mut self, role: Role) -> (&mut Connection, &mut Log) {
        match role {
            Role::Client => (&mut self.client, &mut self.client_log),
            Role::Server => (&mut self.server, &mut self.server_log),
        }
    }

    /// Takes one side's events, as the application would, answering handshake requests.
    pub(crate) fn drain_events(&mut self, role: Role) -> bool {
        let now = self.now;
        let auto_open = self.auto_open;
        let (conn, log) = self.side(role);
        let mut moved = false;
        while let Some(event) = conn.poll_event() {
            moved = true;
            match &event {
                Event::Request if conn.state() == State::Connecting => {
                    conn.accept(Accept::default(), now).unwrap()
                }
                Event::Connected if auto_open => conn.open(),
                _ => {}
            }
            log.events.push(event);
        }
        moved
    }

    /// Moves one side's transmits to the other side.
    pub(crate) fn drain_transmits(&mut self, role: Role) -> bool {
        let now = self.now;
        let mut moved = false;
        loop {
            let (conn, _) = self.side(role);
            let Some(transmit) = conn.poll_transmit() else {
                break;
            };
            moved = true;
            self.step += 1;
            let step = self.step;
            let peer = match role {
                Role::Client => Role::Server,
                Role::Server => Role::Client,
            };
            match transmit {
                Transmit::Data(bytes) => {
                    self.side(role).1.wrote.extend_from_slice(&bytes);
                    self.side(peer).0.receive_data(&bytes, now);
                }
                Transmit::Shutdown => {
                    self.side(role).1.shutdown_at = Some(step);
                    self.side(peer).0.receive_eof(now);
                }
            }
        }
        moved
    }

    /// Events first, then transmits, both sides, until nothing moves.
    pub(crate) fn run(&mut self) {
        loop {
            let mut moved = false;
            moved |= self.drain_events(Role::Client);
            moved |= self.drain_events(Role::Server);
            moved |= self.drain_transmits(Role::Client);
            moved |= self.drain_transmits(Role::Server);
            if !moved {
                break;
            }
        }
    }

    /// Advances the virtual clock, firing every deadline on the way.
    pub(crate) fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            let now = self.now;
            self.client.handle_timeout(now);
            self.server.handle_timeout(now);
            self.run();
        }
        self.now = end;
    }
}

/// A frame on the wire, masked with `mask` if given.
pub(crate) fn frame(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    frame_rsv(fin, 0, opcode, payload, mask)
}

pub(crate) fn frame_rsv(
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    header.encode(&mut out);
    let start = out.len();
    out.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out.to_vec()
}

/// A frame as `role` must send it: masked for a client.
pub(crate) fn frame_from(role: Role, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mask = (role == Role::Client).then_some([0x37, 0xfa, 0x21, 0x3d]);
    frame(fin, opcode, payload, mask)
}

/// Splits a byte stream written by `role` into frames, unmasked: (fin, opcode, payload).
pub(crate) fn decode_frames(bytes: &[u8]) -> Vec<(bool, OpCode, Bytes, bool)> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while let Some((header, n)) = FrameHeader::parse(rest).unwrap() {
        let len = header.len as usize;
        let mut payload = rest[n..n + len].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push((
            header.fin,
            header.opcode,
            payload.into(),
            header.mask.is_some(),
        ));
        rest = &rest[n + len..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    frames
}

/// Everything `role` wrote after the handshake, as frames.
pub(crate) fn frames_written(log: &Log) -> Vec<(bool, OpCode, Bytes, bool)> {
    let head_end = log
        .wrote
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("handshake head")
        + 4;
    decode_frames(&log.wrote[head_end..])
}
