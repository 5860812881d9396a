//! Masking and unmasking of frame payloads (RFC 6455 5.3).
//!
//! Masking and unmasking are the same operation: octet `i` of the payload is XORed with
//! octet `i % 4` of the key. [`apply_mask`] does it a word at a time: 16-byte words in
//! portable Rust, 32-byte words when the CPU has AVX2 (detected at run time; the same
//! loop, compiled for that feature), and payloads under 64 bytes, as well as the head
//! before the first aligned word and the tail after the last, in unaligned 8-byte words.
//! It takes the payload offset of the first byte so that a payload can be unmasked piece
//! by piece as it arrives from the transport.

/// Bytes XORed per step of the portable word loop.
const WORD: usize = 16;

/// Bytes XORed per step with AVX2 (one 256-bit register), and the shortest payload that
/// takes that path (below it, the feature check and the longer head cost more than the
/// wider words save).
#[cfg(target_arch = "x86_64")]
const AVX2_WORD: usize = 32;
#[cfg(target_arch = "x86_64")]
const AVX2_MIN: usize = 256;

/// Payloads shorter than this are XORed 8 bytes at a time from wherever they start: for a
/// small message the aligned head and tail of the word loop cost more than they save.
const SHORT: usize = 64;

/// XORs `buf` with the masking `key`, where `buf[0]` is byte number `offset` of the
/// payload (so a payload can be unmasked in pieces as it arrives).
///
/// Applying the same key at the same offset twice restores the original bytes.
///
/// ```
/// use sockeye_proto::mask::apply_mask;
///
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"Hello";
/// apply_mask(&mut payload, key, 0);
/// assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
///
/// // The same payload unmasked in two pieces.
/// let (first, second) = payload.split_at_mut(2);
/// apply_mask(first, key, 0);
/// apply_mask(second, key, 2);
/// assert_eq!(&payload, b"Hello");
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < SHORT {
        apply_mask_short(buf, key, offset);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= AVX2_MIN && std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: `apply_mask_avx2` needs AVX2, which this CPU has (checked just above, at
        // run time).
        unsafe {
            apply_mask_avx2(buf, key, offset);
        }
        return;
    }
    apply_mask_portable(buf, key, offset);
}

/// Short payloads: unaligned 8-byte words from the first byte on (no aligned head), then
/// a 4-byte word and bytes.
fn apply_mask_short(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key rotated as a little-endian word: byte i is bits 8i..8i+8, so rotating right
    // by whole bytes moves byte (offset + i) % 4 to position i, as `rotated` does. One
    // instruction instead of four look-ups, which matter for a short payload; in the word
    // loop's function the look-ups are kept (the rotation made the compiler unroll the
    // 32-byte loop half as far: 16 KiB 87 -> 112 ns).
    let by = (offset % 4) as u32;
    let key = u32::from_le_bytes(key).rotate_right(8 * by).to_le_bytes();
    xor_short(buf, key);
}

/// XORs `buf` (whose first byte uses key octet 0 of `key`) in unaligned 8-byte words, then
/// a 4-byte word and the last bytes one by one: the short payloads, and the head and tail
/// of the word loop.
#[inline(always)]
fn xor_short(buf: &mut [u8], key: [u8; 4]) {
    let rest = xor_words::<8>(buf, key, |word, key| {
        *word = (u64::from_ne_bytes(*word) ^ u64::from_ne_bytes(*key)).to_ne_bytes();
    });
    let rest = match rest.split_first_chunk_mut::<4>() {
        Some((word, rest)) => {
            *word = (u32::from_ne_bytes(*word) ^ u32::from_ne_bytes(key)).to_ne_bytes();
            rest
        }
        None => rest,
    };
    xor_bytes(rest, key);
}

/// The fallback for every CPU: one u128 XOR per 16-byte word.
fn apply_mask_portable(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_words::<WORD>(buf, key, offset, |word, key| {
        *word = (u128::from_ne_bytes(*word) ^ u128::from_ne_bytes(*key)).to_ne_bytes();
    });
}

