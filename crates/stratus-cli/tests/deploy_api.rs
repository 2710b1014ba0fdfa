//! The deployment API the CLI uses: blobs by hash, a whole service+stage applied at
//! once with streamed progress, idempotence, provisioned alias moved only when READY,
//! history, rollback and removal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

async fn upload(s: &Server, zip: &[u8]) -> String {
    let sha = stratus_package::sha256_hex(zip);
    let r = s
        .api
        .call("HEAD", &format!("/stratus/v1/blobs/{sha}"), &[], "")
        .await
        .unwrap();
    if r.status == 404 {
        let r = s
            .api
            .call(
                "PUT",
                &format!("/stratus/v1/blobs/{sha}"),
                &[],
                zip.to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    sha
}

/// Posts a deployment and returns (step messages, final event).
async fn deploy(s: &Server, body: Value) -> (Vec<String>, Value) {
    let r = s
        .api
        .call(
            "POST",
            "/stratus/v1/services/svc/dev/deployments",
            &[],
            body.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let events: Vec<Value> = String::from_utf8_lossy(&r.body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps = events
        .iter()
        .filter(|e| e["type"] == "step")
        .map(|e| {
            format!(
                "{}: {}",
                e["function"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    (steps, events.last().unwrap().clone())
}

fn function(key: &str, sha: &str, extra: Value) -> Value {
    let mut f = json!({
        "key": key, "name": format!("svc-dev-{key}"), "runtime": "nodejs20.x", "handler": "index.handler",
        "memorySize": 256, "timeout": 6, "environment": {"CUSTOM_VAR": "v1"}, "codeSha256": sha,
    });
    for (k, v) in extra.as_object().unwrap() {
        f[k] = v.clone();
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_is_idempotent_moves_the_provisioned_alias_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let v1 = upload(&s, &fixture_zip("node")).await;
    assert_eq!(
        upload(&s, &fixture_zip("node")).await,
        v1,
        "same bytes, same hash; second upload skipped"
    );

    let body = json!({"functions": [function("api", &v1, json!({"provisionedConcurrency": 2, "reservedConcurrency": 4})), function("worker", &v1, json!({}))]});
    let (steps, done) = deploy(&s, body.clone()).await;
    assert_eq!(done["type"], "done", "{done}");
    let result = &done["result"];
    assert_eq!(result["changed"], true);
    let actions: Vec<_> = result["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap(),
                f["action"].as_str().unwrap(),
                f["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [("api", "created", "1"), ("worker", "created", "1")]
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("provisioned environments ready: 2/2")),
        "{steps:#?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s == "api: alias provisioned -> version 1"),
        "{steps:#?}"
    );
    let first_ts = result["timestamp"].as_i64().unwrap();

    // Through the alias: warm, no cold start.
    let (r, tail) = s.invoke_tail("svc-dev-api:provisioned", "{}").await;
    assert_eq!(json_body(&r)["initType"], "provisioned-concurrency");
    assert!(!tail.contains("Init Duration"));
    assert_eq!(json_body(&r)["env"]["memory"], "256");

    // Unchanged inputs: nothing changes, nothing recorded.
    let (_, done) = deploy(&s, body.clone()).await;
    assert_eq!(done["result"]["changed"], false, "{done}");
    assert!(done["result"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["action"] == "unchanged"));
    let versions = json_body(
        &s.api
            .call("GET", "/2015-03-31/functions/svc-dev-api/versions", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(
        versions["Versions"].as_array().unwrap().len(),
        2,
        "no new version for unchanged inputs"
    );

    // Changed code: version 2, the alias moves only after its environments are READY,
    // and a caller hammering the alias meanwhile never meets a cold start.
    let changed = tempfile::tempdir().unwrap();
    let changed_dir = changed.path();
    std::fs::write(changed_dir.join("index.js"), "exports.handler = async () => ({ version: 'two', initType: process.env.AWS_LAMBDA_INITIALIZATION_TYPE });\n").unwrap();
    let v2 = upload(&s, &stratus_package::zip_dir(changed_dir).unwrap()).await;
    let api = s.api.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let hammer = tokio::spawn(async move {
        let mut statuses = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let r = api
                .call(
                    "POST",
                    "/2015-03-31/functions/svc-dev-api:provisioned/invocations",
                    &[("x-amz-log-type", "Tail")],
                    "{}",
                )
                .await
                .unwrap();
            let tail = r.header("x-amz-log-result").unwrap_or_default().to_string();
            statuses.push((r.status, tail));
        }
        statuses
    });
    let body2 = json!({"functions": [function("api", &v2, json!({"provisionedConcurrency": 2, "reservedConcurrency": 4})), function("worker", &v1, json!({}))]});
    let (steps, done) = deploy(&s, body2).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = hammer.await.unwrap();
    assert_eq!(done["type"], "done", "{done}");
    let actions: Vec<_> = done["result"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_string(),
                f["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("api".to_string(), "updated".to_string()),
            ("worker".to_string(), "unchanged".to_string())
        ]
    );
    let ready = steps
        .iter()
        .position(|s| s.contains("ready: 2/2"))
        .expect("waited for READY");
    let moved = steps
        .iter()
        .position(|s| s == "api: alias provisioned -> version 2")
        .expect("alias moved");
    assert!(ready < moved, "{steps:#?}");
    assert!(!calls.is_empty());
    for (status, tail) in &calls {
        assert_eq!(*status, 200);
        use base64::Engine as _;
        let log = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(tail)
                .unwrap(),
        )
        .unwrap();
        assert!(
            !log.contains("Init Duration"),
            "a cold start through the alias during the deploy: {log}"
        );
    }
    let r = s.invoke("svc-dev-api:provisioned", "{}").await;
    assert_eq!(json_body(&r)["version"], "two");
    assert_eq!(r.header("x-amz-executed-version"), Some("2"));
    let pc = s
        .api
        .call(
            "GET",
            "/2019-09-30/functions/svc-dev-api/provisioned-concurrency?Qualifier=1",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(pc.status, 404, "the old version's floor is released");

    // History and rollback to the first deployment.
    let h = json_body(
        &s.api
            .call("GET", "/stratus/v1/services/svc/dev/deployments", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(h["deployments"].as_array().unwrap().len(), 2);
    let r = s
        .api
        .call(
            "POST",
            "/stratus/v1/services/svc/dev/rollback",
            &[],
            json!({"timestamp": first_ts}).to_string(),
        )
        .await
        .unwrap();
    let last: Value =
        serde_json::from_str(String::from_utf8_lossy(&r.body).lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "done", "{last}");
    let r = s.invoke("svc-dev-api:provisioned", "{}").await;
    assert_eq!(json_body(&r)["initType"], "provisioned-concurrency");
    assert!(
        json_body(&r)["version"].is_null(),
        "the first code runs again"
    );
    assert_eq!(
        r.header("x-amz-executed-version"),
        Some("3"),
        "rollback publishes the old code as a new version"
    );

    // Info, dropping a function, removal.
    let info = json_body(
        &s.api
            .call("GET", "/stratus/v1/services/svc/dev", &[], "")
            .await
            .unwrap(),
    );
    let fns = info["functions"].as_array().unwrap();
    assert_eq!(fns.len(), 2);
    assert_eq!(fns[0]["aliases"]["provisioned"], "3");
    assert_eq!(fns[0]["reservedConcurrency"], 4);
    assert_eq!(fns[0]["provisionedConcurrency"]["3"]["status"], "READY");
    let (_, done) = deploy(&s, json!({"functions": [function("api", &v1, json!({}))]})).await;
    let actions: Vec<_> = done["result"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_string(),
                f["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("api".to_string(), "updated".to_string()),
            ("worker".to_string(), "deleted".to_string())
        ]
    );
    assert_eq!(s.invoke("svc-dev-worker", "{}").await.status, 404);
    assert_eq!(
        s.invoke("svc-dev-api:provisioned", "{}").await.status,
        404,
        "provisioned alias removed with the setting"
    );
    let r = s
        .api
        .call("DELETE", "/stratus/v1/services/svc/dev", &[], "")
        .await
        .unwrap();
    assert_eq!(json_body(&r)["removed"], json!(["svc-dev-api"]));
    assert_eq!(s.invoke("svc-dev-api", "{}").await.status, 404);
    assert_eq!(
        s.api
            .call("GET", "/stratus/v1/services/svc/dev", &[], "")
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deployments_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let v1 = upload(&s, &fixture_zip("node")).await;
    let (_, done) = deploy(&s, json!({"functions": [function("a", &v1, json!({}))]})).await;
    assert_eq!(done["type"], "done");

    let missing = "0".repeat(64);
    for (body, needle) in [
        (
            json!({"functions": [function("a", &v1, json!({})), function("b", &missing, json!({}))]}),
            "code package 0000",
        ),
        (
            json!({"functions": [function("a", &v1, json!({"memorySize": 64}))]}),
            "function a: 1 validation error",
        ),
        (
            json!({"functions": [function("a", &v1, json!({"provisionedConcurrency": 5, "reservedConcurrency": 2}))]}),
            "must not exceed reservedConcurrency",
        ),
        (
            json!({"functions": [function("a", &v1, json!({"runtime": "dotnet8"}))]}),
            "dotnet8 is not supported",
        ),
        (
            json!({"functions": [function("a", &v1, json!({"runtime": "java8"}))]}),
            "java8 is no longer supported",
        ),
    ] {
        let (_, done) = deploy(&s, body).await;
        assert_eq!(done["type"], "error", "{done}");
        assert_eq!(done["step"], "validate");
        assert!(done["message"].as_str().unwrap().contains(needle), "{done}");
    }
    let r = s
        .api
        .call(
            "POST",
            "/stratus/v1/services/svc/dev/deployments",
            &[],
            "{nope",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let h = json_body(
        &s.api
            .call("GET", "/stratus/v1/services/svc/dev/deployments", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(
        h["deployments"].as_array().unwrap().len(),
        1,
        "failed deployments record nothing"
    );
    assert_eq!(s.invoke("svc-dev-a", "{}").await.status, 200);
    let r = s
        .api
        .call(
            "PUT",
            &format!("/stratus/v1/blobs/{}", "a".repeat(64)),
            &[],
            b"not this".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "hash mismatch");
    let r = s
        .api
        .call(
            "POST",
            "/stratus/v1/services/svc/dev/rollback",
            &[],
            r#"{"timestamp":1}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}
