//! The session states of seed 000 and DESIGN.md section 2.

use std::fmt;

/// The state of a WebSocket session.
///
/// ```text
/// NEW ─▶ CONNECTING ─▶ CONNECTED ─▶ OPEN ─▶ CLOSING{sent, received} ─▶ CLOSED
/// ```
/// States only move forward; within CLOSING the two flags only go from `false` to `true`;
/// CLOSED is final and can be reached from any state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Created; no connection attempted yet (client), or no byte received yet (server).
    New,
    /// The opening handshake is under way (RFC 6455 4).
    Connecting,
    /// The handshake succeeded; the application has not been told yet (`on_open` not run).
    Connected,
    /// The application was told the session is open, and has not closed it.
    Open,
    /// The closing handshake has begun (7.1.3).
    Closing {
        /// We sent our Close frame (the seed's CLOSE_FRAME_SENT sub-state).
        close_sent: bool,
        /// We received the peer's Close frame.
        close_received: bool,
    },
    /// The session is over and the transport is (to be) closed (7.1.4).
    Closed,
}

impl State {
    /// Position in the forward order, for the invariant checks.
    pub(crate) fn rank(self) -> u8 {
        match self {
            State::New => 0,
            State::Connecting => 1,
            State::Connected => 2,
            State::Open => 3,
            State::Closing { .. } => 4,
            State::Closed => 5,
        }
    }

    /// Whether moving from `self` to `next` goes forward (DESIGN.md invariant 1).
    pub(crate) fn may_become(self, next: State) -> bool {
        match (self, next) {
            (State::Closed, _) => false,
            (
                State::Closing {
                    close_sent: s0,
                    close_received: r0,
                },
                State::Closing {
                    close_sent: s1,
                    close_received: r1,
                },
            ) => (s1 || !s0) && (r1 || !r0) && (s0, r0) != (s1, r1),
            _ => next.rank() > self.rank(),
        }
    }

    /// Whether this state may be observed after `earlier` (DESIGN.md invariant 1): the
    /// same state, a later one, or CLOSING with flags that were only set, never cleared.
    /// For checks from outside the crate (fuzz targets, runtimes that watch the state).
    pub fn follows(self, earlier: State) -> bool {
        self == earlier || earlier.may_become(self)
    }

    /// Whether our Close frame was sent.
    pub fn close_sent(self) -> bool {
        matches!(
            self,
            State::Closing {
                close_sent: true,
                ..
            }
        )
    }

    /// Whether the peer's Close frame was received.
    pub fn close_received(self) -> bool {
        matches!(
            self,
            State::Closing {
                close_received: true,
                ..
            }
        )
    }

    /// Whether the session is over.
    pub fn is_closed(self) -> bool {
        self == State::Closed
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::New => f.write_str("NEW"),
            State::Connecting => f.write_str("CONNECTING"),
            State::Connected => f.write_str("CONNECTED"),
            State::Open => f.write_str("OPEN"),
            State::Closing {
                close_sent,
                close_received,
            } => {
                f.write_str("CLOSING")?;
                match (close_sent, close_received) {
                    (true, true) => f.write_str("{sent,received}"),
                    (true, false) => f.write_str("{sent}"),
                    (false, true) => f.write_str("{received}"),
                    (false, false) => f.write_str("{}"),
                }
            }
            State::Closed => f.write_str("CLOSED"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::State;

    const SENT: State = State::Closing {
        close_sent: true,
        close_received: false,
    };
    const BOTH: State = State::Closing {
        close_sent: true,
        close_received: true,
    };

    #[test]
    fn follows_is_the_forward_order_of_invariant_1() {
        assert!(State::Open.follows(State::Open));
        assert!(State::Open.follows(State::Connected));
        assert!(BOTH.follows(SENT));
        assert!(State::Closed.follows(BOTH));
        assert!(!State::Connected.follows(State::Open));
        assert!(!SENT.follows(BOTH), "a CLOSING flag is never cleared");
        assert!(!State::Open.follows(State::Closed), "CLOSED is final");
    }
}