/// The word loop compiled with AVX2 enabled, so that each step is one 256-bit XOR.
///
/// # Safety
///
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Byte by byte, which the compiler turns into one 256-bit XOR per word (two u128
    // XORs it would not fuse: measured three times slower).
    apply_mask_words::<AVX2_WORD>(buf, key, offset, |word, key| {
        for (byte, k) in word.iter_mut().zip(key) {
            *byte ^= k;
        }
    });
}

/// [`apply_mask`] with words of `N` bytes (a multiple of 4), each XORed with the key by
/// `xor_word`: a head up to the next `N`-byte boundary, whole aligned words, a tail (head
/// and tail in 8-byte words and bytes). Inlined into each caller, so that the word loop is
/// compiled with the caller's target features.
#[inline(always)]
fn apply_mask_words<const N: usize>(
    buf: &mut [u8],
    key: [u8; 4],
    offset: usize,
    xor_word: impl Fn(&mut [u8; N], &[u8; N]),
) {
    // RFC 6455 5.3: payload octet i MUST be XORed with key octet (i MOD 4); rotating the
    // key by the offset makes buf[0] use key octet (offset MOD 4).
    let key = rotated(key, offset);

    // A short head up to the next word boundary, so that the word loop reads aligned
    // memory; the key then rotates by the head's length.
    let head_len = buf.as_ptr().align_offset(N).min(buf.len());
    let (head, body) = buf.split_at_mut(head_len);
    xor_short(head, key);
    let key = rotated(key, head_len);
    // Every word is a multiple of 4 bytes long, so the tail starts at key octet 0 again.
    let tail = xor_words::<N>(body, key, xor_word);
    xor_short(tail, key);
}

/// XORs `buf` (whose first byte uses key octet 0 of `key`) in whole `N`-byte words, each
/// by `xor_word`, and returns the rest (shorter than a word). Inlined, like
/// [`apply_mask_words`].
#[inline(always)]
fn xor_words<const N: usize>(
    buf: &mut [u8],
    key: [u8; 4],
    xor_word: impl Fn(&mut [u8; N], &[u8; N]),
) -> &mut [u8] {
    // The key repeated over a whole word: byte i of the word is key octet (i MOD 4).
    let mut key_word = [0u8; N];
    for quad in key_word.chunks_exact_mut(4) {
        quad.copy_from_slice(&key);
    }

    let mut words = buf.chunks_exact_mut(N);
    for word in &mut words {
        let word: &mut [u8; N] = word.try_into().expect("chunks of N bytes");
        xor_word(word, &key_word);
    }
    words.into_remainder()
}

/// The key as seen from payload byte `by` onwards: `rotated(key, by)[i] == key[(by + i) % 4]`.
fn rotated(key: [u8; 4], by: usize) -> [u8; 4] {
    [
        key[by % 4],
        key[(by + 1) % 4],
        key[(by + 2) % 4],
        key[(by + 3) % 4],
    ]
}

