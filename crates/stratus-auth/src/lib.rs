//! `stratus-auth` owns AWS Signature Version 4 for Stratus, on both sides of the wire:
//!
//! - [`canonical`]: the canonical request exactly as AWS defines it (URI encoding,
//!   path normalization, query sorting, header value trimming) and the signing-key
//!   derivation (`AWS4` + secret → date → region → service → `aws4_request`).
//! - [`parse`]: what a request presents — the `Authorization` header form or the
//!   query-string (presigned) form. [`parse::parse_authorization`] is the entry point
//!   for untrusted text: it never panics, whatever it is given (fuzzed).
//! - [`verify`]: scope, clock-skew and expiry checks, the signature comparison in
//!   constant time, and a cache of derived signing keys so a warm request costs one
//!   HMAC chain less.
//! - [`sign`]: signing outgoing requests (the `stratus` CLI).
//! - [`session_cookie`]: the web dashboard's signed session cookies (HMAC under a
//!   per-server random key, bound to the access key's secret).
//! - [`keys`]: access-key generation from the OS RNG and temporary session
//!   credentials (`ASIA…` + session token) held in memory and revocable.
//!
//! Crypto is the `hmac` and `sha2` crates; nothing here logs or formats a secret.

pub mod canonical;
pub mod keys;
pub mod parse;
pub mod session_cookie;
pub mod sign;
pub mod verify;

pub use keys::{Session, Sessions};
pub use parse::{parse_authorization, Presented};
pub use sign::Credentials;
pub use verify::{AuthError, SigningKeyCache};

/// The only signing algorithm SigV4 defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The payload hash of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The payload hash a client may send instead of hashing (S3 only, and presigned S3
/// URLs); Stratus's APIs refuse it, as Lambda and SQS do.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Clock skew allowed between a signature's date and the server's clock.
pub const MAX_SKEW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The longest `X-Amz-Expires` of a presigned URL (seven days).
pub const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 3600;
