//! Connecting as a client.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use sockeye_proto::extension::DeflateConfig;
use sockeye_proto::handshake::{ClientRequest, Response};
use sockeye_proto::{CloseInfo, Connection, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::driver::{self, Shared, now};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::proxy::{Proxy, ProxyUrl, Route, tcp_connect, unbracketed};
use crate::session::{Session, spawn_endpoint};
#[cfg(feature = "tls")]
use crate::tls::{ClientTls, Transport};
use crate::websocket::{WebSocket, spawn_websocket};

/// Without TLS a session's transport is the stream itself.
#[cfg(not(feature = "tls"))]
type Transport<S> = S;

/// Connects to a `ws://` URL (or `wss://`, with the `tls` feature) with the default
/// settings: the WebSocket and the server's handshake response.
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
    pub(crate) config: Config,
    origin: Option<String>,
    subprotocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<(String, String)>,
    /// Straight to the server or through a proxy (its URL is checked when connecting).
    route: Route,
    #[cfg(feature = "tls")]
    tls: ClientTls,
}

/// The parts of a `ws://` or `wss://` URL a client needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) host_header: String,
    pub(crate) path: String,
    /// `wss://`: TLS over the stream before the opening handshake.
    pub(crate) secure: bool,
}

pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let target = parse_target(url)?;
    #[cfg(not(feature = "tls"))]
    if target.secure {
        return Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: "wss:// needs TLS, which this build does not include (sockeye's `tls` feature)",
        });
    }
    Ok(target)
}

/// [`parse_url`] whether or not this build can make TLS connections: for a request whose
/// connection another HTTP client makes.
fn parse_target(url: &str) -> Result<Target> {
    let invalid = |reason| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let (default_port, secure) = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") => (80, false),
        Some(s) if s.eq_ignore_ascii_case("wss") => (443, true),
        _ => return Err(invalid("the scheme must be ws:// or wss://")),
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
    let host = unbracketed(host).to_owned();
    Ok(Target {
        host,
        port,
        host_header,
        path,
        secure,
    })
}

impl ClientBuilder {
    /// Default settings.
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    crate::config::session_settings!();

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call again for more, in
    /// preference order.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Offers permessage-deflate (RFC 7692) with the default parameters: messages of 64
    /// bytes or more are compressed if the server accepts. `false` offers nothing (the
    /// default). The server's answer is in `Response::extensions`.
    ///
    /// ```no_run
    /// # async fn run() -> sockeye::Result<()> {
    /// let (ws, response) = sockeye::ClientBuilder::new()
    ///     .deflate(true)
    ///     .connect("ws://127.0.0.1:9001/")
    ///     .await?;
    /// let compressed = response
    ///     .extensions
    ///     .iter()
    ///     .any(|e| e.starts_with("permessage-deflate"));
    /// # drop((ws, compressed));
    /// # Ok(()) }
    /// ```
    pub fn deflate(mut self, enabled: bool) -> Self {
        self.config.protocol.deflate.enabled = enabled;
        self
    }

    /// Offers permessage-deflate with these parameters (what to ask of the server, our own
    /// window and context takeover, the threshold and the compression level).
    pub fn deflate_config(mut self, deflate: DeflateConfig) -> Self {
        self.config.protocol.deflate = deflate;
        self
    }

