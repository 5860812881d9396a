//! Helpers shared by the integration tests: a client and a server of ours joined over
//! loopback TCP, raw TCP peers that speak WebSocket by hand (to misbehave on purpose),
//! an [`Endpoint`] that records its callbacks, and a well-behaved client that keeps
//! echoing while others misbehave.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use sockeye::{
    ClientBuilder, CloseCode, CloseInfo, Endpoint, Message, ServerBuilder, Session, State,
    WebSocket,
};
use sockeye_proto::frame::{FrameHeader, OpCode};
use sockeye_proto::mask::apply_mask;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub(crate) mod scenarios;

/// Upper bound for waiting on something that happens over loopback: far above what any
/// step takes, so reaching it means the step hangs.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Whether `future` is still pending after `duration`: for checking that something does
/// *not* happen (a reply not sent yet, a send held back by backpressure).
pub(crate) async fn stays_pending<F: Future>(duration: Duration, future: F) -> bool {
    tokio::time::timeout(duration, future).await.is_err()
}

pub(crate) const CLOSING_SENT: State = State::Closing {
    close_sent: true,
    close_received: false,
};
pub(crate) const CLOSING_RECEIVED: State = State::Closing {
    close_sent: false,
    close_received: true,
};
pub(crate) const CLOSING_BOTH: State = State::Closing {
    close_sent: true,
    close_received: true,
};

/// NEW, CONNECTING, CONNECTED, OPEN, then `then`.
pub(crate) fn history_after_open(then: &[State]) -> Vec<State> {
    [State::New, State::Connecting, State::Connected, State::Open]
        .iter()
        .chain(then)
        .copied()
        .collect()
}

/// A listener on an ephemeral loopback port.
pub(crate) async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A server session of ours (default settings) with a [`RawPeer`] client on loopback.
pub(crate) async fn server_with_raw_client() -> (WebSocket, RawPeer) {
    server_with_raw_client_on(sockeye::Config::default()).await
}

/// [`server_with_raw_client`] with the server's settings `config`.
pub(crate) async fn server_with_raw_client_on(config: sockeye::Config) -> (WebSocket, RawPeer) {
    let (listener, addr) = listener().await;
    let (server, peer) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ServerBuilder::new().config(config).accept(stream).await
        },
        RawPeer::connect(addr),
    );
    (server.unwrap(), peer)
}

/// A listener whose accepted sockets have kernel buffers of about `size` bytes each way,
/// so that a peer that stops reading (or writing) is felt after little data.
pub(crate) fn small_buffer_listener(size: u32) -> (TcpListener, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(size).unwrap();
    socket.set_send_buffer_size(size).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

pub(crate) fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

/// One of our clients connected to one of our servers over loopback TCP:
/// `(client, server)`.
pub(crate) async fn ws_pair(
    client: ClientBuilder,
    server: ServerBuilder,
) -> (WebSocket, WebSocket) {
    pair_at(url, client, server).await
}

/// [`ws_pair`] with the URL the client connects to made by `url_of` from the server's
/// address (for `wss://`, by host name).
pub(crate) async fn pair_at(
    url_of: impl FnOnce(SocketAddr) -> String,
    client: ClientBuilder,
    server: ServerBuilder,
) -> (WebSocket, WebSocket) {
    let (listener, addr) = listener().await;
    let url = url_of(addr);
    let (client, server) = within("the opening handshake", async {
        tokio::join!(client.connect(&url), async {
            let (stream, _) = listener.accept().await.unwrap();
            server.accept(stream).await
        })
    })
    .await;
    (client.unwrap().0, server.unwrap())
}

/// A frame as a raw peer reads it, unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    pub(crate) masked: bool,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The code and reason of a Close frame.
    pub(crate) fn close_code_and_reason(&self) -> (Option<u16>, String) {
        assert_eq!(self.opcode, OpCode::Close, "not a Close frame: {self:?}");
        match self.payload.as_slice() {
            [] => (None, String::new()),
            [hi, lo, reason @ ..] => (
                Some(u16::from_be_bytes([*hi, *lo])),
                String::from_utf8(reason.to_vec()).unwrap(),
            ),
            other => panic!("bad Close payload {other:?}"),
        }
    }
}

/// The handshake key of RFC 6455 section 1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The masking key raw clients use.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A peer on a plain TCP socket that writes its handshake and frames by hand, so that it
/// can do what our own client and server never do: stop reading, never answer, drop the
/// connection in the middle of a frame.
#[derive(Debug)]
pub(crate) struct RawPeer {
    pub(crate) stream: TcpStream,
    buf: BytesMut,
    /// Clients mask their frames (RFC 6455 5.3).
    client: bool,
}

