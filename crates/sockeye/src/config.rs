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

/// The setters of a session's limits and timeouts, the same for
/// [`ClientBuilder`](crate::ClientBuilder) and [`ServerBuilder`](crate::ServerBuilder):
/// each writes one field of the builder's `config`.
macro_rules! session_settings {
    () => {
        /// Replaces all settings of the sessions (the methods below each set one).
        pub fn config(mut self, config: $crate::Config) -> Self {
            self.config = config;
            self
        }

        /// How long the opening handshake may take (a client counts the TCP connection
        /// and the proxy's tunnel in it). Default 10 s.
        pub fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.protocol.handshake_timeout = timeout;
            self
        }

        /// How long the closing handshake may take: the wait for the peer's Close after
        /// ours, then a client's wait for the server to close TCP. Default 10 s.
        pub fn close_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.protocol.close_timeout = timeout;
            self
        }

        /// Largest message accepted (1009 Message Too Big beyond it). Default 64 MiB.
        pub fn max_message_size(mut self, size: u64) -> Self {
            self.config.protocol.max_message_size = Some(size);
            self
        }

        /// Largest frame accepted (1009 Message Too Big beyond it). Default 16 MiB.
        pub fn max_frame_size(mut self, size: u64) -> Self {
            self.config.protocol.max_frame_size = Some(size);
            self
        }

        /// Largest frame sent: a longer data message goes out as several frames (RFC 6455
        /// 5.4), for a peer whose frame limit is lower than its message limit. Default
        /// 16 MiB; `None` sends every message as one frame. See
        /// [`ProtocolConfig::max_send_frame_size`](crate::ProtocolConfig::max_send_frame_size).
        pub fn max_send_frame_size(mut self, size: Option<usize>) -> Self {
            self.config.protocol.max_send_frame_size = size;
            self
        }

        /// Sends a Ping every `interval`; a Pong missing for `timeout` closes the session
        /// with 1011. Off by default. Finds a peer that went away without closing (a
        /// closed laptop, a lost network), which TCP alone can take hours to notice.
        pub fn keepalive(
            mut self,
            interval: std::time::Duration,
            timeout: std::time::Duration,
        ) -> Self {
            self.config.protocol.ping_interval = Some(interval);
            self.config.protocol.pong_timeout = timeout;
            self
        }

        /// Closes a session after `timeout` without a complete frame from the peer, with
        /// 1001 Going Away and the reason `idle timeout`. Off by default. See
        /// [`ProtocolConfig::idle_timeout`](crate::ProtocolConfig::idle_timeout).
        pub fn idle_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.protocol.idle_timeout = Some(timeout);
            self
        }
    };
}

pub(crate) use session_settings;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Config;
    use crate::{ClientBuilder, ServerBuilder};

    #[test]
    fn each_setter_writes_its_own_field_on_either_builder() {
        let secs = Duration::from_secs;
        let mut expected = Config::default();
        expected.protocol.handshake_timeout = secs(1);
        expected.protocol.close_timeout = secs(2);
        expected.protocol.max_message_size = Some(3);
        expected.protocol.max_frame_size = Some(4);
        expected.protocol.max_send_frame_size = Some(5);
        expected.protocol.ping_interval = Some(secs(6));
        expected.protocol.pong_timeout = secs(7);
        expected.protocol.idle_timeout = Some(secs(8));
        macro_rules! set_each {
            ($builder:expr) => {
                $builder
                    .handshake_timeout(secs(1))
                    .close_timeout(secs(2))
                    .max_message_size(3)
                    .max_frame_size(4)
                    .max_send_frame_size(Some(5))
                    .keepalive(secs(6), secs(7))
                    .idle_timeout(secs(8))
            };
        }
        assert_eq!(set_each!(ClientBuilder::new()).config, expected);
        assert_eq!(set_each!(ServerBuilder::new()).config, expected);
        // `config` replaces what the setters wrote before it.
        let default = Config::default();
        let client = set_each!(ClientBuilder::new()).config(default.clone());
        let server = set_each!(ServerBuilder::new()).config(default.clone());
        assert_eq!((client.config, server.config), (default.clone(), default));
    }
}