    /// Adds an extension offer to `Sec-WebSocket-Extensions`, parameters included, after
    /// those already added. Offers of `permessage-deflate` written here replace the one
    /// [`deflate`](Self::deflate) would make, in this order of preference, and the session
    /// compresses as the server's answer to them says; the response to any other
    /// extension is the application's business (its reserved bits stay refused).
    pub fn extension(mut self, offer: impl Into<String>) -> Self {
        self.extensions.push(offer.into());
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

    fn request(&self, target: &Target) -> Result<ClientRequest> {
        let request = ClientRequest {
            host: target.host_header.clone(),
            path: target.path.clone(),
            origin: self.origin.clone(),
            subprotocols: self.subprotocols.clone(),
            extensions: self.extensions.clone(),
            headers: self.headers.clone(),
        };
        request.validate()?;
        Ok(request)
    }

    /// Connects through a proxy: an HTTP proxy, `http://[user:password@]host[:port]` (port
    /// 80 by default), or a SOCKS5 proxy, `socks5://` or `socks5h://[user:password@]host[:port]`
    /// (port 1080 by default). [`connect`](Self::connect),
    /// [`connect_endpoint`](Self::connect_endpoint) and
    /// [`Reconnect`](crate::reconnect::Reconnect) ask the proxy for a tunnel to the server,
    /// an HTTP proxy with CONNECT (RFC 9110 9.3.6; the URL's user and password as Basic
    /// `Proxy-Authorization`, RFC 7617), a SOCKS5 proxy with its CONNECT command (RFC 1928;
    /// the user and password by RFC 1929; with `socks5h://` the proxy resolves the server's
    /// name, with `socks5://` it is resolved here and the proxy given the address), then run
    /// TLS for `wss://` and the opening handshake through it, end to end, within the
    /// handshake timeout. A user name or password holding a `:`, `@` or `%` is written
    /// percent-encoded (`%3A`, `%40`, `%25`), as in any URL; it is decoded before it is
    /// sent. A proxy that does not open the tunnel is [`Error::Proxy`], with
    /// its reason; an invalid proxy URL is [`Error::InvalidUrl`] when connecting. The `*_on`
    /// methods use the stream they are given instead.
    ///
    /// ```no_run
    /// # async fn run() -> sockeye::Result<()> {
    /// let client = sockeye::ClientBuilder::new().proxy("http://proxy.internal:3128");
    /// let (ws, _) = client.connect("wss://example.com/feed").await?;
    /// // Through an SSH tunnel's SOCKS port, which resolves the name.
    /// let client = sockeye::ClientBuilder::new().proxy("socks5h://127.0.0.1:1080");
    /// let (ws, _) = client.connect("wss://example.com/feed").await?;
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.route = Route::Proxy(ProxyUrl(url.into()));
        self
    }

    /// Connects through the proxy that the environment names for each server, as
    /// curl and most HTTP clients do, instead of a [`proxy`](Self::proxy) named here:
    /// `https_proxy` for `wss://` URLs, `http_proxy` for `ws://`, else `all_proxy` (each
    /// in lower case, then upper case, but for `HTTP_PROXY`, which a CGI program's request
    /// could set; a value without a scheme is taken as `http://`; any
    /// proxy URL that [`proxy`](Self::proxy) takes, a `socks5://` one among them),
    /// read at each connection. A server that `no_proxy` lists is reached directly: `*`
    /// for every server, a domain for itself and its subdomains (`example.com`,
    /// `.example.com`), an IP address, or a range (`10.0.0.0/8`), comma-separated. So is
    /// this machine (`localhost`, `*.localhost`, a loopback address), which a proxy
    /// elsewhere would not reach. With nothing set, connections go straight to the
    /// server, as without this call.
    ///
    /// ```no_run
    /// # async fn run() -> sockeye::Result<()> {
    /// // With https_proxy=http://proxy.internal:3128 and no_proxy=.internal set:
    /// let client = sockeye::ClientBuilder::new().proxy_from_env();
    /// // Through the proxy.
    /// let (feed, _) = client.connect("wss://example.com/feed").await?;
    /// // Directly.
    /// let (local, _) = client.connect("ws://chat.internal/").await?;
    /// # Ok(()) }
    /// ```
    pub fn proxy_from_env(mut self) -> Self {
        self.route = Route::FromEnv;
        self
    }

    /// How connections reach their server.
    pub(crate) fn route(&self) -> Route {
        self.route.clone()
    }

    /// Connects to a `ws://` or `wss://` URL: TCP (to the proxy, then a tunnel, when one
    /// is set), TLS for `wss://`, then the opening handshake, all within the handshake
    /// timeout.
    pub async fn connect(&self, url: &str) -> Result<(WebSocket, Response)> {
        let connecting = connector(url, self.route());
        let (shared, stream, response) = self.establish(url, connecting).await?;
        Ok((spawn_websocket(shared, stream), response))
    }

