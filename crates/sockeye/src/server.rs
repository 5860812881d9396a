//! Accepting connections as a server, one at a time or with [`Server`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockeye_proto::extension::DeflateConfig;
use sockeye_proto::handshake::{Accept, Reject, Request, encode_reject};
use sockeye_proto::{CloseCode, Connection, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, watch};
use tracing::{debug, info};

use crate::config::Config;
use crate::driver::{self, Dispatch, Shared, now};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::session::{Session, spawn_endpoint};
#[cfg(feature = "tls")]
use crate::tls::Transport;
use crate::websocket::{WebSocket, spawn_websocket};

/// Without TLS a session's transport is the stream itself.
#[cfg(not(feature = "tls"))]
type Transport<S> = S;

/// Runs the server side of the opening handshake on an accepted stream, with the default
/// settings, accepting any valid request.
///
/// ```no_run
/// # async fn run() -> sockeye::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (stream, _) = listener.accept().await?;
/// let mut ws = sockeye::accept(stream).await?;
/// while let Some(message) = ws.recv().await {
///     ws.send(message?).await?;
/// }
/// # Ok(()) }
/// ```
pub async fn accept<S>(stream: S) -> Result<WebSocket>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    ServerBuilder::new().accept(stream).await
}

type DecideFn = dyn Fn(&Request) -> std::result::Result<Accept, Reject> + Send + Sync;

