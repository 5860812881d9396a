//! The reconnecting client's schedule and decisions, under paused time with in-memory
//! transports and a seeded generator, so the schedule is exact and reproducible.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{SeedableRng, rngs::StdRng};
use sockeye::reconnect::{Attempt, Reconnect, ReconnectPolicy};
use sockeye::{ClientBuilder, CloseCode, CloseInfo, Endpoint, Message, Session};
use tokio::io::DuplexStream;
use tokio::time::Instant;

/// Records every close the endpoint is told about.
struct Recorder {
    closes: Arc<Mutex<Vec<CloseInfo>>>,
}

impl Endpoint for Recorder {
    fn on_message(&mut self, _session: &Session, _message: Message) {}

    fn on_close(&mut self, _session: &Session, info: &CloseInfo) {
        self.closes.lock().unwrap().push(info.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn schedule_follows_the_seeded_policy_after_failed_connects() {
    let policy = ReconnectPolicy {
        max_attempts: Some(6),
        ..ReconnectPolicy::default()
    };
    // The schedule the policy gives for this seed, computed independently.
    let mut expected_rng = StdRng::seed_from_u64(42);
    let mut backoff = policy.backoff();
    let expected: Vec<Duration> =
        std::iter::from_fn(|| backoff.next_delay(&mut expected_rng)).collect();
    assert_eq!(expected.len(), 6);
    assert!(
        expected[0] <= Duration::from_secs(5),
        "first delay {:?}",
        expected[0]
    );

    let attempts_at = Arc::new(Mutex::new(Vec::new()));
    let closes = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let seen = attempts_at.clone();
    let connect = move || {
        seen.lock().unwrap().push(Instant::now());
        async {
            Err::<DuplexStream, _>(sockeye::Error::from(io::Error::from(
                io::ErrorKind::ConnectionRefused,
            )))
        }
    };
    let recorded = closes.clone();
    let mut numbers = Vec::new();
    let last = Reconnect::new(ClientBuilder::new(), "ws://example.invalid/")
        .policy(policy)
        .rng(StdRng::seed_from_u64(42))
        .run_with(connect, |attempt: Attempt| {
            numbers.push(attempt.number);
            Recorder {
                closes: recorded.clone(),
            }
        })
        .await;

    assert_eq!(last.code, CloseCode::ABNORMAL);
    assert_eq!(numbers, [0, 1, 2, 3, 4, 5, 6]);
    let times = attempts_at.lock().unwrap().clone();
    assert_eq!(times.len(), 7);
    assert_eq!(times[0], start, "the first connection is immediate");
    for (i, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // tokio's timer has millisecond resolution.
        assert!(
            gap >= expected[i] && gap <= expected[i] + Duration::from_millis(2),
            "gap {i}: {gap:?} expected {:?}",
            expected[i]
        );
    }
    // Ceilings double: the later delays grow.
    assert!(expected[5] > expected[1]);
    // Every failed connect told the endpoint: on_close once per attempt, 1006, not clean.
    let closes = closes.lock().unwrap();
    assert_eq!(closes.len(), 7);
    assert!(
        closes
            .iter()
            .all(|c| c.code == CloseCode::ABNORMAL && !c.clean)
    );
}

/// A server on the other end of an in-memory pipe that accepts and closes with `code`.
fn serve_and_close(code: u16) -> DuplexStream {
    let (client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut ws = sockeye::accept(server).await.unwrap();
        let _ = ws.close(CloseCode(code), "bye").await;
    });
    client
}

#[tokio::test(start_paused = true)]
async fn reconnects_after_going_away_and_restart_but_not_after_normal_close() {
    let codes = Arc::new(Mutex::new(vec![1001u16, 1012, 1013, 1000, 1001]));
    let queue = codes.clone();
    let connect = move || {
        let code = queue.lock().unwrap().remove(0);
        async move { Ok(serve_and_close(code)) }
    };
    let closes = Arc::new(Mutex::new(Vec::new()));
    let recorded = closes.clone();
    let last = Reconnect::new(ClientBuilder::new(), "ws://example.invalid/")
        .rng(StdRng::seed_from_u64(7))
        .run_with(connect, |_| Recorder {
            closes: recorded.clone(),
        })
        .await;
    assert_eq!(last.code, CloseCode::NORMAL);
    assert!(last.clean);
    let seen: Vec<u16> = closes.lock().unwrap().iter().map(|c| c.code.0).collect();
    assert_eq!(seen, [1001, 1012, 1013, 1000]);
    assert_eq!(
        *codes.lock().unwrap(),
        [1001],
        "no attempt after the normal close"
    );
}

#[tokio::test(start_paused = true)]
async fn does_not_reconnect_after_a_policy_refusal() {
    let connect = || async { Ok(serve_and_close(1008)) };
    let attempts = Arc::new(Mutex::new(0));
    let counted = attempts.clone();
    let last = Reconnect::new(ClientBuilder::new(), "ws://example.invalid/")
        .rng(StdRng::seed_from_u64(1))
        .run_with(connect, |_| {
            *counted.lock().unwrap() += 1;
            Recorder {
                closes: Arc::new(Mutex::new(Vec::new())),
            }
        })
        .await;
    assert_eq!(last.code, CloseCode::POLICY_VIOLATION);
    assert_eq!(*attempts.lock().unwrap(), 1);
}
