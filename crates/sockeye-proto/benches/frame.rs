//! Frame header parsing: the three length encodings, masked (as a server reads them) and
//! unmasked (as a client does).

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sockeye_proto::frame::{FrameHeader, OpCode};

fn encoded(len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask,
        len,
    };
    let mut out = Vec::new();
    header.encode(&mut out);
    out
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header_parse");
    let key = Some([1, 2, 3, 4]);
    let cases = [
        ("7bit_unmasked", encoded(20, None)),
        ("7bit_masked", encoded(20, key)),
        ("16bit_masked", encoded(16 * 1024, key)),
        ("64bit_masked", encoded(1 << 20, key)),
    ];
    for (name, bytes) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| FrameHeader::parse(black_box(bytes)).unwrap().unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
