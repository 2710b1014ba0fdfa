//! Verification of a presented signature: the credential scope (date, region,
//! service), the clock (5 minutes of skew; a presigned URL's expiry), and the
//! signature itself, compared in constant time. Errors carry AWS's error types and,
//! where AWS has one, its wording.

use std::collections::HashMap;

use http::HeaderMap;
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::canonical::{self, SigningKey};
use crate::parse::{format_amz_date, Form, Presented};

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature at all: 403 `MissingAuthenticationTokenException`.
    #[error("Missing Authentication Token")]
    Missing,
    /// A malformed signature: 400 `IncompleteSignatureException`.
    #[error("{0}")]
    Incomplete(String),
    /// An access key (or session token) the server does not know: 403
    /// `UnrecognizedClientException`.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match: 403 `InvalidSignatureException`.
    #[error("{0}")]
    BadSignature(String),
    /// The signature is too old, too new, or its presigned URL expired: 403
    /// `InvalidSignatureException`.
    #[error("{0}")]
    Expired(String),
    /// The credential is scoped to another date, region or service: 403
    /// `InvalidSignatureException`.
    #[error("{0}")]
    Scope(String),
}

impl AuthError {
    /// The AWS error type.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::UnknownKey => "UnrecognizedClientException",
            Self::BadSignature(_) | Self::Expired(_) | Self::Scope(_) => {
                "InvalidSignatureException"
            }
        }
    }

    /// The code the query-protocol services (SQS) give the same failure, which they
    /// also send on their JSON protocol in `x-amzn-query-error` (SQS's common errors:
    /// `MissingAuthenticationToken`, `InvalidClientTokenId`, `IncompleteSignature`,
    /// and `SignatureDoesNotMatch` for a signature that is wrong, out of date or
    /// scoped elsewhere).
    pub fn query_code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationToken",
            Self::Incomplete(_) => "IncompleteSignature",
            Self::UnknownKey => "InvalidClientTokenId",
            Self::BadSignature(_) | Self::Expired(_) | Self::Scope(_) => "SignatureDoesNotMatch",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Incomplete(_) => 400,
            _ => 403,
        }
    }
}

