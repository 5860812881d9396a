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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: Some(16 << 20),
            max_message_size: Some(64 << 20),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            handshake_limits: HandshakeLimits::default(),
            deflate: DeflateConfig::default(),
        }
    }
}
