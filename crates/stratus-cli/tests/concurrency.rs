//! Provisioned and reserved concurrency, throttling, aliases with weights.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_environments_serve_load_with_zero_cold_starts_then_spill_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "pc",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({"Timeout": 30}),
    )
    .await;

    // Not on $LATEST.
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=$LATEST",
            &[],
            r#"{"ProvisionedConcurrentExecutions":2}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidParameterValueException")
    );
    assert_eq!(
        json_body(&r)["message"],
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
    );

    let v = s.publish("pc").await;
    assert_eq!(v, "1");
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/pc/aliases",
            &[],
            json!({"Name": "live", "FunctionVersion": v}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=live",
            &[],
            r#"{"ProvisionedConcurrentExecutions":3}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let body = json_body(&r);
    assert_eq!(body["RequestedProvisionedConcurrentExecutions"], 3);
    assert_eq!(
        body["Status"], "IN_PROGRESS",
        "init has not finished at once"
    );
    s.wait_ready("pc", "live").await;
    let st = json_body(
        &s.api
            .call(
                "GET",
                "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=live",
                &[],
                "",
            )
            .await
            .unwrap(),
    );
    assert_eq!(st["AvailableProvisionedConcurrentExecutions"], 3);

    // Concurrent load up to the provisioned count: no cold start at all.
    for _ in 0..5 {
        for r in s
            .invoke_concurrently("pc:live", r#"{"action":"sleep","ms":100}"#, 3)
            .await
        {
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-amz-executed-version"), Some("1"));
        }
    }
    let r = s.invoke("pc:live", "{}").await;
    assert_eq!(json_body(&r)["initType"], "provisioned-concurrency");
    let logs = s.wait_logs("pc", "REPORT", 16).await;
    assert_eq!(
        count(&logs, "Init Duration"),
        0,
        "zero cold starts while load <= provisioned"
    );

    // A fourth concurrent call spills over to an on-demand (cold) environment.
    for r in s
        .invoke_concurrently("pc:live", r#"{"action":"sleep","ms":300}"#, 4)
        .await
    {
        assert_eq!(r.status, 200);
    }
    let logs = s.wait_logs("pc", "REPORT", 20).await;
    assert_eq!(
        count(&logs, "Init Duration"),
        1,
        "exactly one spill-over cold start"
    );

    // A provisioned environment that dies is replaced.
    let r = s.invoke("pc:live", r#"{"action":"exit"}"#).await;
    assert_eq!(json_body(&r)["errorType"], "Runtime.ExitError");
    s.wait_ready("pc", "live").await;
    let health = json_body(
        &s.api
            .call("GET", "/stratus/v1/health", &[], "")
            .await
            .unwrap(),
    );
    assert!(health["environments"].as_u64().unwrap() >= 3, "{health}");

    // Removing the config releases the floor.
    let r = s
        .api
        .call(
            "DELETE",
            "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=live",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = s
        .api
        .call(
            "GET",
            "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=live",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("ProvisionedConcurrencyConfigNotFoundException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_is_a_hard_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "capped",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 30}),
    )
    .await;

    let r = s
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/capped/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":2}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(json_body(&r)["ReservedConcurrentExecutions"], 2);
    let r = s
        .api
        .call("GET", "/2019-09-30/functions/capped/concurrency", &[], "")
        .await
        .unwrap();
    assert_eq!(json_body(&r)["ReservedConcurrentExecutions"], 2);
    let r = s
        .api
        .call("GET", "/2015-03-31/functions/capped", &[], "")
        .await
        .unwrap();
    assert_eq!(
        json_body(&r)["Concurrency"]["ReservedConcurrentExecutions"],
        2
    );

    // Two long calls occupy the reservation; the third is throttled at once.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let api = s.api.clone();
            tokio::spawn(async move {
                api.invoke("capped", r#"{"action":"sleep","ms":1500}"#)
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = s.invoke("capped", "{}").await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    let e = json_body(&r);
    assert_eq!(e["message"], "Rate Exceeded.");
    assert_eq!(
        e["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    for h in slow {
        assert_eq!(h.await.unwrap().status, 200);
    }
    assert_eq!(
        s.invoke("capped", "{}").await.status,
        200,
        "slots come back"
    );

    // Exactly N at once: fire 6 concurrent calls at a reservation of 2.
    let statuses: Vec<u16> = s
        .invoke_concurrently("capped", r#"{"action":"sleep","ms":800}"#, 6)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        4,
        "{statuses:?}"
    );

    // Zero throttles everything.
    s.api
        .call(
            "PUT",
            "/2017-10-31/functions/capped/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":0}"#,
        )
        .await
        .unwrap();
    assert_eq!(s.invoke("capped", "{}").await.status, 429);
    let r = s
        .api
        .call(
            "DELETE",
            "/2017-10-31/functions/capped/concurrency",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(s.invoke("capped", "{}").await.status, 200);

    // The unreserved minimum is protected (account 1000, minimum 100).
    let r = s
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/capped/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":901}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        json_body(&r)["message"],
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [100]."
    );
    let acct = json_body(
        &s.api
            .call("GET", "/2016-08-19/account-settings/", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(acct["AccountLimit"]["ConcurrentExecutions"], 1000);
    assert_eq!(acct["AccountUsage"]["FunctionCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limit_and_scaling_rate_throttle_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--account-concurrency",
            "3",
            "--unreserved-minimum",
            "1",
            "--scaling-rate",
            "4",
        ],
    )
    .await;
    s.create_ok(
        "a",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 30}),
    )
    .await;

    let results: Vec<(u16, Option<String>)> = s
        .invoke_concurrently("a", r#"{"action":"sleep","ms":800}"#, 5)
        .await
        .iter()
        .map(|r| (r.status, reason(r)))
        .collect();
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        3,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter(|(s, _)| *s == 429)
        .all(|(_, r)| r.as_deref() == Some("ConcurrentInvocationLimitExceeded")));

    // Scaling rate: 4 new environments per 10 s; 3 were used above.
    s.create_ok(
        "b",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 30}),
    )
    .await;
    let results: Vec<(u16, Option<String>)> = s
        .invoke_concurrently("b", r#"{"action":"sleep","ms":500}"#, 3)
        .await
        .iter()
        .map(|r| (r.status, reason(r)))
        .collect();
    assert!(
        results.iter().all(|(s, _)| *s == 200),
        "separate bucket per function: {results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_rate_limits_new_environments() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--scaling-rate", "2"]).await;
    s.create_ok(
        "r",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 30}),
    )
    .await;
    let results: Vec<(u16, Option<String>)> = s
        .invoke_concurrently("r", r#"{"action":"sleep","ms":800}"#, 4)
        .await
        .iter()
        .map(|r| (r.status, reason(r)))
        .collect();
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        2,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter(|(s, _)| *s == 429)
        .all(|(_, r)| r.as_deref() == Some("FunctionInvocationRateLimitExceeded")));
    // Warm environments need no tokens.
    for _ in 0..10 {
        assert_eq!(s.invoke("r", "{}").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_weighted_aliases_route_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = fixture_zip("node");
    s.create_ok("w", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    assert_eq!(s.publish("w").await, "1");
    assert_eq!(
        s.publish("w").await,
        "1",
        "publishing unchanged code returns the same version"
    );
    let r = s
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/w/configuration",
            &[],
            r#"{"MemorySize":256}"#,
        )
        .await
        .unwrap();
    assert_eq!(json_body(&r)["MemorySize"], 256);
    assert_eq!(s.publish("w").await, "2");
    let versions = json_body(
        &s.api
            .call("GET", "/2015-03-31/functions/w/versions", &[], "")
            .await
            .unwrap(),
    );
    let names: Vec<_> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);

    let alias = json!({"Name": "canary", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}});
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/w/aliases",
            &[],
            alias.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        json_body(&r)["AliasArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:w:canary"
    );
    let mut seen = std::collections::HashMap::new();
    for _ in 0..60 {
        let r = s.invoke("w:canary", "{}").await;
        *seen
            .entry(r.header("x-amz-executed-version").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        seen.get("1").copied().unwrap_or(0) > 5 && seen.get("2").copied().unwrap_or(0) > 5,
        "{seen:?}"
    );

    // Each version runs its own configuration.
    let r = s.invoke("w:2", "{}").await;
    assert_eq!(json_body(&r)["env"]["memory"], "256");
    assert_eq!(
        json_body(&s.invoke("w:1", "{}").await)["env"]["memory"],
        "128"
    );
    // Qualifier query parameter and full ARN forms.
    let r = s.api.call("POST", "/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:w/invocations?Qualifier=2", &[], "{}").await.unwrap();
    assert_eq!(r.header("x-amz-executed-version"), Some("2"));

    // A version an alias points at cannot be deleted; others can.
    let r = s
        .api
        .call("DELETE", "/2015-03-31/functions/w?Qualifier=2", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    let r = s
        .api
        .call("DELETE", "/2015-03-31/functions/w/aliases/canary", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = s
        .api
        .call("DELETE", "/2015-03-31/functions/w?Qualifier=2", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = s.invoke("w:2", "{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        json_body(&r)["message"],
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:w:2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_leaves_the_invocation_running() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "gone",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 30}),
    )
    .await;
    s.api
        .call(
            "PUT",
            "/2017-10-31/functions/gone/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":1}"#,
        )
        .await
        .unwrap();
    assert_eq!(s.invoke("gone", "{}").await.status, 200);
    // A caller starts a 1.5 s invocation, then disconnects.
    let api = s.api.clone();
    let call =
        tokio::spawn(async move { api.invoke("gone", r#"{"action":"sleep","ms":1500}"#).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    let _ = call.await;
    // As in Lambda, the invocation runs on and holds the only slot...
    let r = s.invoke("gone", "{}").await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        reason(&r).as_deref(),
        Some("ReservedFunctionConcurrentInvocationLimitExceeded")
    );
    // ...until it ends, logged as usual; then the same environment serves the next
    // call warm.
    s.wait_logs("gone", "REPORT", 2).await;
    let mut status = 0;
    for _ in 0..50 {
        status = s.invoke("gone", "{}").await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    let logs = s.wait_logs("gone", "REPORT", 3).await;
    assert_eq!(
        count(&logs, "Init Duration"),
        1,
        "one cold start: {logs:#?}"
    );
    let health = json_body(
        &s.api
            .call("GET", "/stratus/v1/health", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(health["environments"], 1, "{health}");
}
