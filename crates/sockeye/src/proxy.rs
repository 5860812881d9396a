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

/// How a client reaches a server: straight, through the proxy the application named, or
/// through the one the environment names for that server.
#[derive(Clone, Debug, Default)]
pub(crate) enum Route {
    #[default]
    Direct,
    Proxy(ProxyUrl),
    FromEnv,
}

impl Route {
    /// The proxy URL for a connection to `host` (`secure`: a `wss://` URL), if any. The
    /// environment is read at each connection, so a `Reconnect` follows its changes.
    pub(crate) fn proxy_for(&self, host: &str, secure: bool) -> Option<String> {
        match self {
            Route::Direct => None,
            Route::Proxy(url) => Some(url.0.clone()),
            Route::FromEnv => env_proxy(host, secure, |name| std::env::var(name).ok()),
        }
    }
}

/// The proxy that the environment names for `host`, read through `var`, as curl and most
/// HTTP clients read it: `https_proxy` for `wss://` and `http_proxy` for `ws://` (a
/// WebSocket URL's scheme stands for HTTP's), else `all_proxy`, each in lower case first,
/// then upper case, an empty value counting as unset; a value without a scheme is an
/// `http://` proxy. None for a host that `no_proxy` lists (see [`bypassed`]) or that is
/// this machine's own (`localhost`, `*.localhost`, a loopback address), which a proxy
/// elsewhere could not reach.
fn env_proxy(host: &str, secure: bool, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let first_set = |names: [&str; 2]| {
        names
            .into_iter()
            .filter_map(&var)
            .map(|value| value.trim().to_owned())
            .find(|value| !value.is_empty())
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if is_local(host) {
        return None;
    }
    if let Some(list) = first_set(["no_proxy", "NO_PROXY"])
        && bypassed(host, &list)
    {
        return None;
    }
    let scheme_proxy = if secure {
        first_set(["https_proxy", "HTTPS_PROXY"])
    } else {
        first_set(["http_proxy", "HTTP_PROXY"])
    };
    let url = scheme_proxy.or_else(|| first_set(["all_proxy", "ALL_PROXY"]))?;
    Some(if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    })
}

/// Whether `host` is this machine: a proxy elsewhere would reach another one.
fn is_local(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the `no_proxy` list (comma-separated, case-insensitive) names `host`: `*`
/// names every host; a domain (`example.com`, `.example.com` or `*.example.com`) names
/// itself and its subdomains; an IP address names that address; a range (`10.0.0.0/8`,
/// `fd00::/8`) the addresses in it.
fn bypassed(host: &str, list: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<std::net::IpAddr>().ok();
    list.split(',').map(str::trim).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            return match (ip, net.parse::<std::net::IpAddr>(), bits.parse::<u32>()) {
                (Some(ip), Ok(net), Ok(bits)) => in_range(ip, net, bits),
                _ => false,
            };
        }
        let entry = entry.trim_start_matches('*').trim_start_matches('.');
        let entry = entry.trim_start_matches('[').trim_end_matches(']');
        if entry.is_empty() {
            return false;
        }
        match (ip, entry.parse::<std::net::IpAddr>()) {
            (Some(ip), Ok(named)) => ip == named,
            (Some(_), Err(_)) | (None, Ok(_)) => false,
            (None, Err(_)) => {
                host == entry
                    || host
                        .strip_suffix(entry)
                        .is_some_and(|rest| rest.ends_with('.'))
            }
        }
    })
}

/// Whether `ip` is in the range of `net`'s first `bits` bits (both of one family).
fn in_range(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u32) -> bool {
    use std::net::IpAddr;
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            (u128::from(u32::from(ip)), u128::from(u32::from(net)), 32)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => (u128::from(ip), u128::from(net), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    // The bits below the prefix are ignored on both sides.
    let ignored = width - bits;
    ip.checked_shr(ignored).unwrap_or(0) == net.checked_shr(ignored).unwrap_or(0)
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

    /// `env_proxy` with the given variables set, and no other.
    fn from(vars: &[(&str, &str)], host: &str, secure: bool) -> Option<String> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        env_proxy(host, secure, |name| vars.get(name).cloned())
    }

    #[test]
    fn the_environment_names_a_proxy_for_each_scheme() {
        let http = [("http_proxy", "http://plain:3128")];
        assert_eq!(
            from(&http, "example.com", false).as_deref(),
            Some("http://plain:3128")
        );
        // http_proxy is not for wss:// URLs.
        assert_eq!(from(&http, "example.com", true), None);
        let both = [
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("all_proxy", "http://any:8080"),
        ];
        // Lower case first; all_proxy where the scheme has none.
        assert_eq!(
            from(&both, "example.com", true).as_deref(),
            Some("http://lower:3128")
        );
        assert_eq!(
            from(&both, "example.com", false).as_deref(),
            Some("http://any:8080")
        );
        assert_eq!(
            from(&[("HTTPS_PROXY", "http://upper:3128")], "example.com", true).as_deref(),
            Some("http://upper:3128")
        );
        // No scheme: an http:// proxy. An empty value is no value.
        assert_eq!(
            from(
                &[("http_proxy", " "), ("ALL_PROXY", "proxy.internal:3128")],
                "example.com",
                false
            )
            .as_deref(),
            Some("http://proxy.internal:3128")
        );
        assert_eq!(from(&[], "example.com", false), None);
    }

    #[test]
    fn this_machine_and_the_hosts_no_proxy_names_are_reached_directly() {
        let proxy = ("all_proxy", "http://proxy.internal:3128");
        for local in [
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "127.0.0.1",
            "127.8.0.1",
            "::1",
            "[::1]",
        ] {
            assert_eq!(from(&[proxy], local, false), None, "{local}");
        }
        let listed =
            |list: &str, host: &str| from(&[proxy, ("no_proxy", list)], host, true).is_none();
        assert!(listed("*", "example.com"));
        assert!(listed("example.com", "example.com"));
        assert!(listed("example.com", "API.Example.com"));
        assert!(!listed("example.com", "badexample.com"));
        assert!(!listed("api.example.com", "example.com"));
        assert!(listed("other.org, .example.com", "api.example.com"));
        assert!(listed("*.example.com", "api.example.com"));
        assert!(listed("192.168.1.5", "192.168.1.5"));
        assert!(!listed("192.168.1.5", "192.168.1.50"));
        assert!(listed("10.0.0.0/8", "10.1.2.3"));
        assert!(!listed("10.0.0.0/8", "11.0.0.1"));
        assert!(listed("0.0.0.0/0", "203.0.113.9"));
        assert!(listed("fd00::/8", "fd12::1"));
        assert!(!listed("fd00::/8", "fe80::1"));
        assert!(listed("[2001:db8::1]", "2001:db8::1"));
        // A range of the other family, a bad range, an empty entry: no match.
        assert!(!listed("10.0.0.0/8", "fd12::1"));
        assert!(!listed("10.0.0.0/40, 10.0.0.0/x, ,.", "10.1.2.3"));
        // An address is not a name, nor a name an address.
        assert!(!listed("1.2.3.4", "host1.2.3.4"));
        // Upper case when lower case is unset.
        assert!(from(&[proxy, ("NO_PROXY", "example.com")], "example.com", true).is_none());
        assert!(from(&[proxy], "example.com", true).is_some());
    }

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
