//! Per-function network egress and `/tmp` size on the `linux` sandbox (issue 8,
//! part 1), end to end: a service deployed from serverless.yml with
//! `custom.stratus.egress` and `ephemeralStorageSize`; an "outside" network (a
//! network namespace joined to the host by a veth pair, an HTTP server in it) that
//! egress functions reach through their routed veth and NAT, while the host's own
//! addresses, its loopback ports and other environments stay unreachable;
//! `EphemeralStorage` through the Lambda API. Needs root for the `linux` driver (as
//! CI has); under the `process` driver nothing is isolated and the tests say so and
//! stop.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::{IpAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Probes what the event names, says its own address and endpoints, calls the
/// Stratus API through the SDK, measures `/tmp`, or dies.
const PROBE: &str = r#"
import errno, os, socket, urllib.request

def probe(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))

def own_ip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()

def handler(event, context):
    if event.get("exit"):
        os._exit(3)
    out = {
        "ip": own_ip(),
        "probes": {k: probe(h, p) for k, (h, p) in event.get("probes", {}).items()},
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "runtime_api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
    }
    if "url" in event:
        try:
            out["http"] = urllib.request.urlopen(event["url"], timeout=3).read().decode()
        except Exception as e:
            out["http"] = repr(e)
    if event.get("sdk"):
        import boto3
        from botocore.config import Config
        lam = boto3.client("lambda", config=Config(retries={"max_attempts": 1}))
        out["sdk"] = lam.get_function_configuration(FunctionName=context.function_name)["FunctionName"]
    st = os.statvfs("/tmp")
    out["tmp_mb"] = st.f_blocks * st.f_frsize // (1024 * 1024)
    return out
"#;

