//! Errors of the protocol core, and the one mapping from a protocol error to the close code
//! the peer is sent (RFC 6455 7.4.1).

use crate::close::CloseCode;
pub use crate::handshake::HandshakeError;

/// A violation of RFC 6455 by the peer, detected while reading frames. Each one fails the
/// connection (7.1.7) with the close code given by `CloseCode::from(&error)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1-3 set without an extension that defines them (5.2). Close code 1002.
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// An opcode reserved for future use (5.2). Close code 1002.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame with FIN clear (5.5). Close code 1002.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (5.5). Close code 1002.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// A 64-bit payload length with its most significant bit set (5.2). Close code 1002.
    #[error("64-bit payload length with the most significant bit set")]
    InvalidLength,
    /// A client frame without a mask (5.1): the server must close. Close code 1002.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server frame with a mask (5.1): the client must close. Close code 1002.
    #[error("server frame is masked")]
    MaskedFrame,
    /// A continuation frame with no message in progress (5.4). Close code 1002.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress (5.4).
    /// Close code 1002.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A Close frame with a 1-byte payload (5.5.1). Close code 1002.
    #[error("close frame payload of 1 byte")]
    CloseFrameTooShort,
    /// A Close frame with a status code that may not be sent (7.4). Close code 1002.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A Close frame whose reason is not UTF-8 (5.5.1). Close code 1007.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A text message that is not valid UTF-8 (8.1). Close code 1007.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// RSV1 set on a control frame while permessage-deflate is in use: control frames are
    /// never compressed (RFC 7692 6.1). Close code 1002.
    #[error("RSV1 (compressed) set on a control frame")]
    CompressedControlFrame,
    /// RSV1 set on a continuation frame while permessage-deflate is in use: only the first
    /// frame of a message says it is compressed (RFC 7692 6.1). Close code 1002.
    #[error("RSV1 (compressed) set on a continuation frame")]
    CompressedContinuation,
    /// A compressed message whose payload is not valid DEFLATE data (RFC 7692 7.2.2).
    /// Close code 1002.
    #[error("compressed message is not valid DEFLATE data")]
    InvalidCompressedData,
    /// A frame whose declared length exceeds the configured maximum, refused from the
    /// header before its payload is read. Close code 1009.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The declared payload length.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A message that would exceed the configured maximum, refused as soon as the frame
    /// header that crosses the limit is seen, or, for a compressed message, as soon as its
    /// inflated size passes the limit. Close code 1009.
    #[error("message of at least {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The message size once this frame is added.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
}

impl From<&ProtocolError> for CloseCode {
    /// The close code sent when failing the connection for this error: the single place
    /// where that decision is made.
    fn from(error: &ProtocolError) -> CloseCode {
        use ProtocolError::*;
        match error {
            ReservedBits(_)
            | ReservedOpcode(_)
            | FragmentedControlFrame
            | ControlFrameTooLong(_)
            | InvalidLength
            | UnmaskedFrame
            | MaskedFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseFrameTooShort
            | InvalidCloseCode(_)
            | CompressedControlFrame
            | CompressedContinuation
            | InvalidCompressedData => CloseCode::PROTOCOL_ERROR,
            InvalidCloseReason | InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            FrameTooLarge { .. } | MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
        }
    }
}

/// Why a session failed: the `error` of a [`CloseInfo`](crate::CloseInfo).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the framing rules; we sent the Close code mapped from it.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The opening handshake failed; no WebSocket connection was established.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// Server: the application refused the handshake with this HTTP status.
    #[error("handshake refused with HTTP status {status}")]
    Rejected {
        /// The status sent.
        status: u16,
    },
    /// The opening handshake did not finish before the handshake timeout.
    #[error("opening handshake timed out")]
    HandshakeTimeout,
    /// The peer did not finish the closing handshake before the close timeout.
    #[error("closing handshake timed out")]
    CloseTimeout,
    /// No Pong arrived before the keepalive deadline; we sent Close 1011.
    #[error("keepalive ping timed out")]
    KeepaliveTimeout,
    /// An automatic answer (the Pong to a Ping, a keepalive Ping) would have taken the
    /// queued output past [`Config::max_write_buffer`](crate::Config::max_write_buffer):
    /// the peer makes us write but does not read. We sent Close 1008 Policy Violation.
    #[error("output of {queued} bytes not taken by the peer reached the limit of {max} bytes")]
    WriteBufferFull {
        /// Bytes of output queued and not yet written when the limit was reached.
        queued: usize,
        /// The configured limit.
        max: usize,
    },
    /// The transport ended without a Close frame from the peer (7.2.1).
    #[error("connection lost without a close frame")]
    ConnectionLost,
    /// The transport failed; the text is the I/O layer's description.
    #[error("transport error: {0}")]
    Transport(String),
    /// The application failed the connection with this code and reason.
    #[error("failed by the application with {code}: {reason:?}")]
    Application {
        /// The code sent to the peer.
        code: CloseCode,
        /// The reason sent to the peer.
        reason: String,
    },
}

impl Error {
    /// The close code this endpoint sends when failing the connection for this error, if a
    /// Close frame is sent at all.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(e) => Some(CloseCode::from(e)),
            Error::KeepaliveTimeout => Some(CloseCode::INTERNAL_ERROR),
            Error::WriteBufferFull { .. } => Some(CloseCode::POLICY_VIOLATION),
            Error::Application { code, .. } => Some(*code),
            Error::Handshake(_)
            | Error::Rejected { .. }
            | Error::HandshakeTimeout
            | Error::CloseTimeout
            | Error::ConnectionLost
            | Error::Transport(_) => None,
        }
    }
}

/// A local `close()` that cannot be carried out as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// The code is reserved (1005, 1006, 1015) or outside the valid ranges (7.4).
    #[error("close code {0} may not be sent (valid: 1000-1003, 1007-1014, 3000-4999)")]
    InvalidCode(u16),
    /// The reason is longer than the 123 bytes a control frame leaves for it (5.5).
    #[error("close reason of {0} bytes exceeds 123 bytes")]
    ReasonTooLong(usize),
}

/// A message that cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The opening handshake has not completed yet.
    #[error("the connection is not open yet")]
    NotOpen,
    /// A Close frame was already sent: no data may follow it (5.5.1).
    #[error("the connection is closing")]
    Closing,
    /// The session is closed.
    #[error("the connection is closed")]
    Closed,
    /// A Ping or Pong payload over 125 bytes (5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(usize),
    /// A data message (or the first fragment of one) while a message sent in fragments
    /// ([`Connection::send_fragment`](crate::Connection::send_fragment)) has not had its
    /// last one: 5.4 does not let two messages' fragments interleave. Nothing was queued;
    /// send the last fragment first.
    #[error("a message sent in fragments is unfinished")]
    UnfinishedMessage,
    /// Queuing this message would take the output not yet written past
    /// [`Config::max_write_buffer`](crate::Config::max_write_buffer). Nothing was queued
    /// and the connection stays open: retry once the peer has read more, or send less.
    #[error(
        "a frame of {size} bytes does not fit the output buffer ({queued} of {max} bytes queued)"
    )]
    WriteBufferFull {
        /// Bytes the message takes on the wire, header included.
        size: usize,
        /// Bytes of output queued and not yet written.
        queued: usize,
        /// The configured limit.
        max: usize,
    },
}
