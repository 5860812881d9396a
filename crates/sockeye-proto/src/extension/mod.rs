//! WebSocket extensions (RFC 6455 9): the grammar of extension offers and responses, and
//! permessage-deflate (RFC 7692), the extension Sockeye implements.
//!
//! An extension is negotiated in the opening handshake: the client lists offers in its
//! `Sec-WebSocket-Extensions` header, in order of preference; the server answers with at
//! most one response per extension. [`deflate`] decides both sides for
//! permessage-deflate; the [`Connection`](crate::Connection) applies the result (RSV1,
//! compression, decompression) to every data message.

pub mod deflate;

pub use deflate::{DeflateConfig, DeflateParams};

/// Why an extension offer or response cannot be used (RFC 7692 5, 7.1).
///
/// A server declines an offer with such a defect and tries the next one; a client that
/// receives a response with one fails the connection with 1010
/// ([`HandshakeError::ExtensionResponse`](crate::HandshakeError::ExtensionResponse)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The element does not follow `name *( ";" param [ "=" value ] )` (RFC 6455 9.1).
    #[error("malformed extension element {0:?}")]
    Malformed(String),
    /// A parameter this extension does not define (RFC 7692 5).
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
    /// A parameter given twice (RFC 7692 5).
    #[error("parameter {0} appears more than once")]
    DuplicateParameter(String),
    /// A parameter with a value it may not have, or without a value it must have
    /// (`value` is `None`) (RFC 7692 7.1).
    #[error("invalid value {} for parameter {name}", value.as_deref().map_or("(none)".to_owned(), |v| format!("{v:?}")))]
    InvalidValue {
        /// The parameter.
        name: String,
        /// The value given, if any.
        value: Option<String>,
    },
    /// The response holds a parameter the offer did not allow: `client_max_window_bits`
    /// when the offer had none (RFC 7692 7.1.2.2).
    #[error("parameter {0} in the response, but not in the offer")]
    Unoffered(&'static str),
    /// The response does not grant what the offer asked for: `server_no_context_takeover`
    /// missing, or `server_max_window_bits` missing or above the offer's (RFC 7692
    /// 7.1.1.1, 7.1.2.1).
    #[error("the offer asked for {asked}, the response gives {given}")]
    NotGranted {
        /// What the offer asked for.
        asked: String,
        /// What the response gives instead.
        given: String,
    },
    /// The server answered with the same extension twice.
    #[error("{0} accepted more than once")]
    DuplicateExtension(&'static str),
    /// The client made no valid offer that this response could answer.
    #[error("no valid offer to answer")]
    NoOffer,
}

/// One element of an extension list: its name and its parameters, in order, each with its
/// value if it has one (quoted values unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) params: Vec<(String, Option<String>)>,
}

/// Parses one element of a `Sec-WebSocket-Extensions` list (RFC 6455 9.1):
///
/// ```text
/// extension     = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// A quoted value must be a token once unquoted. Whitespace around `;` and `=` is allowed.
pub(crate) fn parse_element(text: &str) -> Result<Element, NegotiationError> {
    let malformed = || NegotiationError::Malformed(text.to_owned());
    let mut parts = text.split(';');
    let name = parts.next().unwrap_or("").trim();
    if !is_token(name) {
        return Err(malformed());
    }
    let mut params = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (
                key.trim(),
                Some(unquote(value.trim()).ok_or_else(malformed)?),
            ),
            None => (part.trim(), None),
        };
        if !is_token(key) {
            return Err(malformed());
        }
        params.push((key.to_owned(), value));
    }
    Ok(Element {
        name: name.to_owned(),
        params,
    })
}

/// A parameter value: a token, or a quoted-string whose content is a token (RFC 6455 9.1).
fn unquote(value: &str) -> Option<String> {
    let content = match value.strip_prefix('"') {
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return None,
                    c => out.push(c),
                }
            }
            out
        }
        None => value.to_owned(),
    };
    is_token(&content).then_some(content)
}

/// A non-empty `token` of RFC 7230 3.2.6.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The name of an extension element: the text before the first `;`, trimmed.
pub(crate) fn element_name(text: &str) -> &str {
    text.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Vec<(String, Option<String>)> {
        parse_element(text).unwrap().params
    }

    #[test]
    fn element_with_bare_and_valued_params() {
        let element = parse_element(
            "permessage-deflate ; client_max_window_bits; server_max_window_bits = 10",
        )
        .unwrap();
        assert_eq!(element.name, "permessage-deflate");
        assert_eq!(
            element.params,
            [
                ("client_max_window_bits".to_owned(), None),
                ("server_max_window_bits".to_owned(), Some("10".to_owned()))
            ]
        );
    }

    #[test]
    fn quoted_values_are_unquoted() {
        assert_eq!(
            params("x; a=\"10\"; b=\"1\\1\""),
            [
                ("a".to_owned(), Some("10".to_owned())),
                ("b".to_owned(), Some("11".to_owned()))
            ]
        );
    }

    #[test]
    fn malformed_elements_are_refused() {
        for bad in [
            "",
            "; a",
            "x;",
            "x; ; a",
            "x; a=",
            "x; a=\"\"",
            "x; a=\"1 0\"",
            "x; a=\"10",
            "x; a b",
            "x y",
            "x; a=1=2",
        ] {
            assert_eq!(
                parse_element(bad),
                Err(NegotiationError::Malformed(bad.to_owned())),
                "{bad:?}"
            );
        }
    }
}