/// Settings for the server side.
///
/// ```
/// use sockeye::{Accept, Reject, ServerBuilder};
/// let builder = ServerBuilder::new().on_request(|request| {
///     if request.path != "/chat" {
///         return Err(Reject::new(404, "no such endpoint"));
///     }
///     Ok(Accept {
///         subprotocol: request.select_subprotocol(&["chat.v1"]),
///         ..Accept::default()
///     })
/// });
/// # drop(builder);
/// ```
#[derive(Clone)]
pub struct ServerBuilder {
    pub(crate) config: Config,
    decide: Option<Arc<DecideFn>>,
    shutdown_timeout: Duration,
    max_connections: usize,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("ServerBuilder");
        f.field("config", &self.config)
            .field("on_request", &self.decide.is_some())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_connections", &self.max_connections);
        #[cfg(feature = "tls")]
        f.field("tls", &self.tls.is_some());
        f.finish()
    }
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            config: Config::default(),
            decide: None,
            shutdown_timeout: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ServerBuilder {
    /// Default settings: any valid request is accepted, without a subprotocol.
    pub fn new() -> ServerBuilder {
        ServerBuilder::default()
    }

    crate::config::session_settings!();

    /// Decides on each valid handshake request: accept (choosing a subprotocol and extra
    /// headers) or reject with an HTTP status and body. An `Accept` that is invalid for the
    /// request (a subprotocol the client did not offer) is answered with 500.
    pub fn on_request<F>(mut self, decide: F) -> Self
    where
        F: Fn(&Request) -> std::result::Result<Accept, Reject> + Send + Sync + 'static,
    {
        self.decide = Some(Arc::new(decide));
        self
    }

    /// Accepts permessage-deflate (RFC 7692) when a client offers it, with the default
    /// parameters: the first offer that is valid is accepted, with whatever window and
    /// context takeover it asks for, and messages of 64 bytes or more are compressed.
    /// `false` accepts none (the default). An `on_request` callback that puts a
    /// `permessage-deflate` response in its `Accept` decides instead.
    pub fn deflate(mut self, enabled: bool) -> Self {
        self.config.protocol.deflate.enabled = enabled;
        self
    }

    /// Accepts permessage-deflate with these parameters (what to ask of the client, our
    /// own window and context takeover, the threshold and the compression level).
    pub fn deflate_config(mut self, deflate: DeflateConfig) -> Self {
        self.config.protocol.deflate = deflate;
        self
    }

    /// How long a graceful shutdown waits for the sessions' closing handshakes before it
    /// drops the rest. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The most connections a [`Server`] holds at once: open sessions plus connections
    /// still in their opening handshake (each holds a socket, and a handshake is bounded
    /// by the handshake timeout). A connection accepted beyond it is answered
    /// `503 Service Unavailable` with the body `too many connections` and closed; the
    /// others are served as usual. Default 10,000; `usize::MAX` for no limit but the
    /// process's file descriptors. Applies to [`Server`] only, not to `accept`.
    ///
    /// Refusing takes no session: the response is written, the write side shut, and
    /// what the client sends is read and dropped until it closes, for one second at
    /// most (closing with its request unread would reset the connection and could lose
    /// the response). At most 256 refusals run at once; beyond that, connections are
    /// closed without a response. A `wss://` server closes them without a response too:
    /// answering would take a TLS handshake.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    async fn handshake<S>(&self, stream: S) -> Result<(Arc<Shared>, Transport<S>)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.handshake_refusing(stream, || false).await
    }

    /// The application's decision on a valid request: its `on_request` callback's, else
    /// accepted without a subprotocol.
    fn decide(&self, request: &Request) -> std::result::Result<Accept, Reject> {
        match &self.decide {
            Some(decide) => decide(request),
            None => Ok(Accept::default()),
        }
    }

    /// The handshake, refusing the request with 503 if `shutting_down()` says so when it
    /// is to be decided.
    async fn handshake_refusing<S>(
        &self,
        stream: S,
        shutting_down: impl Fn() -> bool + Send + Sync,
    ) -> Result<(Arc<Shared>, Transport<S>)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut conn = Connection::server(self.config.protocol.clone(), now());
        driver::no_delay(&stream);
        let mut stream = self.secure(&conn, stream).await?;
        let mut decide = |request: &Request| {
            if shutting_down() {
                return Err(Reject::new(503, "server shutting down"));
            }
            self.decide(request)
        };
        driver::handshake(&mut conn, &mut stream, Some(&mut decide)).await?;
        Ok((Shared::new(conn, self.config.clone()), stream))
    }

    /// A [`Server`]'s handshake: counted in the registry until the session is registered,
    /// refused once the server is shutting down, abandoned when the shutdown timeout has
    /// passed. Boxed, and owning the builder: a connection's task keeps room for neither
    /// once the handshake is over.
    fn server_handshake(
        self,
        stream: tokio::net::TcpStream,
        registry: Arc<Registry>,
    ) -> Pin<Box<impl Future<Output = Result<Handshaken>> + Send>> {
        Box::pin(async move {
            let shutting_down = || registry.closing.load(Ordering::SeqCst);
            tokio::select! {
                result = self.handshake_refusing(stream, shutting_down) => result,
                () = registry.aborted() => Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "server shut down during the handshake",
                )
                .into()),
            }
        })
    }

    /// Whether connections over `max_connections` get an HTTP response: not over TLS,
    /// where it would take a TLS handshake.
    fn answers_refusals(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_none();
        #[cfg(not(feature = "tls"))]
        return true;
    }

    /// The TLS handshake, if TLS is set, within the opening handshake's deadline.
    #[cfg(feature = "tls")]
    async fn secure<S>(&self, conn: &Connection, stream: S) -> Result<Transport<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(config) = &self.tls else {
            return Ok(Transport::Plain(stream));
        };
        let accepting = crate::tls::accept(config.clone(), stream);
        match conn.poll_timeout() {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), accepting)
                .await
                .map_err(|_| crate::error::Error::HandshakeTimeout)?,
            None => accepting.await,
        }
    }

    /// Without TLS the stream is used as it is.
    #[cfg(not(feature = "tls"))]
    async fn secure<S>(&self, _conn: &Connection, stream: S) -> Result<Transport<S>> {
        Ok(stream)
    }

    /// Runs the opening handshake on an accepted stream (after the TLS handshake, if
    /// `tls` is set). On failure the matching HTTP error response (400, 426,
    /// ...) was sent and the stream closed.
    ///
    /// A `tokio::net::TcpStream` gets `TCP_NODELAY`, as every socket of a [`Server`] and
    /// of [`ClientBuilder::connect`](crate::ClientBuilder::connect) does: messages are
    /// written as they are sent, and Nagle's algorithm would hold a small one back until
    /// the peer acknowledged the last (up to its delayed-ACK time, 40 ms on Linux). Set it
    /// yourself on other streams over TCP (a TLS stream made outside Sockeye). The same
    /// holds for every method that takes a stream (`accept_endpoint`, `after_handshake`,
    /// [`Upgrade`]'s, `ClientBuilder::connect_on`).
    pub async fn accept<S>(&self, stream: S) -> Result<WebSocket>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (shared, stream) = self.handshake(stream).await?;
        Ok(spawn_websocket(shared, stream))
    }

    /// The server side of an upgrade request another HTTP server received (hyper, axum):
    /// the request is checked as [`accept`](Self::accept) checks it
    /// ([`validate_request`](crate::validate_request)), decided by the `on_request`
    /// callback if one is set, and permessage-deflate agreed as [`deflate`](Self::deflate)
    /// says. Returns the [`Upgrade`]: the 101 response's header fields to send, then the
    /// session to start on the connection once the HTTP server hands it over. Or the
    /// response to answer instead: the status, headers and body of the error (400, 405,
    /// 426, 505; 500 for an `Accept` invalid for the request) or of the callback's
    /// `Reject`. `version` must be HTTP/1.1.
    ///
    /// The `hyper_upgrade` example does this with hyper.
    pub fn upgrade(
        &self,
        method: &str,
        version: http::Version,
        path: &str,
        headers: http::HeaderMap,
    ) -> std::result::Result<Upgrade, Reject> {
        let request = crate::validate_request(method, version, path, headers)
            .map_err(|error| error.rejection())?;
        let accept = self.decide(&request)?;
        let (conn, fields) =
            Connection::server_upgraded(self.config.protocol.clone(), &request, accept, now())
                .map_err(|error| error.rejection())?;
        Ok(Upgrade {
            shared: Shared::new(conn, self.config.clone()),
            fields,
        })
    }

    /// A session on a stream whose opening handshake another HTTP server made entirely
    /// (see [`upgrade`](Self::upgrade) for one that Sockeye decides): an upgrade
    /// in hyper or axum, say. The session starts OPEN with this builder's settings; the
    /// request validation and the 101 response are the caller's
    /// ([`validate_request`](crate::validate_request) and
    /// [`accept_fields`](crate::accept_fields) make them as
    /// [`accept`](Self::accept) does). No extension is used (accept none, and no
    /// compression: `deflate` does not apply here), and TLS, if any, is the stream's.
    /// Must be called within a tokio runtime: the session's task is spawned on it.
    ///
    /// ```no_run
    /// # async fn run(upgraded: tokio::net::TcpStream) {
    /// // `upgraded`: the connection after the 101 response, e.g. hyper's `Upgraded`
    /// // wrapped in `hyper_util::rt::TokioIo`.
    /// let mut ws = sockeye::ServerBuilder::new().after_handshake(upgraded);
    /// while let Some(Ok(message)) = ws.next().await {
    ///     if ws.send(message).await.is_err() {
    ///         break;
    ///     }
    /// }
    /// # }
    /// ```
    pub fn after_handshake<S>(&self, stream: S) -> WebSocket
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        spawn_websocket(Shared::after_handshake(Role::Server, &self.config), stream)
    }

    /// [`after_handshake`](Self::after_handshake), with `endpoint`'s callbacks on the
    /// session's task (`on_open` first) instead of a `WebSocket`.
    pub fn after_handshake_endpoint<S, E>(&self, stream: S, endpoint: E) -> Session
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Endpoint,
    {
        spawn_endpoint(
            Shared::after_handshake(Role::Server, &self.config),
            stream,
            endpoint,
        )
    }

    /// Runs the opening handshake, then `endpoint`'s callbacks on the session's task.
    pub async fn accept_endpoint<S, E>(&self, stream: S, endpoint: E) -> Result<Session>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Endpoint,
    {
        let (shared, stream) = self.handshake(stream).await?;
        Ok(spawn_endpoint(shared, stream, endpoint))
    }

    /// Binds a TCP listener for a [`Server`] with these settings (a `wss://` server if
    /// `tls` is set).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let (shutdown, _) = watch::channel(false);
        Ok(Server {
            listener,
            builder: self,
            registry: Arc::new(Registry::default()),
            shutdown,
        })
    }
}

