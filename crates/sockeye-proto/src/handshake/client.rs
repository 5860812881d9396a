//! Client side of the opening handshake (RFC 6455 4.1).
use super::http1;
use super::{HandshakeError, HandshakeLimits, accept_key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use http::header::{SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL};

/// Header names [`ClientRequest::encode`] writes itself; extra headers may not repeat them.
const RESERVED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "origin",
    "content-length",
    "transfer-encoding",
];

/// What the client asks for.
///
/// Build it with [`ClientRequest::new`] and the builder methods, check it with
/// [`validate`](Self::validate), then write it with [`encode`](Self::encode).
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
    /// A request for `path` (path and query, starting with `/`) on `host` (with ":port"
    /// when not the default), offering no subprotocol or extension.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            ..ClientRequest::default()
        }
    }

    /// Sets the Origin header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offers one more subprotocol, after those already offered.
    pub fn subprotocol(mut self, subprotocol: impl Into<String>) -> Self {
        self.subprotocols.push(subprotocol.into());
        self
    }

    /// Offers one more extension (a full offer, parameters included).
    pub fn extension(mut self, extension: impl Into<String>) -> Self {
        self.extensions.push(extension.into());
        self
    }

    /// Adds an extra header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks that the request can be written as a valid handshake:
    ///
    /// - the host is a non-empty header value without spaces or control characters;
    /// - the path starts with `/`, is printable ASCII without spaces and has no fragment
    ///   (4.1 item 3, 3: `#` is not allowed in a WebSocket URI);
    /// - the origin fits on one header line;
    /// - each subprotocol is an HTTP token, none offered twice (4.1 item 10);
    /// - each extension starts with a token name and fits on one header line (4.1 item 11);
    /// - each extra header has a token name and a one-line value, and is not one that the
    ///   handshake writes itself (Host, Upgrade, Connection, Origin, the Sec-WebSocket-*
    ///   fields, Content-Length, Transfer-Encoding).
    pub fn validate(&self) -> Result<(), HandshakeError> {
        let host_ok = !self.host.is_empty() && self.host.bytes().all(|b| b.is_ascii_graphic());
        if !host_ok {
            return Err(HandshakeError::InvalidHeader(format!(
                "host {:?} is not a valid Host value",
                self.host
            )));
        }
        // 4.1 item 3: the request target is the /resource name/, an absolute path.
        let path_ok = self.path.starts_with('/')
            && self.path.bytes().all(|b| b.is_ascii_graphic())
            // 3: fragment identifiers are not allowed in WebSocket URIs.
            && !self.path.contains('#');
        if !path_ok {
            return Err(HandshakeError::InvalidPath(self.path.clone()));
        }
        if let Some(origin) = &self.origin
            && !http1::is_field_value(origin)
        {
            return Err(HandshakeError::InvalidHeader(format!(
                "origin {origin:?} contains control characters"
            )));
        }
        // 4.1 item 10: subprotocols are tokens and unique.
        for (i, subprotocol) in self.subprotocols.iter().enumerate() {
            if !http1::is_token(subprotocol) {
                return Err(HandshakeError::InvalidSubprotocol(subprotocol.clone()));
            }
            if self.subprotocols[..i].contains(subprotocol) {
                return Err(HandshakeError::DuplicateSubprotocol(subprotocol.clone()));
            }
        }
        for extension in &self.extensions {
            http1::check_extension(extension)?;
        }
        for (name, value) in &self.headers {
            http1::check_extra_header(name, value, RESERVED_REQUEST_HEADERS)?;
        }
        Ok(())
    }

    /// Writes the GET request with this key (4.1): the request line, then the
    /// [`fields`](Self::fields) and the blank line.
    ///
    /// The fields are written as given: call [`validate`](Self::validate) first, since a
    /// field with a line break would otherwise corrupt the request.
    pub fn encode(&self, key: &str, out: &mut Vec<u8>) {
        // 4.1 items 1-2: a GET over HTTP/1.1 for the resource name.
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in self.fields(key) {
            http1::write_field(out, &name, &value);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The header fields of the request with this key (4.1): Host, Upgrade, Connection,
    /// Sec-WebSocket-Key, Sec-WebSocket-Version: 13, then Origin, Sec-WebSocket-Protocol
    /// and Sec-WebSocket-Extensions when set, and the extra headers in order. For a
    /// request another HTTP client sends (a GET of [`path`](Self::path) over HTTP/1.1),
    /// after [`validate`](Self::validate).
    pub fn fields(&self, key: &str) -> Vec<(String, String)> {
        let field = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let mut fields = vec![
            // 4.1 item 4: Host.
            field("Host", &self.host),
            // 4.1 items 5-6: Upgrade: websocket, Connection: Upgrade.
            field("Upgrade", "websocket"),
            field("Connection", "Upgrade"),
            // 4.1 item 7: the nonce.
            field("Sec-WebSocket-Key", key),
            // 4.1 item 9: version 13.
            field("Sec-WebSocket-Version", "13"),
        ];
        if let Some(origin) = &self.origin {
            fields.push(field("Origin", origin));
        }
        if !self.subprotocols.is_empty() {
            fields.push(field(
                "Sec-WebSocket-Protocol",
                &self.subprotocols.join(", "),
            ));
        }
        if !self.extensions.is_empty() {
            fields.push(field(
                "Sec-WebSocket-Extensions",
                &self.extensions.join(", "),
            ));
        }
        fields.extend(self.headers.iter().cloned());
        fields
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (4.1 item 7).
///
/// The nonce must be chosen randomly for each connection, so pass a cryptographically
/// secure generator outside tests.
pub fn generate_key<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    STANDARD.encode(nonce)
}

/// The server's response head.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Accepted subprotocol: all Sec-WebSocket-Protocol values joined with ", ", or `None`
    /// when the header is absent. [`validate_response`] refuses more than one.
    pub subprotocol: Option<String>,
    /// Accepted extensions: each comma-separated element of the Sec-WebSocket-Extensions
    /// headers, trimmed.
    pub extensions: Vec<String>,
}

/// Parses the response head (any status code); `Ok(None)` means more bytes are needed.
///
/// On success, returns the response and the length of its head: the bytes after it are the
/// body of a refusal, or the first WebSocket frames after a 101. Errors: a malformed head,
/// a buffer longer than `max_head_bytes` without a complete head (refused without waiting
/// for the end), more than `max_headers` header fields, an HTTP version other than 1.x,
/// and a 101 over HTTP/1.0 (which cannot switch protocols).
pub fn parse_response(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Response, usize)>, HandshakeError> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Response::new(&mut fields);
    let head_len = match parsed.parse(http1::head_window(buf, limits)) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return http1::incomplete(buf, limits),
        Err(error) => return Err(http1::parse_error(error, limits)),
    };
    let status = parsed
        .code
        .ok_or_else(|| HandshakeError::Http("missing status code".to_owned()))?;
    // Upgrade (and so 101) only exists from HTTP/1.1 on (RFC 7230 6.7).
    if status == 101 && parsed.version != Some(1) {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let headers = http1::header_map(parsed.headers)?;
    Ok(Some((Response::from_head(status, headers), head_len)))
}

