//! Close codes, Close frame payloads and the record of how a session ended
//! (RFC 6455 sections 5.5.1, 7.1.5, 7.1.6 and 7.4).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{CloseError, Error, ProtocolError};

/// A WebSocket status code (RFC 6455 7.4).
///
/// Any `u16` can be held, because the code *seen by the user* may be one of the reserved
/// values 1005 or 1006 that never travel on the wire. [`CloseCode::from_wire`] checks a
/// received code, [`CloseCode::is_sendable`] checks one we are about to send.
///
/// ```
/// use sockeye_proto::CloseCode;
/// assert!(CloseCode::NORMAL.is_sendable());
/// assert!(!CloseCode::NO_STATUS.is_sendable());
/// assert_eq!(CloseCode::from_wire(4000).unwrap(), CloseCode(4000));
/// assert!(CloseCode::from_wire(1004).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type this endpoint does not accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reserved; the peer's Close frame carried no status code. Never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved; no Close frame was received (the connection was lost). Never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message or frame too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client only) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reserved; the TLS handshake failed. Never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a Close frame on the wire (RFC 6455 7.4.1, 7.4.2 and
    /// the IANA registry): 1000-1003, 1007-1014 and 3000-4999.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether a local `close()` may send this code. The same ranges as
    /// [`is_valid_on_wire`](Self::is_valid_on_wire): 1005, 1006 and 1015 are reserved for
    /// reporting and "MUST NOT be set as a status code in a Close control frame" (7.4.1).
    pub const fn is_sendable(self) -> bool {
        self.is_valid_on_wire()
    }

    /// Checks a code received in a Close frame. Anything outside the valid ranges is a
    /// protocol error (close code 1002).
    pub fn from_wire(code: u16) -> Result<CloseCode, ProtocolError> {
        let code = CloseCode(code);
        if code.is_valid_on_wire() {
            Ok(code)
        } else {
            Err(ProtocolError::InvalidCloseCode(code.0))
        }
    }

    /// The code as a number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure",
            3000..=3999 => "registered",
            4000..=4999 => "private",
            _ => "unassigned",
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// The longest reason that fits a control frame: 125 bytes minus the 2-byte code (5.5).
pub const MAX_REASON_LEN: usize = 123;

/// The content of a Close frame: no payload at all, or a status code and a UTF-8 reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code, or `None` for a Close frame with an empty payload.
    pub code: Option<CloseCode>,
    /// The reason text; always empty when `code` is `None`.
    pub reason: String,
}

impl CloseFrame {
    /// A Close frame with no payload.
    pub fn empty() -> CloseFrame {
        CloseFrame {
            code: None,
            reason: String::new(),
        }
    }

    /// A Close frame to send, checked: the code must be sendable (not 1005, 1006, 1015 nor
    /// out of range) and the reason at most 123 bytes of UTF-8.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Result<CloseFrame, CloseError> {
        let reason = reason.into();
        if !code.is_sendable() {
            return Err(CloseError::InvalidCode(code.0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        Ok(CloseFrame {
            code: Some(code),
            reason,
        })
    }

    /// Parses a received Close payload (5.5.1): empty, or a valid code followed by UTF-8.
    /// One byte is a protocol error (1002), a bad code is 1002, a bad reason is 1007.
    pub fn parse(payload: &[u8]) -> Result<CloseFrame, ProtocolError> {
        match payload {
            [] => Ok(CloseFrame::empty()),
            [_] => Err(ProtocolError::CloseFrameTooShort),
            [hi, lo, reason @ ..] => {
                let code = CloseCode::from_wire(u16::from_be_bytes([*hi, *lo]))?;
                let reason = simdutf8::basic::from_utf8(reason)
                    .map_err(|_| ProtocolError::InvalidCloseReason)?;
                Ok(CloseFrame {
                    code: Some(code),
                    reason: reason.to_owned(),
                })
            }
        }
    }

    /// The payload bytes of this frame.
    pub fn payload(&self) -> Bytes {
        match self.code {
            None => Bytes::new(),
            Some(code) => {
                let mut buf = BytesMut::with_capacity(2 + self.reason.len());
                buf.put_u16(code.0);
                buf.put_slice(self.reason.as_bytes());
                buf.freeze()
            }
        }
    }

    /// The frame we send in reply to this one: the same code (5.5.1 "echoes the status
    /// code it received"), no reason; an empty frame if this one had no code.
    pub fn reply(&self) -> CloseFrame {
        CloseFrame {
            code: self.code,
            reason: String::new(),
        }
    }
}

/// Who started the closing handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This endpoint sent the first Close frame (or failed the connection).
    Local,
    /// The peer's Close frame arrived before we sent one.
    Remote,
    /// Nobody: the connection was lost or timed out without a Close frame.
    Abnormal,
}

/// How a session ended: what the user is told, once (RFC 6455 7.1.4-7.1.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The WebSocket Connection Close Code: the code of the first Close frame received,
    /// 1005 if it carried none, 1006 if no Close frame was received.
    pub code: CloseCode,
    /// The WebSocket Connection Close Reason: the reason of the first Close frame received,
    /// or "".
    pub reason: String,
    /// The Close frame this endpoint sent (or will send as the very next frame, for a
    /// reply to a remotely initiated close), if any.
    pub sent: Option<CloseFrame>,
    /// The Close frame this endpoint received, if any.
    pub received: Option<CloseFrame>,
    /// Who started the closing handshake.
    pub initiator: Initiator,
    /// Whether the closing handshake completed (a Close frame sent and one received) and
    /// the connection was not failed (7.1.4).
    pub clean: bool,
    /// The error that failed the connection, if one did.
    pub error: Option<Error>,
}

