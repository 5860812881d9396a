//! A whole server-side session fed arbitrary bytes, with DESIGN.md's invariants checked
//! after every step (see the crate documentation for the input format).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sockeye_fuzz::run_server_session(data));
