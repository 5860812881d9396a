//! Connecting as a client.

use std::time::Duration;

use sockeye_proto::handshake::{ClientRequest, Response};
use sockeye_proto::{CloseCode, CloseInfo, Connection, Initiator};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::driver::{self, Dispatch, Shared, now};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::websocket::WebSocket;

/// Connects to a `ws://` URL with the default settings: the WebSocket and the server's
/// handshake response.
///
/// ```no_run
/// # async fn run() -> sockeye::Result<()> {
/// let (ws, response) = sockeye::connect("ws://127.0.0.1:9001/chat").await?;
/// println!("connected, status {}", response.status);
/// # drop(ws);
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<(WebSocket, Response)> {
    ClientBuilder::new().connect(url).await
}

/// Settings for a client connection.
///
/// ```no_run
/// use std::time::Duration;
/// # async fn run() -> sockeye::Result<()> {
/// let (ws, response) = sockeye::ClientBuilder::new()
///     .subprotocol("chat.v1")
///     .header("Authorization", "Bearer 0123")
///     .origin("https://example.com")
///     .handshake_timeout(Duration::from_secs(5))
///     .max_message_size(1 << 20)
///     .connect("ws://127.0.0.1:9001/chat")
///     .await?;
/// assert_eq!(ws.subprotocol().as_deref(), response.subprotocol.as_deref());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientBuilder {
    config: Config,
    origin: Option<String>,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
}

/// The parts of a `ws://` URL a client needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) host_header: String,
    pub(crate) path: String,
}

pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let invalid = |reason| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let default_port = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") => 80,
        Some(s) if s.eq_ignore_ascii_case("wss") => {
            return Err(invalid(
                "wss:// needs TLS, which this build does not include",
            ));
        }
        _ => return Err(invalid("the scheme must be ws://")),
    };
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    let port = uri.port_u16().unwrap_or(default_port);
    let host_header = match uri.port_u16() {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.to_owned(),
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .to_owned();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(Target {
        host,
        port,
        host_header,
        path,
    })
}

