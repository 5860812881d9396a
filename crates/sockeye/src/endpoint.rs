//! The endpoint model of seed 000: callbacks for open, message, close and error.

use sockeye_proto::{CloseInfo, Message};

use crate::session::Session;

/// Callbacks for one session, run on the session's own task, one at a time, in order.
///
/// - `on_open` runs once the handshake completed (CONNECTED); when it returns the session
///   is OPEN, unless it called [`Session::close`], which moves it straight to CLOSING.
/// - `on_message` runs for each Text and Binary message (Ping and Pong are answered and
///   tracked by the session itself).
/// - `on_error` runs before `on_close` when the session failed.
/// - `on_close` runs exactly once, with the session's [`CloseInfo`]. On a close started by
///   the peer, the reply Close frame is sent after `on_close` returns.
///
/// Callbacks must not block: hand long work to another task, which can keep a clone of the
/// [`Session`] to send from.
///
/// ```no_run
/// use sockeye::{Endpoint, Message, Session, CloseInfo};
///
/// struct Echo;
/// impl Endpoint for Echo {
///     fn on_message(&mut self, session: &Session, message: Message) {
///         let _ = session.try_send(message);
///     }
///     fn on_close(&mut self, _session: &Session, info: &CloseInfo) {
///         println!("closed: {info}");
///     }
/// }
/// # async fn run() -> sockeye::Result<()> {
/// let session = sockeye::ClientBuilder::new().connect_endpoint("ws://127.0.0.1:9001", Echo).await?;
/// session.closed().await;
/// # Ok(()) }
/// ```
pub trait Endpoint: Send + 'static {
    /// The session is CONNECTED; it becomes OPEN when this returns.
    fn on_open(&mut self, session: &Session) {
        let _ = session;
    }

    /// A message arrived.
    fn on_message(&mut self, session: &Session, message: Message);

    /// The session failed; `on_close` follows.
    fn on_error(&mut self, session: &Session, error: &sockeye_proto::Error) {
        let _ = (session, error);
    }

    /// The session's outcome: called exactly once.
    fn on_close(&mut self, session: &Session, info: &CloseInfo) {
        let _ = (session, info);
    }
}
