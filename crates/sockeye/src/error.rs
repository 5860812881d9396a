//! The errors of the runtime layer.

use std::io;
use std::sync::Arc;

use sockeye_proto::{CloseError, HandshakeError, SendError};

/// What went wrong, and what it implies for the session.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a `ws://` or `wss://` URL this client can use.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Resolving the host or connecting the TCP socket failed.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// The `host:port` tried.
        addr: String,
        /// The I/O error.
        source: Arc<io::Error>,
    },
    /// The proxy ([`ClientBuilder::proxy`](crate::ClientBuilder::proxy)) did not open a
    /// tunnel to the server: it refused (an HTTP proxy's status is given, 407 asking for
    /// credentials; a SOCKS5 proxy's reply, or its refusal of the credentials or of every
    /// method offered), closed the connection, or answered in another protocol. No
    /// WebSocket handshake was attempted.
    #[error("proxy {addr} did not open a tunnel: {reason}")]
    Proxy {
        /// The proxy's `host:port`.
        addr: String,
        /// Its answer, or what was wrong with it.
        reason: String,
    },
    /// The opening handshake failed: malformed HTTP, a missing or wrong header, a bad
    /// `Sec-WebSocket-Accept`, or an HTTP status other than 101 (with its body). On the
    /// server the matching HTTP error response was sent.
    #[error("opening handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server refused the handshake through the application's callback.
    #[error("handshake refused with HTTP status {0}")]
    Rejected(u16),
    /// TLS failed (feature `tls`): in the TLS handshake, the server's certificate was
    /// refused (an unknown issuer, a name that does not match the URL's host, expired), the
    /// peer refused ours or does not speak TLS; or the TLS settings could not be used (an
    /// unreadable PEM file, no private key, a key that does not match the certificate, no
    /// root certificates to trust).
    #[error("TLS {context} failed: {source}")]
    Tls {
        /// What was being done: `handshake with example.com`, `loading cert.pem`, ...
        context: String,
        /// The cause. For the handshake's verdicts it is a `rustls::Error` (downcast it to
        /// tell, e.g., `CertificateError::UnknownIssuer` from `NotValidForName`); an I/O
        /// or PEM error otherwise.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The opening handshake (including the TCP connection) took longer than the
    /// handshake timeout.
    #[error("opening handshake timed out")]
    HandshakeTimeout,
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(Arc<io::Error>),
    /// A message could not be sent: the session is not open, or already closing or
    /// closed (sending after close is always an error, never a silent drop).
    #[error("cannot send: {0}")]
    Send(#[from] SendError),
    /// `close()` was called with a code or reason that may not be sent.
    #[error("cannot close: {0}")]
    Close(#[from] CloseError),
    /// The outgoing buffer is over its limit (`try_send` only; `send` waits instead).
    #[error("outgoing buffer full ({0} bytes queued)")]
    Full(usize),
    /// The session failed: the peer broke the protocol (we sent the mapped close code),
    /// the connection was lost (1006), or a timeout passed.
    #[error("connection failed: {0}")]
    Failed(sockeye_proto::Error),
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::Io(Arc::new(error))
    }
}

impl Error {
    /// Maps the failure recorded in a session's `CloseInfo` to this error.
    pub(crate) fn from_session(error: sockeye_proto::Error) -> Error {
        match error {
            sockeye_proto::Error::Handshake(e) => Error::Handshake(e),
            sockeye_proto::Error::HandshakeTimeout => Error::HandshakeTimeout,
            sockeye_proto::Error::Rejected { status } => Error::Rejected(status),
            other => Error::Failed(other),
        }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
