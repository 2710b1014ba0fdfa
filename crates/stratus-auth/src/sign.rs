//! Signing outgoing requests (the `stratus` CLI): the header form, with the payload
//! hash sent in `X-Amz-Content-Sha256`, and presigned query strings.

use http::{HeaderMap, HeaderValue};
use time::OffsetDateTime;

use crate::canonical;
use crate::parse::format_amz_date;

/// An access key pair, with a session token for temporary credentials. `Debug`
/// never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` or `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Headers a client or proxy may change in transit, never signed.
const UNSIGNED_HEADERS: &[&str] = &["authorization", "user-agent", "expect", "x-amzn-trace-id"];

/// Signs a request in place: adds `X-Amz-Date`, `X-Amz-Content-Sha256`,
/// `X-Amz-Security-Token` (session credentials) and `Authorization`, signing every
/// header present (the caller sets `Host`).
#[allow(clippy::too_many_arguments)] // one call site per client; a struct adds nothing
pub fn sign_request(
    creds: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &mut HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) {
    let amz_date = format_amz_date(now);
    let date = &amz_date[..8];
    let payload_hash = canonical::hex_sha256(body);
    headers.remove("authorization");
    if let Ok(v) = HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    if let Ok(v) = HeaderValue::from_str(&payload_hash) {
        headers.insert("x-amz-content-sha256", v);
    }
    if let Some(t) = creds
        .session_token
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert("x-amz-security-token", t);
    }
    let mut signed: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| !UNSIGNED_HEADERS.contains(&k.as_str()))
        .collect();
    signed.sort();
    signed.dedup();
    let cr = canonical::canonical_request(
        method,
        raw_path,
        &canonical::canonical_query(raw_query, None),
        headers,
        &signed,
        &payload_hash,
    );
    let scope = canonical::scope(date, region, service);
    let sts = canonical::string_to_sign(&amz_date, &scope, &cr);
    let key = canonical::signing_key(&creds.secret_access_key, date, region, service);
    let auth = format!(
        "{} Credential={}/{scope}, SignedHeaders={}, Signature={}",
        crate::ALGORITHM,
        creds.access_key_id,
        signed.join(";"),
        canonical::signature(&key, &sts)
    );
    if let Ok(v) = HeaderValue::from_str(&auth) {
        headers.insert("authorization", v);
    }
}

/// A presigned query string for a request with an empty body whose only signed
/// header is `host`: the original `raw_query` (if any) plus the `X-Amz-*`
/// parameters and the signature.
#[allow(clippy::too_many_arguments)]
pub fn presign_query(
    creds: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    host: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    expires: u64,
    now: OffsetDateTime,
) -> String {
    let amz_date = format_amz_date(now);
    let date = &amz_date[..8];
    let scope = canonical::scope(date, region, service);
    let enc = |s: &str| canonical::uri_encode(s.as_bytes(), false);
    let mut q = String::new();
    if let Some(r) = raw_query.filter(|r| !r.is_empty()) {
        q.push_str(r);
        q.push('&');
    }
    q.push_str(&format!(
        "X-Amz-Algorithm={}&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host",
        crate::ALGORITHM,
        enc(&format!("{}/{scope}", creds.access_key_id)),
    ));
    if let Some(t) = &creds.session_token {
        q.push_str(&format!("&X-Amz-Security-Token={}", enc(t)));
    }
    let mut headers = HeaderMap::new();
    if let Ok(h) = HeaderValue::from_str(host) {
        headers.insert("host", h);
    }
    let cr = canonical::canonical_request(
        method,
        raw_path,
        &canonical::canonical_query(Some(&q), None),
        &headers,
        &["host".to_string()],
        crate::EMPTY_SHA256,
    );
    let sts = canonical::string_to_sign(&amz_date, &scope, &cr);
    let key = canonical::signing_key(&creds.secret_access_key, date, region, service);
    q.push_str(&format!(
        "&X-Amz-Signature={}",
        canonical::signature(&key, &sts)
    ));
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials {
            access_key_id: "AKIAX".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("tok".into()),
        };
        let s = format!("{c:?}");
        assert!(s.contains("AKIAX") && !s.contains("very-secret") && !s.contains("tok\""));
    }

    #[test]
    fn presigned_queries_verify() {
        let c = Credentials {
            access_key_id: "AKIAX".into(),
            secret_access_key: "s".into(),
            session_token: Some("t/+=".into()),
        };
        let now = OffsetDateTime::now_utc();
        let q = presign_query(
            &c,
            "us-east-1",
            "lambda",
            "GET",
            "h:1",
            "/p",
            Some("a=1"),
            60,
            now,
        );
        let mut h = HeaderMap::new();
        h.insert("host", "h:1".parse().unwrap());
        let p = crate::parse::presented(&h, Some(&q)).unwrap().unwrap();
        assert_eq!(p.security_token.as_deref(), Some("t/+="));
        p.check_time(now).unwrap();
        let key = canonical::signing_key("s", &p.credential.date, "us-east-1", "lambda");
        let cr = p.canonical_request("GET", "/p", Some(&q), &h, crate::EMPTY_SHA256);
        p.verify(&key, &cr).unwrap();
        // Expired an hour later.
        assert!(p.check_time(now + time::Duration::hours(1)).is_err());
    }
}
