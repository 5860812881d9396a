//! Client side of the opening handshake.
use super::{HandshakeError, HandshakeLimits};
use http::HeaderMap;

/// What the client asks for.
#[derive(Clone, Debug, Default)]
pub struct ClientRequest {
    /// Host header value (host, plus ":port" when not the default).
    pub host: String,
    /// Request target: path and query.
    pub path: String,
    /// Origin header.
    pub origin: Option<String>,
    /// Offered subprotocols, in preference order.
    pub subprotocols: Vec<String>,
    /// Offered extensions, each a full offer such as `permessage-deflate; client_max_window_bits`.
    pub extensions: Vec<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// Writes the GET request with this key.
    pub fn encode(&self, key: &str, out: &mut Vec<u8>) {
        let _ = (key, out);
        unimplemented!()
    }
}

/// A 16-byte random key, base64.
pub fn generate_key<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let _ = rng;
    unimplemented!()
}

/// The server's response head.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Accepted subprotocol.
    pub subprotocol: Option<String>,
    /// Accepted extensions.
    pub extensions: Vec<String>,
}

/// Parses the response head; `Ok(None)` means more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Response, usize)>, HandshakeError> {
    let _ = (buf, limits);
    unimplemented!()
}

/// Validates a 101 response against the request and key.
pub fn validate_response(
    response: &Response,
    request: &ClientRequest,
    key: &str,
) -> Result<(), HandshakeError> {
    let _ = (response, request, key);
    unimplemented!()
}
