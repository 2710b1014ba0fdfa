//! Hostile input through the API router in-process (`tower::ServiceExt::oneshot`, no
//! socket): bodies over each route's limit, names that try to leave their place
//! (`../`, `/`, NUL, very long, unicode) and numbers that try to wrap (`-1`, `2^31`,
//! `2^32`, `2^63`, `1e400`, `"12abc"`, fractions) in every field that takes one.
//! Each must be answered with the API's own error (Lambda's REST-JSON shape, or
//! SQS's JSON), never a success, a wrapped value or a server error, and a refused
//! change must leave the state as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use stratus_server::api::limits;
use stratus_server::{RunningServer, ServerConfig};
use tower::ServiceExt;

struct Api {
    _server: RunningServer,
    app: Router,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    error_type: String,
    body: Value,
}

/// Percent-encodes everything but unreserved characters, so a name reaches the
/// router byte for byte (`/` as `%2F`, NUL as `%00`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
        let server = stratus_server::start(cfg).await.unwrap();
        let app = server.router();
        Self {
            _server: server,
            app,
            _dir: dir,
        }
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer {
            status,
            error_type,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, body: &str) -> Answer {
        self.raw(method, path, &[], body.as_bytes().to_vec()).await
    }

    async fn sqs(&self, action: &str, body: Value) -> Answer {
        self.sqs_raw(action, body.to_string()).await
    }

    async fn sqs_raw(&self, action: &str, body: String) -> Answer {
        let target = format!("AmazonSQS.{action}");
        self.raw(
            "POST",
            "/",
            &[
                ("x-amz-target", &target),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            body.into_bytes(),
        )
        .await
    }

    async fn create_function(&self, name: &str) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.js"),
            "exports.handler = async () => 1;\n",
        )
        .unwrap();
        let zip = stratus_package::zip_dir(dir.path()).unwrap();
        let body = json!({
            "FunctionName": name, "Runtime": "nodejs20.x", "Handler": "index.handler",
            "Role": "arn:aws:iam::000000000000:role/r",
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
        });
        let a = self
            .call("POST", "/2015-03-31/functions", &body.to_string())
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    }
}

/// A Lambda validation answer: 400 with one of the validation error types.
#[track_caller]
fn assert_refused(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {a:?}");
    assert!(
        matches!(
            a.error_type.as_str(),
            "ValidationException"
                | "InvalidParameterValueException"
                | "InvalidRequestContentException"
        ),
        "{what}: {a:?}"
    );
    assert_eq!(a.body["Type"], "User", "{what}: {a:?}");
}

