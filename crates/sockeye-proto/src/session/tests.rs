//! Session tests: byte-exact rules in mirrored client/server pairs, the three traced close
//! scenarios of seed 000 over an in-memory pair, and property tests.

mod deflate;
mod pair;
mod props;
mod rules;
mod scenarios;