impl RawPeer {
    /// Connects to `addr` and completes the client side of the handshake.
    pub(crate) async fn connect(addr: SocketAddr) -> RawPeer {
        let stream = within("a TCP connection", TcpStream::connect(addr))
            .await
            .unwrap();
        RawPeer::client_handshake(stream, addr).await
    }

    /// Like [`connect`](Self::connect), on a socket whose kernel buffers are set to about
    /// `size` bytes each way.
    pub(crate) async fn connect_with_small_buffers(addr: SocketAddr, size: u32) -> RawPeer {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(size).unwrap();
        socket.set_send_buffer_size(size).unwrap();
        let stream = within("a TCP connection", socket.connect(addr))
            .await
            .unwrap();
        RawPeer::client_handshake(stream, addr).await
    }

    async fn client_handshake(mut stream: TcpStream, addr: SocketAddr) -> RawPeer {
        let request = handshake_request(addr);
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut peer = RawPeer {
            stream,
            buf: BytesMut::new(),
            client: true,
        };
        let head = within("the handshake response", peer.read_head()).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains(ACCEPT), "{head}");
        peer
    }

    /// Sends a handshake request and returns the whole response (head and body) up to the
    /// server's EOF: for handshakes the server refuses.
    pub(crate) async fn refused(addr: SocketAddr, extra_headers: &str) -> String {
        let mut stream = within("a TCP connection", TcpStream::connect(addr))
            .await
            .unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\n{extra_headers}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        within("the refusal and EOF", stream.read_to_end(&mut response))
            .await
            .unwrap();
        String::from_utf8(response).unwrap()
    }

    /// Accepts one connection on `listener` and completes the server side of the
    /// handshake; `extra` is written in the same write as the 101 response.
    pub(crate) async fn accept(listener: &TcpListener, extra: &[u8]) -> RawPeer {
        let (stream, _) = within("a TCP connection", listener.accept()).await.unwrap();
        let mut peer = RawPeer {
            stream,
            buf: BytesMut::new(),
            client: false,
        };
        let head = within("the handshake request", peer.read_head()).await;
        let key = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("no Sec-WebSocket-Key");
        let accept = sockeye_proto::handshake::accept_key(key.as_bytes());
        let mut response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        response.extend_from_slice(extra);
        peer.stream.write_all(&response).await.unwrap();
        peer
    }

    /// Reads up to the end of an HTTP head; what follows stays buffered.
    async fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.buf.split_to(end + 4);
                return String::from_utf8(head.to_vec()).unwrap();
            }
            let n = self.stream.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "EOF inside the HTTP head");
        }
    }

    /// The bytes of one frame as this peer would send it (masked if it is a client).
    pub(crate) fn encode(&self, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mask = self.client.then_some(MASK);
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        let mut out = Vec::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }

    /// Server side: the bytes of one unmasked frame, for the 101 response's `extra`.
    pub(crate) fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            len: payload.len() as u64,
        };
        let mut out = Vec::new();
        header.encode(&mut out);
        out.extend_from_slice(payload);
        out
    }

    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub(crate) async fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let bytes = self.encode(true, opcode, payload);
        self.write_raw(&bytes).await;
    }

    pub(crate) async fn send_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = code.as_u16().to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send_frame(OpCode::Close, &payload).await;
    }

    /// The next frame, or `None` at EOF (between frames). Panics on a read error, on EOF
    /// inside a frame and on bytes that are not a frame.
    pub(crate) async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((header, head_len)) = FrameHeader::parse(&self.buf).unwrap() {
                let len = usize::try_from(header.len).unwrap();
                if self.buf.len() >= head_len + len {
                    self.buf.advance(head_len);
                    let mut payload = self.buf.split_to(len).to_vec();
                    if let Some(key) = header.mask {
                        apply_mask(&mut payload, key, 0);
                    }
                    return Some(Frame {
                        fin: header.fin,
                        opcode: header.opcode,
                        masked: header.mask.is_some(),
                        payload,
                    });
                }
            }
            let n = self.stream.read_buf(&mut self.buf).await.unwrap();
            if n == 0 {
                assert!(self.buf.is_empty(), "EOF inside a frame: {:?}", self.buf);
                return None;
            }
        }
    }

    /// The next frame, within [`WAIT`]; panics at EOF.
    pub(crate) async fn expect_frame(&mut self) -> Frame {
        within("a frame", self.read_frame())
            .await
            .expect("EOF instead of a frame")
    }

    /// The next frame must be a Close frame; returns its code and reason.
    pub(crate) async fn expect_close(&mut self) -> (Option<u16>, String) {
        self.expect_frame().await.close_code_and_reason()
    }

    /// The peer must close the TCP connection next, without sending anything more.
    pub(crate) async fn expect_eof(&mut self) {
        let frame = within("EOF", self.read_frame()).await;
        assert_eq!(frame, None, "a frame instead of EOF");
    }

    /// Resets the connection: `SO_LINGER` 0 then close, so the kernel sends RST instead
    /// of FIN and discards whatever was not sent.
    pub(crate) fn reset(self) {
        reset(self.stream);
    }
}

