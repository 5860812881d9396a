//! Session tests: byte-exact rules in mirrored client/server pairs, the three traced close
//! scenarios of seed 000 over an in-memory pair, property tests, and the resource bounds
//! that hold against hostile peers.

mod deflate;
mod limits;
mod pair;
mod props;
mod rules;
mod scenarios;
