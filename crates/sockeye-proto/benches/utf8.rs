//! UTF-8 validation: the streaming validator, whole and in pieces, against
//! `std::str::from_utf8` on the same bytes.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::utf8::Utf8Validator;

/// `size` bytes of text: ASCII, or a mix of 1- to 4-byte code points.
fn text(size: usize, ascii: bool) -> Vec<u8> {
    let unit = if ascii {
        "The quick brown fox jumps over the lazy dog. "
    } else {
        "Größe Ελληνικά 日本語テキスト 🦀 emoji "
    };
    let mut out = unit.repeat(size / unit.len() + 1);
    while out.len() > size {
        out.pop();
    }
    out.into_bytes()
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (kind, ascii) in [("ascii", true), ("mixed", false)] {
        for size in [128usize, 16 * 1024, 1 << 20] {
            let bytes = text(size, ascii);
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            let id = format!("{kind}/{size}");
            group.bench_with_input(BenchmarkId::new("std", &id), &bytes, |b, bytes| {
                b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok())
            });
            group.bench_with_input(BenchmarkId::new("validator", &id), &bytes, |b, bytes| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    v.feed(black_box(bytes)).unwrap();
                    v.finish().unwrap();
                })
            });
            // Pieces of 1000 bytes: code points cut at the boundaries, as reads cut them.
            group.bench_with_input(
                BenchmarkId::new("validator_1000_byte_pieces", &id),
                &bytes,
                |b, bytes| {
                    b.iter(|| {
                        let mut v = Utf8Validator::new();
                        for piece in black_box(bytes).chunks(1000) {
                            v.feed(piece).unwrap();
                        }
                        v.finish().unwrap();
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