/// Closes `stream` with a TCP reset (RST) rather than a FIN.
pub(crate) fn reset(stream: TcpStream) {
    stream.set_zero_linger().unwrap();
    drop(stream);
}

/// A handshake request, as a raw client writes it.
pub(crate) fn handshake_request(addr: SocketAddr) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

// ----- a server that echoes and reports how each session ended -----

/// How one server session's handler ended: its session, and the error its stream
/// reported, if any.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) session: Session,
    pub(crate) error: Option<sockeye::Error>,
}

/// The message that asks [`echo_and_report`] to close the session with 1000 and
/// [`AS_ASKED`] instead of echoing.
pub(crate) const PLEASE_CLOSE: &str = "please close";
pub(crate) const AS_ASKED: &str = "as asked";

/// Echoes every message back until the stream ends, then reports how it ended. Closes
/// the session when asked to ([`PLEASE_CLOSE`]).
pub(crate) async fn echo_and_report(mut ws: WebSocket, ended: mpsc::UnboundedSender<Ended>) {
    let session = ws.session();
    let mut error = None;
    while let Some(received) = ws.recv().await {
        match received {
            Ok(Message::Text(text)) if text == PLEASE_CLOSE => {
                session.close(CloseCode::NORMAL, AS_ASKED).unwrap();
            }
            Ok(message) => {
                if ws.send(message).await.is_err() {
                    // The session is closing: the stream tells why next.
                    continue;
                }
            }
            Err(e) => error = Some(e),
        }
    }
    let _ = ended.send(Ended { session, error });
}

/// Accepts every connection on `listener` with `builder` and echoes on it, each on its
/// own task (the sessions share nothing but the runtime). Each session's end is
/// reported on the returned channel.
pub(crate) fn serve_echo(
    listener: TcpListener,
    builder: ServerBuilder,
) -> (JoinHandle<()>, mpsc::UnboundedReceiver<Ended>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (builder, tx) = (builder.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(ws) = builder.accept(stream).await {
                    echo_and_report(ws, tx).await;
                }
            });
        }
    });
    (task, rx)
}

/// A [`sockeye::Server`] on an ephemeral loopback port whose handler echoes, reporting
/// each session's end.
#[derive(Debug)]
pub(crate) struct EchoServer {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: sockeye::ShutdownHandle,
    pub(crate) serving: JoinHandle<sockeye::Result<()>>,
    pub(crate) ended: mpsc::UnboundedReceiver<Ended>,
}

impl EchoServer {
    pub(crate) async fn start(builder: ServerBuilder) -> EchoServer {
        let server = builder.bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.shutdown_handle();
        let (tx, ended) = mpsc::unbounded_channel();
        let serving = tokio::spawn(server.serve(move |ws| echo_and_report(ws, tx.clone())));
        EchoServer {
            addr,
            handle,
            serving,
            ended,
        }
    }

    /// The next session whose handler ended.
    pub(crate) async fn next_ended(&mut self) -> Ended {
        within("a session's end", self.ended.recv())
            .await
            .expect("the server is gone")
    }

    /// Shuts the server down; `serve()` must return.
    pub(crate) async fn shut_down(self) {
        self.handle.shutdown();
        within("serve() to return", self.serving)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Waits, within [`WAIT`], until `condition` holds: for counts that change on the
/// server's own tasks, with no event to wait on.
pub(crate) async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A server handler that echoes every message until the stream ends or a send fails.
pub(crate) async fn echo(mut ws: WebSocket) {
    while let Some(Ok(message)) = ws.next().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

// ----- a well-behaved client -----

/// A client of ours that behaves: it sends numbered messages and checks each echo while
/// another peer misbehaves, to show that the server keeps serving it.
#[derive(Debug)]
pub(crate) struct Bystander {
    ws: WebSocket,
    sent: usize,
}

impl Bystander {
    pub(crate) async fn connect(addr: SocketAddr) -> Bystander {
        let (ws, _) = within("the bystander's handshake", sockeye::connect(&url(addr)))
            .await
            .unwrap();
        Bystander { ws, sent: 0 }
    }

    /// One message out and its echo back, in order.
    pub(crate) async fn round_trip(&mut self) {
        let text = format!("bystander {}", self.sent);
        self.sent += 1;
        self.ws.send(text.as_str()).await.unwrap();
        let echo = within("the bystander's echo", self.ws.recv()).await;
        match echo {
            Some(Ok(Message::Text(echo))) => assert_eq!(echo, text),
            other => panic!("the bystander got {other:?} instead of its echo"),
        }
        assert_eq!(self.ws.state(), State::Open);
    }

    /// Keeps doing round trips, a few milliseconds apart, until stopped.
    pub(crate) fn keep_echoing(mut self) -> Echoing {
        let stop = Arc::new(AtomicBool::new(false));
        let (count_tx, count) = watch::channel(self.sent);
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    self.round_trip().await;
                    let _ = count_tx.send(self.sent);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                self
            })
        };
        Echoing { task, stop, count }
    }

