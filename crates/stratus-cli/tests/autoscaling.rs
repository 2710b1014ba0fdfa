//! Provisioned-concurrency autoscaling end to end: the real boto3
//! `application-autoscaling` client, a load ramp against real environments under an
//! accelerated autoscaler clock (a real second is a simulated minute), scheduled
//! actions, the dashboard's `/stratus/v1/autoscaling`, and state surviving a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const DIM: &str = "lambda:function:ProvisionedConcurrency";

/// One Application Auto Scaling call; returns (status, body).
async fn aas(s: &Server, op: &str, body: Value) -> (u16, Value) {
    let target = format!("AnyScaleFrontendService.{op}");
    let r = s
        .api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            body.to_string(),
        )
        .await
        .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn aas_ok(s: &Server, op: &str, body: Value) -> Value {
    let (status, v) = aas(s, op, body).await;
    assert_eq!(status, 200, "{op}: {v}");
    v
}

/// Provisioned concurrency requested on `name:q` (0 when none).
async fn requested(s: &Server, name: &str, q: &str) -> u64 {
    let path = format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={q}");
    let r = s.api.call("GET", &path, &[], "").await.unwrap();
    if r.status != 200 {
        return 0;
    }
    r.json().unwrap()["RequestedProvisionedConcurrentExecutions"]
        .as_u64()
        .unwrap_or(0)
}

