//! Measures the server's per-request authorization work for a warm Invoke: classify
//! the request into its action and resource ARN, then evaluate the caller's
//! policies — for the admin key's `*`/`*` policy and for an execution role of ten
//! statements whose matching one comes last (the worst case a role meets).
//! `cargo run --release -p stratus-iam --example authorize_cost`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

fn role() -> String {
    let mut statements: Vec<String> = (0..9)
        .map(|i| {
            format!(
                r#"{{"Effect":"Allow","Action":["sqs:SendMessage","sqs:Receive*","lambda:Get*"],"Resource":"arn:aws:sqs:us-east-1:000000000000:queue-{i}-*"}}"#
            )
        })
        .collect();
    statements.push(
        r#"{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":["arn:aws:lambda:*:*:function:no?p","arn:aws:lambda:*:*:function:noop:*"]}"#
            .into(),
    );
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn main() {
    let scope = stratus_iam::Scope {
        region: "us-east-1",
        account: "000000000000",
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let method = http::Method::POST;
    let req = stratus_iam::HttpRequest {
        method: &method,
        path: "/2015-03-31/functions/noop:1/invocations",
        query: None,
        headers: &headers,
        body: b"{}",
    };
    let admin = vec![stratus_iam::Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .unwrap()];
    let role = vec![stratus_iam::Policy::parse(&role()).unwrap()];
    let n = 500_000;
    for (label, policies) in [("admin (*/*)", &admin), ("10-statement role", &role)] {
        let mut allowed = 0u32;
        let t = Instant::now();
        for _ in 0..n {
            let requests = stratus_iam::classify(&scope, std::hint::black_box(&req)).unwrap();
            allowed += u32::from(stratus_iam::authorize(policies, &requests).is_ok());
        }
        let per = t.elapsed().as_secs_f64() * 1e9 / f64::from(n);
        assert_eq!(allowed, n, "{label}: the invoke must be allowed");
        // Classification alone, to split the two.
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                stratus_iam::classify(&scope, std::hint::black_box(&req)).unwrap(),
            );
        }
        let classify = t.elapsed().as_secs_f64() * 1e9 / f64::from(n);
        println!(
            "{label}: classify + authorize {per:.0} ns per request (classify alone {classify:.0} ns)"
        );
    }
}
