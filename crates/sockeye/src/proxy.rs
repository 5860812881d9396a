//! A client's way through a proxy: a tunnel to the server opened with an HTTP proxy's
//! CONNECT method (RFC 9110 9.3.6) or a SOCKS5 proxy's CONNECT command (RFC 1928), over
//! which TLS (for `wss://`) and the opening handshake then run as they would over a
//! direct connection.

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
        write!(f, "{:?}", redacted(&self.0))
    }
}

/// A proxy URL's parts: its scheme (before `://`), its user and password (before the
/// authority's last `@`: a password may hold an `@`), its `host[:port]`, and what follows
/// the authority (a path).
struct UrlParts<'a> {
    scheme: Option<&'a str>,
    credentials: Option<&'a str>,
    host_port: &'a str,
    path: &'a str,
}

fn url_parts(url: &str) -> UrlParts<'_> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((credentials, host_port)) => (Some(credentials), host_port),
        None => (None, authority),
    };
    UrlParts {
        scheme,
        credentials,
        host_port,
        path,
    }
}

/// A proxy URL with its user and password, if any, shown as `***`.
fn redacted(url: &str) -> String {
    let parts = url_parts(url);
    if parts.credentials.is_none() {
        return url.to_owned();
    }
    let scheme = parts
        .scheme
        .map(|scheme| format!("{scheme}://"))
        .unwrap_or_default();
    format!("{scheme}***@{}{}", parts.host_port, parts.path)
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
/// then upper case, except `HTTP_PROXY` (a CGI program finds a request's `Proxy` header
/// there, so a client of the server could pick its proxy: "httpoxy"), an empty value
/// counting as unset; a value without a scheme is an `http://` proxy. None for a host that `no_proxy` lists (see [`bypassed`]) or that is
/// this machine's own (`localhost`, `*.localhost`, a loopback address), which a proxy
/// elsewhere could not reach.
fn env_proxy(host: &str, secure: bool, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let first_set = |names: &[&str]| {
        names
            .iter()
            .filter_map(|name| var(name))
            .map(|value| value.trim().to_owned())
            .find(|value| !value.is_empty())
    };
    // Compared as names are: without brackets or a final dot, in lower case.
    let host = unbracketed(host).trim_end_matches('.').to_ascii_lowercase();
    if is_local(&host) {
        return None;
    }
    if let Some(list) = first_set(&["no_proxy", "NO_PROXY"])
        && bypassed(&host, &list)
    {
        return None;
    }
    let scheme_proxy = if secure {
        first_set(&["https_proxy", "HTTPS_PROXY"])
    } else {
        first_set(&["http_proxy"])
    };
    let url = scheme_proxy.or_else(|| first_set(&["all_proxy", "ALL_PROXY"]))?;
    Some(if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    })
}

/// Whether `host` (as `env_proxy` writes it) is this machine: a proxy elsewhere would
/// reach another one.
fn is_local(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the `no_proxy` list (comma-separated, case-insensitive) names `host`: `*`
/// names every host; a domain (`example.com`, `.example.com` or `*.example.com`) names
/// itself and its subdomains; an IP address names that address; a range (`10.0.0.0/8`,
/// `fd00::/8`) the addresses in it. `host` as `env_proxy` writes it.
fn bypassed(host: &str, list: &str) -> bool {
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
        let entry = unbracketed(entry);
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

/// A proxy: `http://`, `socks5://` or `socks5h://`, `[user[:password]@]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proxy {
    host: String,
    port: u16,
    protocol: Protocol,
}

/// A user name and password, percent-decoded: bytes, as RFC 1929 sends them.
type Credentials = (Vec<u8>, Vec<u8>);

/// The user name and password of a URL's `user[:password]`, each percent-decoded after
/// the split (RFC 3986 3.2.1: a `:` or `@` inside either is written `%3A` or `%40`), as
/// curl reads a proxy URL.
fn credentials(userinfo: &str) -> Credentials {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |part| percent_encoding::percent_decode_str(part).collect();
    (decode(user), decode(password))
}

/// How the tunnel is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Protocol {
    /// HTTP CONNECT; the URL's credentials as the `Proxy-Authorization` value (Basic, RFC
    /// 7617).
    Http { authorization: Option<String> },
    /// SOCKS5 CONNECT; the URL's credentials by user name and password (RFC 1929).
    /// `remote_names`: the proxy resolves the server's name (`socks5h://`), where
    /// `socks5://` has it resolved here and sends the address.
    Socks5 {
        credentials: Option<Credentials>,
        remote_names: bool,
    },
}

