//! Per-function network egress and `/tmp` size on the `linux` sandbox (issue 8,
//! part 1), end to end: a service deployed from serverless.yml with
//! `custom.stratus.egress` and `ephemeralStorageSize`, functions that connect to a
//! listener on the host's own (non-loopback) address and measure their `/tmp`, and
//! `EphemeralStorage` through the Lambda API. Needs root for the `linux` driver (as
//! CI has); under the `process` driver nothing is isolated and the tests say so and
//! stop.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::{IpAddr, TcpListener, UdpSocket};

use common::*;
use serde_json::{json, Value};

/// Connects where the event says and measures `/tmp`.
const PROBE: &str = r#"
import errno, os, socket

def handler(event, context):
    out = {}
    if "host" in event:
        try:
            socket.create_connection((event["host"], event["port"]), timeout=3).close()
            out["connect"] = "connected"
        except OSError as e:
            out["connect"] = errno.errorcode.get(e.errno, str(e))
    st = os.statvfs("/tmp")
    out["tmp_mb"] = st.f_blocks * st.f_frsize // (1024 * 1024)
    return out
"#;

/// The host's address on its default route: not loopback, so only an environment
/// outside its own network namespace can reach it. (Connecting a UDP socket sends
/// nothing; it only picks the route and so the source address.)
fn host_ip() -> IpAddr {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("203.0.113.1:9")
        .expect("this test needs a default route (a non-loopback address)");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

fn service_dir(root: &std::path::Path) -> std::path::PathBuf {
    let dir = root.join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), PROBE).unwrap();
    std::fs::write(
        dir.join("serverless.yml"),
        "service: egress\n\
         frameworkVersion: '3'\n\
         provider:\n  name: aws\n  runtime: python3.11\n  timeout: 30\n  memorySize: 256\n\
         custom:\n  stratus:\n    egress: [out]\n\
         functions:\n\
         \x20 out:\n    handler: app.handler\n    ephemeralStorageSize: 1024\n\
         \x20 shut:\n    handler: app.handler\n    vpc:\n      securityGroupIds: [sg-1]\n      subnetIds: [subnet-1]\n",
    )
    .unwrap();
    dir
}

async fn call(s: &Server, name: &str, event: Value) -> Value {
    let r = s.invoke(name, &event.to_string()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    json_body(&r)
}

async fn configuration(s: &Server, name: &str) -> Value {
    let r = s
        .api
        .call(
            "GET",
            &format!("/2015-03-31/functions/{name}/configuration"),
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json().unwrap()
}

#[tokio::test]
async fn only_a_function_with_egress_reaches_the_host_and_tmp_has_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): environments are not isolated");
        return;
    }
    let dir = service_dir(tmp.path());
    let ep = format!("http://{}", s.addr);
    let deployed = stratus_cmd(&dir, &ep, &["deploy"]).await;
    let said = output_text(&deployed);
    assert!(deployed.status.success(), "{said}");
    assert!(
        said.contains("function out: egress is on") && !said.contains("function shut: egress"),
        "the deployment warns about egress, for that function only: {said}"
    );

    let ip = host_ip();
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let event = json!({"host": ip.to_string(), "port": port});

    let out = call(&s, "egress-dev-out", event.clone()).await;
    assert_eq!(out["connect"], "connected", "{out}");
    assert_eq!(out["tmp_mb"], 1024, "{out}");
    // `vpc:` alone grants nothing: only its own loopback, and the default /tmp.
    let shut = call(&s, "egress-dev-shut", event).await;
    assert_eq!(shut["connect"], "ENETUNREACH", "{shut}");
    assert_eq!(shut["tmp_mb"], 512, "{shut}");
    // Exactly one connection arrived: the egress function's.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_ok());
    assert!(listener.accept().is_err());

    // The mode is shown: in the configuration and by `stratus info`.
    assert_eq!(
        configuration(&s, "egress-dev-out").await["StratusEgress"],
        true
    );
    let shut_config = configuration(&s, "egress-dev-shut").await;
    assert!(shut_config.get("StratusEgress").is_none(), "{shut_config}");
    assert_eq!(shut_config["EphemeralStorage"]["Size"], 512);
    let info = stratus_ok(&dir, &ep, &["info"]).await;
    let line = |key: &str| {
        let mut lines = info.lines();
        lines.find(|l| l.trim_start().starts_with(&format!("{key}:")));
        lines.next().unwrap_or_default().to_string()
    };
    assert!(
        line("out").contains("/tmp 1024 MB") && line("out").contains("network egress"),
        "{info}"
    );
    assert!(line("shut").contains("network isolated"), "{info}");

    // Taking egress away (and changing nothing else) redeploys the function, whose
    // new environments are isolated.
    let yml = dir.join("serverless.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(&yml, text.replace("egress: [out]", "egress: false")).unwrap();
    stratus_ok(&dir, &ep, &["deploy"]).await;
    let out = call(
        &s,
        "egress-dev-out",
        json!({"host": ip.to_string(), "port": port}),
    )
    .await;
    assert_eq!(out["connect"], "ENETUNREACH", "{out}");
    assert!(configuration(&s, "egress-dev-out")
        .await
        .get("StratusEgress")
        .is_none());
}

#[tokio::test]
async fn ephemeral_storage_round_trips_through_the_api_and_sizes_tmp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let zip = raw_zip(&[("app.py", PROBE.as_bytes())]);
    let r = s
        .create(
            "sized",
            "python3.11",
            "app.handler",
            &zip,
            json!({"Timeout": 30, "EphemeralStorage": {"Size": 2048}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json_body(&r)["EphemeralStorage"]["Size"], 2048);
    assert_eq!(
        configuration(&s, "sized").await["EphemeralStorage"]["Size"],
        2048
    );

    // Out of range, either way: refused with Lambda's message, nothing changed.
    for (size, constraint) in [
        (511, "Member must have value greater than or equal to 512"),
        (10_241, "Member must have value less than or equal to 10240"),
    ] {
        let r = s
            .api
            .call(
                "PUT",
                "/2015-03-31/functions/sized/configuration",
                &[],
                json!({"EphemeralStorage": {"Size": size}}).to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-amzn-errortype"), Some("ValidationException"));
        let body = json_body(&r);
        assert_eq!(
            body["message"].as_str().or(body["Message"].as_str()),
            Some(format!("1 validation error detected: Value '{size}' at 'ephemeralStorage.size' failed to satisfy constraint: {constraint}").as_str()),
            "{body}"
        );
        let r = s
            .create(
                &format!("bad-{size}"),
                "python3.11",
                "app.handler",
                &zip,
                json!({"EphemeralStorage": {"Size": size}}),
            )
            .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(
        configuration(&s, "sized").await["EphemeralStorage"]["Size"],
        2048
    );

    let r = s
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/sized/configuration",
            &[],
            json!({"EphemeralStorage": {"Size": 10240}}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json_body(&r)["EphemeralStorage"]["Size"], 10240);
    assert_eq!(
        configuration(&s, "sized").await["EphemeralStorage"]["Size"],
        10240
    );

    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): /tmp is the host's");
        return;
    }
    // The environment started after the update has a /tmp of the new size.
    assert_eq!(call(&s, "sized", json!({})).await["tmp_mb"], 10240);
}
