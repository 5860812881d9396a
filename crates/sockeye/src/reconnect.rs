//! A client that reconnects after abnormal closures (RFC 6455 7.2.3).
//!
//! The decisions — whether a closure calls for a new attempt, and how long to wait — are
//! the protocol core's [`ReconnectPolicy`]; this module only waits and connects. The
//! randomness is injected (a seeded [`StdRng`] gives a reproducible schedule) and the
//! waiting uses tokio's clock, so tests run the schedule under paused time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rand::rngs::StdRng;
use sockeye_proto::{CloseInfo, State};
pub use sockeye_proto::{ReconnectOn, ReconnectPolicy};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use crate::client::{ClientBuilder, connect_failure, connector};
use crate::endpoint::Endpoint;
use crate::error::Result;

/// Keeps a client connected: connects, runs a fresh [`Endpoint`] on each session, and
/// after a closure that calls for it (1006 abnormal, 1001 going away, 1012 restart, 1013
/// try again later, ... as the policy says) waits a random first delay (default uniform in
/// 0-5 s), then truncated binary exponential backoff with jitter, and connects again. A
/// normal 1000 close, a refusal (1002, 1003, 1008, ...) or a close started locally ends
/// it.
///
/// ```no_run
/// use sockeye::{Endpoint, Message, Session};
/// use sockeye::reconnect::Reconnect;
///
/// struct Printer;
/// impl Endpoint for Printer {
///     fn on_message(&mut self, _session: &Session, message: Message) {
///         println!("{message:?}");
///     }
/// }
/// # async fn run() {
/// let last = Reconnect::new(sockeye::ClientBuilder::new(), "ws://127.0.0.1:9001/feed")
///     .run(|_attempt| Printer)
///     .await;
/// println!("gave up: {last}");
/// # }
/// ```
pub struct Reconnect {
    builder: ClientBuilder,
    url: String,
    policy: ReconnectPolicy,
    rng: StdRng,
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("url", &self.url)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// One connection attempt, as reported to the endpoint factory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// 0 for the first connection, then 1, 2, ... for each reconnection.
    pub number: u32,
    /// How long was waited before this attempt.
    pub delay: Duration,
}

impl Reconnect {
    /// A reconnecting client for `url` with the default policy and an OS-seeded generator.
    pub fn new(builder: ClientBuilder, url: impl Into<String>) -> Reconnect {
        Reconnect {
            builder,
            url: url.into(),
            policy: ReconnectPolicy::default(),
            rng: rand::make_rng(),
        }
    }

    /// Replaces the policy (delays, cap, attempts, which closures reconnect).
    pub fn policy(mut self, policy: ReconnectPolicy) -> Reconnect {
        self.policy = policy;
        self
    }

    /// Replaces the random generator, e.g. with a seeded one for a reproducible schedule.
    pub fn rng(mut self, rng: StdRng) -> Reconnect {
        self.rng = rng;
        self
    }

    /// Runs until a closure that does not call for reconnecting, or until the policy's
    /// attempts are used up; returns that last [`CloseInfo`]. `make` builds the endpoint
    /// for each attempt.
    pub async fn run<M, E>(self, make: M) -> CloseInfo
    where
        M: FnMut(Attempt) -> E,
        E: Endpoint,
    {
        let url = self.url.clone();
        let route = self.builder.route();
        self.run_with(move || connector(&url, route.clone()), make)
            .await
    }

    /// [`run`](Self::run), connecting each transport with `connect` instead of TCP (a
    /// proxy, a Unix socket, an in-memory pipe in tests).
    pub async fn run_with<C, F, S, M, E>(mut self, mut connect: C, mut make: M) -> CloseInfo
    where
        C: FnMut() -> F,
        F: Future<Output = Result<S>>,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        M: FnMut(Attempt) -> E,
        E: Endpoint,
    {
        let mut backoff = self.policy.backoff();
        let mut attempt = Attempt {
            number: 0,
            delay: Duration::ZERO,
        };
        loop {
            let endpoint = make(attempt);
            let info = match self
                .builder
                .connect_endpoint_via(&self.url, connect(), endpoint)
                .await
            {
                Ok(session) => {
                    let info = session.closed().await;
                    if session.state_history().contains(&State::Open) {
                        // The connection worked: a later failure starts the schedule over.
                        backoff.reset();
                    }
                    info
                }
                Err(error) => {
                    debug!(%error, attempt = attempt.number, "connection attempt failed");
                    connect_failure(&error)
                }
            };
            if !self.policy.should_reconnect(&info) {
                info!(%info, "not reconnecting");
                return info;
            }
            let Some(delay) = backoff.next_delay(&mut self.rng) else {
                info!(%info, "reconnect attempts used up");
                return info;
            };
            info!(code = %info.code, ?delay, "reconnecting");
            tokio::time::sleep(delay).await;
            attempt = Attempt {
                number: attempt.number + 1,
                delay,
            };
        }
    }
}
