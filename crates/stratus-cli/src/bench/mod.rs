//! `stratus bench`: measures the invocation path against an embedded server on an
//! ephemeral port, with a real client over loopback HTTP/1.1 keep-alive.
//!
//! - warm Invoke API latency p50/p99 at concurrency 1;
//! - throughput at 16 and 64 concurrent callers (warm, provisioned environments);
//! - the same, briefly, for the embedded Node and Python runtimes;
//! - cold start: Init Duration (environment start to first `/next`) for the
//!   `provided` function, Node and Python, against the bare process's own
//!   start-to-`/next`;
//! - time for 100 provisioned environments to reach READY, and server memory per
//!   idle environment.
//!
//! `--attacks` measures instead a neighbour's warm latency while another function
//! attacks from inside its environment ([`attacks`]).
//!
//! `--async-accept` measures instead how long an asynchronous invoke takes to be
//! accepted, with events in `events.db` or (`--nats`) in JetStream ([`async_accept`]).
//!
//! `--cluster postgres://… --nats nats://…` compares instead a cluster node with the
//! embedded one and measures several nodes together and a routed invoke ([`cluster`]).
//!
//! `--cold-starts` measures instead cold starts per runtime the server runs, Init
//! Duration and first-call latency ([`cold_start`]).
//!
//! `--autoscaling` replays instead a daily-shaped trace with fixed and with
//! autoscaled provisioned concurrency and counts cold starts ([`autoscaling`]).

mod async_accept;
mod attacks;
mod autoscaling;
mod cluster;
mod cold_start;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Args;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::client::Api;

/// Options of `stratus bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// The no-op `provided` bootstrap to use: `noop-bootstrap` (a minimal Runtime API
    /// client: `cargo build --release -p noop-bootstrap`), or the `lambda_runtime`
    /// example's `noop` (`cargo build --release -p hello-rust`).
    #[arg(long, default_value = "target/release/noop-bootstrap")]
    bootstrap: PathBuf,
    /// Sequential invocations for the latency figure.
    #[arg(long, default_value_t = 5000)]
    requests: u32,
    /// Seconds each throughput run lasts.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Cold starts to sample per runtime.
    #[arg(long, default_value_t = 20)]
    cold_samples: u32,
    /// Provisioned environments for the READY-time figure.
    #[arg(long, default_value_t = 100)]
    provisioned: u32,
    /// Run the server with `--no-auth` and send unsigned requests, to measure what
    /// authentication costs.
    #[arg(long)]
    no_auth: bool,
    /// The server's sandbox driver (`auto`, `linux`, `process`), to compare them.
    #[arg(long, default_value = "auto", value_parser = ["auto", "linux", "process"])]
    sandbox: String,
    /// Only measure a neighbour function's warm p50/p99, quiet and while another
    /// function runs attacks (fork bomb, memory bomb, stdout flood, CPU spin, /tmp
    /// fill), `--requests` calls per round.
    #[arg(long)]
    attacks: bool,
    /// `--attacks`: only this attack (repeatable): fork_bomb, memory_bomb, cpu_spin,
    /// tmp_fill, stdout_flood.
    #[arg(long = "attack", value_name = "NAME", value_parser = ["fork_bomb", "memory_bomb", "cpu_spin", "tmp_fill", "stdout_flood"])]
    only_attacks: Vec<String>,
    /// `--attacks`: only this neighbour (`provided` or `python3.12`).
    #[arg(long = "neighbour", value_name = "RUNTIME", value_parser = ["provided", "python3.12"])]
    only_neighbour: Option<String>,
    /// `--attacks`: the attacker's handler (`app.py`, `handler(event, context)` with
    /// `event = {"attack": NAME, "seconds": 2}`) instead of the built-in one, for
    /// experiments with variants of an attack.
    #[arg(long, value_name = "FILE")]
    attacker_code: Option<PathBuf>,
    /// Run the server with metrics recording off (`--no-metrics-recording`), the
    /// baseline for what recording costs on the invocation path.
    #[arg(long)]
    no_metrics: bool,
    /// Only count cold starts over a simulated day of load, with a fixed provisioned
    /// concurrency, with target tracking, and with target tracking plus scheduled
    /// actions.
    #[arg(long)]
    autoscaling: bool,
    /// `--autoscaling`: simulated seconds per real second of the autoscaler's clock.
    #[arg(long, default_value_t = 720.0)]
    autoscale_speed: f64,
    /// `--autoscaling`: concurrent callers at the day's peak.
    #[arg(long, default_value_t = 8)]
    day_peak: u32,
    /// Only measure cold starts, `--cold-samples` per runtime the server runs (and
    /// `provided` with the Rust no-op and with a Go one): Init Duration and the first
    /// call's latency, p50/p90.
    #[arg(long)]
    cold_starts: bool,
    /// An extra argument for the benchmarked server (repeatable), e.g.
    /// `--server-arg=--runtime --server-arg=nodejs22.x=/opt/node22/bin/node`.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Only measure how long an asynchronous invoke takes to be accepted (202),
    /// `--requests` events sequentially and again from 16 callers.
    #[arg(long)]
    async_accept: bool,
    /// Run the server with `--nats URL` (async events in NATS JetStream).
    #[arg(long)]
    nats: Option<String>,
    /// Only compare a cluster node (this PostgreSQL database, with `--nats`) with the
    /// embedded node, then measure `--nodes` cluster nodes together and an invoke
    /// through a node without a warm environment (`scripts/bench-cluster` starts the
    /// engines and runs this).
    #[arg(long, value_name = "POSTGRES_URL")]
    cluster: Option<String>,
    /// `--cluster`: cluster nodes for the aggregate throughput.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// `--cluster`: interleaved rounds of embedded and cluster node; `--attacks`:
    /// quiet and attacked rounds per attack and neighbour.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

