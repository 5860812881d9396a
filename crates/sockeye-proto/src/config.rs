//! Settings of a session.

use std::time::Duration;

use crate::extension::DeflateConfig;
use crate::handshake::HandshakeLimits;

/// Limits and timeouts of one session. The defaults suit a public server: every limit is
/// set, every wait is bounded.
///
/// ```
/// use sockeye_proto::Config;
/// use std::time::Duration;
/// let config = Config {
///     max_message_size: Some(1 << 20),
///     close_timeout: Duration::from_secs(2),
///     ..Config::default()
/// };
/// assert_eq!(config.max_frame_size, Some(16 << 20));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest frame payload accepted, checked from the header (1009 beyond it).
    /// Default 16 MiB. `None`: no limit besides `max_message_size`.
    pub max_frame_size: Option<u64>,
    /// Largest message accepted, checked as each frame header arrives (1009 beyond it).
    /// Default 64 MiB. `None`: no limit.
    pub max_message_size: Option<u64>,
    /// Largest frame payload sent: a data message whose payload (compressed, if it is) is
    /// longer goes out as several frames of at most this many bytes (RFC 6455 5.4), so
    /// that a peer whose frame limit is below its message limit takes it, as one with
    /// these defaults does (16 and 64 MiB; tokio-tungstenite's are the same). Control
    /// frames are never split (they are at most 125 bytes). Default 16 MiB; `None`: one
    /// frame per message; `Some(0)` is taken as `Some(1)`.
    pub max_send_frame_size: Option<usize>,
    /// How long the opening handshake may take. Default 10 s.
    pub handshake_timeout: Duration,
    /// How long to wait for the peer's Close after sending ours, and (client) for the
    /// server to close the TCP connection after the closing handshake. Also the longest a
    /// protocol violation of the peer waits for the application to take the events
    /// received before it (see [`Connection`](crate::Connection)). Default 10 s.
    pub close_timeout: Duration,
    /// Send a Ping after this much time without one. Default `None` (no keepalive).
    pub ping_interval: Option<Duration>,
    /// With `ping_interval`: how long a Ping may wait for its Pong before the session is
    /// closed with 1011. Default 20 s.
    pub pong_timeout: Duration,
    /// Limits on the handshake's HTTP head.
    pub handshake_limits: HandshakeLimits,
    /// permessage-deflate (RFC 7692): whether to negotiate it and how to compress.
    /// Default off.
    pub deflate: DeflateConfig,
    /// Close the session after this long without a complete frame from the peer (data or
    /// control: a Ping or Pong keeps it alive), in CONNECTED and OPEN. The session then
    /// starts a normal closing handshake with 1001 Going Away and the reason
    /// `idle timeout`, bounded by `close_timeout`. Bytes of a frame that does not
    /// complete in time do not count: a peer trickling a frame in is idle.
    ///
    /// 1001 because the peer broke no rule (RFC 6455 allows idle connections): this
    /// endpoint is going away from an unused connection, and a reconnecting client may
    /// come back (1008 would read as a refusal not to retry). To keep a quiet but live
    /// session open, set `ping_interval` below it on either side: the peer's Pings, or
    /// its Pongs to ours, are frames. Default `None`: idle sessions stay open.
    pub idle_timeout: Option<Duration>,
    /// Hard bound on this session's output not yet written: the bytes queued in the
    /// connection plus those the I/O layer took and reported as unwritten
    /// ([`Connection::set_unwritten`](crate::Connection::set_unwritten)). Nothing queued
    /// passes it except the one Close frame:
    ///
    /// - [`send`](crate::Connection::send) refuses a message that would pass it with
    ///   [`SendError::WriteBufferFull`](crate::SendError::WriteBufferFull) (the
    ///   connection stays open);
    /// - an automatic frame that would pass it (the Pong answering a Ping, a keepalive
    ///   Ping) fails the connection with
    ///   [`Error::WriteBufferFull`](crate::Error::WriteBufferFull) and close code 1008
    ///   Policy Violation: the peer makes us answer but does not read the answers.
    ///
    /// Default 65 MiB: one message of the default `max_message_size` (64 MiB, what a peer
    /// with default settings accepts) plus 1 MiB for the frames queued around it, so an
    /// echo of any message accepted by default fits. A runtime's soft high-water mark
    /// keeps the queue far below this in normal operation; this is the ceiling when the
    /// peer stops reading.
    pub max_write_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: Some(16 << 20),
            max_message_size: Some(64 << 20),
            max_send_frame_size: Some(16 << 20),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            handshake_limits: HandshakeLimits::default(),
            deflate: DeflateConfig::default(),
            idle_timeout: None,
            max_write_buffer: 65 << 20,
        }
    }
}
