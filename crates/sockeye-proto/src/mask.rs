//! Masking and unmasking of frame payloads (RFC 6455 5.3).
//!
//! PLACEHOLDER: interface only; the body is being written.

/// XORs `buf` with the masking `key`, where `buf[0]` is byte number `offset` of the
/// payload (so a payload can be unmasked in pieces as it arrives).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}
