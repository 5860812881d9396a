//! Session tests: byte-exact rules in mirrored client/server pairs, the three traced close
//! scenarios of seed 000 over an in-memory pair, property tests, and the resource bounds
//! that hold against hostile peers.

mod deflate;
mod limits;
mod pair;
mod props;
mod rules;
mod scenarios;

/// The session's next deadline is the earliest of the timers that are set, whichever they
/// are: every subset of the six, each timer in turn the earliest.
#[test]
fn the_next_deadline_is_the_earliest_timer_set() {
    use std::time::{Duration, Instant};

    let base = Instant::now();
    for set in 0u32..64 {
        for earliest in 0..6 {
            let at = |i: usize| {
                (set & (1 << i) != 0).then(|| {
                    let offset = if i == earliest { 1 } else { 10 + i as u64 };
                    base + Duration::from_secs(offset)
                })
            };
            let timers = super::Timers {
                handshake: at(0),
                close: at(1),
                ping: at(2),
                pong: at(3),
                failure: at(4),
                idle: at(5),
            };
            let expected = (0..6).filter_map(at).min();
            assert_eq!(
                timers.earliest(),
                expected,
                "set {set:06b}, earliest {earliest}"
            );
        }
    }
}