impl Protocol {
    /// The proxy's port when its URL names none.
    fn default_port(&self) -> u16 {
        match self {
            Protocol::Http { .. } => 80,
            Protocol::Socks5 { .. } => 1080,
        }
    }
}

impl Proxy {
    /// Parses a proxy URL: the scheme is `http://` (port 80 by default), `socks5://` or
    /// `socks5h://` (port 1080), a plain connection to the proxy either way; user and
    /// password, if any, are percent-decoded.
    pub(crate) fn parse(url: &str) -> Result<Proxy> {
        // The error shows the URL, but not its password.
        let invalid = |reason| Error::InvalidUrl {
            url: redacted(url),
            reason,
        };
        let UrlParts {
            scheme,
            credentials,
            host_port,
            ..
        } = url_parts(url);
        // SOCKS5 with the proxy resolving names (`socks5h`) or not; HTTP otherwise.
        let socks = match scheme.unwrap_or_default().to_ascii_lowercase().as_str() {
            "http" => None,
            "socks5" => Some(false),
            "socks5h" => Some(true),
            _ => {
                return Err(invalid(
                    "a proxy URL must be http://, socks5:// or socks5h://HOST[:PORT]",
                ));
            }
        };
        let authority: http::uri::Authority = host_port
            .parse()
            .map_err(|_| invalid("the proxy's host is not valid"))?;
        let host = unbracketed(authority.host()).to_owned();
        if host.is_empty() {
            return Err(invalid("the proxy URL has no host"));
        }
        let credentials = credentials.map(self::credentials);
        let protocol = match socks {
            None => Protocol::Http {
                authorization: credentials.map(|(user, password)| {
                    let pair = [user.as_slice(), b":", password.as_slice()].concat();
                    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                    format!("Basic {encoded}")
                }),
            },
            Some(remote_names) => {
                // RFC 1929 2: each is one length octet and at most 255 octets.
                if credentials
                    .as_ref()
                    .is_some_and(|(user, password)| user.len() > 255 || password.len() > 255)
                {
                    return Err(invalid(
                        "a SOCKS5 user name or password is longer than 255 bytes",
                    ));
                }
                Protocol::Socks5 {
                    credentials,
                    remote_names,
                }
            }
        };
        Ok(Proxy {
            host,
            port: authority.port_u16().unwrap_or(protocol.default_port()),
            protocol,
        })
    }