/// AWS's words for a signature that does not match.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl Presented {
    /// The credential must be scoped to the day of `X-Amz-Date`, this server's
    /// `region` and the `service` the request is for.
    pub fn check_scope(&self, region: &str, service: &str) -> Result<(), AuthError> {
        let c = &self.credential;
        let day = self.amz_date.get(..8).unwrap_or_default();
        if c.date != day {
            return Err(AuthError::Scope(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{day}', from '{}'.",
                c.date, self.amz_date
            )));
        }
        if c.region != region {
            return Err(AuthError::Scope(format!(
                "Credential should be scoped to a valid region, not '{}'. This server's region is '{region}'.",
                c.region.chars().take(64).collect::<String>()
            )));
        }
        if c.service != service {
            return Err(AuthError::Scope(format!(
                "Credential should be scoped to correct service: '{service}'. "
            )));
        }
        Ok(())
    }

    /// The header form must be signed within 5 minutes of `now` either way; a
    /// presigned URL may not be dated more than 5 minutes ahead and expires
    /// `X-Amz-Expires` seconds after its date.
    pub fn check_time(&self, now: OffsetDateTime) -> Result<(), AuthError> {
        let skew = time::Duration::try_from(crate::MAX_SKEW).unwrap_or(time::Duration::ZERO);
        // Formatted only on the way to an error: this runs on every request.
        let now_s = || format_amz_date(now);
        if self.time > now + skew {
            let now_s = now_s();
            return Err(AuthError::Expired(format!(
                "Signature not yet current: {} is still later than {} ({now_s} + 5 min.)",
                self.amz_date,
                format_amz_date(now + skew)
            )));
        }
        match (self.form, self.expires) {
            (Form::Query, Some(expires)) => {
                let secs = i64::try_from(expires).unwrap_or(i64::MAX);
                // Checked: a date near the end of year 9999 plus a week overflows.
                let Some(until) = self.time.checked_add(time::Duration::seconds(secs)) else {
                    return Err(AuthError::Expired(format!(
                        "X-Amz-Date {} plus X-Amz-Expires {expires} is out of range.",
                        self.amz_date
                    )));
                };
                if until < now {
                    let now_s = now_s();
                    return Err(AuthError::Expired(format!(
                        "Signature expired: {} is now earlier than {} ({now_s} - {expires} sec.)",
                        format_amz_date(until),
                        now_s
                    )));
                }
            }
            _ => {
                if self.time < now - skew {
                    let now_s = now_s();
                    return Err(AuthError::Expired(format!(
                        "Signature expired: {} is now earlier than {} ({now_s} - 5 min.)",
                        self.amz_date,
                        format_amz_date(now - skew)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The canonical request this signature must cover.
    pub fn canonical_request(
        &self,
        method: &str,
        raw_path: &str,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        payload_hash: &str,
    ) -> Vec<u8> {
        let exclude = (self.form == Form::Query).then_some("X-Amz-Signature");
        let query = canonical::canonical_query(raw_query, exclude);
        canonical::canonical_request(
            method,
            raw_path,
            &query,
            headers,
            &self.signed_headers,
            payload_hash,
        )
    }

    /// Checks the signature over `canonical_request` with the derived `key`. On a
    /// mismatch the error shows, as AWS does, the canonical request and string to
    /// sign the server expected (a session token's value left out).
    pub fn verify(&self, key: &SigningKey, canonical_request: &[u8]) -> Result<(), AuthError> {
        let sts =
            canonical::string_to_sign(&self.amz_date, &self.credential.scope(), canonical_request);
        if canonical::signature_matches(key, &sts, &self.signature) {
            return Ok(());
        }
        let shown: Vec<String> = String::from_utf8_lossy(canonical_request)
            .lines()
            .map(|l| {
                if l.starts_with("x-amz-security-token:") {
                    "x-amz-security-token:<redacted>".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        Err(AuthError::BadSignature(format!(
            "{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{}'\n\nThe String-to-Sign should have been\n'{sts}'\n",
            shown.join("\n")
        )))
    }
}

/// Derived signing keys by (access key id, date, region, service): a key is derived
/// once a day per scope instead of on every request (four HMACs saved on the warm
/// Invoke path).
#[derive(Debug, Default)]
pub struct SigningKeyCache {
    keys: Mutex<HashMap<(String, String, String, String), SigningKey>>,
}

/// Past this many entries the cache starts over (scopes roll daily; this bounds
/// memory against many keys or many regions).
const CACHE_LIMIT: usize = 4096;

impl SigningKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signing key of `access_key_id` (whose secret is `secret`) for a scope.
    pub fn get(
        &self,
        access_key_id: &str,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> SigningKey {
        let id = (
            access_key_id.to_string(),
            date.to_string(),
            region.to_string(),
            service.to_string(),
        );
        if let Some(k) = self.keys.lock().get(&id) {
            return *k;
        }
        let key = canonical::signing_key(secret, date, region, service);
        let mut keys = self.keys.lock();
        if keys.len() >= CACHE_LIMIT {
            keys.clear();
        }
        keys.insert(id, key);
        key
    }

    /// Drops every cached key of `access_key_id` (it was deleted or revoked).
    pub fn forget(&self, access_key_id: &str) {
        self.keys.lock().retain(|k, _| k.0 != access_key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::presented;
    use crate::sign::{sign_request, Credentials};

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAEXAMPLE000000000".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        }
    }

    fn signed_at(t: OffsetDateTime) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:9000".parse().unwrap());
        sign_request(
            &creds(),
            "us-east-1",
            "lambda",
            "POST",
            "/2015-03-31/functions/f/invocations",
            Some("Qualifier=%24LATEST"),
            &mut h,
            b"{}",
            t,
        );
        h
    }

    #[test]
    fn signed_requests_verify_and_tampering_does_not() {
        let now = OffsetDateTime::now_utc();
        let h = signed_at(now);
        let p = presented(&h, Some("Qualifier=%24LATEST")).unwrap().unwrap();
        p.check_scope("us-east-1", "lambda").unwrap();
        p.check_time(now).unwrap();
        let cache = SigningKeyCache::new();
        let c = &p.credential;
        let key = cache.get(&c.access_key_id, "secret", &c.date, &c.region, &c.service);
        let hash = canonical::hex_sha256(b"{}");
        let path = "/2015-03-31/functions/f/invocations";
        let cr = p.canonical_request("POST", path, Some("Qualifier=%24LATEST"), &h, &hash);
        p.verify(&key, &cr).unwrap();
        // Another body, another path, another secret: each fails.
        let other = canonical::hex_sha256(b"{\"a\":1}");
        let cr2 = p.canonical_request("POST", path, Some("Qualifier=%24LATEST"), &h, &other);
        assert!(matches!(
            p.verify(&key, &cr2),
            Err(AuthError::BadSignature(_))
        ));
        let cr3 = p.canonical_request("POST", "/x", Some("Qualifier=%24LATEST"), &h, &hash);
        assert!(matches!(
            p.verify(&key, &cr3),
            Err(AuthError::BadSignature(_))
        ));
        let wrong = canonical::signing_key("other", &c.date, &c.region, &c.service);
        match p.verify(&wrong, &cr) {
            Err(AuthError::BadSignature(m)) => {
                assert!(m.starts_with(SIGNATURE_MISMATCH), "{m}");
                assert!(m.contains("The Canonical String for this request should have been"));
            }
            other => panic!("{other:?}"),
        }
        // Scope checks.
        assert!(matches!(
            p.check_scope("eu-west-1", "lambda"),
            Err(AuthError::Scope(_))
        ));
        assert!(matches!(
            p.check_scope("us-east-1", "sqs"),
            Err(AuthError::Scope(_))
        ));
    }

    #[test]
    fn clock_skew_is_five_minutes() {
        let now = OffsetDateTime::now_utc();
        let p = |t| presented(&signed_at(t), None).unwrap().unwrap();
        p(now - time::Duration::minutes(4)).check_time(now).unwrap();
        p(now + time::Duration::minutes(4)).check_time(now).unwrap();
        match p(now - time::Duration::minutes(6)).check_time(now) {
            Err(AuthError::Expired(m)) => {
                assert!(m.starts_with("Signature expired: "), "{m}");
                assert!(m.contains(" is now earlier than "), "{m}");
                assert!(m.ends_with(" - 5 min.)"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match p(now + time::Duration::minutes(6)).check_time(now) {
            Err(AuthError::Expired(m)) => {
                assert!(m.starts_with("Signature not yet current"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn far_future_presigned_dates_do_not_overflow() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F99991231%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let p = presented(&HeaderMap::new(), Some(q)).unwrap().unwrap();
        assert!(matches!(
            p.check_time(OffsetDateTime::now_utc()),
            Err(AuthError::Expired(_))
        ));
        let mut p2 = p.clone();
        p2.time = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        p2.check_time(OffsetDateTime::now_utc()).unwrap();
    }

    #[test]
    fn cache_forgets_a_key() {
        let cache = SigningKeyCache::new();
        let a = cache.get("AK", "s1", "20240101", "r", "s");
        assert_eq!(a, canonical::signing_key("s1", "20240101", "r", "s"));
        cache.forget("AK");
        let b = cache.get("AK", "s2", "20240101", "r", "s");
        assert_ne!(a, b);
    }
}
