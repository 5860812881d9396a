#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod close;
pub mod config;
pub mod error;
pub mod extension;
pub mod handshake;
pub mod mask;
pub mod reconnect;
pub mod utf8;

pub use close::{CloseCode, CloseFrame, CloseInfo, Initiator};
pub use config::Config;
pub use error::{CloseError, Error, HandshakeError, ProtocolError, SendError};
pub mod frame;
pub mod session;

pub use reconnect::{Backoff, ReconnectOn, ReconnectPolicy};
pub use session::{Connection, Event, Fragment, Message, State, Transmit};

/// Which end of a connection an endpoint is. Clients mask their frames, servers do not
/// (RFC 6455 5.1); servers close the TCP connection first (7.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The endpoint that sent the opening handshake request.
    Client,
    /// The endpoint that answered it.
    Server,
}
