//! Every route the API router declares, and every SQS operation the queue service
//! dispatches, is classified by `stratus_iam::classify` into an action and a resource:
//! a route added without its authorization fails here. The routes are read from the
//! router's own source (`src/api/*.rs`, each `.route(path, method(handler)…)`), and
//! each is sent through the real router to show it is served (not the fallback).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use stratus_iam::{classify, HttpRequest, Scope};
use tower::ServiceExt;

const SCOPE: Scope<'static> = Scope {
    region: "us-east-1",
    account: "000000000000",
};

/// (method, path template) of every `.route(` in the API modules.
fn declared_routes() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = src.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            // The call's text: up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            let call = &rest[..end];
            let path = call.split('"').nth(1).unwrap().to_string();
            for m in ["get", "post", "put", "delete", "head"] {
                let used = call.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[i - 1] != b'_'
                });
                if used {
                    out.push((m.to_uppercase(), path.clone()));
                }
            }
        }
    }
    assert!(out.len() > 40, "the route scan found only {out:?}");
    out
}

fn concrete(template: &str) -> String {
    template
        .replace("{name}", "hello")
        .replace("{alias}", "prod")
        .replace("{uuid}", "0b7c6f3e-1111-4222-8333-444455556666")
        .replace(
            "{arn}",
            "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello",
        )
        .replace("{sha}", "ab12")
        .replace("{service}", "svc")
        .replace("{stage}", "dev")
        .replace("{op}", "ListMetrics")
        .replace("{id}", "n1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_declared_route_is_classified_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        stratus_server::ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    let server = stratus_server::start(cfg).await.unwrap();
    let app = server.router();
    let headers = HeaderMap::new();
    for (method, template) in declared_routes() {
        let path = concrete(&template);
        if path == "/" {
            continue; // SQS: below.
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let req = HttpRequest {
            method: &m,
            path: &path,
            query: None,
            headers: &headers,
            body: b"",
        };
        let classified = classify(&SCOPE, &req)
            .unwrap_or_else(|e| panic!("{method} {template} is not classified: {e}"));
        assert!(!classified.is_empty(), "{method} {template}");
        for r in &classified {
            let service = r.action.split(':').next().unwrap();
            assert!(
                ["lambda", "stratus", "cloudwatch"].contains(&service),
                "{method} {template}: {r:?}"
            );
            assert!(
                r.resource == "*" || r.resource.starts_with("arn:aws:"),
                "{r:?}"
            );
        }
        // The router serves it (whatever the answer, it is not the fallback).
        let resp = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(m.clone())
                    .uri(&path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("UnknownOperation"),
            "{method} {path} went to the fallback ({status}): {text}"
        );
    }
    server.shutdown().await;
}

#[test]
fn every_sqs_operation_is_classified() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../stratus-queue/src/http.rs"),
    )
    .unwrap();
    let dispatch = &src[src.find("async fn dispatch").unwrap()..];
    let dispatch = &dispatch[..dispatch.find("other =>").unwrap()];
    // The match arms: lines that start with the operation's name (or `| "Name"`).
    let ops: Vec<&str> = dispatch
        .lines()
        .map(|l| l.trim().trim_start_matches("| "))
        .filter(|l| l.starts_with('"'))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(ops.len() >= 20, "{ops:?}");
    for op in ops {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", format!("AmazonSQS.{op}").parse().unwrap());
        let req = HttpRequest {
            method: &Method::POST,
            path: "/",
            query: None,
            headers: &headers,
            body: br#"{"QueueUrl":"http://127.0.0.1:1/000000000000/jobs","QueueName":"jobs"}"#,
        };
        let r = classify(&SCOPE, &req).unwrap_or_else(|e| panic!("{op}: {e}"));
        assert!(r[0].action.starts_with("sqs:"), "{op}: {r:?}");
        let expected = if op == "ListQueues" {
            "*"
        } else {
            "arn:aws:sqs:us-east-1:000000000000:jobs"
        };
        assert_eq!(r[0].resource, expected, "{op}");
    }
}