/// TLS settings (feature `tls`): with them, every accepted stream runs the TLS handshake
/// first, within the handshake timeout, and a session's close sends close_notify before
/// the TCP FIN.
#[cfg(feature = "tls")]
impl ServerBuilder {
    /// Serves `wss://` with this rustls configuration (certificate resolver, client
    /// authentication, protocol versions, ALPN: `http/1.1`, if any).
    pub fn tls(mut self, config: impl Into<Arc<rustls::ServerConfig>>) -> Self {
        self.tls = Some(config.into());
        self
    }

    /// Serves `wss://` with a PEM certificate chain (the server's certificate first, then
    /// any intermediates) and its PEM private key (PKCS#8, PKCS#1 or SEC1), no client
    /// authentication and ALPN `http/1.1`. Reads the files now: fails with
    /// [`Error::Tls`](crate::Error::Tls) if one cannot be read, holds nothing usable, or
    /// the key does not match the certificate.
    ///
    /// ```no_run
    /// # async fn run() -> sockeye::Result<()> {
    /// let server = sockeye::ServerBuilder::new()
    ///     .tls_pem("cert.pem", "key.pem")?
    ///     .bind("0.0.0.0:9443")
    ///     .await?;
    /// # drop(server);
    /// # Ok(()) }
    /// ```
    pub fn tls_pem(
        self,
        cert_path: impl AsRef<std::path::Path>,
        key_path: impl AsRef<std::path::Path>,
    ) -> Result<Self> {
        let config = crate::tls::server_config_from_pem(cert_path.as_ref(), key_path.as_ref())?;
        Ok(self.tls(config))
    }
}

