//! Reconnecting after an abnormal closure (RFC 6455 7.2.3).
//!
//! Two pure, deterministic pieces that a reconnecting client drives; neither reads a clock
//! nor sleeps, and all randomness comes from a [`rand::Rng`] the caller passes in:
//!
//! - [`ReconnectPolicy::should_reconnect`] decides from a session's [`CloseInfo`] whether to
//!   try again at all;
//! - [`Backoff`], made by [`ReconnectPolicy::backoff`], hands out the delay before each
//!   attempt: a random delay before the first one, then truncated binary exponential
//!   backoff with jitter, until `max_attempts` is used up.
//!
//! ```
//! use rand::SeedableRng;
//! use rand::rngs::StdRng;
//! use sockeye_proto::reconnect::ReconnectPolicy;
//! use sockeye_proto::{CloseCode, CloseInfo, Initiator};
//!
//! let policy = ReconnectPolicy::default();
//! // The transport was lost: no Close frame arrived, so the code is 1006.
//! let lost = CloseInfo {
//!     code: CloseCode::ABNORMAL,
//!     reason: String::new(),
//!     sent: None,
//!     received: None,
//!     initiator: Initiator::Abnormal,
//!     clean: false,
//!     error: Some(sockeye_proto::Error::ConnectionLost),
//! };
//! assert!(policy.should_reconnect(&lost));
//!
//! let mut rng = StdRng::seed_from_u64(7);
//! let mut backoff = policy.backoff();
//! let first = backoff.next_delay(&mut rng).unwrap();
//! assert!(first <= policy.first_delay_max);
//! // The tokio layer sleeps `first`, connects, and asks again if that fails.
//! let second = backoff.next_delay(&mut rng).unwrap();
//! assert!(policy.delay_range(1).contains(&second));
//! ```

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::close::{CloseCode, CloseInfo, Initiator};
use crate::error::Error;

/// When and how often a client reconnects after its connection ended (RFC 6455 7.2.3).
///
/// The delays: the first attempt waits a uniform random delay in `[0, first_delay_max]`
/// (7.2.3: "a random value between 0 and 5 seconds is a reasonable initial delay"); the
/// n-th attempt after it waits a random delay below a ceiling that doubles from `base` up
/// to `max_delay` (see [`delay_range`](Self::delay_range)). `max_delay` bounds every delay,
/// the first one included.
///
/// Which closures lead to a reconnect is decided by [`should_reconnect`](Self::should_reconnect)
/// with the rules in [`reconnect_on`](Self::reconnect_on).
///
/// ```
/// use std::time::Duration;
/// use sockeye_proto::CloseCode;
/// use sockeye_proto::reconnect::{ReconnectOn, ReconnectPolicy};
///
/// let policy = ReconnectPolicy {
///     max_delay: Duration::from_secs(30),
///     max_attempts: Some(10),
///     reconnect_on: ReconnectOn {
///         // This application's server closes with 1000 before a redeploy.
///         also_after: vec![CloseCode::NORMAL],
///         ..ReconnectOn::default()
///     },
///     ..ReconnectPolicy::default()
/// };
/// assert_eq!(policy.first_delay_max, Duration::from_secs(5));
/// assert_eq!(policy.delay_range(6), Duration::from_secs(15)..=Duration::from_secs(30));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The first attempt waits a uniform random delay in `[0, first_delay_max]`
    /// (capped by `max_delay`). Default 5 s.
    pub first_delay_max: Duration,
    /// The ceiling of the delay before the second attempt; it doubles with each further
    /// attempt. Default 1 s.
    pub base: Duration,
    /// The cap on every delay. Default 60 s.
    pub max_delay: Duration,
    /// How many attempts a [`Backoff`] allows before it gives up; `None` (the default)
    /// tries forever.
    pub max_attempts: Option<u32>,
    /// Which closures lead to a reconnect.
    pub reconnect_on: ReconnectOn,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            first_delay_max: Duration::from_secs(5),
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_attempts: None,
            reconnect_on: ReconnectOn::default(),
        }
    }
}