impl Response {
    /// The response with this status and these header fields, its subprotocol and
    /// extensions read from them: what [`parse_response`] gives, for a response another
    /// HTTP client read.
    pub fn from_head(status: u16, headers: HeaderMap) -> Response {
        let subprotocol = http1::joined(&headers, &SEC_WEBSOCKET_PROTOCOL);
        let extensions = http1::list_items(&headers, &SEC_WEBSOCKET_EXTENSIONS);
        Response {
            status,
            headers,
            subprotocol,
            extensions,
        }
    }
}

/// Validates a response against the request and key (4.1, "the client MUST validate the
/// server's response"), in this order: status 101; Upgrade lists `websocket`; Connection
/// lists `upgrade`; Sec-WebSocket-Accept matches the key; the subprotocol, if any, is a
/// single one the client offered; every accepted extension was offered (by name).
pub fn validate_response(
    response: &Response,
    request: &ClientRequest,
    key: &str,
) -> Result<(), HandshakeError> {
    // 4.1 rule 1: anything but 101 is handled as HTTP, and the connection is not a WebSocket.
    if response.status != 101 {
        return Err(HandshakeError::UnexpectedStatus {
            status: response.status,
            body: bytes::Bytes::new(),
        });
    }
    let headers = &response.headers;
    // 4.1 rule 2: Upgrade must contain "websocket", case-insensitively.
    match http1::joined(headers, &UPGRADE) {
        None => return Err(HandshakeError::MissingUpgrade),
        Some(value) if !http1::list_contains(headers, &UPGRADE, "websocket") => {
            return Err(HandshakeError::BadUpgrade(value));
        }
        Some(_) => {}
    }
    // 4.1 rule 3: Connection must contain "Upgrade", case-insensitively.
    match http1::joined(headers, &CONNECTION) {
        None => return Err(HandshakeError::MissingConnection),
        Some(value) if !http1::list_contains(headers, &CONNECTION, "upgrade") => {
            return Err(HandshakeError::BadConnection(value));
        }
        Some(_) => {}
    }
    // 4.1 rule 4: Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)).
    let accept = http1::single(headers, &SEC_WEBSOCKET_ACCEPT, "Sec-WebSocket-Accept")?
        .ok_or(HandshakeError::MissingAccept)?;
    if accept != accept_key(key.as_bytes()) {
        return Err(HandshakeError::BadAccept(accept));
    }
    // 4.1 rule 6: a subprotocol must be one the client offered (so one, and only if any).
    if let Some(subprotocol) = &response.subprotocol {
        if subprotocol.contains(',') {
            return Err(HandshakeError::MultipleSubprotocols(subprotocol.clone()));
        }
        if !request
            .subprotocols
            .iter()
            .any(|offered| offered == subprotocol)
        {
            return Err(HandshakeError::UnofferedSubprotocol(subprotocol.clone()));
        }
    }
    // 4.1 rule 5: every extension in use must have been offered.
    for extension in &response.extensions {
        let name = http1::extension_name(extension);
        let offered = request
            .extensions
            .iter()
            .any(|offer| http1::extension_name(offer).eq_ignore_ascii_case(name));
        if !offered {
            return Err(HandshakeError::UnofferedExtension(extension.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// The RFC's example key and its accept value (RFC 6455 1.3).
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn request() -> ClientRequest {
        ClientRequest::new("example.com", "/chat")
            .subprotocol("chat")
            .subprotocol("superchat")
            .extension("permessage-deflate; client_max_window_bits")
    }

    fn response_bytes(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn parse(bytes: &[u8]) -> Response {
        let (response, n) = parse_response(bytes, &HandshakeLimits::default())
            .expect("parses")
            .expect("complete");
        assert_eq!(n, bytes.len());
        response
    }

    fn validate(extra: &str) -> Result<(), HandshakeError> {
        validate_response(&parse(&response_bytes(extra)), &request(), KEY)
    }

    #[test]
    fn client_encodes_request_byte_exact() {
        let request = ClientRequest::new("example.com:8080", "/chat?room=1")
            .origin("http://example.com")
            .subprotocol("chat")
            .subprotocol("superchat")
            .extension("permessage-deflate; client_max_window_bits")
            .extension("x-foo")
            .header("Authorization", "Bearer abc")
            .header("X-Trace", "1");
        assert_eq!(request.validate(), Ok(()));
        let mut out = b"kept".to_vec();
        request.encode(KEY, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "keptGET /chat?room=1 HTTP/1.1\r\n\
             Host: example.com:8080\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n\
             Authorization: Bearer abc\r\n\
             X-Trace: 1\r\n\
             \r\n"
        );
    }

    #[test]
    fn client_encodes_minimal_request_byte_exact() {
        let mut out = Vec::new();
        ClientRequest::new("example.com", "/").encode(KEY, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
    }

    #[test]
    fn client_generates_16_byte_random_keys() {
        let mut rng = StdRng::seed_from_u64(7);
        let first = generate_key(&mut rng);
        let second = generate_key(&mut rng);
        assert_eq!(first.len(), 24);
        assert_eq!(STANDARD.decode(&first).unwrap().len(), 16);
        assert_eq!(STANDARD.decode(&second).unwrap().len(), 16);
        assert_ne!(first, second);
        // Deterministic for a given generator state.
        assert_eq!(generate_key(&mut StdRng::seed_from_u64(7)), first);
    }

    #[test]
    fn client_validate_accepts_a_plain_request() {
        assert_eq!(request().origin("https://a.example").validate(), Ok(()));
    }

    #[test]
    fn client_validate_refuses_crlf_in_header() {
        let request = request().header("X-Evil", "a\r\nInjected: 1");
        assert!(matches!(
            request.validate(),
            Err(HandshakeError::InvalidHeader(_))
        ));
    }

    #[test]
    fn client_validate_refuses_bad_header_name() {
        for name in ["", "X Y", "X:Y", "X\nY"] {
            let request = request().header(name, "1");
            assert!(
                matches!(request.validate(), Err(HandshakeError::InvalidHeader(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn client_validate_refuses_headers_the_handshake_sets() {
        for name in [
            "Host",
            "sec-websocket-key",
            "Sec-WebSocket-Protocol",
            "Origin",
        ] {
            let request = request().header(name, "x");
            assert!(
                matches!(request.validate(), Err(HandshakeError::InvalidHeader(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn client_validate_refuses_non_token_subprotocol() {
        for bad in ["", "a b", "a,b", "caf\u{e9}"] {
            assert_eq!(
                request().subprotocol(bad).validate(),
                Err(HandshakeError::InvalidSubprotocol(bad.to_owned()))
            );
        }
    }

    #[test]
    fn client_validate_refuses_duplicate_subprotocol() {
        assert_eq!(
            request().subprotocol("chat").validate(),
            Err(HandshakeError::DuplicateSubprotocol("chat".to_owned()))
        );
    }

    #[test]
    fn client_validate_refuses_bad_extension() {
        for bad in ["", "; x=1", "x\r\ny", "a b; c"] {
            assert_eq!(
                request().extension(bad).validate(),
                Err(HandshakeError::InvalidExtension(bad.to_owned()))
            );
        }
    }

    #[test]
    fn client_validate_refuses_bad_path() {
        for bad in ["", "chat", "/a b", "/a#frag", "/\r\n"] {
            assert_eq!(
                ClientRequest::new("example.com", bad).validate(),
                Err(HandshakeError::InvalidPath(bad.to_owned()))
            );
        }
    }

    #[test]
    fn client_validate_refuses_bad_host_and_origin() {
        assert!(matches!(
            ClientRequest::new("", "/").validate(),
            Err(HandshakeError::InvalidHeader(_))
        ));
        assert!(matches!(
            ClientRequest::new("a\r\nb", "/").validate(),
            Err(HandshakeError::InvalidHeader(_))
        ));
        assert!(matches!(
            ClientRequest::new("a", "/").origin("x\ny").validate(),
            Err(HandshakeError::InvalidHeader(_))
        ));
    }

    #[test]
    fn client_parses_response_head_and_its_length() {
        let mut bytes = response_bytes("Sec-WebSocket-Protocol: chat\r\nX-A: 1\r\nX-A: 2\r\n");
        let head_len = bytes.len();
        bytes.extend_from_slice(b"\x81\x02hi");
        let (response, n) = parse_response(&bytes, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, head_len);
        assert_eq!(response.status, 101);
        assert_eq!(response.subprotocol.as_deref(), Some("chat"));
        assert!(response.extensions.is_empty());
        let xa: Vec<_> = response.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
    }

    #[test]
    fn client_parses_any_status() {
        let bytes = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";
        let (response, n) = parse_response(bytes, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(&bytes[n..], b"nop");
    }

    #[test]
    fn client_waits_for_complete_response() {
        let bytes = response_bytes("");
        let limits = HandshakeLimits::default();
        assert_eq!(parse_response(&[], &limits).unwrap().map(|r| r.1), None);
        assert_eq!(
            parse_response(&bytes[..bytes.len() - 1], &limits)
                .unwrap()
                .map(|r| r.1),
            None
        );
    }

    #[test]
    fn client_response_over_limit_is_refused() {
        let limits = HandshakeLimits {
            max_head_bytes: 64,
            ..HandshakeLimits::default()
        };
        // Incomplete and already past the limit: refused without waiting for the end.
        let long = format!(
            "HTTP/1.1 101 Switching Protocols\r\nX-Pad: {}",
            "a".repeat(40)
        );
        assert_eq!(
            parse_response(long.as_bytes(), &limits).map(|r| r.map(|r| r.1)),
            Err(HandshakeError::HeadTooLarge { limit: 64 })
        );
        // Complete but longer than the limit.
        assert_eq!(
            parse_response(&response_bytes(""), &limits).map(|r| r.map(|r| r.1)),
            Err(HandshakeError::HeadTooLarge { limit: 64 })
        );
        // Exactly at the limit is fine.
        let exact = b"HTTP/1.1 404 Not Found\r\n\r\n";
        let limits = HandshakeLimits {
            max_head_bytes: exact.len(),
            ..limits
        };
        assert_eq!(
            parse_response(exact, &limits).unwrap().map(|r| r.1),
            Some(exact.len())
        );
    }

    #[test]
    fn client_response_with_too_many_headers_is_refused() {
        let limits = HandshakeLimits {
            max_headers: 3,
            ..HandshakeLimits::default()
        };
        // Exactly the limit (Upgrade, Connection, Sec-WebSocket-Accept) is fine.
        assert!(
            parse_response(&response_bytes(""), &limits)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            parse_response(&response_bytes("X-A: 1\r\n"), &limits).map(|r| r.map(|r| r.1)),
            Err(HandshakeError::TooManyHeaders { limit: 3 })
        );
    }

    #[test]
    fn client_refuses_malformed_response() {
        let result = parse_response(
            b"HTTP/1.1 101 Switching Protocols\r\nBad Header: x\r\n\r\n",
            &HandshakeLimits::default(),
        );
        assert!(matches!(result, Err(HandshakeError::Http(_))), "{result:?}");
    }

    #[test]
    fn client_refuses_101_over_http_1_0() {
        let result = parse_response(
            b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
            &HandshakeLimits::default(),
        );
        assert_eq!(
            result.map(|r| r.map(|r| r.1)),
            Err(HandshakeError::UnsupportedHttpVersion)
        );
    }

    #[test]
    fn client_accepts_valid_response() {
        assert_eq!(validate(""), Ok(()));
    }

    #[test]
    fn client_refuses_non_101_status() {
        let response = parse(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            validate_response(&response, &request(), KEY),
            Err(HandshakeError::UnexpectedStatus {
                status: 403,
                body: bytes::Bytes::new()
            })
        );
    }

    #[test]
    fn client_refuses_missing_upgrade() {
        let bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(
            validate_response(&parse(bytes.as_bytes()), &request(), KEY),
            Err(HandshakeError::MissingUpgrade)
        );
    }

    #[test]
    fn client_refuses_bad_upgrade() {
        let bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(
            validate_response(&parse(bytes.as_bytes()), &request(), KEY),
            Err(HandshakeError::BadUpgrade("h2c".to_owned()))
        );
    }

    #[test]
    fn client_accepts_upgrade_case_insensitively() {
        let bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n\
             sec-websocket-accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(
            validate_response(&parse(bytes.as_bytes()), &request(), KEY),
            Ok(())
        );
    }

    #[test]
    fn client_refuses_missing_connection_upgrade() {
        let missing = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(
            validate_response(&parse(missing.as_bytes()), &request(), KEY),
            Err(HandshakeError::MissingConnection)
        );
        let without_token = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(
            validate_response(&parse(without_token.as_bytes()), &request(), KEY),
            Err(HandshakeError::BadConnection("keep-alive".to_owned()))
        );
    }

    #[test]
    fn client_accepts_connection_token_list() {
        let bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, UPGRADE\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(
            validate_response(&parse(bytes.as_bytes()), &request(), KEY),
            Ok(())
        );
    }

    #[test]
    fn client_refuses_bad_accept() {
        let response = parse(&response_bytes(""));
        let other_key = "AQIDBAUGBwgJCgsMDQ4PEA==";
        assert_eq!(
            validate_response(&response, &request(), other_key),
            Err(HandshakeError::BadAccept(ACCEPT.to_owned()))
        );
    }

    #[test]
    fn client_refuses_missing_accept() {
        let bytes =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(
            validate_response(&parse(bytes), &request(), KEY),
            Err(HandshakeError::MissingAccept)
        );
    }

    #[test]
    fn client_refuses_duplicate_accept() {
        let extra = format!("Sec-WebSocket-Accept: {ACCEPT}\r\n");
        assert_eq!(
            validate(&extra),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Accept"))
        );
    }

    #[test]
    fn client_accepts_offered_subprotocol() {
        assert_eq!(validate("Sec-WebSocket-Protocol: superchat\r\n"), Ok(()));
    }

    #[test]
    fn client_refuses_unoffered_subprotocol() {
        assert_eq!(
            validate("Sec-WebSocket-Protocol: mqtt\r\n"),
            Err(HandshakeError::UnofferedSubprotocol("mqtt".to_owned()))
        );
        // Subprotocol names are compared exactly.
        assert_eq!(
            validate("Sec-WebSocket-Protocol: Chat\r\n"),
            Err(HandshakeError::UnofferedSubprotocol("Chat".to_owned()))
        );
        // None offered at all.
        let response = parse(&response_bytes("Sec-WebSocket-Protocol: chat\r\n"));
        let plain = ClientRequest::new("example.com", "/chat");
        assert_eq!(
            validate_response(&response, &plain, KEY),
            Err(HandshakeError::UnofferedSubprotocol("chat".to_owned()))
        );
    }

    #[test]
    fn client_refuses_multiple_subprotocols() {
        assert_eq!(
            validate("Sec-WebSocket-Protocol: chat, superchat\r\n"),
            Err(HandshakeError::MultipleSubprotocols(
                "chat, superchat".to_owned()
            ))
        );
        assert_eq!(
            validate("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"),
            Err(HandshakeError::MultipleSubprotocols(
                "chat, chat".to_owned()
            ))
        );
    }

    #[test]
    fn client_accepts_offered_extension_with_params() {
        assert_eq!(
            validate(
                "Sec-WebSocket-Extensions: Permessage-Deflate; server_no_context_takeover\r\n"
            ),
            Ok(())
        );
    }

    #[test]
    fn client_refuses_unoffered_extension() {
        assert_eq!(
            validate("Sec-WebSocket-Extensions: permessage-deflate, x-webkit-deflate-frame\r\n"),
            Err(HandshakeError::UnofferedExtension(
                "x-webkit-deflate-frame".to_owned()
            ))
        );
    }

    fn valid_response_strategy() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![101u16, 200, 302, 404, 503]),
            prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,20}"), 0..6),
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(status, headers, trailing)| {
                let mut bytes = format!("HTTP/1.1 {status} Reason Phrase\r\n").into_bytes();
                for (name, value) in headers {
                    bytes.extend_from_slice(format!("{name}: {}\r\n", value.trim()).as_bytes());
                }
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(&trailing);
                bytes
            })
    }

    proptest! {
        #[test]
        fn client_every_strict_prefix_of_response_is_incomplete(bytes in valid_response_strategy()) {
            let limits = HandshakeLimits::default();
            let (full, head_len) = parse_response(&bytes, &limits).unwrap().unwrap();
            for end in 0..head_len {
                prop_assert!(parse_response(&bytes[..end], &limits).unwrap().is_none(), "prefix {}", end);
            }
            // Any amount of trailing data after the head gives the same response.
            for end in head_len..=bytes.len() {
                let (again, n) = parse_response(&bytes[..end], &limits).unwrap().unwrap();
                prop_assert_eq!(n, head_len);
                prop_assert_eq!(again.status, full.status);
                prop_assert_eq!(&again.headers, &full.headers);
            }
        }
    }
}
