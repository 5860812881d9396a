//! permessage-deflate (RFC 7692): its negotiation in both roles, and the compression and
//! bounded decompression of messages.
//!
//! # Negotiation
//!
//! A client with [`DeflateConfig::enabled`] offers `permessage-deflate` with the parameters
//! of its [`DeflateConfig`] ([`DeflateConfig::offer`]); several offers may be written by
//! hand in [`ClientRequest::extensions`](crate::handshake::ClientRequest::extensions), in
//! order of preference. The client checks the server's response against its offers and
//! fails the connection with 1010 if the response is malformed, has an unknown or
//! duplicate parameter or an invalid value, or does not grant what every offer asked for.
//!
//! A server with [`DeflateConfig::enabled`] answers the first offer it can accept and
//! declines the others (RFC 7692 5): an offer with an unknown parameter, a duplicate
//! parameter or an invalid value is declined and the next one considered; when none is
//! left the session runs without the extension. Every valid offer can be accepted.
//!
//! | Parameter | In our offer (client) | In an offer we receive (server) |
//! |---|---|---|
//! | `server_no_context_takeover` | `server_no_context_takeover: true`; the response must grant it | granted: our compressor is reset after every message |
//! | `client_no_context_takeover` | `client_no_context_takeover: true`: we reset our compressor after every message | echoed; also sent when our `client_no_context_takeover` is set |
//! | `server_max_window_bits=N` | `server_max_window_bits: Some(N)`; the response must give at most N | answered with `min(N, ours)`: we compress with that window |
//! | `client_max_window_bits[=N]` | always sent (bare, or `=N` with `client_max_window_bits: Some(N)`): we can honour any value the server sets | answered with our `client_max_window_bits`, capped by N, when set |
//!
//! A server may include `server_no_context_takeover`, `client_no_context_takeover` and
//! `server_max_window_bits` in its response unasked; the client accepts that.
//!
//! # Window sizes
//!
//! The DEFLATE implementation (zlib's algorithm) cannot compress with a window of
//! 2^8 bytes. Whenever the agreement limits our compressor to 8 bits, we agree and send every
//! message uncompressed (RSV1 clear), which RFC 7692 6 allows; our peer still compresses
//! toward us. Our decompressor always uses a 2^15-byte window, which inflates what any
//! smaller window produced (RFC 7692 7.1.2: a larger window than the peer's is fine), so
//! no value a peer announces can make us fail.
//!
//! # Memory
//!
//! The compressor and the decompressor are created at the first message that needs them,
//! so a session that negotiated the extension but sends and receives only small messages
//! pays nothing. A decompressor holds a 32 KiB window and its state (about 40 KiB); a
//! compressor about `2^(bits+2) + 128 KiB` (some 256 KiB at the default 15 bits, 130 KiB at 9).
//! A compressed message is inflated as its bytes arrive into a buffer that never grows past
//! [`Config::max_message_size`](crate::Config::max_message_size): a "compression bomb" fails
//! with 1009 as soon as its output passes the limit.

use std::fmt;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tracing::debug;

use super::{Element, NegotiationError, element_name, parse_element};
use crate::Role;
use crate::error::ProtocolError;
use crate::frame::OpCode;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Messages shorter than this are sent uncompressed by default: below it a deflated payload
/// rarely saves more than a few bytes, and costs a call into the compressor.
pub const DEFAULT_THRESHOLD: usize = 64;

/// The default compression level: zlib's default trade-off between speed and size.
pub const DEFAULT_LEVEL: u32 = 6;

/// The empty stored block a sync flush ends with: removed from every compressed message by
/// the sender and appended again by the receiver (RFC 7692 7.2.1, 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The window size when none is agreed (RFC 7692 7.1.2).
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window size a peer may ask for (RFC 7692 7.1.2).
const MIN_WINDOW_BITS: u8 = 8;
/// The smallest window our compressor supports.
const MIN_COMPRESS_WINDOW_BITS: u8 = 9;

/// The smallest step by which an inflated message's buffer grows.
const MIN_INFLATE_STEP: usize = 4096;

