//! The opening handshake, both roles (RFC 6455 section 4).
//!
//! Sans-I/O like the rest of the crate: the functions here take bytes and return parsed,
//! validated heads, or write heads into a `Vec<u8>`.
//!
//! - Client: [`generate_key`], [`ClientRequest::validate`], [`ClientRequest::encode`],
//!   then [`parse_response`] (call again with more bytes while it returns `Ok(None)`) and
//!   [`validate_response`].
//! - Server: [`parse_request`] (same incremental contract), then either [`encode_accept`]
//!   or [`encode_reject`]; a failed parse gives its refusal through
//!   [`HandshakeError::rejection`].
//!
//! Both parsers bound their work with [`HandshakeLimits`]: a head is refused as soon as the
//! buffer holds more than `max_head_bytes` without a complete head, or more than
//! `max_headers` header fields.

mod client;
mod http1;
mod server;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest as _, Sha1};

pub use client::{ClientRequest, Response, generate_key, parse_response, validate_response};
pub(crate) use server::write_accept;
pub use server::{
    Accept, Reject, Request, accept_fields, encode_accept, encode_reject, parse_request,
    validate_request,
};

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
///
/// `key` is the key as sent on the wire (its base64 text), not the decoded bytes.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

/// Why an opening handshake failed.
///
/// Errors about the peer's head are raised by both roles; [`HandshakeError::status`] gives
/// the HTTP status a server answers with, and [`HandshakeError::rejection`] the whole
/// response. Values taken from the peer are shown quoted and escaped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head is not valid HTTP/1.1 (bad request or status line, bad header syntax).
    /// Status 400.
    #[error("malformed HTTP: {0}")]
    Http(String),
    /// The head is longer than the limit, or is still incomplete past it. Status 431.
    #[error("HTTP head exceeds the limit of {limit} bytes")]
    HeadTooLarge {
        /// `HandshakeLimits::max_head_bytes`.
        limit: usize,
    },
    /// The head has more header fields than the limit. Status 431.
    #[error("HTTP head has more than {limit} header fields")]
    TooManyHeaders {
        /// `HandshakeLimits::max_headers`.
        limit: usize,
    },
    /// The request method is not GET (4.2.1 item 1). Status 405.
    #[error("method {0:?} is not GET")]
    MethodNotGet(String),
    /// The HTTP version is not 1.1 (4.2.1 item 1): HTTP/1.0, or an unknown version.
    /// Status 505.
    #[error("HTTP version is not 1.1")]
    UnsupportedHttpVersion,
    /// The request has no Host header, or an empty one (4.2.1 item 2). Status 400.
    #[error("missing Host header")]
    MissingHost,
    /// A header that must appear once appears several times. Status 400.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// No Upgrade header (4.2.1 item 3, 4.1 rule 2). Status 400.
    #[error("missing Upgrade header")]
    MissingUpgrade,
    /// The Upgrade header does not name `websocket` (4.2.1 item 3, 4.1 rule 2). Status 400.
    #[error("Upgrade header {0:?} does not contain \"websocket\"")]
    BadUpgrade(String),
    /// No Connection header (4.2.1 item 4, 4.1 rule 3). Status 400.
    #[error("missing Connection header")]
    MissingConnection,
    /// The Connection header does not list `upgrade` (4.2.1 item 4, 4.1 rule 3). Status 400.
    #[error("Connection header {0:?} does not contain \"upgrade\"")]
    BadConnection(String),
    /// No Sec-WebSocket-Key header (4.2.1 item 5). Status 400.
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// The Sec-WebSocket-Key is not the base64 form of 16 bytes (4.2.1 item 5). Status 400.
    #[error("Sec-WebSocket-Key {0:?} is not 16 bytes in base64")]
    InvalidKey(String),
    /// The Sec-WebSocket-Version is missing (`None`) or not 13 (4.2.1 item 6).
    /// Status 426, with `Sec-WebSocket-Version: 13` in the response (4.4).
    #[error("{}", unsupported_version_message(.0.as_deref()))]
    UnsupportedVersion(Option<String>),
    /// An offered subprotocol is not an HTTP token (4.1 item 10). Status 400.
    #[error("subprotocol {0:?} is not an HTTP token")]
    InvalidSubprotocol(String),
    /// A subprotocol is offered twice (4.1 item 10). Status 400.
    #[error("subprotocol {0:?} is offered more than once")]
    DuplicateSubprotocol(String),
    /// Client: the server answered with a status other than 101 (4.1 rule 1).
    /// Never sent by a server (status 500).
    #[error("server answered {status} instead of 101 Switching Protocols")]
    UnexpectedStatus {
        /// Status code.
        status: u16,
        /// Body, truncated to the limit.
        body: bytes::Bytes,
    },
    /// Client: the 101 response has no Sec-WebSocket-Accept (4.1 rule 4).
    /// Never sent by a server (status 500).
    #[error("missing Sec-WebSocket-Accept header")]
    MissingAccept,
    /// Client: the Sec-WebSocket-Accept does not match the key sent (4.1 rule 4).
    /// Never sent by a server (status 500).
    #[error("Sec-WebSocket-Accept {0:?} does not match the key")]
    BadAccept(String),
    /// Client: the server selected more than one subprotocol (4.1 rule 6).
    /// Never sent by a server (status 500).
    #[error("server selected several subprotocols: {0:?}")]
    MultipleSubprotocols(String),
    /// A subprotocol was selected that the client did not offer: by the server, seen by the
    /// client (4.1 rule 6), or by the server application, refused by `encode_accept`.
    /// Status 500.
    #[error("subprotocol {0:?} was not offered by the client")]
    UnofferedSubprotocol(String),
    /// An extension was accepted that the client did not offer: by the server, seen by the
    /// client (4.1 rule 5), or by the server application, refused by `encode_accept`.
    /// Status 500.
    #[error("extension {0:?} was not offered by the client")]
    UnofferedExtension(String),
    /// An extension response is invalid or cannot be accepted for the offers made (RFC 7692
    /// 5): malformed, an unknown or repeated parameter, an invalid value, a parameter the
    /// offer did not allow, or a request of the offer not granted. A client that receives
    /// it in a 101 fails the connection with Close 1010; a server application that writes
    /// it in its `Accept` is refused by `Connection::accept`. Status 500.
    #[error("extension response {response:?} refused: {error}")]
    ExtensionResponse {
        /// The response element.
        response: String,
        /// What is wrong with it.
        error: crate::extension::NegotiationError,
    },
    /// An extension given by the application does not start with a token or does not fit
    /// on one header line. Status 500.
    #[error("extension {0:?} is not a valid extension offer or response")]
    InvalidExtension(String),
    /// A header given by the application has an invalid name or value, or is one the
    /// handshake sets itself (the string says which). Status 500.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// Client: the request target given by the application is not an absolute path
    /// (4.1 item 3, 3). Never sent by a server (status 500).
    #[error("request target {0:?} is not an absolute path without a fragment")]
    InvalidPath(String),
}

