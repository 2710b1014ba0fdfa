//! Shared test harness: starts the real `stratus` binary on an ephemeral port with a
//! fresh data dir, and talks to it over HTTP like any AWS SDK would — signed with
//! the admin key the server wrote to `{data-dir}/credentials` on its first start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
#![allow(dead_code, unreachable_pub)]

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
pub(crate) use stratus_cli::client::{Api, Reply};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Whether the tests run with an effective uid of 0 (the `linux` sandbox needs it).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// Each started server's credentials file, by endpoint (`http://addr`), so commands
/// run against an endpoint sign with its key.
static CREDENTIALS: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// The credentials file of the server at `endpoint` started by this harness.
pub fn credentials_file(endpoint: &str) -> Option<PathBuf> {
    CREDENTIALS
        .lock()
        .unwrap()
        .iter()
        .find(|(e, _)| e == endpoint.trim_end_matches('/'))
        .map(|(_, p)| p.clone())
}

/// A signer with the admin key a server wrote into `data_dir` on its first start.
pub fn signer_for(data_dir: &Path) -> stratus_cli::signing::Signer {
    let file = data_dir.join("credentials");
    let (creds, region) = stratus_cli::signing::load_profile(&file, "default")
        .unwrap()
        .unwrap_or_else(|| panic!("no [default] profile in {}", file.display()));
    stratus_cli::signing::Signer::with(
        creds,
        region.as_deref().unwrap_or("us-east-1"),
        &file.display().to_string(),
    )
}

/// A running `stratus server` process.
pub struct Server {
    pub child: Child,
    pub api: Api,
    pub addr: String,
    pub data_dir: PathBuf,
    /// The HTTP gateway's base URL, when started with `--gateway`.
    pub gateway: Option<String>,
}

impl Server {
    /// Starts `stratus server` on `127.0.0.1:0` with `data_dir` and extra flags.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_env(data_dir, extra, &[]).await
    }

    /// [`Server::start`] with extra environment variables (e.g. a cluster's shared
    /// `STRATUS_MASTER_KEY`).
    pub async fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("server.log"))
            .expect("server log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--shutdown-grace", "5"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start stratus server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("server announced its address in time")
            .expect("read stdout")
            .expect("a line");
        let url = line.rsplit(' ').next().expect("url").to_string();
        let addr = url.trim_start_matches("http://").to_string();
        let gateway = if extra.iter().any(|a| a.starts_with("--gateway")) {
            let line = lines
                .next_line()
                .await
                .expect("read stdout")
                .expect("the gateway line");
            Some(line.rsplit(' ').next().expect("gateway url").to_string())
        } else {
            None
        };
        let signer = if extra.contains(&"--no-auth") {
            stratus_cli::signing::Signer::unsigned()
        } else {
            CREDENTIALS
                .lock()
                .unwrap()
                .push((url.clone(), data_dir.join("credentials")));
            signer_for(data_dir)
        };
        Server {
            child,
            api: Api::with_signer(&url, signer),
            addr,
            data_dir: data_dir.to_path_buf(),
            gateway,
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid") as i32;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server exited after SIGTERM")
            .expect("wait")
    }

    pub async fn create(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        extra: Value,
    ) -> Reply {
        let mut body = json!({
            "FunctionName": name, "Runtime": runtime, "Handler": handler,
            "Role": "arn:aws:iam::000000000000:role/test",
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.api
            .call("POST", "/2015-03-31/functions", &[], body.to_string())
            .await
            .expect("create")
    }

    pub async fn create_ok(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        extra: Value,
    ) {
        let r = self.create(name, runtime, handler, zip, extra).await;
        assert_eq!(
            r.status,
            201,
            "CreateFunction {name}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    /// `GET /stratus/v1/health`.
    pub async fn health(&self) -> Value {
        let r = self
            .api
            .call("GET", "/stratus/v1/health", &[], "")
            .await
            .expect("health");
        r.json().unwrap()
    }

    /// Whether environments run isolated (the `linux` sandbox driver), from health.
    pub async fn isolated(&self) -> bool {
        self.health().await["sandbox"]["isolated"] == true
    }

    /// GetFunctionConfiguration of `name` (a `name:qualifier` works too); must be 200.
    pub async fn configuration(&self, name: &str) -> Value {
        let r = self
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

    /// The API listener's port.
    pub fn api_port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The gateway listener's port (the server was started with `--gateway`).
    pub fn gateway_port(&self) -> u16 {
        self.gateway
            .as_deref()
            .expect("started with --gateway")
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub async fn invoke(&self, target: &str, payload: &str) -> Reply {
        self.api.invoke(target, payload).await.expect("invoke")
    }

    pub async fn invoke_tail(&self, target: &str, payload: &str) -> (Reply, String) {
        let r = self
            .api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{target}/invocations"),
                &[("x-amz-log-type", "Tail")],
                payload.to_string(),
            )
            .await
            .expect("invoke");
        let tail = r
            .header("x-amz-log-result")
            .map(|t| {
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(t)
                        .expect("base64"),
                )
                .expect("utf8")
            })
            .unwrap_or_default();
        (r, tail)
    }

    pub async fn publish(&self, name: &str) -> String {
        let r = self
            .api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{name}/versions"),
                &[],
                "{}",
            )
            .await
            .expect("publish");
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json().unwrap()["Version"].as_str().unwrap().to_string()
    }

    /// `n` invocations of `target` at once.
    pub async fn invoke_concurrently(&self, target: &str, payload: &str, n: usize) -> Vec<Reply> {
        let futs = (0..n)
            .map(|_| {
                let (api, target, payload) =
                    (self.api.clone(), target.to_string(), payload.to_string());
                async move { api.invoke(&target, &payload).await.expect("invoke") }
            })
            .collect();
        join_all(futs).await
    }

    /// Puts provisioned concurrency and waits until READY.
    pub async fn provision(&self, name: &str, qualifier: &str, n: u32) {
        let path =
            format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={qualifier}");
        let r = self
            .api
            .call(
                "PUT",
                &path,
                &[],
                json!({ "ProvisionedConcurrentExecutions": n }).to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        self.wait_ready(name, qualifier).await;
    }

    pub async fn wait_ready(&self, name: &str, qualifier: &str) {
        let path =
            format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={qualifier}");
        for _ in 0..600 {
            let st = self
                .api
                .call("GET", &path, &[], "")
                .await
                .unwrap()
                .json()
                .unwrap();
            if st["Status"] == "READY" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("provisioned concurrency on {name}:{qualifier} never became READY");
    }

    /// All log messages of a function's group, oldest first (paging through them).
    pub async fn logs(&self, function: &str) -> Vec<String> {
        let mut out = Vec::new();
        // A number on a single node, a cursor over every node in a cluster.
        let mut after = "0".to_string();
        loop {
            let path = format!("/stratus/v1/logs?function={function}&limit=10000&after={after}");
            let v = self
                .api
                .call("GET", &path, &[], "")
                .await
                .unwrap()
                .json()
                .unwrap();
            let events = v["events"].as_array().unwrap();
            if events.is_empty() {
                return out;
            }
            out.extend(
                events
                    .iter()
                    .map(|e| e["message"].as_str().unwrap().to_string()),
            );
            after = match &v["nextToken"] {
                Value::String(s) => s.clone(),
                other => other.as_i64().unwrap().to_string(),
            };
        }
    }

    /// Waits until the function's logs contain `count` lines starting with `prefix`.
    pub async fn wait_logs(&self, function: &str, prefix: &str, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let logs = self.logs(function).await;
            if logs.iter().filter(|l| l.starts_with(prefix)).count() >= count {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let logs = self.logs(function).await;
        let tail = &logs[logs.len().saturating_sub(50)..];
        panic!("fewer than {count} '{prefix}' lines in {function}'s {} log lines; last ones: {tail:#?}", logs.len());
    }
}

/// A deterministic zip of a fixtures sub-directory.
pub fn fixture_zip(dir: &str) -> Vec<u8> {
    stratus_package::zip_dir(&Path::new(FIXTURES).join(dir)).expect("zip fixture")
}

/// A zip holding the `lambda_runtime` example binary as `bootstrap`.
pub fn rust_zip() -> Vec<u8> {
    let bin = workspace_bin("hello-rust", "hello-rust");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&bin, dir.path().join("bootstrap")).expect("copy bootstrap");
    stratus_package::zip_dir(dir.path()).expect("zip")
}

/// The path of binary `bin` of workspace package `package`, built beside `stratus`
/// (`cargo test --workspace` builds it; a narrower run builds it here).
pub fn workspace_bin(bin: &str, package: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_stratus")).with_file_name(bin);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", package])
            .status()
            .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
        assert!(status.success(), "cargo build -p {package} failed");
    }
    path
}

/// Runs `tests/sdk/{script}` with python3 against `s` (arguments: the endpoint and the
/// fixtures dir) and asserts that it succeeded and printed `done`.
pub async fn run_sdk_script(s: &Server, script: &str, done: &str) {
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .arg(format!("http://{}", s.addr))
        .arg(FIXTURES)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .expect("run python3 (boto3 is installed by scripts/test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(done), "{script}: {stdout}");
}

/// A zip with one entry per `(name, content)`; `mode` None writes no unix mode.
pub fn raw_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, content) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(content).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

pub fn json_body(r: &Reply) -> Value {
    r.json()
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&r.body)))
}