/// A python function with version 1 behind alias `live`.
async fn function_with_alias(s: &Server, name: &str) {
    s.create_ok(
        name,
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({}),
    )
    .await;
    let v = s.publish(name).await;
    let r = s
        .api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{name}/aliases"),
            &[],
            json!({"Name": "live", "FunctionVersion": v}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

async fn overview(s: &Server, function: &str) -> Value {
    s.api
        .call(
            "GET",
            &format!("/stratus/v1/autoscaling?function={function}"),
            &[],
            "",
        )
        .await
        .unwrap()
        .json()
        .unwrap()
}

/// Waits (real time) until `cond` holds on the requested count, returning it.
async fn wait_for(s: &Server, name: &str, limit: Duration, cond: impl Fn(u64) -> bool) -> u64 {
    let start = Instant::now();
    loop {
        let n = requested(s, name, "live").await;
        if cond(n) {
            return n;
        }
        assert!(
            start.elapsed() < limit,
            "provisioned concurrency of {name}:live stayed at {n}; activities: {}",
            overview(s, name).await["activities"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_application_autoscaling() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    run_sdk_script(
        &s,
        "boto3_autoscaling.py",
        "boto3 application-autoscaling: all checks passed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_follows_a_load_ramp() {
    let dir = tempfile::tempdir().unwrap();
    // 60 simulated seconds per real second: the 3-minute scale-out alarm takes 3 s,
    // the 15-minute scale-in alarm 15 s.
    let s = Server::start(&dir.path().join("data"), &["--autoscale-clock-speed", "60"]).await;
    function_with_alias(&s, "ramp").await;
    let rid = "function:ramp:live";
    aas_ok(
        &s,
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid, "ScalableDimension": DIM,
               "MinCapacity": 1, "MaxCapacity": 4}),
    )
    .await;
    aas_ok(
        &s,
        "PutScalingPolicy",
        json!({"PolicyName": "util", "ServiceNamespace": "lambda", "ResourceId": rid,
               "ScalableDimension": DIM, "PolicyType": "TargetTrackingScaling",
               "TargetTrackingScalingPolicyConfiguration": {
                   "TargetValue": 0.5, "ScaleInCooldown": 0, "ScaleOutCooldown": 0,
                   "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}}}),
    )
    .await;
    assert_eq!(requested(&s, "ramp", "live").await, 1);
    s.wait_ready("ramp", "live").await;

    // Load: four callers each keeping one 400 ms invocation of the alias running.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (api, stop) = (s.api.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = api
                    .invoke("ramp:live", r#"{"action":"sleep","ms":400}"#)
                    .await
                    .expect("invoke");
                assert_eq!(r.status, 200);
            }
        }));
    }
    // Saturated provisioned environments: 3 minutes above 0.5 scale out, at once
    // and proportionally (1 -> 2 -> 4), well within 15 simulated minutes.
    let up = wait_for(&s, "ramp", Duration::from_secs(15), |n| n >= 4).await;
    assert_eq!(up, 4, "clamped to MaxCapacity");
    let o = overview(&s, "ramp").await;
    let acts = o["activities"].as_array().unwrap();
    let out: Vec<&Value> = acts
        .iter()
        .filter(|a| a["cause"].as_str().unwrap().contains("-AlarmHigh-"))
        .collect();
    assert!(!out.is_empty(), "{acts:?}");
    let newest = out[0];
    assert_eq!(newest["description"], "Setting desired concurrency to 4.");
    assert_eq!(newest["status"], "Successful");
    assert!(newest["metricValue"].as_f64().unwrap() > 0.5, "{newest}");
    assert!(newest["cause"]
        .as_str()
        .unwrap()
        .starts_with("monitor alarm TargetTracking-function:ramp:live-AlarmHigh-"));
    assert!(newest["cause"]
        .as_str()
        .unwrap()
        .ends_with("in state ALARM triggered policy util"));

    // Idle: scale-in waits for 15 low minutes, then goes back to the minimum.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    let idle_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        requested(&s, "ramp", "live").await,
        4,
        "no scale-in before 15 simulated minutes of low utilization"
    );
    wait_for(&s, "ramp", Duration::from_secs(40), |n| n == 1).await;
    assert!(idle_since.elapsed() >= Duration::from_secs(14));
    let o = overview(&s, "ramp").await;
    let newest = &o["activities"][0];
    assert!(
        newest["cause"].as_str().unwrap().contains("-AlarmLow-"),
        "{newest}"
    );
    assert_eq!(
        (newest["from"].as_u64(), newest["to"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(newest["metricValue"].as_f64(), Some(0.0));
    // The scheduler's floor followed: one provisioned environment left.
    s.wait_ready("ramp", "live").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_actions_set_min_and_max_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &["--autoscale-clock-speed", "60"]).await;
    function_with_alias(&s, "sched").await;
    let rid = "function:sched:live";
    aas_ok(
        &s,
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid, "ScalableDimension": DIM,
               "MinCapacity": 1, "MaxCapacity": 2}),
    )
    .await;
    assert_eq!(requested(&s, "sched", "live").await, 1);
    // Every two (simulated) minutes from now, in Tokyo's time zone: min 3, max 3.
    aas_ok(
        &s,
        "PutScheduledAction",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid, "ScalableDimension": DIM,
               "ScheduledActionName": "peak", "Schedule": "rate(2 minutes)", "Timezone": "Asia/Tokyo",
               "ScalableTargetAction": {"MinCapacity": 3, "MaxCapacity": 3}}),
    )
    .await;
    wait_for(&s, "sched", Duration::from_secs(10), |n| n == 3).await;
    let t = aas_ok(
        &s,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    let t = &t["ScalableTargets"][0];
    assert_eq!(
        (t["MinCapacity"].as_u64(), t["MaxCapacity"].as_u64()),
        (Some(3), Some(3))
    );
    let o = overview(&s, "sched").await;
    let causes: Vec<&str> = o["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["cause"].as_str().unwrap())
        .collect();
    assert!(
        causes.contains(&"scheduled action name peak was triggered"),
        "{causes:?}"
    );
    assert!(
        causes.contains(&"minimum capacity was set to 3"),
        "{causes:?}"
    );
    // The dashboard contract.
    let target = &o["targets"][0];
    assert_eq!(target["resourceId"], rid);
    assert_eq!(target["function"], "sched");
    assert_eq!(target["qualifier"], "live");
    assert_eq!(
        (
            target["min"].as_u64(),
            target["max"].as_u64(),
            target["current"].as_u64()
        ),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(target["targetValue"], Value::Null);
    assert_eq!(
        target["scheduledActions"],
        json!([{"name": "peak", "schedule": "rate(2 minutes)", "timezone": "Asia/Tokyo", "min": 3, "max": 3}])
    );
    let a = &o["activities"][0];
    for k in [
        "time",
        "resourceId",
        "metricValue",
        "from",
        "to",
        "description",
        "cause",
        "status",
    ] {
        assert!(a.get(k).is_some(), "{k} missing in {a}");
    }
    assert!(time::OffsetDateTime::parse(
        a["time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    // Another function's view is empty.
    let other = overview(&s, "nothing").await;
    assert_eq!(other, json!({"targets": [], "activities": []}));

    // Everything survives a restart.
    s.terminate().await;
    let s = Server::start(&data, &["--autoscale-clock-speed", "60"]).await;
    let sched = aas_ok(
        &s,
        "DescribeScheduledActions",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid}),
    )
    .await;
    assert_eq!(sched["ScheduledActions"][0]["ScheduledActionName"], "peak");
    assert_eq!(sched["ScheduledActions"][0]["Timezone"], "Asia/Tokyo");
    let acts = aas_ok(
        &s,
        "DescribeScalingActivities",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid}),
    )
    .await;
    assert!(
        acts["ScalingActivities"].as_array().unwrap().len() >= 3,
        "{acts}"
    );
    assert_eq!(requested(&s, "sched", "live").await, 3);
}

const SERVICE_YML: &str = r#"service: scaledsvc

provider:
  name: aws
  runtime: python3.11

plugins:
  - serverless-provisioned-concurrency-autoscaling

functions:
  api:
    handler: app.handler
    provisionedConcurrency: 1
    concurrencyAutoscaling:
      enabled: true
      minimum: 2
      maximum: 5
      usage: 0.6
      scaleInCooldown: 60
      customMetric:
        statistic: maximum
      scheduledActions:
        - name: morning
          schedule: cron(0 8 ? * MON-FRI *)
          timezone: Europe/Paris
          action:
            minimum: 3
            maximum: 5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_yml_registers_and_removes_autoscaling() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let project = dir.path().join("svc");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python"),
        &project,
    );
    std::fs::write(project.join("serverless.yml"), SERVICE_YML).unwrap();
    let out = stratus_ok(&project, &ep, &["deploy"]).await;
    assert!(out.contains("Service deployed"), "{out}");

    let rid = "function:scaledsvc-dev-api:provisioned";
    let t = aas_ok(
        &s,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    let t = &t["ScalableTargets"];
    assert_eq!(t.as_array().unwrap().len(), 1, "{t}");
    assert_eq!(t[0]["ResourceId"], rid);
    assert_eq!(
        (t[0]["MinCapacity"].as_u64(), t[0]["MaxCapacity"].as_u64()),
        (Some(2), Some(5))
    );
    // provisionedConcurrency 1 is below the minimum: the deployment warms 2 on the
    // version the alias points at (where Stratus keeps the config), and the
    // autoscaler scales that config, not one added beside it on the alias.
    assert_eq!(requested(&s, "scaledsvc-dev-api", "1").await, 2);
    assert_eq!(requested(&s, "scaledsvc-dev-api", "provisioned").await, 0);
    let p = aas_ok(
        &s,
        "DescribeScalingPolicies",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid}),
    )
    .await;
    let c = &p["ScalingPolicies"][0]["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(c["TargetValue"], 0.6);
    assert_eq!(c["ScaleInCooldown"], 60);
    assert_eq!(c["ScaleOutCooldown"], 0);
    assert_eq!(c["CustomizedMetricSpecification"]["Statistic"], "Maximum");
    let sa = aas_ok(
        &s,
        "DescribeScheduledActions",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid}),
    )
    .await;
    let sa = &sa["ScheduledActions"][0];
    assert_eq!(sa["ScheduledActionName"], "morning");
    assert_eq!(sa["Timezone"], "Europe/Paris");
    assert_eq!(
        sa["ScalableTargetAction"],
        json!({"MinCapacity": 3, "MaxCapacity": 5})
    );

    // `stratus info` shows the block.
    let info = stratus_ok(&project, &ep, &["info"]).await;
    assert!(
        info.contains(&format!(
            "autoscaling {rid}: min 2, max 5, current 2, target utilization 0.6"
        )),
        "{info}"
    );
    assert!(
        info.contains("scheduled morning: cron(0 8 ? * MON-FRI *) (Europe/Paris) -> min 3 max 5"),
        "{info}"
    );

    // A second deployment with nothing changed changes nothing.
    let out = stratus_ok(&project, &ep, &["deploy", "--verbose"]).await;
    assert!(!out.contains("autoscaling function:"), "{out}");
    assert!(!out.contains("target tracking"), "{out}");

    // Without the key, the target, policy and schedule go; the floor stays what
    // provisionedConcurrency says.
    let plain = SERVICE_YML
        .split("    concurrencyAutoscaling:")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(project.join("serverless.yml"), plain).unwrap();
    stratus_ok(&project, &ep, &["deploy"]).await;
    let t = aas_ok(
        &s,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    assert_eq!(t["ScalableTargets"], json!([]));
    let p = aas_ok(
        &s,
        "DescribeScalingPolicies",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    assert_eq!(p["ScalingPolicies"], json!([]));
    assert_eq!(requested(&s, "scaledsvc-dev-api", "1").await, 1);

    // Back on, then `stratus remove` deregisters it.
    std::fs::write(project.join("serverless.yml"), SERVICE_YML).unwrap();
    stratus_ok(&project, &ep, &["deploy"]).await;
    let t = aas_ok(
        &s,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    assert_eq!(t["ScalableTargets"].as_array().unwrap().len(), 1);
    stratus_ok(&project, &ep, &["remove"]).await;
    let t = aas_ok(
        &s,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    assert_eq!(t["ScalableTargets"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_lambda_refuses_is_a_failed_activity() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    function_with_alias(&s, "capped").await;
    let r = s
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/capped/concurrency",
            &[],
            json!({"ReservedConcurrentExecutions": 1}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rid = "function:capped:live";
    // The minimum asks for more than the reservation allows: the target is
    // registered, the change it makes fails, and says why.
    aas_ok(
        &s,
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid, "ScalableDimension": DIM,
               "MinCapacity": 2, "MaxCapacity": 3}),
    )
    .await;
    let acts = aas_ok(
        &s,
        "DescribeScalingActivities",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid}),
    )
    .await;
    let a = &acts["ScalingActivities"][0];
    assert_eq!(a["StatusCode"], "Failed", "{a}");
    assert_eq!(a["Description"], "Setting desired concurrency to 2.");
    assert!(
        a["StatusMessage"]
            .as_str()
            .unwrap()
            .contains("reservedConcurrentExecution for function (1)"),
        "{a}"
    );
    assert_eq!(requested(&s, "capped", "live").await, 0);
    let o = overview(&s, "capped").await;
    assert_eq!(o["activities"][0]["status"], "Failed");
}