/// The live sessions of a server, and the connections still in their handshake, for
/// graceful shutdown, the connection limit and the counts of [`ShutdownHandle`].
#[derive(Debug, Default)]
struct Registry {
    /// Connections taken from the listener, in all.
    accepted: AtomicU64,
    /// Connections answered 503 for `max_connections`, in all.
    refused: AtomicU64,
    /// Refusals still writing their response or waiting for the client to close.
    refusing: AtomicUsize,
    sessions: Mutex<HashMap<u64, Arc<Shared>>>,
    next_id: AtomicU64,
    emptied: Notify,
    /// Connections accepted whose session is not registered yet.
    handshakes: AtomicUsize,
    closing: AtomicBool,
    /// The shutdown timeout passed: handshakes still running are abandoned.
    aborting: AtomicBool,
    aborted: Notify,
}

/// Counts an accepted connection as handshaking until dropped (once its session is
/// registered, or its handshake failed).
struct Handshaking(Arc<Registry>);

impl Handshaking {
    fn start(registry: &Arc<Registry>) -> Handshaking {
        registry.handshakes.fetch_add(1, Ordering::SeqCst);
        Handshaking(registry.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        if self.0.handshakes.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.emptied.notify_waiters();
        }
    }
}

impl Registry {
    fn insert(&self, shared: Arc<Shared>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, shared.clone());
        // After inserting: either the shutdown saw this session, or this sees the shutdown.
        if self.closing.load(Ordering::SeqCst) {
            let _ = shared.close(CloseCode::GOING_AWAY, "server shutting down");
        }
        id
    }

    fn abort_handshakes(&self) {
        self.aborting.store(true, Ordering::SeqCst);
        self.aborted.notify_waiters();
    }

    async fn aborted(&self) {
        loop {
            let aborted = self.aborted.notified();
            if self.aborting.load(Ordering::SeqCst) {
                return;
            }
            aborted.await;
        }
    }

    fn remove(&self, id: u64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(&id);
        if sessions.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn all(&self) -> Vec<Arc<Shared>> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.values().cloned().collect()
    }

    fn len(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Connections held: open sessions and handshakes under way.
    fn connections(&self) -> usize {
        self.len() + self.handshakes.load(Ordering::SeqCst)
    }

    /// Waits until no session is live and no handshake is under way.
    async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.len() == 0 && self.handshakes.load(Ordering::SeqCst) == 0 {
                return;
            }
            emptied.await;
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        // Every handle and the server's own sender are gone: never stop.
        std::future::pending::<()>().await;
    }
}

/// An upgrade request that [`ServerBuilder::upgrade`] accepted: the 101 response's header
/// fields, and the session to start once that response is out and the connection handed
/// over.
pub struct Upgrade {
    shared: Arc<Shared>,
    fields: Vec<(String, String)>,
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade")
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl Upgrade {
    /// The header fields of the 101 response (RFC 6455 4.2.2), in order: Upgrade,
    /// Connection, Sec-WebSocket-Accept, the subprotocol and extensions agreed, and the
    /// `Accept`'s extra headers.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The subprotocol agreed, if any.
    pub fn subprotocol(&self) -> Option<String> {
        self.shared.lock().conn.subprotocol().map(str::to_owned)
    }

    /// Starts the session on the upgraded connection: a [`WebSocket`]. Must be called
    /// within a tokio runtime.
    pub fn websocket<S>(self, stream: S) -> WebSocket
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        spawn_websocket(self.shared, stream)
    }

