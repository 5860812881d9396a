//! A client that reconnects after abnormal closures (RFC 6455 7.2.3).
//!
//! PLACEHOLDER: being written.