/// The host's address on its default route: not loopback, so only an environment
/// outside its own network namespace could reach it. (Connecting a UDP socket sends
/// nothing; it only picks the route and so the source address.)
fn host_ip() -> IpAddr {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("203.0.113.1:9")
        .expect("this test needs a default route (a non-loopback address)");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network outside the host: a namespace joined by a veth pair (`198.18.x.0/30`,
/// benchmark space, reached over the host's connected route), an HTTP server in
/// it. Removed on drop, also when the test fails.
struct Outside {
    ns: String,
    veth: String,
    server: Option<std::process::Child>,
    addr: String,
}

impl Outside {
    fn new(port: u16) -> Outside {
        let pid = std::process::id();
        let net = pid % 250;
        let mut o = Outside {
            ns: format!("stratus-test-outside-{pid}"),
            // Not `stx…`: the firewall would take it for an environment's veth.
            veth: format!("sto{pid}"),
            server: None,
            addr: format!("198.18.{net}.2"),
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &o.ns])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &o.ns]);
        ip(&[
            "link", "add", &o.veth, "type", "veth", "peer", "name", "eth0", "netns", &o.ns,
        ]);
        ip(&["addr", "add", &format!("198.18.{net}.1/30"), "dev", &o.veth]);
        ip(&["link", "set", &o.veth, "up"]);
        ip(&[
            "-n",
            &o.ns,
            "addr",
            "add",
            &format!("{}/30", o.addr),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &o.ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &o.ns, "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(format!("stratus-outside-{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hello"), "hello from outside").unwrap();
        o.server = Some(
            Command::new("ip")
                .args(["netns", "exec", &o.ns, "python3", "-m", "http.server"])
                .arg(port.to_string())
                .args(["--bind", &o.addr, "--directory"])
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        for _ in 0..200 {
            if std::net::TcpStream::connect((o.addr.as_str(), port)).is_ok() {
                return o;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the outside HTTP server did not start");
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Deleting the namespace deletes its end of the pair, and so the pair.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
         \x20 iam:\n    role:\n      statements:\n        - Effect: Allow\n          Action: ['lambda:GetFunctionConfiguration']\n          Resource: '*'\n\
         custom:\n  stratus:\n    egress: [out, other]\n\
         functions:\n\
         \x20 out:\n    handler: app.handler\n    ephemeralStorageSize: 1024\n\
         \x20 other:\n    handler: app.handler\n\
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

/// The Stratus tables in the host's nftables ruleset.
fn stratus_tables() -> String {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("stratus_"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn egress_reaches_the_outside_but_not_the_host_or_other_environments() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &["--egress-pool", "100.96.0.0/28", "--gateway", "127.0.0.1:0"],
    )
    .await;
    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): environments are not isolated");
        return;
    }
    let h = s.health().await;
    assert_eq!(h["sandbox"]["egress"], "routed 100.96.0.0/28", "{h}");
    let server_pid = s.child.id().unwrap();
    let table = format!("table inet stratus_{server_pid}_0");
    assert!(stratus_tables().contains(&table), "{}", stratus_tables());

    let dir = service_dir(tmp.path());
    let ep = format!("http://{}", s.addr);
    let deployed = stratus_cmd(&dir, &ep, &["deploy"]).await;
    let said = output_text(&deployed);
    assert!(deployed.status.success(), "{said}");
    assert!(
        said.contains("function out: egress is on")
            && said.contains("the host's own addresses and other environments stay unreachable")
            && !said.contains("function shut: egress"),
        "the deployment says egress is on, for those functions only: {said}"
    );

    let port = free_port();
    let outside = Outside::new(port);
    let url = format!("http://{}:{port}/hello", outside.addr);
    let host = host_ip().to_string();
    // Listening on every host address: reachable from the host's own namespace.
    let host_listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let host_port = host_listener.local_addr().unwrap().port();
    let api_port = s.api_port();
    let gw_port = s.gateway_port();

    // Another egress environment, kept warm: its address is a neighbour's.
    let other = call(&s, "egress-dev-other", json!({})).await;
    let other_ip = other["ip"].as_str().unwrap().to_string();
    assert!(other_ip.starts_with("100.96.0."), "{other}");

    let out = call(
        &s,
        "egress-dev-out",
        json!({
            "url": url,
            "sdk": true,
            "probes": {
                "outside": [outside.addr, port],
                "api_loopback": ["127.0.0.1", api_port],
                "gateway_loopback": ["127.0.0.1", gw_port],
                "host_address": [host, host_port],
                "host_address_api": [host, api_port],
                "host_veth": ["100.96.0.1", host_port],
                "other_veth_host_side": ["100.96.0.5", host_port],
                "other_env": [other_ip, 9001],
                "metadata": ["169.254.169.254", 80],
            }
        }),
    )
    .await;
    let p = &out["probes"];
    assert_eq!(out["http"], "hello from outside", "{out}");
    assert_eq!(p["outside"], "connected", "{out}");
    // Its loopback is its own: nothing of the host listens there.
    assert_eq!(p["api_loopback"], "ECONNREFUSED", "{out}");
    assert_eq!(p["gateway_loopback"], "ECONNREFUSED", "{out}");
    // The host's own addresses are dropped by the firewall (without it, they connect).
    for k in [
        "host_address",
        "host_address_api",
        "host_veth",
        "other_veth_host_side",
    ] {
        assert_eq!(p[k], "timeout", "{k}: {out}");
    }
    // So is another environment (forwarding between veths), and link-local.
    assert_eq!(p["other_env"], "timeout", "{out}");
    assert_eq!(p["metadata"], "timeout", "{out}");
    assert!(
        out["ip"].as_str().unwrap().starts_with("100.96.0."),
        "{out}"
    );
    assert_ne!(out["ip"], other["ip"]);
    // Its endpoints are the in-namespace listeners, and the SDK reaches Stratus.
    assert_eq!(out["endpoint"], "http://127.0.0.1:9002", "{out}");
    assert_eq!(out["runtime_api"], "127.0.0.1:9001", "{out}");
    assert_eq!(out["sdk"], "egress-dev-out", "{out}");
    assert_eq!(out["tmp_mb"], 1024, "{out}");
    // Nothing arrived at the host's listener.
    host_listener.set_nonblocking(true).unwrap();
    assert!(
        host_listener.accept().is_err(),
        "a connection reached the host"
    );

    // `vpc:` alone grants nothing: only its own loopback, and the default /tmp.
    let shut = call(
        &s,
        "egress-dev-shut",
        json!({"url": url, "probes": {"outside": [outside.addr, port]}}),
    )
    .await;
    assert_eq!(shut["probes"]["outside"], "ENETUNREACH", "{shut}");
    assert_eq!(shut["ip"], "ENETUNREACH", "{shut}");
    assert_eq!(shut["tmp_mb"], 512, "{shut}");

    // The mode is shown: in the configuration and by `stratus info`.
    assert_eq!(
        s.configuration("egress-dev-out").await["StratusEgress"],
        true
    );
    let shut_config = s.configuration("egress-dev-shut").await;
    assert!(shut_config.get("StratusEgress").is_none(), "{shut_config}");
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
    assert!(info.contains("egress routed 100.96.0.0/28"), "{info}");

    // Many environments that die: the pool (4 slots in a /28; 2 held by the warm
    // environments of `out` and `other`) never runs dry, and no veth is left over.
    for i in 0..12 {
        let r = s.invoke("egress-dev-out", r#"{"exit": true}"#).await;
        assert_eq!(r.status, 200, "round {i}");
        assert_eq!(
            r.header("x-amz-function-error"),
            Some("Unhandled"),
            "round {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let again = call(&s, "egress-dev-out", json!({"url": url})).await;
    assert_eq!(again["http"], "hello from outside", "{again}");
    assert_eq!(s.health().await["sandbox"]["egressInUse"], 2);

    // Taking egress away (and changing nothing else) redeploys the function, whose
    // new environments are isolated.
    let yml = dir.join("serverless.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(
        &yml,
        text.replace("egress: [out, other]", "egress: [other]"),
    )
    .unwrap();
    stratus_ok(&dir, &ep, &["deploy"]).await;
    let out = call(&s, "egress-dev-out", json!({"url": url})).await;
    assert_eq!(out["ip"], "ENETUNREACH", "{out}");
    assert!(s
        .configuration("egress-dev-out")
        .await
        .get("StratusEgress")
        .is_none());

    // A clean stop removes the firewall table and every veth of the server.
    let status = s.terminate().await;
    assert!(status.success(), "{status}");
    assert!(!stratus_tables().contains(&table), "{}", stratus_tables());
    drop(outside);
}

/// `--egress-mode host`: today's mode, by choice: egress shares the host's network
/// (the host's own address reaches a listener there), and the server says so.
#[tokio::test]
async fn host_mode_shares_the_host_network_and_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &["--egress-mode", "host"]).await;
    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): environments are not isolated");
        return;
    }
    assert_eq!(s.health().await["sandbox"]["egress"], "host");
    let dir = service_dir(tmp.path());
    let ep = format!("http://{}", s.addr);
    let deployed = stratus_cmd(&dir, &ep, &["deploy"]).await;
    let said = output_text(&deployed);
    assert!(
        said.contains("function out: egress is on (custom.stratus.egress): its environments share the host's network namespace"),
        "{said}"
    );
    let host = host_ip().to_string();
    let listener = TcpListener::bind((host.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = call(
        &s,
        "egress-dev-out",
        json!({"probes": {"host": [host, port]}}),
    )
    .await;
    assert_eq!(out["probes"]["host"], "connected", "{out}");
    let log = std::fs::read_to_string(tmp.path().join("data.server.log")).unwrap();
    assert!(
        log.contains("--egress-mode host: functions with egress share the host's network"),
        "{log}"
    );
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
        s.configuration("sized").await["EphemeralStorage"]["Size"],
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
        s.configuration("sized").await["EphemeralStorage"]["Size"],
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
        s.configuration("sized").await["EphemeralStorage"]["Size"],
        10240
    );

    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): /tmp is the host's");
        return;
    }
    // The environment started after the update has a /tmp of the new size.
    assert_eq!(call(&s, "sized", json!({})).await["tmp_mb"], 10240);
}

/// Without `nft` the firewall cannot be set up: the server says so at start, the
/// deployment says so, and an egress function fails to start with an error that
/// says why and what to do, while functions without egress run as ever.
#[tokio::test]
async fn without_nft_egress_functions_fail_to_start_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // `nft` lives in an `sbin` directory; the runtimes do not.
    let path = std::env::var("PATH").unwrap_or_default();
    let path: Vec<&str> = path.split(':').filter(|d| !d.contains("sbin")).collect();
    let path = path.join(":");
    let s = Server::start_env(&tmp.path().join("data"), &[], &[("PATH", &path)]).await;
    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): environments are not isolated");
        return;
    }
    let mode = s.health().await["sandbox"]["egress"].clone();
    assert!(
        mode.as_str()
            .unwrap()
            .starts_with("unavailable: the `nft` program (package nftables) is not installed"),
        "{mode}"
    );
    let dir = service_dir(tmp.path());
    let ep = format!("http://{}", s.addr);
    let deployed = stratus_cmd(&dir, &ep, &["deploy"]).await;
    let said = output_text(&deployed);
    assert!(deployed.status.success(), "{said}");
    assert!(
        said.contains("function out: egress is on (custom.stratus.egress), but routed egress is unavailable on this server"),
        "{said}"
    );
    let r = s.invoke("egress-dev-out", "{}").await;
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("egress is unavailable on this server: the `nft` program")
            && body.contains("--egress-mode host"),
        "{} {body}",
        r.status
    );
    let shut = call(&s, "egress-dev-shut", json!({})).await;
    assert_eq!(shut["ip"], "ENETUNREACH", "{shut}");
    let log = std::fs::read_to_string(tmp.path().join("data.server.log")).unwrap();
    assert!(
        log.contains("routed egress is unavailable (the `nft` program"),
        "{log}"
    );
}