impl ReconnectPolicy {
    /// Whether a client whose session ended as `info` says should connect again.
    ///
    /// The decision is taken in this order:
    ///
    /// 1. A close this endpoint chose never reconnects, whatever the codes: the application
    ///    called `close()` (`initiator` is [`Initiator::Local`] and `error` is `None` or
    ///    [`Error::CloseTimeout`], the peer having not answered in time) or failed the
    ///    connection itself ([`Error::Application`]).
    /// 2. Otherwise one close code decides, through [`ReconnectOn::reconnects`]:
    ///    - the code of the Close frame received, if one was (`info.code`, 1005 if it had
    ///      no code);
    ///    - if none was received and this endpoint failed the connection because the peer
    ///      broke the protocol ([`Error::Protocol`]), the code it sent for that (1002, 1007
    ///      or 1009): the peer was refused, which by default does not reconnect;
    ///    - otherwise 1006 (abnormal closure, `info.code`): transport lost or failed,
    ///      handshake failed or timed out, keepalive timed out.
    ///
    /// ```
    /// use sockeye_proto::reconnect::ReconnectPolicy;
    /// use sockeye_proto::{CloseCode, CloseFrame, CloseInfo, Initiator};
    ///
    /// let policy = ReconnectPolicy::default();
    /// // The server closed with 1012 Service Restart: come back later.
    /// let received = CloseFrame::new(CloseCode::SERVICE_RESTART, "deploy").unwrap();
    /// let restart = CloseInfo {
    ///     code: CloseCode::SERVICE_RESTART,
    ///     reason: "deploy".into(),
    ///     sent: Some(received.reply()),
    ///     received: Some(received),
    ///     initiator: Initiator::Remote,
    ///     clean: true,
    ///     error: None,
    /// };
    /// assert!(policy.should_reconnect(&restart));
    ///
    /// // The server closed normally: done.
    /// let received = CloseFrame::new(CloseCode::NORMAL, "").unwrap();
    /// let done = CloseInfo {
    ///     code: CloseCode::NORMAL,
    ///     sent: Some(received.reply()),
    ///     received: Some(received),
    ///     ..restart
    /// };
    /// assert!(!policy.should_reconnect(&done));
    /// ```
    pub fn should_reconnect(&self, info: &CloseInfo) -> bool {
        match deciding_code(info) {
            Some(code) => self.reconnect_on.reconnects(code),
            None => false,
        }
    }

    /// A fresh delay schedule following this policy.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use rand::rngs::StdRng;
    /// use sockeye_proto::reconnect::ReconnectPolicy;
    ///
    /// let policy = ReconnectPolicy { max_attempts: Some(2), ..ReconnectPolicy::default() };
    /// let mut backoff = policy.backoff();
    /// let mut rng = StdRng::seed_from_u64(1);
    /// assert!(backoff.next_delay(&mut rng).is_some());
    /// assert!(backoff.next_delay(&mut rng).is_some());
    /// assert_eq!(backoff.next_delay(&mut rng), None);
    /// ```
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first_delay_max: self.first_delay_max,
            base: self.base,
            max_delay: self.max_delay,
            max_attempts: self.max_attempts,
            attempt: 0,
        }
    }

    /// The range the delay before attempt `attempt` (counted from 0) is drawn from,
    /// uniformly.
    ///
    /// - Attempt 0: `[0, min(first_delay_max, max_delay)]`.
    /// - Attempt n ≥ 1: truncated binary exponential backoff with "equal jitter". The
    ///   ceiling is `min(max_delay, base * 2^(n-1))`, computed without overflow for any n,
    ///   and the delay lies in `[ceiling / 2, ceiling]`. Half of the delay is fixed, so
    ///   waits really do grow with each failure; the other half is random, so clients cut
    ///   off together do not all come back at the same instant (the concern of 7.2.3).
    ///   From attempt 1 on, the ceilings never decrease.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockeye_proto::reconnect::ReconnectPolicy;
    ///
    /// let policy = ReconnectPolicy::default();
    /// let secs = Duration::from_secs;
    /// assert_eq!(policy.delay_range(0), secs(0)..=secs(5));
    /// assert_eq!(policy.delay_range(1), Duration::from_millis(500)..=secs(1));
    /// assert_eq!(policy.delay_range(4), secs(4)..=secs(8));
    /// assert_eq!(policy.delay_range(1000), secs(30)..=secs(60));
    /// ```
    pub fn delay_range(&self, attempt: u32) -> RangeInclusive<Duration> {
        delay_range(self.first_delay_max, self.base, self.max_delay, attempt)
    }
}

