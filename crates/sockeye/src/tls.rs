//! TLS for `wss://` (feature `tls`): rustls over any stream, for both roles.
//!
//! The driver is generic over its stream, so TLS is only a wrapper around the transport:
//! the client runs the TLS handshake after connecting and before the opening handshake,
//! the server after accepting, both within the handshake timeout. Closing needs nothing
//! special: the driver shuts its stream down when the core says so, and shutting a TLS
//! stream down sends close_notify before the TCP FIN (server first, then the client after
//! the server, RFC 6455 7.1.1). A peer that drops the TCP connection without close_notify
//! makes the read fail, which the core reports as 1006 like any lost transport.

use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};

/// The ALPN protocol both roles offer: the opening handshake is HTTP/1.1 (RFC 6455 4.1).
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A session's transport: the stream itself, or TLS over it. The TLS state is boxed so
/// that plain sessions stay small.
pub(crate) enum Transport<S> {
    Plain(S),
    Tls(Box<tokio_rustls::TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Transport<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Transport<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    /// For TLS: close_notify first, then the stream's own shutdown (the TCP FIN).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// The cryptography: the process-wide default if the application installed one, else ring.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn tls_error(context: impl Into<String>, source: impl StdError + Send + Sync + 'static) -> Error {
    Error::Tls {
        context: context.into(),
        source: Arc::new(source),
    }
}

/// Turns the I/O error of a TLS handshake into [`Error::Tls`], keeping rustls's verdict
/// (an unknown issuer, a wrong name, an alert) as the source when there is one.
fn handshake_error(context: String, error: io::Error) -> Error {
    let verdict = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match verdict {
        Some(verdict) => tls_error(context, verdict),
        None => tls_error(context, error),
    }
}

// ----- client -----

/// Which certificates a client trusts.
#[derive(Clone, Debug, Default)]
pub(crate) enum ClientTls {
    /// The roots of the enabled features (`webpki-roots`, `native-roots`).
    #[default]
    DefaultRoots,
    /// Exactly these roots.
    Roots(Arc<RootCertStore>),
    /// The application's whole configuration.
    Config(Arc<ClientConfig>),
}

impl ClientTls {
    fn config(&self) -> Result<Arc<ClientConfig>> {
        match self {
            ClientTls::DefaultRoots => {
                // Built once per process: loading the platform's roots reads files, and a
                // shared configuration lets sessions resume earlier TLS sessions.
                static DEFAULT: OnceLock<Result<Arc<ClientConfig>>> = OnceLock::new();
                DEFAULT
                    .get_or_init(|| Ok(Arc::new(client_config(Arc::new(default_roots()?))?)))
                    .clone()
            }
            ClientTls::Roots(roots) => Ok(Arc::new(client_config(roots.clone())?)),
            ClientTls::Config(config) => Ok(config.clone()),
        }
    }

    /// Runs the client side of the TLS handshake on `stream` for `host` (sent as SNI
    /// unless it is an IP address, and checked against the server's certificate).
    pub(crate) async fn connect<S>(&self, host: &str, stream: S) -> Result<Transport<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.config()?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| tls_error(format!("name check of {host:?}"), e))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| handshake_error(format!("handshake with {host}"), e))?;
        Ok(Transport::Tls(Box::new(stream.into())))
    }
}

/// A client configuration trusting `roots`, with the safe protocol versions, ALPN
/// `http/1.1` and no client certificate.
fn client_config(roots: Arc<RootCertStore>) -> Result<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("client configuration", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(config)
}

/// The roots of the enabled features: Mozilla's (`webpki-roots`) and the platform's
/// (`native-roots`); with both, either may vouch for a server.
fn default_roots() -> Result<RootCertStore> {
    #[allow(unused_mut)]
    let mut roots = RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "while loading the platform's root certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "platform root certificates");
    }
    if roots.is_empty() {
        return Err(tls_error(
            "loading root certificates",
            io::Error::other(
                "none to trust: enable sockeye's `webpki-roots` or `native-roots` feature, \
                 or give the client its roots (ClientBuilder::tls_root_pem, tls_roots, \
                 tls_config)",
            ),
        ));
    }
    Ok(roots)
}

/// The certificates of a PEM file as a root store; an error if there is none.
pub(crate) fn roots_from_pem(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(format!("adding a root from {}", path.display()), e))?;
    }
    Ok(roots)
}

// ----- server -----

/// Runs the server side of the TLS handshake on an accepted stream.
pub(crate) async fn accept<S>(config: Arc<ServerConfig>, stream: S) -> Result<Transport<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = tokio_rustls::TlsAcceptor::from(config)
        .accept(stream)
        .await
        .map_err(|e| handshake_error("handshake with a client".to_owned(), e))?;
    Ok(Transport::Tls(Box::new(stream.into())))
}

/// A server configuration from a PEM certificate chain (the server's certificate first)
/// and a PEM private key (PKCS#8, PKCS#1 or SEC1), with ALPN `http/1.1` and no client
/// certificates.
pub(crate) fn server_config_from_pem(cert_path: &Path, key_path: &Path) -> Result<ServerConfig> {
    let chain = read_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| match e {
        pem::Error::NoItemsFound => tls_error(
            format!("loading {}", key_path.display()),
            io::Error::other("no private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file"),
        ),
        other => tls_error(format!("loading {}", key_path.display()), other),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("server configuration", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls_error(
                format!(
                    "pairing {} with {}",
                    cert_path.display(),
                    key_path.display()
                ),
                e,
            )
        })?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(config)
}

/// Every certificate of a PEM file, in order; an error if there is none.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let context = || format!("loading {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(context(), e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error(context(), e))?;
    if certs.is_empty() {
        return Err(tls_error(
            context(),
            io::Error::other("no CERTIFICATE in the file"),
        ));
    }
    Ok(certs)
}