/// A pool of one slot: while one egress environment holds it, another cannot
/// start and says why; once the first dies, its slot serves the next.
#[tokio::test]
async fn an_exhausted_pool_is_a_clear_error_and_a_dead_environment_frees_its_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &["--egress-pool", "100.96.200.0/30"],
    )
    .await;
    if !s.isolated().await {
        eprintln!("the process driver runs here (no root?): environments are not isolated");
        return;
    }
    let dir = service_dir(tmp.path());
    stratus_ok(&dir, &format!("http://{}", s.addr), &["deploy"]).await;
    let other = call(&s, "egress-dev-other", json!({})).await;
    assert_eq!(other["ip"], "100.96.200.2", "{other}");
    let r = s.invoke("egress-dev-out", "{}").await;
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("the egress address pool 100.96.200.0/30 is exhausted (all 1 of its /30 slots are held by running environments with egress); give the server a larger --egress-pool"),
        "{} {body}",
        r.status
    );
    assert_eq!(s.health().await["sandbox"]["egressInUse"], 1);
    // The holder dies; its slot comes back.
    let r = s.invoke("egress-dev-other", r#"{"exit": true}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let mut out = Value::Null;
    for _ in 0..50 {
        let r = s.invoke("egress-dev-out", "{}").await;
        if r.header("x-amz-function-error").is_none() && r.status == 200 {
            out = json_body(&r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(out["ip"], "100.96.200.2", "{out}");
}
