use proptest::prelude::*;

use super::*;

fn parse_all(bytes: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    FrameHeader::parse(bytes)
}

#[test]
fn parses_rfc_example_unmasked_hello() {
    // RFC 6455 5.7: a single-frame unmasked text message.
    let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let (header, n) = parse_all(&bytes).unwrap().unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        header,
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Text,
            mask: None,
            len: 5
        }
    );
}

#[test]
fn parses_rfc_example_masked_hello() {
    let bytes = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let (header, n) = parse_all(&bytes).unwrap().unwrap();
    assert_eq!(n, 6);
    assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
    assert_eq!(header.len, 5);
}

#[test]
fn parses_16_and_64_bit_lengths() {
    // RFC 6455 5.7: 256 bytes binary in a single unmasked frame.
    let (header, n) = parse_all(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
    assert_eq!((header.len, n), (256, 4));
    // 64 KiB binary in a single unmasked frame.
    let bytes = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    let (header, n) = parse_all(&bytes).unwrap().unwrap();
    assert_eq!((header.len, n), (65536, 10));
}

#[test]
fn refuses_64_bit_length_with_top_bit_set() {
    let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(parse_all(&bytes), Err(ProtocolError::InvalidLength));
}

#[test]
fn refuses_reserved_opcodes_from_the_first_byte() {
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        assert_eq!(
            parse_all(&[0x80 | op]),
            Err(ProtocolError::ReservedOpcode(op))
        );
    }
}

#[test]
fn refuses_fragmented_control_frames() {
    for op in [0x8u8, 0x9, 0xa] {
        assert_eq!(parse_all(&[op]), Err(ProtocolError::FragmentedControlFrame));
    }
}

#[test]
fn refuses_control_frames_over_125_bytes() {
    assert_eq!(
        parse_all(&[0x89, 0x7e, 0x00, 0x7e]),
        Err(ProtocolError::ControlFrameTooLong(126))
    );
    assert!(parse_all(&[0x89, 0x7d]).unwrap().is_some());
}

#[test]
fn client_refuses_masked_frame() {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: Some([1, 2, 3, 4]),
        len: 0,
    };
    assert_eq!(
        header.validate(Role::Client, 0, None),
        Err(ProtocolError::MaskedFrame)
    );
    assert_eq!(header.validate(Role::Server, 0, None), Ok(()));
}

#[test]
fn server_refuses_unmasked_frame() {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: None,
        len: 0,
    };
    assert_eq!(
        header.validate(Role::Server, 0, None),
        Err(ProtocolError::UnmaskedFrame)
    );
    assert_eq!(header.validate(Role::Client, 0, None), Ok(()));
}

#[test]
fn refuses_rsv_bits_unless_allowed() {
    let header = FrameHeader {
        fin: true,
        rsv: RSV1,
        opcode: OpCode::Text,
        mask: None,
        len: 0,
    };
    assert_eq!(
        header.validate(Role::Client, 0, None),
        Err(ProtocolError::ReservedBits(RSV1))
    );
    assert_eq!(header.validate(Role::Client, RSV1, None), Ok(()));
    let rsv2 = FrameHeader {
        rsv: RSV2,
        ..header
    };
    assert!(rsv2.validate(Role::Client, RSV1, None).is_err());
}

#[test]
fn refuses_frames_over_the_limit_from_the_header() {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: None,
        len: 1001,
    };
    assert_eq!(
        header.validate(Role::Client, 0, Some(1000)),
        Err(ProtocolError::FrameTooLarge {
            size: 1001,
            max: 1000
        })
    );
}

#[test]
fn encodes_shortest_length_forms() {
    let cases: [(u64, &[u8]); 5] = [
        (0, &[0x82, 0x00]),
        (125, &[0x82, 0x7d]),
        (126, &[0x82, 0x7e, 0x00, 0x7e]),
        (65535, &[0x82, 0x7e, 0xff, 0xff]),
        (65536, &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]),
    ];
    for (len, expected) in cases {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: None,
            len,
        };
        let mut out = Vec::new();
        header.encode(&mut out);
        assert_eq!(out, expected, "len {len}");
        assert_eq!(header.encoded_len(), expected.len());
    }
}

fn arb_header() -> impl Strategy<Value = FrameHeader> {
    let opcode = prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ];
    (
        any::<bool>(),
        0u8..8,
        opcode,
        proptest::option::of(any::<[u8; 4]>()),
        prop_oneof![0u64..=125, 126u64..=0xffff, 0x10000u64..=(u64::MAX >> 1)],
    )
        .prop_map(|(fin, rsv, opcode, mask, len)| {
            let (fin, len) = if opcode.is_control() {
                (true, len % 126)
            } else {
                (fin, len)
            };
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                len,
            }
        })
}

proptest! {
    #[test]
    fn header_encode_then_parse_round_trips(header in arb_header()) {
        let mut out = Vec::new();
        header.encode(&mut out);
        prop_assert_eq!(out.len(), header.encoded_len());
        prop_assert_eq!(FrameHeader::parse(&out), Ok(Some((header, out.len()))));
    }

    #[test]
    fn every_strict_prefix_of_a_header_needs_more(header in arb_header()) {
        let mut out = Vec::new();
        header.encode(&mut out);
        for end in 0..out.len() {
            prop_assert_eq!(FrameHeader::parse(&out[..end]), Ok(None));
        }
    }

    /// The lengths read for sizing the buffer are those of the header parsed later: known
    /// once the length fields are in, before the masking key is.
    #[test]
    fn frame_lengths_are_the_parsed_header_s(header in arb_header(), more in 0usize..8) {
        let mut out = Vec::new();
        header.encode(&mut out);
        out.extend(std::iter::repeat_n(0xaa, more));
        prop_assert_eq!(frame_lengths(&out), Some((header.encoded_len(), header.len)));
        let fields_end = header.encoded_len() - if header.mask.is_some() { 4 } else { 0 };
        for end in 0..out.len() {
            let known = frame_lengths(&out[..end]);
            if end < fields_end {
                prop_assert_eq!(known, None, "{} of {} bytes", end, out.len());
            } else {
                prop_assert_eq!(known, Some((header.encoded_len(), header.len)));
            }
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
        if let Ok(Some((_, n))) = FrameHeader::parse(&bytes) {
            prop_assert!(n <= bytes.len() && n <= MAX_HEADER_LEN);
        }
    }
}
