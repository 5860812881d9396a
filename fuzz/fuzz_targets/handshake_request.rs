//! The server's handshake request parser (`handshake::parse_request`) on arbitrary bytes.
//!
//! Input: one byte choosing the limits (bit 0: small limits), then the bytes received.
//!
//! Beyond "no panic", it checks: a head is never incomplete past `max_head_bytes`; an
//! accepted request is decided by its own head, holds what 4.2.1 requires (a Host, a key of
//! 16 bytes, unique token subprotocols), can be answered with `encode_accept`, and the client
//! that sent it accepts that answer (`parse_response` + `validate_response`); a refused
//! request gets a 4xx/5xx status of the server's table (never 500: a peer's head is never
//! the server's fault) and a well-formed refusal with its whole body.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use sockeye_proto::handshake::{
    Accept, ClientRequest, HandshakeLimits, encode_accept, encode_reject, parse_request,
    parse_response, validate_response,
};

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

fn check(limits: &HandshakeLimits, buf: &[u8]) {
    match parse_request(buf, limits) {
        Ok(None) => assert!(
            buf.len() <= limits.max_head_bytes,
            "incomplete past the limit"
        ),
        Ok(Some((request, consumed))) => {
            assert!(consumed <= buf.len() && consumed <= limits.max_head_bytes);
            // The head alone gives the same request; what follows it is the client's
            // first frames and does not matter.
            let (again, n) = parse_request(&buf[..consumed], limits)
                .expect("the head alone parses")
                .expect("the head alone is complete");
            assert_eq!(n, consumed);
            assert_eq!(again.key, request.key);
            assert_eq!(again.subprotocols, request.subprotocols);

            // 4.2.1 item 2: a Host, which `Request::host` documents as always present.
            assert!(
                !request.host().is_empty(),
                "a validated request without a Host"
            );
            // 4.2.1 item 5: the key is 16 bytes in base64.
            let nonce = STANDARD.decode(&request.key).expect("the key is base64");
            assert_eq!(nonce.len(), 16);
            // 4.1 item 10: subprotocols are unique tokens.
            for (i, subprotocol) in request.subprotocols.iter().enumerate() {
                assert!(!subprotocol.is_empty());
                assert!(!request.subprotocols[..i].contains(subprotocol));
            }

            // The server answers, selecting the client's first choice, and the client that
            // sent this request accepts the answer.
            let accept = Accept {
                subprotocol: request.subprotocols.first().cloned(),
                ..Accept::default()
            };
            let mut answer = Vec::new();
            encode_accept(&request, &accept, &mut answer)
                .expect("a parsed request can be accepted");
            let (response, n) = parse_response(&answer, &HandshakeLimits::default())
                .expect("our 101 parses")
                .expect("our 101 is complete");
            assert_eq!(n, answer.len());
            let mut sent = ClientRequest::new(request.host(), request.path.clone());
            for subprotocol in &request.subprotocols {
                sent = sent.subprotocol(subprotocol.clone());
            }
            for extension in &request.extensions {
                sent = sent.extension(extension.clone());
            }
            assert_eq!(validate_response(&response, &sent, &request.key), Ok(()));
        }
        Err(error) => {
            let status = error.status();
            assert!(
                matches!(status, 400 | 405 | 426 | 431 | 505),
                "a request refused with {status}: {error}"
            );
            let mut refusal = Vec::new();
            encode_reject(&error.rejection(), &mut refusal);
            let (response, n) = parse_response(&refusal, &HandshakeLimits::default())
                .expect("our refusal parses")
                .expect("our refusal is complete");
            assert_eq!(response.status, status);
            let length: usize = response
                .headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("a refusal carries a Content-Length");
            assert_eq!(
                n + length,
                refusal.len(),
                "the body is the rest of the refusal"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, buf)) = data.split_first() {
        check(&limits(selector), buf);
    }
});