/// The close code that decides whether to reconnect, or `None` when this endpoint ended
/// the session on purpose (see [`ReconnectPolicy::should_reconnect`]).
fn deciding_code(info: &CloseInfo) -> Option<CloseCode> {
    let chosen_locally = match &info.error {
        Some(Error::Application { .. }) => true,
        None | Some(Error::CloseTimeout) => info.initiator == Initiator::Local,
        Some(_) => false,
    };
    if chosen_locally {
        return None;
    }
    if info.received.is_some() {
        return Some(info.code);
    }
    match &info.error {
        Some(Error::Protocol(error)) => Some(CloseCode::from(error)),
        _ => Some(info.code),
    }
}

/// Which close codes lead to a reconnect.
///
/// By default ([`reconnects_by_default`](Self::reconnects_by_default)) a client reconnects
/// after 1006 (abnormal closure: no Close frame, the connection was lost or never made),
/// after the codes with which a server invites it to come back (1001 Going Away, 1012
/// Service Restart, 1013 Try Again Later, 1014 Bad Gateway) and after 1011 Internal Error
/// (an unexpected, usually passing, server condition). It does not reconnect after a normal
/// end (1000, or 1005 for a Close frame without a code), after a refusal (1002 protocol
/// error, 1003 unsupported data, 1007 invalid payload, 1008 policy violation, 1009 message
/// too big, 1010 missing extension, 1015 TLS handshake failure), which the same client
/// would only meet again, nor after an application code (3000-4999) or any other code.
///
/// `never_after` and `also_after` change that: a code in `never_after` never reconnects, and
/// one in `also_after` (and not in `never_after`) always does.
///
/// ```
/// use sockeye_proto::CloseCode;
/// use sockeye_proto::reconnect::ReconnectOn;
///
/// let on = ReconnectOn {
///     also_after: vec![CloseCode(4000)],
///     never_after: vec![CloseCode::GOING_AWAY],
/// };
/// assert!(on.reconnects(CloseCode(4000)));
/// assert!(!on.reconnects(CloseCode::GOING_AWAY));
/// assert!(on.reconnects(CloseCode::ABNORMAL));
/// assert!(!on.reconnects(CloseCode::NORMAL));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconnectOn {
    /// Codes after which to reconnect although the defaults would not (for example
    /// [`CloseCode::NORMAL`], or an application code).
    pub also_after: Vec<CloseCode>,
    /// Codes after which never to reconnect, whatever the defaults and `also_after` say.
    pub never_after: Vec<CloseCode>,
}

impl ReconnectOn {
    /// Whether a session that ended with `code` leads to a reconnect under these rules.
    ///
    /// ```
    /// use sockeye_proto::CloseCode;
    /// use sockeye_proto::reconnect::ReconnectOn;
    ///
    /// let on = ReconnectOn::default();
    /// assert!(on.reconnects(CloseCode::TRY_AGAIN_LATER));
    /// assert!(!on.reconnects(CloseCode::POLICY_VIOLATION));
    /// ```
    pub fn reconnects(&self, code: CloseCode) -> bool {
        if self.never_after.contains(&code) {
            return false;
        }
        self.also_after.contains(&code) || Self::reconnects_by_default(code)
    }

    /// The default rule for `code`, without `also_after` and `never_after`.
    ///
    /// ```
    /// use sockeye_proto::CloseCode;
    /// use sockeye_proto::reconnect::ReconnectOn;
    ///
    /// assert!(ReconnectOn::reconnects_by_default(CloseCode::ABNORMAL));
    /// assert!(ReconnectOn::reconnects_by_default(CloseCode::SERVICE_RESTART));
    /// assert!(!ReconnectOn::reconnects_by_default(CloseCode::NORMAL));
    /// assert!(!ReconnectOn::reconnects_by_default(CloseCode::PROTOCOL_ERROR));
    /// ```
    pub const fn reconnects_by_default(code: CloseCode) -> bool {
        matches!(
            code,
            CloseCode::GOING_AWAY
                | CloseCode::ABNORMAL
                | CloseCode::INTERNAL_ERROR
                | CloseCode::SERVICE_RESTART
                | CloseCode::TRY_AGAIN_LATER
                | CloseCode::BAD_GATEWAY
        )
    }
}

