//! The registry's rules through the API router in-process (`tower::ServiceExt::oneshot`,
//! no socket): versions, aliases and provisioned concurrency moving together, weighted
//! routing, and the error shapes of the management API. Functions are real Node.js
//! handlers run by the server's own bootstrap.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use stratus_server::{RunningServer, ServerConfig};
use tower::ServiceExt;

struct Api {
    server: RunningServer,
    app: Router,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// The AWS error type of an error answer.
    fn error_type(&self) -> &str {
        self.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    #[track_caller]
    fn expect_error(&self, status: StatusCode, error_type: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.error_type(), error_type, "{}", self.body);
        let kind = if status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        assert_eq!(self.body["Type"], kind, "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
    }
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, |d| d.join("data")).await
    }

    /// A server whose data dir is `data(dir)`.
    async fn start_in(
        dir: tempfile::TempDir,
        data: impl FnOnce(&std::path::Path) -> std::path::PathBuf,
    ) -> Self {
        let cfg = ServerConfig::new(data(dir.path()), "127.0.0.1:0".parse().unwrap());
        let server = stratus_server::start(cfg).await.unwrap();
        let app = server.router();
        Self {
            server,
            app,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A Node.js function answering `process.env.V`.
    async fn create_function(&self, name: &str) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.js"),
            "exports.handler = async () => process.env.V || 'latest';\n",
        )
        .unwrap();
        let zip = stratus_package::zip_dir(dir.path()).unwrap();
        self.call(
            "POST",
            "/2015-03-31/functions",
            &[],
            json!({
                "FunctionName": name, "Runtime": "nodejs20.x", "Handler": "index.handler",
                "Role": "arn:aws:iam::000000000000:role/r",
                "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
            }),
        )
        .await
        .expect(StatusCode::CREATED);
    }

    /// Sets `V` and publishes; returns the version.
    async fn publish_with(&self, name: &str, v: &str) -> String {
        self.call(
            "PUT",
            &format!("/2015-03-31/functions/{name}/configuration"),
            &[],
            json!({ "Environment": { "Variables": { "V": v } } }),
        )
        .await
        .expect(StatusCode::OK);
        let out = self
            .call(
                "POST",
                &format!("/2015-03-31/functions/{name}/versions"),
                &[],
                json!({}),
            )
            .await
            .expect(StatusCode::CREATED);
        out["Version"].as_str().unwrap().to_string()
    }

    /// Invokes with the log tail; returns (result, whether the log shows a cold start).
    async fn invoke(&self, target: &str) -> (Value, bool) {
        let a = self
            .call(
                "POST",
                &format!("/2015-03-31/functions/{target}/invocations"),
                &[("x-amz-log-type", "Tail")],
                json!({}),
            )
            .await;
        let log = a
            .headers
            .get("x-amz-log-result")
            .map(|v| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(v.as_bytes())
                    .unwrap();
                String::from_utf8(raw).unwrap()
            })
            .unwrap_or_default();
        assert!(log.contains("REPORT RequestId:"), "{log}");
        (a.expect(StatusCode::OK), log.contains("Init Duration"))
    }

    /// Waits until the provisioned config on `qualifier` is READY.
    async fn wait_ready(&self, name: &str, qualifier: &str) -> Value {
        let path =
            format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={qualifier}");
        for _ in 0..500 {
            let st = self
                .call("GET", &path, &[], Value::Null)
                .await
                .expect(StatusCode::OK);
            match st["Status"].as_str() {
                Some("READY") => return st,
                Some("FAILED") => panic!("provisioned concurrency failed: {st}"),
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        panic!("provisioned concurrency on {name}:{qualifier} never became READY");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_unchanged_code_and_configuration_returns_the_last_version() {
    let api = Api::start().await;
    api.create_function("f").await;
    assert_eq!(api.publish_with("f", "one").await, "1");
    // Publishing again with nothing changed: the same version, as Lambda answers.
    let again = api
        .call("POST", "/2015-03-31/functions/f/versions", &[], json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again["Version"], "1");
    // A description alone does not make a new version either.
    let described = api
        .call(
            "POST",
            "/2015-03-31/functions/f/versions",
            &[],
            json!({ "Description": "same code" }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(described["Version"], "1");
    assert_eq!(api.publish_with("f", "two").await, "2");
    let list = api
        .call("GET", "/2015-03-31/functions/f/versions", &[], Value::Null)
        .await
        .expect(StatusCode::OK);
    let versions: Vec<&str> = list["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["$LATEST", "1", "2"]);
    // A stale CodeSha256 or RevisionId is a precondition failure.
    api.call(
        "POST",
        "/2015-03-31/functions/f/versions",
        &[],
        json!({ "RevisionId": "not-the-revision" }),
    )
    .await
    .expect_error(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailedException",
    );
    api.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_move_carries_its_provisioned_concurrency() {
    let api = Api::start().await;
    api.create_function("f").await;
    let v1 = api.publish_with("f", "one").await;
    let v2 = api.publish_with("f", "two").await;
    api.call(
        "POST",
        "/2015-03-31/functions/f/aliases",
        &[],
        json!({ "Name": "live", "FunctionVersion": v1 }),
    )
    .await
    .expect(StatusCode::CREATED);
    let put = api
        .call(
            "PUT",
            "/2019-09-30/functions/f/provisioned-concurrency?Qualifier=live",
            &[],
            json!({ "ProvisionedConcurrentExecutions": 2 }),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(put["RequestedProvisionedConcurrentExecutions"], 2);
    api.wait_ready("f", "live").await;
    let (out, cold) = api.invoke("f:live").await;
    assert_eq!(out, "one");
    assert!(!cold, "a provisioned alias must not cold-start");

    // Move the alias: its floor moves to version 2's pool.
    let moved = api
        .call(
            "PUT",
            "/2015-03-31/functions/f/aliases/live",
            &[],
            json!({ "FunctionVersion": v2 }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(moved["FunctionVersion"], "2");
    let st = api.wait_ready("f", "live").await;
    assert_eq!(st["AvailableProvisionedConcurrentExecutions"], 2);
    for _ in 0..4 {
        let (out, cold) = api.invoke("f:live").await;
        assert_eq!(out, "two");
        assert!(!cold, "the floor must have moved with the alias");
    }
    // Reserved concurrency may not go below the provisioned total.
    api.call(
        "PUT",
        "/2017-10-31/functions/f/concurrency",
        &[],
        json!({ "ReservedConcurrentExecutions": 1 }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "InvalidParameterValueException");
    // Deleting the alias takes its config with it.
    api.call(
        "DELETE",
        "/2015-03-31/functions/f/aliases/live",
        &[],
        Value::Null,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    api.call(
        "GET",
        "/2019-09-30/functions/f/provisioned-concurrency?Qualifier=live",
        &[],
        Value::Null,
    )
    .await
    .expect_error(
        StatusCode::NOT_FOUND,
        "ProvisionedConcurrencyConfigNotFoundException",
    );
    api.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_an_alias_uses_cannot_be_deleted_and_weights_are_validated() {
    let api = Api::start().await;
    api.create_function("f").await;
    let v1 = api.publish_with("f", "one").await;
    let v2 = api.publish_with("f", "two").await;
    let alias = |routing: Value| json!({ "Name": "canary", "FunctionVersion": v1, "RoutingConfig": { "AdditionalVersionWeights": routing } });
    for (routing, status, kind) in [
        (
            json!({ "2": 1.5 }),
            StatusCode::BAD_REQUEST,
            "ValidationException",
        ),
        (
            json!({ "2": -0.1 }),
            StatusCode::BAD_REQUEST,
            "ValidationException",
        ),
        (
            json!({ "1": 0.5 }),
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
        ),
        (
            json!({ "$LATEST": 0.5 }),
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
        ),
        (
            json!({ "9": 0.5 }),
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
        ),
        (
            json!({ "2": 0.1, "3": 0.1 }),
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
        ),
    ] {
        api.call(
            "POST",
            "/2015-03-31/functions/f/aliases",
            &[],
            alias(routing),
        )
        .await
        .expect_error(status, kind);
    }
    // An alias on a version that does not exist.
    api.call(
        "POST",
        "/2015-03-31/functions/f/aliases",
        &[],
        json!({ "Name": "x", "FunctionVersion": "42" }),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "ResourceNotFoundException");
    // Alias names that are numbers or $LATEST are refused.
    for name in ["7", "$LATEST", "has space"] {
        api.call(
            "POST",
            "/2015-03-31/functions/f/aliases",
            &[],
            json!({ "Name": name, "FunctionVersion": v1 }),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "ValidationException");
    }

    let created = api
        .call(
            "POST",
            "/2015-03-31/functions/f/aliases",
            &[],
            alias(json!({ "2": 0.5 })),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        created["RoutingConfig"]["AdditionalVersionWeights"]["2"],
        0.5
    );
    api.call(
        "POST",
        "/2015-03-31/functions/f/aliases",
        &[],
        alias(json!({})),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "ResourceConflictException");

    // Both versions serve the weighted alias.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        seen.insert(api.invoke("f:canary").await.0.as_str().unwrap().to_string());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["one", "two"]);

    // Neither the primary nor the weighted version can be deleted while in use.
    for v in [&v1, &v2] {
        let a = api
            .call(
                "DELETE",
                &format!("/2015-03-31/functions/f?Qualifier={v}"),
                &[],
                Value::Null,
            )
            .await;
        a.expect_error(StatusCode::CONFLICT, "ResourceConflictException");
        assert!(
            a.body["message"].as_str().unwrap().ends_with("[canary]"),
            "{}",
            a.body
        );
    }
    // Dropping the weight frees version 2.
    api.call(
        "PUT",
        "/2015-03-31/functions/f/aliases/canary",
        &[],
        json!({ "RoutingConfig": { "AdditionalVersionWeights": {} } }),
    )
    .await
    .expect(StatusCode::OK);
    api.call(
        "DELETE",
        &format!("/2015-03-31/functions/f?Qualifier={v2}"),
        &[],
        Value::Null,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    api.call(
        "GET",
        &format!("/2015-03-31/functions/f?Qualifier={v2}"),
        &[],
        Value::Null,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "ResourceNotFoundException");
    // Version numbers are never reused.
    assert_eq!(api.publish_with("f", "three").await, "3");
    api.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_errors_have_lambdas_shapes() {
    let api = Api::start().await;
    let missing = api
        .call("GET", "/2015-03-31/functions/nope", &[], Value::Null)
        .await;
    missing.expect_error(StatusCode::NOT_FOUND, "ResourceNotFoundException");
    assert_eq!(
        missing.body["message"],
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
    );
    assert!(missing.headers.contains_key("x-amzn-requestid"));

    api.call("GET", "/2015-03-31/functions/bad%20name", &[], Value::Null)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "ValidationException");
    let bad_json = api
        .app
        .clone()
        .oneshot(
            Request::post("/2015-03-31/functions")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_json.headers()["x-amzn-errortype"],
        "InvalidRequestContentException"
    );

    api.create_function("f").await;
    let dup = api
        .call(
            "POST",
            "/2015-03-31/functions",
            &[],
            json!({ "FunctionName": "f", "Runtime": "nodejs20.x", "Handler": "index.handler", "Code": { "ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==" } }),
        )
        .await;
    dup.expect_error(StatusCode::CONFLICT, "ResourceConflictException");

    for (body, kind) in [
        (json!({ "MemorySize": 64 }), "ValidationException"),
        (json!({ "Timeout": 901 }), "ValidationException"),
        (
            json!({ "Runtime": "java8" }),
            "InvalidParameterValueException",
        ),
        (
            json!({ "Environment": { "Variables": { "AWS_SESSION_TOKEN": "x" } } }),
            "InvalidParameterValueException",
        ),
        (
            json!({ "Environment": { "Variables": { "BIG": "x".repeat(5000) } } }),
            "InvalidParameterValueException",
        ),
        (
            json!({ "RevisionId": "stale" }),
            "PreconditionFailedException",
        ),
    ] {
        let status = if kind == "PreconditionFailedException" {
            StatusCode::PRECONDITION_FAILED
        } else {
            StatusCode::BAD_REQUEST
        };
        api.call("PUT", "/2015-03-31/functions/f/configuration", &[], body)
            .await
            .expect_error(status, kind);
    }
    // A refused change changed nothing.
    let cfg = api
        .call(
            "GET",
            "/2015-03-31/functions/f/configuration",
            &[],
            Value::Null,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(cfg["MemorySize"], 128);
    assert_eq!(cfg["Runtime"], "nodejs20.x");

    for n in [-1i64, 4_294_967_296] {
        api.call(
            "PUT",
            "/2017-10-31/functions/f/concurrency",
            &[],
            json!({ "ReservedConcurrentExecutions": n }),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "ValidationException");
    }
    api.call(
        "PUT",
        "/2019-09-30/functions/f/provisioned-concurrency?Qualifier=$LATEST",
        &[],
        json!({ "ProvisionedConcurrentExecutions": 1 }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "InvalidParameterValueException");
    api.call("GET", "/no/such/operation", &[], Value::Null)
        .await
        .expect_error(StatusCode::NOT_FOUND, "UnknownOperationException");
    api.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_data_dir_runs_interpreted_functions() {
    // `stratus server` defaults to `./.stratus`; environments run in their code
    // directory, so the server must hand them absolute paths.
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let api = Api::start_in(dir, |_| std::path::PathBuf::from("relative-data")).await;
    api.create_function("f").await;
    let (out, cold) = api.invoke("f").await;
    assert_eq!(out, "latest");
    assert!(cold);
    api.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_invoke_payload_is_refused_before_it_is_all_sent() {
    let api = Api::start().await;
    api.create_function("f").await;
    // 7 MB arrive, then the client stalls: a server that buffers the body before
    // checking its size would wait for the rest forever.
    let chunk = bytes::Bytes::from(vec![b' '; 1024 * 1024]);
    let sent = tokio_stream::StreamExt::chain(
        tokio_stream::iter(std::iter::repeat_n(chunk, 7).map(Ok::<_, std::io::Error>)),
        tokio_stream::pending(),
    );
    let req = Request::post("/2015-03-31/functions/f/invocations")
        .body(Body::from_stream(sent))
        .unwrap();
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        api.app.clone().oneshot(req),
    )
    .await
    .expect("the oversized payload must be refused without waiting for the rest")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "RequestTooLargeException"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["message"],
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );
    // Exactly 6 MB is still accepted (and reaches the function).
    let six = "\"".to_string() + &"x".repeat(6 * 1024 * 1024 - 2) + "\"";
    let resp = api
        .app
        .clone()
        .oneshot(
            Request::post("/2015-03-31/functions/f/invocations")
                .body(Body::from(six))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    api.server.shutdown().await;
}