    /// Starts the session on the upgraded connection with `endpoint`'s callbacks on its
    /// task. Must be called within a tokio runtime.
    pub fn endpoint<S, E>(self, stream: S, endpoint: E) -> Session
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Endpoint,
    {
        spawn_endpoint(self.shared, stream, endpoint)
    }
}

/// A WebSocket server on a TCP listener (`ws://`, or `wss://` with
/// `ServerBuilder::tls`): one task per connection, and a graceful
/// shutdown (stop accepting, 1001 Going Away to every open session, wait for their
/// closing handshakes up to the shutdown timeout, then drop the rest).
///
/// ```no_run
/// # async fn run() -> sockeye::Result<()> {
/// let server = sockeye::Server::bind("127.0.0.1:9001").await?;
/// let shutdown = server.shutdown_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     shutdown.shutdown();
/// });
/// server
///     .serve(|mut ws| async move {
///         while let Some(Ok(message)) = ws.recv().await {
///             if ws.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    builder: ServerBuilder,
    registry: Arc<Registry>,
    shutdown: watch::Sender<bool>,
}

/// A handle on a running [`Server`]: starts its graceful shutdown, and reads its live
/// counts (sessions, handshakes, accepted and refused connections); cloneable, usable
/// from any task, while the server serves and after.
///
/// ```no_run
/// # async fn run() -> sockeye::Result<()> {
/// let server = sockeye::Server::bind("127.0.0.1:9001").await?;
/// let handle = server.shutdown_handle();
/// tokio::spawn(server.serve(|_ws| async {}));
/// println!("{} open, {} refused", handle.sessions(), handle.refused());
/// handle.shutdown();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    shutdown: watch::Sender<bool>,
    registry: Arc<Registry>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &*self.shutdown.borrow())
            .field("sessions", &self.sessions())
            .field("handshakes", &self.handshakes())
            .field("accepted", &self.accepted())
            .field("refused", &self.refused())
            .finish()
    }
}

impl ShutdownHandle {
    /// Stops the server: it accepts no more connections, closes every open session with
    /// 1001 and returns from `serve` once they are closed or the shutdown timeout passed.
    pub fn shutdown(&self) {
        // `send` drops the value while nobody is subscribed, which is the case until
        // `serve` starts: store it regardless, so an early request is not lost.
        self.shutdown.send_replace(true);
    }

    /// Sessions open: the handshake completed and the transport is not dropped yet.
    pub fn sessions(&self) -> usize {
        self.registry.len()
    }

    /// Connections accepted and still in their opening handshake.
    pub fn handshakes(&self) -> usize {
        self.registry.handshakes.load(Ordering::SeqCst)
    }

    /// TCP connections taken from the listener since the server started, refused ones
    /// included.
    pub fn accepted(&self) -> u64 {
        self.registry.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused because [`ServerBuilder::max_connections`] was reached
    /// (answered 503, or closed without a response, see there).
    pub fn refused(&self) -> u64 {
        self.registry.refused.load(Ordering::Relaxed)
    }

    /// Bytes of output not yet written of each open session (queued in the core and in
    /// the driver's hands), for tests of the output bounds.
    #[doc(hidden)]
    pub fn write_buffers(&self) -> Vec<usize> {
        self.registry
            .all()
            .iter()
            .map(|shared| shared.lock().buffered())
            .collect()
    }
}

impl Server {
    /// Binds with the default settings.
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<Server> {
        ServerBuilder::new().bind(addr).await
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// A handle to shut the server down gracefully and read its live counts.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shutdown: self.shutdown.clone(),
            registry: self.registry.clone(),
        }
    }

    /// Number of sessions currently open.
    pub fn session_count(&self) -> usize {
        self.registry.len()
    }