    /// Runs the opening handshake for `url` over a stream the caller connected (a proxy
    /// tunnel, a Unix socket, an in-memory pipe). For a `wss://` URL, TLS runs over that
    /// stream first; give a `ws://` URL for a stream that is already secured. A
    /// `tokio::net::TcpStream` gets `TCP_NODELAY` (see
    /// [`ServerBuilder::accept`](crate::ServerBuilder::accept) for why).
    pub async fn connect_on<S>(&self, stream: S, url: &str) -> Result<(WebSocket, Response)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (shared, stream, response) = self.establish(url, async { Ok(stream) }).await?;
        Ok((spawn_websocket(shared, stream), response))
    }

    /// A client session on a stream whose opening handshake was made elsewhere (by an
    /// HTTP client that performed the upgrade). The session starts OPEN with this
    /// builder's settings and masks its frames; no extension is used (offer none), and
    /// TLS, if any, is the stream's. Must be called within a tokio runtime.
    pub fn after_handshake<S>(&self, stream: S) -> WebSocket
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        spawn_websocket(Shared::after_handshake(Role::Client, &self.config), stream)
    }

    /// [`after_handshake`](Self::after_handshake), with `endpoint`'s callbacks on the
    /// session's task (`on_open` first) instead of a `WebSocket`.
    pub fn after_handshake_endpoint<S, E>(&self, stream: S, endpoint: E) -> Session
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Endpoint,
    {
        spawn_endpoint(
            Shared::after_handshake(Role::Client, &self.config),
            stream,
            endpoint,
        )
    }

    /// The client side of an upgrade another HTTP client makes (hyper's client, say): the
    /// request this builder would send for `url` (its subprotocols, extensions, origin
    /// and headers; permessage-deflate offered when [`deflate`](Self::deflate) is on), as
    /// header fields for the HTTP client's GET of [`ClientUpgrade::path`] over HTTP/1.1,
    /// and the session to start once the server has answered. The handshake timeout
    /// does not apply (the HTTP client's own does); the URL's scheme only says which port
    /// is the default, since the HTTP client makes the connection and its TLS (so
    /// `wss://` is taken without the `tls` feature too).
    ///
    /// `tests/upgrade.rs` does this with hyper's client.
    pub fn upgrade(&self, url: &str) -> Result<ClientUpgrade> {
        let target = parse_target(url)?;
        let (conn, fields) =
            Connection::client_upgrade(self.request(&target)?, self.config.protocol.clone(), now());
        Ok(ClientUpgrade {
            conn,
            fields,
            path: target.path,
            config: self.config.clone(),
        })
    }

    /// Connects (to a `ws://` or `wss://` URL) and runs `endpoint`'s callbacks on the session's task. If connecting
    /// fails, `on_error` then `on_close` (1006, not clean) are called, as browsers do
    /// (DESIGN.md invariant 5), and the error is returned too.
    pub async fn connect_endpoint<E: Endpoint>(&self, url: &str, endpoint: E) -> Result<Session> {
        self.connect_endpoint_via(url, connector(url, self.route()), endpoint)
            .await
    }

    /// [`connect_endpoint`](Self::connect_endpoint) over a stream the caller connects.
    pub async fn connect_endpoint_on<S, E>(
        &self,
        stream: S,
        url: &str,
        endpoint: E,
    ) -> Result<Session>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Endpoint,
    {
        self.connect_endpoint_via(url, async { Ok(stream) }, endpoint)
            .await
    }

    pub(crate) async fn connect_endpoint_via<S, F, E>(
        &self,
        url: &str,
        connecting: F,
        mut endpoint: E,
    ) -> Result<Session>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        F: Future<Output = Result<S>>,
        E: Endpoint,
    {
        match self.establish(url, connecting).await {
            Ok((shared, stream, _response)) => Ok(spawn_endpoint(shared, stream, endpoint)),
            Err(error) => {
                let info = connect_failure(&error);
                let failure = info
                    .error
                    .clone()
                    .unwrap_or(sockeye_proto::Error::ConnectionLost);
                let conn =
                    Connection::client(ClientRequest::default(), self.config.protocol.clone());
                let session = Session::new(Shared::new(conn, self.config.clone()));
                endpoint.on_error(&session, &failure);
                endpoint.on_close(&session, &info);
                Err(error)
            }
        }
    }

    /// Connects the transport with `connecting` (then TLS for `wss://`) and runs the
    /// opening handshake, all within the handshake timeout.
    async fn establish<S, F>(
        &self,
        url: &str,
        connecting: F,
    ) -> Result<(Arc<Shared>, Transport<S>, Response)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        F: Future<Output = Result<S>>,
    {
        let target = parse_url(url)?;
        let mut conn = Connection::client(self.request(&target)?, self.config.protocol.clone());
        conn.connect(now());
        let connecting = async {
            let stream = connecting.await?;
            driver::no_delay(&stream);
            self.secure(&target, stream).await
        };
        let mut stream = match conn.poll_timeout() {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), connecting)
                .await
                .map_err(|_| Error::HandshakeTimeout)??,
            None => connecting.await?,
        };
        driver::handshake(&mut conn, &mut stream, None).await?;
        let response = conn.response().cloned().ok_or(Error::HandshakeTimeout)?;
        Ok((Shared::new(conn, self.config.clone()), stream, response))
    }

    /// TLS over `stream` for a `wss://` target.
    #[cfg(feature = "tls")]
    async fn secure<S>(&self, target: &Target, stream: S) -> Result<Transport<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if target.secure {
            self.tls.connect(&target.host, stream).await
        } else {
            Ok(Transport::Plain(stream))
        }
    }

    /// Without TLS every target is `ws://` (`parse_url` refuses `wss://`).
    #[cfg(not(feature = "tls"))]
    async fn secure<S>(&self, _target: &Target, stream: S) -> Result<Transport<S>> {
        Ok(stream)
    }
}

