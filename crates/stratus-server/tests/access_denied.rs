//! The authorization pieces against the real AWS SDK for Python: an endpoint that
//! classifies each request with `stratus_iam::classify`, evaluates it against a
//! policy and answers denials with `stratus_iam::access_denied`, driven by boto3
//! (`tests/sdk/access_denied.py`). It shows that the requests botocore builds (paths,
//! encodings, `X-Amz-Target`, bodies) classify as intended and that the SDK reads the
//! denials as `AccessDeniedException` (Lambda) and `AccessDenied` (SQS) with AWS's
//! text.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use stratus_iam::{access_denied, authorize, classify, HttpRequest, Policy, Scope};

const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "lambda:GetFunction",
   "Resource": ["arn:aws:lambda:us-east-1:000000000000:function:hello", "arn:aws:lambda:us-east-1:000000000000:function:hello:*"]},
  {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:other"},
  {"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:us-east-1:000000000000:jobs"},
  {"Effect": "Deny", "Action": "sqs:PurgeQueue", "Resource": "*"}
]}"#;

async fn authorizing(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let policy = Policy::parse(POLICY).unwrap();
    let scope = Scope {
        region: "us-east-1",
        account: "000000000000",
    };
    let req = HttpRequest {
        method: &method,
        path: uri.path(),
        query: uri.query(),
        headers: &headers,
        body: &body,
    };
    let requests = match classify(&scope, &req) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    match authorize(std::slice::from_ref(&policy), &requests) {
        Err((refused, decision)) => {
            let d = access_denied("arn:aws:iam::000000000000:user/ci", refused, decision);
            let mut resp =
                (axum::http::StatusCode::from_u16(d.status).unwrap(), d.body).into_response();
            for (k, v) in d.headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
        Ok(()) => {
            // Allowed: say what was classified, as an error every SDK surfaces.
            let what = requests
                .iter()
                .map(|r| format!("{} {}", r.action, r.resource))
                .collect::<Vec<_>>()
                .join(", ");
            let sqs = headers.contains_key("x-amz-target");
            let body = if sqs {
                serde_json::json!({"__type": "com.amazonaws.sqs#Classified", "message": what})
            } else {
                serde_json::json!({"Type": "User", "message": what})
            };
            let mut resp = (axum::http::StatusCode::BAD_REQUEST, body.to_string()).into_response();
            let h = resp.headers_mut();
            h.insert("x-amzn-errortype", "Classified".parse().unwrap());
            h.insert("x-amzn-query-error", "Classified;Sender".parse().unwrap());
            h.insert(
                "content-type",
                "application/x-amz-json-1.0".parse().unwrap(),
            );
            resp
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_denials_and_its_requests_classify_as_intended() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(authorizing);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let script = format!("{}/tests/sdk/access_denied.py", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(format!("http://{addr}"))
        .output()
        .await
        .expect("run python3 (boto3 is installed by scripts/test)");
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
