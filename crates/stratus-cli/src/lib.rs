//! `stratus-cli` as a library: the HTTP client the `stratus` binary speaks to a
//! Stratus server with (the Lambda API, the NDJSON deploy stream, the invoke path).
//! The integration tests drive servers through the same client; `transport` is its
//! TLS and plain-HTTP policy.

pub mod client;
pub mod signing;
pub mod transport;