/// Lines of `logs` that contain `needle`.
pub fn count(logs: &[String], needle: &str) -> usize {
    logs.iter().filter(|l| l.contains(needle)).count()
}

/// Awaits every future, each spawned on the runtime so they run concurrently.
pub async fn join_all<T: Send + 'static>(
    futs: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let ty = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Runs `stratus args…` in `dir` against `endpoint` and returns its output. Rust
/// functions are built in cargo's dev profile and their own target directory, so the
/// nested cargo never waits on the one running the tests.
pub async fn stratus_cmd(dir: &Path, endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
    if let Some(file) = credentials_file(endpoint) {
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", file);
    }
    cmd.args(args)
        .current_dir(dir)
        .env("STRATUS_ENDPOINT", endpoint)
        .env("NO_COLOR", "1")
        .env("STRATUS_CARGO_PROFILE", "dev")
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-examples"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run stratus")
}

/// Standard output and error together, for messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// [`stratus_cmd`], asserting success; returns standard output.
pub async fn stratus_ok(dir: &Path, endpoint: &str, args: &[&str]) -> String {
    let o = stratus_cmd(dir, endpoint, args).await;
    assert!(
        o.status.success(),
        "stratus {args:?} in {}: {}",
        dir.display(),
        output_text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `Reason` of a throttle (or other error) body.
pub fn reason(r: &Reply) -> Option<String> {
    r.json()
        .ok()
        .and_then(|v| v["Reason"].as_str().map(str::to_string))
}

/// Invokes `target` asynchronously (`X-Amz-Invocation-Type: Event`).
pub async fn event(s: &Server, target: &str, payload: Value) -> Reply {
    s.api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{target}/invocations"),
            &[("x-amz-invocation-type", "Event")],
            payload.to_string(),
        )
        .await
        .unwrap()
}

/// The deliveries a recorder function wrote to `out/deliveries.log`, one JSON per line.
pub fn deliveries(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("deliveries.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