/// The delays before successive reconnect attempts, made by [`ReconnectPolicy::backoff`].
///
/// Each call to [`next_delay`](Self::next_delay) gives the wait before the next attempt and
/// counts that attempt. Call [`reset`](Self::reset) once a connection has been established
/// and stayed open for a while, so that the next loss starts again with the short random
/// first delay.
///
/// ```
/// use rand::SeedableRng;
/// use rand::rngs::StdRng;
/// use sockeye_proto::reconnect::ReconnectPolicy;
///
/// let policy = ReconnectPolicy::default();
/// let mut backoff = policy.backoff();
/// let mut rng = StdRng::seed_from_u64(42);
/// for attempt in 0..10 {
///     let delay = backoff.next_delay(&mut rng).unwrap();
///     assert!(policy.delay_range(attempt).contains(&delay));
/// }
/// assert_eq!(backoff.attempt(), 10);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first_delay_max: Duration,
    base: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    /// The index of the next attempt: how many delays were handed out since the start.
    attempt: u32,
}

impl Backoff {
    /// The delay to wait before the next attempt, drawn from `rng` uniformly in
    /// [`ReconnectPolicy::delay_range`] of that attempt, or `None` once `max_attempts`
    /// delays have been handed out (the client gives up).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rand::SeedableRng;
    /// use rand::rngs::StdRng;
    /// use sockeye_proto::reconnect::ReconnectPolicy;
    ///
    /// let policy = ReconnectPolicy::default();
    /// let mut backoff = policy.backoff();
    /// let mut rng = StdRng::seed_from_u64(3);
    /// assert!(backoff.next_delay(&mut rng).unwrap() <= Duration::from_secs(5));
    /// let second = backoff.next_delay(&mut rng).unwrap();
    /// assert!(Duration::from_millis(500) <= second && second <= Duration::from_secs(1));
    /// ```
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| self.attempt >= max) {
            return None;
        }
        let range = delay_range(
            self.first_delay_max,
            self.base,
            self.max_delay,
            self.attempt,
        );
        self.attempt = self.attempt.saturating_add(1);
        Some(uniform(rng, range))
    }

    /// Starts the schedule over: the next delay is again the random first delay, and
    /// `max_attempts` counts from zero.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use rand::rngs::StdRng;
    /// use sockeye_proto::reconnect::ReconnectPolicy;
    ///
    /// let mut backoff = ReconnectPolicy::default().backoff();
    /// let mut rng = StdRng::seed_from_u64(9);
    /// backoff.next_delay(&mut rng);
    /// backoff.next_delay(&mut rng);
    /// backoff.reset();
    /// assert_eq!(backoff.attempt(), 0);
    /// ```
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were handed out since the schedule was made or last reset, which is
    /// also the index (from 0) of the attempt the next delay is for.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use rand::rngs::StdRng;
    /// use sockeye_proto::reconnect::ReconnectPolicy;
    ///
    /// let mut backoff = ReconnectPolicy::default().backoff();
    /// assert_eq!(backoff.attempt(), 0);
    /// backoff.next_delay(&mut StdRng::seed_from_u64(0));
    /// assert_eq!(backoff.attempt(), 1);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// See [`ReconnectPolicy::delay_range`].
fn delay_range(
    first_delay_max: Duration,
    base: Duration,
    max_delay: Duration,
    attempt: u32,
) -> RangeInclusive<Duration> {
    if attempt == 0 {
        return Duration::ZERO..=first_delay_max.min(max_delay);
    }
    // base * 2^(attempt-1), saturating at Duration::MAX for any attempt.
    let doubled = 1u32
        .checked_shl(attempt - 1)
        .and_then(|factor| base.checked_mul(factor))
        .unwrap_or(if base.is_zero() {
            Duration::ZERO
        } else {
            Duration::MAX
        });
    let ceiling = doubled.min(max_delay);
    ceiling / 2..=ceiling
}