fn unsupported_version_message(version: Option<&str>) -> String {
    match version {
        None => "missing Sec-WebSocket-Version header (version 13 required)".to_owned(),
        Some(v) => format!("unsupported WebSocket version {v:?} (version 13 required)"),
    }
}

impl HandshakeError {
    /// Server side: the HTTP status answered for this error. This is the one place where
    /// that decision is made.
    ///
    /// | Status | Errors |
    /// |--------|--------|
    /// | 400 Bad Request | the request is malformed or a required piece is missing or wrong: `Http`, `MissingHost`, `DuplicateHeader`, `MissingUpgrade`, `BadUpgrade`, `MissingConnection`, `BadConnection`, `MissingKey`, `InvalidKey`, `InvalidSubprotocol`, `DuplicateSubprotocol` |
    /// | 405 Method Not Allowed | `MethodNotGet` |
    /// | 426 Upgrade Required | `UnsupportedVersion` (4.4) |
    /// | 431 Request Header Fields Too Large | `HeadTooLarge`, `TooManyHeaders` |
    /// | 505 HTTP Version Not Supported | `UnsupportedHttpVersion` (HTTP/1.0 or an unknown version) |
    /// | 500 Internal Server Error | mistakes of the server application (`InvalidHeader`, `InvalidExtension`, `UnofferedSubprotocol`, `UnofferedExtension`, `ExtensionResponse`) and errors only a client raises (`UnexpectedStatus`, `MissingAccept`, `BadAccept`, `MultipleSubprotocols`, `InvalidPath`), which are never sent |
    pub fn status(&self) -> u16 {
        use HandshakeError::*;
        match self {
            Http(_)
            | MissingHost
            | DuplicateHeader(_)
            | MissingUpgrade
            | BadUpgrade(_)
            | MissingConnection
            | BadConnection(_)
            | MissingKey
            | InvalidKey(_)
            | InvalidSubprotocol(_)
            | DuplicateSubprotocol(_) => 400,
            MethodNotGet(_) => 405,
            UnsupportedVersion(_) => 426,
            HeadTooLarge { .. } | TooManyHeaders { .. } => 431,
            UnsupportedHttpVersion => 505,
            InvalidHeader(_)
            | InvalidExtension(_)
            | UnofferedSubprotocol(_)
            | UnofferedExtension(_)
            | ExtensionResponse { .. }
            | UnexpectedStatus { .. }
            | MissingAccept
            | BadAccept(_)
            | MultipleSubprotocols(_)
            | InvalidPath(_) => 500,
        }
    }