    fn addr(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Connects to the proxy and asks it for a tunnel to `host:port`; the tunnel once the
    /// proxy opened it.
    pub(crate) async fn tunnel(&self, host: &str, port: u16) -> Result<TcpStream> {
        match &self.protocol {
            Protocol::Http { authorization } => {
                let stream = self.connect().await?;
                self.http_connect(stream, host, port, authorization.as_deref())
                    .await
            }
            Protocol::Socks5 {
                credentials,
                remote_names,
            } => {
                // A name to send as an address is resolved before the proxy is reached:
                // one that does not resolve costs no connection.
                let target = socks_target(host, port, *remote_names).await?;
                let stream = self.connect().await?;
                self.socks_connect(stream, &target, credentials.as_ref())
                    .await
            }
        }
    }

    /// A TCP connection to the proxy.
    async fn connect(&self) -> Result<TcpStream> {
        tcp_connect(&self.host, self.port).await
    }

    /// An error of this proxy: it did not open the tunnel, for `reason`.
    fn refused(&self, reason: String) -> Error {
        Error::Proxy {
            addr: self.addr(),
            reason,
        }
    }

    /// The error of a read or write of the exchange with the proxy: `what` failed.
    fn failed(&self, what: &'static str) -> impl Fn(std::io::Error) -> Error + '_ {
        move |error| self.refused(format!("{what} failed: {error}"))
    }

    /// The next `N` bytes of the proxy's answer (`what`, for the error).
    async fn read_array<const N: usize>(
        &self,
        stream: &mut TcpStream,
        what: &'static str,
    ) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        stream
            .read_exact(&mut bytes)
            .await
            .map_err(self.failed(what))?;
        Ok(bytes)
    }

    /// HTTP CONNECT: the tunnel once the proxy answered with a 2xx status.
    async fn http_connect(
        &self,
        mut stream: TcpStream,
        host: &str,
        port: u16,
        authorization: Option<&str>,
    ) -> Result<TcpStream> {
        let target = join_host_port(host, port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(self.failed("writing CONNECT"))?;

        let mut head = Vec::with_capacity(512);
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if head.len() >= MAX_HEAD {
                return Err(self.refused(format!("its answer's head passed {MAX_HEAD} bytes")));
            }
            let mut chunk = [0u8; 1024];
            let read = stream
                .read(&mut chunk)
                .await
                .map_err(self.failed("reading its answer"))?;
            if read == 0 {
                return Err(self.refused("it closed the connection without an answer".into()));
            }
            head.extend_from_slice(&chunk[..read]);
        };
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(&head[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(self.refused("its answer is not HTTP".into())),
        }
        let status = response.code.unwrap_or_default();
        if !(200..300).contains(&status) {
            let reason = response.reason.unwrap_or_default();
            return Err(self.refused(format!("HTTP status {status} {reason}")));
        }
        // The server speaks only after our request: anything more came from the proxy.
        if head.len() > end {
            return Err(self.refused("it sent data before the tunnel was used".into()));
        }
        Ok(stream)
    }

    /// SOCKS5 CONNECT (RFC 1928): a greeting offering one method (no authentication, or
    /// user name and password when the URL has them), the credentials (RFC 1929), the
    /// request for `target`, then the proxy's reply; the tunnel once it succeeded.
    async fn socks_connect(
        &self,
        mut stream: TcpStream,
        target: &[u8],
        credentials: Option<&Credentials>,
    ) -> Result<TcpStream> {
        const VERSION: u8 = 5;
        const NO_AUTHENTICATION: u8 = 0x00;
        const USER_PASSWORD: u8 = 0x02;
        let method = match credentials {
            Some(_) => USER_PASSWORD,
            None => NO_AUTHENTICATION,
        };
        // 3: the version, the number of methods, the methods.
        stream
            .write_all(&[VERSION, 1, method])
            .await
            .map_err(self.failed("writing the greeting"))?;
        let choice: [u8; 2] = self
            .read_array(&mut stream, "reading its choice of method")
            .await?;
        if choice[0] != VERSION {
            return Err(self.refused("its answer is not SOCKS5".into()));
        }
        if choice[1] != method {
            return Err(self.refused(match choice[1] {
                0xff => "it takes none of the authentication methods offered".into(),
                other => format!("it chose authentication method {other:#04x}, not offered"),
            }));
        }
        if let Some((user, password)) = credentials {
            // RFC 1929 2: version 1, then each as a length octet and its bytes (at most
            // 255, checked when the URL was parsed).
            let mut request = vec![1, user.len() as u8];
            request.extend_from_slice(user);
            request.push(password.len() as u8);
            request.extend_from_slice(password);
            stream
                .write_all(&request)
                .await
                .map_err(self.failed("writing the user name and password"))?;
            let status: [u8; 2] = self
                .read_array(
                    &mut stream,
                    "reading its answer to the user name and password",
                )
                .await?;
            if status[1] != 0 {
                return Err(self.refused("it refused the user name and password".into()));
            }
        }
        // 4: CONNECT to the target; 6: the reply, the address the proxy bound after it.
        let mut request = vec![VERSION, 1, 0];
        request.extend_from_slice(target);
        stream
            .write_all(&request)
            .await
            .map_err(self.failed("writing the CONNECT request"))?;
        let head: [u8; 4] = self.read_array(&mut stream, "reading its reply").await?;
        if head[0] != VERSION {
            return Err(self.refused("its reply is not SOCKS5".into()));
        }
        if head[1] != 0 {
            let meaning = match head[1] {
                1 => "general SOCKS server failure",
                2 => "connection not allowed by ruleset",
                3 => "network unreachable",
                4 => "host unreachable",
                5 => "connection refused",
                6 => "TTL expired",
                7 => "command not supported",
                8 => "address type not supported",
                _ => "unassigned",
            };
            return Err(self.refused(format!("SOCKS5 reply {:#04x}: {meaning}", head[1])));
        }
        let bound = match head[3] {
            1 => 4,
            4 => 16,
            3 => {
                let [len] = self.read_array(&mut stream, "reading its reply").await?;
                usize::from(len)
            }
            other => {
                return Err(self.refused(format!(
                    "its reply has an unknown address type {other:#04x}"
                )));
            }
        };
        let mut rest = vec![0u8; bound + 2];
        stream
            .read_exact(&mut rest)
            .await
            .map_err(self.failed("reading its reply"))?;
        Ok(stream)
    }
}

/// The SOCKS5 address of `host:port` (RFC 1928 5): an IP address as it is; a name sent
/// to the proxy to resolve when `remote_names`, else resolved here to its first address.
async fn socks_target(host: &str, port: u16, remote_names: bool) -> Result<Vec<u8>> {
    let ip = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) if remote_names => {
            let len = u8::try_from(host.len()).map_err(|_| Error::InvalidUrl {
                url: host.to_owned(),
                reason: "a host name sent to a SOCKS5 proxy is at most 255 bytes",
            })?;
            let mut target = vec![3, len];
            target.extend_from_slice(host.as_bytes());
            target.extend_from_slice(&port.to_be_bytes());
            return Ok(target);
        }
        Err(_) => {
            let unresolved = |source| connect_error(host, port, source);
            tokio::net::lookup_host((host, port))
                .await
                .map_err(unresolved)?
                .next()
                .ok_or_else(|| unresolved(std::io::ErrorKind::NotFound.into()))?
                .ip()
        }
    };
    let mut target = match ip {
        std::net::IpAddr::V4(ip) => [&[1][..], &ip.octets()].concat(),
        std::net::IpAddr::V6(ip) => [&[4][..], &ip.octets()].concat(),
    };
    target.extend_from_slice(&port.to_be_bytes());
    Ok(target)
}

