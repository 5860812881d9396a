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
//! use sockeye::{CloseCode, Message};
//!
//! # async fn run() -> sockeye::Result<()> {
//! // An echo server...
//! let server = sockeye::Server::bind("127.0.0.1:9001").await?;
//! tokio::spawn(server.serve(|mut ws| async move {
//!     while let Some(Ok(message)) = ws.recv().await {
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
//!
//! # TLS (`wss://`)
//!
//! With the `tls` feature, `wss://` URLs work wherever a URL is taken (`connect`,
//! `ClientBuilder`, the reconnecting client), and `ServerBuilder::tls` (a
//! `rustls::ServerConfig`) or `ServerBuilder::tls_pem` (PEM certificate chain and key)
//! make a server, `accept` and `Server` alike, speak `wss://`. TLS is rustls with the
//! *ring* provider, or the process-wide default provider if the application installed
//! one. The client sends the URL's host as SNI and checks the server's certificate against
//! it; `ClientBuilder::tls_root_pem`, `tls_roots` and `tls_config` replace what it trusts.
//! Closing sends close_notify before the TCP FIN (the server first, RFC 6455 7.1.1); a peer
//! that drops the connection without close_notify before the closing handshake completed
//! ends the session as abnormal (1006). Failures are [`Error::Tls`], with rustls's verdict
//! (an unknown issuer, a wrong name, ...) as the source.
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `tls` | yes | rustls and tokio-rustls; alone, a client trusts no root until given some |
//! | `webpki-roots` | yes | implies `tls`; clients trust Mozilla's roots, compiled in |
//! | `native-roots` | no | implies `tls`; clients trust the platform's roots, loaded at the first `wss://` connect |
//!
//! With both root features either set may vouch for a server. `default-features = false`
//! builds no TLS code at all; `wss://` URLs are then refused with an error that says so.
//! `sockeye::rustls` re-exports the rustls version in use, to build configurations with.
//!
//! # Behind another HTTP server, or client
//!
//! When hyper, axum or another HTTP server owns the connection,
//! [`ServerBuilder::upgrade`] takes the upgrade request's method, version, path and
//! headers, checks and decides it as [`Server`] would, and returns either the 101
//! response's headers with an [`Upgrade`] that starts the session on the upgraded
//! connection, or the [`Reject`] to answer with. The `hyper_upgrade` example shows it with
//! hyper. On the client side, when another HTTP client makes the connection (through a
//! proxy or a connection pool, say), [`ClientBuilder::upgrade`] gives the request's path
//! and headers, and its [`ClientUpgrade`] checks the server's answer as
//! [`ClientBuilder::connect`] would before starting the session on the upgraded
//! connection. [`ServerBuilder::after_handshake`] and [`ClientBuilder::after_handshake`]
//! start a session on a connection whose handshake was made entirely elsewhere (no
//! extension can be taken over then).

mod client;
mod config;
mod driver;
mod endpoint;
mod error;
mod proxy;
pub mod reconnect;
mod server;
mod session;
mod spare;
#[cfg(feature = "tls")]
mod tls;
mod websocket;

pub use client::{ClientBuilder, ClientUpgrade, connect};
pub use config::Config;
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use server::{Server, ServerBuilder, ShutdownHandle, Upgrade, accept};
pub use session::Session;
pub use websocket::{WebSocket, WebSocketReceiver, WebSocketSender};

/// The TLS library (feature `tls`), for building a [`rustls::ClientConfig`] or
/// [`rustls::ServerConfig`] of the version this crate uses.
#[cfg(feature = "tls")]
pub use rustls;

pub use sockeye_proto::Config as ProtocolConfig;
pub use sockeye_proto::handshake::{
    Accept, Reject, Request, Response, accept_fields, validate_request,
};
pub use sockeye_proto::{CloseCode, CloseFrame, CloseInfo, Fragment, Initiator, Message, State};

/// The repository README's examples, compiled as doc tests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
