//! Server side of the opening handshake (RFC 6455 4.2).
use super::http1;
use super::{HandshakeError, HandshakeLimits, accept_key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{
    CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, Version};

/// Header names [`encode_accept`] writes itself, or that a 101 may not carry; extra headers
/// may not use them.
const RESERVED_ACCEPT_HEADERS: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// Header names [`encode_reject`] writes itself; extra headers with these names are dropped.
const RESERVED_REJECT_HEADERS: &[&str] = &["content-length", "transfer-encoding", "connection"];

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

impl Request {
    /// The Host header (always present once validated; "" if the map was changed since).
    pub fn host(&self) -> &str {
        self.headers
            .get(HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// The Origin header, if sent and printable ASCII (4.2.1 item 7; browsers always send it).
    pub fn origin(&self) -> Option<&str> {
        self.headers
            .get(ORIGIN)
            .and_then(|value| value.to_str().ok())
    }

    /// The first subprotocol, in the client's order of preference, that is in `supported`;
    /// `None` when there is none in common (the server then selects none, 4.2.2).
    pub fn select_subprotocol(&self, supported: &[&str]) -> Option<String> {
        self.subprotocols
            .iter()
            .find(|offered| supported.contains(&offered.as_str()))
            .cloned()
    }
}

/// Parses and validates the request; `Ok(None)` means more bytes are needed.
///
/// On success, returns the request and the length of its head (bytes after it are the
/// client's first frames). Checks, in this order (4.2.1):
///
/// 1. HTTP/1.1 (else `UnsupportedHttpVersion`, 505) and method GET (`MethodNotGet`, 405);
/// 2. one non-empty Host (`MissingHost` / `DuplicateHeader`, 400) of printable ASCII
///    (`Http`, 400);
/// 3. Upgrade lists `websocket` and Connection lists `upgrade`, case-insensitively, each
///    possibly a list over several fields (400);
/// 4. Sec-WebSocket-Version is exactly `13` (`UnsupportedVersion`, 426);
/// 5. one Sec-WebSocket-Key, base64 of exactly 16 bytes (`MissingKey` / `InvalidKey`, 400);
/// 6. subprotocols (Sec-WebSocket-Protocol fields split on commas) are unique tokens (400).
///
/// Like [`parse_response`](super::parse_response), a buffer longer than `max_head_bytes`
/// without a complete head, or a head with more than `max_headers` fields, is refused (431)
/// as soon as it is seen.
pub fn parse_request(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_len = match parsed.parse(http1::head_window(buf, limits)) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return http1::incomplete(buf, limits),
        Err(error) => return Err(http1::parse_error(error, limits)),
    };
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let method = parsed.method.unwrap_or("");
    let path = parsed.path.unwrap_or("");
    let headers = http1::header_map(parsed.headers)?;
    let request = validate_request(method, version, path, headers)?;
    Ok(Some((request, head_len)))
}

/// Validates a request whose head another HTTP implementation parsed (an upgrade request
/// in hyper, say): the checks [`parse_request`] makes once it has parsed the head, with the
/// same errors, whose [`status`](HandshakeError::status) is the HTTP status to answer
/// with. `version` must be HTTP/1.1 (the upgrade mechanism of RFC 6455 is HTTP/1.1's).
///
/// ```
/// use http::{HeaderMap, HeaderValue, Version};
/// use sockeye_proto::handshake::{Accept, accept_fields, validate_request};
///
/// let mut headers = HeaderMap::new();
/// for (name, value) in [
///     ("host", "example.com"),
///     ("upgrade", "websocket"),
///     ("connection", "Upgrade"),
///     ("sec-websocket-version", "13"),
///     ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
/// ] {
///     headers.insert(name, HeaderValue::from_static(value));
/// }
/// let request = validate_request("GET", Version::HTTP_11, "/chat", headers).unwrap();
/// let fields = accept_fields(&request, &Accept::default()).unwrap();
/// assert!(fields.contains(&("Sec-WebSocket-Accept".into(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into())));
///
/// let refused = validate_request("POST", Version::HTTP_11, "/chat", HeaderMap::new());
/// assert_eq!(refused.unwrap_err().status(), 405);
/// ```
pub fn validate_request(
    method: &str,
    version: Version,
    path: &str,
    headers: HeaderMap,
) -> Result<Request, HandshakeError> {
    // 4.2.1 item 1: an HTTP/1.1 or higher GET request. Higher versions upgrade with
    // RFC 8441's CONNECT instead, which this handshake is not.
    if version != Version::HTTP_11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet(method.to_owned()));
    }
    let path = path.to_owned();

    // 4.2.1 item 2: a Host header field.
    match http1::single(&headers, &HOST, "Host")? {
        Some(host) if !host.is_empty() => {}
        _ => return Err(HandshakeError::MissingHost),
    }
    // RFC 7230 5.4: a Host with an invalid field-value is a 400. Host is
    // `uri-host [":" port]`, ASCII only; obs-text would leave `Request::host` empty.
    if headers.get(HOST).is_some_and(|host| host.to_str().is_err()) {
        return Err(HandshakeError::Http(
            "Host header is not printable ASCII".to_owned(),
        ));
    }
    // 4.2.1 item 3: an Upgrade header field containing "websocket", case-insensitively.
    match http1::joined(&headers, &UPGRADE) {
        None => return Err(HandshakeError::MissingUpgrade),
        Some(value) if !http1::list_contains(&headers, &UPGRADE, "websocket") => {
            return Err(HandshakeError::BadUpgrade(value));
        }
        Some(_) => {}
    }
    // 4.2.1 item 4: a Connection header field that includes the token "Upgrade".
    match http1::joined(&headers, &CONNECTION) {
        None => return Err(HandshakeError::MissingConnection),
        Some(value) if !http1::list_contains(&headers, &CONNECTION, "upgrade") => {
            return Err(HandshakeError::BadConnection(value));
        }
        Some(_) => {}
    }
    // 4.2.1 item 6: Sec-WebSocket-Version must be 13; otherwise 426 (4.4).
    let version = http1::joined(&headers, &SEC_WEBSOCKET_VERSION);
    if version.as_deref() != Some("13") {
        return Err(HandshakeError::UnsupportedVersion(version));
    }
    // 4.2.1 item 5: one Sec-WebSocket-Key that decodes to 16 bytes.
    let key = http1::single(&headers, &SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key")?
        .ok_or(HandshakeError::MissingKey)?;
    match STANDARD.decode(&key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey(key)),
    }
    // 4.1 item 10: offered subprotocols are unique tokens.
    let subprotocols = http1::list_items(&headers, &SEC_WEBSOCKET_PROTOCOL);
    for (i, subprotocol) in subprotocols.iter().enumerate() {
        if !http1::is_token(subprotocol) {
            return Err(HandshakeError::InvalidSubprotocol(subprotocol.clone()));
        }
        if subprotocols[..i].contains(subprotocol) {
            return Err(HandshakeError::DuplicateSubprotocol(subprotocol.clone()));
        }
    }
    let extensions = http1::list_items(&headers, &SEC_WEBSOCKET_EXTENSIONS);

    Ok(Request {
        path,
        headers,
        key,
        subprotocols,
        extensions,
    })
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

/// Writes the 101 response (4.2.2): the status line, the header fields of
/// [`accept_fields`] in their order, and the blank line. On error `out` is unchanged.
pub fn encode_accept(
    request: &Request,
    accept: &Accept,
    out: &mut Vec<u8>,
) -> Result<(), HandshakeError> {
    write_accept(&accept_fields(request, accept)?, out);
    Ok(())
}

/// Writes the 101 response with `fields` (those of [`accept_fields`]).
pub(crate) fn write_accept(fields: &[(String, String)], out: &mut Vec<u8>) {
    // 4.2.2 item 5.1.
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in fields {
        http1::write_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// The header fields of the 101 response (4.2.2): Upgrade, Connection,
/// Sec-WebSocket-Accept, Sec-WebSocket-Protocol when a subprotocol is selected,
/// Sec-WebSocket-Extensions when extensions are accepted, then the extra headers in
/// order. For a response another HTTP implementation writes (see [`validate_request`]).
///
/// Checks first: the subprotocol must be one the client offered (`UnofferedSubprotocol`),
/// each extension a valid value (`InvalidExtension`) whose name the client offered
/// (`UnofferedExtension`), and each extra header a token name with a one-line value, not
/// one the handshake writes itself nor Content-Length or Transfer-Encoding
/// (`InvalidHeader`).
pub fn accept_fields(
    request: &Request,
    accept: &Accept,
) -> Result<Vec<(String, String)>, HandshakeError> {
    if let Some(subprotocol) = &accept.subprotocol {
        // 4.2.2 item 5.4: the selected subprotocol must be one the client offered.
        if !request.subprotocols.contains(subprotocol) {
            return Err(HandshakeError::UnofferedSubprotocol(subprotocol.clone()));
        }
    }
    for extension in &accept.extensions {
        http1::check_extension(extension)?;
        // 9.1: the server answers only with extensions from the client's offer.
        let name = http1::extension_name(extension);
        let offered = request
            .extensions
            .iter()
            .any(|offer| http1::extension_name(offer).eq_ignore_ascii_case(name));
        if !offered {
            return Err(HandshakeError::UnofferedExtension(extension.clone()));
        }
    }
    for (name, value) in &accept.headers {
        http1::check_extra_header(name, value, RESERVED_ACCEPT_HEADERS)?;
    }

    // 4.2.2 item 5.2-5.4.
    let mut fields = vec![
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        (
            "Sec-WebSocket-Accept".to_owned(),
            accept_key(request.key.as_bytes()),
        ),
    ];
    if let Some(subprotocol) = &accept.subprotocol {
        fields.push(("Sec-WebSocket-Protocol".to_owned(), subprotocol.clone()));
    }
    if !accept.extensions.is_empty() {
        fields.push((
            "Sec-WebSocket-Extensions".to_owned(),
            accept.extensions.join(", "),
        ));
    }
    fields.extend(accept.headers.iter().cloned());
    Ok(fields)
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

impl Reject {
    /// A refusal with this status and body, and no extra header.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Reject {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds an extra header. Headers that [`encode_reject`] cannot write are dropped there.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Writes a refusal response: the status line with the canonical reason phrase, the extra
/// headers, `Content-Type: text/plain; charset=utf-8` when there is a body and no
/// Content-Type was given, `Content-Length`, `Connection: close`, the blank line and the
/// body.
///
/// The output is always a well-formed response:
/// - a status outside 200-599 (an interim 1xx, or not a status at all) is written as 500;
/// - extra headers with a name that is not a token, a value with control characters, or a
///   name that this function writes itself (Content-Length, Transfer-Encoding, Connection)
///   are dropped.
pub fn encode_reject(reject: &Reject, out: &mut Vec<u8>) {
    let status = match http::StatusCode::from_u16(reject.status) {
        Ok(status) if (200..600).contains(&status.as_u16()) => status,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_content_type = false;
    for (name, value) in &reject.headers {
        if http1::check_extra_header(name, value, RESERVED_REJECT_HEADERS).is_err() {
            continue;
        }
        has_content_type |= name.eq_ignore_ascii_case("content-type");
        http1::write_field(out, name, value);
    }
    if !reject.body.is_empty() && !has_content_type {
        http1::write_field(out, "Content-Type", "text/plain; charset=utf-8");
    }
    http1::write_field(out, "Content-Length", &reject.body.len().to_string());
    http1::write_field(out, "Connection", "close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&reject.body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC's example key and its accept value (RFC 6455 1.3).
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// A valid request with `extra` header lines (each ending in CRLF) before the blank line.
    fn request_bytes(extra: &str) -> Vec<u8> {
        format!(
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
             {extra}\r\n"
        )
        .into_bytes()
    }

    /// `request_bytes` with the line starting with `prefix` replaced by `line` (or removed
    /// when `line` is empty).
    fn request_with(prefix: &str, line: &str) -> Vec<u8> {
        let text = String::from_utf8(request_bytes("")).unwrap();
        let mut out = String::new();
        for l in text.split_inclusive("\r\n") {
            if l.starts_with(prefix) {
                out.push_str(line);
            } else {
                out.push_str(l);
            }
        }
        out.into_bytes()
    }

    fn parse(bytes: &[u8]) -> Result<Request, HandshakeError> {
        parse_request(bytes, &HandshakeLimits::default()).map(|r| r.expect("complete").0)
    }

    fn parse_err(bytes: &[u8]) -> HandshakeError {
        parse(bytes).expect_err("refused")
    }

    fn reject_text(error: &HandshakeError) -> String {
        let mut out = Vec::new();
        encode_reject(&error.rejection(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn server_parses_valid_request() {
        let bytes = request_bytes(
            "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n",
        );
        let (request, n) = parse_request(&bytes, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(request.path, "/chat");
        assert_eq!(request.host(), "server.example.com");
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.key, KEY);
        assert_eq!(request.subprotocols, ["chat", "superchat"]);
        assert_eq!(
            request.extensions,
            ["permessage-deflate; client_max_window_bits", "x-foo"]
        );
    }

    #[test]
    fn server_request_leaves_trailing_bytes() {
        let mut bytes = request_bytes("");
        let head_len = bytes.len();
        bytes.extend_from_slice(b"\x81\x82abcdxy");
        let (_, n) = parse_request(&bytes, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, head_len);
    }

    #[test]
    fn server_waits_for_complete_request() {
        let bytes = request_bytes("");
        let limits = HandshakeLimits::default();
        assert!(parse_request(&[], &limits).unwrap().is_none());
        assert!(
            parse_request(&bytes[..bytes.len() - 1], &limits)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn server_request_over_limit_is_refused() {
        let limits = HandshakeLimits {
            max_head_bytes: 100,
            ..HandshakeLimits::default()
        };
        // Incomplete and already past the limit: refused without waiting for the end.
        let long = format!("GET /chat HTTP/1.1\r\nX-Pad: {}", "a".repeat(100));
        let error = parse_request(long.as_bytes(), &limits).map(|r| r.map(|r| r.1));
        assert_eq!(error, Err(HandshakeError::HeadTooLarge { limit: 100 }));
        assert_eq!(error.unwrap_err().status(), 431);
        // Complete but longer than the limit.
        assert_eq!(
            parse_request(&request_bytes(""), &limits).map(|r| r.map(|r| r.1)),
            Err(HandshakeError::HeadTooLarge { limit: 100 })
        );
    }

    #[test]
    fn server_request_with_too_many_headers_is_refused() {
        let limits = HandshakeLimits {
            max_headers: 5,
            ..HandshakeLimits::default()
        };
        assert!(
            parse_request(&request_bytes(""), &limits)
                .unwrap()
                .is_some()
        );
        let error = parse_request(&request_bytes("X-A: 1\r\n"), &limits).map(|r| r.map(|r| r.1));
        assert_eq!(error, Err(HandshakeError::TooManyHeaders { limit: 5 }));
        assert_eq!(error.unwrap_err().status(), 431);
    }

    #[test]
    fn server_refuses_malformed_request_with_400() {
        let error = parse_err(b"GET /chat HTTP/1.1\r\nBad Header: x\r\n\r\n");
        assert!(matches!(error, HandshakeError::Http(_)), "{error:?}");
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn server_refuses_post_with_405() {
        let text = String::from_utf8(request_bytes("")).unwrap();
        let error = parse_err(text.replacen("GET", "POST", 1).as_bytes());
        assert_eq!(error, HandshakeError::MethodNotGet("POST".to_owned()));
        assert_eq!(error.status(), 405);
    }

    #[test]
    fn server_405_response_carries_allow_get() {
        let error = HandshakeError::MethodNotGet("POST".to_owned());
        assert_eq!(
            reject_text(&error),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n\
             Connection: close\r\n\r\nmethod \"POST\" is not GET\n"
        );
    }

    #[test]
    fn server_refuses_http_1_0_with_505() {
        let text = String::from_utf8(request_bytes("")).unwrap();
        let error = parse_err(text.replacen("HTTP/1.1", "HTTP/1.0", 1).as_bytes());
        assert_eq!(error, HandshakeError::UnsupportedHttpVersion);
        assert_eq!(error.status(), 505);
        let error = parse_err(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(error, HandshakeError::UnsupportedHttpVersion);
    }

    #[test]
    fn server_refuses_missing_host() {
        assert_eq!(
            parse_err(&request_with("Host:", "")),
            HandshakeError::MissingHost
        );
        assert_eq!(
            parse_err(&request_with("Host:", "Host: \r\n")),
            HandshakeError::MissingHost
        );
        assert_eq!(
            parse_err(&request_bytes("Host: other.example\r\n")),
            HandshakeError::DuplicateHeader("Host")
        );
    }

    #[test]
    fn server_refuses_non_ascii_host() {
        // Found by the handshake_request fuzz target: obs-text passed the non-empty check
        // and left `Request::host` returning "".
        let text = String::from_utf8(request_bytes("")).unwrap();
        let bytes = text
            .replace("server.example.com", "server.\u{fffd}.com")
            .into_bytes();
        assert!(matches!(parse_err(&bytes), HandshakeError::Http(_)));
        let mut raw = request_bytes("");
        let at = raw.windows(7).position(|w| w == b"example").unwrap();
        raw[at] = 0xeb;
        let error = parse_err(&raw);
        assert!(matches!(error, HandshakeError::Http(_)), "{error:?}");
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn server_refuses_missing_upgrade() {
        assert_eq!(
            parse_err(&request_with("Upgrade:", "")),
            HandshakeError::MissingUpgrade
        );
    }

    #[test]
    fn server_refuses_bad_upgrade() {
        let error = parse_err(&request_with("Upgrade:", "Upgrade: h2c\r\n"));
        assert_eq!(error, HandshakeError::BadUpgrade("h2c".to_owned()));
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn server_accepts_upgrade_token_list() {
        let request = parse(&request_with("Upgrade:", "upgrade: foo/2, WebSocket\r\n"));
        assert!(request.is_ok(), "{request:?}");
    }

    #[test]
    fn server_refuses_missing_connection_upgrade() {
        assert_eq!(
            parse_err(&request_with("Connection:", "")),
            HandshakeError::MissingConnection
        );
        assert_eq!(
            parse_err(&request_with("Connection:", "Connection: keep-alive\r\n")),
            HandshakeError::BadConnection("keep-alive".to_owned())
        );
    }

    #[test]
    fn server_accepts_connection_token_list() {
        let request = parse(&request_with(
            "Connection:",
            "Connection: keep-alive, Upgrade\r\n",
        ));
        assert!(request.is_ok(), "{request:?}");
        let split = parse(&request_with(
            "Connection:",
            "Connection: keep-alive\r\nconnection: upgrade\r\n",
        ));
        assert!(split.is_ok(), "{split:?}");
    }

    #[test]
    fn server_refuses_missing_key() {
        assert_eq!(
            parse_err(&request_with("Sec-WebSocket-Key:", "")),
            HandshakeError::MissingKey
        );
    }

    #[test]
    fn server_refuses_bad_key() {
        for bad in [
            "dGhlIHNhbXBsZSBub25jZQ",   // no padding
            "dGhlIHNhbXBsZSBub25jZWU=", // 17 bytes
            "dGhlIHNhbXBsZSBub25j",     // 15 bytes
            "!!!!IHNhbXBsZSBub25jZQ==", // not base64
            "",                         // empty
        ] {
            let line = format!("Sec-WebSocket-Key: {bad}\r\n");
            let error = parse_err(&request_with("Sec-WebSocket-Key:", &line));
            assert_eq!(error, HandshakeError::InvalidKey(bad.to_owned()));
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn server_refuses_duplicate_key() {
        let line = format!("Sec-WebSocket-Key: {KEY}\r\n");
        assert_eq!(
            parse_err(&request_bytes(&line)),
            HandshakeError::DuplicateHeader("Sec-WebSocket-Key")
        );
    }

    #[test]
    fn server_refuses_version_8_with_426() {
        let error = parse_err(&request_with(
            "Sec-WebSocket-Version:",
            "Sec-WebSocket-Version: 8\r\n",
        ));
        assert_eq!(
            error,
            HandshakeError::UnsupportedVersion(Some("8".to_owned()))
        );
        assert_eq!(error.status(), 426);
    }

    #[test]
    fn server_refuses_missing_version_with_426() {
        let error = parse_err(&request_with("Sec-WebSocket-Version:", ""));
        assert_eq!(error, HandshakeError::UnsupportedVersion(None));
        assert_eq!(error.status(), 426);
    }

    #[test]
    fn server_426_response_carries_version_13() {
        let error = parse_err(&request_with(
            "Sec-WebSocket-Version:",
            "Sec-WebSocket-Version: 8\r\n",
        ));
        let body = "unsupported WebSocket version \"8\" (version 13 required)\n";
        assert_eq!(
            reject_text(&error),
            format!(
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn server_splits_subprotocols_across_headers() {
        let request = parse(&request_bytes(
            "Sec-WebSocket-Protocol: chat , v2.json\r\nSec-WebSocket-Protocol: mqtt\r\n",
        ))
        .unwrap();
        assert_eq!(request.subprotocols, ["chat", "v2.json", "mqtt"]);
    }

    #[test]
    fn server_refuses_bad_subprotocols() {
        assert_eq!(
            parse_err(&request_bytes("Sec-WebSocket-Protocol: chat, a b\r\n")),
            HandshakeError::InvalidSubprotocol("a b".to_owned())
        );
        assert_eq!(
            parse_err(&request_bytes(
                "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"
            )),
            HandshakeError::DuplicateSubprotocol("chat".to_owned())
        );
    }

    #[test]
    fn server_select_subprotocol_uses_client_order() {
        let request = parse(&request_bytes("Sec-WebSocket-Protocol: b, a, c\r\n")).unwrap();
        assert_eq!(
            request.select_subprotocol(&["a", "b"]),
            Some("b".to_owned())
        );
        assert_eq!(request.select_subprotocol(&["c"]), Some("c".to_owned()));
        assert_eq!(request.select_subprotocol(&["x"]), None);
    }

    #[test]
    fn server_keeps_extension_offers() {
        let request = parse(&request_bytes(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
             server_max_window_bits=10,  permessage-deflate\r\n\
             Sec-WebSocket-Extensions: x-foo\r\n",
        ))
        .unwrap();
        assert_eq!(
            request.extensions,
            [
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
                "permessage-deflate",
                "x-foo"
            ]
        );
    }

    fn offered() -> Request {
        parse(&request_bytes(
            "Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        ))
        .unwrap()
    }

    #[test]
    fn server_encodes_accept_byte_exact() {
        let accept = Accept {
            subprotocol: Some("superchat".to_owned()),
            extensions: vec!["permessage-deflate; server_no_context_takeover".to_owned()],
            headers: vec![("Set-Cookie".to_owned(), "id=1".to_owned())],
        };
        let mut out = b"kept".to_vec();
        encode_accept(&offered(), &accept, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "keptHTTP/1.1 101 Switching Protocols\r\n\
                 Upgrade: websocket\r\n\
                 Connection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {ACCEPT}\r\n\
                 Sec-WebSocket-Protocol: superchat\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
                 Set-Cookie: id=1\r\n\
                 \r\n"
            )
        );
    }

    #[test]
    fn server_encodes_minimal_accept_byte_exact() {
        let mut out = Vec::new();
        encode_accept(&offered(), &Accept::default(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
            )
        );
    }

    #[test]
    fn server_refuses_unoffered_subprotocol_in_accept() {
        let accept = Accept {
            subprotocol: Some("mqtt".to_owned()),
            ..Accept::default()
        };
        let mut out = Vec::new();
        let error = encode_accept(&offered(), &accept, &mut out).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::UnofferedSubprotocol("mqtt".to_owned())
        );
        assert_eq!(error.status(), 500);
        assert!(out.is_empty());
    }

    #[test]
    fn server_refuses_unoffered_extension_in_accept() {
        let accept = Accept {
            extensions: vec!["x-foo".to_owned()],
            ..Accept::default()
        };
        let mut out = Vec::new();
        assert_eq!(
            encode_accept(&offered(), &accept, &mut out),
            Err(HandshakeError::UnofferedExtension("x-foo".to_owned()))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn server_refuses_invalid_header_in_accept() {
        for (name, value) in [
            ("X-Evil", "a\r\nInjected: 1"),
            ("Bad Name", "1"),
            ("Sec-WebSocket-Accept", "forged"),
            ("content-length", "0"),
        ] {
            let accept = Accept {
                headers: vec![(name.to_owned(), value.to_owned())],
                ..Accept::default()
            };
            let mut out = Vec::new();
            let error = encode_accept(&offered(), &accept, &mut out).unwrap_err();
            assert!(matches!(error, HandshakeError::InvalidHeader(_)), "{name}");
            assert_eq!(error.status(), 500);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn server_encodes_reject_byte_exact() {
        let reject = Reject::new(403, "origin not allowed").header("X-Reason", "origin");
        let mut out = Vec::new();
        encode_reject(&reject, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 403 Forbidden\r\nX-Reason: origin\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n\
             Connection: close\r\n\r\norigin not allowed"
        );
    }

    #[test]
    fn server_encodes_reject_without_body() {
        let mut out = Vec::new();
        encode_reject(&Reject::new(404, Bytes::new()), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn server_reject_keeps_given_content_type() {
        let reject = Reject::new(400, "{}").header("content-type", "application/json");
        let mut out = Vec::new();
        encode_reject(&reject, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }

    #[test]
    fn server_reject_drops_invalid_headers() {
        let reject = Reject::new(503, Bytes::new())
            .header("X-Evil", "a\r\nInjected: 1")
            .header("Bad Name", "1")
            .header("Content-Length", "99")
            .header("Connection", "keep-alive")
            .header("Retry-After", "5");
        let mut out = Vec::new();
        encode_reject(&reject, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn server_reject_replaces_non_final_status_with_500() {
        for status in [0, 42, 101, 600, 1000] {
            let mut out = Vec::new();
            encode_reject(&Reject::new(status, Bytes::new()), &mut out);
            assert!(
                out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"),
                "{status}"
            );
        }
    }

    #[test]
    fn server_reject_is_parsed_back_by_the_client() {
        let error = HandshakeError::MissingKey;
        let mut out = Vec::new();
        encode_reject(&error.rejection(), &mut out);
        let (response, n) = super::super::parse_response(&out, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 400);
        assert_eq!(&out[n..], b"missing Sec-WebSocket-Key header\n");
    }

    fn valid_request_strategy() -> impl Strategy<Value = Vec<u8>> {
        (
            "/[a-z0-9/?=&]{0,20}",
            prop::collection::vec(("X-[A-Za-z0-9-]{1,12}", "[!-~]([ -~]{0,18}[!-~])?"), 0..6),
            prop::collection::vec("[a-z][a-z0-9.]{0,8}", 0..3),
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(path, headers, subprotocols, trailing)| {
                let mut text = format!(
                    "GET {path} HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
                     Sec-WebSocket-Version: 13\r\n"
                );
                for (name, value) in headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                for (i, subprotocol) in subprotocols.iter().enumerate() {
                    text.push_str(&format!("Sec-WebSocket-Protocol: {subprotocol}{i}\r\n"));
                }
                text.push_str("\r\n");
                let mut bytes = text.into_bytes();
                bytes.extend_from_slice(&trailing);
                bytes
            })
    }

    proptest! {
        #[test]
        fn server_every_strict_prefix_of_request_is_incomplete(bytes in valid_request_strategy()) {
            let limits = HandshakeLimits::default();
            let (full, head_len) = parse_request(&bytes, &limits).unwrap().unwrap();
            for end in 0..head_len {
                prop_assert!(parse_request(&bytes[..end], &limits).unwrap().is_none(), "prefix {}", end);
            }
            // Any amount of trailing data after the head gives the same request.
            for end in head_len..=bytes.len() {
                let (again, n) = parse_request(&bytes[..end], &limits).unwrap().unwrap();
                prop_assert_eq!(n, head_len);
                prop_assert_eq!(&again.path, &full.path);
                prop_assert_eq!(&again.headers, &full.headers);
                prop_assert_eq!(&again.subprotocols, &full.subprotocols);
            }
        }
    }
}