/// TLS settings (feature `tls`). By default a `wss://` client trusts the roots of the
/// enabled features (`webpki-roots`: Mozilla's, compiled in; `native-roots`: the
/// platform's), sends the URL's host as SNI and checks the server's certificate against it.
#[cfg(feature = "tls")]
impl ClientBuilder {
    /// Trusts exactly the certificates in a PEM file (a private CA, a self-signed server
    /// certificate) instead of the default roots. Reads the file now: fails with
    /// [`Error::Tls`] if it cannot be read or holds no certificate.
    ///
    /// ```no_run
    /// # async fn run() -> sockeye::Result<()> {
    /// let (ws, _) = sockeye::ClientBuilder::new()
    ///     .tls_root_pem("ca.pem")?
    ///     .connect("wss://localhost:9443/")
    ///     .await?;
    /// # drop(ws);
    /// # Ok(()) }
    /// ```
    pub fn tls_root_pem(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let roots = crate::tls::roots_from_pem(path.as_ref())?;
        Ok(self.tls_roots(roots))
    }

    /// Trusts exactly these roots instead of the default ones.
    pub fn tls_roots(mut self, roots: impl Into<Arc<rustls::RootCertStore>>) -> Self {
        self.tls = ClientTls::Roots(roots.into());
        self
    }

    /// Uses this rustls configuration for `wss://` (roots, client certificate, protocol
    /// versions, ...), replacing every other TLS setting. Its ALPN list is used as is; the
    /// opening handshake needs `http/1.1` if any is offered.
    pub fn tls_config(mut self, config: impl Into<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = ClientTls::Config(config.into());
        self
    }
}

/// The outcome of a connection attempt that never got a session: 1006, not clean, with
/// the failure.
pub(crate) fn connect_failure(error: &Error) -> CloseInfo {
    let failure = match error {
        Error::Handshake(e) => sockeye_proto::Error::Handshake(e.clone()),
        Error::HandshakeTimeout => sockeye_proto::Error::HandshakeTimeout,
        other => sockeye_proto::Error::Transport(other.to_string()),
    };
    CloseInfo::abnormal(failure)
}

/// An upgrade request for another HTTP client to send ([`ClientBuilder::upgrade`]): its
/// path and header fields, then the server's answer and the upgraded connection, on which
/// the session starts.
pub struct ClientUpgrade {
    conn: Connection,
    fields: Vec<(String, String)>,
    path: String,
    config: Config,
}

