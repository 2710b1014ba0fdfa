//! Measures the server's per-request verification work (parse, scope and clock
//! checks, canonical request, cached signing key, HMAC check) for a warm Invoke.
//! `cargo run --release -p stratus-auth --example verify_cost`
#![allow(clippy::unwrap_used)]

fn main() {
    use stratus_auth::*;
    let creds = Credentials {
        access_key_id: "AKIAAAAAAAAAAAAAAAAA".into(),
        secret_access_key: "s".repeat(40),
        session_token: None,
    };
    let mut h = http::HeaderMap::new();
    h.insert("host", "127.0.0.1:9000".parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    let path = "/2015-03-31/functions/noop:1/invocations";
    let now = time::OffsetDateTime::now_utc();
    sign::sign_request(
        &creds,
        "us-east-1",
        "lambda",
        "POST",
        path,
        None,
        &mut h,
        b"{}",
        now,
    );
    let cache = SigningKeyCache::new();
    let n = 200_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let p = parse::presented(&h, None).unwrap().unwrap();
        p.check_scope("us-east-1", "lambda").unwrap();
        p.check_time(now).unwrap();
        let c = &p.credential;
        let key = cache.get(
            &c.access_key_id,
            &creds.secret_access_key,
            &c.date,
            &c.region,
            &c.service,
        );
        let hash = canonical::hex_sha256(b"{}");
        let cr = p.canonical_request("POST", path, None, &h, &hash);
        p.verify(&key, &cr).unwrap();
    }
    println!(
        "{:.2} µs per verification",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
