//! Streaming UTF-8 validation for text messages (RFC 6455 8.1).
//!
//! PLACEHOLDER: interface only; the body is being written.

/// Bytes that cannot be part of valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a text message fed in arbitrary pieces, failing as soon as the bytes so far
/// cannot begin any valid UTF-8 text.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    carry: Vec<u8>,
    failed: bool,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds the next piece.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.failed {
            return Err(InvalidUtf8);
        }
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        match std::str::from_utf8(&data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => {
                self.failed = true;
                Err(InvalidUtf8)
            }
            Err(e) => {
                self.carry = data[e.valid_up_to()..].to_vec();
                Ok(())
            }
        }
    }
    /// Ends the message: fails if a code point is incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let ok = !self.failed && self.carry.is_empty();
        self.reset();
        if ok { Ok(()) } else { Err(InvalidUtf8) }
    }
    /// Forgets any partial state.
    pub fn reset(&mut self) {
        self.carry.clear();
        self.failed = false;
    }
}