/// Numbers that must never be taken for a valid setting, as JSON literals.
const HOSTILE_NUMBERS: &[&str] = &[
    "-1",
    "2147483648",
    "4294967296",
    "4294967424", // 2^32 + 128: wraps to a valid memory size in a u32
    "9223372036854775808",
    "18446744073709551616",
    "1e400",
    "-1e400",
    "1.5",
    "\"12abc\"",
    "\"128\"",
    "true",
    "[]",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_has_a_limit_and_an_oversized_one_gets_the_api_error() {
    let api = Api::start().await;
    api.create_function("f").await;

    // A JSON management call: 1 MiB.
    let over = vec![b' '; limits::MANAGEMENT_BODY_BYTES + 1];
    for (method, path) in [
        ("PUT", "/2015-03-31/functions/f/configuration"),
        ("POST", "/2015-03-31/functions/f/aliases"),
        ("PUT", "/2017-10-31/functions/f/concurrency"),
        ("POST", "/2015-03-31/event-source-mappings"),
        (
            "POST",
            "/2017-03-31/tags/arn:aws:lambda:us-east-1:000000000000:function:f",
        ),
        ("PUT", "/2019-09-25/functions/f/event-invoke-config"),
        ("POST", "/stratus/v1/services/svc/dev/rollback"),
    ] {
        let a = api.raw(method, path, &[], over.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}: {a:?}"
        );
        assert_eq!(
            a.error_type, "RequestEntityTooLargeException",
            "{method} {path}"
        );
        assert_eq!(a.body["Type"], "User");
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("1048576 bytes"),
            "{a:?}"
        );
    }
    // Just under the limit is read (and refused for what it says, not its size).
    let mut under = vec![b' '; limits::MANAGEMENT_BODY_BYTES - 2];
    under.extend_from_slice(b"{}");
    let a = api
        .raw("PUT", "/2017-10-31/functions/f/concurrency", &[], under)
        .await;
    assert_ne!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");

    // CreateFunction and UpdateFunctionCode: Lambda's 70,167,211 bytes.
    let over = vec![b' '; limits::CODE_UPLOAD_BODY_BYTES + 1];
    for (method, path) in [
        ("POST", "/2015-03-31/functions"),
        ("PUT", "/2015-03-31/functions/f/code"),
    ] {
        let a = api.raw(method, path, &[], over.clone()).await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {a:?}");
        assert_eq!(a.error_type, "RequestEntityTooLargeException");
        assert!(a.body["message"]
            .as_str()
            .unwrap()
            .contains("70167211 bytes"));
    }
    // A 2 MB body is fine there (refused as JSON, not for its size).
    let a = api
        .raw("POST", "/2015-03-31/functions", &[], vec![b'x'; 2 << 20])
        .await;
    assert_refused(&a, "2 MB CreateFunction");

    // A raw package: 50 MB; a deployment: 16 MiB.
    let sha = "0".repeat(64);
    let a = api
        .raw(
            "PUT",
            &format!("/stratus/v1/blobs/{sha}"),
            &[],
            vec![0; limits::BLOB_BODY_BYTES + 1],
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    let a = api
        .raw(
            "POST",
            "/stratus/v1/services/svc/dev/deployments",
            &[],
            vec![b' '; limits::DEPLOY_BODY_BYTES + 1],
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    assert_eq!(a.error_type, "RequestEntityTooLargeException");

    // SQS: 4 MiB, answered in the SQS JSON protocol's shape.
    let a = api
        .raw(
            "POST",
            "/",
            &[("x-amz-target", "AmazonSQS.SendMessage")],
            vec![b' '; limits::SQS_BODY_BYTES + 1],
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    assert!(a.body["__type"]
        .as_str()
        .unwrap()
        .ends_with("RequestEntityTooLargeException"));

    // Invoke keeps its own 6 MB limit and error.
    let a = api
        .raw(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[],
            vec![b' '; 6 * 1024 * 1024 + 1],
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.error_type, "RequestTooLargeException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_out_of_range_are_refused_and_change_nothing() {
    let api = Api::start().await;
    api.create_function("f").await;
    let a = api
        .call("POST", "/2015-03-31/functions/f/versions", "{}")
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let before = api
        .call("GET", "/2015-03-31/functions/f/configuration", "")
        .await
        .body;

    // The CreateFunction body used below, with valid numbers, is accepted: so each
    // refusal below is the number's doing.
    let control = r#"{"FunctionName":"g","Runtime":"nodejs20.x","Handler":"i.h","Role":"arn:aws:iam::000000000000:role/r","Code":{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},"MemorySize": 128, "Timeout": 3, "EphemeralStorage": {"Size": 512}}"#;
    let a = api.call("POST", "/2015-03-31/functions", control).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let a = api.call("DELETE", "/2015-03-31/functions/g", "").await;
    assert!(a.status.is_success(), "{a:?}");

    // So are these (then undone), with the numbers in range.
    let a = api.sqs("CreateQueue", json!({ "QueueName": "q" })).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let mapping = r#"{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","BatchSize": 10, "MaximumBatchingWindowInSeconds": 0}"#;
    let a = api
        .call("POST", "/2015-03-31/event-source-mappings", mapping)
        .await;
    assert!(a.status.is_success(), "{a:?}");
    let uuid = a.body["UUID"].as_str().unwrap().to_string();
    let a = api
        .call(
            "DELETE",
            &format!("/2015-03-31/event-source-mappings/{uuid}"),
            "",
        )
        .await;
    assert!(a.status.is_success(), "{a:?}");
    let path = "/2019-09-25/functions/f/event-invoke-config";
    let body = r#"{"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 60}"#;
    assert!(api.call("PUT", path, body).await.status.is_success());
    assert!(api.call("DELETE", path, "").await.status.is_success());
    let path = "/2017-10-31/functions/f/concurrency";
    let body = r#"{"ReservedConcurrentExecutions": 5}"#;
    assert!(api.call("PUT", path, body).await.status.is_success());
    assert!(api.call("DELETE", path, "").await.status.is_success());

    for n in HOSTILE_NUMBERS {
        for field in [
            format!(r#"{{"MemorySize": {n}}}"#),
            format!(r#"{{"Timeout": {n}}}"#),
            format!(r#"{{"EphemeralStorage": {{"Size": {n}}}}}"#),
        ] {
            let a = api
                .call("PUT", "/2015-03-31/functions/f/configuration", &field)
                .await;
            assert_refused(&a, &format!("UpdateFunctionConfiguration {field}"));
            let create = field.replacen('{', r#"{"FunctionName":"g","Runtime":"nodejs20.x","Handler":"i.h","Role":"arn:aws:iam::000000000000:role/r","Code":{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},"#, 1);
            let a = api.call("POST", "/2015-03-31/functions", &create).await;
            assert_refused(&a, &format!("CreateFunction {field}"));
        }
        for (path, field) in [
            (
                "/2019-09-25/functions/f/event-invoke-config",
                "MaximumRetryAttempts",
            ),
            (
                "/2019-09-25/functions/f/event-invoke-config",
                "MaximumEventAgeInSeconds",
            ),
            (
                "/2017-10-31/functions/f/concurrency",
                "ReservedConcurrentExecutions",
            ),
            (
                "/2019-09-30/functions/f/provisioned-concurrency?Qualifier=1",
                "ProvisionedConcurrentExecutions",
            ),
        ] {
            let a = api
                .call("PUT", path, &format!(r#"{{"{field}": {n}}}"#))
                .await;
            assert_refused(&a, &format!("{path} {field}={n}"));
        }
        for field in ["BatchSize", "MaximumBatchingWindowInSeconds"] {
            let body = format!(
                r#"{{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","{field}": {n}}}"#
            );
            let a = api
                .call("POST", "/2015-03-31/event-source-mappings", &body)
                .await;
            assert_refused(&a, &format!("CreateEventSourceMapping {field}={n}"));
        }
    }
    let after = api
        .call("GET", "/2015-03-31/functions/f/configuration", "")
        .await
        .body;
    for key in ["MemorySize", "Timeout", "EphemeralStorage", "RevisionId"] {
        assert_eq!(before[key], after[key], "{key} changed");
    }
    let a = api
        .call("GET", "/2015-03-31/event-source-mappings", "")
        .await;
    assert_eq!(a.body["EventSourceMappings"], json!([]), "{a:?}");
    let a = api
        .call("GET", "/2019-09-25/functions/f/event-invoke-config", "")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{a:?}");

    // List operations: MaxItems and Marker as query strings.
    for raw in [
        "-1",
        "0",
        "10001",
        "4294967296",
        "9223372036854775808",
        "1e400",
        "1.5",
        "12abc",
    ] {
        for path in [
            "/2015-03-31/functions/",
            "/2015-03-31/functions/f/versions",
            "/2015-03-31/functions/f/aliases",
            "/2015-03-31/event-source-mappings",
        ] {
            let a = api
                .call("GET", &format!("{path}?MaxItems={}", enc(raw)), "")
                .await;
            assert_eq!(
                a.error_type, "ValidationException",
                "{path} MaxItems={raw}: {a:?}"
            );
        }
    }
    let a = api
        .call("GET", "/2015-03-31/functions/?Marker=%25%25", "")
        .await;
    assert_refused(&a, "Marker=%%");

    // Stratus's own log query: numbers in the query string.
    for (param, raw) in [
        ("limit", "-1"),
        ("limit", "4294967296"),
        ("limit", "12abc"),
        ("start", "9223372036854775808"),
        ("start", "1e400"),
        ("after", "1.5"),
    ] {
        let a = api
            .call(
                "GET",
                &format!("/stratus/v1/logs?function=f&{param}={}", enc(raw)),
                "",
            )
            .await;
        assert_refused(&a, &format!("logs {param}={raw}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_numbers_out_of_range_are_refused() {
    let api = Api::start().await;
    let a = api.sqs("CreateQueue", json!({ "QueueName": "q" })).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let url = a.body["QueueUrl"].as_str().unwrap().to_string();
    let sqs_refused = |a: &Answer, what: &str| {
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {a:?}");
        assert!(a.body["__type"].is_string(), "{what}: {a:?}");
    };
    for n in HOSTILE_NUMBERS {
        let v: Value = serde_json::from_str(n).unwrap_or(Value::Null);
        // Attributes are strings on the wire.
        let text = match &v {
            Value::String(s) => s.clone(),
            _ => n.to_string(),
        };
        if text == "128" {
            continue; // a valid VisibilityTimeout, DelaySeconds…
        }
        for attr in [
            "VisibilityTimeout",
            "DelaySeconds",
            "MessageRetentionPeriod",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
        ] {
            let a = api
                .sqs(
                    "SetQueueAttributes",
                    json!({ "QueueUrl": url, "Attributes": { attr: text } }),
                )
                .await;
            sqs_refused(&a, &format!("{attr}={text}"));
            let a = api
                .sqs(
                    "CreateQueue",
                    json!({ "QueueName": "other", "Attributes": { attr: text } }),
                )
                .await;
            sqs_refused(&a, &format!("CreateQueue {attr}={text}"));
        }
        let body = |extra: &str| format!(r#"{{"QueueUrl": "{url}", {extra}}}"#);
        for (action, field) in [
            ("SendMessage", r#""MessageBody": "x", "DelaySeconds""#),
            ("ReceiveMessage", r#""MaxNumberOfMessages""#),
            ("ReceiveMessage", r#""WaitTimeSeconds""#),
            ("ReceiveMessage", r#""VisibilityTimeout""#),
            (
                "ChangeMessageVisibility",
                r#""ReceiptHandle": "h", "VisibilityTimeout""#,
            ),
            ("ListQueues", r#""MaxResults""#),
        ] {
            if *n == "\"128\"" && action != "ReceiveMessage" {
                continue;
            }
            let a = api.sqs_raw(action, body(&format!("{field}: {n}"))).await;
            sqs_refused(&a, &format!("{action} {field}={n}"));
        }
    }
    // Nothing was created or changed.
    let a = api
        .sqs(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["All"] }),
        )
        .await;
    assert_eq!(a.body["Attributes"]["VisibilityTimeout"], "30", "{a:?}");
    assert_eq!(a.body["Attributes"]["ApproximateNumberOfMessages"], "0");
    let a = api.sqs("ListQueues", json!({})).await;
    assert_eq!(a.body["QueueUrls"].as_array().unwrap().len(), 1, "{a:?}");
}

/// Names that must never reach a file, a key or a log group as they are.
fn hostile_names() -> Vec<String> {
    vec![
        "..".into(),
        "../x".into(),
        "a/b".into(),
        "a/../../b".into(),
        "x\0y".into(),
        "a\\b".into(),
        "f".repeat(129),
        "f".repeat(4096),
        "fünf".into(),
        "😀".into(),
        " f".into(),
        "f\n".into(),
        "".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused_everywhere() {
    let api = Api::start().await;
    api.create_function("f").await;
    api.call("POST", "/2015-03-31/functions/f/versions", "{}")
        .await;

    for name in hostile_names() {
        let what = format!("{name:?}");
        // As a function name: in the body (CreateFunction) and in the path.
        let create = json!({
            "FunctionName": name, "Runtime": "nodejs20.x", "Handler": "index.handler",
            "Role": "arn:aws:iam::000000000000:role/r",
            "Code": { "ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==" },
        });
        let a = api
            .call("POST", "/2015-03-31/functions", &create.to_string())
            .await;
        assert_refused(&a, &format!("CreateFunction {what}"));
        if !name.is_empty() {
            let e = enc(&name);
            for (method, path, body) in [
                ("GET", format!("/2015-03-31/functions/{e}"), ""),
                (
                    "GET",
                    format!("/2015-03-31/functions/{e}/configuration"),
                    "",
                ),
                (
                    "PUT",
                    format!("/2015-03-31/functions/{e}/configuration"),
                    "{}",
                ),
                ("DELETE", format!("/2015-03-31/functions/{e}"), ""),
                (
                    "POST",
                    format!("/2015-03-31/functions/{e}/invocations"),
                    "{}",
                ),
                ("POST", format!("/2015-03-31/functions/{e}/versions"), "{}"),
                (
                    "PUT",
                    format!("/2017-10-31/functions/{e}/concurrency"),
                    r#"{"ReservedConcurrentExecutions":1}"#,
                ),
                (
                    "GET",
                    format!("/2019-09-25/functions/{e}/event-invoke-config"),
                    "",
                ),
                // As a qualifier and an alias of a function that exists.
                ("GET", format!("/2015-03-31/functions/f?Qualifier={e}"), ""),
                (
                    "POST",
                    format!("/2015-03-31/functions/f/invocations?Qualifier={e}"),
                    "{}",
                ),
                ("GET", format!("/2015-03-31/functions/f/aliases/{e}"), ""),
                (
                    "PUT",
                    format!("/2015-03-31/functions/f/aliases/{e}"),
                    r#"{"FunctionVersion":"1"}"#,
                ),
                (
                    "GET",
                    format!("/2019-09-30/functions/f/provisioned-concurrency?Qualifier={e}"),
                    "",
                ),
                // The logs of a function of that name.
                ("GET", format!("/stratus/v1/logs?function={e}"), ""),
                // A service or stage of that name.
                ("GET", format!("/stratus/v1/services/{e}/dev"), ""),
                (
                    "GET",
                    format!("/stratus/v1/services/svc/{e}/deployments"),
                    "",
                ),
                ("DELETE", format!("/stratus/v1/services/svc/{e}"), ""),
                (
                    "POST",
                    format!("/stratus/v1/services/{e}/dev/deployments"),
                    r#"{"functions":[]}"#,
                ),
                // A code package named by something that is not a sha256.
                ("GET", format!("/stratus/v1/code/{e}"), ""),
                ("PUT", format!("/stratus/v1/blobs/{e}"), "PK"),
                ("GET", format!("/stratus/v1/blobs/{e}"), ""),
            ] {
                let a = api.call(method, &path, body).await;
                if method == "GET"
                    && (path.starts_with("/stratus/v1/code/")
                        || path.starts_with("/stratus/v1/blobs/"))
                {
                    // A package that is not named by a sha256 does not exist (404),
                    // as the download has always answered.
                    assert_eq!(a.error_type, "ResourceNotFoundException", "{path}: {a:?}");
                    assert!(a.body["message"]
                        .as_str()
                        .unwrap()
                        .contains("64 lowercase hex"));
                    continue;
                }
                assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method} {path}: {a:?}");
                assert!(!a.error_type.is_empty(), "{method} {path}: {a:?}");
            }
        }
        let a = api
            .call(
                "POST",
                "/2015-03-31/functions/f/aliases",
                &json!({ "Name": name, "FunctionVersion": "1" }).to_string(),
            )
            .await;
        assert_refused(&a, &format!("CreateAlias {what}"));
        // As a queue name.
        let a = api.sqs("CreateQueue", json!({ "QueueName": name })).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "CreateQueue {what}: {a:?}"
        );
        let a = api.sqs("GetQueueUrl", json!({ "QueueName": name })).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "GetQueueUrl {what}: {a:?}"
        );
    }
    // As the name or key of a function in a deployment: refused before anything is
    // applied (the refusal is the stream's last event).
    for (name, key) in hostile_names()
        .into_iter()
        .map(|n| (n, "hello".to_string()))
        .chain([
            ("f:1".to_string(), "hello".to_string()),
            (
                "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
                "hello".into(),
            ),
            ("svc-dev-hello".into(), "a\0b".into()),
            ("svc-dev-hello".into(), "".into()),
            ("svc-dev-hello".into(), "k".repeat(257)),
        ])
    {
        let body = json!({ "functions": [{
            "key": key, "name": name, "runtime": "nodejs20.x", "handler": "index.handler",
            "memorySize": 256, "timeout": 6, "codeSha256": "0".repeat(64),
        }]});
        let a = api
            .call(
                "POST",
                "/stratus/v1/services/svc/dev/deployments",
                &body.to_string(),
            )
            .await;
        let text = a
            .body
            .as_str()
            .map(str::to_string)
            .unwrap_or(a.body.to_string());
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["type"], "error", "deploy {name:?}/{key:?}: {text}");
        assert!(
            matches!(
                last["error_type"].as_str(),
                Some("ValidationException" | "InvalidParameterValueException")
            ),
            "deploy {name:?}/{key:?}: {text}"
        );
    }

    // Log groups follow CloudWatch's rule (`/` and `.` are part of it; a group is
    // a key in logs.db, never a path).
    for group in ["x\0y", "a\\b", "fünf", " f", "f\n", &"g".repeat(513)] {
        let a = api
            .call("GET", &format!("/stratus/v1/logs?group={}", enc(group)), "")
            .await;
        assert_refused(&a, &format!("logs group {group:?}"));
    }
    let a = api
        .call("GET", "/stratus/v1/logs?group=/aws/lambda/f", "")
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");

    // Nothing was created by any of it.
    let a = api.call("GET", "/2015-03-31/functions/", "").await;
    assert_eq!(a.body["Functions"].as_array().unwrap().len(), 1, "{a:?}");
    let a = api.call("GET", "/2015-03-31/functions/f/aliases", "").await;
    assert_eq!(a.body["Aliases"], json!([]), "{a:?}");
    let a = api.sqs("ListQueues", json!({})).await;
    assert!(a.body.get("QueueUrls").is_none(), "{a:?}");
}
