//! The frame layer (RFC 6455 5.2-5.7): opcodes, frame headers, their encoding and their
//! incremental decoding.

use bytes::BufMut;

use crate::Role;
use crate::error::ProtocolError;

/// Largest payload of a control frame (5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest encoded header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode (5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the low nibble of the first header byte; 0x3-0x7 and 0xB-0xF are reserved
    /// and refused (5.2).
    pub fn from_u8(value: u8) -> Result<OpCode, ProtocolError> {
        Ok(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames have opcodes with the high bit set (5.5).
    pub const fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// RSV1, as it sits in the `rsv` field of a [`FrameHeader`].
pub const RSV1: u8 = 0b100;
/// RSV2.
pub const RSV2: u8 = 0b010;
/// RSV3.
pub const RSV3: u8 = 0b001;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// The three reserved bits, RSV1 as `0b100` down to RSV3 as `0b001`.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`. `Ok(None)` means more bytes are needed;
    /// works for any split of the input. Refuses what can be refused without knowing the
    /// session: reserved opcodes, fragmented or oversized control frames, and a 64-bit
    /// length with its most significant bit set.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0b111;
        let opcode = OpCode::from_u8(b0 & 0x0f)?;
        // 5.5: "All control frames MUST have a payload length of 125 bytes or less and
        // MUST NOT be fragmented."
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some((len, header_len, masked)) = length_fields(buf) else {
            return Ok(None);
        };
        // 5.2: "the most significant bit MUST be 0".
        if len >> 63 != 0 {
            return Err(ProtocolError::InvalidLength);
        }
        if opcode.is_control() && len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolError::ControlFrameTooLong(len));
        }
        let mask = if masked {
            // The key is the header's last four bytes.
            match buf.get(..header_len).and_then(<[u8]>::last_chunk) {
                Some(&key) => Some(key),
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                len,
            },
            header_len,
        )))
    }

    /// Checks the rules that depend on the session: the masking direction (5.1), the
    /// reserved bits an extension may claim (5.2) and the frame size limit.
    pub fn validate(
        &self,
        role: Role,
        allowed_rsv: u8,
        max_frame_size: Option<u64>,
    ) -> Result<(), ProtocolError> {
        match (role, self.mask.is_some()) {
            // 5.1: "a server MUST close the connection upon receiving a frame that is
            // not masked".
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            // 5.1: "a client MUST close a connection if it detects a masked frame".
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // 5.2: RSV bits "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values".
        if self.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(self.rsv));
        }
        if let Some(max) = max_frame_size
            && self.len > max
        {
            return Err(ProtocolError::FrameTooLarge {
                size: self.len,
                max,
            });
        }
        Ok(())
    }

    /// Number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header, with the length in its shortest form (5.2: "the minimal number
    /// of bytes MUST be used to encode the length").
    pub fn encode(&self, out: &mut impl BufMut) {
        let (bytes, len) = self.encode_on_stack();
        out.put_slice(&bytes[..len]);
    }

    /// The encoded header in a fixed array, and how many of its bytes are used: built on
    /// the stack and appended in one piece, rather than byte by byte into the buffer.
    fn encode_on_stack(self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        bytes[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.len {
            len @ 0..=125 => {
                bytes[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xffff => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            bytes[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        (bytes, at)
    }
}

/// The length fields of a frame header (5.2) at the start of `buf`: the payload length,
/// the header's length (with the 4-byte masking key of a masked frame) and whether the
/// frame is masked; `None` until `buf` holds the length fields (the key may be yet to
/// come). Nothing else of the header is checked.
#[inline]
fn length_fields(buf: &[u8]) -> Option<(u64, usize, bool)> {
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (len, fields_len) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(*buf.get(2..4)?.first_chunk()?)),
            4,
        ),
        127 => (u64::from_be_bytes(*buf.get(2..10)?.first_chunk()?), 10),
        short => (u64::from(short), 2),
    };
    let key_len = if masked { 4 } else { 0 };
    Some((len, fields_len + key_len, masked))
}

/// The lengths of the frame whose header begins `buf`: its header's and its payload's,
/// once the header's length fields have arrived; for sizing the buffer a frame is read
/// into, before the header is parsed and checked.
pub fn frame_lengths(buf: &[u8]) -> Option<(usize, u64)> {
    let (len, header_len, _) = length_fields(buf)?;
    Some((header_len, len))
}

#[cfg(test)]
mod tests;
