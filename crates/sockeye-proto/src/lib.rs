#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod close;
pub mod config;
pub mod error;
pub mod handshake;
pub mod mask;
pub mod reconnect;
pub mod utf8;

pub use close::{CloseCode, CloseFrame, CloseInfo, Initiator};
pub use config::Config;
pub use error::{CloseError, Error, HandshakeError, ProtocolError, SendError};