/// A uniform random duration in `range`, at nanosecond resolution. A span longer than
/// `u64::MAX` nanoseconds (over 584 years) is shortened to that, staying inside `range`.
fn uniform<R: Rng + ?Sized>(rng: &mut R, range: RangeInclusive<Duration>) -> Duration {
    let (low, high) = range.into_inner();
    let span = u64::try_from(high.saturating_sub(low).as_nanos()).unwrap_or(u64::MAX);
    low + Duration::from_nanos(rng.random_range(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::CloseFrame;
    use crate::error::{HandshakeError, ProtocolError};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const SECOND: Duration = Duration::from_secs(1);

    fn schedule(policy: &ReconnectPolicy, seed: u64, count: usize) -> Vec<Option<Duration>> {
        let mut backoff = policy.backoff();
        let mut rng = StdRng::seed_from_u64(seed);
        (0..count).map(|_| backoff.next_delay(&mut rng)).collect()
    }

    /// A session ended by a Close frame from the peer.
    fn received(code: CloseCode) -> CloseInfo {
        let frame = CloseFrame::new(code, "").unwrap();
        CloseInfo::new(Some(frame.reply()), Some(frame), Initiator::Remote, None)
    }

    /// A session that ended without any Close frame.
    fn lost(error: Error) -> CloseInfo {
        CloseInfo::new(None, None, Initiator::Abnormal, Some(error))
    }

    #[test]
    fn first_delay_is_within_zero_to_five_seconds_and_varies_with_the_seed() {
        let policy = ReconnectPolicy::default();
        let firsts: Vec<Duration> = (0..500)
            .map(|seed| schedule(&policy, seed, 1)[0].unwrap())
            .collect();
        assert!(firsts.iter().all(|d| *d <= 5 * SECOND), "{firsts:?}");
        let min = *firsts.iter().min().unwrap();
        let max = *firsts.iter().max().unwrap();
        // Spread over the interval, not stuck at one value or one end of it.
        assert!(min < SECOND, "min {min:?}");
        assert!(max > 4 * SECOND, "max {max:?}");
    }

    #[test]
    fn first_delay_respects_a_configured_maximum() {
        let policy = ReconnectPolicy {
            first_delay_max: Duration::from_millis(200),
            ..ReconnectPolicy::default()
        };
        for seed in 0..200 {
            let first = schedule(&policy, seed, 1)[0].unwrap();
            assert!(
                first <= Duration::from_millis(200),
                "seed {seed}: {first:?}"
            );
        }
        let zero = ReconnectPolicy {
            first_delay_max: Duration::ZERO,
            ..ReconnectPolicy::default()
        };
        assert_eq!(schedule(&zero, 5, 1)[0], Some(Duration::ZERO));
    }

    #[test]
    fn later_delays_use_equal_jitter_under_doubling_ceilings_until_the_cap() {
        let policy = ReconnectPolicy::default();
        let expected_ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for seed in 0..50 {
            let delays = schedule(&policy, seed, 1 + expected_ceilings.len());
            for (i, (delay, ceiling)) in delays[1..].iter().zip(expected_ceilings).enumerate() {
                let delay = delay.unwrap();
                let ceiling = ceiling * SECOND;
                assert!(
                    ceiling / 2 <= delay && delay <= ceiling,
                    "seed {seed} attempt {}: {delay:?} outside [{:?}, {ceiling:?}]",
                    i + 1,
                    ceiling / 2
                );
            }
        }
        for (attempt, ceiling) in (1..).zip(expected_ceilings) {
            assert_eq!(
                policy.delay_range(attempt),
                ceiling * SECOND / 2..=ceiling * SECOND,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn jitter_spreads_over_the_whole_interval() {
        let policy = ReconnectPolicy::default();
        let thirds: Vec<Duration> = (0..300)
            .map(|seed| schedule(&policy, seed, 4)[3].unwrap())
            .collect();
        // Attempt 3: ceiling 4 s, delays in [2 s, 4 s].
        assert!(thirds.iter().any(|d| *d < Duration::from_millis(2200)));
        assert!(thirds.iter().any(|d| *d > Duration::from_millis(3800)));
    }

    #[test]
    fn cap_holds_at_attempt_1000_without_overflow() {
        let policy = ReconnectPolicy::default();
        assert_eq!(policy.delay_range(1000), 30 * SECOND..=60 * SECOND);
        assert_eq!(policy.delay_range(u32::MAX), 30 * SECOND..=60 * SECOND);
        let delays = schedule(&policy, 11, 1001);
        let last = delays[1000].unwrap();
        assert!(30 * SECOND <= last && last <= 60 * SECOND, "{last:?}");

        let huge = ReconnectPolicy {
            base: Duration::MAX,
            max_delay: Duration::MAX,
            ..ReconnectPolicy::default()
        };
        assert_eq!(huge.delay_range(40), Duration::MAX / 2..=Duration::MAX);
        let delay = schedule(&huge, 1, 3)[2].unwrap();
        assert!(delay >= Duration::MAX / 2);

        let zero = ReconnectPolicy {
            base: Duration::ZERO,
            ..ReconnectPolicy::default()
        };
        assert_eq!(zero.delay_range(100), Duration::ZERO..=Duration::ZERO);
    }

    #[test]
    fn max_attempts_ends_the_schedule() {
        let policy = ReconnectPolicy {
            max_attempts: Some(3),
            ..ReconnectPolicy::default()
        };
        let delays = schedule(&policy, 4, 6);
        assert!(delays[..3].iter().all(Option::is_some), "{delays:?}");
        assert!(delays[3..].iter().all(Option::is_none), "{delays:?}");

        let never = ReconnectPolicy {
            max_attempts: Some(0),
            ..ReconnectPolicy::default()
        };
        assert_eq!(schedule(&never, 4, 1), vec![None]);

        let forever = ReconnectPolicy::default();
        assert!(schedule(&forever, 4, 200).iter().all(Option::is_some));
    }

    #[test]
    fn reset_restarts_at_the_random_first_delay() {
        let policy = ReconnectPolicy {
            max_attempts: Some(4),
            ..ReconnectPolicy::default()
        };
        let mut backoff = policy.backoff();
        let mut rng = StdRng::seed_from_u64(21);
        for _ in 0..4 {
            assert!(backoff.next_delay(&mut rng).is_some());
        }
        assert_eq!(backoff.next_delay(&mut rng), None);
        assert_eq!(backoff.attempt(), 4);

        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff, policy.backoff());
        // After a reset the first delay comes from [0, 5 s] again, so over many draws some
        // are shorter than the 0.5 s floor of attempt 1.
        let mut short = 0;
        for _ in 0..100 {
            backoff.reset();
            let first = backoff.next_delay(&mut rng).unwrap();
            assert!(first <= 5 * SECOND, "{first:?}");
            if first < Duration::from_millis(500) {
                short += 1;
            }
            assert_eq!(backoff.attempt(), 1);
        }
        assert!(short > 0);
        // And the full allowance of attempts is available again.
        backoff.reset();
        assert_eq!(
            (0..5)
                .map(|_| backoff.next_delay(&mut rng).is_some())
                .collect::<Vec<_>>(),
            [true, true, true, true, false]
        );
    }

    #[test]
    fn same_seed_gives_the_same_schedule() {
        let policy = ReconnectPolicy::default();
        let a = schedule(&policy, 1234, 20);
        let b = schedule(&policy, 1234, 20);
        assert_eq!(a, b);
        let c = schedule(&policy, 1235, 20);
        assert_ne!(a, c);
    }

    #[test]
    fn works_with_a_dyn_rng() {
        let policy = ReconnectPolicy::default();
        let mut backoff = policy.backoff();
        let mut rng = StdRng::seed_from_u64(1234);
        let rng: &mut dyn Rng = &mut rng;
        let first = backoff.next_delay(rng);
        assert_eq!(first, schedule(&policy, 1234, 1)[0]);
    }

    #[test]
    fn reconnects_after_abnormal_closure() {
        let policy = ReconnectPolicy::default();
        for error in [
            Error::ConnectionLost,
            Error::Transport("connection reset".into()),
            Error::HandshakeTimeout,
            Error::Handshake(HandshakeError::UnexpectedStatus {
                status: 503,
                body: bytes::Bytes::new(),
            }),
        ] {
            let info = lost(error);
            assert_eq!(info.code, CloseCode::ABNORMAL);
            assert!(policy.should_reconnect(&info), "{info}");
        }
        // Our keepalive Ping went unanswered: we sent 1011 and got nothing back.
        let keepalive = CloseInfo::new(
            Some(CloseFrame::new(CloseCode::INTERNAL_ERROR, "").unwrap()),
            None,
            Initiator::Local,
            Some(Error::KeepaliveTimeout),
        );
        assert!(policy.should_reconnect(&keepalive));
    }

    #[test]
    fn reconnects_after_codes_that_invite_it() {
        let policy = ReconnectPolicy::default();
        for code in [
            CloseCode::GOING_AWAY,
            CloseCode::INTERNAL_ERROR,
            CloseCode::SERVICE_RESTART,
            CloseCode::TRY_AGAIN_LATER,
            CloseCode::BAD_GATEWAY,
        ] {
            assert!(policy.should_reconnect(&received(code)), "{code}");
        }
    }

    #[test]
    fn does_not_reconnect_after_normal_close_or_refusal() {
        let policy = ReconnectPolicy::default();
        for code in [
            CloseCode::NORMAL,
            CloseCode::PROTOCOL_ERROR,
            CloseCode::UNSUPPORTED_DATA,
            CloseCode::INVALID_PAYLOAD,
            CloseCode::POLICY_VIOLATION,
            CloseCode::MESSAGE_TOO_BIG,
            CloseCode::MANDATORY_EXTENSION,
            CloseCode(3000),
            CloseCode(4999),
        ] {
            assert!(!policy.should_reconnect(&received(code)), "{code}");
        }
        // A Close frame without a code: the peer ended the session on purpose.
        let empty = CloseInfo::new(
            Some(CloseFrame::empty()),
            Some(CloseFrame::empty()),
            Initiator::Remote,
            None,
        );
        assert_eq!(empty.code, CloseCode::NO_STATUS);
        assert!(!policy.should_reconnect(&empty));
    }

    #[test]
    fn does_not_reconnect_after_refusing_a_misbehaving_peer() {
        let policy = ReconnectPolicy::default();
        for error in [ProtocolError::MaskedFrame, ProtocolError::InvalidUtf8] {
            let sent = CloseFrame::new(CloseCode::from(&error), "").unwrap();
            let info = CloseInfo::new(Some(sent), None, Initiator::Local, Some(error.into()));
            assert_eq!(info.code, CloseCode::ABNORMAL);
            assert!(!policy.should_reconnect(&info), "{info}");
        }
        // Unless configured to.
        let lenient = ReconnectPolicy {
            reconnect_on: ReconnectOn {
                also_after: vec![CloseCode::PROTOCOL_ERROR],
                ..ReconnectOn::default()
            },
            ..ReconnectPolicy::default()
        };
        let error = ProtocolError::ReservedOpcode(3);
        let info = CloseInfo::new(
            Some(CloseFrame::new(CloseCode::PROTOCOL_ERROR, "").unwrap()),
            None,
            Initiator::Local,
            Some(error.into()),
        );
        assert!(lenient.should_reconnect(&info));
    }

    #[test]
    fn does_not_reconnect_after_a_local_close() {
        let policy = ReconnectPolicy {
            reconnect_on: ReconnectOn {
                also_after: vec![CloseCode::NORMAL],
                ..ReconnectOn::default()
            },
            ..ReconnectPolicy::default()
        };
        let going_away = CloseFrame::new(CloseCode::GOING_AWAY, "").unwrap();
        // Completed: the peer echoed our 1001.
        let completed = CloseInfo::new(
            Some(going_away.clone()),
            Some(going_away.reply()),
            Initiator::Local,
            None,
        );
        assert_eq!(completed.code, CloseCode::GOING_AWAY);
        assert!(!policy.should_reconnect(&completed));
        // The peer never answered: 1006, but still our decision.
        let unanswered = CloseInfo::new(
            Some(going_away.clone()),
            None,
            Initiator::Local,
            Some(Error::CloseTimeout),
        );
        assert_eq!(unanswered.code, CloseCode::ABNORMAL);
        assert!(!policy.should_reconnect(&unanswered));
        // The application failed the connection itself.
        let failed = CloseInfo::new(
            Some(CloseFrame::new(CloseCode::TRY_AGAIN_LATER, "").unwrap()),
            None,
            Initiator::Local,
            Some(Error::Application {
                code: CloseCode::TRY_AGAIN_LATER,
                reason: String::new(),
            }),
        );
        assert!(!policy.should_reconnect(&failed));
    }

    #[test]
    fn configuration_switches_flip_the_decision() {
        let default = ReconnectPolicy::default();
        let flipped = ReconnectPolicy {
            reconnect_on: ReconnectOn {
                also_after: vec![CloseCode::NORMAL, CloseCode::POLICY_VIOLATION],
                never_after: vec![
                    CloseCode::ABNORMAL,
                    CloseCode::SERVICE_RESTART,
                    CloseCode::POLICY_VIOLATION,
                ],
            },
            ..ReconnectPolicy::default()
        };
        let normal = received(CloseCode::NORMAL);
        let restart = received(CloseCode::SERVICE_RESTART);
        let try_later = received(CloseCode::TRY_AGAIN_LATER);
        let policy = received(CloseCode::POLICY_VIOLATION);
        let lost = lost(Error::ConnectionLost);

        assert!(!default.should_reconnect(&normal));
        assert!(flipped.should_reconnect(&normal));
        assert!(default.should_reconnect(&restart));
        assert!(!flipped.should_reconnect(&restart));
        assert!(default.should_reconnect(&lost));
        assert!(!flipped.should_reconnect(&lost));
        // Untouched codes keep their default.
        assert!(flipped.should_reconnect(&try_later));
        // `never_after` wins over `also_after`.
        assert!(!default.should_reconnect(&policy));
        assert!(!flipped.should_reconnect(&policy));
    }

    #[test]
    fn default_table_covers_every_registered_code() {
        let yes: Vec<u16> = (1000..=1015)
            .filter(|code| ReconnectOn::reconnects_by_default(CloseCode(*code)))
            .collect();
        assert_eq!(yes, [1001, 1006, 1011, 1012, 1013, 1014]);
        assert!(!ReconnectOn::reconnects_by_default(CloseCode(0)));
        assert!(!ReconnectOn::reconnects_by_default(CloseCode(u16::MAX)));
    }

    proptest! {
        #[test]
        fn delays_stay_under_the_cap_and_ceilings_never_shrink(
            seed in any::<u64>(),
            count in 1usize..=64,
            first_ms in 0u64..20_000,
            base_ms in 0u64..20_000,
            max_ms in 0u64..600_000,
        ) {
            let policy = ReconnectPolicy {
                first_delay_max: Duration::from_millis(first_ms),
                base: Duration::from_millis(base_ms),
                max_delay: Duration::from_millis(max_ms),
                ..ReconnectPolicy::default()
            };
            let delays = schedule(&policy, seed, count);
            let mut previous_ceiling = Duration::ZERO;
            for (attempt, delay) in (0u32..).zip(delays) {
                let delay = delay.unwrap();
                prop_assert!(delay <= policy.max_delay, "attempt {}: {:?}", attempt, delay);
                if attempt == 0 {
                    prop_assert!(delay <= policy.first_delay_max);
                    continue;
                }
                // The ceiling computed independently: base * 2^(n-1), capped.
                let doubled = u128::from(base_ms) << (attempt - 1);
                let ceiling = Duration::from_millis(
                    u64::try_from(doubled.min(u128::from(max_ms))).unwrap(),
                );
                prop_assert_eq!(policy.delay_range(attempt), ceiling / 2..=ceiling);
                prop_assert!(ceiling / 2 <= delay && delay <= ceiling);
                prop_assert!(ceiling >= previous_ceiling, "attempt {}", attempt);
                previous_ceiling = ceiling;
            }
        }
    }
}
