//! Session tests: byte-exact rules in mirrored client/server pairs, the three traced close
//! scenarios of seed 000 over an in-memory pair, property tests, and the resource bounds
//! that hold against hostile peers.

mod deflate;
mod limits;
mod pair;
mod props;
mod rules;
mod scenarios;

use super::Deadline;

/// `Deadline::ALL` lists each deadline once, in the order of its slot.
#[test]
fn every_deadline_is_listed_once_at_its_slot() {
    for (slot, which) in Deadline::ALL.into_iter().enumerate() {
        assert_eq!(which as usize, slot, "{which:?}");
    }
}

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
            let mut timers = super::Timers::default();
            for (i, which) in Deadline::ALL.into_iter().enumerate() {
                timers.set(which, at(i));
            }
            let expected = (0..Deadline::ALL.len()).filter_map(at).min();
            assert_eq!(
                timers.earliest(),
                expected,
                "set {set:06b}, earliest {earliest}"
            );
        }
    }
}

/// Every change of a deadline, and only a change, moves the count the I/O layer watches
/// (`Connection::deadline_changes`) instead of asking for the next deadline after every call.
#[test]
fn the_change_count_moves_with_every_deadline_change_and_only_then() {
    use std::time::{Duration, Instant};

    let base = Instant::now();
    let mut timers = super::Timers::default();
    let mut count = timers.changes();
    let mut expect_change = |timers: &super::Timers, changed: bool| {
        assert_eq!(timers.changes() != count, changed, "{timers:?}");
        count = timers.changes();
    };
    for (i, which) in Deadline::ALL.into_iter().enumerate() {
        let at = base + Duration::from_secs(i as u64);
        timers.set(which, Some(at));
        expect_change(&timers, true);
        timers.set(which, Some(at));
        expect_change(&timers, false);
        timers.set(which, Some(at + Duration::from_millis(1)));
        expect_change(&timers, true);
        assert_eq!(timers.get(which), Some(at + Duration::from_millis(1)));
    }
    timers.set(Deadline::Ping, None);
    expect_change(&timers, true);
    timers.set(Deadline::Ping, None);
    expect_change(&timers, false);
    timers.clear();
    expect_change(&timers, true);
    assert_eq!(timers.earliest(), None);
    timers.clear();
    expect_change(&timers, false);
}

/// A deadline fires once: `take_due` is false before it, true at it (clearing it), and
/// false after; an unset one never fires.
#[test]
fn a_deadline_is_due_once_it_passed_and_then_cleared() {
    use std::time::{Duration, Instant};

    let at = Instant::now() + Duration::from_secs(5);
    let mut timers = super::Timers::default();
    assert!(!timers.take_due(Deadline::Close, at));
    timers.set(Deadline::Close, Some(at));
    assert!(!timers.take_due(Deadline::Close, at - Duration::from_millis(1)));
    assert_eq!(timers.get(Deadline::Close), Some(at));
    assert!(timers.take_due(Deadline::Close, at));
    assert_eq!(timers.get(Deadline::Close), None);
    assert!(!timers.take_due(Deadline::Close, at + Duration::from_secs(1)));
}