impl CloseInfo {
    /// Builds the record from the frames exchanged and the failure, if any, applying the
    /// 1005/1006 rules of 7.1.5 and 7.1.6 in this one place.
    pub(crate) fn new(
        sent: Option<CloseFrame>,
        received: Option<CloseFrame>,
        initiator: Initiator,
        error: Option<Error>,
    ) -> CloseInfo {
        let (code, reason) = match &received {
            Some(frame) => (
                frame.code.unwrap_or(CloseCode::NO_STATUS),
                frame.reason.clone(),
            ),
            None => (CloseCode::ABNORMAL, String::new()),
        };
        let clean = sent.is_some() && received.is_some() && error.is_none();
        CloseInfo {
            code,
            reason,
            sent,
            received,
            initiator,
            clean,
            error,
        }
    }
}

impl CloseInfo {
    /// The outcome of a session that ended without any Close frame because of `error`
    /// (a lost transport, a failed connection attempt): 1006, not clean (7.1.5, 7.1.4).
    pub fn abnormal(error: Error) -> CloseInfo {
        CloseInfo::new(None, None, Initiator::Abnormal, Some(error))
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "code {} reason {:?} clean {}",
            self.code, self.reason, self.clean
        )?;
        if let Some(error) = &self.error {
            write!(f, " error: {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ranges_follow_section_7_4() {
        for code in 0..=u16::MAX {
            let valid = CloseCode::from_wire(code).is_ok();
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(valid, expected, "code {code}");
        }
    }

    #[test]
    fn reserved_codes_are_not_sendable() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert_eq!(
                CloseFrame::new(CloseCode(code), ""),
                Err(CloseError::InvalidCode(code)),
                "{code}"
            );
        }
        assert!(CloseFrame::new(CloseCode(4999), "").is_ok());
    }

    #[test]
    fn reason_longer_than_123_bytes_is_refused() {
        assert!(CloseFrame::new(CloseCode::NORMAL, "a".repeat(123)).is_ok());
        assert_eq!(
            CloseFrame::new(CloseCode::NORMAL, "a".repeat(124)),
            Err(CloseError::ReasonTooLong(124))
        );
    }

    #[test]
    fn one_byte_close_payload_is_a_protocol_error() {
        let err = CloseFrame::parse(&[0x03]).unwrap_err();
        assert_eq!(err, ProtocolError::CloseFrameTooShort);
        assert_eq!(CloseCode::from(&err), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn invalid_utf8_reason_is_1007() {
        let err = CloseFrame::parse(&[0x03, 0xe8, 0xff]).unwrap_err();
        assert_eq!(CloseCode::from(&err), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn invalid_code_is_1002() {
        let err = CloseFrame::parse(&[0x03, 0xed]).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCloseCode(1005));
        assert_eq!(CloseCode::from(&err), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn payload_round_trips() {
        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "bye ✓").unwrap();
        assert_eq!(&frame.payload()[..2], &[0x03, 0xe9]);
        assert_eq!(CloseFrame::parse(&frame.payload()).unwrap(), frame);
        assert_eq!(CloseFrame::parse(&[]).unwrap(), CloseFrame::empty());
        assert!(CloseFrame::empty().payload().is_empty());
    }

    #[test]
    fn info_uses_1005_and_1006() {
        let no_code = CloseInfo::new(
            Some(CloseFrame::empty()),
            Some(CloseFrame::empty()),
            Initiator::Local,
            None,
        );
        assert_eq!(no_code.code, CloseCode::NO_STATUS);
        assert!(no_code.clean);
        let lost = CloseInfo::new(None, None, Initiator::Abnormal, None);
        assert_eq!(lost.code, CloseCode::ABNORMAL);
        assert!(!lost.clean);
        let failed = CloseInfo::abnormal(Error::ConnectionLost);
        assert_eq!(
            (failed.code, failed.initiator, failed.clean),
            (CloseCode::ABNORMAL, Initiator::Abnormal, false)
        );
        assert_eq!(failed.error, Some(Error::ConnectionLost));
    }
}