/// What permessage-deflate to negotiate, and how to compress. Part of
/// [`Config`](crate::Config); off by default.
///
/// The parameters mean what RFC 7692 7.1 says for the role of the session: a client puts
/// them in its offer, a server in its response (see the [module documentation](self) for
/// the whole table). Window sizes are in bits, 8 to 15; a value outside is taken as the
/// nearest bound.
///
/// ```
/// use sockeye_proto::Config;
/// use sockeye_proto::extension::DeflateConfig;
///
/// let config = Config {
///     deflate: DeflateConfig {
///         client_no_context_takeover: true,
///         ..DeflateConfig::enabled()
///     },
///     ..Config::default()
/// };
/// assert_eq!(
///     config.deflate.offer(),
///     "permessage-deflate; client_no_context_takeover; client_max_window_bits"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Negotiate the extension: a client offers it, a server accepts the first acceptable
    /// offer. Default `false`.
    pub enabled: bool,
    /// Client: ask the server to compress each message on its own (less memory for our
    /// decompressor between messages); the response must grant it. Server: compress each
    /// message on its own, and say so, even when not asked.
    pub server_no_context_takeover: bool,
    /// Client: compress each message on its own, and say so in the offer. Server: ask the
    /// client to compress each message on its own.
    pub client_no_context_takeover: bool,
    /// Client: ask the server to compress with a window of at most 2^N bytes; the response
    /// must grant it. Server: compress with at most 2^N bytes, and say so.
    pub server_max_window_bits: Option<u8>,
    /// Client: compress with a window of at most 2^N bytes, and say so in the offer.
    /// Server: ask the client to compress with at most 2^N bytes, when its offer allows it
    /// (it includes `client_max_window_bits`); otherwise the client may use 2^15.
    pub client_max_window_bits: Option<u8>,
    /// Text and Binary messages shorter than this many bytes are sent uncompressed.
    /// Default [`DEFAULT_THRESHOLD`] (64).
    pub threshold: usize,
    /// Compression level, 0 to 9: 1 is fastest, 9 smallest, 0 stores without compressing.
    /// Default [`DEFAULT_LEVEL`] (6).
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: false,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            threshold: DEFAULT_THRESHOLD,
            level: DEFAULT_LEVEL,
        }
    }
}

impl DeflateConfig {
    /// The extension enabled, with default parameters: no constraint asked of the peer,
    /// 15-bit windows, context takeover in both directions.
    pub fn enabled() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        }
    }

    /// The offer a client sends for this configuration (RFC 7692 7.1). It always includes
    /// `client_max_window_bits`: whatever value the server sets, we can honour it.
    pub fn offer(&self) -> String {
        let mut offer = EXTENSION_NAME.to_owned();
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            offer.push_str(&format!("; server_max_window_bits={}", clamp_bits(bits)));
        }
        match self.client_max_window_bits {
            Some(bits) => offer.push_str(&format!("; client_max_window_bits={}", clamp_bits(bits))),
            None => offer.push_str("; client_max_window_bits"),
        }
        offer
    }

    /// Server: the response to one valid offer.
    fn answer(&self, offer: &Offer) -> DeflateParams {
        let mine = |bits: Option<u8>| bits.map(clamp_bits);
        // 7.1.2.1: at most what the client asked for; or our own limit, unasked.
        let server_max_window_bits = match (
            offer.server_max_window_bits,
            mine(self.server_max_window_bits),
        ) {
            (Some(asked), Some(ours)) => Some(asked.min(ours)),
            (Some(asked), None) => Some(asked),
            (None, Some(ours)) if ours < MAX_WINDOW_BITS => Some(ours),
            (None, _) => None,
        };
        // 7.1.2.2: only if the offer has the parameter, and no more than its value.
        let client_max_window_bits = match (
            offer.client_max_window_bits,
            mine(self.client_max_window_bits),
        ) {
            (Some(hint), Some(ours)) => Some(hint.map_or(ours, |hint| hint.min(ours))),
            _ => None,
        };
        DeflateParams {
            // 7.1.1.1: granted when asked; may be sent unasked.
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            // 7.1.1.2: the client's hint is confirmed; may be sent unasked.
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        }
    }
}

