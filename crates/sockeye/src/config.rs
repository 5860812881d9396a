//! Settings of the runtime layer.

use std::time::Duration;

/// Settings of one session: the protocol's limits and timeouts, plus the buffering of
/// the runtime layer. Every buffer is bounded and every wait has a deadline.
///
/// ```
/// use std::time::Duration;
/// let mut config = sockeye::Config::default();
/// config.protocol.max_message_size = Some(1 << 20);
/// config.protocol.close_timeout = Duration::from_secs(3);
/// config.write_buffer_high_water = 64 * 1024;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Limits and timeouts decided by the protocol core: maximum frame and message size
    /// (default 16 MiB and 64 MiB), handshake timeout and close timeout (10 s each),
    /// keepalive ping interval (off) and pong timeout, the idle timeout (off), the hard
    /// bound on unwritten output (`max_write_buffer`, default 65 MiB). See
    /// `docs/robustness.md` for the table.
    pub protocol: sockeye_proto::Config,
    /// Sending waits while more than this many bytes are queued for the socket
    /// (backpressure): the soft bound. A single message may exceed it; the queue never
    /// holds more than this plus one message from the application. The hard bound,
    /// `protocol.max_write_buffer`, counts everything not yet written (the driver's write
    /// buffer included): a send that would pass it fails with
    /// [`SendError::WriteBufferFull`](sockeye_proto::SendError::WriteBufferFull), and
    /// Pongs the peer makes us queue beyond it fail the session with 1008. Default 128 KiB.
    pub write_buffer_high_water: usize,
    /// The session stops reading from the socket while more than this many bytes of
    /// received messages wait for the application. Default 1 MiB. Once our Close is
    /// sent, it reads on up to twice this, to find the peer's Close behind them (so that
    /// closing needs no reading first); after the peer's Close, what arrives is dropped
    /// and reading goes on regardless.
    pub read_buffer_high_water: usize,
    /// After shutting down its write side, how long the session keeps reading (and
    /// discarding) until the peer closes too, before it drops the socket. Default 2 s.
    pub linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocol: sockeye_proto::Config::default(),
            write_buffer_high_water: 128 * 1024,
            read_buffer_high_water: 1024 * 1024,
            linger: Duration::from_secs(2),
        }
    }
}
