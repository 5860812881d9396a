//! Unmasking against a plain copy of the same bytes: the copy is the floor that
//! unmasking in place should approach.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::mask::apply_mask;

const SIZES: [usize; 7] = [16, 128, 1024, 4096, 16 * 1024, 64 * 1024, 1 << 20];

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let source: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut buf = source.clone();
        group.bench_with_input(BenchmarkId::new("apply_mask", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), [0x37, 0xfa, 0x21, 0x3d], 0))
        });
        // Off a word boundary, as a payload that follows a 6-byte header is.
        let mut buf = vec![0u8; size + 6];
        group.bench_with_input(
            BenchmarkId::new("apply_mask_unaligned", size),
            &size,
            |b, _| b.iter(|| apply_mask(black_box(&mut buf[6..]), [0x37, 0xfa, 0x21, 0x3d], 0)),
        );
        let mut dest = vec![0u8; size];
        group.bench_with_input(BenchmarkId::new("copy", size), &size, |b, _| {
            b.iter(|| black_box(&mut dest).copy_from_slice(black_box(&source)))
        });
    }
    group.finish();
}

criterion_group!(benches, unmask);
criterion_main!(benches);