/// The parameters agreed in the handshake: for a server the response it sent; for a client
/// the server's response together with the limits the client announced in its own offer.
/// `None` window sizes mean 15 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server compresses each message on its own.
    pub server_no_context_takeover: bool,
    /// The client compresses each message on its own.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with, in bits.
    pub server_max_window_bits: Option<u8>,
    /// The largest window the client compresses with, in bits.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The parameters one role compresses with: whether it resets its compressor after
    /// each message, and its largest window in bits.
    pub(crate) fn of(&self, role: Role) -> (bool, u8) {
        match role {
            Role::Server => (
                self.server_no_context_takeover,
                self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            ),
            Role::Client => (
                self.client_no_context_takeover,
                self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            ),
        }
    }
}

impl fmt::Display for DeflateParams {
    /// The `Sec-WebSocket-Extensions` element for these parameters, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_max_window_bits=10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

/// A parsed offer (RFC 7692 7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `None`: absent; `Some(None)`: without a value; `Some(Some(n))`: with one.
    client_max_window_bits: Option<Option<u8>>,
}

/// Whether an extension list element names permessage-deflate.
pub(crate) fn is_deflate(element: &str) -> bool {
    element_name(element).eq_ignore_ascii_case(EXTENSION_NAME)
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// Reads the parameters of an offer, or of a response (`response`: `client_max_window_bits`
/// must then have a value). Refuses unknown and duplicate parameters and invalid values
/// (RFC 7692 5, 7.1).
fn parse_params(element: &Element, response: bool) -> Result<Offer, NegotiationError> {
    let mut offer = Offer::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &element.params {
        let key = name.to_ascii_lowercase();
        if seen.contains(&key) {
            return Err(NegotiationError::DuplicateParameter(name.clone()));
        }
        let invalid = || NegotiationError::InvalidValue {
            name: name.clone(),
            value: value.clone(),
        };
        match key.as_str() {
            // 7.1.1.1, 7.1.1.2: these parameters have no value.
            "server_no_context_takeover" | "client_no_context_takeover" => {
                if value.is_some() {
                    return Err(invalid());
                }
                if key.starts_with("server") {
                    offer.server_no_context_takeover = true;
                } else {
                    offer.client_no_context_takeover = true;
                }
            }
            // 7.1.2.1: always with a value.
            "server_max_window_bits" => {
                let bits = value.as_deref().and_then(window_bits).ok_or_else(invalid)?;
                offer.server_max_window_bits = Some(bits);
            }
            // 7.1.2.2: a value is optional in an offer, required in a response.
            "client_max_window_bits" => match value {
                None if response => return Err(invalid()),
                None => offer.client_max_window_bits = Some(None),
                Some(v) => {
                    let bits = window_bits(v).ok_or_else(invalid)?;
                    offer.client_max_window_bits = Some(Some(bits));
                }
            },
            _ => return Err(NegotiationError::UnknownParameter(name.clone())),
        }
        seen.push(key);
    }
    Ok(offer)
}

/// A window size value: a decimal integer from 8 to 15 without leading zeroes (7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

fn parse_offer(text: &str) -> Result<Offer, NegotiationError> {
    parse_params(&parse_element(text)?, false)
}

/// Server: the agreement for the first offer in `offers` (every element of the client's
/// `Sec-WebSocket-Extensions`, in order) that can be accepted; `None` when there is none.
pub(crate) fn select(config: &DeflateConfig, offers: &[String]) -> Option<DeflateParams> {
    for text in offers.iter().filter(|text| is_deflate(text)) {
        match parse_offer(text) {
            Ok(offer) => return Some(config.answer(&offer)),
            // RFC 7692 5: decline this offer, consider the next.
            Err(error) => debug!(offer = %text, %error, "permessage-deflate offer declined"),
        }
    }
    None
}

/// Client (or a server checking a response its application wrote): the agreement that
/// `response` makes with the first of `offers` it answers. Fails if the response is invalid
/// or answers none of them (RFC 7692 5, 7.1).
pub(crate) fn agree(offers: &[String], response: &str) -> Result<DeflateParams, NegotiationError> {
    let given = parse_params(&parse_element(response)?, true)?;
    let mut first_error = None;
    for offer in offers
        .iter()
        .filter(|text| is_deflate(text))
        .filter_map(|text| parse_offer(text).ok())
    {
        match grants(&offer, &given) {
            Ok(params) => return Ok(params),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(NegotiationError::NoOffer))
}

/// Whether the response `given` answers `offer`, and the agreement if it does.
fn grants(offer: &Offer, given: &Offer) -> Result<DeflateParams, NegotiationError> {
    // 7.1.1.1: a server accepts server_no_context_takeover by including it.
    if offer.server_no_context_takeover && !given.server_no_context_takeover {
        return Err(NegotiationError::NotGranted {
            asked: "server_no_context_takeover".to_owned(),
            given: "context takeover".to_owned(),
        });
    }
    // 7.1.2.1: a server answers server_max_window_bits=N with a value of at most N.
    if let Some(asked) = offer.server_max_window_bits {
        match given.server_max_window_bits {
            Some(bits) if bits <= asked => {}
            other => {
                return Err(NegotiationError::NotGranted {
                    asked: format!("server_max_window_bits={asked}"),
                    given: format!(
                        "server_max_window_bits={}",
                        other.unwrap_or(MAX_WINDOW_BITS)
                    ),
                });
            }
        }
    }
    // 7.1.2.2: not in the response unless in the offer.
    let response_bits = given.client_max_window_bits.flatten();
    if response_bits.is_some() && offer.client_max_window_bits.is_none() {
        return Err(NegotiationError::Unoffered("client_max_window_bits"));
    }
    // What the client announced in its offer binds it too.
    let announced = offer.client_max_window_bits.flatten();
    let client_max_window_bits = match (response_bits, announced) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(DeflateParams {
        server_no_context_takeover: given.server_no_context_takeover,
        client_no_context_takeover: given.client_no_context_takeover
            || offer.client_no_context_takeover,
        server_max_window_bits: given.server_max_window_bits,
        client_max_window_bits,
    })
}

/// RFC 7692 6.1: RSV1 ("Per-Message Compressed") is set only on the first frame of a data
/// message; on a control frame or a continuation frame it is a protocol error.
pub(crate) fn check_rsv1(opcode: OpCode) -> Result<(), ProtocolError> {
    match opcode {
        OpCode::Text | OpCode::Binary => Ok(()),
        OpCode::Continuation => Err(ProtocolError::CompressedContinuation),
        OpCode::Close | OpCode::Ping | OpCode::Pong => Err(ProtocolError::CompressedControlFrame),
    }
}

/// The compression state of one session that negotiated permessage-deflate.
#[derive(Debug)]
pub(crate) struct PerMessageDeflate {
    params: DeflateParams,
    threshold: usize,
    level: Compression,
    /// Our compressor's window in bits; `None` when the agreement leaves us 8 bits, which
    /// the compressor does not support: every message is then sent uncompressed.
    compress_bits: Option<u8>,
    /// Reset the compressor after each message (our no_context_takeover).
    reset_compressor: bool,
    /// Reset the decompressor after each message (the peer's no_context_takeover).
    reset_inflater: bool,
    compressor: Option<Compress>,
    inflater: Option<Decompress>,
    /// The message being inflated ended its DEFLATE stream with a final block (BFINAL):
    /// what follows in it is ignored, and the next message starts a new stream.
    stream_ended: bool,
}

impl PerMessageDeflate {
    /// The state for a session of `role` that agreed `params`.
    pub(crate) fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let peer = match role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let (reset_compressor, bits) = params.of(role);
        let (reset_inflater, _) = params.of(peer);
        PerMessageDeflate {
            params,
            threshold: config.threshold,
            level: Compression::new(config.level.min(9)),
            compress_bits: (bits >= MIN_COMPRESS_WINDOW_BITS).then_some(bits),
            reset_compressor,
            reset_inflater,
            compressor: None,
            inflater: None,
            stream_ended: false,
        }
    }

    /// The agreed parameters.
    pub(crate) fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Compresses a Text or Binary payload (RFC 7692 7.2.1): the deflated bytes without
    /// the final `00 00 ff ff`. `None`: send it uncompressed (shorter than the threshold,
    /// or no compressor for the agreed window).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Bytes> {
        let bits = self.compress_bits?;
        if payload.len() < self.threshold {
            return None;
        }
        let level = self.level;
        let compressor = self
            .compressor
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        let mut out = Vec::with_capacity(payload.len() / 4 + 64);
        let mut input = payload;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let before = compressor.total_in();
            if let Err(error) = compressor.compress_vec(input, &mut out, FlushCompress::Sync) {
                // Not expected from an in-memory compressor; the message goes out as it is
                // and the next one starts a new stream (no reference to lost data).
                debug!(%error, "compression failed; sending the message uncompressed");
                compressor.reset();
                return None;
            }
            input = &input[(compressor.total_in() - before) as usize..];
            // A sync flush is complete when the compressor stops with output space left.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if self.reset_compressor {
            // 7.1.1: no context takeover, the next message is compressed on its own.
            compressor.reset();
        }
        // 7.2.1: remove the 4 octets 00 00 ff ff at the tail end.
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
            Some(Bytes::from(out))
        } else {
            debug!("compressed message does not end with a sync flush; sending it uncompressed");
            compressor.reset();
            None
        }
    }

    /// Inflates one piece of a compressed message's payload (RFC 7692 7.2.2), appending the
    /// output to `out`. `end`: this piece ends the message; the 4-byte tail is inflated too.
    ///
    /// The output never grows past `max`: as soon as one more byte would pass it, this
    /// fails with [`ProtocolError::MessageTooLarge`], having inflated no more than `max`
    /// bytes. Corrupt input fails with [`ProtocolError::InvalidCompressedData`].
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: Option<u64>,
        end: bool,
    ) -> Result<(), ProtocolError> {
        let mut result = self.inflate_piece(input, out, max);
        if end {
            // 7.2.2: append 00 00 ff ff to the payload, then inflate.
            result = result.and_then(|()| self.inflate_piece(&TAIL, out, max));
            // 7.1.1: without context takeover the next message starts a new window; a
            // stream ended by a final block starts a new one anyway.
            if self.reset_inflater || self.stream_ended {
                if let Some(inflater) = self.inflater.as_mut() {
                    inflater.reset(false);
                }
                self.stream_ended = false;
            }
        }
        result
    }

    fn inflate_piece(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: Option<u64>,
    ) -> Result<(), ProtocolError> {
        if self.stream_ended {
            return Ok(());
        }
        let limit = max.map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
        let too_large = || ProtocolError::MessageTooLarge {
            size: (limit as u64).saturating_add(1),
            max: max.unwrap_or(u64::MAX),
        };
        let inflater = self
            .inflater
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, MAX_WINDOW_BITS));
        loop {
            let room = limit.saturating_sub(out.len());
            let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
            let status = if room == 0 {
                // At the limit: a single byte more is one too many.
                let mut probe = [0u8; 1];
                inflater.decompress(input, &mut probe, FlushDecompress::None)
            } else {
                if out.len() == out.capacity() {
                    let step = out
                        .capacity()
                        .max(input.len().saturating_mul(4))
                        .max(MIN_INFLATE_STEP)
                        .min(room);
                    out.reserve_exact(step);
                }
                inflater.decompress_vec(input, out, FlushDecompress::None)
            }
            .map_err(|_| ProtocolError::InvalidCompressedData)?;
            let consumed = (inflater.total_in() - before_in) as usize;
            let produced = (inflater.total_out() - before_out) as usize;
            if (room == 0 && produced > 0) || out.len() > limit {
                return Err(too_large());
            }
            input = &input[consumed..];
            if status == Status::StreamEnd {
                self.stream_ended = true;
                return Ok(());
            }
            let output_full = room == 0 || out.len() == out.capacity();
            if !output_full && input.is_empty() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                if input.is_empty() {
                    return Ok(());
                }
                // Input left, room for output, and no progress: the data cannot be
                // inflated.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }
}

#[cfg(test)]
mod tests;
