//! The receive buffer of a connection's last frame, kept for its next one.
//!
//! A new buffer per message costs the allocator's work for each (a 64 KiB allocation cut to
//! the frame, then freed: about 0.6 k instructions per 16 KiB echo), and from about
//! 128 KiB on more than that: glibc gives the freed memory back to the system (`madvise`)
//! and the next message faults its pages in again, 18-45 faults and up to 100 µs of kernel
//! time per echoed 1 MiB message (docs/performance.md). A connection therefore keeps a
//! handle on the storage of its last frame of [`SPARE_MIN`] bytes or more, and its next
//! such read reuses that storage once nothing else holds it (the message it carried was
//! dropped); while the message lives, the read takes a new buffer, so a kept message is
//! never written over. What all connections keep together is bounded ([`SPARE_BUDGET`]);
//! a connection whose reads turn small gives its spare back.
//!
//! Small frames (under [`SPARE_MIN`]) keep theirs the same way, at least [`SPARE_SMALL`]
//! bytes, so that an echo takes no allocation per message; a connection that goes quiet
//! after them keeps that much until its next read or its end.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;

/// Buffers from this size on are kept: those of the reads that go straight into a buffer
/// of their own.
pub(crate) const SPARE_MIN: usize = crate::driver::FRESH_MIN;

/// Buffers from this size on are not kept: the room of a frame this large may be the
/// core's cap rather than the frame's size, and a frame that outgrows its buffer must be
/// able to grow it in place (a buffer shared with a spare handle is copied to grow).
pub(crate) const SPARE_MAX: usize = sockeye_proto::session::MAX_FRAME_RESERVE;

/// The least storage kept for small frames, so that frames of somewhat different sizes
/// fit in it.
pub(crate) const SPARE_SMALL: usize = 256;

/// The most the process keeps in spare buffers, over all its connections: 1,000
/// connections' 16 KiB, or 16 of 1 MiB. Beyond it, frames get buffers of their own.
const SPARE_BUDGET: usize = 16 * 1024 * 1024;

/// Bytes kept in spare buffers now, over all connections.
static SPARE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A handle on the storage of a connection's last receive buffer.
pub(crate) struct Spare {
    /// Empty, at the end of the storage (sharing it with the buffer handed to the core and
    /// then with the message), or the whole storage once given back unused.
    handle: BytesMut,
    /// The storage's size, counted in `counter`.
    bytes: usize,
    counter: &'static AtomicUsize,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare").field("bytes", &self.bytes).finish()
    }
}

impl Spare {
    /// Keeps a handle on the storage of `buf` (a receive buffer just allocated, its
    /// capacity the whole storage), if the process's budget has room for it.
    pub(crate) fn keep(buf: &mut BytesMut) -> Option<Spare> {
        Spare::keep_within(buf, &SPARE_BYTES, SPARE_BUDGET)
    }