/// XORs `bytes[i]` with `key[i % 4]`.
fn xor_bytes(bytes: &mut [u8], key: [u8; 4]) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition of RFC 6455 5.3, one byte at a time: the reference for the fast path.
    fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte ^= key[(offset + i) % 4];
        }
    }

    const RFC_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const RFC_MASKED_HELLO: [u8; 5] = [0x7f, 0x9f, 0x4d, 0x51, 0x58];

    #[test]
    fn rfc6455_5_7_masked_hello_unmasks_to_hello() {
        let mut payload = RFC_MASKED_HELLO;
        apply_mask(&mut payload, RFC_KEY, 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn rfc6455_5_7_hello_masks_to_the_rfc_bytes() {
        let mut payload = *b"Hello";
        apply_mask(&mut payload, RFC_KEY, 0);
        assert_eq!(payload, RFC_MASKED_HELLO);
    }

    #[test]
    fn rfc6455_5_7_hello_unmasks_in_pieces_at_every_split() {
        for split in 0..=RFC_MASKED_HELLO.len() {
            let mut payload = RFC_MASKED_HELLO;
            let (first, second) = payload.split_at_mut(split);
            apply_mask(first, RFC_KEY, 0);
            apply_mask(second, RFC_KEY, split);
            assert_eq!(&payload, b"Hello", "split at {split}");
        }
    }

    #[test]
    fn offset_selects_the_key_octet_for_the_first_byte() {
        for offset in 0..8 {
            let mut buf = [0u8; 1];
            apply_mask(&mut buf, [1, 2, 3, 4], offset);
            assert_eq!(buf[0], [1, 2, 3, 4][offset % 4], "offset {offset}");
        }
    }

    #[test]
    fn empty_buffer_is_left_alone() {
        let mut buf: [u8; 0] = [];
        apply_mask(&mut buf, RFC_KEY, 3);
        assert!(buf.is_empty());
    }

    #[test]
    fn long_buffer_at_every_alignment_matches_scalar() {
        // Sub-slices starting at every alignment exercise head, words and tail.
        let original: Vec<u8> = (0..200u8).collect();
        for start in 0..=WORD {
            for offset in 0..4 {
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast[start..], RFC_KEY, offset);
                apply_mask_scalar(&mut slow[start..], RFC_KEY, offset);
                assert_eq!(fast, slow, "start {start}, offset {offset}");
            }
        }
    }

    /// Every path `apply_mask` may take, by name: the portable words, and AVX2 where this
    /// CPU has it (so that a machine with AVX2 checks the fallback too).
    type Path = fn(&mut [u8], [u8; 4], usize);

    fn every_path() -> Vec<(&'static str, Path)> {
        fn portable(buf: &mut [u8], key: [u8; 4], offset: usize) {
            apply_mask_portable(buf, key, offset);
        }
        let mut paths: Vec<(&'static str, Path)> =
            vec![("short", apply_mask_short), ("portable", portable)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            #[allow(unsafe_code)]
            fn avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
                // SAFETY: only listed when the CPU has AVX2 (checked above).
                unsafe { apply_mask_avx2(buf, key, offset) }
            }
            paths.push(("avx2", avx2));
        }
        paths
    }

    #[test]
    fn every_path_matches_scalar_at_every_length_alignment_and_offset() {
        let original: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        for (name, path) in every_path() {
            for start in 0..=64 {
                for len in (0..=600).step_by(7).chain([255, 256, 257, 512, 636]) {
                    for offset in 0..4 {
                        let mut fast = original.clone();
                        let mut slow = original.clone();
                        path(&mut fast[start..start + len], RFC_KEY, offset);
                        apply_mask_scalar(&mut slow[start..start + len], RFC_KEY, offset);
                        assert_eq!(
                            fast, slow,
                            "{name}: start {start}, len {len}, offset {offset}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_path_equals_scalar_on_long_payloads(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            start in 0usize..64,
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let start = start.min(data.len());
            let mut slow = data.clone();
            apply_mask_scalar(&mut slow[start..], key, offset);
            for (name, path) in every_path() {
                let mut fast = data.clone();
                path(&mut fast[start..], key, offset);
                prop_assert_eq!(&fast, &slow, "{}", name);
            }
        }

        #[test]
        fn masking_twice_is_the_identity(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let mut buf = data.clone();
            apply_mask(&mut buf, key, offset);
            apply_mask(&mut buf, key, offset);
            prop_assert_eq!(buf, data);
        }

        #[test]
        fn fast_mask_equals_scalar_mask(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            start in 0usize..32,
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_scalar(&mut slow[start..], key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn unmasking_in_two_pieces_equals_unmasking_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            split in any::<prop::sample::Index>(),
            key in any::<[u8; 4]>(),
            base in 0usize..1 << 20,
        ) {
            let split = split.index(data.len() + 1);
            let mut whole = data.clone();
            apply_mask(&mut whole, key, base);

            let mut pieces = data;
            let (first, second) = pieces.split_at_mut(split);
            apply_mask(first, key, base);
            apply_mask(second, key, base + split);
            prop_assert_eq!(pieces, whole);
        }
    }
}
