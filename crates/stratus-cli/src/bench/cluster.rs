//! `stratus bench --cluster postgres://… --nats nats://…`: what cluster mode costs on
//! the warm path, and what several nodes on one machine give together.
//!
//! 1. One embedded node (no cluster flags) and one cluster node (`--cluster`,
//!    `--nats`, `--blobs file://…`) run side by side, each with the no-op `provided`
//!    function and 64 provisioned environments of its own. Interleaved rounds
//!    (the order flips each round, so a burst of noise on a shared machine hits both
//!    alike) measure on each: warm p50/p99 at concurrency 1, throughput at 16 and 64
//!    callers. The medians of the rounds and the cluster/embedded ratios are
//!    printed: the goal is within 10 % when the warm environment is local.
//! 2. The embedded node stops; `--nodes` − 1 more cluster nodes join. After a
//!    warm-up on each, 16 (then 64) callers per node run against every node at once:
//!    the aggregate rate, each node's share, against one node with the same total
//!    number of callers just before.
//! 3. A routed invoke: a function made warm through node 1 only (one on-demand
//!    environment, no provisioned ones), then called sequentially through node 2.
//!    The environments node 2 reports before and after say whether node 2 served the
//!    calls itself (it started an environment of its own) or forwarded them.
//!
//! The engines are the caller's (`scripts/bench-cluster` starts a PostgreSQL and a
//! nats-server of its own for this); the nodes are this binary's `server`, each with
//! its own data dir under a temporary directory, a shared blob directory and a
//! master key made for the run. Function names start with `bench-` and are deleted
//! at the start and the end, so the database can be reused.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use tokio::io::AsyncBufReadExt;

use super::{load, percentile, BenchArgs};
use crate::client::Api;

const NOOP: &str = "bench-noop";
const ROUTED: &str = "bench-routed";

/// A `stratus server` process started by the bench.
struct Node {
    name: String,
    child: tokio::process::Child,
    addr: SocketAddr,
    api: Api,
    signer: stratus_cli::signing::Signer,
}

