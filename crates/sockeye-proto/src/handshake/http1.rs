//! HTTP/1.1 helpers shared by both roles: head parsing with limits, token and field-value
//! checks (RFC 7230 3.2.6), and comma-separated header lists (RFC 7230 7).

use super::{HandshakeError, HandshakeLimits};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The part of `buf` that the head parser may look at: at most `max_head_bytes`, so a peer
/// that never ends its head costs bounded work per call.
pub(super) fn head_window<'a>(buf: &'a [u8], limits: &HandshakeLimits) -> &'a [u8] {
    &buf[..buf.len().min(limits.max_head_bytes)]
}

/// An incomplete head: wait for more bytes, unless the buffer already holds more than a head
/// may be long, in which case the head can never fit.
pub(super) fn incomplete<T>(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<T>, HandshakeError> {
    if buf.len() > limits.max_head_bytes {
        Err(HandshakeError::HeadTooLarge {
            limit: limits.max_head_bytes,
        })
    } else {
        Ok(None)
    }
}

/// Turns an `httparse` error into ours.
pub(super) fn parse_error(error: httparse::Error, limits: &HandshakeLimits) -> HandshakeError {
    match error {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders {
            limit: limits.max_headers,
        },
        // Only HTTP/1.0 and HTTP/1.1 parse; anything else in the version slot lands here.
        httparse::Error::Version => HandshakeError::UnsupportedHttpVersion,
        other => HandshakeError::Http(other.to_string()),
    }
}

/// Copies parsed header fields into a `HeaderMap`, keeping repeated fields in order.
pub(super) fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HandshakeError::Http(format!("invalid header name {:?}", field.name)))?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| {
            HandshakeError::Http(format!("invalid value in header {:?}", field.name))
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// `tchar` of RFC 7230 3.2.6.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A non-empty `token` of RFC 7230 3.2.6.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A `field-value` that can be written on one line: no control characters other than
/// horizontal tab (so no CR, LF or NUL), no DEL (RFC 7230 3.2).
pub(super) fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Checks one extra header given by the application: the name is a token, the value fits on
/// one line, and the name is not one the encoder writes itself (`reserved`, lowercase).
pub(super) fn check_extra_header(
    name: &str,
    value: &str,
    reserved: &[&str],
) -> Result<(), HandshakeError> {
    if !is_token(name) {
        return Err(HandshakeError::InvalidHeader(format!(
            "header name {name:?} is not an HTTP token"
        )));
    }
    if !is_field_value(value) {
        return Err(HandshakeError::InvalidHeader(format!(
            "value of header {name:?} contains control characters"
        )));
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(HandshakeError::InvalidHeader(format!(
            "header {name:?} is set by the handshake itself"
        )));
    }
    Ok(())
}

/// The name of an extension offer or response value: the token before the first `;`.
pub(super) fn extension_name(offer: &str) -> &str {
    offer.split(';').next().unwrap_or("").trim()
}

/// Checks one extension offer or response given by the application.
pub(super) fn check_extension(extension: &str) -> Result<(), HandshakeError> {
    if !is_token(extension_name(extension)) || !is_field_value(extension) {
        return Err(HandshakeError::InvalidExtension(extension.to_owned()));
    }
    Ok(())
}

/// The elements of a comma-separated list header, over all its fields, trimmed, empty
/// elements skipped (RFC 7230 7). Bytes that are not UTF-8 become U+FFFD, so they never
/// match a token.
pub(super) fn list_items(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether a comma-separated list header holds `token`, compared case-insensitively.
pub(super) fn list_contains(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    list_items(headers, name)
        .iter()
        .any(|item| item.eq_ignore_ascii_case(token))
}

/// All fields of `name` joined with ", " (for error messages), or `None` when absent.
pub(super) fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(", "))
    }
}

/// The single field `name`, trimmed: `Ok(None)` when absent, an error when repeated.
pub(super) fn single(
    headers: &HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<Option<String>, HandshakeError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HandshakeError::DuplicateHeader(label));
    }
    Ok(Some(
        String::from_utf8_lossy(first.as_bytes()).trim().to_owned(),
    ))
}

/// Appends `name: value\r\n`.
pub(super) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_exclude_separators_and_spaces() {
        assert!(is_token("chat.v2"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a,b"));
        assert!(!is_token("a;b"));
        assert!(!is_token("a/b"));
    }

    #[test]
    fn field_values_exclude_line_breaks() {
        assert!(is_field_value("text/plain; q=1\tx"));
        assert!(is_field_value("caf\u{e9}"));
        assert!(!is_field_value("a\r\nEvil: 1"));
        assert!(!is_field_value("a\nb"));
        assert!(!is_field_value("a\0b"));
    }

    #[test]
    fn list_items_span_repeated_fields() {
        let mut headers = HeaderMap::new();
        headers.append(http::header::CONNECTION, HeaderValue::from_static("a, ,b"));
        headers.append(http::header::CONNECTION, HeaderValue::from_static(" C "));
        assert_eq!(
            list_items(&headers, &http::header::CONNECTION),
            vec!["a", "b", "C"]
        );
        assert!(list_contains(&headers, &http::header::CONNECTION, "c"));
        assert!(!list_contains(&headers, &http::header::CONNECTION, "d"));
    }
}
