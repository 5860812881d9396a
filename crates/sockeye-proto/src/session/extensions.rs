//! permessage-deflate (RFC 7692) in the session: the negotiation at the opening handshake,
//! RSV1, the compression of outgoing messages and the bounded inflation of incoming ones.

use std::time::Instant;

use bytes::Bytes;

use super::{Connection, Partial, truncate_at_char_boundary};
use crate::close::{CloseCode, CloseFrame, MAX_REASON_LEN};
use crate::error::{Error, HandshakeError, ProtocolError};
use crate::extension::deflate::{self, EXTENSION_NAME, PerMessageDeflate};
use crate::extension::{DeflateParams, NegotiationError};
use crate::frame::{FrameHeader, OpCode, RSV1};
use crate::handshake::{Accept, Request};

impl Connection {
    /// The permessage-deflate parameters agreed in the opening handshake, or `None` when
    /// the session runs without the extension.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_deref().map(PerMessageDeflate::params)
    }

    /// Client: adds the offer of [`Config::deflate`](crate::Config::deflate) to the
    /// request, unless the application wrote permessage-deflate offers of its own.
    pub(super) fn offer_extensions(&mut self) {
        if !self.config.deflate.enabled {
            return;
        }
        let Some(request) = self.client_request.as_mut() else {
            return;
        };
        if !request.extensions.iter().any(|e| deflate::is_deflate(e)) {
            request.extensions.push(self.config.deflate.offer());
        }
    }

    /// Server: the permessage-deflate agreement for `accept`. A response the application
    /// wrote itself is checked against the client's offers; otherwise, when the extension
    /// is enabled, the first acceptable offer is answered and the response added to
    /// `accept`. Nothing else changes, so a refused `accept` has no effect.
    pub(super) fn agree_as_server(
        &self,
        request: &Request,
        accept: &mut Accept,
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        let written: Vec<&String> = accept
            .extensions
            .iter()
            .filter(|e| deflate::is_deflate(e))
            .collect();
        match written.as_slice() {
            [] if self.config.deflate.enabled => {
                let params = deflate::select(&self.config.deflate, &request.extensions);
                if let Some(params) = params {
                    accept.extensions.push(params.to_string());
                }
                Ok(params)
            }
            [] => Ok(None),
            [response] => agreement(&request.extensions, response).map(Some),
            [_, again, ..] => Err(HandshakeError::ExtensionResponse {
                response: (*again).clone(),
                error: NegotiationError::DuplicateExtension(EXTENSION_NAME),
            }),
        }
    }

    /// Client: the permessage-deflate agreement that the server's 101 makes with our
    /// offers (RFC 7692 5): at most one response, valid, answering one of them.
    pub(super) fn agree_as_client(&self) -> Result<Option<DeflateParams>, HandshakeError> {
        let (Some(response), Some(request)) = (&self.response, &self.client_request) else {
            return Ok(None);
        };
        let answers: Vec<&String> = response
            .extensions
            .iter()
            .filter(|e| deflate::is_deflate(e))
            .collect();
        match answers.as_slice() {
            [] => Ok(None),
            [answer] => agreement(&request.extensions, answer).map(Some),
            [_, again, ..] => Err(HandshakeError::ExtensionResponse {
                response: (*again).clone(),
                error: NegotiationError::DuplicateExtension(EXTENSION_NAME),
            }),
        }
    }

    /// Puts an agreement in force: the extension claims RSV1 (RFC 7692 6).
    pub(super) fn start_deflate(&mut self, params: Option<DeflateParams>) {
        if let Some(params) = params {
            self.deflate = Some(Box::new(PerMessageDeflate::new(
                self.role,
                params,
                &self.config.deflate,
            )));
            self.allowed_rsv |= RSV1;
        }
    }

    /// Client: fails the connection over an extension response it cannot accept (RFC 6455
    /// 4.1, RFC 7692 5): Close 1010 with the reason, then no more reading and the transport
    /// closed, as for any failure.
    pub(super) fn refuse_extensions(&mut self, error: HandshakeError, now: Instant) {
        let mut reason = error.to_string();
        truncate_at_char_boundary(&mut reason, MAX_REASON_LEN);
        self.queue_close_frame(CloseFrame {
            code: Some(CloseCode::MANDATORY_EXTENSION),
            reason,
        });
        self.fail_with(Error::Handshake(error), now);
    }

    /// The reserved bits and payload of an outgoing frame: a Text or Binary message is
    /// compressed, with RSV1, when the extension is in use and the message is long enough.
    /// RFC 7692 6.1: control frames are never compressed.
    pub(super) fn encode_payload(&mut self, opcode: OpCode, payload: Bytes) -> (u8, Bytes) {
        if opcode.is_control() {
            return (0, payload);
        }
        match self.deflate.as_mut().and_then(|d| d.compress(&payload)) {
            Some(compressed) => (RSV1, compressed),
            None => (0, payload),
        }
    }

    /// Whether a frame starts a compressed message: RSV1 on a Text or Binary frame. RSV1
    /// passed [`FrameHeader::validate`] only if the extension is in use.
    pub(super) fn starts_compressed(&self, header: &FrameHeader) -> Result<bool, ProtocolError> {
        if header.rsv & RSV1 == 0 {
            return Ok(false);
        }
        deflate::check_rsv1(header.opcode)?;
        Ok(true)
    }
}

/// Inflates a piece of a compressed message into its buffer, within the message size
/// limit, and checks the text it yields as it comes out (RFC 6455 8.1: fail fast).
pub(super) fn inflate(
    deflate: &mut Option<Box<PerMessageDeflate>>,
    partial: &mut Partial,
    chunk: &[u8],
    max: Option<u64>,
    end: bool,
) -> Result<(), ProtocolError> {
    let Some(deflate) = deflate.as_mut() else {
        // RSV1 is only accepted with the extension in use.
        return Err(ProtocolError::ReservedBits(RSV1));
    };
    let before = partial.inflated.len();
    deflate.inflate(chunk, &mut partial.inflated, max, end)?;
    if partial.text {
        partial
            .utf8
            .feed(&partial.inflated[before..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

fn agreement(offers: &[String], response: &str) -> Result<DeflateParams, HandshakeError> {
    deflate::agree(offers, response).map_err(|error| HandshakeError::ExtensionResponse {
        response: response.to_owned(),
        error,
    })
}
