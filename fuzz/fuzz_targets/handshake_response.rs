//! The client's handshake response parser and validator (`handshake::parse_response` +
//! `validate_response`) on arbitrary bytes, for a fixed request sent with the RFC 6455
//! example key.
//!
//! Input: one byte choosing the limits (bit 0: small limits), then the bytes received.
//!
//! Beyond "no panic", it checks: a head is never incomplete past `max_head_bytes`; a parsed
//! response is decided by its own head; a response
//! passes `validate_response` only if it is a 101 that names `websocket` and `upgrade`,
//! carries the right Sec-WebSocket-Accept, selects at most one offered subprotocol and only
//! offered extensions (4.1); and a non-101 is reported with its own status.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockeye_proto::handshake::{
    ClientRequest, HandshakeError, HandshakeLimits, accept_key, parse_response, validate_response,
};

/// The RFC 6455 1.3 example key.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request() -> ClientRequest {
    ClientRequest::new("example.com", "/chat")
        .subprotocol("chat")
        .subprotocol("superchat")
        .extension("permessage-deflate; client_max_window_bits")
}

fn limits(selector: u8) -> HandshakeLimits {
    if selector & 1 == 0 {
        HandshakeLimits::default()
    } else {
        HandshakeLimits {
            max_head_bytes: 256,
            max_headers: 6,
            max_body_bytes: 64,
        }
    }
}

/// Whether a comma-separated header lists `token`, case-insensitively.
fn lists(response: &sockeye_proto::handshake::Response, name: &str, token: &str) -> bool {
    response.headers.get_all(name).iter().any(|value| {
        String::from_utf8_lossy(value.as_bytes())
            .split(',')
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    })
}

fn check(limits: &HandshakeLimits, buf: &[u8]) {
    let (response, consumed) = match parse_response(buf, limits) {
        Ok(None) => {
            assert!(
                buf.len() <= limits.max_head_bytes,
                "incomplete past the limit"
            );
            return;
        }
        Ok(Some(parsed)) => parsed,
        Err(_) => return,
    };
    assert!(consumed <= buf.len() && consumed <= limits.max_head_bytes);
    let (again, n) = parse_response(&buf[..consumed], limits)
        .expect("the head alone parses")
        .expect("the head alone is complete");
    assert_eq!((again.status, n), (response.status, consumed));
    assert_eq!(again.subprotocol, response.subprotocol);
    assert_eq!(again.extensions, response.extensions);

    let request = request();
    match validate_response(&response, &request, KEY) {
        Ok(()) => {
            assert_eq!(response.status, 101);
            assert!(lists(&response, "upgrade", "websocket"));
            assert!(lists(&response, "connection", "upgrade"));
            let accepts: Vec<_> = response
                .headers
                .get_all("sec-websocket-accept")
                .iter()
                .collect();
            assert_eq!(accepts.len(), 1, "one Sec-WebSocket-Accept");
            assert_eq!(
                String::from_utf8_lossy(accepts[0].as_bytes()).trim(),
                accept_key(KEY.as_bytes())
            );
            if let Some(subprotocol) = &response.subprotocol {
                assert!(request.subprotocols.contains(subprotocol));
            }
            for extension in &response.extensions {
                let name = extension.split(';').next().unwrap_or("").trim();
                assert!(
                    name.eq_ignore_ascii_case("permessage-deflate"),
                    "{extension:?} accepted"
                );
            }
        }
        Err(HandshakeError::UnexpectedStatus { status, .. }) => {
            assert_ne!(response.status, 101);
            assert_eq!(status, response.status);
        }
        Err(_) => assert_eq!(response.status, 101, "a non-101 refused for its headers"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, buf)) = data.split_first() {
        check(&limits(selector), buf);
    }
});
