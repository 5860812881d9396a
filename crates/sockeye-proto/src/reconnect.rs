//! Reconnecting after an abnormal closure (RFC 6455 7.2.3).
//!
//! PLACEHOLDER: being written.
