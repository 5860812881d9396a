//! Sockeye: WebSocket (RFC 6455) client and server for tokio.
//!
//! The protocol is decided by [`sockeye_proto`], a sans-I/O core; this crate moves bytes
//! and time for it. Each session runs on its own task; the application holds handles:
//!
//! - [`WebSocket`]: a `Stream` of received messages and a `Sink` of messages to send,
//!   which [`split`](WebSocket::split)s into two halves;
//! - [`Endpoint`] + [`Session`]: the callback model (`on_open`, `on_message`, `on_error`,
//!   `on_close`) with a cloneable handle to send from anywhere.
//!
//! Every session ends with exactly one [`CloseInfo`]: the close code and reason seen
//! (1005 when the peer's Close had no code, 1006 when no Close arrived), both Close frames,
//! who initiated, whether it was `clean`, and the error that failed it.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use sockeye::{CloseCode, Message};
//!
//! # async fn run() -> sockeye::Result<()> {
//! // An echo server...
//! let server = sockeye::Server::bind("127.0.0.1:9001").await?;
//! tokio::spawn(server.serve(|mut ws| async move {
//!     while let Some(Ok(message)) = ws.next().await {
//!         let _ = ws.send(message).await;
//!     }
//! }));
//!
//! // ...and a client.
//! let (mut ws, _) = sockeye::connect("ws://127.0.0.1:9001").await?;
//! ws.send(Message::Text("hello".into())).await?;
//! assert_eq!(ws.next().await.unwrap()?, Message::Text("hello".into()));
//! let info = ws.close(CloseCode::NORMAL, "bye").await?;
//! assert!(info.clean);
//! # Ok(()) }
//! ```

mod client;
mod config;
mod driver;
mod endpoint;
mod error;
pub mod reconnect;
mod server;
mod session;
mod websocket;

pub use client::{ClientBuilder, connect};
pub use config::Config;
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use server::{Server, ServerBuilder, ShutdownHandle, accept};
pub use session::Session;
pub use websocket::{WebSocket, WebSocketReceiver, WebSocketSender};

pub use sockeye_proto::Config as ProtocolConfig;
pub use sockeye_proto::handshake::{Accept, Reject, Request, Response};
pub use sockeye_proto::{CloseCode, CloseFrame, CloseInfo, Initiator, Message, State};

/// The repository README's examples, compiled as doc tests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