    /// Server side: the response sent for this error: [`status`](Self::status), a one-line
    /// text body with this error's message, `Sec-WebSocket-Version: 13` with a 426 (4.4),
    /// and `Allow: GET` with a 405.
    pub fn rejection(&self) -> Reject {
        let reject = Reject::new(self.status(), format!("{self}\n"));
        match self {
            // 4.4: a 426 carries the version(s) the server supports.
            HandshakeError::UnsupportedVersion(_) => reject.header("Sec-WebSocket-Version", "13"),
            HandshakeError::MethodNotGet(_) => reject.header("Allow", "GET"),
            _ => reject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 1.3 / 4.2.2 worked example.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn accept_key_depends_on_the_key() {
        assert_ne!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            accept_key(b"dGhlIHNhbXBsZSBub25jZR==")
        );
    }

    #[test]
    fn status_400_for_malformed_and_missing_pieces() {
        for error in [
            HandshakeError::Http("invalid token".into()),
            HandshakeError::MissingHost,
            HandshakeError::MissingUpgrade,
            HandshakeError::MissingConnection,
            HandshakeError::MissingKey,
            HandshakeError::InvalidKey("x".into()),
        ] {
            assert_eq!(error.status(), 400, "{error}");
        }
    }

    #[test]
    fn status_405_for_method_not_get() {
        assert_eq!(HandshakeError::MethodNotGet("POST".into()).status(), 405);
    }

    #[test]
    fn status_426_for_unsupported_version() {
        assert_eq!(HandshakeError::UnsupportedVersion(None).status(), 426);
        assert_eq!(
            HandshakeError::UnsupportedVersion(Some("8".into())).status(),
            426
        );
    }

    #[test]
    fn status_431_for_head_over_limits() {
        assert_eq!(HandshakeError::HeadTooLarge { limit: 1 }.status(), 431);
        assert_eq!(HandshakeError::TooManyHeaders { limit: 1 }.status(), 431);
    }

    #[test]
    fn status_505_for_unsupported_http_version() {
        assert_eq!(HandshakeError::UnsupportedHttpVersion.status(), 505);
    }

    #[test]
    fn status_500_for_application_errors() {
        assert_eq!(HandshakeError::InvalidHeader("x".into()).status(), 500);
        assert_eq!(
            HandshakeError::UnofferedSubprotocol("chat".into()).status(),
            500
        );
    }

    #[test]
    fn handshake_round_trip() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let key = generate_key(&mut rng);
        let limits = HandshakeLimits::default();

        // Client encodes.
        let request = ClientRequest::new("example.com", "/chat")
            .origin("https://example.com")
            .subprotocol("chat")
            .subprotocol("superchat")
            .extension("permessage-deflate; client_max_window_bits")
            .header("X-Token", "abc");
        request.validate().unwrap();
        let mut wire = Vec::new();
        request.encode(&key, &mut wire);
        wire.extend_from_slice(b"first frame");

        // Server parses.
        let (parsed, n) = parse_request(&wire, &limits).unwrap().unwrap();
        assert_eq!(&wire[n..], b"first frame");
        assert_eq!(parsed.path, "/chat");
        assert_eq!(parsed.host(), "example.com");
        assert_eq!(parsed.origin(), Some("https://example.com"));
        assert_eq!(parsed.key, key);
        assert_eq!(parsed.subprotocols, ["chat", "superchat"]);
        assert_eq!(
            parsed.extensions,
            ["permessage-deflate; client_max_window_bits"]
        );
        assert_eq!(parsed.headers.get("x-token").unwrap(), "abc");

        // Server accepts.
        let accept = Accept {
            subprotocol: parsed.select_subprotocol(&["superchat", "chat"]),
            extensions: vec!["permessage-deflate".to_owned()],
            headers: Vec::new(),
        };
        let mut reply = Vec::new();
        encode_accept(&parsed, &accept, &mut reply).unwrap();
        let head_len = reply.len();
        reply.extend_from_slice(b"\x81\x00");

        // Client parses and validates.
        let (response, n) = parse_response(&reply, &limits).unwrap().unwrap();
        assert_eq!(n, head_len);
        assert_eq!(response.status, 101);
        assert_eq!(response.subprotocol.as_deref(), Some("chat"));
        assert_eq!(response.extensions, ["permessage-deflate"]);
        assert_eq!(validate_response(&response, &request, &key), Ok(()));
        // The same response does not validate for another key.
        let other = generate_key(&mut rng);
        assert!(matches!(
            validate_response(&response, &request, &other),
            Err(HandshakeError::BadAccept(_))
        ));
    }

    #[test]
    fn rejection_426_carries_version_13() {
        let reject = HandshakeError::UnsupportedVersion(Some("8".into())).rejection();
        assert_eq!(reject.status, 426);
        assert_eq!(
            reject.headers,
            vec![("Sec-WebSocket-Version".to_owned(), "13".to_owned())]
        );
        assert_eq!(
            &reject.body[..],
            b"unsupported WebSocket version \"8\" (version 13 required)\n"
        );
    }

    #[test]
    fn rejection_405_carries_allow_get() {
        let reject = HandshakeError::MethodNotGet("POST".into()).rejection();
        assert_eq!(reject.status, 405);
        assert_eq!(reject.headers, vec![("Allow".to_owned(), "GET".to_owned())]);
        assert_eq!(&reject.body[..], b"method \"POST\" is not GET\n");
    }

    #[test]
    fn rejection_400_says_what_was_wrong() {
        let reject = HandshakeError::MissingKey.rejection();
        assert_eq!(reject.status, 400);
        assert!(reject.headers.is_empty());
        assert_eq!(&reject.body[..], b"missing Sec-WebSocket-Key header\n");
    }
}