impl Node {
    /// Starts `stratus server` on an ephemeral loopback port with `data` as its data
    /// dir, `extra` flags and `env`; signs with the credentials it wrote.
    async fn start(
        name: &str,
        data: &Path,
        sandbox: &str,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Node> {
        std::fs::create_dir_all(data)?;
        let log = std::fs::File::create(data.with_extension("log"))?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["server", "--listen", "127.0.0.1:0", "--shutdown-grace", "1"])
            .args(["--sandbox", sandbox, "--data-dir"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .with_context(|| format!("{name} did not start within 60 s"))??
            .with_context(|| {
                format!(
                    "{name} exited at start: {}",
                    std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
                )
            })?;
        let base = line.rsplit(' ').next().unwrap_or_default().to_string();
        let addr: SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("{name} printed an unexpected address: {line}"))?;
        let creds_file = data.join("credentials");
        let (creds, region) = stratus_cli::signing::load_profile(&creds_file, "default")
            .map_err(anyhow::Error::msg)?
            .with_context(|| format!("{name} wrote no credentials to {}", creds_file.display()))?;
        let signer = stratus_cli::signing::Signer::with(
            creds,
            region.as_deref().unwrap_or("us-east-1"),
            &creds_file.display().to_string(),
        );
        Ok(Node {
            name: name.to_string(),
            child,
            addr,
            api: Api::with_signer(&base, signer.clone()),
            signer,
        })
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = self.child.wait().await;
    }

    fn request(&self, function: &str) -> std::sync::Arc<[u8]> {
        load::invoke_request(self.addr, function, &self.signer)
    }

    /// The environments this node reports in `GET /stratus/v1/cluster`.
    async fn environments(&self) -> anyhow::Result<u64> {
        let v = self
            .api
            .call("GET", "/stratus/v1/cluster", &[], "")
            .await?
            .json()?;
        let nodes = v["nodes"]
            .as_array()
            .context("no nodes in cluster status")?;
        nodes
            .iter()
            .find(|n| n["self"] == true)
            .and_then(|n| n["environments"].as_u64())
            .with_context(|| format!("{} is not in its own cluster status: {v}", self.name))
    }
}

/// One round's figures on one node.
#[derive(Debug, Clone, Copy)]
struct Round {
    p50: f64,
    p99: f64,
    c16: f64,
    c64: f64,
    /// Calls answered 429 in the throughput runs (not counted in the rates).
    throttled: u64,
}

async fn measure(node: &Node, function: &str, args: &BenchArgs) -> anyhow::Result<Round> {
    let mut lat = load::sequential(node.addr, node.request(function), 200, args.requests).await?;
    lat.sort_by(f64::total_cmp);
    let secs = Duration::from_secs(args.seconds);
    let (c16, _, t16) =
        load::concurrent_counting_throttles(node.addr, node.request(function), 16, secs).await?;
    let (c64, _, t64) =
        load::concurrent_counting_throttles(node.addr, node.request(function), 64, secs).await?;
    Ok(Round {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        c16,
        c64,
        throttled: t16 + t64,
    })
}

/// 64 callers for a second at a time until a second passes with none throttled (a
/// node that just joined holds no grants yet), 10 tries at most; how many were
/// throttled in all.
async fn warm_up(node: &Node, function: &str) -> anyhow::Result<u64> {
    let mut throttled = 0;
    for _ in 0..10 {
        let (_, _, t) = load::concurrent_counting_throttles(
            node.addr,
            node.request(function),
            64,
            Duration::from_secs(1),
        )
        .await?;
        throttled += t;
        if t == 0 {
            break;
        }
    }
    Ok(throttled)
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split(' ').next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Deletes `name` if it exists.
async fn delete(api: &Api, name: &str) -> anyhow::Result<()> {
    let r = api
        .call("DELETE", &format!("/2015-03-31/functions/{name}"), &[], "")
        .await?;
    if r.status != 204 && r.status != 404 {
        bail!(
            "DeleteFunction {name}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(())
}

/// Waits until `function` answers 200 through `node` (a deploy through another
/// node reaches it within about a second).
async fn until_invocable(node: &Node, function: &str) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    loop {
        let r = node.api.invoke(function, "{}").await?;
        if r.status == 200 {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "{function} not invocable through {} after 30 s: {} {}",
                node.name,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node` answers GetFunction for `function` (the change feed brought it).
async fn until_known(node: &Node, function: &str) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    let path = format!("/2015-03-31/functions/{function}");
    loop {
        let r = node.api.call("GET", &path, &[], "").await?;
        if r.status == 200 {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "{function} unknown to {} after 30 s: {}",
                node.name,
                r.status
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn run(args: &BenchArgs, pg_url: &str) -> anyhow::Result<()> {
    let Some(nats) = args.nats.as_deref() else {
        bail!("--cluster needs --nats nats://HOST:PORT (a NATS server with JetStream), as `stratus server --cluster` does");
    };
    if args.nodes < 2 {
        bail!(
            "--nodes {}: the aggregate needs at least 2 nodes",
            args.nodes
        );
    }
    let bootstrap = args.bootstrap.canonicalize().with_context(|| {
        format!(
            "{} not found: build it with `cargo build --release -p noop-bootstrap`",
            args.bootstrap.display()
        )
    })?;
    let work = super::tempfile_dir()?;
    let result = run_in(args, pg_url, nats, &bootstrap, &work).await;
    let _ = stratus_package::remove_tree(&work);
    result
}

async fn run_in(
    args: &BenchArgs,
    pg_url: &str,
    nats: &str,
    bootstrap: &Path,
    work: &Path,
) -> anyhow::Result<()> {
    let pdir = work.join("provided");
    std::fs::create_dir_all(&pdir)?;
    std::fs::copy(bootstrap, pdir.join("bootstrap"))?;
    let zip = stratus_package::zip_dir(&pdir)?;
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)
        .context("read /dev/urandom for the run's master key")?;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let env = [("STRATUS_MASTER_KEY", key.as_str())];
    let blobs = format!("file://{}", work.join("blobs").display());
    let run_id = std::process::id();
    let cluster_flags = |i: u32| -> Vec<String> {
        [
            "--cluster",
            pg_url,
            "--nats",
            nats,
            "--blobs",
            &blobs,
            "--node-id",
            &format!("bench-{run_id}-n{i}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    println!(
        "stratus bench --cluster — {} cores, sandbox {}, load average {} at start",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        args.sandbox,
        load_average()
    );
    let embedded = Node::start("embedded", &work.join("embedded"), &args.sandbox, &[], &[]).await?;
    let n1 = Node::start(
        "n1",
        &work.join("n1"),
        &args.sandbox,
        &cluster_flags(1),
        &env,
    )
    .await?;
    delete(&n1.api, NOOP).await?;
    delete(&n1.api, ROUTED).await?;
    for node in [&embedded, &n1] {
        super::create(&node.api, NOOP, "provided.al2023", "bootstrap", &zip).await?;
        super::provision(&node.api, NOOP, 64).await?;
    }
    let target = format!("{NOOP}:1");

    // 1. Embedded against cluster, one node each, interleaved rounds.
    println!(
        "1. one node, warm environments local: embedded vs cluster ({} rounds, {} sequential requests, {} s per throughput run)",
        args.rounds, args.requests, args.seconds
    );
    let (mut e_rounds, mut c_rounds) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            [&embedded, &n1]
        } else {
            [&n1, &embedded]
        };
        for node in order {
            let load_before = load_average();
            let r = measure(node, &target, args).await?;
            println!(
                "  round {} {:<8}: c1 p50 {:.0} µs, p99 {:.0} µs; c16 {:.0}/s; c64 {:.0}/s; {} throttled (load average {load_before})",
                round + 1,
                node.name,
                r.p50,
                r.p99,
                r.c16,
                r.c64,
                r.throttled
            );
            if node.name == "embedded" {
                e_rounds.push(r);
            } else {
                c_rounds.push(r);
            }
        }
    }
    let summary = |rounds: &[Round]| Round {
        p50: median(rounds.iter().map(|r| r.p50)),
        p99: median(rounds.iter().map(|r| r.p99)),
        c16: median(rounds.iter().map(|r| r.c16)),
        c64: median(rounds.iter().map(|r| r.c64)),
        throttled: rounds.iter().map(|r| r.throttled).sum(),
    };
    let (e, c) = (summary(&e_rounds), summary(&c_rounds));
    for (what, r) in [("embedded", e), ("cluster node", c)] {
        println!(
            "warm invoke, one {what} (median of {} rounds): concurrency 1 p50 {:.0} µs, p99 {:.0} µs; concurrency 16 {:.0} invocations/s; concurrency 64 {:.0} invocations/s; {} throttled",
            args.rounds, r.p50, r.p99, r.c16, r.c64, r.throttled
        );
    }
    println!(
        "cluster / embedded: p50 {:+.1} %, p99 {:+.1} %, concurrency 16 {:+.1} %, concurrency 64 {:+.1} %",
        (c.p50 / e.p50 - 1.0) * 100.0,
        (c.p99 / e.p99 - 1.0) * 100.0,
        (c.c16 / e.c16 - 1.0) * 100.0,
        (c.c64 / e.c64 - 1.0) * 100.0
    );
    delete(&embedded.api, NOOP).await?;
    embedded.stop().await;

    // 2. Aggregate throughput of N nodes.
    let mut nodes = vec![n1];
    for i in 2..=args.nodes {
        let node = Node::start(
            &format!("n{i}"),
            &work.join(format!("n{i}")),
            &args.sandbox,
            &cluster_flags(i),
            &env,
        )
        .await?;
        until_invocable(&node, &target).await?;
        nodes.push(node);
    }
    for node in &nodes {
        // Warm-up (discarded): environments started on demand settle, grants are
        // taken.
        let throttled = warm_up(node, &target).await?;
        if throttled > 0 {
            println!(
                "  warm-up of {}: {throttled} calls throttled before it held enough grants",
                node.name
            );
        }
    }
    println!(
        "2. aggregate: {} nodes on this machine, every node called at once ({} s)",
        nodes.len(),
        args.seconds
    );
    let secs = Duration::from_secs(args.seconds);
    for per_node in [16usize, 64] {
        let total = per_node * nodes.len();
        let load_before = load_average();
        let (one, _, one_throttled) = load::concurrent_counting_throttles(
            nodes[0].addr,
            nodes[0].request(&target),
            total,
            secs,
        )
        .await?;
        let runs = nodes.iter().map(|n| {
            load::concurrent_counting_throttles(n.addr, n.request(&target), per_node, secs)
        });
        let results = join_all(runs).await?;
        let sum: f64 = results.iter().map(|r| r.0).sum();
        let throttled: u64 = results.iter().map(|r| r.2).sum();
        println!(
            "warm invoke, {} nodes × {per_node} callers: {sum:.0} invocations/s in all ({}), {throttled} throttled; one node with {total} callers: {one:.0} invocations/s, {one_throttled} throttled (load average {load_before})",
            nodes.len(),
            results
                .iter()
                .zip(&nodes)
                .map(|(r, n)| format!("{} {:.0}/s", n.name, r.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // 3. Routed: warm on n1 only, called through n2.
    let (n1, n2) = (&nodes[0], &nodes[1]);
    super::create(&n1.api, ROUTED, "provided.al2023", "bootstrap", &zip).await?;
    let mut warm_n1 = load::sequential(n1.addr, n1.request(ROUTED), 100, args.requests).await?;
    warm_n1.sort_by(f64::total_cmp);
    // n2 must know the function without being invoked (an invoke before n2 has seen
    // n1's idle environment in a heartbeat would start one on n2), and then see that
    // environment: two heartbeats after the warm-up.
    until_known(n2, ROUTED).await?;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let before = n2.environments().await?;
    let mut lat = load::sequential(n2.addr, n2.request(ROUTED), 100, args.requests).await?;
    lat.sort_by(f64::total_cmp);
    let after = n2.environments().await?;
    let how = if after > before {
        format!("served by an environment n2 started itself ({before} → {after} environments on n2): no routing in this build")
    } else {
        format!("n2 started no environment ({before} → {after}): forwarded to n1")
    };
    println!(
        "routed invoke (warm on n1 only, called through n2, {} requests): p50 {:.0} µs, p99 {:.0} µs; {how}; the same function through n1: p50 {:.0} µs, p99 {:.0} µs",
        args.requests,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&warm_n1, 0.5),
        percentile(&warm_n1, 0.99)
    );
    delete(&n1.api, ROUTED).await?;
    delete(&n1.api, NOOP).await?;
    for node in nodes {
        node.stop().await;
    }
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// Runs the load runs at once (each on a thread of its own) and returns their
/// results in order.
async fn join_all<F, T>(runs: impl Iterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = runs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}