    /// Accepts connections and runs `handler` on each WebSocket, each on its own task,
    /// until [`ShutdownHandle::shutdown`] is called; then shuts down gracefully.
    pub async fn serve<H, F>(self, handler: H) -> Result<()>
    where
        H: Fn(WebSocket) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.run(move |builder, stream, registry| {
            let handler = handler.clone();
            // Counted from the accept on, so a shutdown starting now waits for it.
            let handshaking = Handshaking::start(&registry);
            let handshake = builder.server_handshake(stream, registry.clone());
            async move {
                let (shared, stream) = handshake.await?;
                let id = registry.insert(shared.clone());
                drop(handshaking);
                let ws = WebSocket::new(shared.clone());
                // This mode has no on_open: the session is OPEN as soon as the handle exists.
                shared.lock().conn.open();
                tokio::spawn(async move {
                    driver::drive(shared, stream, Dispatch::Queue).await;
                    registry.remove(id);
                });
                handler(ws).await;
                Ok(())
            }
        })
        .await
    }

    /// Accepts connections and runs an [`Endpoint`] made by `make` for each, until
    /// shutdown.
    pub async fn serve_endpoints<M, E>(self, make: M) -> Result<()>
    where
        M: Fn(SocketAddr) -> E + Send + Sync + 'static,
        E: Endpoint,
    {
        let make = Arc::new(make);
        self.run(move |builder, stream, registry| {
            let make = make.clone();
            // Counted from the accept on, so a shutdown starting now waits for it.
            let handshaking = Handshaking::start(&registry);
            let peer = stream.peer_addr();
            let handshake = builder.server_handshake(stream, registry.clone());
            async move {
                let peer = peer?;
                let (shared, stream) = handshake.await?;
                let id = registry.insert(shared.clone());
                drop(handshaking);
                let endpoint = make(peer);
                driver::drive(shared, stream, Dispatch::Endpoint(Box::new(endpoint))).await;
                registry.remove(id);
                Ok(())
            }
        })
        .await
    }

    async fn run<C, F>(self, on_connection: C) -> Result<()>
    where
        C: Fn(ServerBuilder, tokio::net::TcpStream, Arc<Registry>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let mut stop = self.shutdown.subscribe();
        loop {
            tokio::select! {
                () = stopped(&mut stop) => break,
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(error) => {
                            // Out of file descriptors and the like: back off briefly
                            // instead of spinning.
                            debug!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    self.registry.accepted.fetch_add(1, Ordering::Relaxed);
                    if self.registry.connections() >= self.builder.max_connections {
                        debug!(%peer, max = self.builder.max_connections, "too many connections: refusing");
                        refuse(stream, &self.registry, self.builder.answers_refusals());
                        continue;
                    }
                    let task = on_connection(self.builder.clone(), stream, self.registry.clone());
                    tokio::spawn(async move {
                        if let Err(error) = task.await {
                            debug!(%peer, %error, "connection failed");
                        }
                    });
                }
            }
        }
        drop(self.listener);
        self.registry.closing.store(true, Ordering::SeqCst);
        let sessions = self.registry.all();
        info!(
            sessions = sessions.len(),
            "shutting down: closing sessions with 1001"
        );
        for shared in &sessions {
            let _ = shared.close(CloseCode::GOING_AWAY, "server shutting down");
        }
        let graceful =
            tokio::time::timeout(self.builder.shutdown_timeout, self.registry.wait_empty()).await;
        if graceful.is_err() {
            let left = self.registry.all();
            info!(
                sessions = left.len(),
                "shutdown timeout passed: dropping the rest"
            );
            for shared in left {
                shared.abort();
            }
            self.registry.abort_handshakes();
            self.registry.wait_empty().await;
        }
        Ok(())
    }
}

/// A server handshake's outcome: the session and its transport.
type Handshaken = (Arc<Shared>, Transport<tokio::net::TcpStream>);

/// Default of [`ServerBuilder::max_connections`].
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Refusals (503 for `max_connections`) running at once, at most.
const MAX_REFUSING: usize = 256;
/// How long a refusal waits for the client to close after the response.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Answers a connection over `max_connections` with 503 and closes it, on a task of its
/// own that lives one [`REFUSAL_LINGER`] at most.
fn refuse(mut stream: TcpStream, registry: &Arc<Registry>, answer: bool) {
    registry.refused.fetch_add(1, Ordering::Relaxed);
    if !answer {
        return;
    }
    if registry.refusing.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSING {
        registry.refusing.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let registry = registry.clone();
    tokio::spawn(async move {
        let mut response = Vec::new();
        encode_reject(&Reject::new(503, "too many connections"), &mut response);
        let answer = async {
            stream.write_all(&response).await?;
            stream.shutdown().await?;
            // Read until the client closes: closing with its request unread would reset
            // the connection, and the client could lose the response.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
        drop(stream);
        registry.refusing.fetch_sub(1, Ordering::SeqCst);
    });
}
