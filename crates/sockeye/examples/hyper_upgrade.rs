//! WebSocket on an HTTP server of its own: hyper serves the HTTP requests, and the
//! WebSocket upgrades it hands over become Sockeye sessions (an echo here).
//! `ServerBuilder::upgrade` checks and decides each upgrade request as `sockeye::Server`
//! would (the same HTTP statuses for bad ones, the `on_request` callback, compression)
//! and gives the 101 response's headers; the session starts on the connection hyper
//! hands over.
//!
//! ```sh
//! cargo run -p sockeye --example hyper_upgrade         # http://127.0.0.1:9002
//! cargo run -p sockeye --example client -- ws://127.0.0.1:9002/ws
//! curl http://127.0.0.1:9002/                          # a plain HTTP answer
//! ```

use std::convert::Infallible;
use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:9002")).await?;
    println!(
        "HTTP on http://{0}/, WebSocket echo on ws://{0}/ws",
        listener.local_addr()?
    );
    serve(listener).await
}

/// Serves HTTP/1.1 on `listener`'s connections, each on a task of its own.
pub(crate) async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                // Keeps the connection for the upgrade once the 101 response is out.
                .with_upgrades();
            if let Err(error) = connection.await {
                eprintln!("HTTP connection failed: {error}");
            }
        });
    }
}

/// Upgrades requests for `/ws` that ask for it; answers every other request itself.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/ws" && request.headers().contains_key(UPGRADE) {
        return Ok(upgrade(request));
    }
    Ok(Response::new(Full::new(Bytes::from_static(
        b"a WebSocket echo is at /ws\n",
    ))))
}

/// The settings of the WebSocket sessions: compression when the client offers it, and the
/// `chat` subprotocol when it asks for it (`on_request` may also refuse a request, e.g.
/// by its `Origin`).
static WEBSOCKETS: LazyLock<sockeye::ServerBuilder> = LazyLock::new(|| {
    sockeye::ServerBuilder::new()
        .deflate(true)
        .on_request(|request| {
            Ok(sockeye::Accept {
                subprotocol: request.select_subprotocol(&["chat"]),
                ..sockeye::Accept::default()
            })
        })
});

/// Checks the upgrade request as RFC 6455 4.2.1 asks and decides it with the settings
/// above, answers 101 with the headers of 4.2.2 (or the refusal's status, headers and
/// body), and runs the session once hyper hands the connection over.
fn upgrade(mut request: Request<Incoming>) -> Response<Full<Bytes>> {
    let upgrade = WEBSOCKETS.upgrade(
        request.method().as_str(),
        request.version(),
        request.uri().path(),
        request.headers().clone(),
    );
    let (status, fields, body, upgrade) = match upgrade {
        Ok(upgrade) => (101, upgrade.fields().to_vec(), Bytes::new(), Some(upgrade)),
        // 400, 405, 426 or 505, with the reason as the body.
        Err(reject) => (reject.status, reject.headers, reject.body, None),
    };
    if let Some(upgrade) = upgrade {
        let upgrading = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let upgraded = match upgrading.await {
                Ok(upgraded) => upgraded,
                Err(error) => return eprintln!("upgrade failed: {error}"),
            };
            let mut ws = upgrade.websocket(TokioIo::new(upgraded));
            while let Some(Ok(message)) = ws.next().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            println!("session closed: {}", ws.session().closed().await);
        });
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    // The 101's fields were checked by Sockeye and the refusals are its own (the callback
    // above refuses nothing), so every name and value converts; a callback's `Reject`
    // with a header hyper cannot carry would lose that header here.
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