impl ClientBuilder {
    /// Default settings.
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Replaces all settings of the session.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call again for more, in
    /// preference order.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Adds a header to the handshake request, e.g. `Authorization`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// How long connecting (TCP and handshake) may take. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.protocol.handshake_timeout = timeout;
        self
    }

    /// How long the closing handshake may take. Default 10 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.protocol.close_timeout = timeout;
        self
    }

    /// Largest message accepted (1009 beyond it). Default 64 MiB.
    pub fn max_message_size(mut self, size: u64) -> Self {
        self.config.protocol.max_message_size = Some(size);
        self
    }

    /// Largest frame accepted (1009 beyond it). Default 16 MiB.
    pub fn max_frame_size(mut self, size: u64) -> Self {
        self.config.protocol.max_frame_size = Some(size);
        self
    }

    /// Sends a Ping every `interval`; a Pong missing for `timeout` closes the session
    /// with 1011.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.protocol.ping_interval = Some(interval);
        self.config.protocol.pong_timeout = timeout;
        self
    }

    fn request(&self, target: &Target) -> Result<ClientRequest> {
        let request = ClientRequest {
            host: target.host_header.clone(),
            path: target.path.clone(),
            origin: self.origin.clone(),
            subprotocols: self.subprotocols.clone(),
            extensions: Vec::new(),
            headers: self.headers.clone(),
        };
        request.validate()?;
        Ok(request)
    }

    /// Connects to a `ws://` URL: TCP, then the opening handshake, both within the
    /// handshake timeout.
    pub async fn connect(&self, url: &str) -> Result<(WebSocket, Response)> {
        let (shared, stream, response) = self.establish(url).await?;
        // Count the handle before the task starts: a task that sees no handle closes the
        // session with 1001, and on a multi-thread runtime it may start at once.
        let ws = WebSocket::new(shared.clone());
        tokio::spawn(driver::drive(shared, stream, Dispatch::Queue));
        Ok((ws, response))
    }

    /// Runs the opening handshake for `url` over a stream the caller connected (a proxy
    /// tunnel, a Unix socket, an in-memory pipe).
    pub async fn connect_on<S>(&self, stream: S, url: &str) -> Result<(WebSocket, Response)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let target = parse_url(url)?;
        let mut conn = Connection::client(self.request(&target)?, self.config.protocol.clone());
        conn.connect(now());
        let mut stream = stream;
        driver::handshake(&mut conn, &mut stream, None).await?;
        let response = conn.response().cloned().ok_or(Error::HandshakeTimeout)?;
        let shared = Shared::new(conn, self.config.clone());
        // As in `connect`: the handle first, then the task.
        let ws = WebSocket::new(shared.clone());
        tokio::spawn(driver::drive(shared, stream, Dispatch::Queue));
        Ok((ws, response))
    }

    /// Connects and runs `endpoint`'s callbacks on the session's task. If connecting
    /// fails, `on_error` then `on_close` (1006, not clean) are called, as browsers do, and
    /// the error is returned too.
    pub async fn connect_endpoint<E: Endpoint>(
        &self,
        url: &str,
        mut endpoint: E,
    ) -> Result<Session> {
        match self.establish(url).await {
            Ok((shared, stream, _response)) => {
                tokio::spawn(driver::drive(
                    shared.clone(),
                    stream,
                    Dispatch::Endpoint(Box::new(endpoint)),
                ));
                Ok(Session::new(shared))
            }
            Err(error) => {
                let failure = match &error {
                    Error::Handshake(e) => sockeye_proto::Error::Handshake(e.clone()),
                    Error::HandshakeTimeout => sockeye_proto::Error::HandshakeTimeout,
                    other => sockeye_proto::Error::Transport(other.to_string()),
                };
                let info = CloseInfo {
                    code: CloseCode::ABNORMAL,
                    reason: String::new(),
                    sent: None,
                    received: None,
                    initiator: Initiator::Abnormal,
                    clean: false,
                    error: Some(failure.clone()),
                };
                let conn =
                    Connection::client(ClientRequest::default(), self.config.protocol.clone());
                let session = Session::new(Shared::new(conn, self.config.clone()));
                endpoint.on_error(&session, &failure);
                endpoint.on_close(&session, &info);
                Err(error)
            }
        }
    }

    async fn establish(&self, url: &str) -> Result<(std::sync::Arc<Shared>, TcpStream, Response)> {
        let target = parse_url(url)?;
        let mut conn = Connection::client(self.request(&target)?, self.config.protocol.clone());
        conn.connect(now());
        let deadline = conn.poll_timeout();
        let addr = format!("{}:{}", target.host, target.port);
        let connecting = TcpStream::connect((target.host.as_str(), target.port));
        let mut stream = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), connecting)
                .await
                .map_err(|_| Error::HandshakeTimeout)?,
            None => connecting.await,
        }
        .map_err(|source| Error::Connect {
            addr,
            source: std::sync::Arc::new(source),
        })?;
        stream.set_nodelay(true)?;
        driver::handshake(&mut conn, &mut stream, None).await?;
        let response = conn.response().cloned().ok_or(Error::HandshakeTimeout)?;
        Ok((Shared::new(conn, self.config.clone()), stream, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls() {
        let t = parse_url("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: "example.com".into(),
                port: 80,
                host_header: "example.com".into(),
                path: "/chat?room=1".into()
            }
        );
        let t = parse_url("ws://127.0.0.1:9001").unwrap();
        assert_eq!(
            (t.port, t.host_header.as_str(), t.path.as_str()),
            (9001, "127.0.0.1:9001", "/")
        );
        let t = parse_url("ws://[::1]:9001/").unwrap();
        assert_eq!(t.host, "::1");
    }

    #[test]
    fn refuses_other_schemes() {
        assert!(matches!(
            parse_url("http://a/"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("wss://a/"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(Error::InvalidUrl { .. })
        ));
    }
}