    fn keep_within(
        buf: &mut BytesMut,
        counter: &'static AtomicUsize,
        budget: usize,
    ) -> Option<Spare> {
        let bytes = buf.capacity();
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                kept.checked_add(bytes).filter(|&total| total <= budget)
            })
            .ok()?;
        let mut spare = Spare {
            handle: BytesMut::new(),
            bytes,
            counter,
        };
        spare.hold(buf);
        Some(spare)
    }

    /// Keeps `buf` in `slot` in place of what it held (that storage is freed with its
    /// message, and leaves the budget first).
    pub(crate) fn keep_in(slot: &mut Option<Spare>, buf: &mut BytesMut) {
        *slot = None;
        *slot = Spare::keep(buf);
    }

    /// Whether a frame with `room` bytes is read into this storage: it fits, and a large
    /// storage is not held for a frame that would leave most of it unused.
    pub(crate) fn fits(&self, room: usize) -> bool {
        room <= self.bytes && (!self.is_large() || room > self.bytes / 2)
    }

    /// Whether this is the storage of a large frame ([`SPARE_MIN`] bytes and more).
    pub(crate) fn is_large(&self) -> bool {
        self.bytes >= SPARE_MIN
    }

    /// The whole storage, empty, if nothing else holds it any more (the message read into
    /// it was dropped); `None` while something does.
    pub(crate) fn reuse(&mut self) -> Option<BytesMut> {
        // Reclaiming succeeds only for the storage's last handle, and moves it back to the
        // storage's start with its whole capacity, without allocating or copying.
        self.handle.clear();
        if !self.handle.try_reclaim(self.bytes) {
            return None;
        }
        Some(std::mem::take(&mut self.handle))
    }

    /// Takes a handle on the storage again, now lent as `buf` (from [`reuse`](Self::reuse)).
    pub(crate) fn hold(&mut self, buf: &mut BytesMut) {
        self.handle = buf.split_off(buf.capacity());
    }

    /// Takes back the storage from [`reuse`](Self::reuse), unused.
    pub(crate) fn put_back(&mut self, mut storage: BytesMut) {
        storage.clear();
        self.handle = storage;
    }

    /// The size of the kept storage.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_is_reused_only_once_nothing_else_holds_it() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let mut buf = BytesMut::with_capacity(SPARE_MIN);
        let mut spare = Spare::keep_within(&mut buf, &COUNTER, usize::MAX).unwrap();
        buf.extend_from_slice(b"a message");
        let message = buf.split().freeze();
        drop(buf);
        let at = message.as_ptr();
        assert!(
            spare.reuse().is_none(),
            "the message still holds the storage"
        );
        assert_eq!(&message[..], b"a message");
        drop(message);
        let mut storage = spare.reuse().expect("the storage is free again");
        assert_eq!(storage.as_ptr(), at, "the same storage");
        assert!(storage.is_empty());
        assert!(storage.capacity() >= SPARE_MIN);
        spare.hold(&mut storage);
        assert!(spare.reuse().is_none(), "lent again");
        spare.put_back(storage);
        assert!(spare.reuse().is_some(), "given back unused");
    }

    #[test]
    fn a_large_storage_is_not_held_for_a_frame_that_leaves_most_of_it_unused() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let mut large = BytesMut::with_capacity(4 * SPARE_MIN);
        let large = Spare::keep_within(&mut large, &COUNTER, usize::MAX).unwrap();
        assert!(large.is_large());
        assert!(large.fits(4 * SPARE_MIN) && large.fits(3 * SPARE_MIN));
        assert!(!large.fits(SPARE_MIN), "a quarter of it");
        assert!(!large.fits(4 * SPARE_MIN + 1));
        let mut small = BytesMut::with_capacity(SPARE_SMALL);
        let small = Spare::keep_within(&mut small, &COUNTER, usize::MAX).unwrap();
        assert!(!small.is_large());
        assert!(
            small.fits(20),
            "a small storage takes any small frame that fits"
        );
        assert!(!small.fits(SPARE_SMALL + 1));
    }

    #[test]
    fn spares_are_kept_within_the_budget_and_counted_until_dropped() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let budget = 3 * SPARE_MIN;
        let mut kept = Vec::new();
        for _ in 0..3 {
            let mut buf = BytesMut::with_capacity(SPARE_MIN);
            kept.push(Spare::keep_within(&mut buf, &COUNTER, budget).expect("within budget"));
        }
        let mut buf = BytesMut::with_capacity(SPARE_MIN);
        assert!(
            Spare::keep_within(&mut buf, &COUNTER, budget).is_none(),
            "over budget"
        );
        assert_eq!(COUNTER.load(Ordering::Relaxed), 3 * SPARE_MIN);
        kept.pop();
        assert_eq!(COUNTER.load(Ordering::Relaxed), 2 * SPARE_MIN);
        assert!(Spare::keep_within(&mut buf, &COUNTER, budget).is_some());
        drop(kept);
    }
}
