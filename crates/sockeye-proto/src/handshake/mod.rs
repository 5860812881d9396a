//! The opening handshake, both roles (RFC 6455 section 4).
//!
//! PLACEHOLDER: interface only; the bodies are being written.

mod client;
mod server;

pub use client::{ClientRequest, Response, generate_key, parse_response, validate_response};
pub use server::{Accept, Reject, Request, encode_accept, encode_reject, parse_request};

/// The GUID appended to the key (RFC 6455 1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Limits on the HTTP head of a handshake request or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Largest head (request/status line plus headers plus the blank line), in bytes.
    pub max_head_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Largest body of a non-101 response the client keeps for its error, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (4.2.2): base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let _ = key;
    unimplemented!()
}

/// Why an opening handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Malformed HTTP.
    #[error("malformed HTTP: {0}")]
    Http(String),
    /// The server answered with a status other than 101.
    #[error("server answered {status}")]
    UnexpectedStatus {
        /// Status code.
        status: u16,
        /// Body, truncated to the limit.
        body: bytes::Bytes,
    },
}

impl HandshakeError {
    /// Server side: the HTTP status answered for this error.
    pub fn status(&self) -> u16 {
        400
    }
}
