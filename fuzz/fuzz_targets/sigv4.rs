//! SigV4 as a request presents it (`stratus-auth`): the input's first line is an
//! `Authorization` header value, the second an `X-Amz-Date`, the third a query string
//! (the presigned form), the rest a request path. Parsing must refuse with an AWS
//! error or succeed, never panic; whatever parses goes on through the scope and clock
//! checks, the canonical request and the signature check against a fixed key, which
//! must refuse (nobody can forge a signature by fuzzing) or, for a correctly signed
//! request, agree with the signer.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stratus_fuzz::text;

fuzz_target!(|data: &[u8]| {
    let Some(input) = text(data) else { return };
    let mut lines = input.splitn(4, '\n');
    let auth = lines.next().unwrap_or("");
    let date = lines.next().unwrap_or("");
    let query = lines.next().filter(|q| !q.is_empty());
    let path = lines.next().unwrap_or("/");
    let _ = stratus_auth::parse_authorization(auth).map_err(|e| e.to_string());
    let mut headers = HeaderMap::new();
    for (name, value) in [("authorization", auth), ("x-amz-date", date), ("host", "h")] {
        if let Ok(v) = HeaderValue::from_str(value) {
            if !value.is_empty() {
                headers.insert(name, v);
            }
        }
    }
    let presented = match stratus_auth::parse::presented(&headers, query) {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = presented.check_scope("us-east-1", "lambda");
    let _ = presented.check_time(time::OffsetDateTime::now_utc());
    let path = if path.starts_with('/') { path } else { "/" };
    let canonical = presented.canonical_request(
        "POST",
        path,
        query,
        &headers,
        stratus_auth::EMPTY_SHA256,
    );
    let cache = stratus_auth::SigningKeyCache::new();
    let c = &presented.credential;
    let key = cache.get(
        &c.access_key_id,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        &c.date,
        &c.region,
        &c.service,
    );
    // A random signature never verifies (the chance is 2^-256).
    assert!(presented.verify(&key, &canonical).is_err());
});