impl fmt::Debug for ClientUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientUpgrade")
            .field("path", &self.path)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl ClientUpgrade {
    /// The request target: the URL's path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The request's header fields (RFC 6455 4.1), in order: Host, Upgrade, Connection,
    /// Sec-WebSocket-Key, Sec-WebSocket-Version, then Origin, Sec-WebSocket-Protocol,
    /// Sec-WebSocket-Extensions when set, and the builder's extra headers.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Starts the session on the upgraded connection once the server's answer, with
    /// `status` and `headers`, has been checked as [`ClientBuilder::connect`] checks it
    /// (RFC 6455 4.1: 101, the accept value of our key, a subprotocol and extensions we
    /// offered) and permessage-deflate agreed: the [`WebSocket`] and the response. A
    /// response that fails the checks is [`Error::Handshake`], and the connection is
    /// closed (4.1: fail the WebSocket connection), in the background: after a Close with
    /// 1010 when the server's answer to our permessage-deflate offer cannot be agreed
    /// (RFC 7692 5), as `connect` sends it, and at once otherwise; bounded by the close
    /// timeout. Must be called within a tokio runtime.
    pub fn websocket<S>(
        self,
        status: u16,
        headers: http::HeaderMap,
        stream: S,
    ) -> Result<(WebSocket, Response)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (shared, response, stream) = self.answered(status, headers, stream)?;
        Ok((spawn_websocket(shared, stream), response))
    }

    /// [`websocket`](Self::websocket), with `endpoint`'s callbacks on the session's task
    /// (`on_open` first) instead of a `WebSocket`.
    pub fn endpoint<S, E>(
        self,
        status: u16,
        headers: http::HeaderMap,
        stream: S,
        endpoint: E,
    ) -> Result<(Session, Response)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Endpoint,
    {
        let (shared, response, stream) = self.answered(status, headers, stream)?;
        Ok((spawn_endpoint(shared, stream, endpoint), response))
    }

    /// The session after the server's answer, or the answer's fault, once what the core
    /// queued for the failed handshake is on its way out.
    fn answered<S>(
        self,
        status: u16,
        headers: http::HeaderMap,
        stream: S,
    ) -> Result<(Arc<Shared>, Response, S)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut conn = self.conn;
        let response = Response::from_head(status, headers);
        if let Err(error) = conn.client_upgraded(response.clone(), now()) {
            let limit = self.config.protocol.close_timeout;
            tokio::spawn(async move {
                // The Close frame if any, then the shutdown the core queued after it.
                let mut stream = stream;
                let _ = tokio::time::timeout(limit, driver::flush(&mut conn, &mut stream)).await;
            });
            return Err(error.into());
        }
        Ok((Shared::new(conn, self.config), response, stream))
    }
}

/// Resolves and connects a TCP socket to the URL's host and port, or through the proxy
/// that `route` gives for them (`TCP_NODELAY` and, for `wss://`, TLS come after, in
/// `establish`).
pub(crate) fn connector(
    url: &str,
    route: Route,
) -> impl Future<Output = Result<TcpStream>> + use<> {
    let target = parse_url(url);
    async move {
        let target = target?;
        if let Some(proxy) = route.proxy_for(&target.host, target.secure) {
            return Proxy::parse(&proxy)?
                .tunnel(&target.host, target.port)
                .await;
        }
        tcp_connect(&target.host, target.port).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed connection names the address it tried as `host:port`, an IPv6 address
    /// in brackets (port 1: nothing listens there).
    #[tokio::test]
    async fn a_failed_connection_names_its_address_with_ipv6_in_brackets() {
        for (url, addr) in [
            ("ws://127.0.0.1:1/", "127.0.0.1:1"),
            ("ws://[::1]:1/", "[::1]:1"),
        ] {
            match connector(url, Route::Direct).await {
                Err(Error::Connect { addr: tried, .. }) => assert_eq!(tried, addr),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn parses_ws_urls() {
        let t = parse_url("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: "example.com".into(),
                port: 80,
                host_header: "example.com".into(),
                path: "/chat?room=1".into(),
                secure: false,
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
            parse_url("not a url"),
            Err(Error::InvalidUrl { .. })
        ));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn parses_wss_urls() {
        let t = parse_url("wss://example.com/chat").unwrap();
        assert_eq!(
            t,
            Target {
                host: "example.com".into(),
                port: 443,
                host_header: "example.com".into(),
                path: "/chat".into(),
                secure: true,
            }
        );
        let t = parse_url("WSS://example.com:443/").unwrap();
        assert_eq!((t.port, t.host_header.as_str()), (443, "example.com"));
        let t = parse_url("wss://[::1]:9443").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str(), t.secure),
            ("::1", 9443, "[::1]:9443", true)
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn refuses_wss_without_tls_saying_why() {
        match parse_url("wss://a/") {
            Err(Error::InvalidUrl { reason, .. }) => {
                assert!(reason.contains("needs TLS"), "{reason}")
            }
            other => panic!("expected InvalidUrl, got {other:?}"),
        }
    }
}
