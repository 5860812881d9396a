//! Server side of the opening handshake.
use super::{HandshakeError, HandshakeLimits};
use http::HeaderMap;

/// A validated client handshake request.
#[derive(Clone, Debug)]
pub struct Request {
    /// Request target.
    pub path: String,
    /// All headers.
    pub headers: HeaderMap,
    /// Sec-WebSocket-Key.
    pub key: String,
    /// Offered subprotocols.
    pub subprotocols: Vec<String>,
    /// Offered extensions.
    pub extensions: Vec<String>,
}

/// How the server accepts.
#[derive(Clone, Debug, Default)]
pub struct Accept {
    /// Selected subprotocol; must be one the client offered.
    pub subprotocol: Option<String>,
    /// Accepted extensions (response values).
    pub extensions: Vec<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

/// How the server refuses.
#[derive(Clone, Debug)]
pub struct Reject {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: bytes::Bytes,
}

/// Parses and validates the request; `Ok(None)` means more bytes are needed.
pub fn parse_request(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let _ = (buf, limits);
    unimplemented!()
}

/// Writes the 101 response.
pub fn encode_accept(
    request: &Request,
    accept: &Accept,
    out: &mut Vec<u8>,
) -> Result<(), HandshakeError> {
    let _ = (request, accept, out);
    unimplemented!()
}

/// Writes a refusal response.
pub fn encode_reject(reject: &Reject, out: &mut Vec<u8>) {
    let _ = (reject, out);
    unimplemented!()
}