    /// The session is still open and untouched: it closes cleanly with our 1000.
    pub(crate) async fn finish(mut self) -> usize {
        assert_eq!(self.ws.state(), State::Open);
        assert_eq!(self.ws.close_info(), None);
        let info = within(
            "the bystander's close",
            self.ws.close(CloseCode::NORMAL, ""),
        )
        .await
        .unwrap();
        assert!(info.clean, "{info:?}");
        assert_eq!(info.code, CloseCode::NORMAL);
        self.sent
    }
}

/// A [`Bystander`] echoing on its own task.
#[derive(Debug)]
pub(crate) struct Echoing {
    task: JoinHandle<Bystander>,
    stop: Arc<AtomicBool>,
    count: watch::Receiver<usize>,
}

impl Echoing {
    /// Round trips completed so far.
    pub(crate) fn round_trips(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until `n` round trips in all have completed.
    pub(crate) async fn wait_for(&mut self, n: usize) {
        within(
            "the bystander's round trips",
            self.count.wait_for(|c| *c >= n),
        )
        .await
        .unwrap();
    }

    /// Stops after the round trip under way; panics if one failed.
    pub(crate) async fn stop(self) -> Bystander {
        self.stop.store(true, Ordering::SeqCst);
        within("the bystander to stop", self.task).await.unwrap()
    }
}

/// One callback of an [`Endpoint`], as [`Recorder`] saw it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Call {
    /// `on_open`, with the session's state during the call.
    Open(State),
    Message(Message),
    Error(sockeye_proto::Error),
    /// `on_close`, with the state during the call.
    Close(CloseInfo, State),
}

/// An [`Endpoint`] that reports every callback on a channel, optionally closing the
/// session inside `on_open` or echoing messages.
#[derive(Debug)]
pub(crate) struct Recorder {
    calls: mpsc::UnboundedSender<Call>,
    /// `close()` inside `on_open` with this code and reason.
    pub(crate) close_in_open: Option<(CloseCode, &'static str)>,
    /// Send every message back.
    pub(crate) echo: bool,
}

/// The receiving end of a [`Recorder`]'s reports.
#[derive(Debug)]
pub(crate) struct Calls(mpsc::UnboundedReceiver<Call>);

impl Recorder {
    pub(crate) fn new() -> (Recorder, Calls) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Recorder {
                calls: tx,
                close_in_open: None,
                echo: false,
            },
            Calls(rx),
        )
    }
}

impl Endpoint for Recorder {
    fn on_open(&mut self, session: &Session) {
        let _ = self.calls.send(Call::Open(session.state()));
        if let Some((code, reason)) = self.close_in_open {
            session.close(code, reason).unwrap();
        }
    }

    fn on_message(&mut self, session: &Session, message: Message) {
        if self.echo {
            let _ = session.try_send(message.clone());
        }
        let _ = self.calls.send(Call::Message(message));
    }

    fn on_error(&mut self, _session: &Session, error: &sockeye_proto::Error) {
        let _ = self.calls.send(Call::Error(error.clone()));
    }

    fn on_close(&mut self, session: &Session, info: &CloseInfo) {
        let _ = self.calls.send(Call::Close(info.clone(), session.state()));
    }
}

impl Calls {
    /// The next callback, within [`WAIT`].
    pub(crate) async fn next(&mut self) -> Call {
        within("an endpoint callback", self.0.recv())
            .await
            .expect("the endpoint was dropped")
    }

    /// Every callback until the endpoint is dropped (its session's task ended), within
    /// [`WAIT`].
    pub(crate) async fn all(mut self) -> Vec<Call> {
        within("the end of the session's task", async {
            let mut calls = Vec::new();
            while let Some(call) = self.0.recv().await {
                calls.push(call);
            }
            calls
        })
        .await
    }
}