/// The `Init Duration` (ms) in the REPORT line of a reply's `LogType=Tail` log.
fn init_duration(r: &crate::client::Reply) -> anyhow::Result<f64> {
    let log = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-amz-log-result").unwrap_or_default())?;
    let log = String::from_utf8_lossy(&log);
    log.split("Init Duration: ")
        .nth(1)
        .and_then(|s| s.split(" ms").next())
        .and_then(|s| s.parse::<f64>().ok())
        .with_context(|| format!("no Init Duration in {log}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

async fn create(
    api: &Api,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
) -> anyhow::Result<()> {
    create_with(api, name, runtime, handler, zip, 128).await
}

async fn create_with(
    api: &Api,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    memory_mb: u32,
) -> anyhow::Result<()> {
    let body = json!({
        "FunctionName": name, "Runtime": runtime, "Handler": handler, "Role": "arn:aws:iam::000000000000:role/bench",
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) }, "Timeout": 30, "MemorySize": memory_mb,
    });
    let r = api
        .call("POST", "/2015-03-31/functions", &[], body.to_string())
        .await?;
    if r.status != 201 {
        bail!(
            "CreateFunction {name}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(())
}

async fn provision(api: &Api, name: &str, n: u32) -> anyhow::Result<Duration> {
    let v = api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{name}/versions"),
            &[],
            "{}",
        )
        .await?
        .json()?;
    let version = v["Version"].as_str().context("no version")?.to_string();
    let t = Instant::now();
    let path = format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={version}");
    let r = api
        .call(
            "PUT",
            &path,
            &[],
            json!({ "ProvisionedConcurrentExecutions": n }).to_string(),
        )
        .await?;
    if r.status != 202 {
        bail!(
            "provisioned concurrency: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    loop {
        let st = api.call("GET", &path, &[], "").await?.json()?;
        if st["Status"] == "READY" {
            return Ok(t.elapsed());
        }
        if st["Status"] == "FAILED" {
            bail!("provisioned concurrency failed: {}", st["StatusReason"]);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Time from spawning `program` to its first `GET /next`, with no Stratus involved.
async fn bare_start(
    program: &std::path::Path,
    args: &[String],
    cwd: &std::path::Path,
    env: &[(&str, &str)],
) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let (mut sock, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .with_context(|| format!("{} never called /next", program.display()))??;
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let _ = child.kill().await;
    Ok(ms)
}

async fn cold_samples(
    api: &Api,
    prefix: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    n: u32,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        create(api, &name, runtime, handler, zip).await?;
        let r = api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{name}/invocations"),
                &[("x-amz-log-type", "Tail")],
                "{}",
            )
            .await?;
        out.push(init_duration(&r).context("the call was not cold")?);
        api.call("DELETE", &format!("/2015-03-31/functions/{name}"), &[], "")
            .await?;
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.cluster {
        return cluster::run(&args, url).await;
    }
    if args.autoscaling {
        return autoscaling::run(&args).await;
    }
    let work = tempfile_dir()?;
    let pdir = work.join("provided");
    std::fs::create_dir_all(&pdir)?;
    // `--async-accept` delivers to a Node function only.
    if !args.async_accept {
        let bootstrap = args.bootstrap.canonicalize().with_context(|| {
            format!(
                "{} not found: build it with `cargo build --release -p noop-bootstrap`",
                args.bootstrap.display()
            )
        })?;
        std::fs::copy(&bootstrap, pdir.join("bootstrap"))?;
    } else {
        std::fs::write(pdir.join("bootstrap"), b"")?;
    }
    let provided_zip = stratus_package::zip_dir(&pdir)?;
    let ndir = work.join("node");
    std::fs::create_dir_all(&ndir)?;
    std::fs::write(
        ndir.join("index.js"),
        "exports.handler = async () => ({ ok: true });\n",
    )?;
    let node_zip = stratus_package::zip_dir(&ndir)?;
    let pydir = work.join("python");
    std::fs::create_dir_all(&pydir)?;
    std::fs::write(
        pydir.join("app.py"),
        "def handler(event, context):\n    return {'ok': True}\n",
    )?;
    let python_zip = stratus_package::zip_dir(&pydir)?;

    // The server runs as its own process (this binary's `server` command), as in
    // production; this process is only the client.
    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "1",
            "--sandbox",
            &args.sandbox,
            "--data-dir",
        ])
        .arg(work.join("data"))
        .args(args.no_auth.then_some("--no-auth"))
        .args(args.no_metrics.then_some("--no-metrics-recording"))
        .args(args.nats.iter().flat_map(|u| ["--nats", u.as_str()]))
        .args(&args.server_args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let server_pid = server.id().context("server pid")?;
    let mut lines =
        tokio::io::BufReader::new(server.stdout.take().context("server stdout")?).lines();
    let line = lines
        .next_line()
        .await?
        .context("the server printed no address")?;
    let base = line.rsplit(' ').next().unwrap_or_default().to_string();
    // The server wrote its admin key on this first start of a fresh data dir.
    let signer = if args.no_auth {
        stratus_cli::signing::Signer::unsigned()
    } else {
        let creds_file = work.join("data").join("credentials");
        let (creds, region) = stratus_cli::signing::load_profile(&creds_file, "default")
            .map_err(anyhow::Error::msg)?
            .with_context(|| {
                format!(
                    "the server wrote no credentials to {}",
                    creds_file.display()
                )
            })?;
        stratus_cli::signing::Signer::with(
            creds,
            region.as_deref().unwrap_or("us-east-1"),
            &creds_file.display().to_string(),
        )
    };
    let api = Api::with_signer(&base, signer.clone());
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("the server printed an unexpected address: {line}"))?;
    println!(
        "stratus bench — {} cores, server pid {server_pid} on {base}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let health: serde_json::Value = api
        .call("GET", "/stratus/v1/health", &[], "")
        .await?
        .json()?;
    println!(
        "sandbox driver: {} (isolated: {}, seccomp: {})",
        health["sandbox"]["driver"].as_str().unwrap_or("?"),
        health["sandbox"]["isolated"],
        health["sandbox"]["seccomp"]
    );

    if args.async_accept {
        let backend = match &args.nats {
            Some(url) => format!("NATS JetStream at {url}"),
            None => "events.db (SQLite)".to_string(),
        };
        return async_accept::run(&api, &node_zip, args.requests, &backend).await;
    }
    if args.cold_starts {
        let result = cold_start::run(&api, &health, &provided_zip, &work, args.cold_samples).await;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &server_pid.to_string()])
            .status();
        let _ = server.wait().await;
        let _ = stratus_package::remove_tree(&work);
        return result;
    }
    if args.attacks {
        let result = attacks::run(
            &api,
            server_pid,
            addr,
            &signer,
            &provided_zip,
            &python_zip,
            &args,
        )
        .await;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &server_pid.to_string()])
            .status();
        let _ = server.wait().await;
        let _ = stratus_package::remove_tree(&work);
        return result;
    }

    // Warm latency at concurrency 1.
    create(&api, "noop", "provided.al2023", "bootstrap", &provided_zip).await?;
    provision(&api, "noop", 64).await?;
    let request = load::invoke_request(addr, "noop:1", &signer);
    let mut lat = load::sequential(addr, request, 200, args.requests).await?;
    lat.sort_by(f64::total_cmp);
    println!(
        "warm invoke, concurrency 1 ({} requests): p50 {:.0} µs, p99 {:.0} µs",
        args.requests,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );

    // Warm latency while management calls run against another function: each
    // change is written to SQLite, and none may stall the invocation path.
    // Quiet and busy rounds alternate, so a burst of noise on the machine does
    // not decide the comparison; the median round of each is reported.
    create(
        &api,
        "managed",
        "provided.al2023",
        "bootstrap",
        &provided_zip,
    )
    .await?;
    let (mut quiet, mut busy, mut calls) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..3 {
        let request = load::invoke_request(addr, "noop:1", &signer);
        let mut l = load::sequential(addr, request.clone(), 200, args.requests).await?;
        l.sort_by(f64::total_cmp);
        quiet.push((percentile(&l, 0.5), percentile(&l, 0.99)));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = tokio::spawn(management_loop(api.clone(), stop.clone()));
        let mut l = load::sequential(addr, request.clone(), 200, args.requests).await?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        calls += churn.await??;
        l.sort_by(f64::total_cmp);
        busy.push((percentile(&l, 0.5), percentile(&l, 0.99)));
    }
    let median = |rounds: &[(f64, f64)]| {
        let mut p50: Vec<f64> = rounds.iter().map(|r| r.0).collect();
        let mut p99: Vec<f64> = rounds.iter().map(|r| r.1).collect();
        p50.sort_by(f64::total_cmp);
        p99.sort_by(f64::total_cmp);
        (p50[p50.len() / 2], p99[p99.len() / 2], p99)
    };
    let (q50, q99, q_rounds) = median(&quiet);
    let (b50, b99, b_rounds) = median(&busy);
    println!(
        "warm invoke, concurrency 1, 3 rounds of {} each: quiet p50 {q50:.0} µs, p99 {q99:.0} µs (rounds {}); during {calls} management calls (UpdateFunctionConfiguration, PublishVersion, TagResource in a loop): p50 {b50:.0} µs, p99 {b99:.0} µs (rounds {})",
        args.requests,
        q_rounds.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join("/"),
        b_rounds.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join("/"),
    );

    for c in [16usize, 64] {
        let request = load::invoke_request(addr, "noop:1", &signer);
        let (rate, mut lat) =
            load::concurrent(addr, request, c, Duration::from_secs(args.seconds)).await?;
        lat.sort_by(f64::total_cmp);
        println!(
            "warm invoke, concurrency {c} ({} s): {rate:.0} invocations/s, p50 {:.0} µs, p99 {:.0} µs",
            args.seconds,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }

    // The embedded Node and Python runtimes, warm (16 provisioned environments).
    for (name, runtime, handler, zip) in [
        ("noop-node", "nodejs20.x", "index.handler", &node_zip),
        ("noop-python", "python3.12", "app.handler", &python_zip),
    ] {
        create(&api, name, runtime, handler, zip).await?;
        provision(&api, name, 16).await?;
        let request = load::invoke_request(addr, &format!("{name}:1"), &signer);
        let mut lat = load::sequential(addr, request.clone(), 500, args.requests / 5).await?;
        lat.sort_by(f64::total_cmp);
        let (rate, _) =
            load::concurrent(addr, request, 16, Duration::from_secs(args.seconds)).await?;
        println!(
            "warm invoke {runtime}: concurrency 1 p50 {:.0} µs, p99 {:.0} µs; concurrency 16 {rate:.0} invocations/s",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }

    // Cold starts.
    let prov_env = [
        ("PATH", "/usr/bin:/bin"),
        ("AWS_LAMBDA_FUNCTION_NAME", "bare"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bare"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bare"),
    ];
    let mut bare = Vec::new();
    for _ in 0..args.cold_samples {
        bare.push(bare_start(&pdir.join("bootstrap"), &[], &pdir, &prov_env).await?);
    }
    bare.sort_by(f64::total_cmp);
    let cold = cold_samples(
        &api,
        "cold-provided",
        "provided.al2023",
        "bootstrap",
        &provided_zip,
        args.cold_samples,
    )
    .await?;
    println!(
        "cold start provided (Init Duration, {} samples): p50 {:.2} ms, p99 {:.2} ms; bare process start to /next p50 {:.2} ms; Stratus adds {:.2} ms",
        args.cold_samples, percentile(&cold, 0.5), percentile(&cold, 0.99), percentile(&bare, 0.5), percentile(&cold, 0.5) - percentile(&bare, 0.5)
    );
    let runtimes_dir = work.join("data").join("runtimes");
    let node = Interpreted {
        runtime: "nodejs20.x",
        handler: "index.handler",
        program: stratus_sandbox_which("node")?,
        args: vec![runtimes_dir
            .join("node")
            .join("bootstrap.js")
            .display()
            .to_string()],
        dir: &ndir,
        zip: &node_zip,
    };
    let python = Interpreted {
        runtime: "python3.12",
        handler: "app.handler",
        program: stratus_server::runtimes::resolve_python("python3").map_err(anyhow::Error::msg)?,
        args: vec![
            "-u".into(),
            runtimes_dir
                .join("python")
                .join("bootstrap.py")
                .display()
                .to_string(),
        ],
        dir: &pydir,
        zip: &python_zip,
    };
    for rt in [node, python] {
        let samples = args.cold_samples.min(10);
        let (cold, bare) = rt.cold_starts(&api, samples).await?;
        println!(
            "cold start {} (Init Duration): p50 {:.2} ms, p99 {:.2} ms; bare interpreter start to /next p50 {:.2} ms; Stratus adds {:.2} ms",
            rt.runtime, percentile(&cold, 0.5), percentile(&cold, 0.99), percentile(&bare, 0.5), percentile(&cold, 0.5) - percentile(&bare, 0.5)
        );
    }

    // Provisioned READY time and memory per idle environment.
    create(&api, "many", "provided.al2023", "bootstrap", &provided_zip).await?;
    let before = rss_kb(server_pid);
    let ready = provision(&api, "many", args.provisioned).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kb(server_pid);
    println!(
        "{} provisioned environments READY in {:.0} ms; server memory per idle environment {:.1} KB",
        args.provisioned,
        ready.as_secs_f64() * 1000.0,
        after.saturating_sub(before) as f64 / args.provisioned as f64
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server_pid.to_string()])
        .status();
    let _ = server.wait().await;
    let _ = stratus_package::remove_tree(&work);
    Ok(())
}

/// UpdateFunctionConfiguration, PublishVersion and TagResource on function `managed`,
/// one after another until `stop`; returns how many calls were made.
async fn management_loop(
    api: Api,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<u64> {
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:managed";
    let mut calls = 0u64;
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let steps = [
            (
                "PUT",
                "/2015-03-31/functions/managed/configuration".to_string(),
                json!({ "Environment": { "Variables": { "ROUND": i.to_string() } } }),
                200,
            ),
            (
                "POST",
                "/2015-03-31/functions/managed/versions".to_string(),
                json!({}),
                201,
            ),
            (
                "POST",
                format!("/2017-03-31/tags/{arn}"),
                json!({ "Tags": { "round": i.to_string() } }),
                204,
            ),
        ];
        for (method, path, body, want) in steps {
            let r = api.call(method, &path, &[], body.to_string()).await?;
            if r.status != want {
                bail!(
                    "{method} {path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
            calls += 1;
        }
    }
    Ok(calls)
}

/// A runtime run by one of the embedded bootstraps, for its cold-start figures.
struct Interpreted<'a> {
    runtime: &'static str,
    handler: &'static str,
    program: PathBuf,
    args: Vec<String>,
    dir: &'a std::path::Path,
    zip: &'a [u8],
}

impl Interpreted<'_> {
    /// Init Durations through Stratus, and the bare bootstrap's own start to
    /// `/next`, sorted.
    async fn cold_starts(&self, api: &Api, samples: u32) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let env = [
            ("_HANDLER", self.handler),
            ("LAMBDA_TASK_ROOT", self.dir.to_str().unwrap_or_default()),
        ];
        let mut bare = Vec::new();
        for _ in 0..samples {
            bare.push(bare_start(&self.program, &self.args, self.dir, &env).await?);
        }
        bare.sort_by(f64::total_cmp);
        let prefix = format!("cold-{}", self.runtime.replace('.', ""));
        let cold =
            cold_samples(api, &prefix, self.runtime, self.handler, self.zip, samples).await?;
        Ok((cold, bare))
    }
}

fn stratus_sandbox_which(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found on PATH"))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("stratus-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
