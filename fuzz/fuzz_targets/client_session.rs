//! A whole client-side session fed arbitrary bytes, behind a valid 101 response when the
//! first input byte asks for one, with DESIGN.md's invariants checked after every step
//! (see the crate documentation for the input format).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sockeye_fuzz::run_client_session(data));
