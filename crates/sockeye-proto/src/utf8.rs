//! Streaming UTF-8 validation for text messages (RFC 6455 8.1).
//!
//! A text message arrives in pieces (fragments, and reads of a fragment), and a code point
//! may be cut anywhere. [`Utf8Validator`] checks each piece as it arrives and fails as soon
//! as the bytes seen so far cannot begin any valid UTF-8 text, as Autobahn's 6.x cases
//! require: an overlong form, a surrogate or a code point above U+10FFFF is refused at the
//! byte that makes it impossible, not at the end of the message.
//!
//! The bulk of each piece is checked with SIMD by `simdutf8`; only an incomplete code point
//! at the end of a piece (at most 3 bytes) is carried over to the next one.

use simdutf8::compat::from_utf8;

/// Bytes that cannot be part of valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8")]
pub struct InvalidUtf8;

/// Validates a text message fed in arbitrary pieces, failing as soon as the bytes so far
/// cannot begin any valid UTF-8 text.
///
/// After a failure the validator stays failed until [`reset`](Self::reset) or
/// [`finish`](Self::finish).
///
/// ```
/// use sockeye_proto::utf8::Utf8Validator;
///
/// let mut v = Utf8Validator::new();
/// // "€" is E2 82 AC, cut across two pieces.
/// assert!(v.feed(b"price: \xE2\x82").is_ok());
/// assert!(v.feed(b"\xAC 5").is_ok());
/// assert!(v.finish().is_ok());
///
/// // E0 80 can only start an overlong form: refused at the 80.
/// assert!(v.feed(b"\xE0").is_ok());
/// assert!(v.feed(b"\x80").is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    /// The incomplete code point at the end of the bytes fed so far: a valid prefix of a
    /// UTF-8 sequence, `partial_len` bytes long (0 to 3).
    partial: [u8; 4],
    partial_len: usize,
    /// Set by the first invalid byte; cleared only by `reset` or `finish`.
    failed: bool,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the message.
    ///
    /// Fails as soon as the bytes fed so far cannot be the beginning of valid UTF-8, even
    /// when the piece ends in the middle of a code point; then every later call fails too,
    /// until the validator is reset.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] if the bytes fed so far (this piece included) cannot begin valid
    /// UTF-8, or if an earlier piece already failed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.failed {
            return Err(InvalidUtf8);
        }
        // RFC 6455 8.1: a text message that is not valid UTF-8 MUST fail the connection.
        let result = self.check(chunk);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Ends the message: fails if a code point is incomplete (or an earlier piece was
    /// invalid). Resets the validator either way, ready for the next message.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] if the message ends inside a code point or was already invalid.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = !self.failed && self.partial_len == 0;
        self.reset();
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Forgets any partial code point and any failure: back to the start of a message.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Checks `chunk` as the continuation of the bytes fed so far, updating the carried
    /// partial code point.
    fn check(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            // Complete the carried code point with the first bytes of this chunk and check
            // that short sequence on its own, so that a byte that cannot follow the carried
            // ones is refused here.
            let have = self.partial_len;
            let take = (sequence_len(self.partial[0]) - have).min(chunk.len());
            self.partial[have..have + take].copy_from_slice(&chunk[..take]);
            match from_utf8(&self.partial[..have + take]) {
                Ok(_) => self.partial_len = 0,
                // Still a valid prefix: the chunk was too short to complete it.
                Err(e) if e.error_len().is_none() => {
                    self.partial_len = have + take;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            chunk = &chunk[take..];
        }
        match from_utf8(chunk) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the chunk ends with an incomplete sequence that is a
            // valid prefix (at most 3 bytes); carry it into the next call.
            Err(e) if e.error_len().is_none() => {
                let tail = &chunk[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }
}

/// The length of the UTF-8 sequence that `lead` starts. Only called on the first byte of a
/// carried partial code point, which the validator has already accepted as a lead byte
/// (C2..=F4).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xFF => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` one at a time and returns the index of the first byte whose feed
    /// failed, if any.
    fn first_failing_byte(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        bytes.iter().position(|b| v.feed(&[*b]).is_err())
    }

    /// Feeds the pieces in order and returns the index of the first piece whose feed
    /// failed, if any.
    fn first_failing_piece(pieces: &[&[u8]]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        pieces.iter().position(|p| v.feed(p).is_err())
    }

    /// Feeds `bytes` whole, then finishes.
    fn validate_whole(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(bytes)?;
        v.finish()
    }

    // Byte-at-a-time fail-fast cases: each sequence must fail exactly at its last byte.

    #[test]
    fn overlong_three_byte_form_fails_on_second_byte() {
        assert_eq!(first_failing_byte(b"\xE0\x80"), Some(1));
        assert_eq!(first_failing_byte(b"\xE0\x9F"), Some(1));
    }

    #[test]
    fn overlong_four_byte_form_fails_on_second_byte() {
        assert_eq!(first_failing_byte(b"\xF0\x80"), Some(1));
        assert_eq!(first_failing_byte(b"\xF0\x8F"), Some(1));
    }

    #[test]
    fn surrogate_fails_on_second_byte() {
        assert_eq!(first_failing_byte(b"\xED\xA0"), Some(1));
        assert_eq!(first_failing_byte(b"\xED\xBF"), Some(1));
    }

    #[test]
    fn code_point_above_u10ffff_fails_on_second_byte() {
        assert_eq!(first_failing_byte(b"\xF4\x90"), Some(1));
        assert_eq!(first_failing_byte(b"\xF4\xBF"), Some(1));
    }

    #[test]
    fn bytes_that_never_appear_in_utf8_fail_at_once() {
        for b in [0xC0u8, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xFC, 0xFE, 0xFF] {
            assert_eq!(first_failing_byte(&[b]), Some(0), "{b:#04x}");
            // Also after valid text.
            assert_eq!(first_failing_byte(&[b'a', b]), Some(1), "a, {b:#04x}");
        }
    }

    #[test]
    fn lone_continuation_byte_fails_at_once() {
        assert_eq!(first_failing_byte(b"\x80"), Some(0));
        assert_eq!(first_failing_byte(b"ab\xBF"), Some(2));
    }

    #[test]
    fn carried_lead_byte_followed_by_ascii_fails_on_the_ascii_byte() {
        assert_eq!(first_failing_byte(b"\xC3A"), Some(1));
        assert_eq!(first_failing_byte(b"\xE2\x82A"), Some(2));
        assert_eq!(first_failing_byte(b"\xF0\x90\x80A"), Some(3));
    }

    #[test]
    fn boundary_code_points_pass_byte_at_a_time() {
        // U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF.
        let text = "\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{FFFF}\u{10000}\u{10FFFF}";
        let mut v = Utf8Validator::new();
        for b in text.as_bytes() {
            assert_eq!(v.feed(&[*b]), Ok(()), "byte {b:#04x}");
        }
        assert_eq!(v.finish(), Ok(()));
    }

    // Autobahn-like fragmented messages.

    const KOSME: &[u8] = "κόσμε".as_bytes();

    #[test]
    fn invalid_sequence_in_first_fragment_fails_on_first_fragment() {
        // Each first fragment ends in the middle of an invalid sequence whose rest follows.
        for (bad, rest) in [
            (&b"\xF4\x90"[..], &b"\x80\x80edited"[..]),
            (b"\xED\xA0", b"\x80edited"),
            (b"\xE0\x80", b"\x80edited"),
            (b"\xC0", b"\xAFedited"),
        ] {
            let first = [KOSME, bad].concat();
            assert_eq!(
                first_failing_piece(&[&first, rest, b"more"]),
                Some(0),
                "{bad:x?}"
            );
        }
    }

    #[test]
    fn autobahn_6_4_1_fails_on_the_fragment_with_the_invalid_code_point() {
        let pieces: [&[u8]; 3] = [KOSME, b"\xF4\x90\x80\x80", b"edited"];
        assert_eq!(first_failing_piece(&pieces), Some(1));
    }

    #[test]
    fn autobahn_6_4_2_fails_on_the_one_byte_fragment_that_makes_it_invalid() {
        let first = [KOSME, b"\xF4"].concat();
        let pieces: [&[u8]; 3] = [&first, b"\x90", b"\x80\x80edited"];
        assert_eq!(first_failing_piece(&pieces), Some(1));
    }

    #[test]
    fn valid_text_passes_when_split_at_every_pair_of_points() {
        let text = "κόσμε € 𝄞 Hello ✓ 日本語 \u{10FFFF}".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&text[..i]), Ok(()), "split {i}/{j}");
                assert_eq!(v.feed(&text[i..j]), Ok(()), "split {i}/{j}");
                assert_eq!(v.feed(&text[j..]), Ok(()), "split {i}/{j}");
                assert_eq!(v.finish(), Ok(()), "split {i}/{j}");
            }
        }
    }

    #[test]
    fn empty_pieces_keep_the_carried_code_point() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xF0\x9F"), Ok(()));
        assert_eq!(v.feed(b""), Ok(()));
        assert_eq!(v.feed(b"\x98"), Ok(()));
        assert_eq!(v.feed(b""), Ok(()));
        assert_eq!(v.feed(b"\x80 ok"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    // Lifecycle.

    #[test]
    fn finish_fails_on_an_incomplete_code_point() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"abc\xE2\x82"), Ok(()));
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn finish_resets_after_an_incomplete_code_point() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xE2\x82"), Ok(()));
        assert_eq!(v.finish(), Err(InvalidUtf8));
        // The next message starts fresh: a continuation byte at its start is invalid, and
        // plain text is fine.
        assert_eq!(v.feed(b"plain"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
        assert_eq!(v.feed(b"\xAC"), Err(InvalidUtf8));
    }

    #[test]
    fn failure_is_sticky_until_reset() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xFF"), Err(InvalidUtf8));
        assert_eq!(v.feed(b"valid"), Err(InvalidUtf8));
        assert_eq!(v.feed(b""), Err(InvalidUtf8));
        v.reset();
        assert_eq!(v.feed(b"valid"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn finish_after_failure_fails_and_resets() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xC1"), Err(InvalidUtf8));
        assert_eq!(v.finish(), Err(InvalidUtf8));
        assert_eq!(v.feed(b"again"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn reset_forgets_a_carried_code_point() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xE2"), Ok(()));
        v.reset();
        assert_eq!(v.feed(b"\x82"), Err(InvalidUtf8));
    }

    #[test]
    fn error_message() {
        assert_eq!(InvalidUtf8.to_string(), "invalid UTF-8");
    }

    #[test]
    fn whole_message_checks_agree_with_std_on_known_inputs() {
        for bytes in [
            &b""[..],
            b"hello",
            "κόσμε".as_bytes(),
            b"\xCE\xBA\xE1\xBD",
            b"\xED\x9F\xBF",
            b"\xED\xA0\x80",
            b"\xF4\x8F\xBF\xBF",
            b"\xF4\x90\x80\x80",
        ] {
            assert_eq!(
                validate_whole(bytes).is_ok(),
                std::str::from_utf8(bytes).is_ok(),
                "{bytes:x?}"
            );
        }
    }

    // Property tests.

    /// Byte vectors that are often valid UTF-8, often nearly valid, and sometimes noise.
    fn utf8ish_bytes() -> impl Strategy<Value = Vec<u8>> {
        let valid = any::<String>().prop_map(String::into_bytes);
        let edited = (
            any::<String>(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        )
            .prop_map(|(s, edits)| {
                let mut bytes = s.into_bytes();
                for (at, byte) in edits {
                    let at = at.index(bytes.len() + 1);
                    if at < bytes.len() && byte % 2 == 0 {
                        bytes[at] = byte;
                    } else {
                        bytes.insert(at, byte);
                    }
                }
                bytes
            });
        let truncated = (any::<String>(), any::<prop::sample::Index>()).prop_map(|(s, at)| {
            let mut bytes = s.into_bytes();
            bytes.truncate(at.index(bytes.len() + 1));
            bytes
        });
        let noise = proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![valid, edited, truncated, noise]
    }

    /// `bytes` cut at random points into consecutive pieces (some possibly empty).
    fn chunked() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
        (
            utf8ish_bytes(),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        )
            .prop_map(|(bytes, cuts)| {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
                cuts.push(0);
                cuts.push(bytes.len());
                cuts.sort_unstable();
                (bytes, cuts)
            })
    }

    proptest! {
        #[test]
        fn any_chunking_succeeds_exactly_when_std_accepts_the_whole((bytes, cuts) in chunked()) {
            let mut v = Utf8Validator::new();
            let mut result = Ok(());
            for w in cuts.windows(2) {
                result = result.and_then(|()| v.feed(&bytes[w[0]..w[1]]));
            }
            let result = result.and_then(|()| v.finish());
            prop_assert_eq!(result.is_ok(), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn feed_fails_at_the_first_chunk_whose_prefix_has_a_definite_error(
            (bytes, cuts) in chunked()
        ) {
            let mut v = Utf8Validator::new();
            let mut failed = false;
            for w in cuts.windows(2) {
                let fed = v.feed(&bytes[w[0]..w[1]]);
                if failed {
                    prop_assert_eq!(fed, Err(InvalidUtf8), "failure must be sticky");
                    continue;
                }
                let definite = matches!(
                    std::str::from_utf8(&bytes[..w[1]]),
                    Err(e) if e.error_len().is_some()
                );
                prop_assert_eq!(fed.is_err(), definite, "prefix of {} bytes", w[1]);
                failed = definite;
            }
        }

        #[test]
        fn byte_at_a_time_fails_exactly_where_std_sees_a_definite_error(bytes in utf8ish_bytes()) {
            let expected = (0..bytes.len()).find(|&k| {
                matches!(std::str::from_utf8(&bytes[..=k]), Err(e) if e.error_len().is_some())
            });
            prop_assert_eq!(first_failing_byte(&bytes), expected);
        }
    }
}