/// A TCP connection to `host:port` (a name is resolved, and its addresses tried in turn),
/// straight to a server or to a proxy.
pub(crate) async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream> {
    TcpStream::connect((host, port))
        .await
        .map_err(|source| connect_error(host, port, source))
}

/// The error of a TCP connection to `host:port` that could not be made, or whose name
/// did not resolve: it names the address tried.
fn connect_error(host: &str, port: u16, source: std::io::Error) -> Error {
    Error::Connect {
        addr: join_host_port(host, port),
        source: Arc::new(source),
    }
}

/// A URL's host without the brackets of an IPv6 address (`[::1]` gives `::1`), as the
/// socket API and [`join_host_port`] take it.
pub(crate) fn unbracketed(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// `host:port`, with an IPv6 address in brackets.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
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
        // Never HTTP_PROXY, which a CGI program's request can set ("httpoxy").
        let cgi = [("HTTP_PROXY", "http://chosen.by.a.request:80")];
        assert_eq!(from(&cgi, "example.com", false), None);
        let cgi = [cgi[0], ("ALL_PROXY", "http://any:8080")];
        assert_eq!(
            from(&cgi, "example.com", false).as_deref(),
            Some("http://any:8080")
        );
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
                protocol: Protocol::Http {
                    authorization: None
                },
            }
        );
        let proxy = Proxy::parse("HTTP://user:secret@[::1]/").unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("::1", 80));
        assert_eq!(proxy.addr(), "[::1]:80");
        // RFC 7617: base64 of "user:secret".
        assert_eq!(
            proxy.protocol,
            Protocol::Http {
                authorization: Some("Basic dXNlcjpzZWNyZXQ=".into())
            }
        );
        // Percent-decoded after the split at the first `:`: base64 of "user:p@ss:w%rd".
        let proxy = Proxy::parse("http://us%65r:p%40ss%3Aw%25rd@proxy.example").unwrap();
        assert_eq!(
            proxy.protocol,
            Protocol::Http {
                authorization: Some("Basic dXNlcjpwQHNzOnclcmQ=".into())
            }
        );
        // SOCKS5: port 1080 by default; socks5h has the proxy resolve names.
        let proxy = Proxy::parse("socks5://127.0.0.1").unwrap();
        assert_eq!(proxy.addr(), "127.0.0.1:1080");
        assert_eq!(
            proxy.protocol,
            Protocol::Socks5 {
                credentials: None,
                remote_names: false
            }
        );
        let proxy = Proxy::parse("SOCKS5H://user:pass:word@proxy.example:9050").unwrap();
        assert_eq!(proxy.addr(), "proxy.example:9050");
        assert_eq!(
            proxy.protocol,
            Protocol::Socks5 {
                credentials: Some((b"user".to_vec(), b"pass:word".to_vec())),
                remote_names: true
            }
        );
        let proxy = Proxy::parse("socks5://user@proxy.example").unwrap();
        assert_eq!(
            proxy.protocol,
            Protocol::Socks5 {
                credentials: Some((b"user".to_vec(), Vec::new())),
                remote_names: false
            }
        );
        // A `:` in the user name is `%3A`; decoding may give bytes that are not UTF-8.
        let proxy = Proxy::parse("socks5://a%3Ab:%FF%00@proxy.example").unwrap();
        assert_eq!(
            proxy.protocol,
            Protocol::Socks5 {
                credentials: Some((b"a:b".to_vec(), vec![0xff, 0])),
                remote_names: false
            }
        );
        // RFC 1929's 255 bytes count the decoded name: 200 `%41` are 200 bytes.
        let encoded = format!("socks5://{}:x@proxy.example", "%41".repeat(200));
        match Proxy::parse(&encoded).unwrap().protocol {
            Protocol::Socks5 {
                credentials: Some((user, _)),
                ..
            } => assert_eq!(user, vec![b'A'; 200]),
            other => panic!("{other:?}"),
        }
        // The password stays out of Debug output (a builder's, a log line's).
        let url = ProxyUrl("http://user:secret@127.0.0.1:3128".into());
        assert_eq!(format!("{url:?}"), "\"http://***@127.0.0.1:3128\"");
        let url = ProxyUrl("http://127.0.0.1:3128".into());
        assert_eq!(format!("{url:?}"), "\"http://127.0.0.1:3128\"");
        // A password holding an `@` is hidden whole; a path is kept.
        let url = ProxyUrl("socks5h://user:p@ss@proxy.example:1080/".into());
        assert_eq!(format!("{url:?}"), "\"socks5h://***@proxy.example:1080/\"");
        // An invalid URL's error does not show the password either.
        let long_user_with_password = format!("socks5://{}:s3cret@proxy.example", "u".repeat(256));
        for bad in [
            "http://user:s3cret@",
            "ftp://user:s3cret@proxy.example",
            "user:s3cret@proxy.example:3128",
            long_user_with_password.as_str(),
        ] {
            match Proxy::parse(bad) {
                Err(Error::InvalidUrl { url, .. }) => {
                    assert!(url.contains("***@") && !url.contains("s3cret"), "{url}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let long_user = format!("socks5://{}:x@proxy.example", "u".repeat(256));
        for bad in [
            "https://proxy.example",
            "socks4://127.0.0.1:1080",
            "proxy.example:3128",
            "http://",
            "http://user@",
            "socks5://",
            long_user.as_str(),
        ] {
            assert!(
                matches!(Proxy::parse(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    /// The address a SOCKS5 request names (RFC 1928 5): IPv4, IPv6, a name sent as it is
    /// with socks5h, resolved here with socks5.
    #[tokio::test]
    async fn socks_targets_are_addresses_or_names() {
        assert_eq!(
            socks_target("127.0.0.1", 80, true).await.unwrap(),
            [1, 127, 0, 0, 1, 0, 80]
        );
        let mut v6 = vec![4];
        v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0x1f, 0x90]);
        assert_eq!(socks_target("::1", 8080, false).await.unwrap(), v6);
        let mut name = vec![3, 12];
        name.extend_from_slice(b"example.test");
        name.extend_from_slice(&[0x01, 0xbb]);
        assert_eq!(socks_target("example.test", 443, true).await.unwrap(), name);
        // Resolved here: localhost is a loopback address of either family.
        let local = socks_target("localhost", 80, false).await.unwrap();
        let mut v6_loopback = vec![4];
        v6_loopback.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        v6_loopback.extend_from_slice(&[0, 80]);
        assert!(
            local == [1, 127, 0, 0, 1, 0, 80] || local == v6_loopback,
            "{local:?}"
        );
        let too_long = "a".repeat(256);
        assert!(matches!(
            socks_target(&too_long, 80, true).await,
            Err(Error::InvalidUrl { .. })
        ));
    }
}
