//! The frame header parser (`FrameHeader::parse`) and the session checks
//! (`FrameHeader::validate`) on arbitrary bytes.
//!
//! Input: one byte choosing the `validate` arguments (bit 0 the receiving role, bits 1-3
//! the reserved bits an extension allows, bits 4-5 the frame size limit), then the bytes
//! given to the parser.
//!
//! Beyond "no panic", it checks the parser's contract: an incomplete header stays
//! incomplete for every shorter prefix, a complete one is decided by its own bytes only,
//! an error stays the same error whatever follows, headers round-trip through `encode`,
//! the control-frame and length rules of RFC 6455 5.2 and 5.5 hold for every accepted
//! header, and `validate` refuses exactly the headers that break one of its rules.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockeye_proto::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use sockeye_proto::{ProtocolError, Role};

fn check(selector: u8, buf: &[u8]) {
    let parsed = FrameHeader::parse(buf);
    match &parsed {
        Ok(None) => {
            assert!(
                buf.len() < MAX_HEADER_LEN,
                "{} bytes and still incomplete",
                buf.len()
            );
            for k in 0..buf.len() {
                assert_eq!(
                    FrameHeader::parse(&buf[..k]),
                    Ok(None),
                    "prefix of {k} bytes"
                );
            }
        }
        Ok(Some((header, consumed))) => {
            let consumed = *consumed;
            check_header(header, consumed, buf);
            check_validate(selector, header);
        }
        Err(error) => {
            assert!(
                matches!(
                    error,
                    ProtocolError::ReservedOpcode(_)
                        | ProtocolError::FragmentedControlFrame
                        | ProtocolError::InvalidLength
                        | ProtocolError::ControlFrameTooLong(_)
                ),
                "parse raised a session-level error: {error:?}"
            );
            // The error is decided by the bytes already seen: more bytes change nothing.
            let mut longer = buf.to_vec();
            longer.extend_from_slice(&[0xff; MAX_HEADER_LEN]);
            assert_eq!(FrameHeader::parse(&longer), parsed);
        }
    }
}

fn check_header(header: &FrameHeader, consumed: usize, buf: &[u8]) {
    // The header length follows from the second byte alone (5.2).
    let b1 = buf[1];
    let extended = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    assert_eq!(consumed, 2 + extended + mask);
    assert_eq!(header.mask.is_some(), mask == 4);
    if let Some(key) = header.mask {
        assert_eq!(&key[..], &buf[2 + extended..consumed]);
    }
    assert_eq!(header.fin, buf[0] & 0x80 != 0);
    assert_eq!(header.rsv, (buf[0] >> 4) & 0b111);
    assert_eq!(header.opcode.as_u8(), buf[0] & 0x0f);

    // Every shorter prefix is incomplete; the bytes after the header do not matter.
    for k in 0..consumed {
        assert_eq!(
            FrameHeader::parse(&buf[..k]),
            Ok(None),
            "prefix of {k} bytes"
        );
    }
    assert_eq!(
        FrameHeader::parse(&buf[..consumed]),
        Ok(Some((*header, consumed)))
    );

    // 5.2: the most significant bit of a 64-bit length is 0.
    assert_eq!(header.len >> 63, 0);
    // 5.5: control frames are final and carry at most 125 bytes.
    if header.opcode.is_control() {
        assert!(header.fin, "a fragmented control frame was accepted");
        assert!(
            header.len <= MAX_CONTROL_PAYLOAD as u64,
            "an oversized control frame was accepted"
        );
    }

    // Round trip: the encoding is minimal, parses back to the same header, and equals the
    // input when the input was minimal.
    let mut encoded = Vec::new();
    header.encode(&mut encoded);
    assert_eq!(encoded.len(), header.encoded_len());
    assert!(encoded.len() <= consumed);
    assert_eq!(
        FrameHeader::parse(&encoded),
        Ok(Some((*header, encoded.len())))
    );
    if encoded.len() == consumed {
        assert_eq!(encoded, &buf[..consumed]);
    }
}

fn check_validate(selector: u8, header: &FrameHeader) {
    let role = if selector & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let allowed_rsv = (selector >> 1) & 0b111;
    let max_frame_size = match (selector >> 4) & 0b11 {
        0 => None,
        1 => Some(0),
        2 => Some(125),
        _ => Some(1 << 16),
    };
    let mask_ok = match role {
        Role::Server => header.mask.is_some(),
        Role::Client => header.mask.is_none(),
    };
    let rsv_ok = header.rsv & !allowed_rsv == 0;
    let size_ok = max_frame_size.is_none_or(|max| header.len <= max);
    match header.validate(role, allowed_rsv, max_frame_size) {
        Ok(()) => assert!(mask_ok && rsv_ok && size_ok, "{header:?} passed validate"),
        Err(ProtocolError::UnmaskedFrame) => assert!(role == Role::Server && !mask_ok),
        Err(ProtocolError::MaskedFrame) => assert!(role == Role::Client && !mask_ok),
        Err(ProtocolError::ReservedBits(bits)) => {
            assert!(mask_ok && !rsv_ok);
            assert_eq!(bits, header.rsv);
        }
        Err(ProtocolError::FrameTooLarge { size, max }) => {
            assert!(mask_ok && rsv_ok && !size_ok);
            assert_eq!((Some(max), size), (max_frame_size, header.len));
        }
        Err(other) => panic!("validate raised {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, buf)) = data.split_first() {
        check(selector, buf);
    }
});
