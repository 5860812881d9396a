//! A client's way through an HTTP proxy: a tunnel to the server opened with the proxy's
//! CONNECT method (RFC 9110 9.3.6), over which TLS (for `wss://`) and the opening handshake
//! then run as they would over a direct connection.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The largest answer head a proxy may send to CONNECT.
const MAX_HEAD: usize = 8 * 1024;

/// A proxy URL as the application gave it, whose Debug form hides the credentials.
#[derive(Clone, Default)]
pub(crate) struct ProxyUrl(pub(crate) String);

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once('@') {
            Some((before, after)) => {
                let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
                write!(f, "\"{scheme}://***@{after}\"")
            }
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// An `http://[user[:password]@]host[:port]` proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proxy {
    host: String,
    port: u16,
    /// The `Proxy-Authorization` value, for a URL with credentials (Basic, RFC 7617).
    authorization: Option<String>,
}

impl Proxy {
    /// Parses a proxy URL: the scheme must be `http://` (a plain connection to the proxy),
    /// the port defaults to 80, and user and password, if any, are sent as written.
    pub(crate) fn parse(url: &str) -> Result<Proxy> {
        let invalid = |reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            _ => return Err(invalid("a proxy URL must be http://HOST[:PORT]")),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let authority: http::uri::Authority = host_port
            .parse()
            .map_err(|_| invalid("the proxy's host is not valid"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(invalid("the proxy URL has no host"));
        }
        let authorization = credentials.map(|credentials| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            format!("Basic {encoded}")
        });
        Ok(Proxy {
            host,
            port: authority.port_u16().unwrap_or(80),
            authorization,
        })
    }

    fn addr(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Connects to the proxy and asks it for a tunnel to `host:port`; the tunnel once the
    /// proxy answered with a 2xx status.
    pub(crate) async fn tunnel(&self, host: &str, port: u16) -> Result<TcpStream> {
        let addr = self.addr();
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| Error::Connect {
                addr: addr.clone(),
                source: Arc::new(source),
            })?;
        let target = join_host_port(host, port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        let refused = |reason: String| Error::Proxy {
            addr: addr.clone(),
            reason,
        };
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|error| refused(format!("writing CONNECT failed: {error}")))?;

        let mut head = Vec::with_capacity(512);
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if head.len() >= MAX_HEAD {
                return Err(refused(format!(
                    "its answer's head passed {MAX_HEAD} bytes"
                )));
            }
            let mut chunk = [0u8; 1024];
            let read = stream
                .read(&mut chunk)
                .await
                .map_err(|error| refused(format!("reading its answer failed: {error}")))?;
            if read == 0 {
                return Err(refused("it closed the connection without an answer".into()));
            }
            head.extend_from_slice(&chunk[..read]);
        };
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(&head[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(refused("its answer is not HTTP".into())),
        }
        let status = response.code.unwrap_or_default();
        if !(200..300).contains(&status) {
            let reason = response.reason.unwrap_or_default();
            return Err(refused(format!("HTTP status {status} {reason}")));
        }
        // The server speaks only after our request: anything more came from the proxy.
        if head.len() > end {
            return Err(refused("it sent data before the tunnel was used".into()));
        }
        Ok(stream)
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_give_host_port_and_credentials() {
        let proxy = Proxy::parse("http://proxy.example:3128").unwrap();
        assert_eq!(
            proxy,
            Proxy {
                host: "proxy.example".into(),
                port: 3128,
                authorization: None,
            }
        );
        let proxy = Proxy::parse("HTTP://user:secret@[::1]/").unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("::1", 80));
        assert_eq!(proxy.addr(), "[::1]:80");
        // RFC 7617: base64 of "user:secret".
        assert_eq!(
            proxy.authorization.as_deref(),
            Some("Basic dXNlcjpzZWNyZXQ=")
        );
        // The password stays out of Debug output (a builder's, a log line's).
        let url = ProxyUrl("http://user:secret@127.0.0.1:3128".into());
        assert_eq!(format!("{url:?}"), "\"http://***@127.0.0.1:3128\"");
        let url = ProxyUrl("http://127.0.0.1:3128".into());
        assert_eq!(format!("{url:?}"), "\"http://127.0.0.1:3128\"");
        for bad in [
            "https://proxy.example",
            "socks5://127.0.0.1:1080",
            "proxy.example:3128",
            "http://",
            "http://user@",
        ] {
            assert!(
                matches!(Proxy::parse(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
